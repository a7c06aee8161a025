/** @file loadgen_report.c  /proc CPU accounting, histograms, report math */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench/bench.h"

/**
 * Parse the text of /proc/PID/stat.  The command name (field 2) is in
 * parentheses and may itself contain spaces and parentheses, so fields are
 * counted from the last ')'.  utime and stime are fields 14 and 15 (clock
 * ticks, all threads of the process), processor is field 39.
 */
int bench_proc_stat_parse(const char *text, struct bench_proc_cpu *pc)
{
	const char *p = strrchr(text, ')');
	int field = 2;

	if (!p || !pc)
		return EINVAL;
	memset(pc, 0, sizeof(*pc));
	pc->processor = -1;
	p++;
	while (*p) {
		char *end;
		unsigned long long v;

		while (*p == ' ')
			p++;
		if (!*p || *p == '\n')
			break;
		field++;
		errno = 0;
		v = strtoull(p, &end, 10);
		if (end == p) {
			/* field 3 (state) is a letter */
			if (field != 3)
				return EBADMSG;
			while (*end && *end != ' ')
				end++;
		}
		else if (errno) {
			return EBADMSG;
		}
		if (field == 14)
			pc->utime = v;
		else if (field == 15)
			pc->stime = v;
		else if (field == 39)
			pc->processor = (int)v;
		p = end;
	}
	return field >= 15 ? 0 : EBADMSG;
}

/** Read and parse /proc/PID/stat */
int bench_proc_stat_read(int pid, struct bench_proc_cpu *pc)
{
	char path[64], buf[1024];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return n < 0 ? errno : EBADMSG;
	buf[n] = '\0';
	return bench_proc_stat_parse(buf, pc);
}

void bench_hist_reset(struct bench_hist *h)
{
	memset(h, 0, sizeof(*h));
}

/** Add one sample (microseconds; negative counts as 0) */
void bench_hist_add(struct bench_hist *h, double us)
{
	size_t bin;

	if (us < 0)
		us = 0;
	bin = (size_t)(us / 100.0);
	if (bin >= BENCH_HIST_BINS)
		bin = BENCH_HIST_BINS - 1;
	h->bins[bin]++;
	h->count++;
	h->sum_us += us;
	if (us > h->max_us)
		h->max_us = us;
}

/**
 * Quantile q of the samples, in ms, as the upper edge of the 0.1 ms bin
 * that holds it (so a reported p99 is never below the true one by more
 * than the bin width, and never above it by more than that either).
 */
double bench_hist_quantile_ms(const struct bench_hist *h, double q)
{
	uint64_t rank, acc = 0;
	size_t i;

	if (!h->count)
		return 0;
	if (q < 0)
		q = 0;
	if (q > 1)
		q = 1;
	rank = (uint64_t)(q * (double)h->count + 0.999999);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < BENCH_HIST_BINS; i++) {
		acc += h->bins[i];
		if (acc >= rank) {
			double edge = (double)(i + 1) * 0.1;

			if (i == BENCH_HIST_BINS - 1 ||
			    edge > h->max_us / 1000)
				edge = h->max_us / 1000;
			return edge;
		}
	}
	return h->max_us / 1000;
}

/**
 * CPU figures of a steady window: ticks of CPU the process used (utime +
 * stime deltas) over window_s seconds of wall time while it served legs.
 * cpu_per_leg_second = cpu seconds / (legs * window); legs_per_core is its
 * inverse (how many legs one fully busy core would serve in real time).
 */
int bench_cpu_report(uint64_t ticks, long clk_tck, double window_s,
		     unsigned legs, struct bench_cpu_report *r)
{
	double cpu_s;

	if (!r || clk_tck <= 0 || window_s <= 0 || !legs)
		return EINVAL;
	cpu_s = (double)ticks / (double)clk_tck;
	r->core_load = cpu_s / window_s;
	r->cpu_per_leg_second = cpu_s / ((double)legs * window_s);
	r->legs_per_core = cpu_s > 0 ? (double)legs * window_s / cpu_s : 0;
	return 0;
}

/** Loss in percent of expected packets; 0 when nothing was expected */
double bench_loss_pct(uint64_t expected, uint64_t received)
{
	if (!expected || received >= expected)
		return 0;
	return 100.0 * (double)(expected - received) / (double)expected;
}

