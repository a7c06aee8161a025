/** @file kmsd_main.c  kmsd: the Key Management Server daemon and admin */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "kms_nds/kms.h"
#include "kms_nds/kms_int.h"
#include "kms_nds/kmsd_int.h"

/* ---- options ---- */

struct opts {
	const char *db, *skey, *listen, *cert, *key, *port_file;
	const char *nds, *nds_cert, *nds_key, *nds_ca, *audit_log;
	const char *nds_port_file;
	const char *focus, *secret, *secret_file, *eligible, *mailbox;
	const char *caller, *recipient, *invite;
	unsigned long max_conns, idle_ms, req_ms, expires_in;
	int ke2m, print_key;
	const char *pos[8];
	int npos;
	struct kms_cfg cfg;
};

static void usage(void)
{
	fputs(
"usage: kmsd serve --db FILE --storage-key FILE --listen ADDR:PORT\n"
"                  --cert PEM --key PEM [--port-file FILE]\n"
"                  [--token-lifetime S] [--kkms-lifetime S] [--kkms-grace S]\n"
"                  [--window S] [--invite-validity S] [--leg-lifetime S]\n"
"                  [--rekey-overlap S] [--mbx-retention S]\n"
"                  [--max-conns N] [--idle-timeout MS]\n"
"                  [--request-timeout MS]\n"
"                  [--nds ADDR:PORT --nds-cert PEM --nds-key PEM\n"
"                   --nds-ca PEM [--audit-log FILE] [--nds-port-file F]]\n"
"       kmsd keygen FILE                       (new storage key, mode 0600)\n"
"       kmsd admin --db FILE --storage-key FILE COMMAND ...\n"
"  add-identity ID            provision ID; prints cred=<base64url>\n"
"  group-add GROUP MEMBER     forking group membership\n"
"  mailbox-set USER NODE      USER's deferred-delivery mailbox node\n"
"  conf-register REF --focus BRIDGE [--secret S | --secret-file F]\n"
"                [--eligible ID,ID...] [--expires-in S]\n"
"                             new REF: an active-join conference; an\n"
"                             existing passive one: opened for active join\n"
"                             (BRIDGE must be the focus its chairman named)\n"
"  rotate                     start a new Kkms (old one: grace period)\n"
"  mbx-deposit --mailbox NODE --caller A --recipient B --invite STMT\n"
"              [--ke2m]       what the NDS mailbox request does\n"
"  leg-get REF PARTICIPANT [--print-key]   what the bridge fetches\n",
	      stderr);
}

static int parse_ul(const char *s, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(s, &end, 10);
	return errno || *end || !*s ? EINVAL : 0;
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct {
		const char *name;
		size_t off;
	} sopt[] = {
#define S(n, f) { n, offsetof(struct opts, f) }
		S("--db", db), S("--storage-key", skey), S("--listen", listen),
		S("--cert", cert), S("--key", key),
		S("--port-file", port_file), S("--nds", nds),
		S("--nds-cert", nds_cert), S("--nds-key", nds_key),
		S("--nds-ca", nds_ca), S("--audit-log", audit_log),
		S("--nds-port-file", nds_port_file),
		S("--focus", focus), S("--secret", secret),
		S("--secret-file", secret_file), S("--eligible", eligible),
		S("--mailbox", mailbox), S("--caller", caller),
		S("--recipient", recipient), S("--invite", invite),
#undef S
	};
	static const struct {
		const char *name;
		size_t off;
		int ul;
	} nopt[] = {
#define C(n, f) { n, offsetof(struct kms_cfg, f), 0 }
#define U(n, f) { n, offsetof(struct opts, f), 1 }
		C("--token-lifetime", token_lifetime),
		C("--kkms-lifetime", kkms_lifetime),
		C("--kkms-grace", kkms_grace), C("--window", time_window),
		C("--invite-validity", invite_validity),
		C("--leg-lifetime", leg_lifetime),
		C("--rekey-overlap", rekey_overlap),
		C("--mbx-retention", mbx_retention),
		U("--max-conns", max_conns), U("--idle-timeout", idle_ms),
		U("--request-timeout", req_ms), U("--expires-in", expires_in),
#undef C
#undef U
	};
	int i;
	size_t j;

	for (i = 0; i < argc; i++) {
		const char *a = argv[i];
		int done = 0;

		if (!strcmp(a, "--ke2m")) {
			o->ke2m = 1;
			continue;
		}
		if (!strcmp(a, "--print-key")) {
			o->print_key = 1;
			continue;
		}
		if (strncmp(a, "--", 2)) {
			if (o->npos >= 8)
				return EINVAL;
			o->pos[o->npos++] = a;
			continue;
		}
		if (i + 1 >= argc) {
			fprintf(stderr, "kmsd: %s needs a value\n", a);
			return EINVAL;
		}
		for (j = 0; j < sizeof(sopt) / sizeof(sopt[0]); j++) {
			if (!strcmp(a, sopt[j].name)) {
				*(const char **)((char *)o + sopt[j].off) =
					argv[++i];
				done = 1;
			}
		}
		for (j = 0; !done && j < sizeof(nopt) / sizeof(nopt[0]); j++) {
			unsigned long v;

			if (strcmp(a, nopt[j].name))
				continue;
			if (parse_ul(argv[++i], &v)) {
				fprintf(stderr, "kmsd: bad number for %s\n",
					a);
				return EINVAL;
			}
			if (nopt[j].ul)
				*(unsigned long *)((char *)o +
						   nopt[j].off) = v;
			else
				*(uint32_t *)((char *)&o->cfg + nopt[j].off) =
					(uint32_t)v;
			done = 1;
		}
		if (!done) {
			fprintf(stderr, "kmsd: unknown option %s\n", a);
			return EINVAL;
		}
	}
	return 0;
}

