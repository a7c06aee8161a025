/**
 * @file log.c  Leveled logging to stderr (never stdout, never per packet)
 */

#include <stdarg.h>
#include <stdio.h>
#include <time.h>
#include "bridge/bridge.h"

static volatile int log_level = BRIDGE_LOG_INFO;

static const char *const level_names[] = {
	"error", "warn", "info", "debug"
};

/** Set the most verbose level that is still printed */
void bridge_log_set_level(enum bridge_log_level level)
{
	log_level = level;
}

/** Print one line "TIME bridged LEVEL: message" to stderr */
void bridge_log(enum bridge_log_level level, const char *fmt, ...)
{
	char line[1024];
	struct timespec ts;
	struct tm tm;
	va_list ap;
	int n;

	if ((int)level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = snprintf(line, sizeof(line),
		     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ bridged %s: ",
		     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		     tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
		     level_names[level]);
	if (n < 0 || (size_t)n >= sizeof(line))
		n = 0;
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s\n", line);
}
