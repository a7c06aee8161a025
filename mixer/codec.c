/**
 * @file codec.c  Codec wrappers: Opus, G.711, G.722, SpanDSP PLC, resampling
 *
 * Decoders deliver and encoders take audio at the conference rate.  Opus
 * runs natively at that rate; G.711 (8 kHz) and G.722 (16 kHz audio) go
 * through a speexdsp resampler when the rates differ.  Everything is
 * allocated in the *_init functions; decode/encode/conceal allocate nothing.
 */

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <opus/opus.h>
#include <speex/speex_resampler.h>
#include <spandsp/telephony.h>
#include <spandsp/bit_operations.h>
#include <spandsp/g711.h>
#include <spandsp/g722.h>
#include <spandsp/plc.h>
#include <spandsp/private/g722.h>
#include "mixer/mix_int.h"

/*
 * speexdsp resampler quality.  Chosen by measurement (bench/mixbench -R,
 * docs/mixer.md): quality 3 keeps aliasing and passband ripple well below
 * G.711's own quantisation noise at about a third of the cost of 5.
 */
int mix_resampler_quality = 3;

/* G.711 through lookup tables built from SpanDSP's reference functions.
 * A-law ignores the low 3 bits, so its table is indexed by the top 14;
 * SpanDSP's mu-law rounds negative values on full 16-bit input, so its
 * table covers every value (64 KiB). */
static int16_t ulaw_dec[256], alaw_dec[256];
static uint8_t ulaw_enc[65536], alaw_enc[16384];
static pthread_once_t g711_once = PTHREAD_ONCE_INIT;

static void g711_build(void)
{
	int i;

	for (i = 0; i < 256; i++) {
		ulaw_dec[i] = ulaw_to_linear((uint8_t)i);
		alaw_dec[i] = alaw_to_linear((uint8_t)i);
	}
	for (i = 0; i < 65536; i++)
		ulaw_enc[i] = linear_to_ulaw((int16_t)(uint16_t)i);
	for (i = 0; i < 16384; i++)
		alaw_enc[i] = linear_to_alaw((int16_t)(uint16_t)(i << 2));
}

void mix_g711_tables(void)
{
	pthread_once(&g711_once, g711_build);
}

int mix_codec_init(void)
{
	mix_g711_tables();
	return 0;
}

unsigned mix_codec_default_rate(enum mix_codec codec)
{
	switch (codec) {
	case MIX_CODEC_PCMU:
	case MIX_CODEC_PCMA:
		return 8000;
	case MIX_CODEC_G722:
		return 16000;
	default:
		return 0;
	}
}

static int rs_alloc(struct SpeexResamplerState_ **rsp, unsigned in,
		    unsigned out)
{
	int err = 0;

	*rsp = NULL;
	if (in == out)
		return 0;
	*rsp = speex_resampler_init(1, in, out, mix_resampler_quality, &err);
	if (!*rsp || err)
		return ENOMEM;
	return 0;
}

static unsigned rs_run(struct SpeexResamplerState_ *rs, const int16_t *in,
		       unsigned nin, int16_t *out, unsigned nout)
{
	spx_uint32_t il = nin, ol = nout;

	speex_resampler_process_int(rs, 0, in, &il, out, &ol);
	/* a short output (filter start-up) is padded, never left unset */
	if (ol < nout)
		memset(out + ol, 0, (nout - ol) * sizeof(*out));
	return nout;
}

/* --- decoder --- */

int mix_dec_init(struct mix_dec *d, enum mix_codec codec, unsigned rate,
		 unsigned crate)
{
	int err = 0;

	memset(d, 0, sizeof(*d));
	d->codec = codec;
	d->rate = rate;
	d->crate = codec == MIX_CODEC_OPUS ? rate : crate;
	mix_g711_tables();
	switch (codec) {
	case MIX_CODEC_OPUS:
		d->opus = opus_decoder_create((opus_int32)rate, 1, &err);
		if (!d->opus || err != OPUS_OK)
			return ENOMEM;
		return 0;
	case MIX_CODEC_G722:
		d->g722 = g722_decode_init(NULL, 64000, 0);
		if (!d->g722)
			return ENOMEM;
		break;
	case MIX_CODEC_PCMU:
	case MIX_CODEC_PCMA:
		break;
	default:
		return EINVAL;
	}
	d->plc = plc_init(NULL);
	if (!d->plc)
		return ENOMEM;
	return rs_alloc(&d->rs, d->crate, rate);
}

