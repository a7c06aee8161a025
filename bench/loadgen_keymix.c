/** @file loadgen_keymix.c  Conferences and legs via the control API */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <jansson.h>

#include "bench/loadgen_int.h"

#define RESP_CAP (1 << 20)

static void conf_id(char *buf, size_t sz, unsigned c)
{
	snprintf(buf, sz, "lg%d-%u", (int)getpid(), c);
}

static int post(struct lg *g, struct lg_http *h, const char *path,
		const char *token, json_t *body, int want, json_t **out)
{
	char *txt = json_dumps(body, JSON_COMPACT), *resp;
	int status = 0, err;

	json_decref(body);
	if (!txt)
		return ENOMEM;
	resp = malloc(RESP_CAP);
	if (!resp) {
		free(txt);
		return ENOMEM;
	}
	err = lg_http_request(h, "POST", path, token, txt, &status, resp,
			      RESP_CAP);
	free(txt);
	if (!err && status != want) {
		snprintf(g->err, sizeof(g->err), "POST %s: %d %.200s", path,
			 status, resp);
		err = status == 503 ? EBUSY : EPROTO;
	}
	else if (err) {
		snprintf(g->err, sizeof(g->err), "POST %s: %s", path,
			 strerror(err));
	}
	if (!err && out) {
		*out = json_loads(resp, 0, NULL);
		if (!*out)
			err = EBADMSG;
	}
	free(resp);
	return err;
}

static json_t *leg_body(struct lg *g, struct lg_leg *l, unsigned n)
{
	char rx[80], tx[80], remote[32];
	json_t *j, *srtp = json_null();

	snprintf(remote, sizeof(remote), "127.0.0.1:%u", g->local_port);
	if (g->srtp) {
		if (lg_leg_keys(g, l, rx, tx, sizeof(rx)))
			return NULL;
		srtp = json_pack("{s:s, s:{s:{s:s, s:s}}}",
				 "profile", "AES_CM_128_HMAC_SHA1_80",
				 "key", "inline", "rx", rx, "tx", tx);
		memset(rx, 0, sizeof(rx));
		memset(tx, 0, sizeof(tx));
	}
	j = json_pack("{s:s, s:i, s:i, s:i, s:s, s:s, s:o}",
		      "codec", l->codec == LG_OPUS ? "opus" : "pcmu",
		      "rate", l->codec == LG_OPUS ? 48000 : 8000,
		      "ptime", LG_PTIME_MS,
		      "payload_type", l->pt,
		      "remote", remote,
		      "direction", "sendrecv",
		      "srtp", srtp);
	if (j) {
		char part[64];

		snprintf(part, sizeof(part), "sip:lg%u@bench.invalid", n);
		json_object_set_new(j, "participant", json_string(part));
		if (l->level_ext)
			json_object_set_new(j, "audio_level_ext",
					    json_integer(l->level_ext));
	}
	return j;
}

/**
 * Create the scenario's conferences (mode mix or transcode) and every
 * leg with its own inline keys; remember each leg's bridge port, SSRC
 * and id.
 */
int lg_setup_keymix(struct lg *g, const char *control, const char *token)
{
	struct lg_http h = { .fd = -1 };
	char path[128], id[64];
	unsigned c, i;
	int err;

	err = lg_parse_hostport(control, &h.addr);
	if (err)
		return err;
	snprintf(h.host, sizeof(h.host), "%s", control);
	for (c = 0; c < g->n_confs; c++) {
		json_t *body;

		conf_id(id, sizeof(id), c);
		body = json_pack("{s:s, s:s, s:i, s:i}",
				 "id", id,
				 "mode",
				 g->sc->transcode ? "transcode" : "mix",
				 "ptime", LG_PTIME_MS,
				 "max_talkers", 3);
		/* a transcoder picks its rate from its legs (the default) */
		if (body && !g->sc->transcode)
			json_object_set_new(body, "rate", json_integer(
				g->sc->codec_a == LG_PCMU ? 8000 : 48000));
		/* complexity < 0: the bridge's default */
		if (body && g->complexity >= 0)
			json_object_set_new(body, "opus", json_pack(
				"{s:i}", "complexity", g->complexity));
		err = post(g, &h, "/v1/conferences", token, body, 201, NULL);
		if (err)
			goto out;
	}
	for (i = 0; i < g->n_legs; i++) {
		struct lg_leg *l = &g->legs[i];
		json_t *resp = NULL, *body = leg_body(g, l, i);
		const char *local, *leg;
		json_int_t ssrc;

		if (!body) {
			err = ENOMEM;
			goto out;
		}
		conf_id(id, sizeof(id), l->conf);
		snprintf(path, sizeof(path), "/v1/conferences/%s/legs", id);
		err = post(g, &h, path, token, body, 201, &resp);
		if (err)
			goto out;
		if (json_unpack(resp, "{s:s, s:s, s:I}", "leg", &leg,
				"local", &local, "ssrc", &ssrc) ||
		    lg_parse_hostport(local, &l->remote)) {
			snprintf(g->err, sizeof(g->err),
				 "leg response lacks leg/local/ssrc");
			json_decref(resp);
			err = EBADMSG;
			goto out;
		}
		snprintf(l->id, sizeof(l->id), "%s", leg);
		l->rx.ssrc = (uint32_t)ssrc;
		g->port2leg[ntohs(l->remote.sin_port)] = (int32_t)i;
		json_decref(resp);
	}
 out:
	lg_http_close(&h);
	return err;
}

/** Delete every conference the generator made (best effort) */
int lg_teardown_keymix(struct lg *g, const char *control, const char *token)
{
	struct lg_http h = { .fd = -1 };
	char path[128], id[64], resp[4096];
	unsigned c;
	int status, err;

	err = lg_parse_hostport(control, &h.addr);
	if (err)
		return err;
	snprintf(h.host, sizeof(h.host), "%s", control);
	for (c = 0; c < g->n_confs; c++) {
		conf_id(id, sizeof(id), c);
		snprintf(path, sizeof(path), "/v1/conferences/%s", id);
		lg_http_request(&h, "DELETE", path, token, NULL, &status,
				resp, sizeof(resp));
	}
	lg_http_close(&h);
	return 0;
}

/** GET a path into a malloc'd NUL-terminated body (caller frees) */
char *lg_http_get(const char *control, const char *path, const char *token,
		  int *status)
{
	struct lg_http h = { .fd = -1 };
	char *resp;

	if (lg_parse_hostport(control, &h.addr))
		return NULL;
	snprintf(h.host, sizeof(h.host), "%s", control);
	resp = malloc(16 << 20);
	if (!resp)
		return NULL;
	if (lg_http_request(&h, "GET", path, token, NULL, status, resp,
			    16 << 20)) {
		free(resp);
		resp = NULL;
	}
	lg_http_close(&h);
	return resp;
}
