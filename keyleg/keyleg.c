/** @file keyleg.c  Per-leg SRTP/SRTCP contexts on libsrtp2 */

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <srtp2/srtp.h>

#include "keyleg/keyleg.h"
#include "keyleg_int.h"

/* SRTCP trailer: the E flag and 31-bit index (RFC 3711 section 3.4) */
#define SRTCP_INDEX_LEN 4

enum {
	DEF_REPLAY_WINDOW = 128,
	DEF_OVERLAP_PACKETS = 1000,
	DEF_OVERLAP_MS = 2000,
};

struct profile_info {
	const char *name;
	const char *alias;        /* DTLS-SRTP name (RFC 5764/7714) */
	srtp_profile_t srtp;
	size_t key_len, salt_len, tag_len, rtcp_tag_len;
};

static const struct profile_info profiles[KEYLEG_PROFILE_COUNT] = {
	[KEYLEG_AES_CM_128_HMAC_SHA1_80] = {
		"AES_CM_128_HMAC_SHA1_80", "SRTP_AES128_CM_SHA1_80",
		srtp_profile_aes128_cm_sha1_80, 16, 14, 10, 10 },
	[KEYLEG_AES_CM_128_HMAC_SHA1_32] = {
		"AES_CM_128_HMAC_SHA1_32", "SRTP_AES128_CM_SHA1_32",
		srtp_profile_aes128_cm_sha1_32, 16, 14, 4, 10 },
	[KEYLEG_AES_256_CM_HMAC_SHA1_80] = {
		"AES_256_CM_HMAC_SHA1_80", "AES_CM_256_HMAC_SHA1_80",
		srtp_profile_reserved, 32, 14, 10, 10 },
	[KEYLEG_AEAD_AES_128_GCM] = {
		"AEAD_AES_128_GCM", "SRTP_AEAD_AES_128_GCM",
		srtp_profile_aead_aes_128_gcm, 16, 12, 16, 16 },
	[KEYLEG_AEAD_AES_256_GCM] = {
		"AEAD_AES_256_GCM", "SRTP_AEAD_AES_256_GCM",
		srtp_profile_aead_aes_256_gcm, 32, 12, 16, 16 },
};

/*
 * One leg.  rx and tx are separate libsrtp2 sessions, each created from a
 * single "any inbound" / "any outbound" template: libsrtp2 clones the
 * template for every SSRC it meets (an allocation once per new SSRC, not
 * per packet).  prev is the receive session of the previous key during a
 * rekey overlap, NULL otherwise.
 */
struct keyleg {
	enum keyleg_profile profile;
	srtp_t rx, tx, prev;
	uint64_t prev_since_ms;   /* now_ms given to keyleg_rekey()      */
	uint32_t prev_left;       /* packets prev may still accept       */
	uint32_t replay_window, overlap_packets, overlap_ms;
	int enc_ext[KEYLEG_MAX_ENC_EXT];
	int n_enc_ext;
	struct keyleg_stats st;
	uint8_t *scratch;         /* KEYLEG_MAX_PACKET, once rekeyed     */
};

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_err;

static void do_init(void)
{
	init_err = srtp_init() == srtp_err_status_ok ? 0 : EPROTO;
}

/**
 * Initialise libsrtp2 once per process (thread-safe; keyleg_alloc calls it
 * too).  Returns 0 or EPROTO.
 */
int keyleg_init(void)
{
	if (pthread_once(&init_once, do_init))
		return EAGAIN;
	return init_err;
}

/** Version string of the linked libsrtp2, e.g. "libsrtp2 2.5.0" */
const char *keyleg_srtp_version(void)
{
	return srtp_get_version_string();
}

/** Crypto backend of the linked libsrtp2: "openssl" for the private build */
const char *keyleg_crypto_backend(void)
{
	if (keyleg_init())
		return "unknown";
	return keyleg_glue_backend();
}

/**
 * Parse an SDES crypto-suite name (RFC 4568/6188/7714, e.g.
 * "AES_CM_128_HMAC_SHA1_80") or its DTLS-SRTP alias.  EINVAL if unknown.
 */
int keyleg_profile_parse(const char *name, enum keyleg_profile *profilep)
{
	int i;

	if (!name || !profilep)
		return EINVAL;
	for (i = 0; i < KEYLEG_PROFILE_COUNT; i++) {
		if (!strcmp(name, profiles[i].name) ||
		    !strcmp(name, profiles[i].alias)) {
			*profilep = (enum keyleg_profile)i;
			return 0;
		}
	}
	return EINVAL;
}

