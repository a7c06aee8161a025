/**
 * @file nds_srv.c  NDS/IP listener: TLS 1.3, client certificates, roles
 *
 * Every connection is a bufferevent_openssl in accepting state.  The
 * handshake requires a client certificate that chains to the operator's
 * domain CA, is within its validity period and allows clientAuth.  After
 * the handshake the certificate names the node's identity and role
 * (nds_cert.c); requests are then answered one at a time, in order.
 *
 * Memory per connection is bounded: the input buffer stops reading at one
 * largest frame (the read high watermark), and reading is paused while
 * more than OUT_MAX bytes of responses wait to be sent.  A request must
 * be completed within request_timeout_ms of its first byte, a connection
 * with nothing to do is closed after idle_timeout_ms.  A malformed frame
 * gets an error response and the connection stays; a frame whose length
 * cannot be trusted (too large, shorter than a header) gets an error and
 * the connection is closed, because the stream cannot be resynchronised.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "kms_nds/nds_int.h"

#define OUT_MAX (4 * NDS_FRAME_MAX)
/* error texts are built here, cut to NDS_ERRTEXT_MAX on the wire */
#define TEXT_MAX 640

struct nds_conn;

struct kms_nds_srv {
	struct event_base *base;
	struct evconnlistener *lis;
	SSL_CTX *ctx;
	struct nds_backend be;
	char *cert_file, *key_file, *ca_file, *audit_path;
	struct nds_audit *audit;
	struct timeval idle_tv, req_tv, hs_tv;
	unsigned max_conns, nconns;
	struct nds_conn *conns;
	time_t clock_offset;
	size_t out_max;
	int sndbuf;
	struct nds_srv_stats st;
	uint16_t port;
	uint8_t in[NDS_FRAME_MAX];  /* one request at a time: one thread */
	uint8_t out[NDS_FRAME_MAX];
};

struct nds_conn {
	struct kms_nds_srv *srv;
	struct bufferevent *bev;
	struct event *req_timer;
	struct nds_conn *next, *prev;
	char peer[INET6_ADDRSTRLEN + 8];
	char id[KMS_NDS_ID_MAX + 1];
	enum nds_role role;
	int authed;
	int closing;
	int dead;      /* to be freed from the timer, outside bev callbacks */
};

static time_t srv_now(const struct kms_nds_srv *srv)
{
	time_t t = srv->be.now ? (time_t)srv->be.now() : time(NULL);

	return t + srv->clock_offset;
}

/** Test hook: move the listener's clock (expiry checks) */
void nds_srv_set_clock(struct kms_nds_srv *srv, time_t offset_s)
{
	if (srv)
		srv->clock_offset = offset_s;
}

void nds_srv_stats(const struct kms_nds_srv *srv, struct nds_srv_stats *st)
{
	if (!srv || !st)
		return;
	*st = srv->st;
	st->conns = srv->nconns;
}

/**
 * Test hook: the bound on unsent answers before reading pauses, and a
 * socket send buffer for new connections (0: the system's), so a test
 * can make answers back up.
 */
void nds_srv_set_out_max(struct kms_nds_srv *srv, size_t bytes,
			 int sndbuf)
{
	if (srv) {
		srv->out_max = bytes;
		srv->sndbuf = sndbuf;
	}
}

uint16_t kms_nds_port(const struct kms_nds_srv *srv)
{
	return srv ? srv->port : 0;
}

static void conn_free(struct nds_conn *c)
{
	struct kms_nds_srv *srv = c->srv;

	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	if (c->req_timer)
		event_free(c->req_timer);
	if (c->bev) {
		SSL *ssl = bufferevent_openssl_get_ssl(c->bev);

		/* No close_notify wait: the socket goes now. */
		if (ssl)
			SSL_set_shutdown(ssl, SSL_RECEIVED_SHUTDOWN);
		bufferevent_free(c->bev);
	}
	free(c);
}

/*
 * Free a connection from one of its bufferevent's own callbacks.  A
 * bufferevent_openssl freed inside its callbacks is not always finalised
 * (seen as a leak of the whole connection under ASan), so the free runs
 * from the connection's timer, after the callback has returned.
 */
