/** @file ue_media_addr.c  uemedia: numeric socket address parsing */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ue/ue_media_int.h"

static int parse_port(const char *s, uint16_t *portp)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v > 65535)
		return EINVAL;
	*portp = (uint16_t)v;
	return 0;
}

/**
 * Parse a numeric "A.B.C.D:PORT" or "[IPv6]:PORT" address.
 *
 * @param s     text
 * @param ss    result
 * @param lenp  result length
 * @return 0 or EINVAL
 */
int ue_addr_parse(const char *s, struct sockaddr_storage *ss,
		  socklen_t *lenp)
{
	char host[64];
	const char *colon, *hs;
	size_t hl;
	uint16_t port;

	if (!s || !ss || !lenp)
		return EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;

		if (!rb || rb[1] != ':')
			return EINVAL;
		hs = s + 1;
		hl = (size_t)(rb - hs);
		if (hl == 0 || hl >= sizeof(host))
			return EINVAL;
		memcpy(host, hs, hl);
		host[hl] = '\0';
		if (parse_port(rb + 2, &port))
			return EINVAL;
		if (inet_pton(AF_INET6, host, &s6->sin6_addr) != 1)
			return EINVAL;
		s6->sin6_family = AF_INET6;
		s6->sin6_port = htons(port);
		*lenp = sizeof(*s6);
		return 0;
	}
	colon = strrchr(s, ':');
	if (!colon || colon == s)
		return EINVAL;
	hl = (size_t)(colon - s);
	if (hl >= sizeof(host))
		return EINVAL;
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (parse_port(colon + 1, &port))
		return EINVAL;
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &s4->sin_addr) != 1)
			return EINVAL;
		s4->sin_family = AF_INET;
		s4->sin_port = htons(port);
		*lenp = sizeof(*s4);
	}
	return 0;
}

/**
 * Format an IPv4/IPv6 socket address as "A.B.C.D:PORT" or "[v6]:PORT".
 *
 * @return 0, EAFNOSUPPORT or ENOSPC
 */
int ue_addr_format(const struct sockaddr *sa, char *out, size_t outsz)
{
	char host[INET6_ADDRSTRLEN];
	int n;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)sa;

		inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
		n = snprintf(out, outsz, "%s:%u", host, ntohs(s4->sin_port));
	}
	else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;

		inet_ntop(AF_INET6, &s6->sin6_addr, host, sizeof(host));
		n = snprintf(out, outsz, "[%s]:%u", host,
			     ntohs(s6->sin6_port));
	}
	else {
		return EAFNOSUPPORT;
	}
	return (n < 0 || (size_t)n >= outsz) ? ENOSPC : 0;
}
