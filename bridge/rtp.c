/**
 * @file rtp.c  RTP/RTCP parsing and writing, RFC 3550 receive statistics
 *
 * Pure functions on caller-owned buffers: no allocation, no logging, so
 * every one of them runs on the packet path and is unit-tested alone.
 */

#include <errno.h>
#include <string.h>
#include "bridge/bridge_int.h"

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
		((uint32_t)p[2] << 8) | p[3];
}

static void wr16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/**
 * Tell RTCP from RTP on a multiplexed port (RFC 5761 section 4): RTCP
 * packet types 192..223 occupy the second byte where RTP has M+PT.
 */
int rtp_is_rtcp(const uint8_t *p, size_t len)
{
	if (len < 2)
		return 0;
	return p[1] >= 192 && p[1] <= 223;
}

/**
 * Parse an RTP header (RFC 3550 5.1) with CSRCs, extension and padding.
 *
 * @return 0, or EBADMSG if the packet is not a well-formed RTP packet
 */
int rtp_parse(const uint8_t *p, size_t len, struct rtp_hdr *h)
{
	size_t off, pad = 0;
	unsigned cc;

	if (len < 12 || (p[0] >> 6) != 2)
		return EBADMSG;
	memset(h, 0, sizeof(*h));
	cc = p[0] & 0x0f;
	h->marker = (p[1] & 0x80) != 0;
	h->pt = p[1] & 0x7f;
	h->seq = rd16(p + 2);
	h->ts = rd32(p + 4);
	h->ssrc = rd32(p + 8);
	off = 12 + 4 * (size_t)cc;
	if (off > len)
		return EBADMSG;
	if (p[0] & 0x10) {
		size_t xlen;

		if (off + 4 > len)
			return EBADMSG;
		h->ext_profile = rd16(p + off);
		xlen = 4 * (size_t)rd16(p + off + 2);
		if (off + 4 + xlen > len)
			return EBADMSG;
		h->ext = p + off + 4;
		h->ext_len = xlen;
		off += 4 + xlen;
	}
	if (p[0] & 0x20) {
		pad = p[len - 1];
		if (pad == 0 || off + pad > len)
			return EBADMSG;
	}
	h->hdr_len = off;
	h->payload_len = len - off - pad;
	return 0;
}

/**
 * Find the RFC 6464 client-to-mixer audio level in an RFC 8285 one-byte
 * or two-byte header extension block.
 *
 * @return 0 with *levelp in -dBov (0..127) and *voicep, or ENOENT
 */
int rtp_audio_level(const struct rtp_hdr *h, uint8_t id, uint8_t *levelp,
		    int *voicep)
{
	size_t i = 0;
	int two;

	if (!h->ext || id == 0)
		return ENOENT;
	if (h->ext_profile == 0xBEDE)
		two = 0;
	else if ((h->ext_profile & 0xfff0) == 0x1000)
		two = 1;
	else
		return ENOENT;

	while (i < h->ext_len) {
		uint8_t eid;
		size_t elen;

		if (h->ext[i] == 0) { /* padding */
			++i;
			continue;
		}
		if (two) {
			if (i + 2 > h->ext_len)
				return ENOENT;
			eid = h->ext[i];
			elen = h->ext[i + 1];
			i += 2;
		}
		else {
			eid = h->ext[i] >> 4;
			elen = (size_t)(h->ext[i] & 0x0f) + 1;
			if (eid == 15)
				return ENOENT;
			i += 1;
		}
		if (i + elen > h->ext_len)
			return ENOENT;
		if (eid == id && elen >= 1) {
			*voicep = (h->ext[i] & 0x80) != 0;
			*levelp = h->ext[i] & 0x7f;
			return 0;
		}
		i += elen;
	}
	return ENOENT;
}

/** Write a 12-byte RTP header; returns its length */
size_t rtp_write_hdr(uint8_t *p, uint8_t pt, int marker, uint16_t seq,
		     uint32_t ts, uint32_t ssrc)
{
	p[0] = 0x80;
	p[1] = (uint8_t)((marker ? 0x80 : 0) | (pt & 0x7f));
	wr16(p + 2, seq);
	wr32(p + 4, ts);
	wr32(p + 8, ssrc);
	return 12;
}

