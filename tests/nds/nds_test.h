/**
 * @file nds_test.h  NDS link tests: fixtures shared by the test files
 */

#ifndef NDS_TEST_H
#define NDS_TEST_H

#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "kms_nds/kms.h"
#include "kms_nds/nds_int.h"

#define DOM ".keymix.test"

/* certificates made once per run by scripts/certs.sh */
const char *certdir(void);
const char *certpath(const char *name, const char *ext);

/* in-memory backend: conferences, calls, mailboxes */
struct mem_leg {
	const char *conf, *part, *focus;
	uint8_t key[32];
	uint32_t gen;
	time_t expires;
};
extern struct mem_leg mem_legs[];
extern size_t mem_nlegs;
extern const struct nds_backend mem_backend;
void mem_init(void);

/* a listener on its own event-loop thread */
struct srvfix {
	struct event_base *base;
	struct kms_nds_srv *srv;
	struct kms_store *store;  /* set: kms_nds_listen on it */
	struct event *stop_ev;
	pthread_t th;
	int running;
	uint16_t port;
	char audit[PATH_MAX];
	char cert[PATH_MAX];
	char ca[PATH_MAX];        /* "" = certs/ca.crt */
	const char *addr;         /* NULL = 127.0.0.1 */
};
int fix_start(struct srvfix *f, uint16_t port, unsigned idle_ms,
	      unsigned req_ms, unsigned max_conns);
void fix_stop(struct srvfix *f);
void fix_stats(struct srvfix *f, struct nds_srv_stats *st);
void fix_clock(struct srvfix *f, time_t offset);
void loop_call_reload(struct srvfix *f, int *errp);
void fix_out_max(struct srvfix *f, size_t bytes, int sndbuf);
extern struct srvfix fix;  /* the shared one (port chosen at start) */

/* client for node `name` (e.g. "bridge1", "test/expired-bridge1") */
struct kms_client *client_for(const char *name, uint16_t port,
			      unsigned timeout_ms);
struct kms_client *client_at(const char *host, const char *crt,
			     const char *key, uint16_t port,
			     unsigned timeout_ms);
int copy_file(const char *from, const char *to);

/* raw TLS connection for malformed-input tests */
struct raw;
struct raw *raw_open(const char *name, uint16_t port, int tls12);
int raw_send(struct raw *r, const void *p, size_t n);
int raw_read_frame(struct raw *r, uint8_t *buf, size_t cap, size_t *lenp);
struct raw *raw_close(struct raw *r);
int raw_tcp(uint16_t port);
extern int raw_rcvbuf;  /* SO_RCVBUF of new raw sockets; 0 = default */

/* test tables */
int run_msg_tests(void);
int run_cert_tests(void);
int run_link_tests(void);
int run_store_tests(void);

#endif
