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

#define ERRSZ 256

/* ---- names ---- */

static const char *const dir_names[] = {
	"sendrecv", "sendonly", "recvonly", "inactive"
};

const char *dir_name(enum leg_dir d)
{
	return d <= DIR_INACTIVE ? dir_names[d] : "?";
}

/** Codec names as the API spells them (lower case) */
static const char *codec_api_name(enum mix_codec c)
{
	static const char *const names[] = {"opus", "pcmu", "pcma", "g722"};

	return (unsigned)c < 4 ? names[c] : "?";
}

const char *mode_name(enum conf_mode m)
{
	return m == MODE_MIX ? "mix" : "transcode";
}

static int dir_parse(const char *s, enum leg_dir *dp)
{
	unsigned i;

	for (i = 0; i <= DIR_INACTIVE; i++) {
		if (!strcmp(s, dir_names[i])) {
			*dp = (enum leg_dir)i;
			return 0;
		}
	}
	return EINVAL;
}

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

/*
 * Field getters.  They return 0 (absent fields leave *v alone) or an
 * HTTP status: 400 for a wrong type, with the message in err.
 */
static int get_str(json_t *o, const char *key, const char **v, int req,
		   char *err)
{
	json_t *x = json_object_get(o, key);

	if (!x || json_is_null(x)) {
		if (req) {
			snprintf(err, ERRSZ, "'%s' is required", key);
			return 400;
		}
		return 0;
	}
	if (!json_is_string(x)) {
		snprintf(err, ERRSZ, "'%s' must be a string", key);
		return 400;
	}
	*v = json_string_value(x);
	return 0;
}

static int get_int(json_t *o, const char *key, long long *v, char *err)
{
	json_t *x = json_object_get(o, key);

	if (!x || json_is_null(x))
		return 0;
	if (!json_is_integer(x)) {
		snprintf(err, ERRSZ, "'%s' must be an integer", key);
		return 400;
	}
	*v = json_integer_value(x);
	return 0;
}

static int get_num(json_t *o, const char *key, double *v, int *present,
		   char *err)
{
	json_t *x = json_object_get(o, key);

	if (!x || json_is_null(x))
		return 0;
	if (!json_is_number(x)) {
		snprintf(err, ERRSZ, "'%s' must be a number", key);
		return 400;
	}
	*v = json_number_value(x);
	*present = 1;
	return 0;
}

static int get_bool(json_t *o, const char *key, int *v, int *present,
		    char *err)
{
	json_t *x = json_object_get(o, key);

	if (!x || json_is_null(x))
		return 0;
	if (!json_is_boolean(x)) {
		snprintf(err, ERRSZ, "'%s' must be true or false", key);
		return 400;
	}
	*v = json_is_true(x);
	if (present)
		*present = 1;
	return 0;
}

/** Identifiers travel in URL paths: keep them to a safe alphabet */
static int id_valid(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n >= 128)
		return 0;
	for (i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || strchr("._~:@+-", ch)))
			return 0;
	}
	return 1;
}

static int b64_val(char ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+')
		return 62;
	if (ch == '/')
		return 63;
	return -1;
}

/**
 * Standard base64 (RFC 4648 section 4) into out, as docs/keys.md spells
 * inline keys: '=' padding optional but complete if present, unused low
 * bits zero, nothing else.  EINVAL if malformed, ENOSPC if too long.
 */
static int b64_decode(const char *s, uint8_t *out, size_t cap, size_t *lenp)
{
	size_t n = strlen(s), pad = 0, i, o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	while (n > 0 && s[n - 1] == '=' && pad < 2) {
		n--;
		pad++;
	}
	if (n == 0 || n % 4 == 1 || (pad && (n + pad) % 4))
		return EINVAL;
	for (i = 0; i < n; i++) {
		int v = b64_val(s[i]);

		if (v < 0)
			return EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o == cap)
				return ENOSPC;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	if (acc & ((1u << bits) - 1))
		return EINVAL; /* unused bits must be zero */
	*lenp = o;
	return 0;
}