static int open_store(const struct opts *o, struct kms_store **sp)
{
	int err;

	if (!o->db || !o->skey) {
		fprintf(stderr, "kmsd: --db and --storage-key are required\n");
		return EINVAL;
	}
	err = kms_store_open(sp, o->db, o->skey);
	if (err) {
		fprintf(stderr, "kmsd: cannot open store %s: %s\n", o->db,
			err == EIO ? "database error or wrong storage key"
				   : strerror(err));
		return err;
	}
	*kms_store_cfg(*sp) = o->cfg;
	return 0;
}

/* ---- admin ---- */

static int admin_conf_register(struct kms_store *s, const struct opts *o)
{
	const char *el[64];
	char buf[4096], secret[256];
	size_t n = 0;
	const char *sec = o->secret;
	uint64_t now = kms_now();
	int err;

	if (o->npos < 2 || !o->focus)
		return EINVAL;
	if (o->secret_file) {
		FILE *f = fopen(o->secret_file, "r");
		size_t l;

		if (!f)
			return errno;
		l = fread(secret, 1, sizeof(secret) - 1, f);
		fclose(f);
		while (l && (secret[l - 1] == '\n' || secret[l - 1] == '\r'))
			l--;
		secret[l] = '\0';
		sec = secret;
	}
	if (o->eligible) {
		char *p = buf, *c;

		snprintf(buf, sizeof(buf), "%s", o->eligible);
		while (p && *p && n < 64) {
			c = strchr(p, ',');
			if (c)
				*c++ = '\0';
			if (*p)
				el[n++] = p;
			p = c;
		}
	}
	err = kms_conf_register(s, o->pos[1], o->focus, sec, el, n, now,
				now + (o->expires_in ? o->expires_in
						     : o->cfg.leg_lifetime));
	kms_wipe(secret, sizeof(secret));
	if (err == EEXIST)
		fprintf(stderr, "kmsd: conference %s is already open for"
			" active join\n", o->pos[1]);
	else if (err == EACCES)
		fprintf(stderr, "kmsd: conference %s has another focus than"
			" %s (the one the chairman named); refused\n",
			o->pos[1], o->focus);
	else if (err == EKEYEXPIRED)
		fprintf(stderr, "kmsd: conference %s has expired; refused\n",
			o->pos[1]);
	else if (!err)
		printf("conference=%s\nfocus=%s\n", o->pos[1], o->focus);
	return err;
}

static int admin_leg_get(struct kms_store *s, const struct opts *o)
{
	struct kms_legkey lk;
	char b64[64];
	int err;

	if (o->npos < 3)
		return EINVAL;
	err = kms_store_legkey_get(s, o->pos[1], o->pos[2], kms_now(), &lk);
	if (err) {
		fprintf(stderr, "kmsd: leg-get: %s\n", strerror(err));
		return err;
	}
	printf("conference=%s\nparticipant=%s\nfocus=%s\ngeneration=%u\n"
	       "expires=%llu\n", lk.conf_ref, lk.participant, lk.focus,
	       lk.generation, (unsigned long long)lk.expires_s);
	if (o->print_key) {
		EVP_EncodeBlock((unsigned char *)b64, lk.key, 32);
		printf("leg_key=%s\n", b64);
	}
	kms_wipe(&lk, sizeof(lk));
	kms_wipe(b64, sizeof(b64));
	return 0;
}

