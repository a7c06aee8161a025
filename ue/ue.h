/**
 * @file ue.h  Terminal (UE) side of every KMS flow
 *
 * A struct ue is one identity with its state file: Kue, the sealed token
 * Enc_Kkms(Kue, ...) and the randoms (Ra) of invitations still waiting for
 * their reply.  The state file holds key material: it is written 0600.
 * Requests go to kmsd over TLS 1.3 (server certificate checked against a
 * CA file and a server name).  Wire format: docs/kms-protocol.md.
 *
 * Functions returning int return 0 or an errno value; on EPERM the KMS
 * refused and ue_error() holds its error code and message.
 */

#ifndef UE_H
#define UE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "keyleg/keyleg.h"

#define UE_ID_MAX   128
#define UE_REF_MAX  48
#define UE_STMT_MAX 4096   /**< base64url statement / reply / ticket */

struct ue;

/*
 * Transport override (tests, benchmarks): called instead of a TLS
 * connection with one request; *resp is malloc'd by the callee.  The
 * exporter value stands in for the TLS exporter of the channel.
 */
typedef int (ue_xfer_h)(const char *req, size_t req_len, char **resp,
			size_t *resp_len, void *arg);

struct ue_cfg {
	const char *state_file;  /**< required                           */
	const char *kms;         /**< "host:port" of kmsd's UE listener  */
	const char *ca_file;     /**< CA that signed kmsd's certificate  */
	const char *server_name; /**< expected name; NULL = the host     */
	unsigned timeout_ms;     /**< per request; 0 = 5000              */
	ue_xfer_h *xfer;         /**< NULL: TLS to kms                   */
	void *xfer_arg;
	uint8_t xfer_exporter[32];
};

/** The outcome of a flow: the leg key and how to use it */
struct ue_key {
	uint8_t leg_key[32];
	enum keyleg_flow flow;
	enum keyleg_side side;
	char ref[UE_REF_MAX];    /**< conference or call reference       */
	char peer[UE_ID_MAX];    /**< the other end (answerer for fork)  */
	uint32_t generation;
	int has_ke2m;            /**< deferred delivery: caller<->mailbox */
	uint8_t ke2m[32];
};

/* state */
int ue_open(struct ue **up, const struct ue_cfg *cfg, const char *id);
struct ue *ue_free(struct ue *u);
const char *ue_id(const struct ue *u);
const char *ue_error(const struct ue *u);
uint64_t ue_token_expires(const struct ue *u);

/* 1: bootstrap with the provisioned long-term credential */
int ue_bootstrap(struct ue *u, const uint8_t cred[32]);

/* caller: Ea(Ra, ID-A, to [, focus][, transcoder]) in compact form.
 * label names the pending Ra (NULL: "to:<to>"); a conference invitation
 * reuses the label's Ra for every invitee unless fresh is set. */
int ue_invite(struct ue *u, const char *to, const char *focus,
	      const char *transcoder, const char *label, int fresh,
	      char *stmt, size_t stmt_sz);

/* callee: ask the KMS; reply_a goes back to the caller (200 OK).
 * kind: "p2p", "conf-passive" or "fork" (group names ID-G for fork). */
int ue_answer(struct ue *u, const char *kind, const char *from,
	      const char *group, const char *invite, char *reply_a,
	      size_t reply_sz, struct ue_key *k);

/* caller: open the reply that came back; to = the invited identity
 * (ID-G for fork: the answerer is learned from the reply) */
int ue_finish(struct ue *u, const char *to, const char *label,
	      const char *reply, int fork, struct ue_key *k);

/* 4: active join with a conference secret (NULL: eligible list) */
int ue_join(struct ue *u, const char *conf, const char *secret,
	    struct ue_key *k);
/* 6a: a new generation of this UE's leg key */
int ue_rekey(struct ue *u, const char *conf, struct ue_key *k);
/* 6: deferred delivery, recipient side: the mailbox ticket -> K */
int ue_retrieve(struct ue *u, const char *from, const char *ticket,
		struct ue_key *k);

/* print the outcome (key material only if print_keys) */
int ue_key_print(FILE *f, const struct ue_key *k, int print_keys);

#endif
