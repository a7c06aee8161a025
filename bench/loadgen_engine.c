/** @file loadgen_engine.c  The generator loop: paced sends, receive checks */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <openssl/rand.h>
#include <opus/opus.h>

#include "keyleg/keyleg.h"
#include "bench/loadgen_int.h"

#define BATCH 64
#define SLOT_NS 1000000LL
#define REBASE_NS 300000000LL

/** Cryptographically random bytes (keys, SSRCs) */
void lg_random(void *p, size_t n)
{
	if (RAND_bytes(p, (int)n) != 1)
		abort();
}

/** "A.B.C.D:PORT" into an IPv4 address */
int lg_parse_hostport(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *c = strrchr(s, ':');
	char *end;
	long port;

	if (!c || (size_t)(c - s) >= sizeof(host))
		return EINVAL;
	memcpy(host, s, (size_t)(c - s));
	host[c - s] = '\0';
	port = strtol(c + 1, &end, 10);
	if (end == c + 1 || *end || port < 0 || port > 65535)
		return EINVAL;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
		return EINVAL;
	return 0;
}

/** The generator's one UDP socket on 127.0.0.1 and its port table */
int lg_engine_open(struct lg *g)
{
	struct sockaddr_in sa;
	socklen_t sl = sizeof(sa);
	int sz = 32 << 20;

	g->port2leg = malloc(sizeof(int32_t) * 65536);
	if (!g->port2leg)
		return ENOMEM;
	memset(g->port2leg, 0xff, sizeof(int32_t) * 65536);
	g->sock = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
			 0);
	if (g->sock < 0)
		return errno;
	/* FORCE works as root; fall back to the capped size otherwise */
	if (setsockopt(g->sock, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)))
		setsockopt(g->sock, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	if (setsockopt(g->sock, SOL_SOCKET, SO_SNDBUFFORCE, &sz, sizeof(sz)))
		setsockopt(g->sock, SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(g->sock, (struct sockaddr *)&sa, sizeof(sa)) ||
	    getsockname(g->sock, (struct sockaddr *)&sa, &sl))
		return errno;
	g->local_port = ntohs(sa.sin_port);
	return 0;
}

/**
 * Give a leg fresh random keys: tx_b64 is what the system sends with
 * (bridge -> participant), rx_b64 what the participant (we) sends with.
 * The leg's keyleg context is set up from the participant's side.
 */
int lg_leg_keys(struct lg *g, struct lg_leg *l, char *rx_b64, char *tx_b64,
		size_t cap)
{
	struct keyleg_keysalt ours, theirs;
	int err;

	(void)g;
	ours.len = theirs.len = 30;
	lg_random(ours.b, ours.len);
	lg_random(theirs.b, theirs.len);
	err = keyleg_inline_encode(&ours, rx_b64, cap);
	if (!err)
		err = keyleg_inline_encode(&theirs, tx_b64, cap);
	if (!err) {
		l->kl = keyleg_free(l->kl);
		/* we receive what the system sends, and send with ours */
		err = keyleg_alloc(&l->kl, KEYLEG_AES_CM_128_HMAC_SHA1_80,
				   &theirs, &ours, NULL);
	}
	keyleg_wipe(&ours, sizeof(ours));
	keyleg_wipe(&theirs, sizeof(theirs));
	return err;
}

struct loop {
	struct lg *g;
	unsigned *order;          /* legs sorted by phase */
	unsigned phase_start[LG_PTIME_MS + 1];
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	uint8_t (*bufs)[LG_PKT_CAP];
	unsigned nb;
	uint8_t (*rbufs)[LG_PKT_CAP];
	struct mmsghdr rmsgs[BATCH];
	struct iovec riov[BATCH];
	struct sockaddr_in rsrc[BATCH];
	int16_t pcm[5760];
	uint64_t send_err;
};

