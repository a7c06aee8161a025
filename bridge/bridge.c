/**
 * @file bridge.c  The bridge daemon core: control loop, workers, signals
 */

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <openssl/ssl.h>
#include "bridge/bridge_int.h"

/** Packet buffers per worker, made at start */
#define POOL_BUFS 4096

/** Read the bearer token: first line of the file, whitespace trimmed */
static int token_load(struct bridge *b, char *err, size_t errsz)
{
	char buf[sizeof(b->token) + 2];
	struct stat st;
	ssize_t n;
	size_t len;
	int fd;

	fd = open(b->cfg.token_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errsz, "--token-file %s: %s", b->cfg.token_file,
			 strerror(errno));
		return errno;
	}
	if (!fstat(fd, &st) && (st.st_mode & S_IROTH))
		bridge_log(BRIDGE_LOG_WARN, "token file %s is world-readable",
			   b->cfg.token_file);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	while (len && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	if (len == 0 || len >= sizeof(b->token)) {
		snprintf(err, errsz, "--token-file %s: want one line with a "
			 "token of 1..%zu characters", b->cfg.token_file,
			 sizeof(b->token) - 1);
		keyleg_wipe(buf, sizeof(buf));
		return EINVAL;
	}
	keyleg_wipe(b->token, sizeof(b->token));
	memcpy(b->token, buf, len);
	b->token_len = len;
	keyleg_wipe(buf, sizeof(buf));
	return 0;
}

static void sig_cb(evutil_socket_t sig, short what, void *arg)
{
	struct bridge *b = arg;
	(void)what;

	if (sig == SIGHUP) {
		bridge_reload(b);
		return;
	}
	bridge_log(BRIDGE_LOG_INFO, "signal %d: draining and exiting",
		   (int)sig);
	bridge_stop(b);
}

/** Least loaded worker for a new conference */
struct worker *bridge_pick_worker(struct bridge *b)
{
	struct worker *best = &b->workers[0];
	unsigned i, bl = ~0u;

	for (i = 0; i < b->nworkers; i++) {
		struct worker *w = &b->workers[i];
		unsigned l = atomic_load(&w->nlegs) * 4 +
			atomic_load(&w->nconfs) +
			atomic_load(&w->load_permille);

		if (l < bl) {
			bl = l;
			best = w;
		}
	}
	return best;
}

/**
 * Create the bridge: bind the control listener, connect nothing yet to
 * the KMS (the client connects on first use), start the workers.
 */