/** One inline key||salt for a profile: 400 bad base64, 422 bad length */
static int inline_key(const char *what, const char *b64,
		      enum keyleg_profile profile, struct keyleg_keysalt *ks,
		      char *err)
{
	size_t want = keyleg_profile_key_len(profile) +
		keyleg_profile_salt_len(profile);
	uint8_t tmp[128];
	size_t n = 0;
	int e;

	e = b64_decode(b64, tmp, sizeof(tmp), &n);
	if (e == EINVAL) {
		snprintf(err, ERRSZ, "key %s: bad base64", what);
		return 400;
	}
	if (e || n != want) {
		keyleg_wipe(tmp, sizeof(tmp));
		snprintf(err, ERRSZ, "key %s: %zu bytes, but %s needs %zu "
			 "(master key || salt)", what, e ? sizeof(tmp) : n,
			 keyleg_profile_name(profile), want);
		return 422;
	}
	memcpy(ks->b, tmp, n);
	ks->len = n;
	keyleg_wipe(tmp, sizeof(tmp));
	return 0;
}

/** "inline": {"rx": ..., "tx": ...} */
static int parse_inline(json_t *in, enum keyleg_profile profile,
			struct leg_params *par, char *err)
{
	const char *rx = NULL, *tx = NULL;
	int st;

	if (!json_is_object(in)) {
		snprintf(err, ERRSZ, "'inline' must be an object");
		return 400;
	}
	if ((st = get_str(in, "rx", &rx, 1, err)) ||
	    (st = get_str(in, "tx", &tx, 1, err)))
		return st;
	if ((st = inline_key("rx", rx, profile, &par->rx, err)) ||
	    (st = inline_key("tx", tx, profile, &par->tx, err)))
		return st;
	return 0;
}

/** "key": {"inline": ...} or {"kms": {"conference", "participant"}} */
static int parse_key(json_t *key, struct leg_params *par, char *err)
{
	json_t *in, *kms;
	const char *cref = NULL, *who = NULL;
	int st;

	if (!json_is_object(key)) {
		snprintf(err, ERRSZ, "'key' must be an object");
		return 400;
	}
	in = json_object_get(key, "inline");
	kms = json_object_get(key, "kms");
	if ((in && kms) || (!in && !kms)) {
		snprintf(err, ERRSZ, "'key' needs exactly one of 'inline' "
			 "and 'kms'");
		return 400;
	}
	if (in)
		return parse_inline(in, par->profile, par, err);
	if (!json_is_object(kms)) {
		snprintf(err, ERRSZ, "'kms' must be an object");
		return 400;
	}
	if ((st = get_str(kms, "conference", &cref, 1, err)) ||
	    (st = get_str(kms, "participant", &who, 1, err)))
		return st;
	if (strlen(cref) >= sizeof(par->kms_conf) || !*cref ||
	    strlen(who) >= sizeof(par->kms_participant) || !*who) {
		snprintf(err, ERRSZ, "'kms' conference/participant empty or "
			 "too long");
		return 400;
	}
	par->kms = 1;
	snprintf(par->kms_conf, sizeof(par->kms_conf), "%s", cref);
	snprintf(par->kms_participant, sizeof(par->kms_participant), "%s",
		 who);
	return 0;
}

static int parse_srtp(json_t *s, struct leg_params *par, char *err)
{
	const char *prof = NULL;
	json_t *ext, *key;
	int st;

	if (!s || json_is_null(s))
		return 0;
	if (!json_is_object(s)) {
		snprintf(err, ERRSZ, "'srtp' must be null or an object");
		return 400;
	}
	par->srtp = 1;
	if ((st = get_str(s, "profile", &prof, 1, err)))
		return st;
	if (keyleg_profile_parse(prof, &par->profile)) {
		snprintf(err, ERRSZ, "unsupported SRTP profile '%s'", prof);
		return 422;
	}
	ext = json_object_get(s, "encrypted_ext");
	if (ext && !json_is_null(ext)) {
		size_t i;
		json_t *x;

		if (!json_is_array(ext)) {
			snprintf(err, ERRSZ, "'encrypted_ext' must be an "
				 "array of integers");
			return 400;
		}
		json_array_foreach(ext, i, x) {
			long long id;

			if (!json_is_integer(x)) {
				snprintf(err, ERRSZ, "'encrypted_ext' must "
					 "be an array of integers");
				return 400;
			}
			id = json_integer_value(x);
			if (id < 1 || id > 14 ||
			    par->kopts.n_enc_ext >= KEYLEG_MAX_ENC_EXT) {
				snprintf(err, ERRSZ, "'encrypted_ext' ids "
					 "must be 1..14");
				return 422;
			}
			par->kopts.enc_ext[par->kopts.n_enc_ext++] =
				(uint8_t)id;
		}
	}
	key = json_object_get(s, "key");
	if (!key) {
		snprintf(err, ERRSZ, "'srtp' needs a 'key'");
		return 400;
	}
	return parse_key(key, par, err);
}