static void conn_free_later(struct nds_conn *c)
{
	c->dead = 1;
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	bufferevent_setcb(c->bev, NULL, NULL, NULL, NULL);
	evtimer_del(c->req_timer);
	event_active(c->req_timer, EV_TIMEOUT, 1);
}

/* Close once what is queued has been written. */
static void conn_close_after_write(struct nds_conn *c)
{
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	/* a timeout disables its direction: writing must go on */
	bufferevent_enable(c->bev, EV_WRITE);
	evtimer_del(c->req_timer);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		conn_free_later(c);
}

static void send_frame(struct nds_conn *c, const uint8_t *p, size_t n)
{
	if (bufferevent_write(c->bev, p, n))
		c->closing = 1;
}

static void send_error(struct nds_conn *c, uint32_t req_id,
		       enum nds_err code, const char *text)
{
	size_t n;

	if (!nds_enc_error(c->srv->out, sizeof(c->srv->out), req_id, code,
			   text, &n))
		send_frame(c, c->srv->out, n);
}

static const char *type_word(uint8_t type)
{
	switch (type) {
	case NDS_T_LEGKEY_REQ:
		return "legkey";
	case NDS_T_TRANSCODER_REQ:
		return "callkey";
	case NDS_T_MAILBOX_REQ:
		return "mailbox-deposit";
	case NDS_T_PING_REQ:
		return "ping";
	default:
		return "other";
	}
}

static void deny(struct nds_conn *c, const struct nds_msg *m,
		 enum nds_err code, const char *reason, const char *detail)
{
	struct kms_nds_srv *srv = c->srv;

	srv->st.denied++;
	nds_audit_write(srv->audit, srv_now(srv), "deny",
			"role=%s node=%s peer=%s req=%s %s reason=%s",
			nds_role_name(c->role), c->id, c->peer,
			type_word(m->type), detail, reason);
	send_error(c, m->req_id, code, reason);
}

/* Map a backend error to a wire error and a reason. */
static enum nds_err be_err(int err, const char **reasonp)
{
	switch (err) {
	case ENOENT:
		*reasonp = "not found";
		return NDS_E_NOT_FOUND;
	case EKEYEXPIRED:
	case ETIME:
		*reasonp = "expired";
		return NDS_E_EXPIRED;
	case EACCES:
	case EPERM:
		*reasonp = "not authorised";
		return NDS_E_FORBIDDEN;
	default:
		*reasonp = "internal error";
		return NDS_E_INTERNAL;
	}
}

static void store_audit(struct nds_conn *c, const char *what,
			const char *ref, const char *who2, const char *res)
{
	struct kms_nds_srv *srv = c->srv;

	if (srv->be.audit)
		srv->be.audit(srv->be.arg, srv_now(srv), c->id,
			      nds_role_name(c->role), what, ref, who2, res);
}

