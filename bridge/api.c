/**
 * @file api.c  Control API: HTTP/JSON over libevent evhttp and jansson
 *
 * Runs on the control thread.  Requests are checked (token, route, JSON)
 * here; everything that touches a conference runs on its worker through
 * worker_call().  docs/control-api.md is the contract.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include "bridge/bridge_int.h"
#include "kms_nds/kms.h"

#define ERRSZ API_ERRSZ

/* ---- replies ---- */

static void reply_json(struct evhttp_request *req, int code, json_t *body)
{
	struct evbuffer *buf = evbuffer_new();
	char *s = NULL;

	if (body)
		s = json_dumps(body, JSON_COMPACT);
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "application/json");
	if (buf && s) {
		evbuffer_add(buf, s, strlen(s));
		evbuffer_add(buf, "\n", 1);
	}
	evhttp_send_reply(req, code, code == 204 ? "No Content" :
			  code < 300 ? "OK" : "Error", code == 204 ? NULL :
			  buf);
	free(s);
	json_decref(body);
	if (buf)
		evbuffer_free(buf);
}

static void reply_error(struct bridge *b, struct evhttp_request *req,
			int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void reply_error(struct bridge *b, struct evhttp_request *req,
			int code, const char *fmt, ...)
{
	char msg[ERRSZ];
	va_list ap;
	static const int codes[6] = {400, 401, 404, 409, 422, 502};
	unsigned i;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* ids echoed from the request may hold any byte: keep the message
	 * printable ASCII so that the log line stays one line and the JSON
	 * body can be made (jansson refuses invalid UTF-8) */
	for (i = 0; msg[i]; i++)
		if ((unsigned char)msg[i] < 0x20 ||
		    (unsigned char)msg[i] > 0x7e)
			msg[i] = '?';
	for (i = 0; i < 6; i++)
		if (codes[i] == code)
			b->http_errors[i]++;
	bridge_log(code >= 500 ? BRIDGE_LOG_WARN : BRIDGE_LOG_INFO,
		   "%s %s -> %d: %s",
		   evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET" :
		   evhttp_request_get_command(req) == EVHTTP_REQ_POST ?
		   "POST" : evhttp_request_get_command(req) ==
		   EVHTTP_REQ_PATCH ? "PATCH" : "DELETE",
		   evhttp_request_get_uri(req), code, msg);
	reply_json(req, code, json_pack("{s:s}", "error", msg));
}

/* ---- request helpers ---- */

/** Parse the body as a JSON object (400 with a message otherwise) */
static json_t *read_body(struct evhttp_request *req, char *err)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t n = evbuffer_get_length(in);
	json_error_t jerr;
	json_t *j;
	char *s;

	if (n == 0) {
		snprintf(err, ERRSZ, "request body missing: want a JSON "
			 "object");
		return NULL;
	}
	s = malloc(n + 1);
	if (!s) {
		snprintf(err, ERRSZ, "out of memory");
		return NULL;
	}
	evbuffer_copyout(in, s, n);
	s[n] = '\0';
	j = json_loadb(s, n, 0, &jerr);
	keyleg_wipe(s, n);   /* the body may carry inline keys */
	free(s);
	if (!j) {
		snprintf(err, ERRSZ, "malformed JSON: %s (line %d col %d)",
			 jerr.text, jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(j)) {
		json_decref(j);
		snprintf(err, ERRSZ, "request body must be a JSON object");
		return NULL;
	}
	return j;
}

/* ---- registry (control thread) ---- */

static struct conf *conf_find(struct bridge *b, const char *id)
{
	struct confref *r;

	for (r = b->confs; r; r = r->next)
		if (!strcmp(r->c->id, id))
			return r->c;
	return NULL;
}

/* ---- worker calls ---- */

struct call_conf {
	struct conf *c;
	struct leg_params *par;
	const char *leg_id;
	int fd;
	struct baddr local;
	uint16_t port;
	int err;
	json_t *out;
	/* PATCH */
	int has_muted, muted, has_gain, has_dir, has_key;
	double gain;
	enum leg_dir dir;
	struct keyleg_keysalt rx, tx;
	uint32_t generation;
};

static json_t *leg_json(const struct leg *l)
{
	char local[80], remote[80];
	double level = -127;
	int talking;
	json_t *j;

	baddr_format(&l->local, local, sizeof(local));
	baddr_format(&l->remote, remote, sizeof(remote));
	talking = leg_talking(l, &level);
	j = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:f, s:I, s:I, "
		      "s:I, s:f, s:I, s:I, s:I}",
		      "leg", l->id,
		      "participant", l->par.participant,
		      "codec", codec_api_name(l->par.codec),
		      "local", local,
		      "remote", remote,
		      "muted", l->muted,
		      "talking", talking,
		      "level_dbov", level,
		      "packets_in", (json_int_t)l->cnt.packets_in,
		      "packets_out", (json_int_t)l->cnt.packets_out,
		      "lost", (json_int_t)rtp_rxstats_lost(&l->rx),
		      "jitter_ms", rtp_rxstats_jitter_ms(&l->rx, l->clock),
		      "auth_failures", (json_int_t)l->cnt.auth_failures,
		      "replays", (json_int_t)l->cnt.replays,
		      "malformed", (json_int_t)l->cnt.malformed);
	if (!j)
		return NULL;
	/* extras beyond the contract's list */
	json_object_set_new(j, "direction", json_string(dir_name(l->par.dir)));
	json_object_set_new(j, "ssrc", json_integer(l->ssrc));
	json_object_set_new(j, "payload_type", json_integer(l->par.pt));
	json_object_set_new(j, "gain_db", json_real(l->gain_db));
	json_object_set_new(j, "srtp", l->kl ? json_string(
		keyleg_profile_name(keyleg_profile(l->kl))) : json_null());
	json_object_set_new(j, "key_source", json_string(
		!l->kl ? "none" : l->par.kms ? "kms" : "inline"));
	json_object_set_new(j, "rtt_ms", json_real(l->rtt_ms));
	json_object_set_new(j, "remote_lost", json_integer(l->remote_lost));
	json_object_set_new(j, "rtcp_in", json_integer(
		(json_int_t)l->cnt.rtcp_in));
	json_object_set_new(j, "rtcp_out", json_integer(
		(json_int_t)l->cnt.rtcp_out));
	json_object_set_new(j, "telephone_events", json_integer(
		(json_int_t)l->cnt.events_in));
	json_object_set_new(j, "last_event", l->last_event >= 0 ?
			    json_integer(l->last_event) : json_null());
	json_object_set_new(j, "latches", json_integer(
		(json_int_t)l->cnt.latches));
	if (l->ml) {
		/* leg_json runs on the leg's worker: the mixer is ours */
		struct mix_leg_stats ms;

		mix_leg_stats_get(l->ml, &ms);
		json_object_set_new(j, "jb_delay_ms",
				    json_integer(ms.jb_delay_ms));
		json_object_set_new(j, "jb_target_ms",
				    json_integer(ms.jb_target_ms));
		json_object_set_new(j, "concealed",
				    json_integer((json_int_t)ms.concealed));
		json_object_set_new(j, "late",
				    json_integer((json_int_t)ms.late));
	}
	return j;
}