int bridge_alloc(struct bridge **bp, const struct bridge_cfg *cfg,
		 char *err, size_t errsz)
{
	static int threads_ready;
	struct bridge *b;
	unsigned i;
	int e;

	err[0] = '\0';
	bridge_secmem_init();
	if (!threads_ready) {
		if (evthread_use_pthreads()) {
			snprintf(err, errsz, "libevent threads unavailable");
			return ENOSYS;
		}
		threads_ready = 1;
	}
	e = keyleg_init();
	if (e) {
		snprintf(err, errsz, "keyleg_init: %s", strerror(e));
		return e;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return ENOMEM;
	b->cfg = *cfg;
	b->started_us = bridge_now_us();
	bridge_log_set_level(cfg->log_level);
	e = token_load(b, err, errsz);
	if (e)
		goto out;
	e = ports_init(&b->ports, cfg->port_lo, cfg->port_hi);
	if (e)
		goto out;
	b->base = event_base_new();
	if (!b->base) {
		e = ENOMEM;
		goto out;
	}
	e = api_tls_load(b, err, errsz);
	if (e)
		goto out;
	e = api_init(b);
	if (e) {
		snprintf(err, errsz, "control listener %s:%u: %s",
			 cfg->control_host, cfg->control_port, strerror(e));
		goto out;
	}
	if (cfg->kms_host[0]) {
		e = kmslink_open(b, err, errsz);
		if (e)
			goto out;
	}
	b->nworkers = cfg->workers;
	if (!b->nworkers) {
		long n = sysconf(_SC_NPROCESSORS_ONLN);

		b->nworkers = n > 0 ? (unsigned)n : 1;
	}
	b->workers = calloc(b->nworkers, sizeof(*b->workers));
	if (!b->workers) {
		e = ENOMEM;
		goto out;
	}
	for (i = 0; i < b->nworkers; i++) {
		e = worker_start(&b->workers[i], b, i, POOL_BUFS);
		if (e) {
			snprintf(err, errsz, "worker %u: %s", i, strerror(e));
			goto out;
		}
	}
	b->sig_hup = evsignal_new(b->base, SIGHUP, sig_cb, b);
	b->sig_term = evsignal_new(b->base, SIGTERM, sig_cb, b);
	b->sig_int = evsignal_new(b->base, SIGINT, sig_cb, b);
	if (!b->sig_hup || !b->sig_term || !b->sig_int) {
		e = ENOMEM;
		goto out;
	}
	/* handlers in place before anyone can see the ready line */
	signal(SIGPIPE, SIG_IGN);
	event_add(b->sig_hup, NULL);
	event_add(b->sig_term, NULL);
	event_add(b->sig_int, NULL);
	bridge_log(BRIDGE_LOG_INFO, "control on %s%s, RTP ports %u-%u, %u "
		   "worker(s), KMS %s, SRTP %s on %s, sends %s", b->control_addr,
		   b->tls ? " (TLS)" : "",
		   cfg->port_lo, cfg->port_hi, b->nworkers,
		   b->kms ? b->cfg.kms_host : "none", keyleg_srtp_version(),
		   keyleg_crypto_backend(), b->workers[0].uring_ok == 1 ?
		   "io_uring" : "sendmmsg");
 out:
	if (e) {
		if (!err[0])
			snprintf(err, errsz, "%s", strerror(e));
		bridge_free(b);
	}
	else {
		*bp = b;
	}
	return e;
}

/** "ADDR:PORT" of the control listener, with the real port */
int bridge_control_addr(const struct bridge *b, char *buf, size_t sz)
{
	int n = snprintf(buf, sz, "%s", b->control_addr);

	return (n < 0 || (size_t)n >= sz) ? ENOSPC : 0;
}

struct drain {
	struct conf *c;
};

static void call_drain(struct worker *w, void *arg)
{
	struct drain *d = arg;
	struct leg *l;

	worker_conf_detach(w, d->c);
	for (l = d->c->legs; l; l = l->next)
		ports_release(&w->b->ports, l->port);
	conf_free(d->c); /* each leg says BYE */
}

/** Free every conference (each leg sends an RTCP BYE) */
static void bridge_drain(struct bridge *b)
{
	while (b->confs) {
		struct confref *r = b->confs;
		struct drain d;

		b->confs = r->next;
		d.c = r->c;
		worker_call(r->c->w, call_drain, &d);
		free(r);
		b->nconfs--;
	}
}

/**
 * Run the control loop until SIGTERM/SIGINT or bridge_stop(), then drain:
 * stop taking requests, end every conference, return.
 */
int bridge_run(struct bridge *b)
{
	event_base_dispatch(b->base);
	b->stopping = 1;
	if (b->sock) {
		evhttp_del_accept_socket(b->http, b->sock);
		b->sock = NULL;
	}
	bridge_drain(b);
	bridge_log(BRIDGE_LOG_INFO, "drained");
	return 0;
}

/** Ask bridge_run() to drain and return (any thread, signal-safe path) */
void bridge_stop(struct bridge *b)
{
	event_base_loopexit(b->base, NULL);
}

/** SIGHUP: re-read the NDS certificate/key/CA and the token file */
int bridge_reload(struct bridge *b)
{
	char err[256];
	int e = 0, e2;

	/* the KMS thread re-reads the NDS files between fetches, logs */
	e = kmslink_reload(b);
	e2 = token_load(b, err, sizeof(err));
	if (e2)
		bridge_log(BRIDGE_LOG_ERROR, "reload: %s (keeping the old "
			   "token)", err);
	if (b->tls) {
		int e3 = api_tls_load(b, err, sizeof(err));

		if (e3)
			bridge_log(BRIDGE_LOG_ERROR, "reload: %s (keeping the "
				   "old one)", err);
		else
			bridge_log(BRIDGE_LOG_INFO, "reload: control TLS "
				   "certificate re-read");
		e2 = e2 ? e2 : e3;
	}
	return e ? e : e2;
}

/** Stop the workers and free everything.  Returns NULL */
struct bridge *bridge_free(struct bridge *b)
{
	unsigned i;

	if (!b)
		return NULL;
	/* KMS jobs still out are answered (503) while evhttp lives */
	kmslink_close(b);
	if (b->workers) {
		bridge_drain(b);
		for (i = 0; i < b->nworkers; i++)
			worker_stop(&b->workers[i]);
		free(b->workers);
	}
	if (b->sig_hup)
		event_free(b->sig_hup);
	if (b->sig_term)
		event_free(b->sig_term);
	if (b->sig_int)
		event_free(b->sig_int);
	if (b->http)
		evhttp_free(b->http);
	if (b->tls)
		SSL_CTX_free(b->tls);
	if (b->base)
		event_base_free(b->base);
	ports_fini(&b->ports);
	keyleg_wipe(b, sizeof(*b));
	free(b);
	return NULL;
}

/**
 * Drop root to user (after every privileged bind).  Not root: only
 * checks that user is who we already are.
 */
int bridge_drop_privileges(const char *user, char *err, size_t errsz)
{
	struct passwd *pw = getpwnam(user);

	if (!pw) {
		snprintf(err, errsz, "--user %s: no such user", user);
		return ENOENT;
	}
	if (geteuid() != 0) {
		if (geteuid() == pw->pw_uid)
			return 0;
		snprintf(err, errsz, "--user %s: not root, cannot switch",
			 user);
		return EPERM;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) || setgid(pw->pw_gid) ||
	    setuid(pw->pw_uid)) {
		snprintf(err, errsz, "--user %s: %s", user, strerror(errno));
		return errno;
	}
	if (setuid(0) == 0) {
		snprintf(err, errsz, "--user %s: could regain root", user);
		return EPERM;
	}
	return 0;
}
