/**
 * @file test_impair.c  The impairment model: loss and burst statistics,
 * reordering by jitter, duplication, queue bounds, determinism
 */

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "tools/tools.h"

#define SPACING_US 20000u

/* Feed n packets 20 ms apart, each carrying its number, and drain what is
 * due; the numbers released go to outv (if given). */
static void drive(struct impair *imp, unsigned n, uint32_t *outv,
		  size_t outcap, size_t *noutp)
{
	uint8_t pkt[8], buf[64];
	size_t len, nout = 0;
	uint64_t t = 1000000;
	unsigned i;

	for (i = 0; i < n; i++, t += SPACING_US) {
		memcpy(pkt, &i, sizeof(i));
		assert_int_equal(impair_push(imp, pkt, sizeof(i), t), 0);
		while (impair_pop(imp, t, buf, sizeof(buf), &len) == 0) {
			assert_int_equal(len, sizeof(uint32_t));
			if (outv && nout < outcap)
				memcpy(&outv[nout], buf, sizeof(uint32_t));
			nout++;
		}
	}
	/* drain the tail */
	t += 10 * 1000000ull;
	while (impair_pop(imp, t, buf, sizeof(buf), &len) == 0) {
		if (outv && nout < outcap)
			memcpy(&outv[nout], buf, sizeof(uint32_t));
		nout++;
	}
	if (noutp)
		*noutp = nout;
}

static void test_rand_seeded(void **state)
{
	uint64_t a = 42, b = 42, c = 43;
	unsigned i, same = 0;
	double sum = 0;

	(void)state;
	for (i = 0; i < 1000; i++) {
		uint64_t x = impair_rand(&a), y = impair_rand(&b);
		uint64_t z = impair_rand(&c);

		assert_true(x == y);
		same += x == z;
	}
	assert_int_equal(same, 0);
	for (i = 0; i < 100000; i++) {
		double u = impair_rand_unit(&a);

		assert_true(u >= 0 && u < 1);
		sum += u;
	}
	assert_true(fabs(sum / 100000 - 0.5) < 0.01);
}

static void test_perfect_network(void **state)
{
	struct impair_cfg cfg = { .seed = 1 };
	struct impair *imp = NULL;
	struct impair_counts c;
	static uint32_t out[5000];
	size_t n, i;

	(void)state;
	assert_int_equal(impair_alloc(&imp, &cfg), 0);
	drive(imp, 5000, out, 5000, &n);
	impair_counts_get(imp, &c);
	assert_int_equal(n, 5000);
	assert_int_equal(c.in, 5000);
	assert_int_equal(c.out, 5000);
	assert_int_equal(c.dropped + c.duplicated + c.reordered + c.overflow,
			 0);
	for (i = 0; i < n; i++)
		assert_int_equal(out[i], i);
	imp = impair_free(imp);
	assert_null(imp);
}

static void check_loss(double loss, double burst, uint64_t seed)
{
	struct impair_cfg cfg = {
		.seed = seed, .loss = loss, .burst = burst
	};
	struct impair *imp = NULL;
	struct impair_counts c;
	const unsigned n = 200000;
	double ratio, mean_burst;

	assert_int_equal(impair_alloc(&imp, &cfg), 0);
	drive(imp, n, NULL, 0, NULL);
	impair_counts_get(imp, &c);
	ratio = (double)c.dropped / n;
	mean_burst = (double)c.dropped / (double)c.bursts;
	print_message("loss %.3f burst %.1f: got %.4f, mean burst %.2f, "
		      "max %llu\n", loss, burst, ratio, mean_burst,
		      (unsigned long long)c.max_burst);
	assert_int_equal(c.in, n);
	assert_int_equal(c.out + c.dropped, n);
	/* 200k packets: the standard error of the ratio is well under
	 * 0.1 % even with bursts, so 10 % relative is a wide margin */
	assert_true(fabs(ratio - loss) < loss * 0.1);
	assert_true(fabs(mean_burst - burst) < burst * 0.1);
	if (burst == 1)
		assert_int_equal(c.max_burst, 1);
	else
		assert_true(c.max_burst > (uint64_t)(2 * burst));
	impair_free(imp);
}

