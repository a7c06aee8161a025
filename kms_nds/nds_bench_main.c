/**
 * @file nds_bench_main.c  nds_bench: NDS leg-key fetch rate over loopback
 *
 *   nds_bench --certs DIR [--requests N] [--backend store|mem]
 *             [--mode reuse|handshake] [--audit FILE] [--legs N]
 *
 * Runs the NDS listener (kms_nds_listen on a SQLite store in a temporary
 * directory, or the bare listener on an in-memory table) on its own
 * event-loop thread and one bridge client (kms_client) in the main
 * thread.  mode reuse: every fetch on one kept TLS connection; mode
 * handshake: a new client (TLS 1.3 handshake with client certificate)
 * per fetch.  Prints wall-clock rate and the listener thread's CPU time,
 * so "per core" is fetches per CPU-second of the kmsd side.
 */

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "kms_nds/kms.h"
#include "kms_nds/kms_store.h"
#include "kms_nds/nds_int.h"

#define FOCUS "bridge1.keymix.test"
#define LEGS_MAX 1000

struct bench {
	struct event_base *base;
	struct event *stop_ev;
	struct kms_nds_srv *srv;
	struct kms_store *store;
	pthread_t th;
	clockid_t th_clock;
	uint8_t keys[LEGS_MAX][32];
	unsigned legs;
};

static struct bench B;

static double now_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* in-memory backend: every conference "conf-bench", focus bridge1 */
static int m_conf(void *arg, const char *ref, time_t now,
		  struct nds_key_rec *rec)
{
	(void)arg;
	(void)now;
	if (strcmp(ref, "conf-bench"))
		return ENOENT;
	snprintf(rec->node, sizeof(rec->node), "%s", FOCUS);
	return 0;
}

static int m_leg(void *arg, const char *ref, const char *part, time_t now,
		 struct nds_key_rec *rec)
{
	unsigned i;

	(void)arg;
	(void)now;
	if (strcmp(ref, "conf-bench") || strncmp(part, "p", 1))
		return ENOENT;
	i = (unsigned)strtoul(part + 1, NULL, 10);
	if (i >= B.legs)
		return ENOENT;
	memcpy(rec->key, B.keys[i], 32);
	rec->key_len = 32;
	rec->generation = 1;
	snprintf(rec->node, sizeof(rec->node), "%s", FOCUS);
	return 0;
}

static int m_none(void *arg, const char *node, const char *call,
		  time_t now, struct nds_key_rec *rec)
{
	(void)arg;
	(void)node;
	(void)call;
	(void)now;
	(void)rec;
	return ENOENT;
}

static int m_mbox(void *arg, const char *mailbox, const char *a,
		  const char *b, const char *sealed, int want, time_t now,
		  struct nds_mbox_rec *rec)
{
	(void)arg;
	(void)mailbox;
	(void)a;
	(void)b;
	(void)sealed;
	(void)want;
	(void)now;
	(void)rec;
	return ENOENT;
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopbreak(arg);
}

