/**
 * @file metrics.c  GET /metrics in the Prometheus text format (0.0.4)
 *
 * Totals are summed per worker on the worker's own thread (worker_call),
 * so no counter is ever shared between threads.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <event2/buffer.h>
#include "bridge/bridge_int.h"

#define LEG_FAMILIES 5

struct msnap {
	struct evbuffer *legs[LEG_FAMILIES]; /**< per-leg series, by family */
	struct leg_counters sum;
	uint64_t ticks, late_ticks, resyncs, pool_exhausted, timed_out;
	uint64_t late_hist[TICK_LATE_BUCKETS], late_sum_us;
	size_t pool_free, pool_low, pool_n;
	unsigned load, nlegs;
};

static const char *const leg_family[LEG_FAMILIES][3] = {
	{"keymix_bridge_leg_packets_in_total", "counter",
	 "per leg: RTP packets accepted"},
	{"keymix_bridge_leg_packets_out_total", "counter",
	 "per leg: RTP packets sent"},
	{"keymix_bridge_leg_auth_failures_total", "counter",
	 "per leg: SRTP authentication failures"},
	{"keymix_bridge_leg_lost", "gauge",
	 "per leg: cumulative packets lost (RFC 3550)"},
	{"keymix_bridge_leg_jitter_ms", "gauge",
	 "per leg: interarrival jitter in ms"},
};

static void sum_add(struct leg_counters *a, const struct leg_counters *b)
{
	a->packets_in += b->packets_in;
	a->packets_out += b->packets_out;
	a->auth_failures += b->auth_failures;
	a->replays += b->replays;
	a->malformed += b->malformed;
	a->rtcp_in += b->rtcp_in;
	a->rtcp_out += b->rtcp_out;
	a->events_in += b->events_in;
	a->latches += b->latches;
	a->send_errors += b->send_errors;
	a->dropped_pool += b->dropped_pool;
}

static void call_snap(struct worker *w, void *arg)
{
	struct msnap *s = arg;
	struct conf *c;
	struct leg *l;

	memset(&s->sum, 0, sizeof(s->sum));
	sum_add(&s->sum, &w->st.gone);
	for (c = w->confs; c; c = c->next) {
		for (l = c->legs; l; l = l->next) {
			sum_add(&s->sum, &l->cnt);
#define LBL "{conference=\"%s\",leg=\"%s\"} "
			evbuffer_add_printf(s->legs[0], "%s" LBL "%llu\n",
				leg_family[0][0], c->id, l->id,
				(unsigned long long)l->cnt.packets_in);
			evbuffer_add_printf(s->legs[1], "%s" LBL "%llu\n",
				leg_family[1][0], c->id, l->id,
				(unsigned long long)l->cnt.packets_out);
			evbuffer_add_printf(s->legs[2], "%s" LBL "%llu\n",
				leg_family[2][0], c->id, l->id,
				(unsigned long long)l->cnt.auth_failures);
			evbuffer_add_printf(s->legs[3], "%s" LBL "%lld\n",
				leg_family[3][0], c->id, l->id,
				(long long)rtp_rxstats_lost(&l->rx));
			evbuffer_add_printf(s->legs[4], "%s" LBL "%.3f\n",
				leg_family[4][0], c->id, l->id,
				rtp_rxstats_jitter_ms(&l->rx, l->clock));
#undef LBL
		}
	}
	s->ticks = w->st.ticks;
	s->late_ticks = w->st.late_ticks;
	memcpy(s->late_hist, w->st.late_hist, sizeof(s->late_hist));
	s->late_sum_us = w->st.late_sum_us;
	s->resyncs = w->st.resyncs;
	s->pool_exhausted = w->pool.exhausted;
	s->timed_out = w->st.timed_out;
	s->pool_free = w->pool.nfree;
	s->pool_low = w->pool.low;
	s->pool_n = w->pool.n;
	s->load = atomic_load(&w->load_permille);
	s->nlegs = atomic_load(&w->nlegs);
}

