/** @file ue_media.c  uemedia: the participant's send and receive loops */

#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "ue/ue_media_int.h"

#define PKT_CAP (1500 + KEYLEG_TAILROOM)
#define MAX_FRAME 2880          /* 60 ms at 48 kHz */
#define RX_BATCH 16
#define NTP_UNIX_OFFSET 2208988800ull

/*
 * Two threads, each with its own SRTP context built from the same keys so
 * no context is ever shared: the sender owns RTP transmission (kl_tx); the
 * receiver owns RTP/RTCP reception and RTCP transmission (kl_rx).  RTP and
 * RTCP use different session keys (RFC 3711 4.3), and only one context
 * ever protects RTCP, so the SRTCP index never repeats under one key.
 */
struct ue_media {
	const struct ue_media_cfg *cfg;
	volatile int *stop;
	int fd;
	struct keyleg *kl_tx, *kl_rx;
	uint64_t t0_ns, end_ns;
	uint32_t frame;         /* audio samples per frame */
	uint32_t frame_ts;      /* RTP clock ticks per frame */
	uint32_t clock;
	uint32_t ssrc;
	uint32_t ts0;

	/* sender */
	struct ue_enc *enc;
	struct ue_tone tone;
	int16_t *src;
	size_t src_n, src_pos;
	uint16_t seq;
	uint32_t tx_packets, tx_octets;     /* read by the receiver */

	/* receiver */
	struct ue_dec *dec;
	struct ue_timeline tl;
	struct ue_rx_src rxs;
	uint64_t next_rtcp_ns;
	int rx_err;

	struct ue_media_stats st;
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t ntp_now(void)
{
	struct timespec ts;
	uint64_t frac;

	clock_gettime(CLOCK_REALTIME, &ts);
	frac = ((uint64_t)ts.tv_nsec << 32) / 1000000000ull;
	return (((uint64_t)ts.tv_sec + NTP_UNIX_OFFSET) << 32) | frac;
}

static uint32_t rand32(void)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = (uint32_t)mono_ns() ^ (uint32_t)getpid();
	return v;
}

/** Defaults: Opus 48 kHz mono, 20 ms, PT 111, plain RTP, 5 s */
void ue_media_cfg_init(struct ue_media_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->codec = UE_CODEC_OPUS;
	cfg->rate = 48000;
	cfg->ptime = 20;
	cfg->pt = 111;
	cfg->copts.complexity = -1;
	cfg->duration = 5;
	cfg->rtcp_interval = 1;
	cfg->tone_dbfs = -20;
}

static bool same_addr(const struct sockaddr_storage *a, socklen_t al,
		      const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a;
		const struct sockaddr_in *y = (const void *)b;

		return x->sin_port == y->sin_port &&
			x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a;
		const struct sockaddr_in6 *y = (const void *)b;

		return x->sin6_port == y->sin6_port &&
			!memcmp(&x->sin6_addr, &y->sin6_addr, 16);
	}
	(void)al;
	return false;
}

/* ---------------------------------------------------------------- send */

static void next_frame(struct ue_media *m, uint32_t idx, int16_t *pcm)
{
	const struct ue_media_cfg *cfg = m->cfg;
	size_t i;

	if (!ue_talk_active(&cfg->talk, idx * cfg->ptime / 1000.0)) {
		memset(pcm, 0, m->frame * sizeof(*pcm));
		return;
	}
	if (cfg->tone_hz > 0) {
		ue_tone_fill(&m->tone, pcm, m->frame);
		return;
	}
	for (i = 0; i < m->frame; i++) {
		if (m->src && m->src_pos >= m->src_n && cfg->loop)
			m->src_pos = 0;
		pcm[i] = (m->src && m->src_pos < m->src_n) ?
			m->src[m->src_pos++] : 0;
	}
}