static void call_conf_add(struct worker *w, void *arg)
{
	struct call_conf *cc = arg;

	cc->err = conf_mix_alloc(cc->c);
	if (!cc->err)
		worker_conf_attach(w, cc->c);
}

static void call_conf_del(struct worker *w, void *arg)
{
	struct call_conf *cc = arg;
	struct leg *l;

	worker_conf_detach(w, cc->c);
	for (l = cc->c->legs; l; l = l->next)
		ports_release(&w->b->ports, l->port);
	conf_free(cc->c);
}

static void call_conf_get(struct worker *w, void *arg)
{
	struct call_conf *cc = arg;
	struct conf *c = cc->c;
	struct mix_leg *tv[16];
	struct mix_conf_stats ms;
	json_t *legs, *talkers;
	struct leg *l;
	unsigned n, i;
	(void)w;

	legs = json_array();
	talkers = json_array();
	n = mix_talkers(c->mix, tv, 16);
	for (i = 0; i < n; i++) {
		const struct leg *t = mix_leg_arg(tv[i]);

		json_array_append_new(talkers, json_string(t->id));
	}
	/* legs in creation order: the list is newest first */
	for (l = c->legs; l; l = l->next)
		json_array_insert_new(legs, 0, leg_json(l));
	/* rate: the mixer's rate now; rate_auto: chosen by the legs */
	mix_conf_stats_get(c->mix, &ms);
	cc->out = json_pack("{s:s, s:s, s:i, s:b, s:o, s:o}", "id", c->id,
			    "mode", mode_name(c->mode), "rate", ms.rate,
			    "rate_auto", c->rate == 0, "talkers", talkers,
			    "legs", legs);
	json_object_set_new(cc->out, "ptime", json_integer(c->ptime));
	json_object_set_new(cc->out, "max_talkers",
			    json_integer(c->max_talkers));
}

static void call_leg_add(struct worker *w, void *arg)
{
	struct call_conf *cc = arg;
	struct leg *l = NULL;
	(void)w;

	cc->err = leg_create(&l, cc->c, cc->par, cc->fd, &cc->local,
			     cc->port);
	if (!cc->err)
		cc->out = leg_json(l);
}

static void call_leg_del(struct worker *w, void *arg)
{
	struct call_conf *cc = arg;
	struct leg *l = conf_leg_find(cc->c, cc->leg_id);

	if (!l) {
		cc->err = ENOENT;
		return;
	}
	ports_release(&w->b->ports, l->port);
	leg_free(l);
	cc->err = 0;
}

