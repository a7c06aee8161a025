/** @file vectors.c  Reference vectors (libsrtp, RFC 6904, 7714, 5869) */

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#include "tkl.h"

/*
 * Whole-packet vectors of /work/shared/reference/vectors.md section 4
 * (libsrtp's srtp_validate* packets, recomputed there from first
 * principles), run through keyleg's own API: protect must give the
 * protected packet byte for byte, unprotect must give the plaintext back.
 */
struct pkt_vec {
	enum keyleg_profile prof;
	const char *keysalt;
	int rtcp;
	const char *plain;
	const char *prot;
	uint8_t ext[3];
	size_t n_ext;
};

#define KEY_B3 "e1f97a0d3e018be0d64fa32c06de4139 0ec675ad498afeebb6960b3aabe6"
#define KEY_256 "f0f04914b513f2763a1b1fa130f10e29" \
	"98f6f6e43e4309d1e622a0e332b9f1b6 3b04803de51ee7c96423ab5b78d2"
#define KEY_GCM "000102030405060708090a0b0c0d0e0f a0a1a2a3a4a5a6a7a8a9aaab"
#define AB16 "abababababababababababababababab"
#define RTP_HDR "800f1234decafbadcafebabe"
#define RTCP_HDR "81c8000bcafebabe"

/* 4.1 AES_CM_128_HMAC_SHA1_80 */
static const struct pkt_vec v41 = {
	KEYLEG_AES_CM_128_HMAC_SHA1_80, KEY_B3, 0, RTP_HDR AB16,
	RTP_HDR "4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb",
	{0}, 0,
};
/* 4.2 AES_CM_128_HMAC_SHA1_32 */
static const struct pkt_vec v42 = {
	KEYLEG_AES_CM_128_HMAC_SHA1_32, KEY_B3, 0, RTP_HDR AB16,
	RTP_HDR "4e55dc4ce79978d88ca4d215949d2402 b78d6acc",
	{0}, 0,
};
/* 4.3 SRTCP, index 1, E=1, HMAC-SHA1-80 */
static const struct pkt_vec v43 = {
	KEYLEG_AES_CM_128_HMAC_SHA1_80, KEY_B3, 1, RTCP_HDR AB16,
	RTCP_HDR "7128035be487b9bdbef89041f977a5a8 80000001"
	"993e08cd54d6c1230798",
	{0}, 0,
};
/* 4.3 again: the _32 profile still sends an 80-bit SRTCP tag */
static const struct pkt_vec v43b = {
	KEYLEG_AES_CM_128_HMAC_SHA1_32, KEY_B3, 1, RTCP_HDR AB16,
	RTCP_HDR "7128035be487b9bdbef89041f977a5a8 80000001"
	"993e08cd54d6c1230798",
	{0}, 0,
};
/* 4.4 AES_256_CM_HMAC_SHA1_80 (RFC 6188 section 7.2 master key) */
static const struct pkt_vec v44 = {
	KEYLEG_AES_256_CM_HMAC_SHA1_80, KEY_256, 0, RTP_HDR AB16,
	RTP_HDR "f1d9de17ff251ff1aa007774b0b4b40d a08d9d9a5b3a55d8873b",
	{0}, 0,
};
/* 4.4 SRTCP (computed in vectors.md only) */
static const struct pkt_vec v44r = {
	KEYLEG_AES_256_CM_HMAC_SHA1_80, KEY_256, 1, RTCP_HDR AB16,
	RTCP_HDR "b4d0e7a917d24b9faab9d3b6127b3ba6 80000001"
	"e04ac0ec2846f71bd31c",
	{0}, 0,
};
/* 4.5 AEAD_AES_128_GCM including the KDF (errata 4938 salt) */
static const struct pkt_vec v45 = {
	KEYLEG_AEAD_AES_128_GCM, KEY_GCM, 0, RTP_HDR AB16,
	RTP_HDR "c5002ede04cfdd2eb91159e0880aa06e"
	"d2976826f796b201df3131a127e8a392",
	{0}, 0,
};
static const struct pkt_vec v45r = {
	KEYLEG_AEAD_AES_128_GCM, KEY_GCM, 1, RTCP_HDR AB16,
	RTCP_HDR "c98b8b5df0392a55852b6c21ac8e7025"
	"c52c6fbea2b3b446ea31123ba88ce61e 80000001",
	{0}, 0,
};
/*
 * 4.6 RFC 6904 header-extension encryption (ids 1, 3, 4).  The encrypted
 * extension bytes are exactly RFC 6904 appendix A.2's ciphertext.
 */
