/**
 * @file fixture.c  NDS link tests: certificates, memory backend, threads
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>

#include "tests/nds/nds_test.h"

struct srvfix fix;

static char cdir[PATH_MAX];

const char *certdir(void)
{
	const char *top, *build;
	char cmd[2 * PATH_MAX + 64];

	if (cdir[0])
		return cdir;
	top = getenv("KEYMIX_TOP");
	build = getenv("KEYMIX_BUILD");
	if (!top)
		top = ".";
	if (build)
		snprintf(cdir, sizeof(cdir), "%s/nds-test-certs", build);
	else
		snprintf(cdir, sizeof(cdir), "/tmp/keymix-nds-certs-%d",
			 (int)getuid());
	snprintf(cmd, sizeof(cmd), "bash '%s/scripts/certs.sh' '%s' "
		 ">/dev/null", top, cdir);
	if (system(cmd) != 0) {
		fprintf(stderr, "certs.sh failed: %s\n", cmd);
		exit(1);
	}
	return cdir;
}

const char *certpath(const char *name, const char *ext)
{
	/* per thread: tests run clients on several threads */
	static __thread char buf[4][PATH_MAX + 64];
	static __thread int i;
	char *p = buf[i++ & 3];

	snprintf(p, PATH_MAX + 64, "%s/%s.%s", certdir(), name, ext);
	return p;
}

/* ---- memory backend ---------------------------------------------- */

struct mem_leg mem_legs[] = {
	{ "conf-1", "alice@keymix.test", "bridge1" DOM, {0}, 1, 0 },
	{ "conf-1", "bob@keymix.test", "bridge1" DOM, {0}, 3, 0 },
	{ "conf-2", "carol@keymix.test", "bridge2" DOM, {0}, 1, 0 },
	{ "conf-old", "dave@keymix.test", "bridge1" DOM, {0}, 1, 1000 },
};
size_t mem_nlegs = sizeof(mem_legs) / sizeof(mem_legs[0]);

struct mem_call {
	const char *call, *transcoder;
	uint8_t key[32];
};
static struct mem_call mem_calls[] = {
	{ "call-1", "transcoder1" DOM, {0} },
	{ "call-2", "transcoder9" DOM, {0} },
};

void mem_init(void)
{
	size_t i;

	for (i = 0; i < mem_nlegs; i++)
		if (RAND_bytes(mem_legs[i].key, sizeof(mem_legs[i].key)) != 1)
			abort();
	for (i = 0; i < sizeof(mem_calls) / sizeof(mem_calls[0]); i++)
		if (RAND_bytes(mem_calls[i].key, 32) != 1)
			abort();
	/* conf-old expires at now + 1000 s (tests move the clock) */
	mem_legs[3].expires = time(NULL) + 1000;
}

static int m_conf(void *arg, const char *ref, time_t now,
		  struct nds_key_rec *rec)
{
	size_t i;

	(void)arg;
	for (i = 0; i < mem_nlegs; i++) {
		if (strcmp(mem_legs[i].conf, ref))
			continue;
		if (mem_legs[i].expires && now >= mem_legs[i].expires)
			return EKEYEXPIRED;
		snprintf(rec->node, sizeof(rec->node), "%s",
			 mem_legs[i].focus);
		return 0;
	}
	return ENOENT;
}

static int m_leg(void *arg, const char *ref, const char *part, time_t now,
		 struct nds_key_rec *rec)
{
	size_t i;

	(void)arg;
	for (i = 0; i < mem_nlegs; i++) {
		const struct mem_leg *l = &mem_legs[i];

		if (strcmp(l->conf, ref) || strcmp(l->part, part))
			continue;
		if (l->expires && now >= l->expires)
			return EKEYEXPIRED;
		memcpy(rec->key, l->key, 32);
		rec->key_len = 32;
		rec->generation = l->gen;
		rec->expires = (uint64_t)l->expires;
		snprintf(rec->node, sizeof(rec->node), "%s", l->focus);
		return 0;
	}
	return ENOENT;
}

static int m_call(void *arg, const char *node, const char *call,
		  time_t now, struct nds_key_rec *rec)
{
	size_t i;

	(void)arg;
	(void)now;
	for (i = 0; i < sizeof(mem_calls) / sizeof(mem_calls[0]); i++) {
		if (strcmp(mem_calls[i].call, call))
			continue;
		if (strcmp(mem_calls[i].transcoder, node))
			return EACCES;
		memcpy(rec->key, mem_calls[i].key, 32);
		rec->key_len = 32;
		rec->generation = 1;
		return 0;
	}
	return ENOENT;
}

