/** @file mixbench_main.c  Mixer cost per tick and per leg (no sockets) */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <opus/opus.h>
#include <speex/speex_resampler.h>
#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>

#include "mixer/mixer.h"
#include "mixer/mix_int.h"

/*
 * Scenarios (-s NAME, repeatable; default all):
 *   opus10-levels     10 Opus 48 kHz legs, 2 talkers, RFC 6464 levels
 *   opus10-nolevels   the same without levels (silent legs' Opus VAD flags
 *                     spare their decode; -E: every leg decoded)
 *   g711-10           10 PCMU legs, 8 kHz conference, 2 talkers
 *   opus100           100 Opus 48 kHz legs, 3 talkers, levels
 *   tc-8k             Opus <-> PCMU transcoder, 8 kHz internal rate (the
 *                     Opus leg sends 48 kHz fullband, as WebRTC does)
 *   tc-16k, tc-48k    the same through 16 and 48 kHz (for comparison)
 * Non-talkers send room noise at about -60 dBov (under the VAD).
 * and the sweeps behind the defaults:
 *   complexity        Opus encode cost per 20 ms frame, complexity 0..10
 *   resampler         speexdsp quality 0..10: cost and quality
 * Input packets are encoded before the clock starts; the loop times
 * mix_put() for every leg plus mix_tick(), on the thread's CPU clock.
 */

#define MAXLEGS 100
#define PKTS 250 /* 5 s of input, replayed */

struct pkt {
	uint8_t b[400];
	uint16_t len;
	int16_t level;
};

struct scen {
	const char *name;
	enum mix_codec codec;
	unsigned rate, legs, talkers;
	bool levels;
};

static const struct scen scens[] = {
	{"opus10-levels", MIX_CODEC_OPUS, 48000, 10, 2, true},
	{"opus10-nolevels", MIX_CODEC_OPUS, 48000, 10, 2, false},
	{"g711-10", MIX_CODEC_PCMU, 8000, 10, 2, true},
	{"opus100", MIX_CODEC_OPUS, 48000, 100, 3, true},
};

static unsigned n_out;
static int complexity = 5;

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* speech-like: a gliding harmonic voice, 4 Hz syllables, some noise */
static void speech(int16_t *x, unsigned n, unsigned rate, uint64_t *t0,
		   unsigned seed)
{
	unsigned i, k;
	static uint32_t ns = 1;

	for (i = 0; i < n; i++) {
		double t = (double)(*t0 + i) / rate;
		double f0 = 130 + 20 * seed + 30 * sin(2 * M_PI * 0.7 * t);
		double env = 0.5 * (1 + sin(2 * M_PI * 4 * t + seed));
		double v = 0;

		for (k = 1; k <= 20 && k * f0 < rate / 2.0; k++)
			v += sin(2 * M_PI * k * f0 * t) / k;
		ns = ns * 1664525u + 1013904223u;
		v = 0.08 * env * v + 0.005 * ((double)(ns >> 8) / 8388608.0
					      - 1);
		x[i] = (int16_t)lrint(v * 32767);
	}
	*t0 += n;
}

static void out_h(struct mix_leg *leg, const uint8_t *payload, size_t len,
		  uint32_t ts_inc, bool marker, void *arg)
{
	(void)leg, (void)payload, (void)len, (void)ts_inc, (void)marker;
	(void)arg;
	n_out++;
}