/** Copy what a KMS rekey needs out of the leg */
static void call_leg_peek(struct worker *w, void *arg)
{
	struct call_conf *cc = arg;
	struct leg *l = conf_leg_find(cc->c, cc->leg_id);
	(void)w;

	if (!l) {
		cc->err = ENOENT;
		return;
	}
	cc->err = 0;
	*cc->par = l->par;
	cc->par->srtp = l->kl != NULL;
	if (l->kl)
		cc->par->profile = keyleg_profile(l->kl);
}

static void call_leg_patch(struct worker *w, void *arg)
{
	struct call_conf *cc = arg;
	struct leg *l = conf_leg_find(cc->c, cc->leg_id);
	(void)w;

	if (!l) {
		cc->err = ENOENT;
		return;
	}
	cc->err = 0;
	if (cc->has_key) {
		cc->err = leg_rekey(l, &cc->rx, &cc->tx);
		if (cc->err)
			return;
		if (cc->generation)
			l->par.key_generation = cc->generation;
	}
	if (cc->has_muted && !cc->err)
		cc->err = leg_set_mute(l, cc->muted);
	if (cc->has_gain && !cc->err)
		cc->err = leg_set_gain(l, cc->gain);
	if (cc->has_dir && !cc->err)
		cc->err = leg_set_dir(l, cc->dir);
	cc->out = leg_json(l);
}

/* ---- handlers ---- */

static void h_conf_create(struct bridge *b, struct evhttp_request *req)
{
	char err[ERRSZ];
	const char *id = NULL, *mode = "mix";
	long long rate = -1, ptime = 20, talkers = 3;
	struct mix_conf_cfg def;
	struct call_conf cc;
	struct confref *r;
	struct conf *c;
	json_t *j;
	int st;

	j = read_body(req, err);
	if (!j) {
		reply_error(b, req, 400, "%s", err);
		return;
	}
	mix_conf_cfg_default(&def);
	c = calloc(1, sizeof(*c));
	if (!c) {
		json_decref(j);
		reply_error(b, req, 503, "out of memory");
		return;
	}
	c->opus.complexity = def.opus.complexity;
	c->opus.bitrate = def.opus.bitrate;
	c->opus.fec = def.opus.fec;
	c->opus.dtx = def.opus.dtx;
	if ((st = apij_get_str(j, "id", &id, 1, err)) ||
	    (st = apij_get_str(j, "mode", &mode, 0, err)) ||
	    (st = apij_get_int(j, "rate", &rate, err)) ||
	    (st = apij_get_int(j, "ptime", &ptime, err)) ||
	    (st = apij_get_int(j, "max_talkers", &talkers, err)) ||
	    (st = apij_parse_opus(json_object_get(j, "opus"), &c->opus, err)))
		goto fail;
	if (!apij_id_valid(id)) {
		st = 400;
		snprintf(err, ERRSZ, "'id' must be 1..127 characters of "
			 "A-Z a-z 0-9 . _ ~ : @ + -");
		goto fail;
	}
	if (!strcmp(mode, "mix")) {
		c->mode = MODE_MIX;
	}
	else if (!strcmp(mode, "transcode")) {
		c->mode = MODE_TRANSCODE;
	}
	else {
		st = 422;
		snprintf(err, ERRSZ, "unsupported mode '%s' (mix, transcode)",
			 mode);
		goto fail;
	}
	/* a transcoder runs at the lower of its legs' rates unless told */
	if (rate < 0)
		rate = c->mode == MODE_TRANSCODE ? 0 : 48000;
	if (!(rate == 8000 || rate == 16000 || rate == 24000 ||
	      rate == 48000 || (rate == 0 && c->mode == MODE_TRANSCODE))) {
		st = 422;
		snprintf(err, ERRSZ, "unsupported rate %lld (8000, 16000, "
			 "24000, 48000; 0 = automatic, transcode only)", rate);
		goto fail;
	}
	if (ptime != 10 && ptime != 20) {
		st = 422;
		snprintf(err, ERRSZ, "unsupported ptime %lld (10, 20)", ptime);
		goto fail;
	}
	if (talkers < 1 || talkers > 16) {
		st = 422;
		snprintf(err, ERRSZ, "max_talkers must be 1..16");
		goto fail;
	}
	if (conf_find(b, id)) {
		st = 409;
		snprintf(err, ERRSZ, "conference '%s' exists", id);
		goto fail;
	}
	snprintf(c->id, sizeof(c->id), "%s", id);
	c->rate = (unsigned)rate;
	c->ptime = (unsigned)ptime;
	c->max_talkers = (unsigned)talkers;
	r = calloc(1, sizeof(*r));
	if (!r) {
		st = 503;
		snprintf(err, ERRSZ, "out of memory");
		goto fail;
	}
	memset(&cc, 0, sizeof(cc));
	cc.c = c;
	worker_call(bridge_pick_worker(b), call_conf_add, &cc);
	if (cc.err) {
		free(r);
		st = cc.err == ENOMEM ? 503 : 422;
		snprintf(err, ERRSZ, "mixer refused the conference: %s",
			 strerror(cc.err));
		if (c->mix)
			mix_conf_free(c->mix);
		goto fail;
	}
	r->c = c;
	r->next = b->confs;
	b->confs = r;
	b->nconfs++;
	bridge_log(BRIDGE_LOG_INFO, "conference %s created (%s, %u Hz%s, "
		   "%u ms) on worker %u", c->id, mode_name(c->mode),
		   c->rate ? c->rate : 48000u,
		   c->rate ? "" : " until its legs pick one", c->ptime,
		   c->w->idx);
	reply_json(req, 201, json_pack("{s:s}", "id", c->id));
	json_decref(j);
	return;
 fail:
	free(c);
	json_decref(j);
	reply_error(b, req, st, "%s", err);
}

