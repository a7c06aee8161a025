/** @file proto.c  Unit tests: sealing, fields, base64, statements, HKDF */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kms_nds/kms_proto.h"
#include "tests/kms/kms_test.h"

static const uint8_t key[32] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };

static size_t seal_sample(uint8_t *out, size_t outsz)
{
	static const uint8_t pt[] = "the quick brown fox";
	size_t n;

	assert_int_equal(kms_seal(key, KMS_T_INVITE, 7, 1700000000, "alice",
				  "bob", pt, sizeof(pt), out, outsz, &n), 0);
	return n;
}

static void t_seal_roundtrip(void **st)
{
	uint8_t blob[256], pt[256];
	struct kms_seal_hdr h;
	size_t n, pl;

	(void)st;
	n = seal_sample(blob, sizeof(blob));
	assert_int_equal(n, 20 + KMS_SEAL_OVERHEAD);
	assert_int_equal(kms_open(key, KMS_T_INVITE, "alice", "bob", blob, n,
				  &h, pt, sizeof(pt), &pl), 0);
	assert_int_equal(pl, 20);
	assert_string_equal((char *)pt, "the quick brown fox");
	assert_int_equal(h.key_id, 7);
	assert_int_equal(h.time_s, 1700000000);
}

/* every single flipped bit anywhere in the blob must be detected */
static void t_seal_tamper_every_byte(void **st)
{
	uint8_t blob[256], pt[256];
	size_t n, pl, i;

	(void)st;
	n = seal_sample(blob, sizeof(blob));
	for (i = 0; i < n; i++) {
		blob[i] ^= 0x01;
		assert_int_not_equal(kms_open(key, KMS_T_INVITE, "alice",
					      "bob", blob, n, NULL, pt,
					      sizeof(pt), &pl), 0);
		blob[i] ^= 0x01;
	}
	assert_int_equal(kms_open(key, KMS_T_INVITE, "alice", "bob", blob, n,
				  NULL, pt, sizeof(pt), &pl), 0);
}

static void t_seal_bindings(void **st)
{
	uint8_t blob[256], pt[256], k2[32];
	size_t n, pl;

	(void)st;
	n = seal_sample(blob, sizeof(blob));
	/* swapped identities, other identity, wrong type, wrong key */
	assert_int_equal(kms_open(key, KMS_T_INVITE, "bob", "alice", blob, n,
				  NULL, pt, sizeof(pt), &pl), EBADMSG);
	assert_int_equal(kms_open(key, KMS_T_INVITE, "alice", "carol", blob,
				  n, NULL, pt, sizeof(pt), &pl), EBADMSG);
	assert_int_equal(kms_open(key, KMS_T_REQUEST, "alice", "bob", blob, n,
				  NULL, pt, sizeof(pt), &pl), EPROTO);
	memcpy(k2, key, 32);
	k2[31] ^= 0x80;
	assert_int_equal(kms_open(k2, KMS_T_INVITE, "alice", "bob", blob, n,
				  NULL, pt, sizeof(pt), &pl), EBADMSG);
	/* truncated and oversized */
	assert_int_equal(kms_open(key, KMS_T_INVITE, "alice", "bob", blob,
				  KMS_SEAL_OVERHEAD - 1, NULL, pt, sizeof(pt),
				  &pl), EMSGSIZE);
	assert_int_not_equal(kms_open(key, KMS_T_INVITE, "alice", "bob", blob,
				      n - 1, NULL, pt, sizeof(pt), &pl), 0);
	assert_int_equal(kms_open(key, KMS_T_INVITE, "alice", "bob", blob,
				  KMS_BLOB_MAX + 1, NULL, pt, sizeof(pt), &pl),
			 EMSGSIZE);
	/* version byte */
	blob[0] = 2;
	assert_int_equal(kms_open(key, KMS_T_INVITE, "alice", "bob", blob, n,
				  NULL, pt, sizeof(pt), &pl), EPROTO);
}

static void t_seal_fresh_salt(void **st)
{
	uint8_t a[256], b[256];
	size_t na, nb;

	(void)st;
	na = seal_sample(a, sizeof(a));
	nb = seal_sample(b, sizeof(b));
	assert_int_equal(na, nb);
	/* same key, same plaintext: salt and so ciphertext differ */
	assert_memory_not_equal(a + 14, b + 14, KMS_RAND_LEN);
	assert_memory_not_equal(a + KMS_SEAL_HDR, b + KMS_SEAL_HDR,
				na - KMS_SEAL_HDR);
}