/* encode PKTS packets of speech (talker) or silence for one leg */
static int make_packets(struct pkt *p, enum mix_codec codec, unsigned rate,
			bool talker, unsigned seed)
{
	int16_t x[960];
	unsigned n = rate / 50, i, j;
	uint64_t t0 = 0;
	OpusEncoder *e = NULL;
	uint32_t ns = 12345u + seed;
	int err;

	if (codec == MIX_CODEC_OPUS) {
		e = opus_encoder_create((opus_int32)rate, 1,
					OPUS_APPLICATION_VOIP, &err);
		if (!e)
			return ENOMEM;
		opus_encoder_ctl(e, OPUS_SET_COMPLEXITY(5));
		opus_encoder_ctl(e, OPUS_SET_INBAND_FEC(1));
		opus_encoder_ctl(e, OPUS_SET_PACKET_LOSS_PERC(10));
	}
	for (i = 0; i < PKTS; i++) {
		double en = 0;

		if (talker) {
			speech(x, n, rate, &t0, seed);
		}
		else {
			/* room noise around -60 dBov: below the VAD */
			for (j = 0; j < n; j++) {
				ns = ns * 1664525u + 1013904223u;
				x[j] = (int16_t)((int32_t)(ns >> 16) % 61 - 30);
			}
		}
		for (j = 0; j < n; j++)
			en += (double)x[j] * x[j];
		en /= n * 32768.0 * 32768.0;
		p[i].level = en > 1e-12 ? (int16_t)fmin(127, -10 * log10(en))
			: 127;
		if (e) {
			int r = opus_encode(e, x, (int)n, p[i].b,
					    sizeof(p[i].b));

			p[i].len = r > 0 ? (uint16_t)r : 0;
		}
		else {
			for (j = 0; j < n; j++)
				p[i].b[j] = linear_to_ulaw(x[j]);
			p[i].len = (uint16_t)n;
		}
	}
	if (e)
		opus_encoder_destroy(e);
	return 0;
}

static inline void ticks_loop(struct mix_conf *c, struct mix_leg **legs,
			      struct pkt **pk, unsigned nlegs, bool levels,
			      unsigned ticks, uint64_t *now, uint32_t *ts,
			      uint32_t ts_step)
{
	unsigned t, i;

	for (t = 0; t < ticks; t++) {
		for (i = 0; i < nlegs; i++) {
			struct pkt *p = &pk[i][(*now / 20000) % PKTS];

			mix_put(legs[i], p->b, p->len,
				(uint16_t)(*now / 20000), *ts, false,
				levels ? p->level : -1, false, *now);
		}
		mix_tick(c, *now);
		*now += 20000;
		*ts += ts_step;
	}
}

/* the measured loop (callgrind: --toggle-collect=bench_ticks); the
 * warm-up runs the same loop inlined elsewhere */
__attribute__((noinline)) void bench_ticks(struct mix_conf *c,
					   struct mix_leg **legs,
					   struct pkt **pk, unsigned nlegs,
					   bool levels, unsigned ticks,
					   uint64_t *now, uint32_t *ts,
					   uint32_t ts_step);
__attribute__((noinline)) void bench_ticks(struct mix_conf *c,
					   struct mix_leg **legs,
					   struct pkt **pk, unsigned nlegs,
					   bool levels, unsigned ticks,
					   uint64_t *now, uint32_t *ts,
					   uint32_t ts_step)
{
	ticks_loop(c, legs, pk, nlegs, levels, ticks, now, ts, ts_step);
}

