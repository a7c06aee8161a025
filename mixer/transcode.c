/**
 * @file transcode.c  Two-leg transcoding, per packet, off the tick
 *
 * Each packet is decoded and fed to the other leg's encoder at once; a
 * packet leaves as soon as the other leg's ptime worth of audio is there.
 * So the only delay added is the encoder's look-ahead plus, when the two
 * ptimes differ, the repacketising.  A gap in timestamps is concealed
 * when the next packet shows it (Opus FEC for the last lost frame when
 * the packet carries it, PLC for the rest); a gap longer than
 * CONC_MAX_MS is a pause (DTX): the decoder restarts and the other leg's
 * timestamps jump with a marker.  Same codec and settings on both legs:
 * payloads pass untouched.
 */

#include <errno.h>
#include <math.h>
#include <string.h>
#include "mixer/mix_conf.h"

#define CONC_MAX_MS 200

static bool ocfg_same(const struct mix_opus_cfg *a,
		      const struct mix_opus_cfg *b)
{
	return a->complexity == b->complexity && a->bitrate == b->bitrate &&
		a->fec == b->fec && a->dtx == b->dtx;
}

void mix_transcode_setup(struct mix_conf *c)
{
	struct mix_leg *a, *b;

	c->passthrough = false;
	if (c->nlegs != 2)
		return;
	a = c->legs[0];
	b = c->legs[1];
	c->passthrough = a->cfg.codec == b->cfg.codec &&
		a->crate == b->crate && a->cfg.ptime_ms == b->cfg.ptime_ms &&
		(a->cfg.codec != MIX_CODEC_OPUS ||
		 ocfg_same(&a->ocfg, &b->ocfg)) &&
		a->cfg.gain_in_db == 0 && a->cfg.gain_out_db == 0 &&
		b->cfg.gain_in_db == 0 && b->cfg.gain_out_db == 0;
}

/* pcm (conference rate) -> the other leg's stream, with gain g */
static void push_pcm(struct mix_conf *c, struct mix_leg *o,
		     const int16_t *pcm, unsigned n, float g)
{
	while (n) {
		unsigned k = n < MIX_FRAME_MAX ? n : MIX_FRAME_MAX, i;

		if (g == 1.0f) {
			for (i = 0; i < k; i++)
				c->tmp32[i] = pcm[i];
		}
		else {
			for (i = 0; i < k; i++)
				c->tmp32[i] = (int32_t)lrintf((float)pcm[i] *
							      g);
		}
		mix_stream_push(c, &o->own, c->tmp32, k, o);
		pcm += k;
		n -= k;
	}
}

static void conceal_gap(struct mix_leg *l, struct mix_leg *o,
			const uint8_t *p, size_t len, int64_t gap,
			unsigned dur, float g)
{
	struct mix_conf *c = l->conf;
	int64_t fec = 0;
	unsigned n;

	if (l->cfg.codec == MIX_CODEC_OPUS && gap >= dur &&
	    mix_pkt_has_fec(l->cfg.codec, p, len))
		fec = dur;
	gap -= fec;
	if (l->cfg.codec == MIX_CODEC_OPUS)
		gap -= gap % 120;
	while (gap > 0) {
		int64_t cl = gap;

		if (cl > (int64_t)l->clock / 50)
			cl = l->clock / 50;
		n = (unsigned)(cl * c->cfg.rate / l->clock);
		mix_dec_conceal(&l->dec, c->scratch, n);
		l->st.concealed++;
		c->st.concealments++;
		push_pcm(c, o, c->scratch, n, g);
		gap -= cl;
	}
	if (fec) {
		n = (unsigned)(fec * c->cfg.rate / l->clock);
		if (!mix_dec_fec(&l->dec, p, len, c->scratch, n)) {
			l->st.fec_used++;
			c->st.decodes++;
		}
		else {
			mix_dec_conceal(&l->dec, c->scratch, n);
			l->st.concealed++;
			c->st.concealments++;
		}
		push_pcm(c, o, c->scratch, n, g);
	}
}

