/**
 * @file bridge_int.h  Folder-private types of the bridge (not a public API)
 *
 * Object tree:  bridge -> worker -> conf -> leg -> keyleg context.
 * The control thread owns struct bridge and the conference registry; a
 * worker thread owns its conferences and everything under them, and is the
 * only thread that touches them (the control thread asks it through
 * worker_call()).
 */

#ifndef BRIDGE_INT_H
#define BRIDGE_INT_H

#include <stdatomic.h>
#include <stdint.h>
#include <stddef.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <liburing.h>
#include "bridge/bridge.h"
#include "keyleg/keyleg.h"
#include "mixer/mixer.h"

/* ---- rtp.c: packet formats, receive statistics ---- */

struct rtp_hdr {
	uint8_t pt;
	int marker;
	uint16_t seq;
	uint32_t ts, ssrc;
	size_t hdr_len;          /**< fixed header + CSRCs + extension   */
	uint16_t ext_profile;
	const uint8_t *ext;      /**< extension data (after its header)  */
	size_t ext_len;
	size_t payload_len;      /**< without padding                    */
};

struct rtp_event {
	uint8_t event, volume;
	int end;
	uint16_t duration;
};

struct rtp_rxstats {
	int init;
	uint32_t ssrc;
	uint16_t max_seq;
	uint32_t cycles, base_seq, received;
	uint32_t expected_prior, received_prior;
	int32_t transit;
	int have_transit;
	uint32_t jitter;         /**< RFC 3550 A.8 estimate, times 16     */
};

struct rtcp_report {
	uint32_t ssrc;
	int sender;
	uint64_t ntp;
	uint32_t rtp_ts, packets, octets;
	int have_block;
	uint32_t src_ssrc;
	uint8_t fraction;
	int64_t cum_lost;
	uint32_t ext_max, jitter, lsr, dlsr;
	const char *cname;
};

struct rtcp_info {
	int have_sr, have_rb, bye;
	uint32_t sr_ssrc, sr_ntp_mid;
	uint8_t fraction;
	int32_t cum_lost;
	uint32_t jitter, lsr, dlsr;
};

int rtp_is_rtcp(const uint8_t *p, size_t len);
int rtp_parse(const uint8_t *p, size_t len, struct rtp_hdr *h);
int rtp_audio_level(const struct rtp_hdr *h, uint8_t id, uint8_t *levelp,
		    int *voicep);
size_t rtp_write_hdr(uint8_t *p, uint8_t pt, int marker, uint16_t seq,
		     uint32_t ts, uint32_t ssrc);
int rtp_event_parse(const uint8_t *pl, size_t len, struct rtp_event *ev);
void rtp_rxstats_update(struct rtp_rxstats *s, uint32_t ssrc, uint16_t seq,
			uint32_t ts, uint32_t arrival, int timing);
uint32_t rtp_rxstats_ext_max(const struct rtp_rxstats *s);
int64_t rtp_rxstats_lost(const struct rtp_rxstats *s);
uint8_t rtp_rxstats_fraction(struct rtp_rxstats *s);
double rtp_rxstats_jitter_ms(const struct rtp_rxstats *s, uint32_t clock);
size_t rtcp_build(uint8_t *p, size_t cap, const struct rtcp_report *r);
size_t rtcp_build_bye(uint8_t *p, size_t cap, uint32_t ssrc);
int rtcp_parse(const uint8_t *p, size_t len, uint32_t our_ssrc,
	       struct rtcp_info *info);

/* ---- pool.c: packet buffers made at start ---- */

#define PKT_HEADROOM 64
#define PKT_MTU 1500
#define PKT_BUFSZ (PKT_HEADROOM + PKT_MTU + KEYLEG_TAILROOM)

struct pkt {
	struct pkt *next;        /**< free list link                     */
	size_t len;              /**< bytes at data()                    */
	uint8_t buf[PKT_BUFSZ];
};

struct pool {
	struct pkt *mem;
	struct pkt *free;
	size_t n, nfree, low;    /**< low: fewest free ever seen          */
	uint64_t exhausted;      /**< gets that found the pool empty      */
};