static const char *const worker_family[][3] = {
	{"keymix_bridge_worker_load_ratio", "gauge",
	 "busy share of the worker thread over the last second"},
	{"keymix_bridge_worker_ticks_total", "counter",
	 "conference ticks run"},
	{"keymix_bridge_worker_late_ticks_total", "counter",
	 "ticks run a period or more late (caught up, not skipped)"},
	{"keymix_bridge_worker_clock_resyncs_total", "counter",
	 "conference clocks moved to now after a stall over 1 s"},
	{"keymix_bridge_worker_legs", "gauge", "legs on the worker"},
	{"keymix_bridge_pool_buffers", "gauge", "packet buffers"},
	{"keymix_bridge_pool_free", "gauge", "packet buffers free"},
	{"keymix_bridge_pool_free_low", "gauge",
	 "fewest packet buffers ever free"},
	{"keymix_bridge_pool_exhausted_total", "counter",
	 "buffer requests that found the pool empty"},
	{"keymix_bridge_legs_timed_out_total", "counter",
	 "legs freed after leg-timeout-ms without a packet"},
};

static double worker_value(const struct msnap *s, unsigned f)
{
	switch (f) {
	case 0: return s->load / 1000.0;
	case 1: return (double)s->ticks;
	case 2: return (double)s->late_ticks;
	case 3: return (double)s->resyncs;
	case 4: return s->nlegs;
	case 5: return (double)s->pool_n;
	case 6: return (double)s->pool_free;
	case 7: return (double)s->pool_low;
	case 8: return (double)s->pool_exhausted;
	default: return (double)s->timed_out;
	}
}

#define TYPE(o, name, type, help) \
	evbuffer_add_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, \
			    name, type)

static void put_total(struct evbuffer *out, const char *name,
		      const char *help, uint64_t v)
{
	TYPE(out, name, "counter", help);
	evbuffer_add_printf(out, "%s %llu\n", name, (unsigned long long)v);
}

static void put_gauge(struct evbuffer *out, const char *name,
		      const char *help, double v)
{
	TYPE(out, name, "gauge", help);
	evbuffer_add_printf(out, "%s %g\n", name, v);
}

/* keymix_bridge_tick_lateness_seconds, one histogram per worker */
static void put_tick_lateness(struct evbuffer *out, const struct msnap *s,
			      unsigned nworkers)
{
	static const char name[] = "keymix_bridge_tick_lateness_seconds";
	unsigned i, k;

	TYPE(out, name, "histogram",
	     "start of each conference tick after its grid time");
	for (i = 0; i < nworkers; i++) {
		uint64_t cum = 0;

		for (k = 0; k < TICK_LATE_BUCKETS; k++) {
			cum += s[i].late_hist[k];
			if (k < TICK_LATE_BUCKETS - 1)
				evbuffer_add_printf(out,
					"%s_bucket{worker=\"%u\",le=\"%g\"} "
					"%llu\n", name, i,
					tick_late_le_us[k] / 1e6,
					(unsigned long long)cum);
			else
				evbuffer_add_printf(out,
					"%s_bucket{worker=\"%u\",le=\"+Inf\"} "
					"%llu\n", name, i,
					(unsigned long long)cum);
		}
		evbuffer_add_printf(out, "%s_sum{worker=\"%u\"} %.6f\n",
				    name, i, s[i].late_sum_us / 1e6);
		evbuffer_add_printf(out, "%s_count{worker=\"%u\"} %llu\n",
				    name, i, (unsigned long long)cum);
	}
}

