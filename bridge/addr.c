/**
 * @file addr.c  Socket addresses "IPv4:PORT" / "[IPv6]:PORT", clock
 */

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "bridge/bridge_int.h"

static int parse_port(const char *s, uint16_t *portp)
{
	char *end;
	unsigned long v;

	if (!*s)
		return EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535)
		return EINVAL;
	*portp = (uint16_t)v;
	return 0;
}

/** Parse a literal address with port: "1.2.3.4:5", "[::1]:5" */
int baddr_parse(struct baddr *a, const char *str)
{
	char host[64];
	const char *colon;
	uint16_t port;
	size_t hl;

	memset(a, 0, sizeof(*a));
	if (!str)
		return EINVAL;
	if (str[0] == '[') {
		const char *rb = strchr(str, ']');

		if (!rb || rb[1] != ':')
			return EINVAL;
		hl = (size_t)(rb - str - 1);
		if (hl == 0 || hl >= sizeof(host))
			return EINVAL;
		memcpy(host, str + 1, hl);
		host[hl] = '\0';
		colon = rb + 1;
	}
	else {
		colon = strrchr(str, ':');
		if (!colon)
			return EINVAL;
		hl = (size_t)(colon - str);
		if (hl == 0 || hl >= sizeof(host))
			return EINVAL;
		memcpy(host, str, hl);
		host[hl] = '\0';
	}
	if (parse_port(colon + 1, &port))
		return EINVAL;
	if (str[0] != '[') {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		a->len = sizeof(*sin);
	}
	else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		a->len = sizeof(*sin6);
	}
	return 0;
}

/** Format as "1.2.3.4:5" or "[::1]:5" */
int baddr_format(const struct baddr *a, char *buf, size_t sz)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *sin =
			(const struct sockaddr_in *)&a->ss;

		inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		n = snprintf(buf, sz, "%s:%u", host, ntohs(sin->sin_port));
	}
	else if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 =
			(const struct sockaddr_in6 *)&a->ss;

		inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		n = snprintf(buf, sz, "[%s]:%u", host,
			     ntohs(sin6->sin6_port));
	}
	else {
		n = snprintf(buf, sz, "none");
	}
	return (n < 0 || (size_t)n >= sz) ? ENOSPC : 0;
}

/** Same family, address and port */
int baddr_equal(const struct baddr *a, const struct baddr *b)
{
	if (a->ss.ss_family != b->ss.ss_family)
		return 0;
	if (a->ss.ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)&a->ss;
		const struct sockaddr_in *y = (const void *)&b->ss;

		return x->sin_port == y->sin_port &&
			x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss.ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)&a->ss;
		const struct sockaddr_in6 *y = (const void *)&b->ss;

		return x->sin6_port == y->sin6_port &&
			!memcmp(&x->sin6_addr, &y->sin6_addr, 16);
	}
	return 0;
}

/** Port in host order (0 for no address) */
uint16_t baddr_port(const struct baddr *a)
{
	if (a->ss.ss_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)&a->ss)->sin_port);
	if (a->ss.ss_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)&a->ss)->sin6_port);
	return 0;
}

/** Monotonic microseconds */
uint64_t bridge_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000;
}
