/** @file t_unit.c  Limiter, G.711 tables, jitter buffer, API and control */

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <opus/opus.h>
#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>
#include "mixer/mix_int.h"
#include "sim.h"
#include "tmix.h"

static unsigned max_run_at(const int16_t *x, size_t n, int lim)
{
	unsigned run = 0, best = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		run = (x[i] >= lim || x[i] <= -lim) ? run + 1 : 0;
		if (run > best)
			best = run;
	}
	return best;
}

/* 10 full-scale talkers summed: no wrap, not stuck at the rails */
static void test_limiter_unit(void **state)
{
	static int32_t in[48000];
	static int16_t out[48000];
	struct mix_lim lim;
	unsigned i, k, flips = 0;

	(void)state;
	for (i = 0; i < 48000; i++) {
		double v = 0;

		for (k = 0; k < 10; k++)
			v += 32767.0 * sin(2 * M_PI * (200 + 97 * k) * i /
					   48000.0 + k);
		in[i] = (int32_t)lrint(v);
	}
	mix_lim_init(&lim);
	for (i = 0; i < 48000; i += 960)
		mix_lim_run(&lim, in + i, out + i, 960);
	for (i = 0; i < 48000; i++) {
		if ((in[i] > 2000 && out[i] < 0) ||
		    (in[i] < -2000 && out[i] > 0))
			flips++;
		assert_true(out[i] < 32767 && out[i] > -32768);
	}
	assert_int_equal(flips, 0);
	assert_true(max_run_at(out, 48000, 32000) <= 3);

	/* normal speech levels pass bit-exact */
	mix_lim_init(&lim);
	for (i = 0; i < 960; i++)
		in[i] = (int32_t)(20000 * sin(i / 7.0));
	mix_lim_run(&lim, in, out, 960);
	for (i = 0; i < 960; i++)
		assert_int_equal(out[i], in[i]);
}

/* end to end: 10 full-scale G.711 talkers, everybody hears 9 */
static void test_limiter_conference(void **state)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	unsigned i, k;

	(void)state;
	mix_conf_cfg_default(&cfg);
	cfg.rate = 8000;
	cfg.max_talkers = 10;
	sim_init(&s, &cfg);
	for (i = 0; i < 10; i++)
		sim_add(&s, MIX_CODEC_PCMA, 300 + 250 * i, 1.0, false);
	sim_run(&s, 100);
	for (i = 0; i < 10; i++) {
		struct party *p = s.p[i];
		size_t from = 4000, n = p->rx_n - from;
		double tones = 0, total = 0;

		n -= n % 80;
		/* A-law's top segment starts at 31744 */
		assert_true(max_run_at(p->rx + from, n, 31744) <= 3);
		for (k = 0; k < 10; k++) {
			double a = goertzel_amp(p->rx + from, n,
						s.p[k]->freq, 8000);

			if (k == i)
				assert_true(a < 0.01);
			else
				tones += a * a / 2;
		}
		for (k = 0; k < n; k++)
			total += (double)p->rx[from + k] * p->rx[from + k] /
				(32768.0 * 32768.0);
		total /= (double)n;
		/* wrap-around or hard clipping would spread the power;
		 * the limited mix keeps >= 95 % of it in the 9 tones */
		assert_true(tones >= 0.95 * total);
		/* and the nine are still loud (limited, not crushed):
		 * above -17 dBFS in total */
		if (i == 0)
			print_message("limited mix: %.1f dBFS, tones "
				      "%.1f %%\n", 10 * log10(total),
				      100 * tones / total);
		assert_true(tones > 0.02);
	}
	sim_free(&s);
}

