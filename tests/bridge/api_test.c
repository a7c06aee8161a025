/**
 * @file api_test.c  Control API request bodies (apijson.c)
 */

#include <errno.h>
#include <string.h>
#include <jansson.h>
#include "tests/bridge/tests.h"
#include "bridge/bridge_int.h"

static struct conf conf20 = { .ptime = 20, .opus = { 5, 0, 1, 0 } };

/** Parse a leg body given as JSON text; returns the status */
static int leg(const char *text, struct leg_params *par, char *err)
{
	json_error_t jerr;
	json_t *j = json_loads(text, 0, &jerr);
	int st;

	assert_non_null(j);
	err[0] = '\0';
	st = apij_parse_leg(j, &conf20, par, err);
	json_decref(j);
	if (st)
		assert_true(err[0] != '\0');  /* every refusal says why */
	return st;
}

#define MIN "\"participant\": \"sip:a@b\", \"remote\": \"127.0.0.1:9\""
/* 30 zero bytes, 28 zero bytes (padded and not) */
#define K30 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
#define K28 "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="
#define K28U "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

static void t_b64(void **state)
{
	uint8_t out[64];
	size_t n = 0;
	(void)state;

	assert_int_equal(apij_b64_decode("QUJD", out, sizeof(out), &n), 0);
	assert_int_equal(n, 3);
	assert_memory_equal(out, "ABC", 3);
	assert_int_equal(apij_b64_decode("QUI=", out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(apij_b64_decode("QUI", out, sizeof(out), &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(apij_b64_decode("QQ==", out, sizeof(out), &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(apij_b64_decode(K28U, out, sizeof(out), &n), 0);
	assert_int_equal(n, 28);
	/* malformed */
	assert_int_equal(apij_b64_decode("", out, sizeof(out), &n), EINVAL);
	assert_int_equal(apij_b64_decode("Q", out, sizeof(out), &n), EINVAL);
	assert_int_equal(apij_b64_decode("QUJD=", out, sizeof(out), &n),
			 EINVAL);
	assert_int_equal(apij_b64_decode("QU=D", out, sizeof(out), &n),
			 EINVAL);
	assert_int_equal(apij_b64_decode("QUJ-", out, sizeof(out), &n),
			 EINVAL);
	assert_int_equal(apij_b64_decode("QUJ D", out, sizeof(out), &n),
			 EINVAL);
	/* "QR==": the unused low bits of R are not zero */
	assert_int_equal(apij_b64_decode("QR==", out, sizeof(out), &n),
			 EINVAL);
	assert_int_equal(apij_b64_decode("QUJDQUJD", out, 5, &n), ENOSPC);
}

static void t_ids(void **state)
{
	char big[200];
	(void)state;

	assert_true(apij_id_valid("c1"));
	assert_true(apij_id_valid("conf.2026-11_23:room@x+y~z"));
	assert_false(apij_id_valid(""));
	assert_false(apij_id_valid("a/b"));
	assert_false(apij_id_valid("a b"));
	assert_false(apij_id_valid("a%2f"));
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_false(apij_id_valid(big));
}

static void t_leg_defaults(void **state)
{
	struct leg_params par;
	char err[API_ERRSZ];
	(void)state;

	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\"}", &par, err), 0);
	assert_int_equal(par.codec, MIX_CODEC_PCMU);
	assert_int_equal(par.pt, 0);
	assert_int_equal(par.rate, 8000);
	assert_int_equal(par.ptime, 20);
	assert_int_equal(par.dir, DIR_SENDRECV);
	assert_int_equal(par.te_pt, -1);
	assert_int_equal(par.level_ext, 0);
	assert_false(par.srtp);
	assert_false(par.opus_override);
	assert_int_equal(leg("{" MIN ", \"codec\": \"G722\"}", &par, err), 0);
	assert_int_equal(par.pt, 9);
	assert_int_equal(par.rate, 16000);
	assert_int_equal(leg("{" MIN ", \"codec\": \"opus\", \"opus\": "
			     "{\"bitrate\": 24000}}", &par, err), 0);
	assert_int_equal(par.pt, 111);
	assert_true(par.opus_override);
	assert_int_equal(par.opus.bitrate, 24000);
	assert_int_equal(par.opus.complexity, 5); /* from the conference */
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcma\", \"ptime\": 40, "
			     "\"direction\": \"recvonly\", "
			     "\"audio_level_ext\": 3, "
			     "\"telephone_event_pt\": 101, "
			     "\"payload_type\": 8}", &par, err), 0);
	assert_int_equal(par.ptime, 40);
	assert_int_equal(par.dir, DIR_RECVONLY);
	assert_int_equal(par.level_ext, 3);
	assert_int_equal(par.te_pt, 101);
}

static void t_leg_errors(void **state)
{
	struct leg_params par;
	char err[API_ERRSZ];
	(void)state;

	/* 400: missing, wrong type, bad address */
	assert_int_equal(leg("{\"codec\": \"pcmu\", \"remote\": "
			     "\"127.0.0.1:9\"}", &par, err), 400);
	assert_int_equal(leg("{" MIN "}", &par, err), 400);
	assert_int_equal(leg("{" MIN ", \"codec\": 0}", &par, err), 400);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"rate\": "
			     "\"8000\"}", &par, err), 400);
	assert_int_equal(leg("{\"participant\": \"a\", \"codec\": \"pcmu\", "
			     "\"remote\": \"host:9\"}", &par, err), 400);
	assert_int_equal(leg("{\"participant\": \"a\", \"codec\": \"pcmu\", "
			     "\"remote\": \"[::1]:0\"}", &par, err), 400);
	/* 422: unsupported */
	assert_int_equal(leg("{" MIN ", \"codec\": \"speex\"}", &par, err),
			 422);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"rate\": "
			     "16000}", &par, err), 422);
	assert_int_equal(leg("{" MIN ", \"codec\": \"opus\", \"rate\": "
			     "44100}", &par, err), 422);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"ptime\": 30}",
			     &par, err), 422);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", "
			     "\"payload_type\": 72}", &par, err), 422);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", "
			     "\"telephone_event_pt\": 0}", &par, err), 422);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", "
			     "\"audio_level_ext\": 15}", &par, err), 422);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"direction\": "
			     "\"up\"}", &par, err), 422);
	assert_int_equal(leg("{" MIN ", \"codec\": \"opus\", \"opus\": "
			     "{\"complexity\": 11}}", &par, err), 422);
}

