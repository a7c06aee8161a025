/** @file packets.c  Packet path: wrap, replay, tampering, malformed input */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tkl.h"

/* A participant leg and a bridge leg keyed from one leg key */
static void pair(enum keyleg_profile p, struct keyleg **part,
		 struct keyleg **bridge, const struct keyleg_opts *o)
{
	struct keyleg_keysalt rx, tx;
	uint8_t leg[32];
	size_t i;

	for (i = 0; i < sizeof(leg); i++)
		leg[i] = (uint8_t)(i * 7 + p);
	assert_int_equal(keyleg_derive(leg, sizeof(leg), p,
				       KEYLEG_FLOW_CONFERENCE,
				       KEYLEG_SIDE_PARTICIPANT, &rx, &tx), 0);
	*part = tkl_leg(p, &rx, &tx, o);
	assert_int_equal(keyleg_derive(leg, sizeof(leg), p,
				       KEYLEG_FLOW_CONFERENCE,
				       KEYLEG_SIDE_BRIDGE, &rx, &tx), 0);
	*bridge = tkl_leg(p, &rx, &tx, o);
}

/* Send one packet from a to b; returns b's status, checks the payload */
static enum keyleg_status send1(struct keyleg *a, struct keyleg *b,
				uint16_t seq, uint32_t ssrc, uint8_t v)
{
	uint32_t w[TKL_BUF / 4], r[TKL_BUF / 4];
	uint8_t *buf = (uint8_t *)w, *ref = (uint8_t *)r;
	size_t n, len;
	enum keyleg_status st;

	n = tkl_rtp(ref, seq, seq * 160u, ssrc, 40, v);
	memcpy(buf, ref, n);
	len = n;
	assert_int_equal(keyleg_protect_rtp(a, buf, &len, TKL_BUF),
			 KEYLEG_OK);
	st = keyleg_unprotect_rtp(b, buf, &len, 0);
	if (st == KEYLEG_OK) {
		assert_int_equal(len, n);
		assert_memory_equal(buf, ref, n);
	}
	return st;
}

/*
 * 65,600 packets each way from sequence number 0: both directions pass
 * the wrap, agree on every packet and end with ROC 1.  The same plaintext
 * before and after the wrap must encrypt differently (the ROC is in the
 * IV), which shows the ROC really moved.
 */
static void t_wrap(void **state)
{
	static const enum keyleg_profile ps[] = {
		KEYLEG_AES_CM_128_HMAC_SHA1_80, KEYLEG_AEAD_AES_128_GCM,
	};
	size_t k;

	(void)state;
	for (k = 0; k < sizeof(ps) / sizeof(ps[0]); k++) {
		struct keyleg *pa, *br;
		struct keyleg_stats st;
		uint32_t i, roc, w[TKL_BUF / 4];
		uint8_t *buf = (uint8_t *)w, before[80];
		size_t len;

		pair(ps[k], &pa, &br, NULL);
		for (i = 0; i < 65600; i++) {
			uint16_t seq = (uint16_t)i;

			if (i == 10 || i == 65536 + 10) {
				/* same header and payload, ROC 0 then 1 */
				len = tkl_rtp(buf, seq, 0, 0xa1, 40, 0x77);
				assert_int_equal(keyleg_protect_rtp(pa, buf,
					&len, TKL_BUF), KEYLEG_OK);
				if (i == 10)
					memcpy(before, buf, len);
				else
					assert_memory_not_equal(before, buf,
								len);
				assert_int_equal(keyleg_unprotect_rtp(br, buf,
					&len, 0), KEYLEG_OK);
				assert_int_equal(buf[12], 0x77);
			}
			else
				assert_int_equal(send1(pa, br, seq, 0xa1,
						       (uint8_t)i), KEYLEG_OK);
			assert_int_equal(send1(br, pa, seq, 0xb2,
					       (uint8_t)~i), KEYLEG_OK);
			if (i == 65535) {
				assert_int_equal(keyleg_rx_roc(br, 0xa1,
							       &roc), 0);
				assert_int_equal(roc, 0);
			}
		}
		assert_int_equal(keyleg_tx_roc(pa, 0xa1, &roc), 0);
		assert_int_equal(roc, 1);
		assert_int_equal(keyleg_rx_roc(br, 0xa1, &roc), 0);
		assert_int_equal(roc, 1);
		assert_int_equal(keyleg_tx_roc(br, 0xb2, &roc), 0);
		assert_int_equal(roc, 1);
		assert_int_equal(keyleg_rx_roc(pa, 0xb2, &roc), 0);
		assert_int_equal(roc, 1);
		assert_int_equal(keyleg_rx_roc(pa, 0xdead, &roc), ENOENT);
		keyleg_stats(br, &st);
		assert_int_equal(st.rtp_in, 65600);
		assert_int_equal(st.rtp_out, 65600);
		keyleg_free(pa);
		keyleg_free(br);
	}
}

