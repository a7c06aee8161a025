/**
 * @file nds_client.c  NDS/IP client: blocking requests to kmsd over TLS 1.3
 *
 * One TLS connection is kept and reused.  Every call has a deadline
 * (timeout_ms from its start) covering connect, handshake, send and
 * receive; the socket is non-blocking and every wait is a poll() bounded
 * by that deadline.  Connection attempts that fail back off
 * exponentially (BACKOFF_MIN doubling to BACKOFF_MAX), shared by all calls,
 * so a dead KMS is not hammered; a call whose deadline falls before the
 * next attempt fails at once with the last error.
 *
 * A connection the server has closed (idle timeout, restart) is noticed
 * before sending (the socket is readable) and replaced.  A fetch that
 * loses its connection before any answer byte is retried once on a new
 * connection (fetches are idempotent).
 *
 * SIGPIPE is blocked for the calling thread while the socket is written
 * and a pending one is consumed, so a peer that vanishes cannot kill the
 * process.  Calls on one client are serialised by a mutex.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "kms_nds/nds_int.h"

#define BACKOFF_MIN 50    /* ms */
#define BACKOFF_MAX 2000  /* ms */

struct kms_client {
	pthread_mutex_t lock;
	char *host, *cert_file, *key_file, *ca_file;
	uint16_t port;
	unsigned timeout_ms;
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	uint32_t next_id;
	unsigned backoff_ms;
	uint64_t next_try_ms;
	int last_err;
	char last_msg[160];
	uint8_t buf[NDS_FRAME_MAX];
};

