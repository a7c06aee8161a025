/** @file kmsnode_main.c  kmsnode: a network node's requests over NDS */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "kms_nds/kms.h"
#include "kms_nds/kms_proto.h"

/*
 * kmsnode --kms HOST:PORT --cert PEM --key PEM --ca PEM COMMAND ...
 *   fetch CONF PARTICIPANT   a bridge's leg-key fetch
 *   transcoder CALL          a transcoder's call-key fetch
 *   deposit CALLER RECIPIENT INVITE [--ke2m]   a mailbox deposit
 *   ping
 * Prints key=value lines; key material only with --print-key.  For
 * tests, demos and operators; the bridge links the client library.
 */

static void usage(void)
{
	fputs("usage: kmsnode --kms HOST:PORT --cert PEM --key PEM --ca PEM\n"
	      "               [--timeout MS] [--print-key] COMMAND\n"
	      "  fetch CONF PARTICIPANT | transcoder CALL |\n"
	      "  deposit CALLER RECIPIENT INVITE [--ke2m] | ping\n", stderr);
}

static void print_key(const char *name, const uint8_t *k, size_t n)
{
	char b64[4 * KMS_NDS_KEY_MAX / 3 + 8];

	if (n > KMS_NDS_KEY_MAX)
		return;
	EVP_EncodeBlock((unsigned char *)b64, k, (int)n);
	printf("%s=%s\n", name, b64);
	kms_wipe(b64, sizeof(b64));
}

static int run(struct kms_client *c, const char **pos, int npos,
	       int print, int ke2m, char *err, size_t errsz)
{
	uint8_t key[KMS_NDS_KEY_MAX];
	size_t len = sizeof(key);
	uint32_t gen = 0;
	int e = EINVAL;

	if (npos == 3 && !strcmp(pos[0], "fetch")) {
		e = kms_client_fetch_legkey(c, pos[1], pos[2], key, &len, &gen,
					    err, errsz);
		if (!e)
			printf("conference=%s\nparticipant=%s\n"
			       "generation=%u\n", pos[1], pos[2], gen);
	}
	else if (npos == 2 && !strcmp(pos[0], "transcoder")) {
		e = kms_client_fetch_transcoder_key(c, pos[1], key, &len,
						    &gen, err, errsz);
		if (!e)
			printf("call=%s\ngeneration=%u\n", pos[1], gen);
	}
	else if (npos == 4 && !strcmp(pos[0], "deposit")) {
		struct kms_nds_mbx *m = calloc(1, sizeof(*m));

		if (!m)
			return ENOMEM;
		e = kms_client_mailbox_deposit(c, pos[1], pos[2], pos[3], ke2m,
					       m, err, errsz);
		if (!e) {
			printf("ea_reply=%s\nticket=%s\nretain_until=%llu\n",
			       m->for_a, m->ticket,
			       (unsigned long long)m->retain_until);
			if (m->ke2m_len)
				print_key("ke2m", m->ke2m, m->ke2m_len);
		}
		kms_wipe(m, sizeof(*m));
		free(m);
		return e;
	}
	else if (npos == 1 && !strcmp(pos[0], "ping")) {
		e = kms_client_ping(c, err, errsz);
		if (!e)
			printf("ping=ok\n");
		return e;
	}
	else {
		usage();
		return EINVAL;
	}
	if (!e && print)
		print_key("leg_key", key, len);
	kms_wipe(key, sizeof(key));
	return e;
}

int main(int argc, char **argv)
{
	struct kms_client_cfg cfg = { .timeout_ms = 5000 };
	const char *kms = NULL, *pos[8];
	char host[256], *colon, err[256] = "";
	struct kms_client *c = NULL;
	int i, npos = 0, print = 0, ke2m = 0, e;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--print-key"))
			print = 1;
		else if (!strcmp(a, "--ke2m"))
			ke2m = 1;
		else if (!strncmp(a, "--", 2) && i + 1 < argc) {
			const char *v = argv[++i];

			if (!strcmp(a, "--kms"))
				kms = v;
			else if (!strcmp(a, "--cert"))
				cfg.cert_file = v;
			else if (!strcmp(a, "--key"))
				cfg.key_file = v;
			else if (!strcmp(a, "--ca"))
				cfg.ca_file = v;
			else if (!strcmp(a, "--timeout"))
				cfg.timeout_ms = (unsigned)strtoul(v, NULL,
								   10);
			else {
				usage();
				return 2;
			}
		}
		else if (npos < 8 && strncmp(a, "--", 2))
			pos[npos++] = a;
		else {
			usage();
			return 2;
		}
	}
	if (!kms || !cfg.cert_file || !cfg.key_file || !cfg.ca_file) {
		usage();
		return 2;
	}
	snprintf(host, sizeof(host), "%s", kms);
	colon = strrchr(host, ':');
	if (!colon) {
		usage();
		return 2;
	}
	*colon = '\0';
	cfg.port = (uint16_t)strtoul(colon + 1, NULL, 10);
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	cfg.host = host;
	e = kms_client_alloc(&c, &cfg);
	if (!e)
		e = run(c, pos, npos, print, ke2m, err, sizeof(err));
	if (e)
		fprintf(stderr, "kmsnode: %s\n", err[0] ? err : strerror(e));
	kms_client_free(c);
	return e ? 1 : 0;
}