static int admin(const struct opts *o)
{
	struct kms_store *s = NULL;
	const char *cmd = o->npos ? o->pos[0] : "";
	int err;

	err = open_store(o, &s);
	if (err)
		return err;
	if (!strcmp(cmd, "add-identity") && o->npos == 2) {
		uint8_t cred[32];
		char b64[64];

		err = kms_id_add(s, o->pos[1], cred);
		if (!err)
			err = kms_b64_encode(cred, 32, b64, sizeof(b64));
		if (!err)
			printf("id=%s\ncred=%s\n", o->pos[1], b64);
		kms_wipe(cred, sizeof(cred));
		kms_wipe(b64, sizeof(b64));
	}
	else if (!strcmp(cmd, "group-add") && o->npos == 3) {
		err = kms_group_add(s, o->pos[1], o->pos[2]);
	}
	else if (!strcmp(cmd, "mailbox-set") && o->npos == 3) {
		err = kms_store_mailbox_set(s, o->pos[1], o->pos[2]);
	}
	else if (!strcmp(cmd, "conf-register")) {
		err = admin_conf_register(s, o);
	}
	else if (!strcmp(cmd, "rotate")) {
		err = kms_ring_rotate(s, "kkms", kms_now());
		if (!err)
			err = kms_ring_maintain(s, kms_now());
	}
	else if (!strcmp(cmd, "mbx-deposit") && o->mailbox && o->caller &&
		 o->recipient && o->invite) {
		struct kms_mbx_deposit d;

		err = kms_mbx_deposit(s, o->mailbox, o->caller, o->recipient,
				      o->invite, o->ke2m, kms_now(), &d);
		if (!err)
			printf("ea_reply=%s\nticket=%s\nretain_until=%llu\n",
			       d.ea_reply, d.ticket,
			       (unsigned long long)d.retain_until_s);
		if (!err && d.has_ke2m) {
			char b64[64];

			EVP_EncodeBlock((unsigned char *)b64, d.ke2m, 32);
			printf("ke2m=%s\n", b64);
			kms_wipe(b64, sizeof(b64));
		}
		kms_wipe(&d, sizeof(d));
	}
	else if (!strcmp(cmd, "leg-get")) {
		err = admin_leg_get(s, o);
	}
	else {
		usage();
		err = EINVAL;
	}
	if (err)
		fprintf(stderr, "kmsd admin %s: %s\n", cmd, strerror(err));
	kms_store_close(s);
	return err;
}

/* ---- server ---- */

/*
 * The NDS listener for network nodes (bridge, transcoder, mailbox: the
 * nds part of kms_nds, docs/nds.md) runs in this event loop on this
 * store.
 */
static struct kms_nds_srv *nds_srv;

static int nds_start(struct event_base *base, struct kms_store *s,
		     const struct opts *o)
{
	struct kms_nds_cfg cfg = {
		.cert_file = o->nds_cert, .key_file = o->nds_key,
		.ca_file = o->nds_ca, .audit_log = o->audit_log,
		.idle_timeout_ms = (unsigned)o->idle_ms,
		.request_timeout_ms = (unsigned)o->req_ms,
		.max_conns = (unsigned)o->max_conns,
	};
	char host[128], *c;
	unsigned long port;
	int err;

	if (!o->nds)
		return 0;
	if (!o->nds_cert || !o->nds_key || !o->nds_ca) {
		fprintf(stderr, "kmsd: --nds needs --nds-cert, --nds-key and "
			"--nds-ca\n");
		return EINVAL;
	}
	snprintf(host, sizeof(host), "%s", o->nds);
	c = strrchr(host, ':');
	if (!c || parse_ul(c + 1, &port) || port > 65535) {
		fprintf(stderr, "kmsd: --nds ADDR:PORT expected\n");
		return EINVAL;
	}
	*c = '\0';
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	err = kms_nds_listen(base, s, host, (uint16_t)port, &cfg, &nds_srv);
	if (err) {
		fprintf(stderr, "kmsd: NDS listener on %s: %s\n", o->nds,
			strerror(err));
		return err;
	}
	fprintf(stderr, "kmsd: NDS listening on port %u\n",
		kms_nds_port(nds_srv));
	if (o->nds_port_file) {
		FILE *f = fopen(o->nds_port_file, "w");

		if (f) {
			fprintf(f, "%u\n", kms_nds_port(nds_srv));
			fclose(f);
		}
	}
	return 0;
}

