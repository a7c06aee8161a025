/** @file kms_flow.c  KMS core: every UE flow, one JSON request at a time */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "kms_nds/kms_int.h"

/** One request being handled */
struct rq {
	struct kms_store *s;
	const struct kms_req_ctx *ctx;
	struct kms_cfg *cfg;
	json_t *req;
	json_t *resp;
	const char *ecode;
	const char *emsg;
};

/** An opened statement: its owner's Kue and the plaintext fields */
struct stmt {
	uint8_t kue[32];
	uint8_t buf[2 * KMS_BLOB_MAX + 2];
	uint8_t pt[KMS_BLOB_MAX];
	struct kms_seal_hdr hdr;
	struct kms_fields f;
};

static int fail(struct rq *r, const char *code, const char *msg)
{
	if (!r->ecode) {
		r->ecode = code;
		r->emsg = msg;
	}
	return EPERM;
}

static void stmt_wipe(struct stmt *st)
{
	kms_wipe(st, sizeof(*st));
}

/** A request string field: present, 1..max-1 bytes, printable */
static const char *jstr(struct rq *r, const char *key, size_t max)
{
	json_t *v = json_object_get(r->req, key);
	const char *s;
	size_t i, n;

	if (!json_is_string(v)) {
		fail(r, "malformed", "missing or non-string field");
		return NULL;
	}
	s = json_string_value(v);
	n = json_string_length(v);
	if (n == 0 || n >= max || strlen(s) != n) {
		fail(r, "malformed", "empty or oversized field");
		return NULL;
	}
	for (i = 0; i < n; i++) {
		if ((unsigned char)s[i] < 0x21 || s[i] == 0x7f) {
			fail(r, "malformed", "control or space in field");
			return NULL;
		}
	}
	return s;
}

static int jb64(struct rq *r, const char *key, uint8_t *out, size_t n)
{
	const char *s = jstr(r, key, 4 * KMS_BLOB_MAX);
	size_t len;

	if (!s)
		return EINVAL;
	if (kms_b64_decode(s, out, n, &len) || len != n)
		return fail(r, "malformed", "bad base64 field");
	return 0;
}

static int set_b64(struct rq *r, const char *key, const uint8_t *p,
		   size_t n)
{
	char out[2 * KMS_BLOB_MAX];

	if (kms_b64_encode(p, n, out, sizeof(out)))
		return fail(r, "internal", "encoding");
	json_object_set_new(r->resp, key, json_string(out));
	return 0;
}

static int check_time(struct rq *r, uint64_t t)
{
	uint64_t now = r->ctx->now, w = r->cfg->time_window;

	if (t + w < now || t > now + w)
		return fail(r, "stale", "time outside the accepted window");
	return 0;
}

/** Open the Enc_Kkms token of identity id: Kue out */
static int token_open(struct rq *r, const char *id, const uint8_t *tok,
		      size_t len, uint8_t kue[32])
{
	struct kms_seal_hdr h;
	struct kms_fields f;
	uint8_t kkms[32], pt[KMS_BLOB_MAX];
	char tid[KMS_ID_MAX];
	uint32_t life;
	size_t n;
	int err;

	if (kms_seal_peek(tok, len, &h) || h.type != KMS_T_TOKEN)
		return fail(r, "malformed", "not a token");
	err = kms_ring_get(r->s, "kkms", h.key_id, r->ctx->now,
			   r->cfg->kkms_grace, kkms);
	if (err == EKEYEXPIRED)
		return fail(r, "kkms-retired",
			    "token sealed under a retired Kkms");
	if (err == ENOENT)
		return fail(r, "kkms-unknown", "token under an unknown Kkms");
	if (err)
		return fail(r, "internal", "key ring");
	err = kms_open(kkms, KMS_T_TOKEN, id, "", tok, len, NULL, pt,
		       sizeof(pt), &n);
	kms_wipe(kkms, sizeof(kkms));
	if (err)
		return fail(r, "auth-failed", "token does not authenticate");
	err = kms_fparse(pt, n, &f);
	if (!err)
		err = kms_fget_fixed(&f, KMS_F_K, kue, 32);
	if (!err)
		err = kms_fget_u32(&f, KMS_F_LIFETIME, &life);
	if (!err)
		err = kms_fget_str(&f, KMS_F_ID, tid, sizeof(tid));
	kms_wipe(pt, sizeof(pt));
	if (err || strcmp(tid, id)) {
		kms_wipe(kue, 32);
		return fail(r, "auth-failed", "token content");
	}
	if (r->ctx->now >= h.time_s + life || h.time_s > r->ctx->now +
	    r->cfg->time_window) {
		kms_wipe(kue, 32);
		return fail(r, "token-expired", "token expired");
	}
	return 0;
}

