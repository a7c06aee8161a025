/** @file flows.c  Unit tests: every flow, UE library <-> KMS core */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "kms_nds/kms_int.h"
#include "tests/kms/kms_test.h"
#include "ue/ue.h"

enum { ALICE, BOB, CAROL, DAVE, ERIN, NUE };
static const char *const names[NUE] = { "alice", "bob", "carol", "dave",
					"erin" };

struct fx {
	struct kms_store *s;
	char dir[64];
	uint8_t exporter[32];
	uint8_t cred[NUE][32];
	struct ue *ue[NUE];
	char *last_req;          /**< the last request, for replays      */
	size_t last_len;
	char last_err[64];       /**< error code of the last response    */
};

static void set_clock(long off)
{
	char b[32];

	snprintf(b, sizeof(b), "%ld", off);
	setenv("KEYMIX_TEST_CLOCK_OFFSET", b, 1);
}

static const char *code_of(const char *resp, char *buf, size_t sz)
{
	json_t *j = json_loads(resp, 0, NULL);
	const char *c = json_string_value(json_object_get(j, "error"));

	snprintf(buf, sz, "%s", c ? c : "");
	json_decref(j);
	return buf;
}

static int handle(struct fx *f, const char *req, size_t len, char **resp)
{
	struct kms_req_ctx ctx = { .now = kms_now(), .has_exporter = 1 };

	memcpy(ctx.exporter, f->exporter, 32);
	return kms_handle(f->s, &ctx, req, len, resp);
}

static int xfer(const char *req, size_t len, char **resp, size_t *rlen,
		void *arg)
{
	struct fx *f = arg;
	int err;

	free(f->last_req);
	f->last_req = malloc(len);
	if (!f->last_req)
		return ENOMEM;
	memcpy(f->last_req, req, len);
	f->last_len = len;
	err = handle(f, req, len, resp);
	if (!err) {
		*rlen = strlen(*resp);
		code_of(*resp, f->last_err, sizeof(f->last_err));
	}
	return err;
}

/** Send the last request again: the error code it gets */
static const char *replay(struct fx *f, char *buf, size_t sz)
{
	char *resp = NULL;

	assert_int_equal(handle(f, f->last_req, f->last_len, &resp), 0);
	code_of(resp, buf, sz);
	free(resp);
	return buf;
}

static struct ue *mkue(struct fx *f, int i)
{
	struct ue_cfg cfg = { .xfer = xfer, .xfer_arg = f };
	char path[128];
	struct ue *u;

	memcpy(cfg.xfer_exporter, f->exporter, 32);
	snprintf(path, sizeof(path), "%s/%s.json", f->dir, names[i]);
	unlink(path);
	cfg.state_file = path;
	assert_int_equal(ue_open(&u, &cfg, names[i]), 0);
	return u;
}

static void boot(struct fx *f, int i)
{
	f->ue[i] = ue_free(f->ue[i]);
	f->ue[i] = mkue(f, i);
	assert_int_equal(ue_bootstrap(f->ue[i], f->cred[i]), 0);
}

