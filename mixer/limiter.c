/**
 * @file limiter.c  Soft limiter (int32 mix -> int16) and level metering
 *
 * Each output stream has one limiter.  The gain follows the peak of the
 * frame about to be written (the frame itself is the look-ahead): it
 * drops to threshold/peak within 1 ms when the mix gets loud and recovers
 * towards unity with a time constant of a few hundred ms.  Whatever the
 * short attack ramp lets through is bent by a soft knee that approaches
 * but never reaches full scale, so nothing wraps and nothing sits at the
 * rails.  Below the knee (-2.7 dBFS) and with unity gain, samples pass
 * untouched: normal speech levels are never altered.
 */

#include <math.h>
#include "mixer/mix_int.h"

#define LIM_THRESH 29000.0f  /* peak the gain aims at (-1 dBFS)        */
#define LIM_KNEE   24000     /* soft knee start                        */
#define LIM_RANGE  (32767.0f - (float)LIM_KNEE)
#define LIM_RELEASE 0.05f    /* per frame (20 ms: ~400 ms constant)    */

void mix_lim_init(struct mix_lim *lim)
{
	lim->gain = 1.0f;
}

static inline int16_t knee(float y)
{
	float a = y < 0 ? -y : y, d;

	if (a <= (float)LIM_KNEE)
		return (int16_t)lrintf(y);
	d = a - (float)LIM_KNEE;
	a = (float)LIM_KNEE + LIM_RANGE * (d / (d + LIM_RANGE));
	if (a > 32766.0f)
		a = 32766.0f;
	return (int16_t)(y < 0 ? -lrintf(a) : lrintf(a));
}

void mix_lim_run(struct mix_lim *lim, const int32_t *in, int16_t *out,
		 unsigned n)
{
	int32_t peak = 0;
	float g0 = lim->gain, g1, step;
	unsigned i, ramp;

	for (i = 0; i < n; i++) {
		int32_t a = in[i] < 0 ? -in[i] : in[i];

		if (a > peak)
			peak = a;
	}
	/* fast path: unity gain and nothing near the knee */
	if (g0 >= 1.0f && peak <= LIM_KNEE) {
		for (i = 0; i < n; i++)
			out[i] = (int16_t)in[i];
		return;
	}
	g1 = g0 + (1.0f - g0) * LIM_RELEASE;
	if ((float)peak * g1 > LIM_THRESH)
		g1 = LIM_THRESH / (float)peak;
	if (g1 > 1.0f)
		g1 = 1.0f;
	/* attack within ~1 ms (n/20), release across the whole frame */
	ramp = g1 < g0 ? (n / 20 ? n / 20 : 1) : n;
	step = (g1 - g0) / (float)ramp;
	for (i = 0; i < n; i++) {
		float g = i < ramp ? g0 + step * (float)(i + 1) : g1;

		out[i] = knee((float)in[i] * g);
	}
	lim->gain = g1;
}

/** RMS level of a frame in dBov (full-scale square wave = 0) */
float mix_level_dbov(const int16_t *pcm, unsigned n)
{
	uint64_t e = 0;
	unsigned i;
	double ms;

	for (i = 0; i < n; i++)
		e += (uint64_t)((int32_t)pcm[i] * pcm[i]);
	if (!n || !e)
		return -127.0f;
	ms = (double)e / n / (32768.0 * 32768.0);
	ms = 10.0 * log10(ms);
	return ms < -127.0 ? -127.0f : (float)ms;
}