/** Constant-time identity check of a sealed field against a plain one */
static int same_id(const struct kms_fields *f, enum kms_field tag,
		   const char *plain)
{
	size_t n = strlen(plain);

	return f->v[tag] && f->len[tag] == n &&
	       kms_ct_equal(f->v[tag], plain, n);
}

/**
 * Decode statement `key` of the request, owned by `owner`, sealed with
 * type and AAD identities (id1, id2); check that IDA/IDB inside equal
 * id1/id2.
 */
static int stmt_open(struct rq *r, const char *key, const char *owner,
		     enum kms_seal_type type, const char *id1,
		     const char *id2, struct stmt *st)
{
	const uint8_t *tok, *sealed;
	size_t tl, sl, n;
	const char *b64 = jstr(r, key, 4 * KMS_BLOB_MAX);
	int err;

	if (!b64)
		return EINVAL;
	if (kms_stmt_decode(b64, st->buf, sizeof(st->buf), &tok, &tl,
			    &sealed, &sl))
		return fail(r, "malformed", "bad statement encoding");
	err = token_open(r, owner, tok, tl, st->kue);
	if (err)
		return err;
	err = kms_open(st->kue, type, id1, id2, sealed, sl, &st->hdr, st->pt,
		       sizeof(st->pt), &n);
	if (err == EPROTO)
		return fail(r, "malformed", "wrong statement type");
	if (err)
		return fail(r, "auth-failed",
			    "statement does not authenticate (tampered or "
			    "identities swapped)");
	if (kms_fparse(st->pt, n, &st->f) || !st->f.v[KMS_F_R] ||
	    st->f.len[KMS_F_R] != KMS_RAND_LEN)
		return fail(r, "malformed", "statement fields");
	if (!same_id(&st->f, KMS_F_IDA, id1) ||
	    !same_id(&st->f, KMS_F_IDB, id2))
		return fail(r, "identity-mismatch",
			    "sealed identities differ from the plain ones");
	return 0;
}

/** The requester's own statement: fresh time and never seen before */
static int req_fresh(struct rq *r, const struct stmt *st)
{
	int err = check_time(r, st->hdr.time_s);

	if (err)
		return err;
	err = kms_seen_add(r->s, st->hdr.salt, st->hdr.time_s, r->ctx->now);
	if (err == EALREADY)
		return fail(r, "replay", "request already seen");
	if (err)
		return fail(r, "internal", "replay cache");
	return 0;
}

static int invite_fresh(struct rq *r, const struct stmt *st)
{
	uint64_t t = st->hdr.time_s, now = r->ctx->now;

	if (t > now + r->cfg->time_window ||
	    t + r->cfg->invite_validity < now)
		return fail(r, "stale", "invite statement too old");
	return 0;
}

static int reply(struct rq *r, const char *key, const uint8_t kue[32],
		 enum kms_seal_type type, const char *id1, const char *id2,
		 const struct kms_fbuf *fb)
{
	uint8_t out[KMS_BLOB_MAX];
	size_t n;

	if (fb->err || kms_seal(kue, type, 0, r->ctx->now, id1, id2, fb->b,
				fb->len, out, sizeof(out), &n))
		return fail(r, "internal", "sealing");
	return set_b64(r, key, out, n);
}

static int derive(struct rq *r, const char *label, const uint8_t *salt,
		  size_t salt_len, const char *a, const char *b,
		  uint8_t *out, size_t out_len)
{
	uint8_t sec[32], info[64 + 2 * KMS_ID_MAX];
	int n, err;

	n = snprintf((char *)info, sizeof(info), "%s%c%s%c%s", label, 0, a,
		     0, b);
	if (n < 0 || (size_t)n >= sizeof(info))
		return fail(r, "malformed", "identity too long");
	err = kms_secret(r->s, "kconf", sec);
	if (!err)
		err = kms_hkdf(salt, salt_len, sec, 32, info, (size_t)n, out,
			       out_len);
	kms_wipe(sec, sizeof(sec));
	return err ? fail(r, "internal", "derivation") : 0;
}

/* ---- flow 1: bootstrap ---- */

