/**
 * @file nds_store.c  kms_nds_listen: the NDS listener on the kms_store
 *
 * Adapts the store's network-node lookups (kms_store.h) to the listener's
 * backend; the listener itself (nds_srv.c) does the role and focus checks
 * and writes the audit log.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms_nds/kms_proto.h"
#include "kms_nds/kms_store.h"
#include "kms_nds/nds_int.h"

static int fits(const char *s, size_t max)
{
	return strnlen(s, max) < max;
}

static int st_conf_focus(void *arg, const char *conf_ref, time_t now,
			 struct nds_key_rec *rec)
{
	struct kms_conf conf;
	int err;

	if (!fits(conf_ref, KMS_REF_MAX))
		return ENOENT;
	memset(&conf, 0, sizeof(conf));
	err = kms_store_conf_get(arg, conf_ref, (uint64_t)now, &conf);
	if (err)
		return err;
	snprintf(rec->node, sizeof(rec->node), "%s", conf.focus);
	rec->expires = conf.expires_s;
	return 0;
}

static int st_legkey(void *arg, const char *conf_ref,
		     const char *participant, time_t now,
		     struct nds_key_rec *rec)
{
	struct kms_legkey lk;
	int err;

	if (!fits(conf_ref, KMS_REF_MAX) || !fits(participant, KMS_ID_MAX))
		return ENOENT;
	memset(&lk, 0, sizeof(lk));
	err = kms_store_legkey_get(arg, conf_ref, participant,
				   (uint64_t)now, &lk);
	if (!err) {
		memcpy(rec->key, lk.key, sizeof(lk.key));
		rec->key_len = sizeof(lk.key);
		rec->generation = lk.generation;
		rec->expires = lk.expires_s;
		snprintf(rec->node, sizeof(rec->node), "%s", lk.focus);
	}
	kms_wipe(&lk, sizeof(lk));
	return err;
}

static int st_call_key(void *arg, const char *node, const char *call_id,
		       time_t now, struct nds_key_rec *rec)
{
	struct kms_callkey ck;
	int err;

	if (!fits(call_id, KMS_REF_MAX) || !fits(node, KMS_ID_MAX))
		return ENOENT;
	memset(&ck, 0, sizeof(ck));
	err = kms_store_callkey_get(arg, call_id, node, (uint64_t)now, &ck);
	/* The store checks the transcoder; check its answer too. */
	if (!err && strcmp(ck.transcoder, node))
		err = EACCES;
	if (!err) {
		memcpy(rec->key, ck.key, sizeof(ck.key));
		rec->key_len = sizeof(ck.key);
		rec->generation = 1;
		rec->expires = ck.expires_s;
		snprintf(rec->node, sizeof(rec->node), "%s", ck.transcoder);
	}
	kms_wipe(&ck, sizeof(ck));
	return err;
}

static int st_mailbox(void *arg, const char *mailbox, const char *id_a,
		      const char *id_b, const char *sealed, int want_ke2m,
		      time_t now, struct nds_mbox_rec *rec)
{
	struct kms_mbx_deposit *d;
	int err;

	if (!fits(id_a, KMS_ID_MAX) || !fits(id_b, KMS_ID_MAX) ||
	    !fits(mailbox, KMS_ID_MAX))
		return ENOENT;
	d = calloc(1, sizeof(*d));
	if (!d)
		return ENOMEM;
	err = kms_mbx_deposit(arg, mailbox, id_a, id_b, sealed, want_ke2m,
			      (uint64_t)now, d);
	if (!err) {
		snprintf(rec->for_a, sizeof(rec->for_a), "%s", d->ea_reply);
		snprintf(rec->store, sizeof(rec->store), "%s", d->ticket);
		if (d->has_ke2m) {
			memcpy(rec->ke2m, d->ke2m, sizeof(d->ke2m));
			rec->ke2m_len = sizeof(d->ke2m);
		}
		rec->retain_until = d->retain_until_s;
	}
	kms_wipe(d, sizeof(*d));
	free(d);
	return err;
}

static void st_audit(void *arg, time_t now, const char *who,
		     const char *role, const char *what,
		     const char *conf_ref, const char *participant,
		     const char *result)
{
	(void)kms_store_audit(arg, (uint64_t)now, who, role, what, conf_ref,
			      participant, result);
}

/**
 * Start the NDS listener of kmsd on its store.  Sets SIGPIPE to ignored
 * if it was at its default (a peer closing mid-write must not end kmsd).
 */
int kms_nds_listen(struct event_base *base, struct kms_store *store,
		   const char *addr, uint16_t port,
		   const struct kms_nds_cfg *cfg, struct kms_nds_srv **srvp)
{
	struct nds_backend be = {
		.conf_focus = st_conf_focus,
		.legkey = st_legkey,
		.call_key = st_call_key,
		.mailbox = st_mailbox,
		.audit = st_audit,
		.now = kms_now,   /* honours kmsd's test clock offset */
		.arg = store,
	};
	struct sigaction sa;

	if (!store)
		return EINVAL;
	if (!sigaction(SIGPIPE, NULL, &sa) && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	return nds_srv_listen(base, &be, addr, port, cfg, srvp);
}