static int setup(void **state)
{
	static const uint8_t skey[32] = { 9, 9, 9 };
	struct fx *f = calloc(1, sizeof(*f));
	int i;

	set_clock(0);
	/* every kms_now() of one test reads the same second: boundaries
	 * (grace, overlap, windows) are exact, not racing the real clock */
	kms_clock_pin((uint64_t)time(NULL));
	snprintf(f->dir, sizeof(f->dir), "/tmp/kms_test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(kms_store_open_key(&f->s, ":memory:", skey), 0);
	assert_int_equal(kms_random(f->exporter, 32), 0);
	for (i = 0; i < NUE; i++) {
		assert_int_equal(kms_id_add(f->s, names[i], f->cred[i]), 0);
		boot(f, i);
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char path[128];
	int i;

	for (i = 0; i < NUE; i++) {
		f->ue[i] = ue_free(f->ue[i]);
		snprintf(path, sizeof(path), "%s/%s.json", f->dir, names[i]);
		unlink(path);
	}
	rmdir(f->dir);
	kms_store_close(f->s);
	free(f->last_req);
	free(f);
	set_clock(0);
	kms_clock_pin(0);
	return 0;
}

static char stmt[UE_STMT_MAX], reply[UE_STMT_MAX];

/* ---- 1: bootstrap ---- */

static void t_bootstrap(void **state)
{
	struct fx *f = *state;
	uint8_t wrong[32];
	struct ue *u;
	char c[64];

	assert_true(ue_token_expires(f->ue[ALICE]) > kms_now());
	/* the bootstrap request cannot be replayed */
	boot(f, ALICE);
	assert_string_equal(replay(f, c, sizeof(c)), "replay");
	/* a wrong credential */
	memcpy(wrong, f->cred[ALICE], 32);
	wrong[0] ^= 1;
	u = mkue(f, ALICE);
	assert_int_equal(ue_bootstrap(u, wrong), EPERM);
	assert_string_equal(f->last_err, "auth-failed");
	ue_free(u);
	/* someone else's credential */
	u = mkue(f, ALICE);
	assert_int_equal(ue_bootstrap(u, f->cred[BOB]), EPERM);
	ue_free(u);
	boot(f, ALICE);
}

static void t_bootstrap_needs_channel(void **state)
{
	struct fx *f = *state;
	struct kms_req_ctx ctx = { .now = kms_now() };
	char *resp = NULL, c[64];
	const char *req = "{\"v\":1,\"type\":\"bootstrap\",\"id\":\"alice\","
			  "\"time\":1,\"nonce\":\"AAAAAAAAAAAAAAAAAAAAAA\","
			  "\"mac\":\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
			  "AAAAAAAAA\"}";

	assert_int_equal(kms_handle(f->s, &ctx, req, strlen(req), &resp), 0);
	assert_string_equal(code_of(resp, c, sizeof(c)), "auth-failed");
	free(resp);
}

/* ---- 2: point-to-point ---- */

static void t_p2p(void **state)
{
	struct fx *f = *state;
	struct ue_key ka, kb;
	struct kms_callkey ck;
	char c[64];

	assert_int_equal(ue_invite(f->ue[ALICE], "bob", NULL,
				   "xcoder1.keymix.test", NULL, 0, stmt,
				   sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "p2p", "alice", NULL, stmt,
				   reply, sizeof(reply), &kb), 0);
	assert_string_equal(replay(f, c, sizeof(c)), "replay");
	assert_int_equal(ue_finish(f->ue[ALICE], "bob", NULL, reply, 0, &ka),
			 0);
	assert_memory_equal(ka.leg_key, kb.leg_key, 32);
	assert_string_equal(ka.ref, kb.ref);
	assert_int_equal(ka.side, KEYLEG_SIDE_INITIATOR);
	assert_int_equal(kb.side, KEYLEG_SIDE_RESPONDER);
	/* a reply is used once: Ra is gone after finish */
	assert_int_equal(ue_finish(f->ue[ALICE], "bob", NULL, reply, 0, &ka),
			 ENOENT);
	/* the transcoder named by the caller, and only it, gets K */
	assert_int_equal(kms_store_callkey_get(f->s, kb.ref,
					       "xcoder1.keymix.test",
					       kms_now(), &ck), 0);
	assert_memory_equal(ck.key, kb.leg_key, 32);
	assert_string_equal(ck.caller, "alice");
	assert_int_equal(kms_store_callkey_get(f->s, kb.ref,
					       "xcoder2.keymix.test",
					       kms_now(), &ck), EACCES);
	assert_int_equal(kms_store_callkey_get(f->s, "nope", "xcoder1",
					       kms_now(), &ck), ENOENT);
	assert_int_equal(kms_store_callkey_get(f->s, kb.ref,
					       "xcoder1.keymix.test",
					       kms_now() + 2 * 86400, &ck),
			 EKEYEXPIRED);
}

static void t_p2p_identities(void **state)
{
	struct fx *f = *state;
	struct ue_key k;

	assert_int_equal(ue_invite(f->ue[ALICE], "bob", NULL, NULL, NULL, 0,
				   stmt, sizeof(stmt)), 0);
	/* carol presents bob's invitation */
	assert_int_equal(ue_answer(f->ue[CAROL], "p2p", "alice", NULL, stmt,
				   reply, sizeof(reply), &k), EPERM);
	assert_string_equal(f->last_err, "auth-failed");
	/* bob claims the invitation came from dave */
	assert_int_equal(ue_answer(f->ue[BOB], "p2p", "dave", NULL, stmt,
				   reply, sizeof(reply), &k), EPERM);
	assert_string_equal(f->last_err, "auth-failed");
}

static void t_p2p_tampered(void **state)
{
	struct fx *f = *state;
	struct ue_key k;
	size_t i, n;
	int refused = 0;

	assert_int_equal(ue_invite(f->ue[ALICE], "bob", NULL, NULL, NULL, 0,
				   stmt, sizeof(stmt)), 0);
	n = strlen(stmt);
	/* flip characters across token and sealed part */
	for (i = 3; i < n; i += n / 7) {
		char o = stmt[i];

		stmt[i] = o == 'A' ? 'B' : 'A';
		if (ue_answer(f->ue[BOB], "p2p", "alice", NULL, stmt, reply,
			      sizeof(reply), &k) == EPERM)
			refused++;
		stmt[i] = o;
	}
	assert_int_equal(refused, 7);
	assert_int_equal(ue_answer(f->ue[BOB], "p2p", "alice", NULL, stmt,
				   reply, sizeof(reply), &k), 0);
	/* tampered reply: the caller refuses it */
	reply[20] = reply[20] == 'A' ? 'B' : 'A';
	assert_int_equal(ue_finish(f->ue[ALICE], "bob", NULL, reply, 0, &k),
			 EBADMSG);
}

static void t_stale_request(void **state)
{
	struct fx *f = *state;
	struct ue_key k;
	char c[64];

	assert_int_equal(ue_invite(f->ue[ALICE], "bob", NULL, NULL, NULL, 0,
				   stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "p2p", "alice", NULL, stmt,
				   reply, sizeof(reply), &k), 0);
	/* the same request 10 minutes later: outside the time window */
	set_clock(600);
	assert_string_equal(replay(f, c, sizeof(c)), "stale");
	/* an invite older than its validity */
	set_clock(3700);
	assert_int_equal(ue_answer(f->ue[BOB], "p2p", "alice", NULL, stmt,
				   reply, sizeof(reply), &k), EPERM);
	assert_string_equal(f->last_err, "stale");
}

static void t_token_expired(void **state)
{
	struct fx *f = *state;
	struct ue_key k;

	set_clock(86400 + 10);
	assert_int_equal(ue_invite(f->ue[ALICE], "bob", NULL, NULL, NULL, 0,
				   stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "p2p", "alice", NULL, stmt,
				   reply, sizeof(reply), &k), EPERM);
	assert_string_equal(f->last_err, "token-expired");
	boot(f, ALICE);
	boot(f, BOB);
	assert_int_equal(ue_invite(f->ue[ALICE], "bob", NULL, NULL, NULL, 0,
				   stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "p2p", "alice", NULL, stmt,
				   reply, sizeof(reply), &k), 0);
}

static void t_kkms_grace(void **state)
{
	struct fx *f = *state;
	struct ue_key k;

	kms_store_cfg(f->s)->kkms_grace = 600;
	set_clock(100);
	assert_int_equal(kms_ring_rotate(f->s, "kkms", kms_now()), 0);
	/* old tokens work during the grace period */
	set_clock(100 + 599);
	assert_int_equal(ue_invite(f->ue[ALICE], "bob", NULL, NULL, NULL, 0,
				   stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "p2p", "alice", NULL, stmt,
				   reply, sizeof(reply), &k), 0);
	/* and not after it, also once maintenance destroyed the key */
	set_clock(100 + 600);
	assert_int_equal(ue_answer(f->ue[BOB], "p2p", "alice", NULL, stmt,
				   reply, sizeof(reply), &k), EPERM);
	assert_string_equal(f->last_err, "kkms-retired");
	assert_int_equal(kms_ring_maintain(f->s, kms_now()), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "p2p", "alice", NULL, stmt,
				   reply, sizeof(reply), &k), EPERM);
	assert_string_equal(f->last_err, "kkms-retired");
	/* new tokens are under the new Kkms */
	boot(f, ALICE);
	boot(f, BOB);
	assert_int_equal(ue_invite(f->ue[ALICE], "bob", NULL, NULL, NULL, 0,
				   stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "p2p", "alice", NULL, stmt,
				   reply, sizeof(reply), &k), 0);
}

/* ---- 3: passive join ---- */

static void t_conf_passive(void **state)
{
	struct fx *f = *state;
	struct ue_key kb, kc, ka1, ka2;
	char rb[UE_STMT_MAX], sc[UE_STMT_MAX];
	struct kms_legkey lk;
	struct kms_conf conf;

	assert_int_equal(ue_invite(f->ue[ALICE], "bob", "bridge1", NULL, "c",
				   1, stmt, sizeof(stmt)), 0);
	/* the second invitation is made before the first is answered */
	assert_int_equal(ue_invite(f->ue[ALICE], "carol", "bridge1", NULL,
				   "c", 0, sc, sizeof(sc)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "conf-passive", "alice", NULL,
				   stmt, rb, sizeof(rb), &kb), 0);
	assert_int_equal(ue_answer(f->ue[CAROL], "conf-passive", "alice",
				   NULL, sc, reply, sizeof(reply), &kc), 0);
	assert_string_equal(kb.ref, kc.ref);
	assert_memory_not_equal(kb.leg_key, kc.leg_key, 32);
	assert_int_equal(ue_finish(f->ue[ALICE], "bob", "c", rb, 0, &ka1), 0);
	assert_int_equal(ue_finish(f->ue[ALICE], "carol", "c", reply, 0,
				   &ka2), 0);
	assert_memory_equal(ka1.leg_key, ka2.leg_key, 32);
	assert_memory_not_equal(ka1.leg_key, kb.leg_key, 32);
	/* what the bridge fetches */
	assert_int_equal(kms_store_conf_get(f->s, kb.ref, kms_now(), &conf),
			 0);
	assert_string_equal(conf.focus, "bridge1");
	assert_string_equal(conf.chairman, "alice");
	assert_int_equal(kms_store_legkey_get(f->s, kb.ref, "bob", kms_now(),
					      &lk), 0);
	assert_memory_equal(lk.key, kb.leg_key, 32);
	assert_string_equal(lk.focus, "bridge1");
	assert_int_equal(kms_store_legkey_get(f->s, kb.ref, "alice",
					      kms_now(), &lk), 0);
	assert_memory_equal(lk.key, ka1.leg_key, 32);
	assert_int_equal(kms_store_legkey_get(f->s, kb.ref, "dave", kms_now(),
					      &lk), ENOENT);
	assert_int_equal(kms_store_legkey_get(f->s, kb.ref, "bob",
					      kms_now() + 2 * 86400, &lk),
			 EKEYEXPIRED);
	/* a new Ra is a new conference */
	assert_int_equal(ue_invite(f->ue[ALICE], "dave", "bridge1", NULL, "c",
				   1, stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[DAVE], "conf-passive", "alice", NULL,
				   stmt, reply, sizeof(reply), &kb), 0);
	assert_string_not_equal(kb.ref, kc.ref);
	kms_wipe(&lk, sizeof(lk));
}

static void t_conf_lifetime(void **state)
{
	struct fx *f = *state;
	struct kms_legkey lk;
	struct ue_key kb, kc;

	assert_int_equal(ue_invite(f->ue[ALICE], "bob", "bridge1", NULL, "l",
				   1, stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "conf-passive", "alice", NULL,
				   stmt, reply, sizeof(reply), &kb), 0);
	/* 20 h later (tokens still valid) carol is invited */
	set_clock(20 * 3600);
	assert_int_equal(ue_invite(f->ue[ALICE], "carol", "bridge1", NULL,
				   "l", 0, stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[CAROL], "conf-passive", "alice",
				   NULL, stmt, reply, sizeof(reply), &kc), 0);
	assert_string_equal(kb.ref, kc.ref);
	/* at 30 h bob's leg has expired, carol's and the conference not */
	set_clock(30 * 3600);
	assert_int_equal(kms_store_legkey_get(f->s, kb.ref, "bob", kms_now(),
					      &lk), EKEYEXPIRED);
	assert_int_equal(kms_store_legkey_get(f->s, kb.ref, "carol",
					      kms_now(), &lk), 0);
	assert_memory_equal(lk.key, kc.leg_key, 32);
	kms_wipe(&lk, sizeof(lk));
}

static void t_conf_focus(void **state)
{
	struct fx *f = *state;
	struct ue_key k;

	assert_int_equal(ue_invite(f->ue[ALICE], "bob", "bridge1", NULL, "f",
				   1, stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "conf-passive", "alice", NULL,
				   stmt, reply, sizeof(reply), &k), 0);
	assert_int_equal(ue_invite(f->ue[ALICE], "carol", "bridge2", NULL,
				   "f", 0, stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[CAROL], "conf-passive", "alice",
				   NULL, stmt, reply, sizeof(reply), &k),
			 EPERM);
	assert_string_equal(f->last_err, "focus-conflict");
	/* an invitation naming no focus is not a conference invitation */
	assert_int_equal(ue_invite(f->ue[ALICE], "carol", NULL, NULL, NULL,
				   0, stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[CAROL], "conf-passive", "alice",
				   NULL, stmt, reply, sizeof(reply), &k),
			 EPERM);
	assert_string_equal(f->last_err, "malformed");
}

/* ---- 4: active join ---- */

static void t_active_join(void **state)
{
	struct fx *f = *state;
	const char *el[] = { "dave" };
	struct kms_legkey lk;
	struct ue_key k;
	int i;

	assert_int_equal(kms_conf_register(f->s, "team", "bridge1", "s3cret",
					   el, 1, kms_now(),
					   kms_now() + 3600), 0);
	assert_int_equal(kms_conf_register(f->s, "team", "bridge1", "x",
					   NULL, 0, kms_now(),
					   kms_now() + 3600), EEXIST);
	assert_int_equal(ue_join(f->ue[BOB], "team", "s3cret", &k), 0);
	assert_int_equal(kms_store_legkey_get(f->s, "team", "bob", kms_now(),
					      &lk), 0);
	assert_memory_equal(lk.key, k.leg_key, 32);
	assert_string_equal(lk.focus, "bridge1");
	assert_int_equal(ue_join(f->ue[DAVE], "team", NULL, &k), 0);
	/* wrong secret, no proof */
	assert_int_equal(ue_join(f->ue[CAROL], "team", "guess", &k), EPERM);
	assert_string_equal(f->last_err, "wrong-secret");
	assert_int_equal(ue_join(f->ue[CAROL], "team", NULL, &k), EPERM);
	assert_string_equal(f->last_err, "wrong-secret");
	assert_int_equal(kms_store_legkey_get(f->s, "team", "carol",
					      kms_now(), &lk), ENOENT);
	/* per identity: 5 failures, then even the right secret waits */
	for (i = 0; i < 3; i++)
		assert_int_equal(ue_join(f->ue[CAROL], "team", "guess", &k),
				 EPERM);
	assert_int_equal(ue_join(f->ue[CAROL], "team", "s3cret", &k), EPERM);
	assert_string_equal(f->last_err, "rate-limited");
	/* the window passes */
	set_clock(601);
	assert_int_equal(ue_join(f->ue[CAROL], "team", "s3cret", &k), 0);
	/* unknown conference, passive conference */
	assert_int_equal(ue_join(f->ue[CAROL], "nope", "s3cret", &k), EPERM);
	assert_string_equal(f->last_err, "conference-unknown");
	kms_wipe(&lk, sizeof(lk));
}

static void t_active_rate_conf(void **state)
{
	struct fx *f = *state;
	struct ue_key k;
	int i, j;

	kms_store_cfg(f->s)->fail_max_conf = 6;
	assert_int_equal(kms_conf_register(f->s, "t2", "bridge1", "pw", NULL,
					   0, kms_now(),
					   kms_now() + 3600), 0);
	/* three identities guess twice each: the conference locks */
	for (i = BOB; i <= DAVE; i++)
		for (j = 0; j < 2; j++)
			assert_int_equal(ue_join(f->ue[i], "t2", "x", &k),
					 EPERM);
	assert_int_equal(ue_join(f->ue[ERIN], "t2", "pw", &k), EPERM);
	assert_string_equal(f->last_err, "rate-limited");
	/* another conference is not affected */
	assert_int_equal(kms_conf_register(f->s, "t3", "bridge1", "pw", NULL,
					   0, kms_now(),
					   kms_now() + 3600), 0);
	assert_int_equal(ue_join(f->ue[ERIN], "t3", "pw", &k), 0);
	/* expired conference */
	set_clock(3601);
	boot(f, ERIN);
	assert_int_equal(ue_join(f->ue[ERIN], "t3", "pw", &k), EPERM);
	assert_string_equal(f->last_err, "conference-expired");
}

/* a passive conference opened for active join keeps its reference */
static void t_active_open_passive(void **state)
{
	struct fx *f = *state;
	struct ue_key kb, kc, kd, ke, ka;
	char ref[KMS_REF_MAX], rb[UE_STMT_MAX];
	struct kms_legkey lk;
	struct kms_conf c;

	assert_int_equal(ue_invite(f->ue[ALICE], "bob", "bridge1", NULL, "o",
				   1, stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "conf-passive", "alice", NULL,
				   stmt, rb, sizeof(rb), &kb), 0);
	snprintf(ref, sizeof(ref), "%s", kb.ref);
	/* not open yet: the secret does not help */
	assert_int_equal(ue_join(f->ue[DAVE], ref, "s3cret", &kd), EPERM);
	assert_string_equal(f->last_err, "not-active-join");
	/* another focus than the chairman named is refused, nothing kept */
	assert_int_equal(kms_conf_register(f->s, ref, "bridge2", "s3cret",
					   NULL, 0, kms_now(),
					   kms_now() + 3600), EACCES);
	assert_int_equal(kms_store_conf_get(f->s, ref, kms_now(), &c), 0);
	assert_int_equal(c.active, 0);
	assert_int_equal(ue_join(f->ue[DAVE], ref, "s3cret", &kd), EPERM);
	assert_string_equal(f->last_err, "not-active-join");
	/* the controller opens it with the chairman's focus */
	assert_int_equal(kms_conf_register(f->s, ref, "bridge1", "s3cret",
					   NULL, 0, kms_now(),
					   kms_now() + 3600), 0);
	assert_int_equal(kms_conf_register(f->s, ref, "bridge1", "other",
					   NULL, 0, kms_now(),
					   kms_now() + 3600), EEXIST);
	assert_int_equal(kms_store_conf_get(f->s, ref, kms_now(), &c), 0);
	assert_int_equal(c.active, 2);
	assert_string_equal(c.chairman, "alice");
	assert_string_equal(c.focus, "bridge1");
	assert_int_equal(ue_join(f->ue[DAVE], ref, "s3cret", &kd), 0);
	assert_string_equal(kd.ref, ref);
	/* the bridge fetches dave's leg under the chairman's reference */
	assert_int_equal(kms_store_legkey_get(f->s, ref, "dave", kms_now(),
					      &lk), 0);
	assert_memory_equal(lk.key, kd.leg_key, 32);
	assert_string_equal(lk.focus, "bridge1");
	assert_int_equal(kms_store_legkey_get(f->s, ref, "bob", kms_now(),
					      &lk), 0);
	assert_memory_equal(lk.key, kb.leg_key, 32);
	/* a wrong proof is refused and records nothing */
	assert_int_equal(ue_join(f->ue[ERIN], ref, "guess", &ke), EPERM);
	assert_string_equal(f->last_err, "wrong-secret");
	assert_int_equal(kms_store_legkey_get(f->s, ref, "erin", kms_now(),
					      &lk), ENOENT);
	/* the chairman still invites into the same conference, same K1 */
	assert_int_equal(ue_invite(f->ue[ALICE], "carol", "bridge1", NULL,
				   "o", 0, stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[CAROL], "conf-passive", "alice",
				   NULL, stmt, reply, sizeof(reply), &kc), 0);
	assert_string_equal(kc.ref, ref);
	assert_int_equal(ue_finish(f->ue[ALICE], "carol", "o", reply, 0,
				   &ka), 0);
	assert_int_equal(kms_store_legkey_get(f->s, ref, "alice", kms_now(),
					      &lk), 0);
	assert_memory_equal(lk.key, ka.leg_key, 32);
	/* but nobody else may claim it as a chairman or with another focus */
	assert_int_equal(kms_conf_ensure(f->s, ref, "bridge1", "bob",
					 kms_now() + 3600), EACCES);
	assert_int_equal(kms_conf_ensure(f->s, ref, "bridge2", "alice",
					 kms_now() + 3600), EACCES);
	kms_wipe(&lk, sizeof(lk));
}

/* an active-join-only conference is no passive conference; expiry */
static void t_active_open_refused(void **state)
{
	struct fx *f = *state;
	struct ue_key kb;
	char ref[KMS_REF_MAX];

	assert_int_equal(kms_conf_register(f->s, "act", "bridge1", "pw", NULL,
					   0, kms_now(), kms_now() + 3600), 0);
	assert_int_equal(kms_conf_ensure(f->s, "act", "bridge1", "alice",
					 kms_now() + 3600), EACCES);
	assert_int_equal(ue_invite(f->ue[ALICE], "bob", "bridge1", NULL, "x",
				   1, stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "conf-passive", "alice", NULL,
				   stmt, reply, sizeof(reply), &kb), 0);
	snprintf(ref, sizeof(ref), "%s", kb.ref);
	/* the legs (and so the conference) live leg_lifetime: 1 day */
	set_clock(86400 + 1);
	assert_int_equal(kms_conf_register(f->s, ref, "bridge1", "pw", NULL,
					   0, kms_now(), kms_now() + 3600),
			 EKEYEXPIRED);
	assert_int_equal(kms_conf_register(f->s, "", "bridge1", "pw", NULL,
					   0, kms_now(), kms_now() + 3600),
			 EINVAL);
}

/* ---- 6a: rekey ---- */

static void t_rekey(void **state)
{
	struct fx *f = *state;
	struct kms_legkey lk;
	struct ue_key k1, k2;

	assert_int_equal(kms_conf_register(f->s, "rk", "bridge1", "pw", NULL,
					   0, kms_now(),
					   kms_now() + 3600), 0);
	assert_int_equal(ue_join(f->ue[BOB], "rk", "pw", &k1), 0);
	assert_int_equal(k1.generation, 1);
	assert_int_equal(ue_rekey(f->ue[BOB], "rk", &k2), 0);
	assert_int_equal(k2.generation, 2);
	assert_memory_not_equal(k1.leg_key, k2.leg_key, 32);
	assert_int_equal(kms_store_legkey_get(f->s, "rk", "bob", kms_now(),
					      &lk), 0);
	assert_int_equal(lk.generation, 2);
	assert_memory_equal(lk.key, k2.leg_key, 32);
	assert_true(lk.has_prev);
	assert_int_equal(lk.prev_generation, 1);
	assert_memory_equal(lk.prev_key, k1.leg_key, 32);
	/* after the overlap the previous generation is gone */
	set_clock(31);
	assert_int_equal(kms_store_legkey_get(f->s, "rk", "bob", kms_now(),
					      &lk), 0);
	assert_false(lk.has_prev);
	/* carol has no leg to rekey */
	assert_int_equal(ue_rekey(f->ue[CAROL], "rk", &k1), EPERM);
	assert_string_equal(f->last_err, "no-leg");
	kms_wipe(&lk, sizeof(lk));
}

/* ---- 5: forking ---- */

static void t_fork(void **state)
{
	struct fx *f = *state;
	char rc[UE_STMT_MAX];
	struct ue_key kb, kc, ka;

	assert_int_equal(kms_group_add(f->s, "sales", "bob"), 0);
	assert_int_equal(kms_group_add(f->s, "sales", "carol"), 0);
	assert_int_equal(ue_invite(f->ue[ALICE], "sales", NULL, NULL, NULL, 0,
				   stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "fork", "alice", "sales", stmt,
				   reply, sizeof(reply), &kb), 0);
	assert_int_equal(ue_answer(f->ue[CAROL], "fork", "alice", "sales",
				   stmt, rc, sizeof(rc), &kc), 0);
	/* both hold K, but each media key is KDF(K, own R) */
	assert_memory_not_equal(kb.leg_key, kc.leg_key, 32);
	/* carol cannot open what carries Rb (it is under Ka) */
	assert_int_equal(ue_finish(f->ue[CAROL], "sales", NULL, reply, 1,
				   &ka), ENOENT);
	assert_int_equal(ue_finish(f->ue[ALICE], "sales", NULL, reply, 1,
				   &ka), 0);
	assert_memory_equal(ka.leg_key, kb.leg_key, 32);
	assert_string_equal(ka.peer, "bob");
	/* dave is not in the group */
	assert_int_equal(ue_answer(f->ue[DAVE], "fork", "alice", "sales",
				   stmt, rc, sizeof(rc), &kc), EPERM);
	assert_string_equal(f->last_err, "not-member");
}

/* ---- 6: deferred delivery ---- */

static void t_deferred(void **state)
{
	struct fx *f = *state;
	struct kms_mbx_deposit d;
	struct ue_key ka, kb;

	kms_store_cfg(f->s)->kkms_grace = 600;
	assert_int_equal(kms_store_mailbox_set(f->s, "bob", "vm1"), 0);
	assert_int_equal(ue_invite(f->ue[ALICE], "bob", NULL, NULL, NULL, 0,
				   stmt, sizeof(stmt)), 0);
	assert_int_equal(kms_mbx_deposit(f->s, "vm2", "alice", "bob", stmt, 1,
					 kms_now(), &d), EACCES);
	assert_int_equal(kms_mbx_deposit(f->s, "vm1", "alice", "carol", stmt,
					 1, kms_now(), &d), EACCES);
	assert_int_equal(kms_mbx_deposit(f->s, "vm1", "carol", "bob", stmt, 1,
					 kms_now(), &d), EBADMSG);
	assert_int_equal(kms_mbx_deposit(f->s, "vm1", "alice", "bob", stmt, 1,
					 kms_now(), &d), 0);
	assert_true(d.has_ke2m);
	assert_int_equal(ue_finish(f->ue[ALICE], "bob", NULL, d.ea_reply, 0,
				   &ka), 0);
	assert_true(ka.has_ke2m);
	assert_memory_equal(ka.ke2m, d.ke2m, 32);
	/* two Kkms rotations later, far past the grace period */
	set_clock(7 * 86400);
	assert_int_equal(kms_ring_maintain(f->s, kms_now()), 0);
	set_clock(15 * 86400);
	assert_int_equal(kms_ring_maintain(f->s, kms_now()), 0);
	boot(f, BOB);
	assert_int_equal(ue_retrieve(f->ue[BOB], "alice", d.ticket, &kb), 0);
	assert_memory_equal(kb.leg_key, ka.leg_key, 32);
	/* the ticket is bound to alice -> bob */
	boot(f, CAROL);
	assert_int_equal(ue_retrieve(f->ue[CAROL], "alice", d.ticket, &kb),
			 EPERM);
	assert_string_equal(f->last_err, "auth-failed");
	/* past the retention time */
	set_clock(31 * 86400);
	boot(f, BOB);
	assert_int_equal(ue_retrieve(f->ue[BOB], "alice", d.ticket, &kb),
			 EPERM);
	assert_string_equal(f->last_err, "ticket-expired");
	kms_wipe(&d, sizeof(d));
}

/* ---- malformed input ---- */

static void t_malformed(void **state)
{
	static const struct {
		const char *req;
		const char *code;
	} cases[] = {
		{ "{\"v\":1,\"type\":\"p2p\"", "malformed" },
		{ "[1,2]", "malformed" },
		{ "{\"type\":\"p2p\"}", "bad-version" },
		{ "{\"v\":2,\"type\":\"p2p\"}", "bad-version" },
		{ "{\"v\":1,\"type\":\"launch\"}", "unsupported" },
		{ "{\"v\":1,\"type\":\"p2p\",\"ida\":\"a\",\"idb\":\"b\"}",
		  "malformed" },
		{ "{\"v\":1,\"type\":\"p2p\",\"ida\":\"a b\",\"idb\":\"b\"}",
		  "malformed" },
		{ "{\"v\":1,\"type\":\"p2p\",\"ida\":\"a\",\"idb\":\"b\","
		  "\"invite\":\"AAAA\",\"request\":\"AAAA\"}", "malformed" },
		{ "{\"v\":1,\"type\":\"p2p\",\"v\":1}", "malformed" },
		{ "{\"v\":1,\"type\":\"conf-join\",\"id\":\"a\",\"conf\":7}",
		  "malformed" },
	};
	struct fx *f = *state;
	char *resp, c[64], *big;
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_int_equal(handle(f, cases[i].req, strlen(cases[i].req),
					&resp), 0);
		assert_string_equal(code_of(resp, c, sizeof(c)),
				    cases[i].code);
		free(resp);
	}
	/* oversized */
	big = malloc(KMS_FRAME_MAX + 2);
	memset(big, ' ', KMS_FRAME_MAX + 1);
	big[0] = '{';
	big[KMS_FRAME_MAX] = '}';
	assert_int_equal(handle(f, big, KMS_FRAME_MAX + 1, &resp), 0);
	assert_string_equal(code_of(resp, c, sizeof(c)), "oversized");
	free(resp);
	free(big);
	/* an identity of 200 characters */
	big = calloc(1, 512);
	snprintf(big, 512, "{\"v\":1,\"type\":\"rekey\",\"conf\":\"c\","
		 "\"id\":\"%0200d\"}", 7);
	assert_int_equal(handle(f, big, strlen(big), &resp), 0);
	assert_string_equal(code_of(resp, c, sizeof(c)), "malformed");
	free(resp);
	free(big);
}