static int run_scen(const struct scen *s, unsigned ticks)
{
	struct mix_conf_cfg cfg;
	struct mix_conf *c = NULL;
	struct mix_leg *legs[MAXLEGS];
	struct pkt *pk[MAXLEGS];
	struct mix_conf_stats st0, st1;
	struct mix_leg_cfg lc;
	uint64_t now = 1000000;
	uint32_t ts = 0;
	unsigned i, warm = 50, step;
	double t0, t1, us;
	int err;

	mix_conf_cfg_default(&cfg);
	cfg.rate = s->rate;
	cfg.opus.complexity = complexity;
	err = mix_conf_alloc(&c, &cfg, out_h, NULL);
	if (err)
		return err;
	for (i = 0; i < s->legs; i++) {
		pk[i] = calloc(PKTS, sizeof(struct pkt));
		if (!pk[i])
			return ENOMEM;
		err = make_packets(pk[i], s->codec, s->codec ==
				   MIX_CODEC_OPUS ? s->rate : 8000,
				   i < s->talkers, i);
		mix_leg_cfg_default(&lc, s->codec);
		if (!err)
			err = mix_leg_add(c, &legs[i], &lc, NULL);
		if (err)
			return err;
	}
	step = mix_codec_clock(s->codec) / 50;
	ticks_loop(c, legs, pk, s->legs, s->levels, warm, &now, &ts, step);
	mix_conf_stats_get(c, &st0);
	t0 = cpu_s();
	bench_ticks(c, legs, pk, s->legs, s->levels, ticks, &now, &ts,
		    step);
	t1 = cpu_s();
	mix_conf_stats_get(c, &st1);
	us = (t1 - t0) * 1e6 / ticks;
	printf("%-16s %5u %7u %9.1f %8.2f %7.2f %7.2f %6.2f\n", s->name,
	       s->legs, ticks, us, us / s->legs,
	       (double)(st1.decodes - st0.decodes) / ticks,
	       (double)(st1.encodes - st0.encodes) / ticks,
	       100.0 * us / 20000);
	mix_conf_free(c);
	for (i = 0; i < s->legs; i++)
		free(pk[i]);
	return 0;
}

/* transcoder: per 20 ms, one Opus packet each way through PCMU */
static int run_tc(const char *name, unsigned rate, unsigned ticks)
{
	struct mix_conf_cfg cfg;
	struct mix_conf *c = NULL;
	struct mix_leg *lo, *lu;
	struct mix_leg_cfg lc;
	struct pkt *po = calloc(PKTS, sizeof(*po));
	struct pkt *pu = calloc(PKTS, sizeof(*pu));
	struct mix_conf_stats st;
	unsigned t;
	double t0, us;
	int err;

	if (!po || !pu)
		return ENOMEM;
	mix_conf_cfg_default(&cfg);
	cfg.mode = MIX_MODE_TRANSCODE;
	cfg.rate = rate;
	cfg.opus.complexity = complexity;
	err = mix_conf_alloc(&c, &cfg, out_h, NULL);
	if (err)
		return err;
	mix_leg_cfg_default(&lc, MIX_CODEC_OPUS);
	err = mix_leg_add(c, &lo, &lc, NULL);
	mix_leg_cfg_default(&lc, MIX_CODEC_PCMU);
	if (!err)
		err = mix_leg_add(c, &lu, &lc, NULL);
	if (!err)
		err = make_packets(po, MIX_CODEC_OPUS, 48000, true, 1);
	if (!err)
		err = make_packets(pu, MIX_CODEC_PCMU, 8000, true, 2);
	if (err)
		return err;
	t0 = cpu_s();
	for (t = 0; t < ticks; t++) {
		struct pkt *a = &po[t % PKTS], *b = &pu[t % PKTS];

		mix_put(lo, a->b, a->len, (uint16_t)t, t * 960, false, -1,
			false, t * 20000ULL);
		mix_put(lu, b->b, b->len, (uint16_t)t, t * 160, false, -1,
			false, t * 20000ULL);
	}
	us = (cpu_s() - t0) * 1e6 / ticks;
	mix_conf_stats_get(c, &st);
	printf("%-16s %5u %7u %9.1f %8.2f %7.2f %7.2f %6.2f\n", name, 2,
	       ticks, us, us / 2, (double)st.decodes / ticks,
	       (double)st.encodes / ticks, 100.0 * us / 20000);
	mix_conf_free(c);
	free(po);
	free(pu);
	return 0;
}

