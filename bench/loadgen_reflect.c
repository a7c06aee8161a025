/**
 * @file loadgen_reflect.c  A tiny stand-in bridge for the generator's
 * self-test: the control API subset loadgen uses, SRTP per leg, a 20 ms
 * tick that forwards each leg the loudest other leg's latest frame (no
 * decoding, no mixing), and per-packet relay for "transcode" conferences.
 */

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "keyleg/keyleg.h"
#include "bench/loadgen_int.h"

#define MAX_CONFS 4096
#define MAX_CONF_LEGS 128

struct rleg {
	struct rconf *conf;
	int fd;
	struct event *ev;
	struct keyleg *kl;
	struct sockaddr_in remote;
	uint16_t port;
	uint32_t ssrc;
	uint16_t seq;
	uint32_t ts;
	uint8_t pt;
	uint8_t level_ext;
	/* latest frame (decrypted payload) */
	uint8_t pay[LG_PKT_CAP];
	size_t plen;
	uint8_t ppt;
	int level;       /* 0 loudest .. 127; from RFC 6464 or size */
	int fresh;
	char id[16];
};

struct refl;

struct rconf {
	struct refl *r;
	char id[64];
	int transcode;
	struct rleg *legs[MAX_CONF_LEGS];
	unsigned n;
};

struct refl {
	struct event_base *base;
	struct evhttp *http;
	char token[512];
	struct rconf *confs[MAX_CONFS];
	unsigned next_leg;
	uint64_t packets_in, packets_out, auth_fail, ticks, late_ticks;
	struct bench_hist late;
	int tfd;
	int64_t next_tick;
	uint8_t out[LG_PKT_CAP];
};

static struct rconf *conf_find(struct refl *r, const char *id, int *slot)
{
	unsigned i;

	if (slot)
		*slot = -1;
	for (i = 0; i < MAX_CONFS; i++) {
		if (r->confs[i] && !strcmp(r->confs[i]->id, id)) {
			if (slot)
				*slot = (int)i;
			return r->confs[i];
		}
		if (!r->confs[i] && slot && *slot < 0)
			*slot = (int)i;
	}
	return NULL;
}

static void send_frame(struct refl *r, struct rleg *to, const uint8_t *pay,
		       size_t plen, uint8_t pt)
{
	size_t len;

	if (!to->remote.sin_port)
		return;
	len = lg_rtp_build(r->out, pt, to->seq++, to->ts, to->ssrc, 0, 0, 0,
			   pay, plen);
	to->ts += pt == 0 ? 160 : 960;
	if (to->kl && keyleg_protect_rtp(to->kl, r->out, &len, LG_PKT_CAP) !=
	    KEYLEG_OK)
		return;
	if (sendto(to->fd, r->out, len, 0, (struct sockaddr *)&to->remote,
		   sizeof(to->remote)) > 0)
		r->packets_out++;
}

static void leg_read(evutil_socket_t fd, short what, void *arg)
{
	struct rleg *l = arg;
	struct refl *rf = l->conf->r;
	uint8_t buf[LG_PKT_CAP];
	int k;

	(void)what;
	for (k = 0; k < 64; k++) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		size_t len, off;
		uint8_t pt;
		uint16_t seq;
		uint32_t ssrc;

		if (n <= 0)
			return;
		len = (size_t)n;
		if (len >= 2 && buf[1] >= 192 && buf[1] <= 223)
			continue;
		if (l->kl && keyleg_unprotect_rtp(l->kl, buf, &len,
			(uint64_t)(lg_now_ns() / 1000000)) != KEYLEG_OK) {
			rf->auth_fail++;
			continue;
		}
		if (lg_rtp_parse(buf, len, &pt, &seq, &ssrc, &off))
			continue;
		rf->packets_in++;
		if (l->conf->transcode) {
			unsigned i;

			for (i = 0; i < l->conf->n; i++)
				if (l->conf->legs[i] != l)
					send_frame(rf, l->conf->legs[i],
						   buf + off, len - off, pt);
			continue;
		}
		l->plen = len - off;
		memcpy(l->pay, buf + off, l->plen);
		l->ppt = pt;
		l->level = 127 - (int)(l->plen > 127 ? 127 : l->plen);
		if ((buf[0] & 0x10) && l->level_ext && len >= 18 &&
		    buf[12] == 0xbe && buf[13] == 0xde &&
		    (buf[16] >> 4) == l->level_ext)
			l->level = buf[17] & 0x7f;
		l->fresh = 1;
	}
}

