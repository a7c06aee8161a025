/**
 * @file conf.c  Conferences and legs: the packet path (worker thread only)
 *
 * Receive:  parse -> keyleg_unprotect -> latch -> account -> dispatch
 *           (RFC 4733 event: report and relay; audio: mix_put)
 * Send:     mix_out_h -> RTP header under the leg's own SSRC/seq/ts ->
 *           keyleg_protect -> worker send queue
 * Nothing here allocates, locks or logs per packet.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <event2/event.h>
#include <openssl/rand.h>
#include "bridge/bridge_int.h"

/* ---- send side ---- */

/*
 * "direction" is the participant's, as in its SDP: "recvonly" is a
 * listen-only participant (the bridge sends to it and does not mix it),
 * "sendonly" one that is heard but gets nothing back.
 */
static int leg_sends(const struct leg *l)
{
	return l->par.dir == DIR_SENDRECV || l->par.dir == DIR_RECVONLY;
}

static int leg_recvs(const struct leg *l)
{
	return l->par.dir == DIR_SENDRECV || l->par.dir == DIR_SENDONLY;
}

/** Protect (if SRTP) and queue one RTP packet built in k */
static void leg_emit_rtp(struct leg *l, struct pkt *k)
{
	struct worker *w = l->conf->w;
	size_t plen = k->len;

	if (l->kl && keyleg_protect_rtp(l->kl, pkt_data(k), &k->len,
					PKT_CAP) != KEYLEG_OK) {
		l->cnt.send_errors++;
		pool_put(&w->pool, k);
		return;
	}
	l->cnt.packets_out++;
	l->cnt.octets_out += plen - 12;
	worker_send(w, l->fd, k, &l->remote);
}

/** Mixer output: packetise under the leg's own SSRC, sequence, time */
static void conf_out_h(struct mix_leg *ml, const uint8_t *payload,
		       size_t len, uint32_t ts_inc, bool marker, void *arg)
{
	struct leg *l = mix_leg_arg(ml);
	struct conf *c = arg;
	struct pkt *k;
	uint8_t *p;

	l->ts += ts_inc;
	if (!leg_sends(l) || len > PKT_MTU - 12)
		return;
	k = pool_get(&c->w->pool);
	if (!k) {
		l->cnt.dropped_pool++;
		return;
	}
	p = pkt_data(k);
	rtp_write_hdr(p, (uint8_t)l->par.pt, marker, l->seq++, l->ts,
		      l->ssrc);
	memcpy(p + 12, payload, len);
	k->len = 12 + len;
	leg_emit_rtp(l, k);
}

/**
 * Relay an RFC 4733 event to every other leg that negotiated telephone
 * events, under that leg's own SSRC/seq; the event keeps one timestamp
 * per leg for as long as its source timestamp stays the same.
 */
static void conf_relay_event(struct leg *src, const struct rtp_hdr *h,
			     const uint8_t *pl)
{
	struct conf *c = src->conf;
	struct leg *l;

	for (l = c->legs; l; l = l->next) {
		struct pkt *k;
		uint8_t *p;

		if (l == src || l->par.te_pt < 0 || !leg_sends(l))
			continue;
		if (h->payload_len > PKT_MTU - 12)
			continue;
		if (src->te_ts_in != h->ts || !l->te_ts_out)
			l->te_ts_out = l->ts ? l->ts : 1;
		k = pool_get(&c->w->pool);
		if (!k) {
			l->cnt.dropped_pool++;
			continue;
		}
		p = pkt_data(k);
		rtp_write_hdr(p, (uint8_t)l->par.te_pt, h->marker, l->seq++,
			      l->te_ts_out, l->ssrc);
		memcpy(p + 12, pl, h->payload_len);
		k->len = 12 + h->payload_len;
		l->cnt.events_out++;
		leg_emit_rtp(l, k);
	}
	src->te_ts_in = h->ts;
}

/* ---- receive side ---- */

