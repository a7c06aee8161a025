/** @file loadgen_http.c  Minimal blocking HTTP/1.1 client (setup path only) */

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <netinet/tcp.h>

#include "bench/loadgen_int.h"

#define HTTP_TIMEOUT_MS 60000

static int http_connect(struct lg_http *h)
{
	int one = 1;

	h->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (h->fd < 0)
		return errno;
	if (connect(h->fd, (struct sockaddr *)&h->addr, sizeof(h->addr))) {
		int err = errno;

		close(h->fd);
		h->fd = -1;
		return err;
	}
	setsockopt(h->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return 0;
}

void lg_http_close(struct lg_http *h)
{
	if (h->fd >= 0)
		close(h->fd);
	h->fd = -1;
}

static int send_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

static int once(struct lg_http *h, const char *req, size_t reqlen,
		int *status, char *resp, size_t cap)
{
	struct bench_http_resp r;
	size_t got = 0;
	int err, have_head = 0;

	if (h->fd < 0) {
		err = http_connect(h);
		if (err)
			return err;
	}
	err = send_all(h->fd, req, reqlen);
	if (err)
		return err;
	for (;;) {
		struct pollfd pf = { h->fd, POLLIN, 0 };
		ssize_t n;

		if (!have_head) {
			err = bench_http_parse_head(resp, got, &r);
			if (!err)
				have_head = 1;
			else if (err != EAGAIN)
				return err;
		}
		if (have_head) {
			size_t blen = got - r.body_off;

			if (r.chunked) {
				size_t out;

				if (!bench_http_dechunk(resp + r.body_off,
							blen, &out)) {
					memmove(resp, resp + r.body_off, out);
					resp[out] = '\0';
					break;
				}
			}
			else if (r.content_length >= 0 &&
				 blen >= (size_t)r.content_length) {
				memmove(resp, resp + r.body_off,
					(size_t)r.content_length);
				resp[r.content_length] = '\0';
				break;
			}
			else if (r.status == 204 || r.status == 304) {
				resp[0] = '\0';
				break;
			}
		}
		if (got + 1 >= cap)
			return EMSGSIZE;
		if (poll(&pf, 1, HTTP_TIMEOUT_MS) <= 0)
			return ETIMEDOUT;
		n = recv(h->fd, resp + got, cap - 1 - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* close-delimited body */
			if (have_head && r.content_length < 0 && !r.chunked) {
				size_t blen = got - r.body_off;

				memmove(resp, resp + r.body_off, blen);
				resp[blen] = '\0';
				r.close = 1;
				break;
			}
			return n == 0 ? ECONNRESET : errno;
		}
		got += (size_t)n;
		resp[got] = '\0';
	}
	*status = r.status;
	if (r.close)
		lg_http_close(h);
	return 0;
}

/**
 * One request on a kept-alive connection (reconnecting once if the
 * server closed it).  resp gets the NUL-terminated body.
 */
int lg_http_request(struct lg_http *h, const char *method, const char *path,
		    const char *token, const char *body, int *status,
		    char *resp, size_t cap)
{
	char req[65536];
	char auth[600] = "";
	size_t blen = body ? strlen(body) : 0;
	int n, err, tries;

	if (token && *token)
		snprintf(auth, sizeof(auth), "Authorization: Bearer %s\r\n",
			 token);
	n = snprintf(req, sizeof(req),
		     "%s %s HTTP/1.1\r\nHost: %s\r\n%s"
		     "Content-Type: application/json\r\n"
		     "Content-Length: %zu\r\n\r\n%s",
		     method, path, h->host, auth, blen, body ? body : "");
	if (n < 0 || (size_t)n >= sizeof(req))
		return EMSGSIZE;
	for (tries = 0; tries < 2; tries++) {
		int fresh = h->fd < 0;

		err = once(h, req, (size_t)n, status, resp, cap);
		if (!err)
			return 0;
		lg_http_close(h);
		if (fresh)
			break;
	}
	return err;
}
