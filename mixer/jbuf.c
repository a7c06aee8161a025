/**
 * @file jbuf.c  Adaptive jitter buffer keyed on RTP timestamps
 *
 * Packets are stored by extended RTP timestamp (sequence numbers catch
 * duplicates).  The buffer itself never decides when to play: the leg's
 * playout position (pos, the next timestamp to decode) advances as audio
 * is taken out, and mix_jb_error() tells the caller how far that position
 * is from where it should be:
 *
 *   ideal = now - min_transit - target       (all in RTP clock units)
 *
 * min_transit is the smallest (arrival - timestamp) over the last 4 s and
 * spread the largest minus the smallest in the same window, so sender
 * clock drift moves min_transit along instead of growing the delay, and
 * the target delay (spread + one tick, clamped) follows measured jitter up
 * at once and down after the window has forgotten a spike.
 */

#include <errno.h>
#include <string.h>
#include "mixer/mix_int.h"

#define WIN_US 500000

void mix_jb_init(struct mix_jb *jb, unsigned clock, unsigned tick_ms,
		 unsigned min_ms, unsigned max_ms)
{
	memset(jb, 0, sizeof(*jb));
	jb->clock = clock;
	jb->tick = (int64_t)clock * tick_ms / 1000;
	jb->tmin = (int64_t)clock * min_ms / 1000;
	jb->tmax = (int64_t)clock * max_ms / 1000;
	mix_jb_flush(jb);
}

/** Forget every packet and all timing: the next packet starts afresh */
void mix_jb_flush(struct mix_jb *jb)
{
	unsigned i;

	for (i = 0; i < MIX_JB_SLOTS; i++)
		jb->slot[i].used = false;
	for (i = 0; i < MIX_JB_WIN; i++)
		jb->win[i].id = -1;
	jb->n = 0;
	jb->started = false;
	jb->target = jb->tmin;
	jb->spread = 0;
}

static void transit_update(struct mix_jb *jb, int64_t ext, uint64_t now_us)
{
	int64_t arr = (int64_t)(now_us * jb->clock / 1000000);
	int64_t tr = arr - ext;
	int64_t id = (int64_t)(now_us / WIN_US);
	int64_t mn = INT64_MAX, mx = INT64_MIN, t;
	unsigned i;

	i = (unsigned)(id % MIX_JB_WIN);
	if (jb->win[i].id != id) {
		jb->win[i].id = id;
		jb->win[i].min = tr;
		jb->win[i].max = tr;
	}
	else {
		if (tr < jb->win[i].min)
			jb->win[i].min = tr;
		if (tr > jb->win[i].max)
			jb->win[i].max = tr;
	}
	for (i = 0; i < MIX_JB_WIN; i++) {
		if (jb->win[i].id < 0 || jb->win[i].id <= id - MIX_JB_WIN)
			continue;
		if (jb->win[i].min < mn)
			mn = jb->win[i].min;
		if (jb->win[i].max > mx)
			mx = jb->win[i].max;
	}
	jb->min_transit = mn;
	jb->spread = mx - mn;
	t = jb->spread + jb->tick;
	if (t < jb->tmin)
		t = jb->tmin;
	if (t > jb->tmax)
		t = jb->tmax;
	jb->target = t;
}

static int64_t ts_extend(struct mix_jb *jb, uint32_t ts)
{
	int64_t ext = jb->last_ext + (int32_t)(ts - jb->last_ts32);

	if (ext > jb->last_ext) {
		jb->last_ext = ext;
		jb->last_ts32 = ts;
	}
	return ext;
}

/**
 * Store one packet.
 *
 * @return 0, EALREADY (late or duplicate: dropped), ENOSPC (full)
 */