/** Write every metric into out (one group per metric family) */
int metrics_write(struct bridge *b, struct evbuffer *out)
{
	struct leg_counters tot;
	struct msnap *snaps;
	unsigned i, f, nlegs = 0;
	int err = 0;

	snaps = calloc(b->nworkers, sizeof(*snaps));
	if (!snaps)
		return ENOMEM;
	memset(&tot, 0, sizeof(tot));
	for (f = 0; f < LEG_FAMILIES; f++) {
		snaps[0].legs[f] = evbuffer_new();
		if (!snaps[0].legs[f])
			err = ENOMEM;
	}
	for (i = 0; !err && i < b->nworkers; i++) {
		for (f = 0; f < LEG_FAMILIES; f++)
			snaps[i].legs[f] = snaps[0].legs[f];
		worker_call(&b->workers[i], call_snap, &snaps[i]);
		sum_add(&tot, &snaps[i].sum);
		nlegs += snaps[i].nlegs;
	}
	if (err)
		goto out;
	put_gauge(out, "keymix_bridge_up", "1 while bridged runs", 1);
	put_gauge(out, "keymix_bridge_uptime_seconds", "seconds since start",
		  (double)(bridge_now_us() - b->started_us) / 1e6);
	put_gauge(out, "keymix_bridge_workers", "worker threads",
		  b->nworkers);
	put_gauge(out, "keymix_bridge_conferences", "conferences",
		  b->nconfs);
	put_gauge(out, "keymix_bridge_legs", "legs", nlegs);
	put_total(out, "keymix_bridge_packets_in_total",
		  "RTP packets accepted", tot.packets_in);
	put_total(out, "keymix_bridge_packets_out_total",
		  "RTP packets sent", tot.packets_out);
	put_total(out, "keymix_bridge_auth_failures_total",
		  "SRTP/SRTCP authentication failures", tot.auth_failures);
	put_total(out, "keymix_bridge_replays_total",
		  "SRTP replays dropped", tot.replays);
	put_total(out, "keymix_bridge_malformed_total",
		  "malformed packets dropped", tot.malformed);
	put_total(out, "keymix_bridge_rtcp_in_total",
		  "RTCP packets accepted", tot.rtcp_in);
	put_total(out, "keymix_bridge_rtcp_out_total", "RTCP packets sent",
		  tot.rtcp_out);
	put_total(out, "keymix_bridge_telephone_events_total",
		  "RFC 4733 events received", tot.events_in);
	put_total(out, "keymix_bridge_latches_total",
		  "symmetric RTP re-latches", tot.latches);
	put_total(out, "keymix_bridge_send_errors_total",
		  "packets the kernel refused", tot.send_errors);
	put_total(out, "keymix_bridge_pool_drops_total",
		  "packets lost to an empty pool", tot.dropped_pool);
	put_total(out, "keymix_bridge_http_requests_total",
		  "control API requests", b->http_requests);
	put_total(out, "keymix_bridge_legs_refused_total",
		  "legs refused for overload", b->legs_refused);
	put_total(out, "keymix_bridge_kms_fetches_total",
		  "leg keys fetched from the KMS", b->kms_fetches);
	put_total(out, "keymix_bridge_kms_failures_total",
		  "failed KMS fetches", b->kms_failures);
	for (f = 0; f < sizeof(worker_family) / sizeof(worker_family[0]);
	     f++) {
		TYPE(out, worker_family[f][0], worker_family[f][1],
		     worker_family[f][2]);
		for (i = 0; i < b->nworkers; i++)
			evbuffer_add_printf(out, "%s{worker=\"%u\"} %g\n",
					    worker_family[f][0], i,
					    worker_value(&snaps[i], f));
	}
	put_tick_lateness(out, snaps, b->nworkers);
	for (f = 0; f < LEG_FAMILIES; f++) {
		TYPE(out, leg_family[f][0], leg_family[f][1],
		     leg_family[f][2]);
		evbuffer_add_buffer(out, snaps[0].legs[f]);
	}
 out:
	for (f = 0; f < LEG_FAMILIES; f++)
		if (snaps[0].legs[f])
			evbuffer_free(snaps[0].legs[f]);
	free(snaps);
	return err;
}