static void h_conf_delete(struct bridge *b, struct evhttp_request *req,
			  struct conf *c)
{
	struct confref **pp, *r;
	struct call_conf cc;

	for (pp = &b->confs; *pp; pp = &(*pp)->next) {
		if ((*pp)->c == c) {
			r = *pp;
			*pp = r->next;
			free(r);
			b->nconfs--;
			break;
		}
	}
	bridge_log(BRIDGE_LOG_INFO, "conference %s deleted", c->id);
	memset(&cc, 0, sizeof(cc));
	cc.c = c;
	worker_call(c->w, call_conf_del, &cc);
	reply_json(req, 204, NULL);
}

static void h_conf_get(struct bridge *b, struct evhttp_request *req,
		       struct conf *c)
{
	struct call_conf cc;

	memset(&cc, 0, sizeof(cc));
	cc.c = c;
	worker_call(c->w, call_conf_get, &cc);
	if (!cc.out) {
		reply_error(b, req, 503, "out of memory");
		return;
	}
	reply_json(req, 200, cc.out);
}

static void h_conf_list(struct bridge *b, struct evhttp_request *req)
{
	json_t *a = json_array();
	struct confref *r;

	for (r = b->confs; r; r = r->next)
		json_array_insert_new(a, 0, json_string(r->c->id));
	reply_json(req, 200, a);
}

/** Map a KMS client error to an HTTP status (502 refused, 503 down) */
static int kms_status(int e)
{
	switch (e) {
	case ECONNREFUSED:
	case ETIMEDOUT:
	case EHOSTUNREACH:
	case ENOTCONN:
	case ENETUNREACH:
	case ECONNRESET:
	case EAGAIN:
		return 503;
	default:
		return 502;
	}
}

static int worker_overloaded(struct bridge *b, struct worker *w)
{
	return atomic_load(&w->nlegs) >= b->cfg.max_legs_per_worker ||
		atomic_load(&w->load_permille) >= b->cfg.max_load_permille;
}

/*
 * A request waiting for the KMS thread.  The HTTP request may go away
 * meanwhile (client gone): the connection's close callback clears req,
 * and the continuation then only cleans up.
 */
struct pending {
	struct bridge *b;
	struct evhttp_request *req;
	struct evhttp_connection *evcon;
	char conf_id[128];
	char leg_id[24];
	struct leg_params *par;
	struct call_conf cc;
	struct kms_job job;
};

static void pending_gone(struct evhttp_connection *evcon, void *arg)
{
	struct pending *p = arg;
	(void)evcon;

	p->req = NULL;
	p->evcon = NULL;
}

static struct pending *pending_new(struct bridge *b,
				   struct evhttp_request *req,
				   const struct conf *c)
{
	struct pending *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->b = b;
	p->req = req;
	p->evcon = evhttp_request_get_connection(req);
	if (p->evcon)
		evhttp_connection_set_closecb(p->evcon, pending_gone, p);
	snprintf(p->conf_id, sizeof(p->conf_id), "%s", c->id);
	p->job.done = NULL;
	p->job.arg = p;
	return p;
}

static void pending_free(struct pending *p)
{
	if (p->evcon)
		evhttp_connection_set_closecb(p->evcon, NULL, NULL);
	if (p->par) {
		keyleg_wipe(p->par, sizeof(*p->par));
		free(p->par);
	}
	json_decref(p->cc.out);
	keyleg_wipe(p, sizeof(*p));
	free(p);
}

/** Map a KMS job's error to a status and message */
static int kms_job_error(const struct kms_job *job, char *err)
{
	int st = job->err == ECANCELED ? 503 : kms_status(job->err);

	snprintf(err, ERRSZ, "%s KMS: %s", st == 503 ?
		 "cannot reach the" : "refused by the", job->msg);
	return st;
}

/** Second half of a leg request: socket, worker, reply.  0 or status */
static int leg_add_finish(struct bridge *b, struct evhttp_request *req,
			  struct conf *c, struct leg_params *par, char *err)
{
	struct call_conf cc;
	int e, st;