/* ---- store ---- */

static void t_store_persist(void **state)
{
	struct fx *f = *state;
	char db[128], kf[128], path[160];
	uint8_t cred[32], cred2[32], n[16] = { 1 };
	struct kms_store *s;
	uint32_t id1, id2;
	uint8_t k1[32], k2[32];

	snprintf(db, sizeof(db), "%s/s.db", f->dir);
	snprintf(kf, sizeof(kf), "%s/s.key", f->dir);
	assert_int_equal(kms_store_keyfile_create(kf), 0);
	assert_int_equal(kms_store_keyfile_create(kf), EEXIST);
	assert_int_equal(kms_store_open(&s, db, kf), 0);
	assert_int_equal(kms_id_add(s, "zed", cred), 0);
	assert_int_equal(kms_seen_add(s, n, kms_now(), kms_now()), 0);
	assert_int_equal(kms_ring_current(s, "kkms", kms_now(), &id1, k1), 0);
	s = kms_store_close(s);
	assert_int_equal(kms_store_open(&s, db, kf), 0);
	assert_int_equal(kms_id_cred(s, "zed", cred2), 0);
	assert_memory_equal(cred, cred2, 32);
	assert_int_equal(kms_seen_add(s, n, kms_now(), kms_now()), EALREADY);
	assert_int_equal(kms_ring_current(s, "kkms", kms_now(), &id2, k2), 0);
	assert_int_equal(id1, id2);
	assert_memory_equal(k1, k2, 32);
	assert_int_equal(kms_id_cred(s, "nobody", cred2), ENOENT);
	s = kms_store_close(s);
	/* another storage key cannot open it */
	unlink(kf);
	assert_int_equal(kms_store_keyfile_create(kf), 0);
	assert_int_equal(kms_store_open(&s, db, kf), EIO);
	assert_null(s);
	unlink(kf);
	unlink(db);
	snprintf(path, sizeof(path), "%s-wal", db);
	unlink(path);
	snprintf(path, sizeof(path), "%s-shm", db);
	unlink(path);
}