/** Parse an RFC 4733 telephone-event payload (section 2.3) */
int rtp_event_parse(const uint8_t *pl, size_t len, struct rtp_event *ev)
{
	if (len < 4)
		return EBADMSG;
	ev->event = pl[0];
	ev->end = (pl[1] & 0x80) != 0;
	ev->volume = pl[1] & 0x3f;
	ev->duration = rd16(pl + 2);
	return 0;
}

/**
 * Update receive statistics with one accepted packet: extended highest
 * sequence number (RFC 3550 A.1, without probation: the packet was already
 * authenticated) and interarrival jitter (A.8, kept scaled by 16).
 *
 * @param arrival  arrival time in units of the RTP clock
 * @param timing   0 for packets whose timestamp is not a sampling instant
 *                 (RFC 4733 events keep their start time): sequence only
 */
void rtp_rxstats_update(struct rtp_rxstats *s, uint32_t ssrc, uint16_t seq,
			uint32_t ts, uint32_t arrival, int timing)
{
	int32_t transit, d;
	uint16_t udelta;

	if (!s->init || ssrc != s->ssrc) {
		memset(s, 0, sizeof(*s));
		s->init = 1;
		s->ssrc = ssrc;
		s->base_seq = seq;
		s->max_seq = seq;
		s->received = 1;
		s->transit = (int32_t)(arrival - ts);
		s->have_transit = timing;
		return;
	}
	udelta = (uint16_t)(seq - s->max_seq);
	if (udelta < 3000) {
		if (seq < s->max_seq)
			s->cycles += 65536;
		s->max_seq = seq;
	}
	else if (udelta <= 65536 - 100) {
		/* a very large jump: restart the sequence (A.1 bad_seq
		 * handling, simplified to an immediate resync) */
		s->base_seq = seq;
		s->max_seq = seq;
		s->cycles = 0;
		s->received = 0;
		s->expected_prior = 0;
		s->received_prior = 0;
	}
	/* else: duplicate or reordered, counted below */
	s->received++;

	if (!timing)
		return;
	transit = (int32_t)(arrival - ts);
	if (!s->have_transit) {
		s->transit = transit;
		s->have_transit = 1;
		return;
	}
	d = transit - s->transit;
	s->transit = transit;
	if (d < 0)
		d = -d;
	s->jitter += (uint32_t)d - ((s->jitter + 8) >> 4);
}

/** Extended highest sequence number received */
uint32_t rtp_rxstats_ext_max(const struct rtp_rxstats *s)
{
	return s->cycles + s->max_seq;
}

/** Cumulative packets lost (expected - received, never negative here) */
int64_t rtp_rxstats_lost(const struct rtp_rxstats *s)
{
	int64_t expected, lost;

	if (!s->init)
		return 0;
	expected = (int64_t)rtp_rxstats_ext_max(s) - s->base_seq + 1;
	lost = expected - (int64_t)s->received;
	return lost < 0 ? 0 : lost;
}

/** Loss fraction since the previous call (RFC 3550 A.3), 8-bit fixed */
uint8_t rtp_rxstats_fraction(struct rtp_rxstats *s)
{
	int64_t expected, exp_int, rec_int, lost_int;

	if (!s->init)
		return 0;
	expected = (int64_t)rtp_rxstats_ext_max(s) - s->base_seq + 1;
	exp_int = expected - s->expected_prior;
	rec_int = (int64_t)s->received - s->received_prior;
	s->expected_prior = (uint32_t)expected;
	s->received_prior = s->received;
	lost_int = exp_int - rec_int;
	if (exp_int <= 0 || lost_int <= 0)
		return 0;
	return (uint8_t)((lost_int << 8) / exp_int);
}

/** Interarrival jitter in milliseconds for an RTP clock rate */
double rtp_rxstats_jitter_ms(const struct rtp_rxstats *s, uint32_t clock)
{
	if (!clock)
		return 0;
	return (double)(s->jitter >> 4) * 1000.0 / clock;
}

/**
 * Build a compound RTCP packet: SR (or RR when we have sent nothing) with
 * at most one report block, then SDES CNAME (RFC 3550 6.1).
 *
 * @return length written, or 0 if cap is too small
 */
