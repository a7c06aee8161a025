/**
 * @file loadgen_peers.c  Set-up of the peers: Janus AudioBridge (HTTP API,
 * plain-RTP participants) and rtpengine (ng protocol, SDES offer/answer)
 */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <jansson.h>

#include "keyleg/keyleg.h"
#include "bench/loadgen_int.h"

#define RESP_CAP (1 << 20)
#define SUITE_A "AES_CM_128_HMAC_SHA1_80"

/* ---- Janus ------------------------------------------------------------- */

struct janus {
	struct lg_http h;
	char *resp;
	long long session;
	unsigned txn;
};

static int janus_post(struct lg *g, struct janus *j, const char *path,
		      json_t *body, json_t **out)
{
	char *txt, tid[32];
	int status = 0, err;

	snprintf(tid, sizeof(tid), "t%u", ++j->txn);
	json_object_set_new(body, "transaction", json_string(tid));
	txt = json_dumps(body, JSON_COMPACT);
	json_decref(body);
	if (!txt)
		return ENOMEM;
	err = lg_http_request(&j->h, "POST", path, NULL, txt, &status,
			      j->resp, RESP_CAP);
	free(txt);
	if (!err && status != 200)
		err = EPROTO;
	if (err) {
		snprintf(g->err, sizeof(g->err), "janus POST %s: %s", path,
			 err == EPROTO ? j->resp : strerror(err));
		return err;
	}
	*out = json_loads(j->resp, 0, NULL);
	if (!*out)
		return EBADMSG;
	if (strcmp(json_string_value(json_object_get(*out, "janus")) ?: "",
		   "error") == 0) {
		snprintf(g->err, sizeof(g->err), "janus: %.200s", j->resp);
		json_decref(*out);
		return EPROTO;
	}
	return 0;
}

static long long janus_data_id(json_t *r)
{
	json_int_t id = 0;

	json_unpack(r, "{s:{s:I}}", "data", "id", &id);
	return (long long)id;
}

/* Long-poll the session until the event of transaction tid arrives */
static int janus_wait(struct lg *g, struct janus *j, unsigned tid,
		      json_t **ev)
{
	char path[96], want[32];
	int tries, status;

	snprintf(path, sizeof(path), "/janus/%lld?maxev=1", j->session);
	snprintf(want, sizeof(want), "t%u", tid);
	for (tries = 0; tries < 50; tries++) {
		json_t *arr, *e;
		size_t i;

		if (lg_http_request(&j->h, "GET", path, NULL, NULL, &status,
				    j->resp, RESP_CAP) || status != 200)
			return EPROTO;
		arr = json_loads(j->resp, 0, NULL);
		if (!arr)
			continue;
		if (!json_is_array(arr)) {
			json_t *one = arr;

			arr = json_array();
			json_array_append_new(arr, one);
		}
		json_array_foreach(arr, i, e) {
			const char *t = json_string_value(
				json_object_get(e, "transaction"));

			if (t && !strcmp(t, want)) {
				*ev = json_incref(e);
				json_decref(arr);
				return 0;
			}
		}
		json_decref(arr);
	}
	snprintf(g->err, sizeof(g->err), "janus: no event for join %u", tid);
	return ETIMEDOUT;
}

/**
 * One Janus session; per conference a room (sampling 48 kHz for Opus,
 * 8 kHz for PCMU, allow_rtp_participants), per leg a handle joined as a
 * plain-RTP participant sending to the generator's port.  Janus answers
 * with the port it expects our RTP on.
 */