	memset(&cc, 0, sizeof(cc));
	cc.fd = -1;
	if (worker_overloaded(b, c->w)) {
		b->legs_refused++;
		snprintf(err, ERRSZ, "overload: worker %u is near its tick "
			 "budget or leg limit; leg refused", c->w->idx);
		return 503;
	}
	e = ports_open(&b->ports, &par->remote, &cc.fd, &cc.local, &cc.port);
	if (e) {
		snprintf(err, ERRSZ, e == EHOSTUNREACH ?
			 "no route to the remote address" : e ==
			 EADDRNOTAVAIL ? "RTP port range %u-%u exhausted" :
			 "cannot open a leg socket", b->ports.lo,
			 b->ports.hi);
		return e == EHOSTUNREACH ? 422 : 503;
	}
	cc.c = c;
	cc.par = par;
	worker_call(c->w, call_leg_add, &cc);
	if (cc.err) {
		ports_release(&b->ports, cc.port);
		close(cc.fd);
		st = cc.err == ENOMEM ? 503 : cc.err == ENOSPC ||
			cc.err == EBUSY || cc.err == E2BIG ? 409 : 422;
		snprintf(err, ERRSZ, "leg refused: %s%s", strerror(cc.err),
			 st == 409 ? " (conference full)" : "");
		return st;
	}
	bridge_log(BRIDGE_LOG_INFO, "conference %s: leg %s for %s on port "
		   "%u (%s, %s%s)", c->id,
		   json_string_value(json_object_get(cc.out, "leg")),
		   par->participant, cc.port, codec_api_name(par->codec),
		   par->srtp ? keyleg_profile_name(par->profile) : "plain",
		   par->kms ? ", key from the KMS" : "");
	reply_json(req, 201, json_pack(
		"{s:O, s:O, s:O}", "leg", json_object_get(cc.out, "leg"),
		"local", json_object_get(cc.out, "local"),
		"ssrc", json_object_get(cc.out, "ssrc")));
	json_decref(cc.out);
	return 0;
}

static void leg_add_kms_done(struct kms_job *job, void *arg)
{
	struct pending *p = arg;
	struct bridge *b = p->b;
	char err[ERRSZ];
	struct conf *c;
	int st = 0;

	if (!p->req)
		goto out;          /* the client left; nothing was made */
	if (job->err) {
		st = kms_job_error(job, err);
		goto out;
	}
	c = conf_find(b, p->conf_id);
	if (!c) {
		st = 404;
		snprintf(err, ERRSZ, "conference '%s' ended while its key was "
			 "fetched", p->conf_id);
		goto out;
	}
	p->par->rx = job->rx;
	p->par->tx = job->tx;
	p->par->key_generation = job->generation;
	st = leg_add_finish(b, p->req, c, p->par, err);
 out:
	if (st && p->req)
		reply_error(b, p->req, st, "%s", err);
	keyleg_wipe(&job->rx, sizeof(job->rx));
	keyleg_wipe(&job->tx, sizeof(job->tx));
	pending_free(p);
}

/** Queue a KMS fetch for p; 0 or a status with err */
static int kms_queue(struct bridge *b, struct pending *p,
		     const struct leg_params *par, kms_job_h *done,
		     char *err)
{
	if (!b->kmsl) {
		snprintf(err, ERRSZ, "cannot reach the KMS: no KMS configured "
			 "(start bridged with --kms and the --nds-* files)");
		return 503;
	}
	snprintf(p->job.conf_ref, sizeof(p->job.conf_ref), "%s",
		 par->kms_conf);
	snprintf(p->job.participant, sizeof(p->job.participant), "%s",
		 par->kms_participant);
	p->job.profile = par->profile;
	p->job.done = done;
	p->job.arg = p;
	if (kmslink_submit(b, &p->job)) {
		snprintf(err, ERRSZ, "cannot reach the KMS: not running");
		return 503;
	}
	return 0;
}

static void h_leg_add(struct bridge *b, struct evhttp_request *req,
		      struct conf *c)
{
	struct leg_params *par;
	struct pending *p;
	char err[ERRSZ];
	json_t *j;
	int st = 0;

	j = read_body(req, err);
	if (!j) {
		reply_error(b, req, 400, "%s", err);
		return;
	}
	par = calloc(1, sizeof(*par));
	if (!par) {
		json_decref(j);
		reply_error(b, req, 503, "out of memory");
		return;
	}
	st = apij_parse_leg(j, c, par, err);
	json_decref(j);
	if (st)
		goto out;
	if (worker_overloaded(b, c->w)) {
		b->legs_refused++;
		st = 503;
		snprintf(err, ERRSZ, "overload: worker %u is near its tick "
			 "budget or leg limit; leg refused", c->w->idx);
		goto out;
	}
	if (par->kms) {
		/* the fetch runs on the KMS thread; the answer comes later */
		p = pending_new(b, req, c);
		if (!p) {
			st = 503;
			snprintf(err, ERRSZ, "out of memory");
			goto out;
		}
		p->par = par;
		st = kms_queue(b, p, par, leg_add_kms_done, err);
		if (st) {
			p->par = NULL;
			pending_free(p);
			goto out;
		}
		return;
	}
	st = leg_add_finish(b, req, c, par, err);
 out:
	keyleg_wipe(par, sizeof(*par));
	free(par);
	if (st)
		reply_error(b, req, st, "%s", err);
}