static void test_g711_tables(void **state)
{
	struct mix_dec d;
	struct mix_enc e;
	uint8_t pay[160], out[160];
	int16_t pcm[160];
	unsigned i, n, v;
	size_t len;

	(void)state;
	/* every 8-bit code decodes like SpanDSP and re-encodes to itself
	 * (apart from mu-law's negative zero) */
	assert_int_equal(mix_dec_init(&d, MIX_CODEC_PCMU, 8000, 8000), 0);
	assert_int_equal(mix_enc_init(&e, MIX_CODEC_PCMU, 8000, 8000, 20,
				      NULL), 0);
	for (v = 0; v < 256; v += 160) {
		for (i = 0; i < 160; i++)
			pay[i] = (uint8_t)(v + i);
		assert_int_equal(mix_dec_decode(&d, pay, 160, pcm, 160, &n),
				 0);
		assert_int_equal(n, 160);
		for (i = 0; i < 160; i++)
			assert_int_equal(pcm[i], ulaw_to_linear(pay[i]));
	}
	mix_dec_close(&d);
	/* every 16-bit value encodes like SpanDSP's reference */
	for (v = 0; v < 65536; v += 160) {
		for (i = 0; i < 160; i++)
			pcm[i] = (int16_t)(uint16_t)(v + i);
		assert_int_equal(mix_enc_encode(&e, pcm, out, sizeof(out),
						&len), 0);
		assert_int_equal(len, 160);
		for (i = 0; i < 160; i++)
			assert_int_equal(out[i], linear_to_ulaw(pcm[i]));
	}
	mix_enc_close(&e);
	assert_int_equal(mix_enc_init(&e, MIX_CODEC_PCMA, 8000, 8000, 20,
				      NULL), 0);
	for (v = 0; v < 65536; v += 160) {
		for (i = 0; i < 160; i++)
			pcm[i] = (int16_t)(uint16_t)(v + i);
		assert_int_equal(mix_enc_encode(&e, pcm, out, sizeof(out),
						&len), 0);
		for (i = 0; i < 160; i++)
			assert_int_equal(out[i], linear_to_alaw(pcm[i]));
	}
	mix_enc_close(&e);
}

/* SpanDSP PLC after a short history (its own rotation would overlap:
 * caught by ASan without the mixer's workaround); output continues the
 * tone */
static void test_g711_plc(void **state)
{
	struct mix_dec d;
	uint8_t pay[160];
	int16_t pcm[160];
	unsigned i, k, n;
	double a;

	(void)state;
	assert_int_equal(mix_dec_init(&d, MIX_CODEC_PCMA, 8000, 8000), 0);
	/* 4 x 160 samples: SpanDSP's history pointer ends at 80 of 280 */
	for (k = 0; k < 4; k++) {
		for (i = 0; i < 160; i++)
			pay[i] = linear_to_alaw((int16_t)(8000 * sin(
				2 * M_PI * 500 * (k * 160 + i) / 8000.0)));
		assert_int_equal(mix_dec_decode(&d, pay, 160, pcm, 160, &n),
				 0);
		assert_int_equal(n, 160);
	}
	mix_dec_conceal(&d, pcm, 160);
	a = goertzel_amp(pcm, 160, 500, 8000);
	print_message("PLC: tone at %.1f dB of the original\n",
		      db(a / (8000 / 32768.0)));
	assert_true(db(a / (8000 / 32768.0)) > -3.0);
	mix_dec_close(&d);
}

static void test_jb_counters(void **state)
{
	struct mix_jb jb;
	uint8_t p[10] = {0};

	(void)state;
	mix_jb_init(&jb, 8000, 20, 20, 200);
	assert_int_equal(mix_jb_put(&jb, p, 10, 1, 1000, -1, 160, 0), 0);
	assert_int_equal(mix_jb_put(&jb, p, 10, 3, 1320, -1, 160, 40000), 0);
	/* reordered: fine */
	assert_int_equal(mix_jb_put(&jb, p, 10, 2, 1160, -1, 160, 41000), 0);
	/* duplicate */
	assert_int_equal(mix_jb_put(&jb, p, 10, 2, 1160, -1, 160, 42000),
			 EALREADY);
	assert_int_equal(jb.dup, 1);
	assert_non_null(mix_jb_at(&jb, jb.pos));
	assert_ptr_equal(mix_jb_next(&jb, jb.pos),
			 mix_jb_at(&jb, jb.pos + 160));
	/* consumed: older ones are late */
	jb.pos += 480;
	assert_int_equal(mix_jb_put(&jb, p, 10, 4, 1160 + 160, -1, 160,
				    60000), EALREADY);
	assert_int_equal(jb.late, 1);
	/* jitter raises the target, bounded */
	assert_true(jb.target >= 8000 * 20 / 1000);
	assert_int_equal(mix_jb_put(&jb, p, 10, 9, 1000 + 8 * 160, -1, 160,
				    160000 + 180000), 0);
	assert_true(jb.target > 8000 * 150 / 1000);
	assert_true(jb.target <= 8000 * 200 / 1000);
	/* a jump of seconds restarts */
	assert_int_equal(mix_jb_put(&jb, p, 10, 10, 1000 + 8000 * 60, -1,
				    160, 400000), 0);
	assert_int_equal(jb.resyncs, 1);
	assert_int_equal(jb.n, 1);
}