/* Result of one exchange */
struct xres {
	int err;
	int got_bytes;   /* some of the answer arrived */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void msg(char *err, size_t errsz, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void msg(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errsz)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

static void ssl_reason(char *buf, size_t bufsz)
{
	unsigned long e = ERR_peek_last_error();

	if (e)
		ERR_error_string_n(e, buf, bufsz);
	else
		snprintf(buf, bufsz, "no detail");
	ERR_clear_error();
}

static void conn_close(struct kms_client *c)
{
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

static SSL_CTX *ctx_new(const struct kms_client *c, char *why,
			size_t whysz)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

	if (!ctx)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, c->cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, c->key_file,
					SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	if (SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL) != 1)
		goto fail;
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	if (SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER) != 1)
		goto fail;
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	return ctx;
 fail:
	ssl_reason(why, whysz);
	SSL_CTX_free(ctx);
	return NULL;
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

int kms_client_alloc(struct kms_client **cp, const struct kms_client_cfg *cfg)
{
	struct kms_client *c;
	char why[200];
	int err = 0;

	if (!cp || !cfg || !cfg->host || !cfg->port || !cfg->cert_file ||
	    !cfg->key_file || !cfg->ca_file)
		return EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return ENOMEM;
	c->fd = -1;
	pthread_mutex_init(&c->lock, NULL);
	c->host = dup_str(cfg->host);
	c->cert_file = dup_str(cfg->cert_file);
	c->key_file = dup_str(cfg->key_file);
	c->ca_file = dup_str(cfg->ca_file);
	c->port = cfg->port;
	c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 5000;
	c->next_id = 1;
	if (!c->host || !c->cert_file || !c->key_file || !c->ca_file) {
		err = ENOMEM;
		goto out;
	}
	c->ctx = ctx_new(c, why, sizeof(why));
	if (!c->ctx) {
		fprintf(stderr, "kms_client: TLS setup (%s, %s, %s): %s\n",
			c->cert_file, c->key_file, c->ca_file, why);
		err = EPROTO;
	}
 out:
	if (err)
		kms_client_free(c);
	else
		*cp = c;
	return err;
}

struct kms_client *kms_client_free(struct kms_client *c)
{
	if (!c)
		return NULL;
	conn_close(c);
	SSL_CTX_free(c->ctx);
	OPENSSL_cleanse(c->buf, sizeof(c->buf));
	pthread_mutex_destroy(&c->lock);
	free(c->host);
	free(c->cert_file);
	free(c->key_file);
	free(c->ca_file);
	free(c);
	return NULL;
}

int kms_client_reload(struct kms_client *c)
{
	char why[200];
	SSL_CTX *ctx;

	if (!c)
		return EINVAL;
	ctx = ctx_new(c, why, sizeof(why));
	if (!ctx) {
		fprintf(stderr, "kms_client: reload: %s\n", why);
		return EPROTO;
	}
	pthread_mutex_lock(&c->lock);
	conn_close(c);
	SSL_CTX_free(c->ctx);
	c->ctx = ctx;
	c->backoff_ms = 0;
	c->next_try_ms = 0;
	pthread_mutex_unlock(&c->lock);
	return 0;
}

/* Wait for fd to be ready; 0, ETIMEDOUT or errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	uint64_t now;
	int n;

	for (;;) {
		now = mono_ms();
		if (now >= deadline)
			return ETIMEDOUT;
		n = poll(&p, 1, (int)(deadline - now));
		if (n > 0)
			return 0;
		if (n == 0)
			return ETIMEDOUT;
		if (errno != EINTR)
			return errno;
	}
}

static int tcp_connect(struct kms_client *c, uint64_t deadline,
		       char *err, size_t errsz)
{
	struct addrinfo hints, *ai = NULL, *a;
	char pbuf[8];
	int fd = -1, e = EHOSTUNREACH, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(pbuf, sizeof(pbuf), "%u", (unsigned)c->port);
	if (getaddrinfo(c->host, pbuf, &hints, &ai)) {
		msg(err, errsz, "KMS host %s does not resolve", c->host);
		return EHOSTUNREACH;
	}
	for (a = ai; a; a = a->ai_next) {
		socklen_t sl = sizeof(e);

		fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK |
			    SOCK_CLOEXEC, a->ai_protocol);
		if (fd < 0) {
			e = errno;
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
			break;
		e = errno;
		if (e == EINPROGRESS) {
			e = wait_fd(fd, POLLOUT, deadline);
			if (!e && getsockopt(fd, SOL_SOCKET, SO_ERROR, &e,
					     &sl))
				e = errno;
			if (!e)
				break;
		}
		close(fd);
		fd = -1;
	}
	freeaddrinfo(ai);
	if (fd < 0) {
		if (e == ENETUNREACH)
			e = EHOSTUNREACH;
		if (e != ECONNREFUSED && e != ETIMEDOUT && e != EHOSTUNREACH)
			e = ENOTCONN;
		msg(err, errsz, "KMS %s:%u unreachable: %s", c->host,
		    (unsigned)c->port, strerror(e));
		return e;
	}
	c->fd = fd;
	return 0;
}

/*
 * A TLS error.  A peer alert during or right after the handshake means
 * kmsd refused this node's certificate (unknown CA, expired, wrong
 * usage): EACCES, so the caller does not retry.
 */
static int tls_error(struct kms_client *c, const char *stage, char *err,
		     size_t errsz)
{
	unsigned long e = ERR_peek_last_error();
	char why[200];
	long vr;

	ssl_reason(why, sizeof(why));
	vr = c->ssl ? SSL_get_verify_result(c->ssl) : X509_V_OK;
	if (vr != X509_V_OK) {
		msg(err, errsz, "KMS server certificate not accepted: %s",
		    X509_verify_cert_error_string(vr));
		return EPROTO;
	}
	if (e && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) >= SSL_AD_REASON_OFFSET &&
	    ERR_GET_REASON(e) < SSL_AD_REASON_OFFSET + 256) {
		msg(err, errsz, "KMS refused this node's certificate (%s)",
		    why);
		return EACCES;
	}
	msg(err, errsz, "TLS %s with KMS failed: %s", stage, why);
	/* kmsd went away mid-handshake (timeout, restart): transient */
	if (e && ERR_GET_LIB(e) == ERR_LIB_SSL &&
	    ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING)
		return ENOTCONN;
	return e ? EPROTO : ENOTCONN;
}

