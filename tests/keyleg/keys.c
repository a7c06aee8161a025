/** @file keys.c  Inline keys, leg-key derivation, libsrtp2 interop */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <srtp2/srtp.h>

#include "tkl.h"

static const size_t ks_len[KEYLEG_PROFILE_COUNT] = { 30, 30, 46, 28, 44 };

static void t_profiles(void **state)
{
	enum keyleg_profile p, q;
	const size_t tags[KEYLEG_PROFILE_COUNT] = { 10, 4, 10, 16, 16 };

	(void)state;
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++) {
		assert_int_equal(keyleg_profile_parse(keyleg_profile_name(p),
						      &q), 0);
		assert_int_equal(q, p);
		assert_int_equal(keyleg_profile_key_len(p) +
				 keyleg_profile_salt_len(p), ks_len[p]);
		assert_int_equal(keyleg_profile_tag_len(p), tags[p]);
	}
	assert_int_equal(keyleg_profile_parse("AES_CM_128_HMAC_SHA1_81", &q),
			 EINVAL);
	assert_int_equal(keyleg_profile_parse("", &q), EINVAL);
	assert_int_equal(keyleg_profile_key_len(KEYLEG_PROFILE_COUNT), 0);
	assert_string_equal(keyleg_status_name(KEYLEG_ERR_REPLAY), "replay");
}

/* RFC 4568 section 6.1's example key, and exact lengths per profile */
static void t_inline_decode(void **state)
{
	struct keyleg_keysalt ks;
	char out[80];
	enum keyleg_profile p;
	size_t i;

	(void)state;
	assert_int_equal(keyleg_inline_decode(
		"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
		KEYLEG_AES_CM_128_HMAC_SHA1_80, &ks), 0);
	assert_int_equal(ks.len, 30);
	assert_memory_equal(ks.b, "YS___semctl () {\t220;}\n}\nunles", 30);
	/* wrong length for the profile */
	assert_int_equal(keyleg_inline_decode(
		"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz",
		KEYLEG_AEAD_AES_128_GCM, &ks), EINVAL);

	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++) {
		struct keyleg_keysalt a, b;
		size_t n;

		tkl_rand_ks(&a, p, 7 + p);
		assert_int_equal(keyleg_inline_encode(&a, out, sizeof(out)),
				 0);
		assert_int_equal(strlen(out), 4 * ((ks_len[p] + 2) / 3));
		assert_int_equal(keyleg_inline_decode(out, p, &b), 0);
		assert_int_equal(b.len, a.len);
		assert_memory_equal(b.b, a.b, a.len);
		/* padding is optional */
		n = strlen(out);
		while (n && out[n - 1] == '=')
			out[--n] = '\0';
		assert_int_equal(keyleg_inline_decode(out, p, &b), 0);
		assert_memory_equal(b.b, a.b, a.len);
		/* one byte short or long is refused */
		a.len--;
		assert_int_equal(keyleg_inline_encode(&a, out, sizeof(out)),
				 0);
		assert_int_equal(keyleg_inline_decode(out, p, &b), EINVAL);
		a.len += 2;
		if (a.len <= KEYLEG_MAX_KEYSALT) {
			assert_int_equal(keyleg_inline_encode(&a, out,
							      sizeof(out)), 0);
			assert_int_equal(keyleg_inline_decode(out, p, &b),
					 EINVAL);
		}
		/* 48 bytes is longer than any profile's */
		assert_int_equal(keyleg_inline_decode("AAAAAAAAAAAAAAAA"
			"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
			p, &b), EINVAL);
		a.len = ks_len[p];
		assert_int_equal(keyleg_inline_encode(&a, out, 3), ENOSPC);
	}

	/* not base64: bad characters, whitespace, stray padding, bits */
	{
		static const char *const bad[] = {
			"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGV!",
			"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGV z",
			"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz\n",
			"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz=",
			"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGVz====",
			"WVNfX19zZW1jdGwgKCkgewkyMjA7fQp9CnVubGV-",
			"", "=",
		};
		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			assert_int_equal(keyleg_inline_decode(bad[i],
				KEYLEG_AES_CM_128_HMAC_SHA1_80, &ks), EINVAL);
	}
	/* 28 bytes = 37.3 chars: last char must have zero low bits */
	tkl_rand_ks(&ks, KEYLEG_AEAD_AES_128_GCM, 3);
	ks.b[27] = 0xff;
	assert_int_equal(keyleg_inline_encode(&ks, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 40);
	assert_true(out[37] == 'w');   /* 0xff low nibble -> 110000 */
	out[37] = 'x';                 /* set a bit past the 28 bytes */
	assert_int_equal(keyleg_inline_decode(out, KEYLEG_AEAD_AES_128_GCM,
					      &ks), EINVAL);
	/* encode: room for the NUL */
	tkl_rand_ks(&ks, KEYLEG_AES_CM_128_HMAC_SHA1_80, 1);
	assert_int_equal(keyleg_inline_encode(&ks, out, 40), ENOSPC);
	assert_int_equal(keyleg_inline_encode(&ks, out, 41), 0);
}