static int do_bootstrap(struct rq *r)
{
	uint8_t nonce[KMS_RAND_LEN], mac[KMS_MAC_LEN], want[KMS_MAC_LEN];
	uint8_t cred[32], kue[32], kkms[32], out[KMS_BLOB_MAX];
	struct kms_fbuf fb = { .len = 0 };
	const char *id = jstr(r, "id", KMS_ID_MAX);
	json_t *jt = json_object_get(r->req, "time");
	uint32_t kid;
	size_t n;
	int err;

	if (!id || !json_is_integer(jt) || jb64(r, "nonce", nonce, 16) ||
	    jb64(r, "mac", mac, 32))
		return fail(r, "malformed", "bootstrap fields");
	if (!r->ctx->has_exporter)
		return fail(r, "auth-failed", "no channel binding");
	err = check_time(r, (uint64_t)json_integer_value(jt));
	if (err)
		return err;
	err = kms_id_cred(r->s, id, cred);
	if (err == ENOENT) {
		/* same work and same answer as a wrong MAC */
		memset(cred, 0, sizeof(cred));
		kms_boot_mac(cred, r->ctx->exporter, id,
			     (uint64_t)json_integer_value(jt), nonce, want);
		return fail(r, "auth-failed", "credential proof wrong");
	}
	if (err)
		return fail(r, "internal", "credential store");
	err = kms_boot_mac(cred, r->ctx->exporter, id,
			   (uint64_t)json_integer_value(jt), nonce, want);
	if (err || !kms_ct_equal(mac, want, KMS_MAC_LEN)) {
		kms_wipe(cred, sizeof(cred));
		return fail(r, "auth-failed", "credential proof wrong");
	}
	err = kms_seen_add(r->s, nonce, (uint64_t)json_integer_value(jt),
			   r->ctx->now);
	if (err) {
		kms_wipe(cred, sizeof(cred));
		return fail(r, err == EALREADY ? "replay" : "internal",
			    "bootstrap nonce");
	}
	err = kms_random(kue, 32);
	if (!err)
		err = kms_ring_current(r->s, "kkms", r->ctx->now, &kid, kkms);
	if (!err) {
		uint8_t rnd[KMS_RAND_LEN];

		err = kms_random(rnd, sizeof(rnd));
		kms_fput(&fb, KMS_F_K, kue, 32);
		kms_fput_str(&fb, KMS_F_ID, id);
		kms_fput_u32(&fb, KMS_F_LIFETIME, r->cfg->token_lifetime);
		kms_fput(&fb, KMS_F_R, rnd, sizeof(rnd));
		if (!err && !fb.err)
			err = kms_seal(kkms, KMS_T_TOKEN, kid, r->ctx->now, id,
				       "", fb.b, fb.len, out, sizeof(out), &n);
		kms_wipe(&fb, sizeof(fb));
		kms_wipe(kkms, sizeof(kkms));
	}
	if (!err)
		err = set_b64(r, "token", out, n);
	if (!err) {
		kms_fput(&fb, KMS_F_K, kue, 32);
		kms_fput_u64(&fb, KMS_F_EXPIRES,
			     r->ctx->now + r->cfg->token_lifetime);
		err = reply(r, "kue", cred, KMS_T_BOOT_KUE, id, "", &fb);
		kms_wipe(&fb, sizeof(fb));
	}
	kms_wipe(kue, sizeof(kue));
	kms_wipe(cred, sizeof(cred));
	if (err)
		return fail(r, "internal", "token issue");
	json_object_set_new(r->resp, "expires", json_integer(
		(json_int_t)(r->ctx->now + r->cfg->token_lifetime)));
	json_object_set_new(r->resp, "kkms_id", json_integer(kid));
	return 0;
}

/* ---- flow 2: point-to-point ---- */

static int do_p2p(struct rq *r)
{
	struct stmt *a = NULL, *b = NULL;
	const char *ida = jstr(r, "ida", KMS_ID_MAX);
	const char *idb = jstr(r, "idb", KMS_ID_MAX);
	struct kms_fbuf fb = { .len = 0 };
	char xc[KMS_ID_MAX], ref[32];
	uint8_t k[32], rnd[12];
	int err;

	if (!ida || !idb)
		return EINVAL;
	a = calloc(1, sizeof(*a));
	b = calloc(1, sizeof(*b));
	if (!a || !b) {
		err = fail(r, "internal", "memory");
		goto out;
	}
	err = stmt_open(r, "invite", ida, KMS_T_INVITE, ida, idb, a);
	if (!err)
		err = invite_fresh(r, a);
	if (!err)
		err = stmt_open(r, "request", idb, KMS_T_REQUEST, ida, idb, b);
	if (!err)
		err = req_fresh(r, b);
	if (err)
		goto out;
	if (kms_fget_str(&a->f, KMS_F_XCODER, xc, sizeof(xc)) == EPROTO) {
		err = fail(r, "malformed", "transcoder field");
		goto out;
	}
	if (kms_random(k, 32) || kms_random(rnd, sizeof(rnd)) ||
	    kms_b64_encode(rnd, sizeof(rnd), ref, sizeof(ref))) {
		err = fail(r, "internal", "random");
		goto out;
	}
	if (kms_call_put(r->s, ref, ida, idb, xc, k,
			 r->ctx->now + r->cfg->leg_lifetime)) {
		err = fail(r, "internal", "store");
		goto out;
	}
	kms_fput(&fb, KMS_F_R, a->f.v[KMS_F_R], KMS_RAND_LEN);
	kms_fput(&fb, KMS_F_K, k, 32);
	kms_fput_str(&fb, KMS_F_REF, ref);
	err = reply(r, "reply_a", a->kue, KMS_T_REPLY_A, ida, idb, &fb);
	kms_wipe(&fb, sizeof(fb));
	kms_fput(&fb, KMS_F_R, b->f.v[KMS_F_R], KMS_RAND_LEN);
	kms_fput(&fb, KMS_F_K, k, 32);
	kms_fput_str(&fb, KMS_F_REF, ref);
	if (!err)
		err = reply(r, "reply_b", b->kue, KMS_T_REPLY_B, ida, idb,
			    &fb);
	kms_wipe(&fb, sizeof(fb));
	json_object_set_new(r->resp, "call", json_string(ref));
 out:
	kms_wipe(k, sizeof(k));
	if (a)
		stmt_wipe(a);
	if (b)
		stmt_wipe(b);
	free(a);
	free(b);
	return err;
}