void mix_dec_close(struct mix_dec *d)
{
	if (d->opus)
		opus_decoder_destroy(d->opus);
	if (d->g722)
		g722_decode_free(d->g722);
	if (d->plc)
		plc_free(d->plc);
	if (d->rs)
		speex_resampler_destroy(d->rs);
	memset(d, 0, sizeof(*d));
}

/* Reset after frames were skipped: the next decoded frame fades in. */
void mix_dec_reset(struct mix_dec *d)
{
	if (d->opus)
		opus_decoder_ctl(d->opus, OPUS_RESET_STATE);
	if (d->g722)
		g722_decode_init(d->g722, 64000, 0);
	if (d->plc)
		plc_init(d->plc);
	if (d->rs)
		speex_resampler_reset_mem(d->rs);
	d->fresh = true;
}

static void fade_in(struct mix_dec *d, int16_t *pcm, unsigned n)
{
	unsigned i, len = d->rate / 400; /* 2.5 ms */

	if (!d->fresh)
		return;
	d->fresh = false;
	if (len > n)
		len = n;
	for (i = 0; i < len; i++)
		pcm[i] = (int16_t)((int32_t)pcm[i] * (int32_t)i /
				   (int32_t)len);
}

/* codec-rate samples -> conference rate into out */
static unsigned dec_out(struct mix_dec *d, unsigned ncodec, int16_t *out)
{
	unsigned n = (unsigned)((uint64_t)ncodec * d->rate / d->crate);

	if (d->rs)
		rs_run(d->rs, d->tmp, ncodec, out, n);
	else if (d->crate == d->rate)
		memcpy(out, d->tmp, n * sizeof(*out));
	else /* setup failed half-way: silence, never a short read */
		memset(out, 0, n * sizeof(*out));
	return n;
}

/**
 * Decode one payload.
 *
 * @param out  receives the audio at the conference rate
 * @param max  capacity of out in samples
 * @param np   number of samples written
 */
int mix_dec_decode(struct mix_dec *d, const uint8_t *p, size_t len,
		   int16_t *out, unsigned max, unsigned *np)
{
	const int16_t *tab;
	unsigned i, nc;
	int n;

	switch (d->codec) {
	case MIX_CODEC_OPUS:
		if (!d->opus)
			return EINVAL;
		n = opus_decode(d->opus, p, (opus_int32)len, out, (int)max, 0);
		if (n < 0)
			return EBADMSG;
		*np = (unsigned)n;
		fade_in(d, out, *np);
		return 0;
	case MIX_CODEC_PCMU:
	case MIX_CODEC_PCMA:
		tab = d->codec == MIX_CODEC_PCMU ? ulaw_dec : alaw_dec;
		if (len > MIX_CODEC_PCM_MAX ||
		    (uint64_t)len * d->rate / d->crate > max)
			return EMSGSIZE;
		for (i = 0; i < len; i++)
			d->tmp[i] = tab[p[i]];
		nc = (unsigned)len;
		break;
	case MIX_CODEC_G722:
		if (!d->g722)
			return EINVAL;
		if (len * 2 > MIX_CODEC_PCM_MAX ||
		    (uint64_t)len * 2 * d->rate / d->crate > max)
			return EMSGSIZE;
		n = g722_decode(d->g722, d->tmp, p, (int)len);
		if (n < 0)
			return EBADMSG;
		nc = (unsigned)n;
		break;
	default:
		return EINVAL;
	}
	if (d->plc)
		plc_rx(d->plc, d->tmp, (int)nc);
	*np = dec_out(d, nc, out);
	fade_in(d, out, *np);
	return 0;
}

