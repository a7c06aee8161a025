/**
 * @file impair_main.c  impair: a UDP relay that loses, delays, reorders and
 * duplicates packets between one participant and the bridge
 *
 *   impair --listen ADDR:PORT --to ADDR:PORT [--bind ADDR:PORT]
 *          [--peer ADDR:PORT] [--seed N] [--loss R] [--burst N]
 *          [--jitter-ms MS] [--delay-ms MS] [--dup R]
 *          [--dir both|up|down] [--spare-rtcp] [--stats FILE]
 *          [--duration S]
 *
 * The participant sends to the "front" socket (--listen); the relay passes
 * each packet through the "up" model and sends what survives from its
 * "back" socket (--bind, default an ephemeral port on the address family
 * of --to) to --to, the bridge's leg port.  What the bridge sends to the
 * back socket goes through the "down" model and leaves from the front
 * socket to --peer, or to the last address the participant sent from.
 * --dir limits the impairment to one direction (the other passes clean).
 * --spare-rtcp passes RTCP (RFC 5761 demultiplexing) unimpaired, so that
 * the counts match what a receiver sees as RTP loss.
 *
 * Prints "ready front=ADDR:PORT back=ADDR:PORT" once both sockets are
 * bound.  On SIGUSR1 it writes its counts to the --stats file; on SIGTERM,
 * SIGINT or after --duration it writes them, prints them as the last line
 * on stdout, and exits 0.  The counts are one JSON object:
 *   {"up": COUNTS, "down": COUNTS, "rtcp_up": N, "rtcp_down": N}
 * with COUNTS as in impair_counts_json() (tools/tools.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "tools/tools.h"

struct dir {
	struct impair *imp;
};

struct relay {
	int front, back;
	struct sockaddr_storage to, peer;
	socklen_t to_len, peer_len;
	struct dir up, down;
	int peer_fixed, spare_rtcp;
	uint64_t rtcp_spared[2]; /* [0] down, [1] up */
	const char *stats_path;
};

static volatile sig_atomic_t stop_flag, dump_flag;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		dump_flag = 1;
	else
		stop_flag = 1;
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: impair --listen ADDR:PORT --to ADDR:PORT "
		"[--bind ADDR:PORT]\n"
		"       [--peer ADDR:PORT] [--seed N] [--loss R] [--burst N]\n"
		"       [--jitter-ms MS] [--delay-ms MS] [--dup R]\n"
		"       [--dir both|up|down] [--spare-rtcp] [--stats FILE]\n"
		"       [--duration S]\n");
}