/* ---- flow 3: conference, passive join ---- */

/**
 * The conference reference and K1 are functions of (ID-A, Ra) under KMS
 * secrets, so every invitation of one chairman with one Ra -- sequential
 * or concurrent, on one KMS or replicas sharing the secret -- names the
 * same conference and gives the chairman the same K1.
 */
static int do_conf_passive(struct rq *r)
{
	struct stmt *a = NULL, *b = NULL;
	const char *ida = jstr(r, "ida", KMS_ID_MAX);
	const char *idb = jstr(r, "idb", KMS_ID_MAX);
	struct kms_fbuf fb = { .len = 0 };
	char focus[KMS_ID_MAX], ref[KMS_REF_MAX];
	uint8_t refraw[16], k1[32], k2[32];
	uint64_t exp = r->ctx->now + r->cfg->leg_lifetime;
	struct kms_legkey lk;
	uint32_t gen;
	int err;

	if (!ida || !idb)
		return EINVAL;
	if (!strcmp(ida, idb))
		return fail(r, "identity-mismatch", "chairman invites itself");
	a = calloc(1, sizeof(*a));
	b = calloc(1, sizeof(*b));
	if (!a || !b) {
		err = fail(r, "internal", "memory");
		goto out;
	}
	err = stmt_open(r, "invite", ida, KMS_T_INVITE, ida, idb, a);
	if (!err)
		err = invite_fresh(r, a);
	if (!err && kms_fget_str(&a->f, KMS_F_FOCUS, focus, sizeof(focus)))
		err = fail(r, "malformed", "invite names no conference focus");
	if (!err)
		err = stmt_open(r, "request", idb, KMS_T_REQUEST, ida, idb, b);
	if (!err)
		err = req_fresh(r, b);
	if (!err)
		err = derive(r, "keymix conf ref v1", a->f.v[KMS_F_R],
			     KMS_RAND_LEN, ida, "", refraw, sizeof(refraw));
	if (!err && kms_b64_encode(refraw, sizeof(refraw), ref, sizeof(ref)))
		err = fail(r, "internal", "encoding");
	if (!err)
		err = derive(r, "keymix K1 v1", a->f.v[KMS_F_R], KMS_RAND_LEN,
			     ida, ref, k1, sizeof(k1));
	if (err)
		goto out;
	err = kms_conf_ensure(r->s, ref, focus, ida, exp);
	if (err == EACCES) {
		err = fail(r, "focus-conflict",
			   "conference exists with another focus or chairman");
		goto out;
	}
	if (!err)
		err = kms_leg_set(r->s, ref, ida, k1, r->ctx->now, exp,
				  KMS_LEG_KEEP, NULL);
	if (!err)
		err = kms_random(k2, sizeof(k2));
	if (!err)
		err = kms_leg_set(r->s, ref, idb, k2, r->ctx->now, exp,
				  KMS_LEG_NEWGEN, &gen);
	/* the chairman gets its current leg key (K1 unless it rekeyed) */
	if (!err)
		err = kms_store_legkey_get(r->s, ref, ida, r->ctx->now, &lk);
	if (err) {
		err = fail(r, "internal", "store");
		goto out;
	}
	kms_fput(&fb, KMS_F_R, a->f.v[KMS_F_R], KMS_RAND_LEN);
	kms_fput(&fb, KMS_F_K, lk.key, 32);
	kms_fput_str(&fb, KMS_F_REF, ref);
	kms_fput_u32(&fb, KMS_F_GEN, lk.generation);
	err = reply(r, "reply_a", a->kue, KMS_T_REPLY_A, ida, idb, &fb);
	kms_wipe(&fb, sizeof(fb));
	kms_fput(&fb, KMS_F_R, b->f.v[KMS_F_R], KMS_RAND_LEN);
	kms_fput(&fb, KMS_F_K, k2, 32);
	kms_fput_str(&fb, KMS_F_REF, ref);
	kms_fput_u32(&fb, KMS_F_GEN, gen);
	if (!err)
		err = reply(r, "reply_b", b->kue, KMS_T_REPLY_B, ida, idb,
			    &fb);
	kms_wipe(&fb, sizeof(fb));
	kms_wipe(&lk, sizeof(lk));
	json_object_set_new(r->resp, "conf", json_string(ref));
	json_object_set_new(r->resp, "focus", json_string(focus));
 out:
	kms_wipe(k1, sizeof(k1));
	kms_wipe(k2, sizeof(k2));
	if (a)
		stmt_wipe(a);
	if (b)
		stmt_wipe(b);
	free(a);
	free(b);
	return err;
}

