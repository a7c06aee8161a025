/** @file ue_main.c  ue: walk through every KMS flow from a shell */

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kms_nds/kms_proto.h"
#include "ue/ue.h"

struct args {
	const char *state, *kms, *ca, *sni, *id, *cred, *cred_file;
	const char *to, *from, *group, *focus, *transcoder, *invite, *reply;
	const char *conf, *secret, *secret_file, *label, *ticket;
	int fresh, print_keys;
	unsigned long timeout;
};

static void usage(void)
{
	fputs(
"usage: ue COMMAND --state FILE [--kms HOST:PORT --ca PEM [--server-name N]]\n"
"          [--timeout MS] [--print-keys] ...\n"
"  bootstrap    --id ID (--cred B64 | --cred-file F)        flow 1\n"
"  invite|call  --to ID [--transcoder ID]    caller: prints invite=\n"
"  answer       --from ID --invite STMT      callee (p2p): prints reply_a=\n"
"  finish       --to ID --reply B64          caller: K from reply_a\n"
"  conf-invite  --to ID --focus BRIDGE [--label L] [--new]   chairman\n"
"  conf-answer  --from ID --invite STMT      invitee (passive join)\n"
"  conf-finish  --to ID --reply B64 [--label L]   chairman: K1\n"
"  conf-join    --conf REF [--secret S | --secret-file F]   active join\n"
"  rekey        --conf REF                   new generation of our leg key\n"
"  fork-answer  --from ID --group ID-G --invite STMT   forked callee\n"
"  fork-finish  --to ID-G --reply B64        caller: the answerer's key\n"
"  retrieve     --from ID --ticket B64       deferred delivery recipient\n"
"Key material is printed only with --print-keys (docs/kms-protocol.md).\n"
"A mailbox's deposit is a network node's request: kmsnode deposit.\n",
	      stderr);
}

static int parse(int argc, char **argv, struct args *a)
{
	static const struct {
		const char *name;
		size_t off;
	} o[] = {
#define S(n, f) { n, offsetof(struct args, f) }
		S("--state", state), S("--kms", kms), S("--ca", ca),
		S("--server-name", sni), S("--id", id), S("--cred", cred),
		S("--cred-file", cred_file), S("--to", to), S("--from", from),
		S("--group", group), S("--focus", focus),
		S("--transcoder", transcoder), S("--invite", invite),
		S("--reply", reply), S("--conf", conf), S("--secret", secret),
		S("--secret-file", secret_file), S("--label", label),
		S("--ticket", ticket),
#undef S
	};
	int i;
	size_t j;

	for (i = 0; i < argc; i++) {
		int done = 0;

		if (!strcmp(argv[i], "--new")) {
			a->fresh = 1;
			continue;
		}
		if (!strcmp(argv[i], "--print-keys")) {
			a->print_keys = 1;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "ue: %s: missing value\n", argv[i]);
			return EINVAL;
		}
		if (!strcmp(argv[i], "--timeout")) {
			char *end;

			a->timeout = strtoul(argv[++i], &end, 10);
			if (*end)
				return EINVAL;
			continue;
		}
		for (j = 0; j < sizeof(o) / sizeof(o[0]); j++) {
			if (!strcmp(argv[i], o[j].name)) {
				*(const char **)((char *)a + o[j].off) =
					argv[++i];
				done = 1;
				break;
			}
		}
		if (!done) {
			fprintf(stderr, "ue: unknown option %s\n", argv[i]);
			return EINVAL;
		}
	}
	return a->state ? 0 : EINVAL;
}

/** Read a one-line secret from a file (trailing newline dropped) */
static int read_line(const char *path, char *buf, size_t sz)
{
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return errno;
	n = fread(buf, 1, sz - 1, f);
	fclose(f);
	while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
		n--;
	buf[n] = '\0';
	return 0;
}

static int cmd_bootstrap(struct ue *u, const struct args *a)
{
	char line[128];
	const char *c = a->cred;
	uint8_t cred[32];
	size_t n;
	int err = 0;

	if (a->cred_file) {
		err = read_line(a->cred_file, line, sizeof(line));
		c = line;
	}
	if (!err && (!c || kms_b64_decode(c, cred, 32, &n) || n != 32))
		err = EINVAL;
	if (!err)
		err = ue_bootstrap(u, cred);
	kms_wipe(cred, sizeof(cred));
	kms_wipe(line, sizeof(line));
	if (!err)
		printf("id=%s\ntoken_expires=%llu\n", ue_id(u),
		       (unsigned long long)ue_token_expires(u));
	return err;
}