/* The worked example of docs/keys.md: leg key 00 01 .. 1f */
static void t_derive_example(void **state)
{
	struct keyleg_keysalt rx, tx, prx, ptx;
	uint8_t leg[32], exp[30];
	char b64[64];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(leg); i++)
		leg[i] = (uint8_t)i;
	assert_int_equal(keyleg_derive(leg, sizeof(leg),
				       KEYLEG_AES_CM_128_HMAC_SHA1_80,
				       KEYLEG_FLOW_CONFERENCE,
				       KEYLEG_SIDE_BRIDGE, &rx, &tx), 0);
	assert_int_equal(rx.len, 30);
	assert_int_equal(tx.len, 30);
	tkl_hex("a03701d558b3c971c4145bf21844423a"
		"676b4c5f8fd456a1c92a7d79f21c", exp, sizeof(exp));
	assert_memory_equal(rx.b, exp, 30);  /* participant-to-bridge */
	tkl_hex("ea74188f1b2312f95f720adb5a608dc5"
		"e94baee4a49875255c13ecec30f7", exp, sizeof(exp));
	assert_memory_equal(tx.b, exp, 30);  /* bridge-to-participant */
	assert_int_equal(keyleg_inline_encode(&rx, b64, sizeof(b64)), 0);
	assert_string_equal(b64, "oDcB1VizyXHEFFvyGERCOmdrTF+P1FahySp9efIc");
	assert_int_equal(keyleg_inline_encode(&tx, b64, sizeof(b64)), 0);
	assert_string_equal(b64, "6nQYjxsjEvlfcgrbWmCNxelLruSkmHUlXBPs7DD3");

	/* the participant derives the same keys, crossed */
	assert_int_equal(keyleg_derive(leg, sizeof(leg),
				       KEYLEG_AES_CM_128_HMAC_SHA1_80,
				       KEYLEG_FLOW_CONFERENCE,
				       KEYLEG_SIDE_PARTICIPANT, &prx, &ptx),
			 0);
	assert_memory_equal(prx.b, tx.b, 30);
	assert_memory_equal(ptx.b, rx.b, 30);
}

static const char *const labels[4] = {
	"participant-to-bridge", "bridge-to-participant",
	"initiator-to-responder", "responder-to-initiator",
};

/* keyleg_derive's output for one profile and role label */
static void derive_label(const uint8_t *leg, size_t n, enum keyleg_profile p,
			 int label, struct keyleg_keysalt *out)
{
	struct keyleg_keysalt rx, tx;
	enum keyleg_flow flow = label < 2 ? KEYLEG_FLOW_CONFERENCE :
		KEYLEG_FLOW_P2P;
	enum keyleg_side side = label < 2 ? KEYLEG_SIDE_BRIDGE :
		KEYLEG_SIDE_INITIATOR;

	assert_int_equal(keyleg_derive(leg, n, p, flow, side, &rx, &tx), 0);
	/* bridge: rx = participant-to-bridge; initiator: tx = i-to-r */
	if (label == 0 || label == 3)
		*out = rx;
	else
		*out = tx;
}

/*
 * An independent HKDF-SHA-256 in Python (hashlib/hmac, written from
 * RFC 5869, not from our C) must give the same bytes for every profile
 * and label: this is what a second implementation of docs/keys.md does.
 */
static const char py_hkdf[] =
	"import hmac, hashlib, sys\n"
	"def hkdf(ikm, info, L):\n"
	"    prk = hmac.new(bytes(32), ikm, hashlib.sha256).digest()\n"
	"    t = b''; okm = b''; i = 1\n"
	"    while len(okm) < L:\n"
	"        t = hmac.new(prk, t + info + bytes([i]),"
	" hashlib.sha256).digest()\n"
	"        okm += t; i += 1\n"
	"    return okm[:L]\n"
	"leg = bytes.fromhex(sys.argv[1])\n"
	"for line in sys.stdin:\n"
	"    prof, lab, L = line.split()\n"
	"    info = ('keymix leg v1|' + prof + '|' + lab).encode()\n"
	"    print(hkdf(leg, info, int(L)).hex())\n";