static uint64_t ntp_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)(ts.tv_sec + 2208988800u) << 32) |
		(((uint64_t)ts.tv_nsec << 32) / 1000000000u);
}

/** Count a keyleg verdict; return 0 if the packet may go on */
static int leg_verdict(struct leg *l, enum keyleg_status st)
{
	switch (st) {
	case KEYLEG_OK:
		return 0;
	case KEYLEG_ERR_AUTH:
		l->cnt.auth_failures++;
		break;
	case KEYLEG_ERR_REPLAY:
		l->cnt.replays++;
		break;
	default:
		l->cnt.malformed++;
		break;
	}
	return -1;
}

/*
 * Symmetric RTP: the bridge sends to the address it was given and moves
 * to a new source address only after a packet from there verified under
 * the leg's SRTP key, so an off-path sender cannot steal the leg.  Plain
 * RTP legs have nothing to verify and never re-latch.
 */
static void leg_latch(struct leg *l, const struct baddr *src)
{
	if (!l->kl || baddr_equal(src, &l->remote))
		return;
	l->remote = *src;
	l->cnt.latches++;
}

static void leg_rtcp_in(struct leg *l, uint8_t *p, size_t len,
			const struct baddr *src, uint64_t now_us)
{
	struct rtcp_info info;

	if (len < 8 || (p[0] >> 6) != 2) {
		l->cnt.malformed++;
		return;
	}
	if (l->kl && leg_verdict(l, keyleg_unprotect_rtcp(l->kl, p, &len,
							  now_us / 1000)))
		return;
	if (rtcp_parse(p, len, l->ssrc, &info)) {
		l->cnt.malformed++;
		return;
	}
	leg_latch(l, src);
	l->last_in_us = now_us;
	l->cnt.rtcp_in++;
	if (info.have_sr) {
		l->sr_ntp_mid = info.sr_ntp_mid;
		l->sr_arrival_us = now_us;
	}
	if (info.have_rb) {
		l->remote_fraction = info.fraction;
		l->remote_lost = info.cum_lost;
		if (info.lsr) {
			uint32_t now_mid = (uint32_t)(ntp_now() >> 16);
			uint32_t rtt = now_mid - info.lsr - info.dlsr;

			/* a negative round trip (clock step) is ignored */
			if (rtt < 0x80000000u)
				l->rtt_ms = rtt * 1000.0 / 65536.0;
		}
	}
}

/** One received datagram through the stages */
void leg_process(struct leg *l, struct pkt *k, const struct baddr *src,
		 uint64_t now_us)
{
	uint8_t *p = pkt_data(k);
	size_t len = k->len;
	struct rtp_hdr h;
	uint8_t level = 0;
	int voice = 0, have_level, is_event;
	struct rtp_event ev;

	if (rtp_is_rtcp(p, len)) {
		leg_rtcp_in(l, p, len, src, now_us);
		return;
	}
	/* stage 1: parse (cheap checks before any crypto) */
	if (rtp_parse(p, len, &h)) {
		l->cnt.malformed++;
		return;
	}
	/* stage 2: authenticate and decrypt in place */
	if (l->kl) {
		if (leg_verdict(l, keyleg_unprotect_rtp(l->kl, p, &len,
							now_us / 1000)))
			return;
		if (rtp_parse(p, len, &h)) {
			l->cnt.malformed++;
			return;
		}
	}
	/* stage 3: payload type: the leg's audio or its RFC 4733 events */
	is_event = l->par.te_pt >= 0 && h.pt == (unsigned)l->par.te_pt;
	if (is_event ? rtp_event_parse(p + h.hdr_len, h.payload_len, &ev) :
	    h.pt != l->par.pt) {
		l->cnt.malformed++;
		return;
	}
	/* stage 4: symmetric RTP latch, only now that it verified; then
	 * account (events share the sequence numbers, not the timing) */
	leg_latch(l, src);
	l->last_in_us = now_us;
	l->cnt.packets_in++;
	rtp_rxstats_update(&l->rx, h.ssrc, h.seq, h.ts,
			   (uint32_t)(now_us * l->clock / 1000000u),
			   !is_event);
	if (is_event) {
		if (l->te_ts_in != h.ts || l->last_event != ev.event)
			l->cnt.events_in++;
		l->last_event = ev.event;
		if (leg_recvs(l))
			conf_relay_event(l, &h, p + h.hdr_len);
		else
			l->te_ts_in = h.ts;
		return;
	}
	if (!leg_recvs(l))
		return;
	/* stage 5: hand the payload to the mixer */
	have_level = l->par.level_ext ?
		!rtp_audio_level(&h, (uint8_t)l->par.level_ext, &level,
				 &voice) : 0;
	mix_put(l->ml, p + h.hdr_len, h.payload_len, h.seq, h.ts, h.marker,
		have_level ? level : -1, voice, now_us);
}

