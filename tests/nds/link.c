/**
 * @file link.c  NDS link over loopback: kmsd listener + node client
 *
 * The listener runs on its own event-loop thread with the in-memory
 * backend (fixture.c); clients are the real kms_client library and a raw
 * TLS client for inputs the library would never send.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "tests/nds/nds_test.h"

#define ALICE "alice@keymix.test"
#define BOB "bob@keymix.test"

static int fetch(const char *node, const char *ref, const char *part,
		 uint8_t *key, uint32_t *gen, char *err, size_t errsz)
{
	struct kms_client *c = client_for(node, fix.port, 3000);
	size_t klen = KMS_NDS_KEY_MAX;
	int r;

	assert_non_null(c);
	r = kms_client_fetch_legkey(c, ref, part, key, &klen, gen, err,
				    errsz);
	if (!r)
		assert_int_equal(klen, 32);
	kms_client_free(c);
	return r;
}

static void test_bridge_own_conf(void **state)
{
	uint8_t key[KMS_NDS_KEY_MAX];
	uint32_t gen = 0;
	char err[256];

	(void)state;
	assert_int_equal(fetch("bridge1", "conf-1", ALICE, key, &gen, err,
			       sizeof(err)), 0);
	assert_memory_equal(key, mem_legs[0].key, 32);
	assert_int_equal(gen, 1);
	assert_int_equal(fetch("bridge1", "conf-1", BOB, key, &gen, err,
			       sizeof(err)), 0);
	assert_memory_equal(key, mem_legs[1].key, 32);
	assert_int_equal(gen, 3);
	assert_int_equal(fetch("bridge2", "conf-2", "carol@keymix.test", key,
			       &gen, err, sizeof(err)), 0);
	assert_memory_equal(key, mem_legs[2].key, 32);
}

static void test_bridge_other_conf(void **state)
{
	uint8_t key[KMS_NDS_KEY_MAX];
	char err[256];

	(void)state;
	memset(key, 0, sizeof(key));
	assert_int_equal(fetch("bridge2", "conf-1", ALICE, key, NULL, err,
			       sizeof(err)), EACCES);
	assert_non_null(strstr(err, "not the focus"));
	/* the other way round, and for a leg that does not exist */
	assert_int_equal(fetch("bridge1", "conf-2", "carol@keymix.test", key,
			       NULL, err, sizeof(err)), EACCES);
	assert_int_equal(fetch("bridge1", "conf-2", "nobody", key, NULL, err,
			       sizeof(err)), EACCES);
	assert_true(memcmp(key, mem_legs[0].key, 32) != 0);
}

static void refused_cert(const char *name, const char *needle)
{
	uint8_t key[KMS_NDS_KEY_MAX];
	char err[256] = "";
	int r;

	r = fetch(name, "conf-1", ALICE, key, NULL, err, sizeof(err));
	if (r != EACCES)
		fail_msg("%s: got %d (%s), want EACCES", name, r, err);
	if (needle && !strstr(err, needle))
		fail_msg("%s: '%s' lacks '%s'", name, err, needle);
}

static void test_other_ca(void **state)
{
	(void)state;
	refused_cert("test/other-bridge1", "refused");
}

static void test_expired(void **state)
{
	(void)state;
	refused_cert("test/expired-bridge1", "expired");
}

static void test_no_role_cert(void **state)
{
	(void)state;
	refused_cert("test/norole1", "no keymix-role");
	refused_cert("test/badrole1", "unknown role");
}

static void test_wrong_usage(void **state)
{
	(void)state;
	/* serverAuth only: not a client certificate */
	refused_cert("test/serveronly1", "refused");
	/* kmsd's own certificate is not a node certificate either */
	refused_cert("kmsd-nds", "refused");
}

static void test_no_client_cert(void **state)
{
	uint8_t buf[256];
	struct raw *r;
	size_t n;

	(void)state;
	/* raw_open waits for kmsd's greeting: none comes */
	r = raw_open(NULL, fix.port, 0);
	assert_null(r);
	(void)buf;
	(void)n;
}

static void test_tls12_refused(void **state)
{
	struct raw *r;

	(void)state;
	r = raw_open("bridge1", fix.port, 1);
	assert_null(r);
}