int lg_setup_janus(struct lg *g, const char *control)
{
	struct janus j;
	json_t *r, *ev;
	char path[96];
	long long admin;
	unsigned c, i;
	int err;
	/* rooms of an earlier run may still exist: ids unique per run */
	int room_base = 1000 + (int)(getpid() % 20000) * 100000;

	memset(&j, 0, sizeof(j));
	j.h.fd = -1;
	err = lg_parse_hostport(control, &j.h.addr);
	if (err)
		return err;
	snprintf(j.h.host, sizeof(j.h.host), "%s", control);
	j.resp = malloc(RESP_CAP);
	if (!j.resp)
		return ENOMEM;
	err = janus_post(g, &j, "/janus", json_pack("{s:s}", "janus",
						     "create"), &r);
	if (err)
		goto out;
	j.session = janus_data_id(r);
	json_decref(r);
	snprintf(path, sizeof(path), "/janus/%lld", j.session);
	err = janus_post(g, &j, path, json_pack("{s:s, s:s}", "janus",
		"attach", "plugin", "janus.plugin.audiobridge"), &r);
	if (err)
		goto out;
	admin = janus_data_id(r);
	json_decref(r);
	for (c = 0; c < g->n_confs; c++) {
		snprintf(path, sizeof(path), "/janus/%lld/%lld", j.session,
			 admin);
		err = janus_post(g, &j, path, json_pack(
			"{s:s, s:{s:s, s:i, s:i, s:b, s:b}}",
			"janus", "message", "body", "request", "create",
			"room", room_base + c, "sampling_rate",
			g->sc->codec_a == LG_OPUS ? 48000 : 8000,
			"allow_rtp_participants", 1, "permanent", 0), &r);
		if (err)
			goto out;
		json_decref(r);
	}
	for (i = 0; i < g->n_legs; i++) {
		struct lg_leg *l = &g->legs[i];
		long long h;
		unsigned tid;
		json_int_t port = 0;
		const char *ip = NULL;

		snprintf(path, sizeof(path), "/janus/%lld", j.session);
		err = janus_post(g, &j, path, json_pack("{s:s, s:s}", "janus",
			"attach", "plugin", "janus.plugin.audiobridge"), &r);
		if (err)
			goto out;
		h = janus_data_id(r);
		json_decref(r);
		snprintf(path, sizeof(path), "/janus/%lld/%lld", j.session, h);
		err = janus_post(g, &j, path, json_pack(
			"{s:s, s:{s:s, s:i, s:s, s:{s:s, s:i, s:i}}}",
			"janus", "message", "body", "request", "join",
			"room", room_base + l->conf,
			"codec", l->codec == LG_OPUS ? "opus" : "pcmu",
			"rtp", "ip", "127.0.0.1", "port", g->local_port,
			"payload_type", l->pt), &r);
		if (err)
			goto out;
		tid = j.txn;
		json_decref(r);
		err = janus_wait(g, &j, tid, &ev);
		if (err)
			goto out;
		if (json_unpack(ev, "{s:{s:{s:{s:s, s:I}}}}", "plugindata",
				"data", "rtp", "ip", &ip, "port", &port) ||
		    port <= 0 || port > 65535) {
			char *s = json_dumps(ev, JSON_COMPACT);

			snprintf(g->err, sizeof(g->err), "janus join: %.200s",
				 s ? s : "?");
			free(s);
			json_decref(ev);
			err = EPROTO;
			goto out;
		}
		memset(&l->remote, 0, sizeof(l->remote));
		l->remote.sin_family = AF_INET;
		l->remote.sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, ip, &l->remote.sin_addr);
		snprintf(l->id, sizeof(l->id), "%lld", h);
		g->port2leg[port] = (int32_t)i;
		json_decref(ev);
	}
 out:
	lg_http_close(&j.h);
	free(j.resp);
	return err;
}

/* ---- rtpengine --------------------------------------------------------- */

struct ng {
	int fd;
	struct sockaddr_in addr;
	char buf[65536];
	char out[65536];
	char req[8192];
	struct bench_bnode nodes[256];
	unsigned cookie;
};

