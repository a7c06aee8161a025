/**
 * @file nds_int.h  NDS/IP link internals: wire format, roles, backend
 *
 * Folder-private: used by nds_*.c, the NDS tests and the fuzz target.
 */

#ifndef NDS_INT_H
#define NDS_INT_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "kms_nds/kms.h"

/*
 * Wire format (docs/nds.md): a frame is a 4-byte big-endian body length
 * followed by the body:
 *   version u8 (1) | type u8 | reserved u16 (0) | request id u32 |
 *   fields: { tag u8 | length u16 | value }*
 * Integers are big-endian.  Each tag at most once; unknown tags, missing
 * required tags and values out of their bounds are errors.
 */
#define NDS_VERSION     1
#define NDS_LEN_SIZE    4     /* length prefix                        */
#define NDS_HDR_SIZE    8     /* version..request id                  */
#define NDS_FIELD_HDR   3     /* tag + length                         */
#define NDS_BODY_MIN    NDS_HDR_SIZE
#define NDS_BODY_MAX    10240 /* largest body either side accepts     */
#define NDS_FRAME_MAX   (NDS_LEN_SIZE + NDS_BODY_MAX)
#define NDS_ERRTEXT_MAX 200

enum nds_type {
	NDS_T_LEGKEY_REQ     = 0x01, /* bridge: conf ref + participant  */
	NDS_T_TRANSCODER_REQ = 0x02, /* transcoder: call id             */
	NDS_T_MAILBOX_REQ    = 0x03, /* mailbox: deferred-delivery deposit */
	NDS_T_PING_REQ       = 0x04, /* any role: liveness, no key      */
	NDS_T_KEY_RESP       = 0x81,
	NDS_T_MAILBOX_RESP   = 0x83,
	NDS_T_PONG_RESP      = 0x84,
	NDS_T_HELLO          = 0x85, /* server, once, after the handshake */
	NDS_T_ERROR_RESP     = 0xff,
};

enum nds_tag {
	NDS_TAG_CONF_REF    = 1,  /* conference reference (id chars)   */
	NDS_TAG_PARTICIPANT = 2,  /* participant identity (id chars)   */
	NDS_TAG_CALL_ID     = 3,  /* call id (id chars)                */
	NDS_TAG_ID_A        = 4,  /* deferred delivery: caller         */
	NDS_TAG_ID_B        = 5,  /* deferred delivery: recipient      */
	NDS_TAG_SEALED      = 6,  /* caller's sealed statement (b64url) */
	NDS_TAG_KEY         = 7,  /* key bytes (1..KMS_NDS_KEY_MAX)    */
	NDS_TAG_GENERATION  = 8,  /* u32                               */
	NDS_TAG_EXPIRES     = 9,  /* u64 seconds since the epoch       */
	NDS_TAG_FOR_A       = 10, /* deferred: Ea(Ra, K) for the caller */
	NDS_TAG_STORE       = 11, /* deferred: ticket the mailbox keeps */
	NDS_TAG_KE2M        = 12, /* deferred: caller<->mailbox key    */
	NDS_TAG_ERR_CODE    = 13, /* u16 enum nds_err                  */
	NDS_TAG_ERR_TEXT    = 14, /* printable ASCII, <= 200           */
	NDS_TAG_WANT_KE2M   = 15, /* u8 0/1: deferred, ask for Ke2m    */
	NDS_TAG_NODE        = 16, /* hello: the node identity kmsd saw */
	NDS_TAG_ROLE        = 17, /* hello: the role kmsd saw          */
	NDS_TAG_COUNT
};

/* Error codes on the wire (NDS_TAG_ERR_CODE) */
enum nds_err {
	NDS_E_MALFORMED    = 1, /* could not parse / bad field         */
	NDS_E_TOO_LARGE    = 2, /* frame longer than NDS_BODY_MAX      */
	NDS_E_UNSUPPORTED  = 3, /* version or message type unknown     */
	NDS_E_FORBIDDEN    = 4, /* role or identity not authorised     */
	NDS_E_NOT_FOUND    = 5, /* no such conference / leg / call     */
	NDS_E_EXPIRED      = 6, /* record expired                      */
	NDS_E_INTERNAL     = 7, /* store failure                       */
	NDS_E_BUSY         = 8, /* too many connections                */
	NDS_E_TIMEOUT      = 9, /* request not completed in time       */
	NDS_E_COUNT
};

enum nds_role {
	NDS_ROLE_NONE = 0,
	NDS_ROLE_BRIDGE,
	NDS_ROLE_TRANSCODER,
	NDS_ROLE_MAILBOX,
	NDS_ROLE_KMS,     /* kmsd's own server certificate              */
};

struct nds_field {
	const uint8_t *p; /* points into the parsed body              */
	uint16_t len;
};

struct nds_msg {
	uint8_t version;
	uint8_t type;
	uint32_t req_id;
	uint32_t present;                 /* bit (1 << tag)           */
	struct nds_field f[NDS_TAG_COUNT];
};

/* Encoder into a caller buffer; errors stick (checked at the end). */
struct nds_enc {
	uint8_t *buf;
	size_t cap;
	size_t len;
	int err;
};

