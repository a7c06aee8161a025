/** @file rekey.c  Rekey in place: overlap limits, ROC carried over */

#include <errno.h>
#include <string.h>

#include <srtp2/srtp.h>

#include "tkl.h"

struct ends {
	struct keyleg_keysalt up1, down1, up2, down2;
	struct keyleg *pa, *br;    /* participant, bridge */
};

/* up = participant-to-bridge, down = bridge-to-participant */
static void ends_init(struct ends *e, enum keyleg_profile p,
		      const struct keyleg_opts *o)
{
	tkl_rand_ks(&e->up1, p, 11);
	tkl_rand_ks(&e->down1, p, 12);
	tkl_rand_ks(&e->up2, p, 13);
	tkl_rand_ks(&e->down2, p, 14);
	e->pa = tkl_leg(p, &e->down1, &e->up1, o);
	e->br = tkl_leg(p, &e->up1, &e->down1, o);
}

static void ends_free(struct ends *e)
{
	e->pa = keyleg_free(e->pa);
	e->br = keyleg_free(e->br);
}

struct pkt {
	uint32_t w[128 / 4];
	size_t len;
};

static void mk(struct keyleg *from, struct pkt *p, uint16_t seq,
	       uint32_t ssrc)
{
	uint8_t *b = (uint8_t *)p->w;

	p->len = tkl_rtp(b, seq, seq * 160u, ssrc, 40, (uint8_t)(seq ^ 0x5a));
	assert_int_equal(keyleg_protect_rtp(from, b, &p->len, sizeof(p->w)),
			 KEYLEG_OK);
}

static enum keyleg_status rcv(struct keyleg *to, const struct pkt *p,
			      uint64_t now)
{
	struct pkt c = *p;
	enum keyleg_status st;
	uint8_t *b = (uint8_t *)c.w;

	st = keyleg_unprotect_rtp(to, b, &c.len, now);
	if (st == KEYLEG_OK) {
		assert_int_equal(c.len, 52);
		assert_int_equal(b[12], (uint8_t)((b[2] << 8 | b[3]) ^ 0x5a));
	}
	return st;
}

/*
 * The bridge rekeys first; the participant keeps sending under the old
 * key.  At most overlap_packets of those are accepted, then they fail.
 */
static void t_overlap_count(void **state)
{
	struct keyleg_opts o;
	struct keyleg_stats st;
	struct ends e;
	struct pkt p;
	uint16_t s;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.overlap_packets = 5;
	o.overlap_ms = 60000;
	ends_init(&e, KEYLEG_AES_CM_128_HMAC_SHA1_80, &o);
	for (s = 1; s <= 3; s++) {
		mk(e.pa, &p, s, 7);
		assert_int_equal(rcv(e.br, &p, 100), KEYLEG_OK);
	}
	assert_int_equal(keyleg_rekey(e.br, &e.up2, &e.down2, 1000), 0);
	for (s = 4; s <= 8; s++) {
		mk(e.pa, &p, s, 7);
		assert_int_equal(rcv(e.br, &p, 1001), KEYLEG_OK);
	}
	mk(e.pa, &p, 9, 7);
	assert_int_equal(rcv(e.br, &p, 1002), KEYLEG_ERR_AUTH);
	keyleg_stats(e.br, &st);
	assert_int_equal(st.prev_key_accepts, 5);
	assert_int_equal(st.rekeys, 1);
	assert_int_equal(st.drops[KEYLEG_ERR_AUTH], 1);

	/* the participant switches too: new-key packets pass */
	assert_int_equal(keyleg_rekey(e.pa, &e.down2, &e.up2, 1003), 0);
	for (s = 10; s <= 12; s++) {
		mk(e.pa, &p, s, 7);
		assert_int_equal(rcv(e.br, &p, 1004), KEYLEG_OK);
	}
	ends_free(&e);
}