static void handle_legkey(struct nds_conn *c, const struct nds_msg *m)
{
	struct kms_nds_srv *srv = c->srv;
	char ref[KMS_NDS_ID_MAX + 1], part[KMS_NDS_ID_MAX + 1];
	char detail[2 * KMS_NDS_ID_MAX + 32], text[TEXT_MAX];
	struct nds_key_rec rec;
	struct nds_enc e;
	const char *reason;
	enum nds_err code;
	uint32_t gen;
	size_t n;
	int err;

	if (nds_msg_str(m, NDS_TAG_CONF_REF, ref, sizeof(ref)) ||
	    nds_msg_str(m, NDS_TAG_PARTICIPANT, part, sizeof(part))) {
		send_error(c, m->req_id, NDS_E_MALFORMED, "bad fields");
		return;
	}
	snprintf(detail, sizeof(detail), "conf=%s leg=%s", ref, part);
	if (c->role != NDS_ROLE_BRIDGE) {
		snprintf(text, sizeof(text),
			 "role %s may not fetch conference leg keys",
			 nds_role_name(c->role));
		deny(c, m, NDS_E_FORBIDDEN, text, detail);
		store_audit(c, "legkey", ref, part, "denied-role");
		return;
	}
	memset(&rec, 0, sizeof(rec));
	/* Authorise on the conference first, so a bridge learns nothing
	 * about the legs of a conference it does not serve. */
	err = srv->be.conf_focus(srv->be.arg, ref, srv_now(srv), &rec);
	if (!err && strcmp(rec.node, c->id))
		err = EACCES;
	if (!err)
		err = srv->be.legkey(srv->be.arg, ref, part, srv_now(srv),
				     &rec);
	/* The leg record names its focus too: check it again. */
	if (!err && strcmp(rec.node, c->id))
		err = EACCES;
	if (err) {
		code = be_err(err, &reason);
		if (code == NDS_E_FORBIDDEN)
			snprintf(text, sizeof(text),
				 "bridge %s is not the focus of conference %s",
				 c->id, ref);
		else
			snprintf(text, sizeof(text), "%s: conference %s "
				 "participant %s", reason, ref, part);
		deny(c, m, code, text, detail);
		store_audit(c, "legkey", ref, part, nds_err_name(code));
		OPENSSL_cleanse(&rec, sizeof(rec));
		return;
	}
	nds_enc_begin(&e, srv->out, sizeof(srv->out), NDS_T_KEY_RESP,
		      m->req_id);
	nds_enc_put(&e, NDS_TAG_KEY, rec.key, rec.key_len);
	nds_enc_u32(&e, NDS_TAG_GENERATION, rec.generation);
	if (rec.expires)
		nds_enc_u64(&e, NDS_TAG_EXPIRES, rec.expires);
	err = nds_enc_end(&e, &n);
	gen = rec.generation;
	OPENSSL_cleanse(&rec, sizeof(rec));
	if (err) {
		send_error(c, m->req_id, NDS_E_INTERNAL, "encode failed");
		return;
	}
	send_frame(c, srv->out, n);
	OPENSSL_cleanse(srv->out, n);
	srv->st.released++;
	nds_audit_write(srv->audit, srv_now(srv), "release",
			"role=bridge node=%s peer=%s req=legkey %s gen=%u",
			c->id, c->peer, detail, (unsigned)gen);
	store_audit(c, "legkey", ref, part, "released");
}

static void handle_callkey(struct nds_conn *c, const struct nds_msg *m)
{
	struct kms_nds_srv *srv = c->srv;
	char call[KMS_NDS_ID_MAX + 1], detail[KMS_NDS_ID_MAX + 16];
	char text[TEXT_MAX];
	struct nds_key_rec rec;
	struct nds_enc e;
	const char *reason;
	enum nds_err code;
	uint32_t gen;
	size_t n;
	int err;

	if (nds_msg_str(m, NDS_TAG_CALL_ID, call, sizeof(call))) {
		send_error(c, m->req_id, NDS_E_MALFORMED, "bad fields");
		return;
	}
	snprintf(detail, sizeof(detail), "call=%s", call);
	if (c->role != NDS_ROLE_TRANSCODER) {
		snprintf(text, sizeof(text),
			 "role %s may not fetch call keys",
			 nds_role_name(c->role));
		deny(c, m, NDS_E_FORBIDDEN, text, detail);
		store_audit(c, "callkey", call, "", "denied-role");
		return;
	}
	memset(&rec, 0, sizeof(rec));
	err = srv->be.call_key(srv->be.arg, c->id, call, srv_now(srv), &rec);
	if (err) {
		code = be_err(err, &reason);
		if (code == NDS_E_FORBIDDEN)
			snprintf(text, sizeof(text), "transcoder %s is not "
				 "authorised for call %s", c->id, call);
		else
			snprintf(text, sizeof(text), "%s: call %s", reason,
				 call);
		deny(c, m, code, text, detail);
		store_audit(c, "callkey", call, "", nds_err_name(code));
		OPENSSL_cleanse(&rec, sizeof(rec));
		return;
	}
	nds_enc_begin(&e, srv->out, sizeof(srv->out), NDS_T_KEY_RESP,
		      m->req_id);
	nds_enc_put(&e, NDS_TAG_KEY, rec.key, rec.key_len);
	nds_enc_u32(&e, NDS_TAG_GENERATION, rec.generation);
	if (rec.expires)
		nds_enc_u64(&e, NDS_TAG_EXPIRES, rec.expires);
	err = nds_enc_end(&e, &n);
	gen = rec.generation;
	OPENSSL_cleanse(&rec, sizeof(rec));
	if (err) {
		send_error(c, m->req_id, NDS_E_INTERNAL, "encode failed");
		return;
	}
	send_frame(c, srv->out, n);
	OPENSSL_cleanse(srv->out, n);
	srv->st.released++;
	nds_audit_write(srv->audit, srv_now(srv), "release",
			"role=transcoder node=%s peer=%s req=callkey %s "
			"gen=%u",
			c->id, c->peer, detail, (unsigned)gen);
	store_audit(c, "callkey", call, "", "released");
}

