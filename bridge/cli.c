/**
 * @file cli.c  bridged command line and --config file
 *
 * bridged --control ADDR:PORT --token-file FILE --rtp-ports LO-HI
 *         [--workers N] [--kms HOST:PORT --nds-cert F --nds-key F
 *         --nds-ca F] [--config FILE] [--log-level L] [--user NAME]
 *
 * The --config file is a JSON object with the same names (dashes or
 * underscores) plus a few tunables and the control listener's TLS
 * certificate ("control-cert", "control-key"); the command line wins.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "bridge/bridge_int.h"

/** Defaults for everything optional */
void bridge_cfg_defaults(struct bridge_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->control_host, sizeof(cfg->control_host), "127.0.0.1");
	cfg->log_level = BRIDGE_LOG_INFO;
	cfg->kms_timeout_ms = 2000;
	cfg->max_legs_per_worker = 2000;
	cfg->max_load_permille = 800;
	cfg->send_io_uring = 1;
	cfg->rtcp_interval_ms = 5000;
}

static int set_str(char *dst, size_t sz, const char *v)
{
	size_t n = strlen(v);

	if (n == 0 || n >= sz)
		return EINVAL;
	memcpy(dst, v, n + 1);
	return 0;
}

static int parse_uint(const char *s, unsigned long max, unsigned long *vp)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > max)
		return EINVAL;
	*vp = v;
	return 0;
}

/** Split "HOST:PORT" / "[V6]:PORT" into host and port (host not checked) */
static int split_hostport(const char *s, char *host, size_t hsz,
			  uint16_t *portp)
{
	const char *colon;
	unsigned long port;
	size_t hl;

	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return EINVAL;
		hl = (size_t)(rb - s - 1);
		s++;
		colon = rb + 1;
	}
	else {
		colon = strrchr(s, ':');
		if (!colon)
			return EINVAL;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hsz)
		return EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (parse_uint(colon + 1, 65535, &port))
		return EINVAL;
	*portp = (uint16_t)port;
	return 0;
}

static int parse_level(const char *v, enum bridge_log_level *lp)
{
	static const char *const names[] = {"error", "warn", "info", "debug"};
	unsigned i;

	for (i = 0; i < 4; i++) {
		if (!strcmp(v, names[i])) {
			*lp = (enum bridge_log_level)i;
			return 0;
		}
	}
	return EINVAL;
}

/** 1 if host is a literal loopback address (127/8 or ::1) */
int bridge_addr_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return 0;
}

enum {
	OPT_CONTROL = 1, OPT_TOKEN, OPT_PORTS, OPT_WORKERS, OPT_KMS,
	OPT_CERT, OPT_KEY, OPT_CA, OPT_CONFIG, OPT_LOG, OPT_USER, OPT_HELP,
};