static const struct profile_info *pinfo(enum keyleg_profile p)
{
	if ((unsigned)p >= KEYLEG_PROFILE_COUNT)
		return NULL;
	return &profiles[p];
}

/** SDES name of a profile, "?" if out of range */
const char *keyleg_profile_name(enum keyleg_profile profile)
{
	const struct profile_info *pi = pinfo(profile);

	return pi ? pi->name : "?";
}

/** Master key length in bytes (0 if out of range) */
size_t keyleg_profile_key_len(enum keyleg_profile profile)
{
	const struct profile_info *pi = pinfo(profile);

	return pi ? pi->key_len : 0;
}

/** Master salt length in bytes (0 if out of range) */
size_t keyleg_profile_salt_len(enum keyleg_profile profile)
{
	const struct profile_info *pi = pinfo(profile);

	return pi ? pi->salt_len : 0;
}

/** SRTP (RTP) authentication tag length in bytes (0 if out of range) */
size_t keyleg_profile_tag_len(enum keyleg_profile profile)
{
	const struct profile_info *pi = pinfo(profile);

	return pi ? pi->tag_len : 0;
}

/** Short name of a status, e.g. "auth" */
const char *keyleg_status_name(enum keyleg_status st)
{
	static const char *const names[KEYLEG_STATUS_COUNT] = {
		[KEYLEG_OK] = "ok",
		[KEYLEG_ERR_AUTH] = "auth",
		[KEYLEG_ERR_REPLAY] = "replay",
		[KEYLEG_ERR_MALFORMED] = "malformed",
		[KEYLEG_ERR_NOSPACE] = "nospace",
		[KEYLEG_ERR_INTERNAL] = "internal",
	};

	if ((unsigned)st >= KEYLEG_STATUS_COUNT)
		return "?";
	return names[st];
}

static enum keyleg_status xlate(srtp_err_status_t e)
{
	switch (e) {
	case srtp_err_status_ok:
		return KEYLEG_OK;
	case srtp_err_status_auth_fail:
		return KEYLEG_ERR_AUTH;
	case srtp_err_status_replay_fail:
	case srtp_err_status_replay_old:
	case srtp_err_status_pkt_idx_old:
		return KEYLEG_ERR_REPLAY;
	case srtp_err_status_bad_param:
	case srtp_err_status_parse_err:
		return KEYLEG_ERR_MALFORMED;
	default:
		return KEYLEG_ERR_INTERNAL;
	}
}

/*
 * Fill a libsrtp2 policy for one direction.  libsrtp2 copies what it needs
 * (it derives the session keys at srtp_create/srtp_add_stream time and
 * keeps no pointer to the master key), so ks may be wiped afterwards.
 */
static int set_policy(const struct keyleg *kl, srtp_policy_t *pol,
		      const struct keyleg_keysalt *ks, srtp_ssrc_type_t type)
{
	const struct profile_info *pi = &profiles[kl->profile];

	memset(pol, 0, sizeof(*pol));
	if (kl->profile == KEYLEG_AES_256_CM_HMAC_SHA1_80) {
		srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&pol->rtp);
		srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&pol->rtcp);
	}
	else {
		if (srtp_crypto_policy_set_from_profile_for_rtp(&pol->rtp,
								pi->srtp))
			return ENOTSUP;
		if (srtp_crypto_policy_set_from_profile_for_rtcp(&pol->rtcp,
								 pi->srtp))
			return ENOTSUP;
	}
	pol->ssrc.type = type;
	/* libsrtp2 takes a non-const pointer but only reads the key */
	pol->key = (unsigned char *)(uintptr_t)ks->b;
	pol->window_size = kl->replay_window;
	pol->allow_repeat_tx = 0;
	pol->enc_xtn_hdr = kl->n_enc_ext ? (int *)kl->enc_ext : NULL;
	pol->enc_xtn_hdr_count = kl->n_enc_ext;
	pol->next = NULL;
	return 0;
}

static int srtp_errno(srtp_err_status_t e)
{
	switch (e) {
	case srtp_err_status_ok:
		return 0;
	case srtp_err_status_alloc_fail:
		return ENOMEM;
	case srtp_err_status_bad_param:
		return EINVAL;
	default:
		return EPROTO;
	}
}

static int check_ks(const struct keyleg *kl, const struct keyleg_keysalt *ks)
{
	const struct profile_info *pi = &profiles[kl->profile];

	if (!ks || ks->len != pi->key_len + pi->salt_len)
		return EINVAL;
	return 0;
}

