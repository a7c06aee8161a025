/**
 * @file apijson.c  Control API request bodies: JSON fields, base64 keys
 *
 * Pure checks of what a request says, before anything is created: each
 * returns 0 or the HTTP status to answer (400 malformed or wrong type,
 * 422 well-formed but unsupported) with a message in err (ERRSZ bytes).
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "bridge/bridge_int.h"

#define ERRSZ API_ERRSZ

/* ---- names ---- */

static const char *const dir_names[] = {
	"sendrecv", "sendonly", "recvonly", "inactive"
};

const char *dir_name(enum leg_dir d)
{
	return d <= DIR_INACTIVE ? dir_names[d] : "?";
}

/** Codec names as the API spells them (lower case) */
const char *codec_api_name(enum mix_codec c)
{
	static const char *const names[] = {"opus", "pcmu", "pcma", "g722"};

	return (unsigned)c < 4 ? names[c] : "?";
}

const char *mode_name(enum conf_mode m)
{
	return m == MODE_MIX ? "mix" : "transcode";
}

int dir_parse(const char *s, enum leg_dir *dp)
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

/*
 * Field getters.  They return 0 (absent fields leave *v alone) or an
 * HTTP status: 400 for a wrong type, with the message in err.
 */
int apij_get_str(json_t *o, const char *key, const char **v, int req,
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

int apij_get_int(json_t *o, const char *key, long long *v, char *err)
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

int apij_get_num(json_t *o, const char *key, double *v, int *present,
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

int apij_get_bool(json_t *o, const char *key, int *v, int *present,
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
int apij_id_valid(const char *s)
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

/**
 * Base64 of an inline key: keyleg's strict decoder (docs/keys.md), and
 * not empty.  EINVAL if malformed or empty, ENOSPC if too long.
 */
int apij_b64_decode(const char *s, uint8_t *out, size_t cap, size_t *lenp)
{
	if (!*s)
		return EINVAL;
	return keyleg_b64_decode(s, out, cap, lenp);
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

	e = apij_b64_decode(b64, tmp, sizeof(tmp), &n);
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
int apij_parse_inline(json_t *in, enum keyleg_profile profile,
			struct leg_params *par, char *err)
{
	const char *rx = NULL, *tx = NULL;
	int st;

	if (!json_is_object(in)) {
		snprintf(err, ERRSZ, "'inline' must be an object");
		return 400;
	}
	if ((st = apij_get_str(in, "rx", &rx, 1, err)) ||
	    (st = apij_get_str(in, "tx", &tx, 1, err)))
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
		return apij_parse_inline(in, par->profile, par, err);
	if (!json_is_object(kms)) {
		snprintf(err, ERRSZ, "'kms' must be an object");
		return 400;
	}
	if ((st = apij_get_str(kms, "conference", &cref, 1, err)) ||
	    (st = apij_get_str(kms, "participant", &who, 1, err)))
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
	if ((st = apij_get_str(s, "profile", &prof, 1, err)))
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

int apij_parse_opus(json_t *o, struct opus_opts *op, char *err)
{
	long long cx = op->complexity, br = op->bitrate;
	int fec = op->fec, dtx = op->dtx, st;

	if (!o || json_is_null(o))
		return 0;
	if (!json_is_object(o)) {
		snprintf(err, ERRSZ, "'opus' must be an object");
		return 400;
	}
	if ((st = apij_get_int(o, "complexity", &cx, err)) ||
	    (st = apij_get_int(o, "bitrate", &br, err)) ||
	    (st = apij_get_bool(o, "fec", &fec, NULL, err)) ||
	    (st = apij_get_bool(o, "dtx", &dtx, NULL, err)))
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

int apij_parse_leg(json_t *j, const struct conf *c,
		   struct leg_params *par,
		     char *err)
{
	const char *who = NULL, *codec = NULL, *remote = NULL, *dir = NULL;
	long long rate = -1, ptime = -1, pt = -1, lvl = 0, te = -1;
	json_t *jo;
	int st;

	memset(par, 0, sizeof(*par));
	par->te_pt = -1;
	if ((st = apij_get_str(j, "participant", &who, 1, err)) ||
	    (st = apij_get_str(j, "codec", &codec, 1, err)) ||
	    (st = apij_get_str(j, "remote", &remote, 1, err)) ||
	    (st = apij_get_str(j, "direction", &dir, 0, err)) ||
	    (st = apij_get_int(j, "rate", &rate, err)) ||
	    (st = apij_get_int(j, "ptime", &ptime, err)) ||
	    (st = apij_get_int(j, "payload_type", &pt, err)) ||
	    (st = apij_get_int(j, "audio_level_ext", &lvl, err)) ||
	    (st = apij_get_int(j, "telephone_event_pt", &te, err)))
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
		st = apij_parse_opus(jo, &par->opus, err);
		if (st)
			return st;
		par->opus_override = 1;
	}
	return parse_srtp(json_object_get(j, "srtp"), par, err);
}