static void out_nop(struct mix_leg *leg, const uint8_t *payload,
		    size_t len, uint32_t ts_inc, bool marker, void *arg)
{
	(void)leg, (void)payload, (void)len, (void)ts_inc, (void)marker;
	(*(unsigned *)arg)++;
}

static void test_api_validation(void **state)
{
	struct mix_conf_cfg cfg;
	struct mix_leg_cfg lc;
	struct mix_conf *c = NULL;
	struct mix_leg *l = NULL, *l2 = NULL, *l3 = NULL;
	enum mix_codec codec;
	unsigned n = 0;

	(void)state;
	mix_conf_cfg_default(&cfg);
	cfg.rate = 44100;
	assert_int_equal(mix_conf_alloc(&c, &cfg, out_nop, &n), EINVAL);
	cfg.rate = 16000;
	cfg.ptime_ms = 30;
	assert_int_equal(mix_conf_alloc(&c, &cfg, out_nop, &n), EINVAL);
	cfg.ptime_ms = 10;
	assert_int_equal(mix_conf_alloc(&c, &cfg, out_nop, &n), 0);

	mix_leg_cfg_default(&lc, MIX_CODEC_OPUS);
	lc.ptime_ms = 30; /* not an Opus frame size */
	assert_int_equal(mix_leg_add(c, &l, &lc, NULL), EINVAL);
	lc.ptime_ms = 15; /* not a multiple of the tick */
	assert_int_equal(mix_leg_add(c, &l, &lc, NULL), EINVAL);
	mix_leg_cfg_default(&lc, MIX_CODEC_PCMU);
	lc.rate = 16000;
	assert_int_equal(mix_leg_add(c, &l, &lc, NULL), ENOTSUP);
	lc.rate = 0;
	lc.ptime_ms = 30; /* G.711 may use 30 ms with a 10 ms tick */
	assert_int_equal(mix_leg_add(c, &l, &lc, &n), 0);
	assert_ptr_equal(mix_leg_arg(l), &n);
	assert_int_equal(mix_put(l, (const uint8_t *)"x", 1, 0, 0, false,
				 200, false, 0), EINVAL);
	/* codec changes are refused by update */
	lc.codec = MIX_CODEC_PCMA;
	assert_int_equal(mix_leg_update(l, &lc), ENOTSUP);
	assert_int_equal(mix_codec_parse("g722", &codec), 0);
	assert_int_equal(codec, MIX_CODEC_G722);
	assert_int_equal(mix_codec_parse("gsm", &codec), ENOENT);
	assert_int_equal(mix_codec_clock(MIX_CODEC_G722), 8000);
	assert_int_equal(mix_codec_static_pt(MIX_CODEC_PCMA), 8);
	l = mix_leg_remove(l);
	assert_null(l);
	c = mix_conf_free(c);
	assert_null(c);

	/* transcode: two legs at most */
	mix_conf_cfg_default(&cfg);
	cfg.mode = MIX_MODE_TRANSCODE;
	assert_int_equal(mix_conf_alloc(&c, &cfg, out_nop, &n), 0);
	mix_leg_cfg_default(&lc, MIX_CODEC_PCMU);
	assert_int_equal(mix_leg_add(c, &l, &lc, NULL), 0);
	assert_int_equal(mix_leg_add(c, &l2, &lc, NULL), 0);
	assert_int_equal(mix_leg_add(c, &l3, &lc, NULL), EBUSY);
	c = mix_conf_free(c);
}

/* encode n ms of a tone (amp 0: -70 dBov noise) in frames of ms */
static int vad_of(OpusEncoder *e, double amp, unsigned ms, unsigned ch,
		  unsigned long *t)
{
	int16_t pcm[2880 * 2];
	uint8_t out[1500];
	unsigned i, n = 48 * ms, seed;
	int len;

	for (i = 0; i < n * ch; i++, (*t)++) {
		seed = (unsigned)*t * 1103515245u + 12345u;
		pcm[i] = amp > 0 ? (int16_t)(amp * 32767 *
					    sin(2 * M_PI * 700.0 *
						(double)(*t / ch) / 48000)) :
			(int16_t)((int)((seed >> 16) & 7) - 4);
	}
	len = opus_encode(e, pcm, (int)n, out, sizeof(out));
	assert_true(len > 0);
	/* a 20 ms mono SILK/hybrid frame: the first flag is the top bit of
	 * the first byte after the TOC (the range coder's first step) */
	if (ch == 1 && ms == 20 && len > 1 && (out[0] >> 3) < 16)
		assert_int_equal(mix_opus_vad(out, (size_t)len),
				 out[1] >> 7);
	return mix_opus_vad(out, (size_t)len);
}

