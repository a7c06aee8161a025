/**
 * @file msg.c  NDS wire format: encode, parse, validate, every bound
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "tests/nds/nds_test.h"

static size_t legkey_req(uint8_t *buf, size_t cap, const char *ref,
			 const char *part, uint32_t id)
{
	struct nds_enc e;
	size_t n = 0;

	nds_enc_begin(&e, buf, cap, NDS_T_LEGKEY_REQ, id);
	nds_enc_str(&e, NDS_TAG_CONF_REF, ref);
	nds_enc_str(&e, NDS_TAG_PARTICIPANT, part);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	return n;
}

static void test_roundtrip(void **state)
{
	uint8_t buf[256];
	struct nds_msg m;
	char s[64];
	size_t n, blen;

	(void)state;
	n = legkey_req(buf, sizeof(buf), "conf-1", "alice@x", 77);
	assert_int_equal(nds_frame_len(buf, n, &blen), 0);
	assert_int_equal(blen + NDS_LEN_SIZE, n);
	assert_int_equal(nds_msg_parse(&m, buf + 4, blen), 0);
	assert_int_equal(nds_msg_validate(&m, NULL), 0);
	assert_int_equal(m.type, NDS_T_LEGKEY_REQ);
	assert_int_equal(m.req_id, 77);
	assert_int_equal(nds_msg_str(&m, NDS_TAG_CONF_REF, s, sizeof(s)), 0);
	assert_string_equal(s, "conf-1");
	assert_int_equal(nds_msg_str(&m, NDS_TAG_PARTICIPANT, s, sizeof(s)),
			 0);
	assert_string_equal(s, "alice@x");
	assert_int_equal(nds_msg_str(&m, NDS_TAG_CALL_ID, s, sizeof(s)),
			 ENOENT);
	/* too small an output buffer */
	assert_int_equal(nds_msg_str(&m, NDS_TAG_CONF_REF, s, 6), EMSGSIZE);
}

static void test_key_resp(void **state)
{
	uint8_t buf[256], key[32];
	struct nds_msg m;
	struct nds_enc e;
	uint32_t g;
	uint64_t x;
	size_t n;

	(void)state;
	memset(key, 0xa5, sizeof(key));
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_KEY_RESP, 9);
	nds_enc_put(&e, NDS_TAG_KEY, key, sizeof(key));
	nds_enc_u32(&e, NDS_TAG_GENERATION, 0x01020304);
	nds_enc_u64(&e, NDS_TAG_EXPIRES, 0x1122334455667788ULL);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), 0);
	assert_int_equal(nds_msg_validate(&m, NULL), 0);
	assert_int_equal(nds_msg_u32(&m, NDS_TAG_GENERATION, &g), 0);
	assert_int_equal(g, 0x01020304);
	assert_int_equal(nds_msg_u64(&m, NDS_TAG_EXPIRES, &x), 0);
	assert_true(x == 0x1122334455667788ULL);
	assert_int_equal(m.f[NDS_TAG_KEY].len, 32);
	assert_memory_equal(m.f[NDS_TAG_KEY].p, key, 32);
}

static void test_frame_len(void **state)
{
	uint8_t h[4] = { 0, 0, 0, 8 };
	size_t n;

	(void)state;
	assert_int_equal(nds_frame_len(h, 3, &n), EAGAIN);
	assert_int_equal(nds_frame_len(h, 4, &n), 0);
	assert_int_equal(n, 8);
	h[3] = 7;
	assert_int_equal(nds_frame_len(h, 4, &n), EBADMSG);
	h[2] = (NDS_BODY_MAX + 1) >> 8;
	h[3] = (NDS_BODY_MAX + 1) & 0xff;
	assert_int_equal(nds_frame_len(h, 4, &n), EMSGSIZE);
	h[0] = 0xff;
	assert_int_equal(nds_frame_len(h, 4, &n), EMSGSIZE);
}

/* Every strict prefix of a valid body is refused (or is a shorter valid
 * message only when it ends exactly at a field boundary). */
static void test_truncated(void **state)
{
	uint8_t buf[256];
	struct nds_msg m;
	size_t n, i;

	(void)state;
	n = legkey_req(buf, sizeof(buf), "conf-1", "alice", 1) - 4;
	for (i = 0; i < n; i++) {
		int perr = nds_msg_parse(&m, buf + 4, i);

		if (!perr)
			assert_int_not_equal(nds_msg_validate(&m, NULL), 0);
	}
	assert_int_equal(nds_msg_parse(&m, buf + 4, n), 0);
}

