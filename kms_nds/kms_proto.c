/** @file kms_proto.c  UE <-> KMS protocol primitives (sealing, fields) */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "keyleg/keyleg.h"
#include "kms_nds/kms_proto.h"
#include "kms_nds/kms_store.h"

static const char seal_label[] = "keymix seal v1";

static uint64_t clock_pinned;

/** Unit tests: a fixed base instead of time(NULL) (0: the real clock) */
void kms_clock_pin(uint64_t base)
{
	clock_pinned = base;
}

/**
 * The clock.  KEYMIX_TEST_CLOCK_OFFSET (seconds, may be negative) moves
 * it, so tests can expire tokens and grace periods without sleeping.
 * Unit tests also pin the base (kms_clock_pin): with the real second
 * ticking between two reads, "100 + 599 s after the rotation" could be
 * 600 s after it and a test at a boundary would fail now and then.
 */
uint64_t kms_now(void)
{
	const char *e = getenv("KEYMIX_TEST_CLOCK_OFFSET");
	long long off = 0;

	if (e && *e) {
		char *end;

		off = strtoll(e, &end, 10);
		if (*end)
			off = 0;
	}
	return (uint64_t)((long long)(clock_pinned ? (time_t)clock_pinned
						    : time(NULL)) + off);
}

int kms_random(void *p, size_t n)
{
	return RAND_bytes(p, (int)n) == 1 ? 0 : EIO;
}

int kms_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

void kms_wipe(void *p, size_t n)
{
	if (p && n)
		OPENSSL_cleanse(p, n);
}

/** HKDF-SHA-256 (RFC 5869): the project's one implementation, keyleg's */
int kms_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
	     size_t ikm_len, const uint8_t *info, size_t info_len,
	     uint8_t *out, size_t out_len)
{
	return keyleg_hkdf(salt, salt_len, ikm, ikm_len, info, info_len, out,
			   out_len);
}

int kms_hmac(const uint8_t *key, size_t key_len, const uint8_t *msg,
	     size_t msg_len, uint8_t out[KMS_MAC_LEN])
{
	unsigned int len = KMS_MAC_LEN;

	if (!HMAC(EVP_sha256(), key, (int)key_len, msg, msg_len, out, &len))
		return EIO;
	return 0;
}

static const char b64u[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int kms_b64_encode(const uint8_t *in, size_t n, char *out, size_t outsz)
{
	size_t i, o = 0;

	if ((n * 4 + 2) / 3 + 1 > outsz)
		return EMSGSIZE;
	for (i = 0; i + 2 < n; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | in[i + 1] << 8 |
			     in[i + 2];

		out[o++] = b64u[v >> 18];
		out[o++] = b64u[(v >> 12) & 63];
		out[o++] = b64u[(v >> 6) & 63];
		out[o++] = b64u[v & 63];
	}
	if (n - i == 1) {
		out[o++] = b64u[in[i] >> 2];
		out[o++] = b64u[(in[i] & 3) << 4];
	}
	else if (n - i == 2) {
		uint32_t v = (uint32_t)in[i] << 8 | in[i + 1];

		out[o++] = b64u[v >> 10];
		out[o++] = b64u[(v >> 4) & 63];
		out[o++] = b64u[(v & 15) << 2];
	}
	out[o] = '\0';
	return 0;
}

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-' || c == '+')
		return 62;
	if (c == '_' || c == '/')
		return 63;
	return -1;
}

/** Decode base64url (standard alphabet and '=' padding also accepted) */
int kms_b64_decode(const char *in, uint8_t *out, size_t outsz,
		   size_t *outlen)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t o = 0;

	if (!in)
		return EINVAL;
	for (; *in && *in != '='; in++) {
		int v = b64_val(*in);

		if (v < 0)
			return EPROTO;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outsz)
				return EMSGSIZE;
			out[o++] = (uint8_t)(acc >> bits);
		}
		acc &= (1u << bits) - 1;
	}
	if (bits >= 6)
		return EPROTO;
	*outlen = o;
	return 0;
}