/* Protect a packet into slot i of an array of held packets */
struct held {
	uint32_t w[64 / 4];
	size_t len;
};

static void hold(struct keyleg *kl, struct held *h, uint16_t seq)
{
	uint8_t *buf = (uint8_t *)h->w;

	h->len = tkl_rtp(buf, seq, 0, 0x55, 20, (uint8_t)seq);
	assert_int_equal(keyleg_protect_rtp(kl, buf, &h->len, sizeof(h->w)),
			 KEYLEG_OK);
}

static enum keyleg_status deliver(struct keyleg *kl, const struct held *h)
{
	uint32_t w[64 / 4];
	size_t len = h->len;

	memcpy(w, h->w, h->len);
	return keyleg_unprotect_rtp(kl, (uint8_t *)w, &len, 0);
}

/* Reordering inside the window is fine; a replay is not */
static void t_reorder_replay(void **state)
{
	static const int order[16] = {
		3, 0, 1, 7, 2, 15, 9, 4, 5, 14, 6, 13, 8, 12, 10, 11,
	};
	struct keyleg *pa, *br;
	struct held h[16];
	struct keyleg_stats st;
	int i;

	(void)state;
	pair(KEYLEG_AES_CM_128_HMAC_SHA1_80, &pa, &br, NULL);
	for (i = 0; i < 16; i++)
		hold(pa, &h[i], (uint16_t)(1000 + i));
	for (i = 0; i < 16; i++)
		assert_int_equal(deliver(br, &h[order[i]]), KEYLEG_OK);
	for (i = 0; i < 16; i++)
		assert_int_equal(deliver(br, &h[i]), KEYLEG_ERR_REPLAY);
	keyleg_stats(br, &st);
	assert_int_equal(st.rtp_in, 16);
	assert_int_equal(st.drops[KEYLEG_ERR_REPLAY], 16);
	keyleg_free(pa);
	keyleg_free(br);
}

/* Window size: 200 behind fails the default 128, passes a 1024 window */
static void t_window(void **state)
{
	struct keyleg_opts o;
	int big;

	(void)state;
	for (big = 0; big < 2; big++) {
		struct keyleg *pa, *br;
		struct held old, cur;
		uint16_t s;

		memset(&o, 0, sizeof(o));
		o.replay_window = big ? 1024 : 0;
		pair(KEYLEG_AEAD_AES_256_GCM, &pa, &br, &o);
		hold(pa, &old, 5000);
		for (s = 5001; s <= 5200; s++) {
			hold(pa, &cur, s);
			assert_int_equal(deliver(br, &cur), KEYLEG_OK);
		}
		assert_int_equal(deliver(br, &old),
				 big ? KEYLEG_OK : KEYLEG_ERR_REPLAY);
		keyleg_free(pa);
		keyleg_free(br);
	}
}

