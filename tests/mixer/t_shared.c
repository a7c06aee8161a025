/** @file t_shared.c  Shared encoding: encode/decode counts, clean switch */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <cmocka.h>
#include "mixer/mix_int.h"
#include "sim.h"
#include "tmix.h"

/*
 * n Opus legs, the first talkers of them talking.  Decodes per tick: with
 * RFC 6464 levels only the talkers; without, the talkers and the silent
 * legs' metering probes (each silent leg once per PROBE_MS = 20 ticks,
 * spread by leg index), since their packets' VAD flags say silence; with
 * that reading off (vad false), every leg.
 */
static void shared_run_vad(unsigned n, unsigned talkers, bool levels,
			   bool vad)
{
	struct mix_conf_cfg cfg;
	struct mix_conf_stats st;
	struct sim s;
	unsigned i, t, out0, probes = (n - talkers + 19) / 20;
	uint64_t silent_dec = 0;

	mix_opt_opus_vad = vad;
	mix_conf_cfg_default(&cfg);
	sim_init(&s, &cfg);
	for (i = 0; i < n; i++) {
		struct party *p = sim_add(&s, MIX_CODEC_OPUS,
					  300 + 170.0 * i,
					  i < talkers ? 0.1 : 0.0, levels);

		p->silent_payload = true;
	}
	sim_run(&s, 25);
	for (t = 0; t < 25; t++) {
		out0 = s.packets_out;
		sim_step(&s);
		mix_conf_stats_get(s.conf, &st);
		assert_int_equal(st.talkers, talkers);
		/* one shared encode for the listeners, one per talker */
		assert_int_equal(st.last_tick_encodes, talkers + 1);
		if (levels)
			assert_int_equal(st.last_tick_decodes, talkers);
		else if (!vad)
			assert_int_equal(st.last_tick_decodes, n);
		else {
			assert_in_range(st.last_tick_decodes, talkers,
					talkers + probes);
		}
		/* and everybody still gets a packet every tick */
		assert_int_equal(s.packets_out - out0, n);
	}
	for (i = 0; i < n; i++) {
		struct mix_leg_stats ls;

		mix_leg_stats_get(s.p[i]->leg, &ls);
		assert_int_equal(ls.talking, i < talkers);
		if (levels && i >= talkers)
			assert_int_equal(ls.decodes, 0);
		if (i >= talkers)
			silent_dec += ls.decodes;
	}
	/* 50 ticks: every silent leg metered 2 or 3 times */
	if (!levels && vad)
		assert_in_range(silent_dec, 2 * (n - talkers),
				3 * (n - talkers));
	assert_int_equal(s.bad_ts, 0);
	mix_opt_opus_vad = true;
	sim_free(&s);
}

static void shared_run(unsigned n, unsigned talkers, bool levels)
{
	shared_run_vad(n, talkers, levels, true);
}

static void test_shared_10_2(void **state)
{
	(void)state;
	shared_run(10, 2, true);
}

static void test_shared_10_2_nolevels(void **state)
{
	(void)state;
	shared_run(10, 2, false);
}

/* the decoder-based VAD alone decodes every leg */
static void test_shared_10_2_energy_vad(void **state)
{
	(void)state;
	shared_run_vad(10, 2, false, false);
}

static void test_shared_100_3(void **state)
{
	(void)state;
	shared_run(100, 3, true);
}

static void test_shared_100_3_nolevels(void **state)
{
	(void)state;
	shared_run(100, 3, false);
}

/*
 * Residual after removing the best-fitting tone at f, per block of n
 * samples, in dB relative to amplitude amp.  A click (decoder state jump)
 * shows up as broadband residual.
 */