static void test_role_mismatch(void **state)
{
	struct kms_client *c;
	uint8_t key[KMS_NDS_KEY_MAX];
	size_t klen = sizeof(key);
	struct kms_nds_mbx *mb = calloc(1, sizeof(*mb));
	char err[256];

	(void)state;
	assert_non_null(mb);
	assert_int_equal(fetch("transcoder1", "conf-1", ALICE, key, NULL, err,
			       sizeof(err)), EACCES);
	assert_non_null(strstr(err, "role transcoder"));
	assert_int_equal(fetch("mailbox1", "conf-1", ALICE, key, NULL, err,
			       sizeof(err)), EACCES);
	assert_non_null(strstr(err, "role mailbox"));

	c = client_for("bridge1", fix.port, 3000);
	assert_non_null(c);
	assert_int_equal(kms_client_fetch_transcoder_key(c, "call-1", key,
							 &klen, NULL, err,
							 sizeof(err)), EACCES);
	assert_non_null(strstr(err, "role bridge"));
	assert_int_equal(kms_client_mailbox_deposit(c, ALICE, BOB, "stmt", 0,
						    mb, err, sizeof(err)),
			 EACCES);
	/* the connection survives refusals */
	assert_int_equal(kms_client_ping(c, err, sizeof(err)), 0);
	kms_client_free(c);

	c = client_for("mailbox1", fix.port, 3000);
	assert_non_null(c);
	klen = sizeof(key);
	assert_int_equal(kms_client_fetch_transcoder_key(c, "call-1", key,
							 &klen, NULL, err,
							 sizeof(err)), EACCES);
	kms_client_free(c);
	free(mb);
}

static void test_transcoder(void **state)
{
	struct kms_client *c = client_for("transcoder1", fix.port, 3000);
	uint8_t key[KMS_NDS_KEY_MAX];
	size_t klen = sizeof(key);
	uint32_t gen = 0;
	char err[256];

	(void)state;
	assert_non_null(c);
	assert_int_equal(kms_client_fetch_transcoder_key(c, "call-1", key,
							 &klen, &gen, err,
							 sizeof(err)), 0);
	assert_int_equal(klen, 32);
	assert_int_equal(gen, 1);
	klen = sizeof(key);
	assert_int_equal(kms_client_fetch_transcoder_key(c, "call-2", key,
							 &klen, &gen, err,
							 sizeof(err)), EACCES);
	assert_non_null(strstr(err, "not authorised for call call-2"));
	klen = sizeof(key);
	assert_int_equal(kms_client_fetch_transcoder_key(c, "call-x", key,
							 &klen, &gen, err,
							 sizeof(err)), ENOENT);
	kms_client_free(c);
}

static void test_mailbox(void **state)
{
	struct kms_client *c = client_for("mailbox1", fix.port, 3000);
	struct kms_nds_mbx *mb = calloc(1, sizeof(*mb));
	char err[256];

	(void)state;
	assert_non_null(c);
	assert_non_null(mb);
	assert_int_equal(kms_client_mailbox_deposit(c, ALICE, BOB, "Zm9v", 1,
						    mb, err, sizeof(err)), 0);
	assert_string_equal(mb->for_a, "EA.Zm9v");
	assert_string_equal(mb->ticket, "TICKET.for.bob");
	assert_int_equal(mb->ke2m_len, 32);
	assert_true(mb->retain_until > 0);
	assert_int_equal(kms_client_mailbox_deposit(c, ALICE, BOB, "Zm9v", 0,
						    mb, err, sizeof(err)), 0);
	assert_int_equal(mb->ke2m_len, 0);
	assert_int_equal(kms_client_mailbox_deposit(c, ALICE, "x@y", "Zm9v",
						    0, mb, err, sizeof(err)),
			 ENOENT);
	kms_client_free(c);
	/* a second mailbox node does not serve bob: same certificate CA,
	 * but bridge2 acts here as "another node" refused by role first */
	free(mb);
}

static void test_not_found_expired(void **state)
{
	uint8_t key[KMS_NDS_KEY_MAX];
	char err[256];

	(void)state;
	assert_int_equal(fetch("bridge1", "conf-9", ALICE, key, NULL, err,
			       sizeof(err)), ENOENT);
	assert_int_equal(fetch("bridge1", "conf-1", "mallory", key, NULL,
			       err, sizeof(err)), ENOENT);
	assert_int_equal(fetch("bridge1", "conf-old", "dave@keymix.test",
			       key, NULL, err, sizeof(err)), 0);
	fix_clock(&fix, 2000);
	assert_int_equal(fetch("bridge1", "conf-old", "dave@keymix.test",
			       key, NULL, err, sizeof(err)), ENOENT);
	assert_non_null(strstr(err, "expired"));
	fix_clock(&fix, 0);
}