static int set_opts(struct keyleg *kl, const struct keyleg_opts *o)
{
	size_t i;

	kl->replay_window = DEF_REPLAY_WINDOW;
	kl->overlap_packets = DEF_OVERLAP_PACKETS;
	kl->overlap_ms = DEF_OVERLAP_MS;
	if (!o)
		return 0;
	if (o->replay_window) {
		/* libsrtp2's limits for its extended replay database */
		if (o->replay_window < 64 || o->replay_window >= 0x8000)
			return EINVAL;
		kl->replay_window = o->replay_window;
	}
	if (o->overlap_packets)
		kl->overlap_packets = o->overlap_packets;
	if (o->overlap_ms)
		kl->overlap_ms = o->overlap_ms;
	if (o->n_enc_ext > KEYLEG_MAX_ENC_EXT)
		return EINVAL;
	for (i = 0; i < o->n_enc_ext; i++) {
		/* one-byte header ids (RFC 8285); 15 is reserved */
		if (o->enc_ext[i] < 1 || o->enc_ext[i] > 14)
			return EINVAL;
		kl->enc_ext[i] = o->enc_ext[i];
	}
	kl->n_enc_ext = (int)o->n_enc_ext;
	return 0;
}

static srtp_t session_free(srtp_t s)
{
	/* srtp_dealloc wipes the session keys and salts it derived */
	if (s)
		(void)srtp_dealloc(s);
	return NULL;
}

/**
 * Create a leg context.  rx protects what the peer sends us, tx what we
 * send; each is master key || master salt of the profile's exact length.
 * Returns 0, EINVAL (bad profile, key length or option), ENOMEM or EPROTO.
 */
int keyleg_alloc(struct keyleg **klp, enum keyleg_profile profile,
		 const struct keyleg_keysalt *rx,
		 const struct keyleg_keysalt *tx,
		 const struct keyleg_opts *opts)
{
	struct keyleg *kl;
	srtp_policy_t pol;
	int err;

	if (!klp || !pinfo(profile))
		return EINVAL;
	err = keyleg_init();
	if (err)
		return err;
	kl = calloc(1, sizeof(*kl));
	if (!kl)
		return ENOMEM;
	kl->profile = profile;
	err = set_opts(kl, opts);
	if (!err)
		err = check_ks(kl, rx) ? EINVAL : check_ks(kl, tx);
	if (err)
		goto out;

	err = set_policy(kl, &pol, rx, ssrc_any_inbound);
	if (!err)
		err = srtp_errno(srtp_create(&kl->rx, &pol));
	if (err)
		goto out;
	err = set_policy(kl, &pol, tx, ssrc_any_outbound);
	if (!err)
		err = srtp_errno(srtp_create(&kl->tx, &pol));
 out:
	OPENSSL_cleanse(&pol, sizeof(pol));
	if (err)
		keyleg_free(kl);
	else
		*klp = kl;
	return err;
}

static void prev_drop(struct keyleg *kl)
{
	kl->prev = session_free(kl->prev);
	kl->prev_left = 0;
}

/** Free a leg context (libsrtp2 wipes its keys); returns NULL */
struct keyleg *keyleg_free(struct keyleg *kl)
{
	if (!kl)
		return NULL;
	kl->rx = session_free(kl->rx);
	kl->tx = session_free(kl->tx);
	prev_drop(kl);
	if (kl->scratch) {
		OPENSSL_cleanse(kl->scratch, KEYLEG_MAX_PACKET);
		free(kl->scratch);
	}
	OPENSSL_cleanse(kl, sizeof(*kl));
	free(kl);
	return NULL;
}

/* Create one direction's new session, carrying the old one's streams. */
static int new_session(struct keyleg *kl, srtp_t *sp, srtp_t old,
		       const struct keyleg_keysalt *ks, srtp_ssrc_type_t type)
{
	srtp_policy_t pol;
	int err;

	*sp = NULL;
	err = set_policy(kl, &pol, ks, type);
	if (!err)
		err = srtp_errno(srtp_create(sp, &pol));
	if (!err)
		err = keyleg_glue_carry(old, *sp, &pol,
					type == ssrc_any_outbound);
	if (err)
		*sp = session_free(*sp);
	OPENSSL_cleanse(&pol, sizeof(pol));
	return err;
}

/**
 * Rekey in place.  The transmit side switches at once; the receive side
 * keeps the previous key for trial decryption during the overlap: at most
 * opts.overlap_packets packets and only while now_ms - (this now_ms) <=
 * opts.overlap_ms (docs/keys.md).  A rekey during an overlap ends the
 * older overlap.  The RTP packet index (ROC + sequence number) of every
 * SSRC carries over, in both directions.  On error the leg is unchanged.
 */