/* Flip one bit in every byte of a protected packet, RTP and RTCP */
static void t_bitflip(void **state)
{
	enum keyleg_profile p;

	(void)state;
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++) {
		struct keyleg *pa, *br;
		uint32_t w[TKL_BUF / 4], o[TKL_BUF / 4];
		uint8_t *buf = (uint8_t *)w, *orig = (uint8_t *)o;
		size_t n, len, i;
		int rtcp;
		struct keyleg_stats st;
		enum keyleg_status s;

		pair(p, &pa, &br, NULL);
		for (rtcp = 0; rtcp < 2; rtcp++) {
			n = tkl_rtp(orig, 77, 1, 0xc0ffee, 40, 0x11);
			if (rtcp)
				memcpy(orig, "\x81\xc8\x00\x0c", 4);
			s = rtcp ? keyleg_protect_rtcp(pa, orig, &n, TKL_BUF) :
				keyleg_protect_rtp(pa, orig, &n, TKL_BUF);
			assert_int_equal(s, KEYLEG_OK);
			for (i = 0; i < n; i++) {
				memcpy(buf, orig, n);
				buf[i] ^= (uint8_t)(1u << (i % 8));
				len = n;
				s = rtcp ?
					keyleg_unprotect_rtcp(br, buf, &len, 0) :
					keyleg_unprotect_rtp(br, buf, &len, 0);
				if (s == KEYLEG_OK)
					fail_msg("%s %s byte %zu accepted",
						 keyleg_profile_name(p),
						 rtcp ? "rtcp" : "rtp", i);
			}
			/* the untouched packet still passes */
			memcpy(buf, orig, n);
			len = n;
			s = rtcp ? keyleg_unprotect_rtcp(br, buf, &len, 0) :
				keyleg_unprotect_rtp(br, buf, &len, 0);
			assert_int_equal(s, KEYLEG_OK);
		}
		keyleg_stats(br, &st);
		assert_int_equal(st.rtp_in, 1);
		assert_int_equal(st.rtcp_in, 1);
		assert_true(st.drops[KEYLEG_ERR_AUTH] > 0);
		keyleg_free(pa);
		keyleg_free(br);
	}
}

static void t_wrong_key(void **state)
{
	enum keyleg_profile p;

	(void)state;
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++) {
		struct keyleg_keysalt a, b;
		struct keyleg *ka, *kb;
		uint32_t w[TKL_BUF / 4];
		uint8_t *buf = (uint8_t *)w;
		size_t len;

		tkl_rand_ks(&a, p, 1);
		b = a;
		b.b[0] ^= 1;       /* one bit of the master key */
		ka = tkl_leg(p, &a, &a, NULL);
		kb = tkl_leg(p, &b, &b, NULL);
		len = tkl_rtp(buf, 1, 1, 1, 30, 0);
		assert_int_equal(keyleg_protect_rtp(ka, buf, &len, TKL_BUF),
				 KEYLEG_OK);
		assert_int_equal(keyleg_unprotect_rtp(kb, buf, &len, 0),
				 KEYLEG_ERR_AUTH);
		len = tkl_rtp(buf, 1, 1, 1, 30, 0);
		buf[1] = 0xc8;
		assert_int_equal(keyleg_protect_rtcp(ka, buf, &len, TKL_BUF),
				 KEYLEG_OK);
		assert_int_equal(keyleg_unprotect_rtcp(kb, buf, &len, 0),
				 KEYLEG_ERR_AUTH);
		/* the salt matters too */
		b = a;
		b.b[b.len - 1] ^= 0x80;
		keyleg_free(kb);
		kb = tkl_leg(p, &b, &b, NULL);
		len = tkl_rtp(buf, 2, 1, 1, 30, 0);
		assert_int_equal(keyleg_protect_rtp(ka, buf, &len, TKL_BUF),
				 KEYLEG_OK);
		assert_int_equal(keyleg_unprotect_rtp(kb, buf, &len, 0),
				 KEYLEG_ERR_AUTH);
		keyleg_free(ka);
		keyleg_free(kb);
	}
}

/* Unprotect a copy of pkt[0..n) in a heap buffer of exactly n bytes */
static enum keyleg_status exact(struct keyleg *kl, const uint8_t *pkt,
				size_t n, int rtcp)
{
	uint8_t *b = malloc(n ? n : 1);
	enum keyleg_status s;
	size_t len = n;

	assert_non_null(b);
	memcpy(b, pkt, n);
	s = rtcp ? keyleg_unprotect_rtcp(kl, b, &len, 0) :
		keyleg_unprotect_rtp(kl, b, &len, 0);
	free(b);
	return s;
}