/* Drive one SSL call to completion or the deadline. */
static int ssl_wait(struct kms_client *c, int r, uint64_t deadline)
{
	switch (SSL_get_error(c->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		return wait_fd(c->fd, POLLIN, deadline) ? ETIMEDOUT : EAGAIN;
	case SSL_ERROR_WANT_WRITE:
		return wait_fd(c->fd, POLLOUT, deadline) ? ETIMEDOUT :
			EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return ENOTCONN;
	case SSL_ERROR_SYSCALL:
		return ERR_peek_error() ? EPROTO : ENOTCONN;
	default:
		return EPROTO;
	}
}

static int peer_is_kms(struct kms_client *c, char *err, size_t errsz)
{
	X509 *x = SSL_get1_peer_certificate(c->ssl);
	char id[KMS_NDS_ID_MAX + 1], why[128];
	enum nds_role role = NDS_ROLE_NONE;
	int e;

	e = x ? nds_cert_identity(x, id, sizeof(id), &role, why,
				  sizeof(why)) : ENOENT;
	X509_free(x);
	if (e || role != NDS_ROLE_KMS) {
		msg(err, errsz, "KMS server certificate carries no kms role");
		return EPROTO;
	}
	return 0;
}

static int ssl_read_n(struct kms_client *c, uint8_t *p, size_t n,
		      uint64_t deadline, struct xres *xr);

/* kmsd's first frame: hello (accepted) or an error (refused). */
static int read_hello(struct kms_client *c, uint64_t deadline, char *err,
		      size_t errsz)
{
	char text[NDS_ERRTEXT_MAX + 1] = "";
	struct xres xr = { 0, 0 };
	struct nds_msg m;
	enum nds_err code;
	size_t blen;
	int e;

	e = ssl_read_n(c, c->buf, NDS_LEN_SIZE, deadline, &xr);
	if (!e && nds_frame_len(c->buf, NDS_LEN_SIZE, &blen))
		e = EBADMSG;
	if (!e)
		e = ssl_read_n(c, c->buf, blen, deadline, &xr);
	if (e == ETIMEDOUT) {
		msg(err, errsz, "KMS did not greet within %u ms",
		    c->timeout_ms);
		return e;
	}
	if (e == EBADMSG) {
		msg(err, errsz, "KMS sent a bad frame length");
		return e;
	}
	if (e == ENOTCONN) {
		msg(err, errsz, "KMS closed the connection");
		return e;
	}
	if (e)
		return tls_error(c, "handshake", err, errsz);
	if (nds_msg_parse(&m, c->buf, blen) || nds_msg_validate(&m, &code)) {
		msg(err, errsz, "KMS sent a malformed greeting");
		return EBADMSG;
	}
	if (m.type == NDS_T_ERROR_RESP) {
		code = (enum nds_err)((m.f[NDS_TAG_ERR_CODE].p[0] << 8) |
				      m.f[NDS_TAG_ERR_CODE].p[1]);
		(void)nds_msg_str(&m, NDS_TAG_ERR_TEXT, text, sizeof(text));
		msg(err, errsz, "KMS refused (%s): %s", nds_err_name(code),
		    text[0] ? text : "no reason given");
		return nds_err_errno(code);
	}
	if (m.type != NDS_T_HELLO) {
		msg(err, errsz, "KMS did not greet");
		return EPROTO;
	}
	return 0;
}

static int tls_connect(struct kms_client *c, uint64_t deadline, char *err,
		       size_t errsz)
{
	struct in6_addr a6;
	struct in_addr a4;
	int r, e;

	c->ssl = SSL_new(c->ctx);
	if (!c->ssl || SSL_set_fd(c->ssl, c->fd) != 1)
		return tls_error(c, "setup", err, errsz);
	if (inet_pton(AF_INET, c->host, &a4) == 1 ||
	    inet_pton(AF_INET6, c->host, &a6) == 1) {
		X509_VERIFY_PARAM *vp = SSL_get0_param(c->ssl);

		if (X509_VERIFY_PARAM_set1_ip_asc(vp, c->host) != 1)
			return tls_error(c, "setup", err, errsz);
	}
	else if (SSL_set1_host(c->ssl, c->host) != 1 ||
		 SSL_set_tlsext_host_name(c->ssl, c->host) != 1) {
		return tls_error(c, "setup", err, errsz);
	}
	for (;;) {
		ERR_clear_error();
		r = SSL_connect(c->ssl);
		if (r == 1)
			break;
		e = ssl_wait(c, r, deadline);
		if (e == EAGAIN)
			continue;
		if (e == ETIMEDOUT) {
			msg(err, errsz, "TLS handshake with KMS timed out");
			return ETIMEDOUT;
		}
		return tls_error(c, "handshake", err, errsz);
	}
	e = peer_is_kms(c, err, errsz);
	if (!e)
		e = read_hello(c, deadline, err, errsz);
	return e;
}

/* Connect (TCP + TLS) within the deadline, honouring the backoff. */
static int connect_backoff(struct kms_client *c, uint64_t deadline,
			   char *err, size_t errsz)
{
	uint64_t now;
	int e;

	for (;;) {
		now = mono_ms();
		if (c->next_try_ms > now) {
			if (c->next_try_ms >= deadline) {
				msg(err, errsz, "%s (next attempt in %u ms)",
				    c->last_msg, (unsigned)(c->next_try_ms -
							    now));
				return c->last_err;
			}
			usleep((useconds_t)(c->next_try_ms - now) * 1000);
		}
		e = tcp_connect(c, deadline, err, errsz);
		if (!e)
			e = tls_connect(c, deadline, err, errsz);
		if (!e) {
			c->backoff_ms = 0;
			c->next_try_ms = 0;
			return 0;
		}
		conn_close(c);
		if (e == EACCES || e == EPROTO)
			return e;
		c->backoff_ms = c->backoff_ms ? c->backoff_ms * 2 :
			BACKOFF_MIN;
		if (c->backoff_ms > BACKOFF_MAX)
			c->backoff_ms = BACKOFF_MAX;
		c->next_try_ms = mono_ms() + c->backoff_ms;
		c->last_err = e;
		if (err)
			snprintf(c->last_msg, sizeof(c->last_msg), "%s", err);
		else
			snprintf(c->last_msg, sizeof(c->last_msg),
				 "KMS unreachable");
		if (mono_ms() >= deadline)
			return e;
	}
}

/* Is the idle connection still usable (nothing to read, no EOF)? */
static int conn_fresh(struct kms_client *c)
{
	struct pollfd p = { .fd = c->fd, .events = POLLIN };

	if (!c->ssl || c->fd < 0)
		return 0;
	if (SSL_pending(c->ssl))
		return 0;
	return poll(&p, 1, 0) == 0;
}

static int ssl_write_all(struct kms_client *c, const uint8_t *p, size_t n,
			 uint64_t deadline)
{
	int r, e;

	for (;;) {
		ERR_clear_error();
		r = SSL_write(c->ssl, p, (int)n);
		if (r > 0)
			return 0; /* SSL_write writes all (no partial mode) */
		e = ssl_wait(c, r, deadline);
		if (e != EAGAIN)
			return e;
	}
}

static int ssl_read_n(struct kms_client *c, uint8_t *p, size_t n,
		      uint64_t deadline, struct xres *xr)
{
	size_t got = 0;
	int r, e;

	while (got < n) {
		ERR_clear_error();
		r = SSL_read(c->ssl, p + got, (int)(n - got));
		if (r > 0) {
			got += (size_t)r;
			xr->got_bytes = 1;
			continue;
		}
		e = ssl_wait(c, r, deadline);
		if (e != EAGAIN)
			return e;
	}
	return 0;
}

/* SIGPIPE guard for the calling thread (see the file comment). */
static void sigpipe_block(sigset_t *old, int *was_pending)
{
	sigset_t set, pend;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &set, old);
	sigpending(&pend);
	*was_pending = sigismember(&pend, SIGPIPE);
}