int pool_init(struct pool *p, size_t n);
void pool_fini(struct pool *p);
struct pkt *pool_get(struct pool *p);
void pool_put(struct pool *p, struct pkt *k);

static inline uint8_t *pkt_data(struct pkt *k)
{
	return k->buf + PKT_HEADROOM;
}

/** capacity from data() on, tailroom included */
#define PKT_CAP (PKT_MTU + KEYLEG_TAILROOM)

/* ---- addresses (addr.c) ---- */

struct baddr {
	struct sockaddr_storage ss;
	socklen_t len;
};

int baddr_parse(struct baddr *a, const char *str);
int baddr_format(const struct baddr *a, char *buf, size_t sz);
int baddr_equal(const struct baddr *a, const struct baddr *b);
uint16_t baddr_port(const struct baddr *a);
uint64_t bridge_now_us(void);
void bridge_secmem_init(void);

/* ---- legs and conferences (conf.c, leg.c) ---- */

enum leg_dir {
	DIR_SENDRECV = 0,
	DIR_SENDONLY,
	DIR_RECVONLY,
	DIR_INACTIVE,
};

enum conf_mode {
	MODE_MIX = 0,
	MODE_TRANSCODE,
};

struct opus_opts {
	int complexity, bitrate, fec, dtx;
};

/** Leg request, filled from the API's JSON before the leg exists */
struct leg_params {
	char participant[256];
	enum mix_codec codec;
	unsigned rate, ptime, pt;
	struct baddr remote;
	enum leg_dir dir;
	int level_ext;           /**< RFC 6464 id, 0 = none               */
	int te_pt;               /**< RFC 4733 payload type, -1 = none    */
	struct opus_opts opus;
	int opus_override;       /**< opus set for this leg               */
	int srtp;                /**< 0: plain RTP                         */
	enum keyleg_profile profile;
	struct keyleg_opts kopts;
	struct keyleg_keysalt rx, tx;
	int kms;                 /**< key came from the KMS                */
	char kms_conf[256];
	char kms_participant[256];
	uint64_t key_generation;
};

struct leg_counters {
	uint64_t packets_in, packets_out, octets_out;
	uint64_t auth_failures, replays, malformed;
	uint64_t rtcp_in, rtcp_out, events_in, events_out;
	uint64_t latches, dropped_pool, send_errors;
};

struct worker;
struct conf;

struct leg {
	struct leg *next;
	struct conf *conf;
	char id[24];
	struct leg_params par;   /**< keys wiped once installed           */
	uint32_t clock;          /**< RTP clock of the payload format     */
	int fd;
	struct event *ev;
	uint16_t port;
	struct baddr local, remote;
	struct keyleg *kl;
	struct mix_leg *ml;
	/* our stream: own SSRC, sequence, timestamp */
	uint32_t ssrc;
	uint16_t seq;
	uint32_t ts;
	int muted;
	double gain_db;
	/* receive side */
	struct rtp_rxstats rx;
	struct leg_counters cnt;
	int last_event;          /**< last RFC 4733 event code, -1 none    */
	uint32_t te_ts_in, te_ts_out;
	/* RTCP */
	uint32_t sr_ntp_mid;     /**< middle 32 bits of the last SR's NTP */
	uint64_t sr_arrival_us;
	double rtt_ms;
	uint8_t remote_fraction;
	int32_t remote_lost;
	uint64_t next_rtcp_us;
	uint64_t last_in_us;     /**< last verified packet (or creation)  */
};

struct conf {
	struct conf *next;       /**< in the worker's list               */
	char id[128];
	enum conf_mode mode;
	unsigned rate, ptime, max_talkers;
	struct opus_opts opus;
	struct worker *w;
	struct mix_conf *mix;
	uint64_t next_tick_us;
	struct leg *legs;
	unsigned nlegs, leg_seq;
};

/* ---- worker.c ---- */

typedef void (worker_call_h)(struct worker *w, void *arg);