static void send_rtp(struct ue_media *m, uint32_t idx, const int16_t *pcm)
{
	const struct ue_media_cfg *cfg = m->cfg;
	uint8_t payload[1500], pkt[PKT_CAP];
	struct ue_rtp_out h;
	size_t plen, len;
	ssize_t r;

	if (ue_enc_encode(m->enc, pcm, m->frame, payload, sizeof(payload),
			  &plen))
		return;
	memset(&h, 0, sizeof(h));
	h.pt = cfg->pt;
	h.marker = idx == 0;
	h.seq = m->seq++;
	h.ts = m->ts0 + idx * m->frame_ts;
	h.ssrc = m->ssrc;
	if (cfg->level_ext_id) {
		h.level_ext_id = cfg->level_ext_id;
		h.level = ue_level_rfc6464(pcm, m->frame);
		h.voice = h.level < 60;
	}
	if (ue_rtp_write(pkt, sizeof(pkt) - KEYLEG_TAILROOM, &h, payload,
			 plen, &len))
		return;
	if (m->kl_tx &&
	    keyleg_protect_rtp(m->kl_tx, pkt, &len, sizeof(pkt)) != KEYLEG_OK)
		return;
	r = sendto(m->fd, pkt, len, 0, (const struct sockaddr *)&cfg->remote,
		   cfg->remote_len);
	if (r == (ssize_t)len) {
		m->st.sent++;
		__atomic_store_n(&m->tx_packets, m->tx_packets + 1,
				 __ATOMIC_RELAXED);
		__atomic_store_n(&m->tx_octets,
				 m->tx_octets + (uint32_t)plen,
				 __ATOMIC_RELAXED);
	}
}

/*
 * Frame i is due at t0 + i * ptime (absolute deadlines: no drift).  A late
 * wake-up sends at once and is counted; frames are never skipped, so the
 * RTP timestamp always advances by exactly one frame per packet.
 */
static void send_loop(struct ue_media *m)
{
	const struct ue_media_cfg *cfg = m->cfg;
	int16_t pcm[MAX_FRAME];
	uint64_t ptime_ns = (uint64_t)cfg->ptime * 1000000ull;
	uint32_t i;

	for (i = 0; !*m->stop; i++) {
		uint64_t due = m->t0_ns + i * ptime_ns;
		struct timespec ts;

		if (due >= m->end_ns)
			break;
		ts.tv_sec = (time_t)(due / 1000000000ull);
		ts.tv_nsec = (long)(due % 1000000000ull);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts,
				       NULL) == EINTR) {
			if (*m->stop)
				return;
		}
		if (mono_ns() > due + ptime_ns)
			m->st.late_sends++;
		next_frame(m, i, pcm);
		if (cfg->dir != UE_DIR_RECVONLY)
			send_rtp(m, i, pcm);
	}
}

/* ------------------------------------------------------------- receive */

static void send_rtcp(struct ue_media *m, uint64_t now, bool bye)
{
	const struct ue_media_cfg *cfg = m->cfg;
	struct ue_rtcp_info ri;
	uint8_t pkt[PKT_CAP];
	size_t len;
	char cname[64];

	snprintf(cname, sizeof(cname), "uemedia-%08x", m->ssrc);
	memset(&ri, 0, sizeof(ri));
	ri.ssrc = m->ssrc;
	ri.sender = cfg->dir != UE_DIR_RECVONLY &&
		__atomic_load_n(&m->tx_packets, __ATOMIC_RELAXED) > 0;
	ri.ntp = ntp_now();
	ri.rtp_ts = m->ts0 + (uint32_t)((now - m->t0_ns) * m->clock /
					1000000000ull);
	ri.packets = __atomic_load_n(&m->tx_packets, __ATOMIC_RELAXED);
	ri.octets = __atomic_load_n(&m->tx_octets, __ATOMIC_RELAXED);
	ri.cname = cfg->cname ? cfg->cname : cname;
	ri.now_ns = now;
	ri.bye = bye;
	if (ue_rtcp_write(pkt, sizeof(pkt) - KEYLEG_TAILROOM, &ri, &m->rxs,
			  &len))
		return;
	if (m->kl_rx &&
	    keyleg_protect_rtcp(m->kl_rx, pkt, &len, sizeof(pkt)) != KEYLEG_OK)
		return;
	if (sendto(m->fd, pkt, len, 0, (const struct sockaddr *)&cfg->remote,
		   cfg->remote_len) == (ssize_t)len)
		m->st.rtcp_sent++;
}

