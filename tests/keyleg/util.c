/** @file util.c  Helpers of the keyleg unit tests */

#include <string.h>

#include "tkl.h"

static int nib(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

size_t tkl_hex(const char *hex, uint8_t *out, size_t outsz)
{
	size_t n = 0;
	int hi = -1, v;

	for (; *hex; hex++) {
		if (*hex == ' ' || *hex == '\n')
			continue;
		v = nib(*hex);
		assert_true(v >= 0);
		if (hi < 0) {
			hi = v;
			continue;
		}
		assert_true(n < outsz);
		out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	assert_int_equal(hi, -1);
	return n;
}

void tkl_ks(struct keyleg_keysalt *ks, const char *hex)
{
	memset(ks, 0, sizeof(*ks));
	ks->len = tkl_hex(hex, ks->b, sizeof(ks->b));
}

size_t tkl_rtp(uint8_t *buf, uint16_t seq, uint32_t ts, uint32_t ssrc,
	       size_t n, uint8_t v)
{
	buf[0] = 0x80;
	buf[1] = 0x0f;
	buf[2] = (uint8_t)(seq >> 8);
	buf[3] = (uint8_t)seq;
	buf[4] = (uint8_t)(ts >> 24);
	buf[5] = (uint8_t)(ts >> 16);
	buf[6] = (uint8_t)(ts >> 8);
	buf[7] = (uint8_t)ts;
	buf[8] = (uint8_t)(ssrc >> 24);
	buf[9] = (uint8_t)(ssrc >> 16);
	buf[10] = (uint8_t)(ssrc >> 8);
	buf[11] = (uint8_t)ssrc;
	memset(buf + 12, v, n);
	return 12 + n;
}

struct keyleg *tkl_leg(enum keyleg_profile p,
		       const struct keyleg_keysalt *rx,
		       const struct keyleg_keysalt *tx,
		       const struct keyleg_opts *opts)
{
	struct keyleg *kl = NULL;

	assert_int_equal(keyleg_alloc(&kl, p, rx, tx, opts), 0);
	assert_non_null(kl);
	return kl;
}

void tkl_rand_ks(struct keyleg_keysalt *ks, enum keyleg_profile p,
		 uint32_t seed)
{
	uint32_t x = seed * 2654435761u + 1;
	size_t i;

	memset(ks, 0, sizeof(*ks));
	ks->len = keyleg_profile_key_len(p) + keyleg_profile_salt_len(p);
	for (i = 0; i < ks->len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		ks->b[i] = (uint8_t)x;
	}
}