#define WORKER_RECV_BATCH 16
#define WORKER_PRIOS 2    /* 0: the mixing clock; 1: sockets, control */
#define WORKER_PRIO_IO 1
#define WORKER_SEND_BATCH 32

/* tick lateness histogram (start of a conference's tick minus its grid
 * time): upper bounds in µs, the last bucket is +Inf */
#define TICK_LATE_BUCKETS 13
extern const uint32_t tick_late_le_us[TICK_LATE_BUCKETS - 1];

struct worker_stats {
	uint64_t ticks, late_ticks, resyncs;
	uint64_t late_hist[TICK_LATE_BUCKETS]; /**< per bucket, not summed */
	uint64_t late_sum_us;
	uint64_t busy_ns, window_start_ns;
	struct leg_counters gone;  /**< counters of legs already freed  */
	uint64_t timed_out;        /**< legs freed by leg-timeout-ms     */
};

struct worker {
	unsigned idx;
	struct bridge *b;
	pthread_t thr;
	int started;
	struct event_base *base;
	int cmd_pipe[2];
	struct event *cmd_ev;
	int tfd;
	struct event *tick_ev;
	struct pool pool;
	struct conf *confs;
	/* what the control thread may read without a call */
	atomic_uint load_permille;
	atomic_uint nlegs;
	atomic_uint nconfs;
	struct worker_stats st;
	/* receive batch */
	struct mmsghdr rmsg[WORKER_RECV_BATCH];
	struct iovec riov[WORKER_RECV_BATCH];
	struct sockaddr_storage raddr[WORKER_RECV_BATCH];
	struct pkt *rpkt[WORKER_RECV_BATCH];
	/* send queue, flushed in one io_uring submission (uring_ok) or
	 * with sendmmsg per run of one socket */
	struct mmsghdr smsg[WORKER_SEND_BATCH];
	struct iovec siov[WORKER_SEND_BATCH];
	struct pkt *spkt[WORKER_SEND_BATCH];
	int sfd[WORKER_SEND_BATCH];
	unsigned nsend;
	struct io_uring ring;      /**< set up by worker_start, then used
				        by the worker thread only          */
	int uring_ok;              /**< 1: sends through the ring; -1: it
				        failed, sendmmsg (ring still open);
				        0: no ring                         */
	int stop;
};

typedef void (conf_tick_h)(struct conf *c, uint64_t grid_us);
unsigned conf_clock_run(struct conf *c, uint64_t now_us,
			conf_tick_h *tick, struct worker_stats *st);
#define CONF_PTIME_MAX 60
uint64_t conf_first_tick(const struct conf *others, const struct conf *c,
			 uint64_t now_us);
int worker_start(struct worker *w, struct bridge *b, unsigned idx,
		 size_t pool_bufs);
void worker_stop(struct worker *w);
int worker_call(struct worker *w, worker_call_h *fn, void *arg);
void worker_send(struct worker *w, int fd, struct pkt *k,
		 const struct baddr *to);
void worker_flush(struct worker *w);
void worker_arm(struct worker *w);
void worker_conf_attach(struct worker *w, struct conf *c);
void worker_conf_detach(struct worker *w, struct conf *c);

/* ---- conf.c / leg.c (worker thread only) ---- */

int conf_mix_alloc(struct conf *c);
void conf_tick(struct conf *c, uint64_t now_us);
struct conf *conf_free(struct conf *c);
int leg_create(struct leg **legp, struct conf *c,
	       const struct leg_params *par, int fd,
	       const struct baddr *local, uint16_t port);
struct leg *leg_free(struct leg *l);
void leg_recv_cb(int fd, short what, void *arg);
void leg_process(struct leg *l, struct pkt *k, const struct baddr *src,
		 uint64_t now_us);