static size_t ping_frame(uint8_t *buf, size_t cap, uint32_t id)
{
	struct nds_enc e;
	size_t n = 0;

	nds_enc_begin(&e, buf, cap, NDS_T_PING_REQ, id);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	return n;
}

/* Send bytes, expect an error frame with code, return its message. */
static void expect_error(struct raw *r, const uint8_t *p, size_t n,
			 enum nds_err code)
{
	uint8_t buf[512];
	struct nds_msg m;
	size_t len;

	assert_int_equal(raw_send(r, p, n), 0);
	assert_int_equal(raw_read_frame(r, buf, sizeof(buf), &len), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, len - 4), 0);
	assert_int_equal(m.type, NDS_T_ERROR_RESP);
	assert_int_equal((m.f[NDS_TAG_ERR_CODE].p[0] << 8) |
			 m.f[NDS_TAG_ERR_CODE].p[1], code);
}

static void expect_pong(struct raw *r, uint32_t id)
{
	uint8_t buf[64];
	struct nds_msg m;
	size_t n = ping_frame(buf, sizeof(buf), id);

	assert_int_equal(raw_send(r, buf, n), 0);
	assert_int_equal(raw_read_frame(r, buf, sizeof(buf), &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), 0);
	assert_int_equal(m.type, NDS_T_PONG_RESP);
	assert_int_equal(m.req_id, id);
}

static void test_malformed_keep_conn(void **state)
{
	struct raw *r = raw_open("bridge1", fix.port, 0);
	uint8_t f[64];
	size_t n;

	(void)state;
	assert_non_null(r);
	expect_pong(r, 1);
	/* TLV field running past the body */
	n = ping_frame(f, sizeof(f), 2);
	memcpy(f + n, "\x01\x00\x09" "ab", 5);
	f[3] += 5;
	expect_error(r, f, n + 5, NDS_E_MALFORMED);
	expect_pong(r, 3);
	/* another version */
	n = ping_frame(f, sizeof(f), 4);
	f[4] = 9;
	expect_error(r, f, n, NDS_E_UNSUPPORTED);
	/* unknown type, and a response sent as a request */
	n = ping_frame(f, sizeof(f), 5);
	f[5] = 0x33;
	expect_error(r, f, n, NDS_E_UNSUPPORTED);
	n = ping_frame(f, sizeof(f), 6);
	f[5] = NDS_T_PONG_RESP;
	expect_error(r, f, n, NDS_E_UNSUPPORTED);
	/* legkey request without its participant */
	n = ping_frame(f, sizeof(f), 7);
	f[5] = NDS_T_LEGKEY_REQ;
	memcpy(f + n, "\x01\x00\x01" "c", 4);
	f[3] += 4;
	expect_error(r, f, n + 4, NDS_E_MALFORMED);
	expect_pong(r, 8);
	r = raw_close(r);
}

static void test_oversized_closes(void **state)
{
	static const uint8_t big[4] = { 0x7f, 0xff, 0xff, 0xff };
	static const uint8_t small[8] = { 0, 0, 0, 3, 1, 4, 0, 0 };
	uint8_t buf[256];
	struct raw *r;
	size_t n;

	(void)state;
	r = raw_open("bridge1", fix.port, 0);
	assert_non_null(r);
	expect_error(r, big, sizeof(big), NDS_E_TOO_LARGE);
	assert_int_equal(raw_read_frame(r, buf, sizeof(buf), &n), ENOTCONN);
	r = raw_close(r);
	r = raw_open("bridge1", fix.port, 0);
	assert_non_null(r);
	expect_error(r, small, sizeof(small), NDS_E_MALFORMED);
	assert_int_equal(raw_read_frame(r, buf, sizeof(buf), &n), ENOTCONN);
	r = raw_close(r);
}

static void test_truncated_times_out(void **state)
{
	/* announces 100 bytes, sends 9: the request timer ends it */
	static const uint8_t part[13] = { 0, 0, 0, 100, 1, 1, 0, 0, 0, 0, 0,
					  1, 1 };
	uint8_t buf[256];
	struct raw *r;
	size_t n;

	(void)state;
	r = raw_open("bridge1", fix.port, 0);
	assert_non_null(r);
	expect_error(r, part, sizeof(part), NDS_E_TIMEOUT);
	assert_int_equal(raw_read_frame(r, buf, sizeof(buf), &n), ENOTCONN);
	r = raw_close(r);
}

