/** @file t_alloc.c  No allocation on the packet path or the tick */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "tests/mock/alloc_count.h"
#include "sim.h"
#include "tmix.h"

/* allocations are counted by tests/mock/alloc_count.c */

/* a conference with every codec, resampling, talker changes and loss */
static void test_no_alloc_mix(void **state)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	unsigned t, i;
	struct party *x;
	uint8_t buf[MIX_PAYLOAD_MAX];

	(void)state;
	if (!ALLOC_COUNTING) {
		print_message("allocator owned by the sanitizer: "
			      "counting not possible in this build\n");
		return;
	}
	mix_conf_cfg_default(&cfg);
	cfg.opus.dtx = true;
	sim_init(&s, &cfg);
	sim_add(&s, MIX_CODEC_OPUS, 440, 0.1, true);
	sim_add(&s, MIX_CODEC_G722, 620, 0.1, false);
	sim_add(&s, MIX_CODEC_PCMA, 830, 0.1, true);
	x = sim_add(&s, MIX_CODEC_PCMU, 1070, 0.1, false);
	sim_add(&s, MIX_CODEC_OPUS, 0, 0, true);
	sim_run(&s, 10);
	/* the receiving side's buffers are the test's, not the mixer's */
	for (i = 0; i < s.nparty; i++) {
		struct party *p = s.p[i];

		p->rx_cap = p->rx_n + 48000 * 8;
		p->rx = realloc(p->rx, p->rx_cap * sizeof(int16_t));
		assert_non_null(p->rx);
	}
	alloc_count = 0;
	alloc_counting = 1;
	for (t = 0; t < 300; t++) {
		s.p[0]->on = (t / 40) % 2 == 0; /* talker changes */
		if (t % 7 == 3) {
			/* a lost packet for x */
			int lev;

			sim_make_packet(x, buf, &lev);
			x->seq++;
			x->ts += 160;
		}
		sim_step(&s);
	}
	alloc_counting = 0;
	print_message("allocations in 300 ticks: %lu\n", alloc_count);
	assert_int_equal(alloc_count, 0);
	sim_free(&s);
}

static void test_no_alloc_transcode(void **state)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	unsigned t;

	(void)state;
	if (!ALLOC_COUNTING)
		return;
	mix_conf_cfg_default(&cfg);
	cfg.mode = MIX_MODE_TRANSCODE;
	cfg.rate = 16000;
	sim_init(&s, &cfg);
	sim_add(&s, MIX_CODEC_G722, 500, 0.1, false);
	sim_add(&s, MIX_CODEC_OPUS, 700, 0.1, false);
	sim_run(&s, 5);
	s.p[0]->rx = realloc(s.p[0]->rx, 16000 * 8 * sizeof(int16_t));
	s.p[0]->rx_cap = 16000 * 8;
	s.p[1]->rx = realloc(s.p[1]->rx, 16000 * 8 * sizeof(int16_t));
	s.p[1]->rx_cap = 16000 * 8;
	assert_non_null(s.p[0]->rx);
	assert_non_null(s.p[1]->rx);
	alloc_count = 0;
	alloc_counting = 1;
	for (t = 0; t < 200; t++)
		sim_step(&s);
	alloc_counting = 0;
	assert_int_equal(alloc_count, 0);
	sim_free(&s);
}

/* the counter itself works (so a 0 above means something) */
static void *volatile sink;

static void test_alloc_counter_works(void **state)
{
	(void)state;
	if (!ALLOC_COUNTING)
		return;
	alloc_count = 0;
	alloc_counting = 1;
	sink = malloc(100);
	alloc_counting = 0;
	free(sink);
	assert_int_equal(alloc_count, 1);
}

int tmix_run_alloc(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_counter_works),
		cmocka_unit_test(test_no_alloc_mix),
		cmocka_unit_test(test_no_alloc_transcode),
	};
	return cmocka_run_group_tests_name("mixer_alloc", tests, NULL, NULL);
}
