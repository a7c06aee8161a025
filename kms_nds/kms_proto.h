/**
 * @file kms_proto.h  UE <-> KMS protocol: sealing, fields, framing
 *
 * Shared by kmsd and the terminal side (ue/).  Every E_X(...) of the seeds
 * is a "sealed blob" (docs/kms-protocol.md):
 *
 *   ver(1)=1 | type(1) | key_id(4) | time(8) | salt(16) | ct | tag(16)
 *
 * sealed with AES-256-GCM under a one-time subkey
 * HKDF-SHA-256(key, salt, "keymix seal v1" | type); the header and both
 * identities (length-prefixed) are the associated data.  The plaintext is
 * a list of fields: tag(1) | len(2) | value.
 *
 * Functions returning int return 0 or an errno value: EBADMSG (does not
 * authenticate), EPROTO (wrong version/type/field), EMSGSIZE (truncated or
 * too large), EINVAL.
 */

#ifndef KMS_PROTO_H
#define KMS_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define KMS_PROTO_VERSION 1
#define KMS_SEAL_HDR      30
#define KMS_SEAL_TAG      16
#define KMS_SEAL_OVERHEAD (KMS_SEAL_HDR + KMS_SEAL_TAG)
#define KMS_RAND_LEN      16
#define KMS_MAC_LEN       32
#define KMS_BLOB_MAX      1024   /**< largest sealed blob / token        */
#define KMS_FRAME_MAX     16384  /**< largest framed message (JSON)      */
#define KMS_EXPORTER_LEN  32     /**< TLS exporter bound into bootstrap  */
#define KMS_EXPORTER_LABEL "EXPORTER-keymix-kms-v1"

/** Sealed blob types (bound as associated data) */
enum kms_seal_type {
	KMS_T_TOKEN = 1,    /**< Enc_Kkms(Kue, ID, issue, lifetime, RAND)  */
	KMS_T_BOOT_KUE,     /**< Kue for the UE, under its credential      */
	KMS_T_INVITE,       /**< Ea(Ra, ID-A, ID-B [, focus, transcoder])  */
	KMS_T_REQUEST,      /**< Eb(Rb, ID-A, ID-B [, ref, proof])         */
	KMS_T_REPLY_A,      /**< Ea(Ra, [Rb,] K [, Ke2m], ref)             */
	KMS_T_REPLY_B,      /**< Eb([Rb,] K, ref, generation)              */
	KMS_T_MBX_TICKET,   /**< Ekms_mbx(K, ID-A, ID-B, ID-Bm, expiry)    */
	KMS_T_WRAP,         /**< storage wrapping (never on the wire)      */
	KMS_T_COUNT
};

/** Plaintext field tags */
enum kms_field {
	KMS_F_R = 1,        /**< 16 random bytes of the sealer (Ra, Rb)    */
	KMS_F_R2,           /**< second random (Rb inside Ea of forking)   */
	KMS_F_K,            /**< 32-byte key                               */
	KMS_F_K2,           /**< second key (Ke2m)                         */
	KMS_F_IDA,
	KMS_F_IDB,
	KMS_F_FOCUS,        /**< conference focus (bridge identity)        */
	KMS_F_XCODER,       /**< authorised transcoder identity            */
	KMS_F_REF,          /**< conference / call reference               */
	KMS_F_PROOF,        /**< active-join proof (32 bytes)              */
	KMS_F_GEN,          /**< u32 generation                            */
	KMS_F_LIFETIME,     /**< u32 seconds                               */
	KMS_F_EXPIRES,      /**< u64 seconds                               */
	KMS_F_ID,           /**< the token holder's identity               */
	KMS_F_COUNT
};

/** Parsed plaintext: value pointers into the caller's buffer */
struct kms_fields {
	const uint8_t *v[KMS_F_COUNT];
	uint16_t len[KMS_F_COUNT];
};

/** Header of a sealed blob */
struct kms_seal_hdr {
	uint8_t version, type;
	uint32_t key_id;
	uint64_t time_s;
	uint8_t salt[KMS_RAND_LEN];
};

