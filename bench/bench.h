/**
 * @file bench.h  Load-generator building blocks (bencode, /proc, report math,
 * HTTP response parsing) shared by build/bin/loadgen and its unit tests
 *
 * Functions returning int return 0 or an errno value.
 */

#ifndef BENCH_H
#define BENCH_H

#include <stddef.h>
#include <stdint.h>

/* ---- bencode (rtpengine's ng protocol) ---------------------------------- */

/** Growable-free output buffer: the caller owns the memory */
struct bench_benc {
	char *buf;
	size_t cap;
	size_t len;
	int err;        /**< sticky: ENOSPC once the buffer overflowed */
};

void bench_benc_init(struct bench_benc *b, char *buf, size_t cap);
void bench_benc_str(struct bench_benc *b, const char *s);
void bench_benc_bytes(struct bench_benc *b, const void *p, size_t n);
void bench_benc_int(struct bench_benc *b, int64_t v);
void bench_benc_dict(struct bench_benc *b);   /**< 'd' */
void bench_benc_list(struct bench_benc *b);   /**< 'l' */
void bench_benc_end(struct bench_benc *b);    /**< 'e' */
/** dict entry with a string value */
void bench_benc_kv_str(struct bench_benc *b, const char *k, const char *v);

enum bench_bnode_type {
	BENCH_BSTR = 0,
	BENCH_BINT,
	BENCH_BLIST,
	BENCH_BDICT,
};

/** One decoded value; strings point into the input (not NUL-terminated) */
struct bench_bnode {
	enum bench_bnode_type type;
	const char *s;     /**< BENCH_BSTR */
	size_t slen;
	int64_t i;         /**< BENCH_BINT */
	int n;             /**< LIST/DICT: children (dict: 2 per entry) */
	int next;          /**< index of the node after this subtree */
};

int bench_bdec(const char *in, size_t len, struct bench_bnode *nodes,
	       int max_nodes, int *n_nodes, size_t *used);
int bench_bdict_get(const struct bench_bnode *nodes, int dict,
		    const char *key);
int bench_blist_item(const struct bench_bnode *nodes, int list, int idx);
int bench_bnode_streq(const struct bench_bnode *n, const char *s);

/* ---- /proc ------------------------------------------------------------ */

/** CPU time of a process (all threads) in clock ticks */
struct bench_proc_cpu {
	uint64_t utime;
	uint64_t stime;
	int processor;    /**< CPU it last ran on */
};

int bench_proc_stat_parse(const char *text, struct bench_proc_cpu *pc);
int bench_proc_stat_read(int pid, struct bench_proc_cpu *pc);

/* ---- report math ------------------------------------------------------ */

/** Fixed histogram of durations in microseconds (0.1 ms bins up to 1 s) */
#define BENCH_HIST_BINS 10001
struct bench_hist {
	uint64_t bins[BENCH_HIST_BINS];
	uint64_t count;
	double max_us;
	double sum_us;
};

void bench_hist_reset(struct bench_hist *h);
void bench_hist_add(struct bench_hist *h, double us);
/** q in [0,1]; returns the upper edge of the bin in ms (0 if empty) */
double bench_hist_quantile_ms(const struct bench_hist *h, double q);

/** Figures of one steady window, as reported in latest.json */
struct bench_cpu_report {
	double cpu_per_leg_second;  /**< CPU seconds per leg-second */
	double legs_per_core;       /**< legs one core holds at real time */
	double core_load;           /**< cores busy during the window */
};

int bench_cpu_report(uint64_t ticks, long clk_tck, double window_s,
		     unsigned legs, struct bench_cpu_report *r);
double bench_loss_pct(uint64_t expected, uint64_t received);
int bench_generator_overloaded(double gen_core_load, double late_frac,
			       double max_lateness_ms, double ptime_ms);

/* ---- HTTP/1.1 responses ----------------------------------------------- */

/** Parsed response head; body_off is where the body starts in the input */
struct bench_http_resp {
	int status;
	long content_length;  /**< -1 if absent */
	int chunked;
	int close;
	size_t body_off;
};

/** EAGAIN if the head is not complete yet, EBADMSG if malformed */
int bench_http_parse_head(const char *buf, size_t len,
			  struct bench_http_resp *r);
/** Decode a complete chunked body in place; EAGAIN if incomplete */
int bench_http_dechunk(char *buf, size_t len, size_t *outlen);

/* ---- Prometheus text ------------------------------------------------ */

/** Sum of every sample of metric name (any labels); ENOENT if absent */
int bench_prom_sum(const char *text, const char *name, double *sum);

/** Cumulative histogram: upper bounds (seconds) and counts, summed over
 *  every label set; at most max buckets, sorted by bound */
struct bench_prom_hist {
	double le[32];
	double count[32];
	int n;
};
int bench_prom_hist(const char *text, const char *name,
		    struct bench_prom_hist *h);
/** Quantile in ms of the difference b - a of two histogram snapshots */
double bench_prom_hist_quantile_ms(const struct bench_prom_hist *a,
				   const struct bench_prom_hist *b, double q);

#endif
