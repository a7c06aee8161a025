/** @file srtpbench_main.c  SRTP cost: libsrtp2 on OpenSSL vs on NSS */

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <srtp2/srtp.h>
#include <srtp2/crypto_types.h>

#include "keyleg/keyleg.h"

/*
 * Three ways to run the same loop:
 *   openssl  libsrtp2 built on OpenSSL, linked statically (ours)
 *   debian   Debian's libsrtp2.so.1 (NSS), opened with dlopen; its symbols
 *            have the same names as the static ones, so it is loaded
 *            RTLD_LOCAL | RTLD_DEEPBIND and called through dlsym pointers
 *   keyleg   ours again, through keyleg's API (what the bridge pays)
 * Both libsrtp2 builds are version 2.5.0, so srtp_policy_t is the same.
 */

struct api {
	const char *name;
	srtp_err_status_t (*init)(void);
	srtp_err_status_t (*create)(srtp_t *, const srtp_policy_t *);
	srtp_err_status_t (*protect)(srtp_t, void *, int *);
	srtp_err_status_t (*unprotect)(srtp_t, void *, int *);
	srtp_err_status_t (*dealloc)(srtp_t);
	const char *(*version)(void);
	const char *backend;
};

struct opts {
	int profiles[KEYLEG_PROFILE_COUNT];
	unsigned sessions[8];
	int n_sessions;
	double seconds;
	unsigned long packets;  /* -k: fixed packet count per cell, or 0 */
	int want_openssl, want_debian, want_keyleg;
	const char *debian_lib;
};