static void put_be(uint8_t *p, uint64_t v, int n)
{
	int i;

	for (i = n - 1; i >= 0; i--) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

static uint64_t get_be(const uint8_t *p, int n)
{
	uint64_t v = 0;
	int i;

	for (i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/** AAD = header | u16 len(id1) | id1 | u16 len(id2) | id2 */
static int aad_build(const uint8_t *hdr, const char *id1, const char *id2,
		     uint8_t *aad, size_t aadsz, size_t *aad_len)
{
	size_t l1 = id1 ? strlen(id1) : 0, l2 = id2 ? strlen(id2) : 0;
	size_t n = KMS_SEAL_HDR + 4 + l1 + l2;

	if (l1 >= KMS_ID_MAX || l2 >= KMS_ID_MAX || n > aadsz)
		return EINVAL;
	memcpy(aad, hdr, KMS_SEAL_HDR);
	put_be(aad + KMS_SEAL_HDR, l1, 2);
	if (l1)
		memcpy(aad + KMS_SEAL_HDR + 2, id1, l1);
	put_be(aad + KMS_SEAL_HDR + 2 + l1, l2, 2);
	if (l2)
		memcpy(aad + KMS_SEAL_HDR + 4 + l1, id2, l2);
	*aad_len = n;
	return 0;
}

static int subkey(const uint8_t key[32], const uint8_t *hdr, uint8_t sk[32])
{
	uint8_t info[sizeof(seal_label)];

	memcpy(info, seal_label, sizeof(seal_label) - 1);
	info[sizeof(seal_label) - 1] = hdr[1];
	return kms_hkdf(hdr + 14, KMS_RAND_LEN, key, 32, info, sizeof(info),
			sk, 32);
}

/*
 * GCM with a fixed all-zero nonce is safe here because every seal uses its
 * own subkey, derived from a fresh 128-bit random salt: a (key, nonce)
 * pair repeats only if a salt repeats (2^-128 per pair of seals).
 */
static int gcm(int enc, const uint8_t sk[32], const uint8_t *aad,
	       size_t aad_len, const uint8_t *in, size_t n, uint8_t *out,
	       uint8_t tag[KMS_SEAL_TAG])
{
	static const uint8_t iv[12];
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int len, ok;

	if (!c)
		return ENOMEM;
	ok = EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, sk, iv, enc) == 1
	     && EVP_CipherUpdate(c, NULL, &len, aad, (int)aad_len) == 1
	     && (n == 0 || EVP_CipherUpdate(c, out, &len, in, (int)n) == 1);
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, KMS_SEAL_TAG,
					 tag) == 1;
	if (ok)
		ok = EVP_CipherFinal_ex(c, out + n, &len) == 1;
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, KMS_SEAL_TAG,
					 tag) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : (enc ? EIO : EBADMSG);
}

int kms_seal(const uint8_t key[32], enum kms_seal_type type,
	     uint32_t key_id, uint64_t time_s, const char *id1,
	     const char *id2, const uint8_t *pt, size_t pt_len,
	     uint8_t *out, size_t outsz, size_t *out_len)
{
	uint8_t aad[KMS_SEAL_HDR + 4 + 2 * KMS_ID_MAX], sk[32];
	size_t aad_len;
	int err;

	if (!key || !out || type <= 0 || type >= KMS_T_COUNT)
		return EINVAL;
	if (pt_len + KMS_SEAL_OVERHEAD > outsz)
		return EMSGSIZE;
	out[0] = KMS_PROTO_VERSION;
	out[1] = (uint8_t)type;
	put_be(out + 2, key_id, 4);
	put_be(out + 6, time_s, 8);
	err = kms_random(out + 14, KMS_RAND_LEN);
	if (!err)
		err = aad_build(out, id1, id2, aad, sizeof(aad), &aad_len);
	if (!err)
		err = subkey(key, out, sk);
	if (!err)
		err = gcm(1, sk, aad, aad_len, pt, pt_len, out + KMS_SEAL_HDR,
			  out + KMS_SEAL_HDR + pt_len);
	kms_wipe(sk, sizeof(sk));
	if (!err)
		*out_len = pt_len + KMS_SEAL_OVERHEAD;
	return err;
}

int kms_seal_peek(const uint8_t *in, size_t in_len, struct kms_seal_hdr *h)
{
	if (!in || in_len < KMS_SEAL_OVERHEAD)
		return EMSGSIZE;
	if (in_len > KMS_BLOB_MAX)
		return EMSGSIZE;
	h->version = in[0];
	h->type = in[1];
	h->key_id = (uint32_t)get_be(in + 2, 4);
	h->time_s = get_be(in + 6, 8);
	memcpy(h->salt, in + 14, KMS_RAND_LEN);
	return h->version == KMS_PROTO_VERSION ? 0 : EPROTO;
}

