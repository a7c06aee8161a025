/**
 * @file ue_media_int.h  uemedia: participant simulator pieces (ue/ private)
 *
 * uemedia is a conference participant: it sends a test signal as (S)RTP
 * every ptime in real time and records what it receives to a WAV file.
 * Its pieces (address parsing, RTP/RTCP framing, codecs, WAV files, tone
 * generator, levels) are separate so tests/ue_media/ can test each.
 * Library types (libopus, SpanDSP, speexdsp) stay inside the .c files.
 * Functions return 0 or an errno value unless documented otherwise.
 */

#ifndef UE_MEDIA_INT_H
#define UE_MEDIA_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "keyleg/keyleg.h"

/* ---- addresses (ue_media_addr.c) ---- */

/** Parse "A.B.C.D:PORT" or "[v6]:PORT" (numeric only) */
int ue_addr_parse(const char *s, struct sockaddr_storage *ss,
		  socklen_t *lenp);
/** Format an address as "A.B.C.D:PORT" / "[v6]:PORT" */
int ue_addr_format(const struct sockaddr *sa, char *out, size_t outsz);

/* ---- RTP / RTCP framing (ue_media_rtp.c) ---- */

#define UE_RTP_HDR_MIN 12
/** RFC 6464 level value meaning "silence / no level" */
#define UE_LEVEL_SILENT 127

/** What the sender puts in one RTP header */
struct ue_rtp_out {
	uint8_t pt;
	bool marker;
	uint16_t seq;
	uint32_t ts;
	uint32_t ssrc;
	uint8_t level_ext_id;  /**< RFC 6464 one-byte ext id, 0 = none     */
	uint8_t level;         /**< 0..127 (-dBov)                          */
	bool voice;            /**< RFC 6464 V flag                         */
};

/** A parsed RTP packet (points into the caller's buffer) */
struct ue_rtp_in {
	uint8_t pt;
	bool marker;
	uint16_t seq;
	uint32_t ts;
	uint32_t ssrc;
	const uint8_t *payload;
	size_t payload_len;
	int level;             /**< RFC 6464 level if found, else -1        */
	bool voice;
};

int ue_rtp_write(uint8_t *buf, size_t cap, const struct ue_rtp_out *h,
		 const uint8_t *payload, size_t plen, size_t *lenp);
int ue_rtp_parse(const uint8_t *buf, size_t len, uint8_t level_ext_id,
		 struct ue_rtp_in *in);
/** RFC 5761 demultiplexing: true if the packet looks like RTCP */
bool ue_is_rtcp(const uint8_t *buf, size_t len);

/** Receiver-side statistics of one source, RFC 3550 appendix A.3/A.8 */
struct ue_rx_src {
	bool valid;
	uint32_t ssrc;
	uint16_t max_seq;
	uint16_t bad_seq;      /**< RFC 3550 A.1: seq after a large jump   */
	uint32_t cycles;       /**< shifted count of seq number cycles      */
	uint32_t base_seq;
	uint32_t received;
	uint32_t expected_prior, received_prior;
	double jitter;         /**< in RTP timestamp units                 */
	int64_t last_transit;  /**< arrival (ts units) - RTP ts            */
	uint32_t lsr;          /**< middle 32 bits of last SR NTP stamp    */
	uint64_t lsr_at_ns;    /**< monotonic time the SR arrived          */
};

void ue_rx_src_update(struct ue_rx_src *s, uint32_t ssrc, uint16_t seq,
		      uint32_t rtp_ts, uint32_t arrival_ts);
/** Packets lost so far (expected - received, may be negative) */
int32_t ue_rx_src_lost(const struct ue_rx_src *s);

/** What the local side knows when writing an RTCP compound packet */
struct ue_rtcp_info {
	uint32_t ssrc;
	bool sender;           /**< write an SR (else an RR)               */
	uint64_t ntp;          /**< NTP timestamp of "now" (SR)            */
	uint32_t rtp_ts;       /**< RTP timestamp matching ntp (SR)        */
	uint32_t packets, octets;
	const char *cname;
	uint64_t now_ns;       /**< monotonic, for DLSR                    */
	bool bye;              /**< append a BYE (leaving the session)     */
};

