/** @file keys.c  Inline (SDES-style) keys and leg-key derivation */

#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "keyleg/keyleg.h"

/** Overwrite n bytes at p with zeros in a way the compiler keeps */
void keyleg_wipe(void *p, size_t n)
{
	if (p && n)
		OPENSSL_cleanse(p, n);
}

/** Constant-time comparison: 1 if the n bytes are equal, else 0 */
int keyleg_ct_equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

static const char b64_alpha[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/**
 * Strict standard base64 (RFC 4648 section 4), as docs/keys.md spells
 * inline keys: no whitespace, '=' only at the end and only as much as
 * completes the last quantum, the unused low bits of the last character
 * zero (one encoding per key).  Shared by every module that reads keys.
 *
 * "" is the empty string (RFC 4648's first vector); callers that need
 * bytes check the length.
 *
 * @return 0, EINVAL (malformed) or ENOSPC (longer than outsz)
 */
int keyleg_b64_decode(const char *s, uint8_t *out, size_t outsz,
		      size_t *outlen)
{
	size_t n = strlen(s), pad = 0, i, o = 0;
	uint32_t acc = 0;
	int bits = 0, v;

	while (n > 0 && s[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if ((pad && (n + pad) % 4) || n % 4 == 1)
		return EINVAL;
	for (i = 0; i < n; i++) {
		v = b64_val(s[i]);
		if (v < 0)
			return EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= outsz)
				return ENOSPC;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (acc & ((1u << bits) - 1))
		return EINVAL;
	*outlen = o;
	return 0;
}

/**
 * Decode an inline key: base64 of master key || master salt, padding
 * optional, exactly the profile's length (30, 30, 46, 28 or 44 bytes).
 * Returns 0 or EINVAL; ks is wiped on error.
 */
int keyleg_inline_decode(const char *b64, enum keyleg_profile profile,
			 struct keyleg_keysalt *ks)
{
	size_t want = keyleg_profile_key_len(profile) +
		keyleg_profile_salt_len(profile);
	size_t got = 0;
	int err;

	if (!b64 || !ks || !want)
		return EINVAL;
	err = keyleg_b64_decode(b64, ks->b, sizeof(ks->b), &got);
	if (err || got != want)
		err = EINVAL;
	if (err) {
		keyleg_wipe(ks, sizeof(*ks));
		return err;
	}
	ks->len = got;
	return 0;
}

/**
 * Encode master key || salt as padded standard base64 into out (NUL
 * terminated).  EINVAL for an empty or too long key, ENOSPC if outsz is
 * too small.
 */
int keyleg_inline_encode(const struct keyleg_keysalt *ks, char *out,
			 size_t outsz)
{
	size_t i, o = 0;
	uint32_t v;

	if (!ks || !out || !ks->len || ks->len > KEYLEG_MAX_KEYSALT)
		return EINVAL;
	if (outsz < 4 * ((ks->len + 2) / 3) + 1)
		return ENOSPC;
	for (i = 0; i < ks->len; i += 3) {
		v = (uint32_t)ks->b[i] << 16;
		if (i + 1 < ks->len)
			v |= (uint32_t)ks->b[i + 1] << 8;
		if (i + 2 < ks->len)
			v |= ks->b[i + 2];
		out[o++] = b64_alpha[(v >> 18) & 63];
		out[o++] = b64_alpha[(v >> 12) & 63];
		out[o++] = i + 1 < ks->len ? b64_alpha[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < ks->len ? b64_alpha[v & 63] : '=';
	}
	out[o] = '\0';
	return 0;
}

/**
 * HKDF-SHA-256 (RFC 5869, extract then expand) through OpenSSL's EVP_KDF.
 * An empty salt means HashLen zero bytes, as the RFC says.  out_len is at
 * most 255 * 32.  Returns 0, EINVAL or EPROTO.
 */
int keyleg_hkdf(const uint8_t *salt, size_t salt_len,
		const uint8_t *ikm, size_t ikm_len,
		const uint8_t *info, size_t info_len,
		uint8_t *out, size_t out_len)
{
	EVP_KDF *kdf;
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5], *p = params;
	int err = EPROTO;

	if (!ikm || !out || !out_len || out_len > 255 * 32 ||
	    (salt_len && !salt) || (info_len && !info))
		return EINVAL;
	kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_HKDF, NULL);
	if (kdf)
		kctx = EVP_KDF_CTX_new(kdf);
	if (!kctx)
		goto out;
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
						(char *)"SHA256", 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
						 (void *)(uintptr_t)ikm,
						 ikm_len);
	if (salt_len)
		*p++ = OSSL_PARAM_construct_octet_string(
			OSSL_KDF_PARAM_SALT, (void *)(uintptr_t)salt,
			salt_len);
	if (info_len)
		*p++ = OSSL_PARAM_construct_octet_string(
			OSSL_KDF_PARAM_INFO, (void *)(uintptr_t)info,
			info_len);
	*p = OSSL_PARAM_construct_end();
	if (EVP_KDF_derive(kctx, out, out_len, params) == 1)
		err = 0;
 out:
	EVP_KDF_CTX_free(kctx);
	EVP_KDF_free(kdf);
	if (err)
		keyleg_wipe(out, out_len);
	return err;
}

#define DERIVE_PREFIX "keymix leg v1|"

/* Derive one direction: info = prefix || profile name || "|" || label. */
static int derive_dir(const uint8_t *leg_key, size_t leg_key_len,
		      enum keyleg_profile profile, const char *label,
		      struct keyleg_keysalt *ks)
{
	const char *pname = keyleg_profile_name(profile);
	size_t len = keyleg_profile_key_len(profile) +
		keyleg_profile_salt_len(profile);
	size_t lp = strlen(DERIVE_PREFIX), ln = strlen(pname);
	size_t ll = strlen(label);
	uint8_t info[128];
	int err;

	if (lp + ln + 1 + ll > sizeof(info))
		return EINVAL;
	memcpy(info, DERIVE_PREFIX, lp);
	memcpy(info + lp, pname, ln);
	info[lp + ln] = '|';
	memcpy(info + lp + ln + 1, label, ll);
	err = keyleg_hkdf(NULL, 0, leg_key, leg_key_len, info,
			  lp + ln + 1 + ll, ks->b, len);
	ks->len = err ? 0 : len;
	return err;
}

/**
 * Derive both directions' master key || salt from a KMS leg key (at least
 * 16 bytes) by role, never by local rx/tx: see docs/keys.md for the exact
 * construction.  EINVAL for a short key or a side that is not part of the
 * flow.  rx and tx are wiped on error.
 */
int keyleg_derive(const uint8_t *leg_key, size_t leg_key_len,
		  enum keyleg_profile profile, enum keyleg_flow flow,
		  enum keyleg_side side, struct keyleg_keysalt *rx,
		  struct keyleg_keysalt *tx)
{
	const char *up, *down, *lrx, *ltx;
	int err;

	if (!leg_key || leg_key_len < 16 || !rx || !tx ||
	    !keyleg_profile_key_len(profile))
		return EINVAL;
	if (flow == KEYLEG_FLOW_CONFERENCE) {
		up = "participant-to-bridge";
		down = "bridge-to-participant";
		if (side == KEYLEG_SIDE_BRIDGE) {
			lrx = up;
			ltx = down;
		}
		else if (side == KEYLEG_SIDE_PARTICIPANT) {
			lrx = down;
			ltx = up;
		}
		else
			return EINVAL;
	}
	else if (flow == KEYLEG_FLOW_P2P) {
		up = "initiator-to-responder";
		down = "responder-to-initiator";
		if (side == KEYLEG_SIDE_INITIATOR) {
			lrx = down;
			ltx = up;
		}
		else if (side == KEYLEG_SIDE_RESPONDER) {
			lrx = up;
			ltx = down;
		}
		else
			return EINVAL;
	}
	else
		return EINVAL;

	err = derive_dir(leg_key, leg_key_len, profile, lrx, rx);
	if (!err)
		err = derive_dir(leg_key, leg_key_len, profile, ltx, tx);
	if (err) {
		keyleg_wipe(rx, sizeof(*rx));
		keyleg_wipe(tx, sizeof(*tx));
	}
	return err;
}