static void handle_mailbox(struct nds_conn *c, const struct nds_msg *m)
{
	struct kms_nds_srv *srv = c->srv;
	char a[KMS_NDS_ID_MAX + 1], b[KMS_NDS_ID_MAX + 1];
	char detail[2 * KMS_NDS_ID_MAX + 48], text[TEXT_MAX];
	char sealed[KMS_NDS_BLOB_MAX + 1];
	struct nds_mbox_rec *rec;
	struct nds_enc e;
	const char *reason;
	enum nds_err code;
	int err, want = 0;
	size_t n;

	if (nds_msg_str(m, NDS_TAG_ID_A, a, sizeof(a)) ||
	    nds_msg_str(m, NDS_TAG_ID_B, b, sizeof(b)) ||
	    nds_msg_str(m, NDS_TAG_SEALED, sealed, sizeof(sealed))) {
		send_error(c, m->req_id, NDS_E_MALFORMED, "bad fields");
		return;
	}
	if (m->present & (1u << NDS_TAG_WANT_KE2M))
		want = m->f[NDS_TAG_WANT_KE2M].p[0];
	snprintf(detail, sizeof(detail), "caller=%s recipient=%s ke2m=%d",
		 a, b, want);
	if (c->role != NDS_ROLE_MAILBOX) {
		snprintf(text, sizeof(text),
			 "role %s may not deposit for deferred delivery",
			 nds_role_name(c->role));
		deny(c, m, NDS_E_FORBIDDEN, text, detail);
		store_audit(c, "mailbox-deposit", "", b, "denied-role");
		return;
	}
	rec = calloc(1, sizeof(*rec));
	if (!rec) {
		send_error(c, m->req_id, NDS_E_INTERNAL, "out of memory");
		return;
	}
	err = srv->be.mailbox(srv->be.arg, c->id, a, b, sealed, want,
			      srv_now(srv), rec);
	if (err) {
		code = be_err(err, &reason);
		if (code == NDS_E_FORBIDDEN)
			snprintf(text, sizeof(text), "mailbox %s does not "
				 "serve %s (or the statement was refused)",
				 c->id, b);
		else
			snprintf(text, sizeof(text), "%s: deposit for %s",
				 reason, b);
		deny(c, m, code, text, detail);
		store_audit(c, "mailbox-deposit", "", b, nds_err_name(code));
		goto out;
	}
	nds_enc_begin(&e, srv->out, sizeof(srv->out), NDS_T_MAILBOX_RESP,
		      m->req_id);
	nds_enc_str(&e, NDS_TAG_FOR_A, rec->for_a);
	nds_enc_str(&e, NDS_TAG_STORE, rec->store);
	if (rec->ke2m_len)
		nds_enc_put(&e, NDS_TAG_KE2M, rec->ke2m, rec->ke2m_len);
	if (rec->retain_until)
		nds_enc_u64(&e, NDS_TAG_EXPIRES, rec->retain_until);
	err = nds_enc_end(&e, &n);
	if (err) {
		send_error(c, m->req_id, NDS_E_INTERNAL, "encode failed");
		goto out;
	}
	send_frame(c, srv->out, n);
	OPENSSL_cleanse(srv->out, n);
	srv->st.released++;
	nds_audit_write(srv->audit, srv_now(srv), "release",
			"role=mailbox node=%s peer=%s req=mailbox-deposit %s",
			c->id, c->peer, detail);
	store_audit(c, "mailbox-deposit", "", b, "released");
 out:
	OPENSSL_cleanse(rec, sizeof(*rec));
	free(rec);
}