int mix_jb_put(struct mix_jb *jb, const uint8_t *p, size_t len,
	       uint16_t seq, uint32_t ts, int level, uint32_t dur,
	       uint64_t now_us)
{
	struct mix_jb_slot *free_slot = NULL;
	int64_t ext, far = (int64_t)jb->clock * 2;
	unsigned i;

	if (len > MIX_PAYLOAD_MAX)
		return EMSGSIZE;
	if (!jb->started) {
		jb->started = true;
		jb->last_ts32 = ts;
		jb->last_ext = (int64_t)ts + ((int64_t)1 << 32);
		jb->pos = jb->last_ext;
	}
	ext = ts_extend(jb, ts);

	/* a jump of seconds (sender restart, long pause): start again */
	if (ext > jb->pos + far + jb->tmax || ext + far < jb->pos) {
		mix_jb_flush(jb);
		jb->resyncs++;
		return mix_jb_put(jb, p, len, seq, ts, level, dur, now_us);
	}
	transit_update(jb, ext, now_us);
	/* a packet is late only when all of it lies before the playout
	 * position: one that straddles it (a sender whose first packet
	 * overlaps the second, as GStreamer's opusenc stamps them) is
	 * played whole from its start, which puts pos back on the
	 * sender's grid */
	if (ext + (int64_t)dur <= jb->pos) {
		jb->late++;
		return EALREADY;
	}
	for (i = 0; i < MIX_JB_SLOTS; i++) {
		struct mix_jb_slot *s = &jb->slot[i];

		if (!s->used) {
			if (!free_slot)
				free_slot = s;
			continue;
		}
		if (s->ts == ext || s->seq == seq) {
			jb->dup++;
			return EALREADY;
		}
	}
	if (!free_slot) {
		jb->overflow++;
		return ENOSPC;
	}
	free_slot->ts = ext;
	free_slot->dur = dur;
	free_slot->seq = seq;
	free_slot->level = (int16_t)level;
	free_slot->len = (uint16_t)len;
	memcpy(free_slot->buf, p, len);
	free_slot->used = true;
	jb->n++;
	return 0;
}

/** The packet starting at ts, else the earliest one holding ts (it
 * started before ts and ends after it), or NULL */
struct mix_jb_slot *mix_jb_at(struct mix_jb *jb, int64_t ts)
{
	struct mix_jb_slot *over = NULL;
	unsigned i;

	if (!jb->n)
		return NULL;
	for (i = 0; i < MIX_JB_SLOTS; i++) {
		struct mix_jb_slot *s = &jb->slot[i];

		if (!s->used)
			continue;
		if (s->ts == ts)
			return s;
		if (s->ts < ts && s->ts + (int64_t)s->dur > ts &&
		    (!over || s->ts < over->ts))
			over = s;
	}
	return over;
}

/** The earliest packet starting after ts, or NULL */
struct mix_jb_slot *mix_jb_next(struct mix_jb *jb, int64_t ts)
{
	struct mix_jb_slot *best = NULL;
	unsigned i;

	for (i = 0; i < MIX_JB_SLOTS && jb->n; i++) {
		struct mix_jb_slot *s = &jb->slot[i];

		if (s->used && s->ts > ts && (!best || s->ts < best->ts))
			best = s;
	}
	return best;
}

/** Drop packets that end at or before ts (overtaken by concealment) */
void mix_jb_drop_before(struct mix_jb *jb, int64_t ts)
{
	unsigned i;

	for (i = 0; i < MIX_JB_SLOTS && jb->n; i++) {
		if (jb->slot[i].used &&
		    jb->slot[i].ts + (int64_t)jb->slot[i].dur <= ts) {
			mix_jb_release(jb, &jb->slot[i]);
			jb->late++;
		}
	}
}

void mix_jb_release(struct mix_jb *jb, struct mix_jb_slot *s)
{
	if (s->used) {
		s->used = false;
		jb->n--;
	}
}

/**
 * How far the playout point lags its ideal place, in clock units
 * (positive: too much delay, drop audio; negative: too little, stretch).
 *
 * @param buffered  decoded audio not yet played, in clock units
 */
int64_t mix_jb_error(const struct mix_jb *jb, int64_t buffered,
		     uint64_t now_us)
{
	int64_t now = (int64_t)(now_us * jb->clock / 1000000);
	int64_t ideal = now - jb->min_transit - jb->target;

	return ideal - (jb->pos - buffered);
}
