/** @file test_bench.c  Unit tests of the load generator's pieces */

#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "keyleg/keyleg.h"
#include "bench/bench.h"
#include "bench/loadgen_int.h"

/* ---- bencode ---------------------------------------------------------- */

static void test_benc_encode(void **state)
{
	char buf[256];
	struct bench_benc b;

	(void)state;
	bench_benc_init(&b, buf, sizeof(buf));
	bench_benc_str(&b, "abc123");
	bench_benc_dict(&b);
	bench_benc_kv_str(&b, "command", "offer");
	bench_benc_str(&b, "flags");
	bench_benc_list(&b);
	bench_benc_str(&b, "SDES-no");
	bench_benc_end(&b);
	bench_benc_str(&b, "n");
	bench_benc_int(&b, -42);
	bench_benc_end(&b);
	assert_int_equal(b.err, 0);
	assert_int_equal(b.len, strlen("6:abc123d7:command5:offer5:flagsl"
				       "7:SDES-noe1:ni-42ee"));
	assert_memory_equal(buf, "6:abc123d7:command5:offer5:flagsl7:SDES-no"
			    "e1:ni-42ee", b.len);
}

static void test_benc_overflow(void **state)
{
	char buf[8];
	struct bench_benc b;

	(void)state;
	bench_benc_init(&b, buf, sizeof(buf));
	bench_benc_str(&b, "0123456789");
	assert_int_equal(b.err, ENOSPC);
	bench_benc_int(&b, 1);
	assert_int_equal(b.err, ENOSPC);
	assert_true(b.len <= sizeof(buf));
}

static void test_bdec_dict(void **state)
{
	const char *in = "d6:result2:ok3:sdp11:v=0\r\no=- 1 4:listl1:ai7ee"
			 "e";
	struct bench_bnode n[32];
	int count, v, l;
	size_t used;

	(void)state;
	assert_int_equal(bench_bdec(in, strlen(in), n, 32, &count, &used),
			 0);
	assert_int_equal(used, strlen(in));
	assert_int_equal(n[0].type, BENCH_BDICT);
	assert_int_equal(n[0].n, 6);
	v = bench_bdict_get(n, 0, "result");
	assert_true(v > 0);
	assert_true(bench_bnode_streq(&n[v], "ok"));
	v = bench_bdict_get(n, 0, "sdp");
	assert_int_equal(n[v].type, BENCH_BSTR);
	assert_int_equal(n[v].slen, 11);
	assert_memory_equal(n[v].s, "v=0\r\no=- 1 ", 11);
	l = bench_bdict_get(n, 0, "5:lis");
	assert_int_equal(l, -1);
	l = bench_bdict_get(n, 0, "list");
	assert_int_equal(n[l].type, BENCH_BLIST);
	assert_int_equal(n[l].n, 2);
	v = bench_blist_item(n, l, 1);
	assert_int_equal(n[v].type, BENCH_BINT);
	assert_int_equal(n[v].i, 7);
	assert_true(bench_bnode_streq(&n[bench_blist_item(n, l, 0)], "a"));
	assert_int_equal(bench_blist_item(n, l, 2), -1);
	assert_int_equal(bench_bdict_get(n, 0, "missing"), -1);
}

static void test_bdec_roundtrip_nested(void **state)
{
	char buf[512];
	struct bench_benc b;
	struct bench_bnode n[64];
	int count, c, t;

	(void)state;
	bench_benc_init(&b, buf, sizeof(buf));
	bench_benc_dict(&b);
	bench_benc_str(&b, "codec");
	bench_benc_dict(&b);
	bench_benc_str(&b, "transcode");
	bench_benc_list(&b);
	bench_benc_str(&b, "PCMU");
	bench_benc_str(&b, "opus");
	bench_benc_end(&b);
	bench_benc_end(&b);
	bench_benc_kv_str(&b, "call-id", "c1");
	bench_benc_end(&b);
	assert_int_equal(b.err, 0);
	assert_int_equal(bench_bdec(buf, b.len, n, 64, &count, NULL), 0);
	c = bench_bdict_get(n, 0, "codec");
	t = bench_bdict_get(n, c, "transcode");
	assert_true(bench_bnode_streq(&n[bench_blist_item(n, t, 1)], "opus"));
	/* a key after a nested value is still found */
	assert_true(bench_bnode_streq(&n[bench_bdict_get(n, 0, "call-id")],
				      "c1"));
}

static void test_bdec_malformed(void **state)
{
	static const char *bad[] = {
		"", "d", "i12", "ie", "5:abc", "d1:ae", "di1e1:ae", "x",
		"l1:a", "99999999999999999999:a", "i1-2e", "-1:a",
	};
	struct bench_bnode n[16];
	size_t i;
	int count;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_not_equal(bench_bdec(bad[i], strlen(bad[i]), n, 16,
						&count, NULL), 0);
	/* too many nodes for the array */
	assert_int_equal(bench_bdec("l1:a1:b1:ce", 11, n, 3, &count, NULL),
			 ENOSPC);
}

/* ---- /proc ------------------------------------------------------------ */

static void test_proc_stat_parse(void **state)
{
	/* a command name with spaces and parentheses */
	const char *txt = "4242 (br (x) y) S 1 4242 4242 0 -1 4194560 1234 0"
		" 0 0 713 88 0 0 20 0 3 0 12345 123456789 1000"
		" 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0"
		" 0 0 0\n";
	struct bench_proc_cpu pc;

	(void)state;
	assert_int_equal(bench_proc_stat_parse(txt, &pc), 0);
	assert_int_equal(pc.utime, 713);
	assert_int_equal(pc.stime, 88);
	assert_int_equal(pc.processor, 1);
	assert_int_not_equal(bench_proc_stat_parse("1 (x) S 1 2", &pc), 0);
	assert_int_not_equal(bench_proc_stat_parse("no paren", &pc), 0);
}

static void test_proc_stat_self(void **state)
{
	struct bench_proc_cpu a, b;
	volatile double x = 0;
	long i;

	(void)state;
	assert_int_equal(bench_proc_stat_read(getpid(), &a), 0);
	for (i = 0; i < 30000000; i++)
		x += sqrt((double)i);
	assert_int_equal(bench_proc_stat_read(getpid(), &b), 0);
	assert_true(b.utime + b.stime >= a.utime + a.stime);
	assert_true(b.processor >= 0);
	assert_int_equal(bench_proc_stat_read(-5, &a), ENOENT);
}

/* ---- report math ------------------------------------------------------ */

static struct bench_hist hist;

static void test_hist_quantiles(void **state)
{
	int i;

	(void)state;
	bench_hist_reset(&hist);
	assert_true(bench_hist_quantile_ms(&hist, 0.5) == 0);
	/* 1..100 ms, one sample each */
	for (i = 1; i <= 100; i++)
		bench_hist_add(&hist, i * 1000.0);
	assert_int_equal(hist.count, 100);
	assert_true(fabs(bench_hist_quantile_ms(&hist, 0.5) - 50.1) < 1e-9);
	assert_true(fabs(bench_hist_quantile_ms(&hist, 0.99) - 99.1) < 1e-9);
	assert_true(fabs(bench_hist_quantile_ms(&hist, 1.0) - 100.0) < 1e-9);
	/* clamping: negative and huge samples */
	bench_hist_add(&hist, -5);
	bench_hist_add(&hist, 5e6);
	assert_true(fabs(bench_hist_quantile_ms(&hist, 1.0) - 5000) < 1e-9);
	assert_true(bench_hist_quantile_ms(&hist, 0.0) == 0.1);
}

static void test_cpu_report(void **state)
{
	struct bench_cpu_report r;

	(void)state;
	/* 500 ticks at 100 Hz = 5 s of CPU over 10 s, 200 legs */
	assert_int_equal(bench_cpu_report(500, 100, 10.0, 200, &r), 0);
	assert_true(fabs(r.core_load - 0.5) < 1e-12);
	assert_true(fabs(r.cpu_per_leg_second - 0.0025) < 1e-12);
	assert_true(fabs(r.legs_per_core - 400) < 1e-9);
	assert_int_equal(bench_cpu_report(0, 100, 10.0, 5, &r), 0);
	assert_true(r.legs_per_core == 0);
	assert_int_equal(bench_cpu_report(1, 0, 10, 5, &r), EINVAL);
	assert_int_equal(bench_cpu_report(1, 100, 0, 5, &r), EINVAL);
	assert_int_equal(bench_cpu_report(1, 100, 1, 0, &r), EINVAL);
}

static void test_loss_and_overload(void **state)
{
	(void)state;
	assert_true(bench_loss_pct(0, 0) == 0);
	assert_true(fabs(bench_loss_pct(1000, 990) - 1.0) < 1e-12);
	assert_true(bench_loss_pct(1000, 1005) == 0);
	assert_false(bench_generator_overloaded(0.5, 0.0, 3, 20));
	assert_true(bench_generator_overloaded(0.95, 0.0, 3, 20));
	assert_true(bench_generator_overloaded(0.5, 0.02, 3, 20));
	assert_true(bench_generator_overloaded(0.5, 0.0, 25, 20));
}

/* ---- HTTP ------------------------------------------------------------- */

static void test_http_head(void **state)
{
	const char *r1 = "HTTP/1.1 201 Created\r\nContent-Type: application/"
			 "json\r\ncontent-length: 12\r\n\r\n{\"id\":\"c1\"}";
	const char *r2 = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			 "Connection: close\r\n\r\n";
	struct bench_http_resp r;

	(void)state;
	assert_int_equal(bench_http_parse_head(r1, strlen(r1), &r), 0);
	assert_int_equal(r.status, 201);
	assert_int_equal(r.content_length, 12);
	assert_false(r.chunked);
	assert_false(r.close);
	assert_string_equal(r1 + r.body_off, "{\"id\":\"c1\"}");
	assert_int_equal(bench_http_parse_head(r2, strlen(r2), &r), 0);
	assert_int_equal(r.status, 200);
	assert_true(r.chunked);
	assert_true(r.close);
	assert_int_equal(r.content_length, -1);
	assert_int_equal(bench_http_parse_head(r1, 20, &r), EAGAIN);
	assert_int_equal(bench_http_parse_head("HTTX/1.1 200 OK\r\n\r\n", 19,
					       &r), EBADMSG);
	assert_int_equal(bench_http_parse_head("HTTP/1.1 2x0 OK\r\n\r\n", 19,
					       &r), EBADMSG);
}

static void test_http_dechunk(void **state)
{
	char b1[] = "4\r\nWiki\r\n6;x=y\r\npedia \r\n0\r\n\r\n";
	char b2[] = "4\r\nWiki\r\n6\r\npedi";
	char b3[] = "zz\r\n";
	size_t out;

	(void)state;
	assert_int_equal(bench_http_dechunk(b1, strlen(b1), &out), 0);
	assert_int_equal(out, 10);
	assert_memory_equal(b1, "Wikipedia ", 10);
	assert_int_equal(bench_http_dechunk(b2, strlen(b2), &out), EAGAIN);
	/* an incomplete body is left untouched for the next attempt */
	assert_string_equal(b2, "4\r\nWiki\r\n6\r\npedi");
	assert_int_equal(bench_http_dechunk(b3, strlen(b3), &out), EBADMSG);
}

/* ---- Prometheus ------------------------------------------------------- */

static const char prom[] =
	"# HELP keymix_bridge_packets_in_total RTP packets accepted\n"
	"# TYPE keymix_bridge_packets_in_total counter\n"
	"keymix_bridge_packets_in_total 1500\n"
	"keymix_bridge_packets_in_total_x 7\n"
	"keymix_bridge_leg_packets_in_total{conference=\"c\",leg=\"a\"} 3\n"
	"keymix_bridge_leg_packets_in_total{conference=\"c\",leg=\"b\"} 4\n"
	"t_bucket{worker=\"0\",le=\"0.001\"} 90\n"
	"t_bucket{worker=\"0\",le=\"0.002\"} 99\n"
	"t_bucket{worker=\"0\",le=\"+Inf\"} 100\n"
	"t_bucket{worker=\"1\",le=\"0.001\"} 10\n"
	"t_bucket{worker=\"1\",le=\"0.002\"} 100\n"
	"t_bucket{worker=\"1\",le=\"+Inf\"} 100\n";

static void test_prom(void **state)
{
	struct bench_prom_hist a, b;
	double v;

	(void)state;
	assert_int_equal(bench_prom_sum(prom, "keymix_bridge_packets_in_total",
					&v), 0);
	assert_true(v == 1500);
	assert_int_equal(bench_prom_sum(prom,
					"keymix_bridge_leg_packets_in_total",
					&v), 0);
	assert_true(v == 7);
	assert_int_equal(bench_prom_sum(prom, "nope", &v), ENOENT);
	memset(&a, 0, sizeof(a));
	assert_int_equal(bench_prom_hist(prom, "t", &b), 0);
	assert_int_equal(b.n, 3);
	assert_true(b.le[0] == 0.001 && b.count[0] == 100);
	assert_true(b.count[2] == 200);
	/* the first snapshot: the same layout, all zero */
	memcpy(a.le, b.le, sizeof(a.le));
	a.n = b.n;
	assert_true(fabs(bench_prom_hist_quantile_ms(&a, &b, 0.5) - 1) <
		    1e-9);
	assert_true(fabs(bench_prom_hist_quantile_ms(&a, &b, 0.99) - 2) <
		    1e-9);
	assert_true(bench_prom_hist_quantile_ms(&b, &b, 0.5) < 0);
}

/* ---- audio and RTP ---------------------------------------------------- */

static void test_ulaw(void **state)
{
	int v;

	(void)state;
	assert_int_equal(lg_ulaw_enc(0), 0xff);
	assert_int_equal(lg_ulaw_dec(0xff), 0);
	assert_int_equal(lg_ulaw_dec(0x00), -32124);
	assert_int_equal(lg_ulaw_dec(0x80), 32124);
	for (v = -32768; v < 32768; v += 97) {
		int d = lg_ulaw_dec(lg_ulaw_enc((int16_t)v));
		int err = abs(d - (v > 32635 ? 32635 :
				   v < -32635 ? -32635 : v));

		/* quantisation error stays within the segment's step */
		assert_true(err <= 1 + abs(v) / 16);
		assert_true((v >= 0) == (d >= 0) || abs(v) < 8);
	}
}

static void test_rtp_roundtrip(void **state)
{
	uint8_t buf[64], pay[5] = { 1, 2, 3, 4, 5 }, pt;
	uint16_t seq;
	uint32_t ssrc;
	size_t len, off;

	(void)state;
	len = lg_rtp_build(buf, 111, 0xfffe, 960, 0xdeadbeef, 1, 33, 1, pay,
			   sizeof(pay));
	assert_int_equal(len, 25);
	assert_int_equal(buf[0], 0x90);
	assert_int_equal(buf[17], 0x80 | 33);
	assert_int_equal(lg_rtp_parse(buf, len, &pt, &seq, &ssrc, &off), 0);
	assert_int_equal(pt, 111);
	assert_int_equal(seq, 0xfffe);
	assert_int_equal(ssrc, 0xdeadbeef);
	assert_int_equal(off, 20);
	assert_memory_equal(buf + off, pay, sizeof(pay));
	len = lg_rtp_build(buf, 0, 1, 2, 3, 0, 0, 0, pay, 1);
	assert_int_equal(len, 13);
	assert_int_equal(lg_rtp_parse(buf, len, &pt, &seq, &ssrc, &off), 0);
	assert_int_equal(off, 12);
	/* an extension longer than the packet */
	buf[0] = 0x90;
	assert_int_not_equal(lg_rtp_parse(buf, len, &pt, &seq, &ssrc, &off),
			     0);
	assert_int_not_equal(lg_rtp_parse(buf, 11, &pt, &seq, &ssrc, &off),
			     0);
}

static void test_levels(void **state)
{
	int16_t pcm[960];
	int i;

	(void)state;
	memset(pcm, 0, sizeof(pcm));
	assert_int_equal(lg_level_dbov(pcm, 960), 127);
	/* a full-scale square wave is 0 dBov */
	for (i = 0; i < 960; i++)
		pcm[i] = (i / 10) & 1 ? 32767 : -32767;
	assert_int_equal(lg_level_dbov(pcm, 960), 0);
	/* -20 dB */
	for (i = 0; i < 960; i++)
		pcm[i] = (i / 10) & 1 ? 3277 : -3277;
	assert_int_equal(lg_level_dbov(pcm, 960), 20);
}

static void test_hostport(void **state)
{
	struct sockaddr_in sa;

	(void)state;
	assert_int_equal(lg_parse_hostport("127.0.0.1:4000", &sa), 0);
	assert_int_equal(ntohs(sa.sin_port), 4000);
	assert_int_not_equal(lg_parse_hostport("127.0.0.1", &sa), 0);
	assert_int_not_equal(lg_parse_hostport("127.0.0.1:70000", &sa), 0);
	assert_int_not_equal(lg_parse_hostport("nohost:1", &sa), 0);
	assert_int_not_equal(lg_parse_hostport("1.2.3.4:5x", &sa), 0);
}

static void test_scenarios(void **state)
{
	const struct lg_scenario *s;

	(void)state;
	s = lg_scenario_find("opus100_3talk_levels");
	assert_non_null(s);
	assert_int_equal(s->conf_size, 100);
	assert_int_equal(s->talkers, 3);
	assert_true(s->levels);
	s = lg_scenario_find("transcode_opus_pcmu");
	assert_non_null(s);
	assert_true(s->transcode);
	assert_int_equal(s->codec_b, LG_PCMU);
	assert_null(lg_scenario_find("nope"));
}

/* ---- audio banks ------------------------------------------------------ */

static void put_le(FILE *f, uint32_t v, int n)
{
	int i;

	for (i = 0; i < n; i++)
		fputc((int)((v >> (8 * i)) & 0xff), f);
}

static void test_speech_from_wav_and_banks(void **state)
{
	char path[64];
	FILE *f;
	int16_t *pcm = NULL;
	unsigned n = 0, i, loud = 0, marks = 0;
	int from_espeak = 1, r;
	struct lg_banks b;

	(void)state;
	snprintf(path, sizeof(path), "/tmp/test_bench_%d.wav", (int)getpid());
	f = fopen(path, "wb");
	assert_non_null(f);
	/* 2 s of a 300 Hz tone, 16 kHz mono 16-bit */
	fwrite("RIFF", 1, 4, f);
	put_le(f, 36 + 64000, 4);
	fwrite("WAVEfmt ", 1, 8, f);
	put_le(f, 16, 4);
	put_le(f, 1, 2);
	put_le(f, 1, 2);
	put_le(f, 16000, 4);
	put_le(f, 32000, 4);
	put_le(f, 2, 2);
	put_le(f, 16, 2);
	fwrite("data", 1, 4, f);
	put_le(f, 64000, 4);
	for (i = 0; i < 32000; i++)
		put_le(f, (uint32_t)(uint16_t)(int16_t)(8000 *
			sin(2 * M_PI * 300 * i / 16000.0)), 2);
	fclose(f);
	r = lg_audio_load_speech(path, &pcm, &n, &from_espeak);
	unlink(path);
	assert_int_equal(r, 0);
	assert_int_equal(from_espeak, 0);
	/* resampled to 48 kHz */
	assert_true(n > 95000 && n <= 96000);
	assert_int_equal(lg_audio_load_speech("/nonexistent.wav", &pcm, &n,
					      &from_espeak) == 0, 0);

	/* PCMU banks: 20 ms frames of 160 bytes, probe marks at 0 and 25 */
	assert_int_equal(lg_banks_make(&b, LG_PCMU, pcm, n), 0);
	assert_int_equal(b.pt, 0);
	assert_int_equal(b.samples, 160);
	assert_int_equal(b.speech.n, n / 6 / 160);
	assert_int_equal(b.speech.frames[3].len, 160);
	assert_int_equal(b.probe.n, 50);
	for (i = 0; i < b.probe.n; i++) {
		marks += b.probe.frames[i].mark;
		if (b.probe.frames[i].level < 20)
			loud++;
	}
	assert_int_equal(marks, 2);
	assert_true(b.probe.frames[0].mark && b.probe.frames[25].mark);
	assert_int_equal(loud, 6);          /* 3 frames per mark */
	assert_true(b.silence.frames[0].level > 60);
	lg_banks_free(&b);

	/* Opus banks: one packet per 20 ms at 48 kHz */
	assert_int_equal(lg_banks_make(&b, LG_OPUS, pcm, n), 0);
	assert_int_equal(b.pt, 111);
	assert_int_equal(b.samples, 960);
	assert_int_equal(b.speech.n, n / 960);
	for (i = 0; i < b.speech.n; i++)
		assert_true(b.speech.frames[i].len > 0 &&
			    b.speech.frames[i].len < 400);
	lg_banks_free(&b);
	free(pcm);
}

/* ---- SRTP receive sampling across a sequence wrap ---------------------- */

static void test_sampled_unprotect_across_wrap(void **state)
{
	struct keyleg_keysalt k1, k2;
	struct keyleg *snd = NULL, *rcv = NULL;
	uint8_t pay[40], buf[200];
	unsigned i, fails = 0, checked = 0;

	(void)state;
	k1.len = k2.len = 30;
	memset(k1.b, 0x11, 30);
	memset(k2.b, 0x22, 30);
	memset(pay, 0x55, sizeof(pay));
	assert_int_equal(keyleg_alloc(&snd, KEYLEG_AES_CM_128_HMAC_SHA1_80,
				      &k2, &k1, NULL), 0);
	assert_int_equal(keyleg_alloc(&rcv, KEYLEG_AES_CM_128_HMAC_SHA1_80,
				      &k1, &k2, NULL), 0);
	/* 65000 .. 65535, 0 .. 2000: decrypt only every 16th packet */
	for (i = 0; i < 3000; i++) {
		uint16_t seq = (uint16_t)(65000 + i);
		size_t len = lg_rtp_build(buf, 111, seq, i * 960, 0x1234, 0,
					  0, 0, pay, sizeof(pay));

		assert_int_equal(keyleg_protect_rtp(snd, buf, &len,
						    sizeof(buf)), KEYLEG_OK);
		if (i % 16)
			continue;
		checked++;
		if (keyleg_unprotect_rtp(rcv, buf, &len, i * 20) != KEYLEG_OK)
			fails++;
	}
	assert_true(checked > 100);
	assert_int_equal(fails, 0);
	keyleg_free(snd);
	keyleg_free(rcv);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_benc_encode),
		cmocka_unit_test(test_benc_overflow),
		cmocka_unit_test(test_bdec_dict),
		cmocka_unit_test(test_bdec_roundtrip_nested),
		cmocka_unit_test(test_bdec_malformed),
		cmocka_unit_test(test_proc_stat_parse),
		cmocka_unit_test(test_proc_stat_self),
		cmocka_unit_test(test_hist_quantiles),
		cmocka_unit_test(test_cpu_report),
		cmocka_unit_test(test_loss_and_overload),
		cmocka_unit_test(test_http_head),
		cmocka_unit_test(test_http_dechunk),
		cmocka_unit_test(test_prom),
		cmocka_unit_test(test_ulaw),
		cmocka_unit_test(test_rtp_roundtrip),
		cmocka_unit_test(test_levels),
		cmocka_unit_test(test_hostport),
		cmocka_unit_test(test_scenarios),
		cmocka_unit_test(test_speech_from_wav_and_banks),
		cmocka_unit_test(test_sampled_unprotect_across_wrap),
	};

	return cmocka_run_group_tests_name("bench", tests, NULL, NULL);
}