static void t_derive_python(void **state)
{
	char cmd[2048], in[2048], line[256], hex[256], path[] =
		"/tmp/keyleg_hkdf_XXXXXX";
	uint8_t leg[48];
	struct keyleg_keysalt ks;
	enum keyleg_profile p;
	size_t i, n = 0, k;
	FILE *f;
	int fd, label, lines = 0;

	(void)state;
	for (i = 0; i < sizeof(leg); i++)
		leg[i] = (uint8_t)(0x5a ^ (i * 37));
	for (i = 0; i < sizeof(leg); i++)
		snprintf(hex + 2 * i, 3, "%02x", leg[i]);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++)
		for (label = 0; label < 4; label++)
			n += (size_t)snprintf(in + n, sizeof(in) - n,
					      "%s %s %zu\n",
					      keyleg_profile_name(p),
					      labels[label], ks_len[p]);
	assert_int_equal(write(fd, in, n), (ssize_t)n);
	close(fd);
	snprintf(cmd, sizeof(cmd), "/usr/bin/python3 -c \"$KL_PY\" %s < %s",
		 hex, path);
	assert_int_equal(setenv("KL_PY", py_hkdf, 1), 0);
	f = popen(cmd, "r");
	assert_non_null(f);
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++) {
		for (label = 0; label < 4; label++) {
			uint8_t want[46];

			assert_non_null(fgets(line, sizeof(line), f));
			k = tkl_hex(line, want, sizeof(want));
			assert_int_equal(k, ks_len[p]);
			derive_label(leg, sizeof(leg), p, label, &ks);
			assert_int_equal(ks.len, k);
			assert_memory_equal(ks.b, want, k);
			lines++;
		}
	}
	assert_int_equal(pclose(f), 0);
	unlink(path);
	assert_int_equal(lines, 20);
}

/* All twenty (profile, label) outputs differ from each other */
static void t_derive_distinct(void **state)
{
	struct keyleg_keysalt all[20], rx, tx;
	uint8_t leg[16] = {0};
	enum keyleg_profile p;
	int label, i, j, n = 0;

	(void)state;
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++)
		for (label = 0; label < 4; label++)
			derive_label(leg, sizeof(leg), p, label, &all[n++]);
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			assert_false(all[i].len == all[j].len &&
				     !memcmp(all[i].b, all[j].b, all[i].len));
	/* wrong side for the flow, short key */
	assert_int_equal(keyleg_derive(leg, 16, 0, KEYLEG_FLOW_CONFERENCE,
				       KEYLEG_SIDE_INITIATOR, &rx, &tx),
			 EINVAL);
	assert_int_equal(keyleg_derive(leg, 16, 0, KEYLEG_FLOW_P2P,
				       KEYLEG_SIDE_BRIDGE, &rx, &tx), EINVAL);
	assert_int_equal(keyleg_derive(leg, 15, 0, KEYLEG_FLOW_P2P,
				       KEYLEG_SIDE_RESPONDER, &rx, &tx),
			 EINVAL);
	/* responder gets the initiator's keys crossed */
	assert_int_equal(keyleg_derive(leg, 16, 0, KEYLEG_FLOW_P2P,
				       KEYLEG_SIDE_RESPONDER, &rx, &tx), 0);
	assert_memory_equal(rx.b, all[2].b, 30);
	assert_memory_equal(tx.b, all[3].b, 30);
}

static void t_wipe_ct(void **state)
{
	uint8_t a[32], b[32], z[32] = {0};

	(void)state;
	memset(a, 0x55, sizeof(a));
	memcpy(b, a, sizeof(b));
	assert_true(keyleg_ct_equal(a, b, sizeof(a)));
	b[31] ^= 1;
	assert_false(keyleg_ct_equal(a, b, sizeof(a)));
	keyleg_wipe(a, sizeof(a));
	assert_memory_equal(a, z, sizeof(z));
}