static void test_garbage_tcp(void **state)
{
	static const char junk[] = "GET / HTTP/1.0\r\n\r\n\x00\xff\x16\x03";
	struct nds_srv_stats st;
	char b[64];
	int fd;

	(void)state;
	fd = raw_tcp(fix.port);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	/* the server answers with a TLS alert at most, then closes */
	while (read(fd, b, sizeof(b)) > 0)
		;
	close(fd);
	fix_stats(&fix, &st);
	assert_true(st.refused > 0);
}

static void test_server_survives(void **state)
{
	uint8_t key[KMS_NDS_KEY_MAX];
	struct nds_srv_stats st;
	char err[256];

	(void)state;
	assert_int_equal(fetch("bridge1", "conf-1", ALICE, key, NULL, err,
			       sizeof(err)), 0);
	fix_stats(&fix, &st);
	assert_true(st.malformed >= 6);
	assert_true(st.released > 0);
}

/*
 * A node that pipelines many requests before reading: with the output
 * bound set to a few answers, kmsd pauses reading while answers wait and
 * resumes as they leave; every answer arrives, in order.
 */
static void test_slow_reader(void **state)
{
	struct raw *r;
	uint8_t buf[256], f[128];
	struct nds_msg m;
	struct nds_enc e;
	struct nds_srv_stats st;
	struct srvfix f2;
	size_t n;
	int i;

	(void)state;
	memset(&f2, 0, sizeof(f2));
	snprintf(f2.audit, sizeof(f2.audit), "%s", fix.audit);
	assert_int_equal(fix_start(&f2, 0, 0, 0, 0), 0);
	fix_out_max(&f2, 200, 4096);
	raw_rcvbuf = 4096;
	r = raw_open("bridge1", f2.port, 0);
	raw_rcvbuf = 0;
	assert_non_null(r);
	for (i = 0; i < 1000; i++) {
		nds_enc_begin(&e, f, sizeof(f), NDS_T_LEGKEY_REQ,
			      (uint32_t)(i + 1));
		nds_enc_str(&e, NDS_TAG_CONF_REF, "conf-1");
		nds_enc_str(&e, NDS_TAG_PARTICIPANT, ALICE);
		assert_int_equal(nds_enc_end(&e, &n), 0);
		assert_int_equal(raw_send(r, f, n), 0);
	}
	for (i = 0; i < 1000; i++) {
		assert_int_equal(raw_read_frame(r, buf, sizeof(buf), &n), 0);
		assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), 0);
		assert_int_equal(m.type, NDS_T_KEY_RESP);
		assert_int_equal(m.req_id, (uint32_t)(i + 1));
	}
	fix_stats(&f2, &st);
	assert_true(st.paused > 0);
	raw_close(r);
	fix_stop(&f2);
}

static void test_reuse(void **state)
{
	struct kms_client *c = client_for("bridge1", fix.port, 3000);
	struct nds_srv_stats a, b;
	uint8_t key[KMS_NDS_KEY_MAX];
	char err[256];
	size_t klen;
	int i;

	(void)state;
	assert_non_null(c);
	fix_stats(&fix, &a);
	for (i = 0; i < 50; i++) {
		klen = sizeof(key);
		assert_int_equal(kms_client_fetch_legkey(c, "conf-1", ALICE,
							 key, &klen, NULL, err,
							 sizeof(err)), 0);
	}
	fix_stats(&fix, &b);
	assert_int_equal(b.accepted - a.accepted, 1);
	assert_int_equal(b.released - a.released, 50);
	kms_client_free(c);
}

static void test_reconnect_restart(void **state)
{
	struct kms_client *c = client_for("bridge1", fix.port, 3000);
	uint8_t key[KMS_NDS_KEY_MAX];
	uint16_t port = fix.port;
	char err[256];
	size_t klen = sizeof(key);
	int r;

	(void)state;
	assert_non_null(c);
	assert_int_equal(kms_client_fetch_legkey(c, "conf-1", ALICE, key,
						 &klen, NULL, err,
						 sizeof(err)), 0);
	fix_stop(&fix);
	klen = sizeof(key);
	r = kms_client_fetch_legkey(c, "conf-1", ALICE, key, &klen, NULL,
				    err, sizeof(err));
	assert_true(r == ECONNREFUSED || r == ENOTCONN || r == ETIMEDOUT);
	assert_true(strlen(err) > 0);
	assert_int_equal(fix_start(&fix, port, 0, 300, 0), 0);
	klen = sizeof(key);
	r = kms_client_fetch_legkey(c, "conf-1", ALICE, key, &klen, NULL,
				    err, sizeof(err));
	if (r)
		fail_msg("after restart: %d %s", r, err);
	assert_memory_equal(key, mem_legs[0].key, 32);
	kms_client_free(c);
}

