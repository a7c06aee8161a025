/**
 * @file mixer.h  Audio engine: codecs, jitter buffers, N-1 mixing, transcode
 *
 * A conference (struct mix_conf) owns legs (struct mix_leg).  It has no
 * sockets and no clock of its own: the caller feeds received RTP payloads
 * with mix_put() and, in MIX mode, calls mix_tick() once per conference
 * ptime.  Encoded payloads leave through the conference's mix_out_h, which
 * the caller packetises under the leg's own SSRC, sequence and timestamp.
 *
 * Words: "recv" = the bridge receives audio from this leg (it can be
 * mixed); "send" = the bridge sends audio to this leg (mix_out_h is called
 * for it).  A leg's "rate" is its audio sample rate; RTP timestamps follow
 * the payload format's clock (mix_codec_clock()).
 *
 * Everything is allocated in mix_conf_alloc()/mix_leg_add(); mix_put() and
 * mix_tick() allocate nothing, lock nothing and log nothing.  A conference
 * is not thread-safe: one thread owns it.
 *
 * All functions returning int return 0 or an errno value.
 */

#ifndef MIXER_H
#define MIXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__)
#define MIX_WUR __attribute__((warn_unused_result))
#else
#define MIX_WUR
#endif

/** Largest payload mix_put() accepts and mix_out_h is ever given */
#define MIX_PAYLOAD_MAX 1500
/** Largest leg ptime in ms */
#define MIX_PTIME_MAX 60
/** Largest number of legs in one conference */
#define MIX_LEGS_MAX 256

enum mix_codec {
	MIX_CODEC_OPUS = 0,
	MIX_CODEC_PCMU,
	MIX_CODEC_PCMA,
	MIX_CODEC_G722,
	MIX_CODEC_COUNT
};

enum mix_mode {
	MIX_MODE_MIX = 0,  /**< N-way conference, driven by mix_tick()    */
	MIX_MODE_TRANSCODE /**< two legs, per packet, no tick needed      */
};

struct mix_conf;
struct mix_leg;

/** Opus encoder settings */
struct mix_opus_cfg {
	int complexity;  /**< 0..10                                         */
	int bitrate;     /**< bit/s; 0 = libopus automatic                  */
	bool fec;        /**< in-band FEC (LBRR) in what we send            */
	bool dtx;        /**< discontinuous transmission in what we send    */
};

/** Conference settings; start from mix_conf_cfg_default() */
struct mix_conf_cfg {
	enum mix_mode mode;
	unsigned rate;        /**< internal rate: 8000/16000/24000/48000;
				   TRANSCODE also 0 = the lower of the two
				   legs' audio rates (Opus counts 48000),
				   at least 16000 with an Opus leg      */
	unsigned ptime_ms;    /**< tick: 10 or 20                           */
	unsigned max_talkers; /**< N loudest mixed (1..16), default 3       */
	struct mix_opus_cfg opus; /**< default for Opus legs                */
	unsigned jb_min_ms;   /**< jitter buffer target floor (default 20)  */
	unsigned jb_max_ms;   /**< jitter buffer target ceiling (def. 200)  */
};

/** Leg settings; start from mix_leg_cfg_default() */
struct mix_leg_cfg {
	enum mix_codec codec;
	unsigned rate;        /**< audio rate; 0 = codec default.  Opus legs
				   always run at the conference rate;
				   PCMU/PCMA 8000, G.722 16000             */
	unsigned ptime_ms;    /**< multiple of the tick, 10..60; 0 = tick   */
	bool opus_override;   /**< use .opus instead of the conference's   */
	struct mix_opus_cfg opus;
	bool send;            /**< bridge -> leg audio                       */
	bool recv;            /**< leg -> bridge audio                       */
	float gain_in_db;     /**< applied to what the leg sends us         */
	float gain_out_db;    /**< applied to what we send the leg          */
	bool muted;           /**< input ignored and never decoded          */
};

/**
 * Output of one payload for a leg.
 *
 * @param leg      the leg to send to (mix_leg_arg() gives its leg_arg)
 * @param payload  encoded payload (valid only during the call)
 * @param len      payload length in bytes
 * @param ts_inc   RTP timestamp of this packet minus that of the previous
 *                 packet sent on this leg, in the payload format's clock
 *                 (Opus 48000, G.711/G.722 8000); 0 for the first packet.
 *                 Gaps (DTX, silence) are included.
 * @param marker   RTP marker bit (first packet of a talkspurt)
 * @param arg      the conference's handler argument
 */
