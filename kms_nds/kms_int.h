/** @file kms_int.h  kms_nds private: store internals and the KMS core */

#ifndef KMS_INT_H
#define KMS_INT_H

#include <stddef.h>
#include <stdint.h>

#include "kms_nds/kms_proto.h"
#include "kms_nds/kms_store.h"

/** Policy knobs (seconds unless said otherwise); kms_cfg_default() */
struct kms_cfg {
	uint32_t token_lifetime;  /**< Kue token lifetime                  */
	uint32_t kkms_lifetime;   /**< a Kkms is current this long         */
	uint32_t kkms_grace;      /**< old Kkms still accepted this long   */
	uint32_t time_window;     /**< request time must be within +-this  */
	uint32_t invite_validity; /**< an INVITE statement is usable this
				       long after it was sealed            */
	uint32_t leg_lifetime;    /**< leg / call record lifetime          */
	uint32_t rekey_overlap;   /**< previous generation kept this long  */
	uint32_t mbx_retention;   /**< mailbox tickets stay resolvable     */
	uint32_t fail_max_id;     /**< wrong proofs per identity / window  */
	uint32_t fail_max_conf;   /**< wrong proofs per conference / window */
	uint32_t fail_window;
};

void kms_cfg_default(struct kms_cfg *cfg);
struct kms_cfg *kms_store_cfg(struct kms_store *s);
int kms_store_open_key(struct kms_store **sp, const char *db_path,
		       const uint8_t skey[32]);
int kms_store_begin(struct kms_store *s);
int kms_store_commit(struct kms_store *s, int ok);

/* identities and groups */
int kms_id_add(struct kms_store *s, const char *id, uint8_t cred[32]);
int kms_id_cred(struct kms_store *s, const char *id, uint8_t cred[32]);
int kms_group_add(struct kms_store *s, const char *grp, const char *member);
int kms_group_has(struct kms_store *s, const char *grp, const char *member);

/* key rings: purpose "kkms" (tokens) and "kmbx" (mailbox tickets) */
int kms_ring_current(struct kms_store *s, const char *purpose,
		     uint64_t now, uint32_t *id, uint8_t key[32]);
int kms_ring_get(struct kms_store *s, const char *purpose, uint32_t id,
		 uint64_t now, uint32_t grace, uint8_t key[32]);
int kms_ring_rotate(struct kms_store *s, const char *purpose, uint64_t now);
int kms_ring_maintain(struct kms_store *s, uint64_t now);
int kms_secret(struct kms_store *s, const char *name, uint8_t key[32]);

/* replay cache and failure counters */
int kms_seen_add(struct kms_store *s, const uint8_t nonce[KMS_RAND_LEN],
		 uint64_t t, uint64_t now);
int kms_fail_add(struct kms_store *s, const char *scope, uint64_t now);
int kms_fail_count(struct kms_store *s, const char *scope, uint64_t now,
		   uint32_t *n);

/* conferences, legs, calls */
int kms_conf_register(struct kms_store *s, const char *ref,
		      const char *focus, const char *secret,
		      const char *const *eligible, size_t n_eligible,
		      uint64_t now, uint64_t expires);
int kms_conf_ensure(struct kms_store *s, const char *ref,
		    const char *focus, const char *chairman,
		    uint64_t expires);
int kms_conf_kjoin(struct kms_store *s, const char *ref, uint8_t kjoin[32]);
int kms_conf_eligible(struct kms_store *s, const char *ref, const char *id);
enum kms_leg_mode { KMS_LEG_KEEP, KMS_LEG_NEWGEN };
int kms_leg_set(struct kms_store *s, const char *ref, const char *who,
		const uint8_t key[32], uint64_t now, uint64_t expires,
		enum kms_leg_mode mode, uint32_t *gen);
int kms_call_put(struct kms_store *s, const char *ref, const char *caller,
		 const char *callee, const char *xcoder,
		 const uint8_t key[32], uint64_t expires);

/* the KMS core: one JSON request in, one JSON response out */
struct kms_req_ctx {
	uint8_t exporter[KMS_EXPORTER_LEN]; /**< TLS exporter of the conn */
	int has_exporter;
	uint64_t now;
};
int kms_handle(struct kms_store *s, const struct kms_req_ctx *ctx,
	       const char *req, size_t req_len, char **resp);

#endif
