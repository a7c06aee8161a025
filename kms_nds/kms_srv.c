/** @file kms_srv.c  kmsd's UE listener: TLS 1.3 on libevent, framing */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "kms_nds/kms_int.h"
#include "kms_nds/kmsd_int.h"

/* a slow reader may hold at most this much unsent response data */
#define OUT_MAX (4 * KMS_FRAME_MAX)

struct kmsd_srv {
	struct event_base *base;
	struct kms_store *s;
	SSL_CTX *ctx;
	struct evconnlistener *lst;
	struct kmsd_srv_cfg cfg;
	unsigned nconns;
	uint16_t port;
	struct conn *conns;       /**< every open connection (freed with us) */
};

struct conn {
	struct conn *next, **pprev;
	struct kmsd_srv *srv;
	struct bufferevent *bev;
	struct event *req_timer;
	int closing;
};

static void conn_free(struct conn *c)
{
	if (c->req_timer)
		event_free(c->req_timer);
	if (c->bev)
		bufferevent_free(c->bev);
	if (c->next)
		c->next->pprev = c->pprev;
	*c->pprev = c->next;
	c->srv->nconns--;
	free(c);
}

static void send_frame(struct conn *c, const char *json)
{
	size_t n = strlen(json);
	uint8_t hdr[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16),
			   (uint8_t)(n >> 8), (uint8_t)n };

	bufferevent_write(c->bev, hdr, 4);
	bufferevent_write(c->bev, json, n);
}

/** Answer with an error and close once it is sent */
static void fatal(struct conn *c, const char *code, const char *msg)
{
	char buf[256];

	snprintf(buf, sizeof(buf), "{\"error\":\"%s\",\"message\":\"%s\","
		 "\"type\":\"error\",\"v\":%d}", code, msg, KMS_PROTO_VERSION);
	send_frame(c, buf);
	c->closing = 1;
	bufferevent_disable(c->bev, EV_READ);
	evtimer_del(c->req_timer);
}

static void handle(struct conn *c, const char *req, size_t len)
{
	struct kms_req_ctx ctx = { .now = kms_now() };
	SSL *ssl = bufferevent_openssl_get_ssl(c->bev);
	char *resp = NULL;

	if (ssl && SSL_export_keying_material(ssl, ctx.exporter,
					      KMS_EXPORTER_LEN,
					      KMS_EXPORTER_LABEL,
					      strlen(KMS_EXPORTER_LABEL), NULL,
					      0, 0) == 1)
		ctx.has_exporter = 1;
	if (kms_handle(c->srv->s, &ctx, req, len, &resp)) {
		fatal(c, "internal", "out of memory");
		return;
	}
	send_frame(c, resp);
	free(resp);
	kms_wipe(&ctx, sizeof(ctx));
}

static void on_read(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	struct timeval tv = { c->srv->cfg.request_ms / 1000,
			      (c->srv->cfg.request_ms % 1000) * 1000 };

	while (!c->closing) {
		size_t avail = evbuffer_get_length(in), len;
		uint8_t hdr[4];
		char *req;

		if (evbuffer_get_length(bufferevent_get_output(bev)) >
		    OUT_MAX) {
			/* resume in on_write once the client reads */
			bufferevent_disable(bev, EV_READ);
			return;
		}
		if (avail == 0) {
			evtimer_del(c->req_timer);
			return;
		}
		if (avail >= 4) {
			evbuffer_copyout(in, hdr, 4);
			if (kms_frame_len(hdr, &len)) {
				fatal(c, "oversized",
				      "frame length zero or above the limit");
				return;
			}
			if (avail >= 4 + len) {
				req = malloc(len);
				if (!req) {
					fatal(c, "internal", "out of memory");
					return;
				}
				evbuffer_drain(in, 4);
				evbuffer_remove(in, req, len);
				handle(c, req, len);
				free(req);
				evtimer_del(c->req_timer);
				continue;
			}
		}
		/* a partial frame must complete within the request timeout */
		if (!evtimer_pending(c->req_timer, NULL))
			evtimer_add(c->req_timer, &tv);
		return;
	}
}

static void on_write(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing) {
		conn_free(c);
		return;
	}
	if (!(bufferevent_get_enabled(bev) & EV_READ)) {
		bufferevent_enable(bev, EV_READ);
		on_read(bev, c);
	}
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if ((what & BEV_EVENT_TIMEOUT) && !c->closing) {
		fatal(c, "timeout", "idle connection closed");
		return;
	}
	conn_free(c);
}

static void on_req_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	fatal(c, "timeout", "request not completed in time");
}

static void on_accept(struct evconnlistener *lst, evutil_socket_t fd,
		      struct sockaddr *sa, int salen, void *arg)
{
	struct kmsd_srv *srv = arg;
	struct timeval idle = { srv->cfg.idle_ms / 1000,
				(srv->cfg.idle_ms % 1000) * 1000 };
	struct conn *c;
	SSL *ssl;