static void nds_stop(void)
{
	nds_srv = kms_nds_free(nds_srv);
}

static void on_hup(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	(void)arg;
	if (nds_srv && kms_nds_reload(nds_srv))
		fprintf(stderr, "kmsd: NDS reload failed\n");
}

static void on_signal(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	event_base_loopexit(arg, NULL);
}

static void on_maint(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	if (kms_ring_maintain(arg, kms_now()))
		fprintf(stderr, "kmsd: key ring maintenance failed\n");
}

static int serve(struct opts *o)
{
	struct kmsd_srv_cfg scfg = {
		.cert_file = o->cert, .key_file = o->key,
		.max_conns = (unsigned)o->max_conns,
		.idle_ms = (unsigned)o->idle_ms,
		.request_ms = (unsigned)o->req_ms,
	};
	struct kms_store *s = NULL;
	struct event_base *base = NULL;
	struct event *sig_int = NULL, *sig_term = NULL, *maint = NULL;
	struct event *sig_hup = NULL;
	struct kmsd_srv *srv = NULL;
	struct timeval tv = { 60, 0 };
	int err;

	if (!o->listen || !o->cert || !o->key) {
		usage();
		return EINVAL;
	}
	signal(SIGPIPE, SIG_IGN);
	err = open_store(o, &s);
	if (err)
		return err;
	err = kms_ring_maintain(s, kms_now());
	base = event_base_new();
	if (!err && !base)
		err = ENOMEM;
	if (!err)
		err = kmsd_srv_listen(base, s, o->listen, &scfg, &srv);
	if (err) {
		fprintf(stderr, "kmsd: cannot listen on %s: %s\n", o->listen,
			strerror(err));
		goto out;
	}
	err = nds_start(base, s, o);
	if (err)
		goto out;
	if (o->port_file) {
		FILE *f = fopen(o->port_file, "w");

		if (f) {
			fprintf(f, "%u\n", kmsd_srv_port(srv));
			fclose(f);
		}
	}
	sig_int = evsignal_new(base, SIGINT, on_signal, base);
	sig_term = evsignal_new(base, SIGTERM, on_signal, base);
	sig_hup = evsignal_new(base, SIGHUP, on_hup, NULL);
	maint = event_new(base, -1, EV_PERSIST, on_maint, s);
	if (!sig_int || !sig_term || !sig_hup || !maint) {
		err = ENOMEM;
		goto out;
	}
	evsignal_add(sig_int, NULL);
	evsignal_add(sig_term, NULL);
	evsignal_add(sig_hup, NULL);
	evtimer_add(maint, &tv);
	fprintf(stderr, "kmsd: listening on port %u\n", kmsd_srv_port(srv));
	event_base_dispatch(base);
	fprintf(stderr, "kmsd: exiting\n");
 out:
	if (maint)
		event_free(maint);
	if (sig_int)
		event_free(sig_int);
	if (sig_term)
		event_free(sig_term);
	if (sig_hup)
		event_free(sig_hup);
	nds_stop();
	kmsd_srv_free(srv);
	if (base)
		event_base_free(base);
	kms_store_close(s);
	return err;
}

/**
 * KEYMIX_TEST_CLOCK_OFFSET moves kmsd's clock in every build (the
 * integration tests expire tokens, grace periods and conferences with
 * it); say so loudly, it must never be set in operation.
 */
static void clock_warning(void)
{
	const char *e = getenv("KEYMIX_TEST_CLOCK_OFFSET");

	if (e && *e)
		fprintf(stderr, "kmsd: WARNING: KEYMIX_TEST_CLOCK_OFFSET=%.32s"
			" is set: the KMS clock is moved by that many seconds"
			" (token, Kkms, replay and conference times); this is"
			" for tests only, unset it in operation\n", e);
}

int main(int argc, char **argv)
{
	struct opts o;
	int err;

	clock_warning();
	memset(&o, 0, sizeof(o));
	kms_cfg_default(&o.cfg);
	if (argc < 2) {
		usage();
		return 2;
	}
	if (!strcmp(argv[1], "keygen") && argc == 3) {
		err = kms_store_keyfile_create(argv[2]);
		if (err)
			fprintf(stderr, "kmsd keygen: %s\n", strerror(err));
		return err ? 1 : 0;
	}
	if (parse_opts(argc - 2, argv + 2, &o))
		return 2;
	if (!strcmp(argv[1], "serve"))
		err = serve(&o);
	else if (!strcmp(argv[1], "admin"))
		err = admin(&o);
	else {
		usage();
		return 2;
	}
	return err ? 1 : 0;
}