static int apply(struct bridge_cfg *cfg, int opt, const char *v,
		 char *err, size_t errsz)
{
	unsigned long n, hi;
	char *dash;
	int e = 0;

	switch (opt) {
	case OPT_CONTROL:
		e = split_hostport(v, cfg->control_host,
				   sizeof(cfg->control_host),
				   &cfg->control_port);
		if (!e) {
			struct baddr a;
			char tmp[300];

			snprintf(tmp, sizeof(tmp),
				 strchr(cfg->control_host, ':') ?
				 "[%s]:0" : "%s:0", cfg->control_host);
			e = baddr_parse(&a, tmp);
		}
		if (e)
			snprintf(err, errsz, "--control: want ADDR:PORT with "
				 "a literal IP address, got '%s'", v);
		return e;
	case OPT_TOKEN:
		e = set_str(cfg->token_file, sizeof(cfg->token_file), v);
		break;
	case OPT_PORTS:
		dash = strchr(v, '-');
		if (!dash) {
			e = EINVAL;
		}
		else {
			char lo[16];
			size_t l = (size_t)(dash - v);

			if (l == 0 || l >= sizeof(lo))
				e = EINVAL;
			else {
				memcpy(lo, v, l);
				lo[l] = '\0';
				e = parse_uint(lo, 65535, &n) ||
					parse_uint(dash + 1, 65535, &hi) ?
					EINVAL : 0;
				if (!e && (n == 0 || hi < n))
					e = EINVAL;
				if (!e) {
					cfg->port_lo = (uint16_t)n;
					cfg->port_hi = (uint16_t)hi;
				}
			}
		}
		if (e)
			snprintf(err, errsz, "--rtp-ports: want LO-HI "
				 "(1..65535, LO <= HI), got '%s'", v);
		return e;
	case OPT_WORKERS:
		e = parse_uint(v, 256, &n);
		if (!e && n == 0)
			e = EINVAL;
		if (e)
			snprintf(err, errsz, "--workers: want 1..256, "
				 "got '%s'", v);
		else
			cfg->workers = (unsigned)n;
		return e;
	case OPT_KMS:
		e = split_hostport(v, cfg->kms_host, sizeof(cfg->kms_host),
				   &cfg->kms_port);
		if (!e && cfg->kms_port == 0)
			e = EINVAL;
		if (e)
			snprintf(err, errsz, "--kms: want HOST:PORT, got '%s'",
				 v);
		return e;
	case OPT_CERT:
		e = set_str(cfg->nds_cert, sizeof(cfg->nds_cert), v);
		break;
	case OPT_KEY:
		e = set_str(cfg->nds_key, sizeof(cfg->nds_key), v);
		break;
	case OPT_CA:
		e = set_str(cfg->nds_ca, sizeof(cfg->nds_ca), v);
		break;
	case OPT_CONFIG:
		e = set_str(cfg->config_file, sizeof(cfg->config_file), v);
		break;
	case OPT_LOG:
		e = parse_level(v, &cfg->log_level);
		if (e)
			snprintf(err, errsz, "--log-level: want error, warn, "
				 "info or debug, got '%s'", v);
		return e;
	case OPT_USER:
		e = set_str(cfg->user, sizeof(cfg->user), v);
		break;
	default:
		e = EINVAL;
		break;
	}
	if (e)
		snprintf(err, errsz, "bad or too long option value '%s'", v);
	return e;
}

static const struct option long_opts[] = {
	{"control", required_argument, NULL, OPT_CONTROL},
	{"token-file", required_argument, NULL, OPT_TOKEN},
	{"rtp-ports", required_argument, NULL, OPT_PORTS},
	{"workers", required_argument, NULL, OPT_WORKERS},
	{"kms", required_argument, NULL, OPT_KMS},
	{"nds-cert", required_argument, NULL, OPT_CERT},
	{"nds-key", required_argument, NULL, OPT_KEY},
	{"nds-ca", required_argument, NULL, OPT_CA},
	{"config", required_argument, NULL, OPT_CONFIG},
	{"log-level", required_argument, NULL, OPT_LOG},
	{"user", required_argument, NULL, OPT_USER},
	{"help", no_argument, NULL, OPT_HELP},
	{NULL, 0, NULL, 0},
};

/**
 * Load a JSON config file: keys are the long option names ("control",
 * "token-file" ...) and the tunables "max-legs-per-worker",
 * "max-load-permille", "rtcp-interval-ms", "kms-timeout-ms",
 * "leg-timeout-ms", "send-io-uring", "control-cert", "control-key".
 */