static void t_leg_srtp(void **state)
{
	struct leg_params par;
	char err[API_ERRSZ];
	(void)state;

	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"srtp\": null}",
			     &par, err), 0);
	assert_false(par.srtp);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"srtp\": "
			     "{\"profile\": \"AES_CM_128_HMAC_SHA1_80\", "
			     "\"encrypted_ext\": [1, 5], \"key\": {\"inline\":"
			     " {\"rx\": \"" K30 "\", \"tx\": \"" K30 "\"}}}}",
			     &par, err), 0);
	assert_true(par.srtp);
	assert_int_equal(par.profile, KEYLEG_AES_CM_128_HMAC_SHA1_80);
	assert_int_equal(par.rx.len, 30);
	assert_int_equal(par.kopts.n_enc_ext, 2);
	assert_int_equal(par.kopts.enc_ext[1], 5);
	/* GCM: 28 bytes, padded or not */
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"srtp\": "
			     "{\"profile\": \"AEAD_AES_128_GCM\", \"key\": "
			     "{\"inline\": {\"rx\": \"" K28 "\", \"tx\": \""
			     K28U "\"}}}}", &par, err), 0);
	assert_int_equal(par.tx.len, 28);
	/* length not matching the profile: 422; bad base64: 400 */
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"srtp\": "
			     "{\"profile\": \"AEAD_AES_128_GCM\", \"key\": "
			     "{\"inline\": {\"rx\": \"" K30 "\", \"tx\": \""
			     K28 "\"}}}}", &par, err), 422);
	assert_non_null(strstr(err, "28"));
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"srtp\": "
			     "{\"profile\": \"AES_CM_128_HMAC_SHA1_80\", "
			     "\"key\": {\"inline\": {\"rx\": \"!!\", \"tx\": "
			     "\"" K30 "\"}}}}", &par, err), 400);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"srtp\": "
			     "{\"profile\": \"ROT13\", \"key\": {}}}", &par,
			     err), 422);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"srtp\": "
			     "{\"profile\": \"AES_CM_128_HMAC_SHA1_80\"}}",
			     &par, err), 400);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"srtp\": "
			     "{\"profile\": \"AES_CM_128_HMAC_SHA1_80\", "
			     "\"encrypted_ext\": [15], \"key\": {\"inline\": "
			     "{\"rx\": \"" K30 "\", \"tx\": \"" K30 "\"}}}}",
			     &par, err), 422);
	/* both key sources, or neither */
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"srtp\": "
			     "{\"profile\": \"AES_CM_128_HMAC_SHA1_80\", "
			     "\"key\": {}}}", &par, err), 400);
	/* KMS key source */
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"srtp\": "
			     "{\"profile\": \"AES_256_CM_HMAC_SHA1_80\", "
			     "\"key\": {\"kms\": {\"conference\": \"ref1\", "
			     "\"participant\": \"sip:a@b\"}}}}", &par, err),
			 0);
	assert_true(par.kms);
	assert_string_equal(par.kms_conf, "ref1");
	assert_string_equal(par.kms_participant, "sip:a@b");
	assert_int_equal(par.rx.len, 0);
	assert_int_equal(leg("{" MIN ", \"codec\": \"pcmu\", \"srtp\": "
			     "{\"profile\": \"AES_256_CM_HMAC_SHA1_80\", "
			     "\"key\": {\"kms\": {\"conference\": 1}}}}", &par,
			     err), 400);
}

int run_api_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_b64),
		cmocka_unit_test(t_ids),
		cmocka_unit_test(t_leg_defaults),
		cmocka_unit_test(t_leg_errors),
		cmocka_unit_test(t_leg_srtp),
	};

	return cmocka_run_group_tests_name("bridge_api", tests, NULL, NULL);
}