int kms_open(const uint8_t key[32], enum kms_seal_type type,
	     const char *id1, const char *id2, const uint8_t *in,
	     size_t in_len, struct kms_seal_hdr *hdr, uint8_t *pt,
	     size_t ptsz, size_t *pt_len)
{
	uint8_t aad[KMS_SEAL_HDR + 4 + 2 * KMS_ID_MAX], sk[32];
	uint8_t tag[KMS_SEAL_TAG];
	struct kms_seal_hdr h;
	size_t aad_len, n;
	int err;

	if (!key || !pt)
		return EINVAL;
	err = kms_seal_peek(in, in_len, &h);
	if (err)
		return err;
	if (h.type != type)
		return EPROTO;
	n = in_len - KMS_SEAL_OVERHEAD;
	if (n > ptsz)
		return EMSGSIZE;
	err = aad_build(in, id1, id2, aad, sizeof(aad), &aad_len);
	if (err)
		return EBADMSG;
	err = subkey(key, in, sk);
	memcpy(tag, in + in_len - KMS_SEAL_TAG, KMS_SEAL_TAG);
	if (!err)
		err = gcm(0, sk, aad, aad_len, in + KMS_SEAL_HDR, n, pt, tag);
	kms_wipe(sk, sizeof(sk));
	if (err) {
		kms_wipe(pt, n);
		return err;
	}
	if (hdr)
		*hdr = h;
	*pt_len = n;
	return 0;
}

void kms_fput(struct kms_fbuf *f, enum kms_field tag, const void *v,
	      size_t n)
{
	if (f->err)
		return;
	if (n > 0xffff || f->len + 3 + n > sizeof(f->b)) {
		f->err = EMSGSIZE;
		return;
	}
	f->b[f->len] = (uint8_t)tag;
	put_be(f->b + f->len + 1, n, 2);
	if (n)
		memcpy(f->b + f->len + 3, v, n);
	f->len += 3 + n;
}

void kms_fput_str(struct kms_fbuf *f, enum kms_field tag, const char *s)
{
	kms_fput(f, tag, s, s ? strlen(s) : 0);
}

void kms_fput_u32(struct kms_fbuf *f, enum kms_field tag, uint32_t v)
{
	uint8_t b[4];

	put_be(b, v, 4);
	kms_fput(f, tag, b, 4);
}

void kms_fput_u64(struct kms_fbuf *f, enum kms_field tag, uint64_t v)
{
	uint8_t b[8];

	put_be(b, v, 8);
	kms_fput(f, tag, b, 8);
}

/** Parse tag|len|value fields; unknown or repeated tags are errors */
int kms_fparse(const uint8_t *p, size_t n, struct kms_fields *fs)
{
	size_t off = 0;

	memset(fs, 0, sizeof(*fs));
	while (off < n) {
		uint8_t tag;
		size_t len;

		if (n - off < 3)
			return EMSGSIZE;
		tag = p[off];
		len = (size_t)get_be(p + off + 1, 2);
		if (tag == 0 || tag >= KMS_F_COUNT || fs->v[tag])
			return EPROTO;
		if (len > n - off - 3)
			return EMSGSIZE;
		fs->v[tag] = p + off + 3;
		fs->len[tag] = (uint16_t)len;
		off += 3 + len;
	}
	return 0;
}

int kms_fget_fixed(const struct kms_fields *fs, enum kms_field tag,
		   void *out, size_t n)
{
	if (!fs->v[tag])
		return ENOENT;
	if (fs->len[tag] != n)
		return EPROTO;
	memcpy(out, fs->v[tag], n);
	return 0;
}

int kms_fget_str(const struct kms_fields *fs, enum kms_field tag,
		 char *out, size_t outsz)
{
	size_t n = fs->len[tag];

	if (!fs->v[tag]) {
		if (outsz)
			out[0] = '\0';
		return ENOENT;
	}
	if (n >= outsz || memchr(fs->v[tag], '\0', n))
		return EPROTO;
	memcpy(out, fs->v[tag], n);
	out[n] = '\0';
	return 0;
}

int kms_fget_u32(const struct kms_fields *fs, enum kms_field tag,
		 uint32_t *v)
{
	uint8_t b[4];
	int err = kms_fget_fixed(fs, tag, b, 4);

	if (!err)
		*v = (uint32_t)get_be(b, 4);
	return err;
}

int kms_fget_u64(const struct kms_fields *fs, enum kms_field tag,
		 uint64_t *v)
{
	uint8_t b[8];
	int err = kms_fget_fixed(fs, tag, b, 8);

	if (!err)
		*v = get_be(b, 8);
	return err;
}

int kms_stmt_encode(const uint8_t *token, size_t token_len,
		    const uint8_t *sealed, size_t sealed_len, char *out,
		    size_t outsz)
{
	uint8_t buf[2 * KMS_BLOB_MAX + 2];

	if (token_len > KMS_BLOB_MAX || sealed_len > KMS_BLOB_MAX)
		return EMSGSIZE;
	put_be(buf, token_len, 2);
	memcpy(buf + 2, token, token_len);
	memcpy(buf + 2 + token_len, sealed, sealed_len);
	return kms_b64_encode(buf, 2 + token_len + sealed_len, out, outsz);
}