/* libsrtp2 called directly, with its own profile mapping */
static srtp_t raw_session(enum keyleg_profile p, struct keyleg_keysalt *ks,
			  srtp_ssrc_type_t type)
{
	srtp_policy_t pol;
	srtp_t s = NULL;

	memset(&pol, 0, sizeof(pol));
	switch (p) {
	case KEYLEG_AES_CM_128_HMAC_SHA1_80:
		srtp_crypto_policy_set_rtp_default(&pol.rtp);
		srtp_crypto_policy_set_rtcp_default(&pol.rtcp);
		break;
	case KEYLEG_AES_CM_128_HMAC_SHA1_32:
		srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&pol.rtp);
		srtp_crypto_policy_set_rtcp_default(&pol.rtcp);
		break;
	case KEYLEG_AES_256_CM_HMAC_SHA1_80:
		srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&pol.rtp);
		srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&pol.rtcp);
		break;
	case KEYLEG_AEAD_AES_128_GCM:
		srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtp);
		srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol.rtcp);
		break;
	default:
		srtp_crypto_policy_set_aes_gcm_256_16_auth(&pol.rtp);
		srtp_crypto_policy_set_aes_gcm_256_16_auth(&pol.rtcp);
		break;
	}
	pol.ssrc.type = type;
	pol.key = ks->b;
	pol.window_size = 128;
	assert_int_equal(srtp_create(&s, &pol), srtp_err_status_ok);
	return s;
}

/*
 * An inline key, decoded by keyleg, used by libsrtp2 directly and by
 * keyleg: packets go both ways, RTP and RTCP, for every profile.
 */
static void t_inline_interop(void **state)
{
	enum keyleg_profile p;

	(void)state;
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++) {
		struct keyleg_keysalt a, b, ka, kb;
		uint32_t w[TKL_BUF / 4], r[TKL_BUF / 4];
		uint8_t *buf = (uint8_t *)w, *ref = (uint8_t *)r;
		char sa[80], sb[80];
		struct keyleg *kl;
		srtp_t out, in;
		size_t len, n;
		int ilen;
		uint16_t seq;

		tkl_rand_ks(&a, p, 100 + p);
		tkl_rand_ks(&b, p, 200 + p);
		assert_int_equal(keyleg_inline_encode(&a, sa, sizeof(sa)), 0);
		assert_int_equal(keyleg_inline_encode(&b, sb, sizeof(sb)), 0);
		assert_int_equal(keyleg_inline_decode(sa, p, &ka), 0);
		assert_int_equal(keyleg_inline_decode(sb, p, &kb), 0);
		/* keyleg receives under a, sends under b */
		kl = tkl_leg(p, &ka, &kb, NULL);
		out = raw_session(p, &a, ssrc_any_outbound);
		in = raw_session(p, &b, ssrc_any_inbound);

		for (seq = 100; seq < 110; seq++) {
			n = tkl_rtp(ref, seq, seq * 160u, 0x1234u, 160,
				    (uint8_t)seq);
			memcpy(buf, ref, n);
			ilen = (int)n;
			assert_int_equal(srtp_protect(out, buf, &ilen), 0);
			len = (size_t)ilen;
			assert_int_equal(keyleg_unprotect_rtp(kl, buf, &len,
							      0), KEYLEG_OK);
			assert_int_equal(len, n);
			assert_memory_equal(buf, ref, n);

			memcpy(buf, ref, n);
			len = n;
			assert_int_equal(keyleg_protect_rtp(kl, buf, &len,
							    TKL_BUF),
					 KEYLEG_OK);
			ilen = (int)len;
			assert_int_equal(srtp_unprotect(in, buf, &ilen), 0);
			assert_int_equal(ilen, (int)n);
			assert_memory_equal(buf, ref, n);
		}
		/* RTCP: a receiver report, both ways */
		n = 32;
		memset(ref, 0x3c, n);
		memcpy(ref, "\x81\xc9\x00\x07\x00\x00\x12\x34", 8);
		memcpy(buf, ref, n);
		ilen = (int)n;
		assert_int_equal(srtp_protect_rtcp(out, buf, &ilen), 0);
		len = (size_t)ilen;
		assert_int_equal(keyleg_unprotect_rtcp(kl, buf, &len, 0),
				 KEYLEG_OK);
		assert_memory_equal(buf, ref, n);
		memcpy(buf, ref, n);
		len = n;
		assert_int_equal(keyleg_protect_rtcp(kl, buf, &len, TKL_BUF),
				 KEYLEG_OK);
		ilen = (int)len;
		assert_int_equal(srtp_unprotect_rtcp(in, buf, &ilen), 0);
		assert_int_equal(ilen, (int)n);
		assert_memory_equal(buf, ref, n);

		srtp_dealloc(out);
		srtp_dealloc(in);
		keyleg_free(kl);
	}
}

int tkl_run_keys(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_profiles),
		cmocka_unit_test(t_inline_decode),
		cmocka_unit_test(t_derive_example),
		cmocka_unit_test(t_derive_python),
		cmocka_unit_test(t_derive_distinct),
		cmocka_unit_test(t_wipe_ct),
		cmocka_unit_test(t_inline_interop),
	};

	return cmocka_run_group_tests_name("keyleg_keys", tests, NULL, NULL);
}