/** Write SR/RR (+ one report block if src->valid) + SDES CNAME [+ BYE].
 *  Updates src's "prior" counters. */
int ue_rtcp_write(uint8_t *buf, size_t cap, const struct ue_rtcp_info *ri,
		  struct ue_rx_src *src, size_t *lenp);

/** Summary of an RTCP compound packet we received */
struct ue_rtcp_seen {
	unsigned n_sr, n_rr, n_sdes, n_bye, n_other;
	uint32_t sr_ssrc;
	uint32_t sr_ntp_mid;   /**< middle 32 bits of the SR's NTP stamp   */
};
int ue_rtcp_parse(const uint8_t *buf, size_t len, struct ue_rtcp_seen *seen);

/* ---- codecs (ue_media_codec.c) ---- */

enum ue_codec {
	UE_CODEC_OPUS = 0,
	UE_CODEC_PCMU,
	UE_CODEC_PCMA,
	UE_CODEC_G722,
};

int ue_codec_parse(const char *name, enum ue_codec *codecp);
const char *ue_codec_name(enum ue_codec codec);
/** Default audio sample rate of a codec */
uint32_t ue_codec_default_rate(enum ue_codec codec);
/** Static/default payload type */
uint8_t ue_codec_default_pt(enum ue_codec codec);
/** EINVAL if the codec cannot run at this audio rate */
int ue_codec_check_rate(enum ue_codec codec, uint32_t rate);
/** RTP clock rate of the payload format (Opus 48000, G.722 8000) */
uint32_t ue_codec_rtp_clock(enum ue_codec codec);

struct ue_codec_opts {
	int bitrate;           /**< Opus bits/s, 0 = 32000                 */
	int complexity;        /**< Opus 0..10, -1 = library default       */
};

struct ue_enc;
struct ue_dec;

int ue_enc_alloc(struct ue_enc **encp, enum ue_codec codec, uint32_t rate,
		 const struct ue_codec_opts *opts);
struct ue_enc *ue_enc_free(struct ue_enc *enc);
/** Encode exactly one frame of n samples */
int ue_enc_encode(struct ue_enc *enc, const int16_t *pcm, size_t n,
		  uint8_t *out, size_t cap, size_t *lenp);

int ue_dec_alloc(struct ue_dec **decp, enum ue_codec codec, uint32_t rate);
struct ue_dec *ue_dec_free(struct ue_dec *dec);
/** Decode one payload into at most cap samples; *np = samples written */
int ue_dec_decode(struct ue_dec *dec, const uint8_t *in, size_t len,
		  int16_t *pcm, size_t cap, size_t *np);

/* ---- WAV files (ue_media_wav.c): 16-bit PCM ---- */

/** Read a whole WAV file as mono 16-bit samples (channels averaged) */
int ue_wav_read(const char *path, int16_t **pcmp, size_t *np,
		uint32_t *ratep);
/** Write mono 16-bit PCM */
int ue_wav_write(const char *path, const int16_t *pcm, size_t n,
		 uint32_t rate);
/** Resample mono PCM (speexdsp); *outp is malloc'ed */
int ue_resample(const int16_t *in, size_t n, uint32_t from, uint32_t to,
		int16_t **outp, size_t *noutp);

/* ---- signals and levels (ue_media_tone.c) ---- */

struct ue_tone {
	double phase, step;    /**< radians                                */
	double amp;            /**< peak amplitude in sample units         */
};

/** A sine of hz at dbfs (0 dBFS = full-scale sine peak) */
int ue_tone_init(struct ue_tone *t, double hz, double dbfs, uint32_t rate);
void ue_tone_fill(struct ue_tone *t, int16_t *pcm, size_t n);
/** Parse "HZ[:DBFS]"; dbfs defaults to -20 */
int ue_tone_parse(const char *s, double *hzp, double *dbfsp);
#define UE_MAX_TALK 8
/** Speaking windows in seconds from the start: [start, end) */
struct ue_talk {
	double start[UE_MAX_TALK], end[UE_MAX_TALK];
	size_t n;              /**< 0 = always speaking                    */
};