typedef void (mix_out_h)(struct mix_leg *leg, const uint8_t *payload,
			 size_t len, uint32_t ts_inc, bool marker, void *arg);

struct mix_leg_stats {
	bool talking;         /**< among the mixed talkers now              */
	float level_dbov;     /**< smoothed input level (-127..0)           */
	unsigned jb_delay_ms; /**< audio buffered now                       */
	unsigned jb_target_ms;/**< adaptive target delay                    */
	uint64_t packets_in;  /**< mix_put() calls accepted                 */
	uint64_t decodes;     /**< frames decoded from payload              */
	uint64_t concealed;   /**< frames made by PLC                       */
	uint64_t fec_used;    /**< frames recovered from Opus in-band FEC   */
	uint64_t skipped;     /**< frames not decoded (silent or muted)     */
	uint64_t late;        /**< packets after their playout time         */
	uint64_t dup;         /**< duplicate packets                        */
	uint64_t overflow;    /**< packets dropped: buffer full / too far   */
	uint64_t resyncs;     /**< jitter buffer restarts (big jumps)       */
	uint64_t encodes;     /**< own (N-1 or transcode) encodes           */
	uint64_t packets_out; /**< mix_out_h calls                          */
	uint64_t passthrough; /**< transcode: payloads passed untouched     */
};

struct mix_conf_stats {
	uint64_t ticks;
	uint64_t decodes;
	uint64_t encodes;       /**< shared + own                           */
	uint64_t concealments;
	uint64_t passthrough;
	unsigned last_tick_decodes;
	unsigned last_tick_encodes;
	unsigned last_tick_concealments;
	unsigned legs;
	unsigned talkers;
	unsigned rate;          /**< internal rate now (automatic: chosen
				     when the second leg is added)      */
};

/* codecs */
const char *mix_codec_name(enum mix_codec codec);
int mix_codec_parse(const char *name, enum mix_codec *codecp);
unsigned mix_codec_clock(enum mix_codec codec);
int mix_codec_static_pt(enum mix_codec codec); /* -1 = dynamic */

/* conference */
void mix_conf_cfg_default(struct mix_conf_cfg *cfg);
int mix_conf_alloc(struct mix_conf **cp, const struct mix_conf_cfg *cfg,
		   mix_out_h *outh, void *arg) MIX_WUR;
struct mix_conf *mix_conf_free(struct mix_conf *c);
int mix_tick(struct mix_conf *c, uint64_t now_us);
void mix_conf_stats_get(const struct mix_conf *c, struct mix_conf_stats *st);
unsigned mix_talkers(const struct mix_conf *c, struct mix_leg **v,
		     unsigned n);

/* legs */
void mix_leg_cfg_default(struct mix_leg_cfg *cfg, enum mix_codec codec);
int mix_leg_add(struct mix_conf *c, struct mix_leg **lp,
		const struct mix_leg_cfg *cfg, void *leg_arg) MIX_WUR;
struct mix_leg *mix_leg_remove(struct mix_leg *l);
void *mix_leg_arg(const struct mix_leg *l);
void mix_leg_cfg_get(const struct mix_leg *l, struct mix_leg_cfg *cfg);
/* send, recv, muted, gains only; other fields must be unchanged (ENOTSUP) */
int mix_leg_update(struct mix_leg *l, const struct mix_leg_cfg *cfg);
void mix_leg_stats_get(const struct mix_leg *l, struct mix_leg_stats *st);

/**
 * Feed one received RTP payload.  MIX mode: queued in the leg's jitter
 * buffer.  TRANSCODE mode: decoded (with concealment of any gap) and
 * encoded for the other leg at once, calling mix_out_h before returning;
 * same codec and settings on both legs: passed through untouched.
 *
 * Muted or non-receiving legs: counted and dropped (never decoded).
 * Late and duplicate packets are counted and dropped (return 0).
 *
 * @param audio_level  -1 = none, else 0..127 (-dBov, RFC 6464)
 * @param voice        RFC 6464 V bit (accepted, not used yet)
 * @param now_us       monotonic arrival time in microseconds, on the
 *                     same clock as mix_tick()'s
 * @return 0, EINVAL (bad arguments or level), EBADMSG/EMSGSIZE (payload
 *         not of the leg's codec), ENOSPC (jitter buffer full)
 */
int mix_put(struct mix_leg *l, const uint8_t *payload, size_t len,
	    uint16_t seq, uint32_t rtp_ts, bool marker, int audio_level,
	    bool voice, uint64_t now_us);

#endif
