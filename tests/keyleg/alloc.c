/** @file alloc.c  No allocation on the SRTP packet path, every profile */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "tests/mock/alloc_count.h"

#include "tkl.h"

/* allocations are counted by tests/mock/alloc_count.c */

#define ROUNDS 200

/*
 * One round on a leg whose rx and tx share a key: an RTP packet and an
 * RTCP packet protected and unprotected, and a tampered RTP packet
 * rejected (the drop path counts too).
 */
static void round_trip(struct keyleg *kl, uint16_t seq, uint8_t *buf)
{
	size_t len;
	enum keyleg_status s;

	len = tkl_rtp(buf, seq, (uint32_t)seq * 160, 0x1234, 160, 0x5a);
	assert_int_equal(keyleg_protect_rtp(kl, buf, &len, TKL_BUF),
			 KEYLEG_OK);
	assert_int_equal(keyleg_unprotect_rtp(kl, buf, &len, 0), KEYLEG_OK);
	assert_int_equal(len, 12 + 160);
	assert_int_equal(buf[12], 0x5a);

	len = tkl_rtp(buf, (uint16_t)(seq + 30000), 0, 0x5678, 80, 0x33);
	assert_int_equal(keyleg_protect_rtp(kl, buf, &len, TKL_BUF),
			 KEYLEG_OK);
	buf[20] ^= 1;
	s = keyleg_unprotect_rtp(kl, buf, &len, 0);
	assert_int_equal(s, KEYLEG_ERR_AUTH);

	/* a receiver report: V=2, PT=201, length 1, SSRC */
	memset(buf, 0, 8);
	buf[0] = 0x80;
	buf[1] = 201;
	buf[3] = 1;
	buf[7] = 0x42;
	len = 8;
	assert_int_equal(keyleg_protect_rtcp(kl, buf, &len, TKL_BUF),
			 KEYLEG_OK);
	assert_int_equal(keyleg_unprotect_rtcp(kl, buf, &len, 0), KEYLEG_OK);
	assert_int_equal(len, 8);
}

/* allocations in ROUNDS rounds on a warmed-up leg of profile p */
static unsigned long count_profile(enum keyleg_profile p)
{
	struct keyleg_keysalt ks;
	struct keyleg *kl;
	uint32_t w[TKL_BUF / 4];
	uint16_t seq;
	unsigned long n;

	tkl_rand_ks(&ks, p, 77 + (uint32_t)p);
	kl = tkl_leg(p, &ks, &ks, NULL);
	/* warm up: the first packets of a stream set up its state */
	for (seq = 1; seq <= 4; seq++)
		round_trip(kl, seq, (uint8_t *)w);
	alloc_count = 0;
	alloc_counting = 1;
	for (; seq <= 4 + ROUNDS; seq++)
		round_trip(kl, seq, (uint8_t *)w);
	alloc_counting = 0;
	n = alloc_count;
	keyleg_free(kl);
	return n;
}

static void t_no_alloc_per_packet(void **state)
{
	enum keyleg_profile p;
	unsigned long n[KEYLEG_PROFILE_COUNT];
	int bad = 0;

	(void)state;
	if (!ALLOC_COUNTING) {
		print_message("allocator owned by the sanitizer: "
			      "counting not possible in this build\n");
		skip();
		return;
	}
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++) {
		n[p] = count_profile(p);
		print_message("%-28s %lu allocations in %d rounds "
			      "(rtp + tampered rtp + rtcp)\n",
			      keyleg_profile_name(p), n[p], ROUNDS);
		if (n[p])
			bad = 1;
	}
	assert_int_equal(bad, 0);
}

/* the counter itself works (so a 0 above means something) */
static void *volatile sink;

static void t_alloc_counter_works(void **state)
{
	(void)state;
	if (!ALLOC_COUNTING) {
		skip();
		return;
	}
	alloc_count = 0;
	alloc_counting = 1;
	sink = malloc(100);
	alloc_counting = 0;
	free(sink);
	assert_int_equal(alloc_count, 1);
}

int tkl_run_alloc(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_alloc_counter_works),
		cmocka_unit_test(t_no_alloc_per_packet),
	};
	return cmocka_run_group_tests_name("keyleg_alloc", tests, NULL, NULL);
}
