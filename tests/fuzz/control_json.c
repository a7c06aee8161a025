/**
 * @file control_json.c  Fuzz target: the control API (HTTP/JSON) of a real
 * in-process bridge, through its public interface (bridge.h)
 *
 * LLVMFuzzerInitialize starts a bridge (one worker, a 16-port RTP range)
 * in a thread, inside a private network namespace with only loopback up
 * when the process may create one (root), so that no fuzzed "remote"
 * address can send a packet off the machine; without that, inputs naming
 * a remote outside loopback are skipped.  Each input is one request over
 * a fresh loopback TCP connection:
 *   byte 0 % 5 = 0  POST /v1/conferences            body = the rest
 *                1  POST /v1/conferences/f/legs     body = the rest
 *                2  PATCH /v1/conferences/f/legs/L  body = the rest
 *                   (L: a standing leg made at start)
 *                3  METHOD PATH with the rest split at the first NUL
 *                   into path and body; METHOD = byte 1 % 4
 *                4  the rest sent as the raw request, no token added
 * Whatever the input created (conference, leg) is deleted again, so state
 * stays bounded.  Checked: the bridge always answers, with a status the
 * contract knows; an error answer to a well-formed HTTP request carries
 * {"error": "..."}; the standing conference and leg survive every input.
 */

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <jansson.h>

#include "bridge/bridge.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOKEN "fuzz-token-0123456789abcdef"
#define RESP_MAX 65536

static struct bridge *bridge;
static pthread_t loop_thread;
static struct sockaddr_in ctl;
static int filter_remotes;
static char standing_leg[128];
static char resp[RESP_MAX + 1];
static int verbose;   /* KEYMIX_FUZZ_VERBOSE=1: print every status */

static void lo_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	if (fd < 0)
		return;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) == 0) {
		ifr.ifr_flags |= IFF_UP;
		(void)ioctl(fd, SIOCSIFFLAGS, &ifr);
	}
	close(fd);
}

static void *loop_main(void *arg)
{
	(void)bridge_run(arg);
	return NULL;
}

/* One request; returns the HTTP status (0: no answer) and the body. */
static int request(const char *method, const char *path, const void *body,
		   size_t len, int with_token, const char **bodyp)
{
	char head[2048];   /* paths are < 1000 bytes (see op 3) */
	struct timeval tv = { 5, 0 };
	size_t got = 0;
	int fd, n, status = 0;
	char *p;

	*bodyp = "";
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		abort();
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&ctl, sizeof(ctl)) < 0)
		abort(); /* the listener is gone: the bridge died */
	if (method) {
		n = snprintf(head, sizeof(head),
			     "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
			     "%s%s%s"
			     "Content-Type: application/json\r\n"
			     "Content-Length: %zu\r\n"
			     "Connection: close\r\n\r\n",
			     method, path,
			     with_token ? "Authorization: Bearer " : "",
			     with_token ? TOKEN : "",
			     with_token ? "\r\n" : "", len);
		if (n < 0 || (size_t)n >= sizeof(head) ||
		    send(fd, head, (size_t)n, MSG_NOSIGNAL) != n) {
			close(fd);
			return -1;
		}
	}
	if (len)
		(void)send(fd, body, len, MSG_NOSIGNAL);
	/* a raw request may never end: say it has; the others carry
	 * Content-Length and Connection: close */
	if (!method)
		shutdown(fd, SHUT_WR);
	for (;;) {
		ssize_t r = recv(fd, resp + got, RESP_MAX - got, 0);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
		if (got == RESP_MAX)
			break;
	}
	close(fd);
	resp[got] = '\0';
	if (got >= 12 && !strncmp(resp, "HTTP/1.", 7))
		status = (int)strtol(resp + 9, NULL, 10);
	p = strstr(resp, "\r\n\r\n");
	if (p)
		*bodyp = p + 4;
	if (verbose)
		fprintf(stderr, "%s %s -> %d %.200s\n",
			method ? method : "RAW", path ? path : "", status,
			*bodyp);
	return status;
}

