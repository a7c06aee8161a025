/**
 * @file mixer.c  Conference and legs: setup, talker selection, N-1 mixing
 *
 * One tick (mix_tick):
 *   1. every receiving leg reports a level for this frame: RFC 6464 legs
 *      from the packet about to play (no decode); on inactive legs, Opus
 *      packets whose encoder's VAD flags say silence count as silent (no
 *      decode); the others are decoded and metered (energy VAD);
 *   2. the N loudest active legs are the talkers (hysteresis: hangover,
 *      a 6 dB margin and a minimum hold before a talker is replaced);
 *   3. talkers not decoded in 1 are decoded now; silent or muted legs are
 *      never decoded (their jitter buffers are drained, the decoder reset
 *      and faded in when they come back);
 *   4. int32 sum of the talkers; each talker's N-1 is the sum minus its
 *      own contribution, before any limiting;
 *   5. listeners share one limiter+encoder per distinct setting (group);
 *      talkers have their own.  A listener who starts talking continues
 *      from a copy of its group's encoder state, so its decoder sees one
 *      continuous stream; a talker who stops returns to the group at a
 *      packet boundary after a short hangover.
 */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "mixer/mix_conf.h"

#define VAD_ON_DBOV   -40.0f  /* frame level that makes a leg active  */
#define HANG_MS       400     /* activity hangover                    */
#define HOLD_MS       500     /* a talker is kept at least this long  */
#define SWAP_DB       6.0f    /* margin to replace a talker           */
#define CONC_MAX_MS   200     /* concealment fades to silence after   */
#define SILENT_LEVEL  127
#define PROBE_MS      400     /* an idle Opus leg is metered this often */

bool mix_opt_clone = true;
bool mix_opt_opus_vad = true;

static const char *codec_names[MIX_CODEC_COUNT] = {
	"opus", "PCMU", "PCMA", "G722"
};

const char *mix_codec_name(enum mix_codec codec)
{
	return (unsigned)codec < MIX_CODEC_COUNT ? codec_names[codec] : "?";
}

int mix_codec_parse(const char *name, enum mix_codec *codecp)
{
	unsigned i;

	if (!name || !codecp)
		return EINVAL;
	for (i = 0; i < MIX_CODEC_COUNT; i++) {
		if (!strcasecmp(name, codec_names[i])) {
			*codecp = (enum mix_codec)i;
			return 0;
		}
	}
	return ENOENT;
}

unsigned mix_codec_clock(enum mix_codec codec)
{
	return codec == MIX_CODEC_OPUS ? 48000 : 8000;
}

int mix_codec_static_pt(enum mix_codec codec)
{
	switch (codec) {
	case MIX_CODEC_PCMU:
		return 0;
	case MIX_CODEC_PCMA:
		return 8;
	case MIX_CODEC_G722:
		return 9;
	default:
		return -1;
	}
}

/*
 * Default Opus complexity 5: measured on this machine class (docs/
 * performance.md) it costs about half of complexity 10 per 20 ms frame,
 * and for speech at 24+ kbit/s the difference is hard to hear; the
 * encoder is the largest cost of a tick.
 */
void mix_conf_cfg_default(struct mix_conf_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->mode = MIX_MODE_MIX;
	cfg->rate = 48000;
	cfg->ptime_ms = 20;
	cfg->max_talkers = 3;
	cfg->opus.complexity = 5;
	cfg->opus.bitrate = 0;
	cfg->opus.fec = true;
	cfg->opus.dtx = false;
	cfg->jb_min_ms = 20;
	cfg->jb_max_ms = 200;
}

void mix_leg_cfg_default(struct mix_leg_cfg *cfg, enum mix_codec codec)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->codec = codec;
	cfg->rate = mix_codec_default_rate(codec);
	cfg->send = true;
	cfg->recv = true;
}

static float db2lin(float db)
{
	return powf(10.0f, db / 20.0f);
}

int mix_conf_alloc(struct mix_conf **cp, const struct mix_conf_cfg *cfg,
		   mix_out_h *outh, void *arg)
{
	struct mix_conf *c;

	if (!cp || !cfg || !outh)
		return EINVAL;
	if (cfg->rate != 8000 && cfg->rate != 16000 && cfg->rate != 24000 &&
	    cfg->rate != 48000 &&
	    !(cfg->rate == 0 && cfg->mode == MIX_MODE_TRANSCODE))
		return EINVAL;
	if (cfg->ptime_ms != 10 && cfg->ptime_ms != 20)
		return EINVAL;
	if (cfg->max_talkers < 1 || cfg->max_talkers > 16)
		return EINVAL;
	if (cfg->opus.complexity < 0 || cfg->opus.complexity > 10)
		return EINVAL;
	if (cfg->mode != MIX_MODE_MIX && cfg->mode != MIX_MODE_TRANSCODE)
		return EINVAL;
	mix_codec_init();
	c = calloc(1, sizeof(*c));
	if (!c)
		return ENOMEM;
	c->cfg = *cfg;
	if (!c->cfg.jb_min_ms)
		c->cfg.jb_min_ms = cfg->ptime_ms;
	if (c->cfg.jb_max_ms < c->cfg.jb_min_ms)
		c->cfg.jb_max_ms = c->cfg.jb_min_ms;
	c->outh = outh;
	c->arg = arg;
	if (!cfg->rate) {
		/* transcode, automatic: 48 kHz until both legs are known */
		c->rate_auto = true;
		c->cfg.rate = 48000;
	}
	c->frame = c->cfg.rate * cfg->ptime_ms / 1000;
	*cp = c;
	return 0;
}

