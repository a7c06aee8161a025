/**
 * @file mix_int.h  Mixer internals shared by the mixer/ sources
 */

#ifndef MIX_INT_H
#define MIX_INT_H

#include <stdbool.h>
#include <stdint.h>
#include "mixer/mixer.h"

/* all sizes in samples at the conference rate unless said otherwise */
#define MIX_FRAME_MAX   960   /* one tick: 20 ms at 48 kHz            */
#define MIX_PKT_MAX     2880  /* one output packet: 60 ms at 48 kHz   */
#define MIX_IN_DUR_MAX  5760  /* one input packet: 120 ms at 48 kHz   */
#define MIX_FIFO_MAX    (MIX_IN_DUR_MAX + MIX_FRAME_MAX)
#define MIX_JB_SLOTS    32
#define MIX_JB_WIN      8     /* transit windows of 500 ms            */
#define MIX_CODEC_PCM_MAX 960 /* 60 ms at 16 kHz (G.722 audio)        */

struct OpusEncoder;
struct OpusDecoder;
struct SpeexResamplerState_;

/* tick counters the codec layer updates */
struct mix_cnt {
	unsigned dec, enc, conc;
};

/* decoder of one leg's input, output at the conference rate */
struct mix_dec {
	enum mix_codec codec;
	unsigned rate;       /* conference rate                     */
	unsigned crate;      /* codec audio rate (Opus: = rate)     */
	struct OpusDecoder *opus;
	void *g722;          /* g722_decode_state_t                 */
	void *plc;           /* plc_state_t (G.711/G.722)           */
	struct SpeexResamplerState_ *rs; /* crate -> rate, or NULL  */
	int16_t tmp[MIX_CODEC_PCM_MAX * 2];
	bool fresh;          /* decoder reset: fade the next frame in */
};

/* encoder of one output stream, input at the conference rate */
struct mix_enc {
	enum mix_codec codec;
	unsigned rate, crate;
	unsigned frame;      /* samples per packet at rate          */
	struct mix_opus_cfg ocfg;
	struct OpusEncoder *opus;
	int opus_size;
	void *g722;          /* g722_encode_state_t                 */
	size_t g722_size;
	struct SpeexResamplerState_ *rs; /* rate -> crate, or NULL  */
	int16_t tmp[MIX_CODEC_PCM_MAX * 2];
};

/* codec.c */
int mix_codec_init(void);
int mix_dec_init(struct mix_dec *d, enum mix_codec codec, unsigned rate,
		 unsigned crate);
void mix_dec_close(struct mix_dec *d);
void mix_dec_reset(struct mix_dec *d);
int mix_dec_decode(struct mix_dec *d, const uint8_t *p, size_t len,
		   int16_t *out, unsigned max, unsigned *np);
int mix_dec_fec(struct mix_dec *d, const uint8_t *p, size_t len,
		int16_t *out, unsigned n);
void mix_dec_conceal(struct mix_dec *d, int16_t *out, unsigned n);
int mix_pkt_duration(enum mix_codec codec, const uint8_t *p, size_t len,
		     unsigned crate, unsigned *clkp);
bool mix_pkt_has_fec(enum mix_codec codec, const uint8_t *p, size_t len);
int mix_opus_vad(const uint8_t *p, size_t len);
int mix_enc_init(struct mix_enc *e, enum mix_codec codec, unsigned rate,
		 unsigned crate, unsigned ptime_ms,
		 const struct mix_opus_cfg *ocfg);
void mix_enc_close(struct mix_enc *e);
int mix_enc_encode(struct mix_enc *e, const int16_t *pcm, uint8_t *out,
		   size_t cap, size_t *lenp);
int mix_enc_clone(struct mix_enc *dst, const struct mix_enc *src,
		  const int16_t *hist, unsigned nhist);
void mix_g711_tables(void);
unsigned mix_codec_default_rate(enum mix_codec codec);
extern int mix_resampler_quality;
/* for measurement only (tests, bench): copy the group encoder's state
 * into a new talker's own encoder (default true) */
extern bool mix_opt_clone;
/* for measurement only: skip decoding Opus packets whose VAD flags say
 * silence on legs without RFC 6464 levels (default true) */
extern bool mix_opt_opus_vad;

/* jbuf.c: adaptive jitter buffer on RTP timestamps and sequence numbers */
struct mix_jb_slot {
	int64_t ts;          /* extended RTP timestamp (codec clock) */
	uint32_t dur;        /* clock units                         */
	uint16_t seq;
	int16_t level;       /* -dBov, -1 = none                     */
	uint16_t len;
	bool used;
	uint8_t buf[MIX_PAYLOAD_MAX];
};

struct mix_jb {
	struct mix_jb_slot slot[MIX_JB_SLOTS];
	unsigned n;
	unsigned clock;      /* RTP clock of the payload format       */
	bool started;        /* a packet was seen                     */
	int64_t pos;         /* next timestamp to decode (P)          */
	uint32_t last_ts32;
	int64_t last_ext;
	struct {
		int64_t id, min, max;
	} win[MIX_JB_WIN];
	int64_t min_transit, spread;
	int64_t target;      /* clock units                           */
	int64_t tmin, tmax, tick; /* clock units                     */
	uint64_t late, dup, overflow, resyncs;
};

void mix_jb_init(struct mix_jb *jb, unsigned clock, unsigned tick_ms,
		 unsigned min_ms, unsigned max_ms);
void mix_jb_flush(struct mix_jb *jb);
int mix_jb_put(struct mix_jb *jb, const uint8_t *p, size_t len,
	       uint16_t seq, uint32_t ts, int level, uint32_t dur,
	       uint64_t now_us);
struct mix_jb_slot *mix_jb_at(struct mix_jb *jb, int64_t ts);
struct mix_jb_slot *mix_jb_next(struct mix_jb *jb, int64_t ts);
void mix_jb_drop_before(struct mix_jb *jb, int64_t ts);
void mix_jb_release(struct mix_jb *jb, struct mix_jb_slot *s);
int64_t mix_jb_error(const struct mix_jb *jb, int64_t buffered,
		     uint64_t now_us);

/* limiter.c */
struct mix_lim {
	float gain;
};
void mix_lim_init(struct mix_lim *lim);
void mix_lim_run(struct mix_lim *lim, const int32_t *in, int16_t *out,
		 unsigned n);

/* helpers */
float mix_level_dbov(const int16_t *pcm, unsigned n);

#endif
