/**
 * @file kms.h  Key Management Server: NDS/IP link (client and listener)
 *
 * The NDS link is a mutually authenticated TLS 1.3 connection between a
 * network node (bridge, transcoder, mailbox) and kmsd.  The node's
 * certificate, issued by the operator's domain CA, names its identity and
 * role; kmsd hands a node only the keys its role and identity allow.
 * Wire format and roles: docs/nds.md.
 *
 * Functions returning int return 0 or an errno value.
 */

#ifndef KMS_H
#define KMS_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define KMS_WUR __attribute__((warn_unused_result))
#else
#define KMS_WUR
#endif

/** Largest key the NDS link carries (leg key, call key) in bytes */
#define KMS_NDS_KEY_MAX 64
/** Largest identity / conference reference / call id, bytes, no NUL */
#define KMS_NDS_ID_MAX 255
/** Largest opaque blob (sealed statement, mailbox material) in bytes */
#define KMS_NDS_BLOB_MAX 4096

/* ------------------------------------------------------------------ */
/* Client side (linked by the bridge, transcoder and mailbox nodes)    */
/* ------------------------------------------------------------------ */

struct kms_client;

struct kms_client_cfg {
	const char *host;      /**< KMS NDS address (name or literal)     */
	uint16_t port;         /**< KMS NDS port                          */
	const char *cert_file; /**< this node's certificate (PEM)         */
	const char *key_file;  /**< its private key (PEM)                 */
	const char *ca_file;   /**< operator domain CA (PEM)              */
	unsigned timeout_ms;   /**< per request (connect+send+recv);
				    0 = 5000                               */
};

int kms_client_alloc(struct kms_client **cp,
		     const struct kms_client_cfg *cfg) KMS_WUR;
struct kms_client *kms_client_free(struct kms_client *c);

/*
 * Blocking with timeout; reuses one TLS connection; reconnects with
 * exponential backoff.  Returns 0; ECONNREFUSED / ETIMEDOUT / EHOSTUNREACH
 * / ENOTCONN when the KMS cannot be reached (bridge answers 503); EACCES
 * (not authorised: role, focus, or this node's certificate refused),
 * ENOENT (no such conference/leg, or expired), EPROTO/EBADMSG (bad
 * response, or the KMS certificate not acceptable) when it refused or
 * failed (bridge answers 502); EINVAL (bad argument), ENOBUFS (key
 * buffer too small).  err gets a clear human message (never key
 * material); err may be NULL.  Thread-safe (calls are serialised).
 *
 * key: caller buffer; *key_len is its size on entry (>= KMS_NDS_KEY_MAX
 * is always enough) and the key length on return.  generation: the leg
 * key's generation (rekey counter), may be NULL.
 */
int kms_client_fetch_legkey(struct kms_client *c, const char *conf_ref,
			    const char *participant, uint8_t *key,
			    size_t *key_len, uint32_t *generation,
			    char *err, size_t errsz) KMS_WUR;

/* For a transcoder node: the media key K of call call_id (TR 7.4.3.4). */
int kms_client_fetch_transcoder_key(struct kms_client *c,
				    const char *call_id, uint8_t *key,
				    size_t *key_len, uint32_t *generation,
				    char *err, size_t errsz) KMS_WUR;

/* What a mailbox node gets for a deposit (TR 33.828 7.4.3.3) */
struct kms_nds_mbx {
	char for_a[KMS_NDS_BLOB_MAX + 1];  /**< Ea(Ra, K [, Ke2m]) base64url:
						back to the caller          */
	char ticket[KMS_NDS_BLOB_MAX + 1]; /**< kept beside the media; never
						reveals K                   */
	uint8_t ke2m[KMS_NDS_KEY_MAX];     /**< caller<->mailbox key       */
	size_t ke2m_len;                   /**< 0 unless asked (fig. 19)   */
	uint64_t retain_until;             /**< seconds since the epoch    */
};

/*
 * For a mailbox node: deposit the caller's sealed statement (compact
 * base64url form, as in the INVITE) for recipient.  Not retried after a
 * lost answer (it creates state).  Errors as for the fetches.
 */
int kms_client_mailbox_deposit(struct kms_client *c, const char *caller,
			       const char *recipient, const char *sealed,
			       int want_ke2m, struct kms_nds_mbx *res,
			       char *err, size_t errsz) KMS_WUR;

/* Round trip without keys (reachability and certificate acceptance). */
int kms_client_ping(struct kms_client *c, char *err, size_t errsz) KMS_WUR;

/* Re-read cert/key/CA (SIGHUP); the next request uses a new connection. */
int kms_client_reload(struct kms_client *c) KMS_WUR;

/* ------------------------------------------------------------------ */
/* Server side (kmsd)                                                  */
/* ------------------------------------------------------------------ */

struct event_base;
struct kms_store;
struct kms_nds_srv;

struct kms_nds_cfg {
	const char *cert_file; /**< kmsd's NDS server certificate (PEM)  */
	const char *key_file;  /**< its private key                     */
	const char *ca_file;   /**< operator domain CA: client certs     */
	const char *audit_log; /**< append-only audit file; NULL = none  */
	unsigned idle_timeout_ms;    /**< 0 = 30000                      */
	unsigned request_timeout_ms; /**< partial request; 0 = 5000     */
	unsigned max_conns;          /**< 0 = 1024                       */
	unsigned handshake_timeout_ms; /**< TLS handshake; 0 = 10000     */
};

/*
 * Listen for NDS connections on addr:port (port 0 = any; see
 * kms_nds_port).  The store is borrowed and must outlive the listener.
 */
int kms_nds_listen(struct event_base *base, struct kms_store *store,
		   const char *addr, uint16_t port,
		   const struct kms_nds_cfg *cfg,
		   struct kms_nds_srv **srvp) KMS_WUR;
struct kms_nds_srv *kms_nds_free(struct kms_nds_srv *srv);
uint16_t kms_nds_port(const struct kms_nds_srv *srv);
/* Re-read cert/key/CA (SIGHUP) for new connections; reopen audit log. */
int kms_nds_reload(struct kms_nds_srv *srv) KMS_WUR;

#endif