/** Parse "1.2.3.4:5", "[::1]:5" into a socket address */
static int parse_addr(const char *s, struct sockaddr_storage *ss,
		      socklen_t *lenp)
{
	char host[128];
	const char *colon, *h = s, *port;
	size_t hl;
	struct addrinfo hints, *res = NULL;
	int err;

	colon = strrchr(s, ':');
	if (!colon)
		return EINVAL;
	port = colon + 1;
	hl = (size_t)(colon - s);
	if (hl >= 2 && s[0] == '[' && s[hl - 1] == ']') {
		h = s + 1;
		hl -= 2;
	}
	if (hl == 0 || hl >= sizeof(host))
		return EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
	err = getaddrinfo(host, port, &hints, &res);
	if (err || !res)
		return EINVAL;
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*lenp = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void addr_str(const struct sockaddr_storage *ss, char *buf,
		     size_t size)
{
	char h[INET6_ADDRSTRLEN] = "?";
	unsigned port = 0;

	if (ss->ss_family == AF_INET) {
		const struct sockaddr_in *a = (const void *)ss;

		inet_ntop(AF_INET, &a->sin_addr, h, sizeof(h));
		port = ntohs(a->sin_port);
		snprintf(buf, size, "%s:%u", h, port);
	}
	else {
		const struct sockaddr_in6 *a = (const void *)ss;

		inet_ntop(AF_INET6, &a->sin6_addr, h, sizeof(h));
		port = ntohs(a->sin6_port);
		snprintf(buf, size, "[%s]:%u", h, port);
	}
}

static int bind_udp(const struct sockaddr_storage *ss, socklen_t len,
		    struct sockaddr_storage *bound)
{
	int fd = socket(ss->ss_family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
	socklen_t bl = sizeof(*bound);
	int bufsz = 1 << 20;

	if (fd < 0)
		return -1;
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
	if (bind(fd, (const struct sockaddr *)ss, len) < 0 ||
	    getsockname(fd, (struct sockaddr *)bound, &bl) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/** RFC 5761: RTCP packet types 192..223 sit where RTP has M + PT */
static int is_rtcp(const uint8_t *p, size_t len)
{
	return len >= 2 && (p[0] & 0xc0) == 0x80 && p[1] >= 192 &&
		p[1] <= 223;
}

static int parse_num(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi))
		return EINVAL;
	*out = v;
	return 0;
}

static void write_stats(struct relay *r, FILE *extra)
{
	struct impair_counts c;
	char up[512], down[512], tmp[4096], line[1200];
	FILE *f;
	int n;

	impair_counts_get(r->up.imp, &c);
	if (impair_counts_json(&c, up, sizeof(up)))
		return;
	impair_counts_get(r->down.imp, &c);
	if (impair_counts_json(&c, down, sizeof(down)))
		return;
	n = snprintf(line, sizeof(line), "{\"up\": %s, \"down\": %s, "
		     "\"rtcp_up\": %llu, \"rtcp_down\": %llu}", up, down,
		     (unsigned long long)r->rtcp_spared[1],
		     (unsigned long long)r->rtcp_spared[0]);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	if (r->stats_path) {
		/* write then rename, so a reader never sees half a file */
		if (snprintf(tmp, sizeof(tmp), "%s.tmp", r->stats_path) <
		    (int)sizeof(tmp)) {
			f = fopen(tmp, "w");
			if (f) {
				fprintf(f, "%s\n", line);
				if (fclose(f) == 0)
					(void)rename(tmp, r->stats_path);
			}
		}
	}
	if (extra) {
		fprintf(extra, "%s\n", line);
		fflush(extra);
	}
}

static void send_to(struct relay *r, int is_front, const uint8_t *p,
		    size_t len)
{
	if (is_front)
		(void)sendto(r->back, p, len, 0, (struct sockaddr *)&r->to,
			     r->to_len);
	else
		(void)sendto(r->front, p, len, 0,
			     (struct sockaddr *)&r->peer, r->peer_len);
}

/** Drain one socket into its direction's model */
static void intake(struct relay *r, int is_front, uint64_t t)
{
	uint8_t buf[IMPAIR_PKT_MAX];
	struct sockaddr_storage src;
	struct impair *imp = is_front ? r->up.imp : r->down.imp;
	int fd = is_front ? r->front : r->back;
	int n;

	for (n = 0; n < 256; n++) {
		socklen_t sl = sizeof(src);
		ssize_t len = recvfrom(fd, buf, sizeof(buf), 0,
				       (struct sockaddr *)&src, &sl);

		if (len < 0)
			break;
		if (is_front && !r->peer_fixed) {
			memcpy(&r->peer, &src, sl);
			r->peer_len = sl;
		}
		else if (!is_front && !r->peer_len)
			continue; /* nobody to send to yet */
		if (r->spare_rtcp && is_rtcp(buf, (size_t)len)) {
			r->rtcp_spared[is_front]++;
			send_to(r, is_front, buf, (size_t)len);
			continue;
		}
		(void)impair_push(imp, buf, (size_t)len, t);
	}
}

static void release(struct relay *r, uint64_t t)
{
	uint8_t buf[IMPAIR_PKT_MAX];
	size_t len;

	while (impair_pop(r->up.imp, t, buf, sizeof(buf), &len) == 0)
		send_to(r, 1, buf, len);
	while (impair_pop(r->down.imp, t, buf, sizeof(buf), &len) == 0)
		if (r->peer_len)
			send_to(r, 0, buf, len);
}

static int next_timeout_ms(struct relay *r, uint64_t t)
{
	int64_t a = impair_next_due(r->up.imp);
	int64_t b = impair_next_due(r->down.imp);
	int64_t due = a < 0 ? b : (b < 0 ? a : (a < b ? a : b));

	if (due < 0)
		return 200;
	if ((uint64_t)due <= t)
		return 0;
	/* poll() counts ms; round up so we never spin before the due time */
	due = ((int64_t)((uint64_t)due - t) + 999) / 1000;
	return due > 200 ? 200 : (int)due;
}

static int run(struct relay *r, double duration_s)
{
	struct pollfd pfd[2];
	uint64_t t0 = now_us();
	uint64_t end = duration_s > 0 ?
		t0 + (uint64_t)(duration_s * 1e6) : 0;

	pfd[0].fd = r->front;
	pfd[1].fd = r->back;
	pfd[0].events = pfd[1].events = POLLIN;
	while (!stop_flag) {
		uint64_t t = now_us();
		int n;

		if (end && t >= end)
			break;
		if (dump_flag) {
			dump_flag = 0;
			write_stats(r, NULL);
		}
		n = poll(pfd, 2, next_timeout_ms(r, t));
		if (n < 0 && errno != EINTR)
			return errno;
		t = now_us();
		if (n > 0 && (pfd[0].revents & POLLIN))
			intake(r, 1, t);
		if (n > 0 && (pfd[1].revents & POLLIN))
			intake(r, 0, t);
		release(r, t);
	}
	return 0;
}

static int parse_args(int argc, char **argv, struct relay *r,
		      struct impair_cfg *cfg, const char **dirp,
		      double *duration, const char **listen,
		      const char **bindp)
{
	int i, err = 0;
	double v;

	for (i = 1; i < argc && !err; i++) {
		const char *a = argv[i];
		const char *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--spare-rtcp")) {
			r->spare_rtcp = 1;
			continue;
		}
		if (!val)
			return EINVAL;
		i++;
		if (!strcmp(a, "--listen"))
			*listen = val;
		else if (!strcmp(a, "--bind"))
			*bindp = val;
		else if (!strcmp(a, "--to"))
			err = parse_addr(val, &r->to, &r->to_len);
		else if (!strcmp(a, "--peer")) {
			err = parse_addr(val, &r->peer, &r->peer_len);
			r->peer_fixed = 1;
		}
		else if (!strcmp(a, "--seed")) {
			char *end;

			errno = 0;
			cfg->seed = strtoull(val, &end, 0);
			if (errno || end == val || *end)
				err = EINVAL;
		}
		else if (!strcmp(a, "--loss"))
			err = parse_num(val, 0, 0.99, &cfg->loss);
		else if (!strcmp(a, "--burst"))
			err = parse_num(val, 1, 1000, &cfg->burst);
		else if (!strcmp(a, "--dup"))
			err = parse_num(val, 0, 1, &cfg->dup);
		else if (!strcmp(a, "--jitter-ms")) {
			err = parse_num(val, 0, 10000, &v);
			cfg->jitter_us = (uint32_t)(v * 1000);
		}
		else if (!strcmp(a, "--delay-ms")) {
			err = parse_num(val, 0, 10000, &v);
			cfg->delay_us = (uint32_t)(v * 1000);
		}
		else if (!strcmp(a, "--dir"))
			*dirp = val;
		else if (!strcmp(a, "--stats"))
			r->stats_path = val;
		else if (!strcmp(a, "--duration"))
			err = parse_num(val, 0, 86400, duration);
		else
			err = EINVAL;
	}
	if (err || !*listen || !r->to_len)
		return EINVAL;
	if (strcmp(*dirp, "both") && strcmp(*dirp, "up") &&
	    strcmp(*dirp, "down"))
		return EINVAL;
	return 0;
}

int main(int argc, char **argv)
{
	struct relay r;
	struct impair_cfg cfg, clean;
	struct sockaddr_storage la, ba, fb, bb;
	socklen_t ll, bl;
	const char *dir = "both", *listen = NULL, *bindp = NULL;
	double duration = 0;
	char s1[80], s2[80];
	struct sigaction sa;
	int err;

	memset(&r, 0, sizeof(r));
	memset(&cfg, 0, sizeof(cfg));
	memset(&clean, 0, sizeof(clean));
	if (parse_args(argc, argv, &r, &cfg, &dir, &duration, &listen,
		       &bindp)) {
		usage();
		return 2;
	}
	if (parse_addr(listen, &la, &ll)) {
		usage();
		return 2;
	}
	if (bindp) {
		if (parse_addr(bindp, &ba, &bl)) {
			usage();
			return 2;
		}
	}
	else {
		/* the back socket speaks the bridge's address family */
		memset(&ba, 0, sizeof(ba));
		ba.ss_family = r.to.ss_family;
		bl = r.to_len;
		if (ba.ss_family == AF_INET)
			((struct sockaddr_in *)&ba)->sin_addr.s_addr =
				htonl(INADDR_LOOPBACK);
		else
			((struct sockaddr_in6 *)&ba)->sin6_addr =
				in6addr_loopback;
	}
	r.front = bind_udp(&la, ll, &fb);
	r.back = bind_udp(&ba, bl, &bb);
	if (r.front < 0 || r.back < 0) {
		fprintf(stderr, "impair: bind: %s\n", strerror(errno));
		return 1;
	}
	clean.seed = cfg.seed + 1;
	cfg.queue = 8192;
	clean.queue = 8192;
	err = impair_alloc(&r.up.imp, strcmp(dir, "down") ? &cfg : &clean);
	if (!err) {
		/* the down model draws its own stream from the same seed */
		struct impair_cfg d = strcmp(dir, "up") ? cfg : clean;

		d.seed ^= 0x5deece66dULL;
		err = impair_alloc(&r.down.imp, &d);
	}
	if (err) {
		fprintf(stderr, "impair: %s\n", strerror(err));
		return 1;
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	addr_str(&fb, s1, sizeof(s1));
	addr_str(&bb, s2, sizeof(s2));
	printf("ready front=%s back=%s\n", s1, s2);
	fflush(stdout);

	err = run(&r, duration);
	write_stats(&r, stdout);
	close(r.front);
	close(r.back);
	r.up.imp = impair_free(r.up.imp);
	r.down.imp = impair_free(r.down.imp);
	return err ? 1 : 0;
}