/** Decode the in-band FEC of payload p for the n samples before it */
int mix_dec_fec(struct mix_dec *d, const uint8_t *p, size_t len,
		int16_t *out, unsigned n)
{
	int r;

	if (d->codec != MIX_CODEC_OPUS || !d->opus)
		return ENOTSUP;
	r = opus_decode(d->opus, p, (opus_int32)len, out, (int)n, 1);
	if (r != (int)n)
		return EBADMSG;
	fade_in(d, out, n);
	return 0;
}

/*
 * SpanDSP 0.0.6 rotates its PLC history with an overlapping memcpy() at
 * the start of each concealment (undefined behaviour, reported by ASan).
 * Do the same rotation safely first; SpanDSP then finds nothing to do.
 */
static void plc_normalise(plc_state_t *s)
{
	int16_t tmp[PLC_HISTORY_LEN];
	int p = s->buf_ptr;

	if (s->missing_samples || p <= 0 || p >= PLC_HISTORY_LEN)
		return;
	memcpy(tmp, s->history + p, (size_t)(PLC_HISTORY_LEN - p) *
	       sizeof(int16_t));
	memcpy(tmp + PLC_HISTORY_LEN - p, s->history, (size_t)p *
	       sizeof(int16_t));
	memcpy(s->history, tmp, sizeof(tmp));
	s->buf_ptr = 0;
}

/** Conceal n samples (conference rate; Opus: a multiple of 2.5 ms) */
void mix_dec_conceal(struct mix_dec *d, int16_t *out, unsigned n)
{
	unsigned nc;

	if (d->codec == MIX_CODEC_OPUS) {
		if (!d->opus ||
		    opus_decode(d->opus, NULL, 0, out, (int)n, 0) != (int)n)
			memset(out, 0, n * sizeof(*out));
		return;
	}
	nc = (unsigned)((uint64_t)n * d->crate / d->rate);
	if (nc > MIX_CODEC_PCM_MAX * 2)
		nc = MIX_CODEC_PCM_MAX * 2;
	if (!d->plc) {
		memset(out, 0, n * sizeof(*out));
		return;
	}
	plc_normalise(d->plc);
	plc_fillin(d->plc, d->tmp, (int)nc);
	dec_out(d, nc, out);
}

/** Duration of a payload in RTP clock units */
int mix_pkt_duration(enum mix_codec codec, const uint8_t *p, size_t len,
		     unsigned crate, unsigned *clkp)
{
	int n;

	(void)crate;
	if (!len)
		return EBADMSG;
	switch (codec) {
	case MIX_CODEC_OPUS:
		n = opus_packet_get_nb_samples(p, (opus_int32)len, 48000);
		if (n <= 0 || n > 5760)
			return EBADMSG;
		*clkp = (unsigned)n;
		return 0;
	case MIX_CODEC_PCMU:
	case MIX_CODEC_PCMA:
	case MIX_CODEC_G722:
		/* one byte per 8 kHz clock tick (G.722: two 16 kHz samples) */
		if (len > 480)
			return EMSGSIZE;
		*clkp = (unsigned)len;
		return 0;
	default:
		return EINVAL;
	}
}

/** Whether an Opus payload may carry LBRR (SILK or hybrid mode) */
bool mix_pkt_has_fec(enum mix_codec codec, const uint8_t *p, size_t len)
{
	if (codec != MIX_CODEC_OPUS || len < 2)
		return false;
	return (p[0] >> 3) < 16;
}

/*
 * The sender's voice activity flags (RFC 6716 4.2.3): a SILK or hybrid
 * Opus frame opens, in its range-coded bit stream, with one VAD flag per
 * SILK frame (1 for 10 and 20 ms, 2 for 40, 3 for 60) and the LBRR flag,
 * per channel (side after mid in stereo), each a bit of probability 1/2.
 * Reading them takes the range decoder's first steps (RFC 6716 4.1) on
 * a few bytes; nothing is decoded.
 */
struct vad_rd {
	const uint8_t *p;
	size_t len, pos;
	uint32_t rng, val;
	unsigned rem;
};

static unsigned rd_byte(struct vad_rd *d)
{
	return d->pos < d->len ? d->p[d->pos++] : 0;
}