static int parse_opus(json_t *o, struct opus_opts *op, char *err)
{
	long long cx = op->complexity, br = op->bitrate;
	int fec = op->fec, dtx = op->dtx, st;

	if (!o || json_is_null(o))
		return 0;
	if (!json_is_object(o)) {
		snprintf(err, ERRSZ, "'opus' must be an object");
		return 400;
	}
	if ((st = get_int(o, "complexity", &cx, err)) ||
	    (st = get_int(o, "bitrate", &br, err)) ||
	    (st = get_bool(o, "fec", &fec, NULL, err)) ||
	    (st = get_bool(o, "dtx", &dtx, NULL, err)))
		return st;
	if (cx < 0 || cx > 10) {
		snprintf(err, ERRSZ, "opus complexity must be 0..10");
		return 422;
	}
	if (br != 0 && (br < 6000 || br > 510000)) {
		snprintf(err, ERRSZ, "opus bitrate must be 0 (auto) or "
			 "6000..510000");
		return 422;
	}
	op->complexity = (int)cx;
	op->bitrate = (int)br;
	op->fec = fec;
	op->dtx = dtx;
	return 0;
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
	cc->out = json_pack("{s:s, s:s, s:i, s:o, s:o}", "id", c->id,
			    "mode", mode_name(c->mode), "rate", c->rate,
			    "talkers", talkers, "legs", legs);
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
	long long rate = 48000, ptime = 20, talkers = 3;
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
	if ((st = get_str(j, "id", &id, 1, err)) ||
	    (st = get_str(j, "mode", &mode, 0, err)) ||
	    (st = get_int(j, "rate", &rate, err)) ||
	    (st = get_int(j, "ptime", &ptime, err)) ||
	    (st = get_int(j, "max_talkers", &talkers, err)) ||
	    (st = parse_opus(json_object_get(j, "opus"), &c->opus, err)))
		goto fail;
	if (!id_valid(id)) {
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
	if (rate != 8000 && rate != 16000 && rate != 24000 && rate != 48000) {
		st = 422;
		snprintf(err, ERRSZ, "unsupported rate %lld (8000, 16000, "
			 "24000, 48000)", rate);
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
	bridge_log(BRIDGE_LOG_INFO, "conference %s created (%s, %u Hz, "
		   "%u ms) on worker %u", c->id, mode_name(c->mode), c->rate,
		   c->ptime, c->w->idx);
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

static int parse_leg(json_t *j, struct conf *c, struct leg_params *par,
		     char *err)
{
	const char *who = NULL, *codec = NULL, *remote = NULL, *dir = NULL;
	long long rate = -1, ptime = -1, pt = -1, lvl = 0, te = -1;
	json_t *jo;
	int st;

	memset(par, 0, sizeof(*par));
	par->te_pt = -1;
	if ((st = get_str(j, "participant", &who, 1, err)) ||
	    (st = get_str(j, "codec", &codec, 1, err)) ||
	    (st = get_str(j, "remote", &remote, 1, err)) ||
	    (st = get_str(j, "direction", &dir, 0, err)) ||
	    (st = get_int(j, "rate", &rate, err)) ||
	    (st = get_int(j, "ptime", &ptime, err)) ||
	    (st = get_int(j, "payload_type", &pt, err)) ||
	    (st = get_int(j, "audio_level_ext", &lvl, err)) ||
	    (st = get_int(j, "telephone_event_pt", &te, err)))
		return st;
	if (!*who || strlen(who) >= sizeof(par->participant)) {
		snprintf(err, ERRSZ, "'participant' empty or too long");
		return 400;
	}
	snprintf(par->participant, sizeof(par->participant), "%s", who);
	if (baddr_parse(&par->remote, remote) ||
	    baddr_port(&par->remote) == 0) {
		snprintf(err, ERRSZ, "'remote' must be IPv4:PORT or "
			 "[IPv6]:PORT, got '%s'", remote);
		return 400;
	}
	if (mix_codec_parse(codec, &par->codec)) {
		snprintf(err, ERRSZ, "unsupported codec '%s' (opus, pcmu, "
			 "pcma, g722)", codec);
		return 422;
	}
	if (rate < 0)
		rate = par->codec == MIX_CODEC_OPUS ? 48000 :
			par->codec == MIX_CODEC_G722 ? 16000 : 8000;
	if ((par->codec == MIX_CODEC_OPUS && rate != 8000 && rate != 12000 &&
	     rate != 16000 && rate != 24000 && rate != 48000) ||
	    ((par->codec == MIX_CODEC_PCMU || par->codec == MIX_CODEC_PCMA) &&
	     rate != 8000) ||
	    (par->codec == MIX_CODEC_G722 && rate != 16000)) {
		snprintf(err, ERRSZ, "unsupported rate %lld for %s", rate,
			 codec);
		return 422;
	}
	par->rate = (unsigned)rate;
	if (ptime < 0)
		ptime = c->ptime;
	if (ptime < 10 || ptime > MIX_PTIME_MAX || ptime % c->ptime) {
		snprintf(err, ERRSZ, "unsupported ptime %lld (a multiple of "
			 "the conference's %u ms, at most %d)", ptime,
			 c->ptime, MIX_PTIME_MAX);
		return 422;
	}
	par->ptime = (unsigned)ptime;
	if (pt < 0)
		pt = mix_codec_static_pt(par->codec) >= 0 ?
			mix_codec_static_pt(par->codec) : 111;
	if (pt > 127 || (pt >= 64 && pt <= 95)) {
		snprintf(err, ERRSZ, "payload_type must be 0..127 and not "
			 "64..95 (RTCP with rtcp-mux)");
		return 422;
	}
	par->pt = (unsigned)pt;
	if (lvl < 0 || lvl > 14) {
		snprintf(err, ERRSZ, "audio_level_ext must be 1..14");
		return 422;
	}
	par->level_ext = (int)lvl;
	if (te != -1 && (te < 0 || te > 127 || te == pt ||
			 (te >= 64 && te <= 95))) {
		snprintf(err, ERRSZ, "telephone_event_pt must be 0..127, "
			 "not 64..95 and not the audio payload type");
		return 422;
	}
	par->te_pt = (int)te;
	par->dir = DIR_SENDRECV;
	if (dir && dir_parse(dir, &par->dir)) {
		snprintf(err, ERRSZ, "unsupported direction '%s'", dir);
		return 422;
	}
	jo = json_object_get(j, "opus");
	if (jo && !json_is_null(jo)) {
		/* overrides start from the conference's settings */
		par->opus = c->opus;
		st = parse_opus(jo, &par->opus, err);
		if (st)
			return st;
		par->opus_override = 1;
	}
	return parse_srtp(json_object_get(j, "srtp"), par, err);
}

/** Fetch a leg key over NDS and derive both directions by role */
int bridge_kms_fetch(struct bridge *b, const char *conf_ref,
		     const char *participant, enum keyleg_profile profile,
		     struct keyleg_keysalt *rx, struct keyleg_keysalt *tx,
		     uint64_t *generation, char *err, size_t errsz)
{
	uint8_t key[KMS_NDS_KEY_MAX];
	size_t klen = sizeof(key);
	uint32_t gen = 0;
	int e;

	if (!b->kms) {
		snprintf(err, errsz, "no KMS configured (start bridged with "
			 "--kms and the --nds-* files)");
		return ENOTCONN;
	}
	b->kms_fetches++;
	e = kmslink_fetch(b, conf_ref, participant, key, &klen, &gen, err,
			  errsz);
	if (e) {
		b->kms_failures++;
		if (!err[0])
			snprintf(err, errsz, "KMS: %s", strerror(e));
		keyleg_wipe(key, sizeof(key));
		return e;
	}
	e = keyleg_derive(key, klen, profile, KEYLEG_FLOW_CONFERENCE,
			  KEYLEG_SIDE_BRIDGE, rx, tx);
	keyleg_wipe(key, sizeof(key));
	if (e) {
		snprintf(err, errsz, "deriving SRTP keys from the KMS leg "
			 "key failed: %s", strerror(e));
		return EPROTO;
	}
	*generation = gen;
	return 0;
}

static int worker_overloaded(struct bridge *b, struct worker *w)
{
	return atomic_load(&w->nlegs) >= b->cfg.max_legs_per_worker ||
		atomic_load(&w->load_permille) >= b->cfg.max_load_permille;
}

static void h_leg_add(struct bridge *b, struct evhttp_request *req,
		      struct conf *c)
{
	struct leg_params *par;
	char err[ERRSZ], kerr[ERRSZ - 40] = "";
	struct call_conf cc;
	json_t *j;
	int st = 0, e;

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
	cc.fd = -1;
	st = parse_leg(j, c, par, err);
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
		uint64_t gen = 0;

		e = bridge_kms_fetch(b, par->kms_conf, par->kms_participant,
				     par->profile, &par->rx, &par->tx, &gen,
				     kerr, sizeof(kerr));
		if (e) {
			st = kms_status(e);
			snprintf(err, ERRSZ, "%s KMS: %s", st == 503 ?
				 "cannot reach the" : "refused by the",
				 kerr);
			goto out;
		}
		par->key_generation = gen;
	}
	e = ports_open(&b->ports, &par->remote, &cc.fd, &cc.local, &cc.port);
	if (e) {
		st = e == EHOSTUNREACH ? 422 : 503;
		snprintf(err, ERRSZ, e == EHOSTUNREACH ?
			 "no route to the remote address" : e ==
			 EADDRNOTAVAIL ? "RTP port range %u-%u exhausted" :
			 "cannot open a leg socket", b->ports.lo,
			 b->ports.hi);
		goto out;
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
		goto out;
	}
	bridge_log(BRIDGE_LOG_INFO, "conference %s: leg %s for %s on port "
		   "%u (%s, %s)", c->id,
		   json_string_value(json_object_get(cc.out, "leg")),
		   par->participant, cc.port, codec_api_name(par->codec),
		   par->srtp ? keyleg_profile_name(par->profile) : "plain");
	reply_json(req, 201, json_pack(
		"{s:O, s:O, s:O}", "leg", json_object_get(cc.out, "leg"),
		"local", json_object_get(cc.out, "local"),
		"ssrc", json_object_get(cc.out, "ssrc")));
	json_decref(cc.out);
 out:
	keyleg_wipe(par, sizeof(*par));
	free(par);
	json_decref(j);
	if (st)
		reply_error(b, req, st, "%s", err);
}

static void h_leg_patch(struct bridge *b, struct evhttp_request *req,
			struct conf *c, const char *leg_id)
{
	struct leg_params *par;
	char err[ERRSZ], kerr[ERRSZ - 40] = "";
	const char *dir = NULL;
	struct call_conf cc;
	int st = 0, rekey = 0, e;
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
	if ((st = get_bool(j, "muted", &cc.muted, &cc.has_muted, err)) ||
	    (st = get_num(j, "gain_db", &cc.gain, &cc.has_gain, err)) ||
	    (st = get_str(j, "direction", &dir, 0, err)) ||
	    (st = get_bool(j, "rekey", &rekey, NULL, err)))
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
		st = parse_inline(in, par->profile, par, err);
		if (st)
			goto out;
		cc.rx = par->rx;
		cc.tx = par->tx;
		cc.has_key = 1;
	}
	else if (rekey) {
		uint64_t gen = 0;

		if (!par->kms) {
			st = 400;
			snprintf(err, ERRSZ, "leg '%s' has inline keys: "
				 "rekey it with \"key\": {\"inline\": ...}",
				 leg_id);
			goto out;
		}
		e = bridge_kms_fetch(b, par->kms_conf, par->kms_participant,
				     par->profile, &cc.rx, &cc.tx, &gen, kerr,
				     sizeof(kerr));
		if (e) {
			st = kms_status(e);
			snprintf(err, ERRSZ, "%s KMS: %s", st == 503 ?
				 "cannot reach the" : "refused by the",
				 kerr);
			goto out;
		}
		cc.generation = (uint32_t)gen;
		cc.has_key = 1;
	}
	worker_call(c->w, call_leg_patch, &cc);
	if (cc.err == ENOENT) {
		st = 404;
		snprintf(err, ERRSZ, "no leg '%s' in conference '%s'", leg_id,
			 c->id);
	}
	else if (cc.err) {
		st = 422;
		snprintf(err, ERRSZ, "leg update refused: %s",
			 strerror(cc.err));
	}
	else {
		if (cc.has_key)
			bridge_log(BRIDGE_LOG_INFO, "conference %s: leg %s "
				   "rekeyed", c->id, leg_id);
		reply_json(req, 200, cc.out);
		cc.out = NULL;
	}
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