static int run(struct ue *u, const char *cmd, const struct args *a)
{
	char *buf = malloc(UE_STMT_MAX);
	char secret[256];
	struct ue_key k;
	int err = EINVAL, have_key = 0;

	if (!buf)
		return ENOMEM;
	memset(&k, 0, sizeof(k));
	if (!strcmp(cmd, "bootstrap")) {
		err = cmd_bootstrap(u, a);
	}
	else if (!strcmp(cmd, "invite") || !strcmp(cmd, "call") ||
		 !strcmp(cmd, "conf-invite")) {
		int conf = !strcmp(cmd, "conf-invite");

		if (conf && !a->focus)
			goto out;
		err = ue_invite(u, a->to, conf ? a->focus : NULL,
				a->transcoder,
				conf ? (a->label ? a->label : "default")
				     : NULL,
				a->fresh, buf, UE_STMT_MAX);
		if (!err)
			printf("from=%s\nto=%s\ninvite=%s\n", ue_id(u), a->to,
			       buf);
	}
	else if (!strcmp(cmd, "answer") || !strcmp(cmd, "conf-answer") ||
		 !strcmp(cmd, "fork-answer")) {
		const char *kind = !strcmp(cmd, "answer") ? "p2p"
				   : !strcmp(cmd, "conf-answer")
				   ? "conf-passive" : "fork";

		err = ue_answer(u, kind, a->from, a->group, a->invite, buf,
				UE_STMT_MAX, &k);
		if (!err)
			printf("reply_a=%s\n", buf);
		have_key = !err;
	}
	else if (!strcmp(cmd, "finish") || !strcmp(cmd, "conf-finish") ||
		 !strcmp(cmd, "fork-finish")) {
		int conf = !strcmp(cmd, "conf-finish");
		int fork = !strcmp(cmd, "fork-finish");

		err = ue_finish(u, a->to,
				conf ? (a->label ? a->label : "default")
				     : NULL,
				a->reply, fork, &k);
		have_key = !err;
	}
	else if (!strcmp(cmd, "conf-join")) {
		const char *s = a->secret;

		err = 0;
		if (a->secret_file) {
			err = read_line(a->secret_file, secret,
					sizeof(secret));
			s = secret;
		}
		if (!err)
			err = ue_join(u, a->conf, s, &k);
		kms_wipe(secret, sizeof(secret));
		have_key = !err;
	}
	else if (!strcmp(cmd, "rekey")) {
		err = ue_rekey(u, a->conf, &k);
		have_key = !err;
	}
	else if (!strcmp(cmd, "retrieve")) {
		err = ue_retrieve(u, a->from, a->ticket, &k);
		have_key = !err;
	}
	else {
		usage();
	}
	if (have_key)
		err = ue_key_print(stdout, &k, a->print_keys);
 out:
	kms_wipe(&k, sizeof(k));
	free(buf);
	return err;
}

int main(int argc, char **argv)
{
	struct args a;
	struct ue_cfg cfg;
	struct ue *u = NULL;
	int err;

	memset(&a, 0, sizeof(a));
	if (argc < 2 || parse(argc - 2, argv + 2, &a)) {
		usage();
		return 2;
	}
	cfg = (struct ue_cfg){ .state_file = a.state, .kms = a.kms,
			       .ca_file = a.ca, .server_name = a.sni,
			       .timeout_ms = (unsigned)a.timeout };
	err = ue_open(&u, &cfg, a.id);
	if (err) {
		fprintf(stderr, "ue: state %s: %s\n", a.state,
			err == ENOENT ? "missing (bootstrap with --id first)"
				      : strerror(err));
		return 1;
	}
	err = run(u, argv[1], &a);
	if (err)
		fprintf(stderr, "ue %s: %s\n", argv[1],
			ue_error(u)[0] ? ue_error(u) : strerror(err));
	ue_free(u);
	return err ? 1 : 0;
}