/* ---- RTCP reports ---- */

/** Send an SR/RR (+SDES) when due, or now with a BYE when leaving */
void leg_rtcp_maybe(struct leg *l, uint64_t now_us, int bye)
{
	struct worker *w = l->conf->w;
	struct rtcp_report r;
	struct pkt *k;
	size_t n;

	if (!bye && now_us < l->next_rtcp_us)
		return;
	l->next_rtcp_us = now_us +
		(uint64_t)w->b->cfg.rtcp_interval_ms * 1000;
	if (l->par.dir == DIR_INACTIVE && !bye)
		return;
	k = pool_get(&w->pool);
	if (!k)
		return;
	memset(&r, 0, sizeof(r));
	r.ssrc = l->ssrc;
	r.sender = l->cnt.packets_out > 0;
	r.ntp = ntp_now();
	r.rtp_ts = l->ts;
	r.packets = (uint32_t)l->cnt.packets_out;
	r.octets = (uint32_t)l->cnt.octets_out;
	r.cname = "bridged@keymix";
	if (l->rx.init) {
		r.have_block = 1;
		r.src_ssrc = l->rx.ssrc;
		r.fraction = rtp_rxstats_fraction(&l->rx);
		r.cum_lost = rtp_rxstats_lost(&l->rx);
		r.ext_max = rtp_rxstats_ext_max(&l->rx);
		r.jitter = l->rx.jitter >> 4;
		if (l->sr_ntp_mid) {
			r.lsr = l->sr_ntp_mid;
			r.dlsr = (uint32_t)((now_us - l->sr_arrival_us) *
					    65536 / 1000000u);
		}
	}
	n = rtcp_build(pkt_data(k), PKT_MTU, &r);
	if (n && bye)
		n += rtcp_build_bye(pkt_data(k) + n, PKT_MTU - n, l->ssrc);
	k->len = n;
	if (!n || (l->kl && keyleg_protect_rtcp(l->kl, pkt_data(k), &k->len,
						PKT_CAP) != KEYLEG_OK)) {
		pool_put(&w->pool, k);
		return;
	}
	l->cnt.rtcp_out++;
	worker_send(w, l->fd, k, &l->remote);
}

/** One mixing clock tick of a conference (grid time now_us) */
/*
 * A leg the bridge receives from that has sent nothing verified (RTP or
 * RTCP; DTX still sends every 400 ms) for leg-timeout-ms is reported and
 * freed like a DELETE: BYE, port back to the range, keys wiped.
 */
static int leg_timed_out(struct leg *l, uint64_t now_us)
{
	struct worker *w = l->conf->w;
	uint64_t limit = (uint64_t)w->b->cfg.leg_timeout_ms * 1000;

	if (!limit || !leg_recvs(l) || now_us < l->last_in_us + limit)
		return 0;
	bridge_log(BRIDGE_LOG_INFO, "conference %s: leg %s (%s) timed out: "
		   "no packet for %u ms", l->conf->id, l->id,
		   l->par.participant, w->b->cfg.leg_timeout_ms);
	w->st.timed_out++;
	ports_release(&w->b->ports, l->port);
	leg_free(l);
	return 1;
}

