/** @file kms_bench_main.c  KMS key requests per second per core */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <pthread.h>

#include <event2/event.h>

#include "kms_nds/kms.h"
#include "kms_nds/kms_int.h"
#include "ue/ue.h"

/*
 * kms_bench [N] [DIR] [CERTS]
 *
 * Measures, on one thread, in CPU seconds (so: per core):
 *  - passive join: kmsd's handling of N conf-passive requests (open the
 *    chairman's and the invitee's tokens and statements, replay cache,
 *    conference record, two leg keys, two sealed replies) on a SQLite
 *    store in DIR (WAL, synchronous=NORMAL), without TLS;
 *  - bridge fetch: N leg-key lookups (kms_store_legkey_get) on that store;
 *  - with CERTS (scripts/certs.sh output): N fetches by bridge1 over the
 *    NDS link (one reused TLS connection, kms_client_fetch_legkey) to an
 *    NDS listener in a second thread; the CPU time is the listener
 *    thread's (what kmsd spends per fetch, TLS record work included).
 * The requests are made beforehand by the UE library (not timed).
 */

struct srv {
	struct event_base *base;
	struct kms_nds_srv *nds;
	clockid_t clk;
	pthread_t th;
};

static void *srv_main(void *arg)
{
	struct srv *v = arg;

	event_base_loop(v->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static double clk_now(clockid_t clk)
{
	struct timespec ts;

	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int nds_bench(struct kms_store *s, const char *certs, const char *conf,
		     size_t n)
{
	char crt[600], key[600], ca[600], bc[600], bk[600], who[64], e[256];
	struct kms_nds_cfg cfg = { .cert_file = crt, .key_file = key,
				   .ca_file = ca };
	struct kms_client_cfg cc = { .host = "127.0.0.1", .cert_file = bc,
				     .key_file = bk, .ca_file = ca };
	struct kms_client *c = NULL;
	struct srv v = { 0 };
	uint8_t k[KMS_NDS_KEY_MAX];
	double t0, t1;
	size_t i, ok = 0, len;

	snprintf(crt, sizeof(crt), "%s/kmsd-nds.crt", certs);
	snprintf(key, sizeof(key), "%s/kmsd-nds.key", certs);
	snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
	snprintf(bc, sizeof(bc), "%s/bridge1.crt", certs);
	snprintf(bk, sizeof(bk), "%s/bridge1.key", certs);
	v.base = event_base_new();
	if (!v.base || kms_nds_listen(v.base, s, "127.0.0.1", 0, &cfg,
				      &v.nds)) {
		fprintf(stderr, "kms_bench: NDS listener failed\n");
		return 1;
	}
	cc.port = kms_nds_port(v.nds);
	if (pthread_create(&v.th, NULL, srv_main, &v) ||
	    pthread_getcpuclockid(v.th, &v.clk) ||
	    kms_client_alloc(&c, &cc))
		return 1;
	len = sizeof(k);
	/* connect and handshake, not timed */
	if (kms_client_fetch_legkey(c, conf, "p0", k, &len, NULL, e,
				    sizeof(e)))
		fprintf(stderr, "kms_bench: %s\n", e);
	t0 = clk_now(v.clk);
	for (i = 0; i < n; i++) {
		snprintf(who, sizeof(who), "p%zu", i);
		len = sizeof(k);
		if (kms_client_fetch_legkey(c, conf, who, k, &len, NULL, e,
					    sizeof(e)) == 0)
			ok++;
	}
	t1 = clk_now(v.clk);
	kms_wipe(k, sizeof(k));
	printf("bridge_fetch_nds=%zu ok=%zu server_cpu_s=%.3f "
	       "per_core_per_s=%.0f\n", n, ok, t1 - t0,
	       (double)ok / (t1 - t0));
	kms_client_free(c);
	event_base_loopbreak(v.base);
	pthread_join(v.th, NULL);
	kms_nds_free(v.nds);
	event_base_free(v.base);
	return ok == n ? 0 : 1;
}

struct cap {
	char **req;
	size_t *len;
	size_t n, cap;
	struct kms_store *s;
	uint8_t exporter[32];
	int live;
};

static int xfer(const char *req, size_t len, char **resp, size_t *rlen,
		void *arg)
{
	struct cap *c = arg;
	struct kms_req_ctx ctx = { .now = kms_now(), .has_exporter = 1 };
	int err;

	if (c->live) {
		memcpy(ctx.exporter, c->exporter, 32);
		err = kms_handle(c->s, &ctx, req, len, resp);
		if (!err)
			*rlen = strlen(*resp);
		return err;
	}
	if (c->n == c->cap)
		return ENOSPC;
	c->req[c->n] = malloc(len);
	if (!c->req[c->n])
		return ENOMEM;
	memcpy(c->req[c->n], req, len);
	c->len[c->n++] = len;
	return ECANCELED;
}

static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct ue *mk(struct cap *c, const char *dir, const char *id,
		     const uint8_t cred[32])
{
	struct ue_cfg cfg = { .xfer = xfer, .xfer_arg = c };
	char path[600];
	struct ue *u = NULL;

	memcpy(cfg.xfer_exporter, c->exporter, 32);
	snprintf(path, sizeof(path), "%s/%s.json", dir, id);
	unlink(path);
	cfg.state_file = path;
	c->live = 1;
	if (ue_open(&u, &cfg, id) || ue_bootstrap(u, cred)) {
		fprintf(stderr, "kms_bench: bootstrap %s failed\n", id);
		exit(1);
	}
	c->live = 0;
	return u;
}

int main(int argc, char **argv)
{
	static char stmt[UE_STMT_MAX], reply[UE_STMT_MAX];
	size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 2000, i, ok = 0;
	const char *dir = argc > 2 ? argv[2] : "/tmp";
	const char *certs = argc > 3 ? argv[3] : NULL;
	int rc = 0;
	char db[600], kf[600], who[64], conf[KMS_REF_MAX] = "";
	uint8_t ca[32], cb[32];
	struct cap c = { .cap = n };
	struct ue *a, *b;
	struct ue_key k;
	double t0, t1;

	if (n < 10)
		n = c.cap = 10;
	snprintf(db, sizeof(db), "%s/kms_bench.db", dir);
	snprintf(kf, sizeof(kf), "%s/kms_bench.key", dir);
	unlink(db);
	unlink(kf);
	c.req = calloc(n, sizeof(*c.req));
	c.len = calloc(n, sizeof(*c.len));
	if (!c.req || !c.len || kms_store_keyfile_create(kf) ||
	    kms_store_open(&c.s, db, kf) || kms_random(c.exporter, 32) ||
	    kms_id_add(c.s, "chair", ca)) {
		fprintf(stderr, "kms_bench: setup failed\n");
		return 1;
	}
	a = mk(&c, dir, "chair", ca);
	/* N invitees in one conference (one Ra): N passive-join requests */
	for (i = 0; i < n; i++) {
		snprintf(who, sizeof(who), "p%zu", i);
		if (kms_id_add(c.s, who, cb))
			return 1;
		b = mk(&c, dir, who, cb);
		if (ue_invite(a, who, "bridge1.keymix.test", NULL, "bench",
			      0, stmt, sizeof(stmt)) ||
		    ue_answer(b, "conf-passive", "chair", NULL, stmt, reply,
			      sizeof(reply), &k) != ECANCELED) {
			fprintf(stderr, "kms_bench: request %zu\n", i);
			return 1;
		}
		ue_free(b);
		snprintf(who, sizeof(who), "%s/p%zu.json", dir, i);
		unlink(who);
	}
	t0 = cpu_now();
	for (i = 0; i < n; i++) {
		struct kms_req_ctx ctx = { .now = kms_now() };
		char *resp = NULL;

		if (kms_handle(c.s, &ctx, c.req[i], c.len[i], &resp) == 0 &&
		    strstr(resp, "conf-passive-ok")) {
			ok++;
			if (!conf[0]) {
				const char *p = strstr(resp, "\"conf\":\"");

				if (p)
					snprintf(conf, sizeof(conf), "%.22s",
						 p + 8);
			}
		}
		free(resp);
	}
	t1 = cpu_now();
	printf("passive_join_requests=%zu ok=%zu cpu_s=%.3f "
	       "per_core_per_s=%.0f\n", n, ok, t1 - t0,
	       (double)ok / (t1 - t0));
	t0 = cpu_now();
	ok = 0;
	for (i = 0; i < n; i++) {
		struct kms_legkey lk;

		snprintf(who, sizeof(who), "p%zu", i);
		if (kms_store_legkey_get(c.s, conf, who, kms_now(), &lk) == 0)
			ok++;
		kms_wipe(&lk, sizeof(lk));
	}
	t1 = cpu_now();
	printf("bridge_fetch_store=%zu ok=%zu cpu_s=%.3f "
	       "per_core_per_s=%.0f\n",
	       n, ok, t1 - t0, (double)ok / (t1 - t0));
	if (ok != n)
		rc = 1;
	if (certs && nds_bench(c.s, certs, conf, n))
		rc = 1;
	for (i = 0; i < c.n; i++)
		free(c.req[i]);
	free(c.req);
	free(c.len);
	ue_free(a);
	kms_store_close(c.s);
	snprintf(who, sizeof(who), "%s/chair.json", dir);
	unlink(who);
	unlink(kf);
	unlink(db);
	snprintf(db, sizeof(db), "%s/kms_bench.db-wal", dir);
	unlink(db);
	snprintf(db, sizeof(db), "%s/kms_bench.db-shm", dir);
	unlink(db);
	return rc;
}