/* Every truncation and an extended packet are refused, inside bounds */
static void t_truncated(void **state)
{
	enum keyleg_profile p;

	(void)state;
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++) {
		struct keyleg *pa, *br;
		uint32_t w[TKL_BUF / 4];
		uint8_t *buf = (uint8_t *)w;
		size_t n, k;
		int rtcp;

		pair(p, &pa, &br, NULL);
		for (rtcp = 0; rtcp < 2; rtcp++) {
			n = tkl_rtp(buf, 9, 9, 9, 24, 0x42);
			/* with a header extension and a CSRC for RTP */
			if (!rtcp) {
				memmove(buf + 24, buf + 12, 24);
				memcpy(buf + 12, "\x00\x00\x00\x01"
				       "\xbe\xde\x00\x01\x10\x85\x00\x00", 12);
				buf[0] = 0x91;
				n += 12;
			}
			else
				buf[1] = 0xc8;
			assert_int_equal(rtcp ?
				keyleg_protect_rtcp(pa, buf, &n, TKL_BUF) :
				keyleg_protect_rtp(pa, buf, &n, TKL_BUF),
				KEYLEG_OK);
			for (k = 0; k < n; k++)
				assert_int_not_equal(exact(br, buf, k, rtcp),
						     KEYLEG_OK);
			buf[n] = 0;
			assert_int_not_equal(exact(br, buf, n + 1, rtcp),
					     KEYLEG_OK);
			assert_int_equal(exact(br, buf, n, rtcp), KEYLEG_OK);
		}
		keyleg_free(pa);
		keyleg_free(br);
	}
}

/* Oversized, no room, and headers that point past the end */
static void t_malformed(void **state)
{
	struct keyleg_keysalt ks;
	struct keyleg *kl;
	uint8_t *big;
	uint32_t w[TKL_BUF / 4];
	uint8_t *buf = (uint8_t *)w;
	size_t len;

	(void)state;
	tkl_rand_ks(&ks, KEYLEG_AES_CM_128_HMAC_SHA1_80, 5);
	kl = tkl_leg(KEYLEG_AES_CM_128_HMAC_SHA1_80, &ks, &ks, NULL);
	big = calloc(1, KEYLEG_MAX_PACKET + 1 + KEYLEG_TAILROOM);
	assert_non_null(big);
	len = tkl_rtp(big, 1, 1, 1, KEYLEG_MAX_PACKET + 1 - 12, 0);
	assert_int_equal(keyleg_protect_rtp(kl, big, &len,
					    len + KEYLEG_TAILROOM),
			 KEYLEG_ERR_MALFORMED);
	assert_int_equal(keyleg_unprotect_rtp(kl, big, &len, 0),
			 KEYLEG_ERR_MALFORMED);
	big[1] = 0xc8;
	assert_int_equal(keyleg_unprotect_rtcp(kl, big, &len, 0),
			 KEYLEG_ERR_MALFORMED);
	assert_int_equal(keyleg_protect_rtcp(kl, big, &len,
					     len + KEYLEG_TAILROOM),
			 KEYLEG_ERR_MALFORMED);
	free(big);

	/* no tailroom */
	len = tkl_rtp(buf, 1, 1, 1, 20, 0);
	assert_int_equal(keyleg_protect_rtp(kl, buf, &len, len + 9),
			 KEYLEG_ERR_NOSPACE);
	assert_int_equal(keyleg_protect_rtp(kl, buf, &len, len + 10),
			 KEYLEG_OK);
	len = tkl_rtp(buf, 1, 1, 1, 20, 0);
	buf[1] = 0xc8;
	assert_int_equal(keyleg_protect_rtcp(kl, buf, &len, len + 13),
			 KEYLEG_ERR_NOSPACE);
	/* CSRC count past the end; extension length past the end */
	len = tkl_rtp(buf, 2, 1, 1, 20, 0);
	buf[0] = 0x8f;
	assert_int_equal(keyleg_protect_rtp(kl, buf, &len, TKL_BUF),
			 KEYLEG_ERR_MALFORMED);
	assert_int_equal(keyleg_unprotect_rtp(kl, buf, &len, 0),
			 KEYLEG_ERR_MALFORMED);
	len = tkl_rtp(buf, 2, 1, 1, 20, 0);
	buf[0] = 0x90;
	buf[14] = 0xff;
	assert_int_equal(keyleg_protect_rtp(kl, buf, &len, TKL_BUF),
			 KEYLEG_ERR_MALFORMED);
	assert_int_equal(keyleg_unprotect_rtp(kl, buf, &len, 0),
			 KEYLEG_ERR_MALFORMED);
	/* not version 2 */
	len = tkl_rtp(buf, 3, 1, 1, 20, 0);
	buf[0] = 0x40;
	assert_int_equal(keyleg_protect_rtp(kl, buf, &len, TKL_BUF),
			 KEYLEG_ERR_MALFORMED);
	len = 0;
	assert_int_equal(keyleg_unprotect_rtcp(kl, buf, &len, 0),
			 KEYLEG_ERR_MALFORMED);
	keyleg_free(kl);
}