static void sweep_complexity(unsigned frames)
{
	int16_t x[960 * 50];
	uint8_t out[1500];
	uint64_t t0 = 0;
	unsigned rates[2] = {48000, 16000}, r;
	int cx, err;

	printf("\n# Opus encode / decode per 20 ms frame (speech-like, "
	       "VOIP, auto bitrate)\n");
	printf("rate  complexity  enc_us  dec_us  bytes\n");
	for (r = 0; r < 2; r++) {
		unsigned n = rates[r] / 50;

		t0 = 0;
		speech(x, n * 50, rates[r], &t0, 1);
		for (cx = 0; cx <= 10; cx++) {
			OpusEncoder *e = opus_encoder_create(
				(opus_int32)rates[r], 1, OPUS_APPLICATION_VOIP,
				&err);
			OpusDecoder *d = opus_decoder_create(
				(opus_int32)rates[r], 1, &err);
			int16_t y[960];
			double a, b, de = 0, dd = 0;
			unsigned f;
			size_t bytes = 0;

			if (!e || !d)
				return;
			opus_encoder_ctl(e, OPUS_SET_COMPLEXITY(cx));
			for (f = 0; f < frames; f++) {
				int len;

				a = cpu_s();
				len = opus_encode(e, x + (f % 50) * n, (int)n,
						  out, sizeof(out));
				b = cpu_s();
				de += b - a;
				bytes += len > 0 ? (size_t)len : 0;
				a = cpu_s();
				if (opus_decode(d, out, len, y, 960, 0) < 0)
					break;
				dd += cpu_s() - a;
			}
			printf("%5u %6d %11.1f %7.1f %6zu\n", rates[r], cx,
			       de * 1e6 / frames, dd * 1e6 / frames,
			       bytes / frames);
			opus_encoder_destroy(e);
			opus_decoder_destroy(d);
		}
	}
}

/* tone amplitude via Goertzel */
static double g_amp(const int16_t *x, unsigned n, double f, double rate)
{
	double w = 2 * M_PI * f / rate, c = 2 * cos(w), s0, s1 = 0, s2 = 0;
	unsigned i;

	for (i = 0; i < n; i++) {
		s0 = x[i] / 32768.0 + c * s1 - s2;
		s2 = s1;
		s1 = s0;
	}
	return 2 * sqrt(s1 * s1 + s2 * s2 - c * s1 * s2) / n;
}

static void sweep_resampler(unsigned frames)
{
	static int16_t in48[48000], out8[8000], in8[8000], out48[48000];
	int q, err;
	unsigned i;

	printf("\n# speexdsp: 20 ms 48k->8k + 8k->48k; quality = alias of "
	       "a 5 kHz tone into 8 kHz,\n# pass-band error at 3 kHz "
	       "(dB), image of a 1 kHz tone at 7 kHz after 8k->48k\n");
	printf("quality  us_per_20ms  alias_dB  3k_err_dB  image_dB\n");
	for (q = 0; q <= 10; q++) {
		SpeexResamplerState *dn = speex_resampler_init(1, 48000, 8000,
							      q, &err);
		SpeexResamplerState *up = speex_resampler_init(1, 8000, 48000,
							      q, &err);
		double a, cost = 0, alias, pb, img;
		spx_uint32_t il, ol;

		for (i = 0; i < 48000; i++)
			in48[i] = (int16_t)(8000 * sin(2 * M_PI * 5000 * i /
						       48000.0) +
					    8000 * sin(2 * M_PI * 3000 * i /
						       48000.0));
		for (i = 0; i < 8000; i++)
			in8[i] = (int16_t)(16000 * sin(2 * M_PI * 1000 * i /
						       8000.0));
		a = cpu_s();
		for (i = 0; i < frames; i++) {
			il = 960;
			ol = 160;
			speex_resampler_process_int(dn, 0,
						    in48 + (i % 50) * 960,
						    &il, out8 + (i % 50) * 160,
						    &ol);
			il = 160;
			ol = 960;
			speex_resampler_process_int(up, 0,
						    in8 + (i % 50) * 160, &il,
						    out48 + (i % 50) * 960,
						    &ol);
		}
		cost = (cpu_s() - a) * 1e6 / frames;
		/* 5 kHz folds to 3 kHz at 8 kHz; measured as the 3 kHz
		 * excess over the wanted 3 kHz tone's amplitude */
		speex_resampler_reset_mem(dn);
		il = 48000;
		ol = 8000;
		speex_resampler_process_int(dn, 0, in48, &il, out8, &ol);
		pb = 20 * log10(g_amp(out8 + 2000, 4000, 3000, 8000) /
				(8000 / 32768.0));
		for (i = 0; i < 48000; i++)
			in48[i] = (int16_t)(8000 * sin(2 * M_PI * 5000 * i /
						       48000.0));
		speex_resampler_reset_mem(dn);
		il = 48000;
		ol = 8000;
		speex_resampler_process_int(dn, 0, in48, &il, out8, &ol);
		alias = 20 * log10(g_amp(out8 + 2000, 4000, 3000, 8000) /
				   (8000 / 32768.0) + 1e-9);
		speex_resampler_reset_mem(up);
		il = 8000;
		ol = 48000;
		speex_resampler_process_int(up, 0, in8, &il, out48, &ol);
		img = 20 * log10(g_amp(out48 + 12000, 24000, 7000, 48000) /
				 (16000 / 32768.0) + 1e-9);
		printf("%7d %12.1f %9.1f %10.2f %9.1f\n", q, cost, alias, pb,
		       img);
		speex_resampler_destroy(dn);
		speex_resampler_destroy(up);
	}
}