static void sigpipe_restore(const sigset_t *old, int was_pending)
{
	struct timespec zero = { 0, 0 };
	sigset_t set, pend;

	sigemptyset(&set);
	sigaddset(&set, SIGPIPE);
	sigpending(&pend);
	if (!was_pending && sigismember(&pend, SIGPIPE))
		(void)sigtimedwait(&set, NULL, &zero);
	pthread_sigmask(SIG_SETMASK, old, NULL);
}

/*
 * Send one request frame and read its answer into c->buf.  Returns 0
 * with *blenp = body length (body at c->buf), or an errno; xr tells
 * whether any answer byte arrived (no retry then).
 */
static int exchange(struct kms_client *c, const uint8_t *req, size_t n,
		    uint64_t deadline, size_t *blenp, struct xres *xr,
		    char *err, size_t errsz)
{
	size_t blen;
	int e;

	e = ssl_write_all(c, req, n, deadline);
	if (!e)
		e = ssl_read_n(c, c->buf, NDS_LEN_SIZE, deadline, xr);
	if (!e) {
		e = nds_frame_len(c->buf, NDS_LEN_SIZE, &blen);
		if (e) {
			msg(err, errsz, "KMS sent a bad frame length");
			return EBADMSG;
		}
		e = ssl_read_n(c, c->buf, blen, deadline, xr);
		*blenp = blen;
	}
	if (e == ETIMEDOUT)
		msg(err, errsz, "KMS did not answer within %u ms",
		    c->timeout_ms);
	else if (e == ENOTCONN)
		msg(err, errsz, "KMS closed the connection");
	else if (e)
		e = tls_error(c, "exchange", err, errsz);
	return e;
}