/* The same, limited in time; reordering across the switch is fine */
static void t_overlap_time(void **state)
{
	struct keyleg_opts o;
	struct ends e;
	struct pkt old1, old2, old3, neu;

	(void)state;
	memset(&o, 0, sizeof(o));
	o.overlap_ms = 500;
	ends_init(&e, KEYLEG_AEAD_AES_128_GCM, &o);
	mk(e.pa, &old1, 100, 3);
	mk(e.pa, &old2, 101, 3);
	mk(e.pa, &old3, 102, 3);
	assert_int_equal(rcv(e.br, &old1, 0), KEYLEG_OK);
	assert_int_equal(keyleg_rekey(e.br, &e.up2, &e.down2, 10000), 0);
	assert_int_equal(keyleg_rekey(e.pa, &e.down2, &e.up2, 10000), 0);
	mk(e.pa, &neu, 103, 3);
	/* new key first, then an old-key packet that was overtaken */
	assert_int_equal(rcv(e.br, &neu, 10100), KEYLEG_OK);
	assert_int_equal(rcv(e.br, &old2, 10500), KEYLEG_OK);
	/* an old-key replay is still a failure */
	assert_int_not_equal(rcv(e.br, &old2, 10500), KEYLEG_OK);
	/* past overlap_ms the old key is gone */
	assert_int_equal(rcv(e.br, &old3, 10501), KEYLEG_ERR_AUTH);
	ends_free(&e);
}

/* The transmit side switches at once; RTCP follows the same rule */
static void t_tx_switch(void **state)
{
	struct ends e;
	struct pkt p;
	uint32_t w[64];
	uint8_t *b = (uint8_t *)w;
	size_t len;

	(void)state;
	ends_init(&e, KEYLEG_AES_256_CM_HMAC_SHA1_80, NULL);
	mk(e.br, &p, 1, 9);
	assert_int_equal(rcv(e.pa, &p, 0), KEYLEG_OK);
	assert_int_equal(keyleg_rekey(e.br, &e.up2, &e.down2, 0), 0);
	mk(e.br, &p, 2, 9);
	/* the participant has only the old key: refused */
	assert_int_equal(rcv(e.pa, &p, 0), KEYLEG_ERR_AUTH);
	assert_int_equal(keyleg_rekey(e.pa, &e.down2, &e.up2, 0), 0);
	assert_int_equal(rcv(e.pa, &p, 0), KEYLEG_OK);

	/* SRTCP under the old key during the overlap, then the new one */
	len = tkl_rtp(b, 0, 0, 9, 20, 1);
	b[1] = 0xc8;
	assert_int_equal(keyleg_rekey(e.br, &e.up1, &e.down1, 5), 0);
	assert_int_equal(keyleg_protect_rtcp(e.pa, b, &len, sizeof(w)),
			 KEYLEG_OK);
	assert_int_equal(keyleg_unprotect_rtcp(e.br, b, &len, 6), KEYLEG_OK);
	ends_free(&e);
}

/* A bad key leaves the leg as it was */
static void t_rekey_args(void **state)
{
	struct keyleg_keysalt bad;
	struct ends e;
	struct pkt p;

	(void)state;
	ends_init(&e, KEYLEG_AES_CM_128_HMAC_SHA1_32, NULL);
	bad = e.up2;
	bad.len = 29;
	assert_int_equal(keyleg_rekey(e.br, &bad, &e.down2, 0), EINVAL);
	assert_int_equal(keyleg_rekey(e.br, &e.up2, NULL, 0), EINVAL);
	mk(e.pa, &p, 1, 1);
	assert_int_equal(rcv(e.br, &p, 0), KEYLEG_OK);
	ends_free(&e);
}

/*
 * ROC over a rekey, at the worst place: the last old-key packet is
 * sequence number 0xffff, the first new-key one 0x0001 (0x0000 lost), so
 * the new context must infer ROC 1 from the carried index.  The new-key
 * packet is cross-checked against libsrtp2 driven directly with ROC 1.
 */