static void usage(void)
{
	fprintf(stderr, "usage: mixbench [-q] [-E] [-n TICKS] [-c COMPLEXITY] "
		"[-s SCENARIO]...\n");
}

int main(int argc, char **argv)
{
	const char *want[16];
	unsigned nwant = 0, ticks = 500, i;
	bool quick = false;
	int ch;

	while ((ch = getopt(argc, argv, "qEn:c:s:h")) != -1) {
		switch (ch) {
		case 'q':
			quick = true;
			break;
		case 'E':
			mix_opt_opus_vad = false;
			break;
		case 'n':
			ticks = (unsigned)strtoul(optarg, NULL, 10);
			break;
		case 'c':
			complexity = (int)strtol(optarg, NULL, 10);
			break;
		case 's':
			if (nwant < 16)
				want[nwant++] = optarg;
			break;
		default:
			usage();
			return 2;
		}
	}
	if (quick)
		ticks = 100;
	if (!ticks)
		ticks = 1;
	printf("# mixbench: CPU time per 20 ms tick (mix_put for every leg "
	       "+ mix_tick), Opus complexity %d\n", complexity);
	printf("scenario          legs   ticks   us/tick  us/leg  dec/t"
	       "   enc/t  %%core\n");
	for (i = 0; i < sizeof(scens) / sizeof(scens[0]); i++) {
		bool w = !nwant;
		unsigned k;

		for (k = 0; k < nwant; k++)
			w |= !strcmp(want[k], scens[i].name);
		if (w && run_scen(&scens[i], ticks))
			return 1;
	}
	for (i = 0; i < 3; i++) {
		static const char *const nms[] = {"tc-8k", "tc-16k", "tc-48k"};
		static const unsigned rates[] = {8000, 16000, 48000};
		bool w = !nwant;
		unsigned k;

		for (k = 0; k < nwant; k++)
			w |= !strcmp(want[k], nms[i]);
		if (w && run_tc(nms[i], rates[i], ticks * 4))
			return 1;
	}
	for (i = 0; i < 2; i++) {
		const char *nm = i ? "resampler" : "complexity";
		bool w = !nwant;
		unsigned k;

		for (k = 0; k < nwant; k++)
			w |= !strcmp(want[k], nm);
		if (!w)
			continue;
		if (i)
			sweep_resampler(quick ? 200 : 2000);
		else
			sweep_complexity(quick ? 50 : 500);
	}
	return 0;
}