size_t rtcp_build(uint8_t *p, size_t cap, const struct rtcp_report *r)
{
	size_t off = 0, clen, sdes_len, words;
	int nrb = r->have_block ? 1 : 0;
	size_t first = (r->sender ? 28 : 8) + 24 * (size_t)nrb;

	clen = strlen(r->cname);
	if (clen > 255)
		return 0;
	/* SDES chunk: SSRC, CNAME item (2 + len), end byte(s) to 32 bits */
	sdes_len = 4 + 4 + ((2 + clen + 1 + 3) & ~(size_t)3);
	if (first + sdes_len > cap)
		return 0;

	p[0] = (uint8_t)(0x80 | nrb);
	p[1] = r->sender ? 200 : 201;
	wr16(p + 2, (uint16_t)(first / 4 - 1));
	wr32(p + 4, r->ssrc);
	off = 8;
	if (r->sender) {
		wr32(p + 8, (uint32_t)(r->ntp >> 32));
		wr32(p + 12, (uint32_t)r->ntp);
		wr32(p + 16, r->rtp_ts);
		wr32(p + 20, r->packets);
		wr32(p + 24, r->octets);
		off = 28;
	}
	if (nrb) {
		uint32_t cum = (uint32_t)(r->cum_lost > 0x7fffff ?
					  0x7fffff : r->cum_lost);

		wr32(p + off, r->src_ssrc);
		wr32(p + off + 4, ((uint32_t)r->fraction << 24) |
		     (cum & 0xffffff));
		wr32(p + off + 8, r->ext_max);
		wr32(p + off + 12, r->jitter);
		wr32(p + off + 16, r->lsr);
		wr32(p + off + 20, r->dlsr);
		off += 24;
	}
	words = sdes_len / 4 - 1;
	p[off] = 0x81;
	p[off + 1] = 202;
	wr16(p + off + 2, (uint16_t)words);
	wr32(p + off + 4, r->ssrc);
	p[off + 8] = 1; /* CNAME */
	p[off + 9] = (uint8_t)clen;
	memcpy(p + off + 10, r->cname, clen);
	memset(p + off + 10 + clen, 0, sdes_len - 10 - clen);
	off += sdes_len;
	return off;
}

static void rtcp_blocks(const uint8_t *p, unsigned count, size_t avail,
			uint32_t our_ssrc, struct rtcp_info *info)
{
	unsigned i;

	for (i = 0; i < count && (size_t)(i + 1) * 24 <= avail; i++) {
		const uint8_t *b = p + 24 * (size_t)i;
		uint32_t lost;

		if (rd32(b) != our_ssrc)
			continue;
		info->have_rb = 1;
		info->fraction = b[4];
		lost = rd32(b + 4) & 0xffffff;
		if (lost & 0x800000)
			lost |= 0xff000000u;
		info->cum_lost = (int32_t)lost;
		info->jitter = rd32(b + 12);
		info->lsr = rd32(b + 16);
		info->dlsr = rd32(b + 20);
	}
}

/**
 * Walk a (decrypted) compound RTCP packet and pick out what we use: the
 * sender report's NTP time and the report block about our own SSRC.
 *
 * @return 0, or EBADMSG if the compound packet is malformed
 */
int rtcp_parse(const uint8_t *p, size_t len, uint32_t our_ssrc,
	       struct rtcp_info *info)
{
	size_t off = 0;

	memset(info, 0, sizeof(*info));
	if (len < 8)
		return EBADMSG;
	while (off + 4 <= len) {
		const uint8_t *h = p + off;
		size_t plen = 4 * ((size_t)rd16(h + 2) + 1);
		unsigned count = h[0] & 0x1f;

		if ((h[0] >> 6) != 2 || off + plen > len)
			return EBADMSG;
		switch (h[1]) {
		case 200:
			if (plen < 28)
				return EBADMSG;
			info->have_sr = 1;
			info->sr_ssrc = rd32(h + 4);
			info->sr_ntp_mid = (rd32(h + 8) << 16) |
				(rd32(h + 12) >> 16);
			rtcp_blocks(h + 28, count, plen - 28, our_ssrc, info);
			break;
		case 201:
			if (plen < 8)
				return EBADMSG;
			rtcp_blocks(h + 8, count, plen - 8, our_ssrc, info);
			break;
		case 203:
			info->bye = 1;
			break;
		default:
			break;
		}
		off += plen;
	}
	return off == len ? 0 : EBADMSG;
}

/** Build an RTCP BYE for one SSRC; returns its length (8) or 0 */
size_t rtcp_build_bye(uint8_t *p, size_t cap, uint32_t ssrc)
{
	if (cap < 8)
		return 0;
	p[0] = 0x81;
	p[1] = 203;
	wr16(p + 2, 1);
	wr32(p + 4, ssrc);
	return 8;
}