#define PAYLOAD 160
#define PKT_BUF (12 + PAYLOAD + KEYLEG_TAILROOM)

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double now_s(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of this thread: not inflated when other work shares the core */
static double cpu_s(void)
{
	return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static void set_policy(srtp_policy_t *pol, enum keyleg_profile p)
{
	memset(pol, 0, sizeof(*pol));
	switch (p) {
	case KEYLEG_AES_CM_128_HMAC_SHA1_80:
		srtp_crypto_policy_set_aes_cm_128_hmac_sha1_80(&pol->rtp);
		break;
	case KEYLEG_AES_CM_128_HMAC_SHA1_32:
		srtp_crypto_policy_set_aes_cm_128_hmac_sha1_32(&pol->rtp);
		break;
	case KEYLEG_AES_256_CM_HMAC_SHA1_80:
		srtp_crypto_policy_set_aes_cm_256_hmac_sha1_80(&pol->rtp);
		break;
	case KEYLEG_AEAD_AES_128_GCM:
		srtp_crypto_policy_set_aes_gcm_128_16_auth(&pol->rtp);
		break;
	default:
		srtp_crypto_policy_set_aes_gcm_256_16_auth(&pol->rtp);
		break;
	}
	pol->rtcp = pol->rtp;
	pol->window_size = 1024;
}

static void fill_key(uint8_t *k, size_t n, unsigned seed)
{
	size_t i;

	for (i = 0; i < n; i++)
		k[i] = (uint8_t)(seed * 131 + i * 17 + (seed >> 8));
}

static void rtp_hdr(uint8_t *b, uint16_t seq, uint32_t ssrc)
{
	b[0] = 0x80;
	b[1] = 0x6f;
	b[2] = (uint8_t)(seq >> 8);
	b[3] = (uint8_t)seq;
	memset(b + 4, 0, 4);
	b[8] = (uint8_t)(ssrc >> 24);
	b[9] = (uint8_t)(ssrc >> 16);
	b[10] = (uint8_t)(ssrc >> 8);
	b[11] = (uint8_t)ssrc;
	memset(b + 12, 0x5a, PAYLOAD);
}

/* One session pair per live session: tx protects, rx unprotects */
struct sess {
	srtp_t tx, rx;
	struct keyleg *kl;
	uint16_t seq;
};

static int setup(const struct api *a, enum keyleg_profile p,
		 struct sess *s, unsigned n)
{
	struct keyleg_keysalt ks;
	srtp_policy_t pol;
	unsigned i;

	for (i = 0; i < n; i++) {
		memset(&ks, 0, sizeof(ks));
		ks.len = keyleg_profile_key_len(p) + keyleg_profile_salt_len(p);
		fill_key(ks.b, ks.len, i + 1);
		s[i].seq = (uint16_t)(i * 7);
		if (!a) {
			if (keyleg_alloc(&s[i].kl, p, &ks, &ks, NULL))
				return -1;
			continue;
		}
		set_policy(&pol, p);
		pol.key = ks.b;
		pol.ssrc.type = ssrc_any_outbound;
		if (a->create(&s[i].tx, &pol))
			return -1;
		pol.ssrc.type = ssrc_any_inbound;
		if (a->create(&s[i].rx, &pol))
			return -1;
	}
	return 0;
}

static void teardown(const struct api *a, struct sess *s, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		if (a) {
			if (s[i].tx)
				a->dealloc(s[i].tx);
			if (s[i].rx)
				a->dealloc(s[i].rx);
		}
		else
			keyleg_free(s[i].kl);
		memset(&s[i], 0, sizeof(s[i]));
	}
}

/* One packet through session i; returns 0 if it came back intact */
static int one(const struct api *a, struct sess *s, unsigned i,
	       uint32_t *w)
{
	uint8_t *b = (uint8_t *)w;
	size_t len = 12 + PAYLOAD;
	int ilen = (int)len;

	rtp_hdr(b, s[i].seq++, 0x1000 + i);
	if (!a) {
		if (keyleg_protect_rtp(s[i].kl, b, &len, PKT_BUF) ||
		    keyleg_unprotect_rtp(s[i].kl, b, &len, 0))
			return -1;
		ilen = (int)len;
	}
	else if (a->protect(s[i].tx, b, &ilen) ||
		 a->unprotect(s[i].rx, b, &ilen))
		return -1;
	return ilen == 12 + PAYLOAD && b[12] == 0x5a ? 0 : -1;
}

struct cell {
	unsigned long packets;
	double cpu_ns, wall_ns;   /* per packet */
};

/*
 * `count` packets round-robin from session *ip on.  Kept out of line so
 * that callgrind can count the packet path alone:
 * valgrind --tool=callgrind --toggle-collect=srtpbench_loop ... -k N
 */
static __attribute__((noinline, noclone)) int
srtpbench_loop(const struct api *a, struct sess *s, unsigned n,
	       uint32_t *w, unsigned long count, unsigned *ip)
{
	unsigned long k;
	unsigned i = *ip;

	for (k = 0; k < count; k++) {
		if (one(a, s, i, w))
			return -1;
		if (++i == n)
			i = 0;
	}
	*ip = i;
	return 0;
}

/*
 * Round-robin over n live sessions for about `seconds` of CPU time, or
 * for exactly `packets` packets when that is not 0
 */
static void run_cell(const struct api *a, enum keyleg_profile p,
		     unsigned n, double seconds, unsigned long packets,
		     struct cell *c)
{
	uint32_t w[(PKT_BUF + 3) / 4];
	struct sess *s = calloc(n, sizeof(*s));
	unsigned long count = 0;
	double t0, t1, w0;
	unsigned i = 0;

	if (!s || setup(a, p, s, n)) {
		fprintf(stderr, "srtpbench: session setup failed\n");
		exit(1);
	}
	/* warm up: every session has seen one packet */
	for (i = 0; i < n; i++)
		if (one(a, s, i, w))
			goto fail;
	i = 0;
	w0 = now_s();
	t0 = cpu_s();
	if (packets) {
		if (srtpbench_loop(a, s, n, w, packets, &i))
			goto fail;
		count = packets;
		t1 = cpu_s();
	}
	else do {
		if (srtpbench_loop(a, s, n, w, 256, &i))
			goto fail;
		count += 256;
		t1 = cpu_s();
	} while (t1 - t0 < seconds);
	c->wall_ns = (now_s() - w0) * 1e9 / (double)count;
	c->cpu_ns = (t1 - t0) * 1e9 / (double)count;
	c->packets = count;
	teardown(a, s, n);
	free(s);
	return;
 fail:
	fprintf(stderr, "srtpbench: packet did not round-trip\n");
	exit(1);
}

static int load_debian(struct api *a, const char *path)
{
	void *h;
	const void *(*get_ct)(int);
	const char *ct;

	/* RTLD_DEEPBIND: its internal calls must not bind to our copy */
	h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	if (!h) {
		fprintf(stderr, "srtpbench: %s\n", dlerror());
		return ENOENT;
	}
	*(void **)&a->init = dlsym(h, "srtp_init");
	*(void **)&a->create = dlsym(h, "srtp_create");
	*(void **)&a->protect = dlsym(h, "srtp_protect");
	*(void **)&a->unprotect = dlsym(h, "srtp_unprotect");
	*(void **)&a->dealloc = dlsym(h, "srtp_dealloc");
	*(void **)&a->version = dlsym(h, "srtp_get_version_string");
	*(void **)&get_ct = dlsym(h, "srtp_crypto_kernel_get_cipher_type");
	if (!a->init || !a->create || !a->protect || !a->unprotect ||
	    !a->dealloc || !a->version)
		return ENOENT;
	if (a->init())
		return EPROTO;
	a->backend = "?";
	/* srtp_cipher_type_t (2.5): 8 function pointers, then description */
	ct = get_ct ? get_ct(SRTP_AES_ICM_128) : NULL;
	if (ct)
		memcpy(&a->backend, ct + 8 * sizeof(void *), sizeof(char *));
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
"usage: srtpbench [-b openssl|debian|keyleg|all] [-p PROFILE|all]...\n"
"                 [-n N[,N...]] [-t SECONDS | -k PACKETS] [-l LIBSRTP2_SO]\n"
"  protect+unprotect of one RTP packet (%d-byte payload) per call,\n"
"  round-robin over N live session pairs, for each profile and build.\n"
"  -b  build(s) to run (repeatable; default all)\n"
"  -p  SDES profile name (repeatable; default all five)\n"
"  -n  live session counts (default 1,100,1000)\n"
"  -t  CPU seconds per cell (default 0.05)\n"
"  -k  exactly PACKETS per cell instead (for callgrind: only the function\n"
"      srtpbench_loop runs the packets, after warm-up)\n"
"  -l  Debian's NSS libsrtp2 (default libsrtp2.so.1)\n", PAYLOAD);
}

