/** @file sim.c  Mixer test harness: participants, fake clock, Goertzel */

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <opus/opus.h>
#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>
#include <spandsp/g722.h>
#include "sim.h"

static void rx_append(struct party *p, const int16_t *x, size_t n)
{
	if (p->rx_n + n > p->rx_cap) {
		size_t cap = (p->rx_cap + n) * 2;
		int16_t *r = realloc(p->rx, cap * sizeof(*r));

		if (!r)
			abort();
		p->rx = r;
		p->rx_cap = cap;
	}
	memcpy(p->rx + p->rx_n, x, n * sizeof(*x));
	p->rx_n += n;
}

void party_rx_clear(struct party *p)
{
	p->rx_n = 0;
}

static void out_h(struct mix_leg *leg, const uint8_t *payload, size_t len,
		  uint32_t ts_inc, bool marker, void *arg)
{
	struct sim *s = arg;
	struct party *p = mix_leg_arg(leg);
	int16_t pcm[5760];
	uint32_t expect = p->lcfg.ptime_ms * p->clock / 1000;
	int n = 0, i;

	s->packets_out++;
	if (p->rx_packets && ts_inc != expect)
		s->bad_ts++;
	p->rx_packets++;
	p->rx_markers += marker;
	p->last_ts_inc = ts_inc;
	memcpy(p->last_payload, payload, len);
	p->last_len = len;
	switch (p->lcfg.codec) {
	case MIX_CODEC_OPUS:
		n = opus_decode(p->odec, payload, (opus_int32)len, pcm, 5760,
				0);
		break;
	case MIX_CODEC_G722:
		n = g722_decode(p->g722d, pcm, payload, (int)len);
		break;
	case MIX_CODEC_PCMU:
		for (i = 0; i < (int)len; i++)
			pcm[i] = ulaw_to_linear(payload[i]);
		n = (int)len;
		break;
	case MIX_CODEC_PCMA:
		for (i = 0; i < (int)len; i++)
			pcm[i] = alaw_to_linear(payload[i]);
		n = (int)len;
		break;
	default:
		break;
	}
	if (n > 0)
		rx_append(p, pcm, (size_t)n);
}

void sim_init(struct sim *s, const struct mix_conf_cfg *cfg)
{
	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->now_us = 1000000;
	s->rng = 0x9e3779b97f4a7c15ULL;
	if (mix_conf_alloc(&s->conf, cfg, out_h, s))
		abort();
}

void sim_free(struct sim *s)
{
	unsigned i;

	s->conf = mix_conf_free(s->conf);
	for (i = 0; i < s->nparty; i++) {
		struct party *p = s->p[i];

		if (p->oenc)
			opus_encoder_destroy(p->oenc);
		if (p->odec)
			opus_decoder_destroy(p->odec);
		if (p->g722e)
			g722_encode_free(p->g722e);
		if (p->g722d)
			g722_decode_free(p->g722d);
		free(p->rx);
		free(p);
	}
	s->nparty = 0;
}

double sim_rand(struct sim *s)
{
	/* xorshift64*: deterministic across runs */
	s->rng ^= s->rng >> 12;
	s->rng ^= s->rng << 25;
	s->rng ^= s->rng >> 27;
	return (double)((s->rng * 2685821657736338717ULL) >> 11) /
		9007199254740992.0;
}

static void gen(struct party *p, int16_t *x, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		double t = (double)(p->nsent + i) / p->arate;
		double v = p->on ? p->amp * sin(2 * M_PI * p->freq * t) : 0;

		if (p->noise) {
			p->nstate = p->nstate * 1664525u + 1013904223u;
			v = p->on ? p->amp * ((double)(p->nstate >> 8) /
					      8388608.0 - 1.0) : 0;
		}

		x[i] = (int16_t)lrint(v * 32767.0);
	}
	p->nsent += n;
}

struct party *sim_add_cfg(struct sim *s, const struct mix_leg_cfg *lcfg,
			  double freq, double amp, bool levels)
{
	struct party *p = calloc(1, sizeof(*p));
	int err = 0;

	if (!p)
		abort();
	p->sim = s;
	p->lcfg = *lcfg;
	if (!p->lcfg.ptime_ms)
		p->lcfg.ptime_ms = s->cfg.ptime_ms;
	p->freq = freq;
	p->amp = amp;
	p->on = amp > 0;
	p->send_levels = levels;
	p->clock = mix_codec_clock(lcfg->codec);
	p->ts = 1000u * (s->nparty + 1);
	p->seq = (uint16_t)(100 * s->nparty);
	switch (lcfg->codec) {
	case MIX_CODEC_OPUS:
		/* an automatic-rate transcoder's Opus party: 48 kHz, as
		 * WebRTC sends */
		p->arate = s->cfg.rate ? s->cfg.rate : 48000;
		p->oenc = opus_encoder_create((opus_int32)p->arate, 1,
					      OPUS_APPLICATION_VOIP, &err);
		p->odec = opus_decoder_create((opus_int32)p->arate, 1, &err);
		if (err)
			abort();
		opus_encoder_ctl(p->oenc, OPUS_SET_COMPLEXITY(5));
		opus_encoder_ctl(p->oenc, OPUS_SET_INBAND_FEC(1));
		opus_encoder_ctl(p->oenc, OPUS_SET_PACKET_LOSS_PERC(10));
		break;
	case MIX_CODEC_G722:
		p->arate = 16000;
		p->g722e = g722_encode_init(NULL, 64000, 0);
		p->g722d = g722_decode_init(NULL, 64000, 0);
		break;
	default:
		p->arate = 8000;
		break;
	}
	if (mix_leg_add(s->conf, &p->leg, &p->lcfg, p))
		abort();
	s->p[s->nparty++] = p;
	return p;
}