	(void)lst;
	(void)sa;
	(void)salen;
	if (srv->nconns >= srv->cfg.max_conns) {
		evutil_closesocket(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	ssl = SSL_new(srv->ctx);
	if (!c || !ssl) {
		free(c);
		SSL_free(ssl);
		evutil_closesocket(fd);
		return;
	}
	srv->nconns++;
	c->srv = srv;
	c->next = srv->conns;
	if (c->next)
		c->next->pprev = &c->next;
	c->pprev = &srv->conns;
	srv->conns = c;
	c->bev = bufferevent_openssl_socket_new(srv->base, fd, ssl,
						BUFFEREVENT_SSL_ACCEPTING,
						BEV_OPT_CLOSE_ON_FREE);
	c->req_timer = evtimer_new(srv->base, on_req_timeout, c);
	if (!c->bev || !c->req_timer) {
		if (!c->bev) {
			SSL_free(ssl);
			evutil_closesocket(fd);
		}
		conn_free(c);
		return;
	}
	/* bounded input: one largest frame plus its header */
	bufferevent_setwatermark(c->bev, EV_READ, 0, 4 + KMS_FRAME_MAX);
	bufferevent_setcb(c->bev, on_read, on_write, on_event, c);
	bufferevent_set_timeouts(c->bev, &idle, NULL);
	bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

/** "addr:port" or "[v6]:port"; port 0 (any) which libevent refuses */
static int parse_addr(const char *ap, struct sockaddr_storage *ss,
		      int *len)
{
	char buf[128];
	size_t n = strlen(ap);

	if (n + 1 >= sizeof(buf))
		return EINVAL;
	if (n >= 2 && !strcmp(ap + n - 2, ":0")) {
		snprintf(buf, sizeof(buf), "%.*s:1", (int)(n - 2), ap);
		if (evutil_parse_sockaddr_port(buf, (struct sockaddr *)ss,
					       len))
			return EINVAL;
		if (ss->ss_family == AF_INET6)
			((struct sockaddr_in6 *)ss)->sin6_port = 0;
		else
			((struct sockaddr_in *)ss)->sin_port = 0;
		return 0;
	}
	return evutil_parse_sockaddr_port(ap, (struct sockaddr *)ss, len)
	       ? EINVAL : 0;
}

int kmsd_srv_listen(struct event_base *base, struct kms_store *s,
		    const char *addr_port, const struct kmsd_srv_cfg *cfg,
		    struct kmsd_srv **srvp)
{
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	int len = sizeof(ss), err = 0;
	struct kmsd_srv *srv;

	if (!base || !s || !addr_port || !cfg || !srvp)
		return EINVAL;
	memset(&ss, 0, sizeof(ss));
	if (parse_addr(addr_port, &ss, &len))
		return EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return ENOMEM;
	srv->base = base;
	srv->s = s;
	srv->cfg = *cfg;
	if (!srv->cfg.max_conns)
		srv->cfg.max_conns = 1024;
	if (!srv->cfg.idle_ms)
		srv->cfg.idle_ms = 30000;
	if (!srv->cfg.request_ms)
		srv->cfg.request_ms = 5000;
	srv->ctx = SSL_CTX_new(TLS_server_method());
	if (!srv->ctx ||
	    !SSL_CTX_set_min_proto_version(srv->ctx, TLS1_3_VERSION) ||
	    SSL_CTX_use_certificate_chain_file(srv->ctx,
					       cfg->cert_file) != 1 ||
	    SSL_CTX_use_PrivateKey_file(srv->ctx, cfg->key_file,
					SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(srv->ctx) != 1) {
		ERR_print_errors_fp(stderr);
		err = EINVAL;
		goto out;
	}
	SSL_CTX_set_session_cache_mode(srv->ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_num_tickets(srv->ctx, 0);
	srv->lst = evconnlistener_new_bind(base, on_accept, srv,
					   LEV_OPT_CLOSE_ON_FREE |
					   LEV_OPT_REUSEABLE, 128,
					   (struct sockaddr *)&ss, len);
	if (!srv->lst) {
		err = errno ? errno : EADDRINUSE;
		goto out;
	}
	if (getsockname(evconnlistener_get_fd(srv->lst),
			(struct sockaddr *)&ss, &sl) == 0)
		srv->port = ntohs(ss.ss_family == AF_INET6
				  ? ((struct sockaddr_in6 *)&ss)->sin6_port
				  : ((struct sockaddr_in *)&ss)->sin_port);
 out:
	if (err)
		srv = kmsd_srv_free(srv);
	*srvp = srv;
	return err;
}

struct kmsd_srv *kmsd_srv_free(struct kmsd_srv *srv)
{
	if (!srv)
		return NULL;
	while (srv->conns)
		conn_free(srv->conns);
	if (srv->lst)
		evconnlistener_free(srv->lst);
	SSL_CTX_free(srv->ctx);
	free(srv);
	return NULL;
}

uint16_t kmsd_srv_port(const struct kmsd_srv *srv)
{
	return srv ? srv->port : 0;
}