static void tick(struct refl *r)
{
	unsigned c, i, j;

	for (c = 0; c < MAX_CONFS; c++) {
		struct rconf *cf = r->confs[c];

		if (!cf || cf->transcode)
			continue;
		for (i = 0; i < cf->n; i++) {
			struct rleg *best = NULL;

			for (j = 0; j < cf->n; j++) {
				struct rleg *o = cf->legs[j];

				if (j == i || !o->fresh)
					continue;
				if (!best || o->level < best->level)
					best = o;
			}
			if (best)
				send_frame(r, cf->legs[i], best->pay,
					   best->plen, best->ppt);
		}
		for (i = 0; i < cf->n; i++)
			cf->legs[i]->fresh = 0;
	}
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct refl *r = arg;
	uint64_t exp;
	int64_t now = lg_now_ns();

	(void)what;
	if (read(fd, &exp, sizeof(exp)) < 0)
		return;
	while (r->next_tick <= now) {
		bench_hist_add(&r->late, (double)(now - r->next_tick) / 1000);
		if (now - r->next_tick >= 20000000LL)
			r->late_ticks++;
		tick(r);
		r->ticks++;
		r->next_tick += 20000000LL;
	}
}

static void reply(struct evhttp_request *req, int code, json_t *j)
{
	struct evbuffer *b = evbuffer_new();
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if (s)
		evbuffer_add(b, s, strlen(s));
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	evhttp_send_reply(req, code, code < 300 ? "OK" : "Error", b);
	evbuffer_free(b);
	free(s);
	json_decref(j);
}

static json_t *err_json(const char *msg)
{
	return json_pack("{s:s}", "error", msg);
}

static json_t *body_json(struct evhttp_request *req)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	char *txt = malloc(n + 1);
	json_t *j;

	if (!txt)
		return NULL;
	evbuffer_copyout(in, txt, n);
	txt[n] = '\0';
	j = json_loads(txt, 0, NULL);
	free(txt);
	return j;
}

static int make_leg(struct refl *r, struct rconf *cf, json_t *b,
		    struct rleg **out, const char **why)
{
	struct rleg *l = calloc(1, sizeof(*l));
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	const char *remote = NULL, *rx = NULL, *tx = NULL;
	json_t *srtp;
	json_int_t ext = 0;