static void count_drop(struct ue_media *m, enum keyleg_status s)
{
	switch (s) {
	case KEYLEG_ERR_AUTH:
		m->st.auth_failures++;
		break;
	case KEYLEG_ERR_REPLAY:
		m->st.replays++;
		break;
	case KEYLEG_ERR_MALFORMED:
		m->st.malformed++;
		break;
	default:
		m->st.other_drops++;
		break;
	}
}

static void recv_rtcp(struct ue_media *m, uint8_t *pkt, size_t len,
		      uint64_t now)
{
	struct ue_rtcp_seen seen;

	if (m->kl_rx) {
		enum keyleg_status s;

		s = keyleg_unprotect_rtcp(m->kl_rx, pkt, &len, now / 1000000);

		if (s != KEYLEG_OK) {
			count_drop(m, s);
			return;
		}
	}
	if (ue_rtcp_parse(pkt, len, &seen)) {
		m->st.malformed++;
		return;
	}
	m->st.rtcp_received++;
	if (seen.n_sr && m->rxs.valid && seen.sr_ssrc == m->rxs.ssrc) {
		m->rxs.lsr = seen.sr_ntp_mid;
		m->rxs.lsr_at_ns = now;
	}
}

static void recv_rtp(struct ue_media *m, uint8_t *pkt, size_t len,
		     uint64_t now)
{
	const struct ue_media_cfg *cfg = m->cfg;
	int16_t pcm[MAX_FRAME * 3];
	struct ue_rtp_in in;
	size_t n, at;

	if (m->kl_rx) {
		enum keyleg_status s;

		s = keyleg_unprotect_rtp(m->kl_rx, pkt, &len, now / 1000000);

		if (s != KEYLEG_OK) {
			count_drop(m, s);
			return;
		}
	}
	if (ue_rtp_parse(pkt, len, cfg->level_ext_id, &in)) {
		m->st.malformed++;
		return;
	}
	if (in.pt != cfg->pt) {
		m->st.wrong_pt++;
		return;
	}
	m->st.received++;
	if (!m->rxs.valid || m->rxs.ssrc != in.ssrc)
		m->st.rx_sources++;
	ue_rx_src_update(&m->rxs, in.ssrc, in.seq, in.ts,
			 (uint32_t)((now - m->t0_ns) * m->clock /
				    1000000000ull));
	if (!in.payload_len)
		return;
	if (ue_dec_decode(m->dec, in.payload, in.payload_len, pcm,
			  sizeof(pcm) / sizeof(pcm[0]), &n)) {
		m->st.decode_errors++;
		return;
	}
	at = (size_t)((now - m->t0_ns) * cfg->rate / 1000000000ull);
	if (m->tl.pcm)
		ue_timeline_put(&m->tl, in.ssrc, in.ts, pcm, n, at);
}

static void recv_batch(struct ue_media *m)
{
	static __thread uint8_t bufs[RX_BATCH][PKT_CAP];
	struct mmsghdr msgs[RX_BATCH];
	struct iovec iov[RX_BATCH];
	struct sockaddr_storage from[RX_BATCH];
	int i, n;

	memset(msgs, 0, sizeof(msgs));
	for (i = 0; i < RX_BATCH; i++) {
		iov[i].iov_base = bufs[i];
		iov[i].iov_len = PKT_CAP - KEYLEG_TAILROOM;
		msgs[i].msg_hdr.msg_iov = &iov[i];
		msgs[i].msg_hdr.msg_iovlen = 1;
		msgs[i].msg_hdr.msg_name = &from[i];
		msgs[i].msg_hdr.msg_namelen = sizeof(from[i]);
	}
	n = recvmmsg(m->fd, msgs, RX_BATCH, MSG_DONTWAIT, NULL);
	for (i = 0; i < n; i++) {
		size_t len = msgs[i].msg_len;
		uint64_t now = mono_ns();

		if (!same_addr(&from[i], msgs[i].msg_hdr.msg_namelen,
			       &m->cfg->remote))
			m->st.foreign++;
		if (ue_is_rtcp(bufs[i], len))
			recv_rtcp(m, bufs[i], len, now);
		else
			recv_rtp(m, bufs[i], len, now);
	}
}

