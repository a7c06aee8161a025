/**
 * @file mix_conf.h  Conference, leg and stream objects (mixer/ private)
 *
 * Object tree: mix_conf -> mix_leg[] (input: jitter buffer + decoder;
 * output: own stream) and mix_conf -> mix_group list (one shared stream
 * per distinct encoder setting).  All of it is allocated when a leg is
 * added; the tick and the packet path only touch what is already there.
 */

#ifndef MIX_CONF_H
#define MIX_CONF_H

#include "mixer/mix_int.h"

/* one encoded output stream: a group's shared one or a leg's own */
struct mix_stream {
	struct mix_enc enc;
	struct mix_lim lim;
	unsigned acc_n;          /* samples gathered for the next packet */
	bool active;             /* group: running this packet cycle    */
	bool out_ready;          /* a packet was encoded this tick      */
	size_t out_len;
	int16_t acc[MIX_PKT_MAX];
	int16_t hist[MIX_FRAME_MAX]; /* last input, to prime a clone    */
	unsigned nhist;
	uint8_t out[MIX_PAYLOAD_MAX];
};

struct mix_group {
	struct mix_group *next;
	unsigned refs;
	enum mix_codec codec;
	unsigned crate, ptime_ms;
	struct mix_opus_cfg ocfg;
	float gain_out_db;
	unsigned ticks;          /* ticks per packet                    */
	struct mix_stream st;
};

enum mix_src {
	SRC_NONE = 0,
	SRC_SHARED,
	SRC_OWN
};

struct mix_leg {
	struct mix_conf *conf;
	void *arg;
	unsigned idx;
	struct mix_leg_cfg cfg;
	unsigned crate, clock, ticks;
	float gin, gout;
	struct mix_opus_cfg ocfg;

	/* input */
	struct mix_dec dec;
	struct mix_jb jb;
	unsigned fifo_n;
	bool levels;             /* packets carry RFC 6464 levels        */
	bool vad_idle;           /* this tick: Opus VAD flags say silence */
	unsigned vad_probe;      /* idle ticks until a decode to meter   */
	bool playing;            /* decoder has produced audio           */
	bool need_reset;         /* frames were skipped: reset decoder   */
	bool have_pcm;
	int cur_level;           /* -dBov of the last packet consumed    */
	unsigned conc_run;       /* consecutive concealed samples        */
	float flevel, slevel;    /* frame and smoothed level, dBov       */
	unsigned hang, talk_ticks;
	bool active, talker, tried;

	/* transcode input */
	bool t_started;
	uint32_t t_last32;
	int64_t t_last_ext, t_expect;

	/* output */
	struct mix_group *grp;
	enum mix_src src;
	unsigned own_hang;
	uint64_t since;          /* clock since the last sent packet    */
	bool sent_any, marker_next;

	struct mix_leg_stats st;

	int16_t pcm[MIX_FRAME_MAX];
	int32_t contrib[MIX_FRAME_MAX];
	int16_t fifo[MIX_FIFO_MAX];
	struct mix_stream own;
};

struct mix_conf {
	struct mix_conf_cfg cfg;
	mix_out_h *outh;
	void *arg;
	unsigned frame;          /* samples per tick                    */
	uint64_t tick_no;
	uint64_t now_us;
	struct mix_leg *legs[MIX_LEGS_MAX];
	unsigned nlegs;
	struct mix_group *groups;
	bool passthrough;        /* transcode: same codec and settings  */
	bool rate_auto;          /* transcode: rate follows the legs    */
	struct mix_cnt cnt;
	struct mix_conf_stats st;
	int32_t mix[MIX_FRAME_MAX];
	int32_t tmp32[MIX_FRAME_MAX];
	int16_t scratch[MIX_IN_DUR_MAX];
};

/* mixer.c */
void mix_stream_send(struct mix_leg *l, struct mix_stream *s);
void mix_stream_push(struct mix_conf *c, struct mix_stream *s,
		     const int32_t *in, unsigned n, struct mix_leg *sendto);

/* transcode.c */
int mix_transcode_put(struct mix_leg *l, const uint8_t *payload,
		      size_t len, uint32_t rtp_ts, bool marker);
void mix_transcode_setup(struct mix_conf *c);

#endif