/* ---- flow 4 (active join) and 6a (rekey): participant + conference ---- */

static int rate_limited(struct rq *r, const char *sid, const char *sconf)
{
	uint32_t ni = 0, nc = 0;

	if (kms_fail_count(r->s, sid, r->ctx->now, &ni) ||
	    kms_fail_count(r->s, sconf, r->ctx->now, &nc))
		return fail(r, "internal", "store");
	if (ni >= r->cfg->fail_max_id || nc >= r->cfg->fail_max_conf)
		return fail(r, "rate-limited",
			    "too many wrong proofs; try later");
	return 0;
}

static int join_check(struct rq *r, const char *id, const char *ref,
		      const struct stmt *b)
{
	char sid[KMS_ID_MAX + 4], sconf[KMS_REF_MAX + 6];
	uint8_t kj[32], want[KMS_MAC_LEN];
	int err, ok = 0, has_kj;

	snprintf(sid, sizeof(sid), "id:%s", id);
	snprintf(sconf, sizeof(sconf), "conf:%s", ref);
	err = rate_limited(r, sid, sconf);
	if (err)
		return err;
	if (!kms_conf_eligible(r->s, ref, id))
		return 0;
	has_kj = !kms_conf_kjoin(r->s, ref, kj);
	if (has_kj && b->f.v[KMS_F_PROOF] &&
	    b->f.len[KMS_F_PROOF] == KMS_MAC_LEN &&
	    !kms_join_proof(kj, id, ref, b->f.v[KMS_F_R], want))
		ok = kms_ct_equal(want, b->f.v[KMS_F_PROOF], KMS_MAC_LEN);
	kms_wipe(kj, sizeof(kj));
	kms_wipe(want, sizeof(want));
	if (ok)
		return 0;
	if (kms_fail_add(r->s, sid, r->ctx->now) ||
	    kms_fail_add(r->s, sconf, r->ctx->now))
		return fail(r, "internal", "store");
	if (!has_kj)
		return fail(r, "not-eligible", "not on the eligible list");
	return fail(r, "wrong-secret", "conference secret proof wrong");
}

static int do_member(struct rq *r, int rekey)
{
	const char *id = jstr(r, "id", KMS_ID_MAX);
	const char *ref = jstr(r, "conf", KMS_REF_MAX);
	struct kms_fbuf fb = { .len = 0 };
	struct kms_legkey lk;
	struct kms_conf c;
	struct stmt *b;
	uint8_t k[32];
	uint32_t gen;
	int err;

	if (!id || !ref)
		return EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return fail(r, "internal", "memory");
	err = stmt_open(r, "request", id, KMS_T_REQUEST, id, ref, b);
	if (!err)
		err = req_fresh(r, b);
	if (err)
		goto out;
	err = kms_store_conf_get(r->s, ref, r->ctx->now, &c);
	if (err == ENOENT)
		err = fail(r, "conference-unknown", "no such conference");
	else if (err == EKEYEXPIRED)
		err = fail(r, "conference-expired", "conference expired");
	else if (err)
		err = fail(r, "internal", "store");
	if (err)
		goto out;
	if (rekey) {
		err = kms_store_legkey_get(r->s, ref, id, r->ctx->now, &lk);
		kms_wipe(&lk, sizeof(lk));
		if (err) {
			err = fail(r, "no-leg", "no leg key to rekey");
			goto out;
		}
	}
	else if (!c.active) {
		err = fail(r, "not-active-join",
			   "conference is not open for active join");
		goto out;
	}
	else {
		err = join_check(r, id, ref, b);
		if (err)
			goto out;
	}
	if (kms_random(k, 32) ||
	    kms_leg_set(r->s, ref, id, k, r->ctx->now,
			r->ctx->now + r->cfg->leg_lifetime, KMS_LEG_NEWGEN,
			&gen)) {
		err = fail(r, "internal", "store");
		goto out;
	}
	kms_fput(&fb, KMS_F_R, b->f.v[KMS_F_R], KMS_RAND_LEN);
	kms_fput(&fb, KMS_F_K, k, 32);
	kms_fput_str(&fb, KMS_F_REF, ref);
	kms_fput_u32(&fb, KMS_F_GEN, gen);
	err = reply(r, "reply", b->kue, KMS_T_REPLY_B, id, ref, &fb);
	kms_wipe(&fb, sizeof(fb));
	kms_wipe(k, sizeof(k));
	json_object_set_new(r->resp, "conf", json_string(ref));
	json_object_set_new(r->resp, "focus", json_string(c.focus));
	json_object_set_new(r->resp, "generation", json_integer(gen));
 out:
	stmt_wipe(b);
	free(b);
	return err;
}