/**
 * Whether the generator's own figures make the run untrustworthy: its
 * core was nearly saturated (>= 90 %), more than 1 % of its sends were
 * late by more than half a ptime, or one send was late by a whole ptime.
 */
int bench_generator_overloaded(double gen_core_load, double late_frac,
			       double max_lateness_ms, double ptime_ms)
{
	if (gen_core_load >= 0.9)
		return 1;
	if (late_frac > 0.01)
		return 1;
	if (ptime_ms > 0 && max_lateness_ms >= ptime_ms)
		return 1;
	return 0;
}

static int ieq_prefix(const char *p, const char *end, const char *name)
{
	size_t n = strlen(name);

	return (size_t)(end - p) >= n && !strncasecmp(p, name, n);
}

/**
 * Parse the status line and the headers we care about (Content-Length,
 * Transfer-Encoding: chunked, Connection: close) of an HTTP/1.x response.
 */
int bench_http_parse_head(const char *buf, size_t len,
			  struct bench_http_resp *r)
{
	const char *end = NULL, *p, *eol;
	size_t i;

	for (i = 0; i + 3 < len; i++) {
		if (buf[i] == '\r' && buf[i + 1] == '\n' &&
		    buf[i + 2] == '\r' && buf[i + 3] == '\n') {
			end = buf + i + 2;
			break;
		}
	}
	if (!end)
		return EAGAIN;
	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	r->body_off = (size_t)(end - buf) + 2;
	if (len < 12 || strncmp(buf, "HTTP/1.", 7))
		return EBADMSG;
	p = buf + 8;
	if (*p != ' ')
		return EBADMSG;
	p++;
	if (p[0] < '1' || p[0] > '9' || p[1] < '0' || p[1] > '9' ||
	    p[2] < '0' || p[2] > '9')
		return EBADMSG;
	r->status = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
	if (!strncmp(buf, "HTTP/1.0", 8))
		r->close = 1;
	p = memchr(buf, '\n', (size_t)(end - buf));
	while (p && p < end) {
		const char *v;

		p++;
		eol = memchr(p, '\n', (size_t)(end + 2 - p));
		if (!eol)
			break;
		v = memchr(p, ':', (size_t)(eol - p));
		if (v) {
			v++;
			while (*v == ' ' || *v == '\t')
				v++;
			if (ieq_prefix(p, eol, "content-length:")) {
				char *e;
				long cl = strtol(v, &e, 10);

				if (e == v || cl < 0)
					return EBADMSG;
				r->content_length = cl;
			}
			else if (ieq_prefix(p, eol, "transfer-encoding:") &&
				 ieq_prefix(v, eol, "chunked")) {
				r->chunked = 1;
			}
			else if (ieq_prefix(p, eol, "connection:")) {
				if (ieq_prefix(v, eol, "close"))
					r->close = 1;
				else if (ieq_prefix(v, eol, "keep-alive"))
					r->close = 0;
			}
		}
		p = eol;
		if (p + 1 >= end)
			break;
	}
	return 0;
}

static int dechunk_pass(char *buf, size_t len, size_t *outlen, int write)
{
	size_t in = 0, out = 0;

	for (;;) {
		unsigned long sz = 0;
		size_t digits = 0;

		while (in < len) {
			char c = buf[in];
			int v;

			if (c >= '0' && c <= '9')
				v = c - '0';
			else if (c >= 'a' && c <= 'f')
				v = c - 'a' + 10;
			else if (c >= 'A' && c <= 'F')
				v = c - 'A' + 10;
			else
				break;
			if (sz > (1UL << 28))
				return EBADMSG;
			sz = sz * 16 + (unsigned long)v;
			in++;
			digits++;
		}
		/* skip extensions up to CRLF */
		while (in < len && buf[in] != '\n')
			in++;
		if (in >= len)
			return EAGAIN;
		if (!digits)
			return EBADMSG;
		in++;
		if (sz == 0)
			break;
		if (len - in < sz + 2)
			return EAGAIN;
		if (write)
			memmove(buf + out, buf + in, sz);
		out += sz;
		in += sz;
		if (buf[in] != '\r' || buf[in + 1] != '\n')
			return EBADMSG;
		in += 2;
	}
	*outlen = out;
	return 0;
}