/* Decode an answer: 0 with m filled, or the errno of an error answer. */
static int answer(const uint8_t *body, size_t blen, uint32_t req_id,
		  uint8_t want_type, struct nds_msg *m, int *conn_level,
		  char *err, size_t errsz)
{
	char text[NDS_ERRTEXT_MAX + 1] = "";
	enum nds_err code;
	uint8_t code_b[2];

	*conn_level = 0;
	if (nds_msg_parse(m, body, blen) || nds_msg_validate(m, &code)) {
		msg(err, errsz, "KMS sent a malformed answer");
		return EBADMSG;
	}
	if (m->type == NDS_T_ERROR_RESP) {
		memcpy(code_b, m->f[NDS_TAG_ERR_CODE].p, 2);
		code = (enum nds_err)((code_b[0] << 8) | code_b[1]);
		(void)nds_msg_str(m, NDS_TAG_ERR_TEXT, text, sizeof(text));
		if (m->req_id == 0 && req_id != 0)
			*conn_level = 1;
		else if (m->req_id != req_id)
			goto mismatch;
		msg(err, errsz, "KMS refused (%s): %s", nds_err_name(code),
		    text[0] ? text : "no reason given");
		return nds_err_errno(code);
	}
	if (m->req_id != req_id || m->type != want_type)
		goto mismatch;
	return 0;
 mismatch:
	msg(err, errsz, "KMS answer does not match the request");
	return EPROTO;
}

/*
 * Run one request (frame in req) and decode the answer of want_type into
 * m (pointing into c->buf).  Called with the lock held.
 */
static int request(struct kms_client *c, const uint8_t *req, size_t n,
		   uint32_t req_id, uint8_t want_type, int idempotent,
		   struct nds_msg *m, char *err, size_t errsz)
{
	uint64_t deadline = mono_ms() + c->timeout_ms;
	sigset_t old;
	int e = 0, attempt, pend, conn_level;
	size_t blen = 0;