static void test_loss_bursty(void **state)
{
	(void)state;
	check_loss(0.05, 3, 7);
	check_loss(0.05, 1, 8);
	check_loss(0.01, 2, 9);
	check_loss(0.20, 5, 10);
}

static void test_deterministic(void **state)
{
	struct impair_cfg cfg = {
		.seed = 1234, .loss = 0.05, .burst = 3, .jitter_us = 30000,
		.dup = 0.01
	};
	struct impair *a = NULL, *b = NULL;
	static uint32_t oa[12000], ob[12000];
	size_t na, nb;

	(void)state;
	assert_int_equal(impair_alloc(&a, &cfg), 0);
	assert_int_equal(impair_alloc(&b, &cfg), 0);
	drive(a, 10000, oa, 12000, &na);
	drive(b, 10000, ob, 12000, &nb);
	assert_int_equal(na, nb);
	assert_memory_equal(oa, ob, na * sizeof(oa[0]));
	impair_free(a);
	impair_free(b);
	/* another seed: another pattern */
	cfg.seed = 1235;
	assert_int_equal(impair_alloc(&a, &cfg), 0);
	drive(a, 10000, ob, 12000, &nb);
	assert_true(na != nb ||
		    memcmp(oa, ob, na * sizeof(oa[0])) != 0);
	impair_free(a);
}

static void test_jitter_reorders(void **state)
{
	struct impair_cfg cfg = { .seed = 5, .jitter_us = 30000 };
	struct impair *imp = NULL;
	struct impair_counts c;
	static uint32_t out[100000];
	size_t n, i, inv = 0;
	const unsigned total = 100000;
	double expect;

	(void)state;
	assert_int_equal(impair_alloc(&imp, &cfg), 0);
	drive(imp, total, out, total, &n);
	impair_counts_get(imp, &c);
	assert_int_equal(n, total);
	assert_int_equal(c.out, total);
	assert_true(c.max_delay_us <= 30000);
	assert_true(c.max_delay_us > 29000);
	/* with uniform 0..J holds and spacing S < J, a packet overtakes its
	 * predecessor with probability (J-S)^2 / (2 J^2) = 1/18 here */
	expect = total / 18.0;
	print_message("reordered %llu, expected about %.0f\n",
		      (unsigned long long)c.reordered, expect);
	assert_true(fabs((double)c.reordered - expect) < expect * 0.1);
	for (i = 1; i < n; i++)
		inv += out[i] < out[i - 1];
	assert_int_equal(inv, c.reordered);
	impair_free(imp);

	/* jitter below the spacing never reorders */
	cfg.jitter_us = SPACING_US - 1;
	assert_int_equal(impair_alloc(&imp, &cfg), 0);
	drive(imp, 20000, NULL, 0, NULL);
	impair_counts_get(imp, &c);
	assert_int_equal(c.reordered, 0);
	assert_int_equal(c.out, 20000);
	impair_free(imp);
}

static void test_hold_until_due(void **state)
{
	struct impair_cfg cfg = { .seed = 3, .delay_us = 5000 };
	struct impair *imp = NULL;
	uint8_t p = 7, buf[4];
	size_t len;

	(void)state;
	assert_int_equal(impair_alloc(&imp, &cfg), 0);
	assert_int_equal(impair_next_due(imp), -1);
	assert_int_equal(impair_push(imp, &p, 1, 100), 0);
	assert_int_equal(impair_next_due(imp), 5100);
	assert_int_equal(impair_pop(imp, 5099, buf, sizeof(buf), &len),
			 ENOENT);
	assert_int_equal(impair_pop(imp, 5100, buf, sizeof(buf), &len), 0);
	assert_int_equal(len, 1);
	assert_int_equal(buf[0], 7);
	assert_int_equal(impair_pop(imp, 9999, buf, sizeof(buf), &len),
			 ENOENT);
	impair_free(imp);
}