static int parse_sessions(struct opts *o, const char *arg)
{
	const char *p = arg;
	char *end;
	unsigned long v;

	o->n_sessions = 0;
	while (*p) {
		errno = 0;
		v = strtoul(p, &end, 10);
		if (errno || end == p || v == 0 || v > 100000 ||
		    o->n_sessions == 8)
			return EINVAL;
		o->sessions[o->n_sessions++] = (unsigned)v;
		p = *end == ',' ? end + 1 : end;
		if (*end && *end != ',')
			return EINVAL;
	}
	return o->n_sessions ? 0 : EINVAL;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
	int c, any_p = 0, any_b = 0, i;
	enum keyleg_profile p;
	char *end;

	memset(o, 0, sizeof(*o));
	o->seconds = 0.05;
	o->debian_lib = "libsrtp2.so.1";
	parse_sessions(o, "1,100,1000");
	while ((c = getopt(argc, argv, "b:p:n:t:k:l:h")) != -1) {
		switch (c) {
		case 'b':
			any_b = 1;
			if (!strcmp(optarg, "all"))
				o->want_openssl = o->want_debian =
					o->want_keyleg = 1;
			else if (!strcmp(optarg, "openssl"))
				o->want_openssl = 1;
			else if (!strcmp(optarg, "debian"))
				o->want_debian = 1;
			else if (!strcmp(optarg, "keyleg"))
				o->want_keyleg = 1;
			else
				return EINVAL;
			break;
		case 'p':
			any_p = 1;
			if (!strcmp(optarg, "all")) {
				for (i = 0; i < KEYLEG_PROFILE_COUNT; i++)
					o->profiles[i] = 1;
			}
			else if (keyleg_profile_parse(optarg, &p))
				return EINVAL;
			else
				o->profiles[p] = 1;
			break;
		case 'n':
			if (parse_sessions(o, optarg))
				return EINVAL;
			break;
		case 't':
			o->seconds = strtod(optarg, &end);
			if (*end || o->seconds <= 0 || o->seconds > 60)
				return EINVAL;
			break;
		case 'k':
			errno = 0;
			o->packets = strtoul(optarg, &end, 10);
			if (errno || *end || optarg[0] < '0' ||
			    optarg[0] > '9' || o->packets == 0 ||
			    o->packets > 100000000UL)
				return EINVAL;
			break;
		case 'l':
			o->debian_lib = optarg;
			break;
		case 'h':
			return -1;
		default:
			return EINVAL;
		}
	}
	if (optind != argc)
		return EINVAL;
	if (!any_b)
		o->want_openssl = o->want_debian = o->want_keyleg = 1;
	if (!any_p)
		for (i = 0; i < KEYLEG_PROFILE_COUNT; i++)
			o->profiles[i] = 1;
	return 0;
}

