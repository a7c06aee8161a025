/** @file ue_test.c  Unit tests: the ue library (state, errors, key output) */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kms_nds/kms_int.h"
#include "ue/ue.h"

struct fx {
	struct kms_store *s;
	char dir[64], path[128];
	uint8_t exporter[32], cred[32];
};

static int xfer(const char *req, size_t len, char **resp, size_t *rlen,
		void *arg)
{
	struct fx *f = arg;
	struct kms_req_ctx ctx = { .now = kms_now(), .has_exporter = 1 };
	int err;

	memcpy(ctx.exporter, f->exporter, 32);
	err = kms_handle(f->s, &ctx, req, len, resp);
	if (!err)
		*rlen = strlen(*resp);
	return err;
}

static struct ue *open_ue(struct fx *f, const char *id)
{
	struct ue_cfg cfg = { .state_file = f->path, .xfer = xfer,
			      .xfer_arg = f };
	struct ue *u = NULL;

	memcpy(cfg.xfer_exporter, f->exporter, 32);
	assert_int_equal(ue_open(&u, &cfg, id), 0);
	return u;
}

static int setup(void **state)
{
	static const uint8_t skey[32] = { 7 };
	struct fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/ue_test.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/a.json", f->dir);
	assert_int_equal(kms_store_open_key(&f->s, ":memory:", skey), 0);
	assert_int_equal(kms_random(f->exporter, 32), 0);
	assert_int_equal(kms_id_add(f->s, "alice", f->cred), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	char tmp[160];

	unlink(f->path);
	snprintf(tmp, sizeof(tmp), "%s.tmp", f->path);
	unlink(tmp);
	rmdir(f->dir);
	kms_store_close(f->s);
	free(f);
	return 0;
}

static void t_state_file(void **state)
{
	struct fx *f = *state;
	struct ue_cfg cfg = { .state_file = f->path };
	char stmt[UE_STMT_MAX];
	struct stat st;
	struct ue *u;

	/* no state and no id: nothing to open */
	assert_int_equal(ue_open(&u, &cfg, NULL), ENOENT);
	u = open_ue(f, "alice");
	/* no token yet */
	assert_int_equal(ue_invite(u, "bob", NULL, NULL, NULL, 0, stmt,
				   sizeof(stmt)), ENOKEY);
	assert_int_equal(ue_bootstrap(u, f->cred), 0);
	ue_free(u);
	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* reopened without --id, the identity comes from the file */
	u = open_ue(f, NULL);
	assert_string_equal(ue_id(u), "alice");
	assert_true(ue_token_expires(u) > kms_now());
	assert_int_equal(ue_invite(u, "bob", NULL, NULL, NULL, 0, stmt,
				   sizeof(stmt)), 0);
	ue_free(u);
	/* another identity on the same state file is refused */
	cfg.xfer = xfer;
	assert_int_equal(ue_open(&u, &cfg, "mallory"), EINVAL);
	assert_null(u);
}

static void t_conf_label_keeps_ra(void **state)
{
	struct fx *f = *state;
	char s1[UE_STMT_MAX], s2[UE_STMT_MAX];
	struct ue_key k;
	struct ue *u = open_ue(f, "alice");

	assert_int_equal(ue_bootstrap(u, f->cred), 0);
	assert_int_equal(ue_invite(u, "bob", "br", NULL, "L", 1, s1,
				   sizeof(s1)), 0);
	assert_int_equal(ue_invite(u, "carol", "br", NULL, "L", 0, s2,
				   sizeof(s2)), 0);
	/* finishing with an unknown label or peer */
	assert_int_equal(ue_finish(u, "bob", "other", s1, 0, &k), ENOENT);
	assert_int_equal(ue_finish(u, "dave", NULL, s1, 0, &k), ENOENT);
	/* an invite is not a reply */
	assert_int_equal(ue_finish(u, "bob", "L", s1, 0, &k), EBADMSG);
	ue_free(u);
}

static void t_unreachable(void **state)
{
	struct fx *f = *state;
	struct ue_cfg cfg = { .state_file = f->path, .kms = "127.0.0.1:1",
			      .ca_file = "/nonexistent", .timeout_ms = 500 };
	struct ue *u = NULL;

	assert_int_equal(ue_open(&u, &cfg, "alice"), 0);
	assert_int_equal(ue_bootstrap(u, f->cred), ECONNREFUSED);
	assert_non_null(strstr(ue_error(u), "cannot reach KMS"));
	ue_free(u);
	cfg.kms = NULL;
	assert_int_equal(ue_open(&u, &cfg, "alice"), 0);
	assert_int_equal(ue_bootstrap(u, f->cred), EINVAL);
	ue_free(u);
}

static char *print_to_string(const struct ue_key *k, int keys)
{
	char *buf = NULL;
	size_t n = 0;
	FILE *m = open_memstream(&buf, &n);

	assert_non_null(m);
	assert_int_equal(ue_key_print(m, k, keys), 0);
	fclose(m);
	return buf;
}

static void t_print(void **state)
{
	struct ue_key a = { .flow = KEYLEG_FLOW_CONFERENCE,
			    .side = KEYLEG_SIDE_PARTICIPANT,
			    .generation = 3 };
	struct keyleg_keysalt rx, tx, brx, btx;
	char *out, line[512], want[200];
	int p;

	(void)state;
	memset(a.leg_key, 0x5a, 32);
	snprintf(a.ref, sizeof(a.ref), "CONF1");
	snprintf(a.peer, sizeof(a.peer), "bridge1");
	out = print_to_string(&a, 0);
	assert_non_null(strstr(out, "conference=CONF1\n"));
	assert_non_null(strstr(out, "side=participant\n"));
	assert_non_null(strstr(out, "generation=3\n"));
	assert_null(strstr(out, "leg_key="));
	assert_null(strstr(out, "profile="));
	free(out);
	out = print_to_string(&a, 1);
	assert_non_null(strstr(out, "leg_key=WlpaWlpaWlpaWlpaWlpaWlpaWlpa"
			       "WlpaWlpaWlpaWlo=\n"));
	/* every profile; tx/rx are what keyleg derives, and the bridge's
	 * rx is our tx */
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++) {
		char itx[128], irx[128];

		assert_int_equal(keyleg_derive(a.leg_key, 32, p,
					       KEYLEG_FLOW_CONFERENCE,
					       KEYLEG_SIDE_PARTICIPANT, &rx,
					       &tx), 0);
		assert_int_equal(keyleg_derive(a.leg_key, 32, p,
					       KEYLEG_FLOW_CONFERENCE,
					       KEYLEG_SIDE_BRIDGE, &brx,
					       &btx), 0);
		assert_memory_equal(tx.b, brx.b, tx.len);
		assert_int_equal(keyleg_inline_encode(&tx, itx, sizeof(itx)),
				 0);
		assert_int_equal(keyleg_inline_encode(&rx, irx, sizeof(irx)),
				 0);
		snprintf(want, sizeof(want), "profile=%s tx=",
			 keyleg_profile_name(p));
		snprintf(line, sizeof(line), "%s%s rx=%s\n", want, itx, irx);
		assert_non_null(strstr(out, line));
	}
	free(out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(t_state_file, setup,
						teardown),
		cmocka_unit_test_setup_teardown(t_conf_label_keeps_ra, setup,
						teardown),
		cmocka_unit_test_setup_teardown(t_unreachable, setup,
						teardown),
		cmocka_unit_test(t_print),
	};

	return cmocka_run_group_tests_name("ue", tests, NULL, NULL);
}