static double residual_db(const int16_t *x, unsigned n, double f,
			  double rate, double amp)
{
	double ss = 0, cc = 0, sc = 0, xs = 0, xc = 0, det, a, b, r = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		double sn = sin(2 * M_PI * f * i / rate);
		double cs = cos(2 * M_PI * f * i / rate);
		double v = x[i] / 32768.0;

		ss += sn * sn;
		cc += cs * cs;
		sc += sn * cs;
		xs += v * sn;
		xc += v * cs;
	}
	det = ss * cc - sc * sc;
	a = (xs * cc - xc * sc) / det;
	b = (xc * ss - xs * sc) / det;
	for (i = 0; i < n; i++) {
		double v = x[i] / 32768.0 - a * sin(2 * M_PI * f * i / rate) -
			b * cos(2 * M_PI * f * i / rate);

		r += v * v;
	}
	return db(sqrt(r / n) * sqrt(2.0) / amp);
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/*
 * X alternates 1 s talking, 1 s silent; Y talks all the time.  X's own
 * stream must carry only Y's tone throughout, whether X's packets come
 * from its own encoder (talking) or the shared one (listening).  Returns
 * the worst and the median 5 ms residual of X's decoded audio.
 */
static void switch_measure(enum mix_codec codec, double *worst,
			   double *median, unsigned *switches)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	struct party *x;
	static double r[4096];
	unsigned t, blk, n = 0, nsw = 0;
	bool was = false;
	struct mix_leg_stats ls;
	size_t i;

	mix_conf_cfg_default(&cfg);
	sim_init(&s, &cfg);
	sim_add(&s, MIX_CODEC_OPUS, 700, 0.1, true);
	x = sim_add(&s, codec, 1900, 0.1, true);
	sim_add(&s, codec, 1000, 0, true);
	blk = x->arate / 200;
	for (t = 0; t < 400; t++) {
		x->on = (t / 50) % 2 == 1;
		sim_step(&s);
		mix_leg_stats_get(x->leg, &ls);
		nsw += t > 20 && ls.talking != was;
		was = ls.talking;
	}
	*worst = -200;
	for (i = x->arate / 2; i + blk <= x->rx_n && n < 4096; i += blk) {
		r[n] = residual_db(x->rx + i, blk, 700, x->arate, 0.1);
		if (r[n] > *worst)
			*worst = r[n];
		n++;
	}
	qsort(r, n, sizeof(r[0]), cmp_d);
	*median = r[n / 2];
	*switches = nsw;
	sim_free(&s);
}

static void test_switch_clean(void **state)
{
	double worst, med, worst_nc, med_nc;
	unsigned nsw;

	(void)state;
	switch_measure(MIX_CODEC_OPUS, &worst, &med, &nsw);
	print_message("Opus: worst 5 ms residual %.1f dB, median %.1f dB "
		      "(%u switches)\n", worst, med, nsw);
	assert_true(nsw >= 6);
	/* no click: the worst block is not far above the typical one */
	assert_true(worst <= med + 6.0);

	/* the metric does see a decoder-state jump: without the state
	 * copy the switch to the own stream clicks */
	mix_opt_clone = false;
	switch_measure(MIX_CODEC_OPUS, &worst_nc, &med_nc, &nsw);
	mix_opt_clone = true;
	print_message("Opus without state copy: worst %.1f dB, median "
		      "%.1f dB\n", worst_nc, med_nc);
	assert_true(worst_nc > med_nc + 20.0);

	/* G.722 in a 48 kHz conference: ADPCM state and the resampler */
	switch_measure(MIX_CODEC_G722, &worst, &med, &nsw);
	print_message("G.722: worst %.1f dB, median %.1f dB\n", worst, med);
	assert_true(nsw >= 6);
	assert_true(worst <= med + 6.0);
	mix_opt_clone = false;
	switch_measure(MIX_CODEC_G722, &worst_nc, &med_nc, &nsw);
	mix_opt_clone = true;
	print_message("G.722 without state copy: worst %.1f dB\n",
		      worst_nc);
	assert_true(worst_nc > med_nc + 20.0);
}

int tmix_run_shared(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_10_2),
		cmocka_unit_test(test_shared_10_2_nolevels),
		cmocka_unit_test(test_shared_10_2_energy_vad),
		cmocka_unit_test(test_shared_100_3),
		cmocka_unit_test(test_shared_100_3_nolevels),
		cmocka_unit_test(test_switch_clean),
	};
	return cmocka_run_group_tests_name("mixer_shared", tests, NULL,
					   NULL);
}
