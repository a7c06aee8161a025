/** @file loadgen_int.h  Load generator internals (bench folder only) */

#ifndef LOADGEN_INT_H
#define LOADGEN_INT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench/bench.h"

struct keyleg;

enum lg_codec {
	LG_OPUS = 0,
	LG_PCMU,
};

enum lg_target {
	LG_KEYMIX = 0,
	LG_JANUS,
	LG_RTPENGINE,
	LG_REFLECTOR,
};

enum lg_role {
	LG_SILENT = 0,    /**< sends low background noise */
	LG_TALKER,        /**< sends looped speech */
	LG_PROBE,         /**< sends a quiet tone with loud marks */
};

/** One pre-encoded 20 ms frame inside a bank */
struct lg_frame {
	uint32_t off;
	uint16_t len;
	uint8_t level;    /**< RFC 6464 level: -dBov, 0..127 */
	uint8_t mark;     /**< first frame of a probe mark */
};

/** Frames encoded once at start; legs loop over them */
struct lg_bank {
	uint8_t *data;
	struct lg_frame *frames;
	unsigned n;
};

/** The payload banks of one codec/rate */
struct lg_banks {
	struct lg_bank speech, silence, probe;
	unsigned samples;  /**< RTP timestamp step per frame */
	uint8_t pt;
};

/** A scenario: what the legs look like and how they group */
struct lg_scenario {
	const char *name;
	int transcode;         /**< 1: two-leg calls off the tick */
	unsigned conf_size;
	unsigned talkers;
	enum lg_codec codec_a; /**< every leg of a mix conference; leg A */
	enum lg_codec codec_b; /**< leg B of a call */
	int levels;            /**< RFC 6464 on every leg */
};

#define LG_LEVEL_EXT_ID 1
#define LG_PTIME_MS 20
#define LG_PKT_CAP 1600
#define LG_HEADROOM 0

/** Receive-side counters and checks of one leg */
struct lg_rx {
	uint64_t pkts;
	uint64_t checked;       /**< decrypted (sampled) */
	uint64_t auth_fail;
	uint64_t ssrc_bad;
	uint64_t pt_bad;
	uint64_t audio_frames;  /**< decoded frames above -50 dBov */
	uint64_t decoded;
	uint32_t ssrc;          /**< expected (0: learn from the first) */
	int started;
	uint16_t max_seq;
	uint32_t cycles;
	uint32_t base_seq;
	/* arrival regularity: lateness against the earliest arrival phase */
	int64_t phase_min_ns;
	int64_t first_ns;
	uint32_t first_ext;
	uint32_t rebases;       /**< RTP timestamp discontinuities seen */
	/* window snapshot */
	uint64_t win_pkts;
	uint32_t win_ext0;
	uint32_t win_ext1;
	int win_started;
};

struct lg_leg {
	unsigned conf;
	unsigned idx;            /**< index inside its conference/call */
	enum lg_codec codec;
	enum lg_role role;
	struct lg_banks *banks;
	uint8_t pt;
	uint32_t ssrc;
	uint16_t seq;
	uint32_t ts;
	unsigned pos;            /**< position in the bank */
	uint8_t phase;           /**< send slot inside the ptime (ms) */
	uint8_t level_ext;       /**< 0: none */
	uint8_t monitor;         /**< decode everything it receives */
	struct keyleg *kl;       /**< NULL: plain RTP */
	struct sockaddr_in remote;
	int peer;                /**< call partner (transcode), else -1 */
	void *dec;               /**< OpusDecoder for monitored legs */
	uint64_t tx;
	uint64_t win_tx0;
	struct lg_rx rx;
	char id[64];             /**< the system's leg/handle reference */
	/* probe detection on a monitored leg */
	int probe_armed;
};

/**
 * The packets of one mixing tick reach the generator within a short span:
 * grouping a conference's arrivals that are less than half a ptime apart,
 * the tick's lateness is the smallest lateness of its packets (the first
 * leg served on an on-time tick arrives at its baseline).
 */
struct lg_tick {
	int64_t start_ns;
	double min_us;
	int open;
};

/** Generator state */
struct lg {
	const struct lg_scenario *sc;
	enum lg_target target;
	int srtp;
	int complexity;
	unsigned n_legs, n_confs;
	struct lg_leg *legs;
	struct lg_banks opus, pcmu;
	int sock;
	uint16_t local_port;
	int32_t *port2leg;      /**< 65536 entries */
	/* timing */
	int64_t t0_ns;
	uint64_t slot;           /**< next 1 ms slot to serve */
	struct bench_hist send_late;
	struct bench_hist arr_late;   /**< per packet, against its leg */
	struct bench_hist tick_late;  /**< per conference tick (mix) */
	struct lg_tick *ticks;        /**< one per conference */
	struct bench_hist latency;
	uint64_t late_sends, sends;
	double max_send_late_ms;
	int64_t mark_sent_ns;    /**< time the probe's last mark went out */
	int in_window;
	unsigned sample_every;   /**< decrypt 1 in N on unmonitored legs */
	char err[256];
};

/* util */
int64_t lg_now_ns(void);
int lg_parse_hostport(const char *s, struct sockaddr_in *sa);
void lg_random(void *p, size_t n);
uint8_t lg_level_dbov(const int16_t *pcm, unsigned n);
double lg_rms_dbov(const int16_t *pcm, unsigned n);
uint8_t lg_ulaw_enc(int16_t pcm);
int16_t lg_ulaw_dec(uint8_t u);

/* audio: banks made once at start */
int lg_audio_load_speech(const char *wav_or_null, int16_t **pcm48,
			 unsigned *n48, int *from_espeak);
int lg_banks_make(struct lg_banks *b, enum lg_codec codec,
		  const int16_t *speech48, unsigned n48);
void lg_banks_free(struct lg_banks *b);

/* rtp */
size_t lg_rtp_build(uint8_t *buf, uint8_t pt, uint16_t seq, uint32_t ts,
		    uint32_t ssrc, int ext_id, uint8_t level, int vad,
		    const uint8_t *payload, size_t plen);
int lg_rtp_parse(const uint8_t *buf, size_t len, uint8_t *pt, uint16_t *seq,
		 uint32_t *ssrc, size_t *payload_off);

/* blocking HTTP client */
struct lg_http {
	struct sockaddr_in addr;
	int fd;
	char host[64];
};
int lg_http_request(struct lg_http *h, const char *method, const char *path,
		    const char *token, const char *body, int *status,
		    char *resp, size_t cap);
void lg_http_close(struct lg_http *h);
char *lg_http_get(const char *control, const char *path, const char *token,
		  int *status);

/* engine */
int lg_engine_open(struct lg *g);
int lg_leg_keys(struct lg *g, struct lg_leg *l, char *rx_b64, char *tx_b64,
		size_t cap);
int lg_engine_run(struct lg *g, double warmup_s, double window_s,
		  void (*window_edge)(struct lg *g, int start, void *arg),
		  void *arg);
void lg_engine_close(struct lg *g);

/* setup of each system */
int lg_setup_keymix(struct lg *g, const char *control, const char *token);
int lg_teardown_keymix(struct lg *g, const char *control, const char *token);
int lg_setup_janus(struct lg *g, const char *control);
int lg_setup_rtpengine(struct lg *g, const char *control);
int lg_teardown_rtpengine(struct lg *g, const char *control);

/* the reflector: a tiny stand-in bridge with the same control API */
int lg_reflector_run(const char *control, const char *token_file);

const struct lg_scenario *lg_scenario_find(const char *name);

#endif