/* ---- flow 5: forking ---- */

static int do_fork(struct rq *r)
{
	struct stmt *a = NULL, *b = NULL;
	const char *ida = jstr(r, "ida", KMS_ID_MAX);
	const char *idg = jstr(r, "idg", KMS_ID_MAX);
	const char *idb = jstr(r, "idb", KMS_ID_MAX);
	struct kms_fbuf fb = { .len = 0 };
	uint8_t k[32];
	int err;

	if (!ida || !idg || !idb)
		return EINVAL;
	a = calloc(1, sizeof(*a));
	b = calloc(1, sizeof(*b));
	if (!a || !b) {
		err = fail(r, "internal", "memory");
		goto out;
	}
	err = stmt_open(r, "invite", ida, KMS_T_INVITE, ida, idg, a);
	if (!err)
		err = invite_fresh(r, a);
	if (!err)
		err = stmt_open(r, "request", idb, KMS_T_REQUEST, ida, idb, b);
	if (!err)
		err = req_fresh(r, b);
	if (!err && kms_group_has(r->s, idg, idb))
		err = fail(r, "not-member", "answerer is not in the group");
	/* one master key K per originating call (ID-A, Ra, ID-G) */
	if (!err)
		err = derive(r, "keymix fork K v1", a->f.v[KMS_F_R],
			     KMS_RAND_LEN, ida, idg, k, sizeof(k));
	if (err)
		goto out;
	kms_fput(&fb, KMS_F_R, a->f.v[KMS_F_R], KMS_RAND_LEN);
	kms_fput(&fb, KMS_F_R2, b->f.v[KMS_F_R], KMS_RAND_LEN);
	kms_fput(&fb, KMS_F_K, k, 32);
	kms_fput_str(&fb, KMS_F_IDB, idb);
	err = reply(r, "reply_a", a->kue, KMS_T_REPLY_A, ida, idg, &fb);
	kms_wipe(&fb, sizeof(fb));
	kms_fput(&fb, KMS_F_R, b->f.v[KMS_F_R], KMS_RAND_LEN);
	kms_fput(&fb, KMS_F_K, k, 32);
	if (!err)
		err = reply(r, "reply_b", b->kue, KMS_T_REPLY_B, ida, idb,
			    &fb);
	kms_wipe(&fb, sizeof(fb));
 out:
	kms_wipe(k, sizeof(k));
	if (a)
		stmt_wipe(a);
	if (b)
		stmt_wipe(b);
	free(a);
	free(b);
	return err;
}

/* ---- flow 6: deferred delivery ---- */

/*
 * A mailbox deposit (network node side; the NDS listener or the kmsd
 * admin command calls it).  Returns errno values: EACCES (mailbox does
 * not serve recipient), EBADMSG (statement does not authenticate),
 * EKEYEXPIRED (token expired or Kkms retired), ETIME (stale invite),
 * EPROTO (malformed).
 */
int kms_mbx_deposit(struct kms_store *s, const char *mailbox,
		    const char *caller, const char *recipient,
		    const char *invite_stmt, int want_ke2m, uint64_t now_s,
		    struct kms_mbx_deposit *out)
{
	struct kms_req_ctx ctx = { .now = now_s };
	struct rq r = { .s = s, .ctx = &ctx };
	char node[KMS_ID_MAX];
	struct kms_fbuf fb = { .len = 0 };
	uint8_t k[32], kmbx[32], blob[KMS_BLOB_MAX];
	struct stmt *a;
	uint32_t kid;
	size_t n;
	int err;