/* the sender's Opus VAD flags: speech, silence, CELT-only, malformed */
static void test_opus_vad(void **state)
{
	static const unsigned ptimes[4] = {10, 20, 40, 60};
	static const uint8_t toc_only[1] = {15 << 3};
	static const uint8_t bad[3] = {(15 << 3) | 3, 0x05, 0x00};
	OpusEncoder *e;
	unsigned long t = 0;
	unsigned i, k, ch;
	int err, v;

	(void)state;
	for (ch = 1; ch <= 2; ch++) {
		for (k = 0; k < 4; k++) {
			e = opus_encoder_create(48000, (int)ch,
						OPUS_APPLICATION_VOIP, &err);
			assert_non_null(e);
			opus_encoder_ctl(e, OPUS_SET_BITRATE(24000 * ch));
			opus_encoder_ctl(e, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
			/* noise at -70 dBov: no speech, once settled */
			for (i = 0; i < 400 / ptimes[k]; i++)
				v = vad_of(e, 0, ptimes[k], ch, &t);
			assert_int_equal(v, 0);
			/* a tone starting: speech */
			v = vad_of(e, 0.1, ptimes[k], ch, &t);
			v |= vad_of(e, 0.1, ptimes[k], ch, &t);
			assert_int_equal(v, 1);
			opus_encoder_destroy(e);
		}
	}
	/* CELT-only packets carry no flags */
	e = opus_encoder_create(48000, 1, OPUS_APPLICATION_RESTRICTED_LOWDELAY,
				&err);
	assert_non_null(e);
	assert_int_equal(vad_of(e, 0.1, 20, 1, &t), -1);
	opus_encoder_destroy(e);
	/* an empty frame (DTX) plays nothing; malformed packets say nothing */
	assert_int_equal(mix_opus_vad(toc_only, 1), 0);
	assert_int_equal(mix_opus_vad(bad, sizeof(bad)), -1);
	assert_int_equal(mix_opus_vad(NULL, 0), -1);
	assert_int_equal(mix_opus_vad(toc_only, 0), -1);
}

/* muted legs are never decoded and never mixed; unmute restarts */
static void test_mute_and_gain(void **state)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	struct party *a, *c;
	struct mix_leg_stats ls;

	(void)state;
	mix_conf_cfg_default(&cfg);
	sim_init(&s, &cfg);
	a = sim_add(&s, MIX_CODEC_OPUS, 500, 0.1, false);
	sim_add(&s, MIX_CODEC_OPUS, 900, 0.1, false);
	c = sim_add(&s, MIX_CODEC_G722, 0, 0, false);
	a->lcfg.muted = true;
	assert_int_equal(mix_leg_update(a->leg, &a->lcfg), 0);
	/* b heard 6 dB down by c only */
	c->lcfg.gain_out_db = -6.0f;
	assert_int_equal(mix_leg_update(c->leg, &c->lcfg), 0);
	sim_run(&s, 60);
	mix_leg_stats_get(a->leg, &ls);
	assert_int_equal(ls.decodes, 0);
	assert_false(ls.talking);
	assert_true(tone_db(c, 6400, 12800, 500) < db(0.1) - 40);
	assert_true(fabs(tone_db(c, 6400, 12800, 900) - (db(0.1) - 6)) <= 1);
	assert_true(fabs(tone_db(a, 19200, 38400, 900) - db(0.1)) <= 1);
	/* unmute: a is heard again */
	a->lcfg.muted = false;
	assert_int_equal(mix_leg_update(a->leg, &a->lcfg), 0);
	party_rx_clear(c);
	sim_run(&s, 60);
	mix_leg_stats_get(a->leg, &ls);
	assert_true(ls.decodes > 0);
	assert_true(fabs(tone_db(c, 6400, 12800, 500) - (db(0.1) - 6)) <= 1);
	sim_free(&s);
}

