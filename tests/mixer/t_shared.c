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

static void shared_run(unsigned n, unsigned talkers, bool levels)
{
	struct mix_conf_cfg cfg;
	struct mix_conf_stats st;
	struct sim s;
	unsigned i, t, out0;

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
		/* with levels only talkers are decoded; without, all */
		assert_int_equal(st.last_tick_decodes,
				 levels ? talkers : n);
		/* and everybody still gets a packet every tick */
		assert_int_equal(s.packets_out - out0, n);
	}
	for (i = 0; i < n; i++) {
		struct mix_leg_stats ls;

		mix_leg_stats_get(s.p[i]->leg, &ls);
		assert_int_equal(ls.talking, i < talkers);
		if (levels && i >= talkers)
			assert_int_equal(ls.decodes, 0);
	}
	assert_int_equal(s.bad_ts, 0);
	sim_free(&s);
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

/* worst residual of X's received audio near and away from switches */
static void switch_measure(double *near_db, double *far_db,
			   unsigned *switches)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	struct party *x;
	unsigned t, blk = 240, i;
	bool was = false;
	size_t sw_at[32];
	unsigned nsw = 0;
	struct mix_leg_stats ls;

	mix_conf_cfg_default(&cfg);
	sim_init(&s, &cfg);
	sim_add(&s, MIX_CODEC_OPUS, 700, 0.1, true);
	x = sim_add(&s, MIX_CODEC_OPUS, 1900, 0.1, true);
	sim_add(&s, MIX_CODEC_OPUS, 1000, 0, true);
	for (t = 0; t < 400; t++) {
		x->on = (t / 50) % 2 == 1;
		sim_step(&s);
		mix_leg_stats_get(x->leg, &ls);
		if (t > 20 && ls.talking != was && nsw < 32)
			sw_at[nsw++] = x->rx_n;
		was = ls.talking;
	}
	*near_db = *far_db = -200;
	for (i = 48000 / 2; i + blk <= x->rx_n; i += blk) {
		double r = residual_db(x->rx + i, blk, 700, 48000, 0.1);
		bool near = false;
		unsigned k;

		for (k = 0; k < nsw; k++)
			near |= i + 2 * 960 > sw_at[k] &&
				i < sw_at[k] + 4 * 960;
		if (near && r > *near_db)
			*near_db = r;
		if (!near && r > *far_db)
			*far_db = r;
	}
	*switches = nsw;
	sim_free(&s);
}

static void test_switch_clean(void **state)
{
	double near_db, far_db, near_nc, far_nc;
	unsigned nsw;

	(void)state;
	switch_measure(&near_db, &far_db, &nsw);
	print_message("switch: residual near %.1f dB, elsewhere %.1f dB "
		      "(%u switches)\n", near_db, far_db, nsw);
	assert_true(nsw >= 6);
	/* no click: residual around a switch no worse than elsewhere */
	assert_true(near_db <= far_db + 3.0);

	/* the metric does see a decoder-state jump: without the state
	 * copy the switch to the own stream clicks */
	mix_opt_clone = false;
	switch_measure(&near_nc, &far_nc, &nsw);
	mix_opt_clone = true;
	print_message("without state copy: near %.1f dB, elsewhere "
		      "%.1f dB\n", near_nc, far_nc);
	assert_true(near_nc > near_db + 6.0);
}

int tmix_run_shared(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shared_10_2),
		cmocka_unit_test(test_shared_10_2_nolevels),
		cmocka_unit_test(test_shared_100_3),
		cmocka_unit_test(test_shared_100_3_nolevels),
		cmocka_unit_test(test_switch_clean),
	};
	return cmocka_run_group_tests_name("mixer_shared", tests, NULL,
					   NULL);
}