int kms_stmt_decode(const char *b64, uint8_t *buf, size_t bufsz,
		    const uint8_t **token, size_t *token_len,
		    const uint8_t **sealed, size_t *sealed_len)
{
	size_t n, tl;
	int err;

	if (!b64)
		return EINVAL;
	err = kms_b64_decode(b64, buf, bufsz, &n);
	if (err)
		return err;
	if (n < 2)
		return EMSGSIZE;
	tl = (size_t)get_be(buf, 2);
	if (tl > n - 2 || tl < KMS_SEAL_OVERHEAD ||
	    n - 2 - tl < KMS_SEAL_OVERHEAD)
		return EMSGSIZE;
	*token = buf + 2;
	*token_len = tl;
	*sealed = buf + 2 + tl;
	*sealed_len = n - 2 - tl;
	return 0;
}

int kms_boot_mac(const uint8_t cred[32],
		 const uint8_t exporter[KMS_EXPORTER_LEN], const char *id,
		 uint64_t time_s, const uint8_t nonce[KMS_RAND_LEN],
		 uint8_t mac[KMS_MAC_LEN])
{
	static const char label[] = "keymix bootstrap v1";
	uint8_t m[sizeof(label) + KMS_EXPORTER_LEN + KMS_ID_MAX + 8 +
		  KMS_RAND_LEN];
	size_t l = strlen(id), o = 0;

	if (l >= KMS_ID_MAX)
		return EINVAL;
	memcpy(m, label, sizeof(label));
	o = sizeof(label);
	memcpy(m + o, exporter, KMS_EXPORTER_LEN);
	o += KMS_EXPORTER_LEN;
	memcpy(m + o, id, l + 1);
	o += l + 1;
	put_be(m + o, time_s, 8);
	o += 8;
	memcpy(m + o, nonce, KMS_RAND_LEN);
	o += KMS_RAND_LEN;
	return kms_hmac(cred, 32, m, o, mac);
}

int kms_join_key(const char *secret, const char *conf_ref,
		 uint8_t kjoin[32])
{
	static const char label[] = "keymix join key v1";

	return kms_hkdf((const uint8_t *)conf_ref, strlen(conf_ref),
			(const uint8_t *)secret, strlen(secret),
			(const uint8_t *)label, sizeof(label) - 1, kjoin, 32);
}

int kms_join_proof(const uint8_t kjoin[32], const char *id,
		   const char *conf_ref, const uint8_t rb[KMS_RAND_LEN],
		   uint8_t proof[KMS_MAC_LEN])
{
	static const char label[] = "keymix join proof v1";
	uint8_t m[sizeof(label) + 2 * KMS_ID_MAX + KMS_RAND_LEN];
	size_t li = strlen(id), lr = strlen(conf_ref), o;

	if (li >= KMS_ID_MAX || lr >= KMS_ID_MAX)
		return EINVAL;
	memcpy(m, label, sizeof(label));
	o = sizeof(label);
	memcpy(m + o, id, li + 1);
	o += li + 1;
	memcpy(m + o, conf_ref, lr + 1);
	o += lr + 1;
	memcpy(m + o, rb, KMS_RAND_LEN);
	o += KMS_RAND_LEN;
	return kms_hmac(kjoin, 32, m, o, proof);
}

int kms_fork_key(const uint8_t k[32], const uint8_t rx[KMS_RAND_LEN],
		 const char *ida, const char *idx, uint8_t out[32])
{
	static const char label[] = "keymix fork v1";
	uint8_t info[sizeof(label) + 2 * KMS_ID_MAX];
	size_t la = strlen(ida), lx = strlen(idx), o;

	if (la >= KMS_ID_MAX || lx >= KMS_ID_MAX)
		return EINVAL;
	memcpy(info, label, sizeof(label));
	o = sizeof(label);
	memcpy(info + o, ida, la + 1);
	o += la + 1;
	memcpy(info + o, idx, lx);
	o += lx;
	return kms_hkdf(rx, KMS_RAND_LEN, k, 32, info, o, out, 32);
}

int kms_frame_len(const uint8_t hdr[4], size_t *len)
{
	uint64_t n = get_be(hdr, 4);

	if (n == 0 || n > KMS_FRAME_MAX)
		return EMSGSIZE;
	*len = (size_t)n;
	return 0;
}