/* One ng request; the response's root dict is node 0 of ng->nodes */
static int ng_call(struct lg *g, struct ng *n, const char *req, size_t len)
{
	int tries;

	for (tries = 0; tries < 3; tries++) {
		char ck[16];
		int k;

		/* rtpengine caches answers by cookie: never reuse one */
		lg_random(&n->cookie, sizeof(n->cookie));
		k = snprintf(ck, sizeof(ck), "%08x ", n->cookie);
		struct pollfd pf = { n->fd, POLLIN, 0 };

		if ((size_t)k + len > sizeof(n->out))
			return EMSGSIZE;
		memcpy(n->out, ck, (size_t)k);
		memcpy(n->out + k, req, len);
		if (sendto(n->fd, n->out, (size_t)k + len, 0,
			   (struct sockaddr *)&n->addr, sizeof(n->addr)) < 0)
			return errno;
		while (poll(&pf, 1, 2000) > 0) {
			ssize_t r = recv(n->fd, n->buf, sizeof(n->buf) - 1, 0);
			int cnt, res;

			if (r <= k || memcmp(n->buf, ck, (size_t)k))
				continue; /* a late answer to a retry */
			if (bench_bdec(n->buf + k, (size_t)r - (size_t)k,
				       n->nodes, 256, &cnt, NULL))
				return EBADMSG;
			res = bench_bdict_get(n->nodes, 0, "result");
			if (res < 0 || !bench_bnode_streq(&n->nodes[res],
							  "ok")) {
				int why = bench_bdict_get(n->nodes, 0,
							  "error-reason");

				snprintf(g->err, sizeof(g->err),
					 "rtpengine: %.*s",
					 why > 0 ? (int)n->nodes[why].slen : 6,
					 why > 0 ? n->nodes[why].s : "failed");
				return EPROTO;
			}
			return 0;
		}
	}
	snprintf(g->err, sizeof(g->err), "rtpengine: no answer on ng");
	return ETIMEDOUT;
}

static int sdp_make(char *buf, size_t cap, unsigned port, enum lg_codec c,
		    int srtp, int tag, const char *suite, const char *key)
{
	int n = snprintf(buf, cap,
		"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\n"
		"c=IN IP4 127.0.0.1\r\nt=0 0\r\n"
		"m=audio %u RTP/%s %d\r\na=rtpmap:%s\r\n"
		"a=ptime:20\r\na=sendrecv\r\na=rtcp-mux\r\n",
		port, srtp ? "SAVP" : "AVP", c == LG_OPUS ? 111 : 0,
		c == LG_OPUS ? "111 opus/48000/2" : "0 PCMU/8000");
	if (srtp && n > 0 && (size_t)n < cap)
		n += snprintf(buf + n, cap - (size_t)n,
			      "a=crypto:%d %s inline:%s\r\n", tag, suite,
			      key);
	return n > 0 && (size_t)n < cap ? 0 : EMSGSIZE;
}

/* The media port and the key of crypto suite `suite` in an SDP */
static int sdp_parse(const char *sdp, size_t len, const char *suite,
		     unsigned *port, int *tag, char *key, size_t keycap)
{
	const char *p = sdp, *end = sdp + len;
	char pat[64];

	snprintf(pat, sizeof(pat), " %s inline:", suite);

	*port = 0;
	*tag = -1;
	key[0] = '\0';
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t ll = eol ? (size_t)(eol - p) : (size_t)(end - p);
		char line[512];

		if (ll >= sizeof(line))
			ll = sizeof(line) - 1;
		memcpy(line, p, ll);
		line[ll] = '\0';
		if (ll && line[ll - 1] == '\r')
			line[ll - 1] = '\0';
		if (!strncmp(line, "m=audio ", 8))
			*port = (unsigned)strtoul(line + 8, NULL, 10);
		else if (!strncmp(line, "a=crypto:", 9) && *tag < 0 &&
			 strstr(line, pat)) {
			const char *k = strstr(line, "inline:") + 7;
			size_t kl = strcspn(k, "|; ");

			*tag = (int)strtol(line + 9, NULL, 10);
			if (kl >= keycap)
				return EMSGSIZE;
			memcpy(key, k, kl);
			key[kl] = '\0';
		}
		p = eol ? eol + 1 : end;
	}
	return *port ? 0 : EBADMSG;
}