static void flush(struct loop *lp)
{
	unsigned done = 0;

	while (done < lp->nb) {
		int r = sendmmsg(lp->g->sock, lp->msgs + done, lp->nb - done,
				 0);

		if (r <= 0) {
			if (r < 0 && errno == EINTR)
				continue;
			/* EAGAIN/ENOBUFS: count the rest as not sent */
			lp->send_err += lp->nb - done;
			break;
		}
		done += (unsigned)r;
	}
	lp->nb = 0;
}

static const struct lg_bank *leg_bank(const struct lg_leg *l)
{
	switch (l->role) {
	case LG_TALKER:
		return &l->banks->speech;
	case LG_PROBE:
		return &l->banks->probe;
	default:
		return &l->banks->silence;
	}
}

static void send_leg(struct loop *lp, struct lg_leg *l, int64_t now)
{
	struct lg *g = lp->g;
	const struct lg_bank *bk = leg_bank(l);
	const struct lg_frame *f;
	uint8_t *buf;
	size_t len;

	if (!bk->n)
		return;
	if (l->pos >= bk->n)
		l->pos = 0;
	f = &bk->frames[l->pos++];
	buf = lp->bufs[lp->nb];
	len = lg_rtp_build(buf, l->pt, l->seq++, l->ts, l->ssrc,
			   l->level_ext, f->level, f->level < 60,
			   bk->data + f->off, f->len);
	l->ts += l->banks->samples;
	if (l->kl && keyleg_protect_rtp(l->kl, buf, &len, LG_PKT_CAP) !=
	    KEYLEG_OK)
		return;
	if (f->mark && l->role == LG_PROBE)
		g->mark_sent_ns = now;
	lp->iov[lp->nb].iov_base = buf;
	lp->iov[lp->nb].iov_len = len;
	lp->msgs[lp->nb].msg_hdr.msg_name = &l->remote;
	lp->msgs[lp->nb].msg_hdr.msg_namelen = sizeof(l->remote);
	lp->nb++;
	l->tx++;
	if (lp->nb == BATCH)
		flush(lp);
}

static void serve_slot(struct loop *lp, uint64_t slot, int64_t now)
{
	struct lg *g = lp->g;
	unsigned ph = (unsigned)(slot % LG_PTIME_MS), i;
	double late_ms = (double)(now - (g->t0_ns +
			(int64_t)slot * SLOT_NS)) / 1e6;

	if (g->in_window) {
		bench_hist_add(&g->send_late, late_ms * 1000);
		g->sends++;
		if (late_ms > LG_PTIME_MS / 2.0)
			g->late_sends++;
		if (late_ms > g->max_send_late_ms)
			g->max_send_late_ms = late_ms;
	}
	for (i = lp->phase_start[ph]; i < lp->phase_start[ph + 1]; i++) {
		struct lg_leg *l = &g->legs[lp->order[i]];

		if (l->remote.sin_port)
			send_leg(lp, l, now);
	}
	flush(lp);
}

/* Decode a received payload of a monitored leg; returns dBov */
static double decode_level(struct loop *lp, struct lg_leg *l, uint8_t pt,
			   const uint8_t *p, size_t n)
{
	int samples, i;

	if (pt == 0) {
		if (n > sizeof(lp->pcm) / sizeof(lp->pcm[0]))
			n = sizeof(lp->pcm) / sizeof(lp->pcm[0]);
		for (i = 0; i < (int)n; i++)
			lp->pcm[i] = lg_ulaw_dec(p[i]);
		return lg_rms_dbov(lp->pcm, (unsigned)n);
	}
	if (!l->dec) {
		int e;

		l->dec = opus_decoder_create(48000, 1, &e);
		if (!l->dec)
			return -127;
	}
	samples = opus_decode(l->dec, p, (opus_int32)n, lp->pcm, 5760, 0);
	if (samples <= 0)
		return -127;
	return lg_rms_dbov(lp->pcm, (unsigned)samples);
}