static int known_status(int s)
{
	switch (s) {
	case 200: case 201: case 204: case 400: case 401: case 404:
	case 405: case 409: case 413: case 422: case 502: case 503:
		return 1;
	default:
		return 0;
	}
}

/* Error answers to well-formed requests carry {"error": "..."}. */
static void check_error_body(int status, const char *body)
{
	json_t *j, *e;

	if (status < 400)
		return;
	j = json_loads(body, 0, NULL);
	e = j ? json_object_get(j, "error") : NULL;
	if (!e || !json_is_string(e))
		abort();
	json_decref(j);
}

static const char *get_id(const char *body, const char *key)
{
	static char out[128];
	json_t *j = json_loads(body, 0, NULL);
	json_t *v = j ? json_object_get(j, key) : NULL;

	out[0] = '\0';
	if (v && json_is_string(v))
		snprintf(out, sizeof(out), "%s", json_string_value(v));
	json_decref(j);
	return out;
}

/* Only without a private namespace: refuse remotes off loopback */
static int remote_ok(const uint8_t *body, size_t len)
{
	json_t *j = json_loadb((const char *)body, len, 0, NULL);
	json_t *r = j ? json_object_get(j, "remote") : NULL;
	const char *s;
	int ok = 1;

	if (r && json_is_string(r)) {
		s = json_string_value(r);
		ok = !strncmp(s, "127.", 4) || !strncmp(s, "[::1]", 5);
	}
	else if (r) {
		ok = 1; /* a wrong type: refused by the bridge */
	}
	json_decref(j);
	return ok;
}

static void setup_fail(const char *what)
{
	fprintf(stderr, "control_json: %s\n", what);
	exit(1);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct bridge_cfg cfg;
	char err[256], addr[128], tok[] = "/tmp/keymix-fuzz-tokenXXXXXX";
	const char *body, *port;
	static const char leg[] =
		"{\"participant\": \"sip:standing@example.org\", "
		"\"codec\": \"pcmu\", \"remote\": \"127.0.0.1:9\"}";
	int fd, st;

	(void)argc;
	(void)argv;
	verbose = getenv("KEYMIX_FUZZ_VERBOSE") != NULL;
	if (unshare(CLONE_NEWNET) == 0)
		lo_up();
	else
		filter_remotes = 1;
	fd = mkstemp(tok);
	if (fd < 0 || write(fd, TOKEN "\n", sizeof(TOKEN)) !=
	    (ssize_t)sizeof(TOKEN))
		setup_fail("token file");
	close(fd);
	bridge_cfg_defaults(&cfg);
	snprintf(cfg.control_host, sizeof(cfg.control_host), "127.0.0.1");
	cfg.control_port = 0;
	snprintf(cfg.token_file, sizeof(cfg.token_file), "%s", tok);
	/* a random 16-port block, so parallel runs rarely collide */
	cfg.port_lo = (uint16_t)(20000 + 16 * (getpid() % 2000));
	cfg.port_hi = (uint16_t)(cfg.port_lo + 15);
	cfg.workers = 1;
	cfg.log_level = BRIDGE_LOG_ERROR;
	if (bridge_alloc(&bridge, &cfg, err, sizeof(err)))
		setup_fail(err);
	unlink(tok);
	if (bridge_control_addr(bridge, addr, sizeof(addr)))
		setup_fail("control address");
	port = strrchr(addr, ':');
	memset(&ctl, 0, sizeof(ctl));
	ctl.sin_family = AF_INET;
	ctl.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ctl.sin_port = htons((uint16_t)strtol(port ? port + 1 : "0", NULL,
					      10));
	if (pthread_create(&loop_thread, NULL, loop_main, bridge))
		setup_fail("thread");
	st = request("POST", "/v1/conferences", "{\"id\": \"f\"}", 11, 1,
		     &body);
	if (st != 201)
		setup_fail("standing conference");
	st = request("POST", "/v1/conferences/f/legs", leg, sizeof(leg) - 1,
		     1, &body);
	if (st != 201)
		setup_fail("standing leg");
	snprintf(standing_leg, sizeof(standing_leg), "%s",
		 get_id(body, "leg"));
	return 0;
}