int bridge_cfg_load_file(struct bridge_cfg *cfg, const char *path,
			 char *err, size_t errsz)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *key;
	int e = 0;

	root = json_load_file(path, 0, &jerr);
	if (!root || !json_is_object(root)) {
		snprintf(err, errsz, "--config %s: %s (line %d)", path,
			 root ? "not a JSON object" : jerr.text, jerr.line);
		json_decref(root);
		return EINVAL;
	}
	json_object_foreach(root, key, v) {
		const struct option *o;
		char name[64], buf[64];
		const char *sv = NULL;
		size_t i;

		snprintf(name, sizeof(name), "%s", key);
		for (i = 0; name[i]; i++)
			if (name[i] == '_')
				name[i] = '-';
		if (json_is_string(v)) {
			sv = json_string_value(v);
		}
		else if (json_is_integer(v) && json_integer_value(v) >= 0) {
			snprintf(buf, sizeof(buf), "%lld",
				 (long long)json_integer_value(v));
			sv = buf;
		}
		if (!sv) {
			snprintf(err, errsz, "--config: '%s' has a wrong type",
				 key);
			e = EINVAL;
			break;
		}
		if (!strcmp(name, "send-io-uring")) {
			unsigned long n;

			if (parse_uint(sv, 1, &n)) {
				snprintf(err, errsz, "--config: bad '%s' "
					 "(0 or 1)", key);
				e = EINVAL;
				break;
			}
			cfg->send_io_uring = (unsigned)n;
			continue;
		}
		if (!strcmp(name, "leg-timeout-ms")) {
			unsigned long n;

			/* 0 is allowed here: it turns the timeout off */
			if (parse_uint(sv, 10000000, &n)) {
				snprintf(err, errsz, "--config: bad '%s'",
					 key);
				e = EINVAL;
				break;
			}
			cfg->leg_timeout_ms = (unsigned)n;
			continue;
		}
		if (!strcmp(name, "control-cert") ||
		    !strcmp(name, "control-key")) {
			char *dst = !strcmp(name, "control-cert") ?
				cfg->control_cert :
				cfg->control_key;

			if (!json_is_string(v) ||
			    set_str(dst, BRIDGE_PATH_MAX, sv)) {
				snprintf(err, errsz, "--config: bad '%s'",
					 key);
				e = EINVAL;
				break;
			}
			continue;
		}
		if (!strcmp(name, "max-legs-per-worker") ||
		    !strcmp(name, "max-load-permille") ||
		    !strcmp(name, "rtcp-interval-ms") ||
		    !strcmp(name, "kms-timeout-ms")) {
			unsigned long n;

			if (parse_uint(sv, 10000000, &n) || n == 0) {
				snprintf(err, errsz, "--config: bad '%s'",
					 key);
				e = EINVAL;
				break;
			}
			if (!strcmp(name, "max-legs-per-worker"))
				cfg->max_legs_per_worker = (unsigned)n;
			else if (!strcmp(name, "max-load-permille"))
				cfg->max_load_permille = (unsigned)n;
			else if (!strcmp(name, "rtcp-interval-ms"))
				cfg->rtcp_interval_ms = (unsigned)n;
			else
				cfg->kms_timeout_ms = (unsigned)n;
			continue;
		}
		for (o = long_opts; o->name; o++)
			if (!strcmp(o->name, name))
				break;
		if (!o->name || o->val == OPT_CONFIG || o->val == OPT_HELP) {
			snprintf(err, errsz, "--config: unknown key '%s'",
				 key);
			e = EINVAL;
			break;
		}
		e = apply(cfg, o->val, sv, err, errsz);
		if (e)
			break;
	}
	json_decref(root);
	return e;
}

/**
 * Parse the command line into cfg (call bridge_cfg_defaults first).
 *
 * @return 0, EINVAL with a message in err, or ECANCELED for --help
 */
int bridge_cfg_parse(struct bridge_cfg *cfg, int argc, char *const argv[],
		     char *err, size_t errsz)
{
	int opt, e, i;

	err[0] = '\0';
	/* --config first, so that the command line overrides it */
	for (i = 1; i < argc; i++) {
		const char *path = NULL;

		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			path = argv[i + 1];
		else if (!strncmp(argv[i], "--config=", 9))
			path = argv[i] + 9;
		if (path) {
			e = bridge_cfg_load_file(cfg, path, err, errsz);
			if (e)
				return e;
		}
	}

	optind = 0;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", long_opts, NULL)) != -1) {
		if (opt == OPT_HELP)
			return ECANCELED;
		if (opt == '?' || opt == ':') {
			snprintf(err, errsz, "unknown option or missing "
				 "value: '%s'", argv[optind - 1]);
			return EINVAL;
		}
		e = apply(cfg, opt, optarg, err, errsz);
		if (e)
			return e;
	}
	if (optind < argc) {
		snprintf(err, errsz, "unexpected argument '%s'", argv[optind]);
		return EINVAL;
	}
	if (!cfg->token_file[0]) {
		snprintf(err, errsz, "--token-file is required");
		return EINVAL;
	}
	if (!cfg->port_lo) {
		snprintf(err, errsz, "--rtp-ports is required");
		return EINVAL;
	}
	if (cfg->kms_host[0] && (!cfg->nds_cert[0] || !cfg->nds_key[0] ||
				 !cfg->nds_ca[0])) {
		snprintf(err, errsz, "--kms needs --nds-cert, --nds-key and "
			 "--nds-ca");
		return EINVAL;
	}
	if (!cfg->control_cert[0] != !cfg->control_key[0]) {
		snprintf(err, errsz, "--config: control-cert and control-key "
			 "go together");
		return EINVAL;
	}
	if (!bridge_addr_is_loopback(cfg->control_host) &&
	    !cfg->control_cert[0]) {
		snprintf(err, errsz, "--control %s is not a loopback address "
			 "and TLS is not configured for the control "
			 "listener: refused", cfg->control_host);
		return EINVAL;
	}
	return 0;
}