/* hysteresis: two legs 2 dB apart around a third do not flap */
static void test_talker_hysteresis(void **state)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	struct mix_leg *tv[4];
	struct mix_leg *prev = NULL;
	unsigned t, changes = 0, i;

	(void)state;
	mix_conf_cfg_default(&cfg);
	cfg.max_talkers = 1;
	sim_init(&s, &cfg);
	sim_add(&s, MIX_CODEC_PCMU, 500, 0.1, true);
	sim_add(&s, MIX_CODEC_PCMU, 700, 0.1, true);
	sim_add(&s, MIX_CODEC_PCMU, 0, 0, true);
	for (t = 0; t < 300; t++) {
		/* the two alternate being 2 dB louder every 100 ms */
		for (i = 0; i < 2; i++)
			s.p[i]->amp = ((t / 5) % 2 == i) ? 0.1 : 0.079;
		sim_step(&s);
		assert_int_equal(mix_talkers(s.conf, tv, 4), 1);
		if (prev && tv[0] != prev)
			changes++;
		prev = tv[0];
	}
	assert_int_equal(changes, 0);
	/* a clearly louder one (12 dB) takes over after the hold time */
	s.p[1]->amp = 0.4;
	s.p[0]->amp = 0.1;
	sim_run(&s, 50);
	assert_int_equal(mix_talkers(s.conf, tv, 4), 1);
	assert_ptr_equal(tv[0], s.p[1]->leg);
	sim_free(&s);
}

/* a leg that stops receiving audio and resumes: timestamps jump by the
 * pause and the marker is set */
static void test_send_pause(void **state)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	struct party *b;
	unsigned pk, mk;

	(void)state;
	mix_conf_cfg_default(&cfg);
	cfg.rate = 8000;
	sim_init(&s, &cfg);
	sim_add(&s, MIX_CODEC_PCMU, 500, 0.1, false);
	b = sim_add(&s, MIX_CODEC_PCMU, 0, 0, false);
	sim_run(&s, 10);
	pk = b->rx_packets;
	mk = b->rx_markers;
	assert_int_equal(mk, 1);
	b->lcfg.send = false;
	assert_int_equal(mix_leg_update(b->leg, &b->lcfg), 0);
	sim_run(&s, 10);
	assert_int_equal(b->rx_packets, pk);
	b->lcfg.send = true;
	assert_int_equal(mix_leg_update(b->leg, &b->lcfg), 0);
	sim_run(&s, 1);
	assert_int_equal(b->rx_packets, pk + 1);
	assert_int_equal(b->rx_markers, mk + 1);
	assert_int_equal(b->last_ts_inc, 11 * 160);
	sim_free(&s);
}

/* Opus DTX towards a listener: silence costs few packets, the talkspurt
 * after it starts with a marker and a timestamp jump over the gap */
static void test_dtx_output(void **state)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	struct party *a, *b;
	unsigned pk, mk, t;
	bool jump = false;

	(void)state;
	mix_conf_cfg_default(&cfg);
	cfg.opus.dtx = true;
	sim_init(&s, &cfg);
	a = sim_add(&s, MIX_CODEC_OPUS, 500, 0.1, true);
	b = sim_add(&s, MIX_CODEC_OPUS, 0, 0, true);
	sim_run(&s, 50);
	assert_true(b->rx_packets >= 45);
	/* a falls silent: after the hangover, b's stream goes quiet */
	a->on = false;
	sim_run(&s, 50);
	pk = b->rx_packets;
	mk = b->rx_markers;
	sim_run(&s, 100);
	print_message("DTX: %u packets in 100 silent ticks\n",
		      b->rx_packets - pk);
	assert_true(b->rx_packets - pk < 30);
	/* a talks again: marker, timestamps jump over the silence */
	a->on = true;
	for (t = 0; t < 20; t++) {
		unsigned before = b->rx_packets;

		sim_step(&s);
		if (b->rx_packets > before && b->last_ts_inc > 960)
			jump = true;
	}
	assert_true(b->rx_markers > mk);
	assert_true(jump);
	sim_free(&s);
}

int tmix_run_unit(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_limiter_unit),
		cmocka_unit_test(test_limiter_conference),
		cmocka_unit_test(test_g711_tables),
		cmocka_unit_test(test_g711_plc),
		cmocka_unit_test(test_jb_counters),
		cmocka_unit_test(test_api_validation),
		cmocka_unit_test(test_opus_vad),
		cmocka_unit_test(test_mute_and_gain),
		cmocka_unit_test(test_talker_hysteresis),
		cmocka_unit_test(test_send_pause),
		cmocka_unit_test(test_dtx_output),
	};
	return cmocka_run_group_tests_name("mixer_unit", tests, NULL, NULL);
}