static void rd_norm(struct vad_rd *d)
{
	while (d->rng <= (1u << 23)) {
		unsigned sym = d->rem;

		d->rng <<= 8;
		d->rem = rd_byte(d);
		sym = ((sym << 8) | d->rem) >> 1;
		d->val = ((d->val << 8) + (255 & ~sym)) & 0x7fffffffu;
	}
}

static bool rd_bit(struct vad_rd *d)
{
	uint32_t s = d->rng >> 1;
	bool bit = d->val < s;

	if (!bit)
		d->val -= s;
	d->rng = bit ? s : d->rng - s;
	rd_norm(d);
	return bit;
}

static int frame_vad(const uint8_t *f, size_t len, unsigned nsilk,
		     unsigned chans)
{
	struct vad_rd d = { .p = f, .len = len, .rng = 128 };
	unsigned c, i;
	bool any = false;

	if (!len)
		return 0;  /* an empty frame is a DTX gap: nothing to play */
	d.rem = rd_byte(&d);
	d.val = 127 - (d.rem >> 1);
	rd_norm(&d);
	for (c = 0; c < chans; c++) {
		for (i = 0; i < nsilk; i++)
			any |= rd_bit(&d);
		(void)rd_bit(&d); /* LBRR flag */
	}
	return any;
}

/**
 * Voice activity of an Opus packet, from the flags its encoder set.
 *
 * @return 1 if any frame carries speech, 0 if none does, -1 if the
 *         packet does not say (CELT-only mode) or is malformed
 */
int mix_opus_vad(const uint8_t *p, size_t len)
{
	const unsigned char *frames[48];
	opus_int16 size[48];
	unsigned char toc;
	unsigned cfg, nsilk, chans;
	int n, i, vad = 0;

	if (!p || !len || len > INT32_MAX)
		return -1;
	n = opus_packet_parse(p, (opus_int32)len, &toc, frames, size, NULL);
	if (n <= 0)
		return -1;
	cfg = toc >> 3;
	if (cfg >= 16)
		return -1;
	/* SILK-only 0..11: 10/20/40/60 ms; hybrid 12..15: 10/20 ms */
	nsilk = cfg < 12 && (cfg & 3) >= 2 ? (cfg & 3) : 1;
	chans = toc & 4 ? 2 : 1;
	for (i = 0; i < n && !vad; i++)
		vad = frame_vad(frames[i], (size_t)size[i], nsilk, chans);
	return vad;
}

/* --- encoder --- */

static int opus_setup(struct mix_enc *e)
{
	const struct mix_opus_cfg *o = &e->ocfg;
	OpusEncoder *st = e->opus;
	int r = 0;

	r |= opus_encoder_ctl(st, OPUS_SET_COMPLEXITY(o->complexity));
	r |= opus_encoder_ctl(st, OPUS_SET_BITRATE(o->bitrate > 0 ?
						   o->bitrate : OPUS_AUTO));
	r |= opus_encoder_ctl(st, OPUS_SET_INBAND_FEC(o->fec ? 1 : 0));
	r |= opus_encoder_ctl(st, OPUS_SET_PACKET_LOSS_PERC(o->fec ? 10 : 0));
	r |= opus_encoder_ctl(st, OPUS_SET_DTX(o->dtx ? 1 : 0));
	r |= opus_encoder_ctl(st, OPUS_SET_SIGNAL(OPUS_SIGNAL_VOICE));
	return r == OPUS_OK ? 0 : EINVAL;
}

