/**
 * @file kms_store.h  KMS persistent store: SQLite (WAL), wrapped keys
 *
 * The store holds everything kmsd must keep across a restart: provisioned
 * UE credentials (wrapped), the Kkms key ring, conference leg-key records,
 * p2p call records (for transcoders), mailbox assignments and the replay
 * cache.  Every key is wrapped (AES-256-GCM, the row's identity bound as
 * associated data) under a 32-byte storage key read from a file; a lookup
 * unwraps into caller memory, which the caller wipes (kms_wipe).
 *
 * Time is always passed in (seconds, Unix epoch) so tests can move it.
 * One store handle belongs to one thread (kmsd: its event loop).
 *
 * Errors (errno values): ENOENT no such record, EKEYEXPIRED record expired,
 * EACCES the asking node is not authorised for the record, EINVAL bad
 * argument, EIO database or storage-key failure, ENOMEM.
 */

#ifndef KMS_STORE_H
#define KMS_STORE_H

#include <stddef.h>
#include <stdint.h>

#define KMS_KEY_LEN 32     /**< every leg / call / master key: 256 bit  */
#define KMS_ID_MAX  128    /**< identity buffer (incl. NUL)             */
#define KMS_REF_MAX 48     /**< conference / call reference (incl. NUL) */

struct kms_store;

/** One participant's leg key in one conference (what a bridge fetches) */
struct kms_legkey {
	char conf_ref[KMS_REF_MAX];
	char participant[KMS_ID_MAX];
	char focus[KMS_ID_MAX];   /**< the bridge identity (cert CN/SAN)   */
	uint8_t key[KMS_KEY_LEN]; /**< current generation                  */
	uint32_t generation;      /**< 1, 2, ... (rekey adds one)          */
	int has_prev;             /**< previous generation still in overlap */
	uint8_t prev_key[KMS_KEY_LEN];
	uint32_t prev_generation;
	uint64_t prev_until_s;    /**< end of the rekey overlap            */
	uint64_t expires_s;       /**< leg record expiry                   */
};

/** A conference (for authorising a bridge before any leg lookup) */
struct kms_conf {
	char conf_ref[KMS_REF_MAX];
	char focus[KMS_ID_MAX];
	char chairman[KMS_ID_MAX]; /**< "" for an active-join conference  */
	int active;                /**< 0 passive join only; 1 registered
					for active join; 2 passive conference
					opened for active join as well      */
	uint64_t expires_s;
};

/** A p2p call key a transcoder may fetch (TR 33.828 7.4.3.4) */
struct kms_callkey {
	char call_ref[KMS_REF_MAX];
	char caller[KMS_ID_MAX];
	char callee[KMS_ID_MAX];
	char transcoder[KMS_ID_MAX]; /**< named in the caller's statement  */
	uint8_t key[KMS_KEY_LEN];    /**< the leg key of the call          */
	uint64_t expires_s;
};

/** What a mailbox gets when it deposits (TR 33.828 7.4.3.3 fig. 17/19) */
struct kms_mbx_deposit {
	char ea_reply[1024];      /**< Ea(Ra, K [, Ke2m]) base64url: goes
				       back to the caller in the response   */
	char ticket[1024];        /**< Ekms_mbx(...) base64url: the mailbox
				       stores it beside the media; it never
				       reveals K                            */
	int has_ke2m;
	uint8_t ke2m[KMS_KEY_LEN]; /**< caller <-> mailbox key (if asked)  */
	uint64_t retain_until_s;
};

/* open / close.  key_file holds the 32-byte storage key, raw or base64
 * (kms_store_keyfile_create writes a fresh one, mode 0600). */
int kms_store_open(struct kms_store **sp, const char *db_path,
		   const char *key_file);
struct kms_store *kms_store_close(struct kms_store *s);
int kms_store_keyfile_create(const char *key_file);
void kms_wipe(void *p, size_t n);

/* network-node lookups (the NDS listener calls these) */
int kms_store_conf_get(struct kms_store *s, const char *conf_ref,
		       uint64_t now_s, struct kms_conf *out);
int kms_store_legkey_get(struct kms_store *s, const char *conf_ref,
			 const char *participant, uint64_t now_s,
			 struct kms_legkey *out);
/* transcoder: EACCES unless the call names this transcoder identity */
int kms_store_callkey_get(struct kms_store *s, const char *call_ref,
			  const char *transcoder, uint64_t now_s,
			  struct kms_callkey *out);
/* which mailbox node serves a user (ENOENT: none) */
int kms_store_mailbox_of(struct kms_store *s, const char *user,
			 char *mailbox, size_t mailbox_sz);
/*
 * A mailbox node (identity from its certificate) deposits a caller's
 * sealed invite statement (compact base64url form, as in the INVITE) for
 * recipient; EACCES unless mailbox serves recipient.  want_ke2m asks for
 * the caller <-> mailbox key of TR 7.4.3.3 figure 19.
 */
int kms_mbx_deposit(struct kms_store *s, const char *mailbox,
		    const char *caller, const char *recipient,
		    const char *invite_stmt, int want_ke2m, uint64_t now_s,
		    struct kms_mbx_deposit *out);

/* audit trail of key releases (who, what, when; never key material) */
int kms_store_audit(struct kms_store *s, uint64_t now_s, const char *who,
		    const char *role, const char *what, const char *conf_ref,
		    const char *participant, const char *result);

/* provisioning (kmsd admin; also test fixtures) */
int kms_store_mailbox_set(struct kms_store *s, const char *user,
			  const char *mailbox);
/*
 * Test fixture: create (or extend) conference conf_ref with focus and one
 * random leg key per participant, expiring at expires_s, without running
 * any flow.  keys_out (may be NULL) receives n * KMS_KEY_LEN bytes.
 */
int kms_store_fixture_conf(struct kms_store *s, const char *conf_ref,
			   const char *focus, const char *const *participants,
			   size_t n, uint64_t now_s, uint64_t expires_s,
			   uint8_t *keys_out);
/* Test fixture: a p2p call record naming a transcoder */
int kms_store_fixture_call(struct kms_store *s, const char *call_ref,
			   const char *caller, const char *callee,
			   const char *transcoder, uint64_t expires_s,
			   uint8_t key_out[KMS_KEY_LEN]);

#endif