/** Second half of a PATCH: apply on the worker, reply.  0 or status */
static int leg_patch_finish(struct bridge *b, struct evhttp_request *req,
			    struct conf *c, struct call_conf *cc, char *err)
{
	(void)b;
	cc->c = c;
	worker_call(c->w, call_leg_patch, cc);
	keyleg_wipe(&cc->rx, sizeof(cc->rx));
	keyleg_wipe(&cc->tx, sizeof(cc->tx));
	if (cc->err == ENOENT) {
		snprintf(err, ERRSZ, "no leg '%s' in conference '%s'",
			 cc->leg_id, c->id);
		return 404;
	}
	if (cc->err) {
		snprintf(err, ERRSZ, "leg update refused: %s",
			 strerror(cc->err));
		return 422;
	}
	if (cc->has_key)
		bridge_log(BRIDGE_LOG_INFO, "conference %s: leg %s rekeyed%s",
			   c->id, cc->leg_id, cc->generation ?
			   " from the KMS" : "");
	reply_json(req, 200, cc->out);
	cc->out = NULL;
	return 0;
}

static void leg_patch_kms_done(struct kms_job *job, void *arg)
{
	struct pending *p = arg;
	struct bridge *b = p->b;
	char err[ERRSZ];
	struct conf *c;
	int st = 0;

	if (!p->req)
		goto out;
	if (job->err) {
		st = kms_job_error(job, err);
		goto out;
	}
	c = conf_find(b, p->conf_id);
	if (!c) {
		st = 404;
		snprintf(err, ERRSZ, "conference '%s' ended while its key was "
			 "fetched", p->conf_id);
		goto out;
	}
	p->cc.rx = job->rx;
	p->cc.tx = job->tx;
	p->cc.generation = job->generation ? job->generation : 1;
	p->cc.has_key = 1;
	p->cc.leg_id = p->leg_id;
	p->cc.par = NULL;
	st = leg_patch_finish(b, p->req, c, &p->cc, err);
 out:
	if (st && p->req)
		reply_error(b, p->req, st, "%s", err);
	keyleg_wipe(&job->rx, sizeof(job->rx));
	keyleg_wipe(&job->tx, sizeof(job->tx));
	pending_free(p);
}

static void h_leg_patch(struct bridge *b, struct evhttp_request *req,
			struct conf *c, const char *leg_id)
{
	struct leg_params *par;
	struct pending *p;
	char err[ERRSZ];
	const char *dir = NULL;
	struct call_conf cc;
	int st = 0, rekey = 0;
	json_t *j, *key;

	j = read_body(req, err);
	if (!j) {
		reply_error(b, req, 400, "%s", err);
		return;
	}
	par = calloc(1, sizeof(*par));
	if (!par) {
		json_decref(j);
		reply_error(b, req, 503, "out of memory");
		return;
	}
	memset(&cc, 0, sizeof(cc));
	cc.c = c;
	cc.leg_id = leg_id;
	cc.par = par;
	if ((st = apij_get_bool(j, "muted", &cc.muted, &cc.has_muted, err)) ||
	    (st = apij_get_num(j, "gain_db", &cc.gain, &cc.has_gain, err)) ||
	    (st = apij_get_str(j, "direction", &dir, 0, err)) ||
	    (st = apij_get_bool(j, "rekey", &rekey, NULL, err)))
		goto out;
	if (cc.has_gain && (cc.gain < -40 || cc.gain > 20)) {
		st = 422;
		snprintf(err, ERRSZ, "gain_db must be -40..20");
		goto out;
	}
	if (dir) {
		if (dir_parse(dir, &cc.dir)) {
			st = 422;
			snprintf(err, ERRSZ, "unsupported direction '%s'",
				 dir);
			goto out;
		}
		cc.has_dir = 1;
	}
	key = json_object_get(j, "key");
	if (key || rekey) {
		worker_call(c->w, call_leg_peek, &cc);
		if (cc.err) {
			st = 404;
			snprintf(err, ERRSZ, "no leg '%s' in conference '%s'",
				 leg_id, c->id);
			goto out;
		}
		if (!par->srtp) {
			st = 422;
			snprintf(err, ERRSZ, "leg '%s' is plain RTP: nothing "
				 "to rekey", leg_id);
			goto out;
		}
	}
	if (key) {
		json_t *in;

		if (!json_is_object(key) ||
		    !(in = json_object_get(key, "inline"))) {
			st = 400;
			snprintf(err, ERRSZ, "'key' must be {\"inline\": "
				 "{\"rx\": ..., \"tx\": ...}}");
			goto out;
		}
		st = apij_parse_inline(in, par->profile, par, err);
		if (st)
			goto out;
		cc.rx = par->rx;
		cc.tx = par->tx;
		cc.has_key = 1;
	}
	else if (rekey) {
		if (!par->kms) {
			st = 400;
			snprintf(err, ERRSZ, "leg '%s' has inline keys: "
				 "rekey it with \"key\": {\"inline\": ...}",
				 leg_id);
			goto out;
		}
		p = pending_new(b, req, c);
		if (!p) {
			st = 503;
			snprintf(err, ERRSZ, "out of memory");
			goto out;
		}
		snprintf(p->leg_id, sizeof(p->leg_id), "%s", leg_id);
		p->cc = cc;
		st = kms_queue(b, p, par, leg_patch_kms_done, err);
		if (st) {
			pending_free(p);
			goto out;
		}
		keyleg_wipe(par, sizeof(*par));
		free(par);
		json_decref(j);
		return;
	}
	st = leg_patch_finish(b, req, c, &cc, err);
 out:
	json_decref(cc.out);
	keyleg_wipe(&cc.rx, sizeof(cc.rx));
	keyleg_wipe(&cc.tx, sizeof(cc.tx));
	keyleg_wipe(par, sizeof(*par));
	free(par);
	json_decref(j);
	if (st)
		reply_error(b, req, st, "%s", err);
}

