/**
 * @file mix_intake.c  Fuzz target: the mixer's packet intake per codec
 *
 * Hostile payloads (any bytes, sequence numbers, timestamps and audio
 * levels) go to one leg through mix_put(), in a three-leg MIX conference
 * driven by mix_tick() (jitter buffer, decode, PLC, mixing, shared and
 * N-1 encodes) or in a TRANSCODE pair (decode and re-encode per packet).
 *
 * Input: a flags byte, then records of
 *   seq (2, BE) | ts step in frames (1) | RFC 6464 byte (1: V bit + level)
 *   | payload length (2, BE) | payload
 *   flags bits 0-1: codec of the fuzzed leg (enum mix_codec)
 *   flag bit 2: TRANSCODE instead of MIX
 *   flag bit 3: the conference runs at 16 kHz instead of 48 kHz
 *   flag bit 4: no audio levels given (-1)
 * Checked: nothing the mixer hands out exceeds MIX_PAYLOAD_MAX, every
 * handed-out payload belongs to a leg that sends, and mix_put() fails only
 * with a refusal (never ENOMEM: no allocation on the packet path).
 */

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mixer/mixer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	F_TRANSCODE = 1 << 2,
	F_RATE16 = 1 << 3,
	F_NOLEVEL = 1 << 4,
	MAX_RECORDS = 64,
};

static uint64_t out_bytes;

static void on_out(struct mix_leg *leg, const uint8_t *payload, size_t len,
		   uint32_t ts_inc, bool marker, void *arg)
{
	struct mix_leg_cfg cfg;
	size_t i;

	(void)ts_inc;
	(void)marker;
	(void)arg;
	if (!leg || !payload || len == 0 || len > MIX_PAYLOAD_MAX)
		abort();
	mix_leg_cfg_get(leg, &cfg);
	if (!cfg.send)
		abort();
	/* touch every byte so ASan sees a short buffer */
	for (i = 0; i < len; i++)
		out_bytes += payload[i];
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mix_conf_cfg ccfg;
	struct mix_leg_cfg lcfg;
	struct mix_conf *c = NULL;
	struct mix_leg *fz = NULL, *o1 = NULL, *o2 = NULL;
	enum mix_codec codec, other;
	const uint8_t *p;
	size_t left;
	uint64_t now = 1000000;
	uint32_t ts = 0;
	unsigned clock, frame, n = 0;
	int flags;

	if (size < 1)
		return 0;
	flags = data[0];
	codec = (enum mix_codec)(flags & 3);
	other = codec == MIX_CODEC_OPUS ? MIX_CODEC_PCMA : MIX_CODEC_OPUS;
	mix_conf_cfg_default(&ccfg);
	ccfg.mode = flags & F_TRANSCODE ? MIX_MODE_TRANSCODE : MIX_MODE_MIX;
	ccfg.rate = flags & F_RATE16 ? 16000 : 48000;
	ccfg.opus.complexity = 0;
	if (mix_conf_alloc(&c, &ccfg, on_out, NULL))
		abort();
	mix_leg_cfg_default(&lcfg, codec);
	if (mix_leg_add(c, &fz, &lcfg, NULL))
		abort();
	mix_leg_cfg_default(&lcfg, other);
	if (mix_leg_add(c, &o1, &lcfg, NULL))
		abort();
	if (ccfg.mode == MIX_MODE_MIX) {
		mix_leg_cfg_default(&lcfg, MIX_CODEC_PCMU);
		if (mix_leg_add(c, &o2, &lcfg, NULL))
			abort();
	}
	clock = mix_codec_clock(codec);
	frame = clock / 50;

	p = data + 1;
	left = size - 1;
	while (left >= 6 && n++ < MAX_RECORDS) {
		uint16_t seq = (uint16_t)(p[0] << 8 | p[1]);
		unsigned step = p[2];
		int level = flags & F_NOLEVEL ? -1 : (p[3] & 0x7f);
		bool voice = p[3] & 0x80;
		size_t len = (size_t)p[4] << 8 | p[5];
		int err;

		p += 6;
		left -= 6;
		if (len > left)
			len = left;
		ts += step * frame;
		err = mix_put(fz, p, len, seq, ts, step == 0, level, voice,
			      now);
		/* refusals are fine; ENOMEM would mean an allocation on the
		 * packet path, anything else an undocumented outcome */
		if (err && err != EINVAL && err != EBADMSG &&
		    err != EPROTO && err != ENOTSUP && err != EMSGSIZE &&
		    err != ENOSPC && err != EALREADY)
			abort();
		p += len;
		left -= len;
		if (ccfg.mode == MIX_MODE_MIX) {
			now += 20000;
			(void)mix_tick(c, now);
		}
	}
	/* let the jitter buffer run dry: concealment paths */
	if (ccfg.mode == MIX_MODE_MIX) {
		for (n = 0; n < 12; n++) {
			now += 20000;
			(void)mix_tick(c, now);
		}
	}
	o2 = mix_leg_remove(o2);
	o1 = mix_leg_remove(o1);
	fz = mix_leg_remove(fz);
	c = mix_conf_free(c);
	return 0;
}