static void t_fields(void **st)
{
	struct kms_fbuf fb = { .len = 0 };
	struct kms_fields f;
	char s[16];
	uint32_t v;
	uint8_t bad[8] = { KMS_F_IDA, 0, 1, 'x', KMS_F_IDA, 0, 1, 'y' };

	(void)st;
	kms_fput_str(&fb, KMS_F_IDA, "alice");
	kms_fput_u32(&fb, KMS_F_GEN, 42);
	assert_int_equal(fb.err, 0);
	assert_int_equal(kms_fparse(fb.b, fb.len, &f), 0);
	assert_int_equal(kms_fget_str(&f, KMS_F_IDA, s, sizeof(s)), 0);
	assert_string_equal(s, "alice");
	assert_int_equal(kms_fget_u32(&f, KMS_F_GEN, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(kms_fget_str(&f, KMS_F_IDA, s, 3), EPROTO);
	assert_int_equal(kms_fget_u32(&f, KMS_F_IDB, &v), ENOENT);
	assert_int_equal(kms_fparse(fb.b, fb.len - 1, &f), EMSGSIZE);
	assert_int_equal(kms_fparse(bad, sizeof(bad), &f), EPROTO);
	bad[0] = 0xee;
	assert_int_equal(kms_fparse(bad, 4, &f), EPROTO);
	bad[0] = KMS_F_IDA;
	assert_int_equal(kms_fparse(bad, 2, &f), EMSGSIZE);
}

static void t_b64(void **st)
{
	uint8_t out[16];
	char enc[16];
	size_t n;

	(void)st;
	assert_int_equal(kms_b64_encode((const uint8_t *)"foobar", 6, enc,
					sizeof(enc)), 0);
	assert_string_equal(enc, "Zm9vYmFy");
	assert_int_equal(kms_b64_encode((const uint8_t *)"fo", 2, enc,
					sizeof(enc)), 0);
	assert_string_equal(enc, "Zm8");
	assert_int_equal(kms_b64_decode("Zm8=", out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	assert_memory_equal(out, "fo", 2);
	assert_int_equal(kms_b64_decode("Zm9v!", out, sizeof(out), &n),
			 EPROTO);
	assert_int_equal(kms_b64_decode("Z", out, sizeof(out), &n), EPROTO);
	assert_int_equal(kms_b64_decode("Zm9vYmFy", out, 3, &n), EMSGSIZE);
	assert_int_equal(kms_b64_encode((const uint8_t *)"foobar", 6, enc, 8),
			 EMSGSIZE);
}

static void t_stmt(void **st)
{
	uint8_t tok[64], sealed[64], buf[512];
	const uint8_t *t, *s;
	size_t tl, sl;
	char b64[512];

	(void)st;
	memset(tok, 0xaa, sizeof(tok));
	memset(sealed, 0x55, sizeof(sealed));
	assert_int_equal(kms_stmt_encode(tok, 50, sealed, 60, b64,
					 sizeof(b64)), 0);
	assert_int_equal(kms_stmt_decode(b64, buf, sizeof(buf), &t, &tl, &s,
					 &sl), 0);
	assert_int_equal(tl, 50);
	assert_int_equal(sl, 60);
	assert_memory_equal(t, tok, 50);
	/* truncated: the sealed part shorter than a seal */
	b64[strlen(b64) - 40] = '\0';
	assert_int_equal(kms_stmt_decode(b64, buf, sizeof(buf), &t, &tl, &s,
					 &sl), EMSGSIZE);
	assert_int_equal(kms_stmt_decode("AA", buf, sizeof(buf), &t, &tl, &s,
					 &sl), EMSGSIZE);
	/* token too short to be a seal */
	assert_int_equal(kms_stmt_encode(tok, 10, sealed, 60, b64,
					 sizeof(b64)), 0);
	assert_int_equal(kms_stmt_decode(b64, buf, sizeof(buf), &t, &tl, &s,
					 &sl), EMSGSIZE);
	/* oversized */
	assert_int_equal(kms_stmt_encode(tok, KMS_BLOB_MAX + 1, sealed, 60,
					 b64, sizeof(b64)), EMSGSIZE);
}

/* RFC 5869 A.1 */
static void t_hkdf_vector(void **st)
{
	uint8_t ikm[22], salt[13], info[10], okm[42];
	static const uint8_t want[42] = {
		0x3c, 0xb2, 0x5f, 0x25, 0xfa, 0xac, 0xd5, 0x7a, 0x90, 0x43,
		0x4f, 0x64, 0xd0, 0x36, 0x2f, 0x2a, 0x2d, 0x2d, 0x0a, 0x90,
		0xcf, 0x1a, 0x5a, 0x4c, 0x5d, 0xb0, 0x2d, 0x56, 0xec, 0xc4,
		0xc5, 0xbf, 0x34, 0x00, 0x72, 0x08, 0xd5, 0xb8, 0x87, 0x18,
		0x58, 0x65 };
	size_t i;

	(void)st;
	memset(ikm, 0x0b, sizeof(ikm));
	for (i = 0; i < sizeof(salt); i++)
		salt[i] = (uint8_t)i;
	for (i = 0; i < sizeof(info); i++)
		info[i] = (uint8_t)(0xf0 + i);
	assert_int_equal(kms_hkdf(salt, sizeof(salt), ikm, sizeof(ikm), info,
				  sizeof(info), okm, sizeof(okm)), 0);
	assert_memory_equal(okm, want, sizeof(want));
}

static void t_frame_len(void **st)
{
	uint8_t h[4] = { 0, 0, 0x40, 0x00 };
	size_t n;

	(void)st;
	assert_int_equal(kms_frame_len(h, &n), 0);
	assert_int_equal(n, 16384);
	h[3] = 1;
	assert_int_equal(kms_frame_len(h, &n), EMSGSIZE);
	memset(h, 0, 4);
	assert_int_equal(kms_frame_len(h, &n), EMSGSIZE);
}

int kms_test_proto(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_seal_roundtrip),
		cmocka_unit_test(t_seal_tamper_every_byte),
		cmocka_unit_test(t_seal_bindings),
		cmocka_unit_test(t_seal_fresh_salt),
		cmocka_unit_test(t_fields),
		cmocka_unit_test(t_b64),
		cmocka_unit_test(t_stmt),
		cmocka_unit_test(t_hkdf_vector),
		cmocka_unit_test(t_frame_len),
	};

	return cmocka_run_group_tests_name("kms_proto", tests, NULL, NULL);
}