int main(int argc, char **argv)
{
	struct api ours = {
		"openssl", srtp_init, srtp_create, srtp_protect,
		srtp_unprotect, srtp_dealloc, srtp_get_version_string, NULL,
	};
	struct api deb = { .name = "debian" };
	const struct api *builds[3];
	const char *names[3];
	struct opts o;
	int nb = 0, b, p, k;

	k = parse_args(&o, argc, argv);
	if (k) {
		usage();
		return k < 0 ? 0 : 2;
	}
	if (keyleg_init())
		return 1;
	ours.backend = keyleg_crypto_backend();
	if (o.want_openssl) {
		builds[nb] = &ours;
		names[nb++] = "openssl";
	}
	if (o.want_debian) {
		if (load_debian(&deb, o.debian_lib)) {
			fprintf(stderr, "srtpbench: cannot use %s (install "
				"libsrtp2-1)\n", o.debian_lib);
			return 1;
		}
		builds[nb] = &deb;
		names[nb++] = "debian";
	}
	if (o.want_keyleg) {
		builds[nb] = NULL;
		names[nb++] = "keyleg";
	}
	printf("# srtpbench: protect+unprotect per RTP packet, %d-byte "
	       "payload, round-robin over N live session pairs\n", PAYLOAD);
	printf("# openssl = %s, static, backend \"%s\"\n",
	       srtp_get_version_string(), ours.backend);
	if (o.want_debian)
		printf("# debian  = %s, %s, backend \"%s\"\n", deb.version(),
		       o.debian_lib, deb.backend);
	if (o.want_keyleg)
		printf("# keyleg  = the openssl build through keyleg's API\n");
	printf("# ns/packet: CPU time of the benchmark thread (wall in the "
	       "last column)\n");
	printf("%-8s %-24s %8s %9s %9s %9s\n", "build", "profile",
	       "sessions", "packets", "ns/packet", "wall_ns");
	for (p = 0; p < KEYLEG_PROFILE_COUNT; p++) {
		if (!o.profiles[p])
			continue;
		for (k = 0; k < o.n_sessions; k++) {
			for (b = 0; b < nb; b++) {
				struct cell c;

				run_cell(builds[b], p, o.sessions[k],
					 o.seconds, o.packets, &c);
				printf("%-8s %-24s %8u %9lu %9.0f %9.0f\n",
				       names[b], keyleg_profile_name(p),
				       o.sessions[k], c.packets, c.cpu_ns,
				       c.wall_ns);
				fflush(stdout);
			}
		}
	}
	return 0;
}