static void test_idle_timeout(void **state)
{
	struct srvfix f2;
	struct kms_client *c;
	struct nds_srv_stats st;
	char err[256];

	(void)state;
	memset(&f2, 0, sizeof(f2));
	snprintf(f2.audit, sizeof(f2.audit), "%s", fix.audit);
	assert_int_equal(fix_start(&f2, 0, 400, 0, 0), 0);
	c = client_for("bridge1", f2.port, 3000);
	assert_non_null(c);
	assert_int_equal(kms_client_ping(c, err, sizeof(err)), 0);
	usleep(1200 * 1000);
	/* the server closed the idle connection; the client notices */
	assert_int_equal(kms_client_ping(c, err, sizeof(err)), 0);
	fix_stats(&f2, &st);
	assert_true(st.accepted >= 2);
	/* the idle connection was freed, not just abandoned */
	assert_int_equal(st.conns, 1);
	kms_client_free(c);
	fix_stop(&f2);
}

static void test_max_conns(void **state)
{
	struct srvfix f2;
	struct raw *r1, *r2, *r3;

	(void)state;
	memset(&f2, 0, sizeof(f2));
	snprintf(f2.audit, sizeof(f2.audit), "%s", fix.audit);
	assert_int_equal(fix_start(&f2, 0, 0, 2000, 2), 0);
	r1 = raw_open("bridge1", f2.port, 0);
	r2 = raw_open("bridge2", f2.port, 0);
	assert_non_null(r1);
	assert_non_null(r2);
	expect_pong(r1, 1);
	expect_pong(r2, 1);
	r3 = raw_open("bridge1", f2.port, 0);
	assert_null(r3);
	raw_close(r1);
	raw_close(r2);
	fix_stop(&f2);
}

static void test_unreachable(void **state)
{
	struct kms_client *c;
	struct srvfix f2;
	uint8_t key[KMS_NDS_KEY_MAX];
	size_t klen = sizeof(key);
	char err[256];
	uint16_t port;
	int r;

	(void)state;
	/* a port that was just free */
	memset(&f2, 0, sizeof(f2));
	snprintf(f2.audit, sizeof(f2.audit), "%s", fix.audit);
	assert_int_equal(fix_start(&f2, 0, 0, 0, 0), 0);
	port = f2.port;
	fix_stop(&f2);
	c = client_for("bridge1", port, 300);
	assert_non_null(c);
	r = kms_client_fetch_legkey(c, "conf-1", ALICE, key, &klen, NULL,
				    err, sizeof(err));
	assert_true(r == ECONNREFUSED || r == ETIMEDOUT);
	assert_non_null(strstr(err, "unreachable"));
	kms_client_free(c);
}

/* A port that accepts TCP and closes at once: a KMS that is not there. */
struct closer {
	int fd;
	int accepts;
	pthread_t th;
};

static void *closer_main(void *arg)
{
	struct closer *cl = arg;
	int fd;

	while ((fd = accept(cl->fd, NULL, NULL)) >= 0) {
		__atomic_add_fetch(&cl->accepts, 1, __ATOMIC_SEQ_CST);
		close(fd);
	}
	return NULL;
}

/*
 * Failed connection attempts back off: ten quick calls while the KMS is
 * broken make far fewer than ten attempts, and the reason says when the
 * next attempt will be.
 */
