/** @file kmsd_int.h  kms_nds private: the UE-facing TLS listener */

#ifndef KMSD_INT_H
#define KMSD_INT_H

#include <stdint.h>

struct event_base;
struct kms_store;
struct kmsd_srv;

struct kmsd_srv_cfg {
	const char *cert_file; /**< server certificate chain (PEM)        */
	const char *key_file;  /**< its private key                       */
	unsigned max_conns;    /**< 0 = 1024                              */
	unsigned idle_ms;      /**< no complete request for this long: close;
				    0 = 30000                             */
	unsigned request_ms;   /**< a started frame must complete; 0=5000 */
};

int kmsd_srv_listen(struct event_base *base, struct kms_store *s,
		    const char *addr_port, const struct kmsd_srv_cfg *cfg,
		    struct kmsd_srv **srvp);
struct kmsd_srv *kmsd_srv_free(struct kmsd_srv *srv);
uint16_t kmsd_srv_port(const struct kmsd_srv *srv);

#endif
