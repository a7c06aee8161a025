/** @file t_tone.c  Tone tests: N-1 content and level, mixed codecs */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include "sim.h"
#include "tmix.h"

static const double freqs[5] = {440, 620, 830, 1070, 1330};
#define AMP 0.1

/* every party hears every other talker at AMP (+-1 dB) and not itself */
static void check_tones(struct sim *s, unsigned n, double secs_skip)
{
	unsigned i, j;
	struct mix_leg *tv[16];
	unsigned nt = mix_talkers(s->conf, tv, 16);

	for (i = 0; i < n; i++) {
		struct party *p = s->p[i];
		size_t from = (size_t)(secs_skip * p->arate);
		size_t len = p->rx_n > from ? p->rx_n - from : 0;

		/* whole number of 10 ms so the bins sit on the tones */
		len -= len % (p->arate / 100);
		assert_true(len > p->arate);
		for (j = 0; j < n; j++) {
			struct party *q = s->p[j];
			double l = tone_db(p, from, len, q->freq);
			bool talker = false;
			unsigned k;

			for (k = 0; k < nt; k++)
				talker |= tv[k] == q->leg;
			if (getenv("TMIX_VERBOSE"))
				print_message("%u<-%u %s %.2f dB\n", i, j,
					      talker ? "T" : "-",
					      l - db(AMP));
			if (j == i) {
				if (l > db(AMP) - 40)
					print_message("party %u own %.1f\n",
						      i, l);
				assert_true(l <= db(AMP) - 40);
			}
			else if (talker) {
				if (fabs(l - db(AMP)) > 1.0)
					print_message("party %u hears %u "
						      "at %.2f dB\n", i, j,
						      l - db(AMP));
				assert_true(fabs(l - db(AMP)) <= 1.0);
			}
			else {
				assert_true(l <= db(AMP) - 40);
			}
		}
	}
}

static void tone_run(enum mix_codec *codecs, unsigned n, unsigned talkers,
		     bool levels)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	unsigned i;

	mix_conf_cfg_default(&cfg);
	cfg.max_talkers = talkers;
	sim_init(&s, &cfg);
	for (i = 0; i < n; i++)
		sim_add(&s, codecs[i], freqs[i],
			AMP * (1.0 - 0.02 * i), levels);
	/* equal levels except a small spread so "loudest" is defined;
	 * the checks use each party's own amplitude */
	for (i = 0; i < n; i++)
		s.p[i]->amp = AMP;
	sim_run(&s, 100); /* 2 s */
	check_tones(&s, n, 0.6);
	assert_int_equal(s.bad_ts, 0);
	sim_free(&s);
}

static void test_tone_opus5(void **state)
{
	enum mix_codec c[5] = {MIX_CODEC_OPUS, MIX_CODEC_OPUS,
			       MIX_CODEC_OPUS, MIX_CODEC_OPUS,
			       MIX_CODEC_OPUS};
	(void)state;
	tone_run(c, 5, 5, false);
}

static void test_tone_mixed_codecs(void **state)
{
	enum mix_codec c[5] = {MIX_CODEC_OPUS, MIX_CODEC_G722,
			       MIX_CODEC_PCMA, MIX_CODEC_OPUS,
			       MIX_CODEC_G722};
	(void)state;
	tone_run(c, 5, 5, false);
}

static void test_tone_levels_3_talkers(void **state)
{
	enum mix_codec c[5] = {MIX_CODEC_OPUS, MIX_CODEC_G722,
			       MIX_CODEC_PCMA, MIX_CODEC_PCMU,
			       MIX_CODEC_OPUS};
	(void)state;
	tone_run(c, 5, 3, true);
}

/* 10 ms tick; legs of 20, 40 and 60 ms packetised from several ticks */
static void test_tone_ptimes(void **state)
{
	static const unsigned pt[4] = {10, 20, 40, 60};
	static const enum mix_codec cd[4] = {MIX_CODEC_OPUS, MIX_CODEC_G722,
					     MIX_CODEC_OPUS, MIX_CODEC_PCMU};
	struct mix_conf_cfg cfg;
	struct mix_leg_cfg lc;
	struct sim s;
	unsigned i;

	(void)state;
	mix_conf_cfg_default(&cfg);
	cfg.ptime_ms = 10;
	cfg.max_talkers = 4;
	sim_init(&s, &cfg);
	for (i = 0; i < 4; i++) {
		mix_leg_cfg_default(&lc, cd[i]);
		lc.ptime_ms = pt[i];
		sim_add_cfg(&s, &lc, freqs[i], AMP, false);
	}
	sim_run(&s, 240); /* 2.4 s */
	check_tones(&s, 4, 0.8);
	assert_int_equal(s.bad_ts, 0);
	for (i = 0; i < 4; i++)
		assert_true(abs((int)s.p[i]->rx_packets -
				(int)(240 * 10 / pt[i])) <= 6);
	sim_free(&s);
}

int tmix_run_tone(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tone_opus5),
		cmocka_unit_test(test_tone_mixed_codecs),
		cmocka_unit_test(test_tone_levels_3_talkers),
		cmocka_unit_test(test_tone_ptimes),
	};
	return cmocka_run_group_tests_name("mixer_tone", tests, NULL, NULL);
}
