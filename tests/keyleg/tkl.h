/** @file tkl.h  Shared helpers of the keyleg unit tests */

#ifndef TKL_H
#define TKL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "keyleg/keyleg.h"

/* Packet buffers in the tests: aligned, with tailroom */
#define TKL_BUF 2048

/** Decode hex (spaces ignored) into out; returns the byte count. */
size_t tkl_hex(const char *hex, uint8_t *out, size_t outsz);
/** Fill a keysalt from hex */
void tkl_ks(struct keyleg_keysalt *ks, const char *hex);
/** Build a 12-byte RTP header + payload of n bytes (value v) at buf */
size_t tkl_rtp(uint8_t *buf, uint16_t seq, uint32_t ts, uint32_t ssrc,
	       size_t n, uint8_t v);
/** Allocate a leg whose rx and tx both use ks (fails the test on error) */
struct keyleg *tkl_leg(enum keyleg_profile p,
		       const struct keyleg_keysalt *rx,
		       const struct keyleg_keysalt *tx,
		       const struct keyleg_opts *opts);
/** A pseudo-random keysalt for a profile (deterministic from seed) */
void tkl_rand_ks(struct keyleg_keysalt *ks, enum keyleg_profile p,
		 uint32_t seed);

int tkl_run_vectors(void);
int tkl_run_packets(void);
int tkl_run_keys(void);
int tkl_run_rekey(void);
int tkl_run_env(void);
int tkl_run_alloc(void);

#endif