void conf_tick(struct conf *c, uint64_t now_us)
{
	struct leg *l, *next;

	if (c->mode == MODE_MIX)
		mix_tick(c->mix, now_us);
	for (l = c->legs; l; l = next) {
		next = l->next;
		if (!leg_timed_out(l, now_us))
			leg_rtcp_maybe(l, now_us, 0);
	}
}

/* ---- lifecycle (worker thread, not the packet path) ---- */

int conf_mix_alloc(struct conf *c)
{
	struct mix_conf_cfg cfg;

	mix_conf_cfg_default(&cfg);
	cfg.mode = c->mode == MODE_MIX ? MIX_MODE_MIX : MIX_MODE_TRANSCODE;
	cfg.rate = c->rate;
	cfg.ptime_ms = c->ptime;
	cfg.max_talkers = c->max_talkers;
	cfg.opus.complexity = c->opus.complexity;
	cfg.opus.bitrate = c->opus.bitrate;
	cfg.opus.fec = c->opus.fec;
	cfg.opus.dtx = c->opus.dtx;
	return mix_conf_alloc(&c->mix, &cfg, conf_out_h, c);
}

static void leg_mix_cfg(const struct leg *l, struct mix_leg_cfg *mc)
{
	mix_leg_cfg_default(mc, l->par.codec);
	mc->rate = l->par.rate;
	mc->ptime_ms = l->par.ptime;
	if (l->par.opus_override) {
		mc->opus_override = true;
		mc->opus.complexity = l->par.opus.complexity;
		mc->opus.bitrate = l->par.opus.bitrate;
		mc->opus.fec = l->par.opus.fec;
		mc->opus.dtx = l->par.opus.dtx;
	}
	mc->send = leg_sends(l);
	mc->recv = leg_recvs(l);
	mc->muted = l->muted;
	mc->gain_in_db = (float)l->gain_db;
}

static uint32_t rand32(void)
{
	uint32_t v = 0;

	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		v = (uint32_t)bridge_now_us() * 2654435761u;
	return v;
}

/**
 * Create a leg on its conference: keyleg context, mixer leg and socket
 * event.  Takes ownership of fd only on success.
 */
int leg_create(struct leg **legp, struct conf *c,
	       const struct leg_params *par, int fd,
	       const struct baddr *local, uint16_t port)
{
	struct mix_leg_cfg mc;
	struct leg *l;
	int err;

	l = calloc(1, sizeof(*l));
	if (!l)
		return ENOMEM;
	l->conf = c;
	l->par = *par;
	l->fd = -1;
	l->last_event = -1;
	l->gain_db = 0;
	l->clock = mix_codec_clock(par->codec);
	l->ssrc = rand32();
	l->seq = (uint16_t)rand32();
	l->ts = rand32();
	l->remote = par->remote;
	l->local = *local;
	l->port = port;
	snprintf(l->id, sizeof(l->id), "l%u", ++c->leg_seq);
	if (par->srtp) {
		err = keyleg_alloc(&l->kl, par->profile, &par->rx, &par->tx,
				   &par->kopts);
		if (err)
			goto out;
	}
	keyleg_wipe(&l->par.rx, sizeof(l->par.rx));
	keyleg_wipe(&l->par.tx, sizeof(l->par.tx));
	leg_mix_cfg(l, &mc);
	err = mix_leg_add(c->mix, &l->ml, &mc, l);
	if (err)
		goto out;
	l->ev = event_new(c->w->base, fd, EV_READ | EV_PERSIST | EV_ET,
			  leg_recv_cb, l);
	if (!l->ev) {
		err = ENOMEM;
		goto out;
	}
	event_priority_set(l->ev, WORKER_PRIO_IO);
	event_add(l->ev, NULL);
	l->fd = fd;
	l->next_rtcp_us = bridge_now_us() + 500000u;
	l->last_in_us = bridge_now_us();
	l->next = c->legs;
	c->legs = l;
	c->nlegs++;
	atomic_fetch_add(&c->w->nlegs, 1);
 out:
	if (err) {
		if (l->ml)
			mix_leg_remove(l->ml);
		l->kl = keyleg_free(l->kl);
		keyleg_wipe(l, sizeof(*l));
		free(l);
	}
	else {
		*legp = l;
	}
	return err;
}