	if (!s || !mailbox || !caller || !recipient || !invite_stmt || !out)
		return EINVAL;
	memset(out, 0, sizeof(*out));
	r.cfg = kms_store_cfg(s);
	err = kms_store_mailbox_of(s, recipient, node, sizeof(node));
	if (err || strcmp(node, mailbox))
		return EACCES;
	a = calloc(1, sizeof(*a));
	r.req = json_pack("{ss}", "invite", invite_stmt);
	if (!a || !r.req) {
		free(a);
		json_decref(r.req);
		return ENOMEM;
	}
	err = stmt_open(&r, "invite", caller, KMS_T_INVITE, caller,
			recipient, a);
	if (!err)
		err = invite_fresh(&r, a);
	if (err) {
		const char *c = r.ecode ? r.ecode : "";

		err = !strcmp(c, "token-expired") || !strcmp(c, "kkms-retired")
		      ? EKEYEXPIRED : !strcmp(c, "stale") ? ETIME
		      : !strcmp(c, "auth-failed") ? EBADMSG : EPROTO;
		goto out;
	}
	err = derive(&r, "keymix deferred v1", a->f.v[KMS_F_R], KMS_RAND_LEN,
		     caller, recipient, k, sizeof(k));
	if (!err && want_ke2m)
		err = kms_random(out->ke2m, 32);
	if (err) {
		err = EIO;
		goto out;
	}
	out->has_ke2m = want_ke2m;
	out->retain_until_s = now_s + r.cfg->mbx_retention;
	kms_fput(&fb, KMS_F_R, a->f.v[KMS_F_R], KMS_RAND_LEN);
	kms_fput(&fb, KMS_F_K, k, 32);
	if (want_ke2m)
		kms_fput(&fb, KMS_F_K2, out->ke2m, 32);
	err = fb.err ? fb.err : kms_seal(a->kue, KMS_T_REPLY_A, 0, now_s,
					 caller, recipient, fb.b, fb.len,
					 blob, sizeof(blob), &n);
	if (!err)
		err = kms_b64_encode(blob, n, out->ea_reply,
				     sizeof(out->ea_reply));
	kms_wipe(&fb, sizeof(fb));
	if (!err)
		err = kms_ring_current(s, "kmbx", now_s, &kid, kmbx);
	kms_fput(&fb, KMS_F_K, k, 32);
	kms_fput_str(&fb, KMS_F_IDA, caller);
	kms_fput_str(&fb, KMS_F_IDB, recipient);
	kms_fput_str(&fb, KMS_F_ID, mailbox);
	kms_fput_u64(&fb, KMS_F_EXPIRES, out->retain_until_s);
	if (!err)
		err = fb.err ? fb.err : kms_seal(kmbx, KMS_T_MBX_TICKET, kid,
						 now_s, caller, recipient,
						 fb.b, fb.len, blob,
						 sizeof(blob), &n);
	if (!err)
		err = kms_b64_encode(blob, n, out->ticket,
				     sizeof(out->ticket));
	kms_wipe(&fb, sizeof(fb));
	kms_wipe(kmbx, sizeof(kmbx));
	if (err)
		kms_wipe(out, sizeof(*out));
 out:
	kms_wipe(k, sizeof(k));
	stmt_wipe(a);
	free(a);
	json_decref(r.req);
	return err;
}

static int do_retrieve(struct rq *r)
{
	const char *ida = jstr(r, "ida", KMS_ID_MAX);
	const char *idb = jstr(r, "idb", KMS_ID_MAX);
	const char *tb = jstr(r, "ticket", 4 * KMS_BLOB_MAX);
	struct kms_fbuf fb = { .len = 0 };
	uint8_t tick[KMS_BLOB_MAX], kmbx[32], pt[KMS_BLOB_MAX];
	struct kms_seal_hdr h;
	struct kms_fields f;
	uint64_t exp;
	struct stmt *b;
	size_t tl, n;
	int err;

	if (!ida || !idb || !tb)
		return EINVAL;
	if (kms_b64_decode(tb, tick, sizeof(tick), &tl) ||
	    kms_seal_peek(tick, tl, &h) || h.type != KMS_T_MBX_TICKET)
		return fail(r, "malformed", "bad mailbox ticket");
	b = calloc(1, sizeof(*b));
	if (!b)
		return fail(r, "internal", "memory");
	err = stmt_open(r, "request", idb, KMS_T_REQUEST, ida, idb, b);
	if (!err)
		err = req_fresh(r, b);
	if (err)
		goto out;
	err = kms_ring_get(r->s, "kmbx", h.key_id, r->ctx->now,
			   r->cfg->mbx_retention, kmbx);
	if (err) {
		err = fail(r, "ticket-expired",
			   "mailbox ticket key no longer kept");
		goto out;
	}
	err = kms_open(kmbx, KMS_T_MBX_TICKET, ida, idb, tick, tl, NULL, pt,
		       sizeof(pt), &n);
	kms_wipe(kmbx, sizeof(kmbx));
	if (err) {
		err = fail(r, "auth-failed", "ticket does not authenticate");
		goto out;
	}
	if (kms_fparse(pt, n, &f) || !f.v[KMS_F_K] || f.len[KMS_F_K] != 32 ||
	    kms_fget_u64(&f, KMS_F_EXPIRES, &exp) ||
	    !same_id(&f, KMS_F_IDA, ida) || !same_id(&f, KMS_F_IDB, idb)) {
		err = fail(r, "identity-mismatch", "ticket content");
		goto out;
	}
	if (r->ctx->now >= exp) {
		err = fail(r, "ticket-expired", "retention time passed");
		goto out;
	}
	kms_fput(&fb, KMS_F_R, b->f.v[KMS_F_R], KMS_RAND_LEN);
	kms_fput(&fb, KMS_F_K, f.v[KMS_F_K], 32);
	err = reply(r, "reply", b->kue, KMS_T_REPLY_B, ida, idb, &fb);
	kms_wipe(&fb, sizeof(fb));
 out:
	kms_wipe(pt, sizeof(pt));
	stmt_wipe(b);
	free(b);
	return err;
}

