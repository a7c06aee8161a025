/** @file alloc.c  No allocation on the SRTP packet path, every profile */

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "tkl.h"

/*
 * The test program replaces malloc and friends (forwarding to glibc's
 * own) so it counts every allocation made by anyone in the process --
 * keyleg, libsrtp2 and OpenSSL's providers included -- while counting
 * is on.  Under AddressSanitizer or ThreadSanitizer the allocator belongs
 * to the sanitizer, so there the count cannot be taken and the test says
 * so.
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALLOC_COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ALLOC_COUNTING 0
#endif
#endif
#ifndef ALLOC_COUNTING
#define ALLOC_COUNTING 1
#endif

static volatile int counting;
static volatile unsigned long allocs;

#if ALLOC_COUNTING
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t a, size_t n);
void __libc_free(void *p);
void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void *memalign(size_t a, size_t n);
int posix_memalign(void **pp, size_t a, size_t n);
void *aligned_alloc(size_t a, size_t n);
void free(void *p);

void *malloc(size_t n)
{
	if (counting)
		allocs++;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	if (counting)
		allocs++;
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	if (counting)
		allocs++;
	return __libc_realloc(p, n);
}

void *memalign(size_t a, size_t n)
{
	if (counting)
		allocs++;
	return __libc_memalign(a, n);
}

int posix_memalign(void **pp, size_t a, size_t n)
{
	if (counting)
		allocs++;
	*pp = __libc_memalign(a, n);
	return *pp ? 0 : 12;
}

void *aligned_alloc(size_t a, size_t n)
{
	if (counting)
		allocs++;
	return __libc_memalign(a, n);
}

void free(void *p)
{
	__libc_free(p);
}
#endif

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
	allocs = 0;
	counting = 1;
	for (; seq <= 4 + ROUNDS; seq++)
		round_trip(kl, seq, (uint8_t *)w);
	counting = 0;
	n = allocs;
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
	allocs = 0;
	counting = 1;
	sink = malloc(100);
	counting = 0;
	free(sink);
	assert_int_equal(allocs, 1);
}

int tkl_run_alloc(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_alloc_counter_works),
		cmocka_unit_test(t_no_alloc_per_packet),
	};
	return cmocka_run_group_tests_name("keyleg_alloc", tests, NULL, NULL);
}