static const struct pkt_vec v46 = {
	KEYLEG_AES_CM_128_HMAC_SHA1_80, KEY_B3, 0,
	"900f1234decafbadcafebabe BEDE0006"
	"17414273A475262748220000C8308E4655996386B395FB00" AB16,
	"900f1234decafbadcafebabe BEDE0006"
	"17588A9270F4E15E1C220000C8309546A994F0BC54789700"
	"4e55dc4ce79978d88ca4d215949d2402 5a46b3ca35c535a891c7",
	{1, 3, 4}, 3,
};

static void t_pkt_vec(void **state)
{
	const struct pkt_vec *v = *state;
	struct keyleg_keysalt ks;
	struct keyleg_opts o;
	struct keyleg *kl;
	uint32_t w[TKL_BUF / 4];
	uint8_t *buf = (uint8_t *)w, plain[256], prot[256];
	size_t np, nx, len;
	enum keyleg_status st;

	memset(&o, 0, sizeof(o));
	memcpy(o.enc_ext, v->ext, v->n_ext);
	o.n_enc_ext = v->n_ext;
	tkl_ks(&ks, v->keysalt);
	kl = tkl_leg(v->prof, &ks, &ks, &o);
	np = tkl_hex(v->plain, plain, sizeof(plain));
	nx = tkl_hex(v->prot, prot, sizeof(prot));

	memcpy(buf, plain, np);
	len = np;
	st = v->rtcp ? keyleg_protect_rtcp(kl, buf, &len, TKL_BUF) :
		keyleg_protect_rtp(kl, buf, &len, TKL_BUF);
	assert_int_equal(st, KEYLEG_OK);
	assert_int_equal(len, nx);
	assert_memory_equal(buf, prot, nx);

	memcpy(buf, prot, nx);
	len = nx;
	st = v->rtcp ? keyleg_unprotect_rtcp(kl, buf, &len, 0) :
		keyleg_unprotect_rtp(kl, buf, &len, 0);
	assert_int_equal(st, KEYLEG_OK);
	assert_int_equal(len, np);
	assert_memory_equal(buf, plain, np);
	kl = keyleg_free(kl);
	assert_null(kl);
}

/* ---- RFC 7714 sections 16-17 at the AEAD layer (OpenSSL EVP) ----
 * They give session keys and salts, which libsrtp2's API does not take,
 * so the IV formation (RFC 7714 sections 8.1 and 9.1) and the AEAD are
 * checked here directly. */

static const char *const r_plain =
	"8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973"
	"20646976 69736120 696e2070 61727465 73207472 6573";
static const char *const r_salt = "517569642070726f2071756f";
static const char *const c_plain =
	"81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930"
	"4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef";

static const EVP_CIPHER *gcm_of(size_t keylen)
{
	return keylen == 16 ? EVP_aes_128_gcm() : EVP_aes_256_gcm();
}

/* AES-GCM seal: ct (inlen) then the 16-byte tag at out + inlen */
static void gcm_seal(const uint8_t *key, size_t keylen, const uint8_t *iv,
		     const uint8_t *aad, size_t aadlen, const uint8_t *in,
		     size_t inlen, uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n;

	assert_non_null(c);
	assert_int_equal(EVP_EncryptInit_ex(c, gcm_of(keylen), NULL, key,
					    iv), 1);
	assert_int_equal(EVP_EncryptUpdate(c, NULL, &n, aad, (int)aadlen), 1);
	if (inlen)
		assert_int_equal(EVP_EncryptUpdate(c, out, &n, in,
						   (int)inlen), 1);
	assert_int_equal(EVP_EncryptFinal_ex(c, out + inlen, &n), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, 16,
					     out + inlen), 1);
	EVP_CIPHER_CTX_free(c);
}

/* AES-GCM open: returns 1 if the tag verified */
static int gcm_open(const uint8_t *key, size_t keylen, const uint8_t *iv,
		    const uint8_t *aad, size_t aadlen, const uint8_t *in,
		    size_t inlen_with_tag, uint8_t *out)
{
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	size_t inlen = inlen_with_tag - 16;
	uint8_t tag[16];
	int n, ok;

	assert_non_null(c);
	memcpy(tag, in + inlen, 16);
	assert_int_equal(EVP_DecryptInit_ex(c, gcm_of(keylen), NULL, key,
					    iv), 1);
	assert_int_equal(EVP_DecryptUpdate(c, NULL, &n, aad, (int)aadlen), 1);
	if (inlen)
		assert_int_equal(EVP_DecryptUpdate(c, out, &n, in,
						   (int)inlen), 1);
	assert_int_equal(EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16,
					     tag), 1);
	ok = EVP_DecryptFinal_ex(c, out + inlen, &n);
	EVP_CIPHER_CTX_free(c);
	return ok == 1;
}