void leg_rtcp_maybe(struct leg *l, uint64_t now_us, int bye);
struct leg *conf_leg_find(struct conf *c, const char *id);
int leg_talking(const struct leg *l, double *level_dbov);
int leg_set_mute(struct leg *l, int muted);
int leg_set_gain(struct leg *l, double gain_db);
int leg_set_dir(struct leg *l, enum leg_dir dir);
int leg_rekey(struct leg *l, const struct keyleg_keysalt *rx,
	      const struct keyleg_keysalt *tx);

/* ---- ports.c (control thread) ---- */

struct ports {
	uint16_t lo, hi, next;
	uint8_t *used;           /**< one byte per port in the range       */
};

int ports_init(struct ports *p, uint16_t lo, uint16_t hi);
void ports_fini(struct ports *p);
int ports_open(struct ports *p, const struct baddr *remote, int *fdp,
	       struct baddr *local, uint16_t *portp);
void ports_release(struct ports *p, uint16_t port);

/* ---- request bodies (apijson.c): 0 or an HTTP status ---- */

#define API_ERRSZ 256

typedef struct json_t json_t;

const char *dir_name(enum leg_dir d);
const char *mode_name(enum conf_mode m);
const char *codec_api_name(enum mix_codec c);
int dir_parse(const char *s, enum leg_dir *dp);
int apij_get_str(json_t *o, const char *key, const char **v, int req,
		 char *err);
int apij_get_int(json_t *o, const char *key, long long *v, char *err);
int apij_get_num(json_t *o, const char *key, double *v, int *present,
		 char *err);
int apij_get_bool(json_t *o, const char *key, int *v, int *present,
		  char *err);
int apij_id_valid(const char *s);
int apij_b64_decode(const char *s, uint8_t *out, size_t cap, size_t *lenp);
int apij_parse_inline(json_t *in, enum keyleg_profile profile,
		      struct leg_params *par, char *err);
int apij_parse_opus(json_t *o, struct opus_opts *op, char *err);
int apij_parse_leg(json_t *j, const struct conf *c,
		   struct leg_params *par, char *err);

/* ---- the bridge (bridge.c) ---- */

struct kms_client;
struct kmslink;
struct ssl_ctx_st;
struct evhttp;
struct event;
struct event_base;

struct confref {
	struct confref *next;
	struct conf *c;          /**< owned by c->w once attached         */
};

struct bridge {
	struct bridge_cfg cfg;
	struct event_base *base;
	struct evhttp *http;
	struct evhttp_bound_socket *sock;
	struct ssl_ctx_st *tls;          /**< control listener TLS or NULL */
	char token[256];
	size_t token_len;
	struct event *sig_hup, *sig_term, *sig_int;
	struct kms_client *kms;          /**< used by the KMS thread only  */
	struct kmslink *kmsl;
	struct worker *workers;
	unsigned nworkers;
	struct ports ports;
	struct confref *confs;
	unsigned nconfs;
	char control_addr[BRIDGE_HOST_MAX + 16];
	int stopping;
	uint64_t started_us;
	/* control-thread counters for /metrics */
	uint64_t http_requests, http_errors[6];
	uint64_t kms_fetches, kms_failures, legs_refused;
};

int api_init(struct bridge *b);
int api_tls_load(struct bridge *b, char *err, size_t errsz);
struct worker *bridge_pick_worker(struct bridge *b);

/* ---- kmslink.c: the NDS client on the KMS thread ---- */
struct kms_job;
typedef void (kms_job_h)(struct kms_job *job, void *arg);

struct kms_job {
	struct kms_job *next;
	struct bridge *b;
	char conf_ref[256];
	char participant[256];
	enum keyleg_profile profile;
	/* results */
	int err;
	char msg[200];
	struct keyleg_keysalt rx, tx;
	uint32_t generation;
	/* continuation, on the control thread */
	kms_job_h *done;
	void *arg;
};

int kmslink_open(struct bridge *b, char *err, size_t errsz);
void kmslink_close(struct bridge *b);
int kmslink_reload(struct bridge *b);
int kmslink_submit(struct bridge *b, struct kms_job *job);

/* ---- metrics.c ---- */
struct evbuffer;
int metrics_write(struct bridge *b, struct evbuffer *out);

#endif