static void cleanup_created(int op, int st, const char *body)
{
	char path[300];
	const char *id, *b2;

	if (st != 201)
		return;
	if (op == 0) {
		id = get_id(body, "id");
		if (!strcmp(id, "f"))
			abort(); /* a duplicate id was accepted */
		snprintf(path, sizeof(path), "/v1/conferences/%s", id);
	}
	else {
		id = get_id(body, "leg");
		snprintf(path, sizeof(path), "/v1/conferences/f/legs/%s", id);
	}
	if (!id[0])
		abort(); /* 201 without the id the contract promises */
	/* ids with characters a path cannot carry must not be accepted */
	if (strpbrk(id, "/?# \r\n%"))
		abort();
	if (request("DELETE", path, NULL, 0, 1, &b2) != 204)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *methods[] = { "GET", "POST", "PATCH", "DELETE" };
	char path[1200];
	const char *body;
	const uint8_t *rest;
	size_t rlen;
	int op, st;

	if (size < 1 || size > 16384)
		return 0;
	op = data[0] % 5;
	rest = data + 1;
	rlen = size - 1;
	if (filter_remotes && op != 4 && !remote_ok(rest, rlen))
		return 0;
	switch (op) {
	case 0:
		st = request("POST", "/v1/conferences", rest, rlen, 1, &body);
		break;
	case 1:
		st = request("POST", "/v1/conferences/f/legs", rest, rlen, 1,
			     &body);
		break;
	case 2:
		snprintf(path, sizeof(path), "/v1/conferences/f/legs/%s",
			 standing_leg);
		st = request("PATCH", path, rest, rlen, 1, &body);
		break;
	case 3: {
		const uint8_t *nul;
		size_t pl;
		int m;

		if (rlen < 1)
			return 0;
		m = rest[0] % 4;
		rest++;
		rlen--;
		nul = memchr(rest, 0, rlen);
		pl = nul ? (size_t)(nul - rest) : rlen;
		if (pl == 0 || pl >= 1000 || rest[0] != '/' ||
		    memchr(rest, ' ', pl) || memchr(rest, '\r', pl) ||
		    memchr(rest, '\n', pl))
			return 0;
		/* DELETE of the standing objects is legal: not fuzzed */
		if (m == 3)
			return 0;
		memcpy(path, rest, pl);
		path[pl] = '\0';
		rest += nul ? pl + 1 : pl;
		rlen -= nul ? pl + 1 : pl;
		st = request(methods[m], path, rest, rlen, 1, &body);
		if (st < 0)
			return 0; /* could not send: not the bridge's doing */
		if (st == 0 || !known_status(st))
			abort();
		/* libevent's own HTTP parser refuses some request lines
		 * (control characters in the URI) before the bridge sees
		 * them, with its HTML page: not the bridge's answer */
		if (st >= 400 && !(st == 400 && !strncmp(body, "<HTML>", 6)))
			check_error_body(st, body);
		if (m == 1 && st == 201)
			cleanup_created(strstr(path, "/legs") ? 1 : 0, st,
					body);
		goto check_standing;
	}
	default:
		st = request(NULL, NULL, rest, rlen, 0, &body);
		/* a raw request may be anything: any answer or a close is
		 * fine, as long as the bridge is still there afterwards */
		goto check_standing;
	}
	if (st == 0 || !known_status(st))
		abort();
	check_error_body(st, body);
	if (op == 2 && st != 200 && st != 400 && st != 422 && st != 502 &&
	    st != 503)
		abort();
	cleanup_created(op, st, body);
 check_standing:
	snprintf(path, sizeof(path), "/v1/conferences/f/legs/%s",
		 standing_leg);
	if (request("GET", path, NULL, 0, 1, &body) != 200)
		abort();
	return 0;
}