struct mix_conf *mix_conf_free(struct mix_conf *c)
{
	if (!c)
		return NULL;
	while (c->nlegs)
		mix_leg_remove(c->legs[c->nlegs - 1]);
	free(c);
	return NULL;
}

/* --- groups (shared streams) --- */

static bool ocfg_eq(const struct mix_opus_cfg *a,
		    const struct mix_opus_cfg *b)
{
	return a->complexity == b->complexity && a->bitrate == b->bitrate &&
		a->fec == b->fec && a->dtx == b->dtx;
}

static void group_put(struct mix_conf *c, struct mix_group *g)
{
	struct mix_group **pp;

	if (!g || --g->refs)
		return;
	for (pp = &c->groups; *pp; pp = &(*pp)->next) {
		if (*pp == g) {
			*pp = g->next;
			break;
		}
	}
	mix_enc_close(&g->st.enc);
	free(g);
}

static int group_get(struct mix_conf *c, struct mix_leg *l,
		     struct mix_group **gp)
{
	struct mix_group *g;
	int err;

	for (g = c->groups; g; g = g->next) {
		if (g->codec == l->cfg.codec && g->crate == l->crate &&
		    g->ptime_ms == l->cfg.ptime_ms &&
		    g->gain_out_db == l->cfg.gain_out_db &&
		    (g->codec != MIX_CODEC_OPUS ||
		     ocfg_eq(&g->ocfg, &l->ocfg))) {
			g->refs++;
			*gp = g;
			return 0;
		}
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return ENOMEM;
	g->refs = 1;
	g->codec = l->cfg.codec;
	g->crate = l->crate;
	g->ptime_ms = l->cfg.ptime_ms;
	g->ocfg = l->ocfg;
	g->gain_out_db = l->cfg.gain_out_db;
	g->ticks = l->ticks;
	mix_lim_init(&g->st.lim);
	err = mix_enc_init(&g->st.enc, g->codec, c->cfg.rate, g->crate,
			   g->ptime_ms, &g->ocfg);
	if (err) {
		mix_enc_close(&g->st.enc);
		free(g);
		return err;
	}
	g->next = c->groups;
	c->groups = g;
	*gp = g;
	return 0;
}

/* --- legs --- */

static int leg_check_cfg(const struct mix_conf *c,
			 const struct mix_leg_cfg *cfg, unsigned *cratep,
			 unsigned *ptimep)
{
	unsigned crate = cfg->rate, ptime = cfg->ptime_ms;

	if ((unsigned)cfg->codec >= MIX_CODEC_COUNT)
		return EINVAL;
	if (cfg->codec == MIX_CODEC_OPUS) {
		crate = c->cfg.rate;
		if (cfg->opus_override && (cfg->opus.complexity < 0 ||
					   cfg->opus.complexity > 10))
			return EINVAL;
	}
	else if (!crate) {
		crate = mix_codec_default_rate(cfg->codec);
	}
	else if (crate != mix_codec_default_rate(cfg->codec)) {
		return ENOTSUP;
	}
	if (!ptime)
		ptime = c->cfg.ptime_ms;
	if (ptime < 10 || ptime > MIX_PTIME_MAX)
		return EINVAL;
	if (ptime % c->cfg.ptime_ms)
		return EINVAL;
	if (cfg->codec == MIX_CODEC_OPUS && ptime != 10 && ptime != 20 &&
	    ptime != 40 && ptime != 60)
		return EINVAL;
	if (!isfinite(cfg->gain_in_db) || !isfinite(cfg->gain_out_db) ||
	    fabsf(cfg->gain_in_db) > 40 || fabsf(cfg->gain_out_db) > 40)
		return EINVAL;
	*cratep = crate;
	*ptimep = ptime;
	return 0;
}

static void leg_input_restart(struct mix_leg *l)
{
	mix_jb_flush(&l->jb);
	l->fifo_n = 0;
	l->playing = false;
	l->need_reset = true;
	l->conc_run = 0;
	l->active = false;
	l->hang = 0;
	l->talker = false;
	l->flevel = l->slevel = -127.0f;
	l->cur_level = SILENT_LEVEL;
	l->t_started = false;
	l->vad_probe = 0;
}

/*
 * Transcode with rate 0: run at the lower of the two legs' audio rates
 * (an Opus leg counts as 48 kHz), but an Opus encoder at no less than
 * 16 kHz: Opus <-> G.722 runs at 16 kHz with no resampling, Opus <-> G.711
 * at 16 kHz (1.6x fewer instructions than 48 kHz).  Not 8 kHz: narrowband
 * SILK loses up to 7 dB of a pure tone between 350 and 480 Hz (the
 * call-progress tones) from A-law input, 2.7x cheaper as it is
 * (docs/mixer.md).  Done when the second leg is added, before any audio
 * flows between the two.
 */
#define TRANSCODE_OPUS_MIN_RATE 16000

static int transcode_rate(struct mix_conf *c)
{
	unsigned i, r = 48000;
	bool opus = false;
	int err = 0;

	if (!c->rate_auto || c->nlegs != 2)
		return 0;
	for (i = 0; i < 2; i++) {
		struct mix_leg *l = c->legs[i];

		if (l->cfg.codec == MIX_CODEC_OPUS)
			opus = true;
		else if (l->crate < r)
			r = l->crate;
	}
	if (opus && r < TRANSCODE_OPUS_MIN_RATE)
		r = TRANSCODE_OPUS_MIN_RATE;
	if (r == c->cfg.rate)
		return 0;
	c->cfg.rate = r;
	c->frame = r * c->cfg.ptime_ms / 1000;
	for (i = 0; i < 2 && !err; i++) {
		struct mix_leg *l = c->legs[i];

		if (l->cfg.codec == MIX_CODEC_OPUS)
			l->crate = l->cfg.rate = r;
		mix_dec_close(&l->dec);
		mix_enc_close(&l->own.enc);
		err = mix_dec_init(&l->dec, l->cfg.codec, r, l->crate);
		if (err)
			break;
		err = mix_enc_init(&l->own.enc, l->cfg.codec, r, l->crate,
				   l->cfg.ptime_ms, &l->ocfg);
	}
	return err;
}

int mix_leg_add(struct mix_conf *c, struct mix_leg **lp,
		const struct mix_leg_cfg *cfg, void *leg_arg)
{
	struct mix_leg *l;
	unsigned crate, ptime;
	int err;

	if (!c || !lp || !cfg)
		return EINVAL;
	if (c->nlegs >= MIX_LEGS_MAX)
		return E2BIG;
	if (c->cfg.mode == MIX_MODE_TRANSCODE && c->nlegs >= 2)
		return EBUSY;
	err = leg_check_cfg(c, cfg, &crate, &ptime);
	if (err)
		return err;
	l = calloc(1, sizeof(*l));
	if (!l)
		return ENOMEM;
	l->conf = c;
	l->arg = leg_arg;
	l->cfg = *cfg;
	l->cfg.rate = crate;
	l->cfg.ptime_ms = ptime;
	l->crate = crate;
	l->clock = mix_codec_clock(cfg->codec);
	l->ticks = ptime / c->cfg.ptime_ms;
	l->ocfg = cfg->opus_override ? cfg->opus : c->cfg.opus;
	l->gin = db2lin(cfg->gain_in_db);
	l->gout = db2lin(cfg->gain_out_db);
	mix_jb_init(&l->jb, l->clock, c->cfg.ptime_ms, c->cfg.jb_min_ms,
		    c->cfg.jb_max_ms);
	leg_input_restart(l);
	l->need_reset = false;
	mix_lim_init(&l->own.lim);
	err = mix_dec_init(&l->dec, cfg->codec, c->cfg.rate, crate);
	if (!err)
		err = mix_enc_init(&l->own.enc, cfg->codec, c->cfg.rate,
				   crate, ptime, &l->ocfg);
	if (!err && c->cfg.mode == MIX_MODE_MIX)
		err = group_get(c, l, &l->grp);
	if (err) {
		mix_dec_close(&l->dec);
		mix_enc_close(&l->own.enc);
		free(l);
		return err;
	}
	l->src = SRC_SHARED;
	l->idx = c->nlegs;
	/* spread the idle legs' metering decodes over the ticks */
	l->vad_probe = l->idx % (PROBE_MS / c->cfg.ptime_ms);
	c->legs[c->nlegs++] = l;
	if (c->cfg.mode == MIX_MODE_TRANSCODE) {
		err = transcode_rate(c);
		if (err) {
			mix_leg_remove(l);
			return err;
		}
		mix_transcode_setup(c);
	}
	*lp = l;
	return 0;
}

struct mix_leg *mix_leg_remove(struct mix_leg *l)
{
	struct mix_conf *c;