/* ---- dispatch ---- */

static int do_join(struct rq *r)
{
	return do_member(r, 0);
}

static int do_rekey(struct rq *r)
{
	return do_member(r, 1);
}

static const struct {
	const char *type;
	int (*fn)(struct rq *r);
} handlers[] = {
	{ "bootstrap", do_bootstrap },
	{ "p2p", do_p2p },
	{ "conf-passive", do_conf_passive },
	{ "conf-join", do_join },
	{ "rekey", do_rekey },
	{ "fork", do_fork },
	{ "retrieve", do_retrieve },
};

/**
 * Handle one request (a JSON object) and produce one response (JSON,
 * malloc'd, caller frees).  Never fails to produce a response unless out
 * of memory (ENOMEM).  The request runs in one store transaction; failure
 * counters and the replay cache are kept even when the request is refused.
 */
int kms_handle(struct kms_store *s, const struct kms_req_ctx *ctx,
	       const char *req, size_t req_len, char **resp)
{
	struct rq r = { .s = s, .ctx = ctx };
	json_error_t jerr;
	const char *type = NULL;
	json_t *jv;
	size_t i;
	int begun = 0;

	r.cfg = kms_store_cfg(s);
	r.resp = json_object();
	if (!r.resp)
		return ENOMEM;
	if (req_len > KMS_FRAME_MAX) {
		fail(&r, "oversized", "request too large");
		goto out;
	}
	r.req = json_loadb(req, req_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(r.req)) {
		fail(&r, "malformed", "not a JSON object");
		goto out;
	}
	jv = json_object_get(r.req, "v");
	if (!json_is_integer(jv) || json_integer_value(jv) !=
	    KMS_PROTO_VERSION) {
		fail(&r, "bad-version", "unsupported protocol version");
		goto out;
	}
	type = jstr(&r, "type", 32);
	if (!type)
		goto out;
	for (i = 0; i < sizeof(handlers) / sizeof(handlers[0]); i++)
		if (!strcmp(type, handlers[i].type))
			break;
	if (i == sizeof(handlers) / sizeof(handlers[0])) {
		fail(&r, "unsupported", "unknown request type");
		goto out;
	}
	if (kms_store_begin(s)) {
		fail(&r, "internal", "store busy");
		goto out;
	}
	begun = 1;
	if (handlers[i].fn(&r) && !r.ecode)
		fail(&r, "internal", "unexpected failure");
 out:
	if (begun && kms_store_commit(s, 1))
		kms_store_commit(s, 0);
	if (r.ecode) {
		json_decref(r.resp);
		r.resp = json_pack("{si ss ss ss}", "v", KMS_PROTO_VERSION,
				   "type", "error", "error", r.ecode,
				   "message", r.emsg);
	}
	else {
		char t[48];

		snprintf(t, sizeof(t), "%s-ok", type);
		json_object_set_new(r.resp, "v",
				    json_integer(KMS_PROTO_VERSION));
		json_object_set_new(r.resp, "type", json_string(t));
	}
	json_decref(r.req);
	*resp = r.resp ? json_dumps(r.resp, JSON_COMPACT | JSON_SORT_KEYS)
		       : NULL;
	/* the response may hold sealed blobs only, never a plain key */
	json_decref(r.resp);
	return *resp ? 0 : ENOMEM;
}
