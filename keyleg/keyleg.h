/**
 * @file keyleg.h  Per-leg SRTP/SRTCP crypto contexts and leg-key derivation
 *
 * One struct keyleg protects one media leg: the receive direction (what the
 * peer sends us) and the transmit direction (what we send the peer), each
 * with its own master key and salt.  Packets are processed in place in
 * caller-owned buffers that carry KEYLEG_TAILROOM bytes of spare room.
 * Nothing here allocates or logs per packet.
 *
 * All functions returning int return 0 or an errno value unless they are
 * documented to return enum keyleg_status.
 */

#ifndef KEYLEG_H
#define KEYLEG_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define KEYLEG_WUR __attribute__((warn_unused_result))
#else
#define KEYLEG_WUR
#endif

/** Bytes an SRTP/SRTCP protect may append (tag + SRTCP index, no MKI) */
#define KEYLEG_TAILROOM 32
/** Largest master key || master salt of any profile (AES-256-CM: 32+14) */
#define KEYLEG_MAX_KEYSALT 46
/** Largest number of RFC 6904 encrypted header-extension ids per leg */
#define KEYLEG_MAX_ENC_EXT 14
/** Largest packet keyleg protects or unprotects (longer: MALFORMED) */
#define KEYLEG_MAX_PACKET 8192

enum keyleg_profile {
	KEYLEG_AES_CM_128_HMAC_SHA1_80 = 0,
	KEYLEG_AES_CM_128_HMAC_SHA1_32,
	KEYLEG_AES_256_CM_HMAC_SHA1_80,
	KEYLEG_AEAD_AES_128_GCM,
	KEYLEG_AEAD_AES_256_GCM,
	KEYLEG_PROFILE_COUNT
};

/** Result of a protect/unprotect call (also the per-leg counter index) */
enum keyleg_status {
	KEYLEG_OK = 0,
	KEYLEG_ERR_AUTH,       /**< authentication tag did not verify     */
	KEYLEG_ERR_REPLAY,     /**< replayed or too old for the window    */
	KEYLEG_ERR_MALFORMED,  /**< truncated, oversized or not RTP/RTCP  */
	KEYLEG_ERR_NOSPACE,    /**< buffer lacks room for the trailer     */
	KEYLEG_ERR_INTERNAL,   /**< anything else libsrtp2 reported       */
	KEYLEG_STATUS_COUNT
};

/**
 * Which key-management flow a leg key belongs to.  Directions are named by
 * role, never by local rx/tx, so the two ends can never derive swapped keys.
 */
enum keyleg_flow {
	KEYLEG_FLOW_CONFERENCE = 0, /**< participant <-> bridge (e2ae leg)    */
	KEYLEG_FLOW_P2P,            /**< initiator <-> responder (e2e call)   */
};

/** Which end of the flow this process is */
enum keyleg_side {
	KEYLEG_SIDE_BRIDGE = 0,     /**< conference: the bridge (MRFP)        */
	KEYLEG_SIDE_PARTICIPANT,    /**< conference: the UE                   */
	KEYLEG_SIDE_INITIATOR,      /**< p2p: the caller                      */
	KEYLEG_SIDE_RESPONDER,      /**< p2p: the callee                      */
};

/** Master key || master salt for one direction */
struct keyleg_keysalt {
	uint8_t b[KEYLEG_MAX_KEYSALT];
	size_t len;
};

/** Options fixed at allocation (zeroed struct = defaults) */
struct keyleg_opts {
	uint8_t enc_ext[KEYLEG_MAX_ENC_EXT]; /**< RFC 6904 ext ids (1..14) */
	size_t n_enc_ext;
	uint32_t replay_window;   /**< packets; 0 = default (128)           */
	uint32_t overlap_packets; /**< rekey overlap: max packets accepted
				       under the previous key; 0 = 1000      */
	uint32_t overlap_ms;      /**< rekey overlap in time; 0 = 2000 ms   */
};

/** Per-leg counters (receive side counts drops by status) */
struct keyleg_stats {
	uint64_t rtp_in, rtp_out, rtcp_in, rtcp_out;
	uint64_t drops[KEYLEG_STATUS_COUNT]; /**< indexed by keyleg_status */
	uint64_t prev_key_accepts; /**< packets accepted under the old key */
	uint64_t rekeys;
};

struct keyleg;

/* library */
int keyleg_init(void);
const char *keyleg_srtp_version(void);
const char *keyleg_crypto_backend(void);

/* profiles */
int keyleg_profile_parse(const char *name, enum keyleg_profile *profilep);
const char *keyleg_profile_name(enum keyleg_profile profile);
size_t keyleg_profile_key_len(enum keyleg_profile profile);
size_t keyleg_profile_salt_len(enum keyleg_profile profile);
size_t keyleg_profile_tag_len(enum keyleg_profile profile);
const char *keyleg_status_name(enum keyleg_status st);

/* contexts */
int keyleg_alloc(struct keyleg **klp, enum keyleg_profile profile,
		 const struct keyleg_keysalt *rx,
		 const struct keyleg_keysalt *tx,
		 const struct keyleg_opts *opts) KEYLEG_WUR;
struct keyleg *keyleg_free(struct keyleg *kl);
int keyleg_rekey(struct keyleg *kl, const struct keyleg_keysalt *rx,
		 const struct keyleg_keysalt *tx, uint64_t now_ms) KEYLEG_WUR;
enum keyleg_profile keyleg_profile(const struct keyleg *kl);
void keyleg_stats(const struct keyleg *kl, struct keyleg_stats *st);
int keyleg_rx_roc(const struct keyleg *kl, uint32_t ssrc, uint32_t *rocp);
int keyleg_tx_roc(const struct keyleg *kl, uint32_t ssrc, uint32_t *rocp);

/* packets: in place; cap is the buffer size (>= *lenp + KEYLEG_TAILROOM).
 * now_ms is a monotonic clock, used only for the rekey overlap. */
enum keyleg_status keyleg_protect_rtp(struct keyleg *kl, uint8_t *pkt,
				      size_t *lenp, size_t cap);
enum keyleg_status keyleg_unprotect_rtp(struct keyleg *kl, uint8_t *pkt,
					size_t *lenp, uint64_t now_ms);
enum keyleg_status keyleg_protect_rtcp(struct keyleg *kl, uint8_t *pkt,
				       size_t *lenp, size_t cap);
enum keyleg_status keyleg_unprotect_rtcp(struct keyleg *kl, uint8_t *pkt,
					 size_t *lenp, uint64_t now_ms);

/* keys */
int keyleg_inline_decode(const char *b64, enum keyleg_profile profile,
			 struct keyleg_keysalt *ks) KEYLEG_WUR;
int keyleg_b64_decode(const char *s, uint8_t *out, size_t outsz,
		      size_t *outlen) KEYLEG_WUR;
int keyleg_inline_encode(const struct keyleg_keysalt *ks, char *out,
			 size_t outsz) KEYLEG_WUR;
int keyleg_derive(const uint8_t *leg_key, size_t leg_key_len,
		  enum keyleg_profile profile, enum keyleg_flow flow,
		  enum keyleg_side side, struct keyleg_keysalt *rx,
		  struct keyleg_keysalt *tx) KEYLEG_WUR;
int keyleg_hkdf(const uint8_t *salt, size_t salt_len,
		const uint8_t *ikm, size_t ikm_len,
		const uint8_t *info, size_t info_len,
		uint8_t *out, size_t out_len) KEYLEG_WUR;
void keyleg_wipe(void *p, size_t n);
int keyleg_ct_equal(const void *a, const void *b, size_t n);

#endif