/* RFC 7714 8.1: 00 00 || SSRC || ROC || SEQ, XOR salt */
static void rtp_iv(const uint8_t *pkt, uint32_t roc, const uint8_t *salt,
		   uint8_t iv[12])
{
	int i;

	memset(iv, 0, 12);
	memcpy(iv + 2, pkt + 8, 4);
	iv[6] = (uint8_t)(roc >> 24);
	iv[7] = (uint8_t)(roc >> 16);
	iv[8] = (uint8_t)(roc >> 8);
	iv[9] = (uint8_t)roc;
	memcpy(iv + 10, pkt + 2, 2);
	for (i = 0; i < 12; i++)
		iv[i] ^= salt[i];
}

/* RFC 7714 9.1: 00 00 || SSRC || 00 00 || 0 || 31-bit index, XOR salt */
static void rtcp_iv(const uint8_t *pkt, uint32_t idx, const uint8_t *salt,
		    uint8_t iv[12])
{
	int i;

	memset(iv, 0, 12);
	memcpy(iv + 2, pkt + 4, 4);
	iv[8] = (uint8_t)((idx >> 24) & 0x7f);
	iv[9] = (uint8_t)(idx >> 16);
	iv[10] = (uint8_t)(idx >> 8);
	iv[11] = (uint8_t)idx;
	for (i = 0; i < 12; i++)
		iv[i] ^= salt[i];
}

struct r_vec {
	const char *key;
	const char *out;   /* whole protected packet */
	int tag_only;
};

/* 16.1.1/16.1.2, 16.2.1/16.2.2: encrypt, then decrypt and verify */
static const struct r_vec r161 = { "000102030405060708090a0b0c0d0e0f",
	"8040f17b 8041f8d3 5501a0b2 f24de3a3 fb34de6c acba861c 9d7e4bca"
	"be633bd5 0d294e6f 42a5f47a 51c7d19b 36de3adf 8833899d 7f27beb1"
	"6a9152cf 765ee439 0cce", 0 };
static const struct r_vec r162 = { "000102030405060708090a0b0c0d0e0f"
	"101112131415161718191a1b1c1d1e1f",
	"8040f17b 8041f8d3 5501a0b2 32b1de78 a822fe12 ef9f78fa 332e33aa"
	"b1801238 9a58e2f3 b50b2a02 76ffae0f 1ba63799 b87b7aa3 db36dfff"
	"d6b0f9bb 7878d7a7 6c13", 0 };
/* 16.1.3/16.1.4, 16.2.3/16.2.4: authentication tagging only */
static const struct r_vec r163 = { "000102030405060708090a0b0c0d0e0f",
	"8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973"
	"20646976 69736120 696e2070 61727465 73207472 65732249 3f82d2bc"
	"e397e9d7 9e3b19aa 4216", 1 };
static const struct r_vec r164 = { "000102030405060708090a0b0c0d0e0f"
	"101112131415161718191a1b1c1d1e1f",
	"8040f17b 8041f8d3 5501a0b2 47616c6c 69612065 7374206f 6d6e6973"
	"20646976 69736120 696e2070 61727465 73207472 6573a866 d5910f88"
	"7463067c eefec452 15d4", 1 };