	sigpipe_block(&old, &pend);
	for (attempt = 0; attempt < 2; attempt++) {
		struct xres xr = { 0, 0 };

		if (c->ssl && !conn_fresh(c))
			conn_close(c);
		if (!c->ssl) {
			e = connect_backoff(c, deadline, err, errsz);
			if (e)
				break;
		}
		e = exchange(c, req, n, deadline, &blen, &xr, err, errsz);
		if (!e)
			break;
		conn_close(c);
		/* Lost before any answer byte: once more, fresh. */
		if ((e == ENOTCONN || e == EPIPE || e == ECONNRESET) &&
		    !xr.got_bytes && idempotent)
			continue;
		break;
	}
	sigpipe_restore(&old, pend);
	if (e == EPIPE || e == ECONNRESET)
		e = ENOTCONN;
	if (e)
		return e;
	e = answer(c->buf, blen, req_id, want_type, m, &conn_level, err,
		   errsz);
	if (conn_level || e == EBADMSG || e == EPROTO)
		conn_close(c);
	return e;
}

static int key_answer(const struct nds_msg *m, uint8_t *key,
		      size_t *key_len, uint32_t *generation, char *err,
		      size_t errsz)
{
	const struct nds_field *k = &m->f[NDS_TAG_KEY];

	if (k->len > *key_len) {
		msg(err, errsz, "key of %u bytes does not fit the buffer",
		    (unsigned)k->len);
		return ENOBUFS;
	}
	memcpy(key, k->p, k->len);
	*key_len = k->len;
	if (generation && nds_msg_u32(m, NDS_TAG_GENERATION, generation))
		return EBADMSG;
	return 0;
}

static int check_id(const char *s, const char *what, char *err,
		    size_t errsz)
{
	if (!s || !nds_id_valid((const uint8_t *)s, strlen(s))) {
		msg(err, errsz, "bad %s (1..%u printable characters)", what,
		    KMS_NDS_ID_MAX);
		return EINVAL;
	}
	return 0;
}

static int fetch_key(struct kms_client *c, enum nds_type type,
		     enum nds_tag t1, const char *v1, enum nds_tag t2,
		     const char *v2, uint8_t *key, size_t *key_len,
		     uint32_t *generation, char *err, size_t errsz)
{
	uint8_t req[2 * (KMS_NDS_ID_MAX + NDS_FIELD_HDR) + 16];
	struct nds_msg m;
	struct nds_enc e;
	uint32_t id;
	size_t n;
	int r;

	if (err && errsz)
		err[0] = '\0';
	if (!c || !key || !key_len)
		return EINVAL;
	pthread_mutex_lock(&c->lock);
	id = c->next_id++;
	if (!c->next_id)
		c->next_id = 1;
	nds_enc_begin(&e, req, sizeof(req), type, id);
	nds_enc_str(&e, t1, v1);
	if (v2)
		nds_enc_str(&e, t2, v2);
	r = nds_enc_end(&e, &n);
	if (!r)
		r = request(c, req, n, id, NDS_T_KEY_RESP, 1, &m, err,
			    errsz);
	if (!r)
		r = key_answer(&m, key, key_len, generation, err, errsz);
	OPENSSL_cleanse(c->buf, sizeof(c->buf));
	pthread_mutex_unlock(&c->lock);
	return r;
}

int kms_client_fetch_legkey(struct kms_client *c, const char *conf_ref,
			    const char *participant, uint8_t *key,
			    size_t *key_len, uint32_t *generation,
			    char *err, size_t errsz)
{
	int r = check_id(conf_ref, "conference reference", err, errsz);

	if (!r)
		r = check_id(participant, "participant identity", err, errsz);
	if (r)
		return r;
	return fetch_key(c, NDS_T_LEGKEY_REQ, NDS_TAG_CONF_REF, conf_ref,
			 NDS_TAG_PARTICIPANT, participant, key, key_len,
			 generation, err, errsz);
}

int kms_client_fetch_transcoder_key(struct kms_client *c,
				    const char *call_id, uint8_t *key,
				    size_t *key_len, uint32_t *generation,
				    char *err, size_t errsz)
{
	int r = check_id(call_id, "call id", err, errsz);

	if (r)
		return r;
	return fetch_key(c, NDS_T_TRANSCODER_REQ, NDS_TAG_CALL_ID, call_id,
			 NDS_TAG_COUNT, NULL, key, key_len, generation, err,
			 errsz);
}