/**
 * Decode a chunked body held in buf[0..len) in place.  Returns EAGAIN
 * (buffer untouched) if the final 0-size chunk has not arrived yet.
 */
int bench_http_dechunk(char *buf, size_t len, size_t *outlen)
{
	int err = dechunk_pass(buf, len, outlen, 0);

	return err ? err : dechunk_pass(buf, len, outlen, 1);
}

/* Match "name" followed by '{' or ' ' at the start of a line */
static const char *prom_line_val(const char *line, const char *eol,
				 const char *name, const char **labels)
{
	size_t n = strlen(name);
	const char *p;

	if ((size_t)(eol - line) <= n || strncmp(line, name, n))
		return NULL;
	p = line + n;
	*labels = NULL;
	if (*p == '{') {
		*labels = p;
		p = memchr(p, '}', (size_t)(eol - p));
		if (!p)
			return NULL;
		p++;
	}
	if (*p != ' ')
		return NULL;
	return p + 1;
}

/** Sum every sample of a metric over all its label sets */
int bench_prom_sum(const char *text, const char *name, double *sum)
{
	const char *line = text;
	int found = 0;

	*sum = 0;
	while (line && *line) {
		const char *eol = strchr(line, '\n'), *v, *labels;

		if (!eol)
			eol = line + strlen(line);
		if (*line != '#') {
			v = prom_line_val(line, eol, name, &labels);
			if (v) {
				char *end;
				double d = strtod(v, &end);

				if (end != v) {
					*sum += d;
					found = 1;
				}
			}
		}
		line = *eol ? eol + 1 : NULL;
	}
	return found ? 0 : ENOENT;
}

/** Read NAME_bucket{...,le="X"} lines into one summed histogram */
int bench_prom_hist(const char *text, const char *name,
		    struct bench_prom_hist *h)
{
	char bname[128];
	const char *line = text;

	memset(h, 0, sizeof(*h));
	snprintf(bname, sizeof(bname), "%s_bucket", name);
	while (line && *line) {
		const char *eol = strchr(line, '\n'), *v, *labels, *le;

		if (!eol)
			eol = line + strlen(line);
		v = *line != '#' ? prom_line_val(line, eol, bname, &labels) :
			NULL;
		if (v && labels) {
			le = strstr(labels, "le=\"");
			if (le && le < v) {
				double bound, cnt;
				char *end;
				int i;

				le += 4;
				if (!strncmp(le, "+Inf", 4))
					bound = 1e300;
				else
					bound = strtod(le, &end);
				cnt = strtod(v, &end);
				for (i = 0; i < h->n; i++)
					if (h->le[i] == bound)
						break;
				if (i == h->n) {
					int j;

					if (h->n == 32)
						return ENOSPC;
					for (j = h->n; j > 0 &&
					     h->le[j - 1] > bound; j--) {
						h->le[j] = h->le[j - 1];
						h->count[j] = h->count[j - 1];
					}
					h->le[j] = bound;
					h->count[j] = 0;
					h->n++;
					i = j;
				}
				h->count[i] += cnt;
			}
		}
		line = *eol ? eol + 1 : NULL;
	}
	return h->n ? 0 : ENOENT;
}

/**
 * Quantile (ms) of the observations made between two snapshots: the
 * upper bound of the first bucket whose cumulative delta reaches q of the
 * total.  Returns -1 when nothing was observed or the layouts differ.
 */
double bench_prom_hist_quantile_ms(const struct bench_prom_hist *a,
				   const struct bench_prom_hist *b, double q)
{
	double total;
	int i;

	if (a->n != b->n || !b->n)
		return -1;
	total = b->count[b->n - 1] - a->count[a->n - 1];
	if (total <= 0)
		return -1;
	for (i = 0; i < b->n; i++) {
		if (a->le[i] != b->le[i])
			return -1;
		if (b->count[i] - a->count[i] >= q * total)
			return b->le[i] >= 1e300 ? -1 : b->le[i] * 1000.0;
	}
	return -1;
}