static void t_rfc7714_rtp(void **state)
{
	const struct r_vec *v = *state;
	uint8_t key[32], salt[12], iv[12], pt[64], exp[96], out[96];
	uint8_t dec[96];
	size_t kl, np, ne, h = 12;

	kl = tkl_hex(v->key, key, sizeof(key));
	tkl_hex(r_salt, salt, sizeof(salt));
	np = tkl_hex(r_plain, pt, sizeof(pt));
	ne = tkl_hex(v->out, exp, sizeof(exp));
	rtp_iv(pt, 0, salt, iv);
	/* the IV printed in RFC 7714 section 16 */
	tkl_hex("51753c6580c2726f20718414", out, sizeof(out));
	assert_memory_equal(iv, out, 12);

	memcpy(out, pt, np);
	if (v->tag_only)
		gcm_seal(key, kl, iv, pt, np, NULL, 0, out + np);
	else
		gcm_seal(key, kl, iv, pt, h, pt + h, np - h, out + h);
	assert_int_equal(np + 16, ne);
	assert_memory_equal(out, exp, ne);

	/* verification, and a flipped bit is refused */
	if (v->tag_only)
		assert_true(gcm_open(key, kl, iv, exp, np, exp + np, 16, dec));
	else {
		assert_true(gcm_open(key, kl, iv, exp, h, exp + h, ne - h,
				     dec));
		assert_memory_equal(dec, pt + h, np - h);
	}
	exp[ne - 1] ^= 1;
	assert_false(gcm_open(key, kl, iv, exp, v->tag_only ? np : h,
			      exp + (v->tag_only ? np : h),
			      v->tag_only ? 16 : ne - h, dec));
}

/* 17.1 (128, encrypt), 17.2 (256, decrypt) */
static const struct r_vec r171 = { "000102030405060708090a0b0c0d0e0f",
	"81c8000d 4d617273 63e94885 dcdab67c a727d766 2f6b7e99 7ff5c0f7"
	"6c06f32d c676a5f1 730d6fda 4ce09b46 86303ded 0bb9275b c84aa458"
	"96cf4d2f c5abf872 45d9eade 800005d4", 0 };
static const struct r_vec r172 = { "000102030405060708090a0b0c0d0e0f"
	"101112131415161718191a1b1c1d1e1f",
	"81c8000d 4d617273 d50ae4d1 f5ce5d30 4ba297e4 7d470c28 2c3ece5d"
	"bffe0a50 a2eaa5c1 110555be 8415f658 c61de047 6f1b6fad 1d1eb30c"
	"4446839f 57ff6f6c b26ac3be 800005d4", 0 };
/* 17.3 (128, tag only), 17.4 (256, tag verification) */
static const struct r_vec r173 = { "000102030405060708090a0b0c0d0e0f",
	"81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930"
	"4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef 841dd968"
	"3dd78ec9 2ae58790 125f62b3 000005d4", 1 };
static const struct r_vec r174 = { "000102030405060708090a0b0c0d0e0f"
	"101112131415161718191a1b1c1d1e1f",
	"81c8000d 4d617273 4e545031 4e545032 52545020 0000042a 0000e930"
	"4c756e61 deadbeef deadbeef deadbeef deadbeef deadbeef 91db4afb"
	"feee5a97 8fab4393 ed2615fe 000005d4", 1 };

static void t_rfc7714_rtcp(void **state)
{
	const struct r_vec *v = *state;
	uint8_t key[32], salt[12], iv[12], pt[64], exp[128], out[128];
	uint8_t aad[80], dec[128];
	size_t kl, np, ne, na;

	kl = tkl_hex(v->key, key, sizeof(key));
	tkl_hex(r_salt, salt, sizeof(salt));
	np = tkl_hex(c_plain, pt, sizeof(pt));
	ne = tkl_hex(v->out, exp, sizeof(exp));
	rtcp_iv(pt, 0x5d4, salt, iv);
	tkl_hex("517524055203726f207170bb", out, sizeof(out));
	assert_memory_equal(iv, out, 12);
	assert_int_equal(ne, np + 16 + 4);

	/* AAD: header (or all of it when only tagging) || ESRTCP word */
	na = v->tag_only ? np : 8;
	memcpy(aad, pt, na);
	tkl_hex(v->tag_only ? "000005d4" : "800005d4", aad + na, 4);
	na += 4;
	memcpy(out, pt, np);
	if (v->tag_only)
		gcm_seal(key, kl, iv, aad, na, NULL, 0, out + np);
	else
		gcm_seal(key, kl, iv, aad, na, pt + 8, np - 8, out + 8);
	memcpy(out + np + 16, aad + na - 4, 4);
	assert_memory_equal(out, exp, ne);

	if (v->tag_only) {
		assert_true(gcm_open(key, kl, iv, aad, na, exp + np, 16,
				     dec));
	}
	else {
		assert_true(gcm_open(key, kl, iv, aad, na, exp + 8,
				     ne - 8 - 4, dec));
		assert_memory_equal(dec, pt + 8, np - 8);
	}
	/* the ESRTCP word is authenticated: E flag flipped -> refused */
	aad[na - 4] ^= 0x80;
	assert_false(gcm_open(key, kl, iv, aad, na,
			      exp + (v->tag_only ? np : 8),
			      v->tag_only ? 16 : ne - 12, dec));
}