static int m_mbox(void *arg, const char *mailbox, const char *a,
		  const char *b, const char *sealed, int want_ke2m,
		  time_t now, struct nds_mbox_rec *rec)
{
	(void)arg;
	(void)a;
	if (strcmp(b, "bob@keymix.test"))
		return ENOENT;
	if (strcmp(mailbox, "mailbox1" DOM))
		return EACCES;
	snprintf(rec->for_a, sizeof(rec->for_a), "EA.%s", sealed);
	snprintf(rec->store, sizeof(rec->store), "TICKET.for.bob");
	if (want_ke2m) {
		memset(rec->ke2m, 0x5a, 32);
		rec->ke2m_len = 32;
	}
	rec->retain_until = (uint64_t)now + 86400;
	return 0;
}

const struct nds_backend mem_backend = {
	.conf_focus = m_conf,
	.legkey = m_leg,
	.call_key = m_call,
	.mailbox = m_mbox,
};

/* ---- listener thread ------------------------------------------- */

static void *loop_main(void *arg)
{
	struct srvfix *f = arg;

	event_base_loop(f->base, EVLOOP_NO_EXIT_ON_EMPTY);
	return NULL;
}

static void loop_run(struct srvfix *f)
{
	if (pthread_create(&f->th, NULL, loop_main, f))
		abort();
	f->running = 1;
}

static void stop_cb(evutil_socket_t fd, short what, void *arg)
{
	struct srvfix *f = arg;

	(void)fd;
	(void)what;
	event_base_loopbreak(f->base);
}

/* An activated event (not loopbreak from here): it is not lost when the
 * loop thread has not entered its loop yet. */
static void loop_halt(struct srvfix *f)
{
	if (!f->running)
		return;
	event_active(f->stop_ev, EV_READ, 0);
	pthread_join(f->th, NULL);
	f->running = 0;
}

int fix_start(struct srvfix *f, uint16_t port, unsigned idle_ms,
	      unsigned req_ms, unsigned max_conns)
{
	struct kms_nds_cfg cfg;
	static int once;
	int err;

	if (!once) {
		evthread_use_pthreads();
		signal(SIGPIPE, SIG_IGN);
		once = 1;
	}
	memset(&cfg, 0, sizeof(cfg));
	cfg.cert_file = f->cert[0] ? f->cert : certpath("kmsd-nds", "crt");
	cfg.key_file = f->cert[0] ? certpath("bridge1", "key") :
		certpath("kmsd-nds", "key");
	cfg.ca_file = f->ca[0] ? f->ca : certpath("ca", "crt");
	cfg.audit_log = f->audit;
	cfg.idle_timeout_ms = idle_ms;
	cfg.request_timeout_ms = req_ms;
	cfg.max_conns = max_conns;
	f->base = event_base_new();
	if (!f->base)
		return ENOMEM;
	f->stop_ev = event_new(f->base, -1, 0, stop_cb, f);
	if (!f->stop_ev)
		return ENOMEM;
	if (f->store)
		err = kms_nds_listen(f->base, f->store,
				     f->addr ? f->addr : "127.0.0.1", port,
				     &cfg, &f->srv);
	else
		err = nds_srv_listen(f->base, &mem_backend,
				     f->addr ? f->addr : "127.0.0.1", port,
				     &cfg, &f->srv);
	if (err) {
		event_free(f->stop_ev);
		event_base_free(f->base);
		f->base = NULL;
		return err;
	}
	f->port = kms_nds_port(f->srv);
	loop_run(f);
	return 0;
}

void fix_stop(struct srvfix *f)
{
	loop_halt(f);
	f->srv = kms_nds_free(f->srv);
	if (f->stop_ev)
		event_free(f->stop_ev);
	f->stop_ev = NULL;
	if (f->base)
		event_base_free(f->base);
	f->base = NULL;
}

void fix_stats(struct srvfix *f, struct nds_srv_stats *st)
{
	loop_halt(f);
	nds_srv_stats(f->srv, st);
	loop_run(f);
}

void fix_out_max(struct srvfix *f, size_t bytes, int sndbuf)
{
	loop_halt(f);
	nds_srv_set_out_max(f->srv, bytes, sndbuf);
	loop_run(f);
}

void loop_call_reload(struct srvfix *f, int *errp)
{
	loop_halt(f);
	*errp = kms_nds_reload(f->srv);
	loop_run(f);
}

void fix_clock(struct srvfix *f, time_t offset)
{
	loop_halt(f);
	nds_srv_set_clock(f->srv, offset);
	loop_run(f);
}

struct kms_client *client_at(const char *host, const char *crt,
			     const char *key, uint16_t port,
			     unsigned timeout_ms)
{
	struct kms_client_cfg cfg = {
		.host = host, .port = port, .cert_file = crt,
		.key_file = key, .ca_file = certpath("ca", "crt"),
		.timeout_ms = timeout_ms,
	};
	struct kms_client *c = NULL;

	if (kms_client_alloc(&c, &cfg))
		return NULL;
	return c;
}

