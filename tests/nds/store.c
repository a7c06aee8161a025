/**
 * @file store.c  NDS link on the real KMS store: flows end to end
 *
 * UEs run the real flows against the KMS core in-process (ue library
 * with a transport hook into kms_handle), then network nodes fetch over
 * TLS from kms_nds_listen on the same store.  The store belongs to one
 * thread at a time: UE steps run while the listener thread is stopped.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kms_nds/kms_int.h"
#include "kms_nds/kms_proto.h"
#include "kms_nds/kms_store.h"
#include "tests/nds/nds_test.h"
#include "ue/ue.h"

#define BRIDGE1 "bridge1" DOM
#define BRIDGE2 "bridge2" DOM
#define XCODER1 "transcoder1" DOM
#define MBOX1   "mailbox1" DOM

enum { ALICE, BOB, CAROL, NUE };
static const char *const names[NUE] = { "alice", "bob", "carol" };

struct sfx {
	struct kms_store *s;
	char dir[64];
	uint8_t exporter[32];
	uint8_t cred[NUE][32];
	struct ue *ue[NUE];
	struct srvfix nds;
};

static char stmt[UE_STMT_MAX], sc[UE_STMT_MAX];
static char rb[UE_STMT_MAX], rc[UE_STMT_MAX];

static int xfer(const char *req, size_t len, char **resp, size_t *rlen,
		void *arg)
{
	struct sfx *f = arg;
	struct kms_req_ctx ctx = { .now = kms_now(), .has_exporter = 1 };
	int err;

	memcpy(ctx.exporter, f->exporter, 32);
	err = kms_handle(f->s, &ctx, req, len, resp);
	if (!err)
		*rlen = strlen(*resp);
	return err;
}

static int setup(void **state)
{
	static const uint8_t skey[32] = { 7, 7, 7 };
	struct sfx *f = calloc(1, sizeof(*f));
	char path[128];
	int i;

	assert_non_null(f);
	unsetenv("KEYMIX_TEST_CLOCK_OFFSET");
	snprintf(f->dir, sizeof(f->dir), "/tmp/nds_store.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(kms_store_open_key(&f->s, ":memory:", skey), 0);
	assert_int_equal(kms_random(f->exporter, 32), 0);
	for (i = 0; i < NUE; i++) {
		struct ue_cfg cfg = { .xfer = xfer, .xfer_arg = f };

		memcpy(cfg.xfer_exporter, f->exporter, 32);
		snprintf(path, sizeof(path), "%s/%s.json", f->dir, names[i]);
		cfg.state_file = path;
		assert_int_equal(kms_id_add(f->s, names[i], f->cred[i]), 0);
		assert_int_equal(ue_open(&f->ue[i], &cfg, names[i]), 0);
		assert_int_equal(ue_bootstrap(f->ue[i], f->cred[i]), 0);
	}
	f->nds.store = f->s;
	snprintf(f->nds.audit, sizeof(f->nds.audit), "%s/audit.log", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct sfx *f = *state;
	char cmd[96];
	int i;

	fix_stop(&f->nds);
	for (i = 0; i < NUE; i++)
		f->ue[i] = ue_free(f->ue[i]);
	kms_store_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	if (system(cmd))
		return -1;
	unsetenv("KEYMIX_TEST_CLOCK_OFFSET");
	free(f);
	return 0;
}

static int node_fetch(struct sfx *f, const char *node, const char *ref,
		      const char *part, uint8_t key[32], uint32_t *gen,
		      char *err, size_t errsz)
{
	struct kms_client *c = client_for(node, f->nds.port, 3000);
	uint8_t k[KMS_NDS_KEY_MAX];
	size_t klen = sizeof(k);
	int r;

	assert_non_null(c);
	r = kms_client_fetch_legkey(c, ref, part, k, &klen, gen, err, errsz);
	if (!r) {
		assert_int_equal(klen, 32);
		memcpy(key, k, 32);
	}
	kms_client_free(c);
	return r;
}

/* Passive join (TR 7.4.3.5) then the focus bridge fetches K1, K2, K3. */
static void test_passive_conf(void **state)
{
	struct sfx *f = *state;
	struct ue_key ka, kb, kc;
	uint8_t key[32];
	uint32_t gen = 0;
	char err[256];

	assert_int_equal(ue_invite(f->ue[ALICE], "bob", BRIDGE1, NULL, "c",
				   1, stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_invite(f->ue[ALICE], "carol", BRIDGE1, NULL, "c",
				   0, sc, sizeof(sc)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "conf-passive", "alice", NULL,
				   stmt, rb, sizeof(rb), &kb), 0);
	assert_int_equal(ue_answer(f->ue[CAROL], "conf-passive", "alice",
				   NULL, sc, rc, sizeof(rc), &kc), 0);
	assert_int_equal(ue_finish(f->ue[ALICE], "bob", "c", rb, 0, &ka), 0);

	assert_int_equal(fix_start(&f->nds, 0, 0, 0, 0), 0);
	assert_int_equal(node_fetch(f, "bridge1", kb.ref, "alice", key, &gen,
				    err, sizeof(err)), 0);
	assert_memory_equal(key, ka.leg_key, 32);
	assert_int_equal(node_fetch(f, "bridge1", kb.ref, "bob", key, &gen,
				    err, sizeof(err)), 0);
	assert_memory_equal(key, kb.leg_key, 32);
	assert_int_equal(gen, kb.generation);
	assert_int_equal(node_fetch(f, "bridge1", kb.ref, "carol", key, &gen,
				    err, sizeof(err)), 0);
	assert_memory_equal(key, kc.leg_key, 32);
	/* another bridge, another role, a stranger, a wrong reference */
	assert_int_equal(node_fetch(f, "bridge2", kb.ref, "bob", key, &gen,
				    err, sizeof(err)), EACCES);
	assert_non_null(strstr(err, "not the focus"));
	assert_int_equal(node_fetch(f, "transcoder1", kb.ref, "bob", key,
				    &gen, err, sizeof(err)), EACCES);
	assert_int_equal(node_fetch(f, "bridge1", kb.ref, "mallory", key,
				    &gen, err, sizeof(err)), ENOENT);
	assert_int_equal(node_fetch(f, "bridge1", "no-such-conf", "bob", key,
				    &gen, err, sizeof(err)), ENOENT);
	fix_stop(&f->nds);

	/* two days later (kmsd's clock) the legs have expired */
	setenv("KEYMIX_TEST_CLOCK_OFFSET", "172800", 1);
	assert_int_equal(fix_start(&f->nds, 0, 0, 0, 0), 0);
	assert_int_equal(node_fetch(f, "bridge1", kb.ref, "bob", key, &gen,
				    err, sizeof(err)), ENOENT);
	assert_non_null(strstr(err, "expired"));
	fix_stop(&f->nds);
	unsetenv("KEYMIX_TEST_CLOCK_OFFSET");
}

/* Rekey (6a): the bridge fetches the new generation. */
static void test_rekey(void **state)
{
	struct sfx *f = *state;
	struct ue_key kb, kb2;
	uint8_t key[32];
	uint32_t gen = 0;
	char err[256];

	assert_int_equal(ue_invite(f->ue[ALICE], "bob", BRIDGE1, NULL, "r",
				   1, stmt, sizeof(stmt)), 0);
	assert_int_equal(ue_answer(f->ue[BOB], "conf-passive", "alice", NULL,
				   stmt, rb, sizeof(rb), &kb), 0);
	assert_int_equal(ue_rekey(f->ue[BOB], kb.ref, &kb2), 0);
	assert_int_equal(kb2.generation, kb.generation + 1);
	assert_int_equal(fix_start(&f->nds, 0, 0, 0, 0), 0);
	assert_int_equal(node_fetch(f, "bridge1", kb.ref, "bob", key, &gen,
				    err, sizeof(err)), 0);
	assert_int_equal(gen, kb2.generation);
	assert_memory_equal(key, kb2.leg_key, 32);
	fix_stop(&f->nds);
}

/* Transcoder (TR 7.4.3.4): only the transcoder the call names. */
static void test_transcoder_call(void **state)
{
	struct sfx *f = *state;
	uint8_t k1[KMS_KEY_LEN], k2[KMS_KEY_LEN], key[KMS_NDS_KEY_MAX];
	uint64_t exp = kms_now() + 3600;
	struct kms_client *c;
	size_t klen = sizeof(key);
	char err[256];

	assert_int_equal(kms_store_fixture_call(f->s, "call-s1", "alice",
						"bob", XCODER1, exp, k1), 0);
	assert_int_equal(kms_store_fixture_call(f->s, "call-s2", "alice",
						"carol", "transcoder9" DOM,
						exp, k2), 0);
	assert_int_equal(fix_start(&f->nds, 0, 0, 0, 0), 0);
	c = client_for("transcoder1", f->nds.port, 3000);
	assert_non_null(c);
	assert_int_equal(kms_client_fetch_transcoder_key(c, "call-s1", key,
							 &klen, NULL, err,
							 sizeof(err)), 0);
	assert_int_equal(klen, 32);
	assert_memory_equal(key, k1, 32);
	klen = sizeof(key);
	assert_int_equal(kms_client_fetch_transcoder_key(c, "call-s2", key,
							 &klen, NULL, err,
							 sizeof(err)), EACCES);
	klen = sizeof(key);
	assert_int_equal(kms_client_fetch_transcoder_key(c, "call-s9", key,
							 &klen, NULL, err,
							 sizeof(err)), ENOENT);
	kms_client_free(c);
	fix_stop(&f->nds);
}

/* A bridge fetches every leg of a fixture conference, one connection. */
static void test_fixture_conf(void **state)
{
	static const char *const parts[] = { "p1", "p2", "p3", "p4" };
	struct sfx *f = *state;
	uint8_t keys[4 * KMS_KEY_LEN], key[KMS_NDS_KEY_MAX];
	struct kms_client *c;
	size_t i, klen;
	char err[256];

	assert_int_equal(kms_store_fixture_conf(f->s, "conf-fx", BRIDGE2,
						parts, 4, kms_now(),
						kms_now() + 3600, keys), 0);
	assert_int_equal(fix_start(&f->nds, 0, 0, 0, 0), 0);
	c = client_for("bridge2", f->nds.port, 3000);
	assert_non_null(c);
	for (i = 0; i < 4; i++) {
		klen = sizeof(key);
		assert_int_equal(kms_client_fetch_legkey(c, "conf-fx",
							 parts[i], key, &klen,
							 NULL, err,
							 sizeof(err)), 0);
		assert_memory_equal(key, keys + i * KMS_KEY_LEN, 32);
	}
	kms_client_free(c);
	fix_stop(&f->nds);
}

/* Deferred delivery (TR 7.4.3.3) with the mailbox over the NDS link. */
static void test_mailbox_deposit(void **state)
{
	struct sfx *f = *state;
	struct kms_nds_mbx *mb = calloc(1, sizeof(*mb));
	struct kms_client *c;
	struct ue_key ka, kb;
	char err[256];

	assert_non_null(mb);
	assert_int_equal(kms_store_mailbox_set(f->s, "bob", MBOX1), 0);
	assert_int_equal(ue_invite(f->ue[ALICE], "bob", NULL, NULL, NULL, 0,
				   stmt, sizeof(stmt)), 0);
	assert_int_equal(fix_start(&f->nds, 0, 0, 0, 0), 0);
	/* a bridge cannot deposit; the mailbox does not serve carol */
	c = client_for("bridge1", f->nds.port, 3000);
	assert_int_equal(kms_client_mailbox_deposit(c, "alice", "bob", stmt,
						    1, mb, err, sizeof(err)),
			 EACCES);
	kms_client_free(c);
	c = client_for("mailbox1", f->nds.port, 3000);
	assert_int_equal(kms_client_mailbox_deposit(c, "alice", "carol", stmt,
						    1, mb, err, sizeof(err)),
			 EACCES);
	assert_int_equal(kms_client_mailbox_deposit(c, "alice", "bob", stmt,
						    1, mb, err, sizeof(err)),
			 0);
	assert_int_equal(mb->ke2m_len, 32);
	assert_true(mb->retain_until > (uint64_t)kms_now());
	kms_client_free(c);
	fix_stop(&f->nds);
	/* the caller opens Ea(Ra, K, Ke2m); the recipient later gets K */
	assert_int_equal(ue_finish(f->ue[ALICE], "bob", NULL, mb->for_a, 0,
				   &ka), 0);
	assert_true(ka.has_ke2m);
	assert_memory_equal(ka.ke2m, mb->ke2m, 32);
	assert_int_equal(ue_retrieve(f->ue[BOB], "alice", mb->ticket, &kb),
			 0);
	assert_memory_equal(kb.leg_key, ka.leg_key, 32);
	free(mb);
}

int run_store_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_passive_conf, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_rekey, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transcoder_call, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_fixture_conf, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_mailbox_deposit, setup,
						teardown),
	};

	return cmocka_run_group_tests_name("nds_store", tests, NULL, NULL);
}