	if (!l)
		return NULL;
	c = l->conf;
	c->legs[l->idx] = c->legs[--c->nlegs];
	c->legs[l->idx]->idx = l->idx;
	group_put(c, l->grp);
	mix_dec_close(&l->dec);
	mix_enc_close(&l->own.enc);
	free(l);
	if (c->cfg.mode == MIX_MODE_TRANSCODE)
		mix_transcode_setup(c);
	return NULL;
}

void *mix_leg_arg(const struct mix_leg *l)
{
	return l ? l->arg : NULL;
}

void mix_leg_cfg_get(const struct mix_leg *l, struct mix_leg_cfg *cfg)
{
	*cfg = l->cfg;
}

/**
 * Change direction, mute and gains.  Codec, rate, ptime and Opus settings
 * must equal the current ones (ENOTSUP otherwise: remove and add again).
 * A leg that is unmuted or starts receiving restarts its jitter buffer.
 */
int mix_leg_update(struct mix_leg *l, const struct mix_leg_cfg *cfg)
{
	struct mix_conf *c;
	struct mix_group *g = NULL;
	unsigned crate, ptime;
	bool was_in, now_in;
	float old_gout;
	int err;

	if (!l || !cfg)
		return EINVAL;
	c = l->conf;
	err = leg_check_cfg(c, cfg, &crate, &ptime);
	if (err)
		return err;
	if (cfg->codec != l->cfg.codec || crate != l->crate ||
	    ptime != l->cfg.ptime_ms ||
	    cfg->opus_override != l->cfg.opus_override ||
	    (cfg->opus_override && !ocfg_eq(&cfg->opus, &l->cfg.opus)))
		return ENOTSUP;
	was_in = l->cfg.recv && !l->cfg.muted;
	now_in = cfg->recv && !cfg->muted;
	old_gout = l->cfg.gain_out_db;
	l->cfg.send = cfg->send;
	l->cfg.recv = cfg->recv;
	l->cfg.muted = cfg->muted;
	l->cfg.gain_in_db = cfg->gain_in_db;
	l->gin = db2lin(cfg->gain_in_db);
	if (cfg->gain_out_db != old_gout && l->grp) {
		l->cfg.gain_out_db = cfg->gain_out_db;
		err = group_get(c, l, &g);
		if (err) {
			l->cfg.gain_out_db = old_gout;
			return err;
		}
		group_put(c, l->grp);
		l->grp = g;
		if (l->src == SRC_SHARED)
			l->marker_next = true;
	}
	l->cfg.gain_out_db = cfg->gain_out_db;
	l->gout = db2lin(cfg->gain_out_db);
	if (now_in && !was_in)
		leg_input_restart(l);
	if (!now_in)
		l->talker = false;
	if (c->cfg.mode == MIX_MODE_TRANSCODE)
		mix_transcode_setup(c);
	return 0;
}

void mix_leg_stats_get(const struct mix_leg *l, struct mix_leg_stats *st)
{
	*st = l->st;
	st->talking = l->talker;
	st->level_dbov = l->slevel;
	st->jb_target_ms = (unsigned)(l->jb.target * 1000 / l->jb.clock);
	st->jb_delay_ms = 0;
	if (l->jb.started) {
		int64_t d = l->fifo_n * (int64_t)l->clock / l->conf->cfg.rate;
		int64_t e = mix_jb_error(&l->jb, d, l->conf->now_us);

		d = l->jb.target + e;
		st->jb_delay_ms = d > 0 ? (unsigned)(d * 1000 / l->clock) : 0;
	}
	st->late = l->jb.late + l->st.late;
	st->dup = l->jb.dup + l->st.dup;
	st->overflow = l->jb.overflow;
	st->resyncs = l->jb.resyncs;
}

void mix_conf_stats_get(const struct mix_conf *c, struct mix_conf_stats *st)
{
	unsigned i, n = 0;

	*st = c->st;
	st->legs = c->nlegs;
	for (i = 0; i < c->nlegs; i++)
		n += c->legs[i]->talker;
	st->talkers = n;
	st->rate = c->cfg.rate;
}

unsigned mix_talkers(const struct mix_conf *c, struct mix_leg **v,
		     unsigned n)
{
	unsigned i, k = 0;

	for (i = 0; i < c->nlegs; i++) {
		if (c->legs[i]->talker) {
			if (k < n)
				v[k] = c->legs[i];
			k++;
		}
	}
	return k;
}

/* --- packet input --- */

int mix_put(struct mix_leg *l, const uint8_t *payload, size_t len,
	    uint16_t seq, uint32_t rtp_ts, bool marker, int audio_level,
	    bool voice, uint64_t now_us)
{
	unsigned dur;
	int err;

	(void)voice;
	if (!l || !payload || !len || len > MIX_PAYLOAD_MAX)
		return EINVAL;
	if (audio_level > 127)
		return EINVAL;
	err = mix_pkt_duration(l->cfg.codec, payload, len, l->crate, &dur);
	if (err)
		return err;
	if (!l->cfg.recv || l->cfg.muted) {
		l->st.skipped++;
		return 0;
	}
	l->st.packets_in++;
	if (l->conf->cfg.mode == MIX_MODE_TRANSCODE)
		return mix_transcode_put(l, payload, len, rtp_ts, marker);
	l->levels = audio_level >= 0;
	/* without RFC 6464, the Opus encoder's own VAD flags tell a packet
	 * that carries no speech: it need not be decoded to be metered */
	if (audio_level < 0 && mix_opt_opus_vad &&
	    l->cfg.codec == MIX_CODEC_OPUS && mix_opus_vad(payload, len) == 0)
		audio_level = SILENT_LEVEL;
	err = mix_jb_put(&l->jb, payload, len, seq, rtp_ts, audio_level, dur,
			 now_us);
	return err == EALREADY ? 0 : err;
}

/* --- per-tick input --- */

static unsigned clk2smp(const struct mix_leg *l, int64_t clk)
{
	return (unsigned)(clk * l->conf->cfg.rate / l->clock);
}

static int64_t smp2clk(const struct mix_leg *l, unsigned n)
{
	return (int64_t)n * l->clock / l->conf->cfg.rate;
}

static void fifo_zero(struct mix_leg *l, unsigned n)
{
	if (n > MIX_FIFO_MAX - l->fifo_n)
		n = MIX_FIFO_MAX - l->fifo_n;
	memset(l->fifo + l->fifo_n, 0, n * sizeof(int16_t));
	l->fifo_n += n;
}

/* Decode packet s into the FIFO.  A packet that started before the
 * playout position (it straddles it: the sender's packets are not on the
 * grid playout has followed so far) is played whole, from its start: the
 * few ms it repeats put playout back on the sender's grid, where each
 * packet is complete when its turn comes. */
static void fill_packet(struct mix_leg *l, struct mix_jb_slot *s,
			bool need)
{
	struct mix_conf *c = l->conf;
	unsigned n = clk2smp(l, s->dur), got = 0;

	if (n > MIX_FIFO_MAX - l->fifo_n)
		n = MIX_FIFO_MAX - l->fifo_n;
	if (need) {
		if (l->need_reset) {
			mix_dec_reset(&l->dec);
			l->need_reset = false;
		}
		if (mix_dec_decode(&l->dec, s->buf, s->len,
				   l->fifo + l->fifo_n, n, &got) || got != n) {
			got = 0;
			l->need_reset = true;
		}
		else {
			c->cnt.dec++;
			l->st.decodes++;
			l->playing = true;
		}
	}
	else {
		l->need_reset = true;
		l->st.skipped++;
	}
	if (got)
		l->fifo_n += got;
	else
		fifo_zero(l, n);
	l->jb.pos = s->ts + s->dur;
	l->cur_level = s->level >= 0 ? s->level : l->cur_level;
	l->conc_run = 0;
	mix_jb_release(&l->jb, s);
}

/* Fill the gap before packet nx (or up to a frame) with FEC, PLC or
 * silence. */
static void fill_gap(struct mix_leg *l, struct mix_jb_slot *nx, bool need)
{
	struct mix_conf *c = l->conf;
	int64_t gap = nx ? nx->ts - l->jb.pos : INT64_MAX;
	int64_t want = smp2clk(l, c->frame - l->fifo_n), cl;
	unsigned n;

	if (l->fifo_n >= c->frame)
		return;
	if (need && nx && l->playing && !l->need_reset &&
	    gap == nx->dur && gap <= 5760 &&
	    mix_pkt_has_fec(l->cfg.codec, nx->buf, nx->len) &&
	    clk2smp(l, gap) <= MIX_FIFO_MAX - l->fifo_n) {
		n = clk2smp(l, gap);
		if (!mix_dec_fec(&l->dec, nx->buf, nx->len,
				 l->fifo + l->fifo_n, n)) {
			l->fifo_n += n;
			l->jb.pos += gap;
			l->st.fec_used++;
			l->st.decodes++;
			c->cnt.dec++;
			l->conc_run = 0;
			return;
		}
	}
	cl = gap < want ? gap : want;
	if (l->cfg.codec == MIX_CODEC_OPUS)
		cl -= cl % 120; /* PLC in multiples of 2.5 ms */
	if (cl <= 0 && nx) {
		/* a sliver smaller than a PLC unit: skip to the packet */
		l->jb.pos = nx->ts;
		return;
	}
	if (cl <= 0) {
		n = c->frame - l->fifo_n;
		fifo_zero(l, n);
		l->jb.pos += smp2clk(l, n);
		return;
	}
	n = clk2smp(l, cl);
	if (need && l->playing && !l->need_reset &&
	    l->conc_run < c->cfg.rate * CONC_MAX_MS / 1000) {
		mix_dec_conceal(&l->dec, l->fifo + l->fifo_n, n);
		l->fifo_n += n;
		l->conc_run += n;
		l->st.concealed++;
		c->cnt.conc++;
	}
	else {
		fifo_zero(l, n);
		if (l->playing)
			l->need_reset = true;
		if (!need)
			l->st.skipped++;
	}
	l->jb.pos += cl;
}

static void fill_fifo(struct mix_leg *l, bool need)
{
	struct mix_conf *c = l->conf;
	struct mix_jb_slot *s;
	unsigned guard = 0;

	while (l->fifo_n < c->frame && guard++ < 64) {
		s = mix_jb_at(&l->jb, l->jb.pos);
		if (s) {
			fill_packet(l, s, need);
			continue;
		}
		mix_jb_drop_before(&l->jb, l->jb.pos);
		fill_gap(l, mix_jb_next(&l->jb, l->jb.pos), need);
	}
}

static void fifo_take(struct mix_leg *l, int16_t *out)
{
	unsigned n = l->conf->frame;

	if (l->fifo_n < n) { /* cannot happen, but never read garbage */
		fifo_zero(l, n - l->fifo_n);
	}
	if (out)
		memcpy(out, l->fifo, n * sizeof(int16_t));
	l->fifo_n -= n;
	if (l->fifo_n)
		memmove(l->fifo, l->fifo + n, l->fifo_n * sizeof(int16_t));
}

/* Produce this tick's frame of leg l into l->pcm (need: audio wanted) */
static void leg_input(struct mix_leg *l, bool need)
{
	struct mix_conf *c = l->conf;
	int64_t e, tick = l->jb.tick;

	l->have_pcm = false;
	if (!l->jb.started) {
		memset(l->pcm, 0, c->frame * sizeof(int16_t));
		return;
	}
	e = mix_jb_error(&l->jb, smp2clk(l, l->fifo_n), c->now_us);
	if (e < -tick / 2) {
		/* too little delay: stretch by one frame (PLC or silence) */
		if (need && l->playing && !l->need_reset &&
		    l->conc_run < c->cfg.rate * CONC_MAX_MS / 1000) {
			mix_dec_conceal(&l->dec, l->pcm, c->frame);
			l->conc_run += c->frame;
			l->st.concealed++;
			c->cnt.conc++;
			l->have_pcm = true;
		}
		else {
			memset(l->pcm, 0, c->frame * sizeof(int16_t));
			if (l->playing)
				l->need_reset = true;
		}
		return;
	}
	if (e > tick && (!l->active || e > 3 * tick)) {
		/* too much delay: drop one frame, silent frames first */
		fill_fifo(l, need);
		fifo_take(l, NULL);
	}
	fill_fifo(l, need);
	fifo_take(l, l->pcm);
	l->have_pcm = need;
}

/*
 * The next frame of a leg without RFC 6464 levels is a packet whose Opus
 * VAD flags say silence (mix_put marked it): a leg that is not active
 * meters it as silent without decoding it.  The encoder's VAD takes a
 * steady sound (a tone, music on hold) for background noise after about
 * half a second, so an active leg is decoded and metered as before (the
 * flags start a leg talking, the energy keeps it talking), and an idle
 * leg is still decoded and metered once every PROBE_MS (a steady sound
 * that was already playing when the leg was unmuted is heard then).
 */
static bool leg_vad_idle(struct mix_leg *l)
{
	const struct mix_jb_slot *s = mix_jb_at(&l->jb, l->jb.pos);

	if (!s || s->level != SILENT_LEVEL)
		return false;
	if (l->vad_probe) {
		l->vad_probe--;
		return true;
	}
	l->vad_probe = PROBE_MS / l->conf->cfg.ptime_ms - 1;
	return false;
}

/* --- talker selection --- */

static void leg_activity(struct mix_leg *l, float lv, unsigned hang_ticks)
{
	l->flevel = lv;
	if (lv >= VAD_ON_DBOV)
		l->hang = hang_ticks;
	else if (l->hang)
		l->hang--;
	l->active = l->hang > 0;
	if (lv > l->slevel)
		l->slevel += (lv - l->slevel) * 0.5f;
	else
		l->slevel += (lv - l->slevel) * 0.05f;
}

static void select_talkers(struct mix_conf *c)
{
	unsigned i, ntalk = 0, hold = HOLD_MS / c->cfg.ptime_ms;
	struct mix_leg *b, *w;

	for (i = 0; i < c->nlegs; i++) {
		struct mix_leg *l = c->legs[i];

		l->tried = false;
		if (l->talker && !l->active)
			l->talker = false;
		if (l->talker) {
			l->talk_ticks++;
			ntalk++;
		}
	}
	for (;;) {
		b = NULL;
		for (i = 0; i < c->nlegs; i++) {
			struct mix_leg *l = c->legs[i];

			if (l->active && !l->talker && !l->tried &&
			    (!b || l->slevel > b->slevel))
				b = l;
		}
		if (!b)
			break;
		b->tried = true;
		if (ntalk < c->cfg.max_talkers) {
			b->talker = true;
			b->talk_ticks = 0;
			ntalk++;
			continue;
		}
		w = NULL;
		for (i = 0; i < c->nlegs; i++) {
			struct mix_leg *l = c->legs[i];

			if (l->talker && l->talk_ticks >= hold &&
			    (!w || l->slevel < w->slevel))
				w = l;
		}
		if (!w || b->slevel < w->slevel + SWAP_DB)
			break;
		w->talker = false;
		w->tried = true;
		b->talker = true;
		b->talk_ticks = 0;
	}
}

/* --- output --- */

/** Hand a stream's packet of this tick to leg l */
void mix_stream_send(struct mix_leg *l, struct mix_stream *s)
{
	struct mix_conf *c = l->conf;
	uint64_t d = (uint64_t)l->cfg.ptime_ms * l->clock / 1000;
	uint32_t inc;

	if (!s->out_ready)
		return;
	if (l->cfg.codec == MIX_CODEC_OPUS && s->out_len <= 2) {
		/* DTX: nothing sent, the next packet starts a talkspurt */
		l->marker_next = true;
		return;
	}
	inc = l->sent_any ? (uint32_t)(l->since - d) : 0;
	c->outh(l, s->out, s->out_len, inc,
		l->marker_next || !l->sent_any, c->arg);
	l->since = d;
	l->sent_any = true;
	l->marker_next = false;
	l->st.packets_out++;
}

static void stream_encode(struct mix_conf *c, struct mix_stream *s)
{
	unsigned nh = s->enc.frame < MIX_FRAME_MAX ? s->enc.frame :
		MIX_FRAME_MAX;

	s->acc_n = 0;
	if (mix_enc_encode(&s->enc, s->acc, s->out, sizeof(s->out),
			   &s->out_len))
		return;
	memcpy(s->hist, s->acc + s->enc.frame - nh, nh * sizeof(int16_t));
	s->nhist = nh;
	s->out_ready = true;
	c->cnt.enc++;
}

/**
 * Limit n samples of in into the stream; encode when a packet is full.
 */
void mix_stream_push(struct mix_conf *c, struct mix_stream *s,
		     const int32_t *in, unsigned n, struct mix_leg *sendto)
{
	while (n) {
		unsigned k = s->enc.frame - s->acc_n;

		if (k > n)
			k = n;
		if (k > MIX_FRAME_MAX)
			k = MIX_FRAME_MAX;
		mix_lim_run(&s->lim, in, s->acc + s->acc_n, k);
		s->acc_n += k;
		if (sendto)
			sendto->since += (uint64_t)k * sendto->clock /
				c->cfg.rate;
		in += k;
		n -= k;
		if (s->acc_n == s->enc.frame) {
			stream_encode(c, s);
			if (sendto) {
				mix_stream_send(sendto, s);
				s->out_ready = false;
			}
		}
	}
}

/* Switch a listener to its own stream in the middle of a packet: copy
 * what its group gathered so far and the group's encoder state. */
static void leg_to_own(struct mix_conf *c, struct mix_leg *l)
{
	struct mix_stream *g = &l->grp->st;
	unsigned phase = (unsigned)(c->tick_no % l->ticks) * c->frame;

	l->own.acc_n = 0;
	if (mix_opt_clone && g->active && g->acc_n == phase &&
	    !mix_enc_clone(&l->own.enc, &g->enc, g->nhist ? g->hist : NULL,
			   g->nhist)) {
		memcpy(l->own.acc, g->acc, phase * sizeof(int16_t));
		l->own.lim = g->lim;
	}
	else {
		memset(l->own.acc, 0, phase * sizeof(int16_t));
	}
	l->own.acc_n = phase;
	l->src = SRC_OWN;
}

/*
 * How long a leg stays on its own stream after it stops talking, in
 * ticks.  Its own encoder and the group's then code the same audio, and
 * the switch back is inaudible once their states agree (measured by
 * test_switch_clean): Opus within 100 ms; G.722's ADPCM needs up to
 * 800 ms (1 s taken); G.711 only needs the resampler's memory refilled.
 */
static unsigned own_hang_ticks(const struct mix_leg *l)
{
	unsigned ms;

	switch (l->cfg.codec) {
	case MIX_CODEC_OPUS:
		ms = 100;
		break;
	case MIX_CODEC_G722:
		ms = 1000;
		break;
	default:
		ms = 40;
		break;
	}
	return ms / l->conf->cfg.ptime_ms;
}

static void choose_sources(struct mix_conf *c)
{
	unsigned i;

	for (i = 0; i < c->nlegs; i++) {
		struct mix_leg *l = c->legs[i];

		if (!l->cfg.send) {
			l->src = SRC_NONE;
			continue;
		}
		if (l->talker) {
			if (l->src != SRC_OWN)
				leg_to_own(c, l);
			l->own_hang = own_hang_ticks(l);
			continue;
		}
		if (l->src == SRC_OWN) {
			if (l->own_hang)
				l->own_hang--;
			if (l->own_hang || l->own.acc_n)
				continue;
		}
		l->src = SRC_SHARED;
	}
	/* a group runs a packet cycle when it has listeners at its start */
	for (struct mix_group *g = c->groups; g; g = g->next) {
		if (c->tick_no % g->ticks == 0) {
			g->st.active = false;
			g->st.acc_n = 0;
		}
	}
	for (i = 0; i < c->nlegs; i++) {
		struct mix_leg *l = c->legs[i];

		if (l->src == SRC_SHARED && c->tick_no % l->ticks == 0)
			l->grp->st.active = true;
	}
}

static void scale(int32_t *dst, const int32_t *src, unsigned n, float g)
{
	unsigned i;

	if (g == 1.0f) {
		memcpy(dst, src, n * sizeof(int32_t));
		return;
	}
	for (i = 0; i < n; i++)
		dst[i] = (int32_t)lrintf((float)src[i] * g);
}

static void mix_outputs(struct mix_conf *c)
{
	unsigned i, j, n = c->frame;
	struct mix_group *g;

	for (g = c->groups; g; g = g->next) {
		g->st.out_ready = false;
		if (!g->st.active)
			continue;
		scale(c->tmp32, c->mix, n, db2lin(g->gain_out_db));
		mix_stream_push(c, &g->st, c->tmp32, n, NULL);
	}
	for (i = 0; i < c->nlegs; i++) {
		struct mix_leg *l = c->legs[i];

		l->own.out_ready = false;
		if (l->src != SRC_OWN)
			continue;
		if (l->talker) {
			for (j = 0; j < n; j++)
				c->tmp32[j] = c->mix[j] - l->contrib[j];
			scale(c->tmp32, c->tmp32, n, l->gout);
		}
		else {
			scale(c->tmp32, c->mix, n, l->gout);
		}
		mix_stream_push(c, &l->own, c->tmp32, n, NULL);
		if (l->own.out_ready)
			l->st.encodes++;
	}
	for (i = 0; i < c->nlegs; i++) {
		struct mix_leg *l = c->legs[i];

		l->since += (uint64_t)c->cfg.ptime_ms * l->clock / 1000;
		if (l->src == SRC_NONE) {
			/* not sending: time still runs, the next packet
			 * starts a talkspurt */
			l->marker_next = true;
			continue;
		}
		if (l->src == SRC_OWN)
			mix_stream_send(l, &l->own);
		else if (l->grp->st.active)
			mix_stream_send(l, &l->grp->st);
	}
}

static void leg_contrib(struct mix_leg *l)
{
	unsigned i, n = l->conf->frame;

	if (l->gin == 1.0f) {
		for (i = 0; i < n; i++)
			l->contrib[i] = l->pcm[i];
	}
	else {
		for (i = 0; i < n; i++)
			l->contrib[i] = (int32_t)lrintf((float)l->pcm[i] *
							l->gin);
	}
}

/**
 * Run one tick: take a frame from every leg, select talkers, mix, encode
 * and call the output handler for every leg that has a packet now.
 */
int mix_tick(struct mix_conf *c, uint64_t now_us)
{
	unsigned i, j, n, hang;

	if (!c)
		return EINVAL;
	c->now_us = now_us;
	c->st.ticks++;
	if (c->cfg.mode != MIX_MODE_MIX)
		return 0;
	memset(&c->cnt, 0, sizeof(c->cnt));
	n = c->frame;
	hang = HANG_MS / c->cfg.ptime_ms;

	/* 1: levels (decoding only legs without RFC 6464 levels) */
	for (i = 0; i < c->nlegs; i++) {
		struct mix_leg *l = c->legs[i];
		float lv;

		if (!l->cfg.recv || l->cfg.muted) {
			l->active = l->talker = false;
			l->have_pcm = false;
			continue;
		}
		l->vad_idle = !l->levels && !l->active && !l->talker &&
			l->fifo_n < n && leg_vad_idle(l);
		if (l->vad_idle) {
			lv = -127.0f;
		}
		else if (!l->levels) {
			leg_input(l, true);
			lv = l->have_pcm ? mix_level_dbov(l->pcm, n) : -127.0f;
			lv += l->cfg.gain_in_db;
		}
		else {
			struct mix_jb_slot *s = NULL;
			int lev = l->cur_level;

			if (l->fifo_n < n) {
				s = mix_jb_at(&l->jb, l->jb.pos);
				lev = s && s->level >= 0 ? s->level :
					SILENT_LEVEL;
			}
			lv = -(float)lev + l->cfg.gain_in_db;
		}
		leg_activity(l, lv, hang);
	}

	/* 2: talkers */
	select_talkers(c);

	/* 3: decode RFC 6464 talkers, drain the rest; 4: sum */
	memset(c->mix, 0, n * sizeof(int32_t));
	for (i = 0; i < c->nlegs; i++) {
		struct mix_leg *l = c->legs[i];

		if (!l->cfg.recv || l->cfg.muted)
			continue;
		if (l->levels || l->vad_idle)
			leg_input(l, l->talker);
		if (!l->talker)
			continue;
		if (!l->have_pcm)
			memset(l->pcm, 0, n * sizeof(int16_t));
		leg_contrib(l);
		for (j = 0; j < n; j++)
			c->mix[j] += l->contrib[j];
	}

	/* 5: streams */
	choose_sources(c);
	mix_outputs(c);

	c->tick_no++;
	c->st.decodes += c->cnt.dec;
	c->st.encodes += c->cnt.enc;
	c->st.concealments += c->cnt.conc;
	c->st.last_tick_decodes = c->cnt.dec;
	c->st.last_tick_encodes = c->cnt.enc;
	c->st.last_tick_concealments = c->cnt.conc;
	return 0;
}
