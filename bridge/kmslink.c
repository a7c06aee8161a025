/**
 * @file kmslink.c  The bridge's use of the NDS client (kms_nds/kms.h)
 *
 * Every kms_client_* call of the bridge is here.  While the tree has no
 * NDS client implementation yet (bridge/module.mk detects it), bridged
 * still builds: --kms is then refused at start and KMS-keyed legs get 503
 * with a message saying so.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "bridge/bridge_int.h"
#include "kms_nds/kms.h"

/** Create the NDS client from the configuration */
int kmslink_open(struct bridge *b, char *err, size_t errsz)
{
#ifdef BRIDGE_HAVE_NDS_CLIENT
	struct kms_client_cfg kc;
	int e;

	memset(&kc, 0, sizeof(kc));
	kc.host = b->cfg.kms_host;
	kc.port = b->cfg.kms_port;
	kc.cert_file = b->cfg.nds_cert;
	kc.key_file = b->cfg.nds_key;
	kc.ca_file = b->cfg.nds_ca;
	kc.timeout_ms = b->cfg.kms_timeout_ms;
	e = kms_client_alloc(&b->kms, &kc);
	if (e)
		snprintf(err, errsz, "NDS client (--nds-cert/-key/-ca): %s",
			 strerror(e));
	return e;
#else
	(void)b;
	snprintf(err, errsz, "--kms: this bridged was built without the NDS "
		 "client (kms_nds)");
	return ENOTSUP;
#endif
}

void kmslink_close(struct bridge *b)
{
#ifdef BRIDGE_HAVE_NDS_CLIENT
	if (b->kms)
		b->kms = kms_client_free(b->kms);
#else
	b->kms = NULL;
#endif
}

/** SIGHUP: re-read the NDS credentials */
int kmslink_reload(struct bridge *b)
{
#ifdef BRIDGE_HAVE_NDS_CLIENT
	return b->kms ? kms_client_reload(b->kms) : 0;
#else
	(void)b;
	return 0;
#endif
}

/**
 * Fetch a participant's leg key.  Returns 0 or the client's errno
 * (ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH, ENOTCONN: unreachable; EACCES,
 * ENOENT, EPROTO, EBADMSG: refused or failed), with a message in err.
 */
int kmslink_fetch(struct bridge *b, const char *conf_ref,
		  const char *participant, uint8_t *key, size_t *key_len,
		  uint32_t *generation, char *err, size_t errsz)
{
#ifdef BRIDGE_HAVE_NDS_CLIENT
	return kms_client_fetch_legkey(b->kms, conf_ref, participant, key,
				       key_len, generation, err, errsz);
#else
	(void)b;
	(void)conf_ref;
	(void)participant;
	(void)key;
	(void)key_len;
	(void)generation;
	snprintf(err, errsz, "built without the NDS client");
	return ENOTCONN;
#endif
}