static void *recv_main(void *arg)
{
	struct ue_media *m = arg;
	const struct ue_media_cfg *cfg = m->cfg;
	uint64_t ival = (uint64_t)(cfg->rtcp_interval * 1e9);
	/* keep listening briefly after the last send for in-flight audio */
	uint64_t stop_at = m->end_ns + 100000000ull;

	m->next_rtcp_ns = m->t0_ns + ival / 2;
	for (;;) {
		struct pollfd pfd = { .fd = m->fd, .events = POLLIN };
		uint64_t now = mono_ns();
		int tmo = 20;

		if (*m->stop || now >= stop_at)
			break;
		if (ival && now >= m->next_rtcp_ns) {
			send_rtcp(m, now, false);
			m->next_rtcp_ns += ival;
		}
		if (poll(&pfd, 1, tmo) > 0)
			recv_batch(m);
	}
	/* RFC 3550 6.6: say goodbye (also when RTCP reports are off) */
	send_rtcp(m, mono_ns(), true);
	return NULL;
}

/* --------------------------------------------------------------- setup */

static int open_socket(struct ue_media *m, FILE *ready)
{
	const struct ue_media_cfg *cfg = m->cfg;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char a[80];

	m->fd = socket(cfg->local.ss_family ? cfg->local.ss_family :
		       cfg->remote.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (m->fd < 0)
		return errno;
	if (cfg->local.ss_family &&
	    bind(m->fd, (const struct sockaddr *)&cfg->local, cfg->local_len))
		return errno;
	if (getsockname(m->fd, (struct sockaddr *)&ss, &sl))
		return errno;
	if (ready && !ue_addr_format((struct sockaddr *)&ss, a, sizeof(a))) {
		fprintf(ready, "ready local=%s ssrc=%u\n", a, m->ssrc);
		fflush(ready);
	}
	return 0;
}

static int setup_source(struct ue_media *m)
{
	const struct ue_media_cfg *cfg = m->cfg;
	int16_t *raw = NULL;
	size_t n = 0;
	uint32_t rate = 0;
	int err;

	if (cfg->tone_hz > 0)
		return ue_tone_init(&m->tone, cfg->tone_hz, cfg->tone_dbfs,
				    cfg->rate);
	if (!cfg->wav_in)
		return 0;
	err = ue_wav_read(cfg->wav_in, &raw, &n, &rate);
	if (err)
		return err;
	err = ue_resample(raw, n, rate, cfg->rate, &m->src, &m->src_n);
	free(raw);
	return err;
}

static int setup_srtp(struct ue_media *m)
{
	const struct ue_media_cfg *cfg = m->cfg;
	struct keyleg_opts o;
	int err;

	if (!cfg->srtp)
		return 0;
	err = keyleg_init();
	if (err)
		return err;
	memset(&o, 0, sizeof(o));
	memcpy(o.enc_ext, cfg->enc_ext, sizeof(o.enc_ext));
	o.n_enc_ext = cfg->n_enc_ext;
	err = keyleg_alloc(&m->kl_tx, cfg->profile, &cfg->rx, &cfg->tx, &o);
	if (!err)
		err = keyleg_alloc(&m->kl_rx, cfg->profile, &cfg->rx,
				   &cfg->tx, &o);
	return err;
}

/** EINVAL if the settings cannot run (codec/rate/ptime/duration...) */
int ue_media_cfg_check(const struct ue_media_cfg *cfg)
{
	if (!cfg->remote.ss_family || cfg->pt > 127 ||
	    ue_codec_check_rate(cfg->codec, cfg->rate))
		return EINVAL;
	if (cfg->ptime < 10 || cfg->ptime > 60 || cfg->ptime % 10)
		return EINVAL;
	if (cfg->codec == UE_CODEC_OPUS && (cfg->ptime == 30 ||
					    cfg->ptime == 50))
		return EINVAL;
	if (!(cfg->duration > 0) || cfg->duration > 3600)
		return EINVAL;
	if (cfg->rtcp_interval < 0 || cfg->level_ext_id > 14)
		return EINVAL;
	return 0;
}

static void finish(struct ue_media *m, struct ue_media_stats *st)
{
	m->st.lost = ue_rx_src_lost(&m->rxs);
	m->st.jitter_ms = m->rxs.jitter * 1000.0 / m->clock;
	m->st.remote_ssrc = m->rxs.ssrc;
	m->st.tl_dropped = m->tl.dropped;
	if (st)
		*st = m->st;
}

/**
 * Run one participant: bind, print "ready local=ADDR:PORT ssrc=N" to
 * ready (if not NULL), send and receive for cfg->duration seconds (or until
 * *stop), write the received audio to cfg->wav_out.
 *
 * @return 0 or an errno value (EINVAL for a bad configuration)
 */
int ue_media_run(const struct ue_media_cfg *cfg, volatile int *stop,
		 FILE *ready, struct ue_media_stats *st)
{
	static volatile int never;
	struct ue_media *m;
	pthread_t rx;
	size_t cap;
	int err;

	err = ue_media_cfg_check(cfg);
	if (err)
		return err;
	m = calloc(1, sizeof(*m));
	if (!m)
		return ENOMEM;
	m->fd = -1;
	m->cfg = cfg;
	m->stop = stop ? stop : &never;
	m->clock = ue_codec_rtp_clock(cfg->codec);
	m->frame = cfg->rate * cfg->ptime / 1000;
	m->frame_ts = m->clock * cfg->ptime / 1000;
	m->ssrc = cfg->ssrc_set ? cfg->ssrc : rand32();
	m->seq = (uint16_t)rand32();
	m->ts0 = rand32();

	err = setup_source(m);
	if (!err)
		err = setup_srtp(m);
	if (!err)
		err = ue_enc_alloc(&m->enc, cfg->codec, cfg->rate,
				   &cfg->copts);
	if (!err)
		err = ue_dec_alloc(&m->dec, cfg->codec, cfg->rate);
	cap = (size_t)((cfg->duration + 2) * cfg->rate);
	if (!err && cfg->wav_out)
		err = ue_timeline_init(&m->tl, cap, cfg->rate, m->clock);
	if (!err)
		err = open_socket(m, ready);
	if (err)
		goto out;

	m->t0_ns = mono_ns();
	m->end_ns = m->t0_ns + (uint64_t)(cfg->duration * 1e9);
	err = pthread_create(&rx, NULL, recv_main, m);
	if (err)
		goto out;
	send_loop(m);
	pthread_join(rx, NULL);

	if (cfg->wav_out) {
		size_t n = (size_t)(cfg->duration * cfg->rate);

		if (n < m->tl.hi)
			n = m->tl.hi;
		if (n > m->tl.cap)
			n = m->tl.cap;
		err = ue_wav_write(cfg->wav_out, m->tl.pcm, n, cfg->rate);
	}
	finish(m, st);
 out:
	if (m->fd >= 0)
		close(m->fd);
	m->kl_tx = keyleg_free(m->kl_tx);
	m->kl_rx = keyleg_free(m->kl_rx);
	m->enc = ue_enc_free(m->enc);
	m->dec = ue_dec_free(m->dec);
	ue_timeline_reset(&m->tl);
	free(m->src);
	keyleg_wipe(m, sizeof(*m));
	free(m);
	return err;
}

/** Format "stats sent=N received=N auth_failures=N ..." */
int ue_media_stats_format(const struct ue_media_stats *st, char *out,
			  size_t outsz)
{
	int n = snprintf(out, outsz,
		"stats sent=%llu received=%llu auth_failures=%llu "
		"replays=%llu malformed=%llu other_drops=%llu "
		"rtcp_sent=%llu rtcp_received=%llu decode_errors=%llu "
		"wrong_pt=%llu late_sends=%llu lost=%lld jitter_ms=%.2f "
		"remote_ssrc=%u sources=%llu foreign=%llu",
		(unsigned long long)st->sent,
		(unsigned long long)st->received,
		(unsigned long long)st->auth_failures,
		(unsigned long long)st->replays,
		(unsigned long long)st->malformed,
		(unsigned long long)st->other_drops,
		(unsigned long long)st->rtcp_sent,
		(unsigned long long)st->rtcp_received,
		(unsigned long long)st->decode_errors,
		(unsigned long long)st->wrong_pt,
		(unsigned long long)st->late_sends,
		(long long)st->lost, st->jitter_ms, st->remote_ssrc,
		(unsigned long long)st->rx_sources,
		(unsigned long long)st->foreign);

	return (n < 0 || (size_t)n >= outsz) ? ENOSPC : 0;
}