static void h_leg_get(struct bridge *b, struct evhttp_request *req,
		      struct conf *c, const char *leg_id)
{
	struct call_conf cc;

	memset(&cc, 0, sizeof(cc));
	cc.c = c;
	cc.leg_id = leg_id;
	/* a PATCH with no fields is a read */
	worker_call(c->w, call_leg_patch, &cc);
	if (cc.err) {
		reply_error(b, req, 404, "no leg '%s' in conference '%s'",
			    leg_id, c->id);
		return;
	}
	reply_json(req, 200, cc.out);
}

static void h_leg_delete(struct bridge *b, struct evhttp_request *req,
			 struct conf *c, const char *leg_id)
{
	struct call_conf cc;

	memset(&cc, 0, sizeof(cc));
	cc.c = c;
	cc.leg_id = leg_id;
	worker_call(c->w, call_leg_del, &cc);
	if (cc.err) {
		reply_error(b, req, 404, "no leg '%s' in conference '%s'",
			    leg_id, c->id);
		return;
	}
	bridge_log(BRIDGE_LOG_INFO, "conference %s: leg %s deleted", c->id,
		   leg_id);
	reply_json(req, 204, NULL);
}

static void h_health(struct bridge *b, struct evhttp_request *req)
{
	unsigned legs = 0, i;

	for (i = 0; i < b->nworkers; i++)
		legs += atomic_load(&b->workers[i].nlegs);
	reply_json(req, 200, json_pack("{s:s, s:i, s:i, s:i, s:b}",
				       "status", "ok",
				       "conferences", (int)b->nconfs,
				       "legs", (int)legs,
				       "workers", (int)b->nworkers,
				       "kms", b->kms != NULL));
}

static void h_metrics(struct bridge *b, struct evhttp_request *req)
{
	struct evbuffer *buf = evbuffer_new();

	if (!buf) {
		reply_error(b, req, 503, "out of memory");
		return;
	}
	metrics_write(b, buf);
	evhttp_add_header(evhttp_request_get_output_headers(req),
			  "Content-Type", "text/plain; version=0.0.4");
	evhttp_send_reply(req, 200, "OK", buf);
	evbuffer_free(buf);
}

/** Bearer token, compared in constant time */
static int auth_ok(struct bridge *b, struct evhttp_request *req)
{
	const char *h = evhttp_find_header(
		evhttp_request_get_input_headers(req), "Authorization");
	size_t n;

	if (!h || strncasecmp(h, "Bearer ", 7))
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	n = strlen(h);
	while (n && (h[n - 1] == ' ' || h[n - 1] == '\t'))
		n--;
	if (n != b->token_len)
		return 0;
	return CRYPTO_memcmp(h, b->token, n) == 0;
}

#define MAX_SEGS 6