static void counters_add(struct leg_counters *a, const struct leg_counters *b)
{
	a->packets_in += b->packets_in;
	a->packets_out += b->packets_out;
	a->octets_out += b->octets_out;
	a->auth_failures += b->auth_failures;
	a->replays += b->replays;
	a->malformed += b->malformed;
	a->rtcp_in += b->rtcp_in;
	a->rtcp_out += b->rtcp_out;
	a->events_in += b->events_in;
	a->events_out += b->events_out;
	a->latches += b->latches;
	a->dropped_pool += b->dropped_pool;
	a->send_errors += b->send_errors;
}

/** Unlink and free a leg: BYE, socket, mixer leg, keys.  Returns NULL */
struct leg *leg_free(struct leg *l)
{
	struct conf *c;
	struct leg **pp;

	if (!l)
		return NULL;
	c = l->conf;
	for (pp = &c->legs; *pp; pp = &(*pp)->next) {
		if (*pp == l) {
			*pp = l->next;
			c->nlegs--;
			atomic_fetch_sub(&c->w->nlegs, 1);
			break;
		}
	}
	if (l->fd >= 0) {
		leg_rtcp_maybe(l, bridge_now_us(), 1);
		worker_flush(c->w);
	}
	counters_add(&c->w->st.gone, &l->cnt);
	if (l->ev)
		event_free(l->ev);
	if (l->fd >= 0)
		close(l->fd);
	if (l->ml)
		mix_leg_remove(l->ml);
	keyleg_free(l->kl);
	keyleg_wipe(l, sizeof(*l));
	free(l);
	return NULL;
}

/** Free a conference and all its legs (already detached).  NULL */
struct conf *conf_free(struct conf *c)
{
	if (!c)
		return NULL;
	while (c->legs)
		leg_free(c->legs);
	if (c->mix)
		mix_conf_free(c->mix);
	free(c);
	return NULL;
}

struct leg *conf_leg_find(struct conf *c, const char *id)
{
	struct leg *l;

	for (l = c->legs; l; l = l->next)
		if (!strcmp(l->id, id))
			return l;
	return NULL;
}

/** Whether the mixer counts this leg as a talker now, and its level */
int leg_talking(const struct leg *l, double *level_dbov)
{
	struct mix_leg_stats st;

	mix_leg_stats_get(l->ml, &st);
	*level_dbov = st.level_dbov;
	return st.talking;
}

static int leg_update_mix(struct leg *l)
{
	struct mix_leg_cfg mc;

	leg_mix_cfg(l, &mc);
	return mix_leg_update(l->ml, &mc);
}

int leg_set_mute(struct leg *l, int muted)
{
	l->muted = muted;
	return leg_update_mix(l);
}

int leg_set_gain(struct leg *l, double gain_db)
{
	l->gain_db = gain_db;
	return leg_update_mix(l);
}

int leg_set_dir(struct leg *l, enum leg_dir dir)
{
	/* a leg that starts to send gets a full timeout interval */
	if (dir != l->par.dir)
		l->last_in_us = bridge_now_us();
	l->par.dir = dir;
	return leg_update_mix(l);
}

/** New keys for both directions; the old ones overlap (keyleg_rekey) */
int leg_rekey(struct leg *l, const struct keyleg_keysalt *rx,
	      const struct keyleg_keysalt *tx)
{
	if (!l->kl)
		return EINVAL;
	return keyleg_rekey(l->kl, rx, tx, bridge_now_us() / 1000);
}