static int leg_setkeys(struct lg_leg *l, enum keyleg_profile prof,
		       const char *rx_b64, const struct keyleg_keysalt *tx)
{
	struct keyleg_keysalt rx;
	int err;

	err = keyleg_inline_decode(rx_b64, prof, &rx);
	if (err)
		return err;
	err = keyleg_alloc(&l->kl, prof, &rx, tx, NULL);
	keyleg_wipe(&rx, sizeof(rx));
	return err;
}

static void call_id(char *buf, size_t sz, unsigned c)
{
	snprintf(buf, sz, "lg%d-%u", (int)getpid(), c);
}

/**
 * Per call: offer from leg A (its codec, SDES with its own key), with
 * "transcode" to leg B's codec when they differ; answer from leg B with
 * its own key.  rtpengine's SDPs give the port and the key it sends with
 * on each side.  Userspace forwarding (--table=-1) is the script's job.
 */
int lg_setup_rtpengine(struct lg *g, const char *control)
{
	struct ng *n = calloc(1, sizeof(*n));
	char sdp[2048], key[80], cid[64], rkey[80];
	struct bench_benc b;
	unsigned c;
	int err = 0;
	/* same codec on both sides: leg B takes the 32-bit-tag suite, or
	 * rtpengine would pass A's SDES key through (no re-encryption) */
	int same = g->sc->codec_a == g->sc->codec_b;
	const char *suite_b = same ? "AES_CM_128_HMAC_SHA1_32" : SUITE_A;
	enum keyleg_profile prof_b = same ? KEYLEG_AES_CM_128_HMAC_SHA1_32 :
		KEYLEG_AES_CM_128_HMAC_SHA1_80;

	if (!n)
		return ENOMEM;
	n->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	err = lg_parse_hostport(control, &n->addr);
	if (err || n->fd < 0)
		goto out;
	for (c = 0; c < g->n_confs; c++) {
		struct lg_leg *a = &g->legs[2 * c], *bl = &g->legs[2 * c + 1];
		struct keyleg_keysalt ka, kb;
		unsigned port;
		int tag, s;

		call_id(cid, sizeof(cid), c);
		ka.len = kb.len = 30;
		lg_random(ka.b, ka.len);
		lg_random(kb.b, kb.len);
		err = keyleg_inline_encode(&ka, key, sizeof(key));
		if (!err)
			err = sdp_make(sdp, sizeof(sdp), g->local_port,
				       a->codec, g->srtp, 1, SUITE_A, key);
		if (err)
			goto out;
		bench_benc_init(&b, n->req, sizeof(n->req));
		bench_benc_dict(&b);
		bench_benc_kv_str(&b, "command", "offer");
		bench_benc_kv_str(&b, "call-id", cid);
		bench_benc_kv_str(&b, "from-tag", "a");
		bench_benc_kv_str(&b, "sdp", sdp);
		bench_benc_kv_str(&b, "DTLS", "off");
		bench_benc_str(&b, "rtcp-mux");
		bench_benc_list(&b);
		bench_benc_str(&b, "offer");
		bench_benc_end(&b);
		if (a->codec != bl->codec) {
			bench_benc_str(&b, "codec");
			bench_benc_dict(&b);
			bench_benc_str(&b, "transcode");
			bench_benc_list(&b);
			bench_benc_str(&b, bl->codec == LG_PCMU ? "PCMU" :
				       "opus");
			bench_benc_end(&b);
			bench_benc_str(&b, "mask");
			bench_benc_list(&b);
			bench_benc_str(&b, a->codec == LG_OPUS ? "opus" :
				       "PCMU");
			bench_benc_end(&b);
			bench_benc_end(&b);
		}
		bench_benc_end(&b);
		if (b.err) {
			err = b.err;
			goto out;
		}
		err = ng_call(g, n, n->req, b.len);
		if (err)
			goto out;
		s = bench_bdict_get(n->nodes, 0, "sdp");
		if (s < 0 || sdp_parse(n->nodes[s].s, n->nodes[s].slen,
				       suite_b, &port, &tag, rkey,
				       sizeof(rkey)) ||
		    (g->srtp && tag < 0)) {
			snprintf(g->err, sizeof(g->err),
				 "rtpengine offer: no port or key");
			err = EBADMSG;
			goto out;
		}
		/* leg B: rtpengine sends it with rkey, receives with kb */
		memset(&bl->remote, 0, sizeof(bl->remote));
		bl->remote.sin_family = AF_INET;
		bl->remote.sin_port = htons((uint16_t)port);
		bl->remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		g->port2leg[port] = (int32_t)(2 * c + 1);
		if (g->srtp) {
			err = leg_setkeys(bl, prof_b, rkey, &kb);
			if (err)
				goto out;
		}
		err = keyleg_inline_encode(&kb, key, sizeof(key));
		if (!err)
			err = sdp_make(sdp, sizeof(sdp), g->local_port,
				       bl->codec, g->srtp, tag < 0 ? 1 : tag,
				       suite_b, key);
		if (err)
			goto out;
		bench_benc_init(&b, n->req, sizeof(n->req));
		bench_benc_dict(&b);
		bench_benc_kv_str(&b, "command", "answer");
		bench_benc_kv_str(&b, "call-id", cid);
		bench_benc_kv_str(&b, "from-tag", "a");
		bench_benc_kv_str(&b, "to-tag", "b");
		bench_benc_kv_str(&b, "sdp", sdp);
		bench_benc_end(&b);
		if (b.err) {
			err = b.err;
			goto out;
		}
		err = ng_call(g, n, n->req, b.len);
		if (err)
			goto out;
		s = bench_bdict_get(n->nodes, 0, "sdp");
		if (s < 0 || sdp_parse(n->nodes[s].s, n->nodes[s].slen,
				       SUITE_A, &port, &tag, rkey,
				       sizeof(rkey)) ||
		    (g->srtp && tag < 0)) {
			snprintf(g->err, sizeof(g->err),
				 "rtpengine answer: no port or key");
			err = EBADMSG;
			goto out;
		}
		memset(&a->remote, 0, sizeof(a->remote));
		a->remote.sin_family = AF_INET;
		a->remote.sin_port = htons((uint16_t)port);
		a->remote.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		g->port2leg[port] = (int32_t)(2 * c);
		if (g->srtp) {
			err = leg_setkeys(a, KEYLEG_AES_CM_128_HMAC_SHA1_80,
					  rkey, &ka);
			if (err)
				goto out;
		}
		keyleg_wipe(&ka, sizeof(ka));
		keyleg_wipe(&kb, sizeof(kb));
		memset(key, 0, sizeof(key));
		memset(rkey, 0, sizeof(rkey));
	}
 out:
	if (n->fd >= 0)
		close(n->fd);
	free(n);
	return err;
}

/** Delete the generator's calls */
int lg_teardown_rtpengine(struct lg *g, const char *control)
{
	struct ng *n = calloc(1, sizeof(*n));
	struct bench_benc b;
	char cid[64];
	unsigned c;

	if (!n)
		return ENOMEM;
	n->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (n->fd < 0 || lg_parse_hostport(control, &n->addr)) {
		free(n);
		return EINVAL;
	}
	for (c = 0; c < g->n_confs; c++) {
		call_id(cid, sizeof(cid), c);
		bench_benc_init(&b, n->req, sizeof(n->req));
		bench_benc_dict(&b);
		bench_benc_kv_str(&b, "command", "delete");
		bench_benc_kv_str(&b, "call-id", cid);
		bench_benc_kv_str(&b, "from-tag", "a");
		bench_benc_end(&b);
		if (!b.err)
			ng_call(g, n, n->req, b.len);
	}
	close(n->fd);
	free(n);
	return 0;
}
