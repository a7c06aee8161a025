/** @file test_parse.c  uemedia unit tests: addresses, base64, options */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "ue/ue_media_int.h"
#include "tests/ue_media/ue_media_test.h"

static void test_addr_v4(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	socklen_t sl;
	char out[64];

	(void)state;
	assert_int_equal(ue_addr_parse("127.0.0.1:40000", &ss, &sl), 0);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(sl, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(s4->sin_port), 40000);
	assert_int_equal(ntohl(s4->sin_addr.s_addr), 0x7f000001);
	assert_int_equal(ue_addr_format((struct sockaddr *)&ss, out,
					sizeof(out)), 0);
	assert_string_equal(out, "127.0.0.1:40000");
	assert_int_equal(ue_addr_parse("0.0.0.0:0", &ss, &sl), 0);
	assert_int_equal(ue_addr_format((struct sockaddr *)&ss, out, 4),
			 ENOSPC);
}

static void test_addr_v6(void **state)
{
	struct sockaddr_storage ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t sl;
	char out[64];

	(void)state;
	assert_int_equal(ue_addr_parse("[::1]:5004", &ss, &sl), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(sl, sizeof(struct sockaddr_in6));
	assert_int_equal(ntohs(s6->sin6_port), 5004);
	assert_true(IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr));
	assert_int_equal(ue_addr_format((struct sockaddr *)&ss, out,
					sizeof(out)), 0);
	assert_string_equal(out, "[::1]:5004");
}

static void test_addr_bad(void **state)
{
	static const char *bad[] = {
		"", "127.0.0.1", "127.0.0.1:", ":80", "127.0.0.1:65536",
		"127.0.0.1:-1", "127.0.0.1:+5", "127.0.0.1:12x",
		"localhost:80", "::1:80", "[::1]80", "[::1]:", "[]:80",
		"[127.0.0.1]:80", "1.2.3.4.5:80",
	};
	struct sockaddr_storage ss;
	socklen_t sl;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ue_addr_parse(bad[i], &ss, &sl), EINVAL);
}

static void test_b64_rfc4648(void **state)
{
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "", "" }, { "Zg==", "f" }, { "Zm8=", "fo" },
		{ "Zm9v", "foo" }, { "Zm9vYg==", "foob" },
		{ "Zm9vYmE=", "fooba" }, { "Zm9vYmFy", "foobar" },
		{ "Zm9vYg", "foob" },          /* padding optional */
	};
	uint8_t out[16];
	size_t i, n;

	(void)state;
	for (i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(keyleg_b64_decode(v[i].in, out, sizeof(out),
						   &n), 0);
		assert_int_equal(n, strlen(v[i].out));
		assert_memory_equal(out, v[i].out, n);
	}
}

static void test_b64_bad(void **state)
{
	uint8_t out[4];
	size_t n;

	(void)state;
	assert_int_equal(keyleg_b64_decode("Zm9v!", out, sizeof(out), &n),
			 EINVAL);
	assert_int_equal(keyleg_b64_decode("Z", out, sizeof(out), &n), EINVAL);
	assert_int_equal(keyleg_b64_decode("Zh==", out, sizeof(out), &n),
			 EINVAL);            /* non-zero leftover bits */
	assert_int_equal(keyleg_b64_decode("Zg===", out, sizeof(out), &n),
			 EINVAL);
	assert_int_equal(keyleg_b64_decode("Zg=", out, sizeof(out), &n),
			 EINVAL);            /* padding incomplete */
	assert_int_equal(keyleg_b64_decode("Zm 9v", out, sizeof(out), &n),
			 EINVAL);
	assert_int_equal(keyleg_b64_decode("Zm9vYmFy", out, sizeof(out), &n),
			 ENOSPC);
}