/* clock: Unix seconds + KEYMIX_TEST_CLOCK_OFFSET (tests only) */
uint64_t kms_now(void);
/* unit tests only: kms_now() = base + offset from now on (0: real clock) */
void kms_clock_pin(uint64_t base);
int kms_random(void *p, size_t n);
void kms_wipe(void *p, size_t n);
int kms_ct_equal(const void *a, const void *b, size_t n);
int kms_hkdf(const uint8_t *salt, size_t salt_len, const uint8_t *ikm,
	     size_t ikm_len, const uint8_t *info, size_t info_len,
	     uint8_t *out, size_t out_len);
int kms_hmac(const uint8_t *key, size_t key_len, const uint8_t *msg,
	     size_t msg_len, uint8_t out[KMS_MAC_LEN]);

/* base64url without padding */
int kms_b64_encode(const uint8_t *in, size_t n, char *out, size_t outsz);
int kms_b64_decode(const char *in, uint8_t *out, size_t outsz,
		   size_t *outlen);

/* sealing */
int kms_seal(const uint8_t key[32], enum kms_seal_type type,
	     uint32_t key_id, uint64_t time_s, const char *id1,
	     const char *id2, const uint8_t *pt, size_t pt_len,
	     uint8_t *out, size_t outsz, size_t *out_len);
int kms_seal_peek(const uint8_t *in, size_t in_len,
		  struct kms_seal_hdr *hdr);
int kms_open(const uint8_t key[32], enum kms_seal_type type,
	     const char *id1, const char *id2, const uint8_t *in,
	     size_t in_len, struct kms_seal_hdr *hdr, uint8_t *pt,
	     size_t ptsz, size_t *pt_len);

/* fields */
struct kms_fbuf {
	uint8_t b[KMS_BLOB_MAX];
	size_t len;
	int err;
};
void kms_fput(struct kms_fbuf *f, enum kms_field tag, const void *v,
	      size_t n);
void kms_fput_str(struct kms_fbuf *f, enum kms_field tag, const char *s);
void kms_fput_u32(struct kms_fbuf *f, enum kms_field tag, uint32_t v);
void kms_fput_u64(struct kms_fbuf *f, enum kms_field tag, uint64_t v);
int kms_fparse(const uint8_t *p, size_t n, struct kms_fields *fs);
int kms_fget_fixed(const struct kms_fields *fs, enum kms_field tag,
		   void *out, size_t n);
int kms_fget_str(const struct kms_fields *fs, enum kms_field tag,
		 char *out, size_t outsz);
int kms_fget_u32(const struct kms_fields *fs, enum kms_field tag,
		 uint32_t *v);
int kms_fget_u64(const struct kms_fields *fs, enum kms_field tag,
		 uint64_t *v);

/*
 * A "statement" is what a UE hands to someone else or to the KMS: its
 * token and one sealed blob, u16 token_len | token | sealed, carried as
 * base64url (the compact form that travels in an INVITE).
 */
int kms_stmt_encode(const uint8_t *token, size_t token_len,
		    const uint8_t *sealed, size_t sealed_len, char *out,
		    size_t outsz);
int kms_stmt_decode(const char *b64, uint8_t *buf, size_t bufsz,
		    const uint8_t **token, size_t *token_len,
		    const uint8_t **sealed, size_t *sealed_len);

/* bootstrap MAC: HMAC(cred, label | exporter | id | time | nonce) */
int kms_boot_mac(const uint8_t cred[32],
		 const uint8_t exporter[KMS_EXPORTER_LEN], const char *id,
		 uint64_t time_s, const uint8_t nonce[KMS_RAND_LEN],
		 uint8_t mac[KMS_MAC_LEN]);
/* active-join proof: HMAC(HKDF(secret, ref), label | id | ref | Rb) */
int kms_join_key(const char *secret, const char *conf_ref,
		 uint8_t kjoin[32]);
int kms_join_proof(const uint8_t kjoin[32], const char *id,
		   const char *conf_ref, const uint8_t rb[KMS_RAND_LEN],
		   uint8_t proof[KMS_MAC_LEN]);
/* forking media key: HKDF(K, Rx, "keymix fork v1" | ID-A | ID-x) */
int kms_fork_key(const uint8_t k[32], const uint8_t rx[KMS_RAND_LEN],
		 const char *ida, const char *idx, uint8_t out[32]);

/* framing: u32 big-endian length | JSON */
int kms_frame_len(const uint8_t hdr[4], size_t *len);

#endif