static void rx_packet(struct loop *lp, struct lg_leg *l, uint8_t *buf,
		      size_t len, int64_t now)
{
	struct lg *g = lp->g;
	struct lg_rx *rx = &l->rx;
	uint8_t pt;
	uint16_t seq;
	uint32_t ssrc, ext, ts;
	size_t off;
	int64_t rate, offset;

	if (len >= 2 && buf[1] >= 192 && buf[1] <= 223)
		return; /* RTCP (RFC 5761 demux) */
	if (lg_rtp_parse(buf, len, &pt, &seq, &ssrc, &off))
		return;
	rx->pkts++;
	if (!rx->ssrc)
		rx->ssrc = ssrc;
	else if (ssrc != rx->ssrc)
		rx->ssrc_bad++;
	if (!rx->started) {
		rx->started = 1;
		rx->base_seq = seq;
		rx->max_seq = seq;
		rx->cycles = 0;
	}
	else {
		uint16_t d = (uint16_t)(seq - rx->max_seq);

		if (d < 0x8000) {
			if (seq < rx->max_seq)
				rx->cycles += 0x10000;
			rx->max_seq = seq;
		}
	}
	ext = rx->cycles + rx->max_seq;
	if (g->in_window) {
		if (!rx->win_started) {
			rx->win_started = 1;
			rx->win_ext0 = ext;
		}
		rx->win_pkts++;
	}
	/* arrival regularity against the RTP clock */
	ts = (uint32_t)buf[4] << 24 | (uint32_t)buf[5] << 16 |
	     (uint32_t)buf[6] << 8 | buf[7];
	rate = pt == 0 || pt == 8 ? 8000 : 48000;
	if (!rx->first_ns) {
		rx->first_ns = now;
		rx->first_ext = ts;
		rx->phase_min_ns = 0;
	}
	offset = (now - rx->first_ns) -
		 (int64_t)(int32_t)(ts - rx->first_ext) * 1000000000LL / rate;
	if (offset - rx->phase_min_ns > REBASE_NS ||
	    rx->phase_min_ns - offset > REBASE_NS) {
		/* a timestamp discontinuity (a peer restarting its clock),
		 * not lateness: measure from here on */
		rx->first_ns = now;
		rx->first_ext = ts;
		rx->phase_min_ns = 0;
		rx->rebases++;
		offset = 0;
	}
	if (offset < rx->phase_min_ns)
		rx->phase_min_ns = offset;
	if (g->in_window)
		bench_hist_add(&g->arr_late,
			       (double)(offset - rx->phase_min_ns) / 1000.0);
	if (g->ticks && !g->sc->transcode) {
		struct lg_tick *tk = &g->ticks[l->conf];
		double us = (double)(offset - rx->phase_min_ns) / 1000.0;

		if (!tk->open || now - tk->start_ns > LG_PTIME_MS * 500000LL) {
			if (tk->open && g->in_window)
				bench_hist_add(&g->tick_late, tk->min_us);
			tk->open = 1;
			tk->start_ns = now;
			tk->min_us = us;
		}
		else if (us < tk->min_us) {
			tk->min_us = us;
		}
	}

	/* decrypt a sample (every packet of a monitored leg).  The first
	 * packet always: it anchors the SRTP rollover counter, as for any
	 * receiver (a stream first seen just after its sequence wrapped
	 * would otherwise be taken for ROC 0 and never verify) */
	if (l->monitor || rx->pkts == 1 ||
	    (rx->pkts % g->sample_every) == 0) {
		size_t plen = len;

		if (l->kl) {
			enum keyleg_status st = keyleg_unprotect_rtp(
				l->kl, buf, &plen, (uint64_t)(now / 1000000));

			if (st != KEYLEG_OK) {
				if (st == KEYLEG_ERR_AUTH)
					rx->auth_fail++;
				return;
			}
		}
		rx->checked++;
		if (pt != l->pt && g->target != LG_REFLECTOR)
			rx->pt_bad++;
		if (l->monitor && plen > off) {
			double db = decode_level(lp, l, pt, buf + off,
						 plen - off);

			rx->decoded++;
			if (db > -50)
				rx->audio_frames++;
			if (l->monitor == 2) {
				if (l->probe_armed && db > -20) {
					int64_t d = now - g->mark_sent_ns;

					l->probe_armed = 0;
					if (g->mark_sent_ns && g->in_window &&
					    d > 0 && d < 400000000LL)
						bench_hist_add(&g->latency,
							       d / 1000.0);
				}
				else if (db < -30) {
					l->probe_armed = 1;
				}
			}
		}
	}
}