static void route(struct evhttp_request *req, void *arg)
{
	struct bridge *b = arg;
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const char *uri = evhttp_request_get_uri(req);
	char path[512], *seg[MAX_SEGS], *p;
	const char *q;
	unsigned n = 0;
	struct conf *c;
	size_t len;

	b->http_requests++;
	if (!auth_ok(b, req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req),
				  "WWW-Authenticate", "Bearer");
		reply_error(b, req, 401, "missing or wrong bearer token");
		return;
	}
	if (b->stopping) {
		reply_error(b, req, 503, "shutting down");
		return;
	}
	q = strchr(uri, '?');
	len = q ? (size_t)(q - uri) : strlen(uri);
	if (len >= sizeof(path)) {
		reply_error(b, req, 404, "no such resource");
		return;
	}
	memcpy(path, uri, len);
	path[len] = '\0';
	/* split on '/', skipping empty segments */
	for (p = path; *p;) {
		if (*p == '/') {
			*p++ = '\0';
			continue;
		}
		if (n == MAX_SEGS) {
			reply_error(b, req, 404, "no such resource");
			return;
		}
		seg[n++] = p;
		while (*p && *p != '/')
			p++;
	}
	if (n == 1 && !strcmp(seg[0], "metrics") && m == EVHTTP_REQ_GET) {
		h_metrics(b, req);
		return;
	}
	if (n < 2 || strcmp(seg[0], "v1"))
		goto notfound;
	if (n == 2 && !strcmp(seg[1], "health")) {
		if (m != EVHTTP_REQ_GET)
			goto badmethod;
		h_health(b, req);
		return;
	}
	if (strcmp(seg[1], "conferences"))
		goto notfound;
	if (n == 2) {
		if (m == EVHTTP_REQ_GET)
			h_conf_list(b, req);
		else if (m == EVHTTP_REQ_POST)
			h_conf_create(b, req);
		else
			goto badmethod;
		return;
	}
	c = conf_find(b, seg[2]);
	if (!c) {
		reply_error(b, req, 404, "no conference '%s'", seg[2]);
		return;
	}
	if (n == 3) {
		if (m == EVHTTP_REQ_GET)
			h_conf_get(b, req, c);
		else if (m == EVHTTP_REQ_DELETE)
			h_conf_delete(b, req, c);
		else
			goto badmethod;
		return;
	}
	if (strcmp(seg[3], "legs"))
		goto notfound;
	if (n == 4) {
		if (m == EVHTTP_REQ_POST)
			h_leg_add(b, req, c);
		else if (m == EVHTTP_REQ_GET)
			h_conf_get(b, req, c);
		else
			goto badmethod;
		return;
	}
	if (n == 5) {
		if (m == EVHTTP_REQ_PATCH)
			h_leg_patch(b, req, c, seg[4]);
		else if (m == EVHTTP_REQ_DELETE)
			h_leg_delete(b, req, c, seg[4]);
		else if (m == EVHTTP_REQ_GET)
			h_leg_get(b, req, c, seg[4]);
		else
			goto badmethod;
		return;
	}
 notfound:
	reply_error(b, req, 404, "no such resource");
	return;
 badmethod:
	reply_json(req, 405, json_pack("{s:s}", "error",
				       "method not allowed here"));
}

/**
 * TLS for the control listener: a fresh server context from the
 * configured certificate and key (start and SIGHUP).  The old context
 * lives on in connections that still use it (OpenSSL counts references).
 */
int api_tls_load(struct bridge *b, char *err, size_t errsz)
{
	SSL_CTX *ctx;

	if (!b->cfg.control_cert[0])
		return 0;
	ctx = SSL_CTX_new(TLS_server_method());
	if (!ctx)
		return ENOMEM;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	if (SSL_CTX_use_certificate_chain_file(ctx, b->cfg.control_cert) != 1
	    || SSL_CTX_use_PrivateKey_file(ctx, b->cfg.control_key,
					   SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errsz, "control TLS certificate %s / key %s: %s",
			 b->cfg.control_cert, b->cfg.control_key,
			 ERR_reason_error_string(ERR_peek_last_error()));
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return EINVAL;
	}
	if (b->tls)
		SSL_CTX_free(b->tls);
	b->tls = ctx;
	return 0;
}

static struct bufferevent *tls_bev(struct event_base *base, void *arg)
{
	struct bridge *b = arg;
	SSL *ssl = SSL_new(b->tls);

	if (!ssl)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl,
					      BUFFEREVENT_SSL_ACCEPTING,
					      BEV_OPT_CLOSE_ON_FREE);
}

/** Bind the control listener on the configured address */
int api_init(struct bridge *b)
{
	const char *h = b->cfg.control_host;
	evutil_socket_t fd;
	struct baddr a;

	b->http = evhttp_new(b->base);
	if (!b->http)
		return ENOMEM;
	evhttp_set_allowed_methods(b->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST |
				   EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE |
				   EVHTTP_REQ_PUT | EVHTTP_REQ_HEAD);
	evhttp_set_max_body_size(b->http, 64 * 1024);
	evhttp_set_max_headers_size(b->http, 16 * 1024);
	evhttp_set_timeout(b->http, 30);
	evhttp_set_gencb(b->http, route, b);
	if (b->tls)
		evhttp_set_bevcb(b->http, tls_bev, b);
	b->sock = evhttp_bind_socket_with_handle(b->http, h,
						 b->cfg.control_port);
	if (!b->sock)
		return errno ? errno : EADDRINUSE;
	fd = evhttp_bound_socket_get_fd(b->sock);
	a.len = sizeof(a.ss);
	if (getsockname(fd, (struct sockaddr *)&a.ss, &a.len))
		return errno;
	if (baddr_format(&a, b->control_addr, sizeof(b->control_addr)))
		return EINVAL;
	return 0;
}
