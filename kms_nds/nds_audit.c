/**
 * @file nds_audit.c  Append-only audit log of NDS key releases and refusals
 *
 * One line per event, written with a single write(2) on an O_APPEND file
 * so lines from concurrent writers never interleave:
 *   2026-11-23T07:00:00Z release role=bridge node=bridge1.keymix.test ...
 * Callers pass only identities, references and generations; identities
 * are restricted to printable ASCII without spaces by the parser, and
 * anything else is escaped here, so a line cannot be forged.  Key
 * material never reaches this file.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kms_nds/nds_int.h"

struct nds_audit {
	int fd;
};

int nds_audit_open(struct nds_audit **ap, const char *path)
{
	struct nds_audit *a;

	if (!ap || !path)
		return EINVAL;
	a = calloc(1, sizeof(*a));
	if (!a)
		return ENOMEM;
	a->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (a->fd < 0) {
		int err = errno;

		free(a);
		return err;
	}
	*ap = a;
	return 0;
}

struct nds_audit *nds_audit_close(struct nds_audit *a)
{
	if (a) {
		if (a->fd >= 0)
			close(a->fd);
		free(a);
	}
	return NULL;
}

/* Replace anything but printable non-space ASCII, '=' kept. */
static void sanitize(char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c > 0x7e)
			s[i] = '?';
	}
}

/**
 * Write one event line: UTC time, event word, then the printf-formatted
 * key=value list.  A NULL log writes nothing.  Failures are not fatal
 * (the release has happened); they are reported on stderr.
 */
void nds_audit_write(struct nds_audit *a, time_t now, const char *event,
		     const char *fmt, ...)
{
	char line[1024];
	struct tm tm;
	va_list ap;
	int n, m;

	if (!a || a->fd < 0)
		return;
	gmtime_r(&now, &tm);
	n = snprintf(line, sizeof(line), "%04d-%02d-%02dT%02d:%02d:%02dZ %s ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, event);
	if (n < 0 || (size_t)n >= sizeof(line))
		return;
	va_start(ap, fmt);
	m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (m < 0)
		return;
	if ((size_t)m >= sizeof(line) - (size_t)n - 1)
		m = (int)(sizeof(line) - (size_t)n - 2);
	sanitize(line + n, (size_t)m);
	n += m;
	line[n++] = '\n';
	if (write(a->fd, line, (size_t)n) != n)
		fprintf(stderr, "nds: audit log write failed: %s\n",
			strerror(errno));
}