static void drain(struct loop *lp)
{
	struct lg *g = lp->g;
	int i, n;

	for (;;) {
		int64_t now;

		for (i = 0; i < BATCH; i++) {
			lp->riov[i].iov_base = lp->rbufs[i];
			lp->riov[i].iov_len = LG_PKT_CAP;
			memset(&lp->rmsgs[i].msg_hdr, 0,
			       sizeof(lp->rmsgs[i].msg_hdr));
			lp->rmsgs[i].msg_hdr.msg_iov = &lp->riov[i];
			lp->rmsgs[i].msg_hdr.msg_iovlen = 1;
			lp->rmsgs[i].msg_hdr.msg_name = &lp->rsrc[i];
			lp->rmsgs[i].msg_hdr.msg_namelen = sizeof(lp->rsrc[i]);
		}
		n = recvmmsg(g->sock, lp->rmsgs, BATCH, MSG_DONTWAIT, NULL);
		if (n <= 0)
			return;
		now = lg_now_ns();
		for (i = 0; i < n; i++) {
			int32_t li = g->port2leg[ntohs(lp->rsrc[i].sin_port)];

			if (li < 0)
				continue;
			rx_packet(lp, &g->legs[li], lp->rbufs[i],
				  lp->rmsgs[i].msg_len, now);
		}
		if (n < BATCH)
			return;
	}
}

static int order_legs(struct loop *lp)
{
	struct lg *g = lp->g;
	unsigned count[LG_PTIME_MS] = { 0 }, pos[LG_PTIME_MS], i, p;

	lp->order = malloc(sizeof(unsigned) * (g->n_legs + 1));
	if (!lp->order)
		return ENOMEM;
	for (i = 0; i < g->n_legs; i++)
		count[g->legs[i].phase % LG_PTIME_MS]++;
	lp->phase_start[0] = 0;
	for (p = 0; p < LG_PTIME_MS; p++) {
		pos[p] = lp->phase_start[p];
		lp->phase_start[p + 1] = lp->phase_start[p] + count[p];
	}
	for (i = 0; i < g->n_legs; i++)
		lp->order[pos[g->legs[i].phase % LG_PTIME_MS]++] = i;
	return 0;
}

static void window_reset(struct lg *g)
{
	unsigned i;

	bench_hist_reset(&g->send_late);
	bench_hist_reset(&g->arr_late);
	bench_hist_reset(&g->tick_late);
	bench_hist_reset(&g->latency);
	g->late_sends = g->sends = 0;
	g->max_send_late_ms = 0;
	for (i = 0; i < g->n_legs; i++) {
		g->legs[i].win_tx0 = g->legs[i].tx;
		g->legs[i].rx.win_started = 0;
		g->legs[i].rx.win_pkts = 0;
	}
}

/**
 * Send every leg's packets on its 1 ms phase slot of each ptime and check
 * what comes back: warmup_s seconds first, then a window_s measurement
 * window.  window_edge is called (from the loop) just as the window opens
 * (start = 1) and closes (start = 0).
 */