/*
 * RFC 6904: the audio level (RFC 6464, id 1) is encrypted when listed and
 * left alone otherwise; id 2 is never listed.  Both directions agree.
 */
static void t_enc_ext(void **state)
{
	static const enum keyleg_profile ps[] = {
		KEYLEG_AES_CM_128_HMAC_SHA1_80, KEYLEG_AEAD_AES_128_GCM,
	};
	size_t k;
	int listed;

	(void)state;
	for (k = 0; k < 2; k++) {
		for (listed = 0; listed < 2; listed++) {
			struct keyleg_opts o;
			struct keyleg *pa, *br;
			uint32_t w[TKL_BUF / 4];
			uint8_t *buf = (uint8_t *)w, ref[64];
			size_t n, len;
			uint16_t seq;
			int changed = 0;

			memset(&o, 0, sizeof(o));
			o.enc_ext[0] = 1;
			o.n_enc_ext = (size_t)listed;
			pair(ps[k], &pa, &br, &o);
			for (seq = 1; seq <= 8; seq++) {
				n = tkl_rtp(ref, seq, 0, 0x99, 28, 0xee);
				memmove(ref + 20, ref + 12, 20);
				memcpy(ref + 12, "\xbe\xde\x00\x01"
				       "\x10\x85\x20\x42", 8);
				ref[0] = 0x90;
				n += 8;
				memcpy(buf, ref, n);
				len = n;
				assert_int_equal(keyleg_protect_rtp(pa, buf,
					&len, TKL_BUF), KEYLEG_OK);
				assert_memory_equal(buf + 12, ref + 12, 5);
				changed += buf[17] != 0x85;
				assert_memory_equal(buf + 18, ref + 18, 2);
				assert_int_equal(keyleg_unprotect_rtp(br, buf,
					&len, 0), KEYLEG_OK);
				assert_int_equal(len, n);
				assert_memory_equal(buf, ref, n);
			}
			if (listed)
				assert_true(changed >= 7);
			else
				assert_int_equal(changed, 0);
			keyleg_free(pa);
			keyleg_free(br);
		}
	}
}

/* Two SSRCs on one leg each get their own stream */
static void t_two_ssrc(void **state)
{
	struct keyleg *pa, *br;
	uint16_t s;

	(void)state;
	pair(KEYLEG_AES_CM_128_HMAC_SHA1_32, &pa, &br, NULL);
	for (s = 0; s < 20; s++) {
		assert_int_equal(send1(pa, br, s, 1, 0), KEYLEG_OK);
		assert_int_equal(send1(pa, br, (uint16_t)(s + 30000), 2, 0),
				 KEYLEG_OK);
	}
	keyleg_free(pa);
	keyleg_free(br);
}