	*why = "bad leg";
	if (!l)
		return ENOMEM;
	l->conf = cf;
	l->fd = -1;
	if (json_unpack(b, "{s:s}", "remote", &remote) ||
	    lg_parse_hostport(remote, &l->remote))
		goto fail;
	json_unpack(b, "{s?I}", "audio_level_ext", &ext);
	l->level_ext = (uint8_t)ext;
	srtp = json_object_get(b, "srtp");
	if (srtp && json_is_object(srtp)) {
		struct keyleg_keysalt krx, ktx;

		if (json_unpack(srtp, "{s:{s:{s:s, s:s}}}", "key", "inline",
				"rx", &rx, "tx", &tx) ||
		    keyleg_inline_decode(rx, KEYLEG_AES_CM_128_HMAC_SHA1_80,
					 &krx) ||
		    keyleg_inline_decode(tx, KEYLEG_AES_CM_128_HMAC_SHA1_80,
					 &ktx)) {
			*why = "bad key";
			goto fail;
		}
		if (keyleg_alloc(&l->kl, KEYLEG_AES_CM_128_HMAC_SHA1_80, &krx,
				 &ktx, NULL))
			goto fail;
		keyleg_wipe(&krx, sizeof(krx));
		keyleg_wipe(&ktx, sizeof(ktx));
	}
	l->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (l->fd < 0 || bind(l->fd, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(l->fd, (struct sockaddr *)&sa, &sl))
		goto fail;
	l->port = ntohs(sa.sin_port);
	lg_random(&l->ssrc, sizeof(l->ssrc));
	l->ssrc |= 1;
	lg_random(&l->seq, sizeof(l->seq));
	snprintf(l->id, sizeof(l->id), "l%u", r->next_leg++);
	l->ev = event_new(r->base, l->fd, EV_READ | EV_PERSIST, leg_read, l);
	if (!l->ev || event_add(l->ev, NULL))
		goto fail;
	*out = l;
	return 0;
 fail:
	if (l->ev)
		event_free(l->ev);
	if (l->fd >= 0)
		close(l->fd);
	keyleg_free(l->kl);
	free(l);
	return EINVAL;
}

static void conf_free(struct rconf *cf)
{
	unsigned i;

	for (i = 0; i < cf->n; i++) {
		struct rleg *l = cf->legs[i];

		event_free(l->ev);
		close(l->fd);
		keyleg_free(l->kl);
		free(l);
	}
	free(cf);
}

static void metrics(struct refl *r, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	static const double les[] = { 0.0001, 0.0005, 0.001, 0.002, 0.005,
				      0.01, 0.02, 0.05, 0.1 };
	size_t i;

	evbuffer_add_printf(b,
		"# TYPE keymix_bridge_packets_in_total counter\n"
		"keymix_bridge_packets_in_total %llu\n"
		"keymix_bridge_packets_out_total %llu\n"
		"keymix_bridge_auth_failures_total %llu\n"
		"keymix_bridge_worker_ticks_total{worker=\"0\"} %llu\n"
		"keymix_bridge_worker_late_ticks_total{worker=\"0\"} %llu\n"
		"# TYPE keymix_bridge_tick_lateness_seconds histogram\n",
		(unsigned long long)r->packets_in,
		(unsigned long long)r->packets_out,
		(unsigned long long)r->auth_fail,
		(unsigned long long)r->ticks,
		(unsigned long long)r->late_ticks);
	for (i = 0; i < sizeof(les) / sizeof(les[0]); i++) {
		uint64_t acc = 0;
		size_t k, lim = (size_t)(les[i] * 1e4);

		for (k = 0; k < lim && k < BENCH_HIST_BINS; k++)
			acc += r->late.bins[k];
		evbuffer_add_printf(b,
			"keymix_bridge_tick_lateness_seconds_bucket"
			"{worker=\"0\",le=\"%g\"} %llu\n", les[i],
			(unsigned long long)acc);
	}
	evbuffer_add_printf(b,
		"keymix_bridge_tick_lateness_seconds_bucket"
		"{worker=\"0\",le=\"+Inf\"} %llu\n",
		(unsigned long long)r->late.count);
	evhttp_send_reply(req, 200, "OK", b);
	evbuffer_free(b);
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct refl *r = arg;
	const char *uri = evhttp_request_get_uri(req);
	const char *auth = evhttp_find_header(
		evhttp_request_get_input_headers(req), "Authorization");
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	char id[64], want[600];
	int slot;

	snprintf(want, sizeof(want), "Bearer %s", r->token);
	if (!auth || strlen(auth) != strlen(want) ||
	    !keyleg_ct_equal(auth, want, strlen(want))) {
		reply(req, 401, err_json("unauthorized"));
		return;
	}
	if (!strcmp(uri, "/metrics")) {
		metrics(r, req);
		return;
	}
	if (!strcmp(uri, "/v1/health")) {
		reply(req, 200, json_pack("{s:s}", "status", "ok"));
		return;
	}
	if (!strcmp(uri, "/v1/conferences") && m == EVHTTP_REQ_POST) {
		json_t *b = body_json(req);
		const char *cid = NULL, *mode = "mix";
		struct rconf *box;

		if (!b || json_unpack(b, "{s:s, s?s}", "id", &cid, "mode",
				      &mode) || strlen(cid) >= sizeof(id)) {
			json_decref(b);
			reply(req, 400, err_json("bad conference"));
			return;
		}
		if (conf_find(r, cid, &slot) || slot < 0) {
			json_decref(b);
			reply(req, 409, err_json("exists or full"));
			return;
		}
		box = calloc(1, sizeof(*box));
		if (!box) {
			json_decref(b);
			reply(req, 503, err_json("no memory"));
			return;
		}
		box->r = r;
		snprintf(box->id, sizeof(box->id), "%s", cid);
		box->transcode = !strcmp(mode, "transcode");
		r->confs[slot] = box;
		reply(req, 201, json_pack("{s:s}", "id", cid));
		json_decref(b);
		return;
	}
	if (!strncmp(uri, "/v1/conferences/", 16)) {
		const char *rest = uri + 16, *sl = strchr(rest, '/');
		size_t n = sl ? (size_t)(sl - rest) : strlen(rest);
		struct rconf *cf;

		if (n >= sizeof(id)) {
			reply(req, 404, err_json("unknown conference"));
			return;
		}
		memcpy(id, rest, n);
		id[n] = '\0';
		cf = conf_find(r, id, &slot);
		if (cf && !sl && m == EVHTTP_REQ_DELETE) {
			unsigned i;

			for (i = 0; i < MAX_CONFS; i++)
				if (r->confs[i] == cf)
					r->confs[i] = NULL;
			conf_free(cf);
			reply(req, 204, NULL);
			return;
		}
		if (cf && sl && !strcmp(sl, "/legs") &&
		    m == EVHTTP_REQ_POST && cf->n < MAX_CONF_LEGS) {
			json_t *b = body_json(req);
			struct rleg *l = NULL;
			const char *why;
			char local[32];

			if (!b || make_leg(r, cf, b, &l, &why)) {
				json_decref(b);
				reply(req, 400,
				      err_json(b ? why : "bad json"));
				return;
			}
			json_decref(b);
			cf->legs[cf->n++] = l;
			snprintf(local, sizeof(local), "127.0.0.1:%u",
				 l->port);
			reply(req, 201, json_pack("{s:s, s:s, s:I}", "leg",
						  l->id, "local", local,
						  "ssrc",
						  (json_int_t)l->ssrc));
			return;
		}
	}
	reply(req, 404, err_json("not found"));
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopbreak(arg);
}

/**
 * Serve until SIGTERM/SIGINT: prints "ready control=ADDR:PORT" on stdout
 * once listening, like bridged.
 */
int lg_reflector_run(const char *control, const char *token_file)
{
	struct refl *r = calloc(1, sizeof(*r));
	struct evhttp_bound_socket *bs;
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct itimerspec its;
	struct event *tev, *sigs[2];
	char host[64];
	FILE *f;
	int err = 0, i;

	if (!r)
		return ENOMEM;
	if (token_file && (f = fopen(token_file, "r"))) {
		size_t n = fread(r->token, 1, sizeof(r->token) - 1, f);

		fclose(f);
		while (n && (r->token[n - 1] == '\n' ||
			     r->token[n - 1] == '\r'))
			n--;
		r->token[n] = '\0';
	}
	if (lg_parse_hostport(control, &sa) || keyleg_init())
		return EINVAL;
	r->base = event_base_new();
	r->http = evhttp_new(r->base);
	inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
	bs = evhttp_bind_socket_with_handle(r->http, host,
					    ntohs(sa.sin_port));
	if (!bs)
		return EADDRINUSE;
	getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&sa,
		    &sl);
	evhttp_set_allowed_methods(r->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
				   EVHTTP_REQ_DELETE | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(r->http, handle, r);
	r->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	r->next_tick = lg_now_ns() + 20000000LL;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = r->next_tick / 1000000000LL;
	its.it_value.tv_nsec = r->next_tick % 1000000000LL;
	its.it_interval.tv_nsec = 20000000L;
	timerfd_settime(r->tfd, TFD_TIMER_ABSTIME, &its, NULL);
	tev = event_new(r->base, r->tfd, EV_READ | EV_PERSIST, tick_cb, r);
	event_add(tev, NULL);
	for (i = 0; i < 2; i++) {
		sigs[i] = evsignal_new(r->base, i ? SIGTERM : SIGINT,
				       on_signal, r->base);
		event_add(sigs[i], NULL);
	}
	printf("ready control=%s:%u\n", host, ntohs(sa.sin_port));
	fflush(stdout);
	event_base_dispatch(r->base);
	for (i = 0; i < MAX_CONFS; i++)
		if (r->confs[i])
			conf_free(r->confs[i]);
	for (i = 0; i < 2; i++)
		event_free(sigs[i]);
	event_free(tev);
	close(r->tfd);
	evhttp_free(r->http);
	event_base_free(r->base);
	free(r);
	return err;
}