int lg_engine_run(struct lg *g, double warmup_s, double window_s,
		  void (*window_edge)(struct lg *g, int start, void *arg),
		  void *arg)
{
	struct loop lp;
	struct itimerspec its;
	struct epoll_event ev, evs[4];
	int tfd = -1, ep = -1, err = 0, phase_state = 0;
	int64_t t_open, t_close;
	unsigned i;

	memset(&lp, 0, sizeof(lp));
	lp.g = g;
	free(g->ticks);
	g->ticks = calloc(g->n_confs ? g->n_confs : 1, sizeof(*g->ticks));
	lp.bufs = malloc(sizeof(*lp.bufs) * BATCH);
	lp.rbufs = malloc(sizeof(*lp.rbufs) * BATCH);
	if (!lp.bufs || !lp.rbufs || order_legs(&lp)) {
		err = ENOMEM;
		goto out;
	}
	for (i = 0; i < BATCH; i++) {
		lp.msgs[i].msg_hdr.msg_iov = &lp.iov[i];
		lp.msgs[i].msg_hdr.msg_iovlen = 1;
	}
	tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	ep = epoll_create1(EPOLL_CLOEXEC);
	if (tfd < 0 || ep < 0) {
		err = errno;
		goto out;
	}
	g->t0_ns = lg_now_ns() + 5 * SLOT_NS;
	g->slot = 0;
	memset(&its, 0, sizeof(its));
	its.it_value.tv_sec = g->t0_ns / 1000000000LL;
	its.it_value.tv_nsec = g->t0_ns % 1000000000LL;
	its.it_interval.tv_nsec = SLOT_NS;
	if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL)) {
		err = errno;
		goto out;
	}
	ev.events = EPOLLIN;
	ev.data.fd = tfd;
	epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
	ev.data.fd = g->sock;
	epoll_ctl(ep, EPOLL_CTL_ADD, g->sock, &ev);
	t_open = g->t0_ns + (int64_t)(warmup_s * 1e9);
	t_close = t_open + (int64_t)(window_s * 1e9);
	g->in_window = 0;
	for (;;) {
		int n = epoll_wait(ep, evs, 4, 50), k;
		int64_t now;

		if (n < 0 && errno != EINTR) {
			err = errno;
			break;
		}
		for (k = 0; k < n; k++) {
			if (evs[k].data.fd == tfd) {
				uint64_t exp;

				if (read(tfd, &exp, sizeof(exp)) < 0)
					exp = 0;
			}
			else {
				drain(&lp);
			}
		}
		now = lg_now_ns();
		while (g->t0_ns + (int64_t)g->slot * SLOT_NS <= now) {
			serve_slot(&lp, g->slot, now);
			g->slot++;
			/* receive between slots when catching up */
			if (!(g->slot % 4))
				drain(&lp);
			now = lg_now_ns();
		}
		if (phase_state == 0 && now >= t_open) {
			phase_state = 1;
			window_reset(g);
			g->in_window = 1;
			if (window_edge)
				window_edge(g, 1, arg);
		}
		else if (phase_state == 1 && now >= t_close) {
			g->in_window = 0;
			for (i = 0; i < g->n_legs; i++)
				g->legs[i].rx.win_ext1 = g->legs[i].rx.cycles +
					g->legs[i].rx.max_seq;
			if (window_edge)
				window_edge(g, 0, arg);
			break;
		}
	}
	/* collect what is still in flight, without sending */
	{
		int64_t until = lg_now_ns() + 60 * SLOT_NS;

		while (lg_now_ns() < until) {
			drain(&lp);
			usleep(2000);
		}
	}
	if (lp.send_err)
		snprintf(g->err, sizeof(g->err), "%llu sends failed",
			 (unsigned long long)lp.send_err);
 out:
	if (tfd >= 0)
		close(tfd);
	if (ep >= 0)
		close(ep);
	free(lp.order);
	free(lp.bufs);
	free(lp.rbufs);
	return err;
}

/** Free every leg's contexts, the socket and the port table */
void lg_engine_close(struct lg *g)
{
	unsigned i;

	for (i = 0; g->legs && i < g->n_legs; i++) {
		g->legs[i].kl = keyleg_free(g->legs[i].kl);
		if (g->legs[i].dec)
			opus_decoder_destroy(g->legs[i].dec);
		g->legs[i].dec = NULL;
	}
	if (g->sock >= 0)
		close(g->sock);
	g->sock = -1;
	free(g->port2leg);
	g->port2leg = NULL;
	free(g->ticks);
	g->ticks = NULL;
}