int keyleg_rekey(struct keyleg *kl, const struct keyleg_keysalt *rx,
		 const struct keyleg_keysalt *tx, uint64_t now_ms)
{
	srtp_t nrx = NULL, ntx = NULL;
	int err;

	if (!kl || check_ks(kl, rx) || check_ks(kl, tx))
		return EINVAL;
	if (!kl->scratch) {
		kl->scratch = malloc(KEYLEG_MAX_PACKET);
		if (!kl->scratch)
			return ENOMEM;
	}
	err = new_session(kl, &nrx, kl->rx, rx, ssrc_any_inbound);
	if (!err)
		err = new_session(kl, &ntx, kl->tx, tx, ssrc_any_outbound);
	if (err) {
		session_free(nrx);
		return err;
	}

	prev_drop(kl);
	kl->prev = kl->rx;
	kl->prev_since_ms = now_ms;
	kl->prev_left = kl->overlap_packets;
	kl->rx = nrx;
	session_free(kl->tx);
	kl->tx = ntx;
	kl->st.rekeys++;
	return 0;
}

/** Profile of a leg */
enum keyleg_profile keyleg_profile(const struct keyleg *kl)
{
	return kl->profile;
}

/** Copy a leg's counters */
void keyleg_stats(const struct keyleg *kl, struct keyleg_stats *st)
{
	if (kl && st)
		*st = kl->st;
}

static int stream_roc(srtp_t s, uint32_t ssrc, uint32_t *rocp)
{
	if (!s || !rocp)
		return EINVAL;
	return srtp_get_stream_roc(s, ssrc, rocp) ? ENOENT : 0;
}

/** Receive-side rollover counter of an SSRC; ENOENT if never seen */
int keyleg_rx_roc(const struct keyleg *kl, uint32_t ssrc, uint32_t *rocp)
{
	return kl ? stream_roc(kl->rx, ssrc, rocp) : EINVAL;
}

/** Transmit-side rollover counter of an SSRC; ENOENT if never sent */
int keyleg_tx_roc(const struct keyleg *kl, uint32_t ssrc, uint32_t *rocp)
{
	return kl ? stream_roc(kl->tx, ssrc, rocp) : EINVAL;
}

/*
 * RTP header length (fixed part, CSRCs, extension) or 0 if the packet is
 * not a well-formed RTP header.  Done here so libsrtp2 never computes a
 * pointer outside the buffer from a hostile length.
 */
static size_t rtp_hdr_len(const uint8_t *p, size_t len)
{
	size_t h;

	if (len < 12 || (p[0] >> 6) != 2)
		return 0;
	h = 12 + 4 * (size_t)(p[0] & 0x0f);
	if (p[0] & 0x10) {
		if (len < h + 4)
			return 0;
		h += 4 + 4 * (((size_t)p[h + 2] << 8) | p[h + 3]);
	}
	return h <= len ? h : 0;
}

static int rtcp_ok(const uint8_t *p, size_t len)
{
	return len >= 8 && (p[0] >> 6) == 2;
}

/**
 * Protect an RTP packet in place; cap is the buffer size and must leave
 * room for the tag.  Never allocates.  KEYLEG_ERR_REPLAY if this sequence
 * number was already sent under the current key.
 */
enum keyleg_status keyleg_protect_rtp(struct keyleg *kl, uint8_t *pkt,
				      size_t *lenp, size_t cap)
{
	enum keyleg_status st;
	size_t tag;
	int len;

	if (!kl || !pkt || !lenp)
		return KEYLEG_ERR_INTERNAL;
	tag = profiles[kl->profile].tag_len;
	if (*lenp > KEYLEG_MAX_PACKET || !rtp_hdr_len(pkt, *lenp))
		return KEYLEG_ERR_MALFORMED;
	if (cap < *lenp + tag)
		return KEYLEG_ERR_NOSPACE;
	len = (int)*lenp;
	st = xlate(srtp_protect(kl->tx, pkt, &len));
	if (st != KEYLEG_OK)
		return st;
	*lenp = (size_t)len;
	kl->st.rtp_out++;
	return KEYLEG_OK;
}

/**
 * Protect an RTCP compound packet in place (SRTCP, E=1, 31-bit index);
 * cap must leave room for the index word and the tag.
 */