static void t_fixtures(void **state)
{
	struct fx *f = *state;
	const char *who[] = { "p1", "p2" };
	uint8_t keys[64], ck[32];
	struct kms_legkey lk;
	struct kms_callkey c;
	char mb[KMS_ID_MAX];

	assert_int_equal(kms_store_fixture_conf(f->s, "fx", "bridge9", who, 2,
						kms_now(), kms_now() + 60,
						keys), 0);
	assert_int_equal(kms_store_legkey_get(f->s, "fx", "p2", kms_now(),
					      &lk), 0);
	assert_memory_equal(lk.key, keys + 32, 32);
	assert_string_equal(lk.focus, "bridge9");
	assert_int_equal(kms_store_legkey_get(f->s, "fx", "p2",
					      kms_now() + 60, &lk),
			 EKEYEXPIRED);
	assert_int_equal(kms_store_legkey_get(f->s, "nx", "p2", kms_now(),
					      &lk), ENOENT);
	assert_int_equal(kms_store_fixture_call(f->s, "call1", "a", "b", "x1",
						kms_now() + 60, ck), 0);
	assert_int_equal(kms_store_callkey_get(f->s, "call1", "x1",
					       kms_now(), &c), 0);
	assert_memory_equal(c.key, ck, 32);
	assert_int_equal(kms_store_mailbox_of(f->s, "nobody", mb,
					      sizeof(mb)), ENOENT);
	assert_int_equal(kms_store_audit(f->s, kms_now(), "bridge9", "bridge",
					 "legkey", "fx", "p2", "ok"), 0);
	kms_wipe(&lk, sizeof(lk));
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int kms_test_flows(void)
{
	const struct CMUnitTest tests[] = {
		T(t_bootstrap), T(t_bootstrap_needs_channel), T(t_p2p),
		T(t_p2p_identities), T(t_p2p_tampered), T(t_stale_request),
		T(t_token_expired), T(t_kkms_grace), T(t_conf_passive),
		T(t_conf_lifetime),
		T(t_conf_focus), T(t_active_join), T(t_active_rate_conf),
		T(t_active_open_passive), T(t_active_open_refused),
		T(t_rekey), T(t_fork), T(t_deferred), T(t_malformed),
		T(t_store_persist), T(t_fixtures),
	};

	return cmocka_run_group_tests_name("kms_flows", tests, NULL, NULL);
}

int main(void)
{
	int fails = 0;

	fails += kms_test_proto();
	fails += kms_test_flows();
	return fails ? 1 : 0;
}