/* a pause: finish the other leg's partial packet, jump its timestamps */
static void pause_gap(struct mix_leg *l, struct mix_leg *o, int64_t gap)
{
	struct mix_conf *c = l->conf;
	unsigned left = o->own.enc.frame - o->own.acc_n;

	if (o->own.acc_n) {
		memset(c->scratch, 0, left * sizeof(int16_t));
		push_pcm(c, o, c->scratch, left, 1.0f);
		gap -= (int64_t)left * l->clock / c->cfg.rate;
	}
	if (gap > 0)
		o->since += (uint64_t)gap * o->clock / l->clock;
	o->marker_next = true;
	mix_dec_reset(&l->dec);
}

static int64_t ts_extend(struct mix_leg *l, uint32_t ts)
{
	int64_t ext;

	if (!l->t_started) {
		l->t_last32 = ts;
		l->t_last_ext = (int64_t)ts + ((int64_t)1 << 32);
		l->t_expect = l->t_last_ext;
		return l->t_last_ext;
	}
	ext = l->t_last_ext + (int32_t)(ts - l->t_last32);
	if (ext > l->t_last_ext) {
		l->t_last_ext = ext;
		l->t_last32 = ts;
	}
	return ext;
}

static void passthrough(struct mix_leg *l, struct mix_leg *o,
			const uint8_t *p, size_t len, int64_t ext,
			bool marker)
{
	struct mix_conf *c = l->conf;
	uint32_t inc = o->sent_any ? (uint32_t)o->since : 0;

	c->outh(o, p, len, inc, marker || !o->sent_any || o->marker_next,
		c->arg);
	o->sent_any = true;
	o->marker_next = false;
	o->since = 0;
	(void)ext;
	l->st.passthrough++;
	o->st.packets_out++;
	c->st.passthrough++;
}

int mix_transcode_put(struct mix_leg *l, const uint8_t *payload,
		      size_t len, uint32_t rtp_ts, bool marker)
{
	struct mix_conf *c = l->conf;
	struct mix_leg *o;
	int64_t ext, gap;
	unsigned dur, n = 0;
	float g;
	int err;

	if (c->nlegs != 2)
		return 0;
	o = c->legs[l->idx ^ 1];
	err = mix_pkt_duration(l->cfg.codec, payload, len, l->crate, &dur);
	if (err)
		return err;
	ext = ts_extend(l, rtp_ts);
	gap = ext - l->t_expect;
	if (l->t_started && gap < 0) {
		/* late, reordered or duplicate: its time has passed */
		if (ext + (int64_t)l->clock * 2 < l->t_expect) {
			l->t_started = false; /* sender restart */
			ext = ts_extend(l, rtp_ts);
			gap = 0;
		}
		else {
			l->st.late++;
			return 0;
		}
	}
	l->t_started = true;
	l->t_expect = ext + dur;
	if (!o->cfg.send)
		return 0;
	if (c->passthrough) {
		o->since += (uint64_t)gap;
		passthrough(l, o, payload, len, ext, marker);
		o->since = dur;
		return 0;
	}
	g = l->gin * o->gout;
	c->cnt.enc = 0;
	if (gap > (int64_t)l->clock * CONC_MAX_MS / 1000)
		pause_gap(l, o, gap);
	else if (gap > 0)
		conceal_gap(l, o, payload, len, gap, dur, g);
	if (mix_dec_decode(&l->dec, payload, len, c->scratch, MIX_IN_DUR_MAX,
			   &n))
		return EBADMSG;
	l->st.decodes++;
	c->st.decodes++;
	push_pcm(c, o, c->scratch, n, g);
	o->st.encodes += c->cnt.enc;
	c->st.encodes += c->cnt.enc;
	return 0;
}
