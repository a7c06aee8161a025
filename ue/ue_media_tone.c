/** @file ue_media_tone.c  uemedia: test tones, levels, receive timeline */

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "ue/ue_media_int.h"

#define FULL_SCALE 32767.0

/**
 * Set up a sine generator.  0 dBFS is a full-scale sine (peak 32767).
 *
 * @return 0 or EINVAL
 */
int ue_tone_init(struct ue_tone *t, double hz, double dbfs, uint32_t rate)
{
	if (!t || rate == 0 || !(hz > 0) || hz >= rate / 2.0 ||
	    !(dbfs <= 0) || dbfs < -120)
		return EINVAL;
	t->phase = 0;
	t->step = 2 * M_PI * hz / rate;
	t->amp = FULL_SCALE * pow(10, dbfs / 20);
	return 0;
}

/** Next n samples of the tone (phase continues across calls) */
void ue_tone_fill(struct ue_tone *t, int16_t *pcm, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		pcm[i] = (int16_t)lrint(t->amp * sin(t->phase));
		t->phase += t->step;
		if (t->phase >= 2 * M_PI)
			t->phase -= 2 * M_PI;
	}
}

/**
 * Parse "HZ" or "HZ:DBFS" (e.g. "440", "1000:-12").
 *
 * @return 0 or EINVAL
 */
int ue_tone_parse(const char *s, double *hzp, double *dbfsp)
{
	char *end;
	double hz, db = -20;

	errno = 0;
	hz = strtod(s, &end);
	if (errno || end == s || !(hz > 0) || hz > 24000)
		return EINVAL;
	if (*end == ':') {
		const char *d = end + 1;

		db = strtod(d, &end);
		if (errno || end == d || db > 0 || db < -120)
			return EINVAL;
	}
	if (*end)
		return EINVAL;
	*hzp = hz;
	*dbfsp = db;
	return 0;
}

/**
 * Parse speaking windows "S:E[,S:E...]" in seconds, e.g. "0.5:2,4:5.5".
 *
 * @return 0, EINVAL or E2BIG (more than UE_MAX_TALK windows)
 */
int ue_talk_parse(const char *s, struct ue_talk *t)
{
	const char *p = s;

	memset(t, 0, sizeof(*t));
	while (*p) {
		char *end;
		double a, b;

		if (t->n >= UE_MAX_TALK)
			return E2BIG;
		errno = 0;
		a = strtod(p, &end);
		if (errno || end == p || *end != ':' || !(a >= 0))
			return EINVAL;
		p = end + 1;
		b = strtod(p, &end);
		if (errno || end == p || !(b > a))
			return EINVAL;
		t->start[t->n] = a;
		t->end[t->n] = b;
		t->n++;
		p = end;
		if (*p == ',' && p[1])
			p++;
		else if (*p)
			return EINVAL;
	}
	return t->n ? 0 : EINVAL;
}

bool ue_talk_active(const struct ue_talk *t, double sec)
{
	size_t i;

	if (t->n == 0)
		return true;
	for (i = 0; i < t->n; i++)
		if (sec >= t->start[i] && sec < t->end[i])
			return true;
	return false;
}

/**
 * RMS level in dBov (ITU-T G.100.1: a full-scale square wave is 0 dBov, so
 * a full-scale sine is about -3 dBov).  Digital silence gives -127.
 */
double ue_level_dbov(const int16_t *pcm, size_t n)
{
	double sum = 0, db;
	size_t i;

	if (n == 0)
		return -127;
	for (i = 0; i < n; i++)
		sum += (double)pcm[i] * pcm[i];
	if (sum == 0)
		return -127;
	db = 10 * log10(sum / n / (32768.0 * 32768.0));
	return db < -127 ? -127 : db;
}

/** RFC 6464 level: -dBov rounded, 0..127 */
uint8_t ue_level_rfc6464(const int16_t *pcm, size_t n)
{
	double db = -ue_level_dbov(pcm, n);
	long v = lrint(db);

	if (v < 0)
		v = 0;
	if (v > UE_LEVEL_SILENT)
		v = UE_LEVEL_SILENT;
	return (uint8_t)v;
}

/**
 * Set up a timeline of cap samples at an audio rate for an RTP clock.
 *
 * @return 0, EINVAL or ENOMEM
 */
int ue_timeline_init(struct ue_timeline *tl, size_t cap, uint32_t rate,
		     uint32_t clock)
{
	memset(tl, 0, sizeof(*tl));
	if (cap == 0 || rate == 0 || clock == 0)
		return EINVAL;
	tl->pcm = calloc(cap, sizeof(*tl->pcm));
	if (!tl->pcm)
		return ENOMEM;
	tl->cap = cap;
	tl->rate = rate;
	tl->clock = clock;
	return 0;
}

void ue_timeline_reset(struct ue_timeline *tl)
{
	free(tl->pcm);
	memset(tl, 0, sizeof(*tl));
}

/*
 * A packet lands at origin + its timestamp offset from the first packet of
 * the same SSRC, converted from the RTP clock to the audio rate.  A new
 * SSRC (or the first packet) is anchored where it arrived in wall-clock
 * time, so the file's time axis matches the participant's run time.
 */
void ue_timeline_put(struct ue_timeline *tl, uint32_t ssrc, uint32_t ts,
		     const int16_t *pcm, size_t n, size_t at_sample)
{
	int64_t pos;
	size_t k;

	if (!tl->anchored || ssrc != tl->ssrc) {
		tl->anchored = true;
		tl->ssrc = ssrc;
		tl->ext_ts = 0;
		tl->origin = (int64_t)at_sample;
	}
	else {
		tl->ext_ts += (int32_t)(ts - tl->last_ts);
	}
	tl->last_ts = ts;
	pos = tl->origin + tl->ext_ts * (int64_t)tl->rate / tl->clock;
	if (pos < 0 || (uint64_t)pos >= tl->cap) {
		tl->dropped += n;
		return;
	}
	k = n;
	if ((size_t)pos + k > tl->cap) {
		tl->dropped += (size_t)pos + k - tl->cap;
		k = tl->cap - (size_t)pos;
	}
	memcpy(tl->pcm + pos, pcm, k * sizeof(*pcm));
	if ((size_t)pos + k > tl->hi)
		tl->hi = (size_t)pos + k;
}