struct party *sim_add(struct sim *s, enum mix_codec codec, double freq,
		      double amp, bool levels)
{
	struct mix_leg_cfg lc;

	mix_leg_cfg_default(&lc, codec);
	return sim_add_cfg(s, &lc, freq, amp, levels);
}

static size_t encode(struct party *p, const int16_t *x, unsigned n,
		     uint8_t *buf)
{
	unsigned i;
	int r;

	switch (p->lcfg.codec) {
	case MIX_CODEC_OPUS:
		r = opus_encode(p->oenc, x, (int)n, buf, MIX_PAYLOAD_MAX);
		return r > 0 ? (size_t)r : 0;
	case MIX_CODEC_G722:
		return (size_t)g722_encode(p->g722e, buf, x, (int)n);
	case MIX_CODEC_PCMU:
		for (i = 0; i < n; i++)
			buf[i] = linear_to_ulaw(x[i]);
		return n;
	case MIX_CODEC_PCMA:
		for (i = 0; i < n; i++)
			buf[i] = linear_to_alaw(x[i]);
		return n;
	default:
		return 0;
	}
}

size_t sim_make_packet(struct party *p, uint8_t *buf, int *levelp)
{
	int16_t x[2880];
	unsigned n = p->arate * p->lcfg.ptime_ms / 1000, i;
	double e = 0;
	size_t len;

	gen(p, x, n);
	for (i = 0; i < n; i++)
		e += (double)x[i] * x[i];
	e = e / n / (32768.0 * 32768.0);
	*levelp = -1;
	if (p->send_levels) {
		double l = e > 0 ? -10 * log10(e) : 127;

		*levelp = l > 127 ? 127 : (int)lrint(l);
	}
	if (!p->on && p->silent_payload && p->silence_len) {
		memcpy(buf, p->silence, p->silence_len);
		return p->silence_len;
	}
	len = encode(p, x, n, buf);
	if (!p->on && p->silent_payload && len <= sizeof(p->silence)) {
		memcpy(p->silence, buf, len);
		p->silence_len = len;
	}
	return len;
}

void sim_step(struct sim *s)
{
	unsigned i, tick_us = s->cfg.ptime_ms * 1000;

	for (i = 0; i < s->nparty; i++) {
		struct party *p = s->p[i];
		uint8_t buf[MIX_PAYLOAD_MAX];
		unsigned pt = p->lcfg.ptime_ms * 1000;
		size_t len;
		int level;

		/* send when a whole ptime of audio exists on p's clock */
		if ((s->now_us / tick_us) % (pt / tick_us))
			continue;
		if (!p->lcfg.recv)
			continue;
		len = sim_make_packet(p, buf, &level);
		mix_put(p->leg, buf, len, p->seq++, p->ts, false, level,
			false, s->now_us);
		p->ts += p->lcfg.ptime_ms * p->clock / 1000;
	}
	mix_tick(s->conf, s->now_us);
	s->now_us += tick_us;
}

void sim_run(struct sim *s, unsigned ticks)
{
	while (ticks--)
		sim_step(s);
}

/* amplitude (full scale 1.0) of a tone at freq in x */
double goertzel_amp(const int16_t *x, size_t n, double freq, double rate)
{
	double w = 2 * M_PI * freq / rate, c = 2 * cos(w);
	double s0, s1 = 0, s2 = 0, re, im;
	size_t i;

	for (i = 0; i < n; i++) {
		s0 = x[i] / 32768.0 + c * s1 - s2;
		s2 = s1;
		s1 = s0;
	}
	re = s1 - s2 * cos(w);
	im = s2 * sin(w);
	return 2 * sqrt(re * re + im * im) / (double)n;
}

double db(double x)
{
	return x > 0 ? 20 * log10(x) : -200;
}

/* level in dB of freq in p's received audio [from, from+n) relative to
 * full scale amplitude 1.0 */
double tone_db(const struct party *p, size_t from, size_t n, double freq)
{
	if (from + n > p->rx_n)
		return -300;
	return db(goertzel_amp(p->rx + from, n, freq, p->arate));
}