static void t_roc_rekey(void **state)
{
	enum keyleg_profile p;

	(void)state;
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++) {
		struct ends e;
		struct pkt pk, ref;
		uint32_t s, roc;
		srtp_policy_t pol;
		srtp_t raw;
		int ilen;

		ends_init(&e, p, NULL);
		for (s = 65000; s <= 0xffff; s++) {
			mk(e.pa, &pk, (uint16_t)s, 0x42);
			assert_int_equal(rcv(e.br, &pk, 0), KEYLEG_OK);
		}
		assert_int_equal(keyleg_rekey(e.br, &e.up2, &e.down2, 0), 0);
		assert_int_equal(keyleg_rekey(e.pa, &e.down2, &e.up2, 0), 0);
		mk(e.pa, &pk, 1, 0x42);
		assert_int_equal(keyleg_tx_roc(e.pa, 0x42, &roc), 0);
		assert_int_equal(roc, 1);
		assert_int_equal(rcv(e.br, &pk, 0), KEYLEG_OK);
		assert_int_equal(keyleg_rx_roc(e.br, 0x42, &roc), 0);
		assert_int_equal(roc, 1);

		/* libsrtp2 alone, new key, ROC 1: the same bytes */
		memset(&pol, 0, sizeof(pol));
		if (p == KEYLEG_AES_256_CM_HMAC_SHA1_80)
			srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(
				&pol.rtp);
		else
			assert_int_equal(
				srtp_crypto_policy_set_from_profile_for_rtp(
					&pol.rtp, p == 0 ?
					srtp_profile_aes128_cm_sha1_80 :
					p == 1 ?
					srtp_profile_aes128_cm_sha1_32 :
					p == 3 ?
					srtp_profile_aead_aes_128_gcm :
					srtp_profile_aead_aes_256_gcm), 0);
		pol.rtcp = pol.rtp;
		pol.ssrc.type = ssrc_specific;
		pol.ssrc.value = 0x42;
		pol.key = e.up2.b;
		assert_int_equal(srtp_create(&raw, &pol), 0);
		assert_int_equal(srtp_set_stream_roc(raw, 0x42, 1), 0);
		ref.len = tkl_rtp((uint8_t *)ref.w, 1, 160, 0x42, 40,
				  1 ^ 0x5a);
		ilen = (int)ref.len;
		assert_int_equal(srtp_protect(raw, ref.w, &ilen), 0);
		assert_int_equal((size_t)ilen, pk.len);
		assert_memory_equal(ref.w, pk.w, pk.len);
		srtp_dealloc(raw);

		/* and onwards: another 100 new-key packets */
		for (s = 2; s < 102; s++) {
			mk(e.pa, &pk, (uint16_t)s, 0x42);
			assert_int_equal(rcv(e.br, &pk, 1), KEYLEG_OK);
		}
		ends_free(&e);
	}
}

/* The bridge's transmit ROC carries over as well (bridge -> participant) */
static void t_roc_rekey_tx(void **state)
{
	struct ends e;
	struct pkt pk;
	uint32_t s, roc;

	(void)state;
	ends_init(&e, KEYLEG_AEAD_AES_256_GCM, NULL);
	for (s = 0; s < 65536 + 40; s += 2) {
		mk(e.br, &pk, (uint16_t)s, 0x77);
		assert_int_equal(rcv(e.pa, &pk, 0), KEYLEG_OK);
	}
	assert_int_equal(keyleg_rekey(e.pa, &e.down2, &e.up2, 0), 0);
	assert_int_equal(keyleg_rekey(e.br, &e.up2, &e.down2, 0), 0);
	mk(e.br, &pk, 50, 0x77);
	assert_int_equal(rcv(e.pa, &pk, 0), KEYLEG_OK);
	assert_int_equal(keyleg_rx_roc(e.pa, 0x77, &roc), 0);
	assert_int_equal(roc, 1);
	assert_int_equal(keyleg_tx_roc(e.br, 0x77, &roc), 0);
	assert_int_equal(roc, 1);
	ends_free(&e);
}

int tkl_run_rekey(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_overlap_count),
		cmocka_unit_test(t_overlap_time),
		cmocka_unit_test(t_tx_switch),
		cmocka_unit_test(t_rekey_args),
		cmocka_unit_test(t_roc_rekey),
		cmocka_unit_test(t_roc_rekey_tx),
	};

	return cmocka_run_group_tests_name("keyleg_rekey", tests, NULL, NULL);
}