/* ---- RFC 5869 A.1-A.3 through keyleg_hkdf ---- */
struct h_vec {
	const char *ikm, *salt, *info, *okm;
};

static const struct h_vec h1 = {
	"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
	"000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
	"3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
	"34007208d5b887185865" };
static const struct h_vec h2 = {
	"000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	"202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"
	"404142434445464748494a4b4c4d4e4f",
	"606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"
	"808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f"
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf",
	"b0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
	"d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
	"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff",
	"b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c"
	"59045a99cac7827271cb41c65e590e09da3275600c2f09b8367793a9aca3db71"
	"cc30c58179ec3e87c14c01d5c1f3434f1d87" };
static const struct h_vec h3 = {
	"0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", "", "",
	"8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
	"9d201395faa4b61a96c8" };

static void t_hkdf(void **state)
{
	const struct h_vec *v = *state;
	uint8_t ikm[80], salt[80], info[80], okm[82], out[82];
	size_t ni, ns, nf, no;

	ni = tkl_hex(v->ikm, ikm, sizeof(ikm));
	ns = tkl_hex(v->salt, salt, sizeof(salt));
	nf = tkl_hex(v->info, info, sizeof(info));
	no = tkl_hex(v->okm, okm, sizeof(okm));
	memset(out, 0, sizeof(out));
	assert_int_equal(keyleg_hkdf(ns ? salt : NULL, ns, ikm, ni,
				     nf ? info : NULL, nf, out, no), 0);
	assert_memory_equal(out, okm, no);
}

static void t_hkdf_args(void **state)
{
	uint8_t ikm[16] = {1}, out[32];

	(void)state;
	assert_int_equal(keyleg_hkdf(NULL, 0, NULL, 16, NULL, 0, out, 32),
			 EINVAL);
	assert_int_equal(keyleg_hkdf(NULL, 0, ikm, 16, NULL, 0, out, 0),
			 EINVAL);
	assert_int_equal(keyleg_hkdf(NULL, 0, ikm, 16, NULL, 0, out,
				     255 * 32 + 1), EINVAL);
}

#define VT(name, fn, vec) { name, fn, NULL, NULL, (void *)&(vec) }

int tkl_run_vectors(void)
{
	const struct CMUnitTest tests[] = {
		VT("libsrtp_aes_cm_128_80", t_pkt_vec, v41),
		VT("libsrtp_aes_cm_128_32", t_pkt_vec, v42),
		VT("libsrtp_srtcp_80", t_pkt_vec, v43),
		VT("libsrtp_srtcp_in_32_profile", t_pkt_vec, v43b),
		VT("libsrtp_aes_256_cm_80", t_pkt_vec, v44),
		VT("libsrtp_aes_256_srtcp", t_pkt_vec, v44r),
		VT("libsrtp_gcm_128_kdf_rtp", t_pkt_vec, v45),
		VT("libsrtp_gcm_128_kdf_srtcp", t_pkt_vec, v45r),
		VT("rfc6904_enc_hdr_ext", t_pkt_vec, v46),
		VT("rfc7714_16_1_gcm128_encrypt", t_rfc7714_rtp, r161),
		VT("rfc7714_16_2_gcm256_encrypt", t_rfc7714_rtp, r162),
		VT("rfc7714_16_1_3_gcm128_tag", t_rfc7714_rtp, r163),
		VT("rfc7714_16_2_3_gcm256_tag", t_rfc7714_rtp, r164),
		VT("rfc7714_17_1_srtcp128_encrypt", t_rfc7714_rtcp, r171),
		VT("rfc7714_17_2_srtcp256_decrypt", t_rfc7714_rtcp, r172),
		VT("rfc7714_17_3_srtcp128_tag", t_rfc7714_rtcp, r173),
		VT("rfc7714_17_4_srtcp256_tag", t_rfc7714_rtcp, r174),
		VT("rfc5869_a1", t_hkdf, h1),
		VT("rfc5869_a2", t_hkdf, h2),
		VT("rfc5869_a3", t_hkdf, h3),
		cmocka_unit_test(t_hkdf_args),
	};

	return cmocka_run_group_tests_name("keyleg_vectors", tests, NULL,
					   NULL);
}