int kms_client_mailbox_deposit(struct kms_client *c, const char *caller,
			       const char *recipient, const char *sealed,
			       int want_ke2m, struct kms_nds_mbx *res,
			       char *err, size_t errsz)
{
	uint8_t *req;
	struct nds_msg m;
	struct nds_enc e;
	uint8_t want = want_ke2m ? 1 : 0;
	uint32_t id;
	size_t n, sl;
	int r;

	if (err && errsz)
		err[0] = '\0';
	if (!c || !res || !sealed)
		return EINVAL;
	r = check_id(caller, "caller identity", err, errsz);
	if (!r)
		r = check_id(recipient, "recipient identity", err, errsz);
	sl = strnlen(sealed, KMS_NDS_BLOB_MAX + 1);
	if (!r && (!sl || sl > KMS_NDS_BLOB_MAX)) {
		msg(err, errsz, "bad sealed statement length");
		r = EINVAL;
	}
	if (r)
		return r;
	req = malloc(NDS_FRAME_MAX);
	if (!req)
		return ENOMEM;
	memset(res, 0, sizeof(*res));
	pthread_mutex_lock(&c->lock);
	id = c->next_id++;
	if (!c->next_id)
		c->next_id = 1;
	nds_enc_begin(&e, req, NDS_FRAME_MAX, NDS_T_MAILBOX_REQ, id);
	nds_enc_str(&e, NDS_TAG_ID_A, caller);
	nds_enc_str(&e, NDS_TAG_ID_B, recipient);
	nds_enc_put(&e, NDS_TAG_SEALED, sealed, sl);
	nds_enc_put(&e, NDS_TAG_WANT_KE2M, &want, 1);
	r = nds_enc_end(&e, &n);
	/* A deposit creates state: never resent after a lost answer. */
	if (!r)
		r = request(c, req, n, id, NDS_T_MAILBOX_RESP, 0, &m, err,
			    errsz);
	if (!r)
		r = nds_msg_str(&m, NDS_TAG_FOR_A, res->for_a,
				sizeof(res->for_a));
	if (!r)
		r = nds_msg_str(&m, NDS_TAG_STORE, res->ticket,
				sizeof(res->ticket));
	if (!r && (m.present & (1u << NDS_TAG_KE2M))) {
		memcpy(res->ke2m, m.f[NDS_TAG_KE2M].p, m.f[NDS_TAG_KE2M].len);
		res->ke2m_len = m.f[NDS_TAG_KE2M].len;
	}
	if (!r && (m.present & (1u << NDS_TAG_EXPIRES)))
		r = nds_msg_u64(&m, NDS_TAG_EXPIRES, &res->retain_until);
	OPENSSL_cleanse(c->buf, sizeof(c->buf));
	pthread_mutex_unlock(&c->lock);
	free(req);
	if (r && r != EACCES && r != ENOENT && !(err && err[0]))
		msg(err, errsz, "bad mailbox answer");
	if (r)
		OPENSSL_cleanse(res, sizeof(*res));
	return r;
}

/** Round trip without keys: checks reachability and authentication */
int kms_client_ping(struct kms_client *c, char *err, size_t errsz)
{
	uint8_t req[16];
	struct nds_msg m;
	struct nds_enc e;
	uint32_t id;
	size_t n;
	int r;

	if (err && errsz)
		err[0] = '\0';
	if (!c)
		return EINVAL;
	pthread_mutex_lock(&c->lock);
	id = c->next_id++;
	if (!c->next_id)
		c->next_id = 1;
	nds_enc_begin(&e, req, sizeof(req), NDS_T_PING_REQ, id);
	r = nds_enc_end(&e, &n);
	if (!r)
		r = request(c, req, n, id, NDS_T_PONG_RESP, 1, &m, err,
			    errsz);
	pthread_mutex_unlock(&c->lock);
	return r;
}