/* Legs on different threads share nothing but libsrtp2's crypto kernel */
static void *thread_main(void *arg)
{
	enum keyleg_profile p = (enum keyleg_profile)(uintptr_t)arg;
	struct keyleg *pa, *br;
	uint16_t s;
	uintptr_t bad = 0;

	if (keyleg_init())
		return (void *)1;
	pair(p, &pa, &br, NULL);
	for (s = 0; s < 2000; s++)
		bad += send1(pa, br, s, 5, (uint8_t)s) != KEYLEG_OK;
	keyleg_free(pa);
	keyleg_free(br);
	return (void *)bad;
}

static void t_threads(void **state)
{
	pthread_t th[KEYLEG_PROFILE_COUNT];
	void *ret;
	int i;

	(void)state;
	for (i = 0; i < KEYLEG_PROFILE_COUNT; i++)
		assert_int_equal(pthread_create(&th[i], NULL, thread_main,
						(void *)(uintptr_t)i), 0);
	for (i = 0; i < KEYLEG_PROFILE_COUNT; i++) {
		assert_int_equal(pthread_join(th[i], &ret), 0);
		assert_null(ret);
	}
}

static void t_alloc_args(void **state)
{
	struct keyleg_keysalt ks, k2;
	struct keyleg_opts o;
	struct keyleg *kl = NULL;

	(void)state;
	tkl_rand_ks(&ks, KEYLEG_AEAD_AES_128_GCM, 9);
	k2 = ks;
	k2.len = 30;
	assert_int_equal(keyleg_alloc(&kl, KEYLEG_AEAD_AES_128_GCM, &ks, &k2,
				      NULL), EINVAL);
	assert_int_equal(keyleg_alloc(&kl, KEYLEG_PROFILE_COUNT, &ks, &ks,
				      NULL), EINVAL);
	assert_int_equal(keyleg_alloc(&kl, KEYLEG_AEAD_AES_128_GCM, NULL,
				      &ks, NULL), EINVAL);
	memset(&o, 0, sizeof(o));
	o.n_enc_ext = 1;
	o.enc_ext[0] = 15;
	assert_int_equal(keyleg_alloc(&kl, KEYLEG_AEAD_AES_128_GCM, &ks, &ks,
				      &o), EINVAL);
	o.enc_ext[0] = 0;
	assert_int_equal(keyleg_alloc(&kl, KEYLEG_AEAD_AES_128_GCM, &ks, &ks,
				      &o), EINVAL);
	o.n_enc_ext = KEYLEG_MAX_ENC_EXT + 1;
	assert_int_equal(keyleg_alloc(&kl, KEYLEG_AEAD_AES_128_GCM, &ks, &ks,
				      &o), EINVAL);
	memset(&o, 0, sizeof(o));
	o.replay_window = 63;
	assert_int_equal(keyleg_alloc(&kl, KEYLEG_AEAD_AES_128_GCM, &ks, &ks,
				      &o), EINVAL);
	o.replay_window = 0x8000;
	assert_int_equal(keyleg_alloc(&kl, KEYLEG_AEAD_AES_128_GCM, &ks, &ks,
				      &o), EINVAL);
	assert_null(kl);
	o.replay_window = 64;
	assert_int_equal(keyleg_alloc(&kl, KEYLEG_AEAD_AES_128_GCM, &ks, &ks,
				      &o), 0);
	assert_int_equal(keyleg_profile(kl), KEYLEG_AEAD_AES_128_GCM);
	kl = keyleg_free(kl);
	assert_null(kl);
	assert_null(keyleg_free(NULL));
}

int tkl_run_packets(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_wrap),
		cmocka_unit_test(t_reorder_replay),
		cmocka_unit_test(t_window),
		cmocka_unit_test(t_bitflip),
		cmocka_unit_test(t_wrong_key),
		cmocka_unit_test(t_truncated),
		cmocka_unit_test(t_malformed),
		cmocka_unit_test(t_enc_ext),
		cmocka_unit_test(t_two_ssrc),
		cmocka_unit_test(t_threads),
		cmocka_unit_test(t_alloc_args),
	};

	return cmocka_run_group_tests_name("keyleg_packets", tests, NULL,
					   NULL);
}