static void test_bad_fields(void **state)
{
	uint8_t buf[256];
	struct nds_msg m;
	struct nds_enc e;
	size_t n;

	(void)state;
	/* duplicate tag */
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_LEGKEY_REQ, 1);
	nds_enc_str(&e, NDS_TAG_CONF_REF, "a");
	nds_enc_str(&e, NDS_TAG_CONF_REF, "b");
	nds_enc_str(&e, NDS_TAG_PARTICIPANT, "p");
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	/* unknown tag */
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_PING_REQ, 1);
	nds_enc_put(&e, (enum nds_tag)99, "x", 1);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	/* tag 0 */
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_PING_REQ, 1);
	nds_enc_put(&e, (enum nds_tag)0, "x", 1);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	/* identity with a space, a newline, a NUL, empty */
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_TRANSCODER_REQ, 1);
	nds_enc_str(&e, NDS_TAG_CALL_ID, "a b");
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_TRANSCODER_REQ, 1);
	nds_enc_str(&e, NDS_TAG_CALL_ID, "a\nrelease x");
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_TRANSCODER_REQ, 1);
	nds_enc_put(&e, NDS_TAG_CALL_ID, "a\0b", 3);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_TRANSCODER_REQ, 1);
	nds_enc_put(&e, NDS_TAG_CALL_ID, "", 0);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	/* generation of the wrong size */
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_KEY_RESP, 1);
	nds_enc_put(&e, NDS_TAG_KEY, "k", 1);
	nds_enc_put(&e, NDS_TAG_GENERATION, "abc", 3);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	/* field length past the end */
	n = legkey_req(buf, sizeof(buf), "conf", "p", 1);
	buf[4 + NDS_HDR_SIZE + 2] = 200;
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	/* want_ke2m must be 0 or 1 */
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_MAILBOX_REQ, 1);
	nds_enc_str(&e, NDS_TAG_ID_A, "a");
	nds_enc_str(&e, NDS_TAG_ID_B, "b");
	nds_enc_str(&e, NDS_TAG_SEALED, "s");
	nds_enc_put(&e, NDS_TAG_WANT_KE2M, "\x02", 1);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
}

static void test_oversized_fields(void **state)
{
	static uint8_t buf[NDS_FRAME_MAX + 64];
	char big[KMS_NDS_ID_MAX + 2];
	static char blob[KMS_NDS_BLOB_MAX + 2];
	struct nds_msg m;
	struct nds_enc e;
	size_t n;

	(void)state;
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_TRANSCODER_REQ, 1);
	nds_enc_str(&e, NDS_TAG_CALL_ID, big);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	big[KMS_NDS_ID_MAX] = '\0';
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_TRANSCODER_REQ, 1);
	nds_enc_str(&e, NDS_TAG_CALL_ID, big);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), 0);

	memset(blob, 'A', sizeof(blob) - 1);
	nds_enc_begin(&e, buf, sizeof(buf), NDS_T_MAILBOX_REQ, 1);
	nds_enc_str(&e, NDS_TAG_ID_A, "a");
	nds_enc_str(&e, NDS_TAG_ID_B, "b");
	nds_enc_str(&e, NDS_TAG_SEALED, blob);
	assert_int_equal(nds_enc_end(&e, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	/* body larger than the maximum */
	assert_int_equal(nds_msg_parse(&m, buf + 4, NDS_BODY_MAX + 1),
			 EBADMSG);
	/* encoder refuses to overflow its buffer */
	nds_enc_begin(&e, buf, 40, NDS_T_TRANSCODER_REQ, 1);
	nds_enc_str(&e, NDS_TAG_CALL_ID, big);
	assert_int_equal(nds_enc_end(&e, &n), ENOBUFS);
}

static void test_header_rules(void **state)
{
	uint8_t buf[64];
	struct nds_msg m;
	enum nds_err code;
	size_t n;

	(void)state;
	n = legkey_req(buf, sizeof(buf), "c", "p", 1);
	buf[4] = 2;  /* version */
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), ENOTSUP);
	buf[4] = 1;
	buf[6] = 1;  /* reserved */
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), EBADMSG);
	buf[6] = 0;
	buf[5] = 0x42;  /* unknown type */
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), 0);
	assert_int_equal(nds_msg_validate(&m, &code), ENOTSUP);
	assert_int_equal(code, NDS_E_UNSUPPORTED);
	/* fields a type does not allow */
	buf[5] = NDS_T_PING_REQ;
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), 0);
	assert_int_equal(nds_msg_validate(&m, &code), EBADMSG);
	assert_int_equal(code, NDS_E_MALFORMED);
	/* required field missing */
	buf[5] = NDS_T_TRANSCODER_REQ;
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), 0);
	assert_int_equal(nds_msg_validate(&m, &code), EBADMSG);
}

static void test_error_frame(void **state)
{
	uint8_t buf[512];
	char long_text[400], t[NDS_ERRTEXT_MAX + 1];
	struct nds_msg m;
	size_t n;

	(void)state;
	memset(long_text, 'e', sizeof(long_text) - 1);
	long_text[sizeof(long_text) - 1] = '\0';
	assert_int_equal(nds_enc_error(buf, sizeof(buf), 5, NDS_E_FORBIDDEN,
				       long_text, &n), 0);
	assert_int_equal(nds_msg_parse(&m, buf + 4, n - 4), 0);
	assert_int_equal(nds_msg_validate(&m, NULL), 0);
	assert_int_equal(nds_msg_str(&m, NDS_TAG_ERR_TEXT, t, sizeof(t)), 0);
	assert_int_equal(strlen(t), NDS_ERRTEXT_MAX);
	assert_int_equal(nds_err_errno(NDS_E_FORBIDDEN), EACCES);
	assert_int_equal(nds_err_errno(NDS_E_NOT_FOUND), ENOENT);
	assert_int_equal(nds_err_errno(NDS_E_MALFORMED), EBADMSG);
	assert_int_equal(nds_err_errno((enum nds_err)999), EPROTO);
	assert_string_equal(nds_err_name(NDS_E_EXPIRED), "expired");
}

int run_msg_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_key_resp),
		cmocka_unit_test(test_frame_len),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_fields),
		cmocka_unit_test(test_oversized_fields),
		cmocka_unit_test(test_header_rules),
		cmocka_unit_test(test_error_frame),
	};

	return cmocka_run_group_tests_name("nds_msg", tests, NULL, NULL);
}