enum keyleg_status keyleg_protect_rtcp(struct keyleg *kl, uint8_t *pkt,
				       size_t *lenp, size_t cap)
{
	enum keyleg_status st;
	size_t trailer;
	int len;

	if (!kl || !pkt || !lenp)
		return KEYLEG_ERR_INTERNAL;
	trailer = SRTCP_INDEX_LEN + profiles[kl->profile].rtcp_tag_len;
	if (*lenp > KEYLEG_MAX_PACKET || !rtcp_ok(pkt, *lenp))
		return KEYLEG_ERR_MALFORMED;
	if (cap < *lenp + trailer)
		return KEYLEG_ERR_NOSPACE;
	len = (int)*lenp;
	st = xlate(srtp_protect_rtcp(kl->tx, pkt, &len));
	if (st != KEYLEG_OK)
		return st;
	*lenp = (size_t)len;
	kl->st.rtcp_out++;
	return KEYLEG_OK;
}

/*
 * Is the previous receive key still usable?  Drops it when the overlap has
 * run out (once per rekey: the only free on the packet path).
 */
static int prev_live(struct keyleg *kl, uint64_t now_ms)
{
	uint64_t age;

	if (!kl->prev)
		return 0;
	age = now_ms >= kl->prev_since_ms ? now_ms - kl->prev_since_ms : 0;
	if (kl->prev_left == 0 || age > kl->overlap_ms) {
		prev_drop(kl);
		return 0;
	}
	return 1;
}

typedef srtp_err_status_t (unprotect_h)(srtp_t s, void *pkt, int *lenp);

/*
 * Unprotect with the current key, and during a rekey overlap retry with
 * the previous one.  AES-GCM decrypts in place before it checks the tag,
 * so the packet is saved first and restored for the second attempt.  The
 * status returned on failure is the current key's.
 */
static enum keyleg_status unprotect(struct keyleg *kl, unprotect_h *fn,
				    uint8_t *pkt, size_t *lenp,
				    uint64_t now_ms)
{
	enum keyleg_status st;
	int live, len = (int)*lenp;

	live = prev_live(kl, now_ms);
	if (live)
		memcpy(kl->scratch, pkt, *lenp);
	st = xlate(fn(kl->rx, pkt, &len));
	if (live && (st == KEYLEG_ERR_AUTH || st == KEYLEG_ERR_REPLAY)) {
		memcpy(pkt, kl->scratch, *lenp);
		len = (int)*lenp;
		if (fn(kl->prev, pkt, &len) == srtp_err_status_ok) {
			st = KEYLEG_OK;
			kl->prev_left--;
			kl->st.prev_key_accepts++;
		}
	}
	if (st == KEYLEG_OK)
		*lenp = (size_t)len;
	return st;
}

/**
 * Verify and decrypt an SRTP packet in place; on success *lenp loses the
 * tag.  On failure the buffer's content is unspecified and the drop is
 * counted under its status.
 */
enum keyleg_status keyleg_unprotect_rtp(struct keyleg *kl, uint8_t *pkt,
					size_t *lenp, uint64_t now_ms)
{
	enum keyleg_status st;
	size_t h;

	if (!kl || !pkt || !lenp)
		return KEYLEG_ERR_INTERNAL;
	st = KEYLEG_ERR_MALFORMED;
	if (*lenp > KEYLEG_MAX_PACKET)
		goto drop;
	h = rtp_hdr_len(pkt, *lenp);
	if (!h || *lenp < h + profiles[kl->profile].tag_len)
		goto drop;
	st = unprotect(kl, srtp_unprotect, pkt, lenp, now_ms);
	if (st != KEYLEG_OK)
		goto drop;
	kl->st.rtp_in++;
	return KEYLEG_OK;
 drop:
	kl->st.drops[st]++;
	return st;
}

/** Verify and decrypt an SRTCP packet in place (see keyleg_unprotect_rtp) */
enum keyleg_status keyleg_unprotect_rtcp(struct keyleg *kl, uint8_t *pkt,
					 size_t *lenp, uint64_t now_ms)
{
	enum keyleg_status st;
	size_t trailer;

	if (!kl || !pkt || !lenp)
		return KEYLEG_ERR_INTERNAL;
	trailer = SRTCP_INDEX_LEN + profiles[kl->profile].rtcp_tag_len;
	st = KEYLEG_ERR_MALFORMED;
	if (*lenp > KEYLEG_MAX_PACKET || !rtcp_ok(pkt, *lenp) ||
	    *lenp < 8 + trailer)
		goto drop;
	st = unprotect(kl, srtp_unprotect_rtcp, pkt, lenp, now_ms);
	if (st != KEYLEG_OK)
		goto drop;
	kl->st.rtcp_in++;
	return KEYLEG_OK;
 drop:
	kl->st.drops[st]++;
	return st;
}