static void test_tone_parse(void **state)
{
	double hz, db;

	(void)state;
	assert_int_equal(ue_tone_parse("440", &hz, &db), 0);
	assert_true(hz == 440 && db == -20);
	assert_int_equal(ue_tone_parse("1000.5:-6", &hz, &db), 0);
	assert_true(hz == 1000.5 && db == -6);
	assert_int_equal(ue_tone_parse("1000:0", &hz, &db), 0);
	assert_int_equal(ue_tone_parse("1000:3", &hz, &db), EINVAL);
	assert_int_equal(ue_tone_parse("0", &hz, &db), EINVAL);
	assert_int_equal(ue_tone_parse("-5", &hz, &db), EINVAL);
	assert_int_equal(ue_tone_parse("440:", &hz, &db), EINVAL);
	assert_int_equal(ue_tone_parse("440:-6x", &hz, &db), EINVAL);
	assert_int_equal(ue_tone_parse("abc", &hz, &db), EINVAL);
}

static void test_talk_windows(void **state)
{
	struct ue_talk t;

	(void)state;
	assert_int_equal(ue_talk_parse("0.5:2,4:5.5", &t), 0);
	assert_int_equal(t.n, 2);
	assert_false(ue_talk_active(&t, 0.49));
	assert_true(ue_talk_active(&t, 0.5));
	assert_true(ue_talk_active(&t, 1.99));
	assert_false(ue_talk_active(&t, 2.0));
	assert_true(ue_talk_active(&t, 5.0));
	assert_false(ue_talk_active(&t, 6));
	assert_int_equal(ue_talk_parse("2:1", &t), EINVAL);
	assert_int_equal(ue_talk_parse("1:1", &t), EINVAL);
	assert_int_equal(ue_talk_parse("1:2,", &t), EINVAL);
	assert_int_equal(ue_talk_parse("1:2;3:4", &t), EINVAL);
	assert_int_equal(ue_talk_parse("", &t), EINVAL);
	assert_int_equal(ue_talk_parse("-1:2", &t), EINVAL);
	assert_int_equal(ue_talk_parse("0:1,1:2,2:3,3:4,4:5,5:6,6:7,7:8,8:9",
				       &t), E2BIG);
	memset(&t, 0, sizeof(t));
	assert_true(ue_talk_active(&t, 1234));     /* no windows: always */
}

static void test_codec_table(void **state)
{
	enum ue_codec c;

	(void)state;
	assert_int_equal(ue_codec_parse("OPUS", &c), 0);
	assert_int_equal(c, UE_CODEC_OPUS);
	assert_int_equal(ue_codec_parse("pcma", &c), 0);
	assert_int_equal(c, UE_CODEC_PCMA);
	assert_int_equal(ue_codec_parse("g729", &c), EINVAL);
	assert_int_equal(ue_codec_rtp_clock(UE_CODEC_OPUS), 48000);
	assert_int_equal(ue_codec_rtp_clock(UE_CODEC_PCMU), 8000);
	/* RFC 3551: G.722 is clocked at 8000 though it samples 16 kHz */
	assert_int_equal(ue_codec_rtp_clock(UE_CODEC_G722), 8000);
	assert_int_equal(ue_codec_default_rate(UE_CODEC_G722), 16000);
	assert_int_equal(ue_codec_default_pt(UE_CODEC_PCMU), 0);
	assert_int_equal(ue_codec_default_pt(UE_CODEC_PCMA), 8);
	assert_int_equal(ue_codec_default_pt(UE_CODEC_G722), 9);
	assert_int_equal(ue_codec_check_rate(UE_CODEC_OPUS, 16000), 0);
	assert_int_equal(ue_codec_check_rate(UE_CODEC_OPUS, 44100), EINVAL);
	assert_int_equal(ue_codec_check_rate(UE_CODEC_PCMA, 16000), EINVAL);
	assert_int_equal(ue_codec_check_rate(UE_CODEC_G722, 8000), EINVAL);
}

int test_ue_parse_group(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_v4),
		cmocka_unit_test(test_addr_v6),
		cmocka_unit_test(test_addr_bad),
		cmocka_unit_test(test_b64_rfc4648),
		cmocka_unit_test(test_b64_bad),
		cmocka_unit_test(test_tone_parse),
		cmocka_unit_test(test_talk_windows),
		cmocka_unit_test(test_codec_table),
	};

	return cmocka_run_group_tests_name("ue_media_parse", tests, NULL,
					   NULL);
}