static void test_duplication(void **state)
{
	struct impair_cfg cfg = { .seed = 11, .dup = 0.01,
				  .jitter_us = 30000 };
	struct impair *imp = NULL;
	struct impair_counts c;
	const unsigned n = 100000;
	size_t nout;

	(void)state;
	assert_int_equal(impair_alloc(&imp, &cfg), 0);
	drive(imp, n, NULL, 0, &nout);
	impair_counts_get(imp, &c);
	print_message("duplicated %llu of %u\n",
		      (unsigned long long)c.duplicated, n);
	/* binomial(1e5, 0.01): sd ~ 31; 15 % is about 5 sd */
	assert_true(fabs((double)c.duplicated - 1000) < 150);
	assert_int_equal(nout, n + c.duplicated);
	assert_int_equal(c.out, nout);
	impair_free(imp);
}

static void test_queue_bound(void **state)
{
	struct impair_cfg cfg = { .seed = 1, .delay_us = 1000000,
				  .queue = 4 };
	struct impair *imp = NULL;
	struct impair_counts c;
	uint8_t big[IMPAIR_PKT_MAX + 1] = { 0 }, buf[2];
	size_t len;
	unsigned i;

	(void)state;
	assert_int_equal(impair_alloc(&imp, &cfg), 0);
	for (i = 0; i < 10; i++)
		assert_int_equal(impair_push(imp, big, 8, i), 0);
	assert_int_equal(impair_push(imp, big, sizeof(big), 0), EMSGSIZE);
	impair_counts_get(imp, &c);
	assert_int_equal(c.overflow, 6);
	/* too small a buffer: the copy is dropped, not kept forever */
	assert_int_equal(impair_pop(imp, 2000000, buf, sizeof(buf), &len),
			 ENOSPC);
	impair_counts_get(imp, &c);
	assert_int_equal(c.overflow, 7);
	impair_free(imp);
}

static void test_bad_config(void **state)
{
	struct impair_cfg cfg;
	struct impair *imp = NULL;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.loss = 1.0;
	assert_int_equal(impair_alloc(&imp, &cfg), EINVAL);
	cfg.loss = -0.1;
	assert_int_equal(impair_alloc(&imp, &cfg), EINVAL);
	cfg.loss = 0.1;
	cfg.burst = 0.5;
	assert_int_equal(impair_alloc(&imp, &cfg), EINVAL);
	cfg.burst = 2;
	cfg.dup = 1.5;
	assert_int_equal(impair_alloc(&imp, &cfg), EINVAL);
	assert_int_equal(impair_alloc(NULL, &cfg), EINVAL);
	assert_null(imp);
	assert_null(impair_free(NULL));
}

static void test_json(void **state)
{
	struct impair_counts c;
	char buf[512], small[16];

	(void)state;
	memset(&c, 0, sizeof(c));
	c.in = 100;
	c.dropped = 5;
	c.reordered = 3;
	assert_int_equal(impair_counts_json(&c, buf, sizeof(buf)), 0);
	assert_non_null(strstr(buf, "\"in\": 100,"));
	assert_non_null(strstr(buf, "\"dropped\": 5,"));
	assert_non_null(strstr(buf, "\"reordered\": 3,"));
	assert_int_equal(impair_counts_json(&c, small, sizeof(small)),
			 ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rand_seeded),
		cmocka_unit_test(test_perfect_network),
		cmocka_unit_test(test_loss_bursty),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_jitter_reorders),
		cmocka_unit_test(test_hold_until_due),
		cmocka_unit_test(test_duplication),
		cmocka_unit_test(test_queue_bound),
		cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_json),
	};

	return cmocka_run_group_tests_name("impair", tests, NULL, NULL);
}