int mix_enc_init(struct mix_enc *e, enum mix_codec codec, unsigned rate,
		 unsigned crate, unsigned ptime_ms,
		 const struct mix_opus_cfg *ocfg)
{
	int err;

	memset(e, 0, sizeof(*e));
	e->codec = codec;
	e->rate = rate;
	e->crate = codec == MIX_CODEC_OPUS ? rate : crate;
	e->frame = rate * ptime_ms / 1000;
	if (ocfg)
		e->ocfg = *ocfg;
	if (e->frame > MIX_PKT_MAX || (uint64_t)e->crate * ptime_ms / 1000
	    > MIX_CODEC_PCM_MAX * 2)
		return EINVAL;
	mix_g711_tables();
	switch (codec) {
	case MIX_CODEC_OPUS:
		if (ptime_ms != 10 && ptime_ms != 20 && ptime_ms != 40 &&
		    ptime_ms != 60)
			return EINVAL;
		if (e->ocfg.complexity < 0 || e->ocfg.complexity > 10)
			return EINVAL;
		e->opus_size = opus_encoder_get_size(1);
		e->opus = calloc(1, (size_t)e->opus_size);
		if (!e->opus)
			return ENOMEM;
		err = opus_encoder_init(e->opus, (opus_int32)rate, 1,
					OPUS_APPLICATION_VOIP);
		if (err != OPUS_OK)
			return EINVAL;
		return opus_setup(e);
	case MIX_CODEC_G722:
		e->g722 = g722_encode_init(NULL, 64000, 0);
		if (!e->g722)
			return ENOMEM;
		e->g722_size = sizeof(g722_encode_state_t);
		break;
	case MIX_CODEC_PCMU:
	case MIX_CODEC_PCMA:
		break;
	default:
		return EINVAL;
	}
	return rs_alloc(&e->rs, rate, e->crate);
}

void mix_enc_close(struct mix_enc *e)
{
	free(e->opus);
	if (e->g722)
		g722_encode_free(e->g722);
	if (e->rs)
		speex_resampler_destroy(e->rs);
	memset(e, 0, sizeof(*e));
}

/** Encode one packet of e->frame samples (conference rate) */
int mix_enc_encode(struct mix_enc *e, const int16_t *pcm, uint8_t *out,
		   size_t cap, size_t *lenp)
{
	const int16_t *src = pcm;
	unsigned i, nc;
	int n;

	if (e->codec == MIX_CODEC_OPUS) {
		if (!e->opus)
			return EINVAL;
		n = opus_encode(e->opus, pcm, (int)e->frame, out,
				(opus_int32)cap);
		if (n < 0)
			return EPROTO;
		*lenp = (size_t)n;
		return 0;
	}
	nc = (unsigned)((uint64_t)e->frame * e->crate / e->rate);
	if (e->rs) {
		rs_run(e->rs, pcm, e->frame, e->tmp, nc);
		src = e->tmp;
	}
	if (e->codec == MIX_CODEC_G722) {
		if (!e->g722 || cap < nc / 2)
			return EMSGSIZE;
		n = g722_encode(e->g722, out, src, (int)nc);
		if (n < 0)
			return EPROTO;
		*lenp = (size_t)n;
		return 0;
	}
	if (cap < nc)
		return EMSGSIZE;
	if (e->codec == MIX_CODEC_PCMU) {
		for (i = 0; i < nc; i++)
			out[i] = ulaw_enc[(uint16_t)src[i]];
	}
	else {
		for (i = 0; i < nc; i++)
			out[i] = alaw_enc[(uint16_t)src[i] >> 2];
	}
	*lenp = nc;
	return 0;
}

/**
 * Make dst continue exactly where src is (same settings): the codec state
 * is copied (libopus and SpanDSP G.722 states are flat memory), and the
 * resampler is primed with the last input src consumed (hist).
 */
int mix_enc_clone(struct mix_enc *dst, const struct mix_enc *src,
		  const int16_t *hist, unsigned nhist)
{
	if (dst->codec != src->codec || dst->rate != src->rate ||
	    dst->frame != src->frame)
		return EINVAL;
	if (src->opus)
		memcpy(dst->opus, src->opus, (size_t)src->opus_size);
	if (src->g722)
		memcpy(dst->g722, src->g722, src->g722_size);
	if (dst->rs) {
		speex_resampler_reset_mem(dst->rs);
		if (hist && nhist) {
			unsigned nc = (unsigned)((uint64_t)nhist * dst->crate /
						 dst->rate);

			if (nc > MIX_CODEC_PCM_MAX * 2)
				return EINVAL;
			rs_run(dst->rs, hist, nhist, dst->tmp, nc);
		}
	}
	return 0;
}