static void handle(struct nds_conn *c, const uint8_t *body, size_t len)
{
	struct nds_msg m;
	enum nds_err code;
	int err;

	c->srv->st.requests++;
	err = nds_msg_parse(&m, body, len);
	if (err) {
		c->srv->st.malformed++;
		send_error(c, m.req_id, err == ENOTSUP ? NDS_E_UNSUPPORTED :
			   NDS_E_MALFORMED, err == ENOTSUP ?
			   "unsupported protocol version" :
			   "malformed message");
		return;
	}
	err = nds_msg_validate(&m, &code);
	if (err) {
		c->srv->st.malformed++;
		send_error(c, m.req_id, code, code == NDS_E_UNSUPPORTED ?
			   "unknown message type" :
			   "missing or unexpected field");
		return;
	}
	switch (m.type) {
	case NDS_T_LEGKEY_REQ:
		handle_legkey(c, &m);
		break;
	case NDS_T_TRANSCODER_REQ:
		handle_callkey(c, &m);
		break;
	case NDS_T_MAILBOX_REQ:
		handle_mailbox(c, &m);
		break;
	case NDS_T_PING_REQ: {
		struct nds_enc e;
		size_t n;

		nds_enc_begin(&e, c->srv->out, sizeof(c->srv->out),
			      NDS_T_PONG_RESP, m.req_id);
		if (!nds_enc_end(&e, &n))
			send_frame(c, c->srv->out, n);
		break;
	}
	default:
		send_error(c, m.req_id, NDS_E_UNSUPPORTED,
			   "not a request type");
		break;
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct nds_conn *c = arg;
	struct kms_nds_srv *srv = c->srv;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t hdr[NDS_LEN_SIZE];
	size_t avail, blen;
	int err;

	while (!c->closing) {
		avail = evbuffer_get_length(in);
		if (!avail) {
			evtimer_del(c->req_timer);
			break;
		}
		if (evbuffer_copyout(in, hdr, sizeof(hdr)) < 0)
			break;
		err = nds_frame_len(hdr, avail, &blen);
		if (err == EAGAIN || (!err && avail < NDS_LEN_SIZE + blen)) {
			/* Partial request: it has request_timeout to end. */
			if (!evtimer_pending(c->req_timer, NULL))
				evtimer_add(c->req_timer, &srv->req_tv);
			break;
		}
		if (err) {
			srv->st.malformed++;
			send_error(c, 0, err == EMSGSIZE ? NDS_E_TOO_LARGE :
				   NDS_E_MALFORMED, err == EMSGSIZE ?
				   "frame too large" : "frame too short");
			nds_audit_write(srv->audit, srv_now(srv), "drop",
					"role=%s node=%s peer=%s reason=%s",
					nds_role_name(c->role), c->id,
					c->peer, err == EMSGSIZE ?
					"frame-too-large" : "frame-too-short");
			conn_close_after_write(c);
			return;
		}
		evtimer_del(c->req_timer);
		evbuffer_drain(in, NDS_LEN_SIZE);
		if (evbuffer_remove(in, srv->in, blen) != (int)blen)
			break;
		handle(c, srv->in, blen);
		OPENSSL_cleanse(srv->in, blen);
		/* Bound what waits to be sent: pause reading until the
		 * peer takes its responses (write_cb resumes). */
		if (evbuffer_get_length(bufferevent_get_output(bev)) >
		    srv->out_max) {
			srv->st.paused++;
			bufferevent_disable(bev, EV_READ);
			break;
		}
	}
	if (c->closing)
		conn_close_after_write(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct nds_conn *c = arg;

	if (c->closing) {
		conn_free_later(c);
		return;
	}
	if (!(bufferevent_get_enabled(bev) & EV_READ)) {
		bufferevent_enable(bev, EV_READ);
		read_cb(bev, c);
	}
}

/*
 * Say who the node is, before any request.  The client waits for this
 * frame after its handshake: a TLS 1.3 client finishes before the server
 * has judged its certificate, and a refusal (alert) that arrived after
 * the client had sent a request could be lost to a TCP reset.
 */
static void send_hello(struct nds_conn *c)
{
	struct nds_enc e;
	size_t n;

	nds_enc_begin(&e, c->srv->out, sizeof(c->srv->out), NDS_T_HELLO, 0);
	nds_enc_str(&e, NDS_TAG_NODE, c->id);
	nds_enc_str(&e, NDS_TAG_ROLE, nds_role_name(c->role));
	if (!nds_enc_end(&e, &n))
		send_frame(c, c->srv->out, n);
}

static void handshake_done(struct nds_conn *c)
{
	struct kms_nds_srv *srv = c->srv;
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	char why[128], text[TEXT_MAX];
	X509 *x;
	int err;

	x = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
	if (!x || SSL_get_verify_result(ssl) != X509_V_OK) {
		snprintf(why, sizeof(why), "no verified client certificate");
		err = EACCES;
	}
	else {
		err = nds_cert_identity(x, c->id, sizeof(c->id), &c->role,
					why, sizeof(why));
	}
	X509_free(x);
	evtimer_del(c->req_timer);
	if (err || c->role == NDS_ROLE_KMS) {
		srv->st.refused++;
		if (!err)
			snprintf(why, sizeof(why),
				 "a kms certificate is not a network node");
		nds_audit_write(srv->audit, srv_now(srv), "deny",
				"role=%s node=%s peer=%s req=connect "
				"reason=%s",
				nds_role_name(c->role),
				c->id[0] ? c->id : "-", c->peer, why);
		snprintf(text, sizeof(text), "certificate refused: %s", why);
		c->role = NDS_ROLE_NONE;
		send_error(c, 0, NDS_E_FORBIDDEN, text);
		conn_close_after_write(c);
		return;
	}
	c->authed = 1;
	srv->st.authed++;
	nds_audit_write(srv->audit, srv_now(srv), "connect",
			"role=%s node=%s peer=%s", nds_role_name(c->role),
			c->id, c->peer);
	send_hello(c);
	read_cb(c->bev, c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct nds_conn *c = arg;
	struct kms_nds_srv *srv = c->srv;

	if (what & BEV_EVENT_CONNECTED) {
		handshake_done(c);
		return;
	}
	if ((what & BEV_EVENT_ERROR) && !c->authed) {
		SSL *ssl = bufferevent_openssl_get_ssl(bev);
		long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
		unsigned long e = bufferevent_get_openssl_error(bev);
		char buf[160];

		if (vr != X509_V_OK)
			snprintf(buf, sizeof(buf), "%s",
				 X509_verify_cert_error_string(vr));
		else if (e)
			ERR_error_string_n(e, buf, sizeof(buf));
		else
			snprintf(buf, sizeof(buf), "connection failed");
		srv->st.refused++;
		nds_audit_write(srv->audit, srv_now(srv), "deny",
				"role=none node=- peer=%s req=connect "
				"reason=tls-handshake:%s", c->peer, buf);
	}
	if (what & BEV_EVENT_TIMEOUT && c->authed && !c->closing) {
		/* Idle: say so, then go. */
		send_error(c, 0, NDS_E_TIMEOUT, "idle timeout");
		bufferevent_set_timeouts(bev, &srv->req_tv, &srv->req_tv);
		conn_close_after_write(c);
		return;
	}
	while (bufferevent_get_openssl_error(bev))
		;
	conn_free_later(c);
}

static void req_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct nds_conn *c = arg;

	(void)fd;
	(void)what;
	if (c->dead) {
		conn_free(c);
		return;
	}
	if (c->authed && !c->closing) {
		nds_audit_write(c->srv->audit, srv_now(c->srv), "drop",
				"role=%s node=%s peer=%s "
				"reason=request-timeout",
				nds_role_name(c->role), c->id, c->peer);
		send_error(c, 0, NDS_E_TIMEOUT, "request not completed in "
			   "time");
		conn_close_after_write(c);
		return;
	}
	/* Handshake never finished (or close never drained). */
	conn_free(c);
}

static void peer_name(const struct sockaddr *sa, char *out, size_t outsz)
{
	char host[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		port = ntohs(s4->sin_port);
	}
	else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		port = ntohs(s6->sin6_port);
	}
	snprintf(out, outsz, "%s:%u", host, port);
}

static void accept_cb(struct evconnlistener *lis, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	struct kms_nds_srv *srv = arg;
	struct nds_conn *c;
	int one = 1;
	SSL *ssl;

	(void)lis;
	(void)salen;
	if (srv->nconns >= srv->max_conns) {
		char peer[INET6_ADDRSTRLEN + 8];

		peer_name(sa, peer, sizeof(peer));
		nds_audit_write(srv->audit, srv_now(srv), "drop",
				"role=none node=- peer=%s reason=max-conns",
				peer);
		evutil_closesocket(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	ssl = c ? SSL_new(srv->ctx) : NULL;
	if (!ssl) {
		free(c);
		evutil_closesocket(fd);
		return;
	}
	/* request/response: no Nagle delay on answers */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (srv->sndbuf)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &srv->sndbuf,
				 sizeof(srv->sndbuf));
	c->srv = srv;
	srv->st.accepted++;
	peer_name(sa, c->peer, sizeof(c->peer));
	c->bev = bufferevent_openssl_socket_new(srv->base, fd, ssl,
						BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	c->req_timer = evtimer_new(srv->base, req_timer_cb, c);
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	if (!c->bev || !c->req_timer) {
		if (!c->bev) {
			SSL_free(ssl);
			evutil_closesocket(fd);
		}
		conn_free(c);
		return;
	}
	bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, NDS_FRAME_MAX);
	bufferevent_set_timeouts(c->bev, &srv->idle_tv, &srv->idle_tv);
	/* The handshake must end within its own timeout. */
	evtimer_add(c->req_timer, &srv->hs_tv);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static SSL_CTX *ctx_new(const struct kms_nds_srv *srv, char *why,
			size_t whysz)
{
	STACK_OF(X509_NAME) *names;
	SSL_CTX *ctx;
	unsigned long e;

	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		goto fail;
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) ||
	    !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION))
		goto fail;
	if (SSL_CTX_use_certificate_chain_file(ctx, srv->cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(ctx, srv->key_file,
					SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1)
		goto fail;
	if (SSL_CTX_load_verify_locations(ctx, srv->ca_file, NULL) != 1)
		goto fail;
	names = SSL_load_client_CA_file(srv->ca_file);
	if (!names)
		goto fail;
	SSL_CTX_set_client_CA_list(ctx, names);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER |
			   SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
	SSL_CTX_set_verify_depth(ctx, 4);
	/* Client certificates must allow clientAuth. */
	if (SSL_CTX_set_purpose(ctx, X509_PURPOSE_SSL_CLIENT) != 1)
		goto fail;
	/* Every connection proves its certificate: no resumption. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	SSL_CTX_set_num_tickets(ctx, 0);
	return ctx;
 fail:
	e = ERR_peek_last_error();
	if (why && whysz) {
		if (e)
			ERR_error_string_n(e, why, whysz);
		else
			snprintf(why, whysz, "TLS context setup failed");
	}
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static int bind_listener(struct kms_nds_srv *srv, const char *addr,
			 uint16_t port)
{
	struct addrinfo hints, *ai = NULL;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char pbuf[8];
	int err;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST | AI_NUMERICSERV;
	snprintf(pbuf, sizeof(pbuf), "%u", (unsigned)port);
	if (getaddrinfo(addr && *addr ? addr : NULL, pbuf, &hints, &ai))
		return EADDRNOTAVAIL;
	srv->lis = evconnlistener_new_bind(srv->base, accept_cb, srv,
					   LEV_OPT_CLOSE_ON_FREE |
					   LEV_OPT_REUSEABLE |
					   LEV_OPT_CLOSE_ON_EXEC, 128,
					   ai->ai_addr, (int)ai->ai_addrlen);
	err = srv->lis ? 0 : (errno ? errno : EADDRINUSE);
	freeaddrinfo(ai);
	if (err)
		return err;
	if (getsockname(evconnlistener_get_fd(srv->lis),
			(struct sockaddr *)&ss, &sl))
		return errno;
	if (ss.ss_family == AF_INET)
		srv->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	else
		srv->port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

static void ms_tv(struct timeval *tv, unsigned ms, unsigned def)
{
	if (!ms)
		ms = def;
	tv->tv_sec = ms / 1000;
	tv->tv_usec = (ms % 1000) * 1000;
}

/**
 * Listen with an explicit backend (kms_nds_listen plugs the kms_store).
 * Errors: EINVAL, ENOMEM, EPROTO (certificate, key or CA unusable: the
 * reason goes to stderr), or the bind errno.
 */
int nds_srv_listen(struct event_base *base, const struct nds_backend *be,
		   const char *addr, uint16_t port,
		   const struct kms_nds_cfg *cfg, struct kms_nds_srv **srvp)
{
	struct kms_nds_srv *srv;
	char why[256];
	int err;

	if (!base || !be || !be->conf_focus || !be->legkey ||
	    !be->call_key || !be->mailbox || !cfg || !srvp ||
	    !cfg->cert_file || !cfg->key_file || !cfg->ca_file)
		return EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return ENOMEM;
	srv->base = base;
	srv->be = *be;
	srv->max_conns = cfg->max_conns ? cfg->max_conns : 1024;
	srv->out_max = OUT_MAX;
	ms_tv(&srv->idle_tv, cfg->idle_timeout_ms, 30000);
	ms_tv(&srv->req_tv, cfg->request_timeout_ms, 5000);
	ms_tv(&srv->hs_tv, cfg->handshake_timeout_ms, 10000);
	srv->cert_file = strdup(cfg->cert_file);
	srv->key_file = strdup(cfg->key_file);
	srv->ca_file = strdup(cfg->ca_file);
	srv->audit_path = dup_or_null(cfg->audit_log);
	if (!srv->cert_file || !srv->key_file || !srv->ca_file ||
	    (cfg->audit_log && !srv->audit_path)) {
		err = ENOMEM;
		goto out;
	}
	srv->ctx = ctx_new(srv, why, sizeof(why));
	if (!srv->ctx) {
		fprintf(stderr, "nds: TLS setup (%s, %s, %s): %s\n",
			srv->cert_file, srv->key_file, srv->ca_file, why);
		err = EPROTO;
		goto out;
	}
	if (srv->audit_path) {
		err = nds_audit_open(&srv->audit, srv->audit_path);
		if (err) {
			fprintf(stderr, "nds: audit log %s: %s\n",
				srv->audit_path, strerror(err));
			goto out;
		}
	}
	err = bind_listener(srv, addr, port);
 out:
	if (err)
		kms_nds_free(srv);
	else
		*srvp = srv;
	return err;
}

struct kms_nds_srv *kms_nds_free(struct kms_nds_srv *srv)
{
	if (!srv)
		return NULL;
	while (srv->conns)
		conn_free(srv->conns);
	if (srv->lis)
		evconnlistener_free(srv->lis);
	/*
	 * A freed bufferevent is finalised by its event loop; when the loop
	 * is no longer running (kmsd exiting), event_base_free() does not
	 * always do it, so give the loop one non-blocking pass here.  Called
	 * from inside the loop this is refused harmlessly (reentrancy) and
	 * the running loop finalises them.
	 */
	event_base_loop(srv->base, EVLOOP_NONBLOCK);
	SSL_CTX_free(srv->ctx);
	srv->audit = nds_audit_close(srv->audit);
	free(srv->cert_file);
	free(srv->key_file);
	free(srv->ca_file);
	free(srv->audit_path);
	free(srv);
	return NULL;
}

/**
 * Re-read certificate, key and CA for new connections (existing ones keep
 * theirs) and reopen the audit log (log rotation).  On error the old
 * state stays in use.
 */
int kms_nds_reload(struct kms_nds_srv *srv)
{
	struct nds_audit *a = NULL;
	char why[256];
	SSL_CTX *ctx;
	int err;

	if (!srv)
		return EINVAL;
	ctx = ctx_new(srv, why, sizeof(why));
	if (!ctx) {
		fprintf(stderr, "nds: reload: %s\n", why);
		return EPROTO;
	}
	if (srv->audit_path) {
		err = nds_audit_open(&a, srv->audit_path);
		if (err) {
			SSL_CTX_free(ctx);
			return err;
		}
		nds_audit_close(srv->audit);
		srv->audit = a;
	}
	SSL_CTX_free(srv->ctx);
	srv->ctx = ctx;
	return 0;
}