static void test_backoff(void **state)
{
	struct closer cl = { -1, 0, 0 };
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	struct kms_client *c;
	char err[256];
	int i, r, said_next = 0;

	(void)state;
	cl.fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(cl.fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(cl.fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(cl.fd, 16), 0);
	assert_int_equal(getsockname(cl.fd, (struct sockaddr *)&sa, &sl), 0);
	assert_int_equal(pthread_create(&cl.th, NULL, closer_main, &cl), 0);

	c = client_for("bridge1", ntohs(sa.sin_port), 100);
	assert_non_null(c);
	for (i = 0; i < 10; i++) {
		r = kms_client_ping(c, err, sizeof(err));
		assert_true(r == ENOTCONN || r == ETIMEDOUT ||
			    r == ECONNREFUSED);
		if (strstr(err, "next attempt in"))
			said_next = 1;
	}
	kms_client_free(c);
	shutdown(cl.fd, SHUT_RDWR);
	close(cl.fd);
	pthread_join(cl.th, NULL);
	assert_true(said_next);
	assert_true(cl.accepts >= 1);
	assert_true(cl.accepts < 10);
}

static void test_client_args(void **state)
{
	struct kms_client *c = client_for("bridge1", fix.port, 3000);
	struct kms_client_cfg bad = { 0 };
	struct kms_client *c2 = NULL;
	uint8_t key[8];
	size_t klen = sizeof(key);
	char err[256];

	(void)state;
	assert_non_null(c);
	assert_int_equal(kms_client_fetch_legkey(c, "conf 1", ALICE, key,
						 &klen, NULL, err,
						 sizeof(err)), EINVAL);
	assert_int_equal(kms_client_fetch_legkey(c, "conf-1", "", key,
						 &klen, NULL, err,
						 sizeof(err)), EINVAL);
	/* 32-byte key, 8-byte buffer */
	assert_int_equal(kms_client_fetch_legkey(c, "conf-1", ALICE, key,
						 &klen, NULL, err,
						 sizeof(err)), ENOBUFS);
	assert_int_equal(kms_client_alloc(&c2, &bad), EINVAL);
	bad = (struct kms_client_cfg){ "127.0.0.1", 1, "/nonexistent",
		"/nonexistent", "/nonexistent", 0 };
	assert_int_equal(kms_client_alloc(&c2, &bad), EPROTO);
	assert_null(c2);
	assert_int_equal(kms_client_reload(c), 0);
	assert_int_equal(kms_client_ping(c, err, sizeof(err)), 0);
	kms_client_free(c);
}

static void test_server_role_checked(void **state)
{
	struct srvfix f2;
	struct kms_client *c;
	char err[256];

	(void)state;
	/* a listener presenting a bridge certificate is not a KMS */
	memset(&f2, 0, sizeof(f2));
	snprintf(f2.audit, sizeof(f2.audit), "%s", fix.audit);
	snprintf(f2.cert, sizeof(f2.cert), "%s", certpath("bridge1", "crt"));
	assert_int_equal(fix_start(&f2, 0, 0, 0, 0), 0);
	c = client_for("bridge1", f2.port, 2000);
	assert_non_null(c);
	assert_int_equal(kms_client_ping(c, err, sizeof(err)), EPROTO);
	assert_non_null(strstr(err, "server certificate"));
	kms_client_free(c);
	fix_stop(&f2);
}

static void test_ipv6_and_names(void **state)
{
	struct srvfix f2;
	struct kms_client *c;
	uint8_t key[KMS_NDS_KEY_MAX];
	size_t klen = sizeof(key);
	char err[256];

	(void)state;
	memset(&f2, 0, sizeof(f2));
	snprintf(f2.audit, sizeof(f2.audit), "%s", fix.audit);
	f2.addr = "::1";
	if (fix_start(&f2, 0, 0, 0, 0)) {
		skip();  /* no IPv6 loopback here */
		return;
	}
	/* the server certificate names IP ::1 */
	c = client_at("::1", certpath("bridge1", "crt"),
		      certpath("bridge1", "key"), f2.port, 3000);
	assert_non_null(c);
	assert_int_equal(kms_client_fetch_legkey(c, "conf-1", ALICE, key,
						 &klen, NULL, err,
						 sizeof(err)), 0);
	assert_memory_equal(key, mem_legs[0].key, 32);
	kms_client_free(c);
	fix_stop(&f2);
	/* and DNS:localhost, whichever address localhost resolves to */
	c = client_at("localhost", certpath("bridge1", "crt"),
		      certpath("bridge1", "key"), fix.port, 3000);
	assert_non_null(c);
	assert_int_equal(kms_client_ping(c, err, sizeof(err)), 0);
	kms_client_free(c);
}

/* Many nodes at once, each with its own connection. */
struct mc_arg {
	int node;
	int fails;
};

static void *mc_main(void *arg)
{
	struct mc_arg *a = arg;
	struct kms_client *c;
	uint8_t key[KMS_NDS_KEY_MAX];
	char err[256];
	size_t klen;
	int i;

	c = client_for(a->node & 1 ? "bridge2" : "bridge1", fix.port, 5000);
	if (!c) {
		fprintf(stderr, "node %d: no client\n", a->node);
		a->fails++;
		return NULL;
	}
	for (i = 0; i < 40; i++) {
		int r;

		klen = sizeof(key);
		if (a->node & 1)
			r = kms_client_fetch_legkey(c, "conf-2",
						    "carol@keymix.test", key,
						    &klen, NULL, err,
						    sizeof(err));
		else
			r = kms_client_fetch_legkey(c, "conf-1", BOB, key,
						    &klen, NULL, err,
						    sizeof(err));
		if (r || memcmp(key, mem_legs[a->node & 1 ? 2 : 1].key, 32)) {
			fprintf(stderr, "node %d fetch %d: %d %s\n", a->node,
				i, r, err);
			a->fails++;
		}
	}
	kms_client_free(c);
	return NULL;
}

static void test_many_clients(void **state)
{
	struct mc_arg args[16];
	pthread_t th[16];
	int i;

	(void)state;
	for (i = 0; i < 16; i++) {
		args[i].node = i;
		args[i].fails = 0;
		assert_int_equal(pthread_create(&th[i], NULL, mc_main,
						&args[i]), 0);
	}
	for (i = 0; i < 16; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(args[i].fails, 0);
	}
}

/* One client shared by threads: calls are serialised, all succeed. */
struct sh_arg {
	struct kms_client *c;
	int fails;
};

static void *sh_main(void *arg)
{
	struct sh_arg *a = arg;
	uint8_t key[KMS_NDS_KEY_MAX];
	char err[256];
	size_t klen;
	int i;

	for (i = 0; i < 40; i++) {
		klen = sizeof(key);
		if (kms_client_fetch_legkey(a->c, "conf-1", ALICE, key, &klen,
					    NULL, err, sizeof(err)) ||
		    memcmp(key, mem_legs[0].key, 32))
			a->fails++;
	}
	return NULL;
}

static void test_shared_client(void **state)
{
	struct kms_client *c = client_for("bridge1", fix.port, 5000);
	struct sh_arg a[4];
	pthread_t th[4];
	int i;

	(void)state;
	assert_non_null(c);
	for (i = 0; i < 4; i++) {
		a[i].c = c;
		a[i].fails = 0;
		assert_int_equal(pthread_create(&th[i], NULL, sh_main, &a[i]),
				 0);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(a[i].fails, 0);
	}
	kms_client_free(c);
}

/* kms_client_reload picks up new certificate files. */
static void test_client_reload(void **state)
{
	char crt[PATH_MAX + 64], key[PATH_MAX + 64], err[256];
	uint8_t k[KMS_NDS_KEY_MAX];
	struct kms_client *c;
	size_t klen = sizeof(k);

	(void)state;
	snprintf(crt, sizeof(crt), "%s/reload-node.crt", certdir());
	snprintf(key, sizeof(key), "%s/reload-node.key", certdir());
	assert_int_equal(copy_file(certpath("bridge2", "crt"), crt), 0);
	assert_int_equal(copy_file(certpath("bridge2", "key"), key), 0);
	c = client_at("127.0.0.1", crt, key, fix.port, 3000);
	assert_non_null(c);
	assert_int_equal(kms_client_fetch_legkey(c, "conf-1", ALICE, k,
						 &klen, NULL, err,
						 sizeof(err)), EACCES);
	/* the node is renamed bridge1: new files, reload */
	assert_int_equal(copy_file(certpath("bridge1", "crt"), crt), 0);
	assert_int_equal(copy_file(certpath("bridge1", "key"), key), 0);
	assert_int_equal(kms_client_reload(c), 0);
	klen = sizeof(k);
	assert_int_equal(kms_client_fetch_legkey(c, "conf-1", ALICE, k,
						 &klen, NULL, err,
						 sizeof(err)), 0);
	assert_memory_equal(k, mem_legs[0].key, 32);
	kms_client_free(c);
	unlink(crt);
	unlink(key);
}

/* kms_nds_reload: a new CA file applies to new connections. */
static void test_server_reload(void **state)
{
	struct srvfix f2;
	struct kms_client *c1, *c2;
	char err[256];
	int r;

	(void)state;
	memset(&f2, 0, sizeof(f2));
	snprintf(f2.audit, sizeof(f2.audit), "%s", fix.audit);
	snprintf(f2.ca, sizeof(f2.ca), "%s/reload-ca.crt", certdir());
	assert_int_equal(copy_file(certpath("ca", "crt"), f2.ca), 0);
	assert_int_equal(fix_start(&f2, 0, 0, 0, 0), 0);
	c1 = client_for("bridge1", f2.port, 3000);
	c2 = client_for("test/other-bridge1", f2.port, 3000);
	assert_non_null(c1);
	assert_non_null(c2);
	assert_int_equal(kms_client_ping(c1, err, sizeof(err)), 0);
	assert_int_equal(kms_client_ping(c2, err, sizeof(err)), EACCES);
	/* the operator trusts the other CA instead, and reloads */
	assert_int_equal(copy_file(certpath("test/other-ca", "crt"), f2.ca),
			 0);
	loop_call_reload(&f2, &r);
	assert_int_equal(r, 0);
	/* c1's open connection keeps working; a new one is refused */
	assert_int_equal(kms_client_ping(c1, err, sizeof(err)), 0);
	assert_int_equal(kms_client_reload(c1), 0);
	assert_int_equal(kms_client_ping(c1, err, sizeof(err)), EACCES);
	assert_int_equal(kms_client_reload(c2), 0);
	assert_int_equal(kms_client_ping(c2, err, sizeof(err)), 0);
	kms_client_free(c1);
	kms_client_free(c2);
	fix_stop(&f2);
	unlink(f2.ca);
}

static char *slurp(const char *path, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*lenp = (size_t)n;
	return buf;
}

static void test_audit_log(void **state)
{
	char hex[65];
	size_t n, i, j;
	char *log;

	(void)state;
	log = slurp(fix.audit, &n);
	assert_non_null(strstr(log, " release role=bridge node=bridge1"
			       DOM " "));
	assert_non_null(strstr(log, "req=legkey conf=conf-1 leg=" ALICE
			       " gen=1"));
	assert_non_null(strstr(log, "release role=transcoder node="
			       "transcoder1" DOM));
	assert_non_null(strstr(log, "req=mailbox-deposit caller=" ALICE
			       " recipient=" BOB));
	assert_non_null(strstr(log, " deny role=bridge node=bridge2" DOM));
	assert_non_null(strstr(log, "reason=tls-handshake:"));
	assert_non_null(strstr(log, "certificate has expired"));
	/* no key material: neither raw bytes nor hex of any key */
	for (i = 0; i < mem_nlegs; i++) {
		for (j = 0; j < 32; j++)
			snprintf(hex + 2 * j, 3, "%02x", mem_legs[i].key[j]);
		assert_null(strstr(log, hex));
		assert_null(memmem(log, n, mem_legs[i].key, 8));
	}
	/* every line is printable and ends with a newline */
	for (i = 0; i < n; i++)
		assert_true(log[i] == '\n' || (log[i] >= 0x20 &&
					       log[i] <= 0x7e));
	assert_int_equal(log[n - 1], '\n');
	free(log);
}

static int setup(void **state)
{
	(void)state;
	mem_init();
	memset(&fix, 0, sizeof(fix));
	unlink(certpath("nds-audit", "log"));
	snprintf(fix.audit, sizeof(fix.audit), "%s",
		 certpath("nds-audit", "log"));
	return fix_start(&fix, 0, 0, 300, 0);
}

static int teardown(void **state)
{
	(void)state;
	fix_stop(&fix);
	return 0;
}

int run_link_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bridge_own_conf),
		cmocka_unit_test(test_bridge_other_conf),
		cmocka_unit_test(test_other_ca),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_no_role_cert),
		cmocka_unit_test(test_wrong_usage),
		cmocka_unit_test(test_no_client_cert),
		cmocka_unit_test(test_tls12_refused),
		cmocka_unit_test(test_role_mismatch),
		cmocka_unit_test(test_transcoder),
		cmocka_unit_test(test_mailbox),
		cmocka_unit_test(test_not_found_expired),
		cmocka_unit_test(test_malformed_keep_conn),
		cmocka_unit_test(test_oversized_closes),
		cmocka_unit_test(test_truncated_times_out),
		cmocka_unit_test(test_garbage_tcp),
		cmocka_unit_test(test_server_survives),
		cmocka_unit_test(test_slow_reader),
		cmocka_unit_test(test_reuse),
		cmocka_unit_test(test_reconnect_restart),
		cmocka_unit_test(test_idle_timeout),
		cmocka_unit_test(test_max_conns),
		cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_backoff),
		cmocka_unit_test(test_client_args),
		cmocka_unit_test(test_server_role_checked),
		cmocka_unit_test(test_ipv6_and_names),
		cmocka_unit_test(test_many_clients),
		cmocka_unit_test(test_shared_client),
		cmocka_unit_test(test_client_reload),
		cmocka_unit_test(test_server_reload),
		cmocka_unit_test(test_audit_log),
	};

	return cmocka_run_group_tests_name("nds_link", tests, setup,
					   teardown);
}