static void *loop_main(void *arg)
{
	(void)arg;
	event_base_loop(B.base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static int usage(void)
{
	fprintf(stderr, "usage: nds_bench --certs DIR [--requests N] "
		"[--backend store|mem] [--mode reuse|handshake] "
		"[--audit FILE] [--legs N]\n");
	return 2;
}

static int setup_store(char *dir, size_t dirsz)
{
	char db[256], key[256];
	const char **parts;
	char (*names)[16];
	unsigned i;
	int err;

	snprintf(dir, dirsz, "/tmp/nds_bench.XXXXXX");
	if (!mkdtemp(dir))
		return errno;
	snprintf(db, sizeof(db), "%s/kms.db", dir);
	snprintf(key, sizeof(key), "%s/storage.key", dir);
	err = kms_store_keyfile_create(key);
	if (!err)
		err = kms_store_open(&B.store, db, key);
	if (err)
		return err;
	parts = calloc(B.legs, sizeof(*parts));
	names = calloc(B.legs, sizeof(*names));
	if (!parts || !names)
		return ENOMEM;
	for (i = 0; i < B.legs; i++) {
		snprintf(names[i], sizeof(names[i]), "p%u", i);
		parts[i] = names[i];
	}
	err = kms_store_fixture_conf(B.store, "conf-bench", FOCUS, parts,
				     B.legs, (uint64_t)time(NULL),
				     (uint64_t)time(NULL) + 86400,
				     &B.keys[0][0]);
	free(parts);
	free(names);
	return err;
}

int main(int argc, char **argv)
{
	const char *certs = NULL, *backend = "store", *mode = "reuse";
	const char *audit = NULL;
	unsigned long requests = 20000, i;
	char cert[512], key[512], ca[512], srvcert[512], srvkey[512];
	char dir[64] = "", err[256], part[16];
	struct kms_nds_cfg cfg;
	struct kms_client_cfg ccfg;
	struct kms_client *c = NULL;
	double w0, w1, s0, s1, c0, c1;
	uint8_t k[KMS_NDS_KEY_MAX];
	size_t klen;
	int a, r;

	B.legs = 100;
	for (a = 1; a < argc; a++) {
		if (a + 1 >= argc)
			return usage();
		if (!strcmp(argv[a], "--certs"))
			certs = argv[++a];
		else if (!strcmp(argv[a], "--requests"))
			requests = strtoul(argv[++a], NULL, 10);
		else if (!strcmp(argv[a], "--backend"))
			backend = argv[++a];
		else if (!strcmp(argv[a], "--mode"))
			mode = argv[++a];
		else if (!strcmp(argv[a], "--audit"))
			audit = argv[++a];
		else if (!strcmp(argv[a], "--legs"))
			B.legs = (unsigned)strtoul(argv[++a], NULL, 10);
		else
			return usage();
	}
	if (!certs || !requests || !B.legs || B.legs > LEGS_MAX)
		return usage();
	snprintf(cert, sizeof(cert), "%s/bridge1.crt", certs);
	snprintf(key, sizeof(key), "%s/bridge1.key", certs);
	snprintf(ca, sizeof(ca), "%s/ca.crt", certs);
	snprintf(srvcert, sizeof(srvcert), "%s/kmsd-nds.crt", certs);
	snprintf(srvkey, sizeof(srvkey), "%s/kmsd-nds.key", certs);

	evthread_use_pthreads();
	signal(SIGPIPE, SIG_IGN);
	B.base = event_base_new();
	B.stop_ev = event_new(B.base, -1, 0, stop_cb, B.base);
	memset(&cfg, 0, sizeof(cfg));
	cfg.cert_file = srvcert;
	cfg.key_file = srvkey;
	cfg.ca_file = ca;
	cfg.audit_log = audit;
	if (!strcmp(backend, "store")) {
		r = setup_store(dir, sizeof(dir));
		if (!r)
			r = kms_nds_listen(B.base, B.store, "127.0.0.1", 0,
					   &cfg, &B.srv);
	}
	else {
		struct nds_backend be = {
			.conf_focus = m_conf, .legkey = m_leg,
			.call_key = m_none, .mailbox = m_mbox,
		};

		for (i = 0; i < B.legs; i++)
			memset(B.keys[i], (int)i, 32);
		r = nds_srv_listen(B.base, &be, "127.0.0.1", 0, &cfg, &B.srv);
	}
	if (r) {
		fprintf(stderr, "nds_bench: setup: %s\n", strerror(r));
		return 1;
	}
	pthread_create(&B.th, NULL, loop_main, NULL);
	pthread_getcpuclockid(B.th, &B.th_clock);

	memset(&ccfg, 0, sizeof(ccfg));
	ccfg.host = "127.0.0.1";
	ccfg.port = kms_nds_port(B.srv);
	ccfg.cert_file = cert;
	ccfg.key_file = key;
	ccfg.ca_file = ca;
	ccfg.timeout_ms = 5000;
	w0 = now_s(CLOCK_MONOTONIC);
	s0 = now_s(B.th_clock);
	c0 = now_s(CLOCK_THREAD_CPUTIME_ID);
	for (i = 0; i < requests; i++) {
		if (!c && kms_client_alloc(&c, &ccfg)) {
			fprintf(stderr, "nds_bench: client setup failed\n");
			return 1;
		}
		snprintf(part, sizeof(part), "p%lu", i % B.legs);
		klen = sizeof(k);
		r = kms_client_fetch_legkey(c, "conf-bench", part, k, &klen,
					    NULL, err, sizeof(err));
		if (r || klen != 32 || memcmp(k, B.keys[i % B.legs], 32)) {
			fprintf(stderr, "nds_bench: fetch %lu: %s\n", i,
				r ? err : "wrong key");
			return 1;
		}
		if (!strcmp(mode, "handshake"))
			c = kms_client_free(c);
	}
	w1 = now_s(CLOCK_MONOTONIC);
	s1 = now_s(B.th_clock);
	c1 = now_s(CLOCK_THREAD_CPUTIME_ID);
	c = kms_client_free(c);

	printf("nds_bench: mode=%s backend=%s audit=%s legs=%u "
	       "requests=%lu\n", mode, backend, audit ? "on" : "off", B.legs,
	       requests);
	printf("  wall %.3f s  %.0f fetch/s (one client, sequential)\n",
	       w1 - w0, (double)requests / (w1 - w0));
	printf("  kmsd side (listener thread) cpu %.3f s  %.0f fetch/s per "
	       "core\n", s1 - s0, (double)requests / (s1 - s0));
	printf("  client thread cpu %.3f s  %.0f fetch/s per core\n",
	       c1 - c0, (double)requests / (c1 - c0));

	event_active(B.stop_ev, EV_READ, 0);
	pthread_join(B.th, NULL);
	B.srv = kms_nds_free(B.srv);
	event_free(B.stop_ev);
	event_base_free(B.base);
	if (B.store)
		kms_store_close(B.store);
	if (dir[0]) {
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd))
			fprintf(stderr, "nds_bench: could not remove %s\n",
				dir);
	}
	return 0;
}