/* nds_msg.c */
int nds_msg_parse(struct nds_msg *m, const uint8_t *body, size_t len);
int nds_msg_validate(const struct nds_msg *m, enum nds_err *codep);
int nds_frame_len(const uint8_t *hdr, size_t avail, size_t *body_lenp);
int nds_msg_str(const struct nds_msg *m, enum nds_tag tag, char *out,
		size_t outsz);
int nds_msg_u32(const struct nds_msg *m, enum nds_tag tag, uint32_t *v);
int nds_msg_u64(const struct nds_msg *m, enum nds_tag tag, uint64_t *v);
void nds_enc_begin(struct nds_enc *e, uint8_t *buf, size_t cap,
		   enum nds_type type, uint32_t req_id);
void nds_enc_put(struct nds_enc *e, enum nds_tag tag, const void *p,
		 size_t len);
void nds_enc_str(struct nds_enc *e, enum nds_tag tag, const char *s);
void nds_enc_u16(struct nds_enc *e, enum nds_tag tag, uint16_t v);
void nds_enc_u32(struct nds_enc *e, enum nds_tag tag, uint32_t v);
void nds_enc_u64(struct nds_enc *e, enum nds_tag tag, uint64_t v);
int nds_enc_end(struct nds_enc *e, size_t *lenp);
int nds_enc_error(uint8_t *buf, size_t cap, uint32_t req_id,
		  enum nds_err code, const char *text, size_t *lenp);
const char *nds_err_name(enum nds_err code);
int nds_err_errno(enum nds_err code);
int nds_id_valid(const uint8_t *p, size_t len);

/* nds_cert.c: identity and role of a peer certificate (X509 *) */
const char *nds_role_name(enum nds_role role);
int nds_role_parse(const char *s, size_t len, enum nds_role *rolep);
int nds_cert_identity(const void *x509, char *id, size_t idsz,
		      enum nds_role *rolep, char *why, size_t whysz);

/*
 * Backend: where the listener gets keys.  kms_nds_listen() plugs the
 * kms_store (nds_store.c); tests may plug their own.  Each returns 0,
 * ENOENT (no such record), EKEYEXPIRED (expired), EACCES (the node is not
 * authorised) or another errno (store failure).  For leg keys the focus
 * check is made in nds_srv.c from rec->node, whatever the backend.
 */
struct nds_key_rec {
	uint8_t key[KMS_NDS_KEY_MAX];
	size_t key_len;
	uint32_t generation;
	uint64_t expires;                 /* 0 = none                 */
	char node[KMS_NDS_ID_MAX + 1];    /* focus bridge / transcoder */
};

struct nds_mbox_rec {
	char for_a[KMS_NDS_BLOB_MAX + 1]; /* Ea(Ra, K [, Ke2m]) b64url */
	char store[KMS_NDS_BLOB_MAX + 1]; /* ticket, b64url           */
	uint8_t ke2m[KMS_NDS_KEY_MAX];
	size_t ke2m_len;                  /* 0 = no e2m option         */
	uint64_t retain_until;
};

struct nds_backend {
	/* focus of conf_ref in rec->node; ENOENT if no such conference */
	int (*conf_focus)(void *arg, const char *conf_ref, time_t now,
			  struct nds_key_rec *rec);
	int (*legkey)(void *arg, const char *conf_ref,
		      const char *participant, time_t now,
		      struct nds_key_rec *rec);
	/* EACCES unless the call names transcoder `node` */
	int (*call_key)(void *arg, const char *node, const char *call_id,
			time_t now, struct nds_key_rec *rec);
	/* EACCES unless `mailbox` serves id_b */
	int (*mailbox)(void *arg, const char *mailbox, const char *id_a,
		       const char *id_b, const char *sealed, int want_ke2m,
		       time_t now, struct nds_mbox_rec *rec);
	/* optional: the store's own audit trail */
	void (*audit)(void *arg, time_t now, const char *who,
		      const char *role, const char *what,
		      const char *conf_ref, const char *participant,
		      const char *result);
	/* optional: the KMS clock (seconds); NULL = time(NULL) */
	uint64_t (*now)(void);
	void *arg;
};

/* nds_srv.c */
int nds_srv_listen(struct event_base *base, const struct nds_backend *be,
		   const char *addr, uint16_t port,
		   const struct kms_nds_cfg *cfg, struct kms_nds_srv **srvp);
void nds_srv_set_clock(struct kms_nds_srv *srv, time_t offset_s);
void nds_srv_set_out_max(struct kms_nds_srv *srv, size_t bytes,
			 int sndbuf);

struct nds_srv_stats {
	uint64_t accepted;   /* TCP connections accepted                */
	uint64_t authed;     /* handshakes with an accepted certificate */
	uint64_t refused;    /* handshakes failed or certificate refused */
	uint64_t requests;   /* well-framed requests                    */
	uint64_t released;   /* keys / deposits released                */
	uint64_t denied;     /* requests refused (role, focus, not found) */
	uint64_t malformed;  /* bad frames and messages                 */
	uint64_t paused;     /* reads paused for unsent answers         */
	unsigned conns;      /* open now                                */
};
void nds_srv_stats(const struct kms_nds_srv *srv, struct nds_srv_stats *st);

/* nds_audit.c */
struct nds_audit;
int nds_audit_open(struct nds_audit **ap, const char *path);
struct nds_audit *nds_audit_close(struct nds_audit *a);
void nds_audit_write(struct nds_audit *a, time_t now, const char *event,
		     const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif
