/** @file test_audio.c  uemedia unit tests: codecs, WAV, tones, timeline */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "ue/ue_media_int.h"
#include "tests/ue_media/ue_media_test.h"

static void test_tone_level(void **state)
{
	struct ue_tone t;
	int16_t pcm[48000];

	(void)state;
	assert_int_equal(ue_tone_init(&t, 1000, -20, 48000), 0);
	ue_tone_fill(&t, pcm, 24000);
	ue_tone_fill(&t, pcm + 24000, 24000);      /* phase continues */
	assert_true(fabs(amp_dbfs(tone_amplitude(pcm, 48000, 1000, 48000)) +
			 20) < 0.05);
	/* a sine's RMS is 3.01 dB below its peak */
	assert_true(fabs(ue_level_dbov(pcm, 48000) + 23.01) < 0.05);
	assert_int_equal(ue_level_rfc6464(pcm, 48000), 23);
	/* nothing at other frequencies */
	assert_true(amp_dbfs(tone_amplitude(pcm, 48000, 1300, 48000)) < -90);
	memset(pcm, 0, sizeof(pcm));
	assert_true(ue_level_dbov(pcm, 100) <= -127);
	assert_int_equal(ue_level_rfc6464(pcm, 100), UE_LEVEL_SILENT);
	assert_int_equal(ue_tone_init(&t, 5000, -20, 8000), EINVAL);
	assert_int_equal(ue_tone_init(&t, 1000, 1, 8000), EINVAL);
}

struct codec_case {
	enum ue_codec codec;
	uint32_t rate;
	size_t frame_bytes;        /* 0: variable */
};

/* Send 1 s of a -12 dBFS tone through encoder and decoder. */
static void roundtrip(const struct codec_case *cc, double hz)
{
	struct ue_enc *enc = NULL;
	struct ue_dec *dec = NULL;
	struct ue_tone t;
	size_t frame = cc->rate / 50, nf = 50, i, len, n, total = 0;
	int16_t in[960], *out;
	uint8_t pkt[1500];
	double db;

	out = calloc(cc->rate, sizeof(*out));
	assert_non_null(out);
	assert_int_equal(ue_enc_alloc(&enc, cc->codec, cc->rate, NULL), 0);
	assert_int_equal(ue_dec_alloc(&dec, cc->codec, cc->rate), 0);
	assert_int_equal(ue_tone_init(&t, hz, -12, cc->rate), 0);
	for (i = 0; i < nf; i++) {
		ue_tone_fill(&t, in, frame);
		assert_int_equal(ue_enc_encode(enc, in, frame, pkt,
					       sizeof(pkt), &len), 0);
		if (cc->frame_bytes)
			assert_int_equal(len, cc->frame_bytes);
		assert_int_equal(ue_dec_decode(dec, pkt, len, out + total,
					       cc->rate - total, &n), 0);
		assert_int_equal(n, frame);
		total += n;
	}
	/* skip the first 200 ms (codec start-up), measure the rest */
	db = amp_dbfs(tone_amplitude(out + cc->rate / 5, total - cc->rate / 5,
				     hz, cc->rate));
	assert_true(fabs(db + 12) < 1.0);
	db = amp_dbfs(tone_amplitude(out + cc->rate / 5, total - cc->rate / 5,
				     hz * 1.37, cc->rate));
	assert_true(db < -12 - 30);
	enc = ue_enc_free(enc);
	dec = ue_dec_free(dec);
	assert_null(enc);
	free(out);
}

static void test_codec_roundtrip(void **state)
{
	static const struct codec_case cases[] = {
		{ UE_CODEC_OPUS, 48000, 0 },
		{ UE_CODEC_OPUS, 16000, 0 },
		{ UE_CODEC_PCMU, 8000, 160 },
		{ UE_CODEC_PCMA, 8000, 160 },
		{ UE_CODEC_G722, 16000, 160 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		roundtrip(&cases[i], 700);
}

static void test_codec_errors(void **state)
{
	struct ue_enc *enc = NULL;
	struct ue_dec *dec = NULL;
	int16_t pcm[960] = { 0 };
	uint8_t out[8], junk[3] = { 0xff, 0xff, 0xff };
	size_t n;

	(void)state;
	assert_int_equal(ue_enc_alloc(&enc, UE_CODEC_PCMA, 16000, NULL),
			 EINVAL);
	assert_int_equal(ue_dec_alloc(&dec, UE_CODEC_G722, 8000), EINVAL);
	assert_int_equal(ue_enc_alloc(&enc, UE_CODEC_PCMA, 8000, NULL), 0);
	assert_int_equal(ue_enc_encode(enc, pcm, 160, out, sizeof(out), &n),
			 ENOSPC);
	enc = ue_enc_free(enc);
	assert_int_equal(ue_dec_alloc(&dec, UE_CODEC_OPUS, 48000), 0);
	/* an Opus TOC byte announcing more frames than the packet holds */
	assert_int_equal(ue_dec_decode(dec, junk, sizeof(junk), pcm, 960,
				       &n), EBADMSG);
	dec = ue_dec_free(dec);
}

static void tmpname(char *buf, size_t sz, const char *tag)
{
	snprintf(buf, sz, "/tmp/ue_media_test_%d_%s.wav", (int)getpid(),
		 tag);
}

static void test_wav_roundtrip(void **state)
{
	int16_t pcm[1000], *back = NULL;
	size_t i, n = 0;
	uint32_t rate = 0;
	char path[128];

	(void)state;
	for (i = 0; i < 1000; i++)
		pcm[i] = (int16_t)((int)i * 67 - 32768);
	tmpname(path, sizeof(path), "rt");
	assert_int_equal(ue_wav_write(path, pcm, 1000, 16000), 0);
	assert_int_equal(ue_wav_read(path, &back, &n, &rate), 0);
	assert_int_equal(n, 1000);
	assert_int_equal(rate, 16000);
	assert_memory_equal(back, pcm, sizeof(pcm));
	free(back);
	unlink(path);
}

static void put_le(FILE *f, uint32_t v, int bytes)
{
	while (bytes--) {
		fputc((int)(v & 0xff), f);
		v >>= 8;
	}
}

/* A stereo file with a LIST chunk before "data": channels averaged. */
static void test_wav_stereo_chunks(void **state)
{
	char path[128];
	int16_t *pcm = NULL;
	size_t n = 0;
	uint32_t rate = 0;
	FILE *f;

	(void)state;
	tmpname(path, sizeof(path), "st");
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs("RIFF", f);
	put_le(f, 4 + 24 + 14 + 8 + 8, 4);
	fputs("WAVEfmt ", f);
	put_le(f, 16, 4);
	put_le(f, 1, 2);
	put_le(f, 2, 2);
	put_le(f, 8000, 4);
	put_le(f, 32000, 4);
	put_le(f, 4, 2);
	put_le(f, 16, 2);
	fputs("LIST", f);
	put_le(f, 5, 4);
	fputs("abcde", f);
	fputc(0, f);                               /* pad byte */
	fputs("data", f);
	put_le(f, 8, 4);
	put_le(f, 1000, 2);
	put_le(f, 3000, 2);
	put_le(f, (uint16_t)-100, 2);
	put_le(f, (uint16_t)-300, 2);
	fclose(f);
	assert_int_equal(ue_wav_read(path, &pcm, &n, &rate), 0);
	assert_int_equal(n, 2);
	assert_int_equal(rate, 8000);
	assert_int_equal(pcm[0], 2000);
	assert_int_equal(pcm[1], -200);
	free(pcm);
	unlink(path);
}

static void test_wav_reject(void **state)
{
	char path[128];
	int16_t *pcm = NULL;
	size_t n;
	uint32_t rate;
	FILE *f;

	(void)state;
	assert_int_equal(ue_wav_read("/nonexistent/x.wav", &pcm, &n, &rate),
			 ENOENT);
	tmpname(path, sizeof(path), "bad");
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs("RIFF", f);
	put_le(f, 36, 4);
	fputs("WAVEfmt ", f);
	put_le(f, 16, 4);
	put_le(f, 1, 2);
	put_le(f, 1, 2);
	put_le(f, 8000, 4);
	put_le(f, 8000, 4);
	put_le(f, 1, 2);
	put_le(f, 8, 2);                           /* 8-bit */
	fputs("data", f);
	put_le(f, 0, 4);
	fclose(f);
	assert_int_equal(ue_wav_read(path, &pcm, &n, &rate), ENOTSUP);
	f = fopen(path, "wb");
	assert_non_null(f);
	fputs("RIFX....WAVE", f);
	fclose(f);
	assert_int_equal(ue_wav_read(path, &pcm, &n, &rate), EBADMSG);
	unlink(path);
}

static void test_resample(void **state)
{
	struct ue_tone t;
	int16_t *in, *out = NULL;
	size_t n = 0;

	(void)state;
	in = malloc(48000 * sizeof(*in));
	assert_non_null(in);
	assert_int_equal(ue_tone_init(&t, 1000, -6, 48000), 0);
	ue_tone_fill(&t, in, 48000);
	assert_int_equal(ue_resample(in, 48000, 48000, 8000, &out, &n), 0);
	assert_true(n > 7900 && n <= 8000);
	assert_true(fabs(amp_dbfs(tone_amplitude(out + 800, n - 1600, 1000,
						 8000)) + 6) < 0.5);
	free(out);
	assert_int_equal(ue_resample(in, 100, 8000, 8000, &out, &n), 0);
	assert_int_equal(n, 100);
	assert_memory_equal(out, in, 200);
	free(out);
	free(in);
}

static void test_timeline(void **state)
{
	struct ue_timeline tl;
	int16_t f[160];
	size_t i;

	(void)state;
	/* G.722-like: 16 kHz audio, 8 kHz RTP clock, 1 s buffer */
	assert_int_equal(ue_timeline_init(&tl, 16000, 16000, 8000), 0);
	for (i = 0; i < 160; i++)
		f[i] = 7;
	/* first packet arrives 1000 samples into the run */
	ue_timeline_put(&tl, 5, 0xfffffff0u, f, 160, 1000);
	assert_int_equal(tl.hi, 1160);
	assert_int_equal(tl.pcm[999], 0);
	assert_int_equal(tl.pcm[1000], 7);
	/* next packet: ts + 80 (wraps), 160 samples later; skip one */
	ue_timeline_put(&tl, 5, 0xfffffff0u + 160, f, 160, 0);
	assert_int_equal(tl.hi, 1000 + 320 + 160);
	assert_int_equal(tl.pcm[1160], 0);         /* the lost packet */
	assert_int_equal(tl.pcm[1320], 7);
	/* a new SSRC anchors at its arrival position */
	ue_timeline_put(&tl, 6, 123, f, 160, 5000);
	assert_int_equal(tl.pcm[5000], 7);
	assert_int_equal(tl.hi, 5160);
	/* near and beyond the end of the buffer: cut and counted */
	ue_timeline_put(&tl, 6, 123 + 5000, f, 160, 0);
	assert_int_equal(tl.hi, 15160);
	assert_int_equal(tl.dropped, 0);
	ue_timeline_put(&tl, 6, 123 + 5460, f, 160, 0);
	assert_int_equal(tl.hi, 16000);
	assert_int_equal(tl.dropped, 80);
	ue_timeline_put(&tl, 6, 123 + 8000, f, 160, 0);
	assert_int_equal(tl.dropped, 240);
	assert_int_equal(tl.hi, 16000);
	ue_timeline_reset(&tl);
	assert_null(tl.pcm);
}

int test_ue_audio_group(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tone_level),
		cmocka_unit_test(test_codec_roundtrip),
		cmocka_unit_test(test_codec_errors),
		cmocka_unit_test(test_wav_roundtrip),
		cmocka_unit_test(test_wav_stereo_chunks),
		cmocka_unit_test(test_wav_reject),
		cmocka_unit_test(test_resample),
		cmocka_unit_test(test_timeline),
	};

	return cmocka_run_group_tests_name("ue_media_audio", tests, NULL,
					   NULL);
}