int copy_file(const char *from, const char *to)
{
	char buf[4096];
	FILE *in = fopen(from, "rb"), *out = fopen(to, "wb");
	size_t n;
	int err = 0;

	if (!in || !out)
		err = errno ? errno : EIO;
	while (!err && (n = fread(buf, 1, sizeof(buf), in)) > 0)
		if (fwrite(buf, 1, n, out) != n)
			err = EIO;
	if (in)
		fclose(in);
	if (out && fclose(out) && !err)
		err = EIO;
	return err;
}

struct kms_client *client_for(const char *name, uint16_t port,
			      unsigned timeout_ms)
{
	struct kms_client_cfg cfg = {
		.host = "127.0.0.1",
		.port = port,
		.cert_file = certpath(name, "crt"),
		.key_file = certpath(name, "key"),
		.ca_file = certpath("ca", "crt"),
		.timeout_ms = timeout_ms,
	};
	struct kms_client *c = NULL;

	if (kms_client_alloc(&c, &cfg))
		return NULL;
	return c;
}

/* ---- raw TLS client ---------------------------------------------- */

struct raw {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
};

int raw_rcvbuf;

int raw_tcp(uint16_t port)
{
	struct sockaddr_in sa;
	struct timeval tv = { 3, 0 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (raw_rcvbuf)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &raw_rcvbuf,
			   sizeof(raw_rcvbuf));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* name NULL: no client certificate */
struct raw *raw_open(const char *name, uint16_t port, int tls12)
{
	struct raw *r = calloc(1, sizeof(*r));
	uint8_t hello[512];
	struct nds_msg m;
	size_t n;

	if (!r)
		return NULL;
	r->fd = -1;
	r->ctx = SSL_CTX_new(TLS_client_method());
	if (!r->ctx)
		goto fail;
	if (tls12)
		SSL_CTX_set_max_proto_version(r->ctx, TLS1_2_VERSION);
	if (name && (SSL_CTX_use_certificate_chain_file(r->ctx,
			certpath(name, "crt")) != 1 ||
		     SSL_CTX_use_PrivateKey_file(r->ctx, certpath(name, "key"),
						 SSL_FILETYPE_PEM) != 1))
		goto fail;
	SSL_CTX_load_verify_locations(r->ctx, certpath("ca", "crt"), NULL);
	SSL_CTX_set_verify(r->ctx, SSL_VERIFY_PEER, NULL);
	r->fd = raw_tcp(port);
	if (r->fd < 0)
		goto fail;
	r->ssl = SSL_new(r->ctx);
	if (!r->ssl || SSL_set_fd(r->ssl, r->fd) != 1)
		goto fail;
	if (SSL_connect(r->ssl) != 1)
		goto fail;
	/* kmsd greets an accepted node before anything else */
	if (raw_read_frame(r, hello, sizeof(hello), &n) ||
	    nds_msg_parse(&m, hello + 4, n - 4) || m.type != NDS_T_HELLO)
		goto fail;
	return r;
 fail:
	ERR_clear_error();
	raw_close(r);
	return NULL;
}

int raw_send(struct raw *r, const void *p, size_t n)
{
	ERR_clear_error();
	return SSL_write(r->ssl, p, (int)n) == (int)n ? 0 : EIO;
}

static int read_n(struct raw *r, uint8_t *p, size_t n)
{
	size_t got = 0;
	int k;

	while (got < n) {
		ERR_clear_error();
		k = SSL_read(r->ssl, p + got, (int)(n - got));
		if (k <= 0)
			return ENOTCONN;
		got += (size_t)k;
	}
	return 0;
}

/* One whole frame (length prefix included) into buf; ENOTCONN at EOF. */
int raw_read_frame(struct raw *r, uint8_t *buf, size_t cap, size_t *lenp)
{
	size_t blen;
	int err;

	if (cap < NDS_LEN_SIZE)
		return EINVAL;
	err = read_n(r, buf, NDS_LEN_SIZE);
	if (err)
		return err;
	err = nds_frame_len(buf, NDS_LEN_SIZE, &blen);
	if (err)
		return err;
	if (NDS_LEN_SIZE + blen > cap)
		return ENOBUFS;
	err = read_n(r, buf + NDS_LEN_SIZE, blen);
	if (!err)
		*lenp = NDS_LEN_SIZE + blen;
	return err;
}

struct raw *raw_close(struct raw *r)
{
	if (!r)
		return NULL;
	SSL_free(r->ssl);
	if (r->fd >= 0)
		close(r->fd);
	SSL_CTX_free(r->ctx);
	free(r);
	return NULL;
}
