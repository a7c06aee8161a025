/**
 * @file ports.c  Leg sockets from the configured RTP port range
 *
 * Control thread only (or a worker while the control thread waits in
 * worker_call).  One UDP socket per leg carries RTP and RTCP (RFC 5761).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include "bridge/bridge_int.h"

int ports_init(struct ports *p, uint16_t lo, uint16_t hi)
{
	p->lo = lo;
	p->hi = hi;
	p->next = lo;
	p->used = calloc((size_t)(hi - lo) + 1, 1);
	return p->used ? 0 : ENOMEM;
}

void ports_fini(struct ports *p)
{
	free(p->used);
	p->used = NULL;
}

/*
 * The local address of a leg is the one the kernel would use to reach its
 * remote: a connected UDP socket tells us without sending anything.
 */
static int local_for(const struct baddr *remote, struct baddr *local)
{
	int fd, err = 0;

	fd = socket(remote->ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	local->len = sizeof(local->ss);
	if (connect(fd, (const struct sockaddr *)&remote->ss, remote->len) ||
	    getsockname(fd, (struct sockaddr *)&local->ss, &local->len))
		err = errno;
	close(fd);
	return err;
}

static void set_port(struct baddr *a, uint16_t port)
{
	if (a->ss.ss_family == AF_INET)
		((struct sockaddr_in *)&a->ss)->sin_port = htons(port);
	else
		((struct sockaddr_in6 *)&a->ss)->sin6_port = htons(port);
}

/**
 * Open and bind a leg socket on a free port of the range.
 *
 * @return 0, EHOSTUNREACH (no route to remote), EADDRNOTAVAIL (range
 *         exhausted) or another errno
 */
int ports_open(struct ports *p, const struct baddr *remote, int *fdp,
	       struct baddr *local, uint16_t *portp)
{
	size_t n = (size_t)(p->hi - p->lo) + 1, i;
	int err, one = 1, bufsz = 256 * 1024;

	err = local_for(remote, local);
	if (err)
		return EHOSTUNREACH;
	for (i = 0; i < n; i++) {
		uint16_t port = p->next;
		int fd;

		p->next = p->next == p->hi ? p->lo : (uint16_t)(p->next + 1);
		if (p->used[port - p->lo])
			continue;
		fd = socket(local->ss.ss_family,
			    SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (fd < 0)
			return errno;
		if (local->ss.ss_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				   sizeof(one));
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
		set_port(local, port);
		if (bind(fd, (struct sockaddr *)&local->ss, local->len)) {
			close(fd);
			continue; /* in use by someone else */
		}
		p->used[port - p->lo] = 1;
		*fdp = fd;
		*portp = port;
		return 0;
	}
	return EADDRNOTAVAIL;
}

void ports_release(struct ports *p, uint16_t port)
{
	if (p->used && port >= p->lo && port <= p->hi)
		p->used[port - p->lo] = 0;
}