/** Parse "S:E[,S:E...]" (seconds, S < E); EINVAL or E2BIG */
int ue_talk_parse(const char *s, struct ue_talk *t);
/** true if t says to speak at second sec (always when t->n == 0) */
bool ue_talk_active(const struct ue_talk *t, double sec);
/** RMS level in dBov (full-scale square = 0); -127 for silence */
double ue_level_dbov(const int16_t *pcm, size_t n);
/** RFC 6464 level byte (0..127 = -dBov) */
uint8_t ue_level_rfc6464(const int16_t *pcm, size_t n);

/* ---- receive timeline (ue_media_tone.c) ---- */

/** Decoded audio placed by RTP timestamp into a fixed-size buffer */
struct ue_timeline {
	int16_t *pcm;
	size_t cap;            /**< samples                                */
	size_t hi;             /**< highest sample index written + 1        */
	uint32_t rate;         /**< audio rate                              */
	uint32_t clock;        /**< RTP clock                               */
	bool anchored;
	uint32_t ssrc;
	uint32_t last_ts;
	int64_t ext_ts;        /**< unwrapped RTP timestamp of last packet */
	int64_t origin;        /**< sample index of ext_ts == 0            */
	uint64_t dropped;      /**< samples that fell outside the buffer   */
};

int ue_timeline_init(struct ue_timeline *tl, size_t cap, uint32_t rate,
		     uint32_t clock);
void ue_timeline_reset(struct ue_timeline *tl);
/** Put n decoded samples of a packet with (ssrc, ts); at_sample is where
 *  the packet would fall by arrival time, used when a new SSRC starts. */
void ue_timeline_put(struct ue_timeline *tl, uint32_t ssrc, uint32_t ts,
		     const int16_t *pcm, size_t n, size_t at_sample);

/* ---- the participant (ue_media.c) ---- */

enum ue_dir { UE_DIR_SENDRECV = 0, UE_DIR_SENDONLY, UE_DIR_RECVONLY };

struct ue_media_cfg {
	struct sockaddr_storage local, remote;
	socklen_t local_len, remote_len;
	enum ue_codec codec;
	uint32_t rate;         /**< audio sample rate                      */
	uint32_t ptime;        /**< ms                                     */
	uint8_t pt;
	struct ue_codec_opts copts;
	bool srtp;
	enum keyleg_profile profile;
	struct keyleg_keysalt rx, tx;
	uint8_t enc_ext[KEYLEG_MAX_ENC_EXT];
	size_t n_enc_ext;
	double tone_hz, tone_dbfs;  /**< tone_hz 0 = no tone               */
	struct ue_talk talk;        /**< when to speak (silence otherwise)  */
	const char *wav_in;
	bool loop;
	const char *wav_out;
	double duration;       /**< seconds                                */
	uint8_t level_ext_id;
	uint32_t ssrc;
	bool ssrc_set;
	enum ue_dir dir;
	double rtcp_interval;  /**< seconds, 0 = no RTCP                    */
	const char *cname;
};

struct ue_media_stats {
	uint64_t sent, received, rtcp_sent, rtcp_received;
	uint64_t auth_failures, replays, malformed, other_drops;
	uint64_t decode_errors, wrong_pt, late_sends;
	int64_t lost;
	double jitter_ms;
	uint32_t remote_ssrc;
	uint64_t rx_sources;   /**< SSRC changes seen (first one counts)   */
	uint64_t foreign;      /**< packets from an address not --remote   */
	uint64_t tl_dropped;   /**< samples outside the recording buffer   */
};

/** Fill a config with defaults (Opus 48 kHz, 20 ms, plain RTP, 5 s) */
void ue_media_cfg_init(struct ue_media_cfg *cfg);
int ue_media_cfg_check(const struct ue_media_cfg *cfg);
/** Run the participant until duration elapses or *stop becomes true */
int ue_media_run(const struct ue_media_cfg *cfg, volatile int *stop,
		 FILE *ready, struct ue_media_stats *st);
/** One "stats key=value ..." line */
int ue_media_stats_format(const struct ue_media_stats *st, char *out,
			  size_t outsz);

#endif
