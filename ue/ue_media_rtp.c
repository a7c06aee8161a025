/** @file ue_media_rtp.c  uemedia: RTP/RTCP framing and receive statistics */

#include <errno.h>
#include <math.h>
#include <string.h>

#include "ue/ue_media_int.h"

#define RTP_VERSION 2
#define EXT_ONE_BYTE 0xBEDE
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
		((uint32_t)p[2] << 8) | p[3];
}

/**
 * Write an RTP packet: fixed header, an optional RFC 6464 audio level in
 * an RFC 8285 one-byte header extension, then the payload.
 *
 * @return 0, EINVAL or ENOSPC
 */
int ue_rtp_write(uint8_t *buf, size_t cap, const struct ue_rtp_out *h,
		 const uint8_t *payload, size_t plen, size_t *lenp)
{
	size_t off = UE_RTP_HDR_MIN;
	bool ext = h->level_ext_id != 0;

	if (h->pt > 127 || h->level_ext_id > 14 || h->level > 127)
		return EINVAL;
	if (cap < UE_RTP_HDR_MIN + (ext ? 8 : 0) + plen)
		return ENOSPC;
	buf[0] = (uint8_t)(RTP_VERSION << 6 | (ext ? 0x10 : 0));
	buf[1] = (uint8_t)((h->marker ? 0x80 : 0) | h->pt);
	put16(buf + 2, h->seq);
	put32(buf + 4, h->ts);
	put32(buf + 8, h->ssrc);
	if (ext) {
		put16(buf + off, EXT_ONE_BYTE);
		put16(buf + off + 2, 1);            /* one 32-bit word */
		buf[off + 4] = (uint8_t)(h->level_ext_id << 4); /* L-1 = 0 */
		buf[off + 5] = (uint8_t)((h->voice ? 0x80 : 0) | h->level);
		buf[off + 6] = 0;                   /* padding */
		buf[off + 7] = 0;
		off += 8;
	}
	if (plen)
		memcpy(buf + off, payload, plen);
	*lenp = off + plen;
	return 0;
}

/* Look for the audio level element in an RFC 8285 extension block. */
static void find_level(const uint8_t *p, size_t len, uint16_t profile,
		       uint8_t id, struct ue_rtp_in *in)
{
	size_t i = 0;

	if (profile == EXT_ONE_BYTE) {
		while (i < len) {
			uint8_t eid = p[i] >> 4;
			uint8_t l = (uint8_t)((p[i] & 15) + 1);

			if (p[i] == 0) {            /* padding */
				i++;
				continue;
			}
			if (eid == 15)              /* reserved: stop */
				return;
			if (i + 1 + l > len)
				return;
			if (eid == id) {
				in->level = p[i + 1] & 0x7f;
				in->voice = (p[i + 1] & 0x80) != 0;
				return;
			}
			i += 1u + l;
		}
	}
	else if ((profile & 0xfff0) == 0x1000) { /* two-byte header */
		while (i + 1 < len) {
			uint8_t eid = p[i], l = p[i + 1];

			if (eid == 0) {
				i++;
				continue;
			}
			if (i + 2 + l > len)
				return;
			if (eid == id && l >= 1) {
				in->level = p[i + 2] & 0x7f;
				in->voice = (p[i + 2] & 0x80) != 0;
				return;
			}
			i += 2u + l;
		}
	}
}

/**
 * Parse an RTP packet (after SRTP unprotect).
 *
 * @param level_ext_id  RFC 6464 extension id to look for, 0 = none
 * @return 0 or EBADMSG
 */
int ue_rtp_parse(const uint8_t *buf, size_t len, uint8_t level_ext_id,
		 struct ue_rtp_in *in)
{
	size_t off, end = len;
	unsigned cc;

	memset(in, 0, sizeof(*in));
	in->level = -1;
	if (len < UE_RTP_HDR_MIN || (buf[0] >> 6) != RTP_VERSION)
		return EBADMSG;
	cc = buf[0] & 0x0f;
	off = UE_RTP_HDR_MIN + 4u * cc;
	if (off > len)
		return EBADMSG;
	if (buf[0] & 0x20) {                        /* padding */
		uint8_t pad = buf[len - 1];

		if (pad == 0 || pad > len - off)
			return EBADMSG;
		end = len - pad;
	}
	if (buf[0] & 0x10) {                        /* extension */
		size_t xl;
		uint16_t prof;

		if (off + 4 > end)
			return EBADMSG;
		prof = get16(buf + off);
		xl = 4u * get16(buf + off + 2);
		if (off + 4 + xl > end)
			return EBADMSG;
		if (level_ext_id)
			find_level(buf + off + 4, xl, prof, level_ext_id, in);
		off += 4 + xl;
	}
	in->marker = (buf[1] & 0x80) != 0;
	in->pt = buf[1] & 0x7f;
	in->seq = get16(buf + 2);
	in->ts = get32(buf + 4);
	in->ssrc = get32(buf + 8);
	in->payload = buf + off;
	in->payload_len = end - off;
	return 0;
}

/**
 * RFC 5761 section 4: RTCP packet types 192..223 in the second byte; RTP
 * payload types that would collide there are not used.
 */
bool ue_is_rtcp(const uint8_t *buf, size_t len)
{
	return len >= 2 && buf[1] >= 192 && buf[1] <= 223;
}

static void rx_src_init(struct ue_rx_src *s, uint32_t ssrc, uint16_t seq)
{
	memset(s, 0, sizeof(*s));
	s->valid = true;
	s->ssrc = ssrc;
	s->base_seq = seq;
	s->max_seq = seq;
	s->bad_seq = seq;  /* udelta 0 is never a jump: no match */
}

/**
 * Update one source's sequence and jitter state (RFC 3550 A.1, A.8,
 * without the probation period: a new SSRC or a large jump restarts).
 *
 * @param arrival_ts  arrival time in the source's RTP clock units
 */
void ue_rx_src_update(struct ue_rx_src *s, uint32_t ssrc, uint16_t seq,
		      uint32_t rtp_ts, uint32_t arrival_ts)
{
	uint16_t udelta;
	int64_t transit, d;

	if (!s->valid || s->ssrc != ssrc) {
		rx_src_init(s, ssrc, seq);
		s->received = 1;
		s->last_transit = (int32_t)(arrival_ts - rtp_ts);
		return;
	}
	udelta = (uint16_t)(seq - s->max_seq);
	if (udelta < MAX_DROPOUT) {
		if (seq < s->max_seq)
			s->cycles += 65536;
		s->max_seq = seq;
	}
	else if (udelta <= 65536 - MAX_MISORDER) {
		/* a very large jump: restart only if the next packet
		 * follows it (the sender restarted), else ignore it */
		uint32_t lsr = s->lsr;
		uint64_t lat = s->lsr_at_ns;

		if (seq != s->bad_seq) {
			s->bad_seq = (uint16_t)(seq + 1);
			return;
		}
		rx_src_init(s, ssrc, seq);
		s->lsr = lsr;
		s->lsr_at_ns = lat;
		s->last_transit = (int32_t)(arrival_ts - rtp_ts);
		s->received = 1;
		return;
	}
	s->received++;
	transit = (int32_t)(arrival_ts - rtp_ts);
	d = transit - s->last_transit;
	s->last_transit = transit;
	if (d < 0)
		d = -d;
	s->jitter += ((double)d - s->jitter) / 16.0;
}

/** Packets lost so far: expected minus received (RFC 3550 A.3) */
int32_t ue_rx_src_lost(const struct ue_rx_src *s)
{
	uint32_t expected;

	if (!s->valid)
		return 0;
	expected = s->cycles + s->max_seq - s->base_seq + 1;
	return (int32_t)(expected - s->received);
}

static size_t write_block(uint8_t *p, struct ue_rx_src *src,
			  uint64_t now_ns)
{
	uint32_t expected = src->cycles + src->max_seq - src->base_seq + 1;
	uint32_t exp_int = expected - src->expected_prior;
	uint32_t rec_int = src->received - src->received_prior;
	int32_t lost = (int32_t)(expected - src->received);
	int32_t lost_int = (int32_t)(exp_int - rec_int);
	uint8_t fraction = 0;
	uint32_t dlsr = 0;

	src->expected_prior = expected;
	src->received_prior = src->received;
	if (exp_int && lost_int > 0)
		fraction = (uint8_t)(((uint32_t)lost_int << 8) / exp_int);
	if (lost > 0x7fffff)
		lost = 0x7fffff;
	if (lost < -0x800000)
		lost = -0x800000;
	if (src->lsr && now_ns >= src->lsr_at_ns)
		dlsr = (uint32_t)((now_ns - src->lsr_at_ns) * 65536 /
				  1000000000ull);
	put32(p, src->ssrc);
	put32(p + 4, ((uint32_t)fraction << 24) | ((uint32_t)lost & 0xffffff));
	put32(p + 8, src->cycles + src->max_seq);
	put32(p + 12, (uint32_t)src->jitter);
	put32(p + 16, src->lsr);
	put32(p + 20, src->lsr ? dlsr : 0);
	return 24;
}

/**
 * Write a compound RTCP packet: SR or RR (with one report block about src
 * when it is valid), then SDES with a CNAME.
 *
 * @return 0, EINVAL or ENOSPC
 */
int ue_rtcp_write(uint8_t *buf, size_t cap, const struct ue_rtcp_info *ri,
		  struct ue_rx_src *src, size_t *lenp)
{
	size_t off = 0, start, cl, sl;
	unsigned rc = (src && src->valid) ? 1 : 0;
	const char *cname = ri->cname ? ri->cname : "uemedia";

	cl = strlen(cname);
	if (cl > 255)
		return EINVAL;
	sl = (4 + 2 + cl + 1 + 3) & ~(size_t)3;     /* SDES chunk padded */
	if (cap < 28 + 24 * rc + 4 + sl + (ri->bye ? 8 : 0))
		return ENOSPC;
	start = off;
	buf[off] = (uint8_t)(RTP_VERSION << 6 | rc);
	buf[off + 1] = ri->sender ? 200 : 201;
	put32(buf + off + 4, ri->ssrc);
	off += 8;
	if (ri->sender) {
		put32(buf + off, (uint32_t)(ri->ntp >> 32));
		put32(buf + off + 4, (uint32_t)ri->ntp);
		put32(buf + off + 8, ri->rtp_ts);
		put32(buf + off + 12, ri->packets);
		put32(buf + off + 16, ri->octets);
		off += 20;
	}
	if (rc)
		off += write_block(buf + off, src, ri->now_ns);
	put16(buf + start + 2, (uint16_t)((off - start) / 4 - 1));

	start = off;
	buf[off] = RTP_VERSION << 6 | 1;
	buf[off + 1] = 202;
	put32(buf + off + 4, ri->ssrc);
	buf[off + 8] = 1;                           /* CNAME */
	buf[off + 9] = (uint8_t)cl;
	memcpy(buf + off + 10, cname, cl);
	off += 10 + cl;
	memset(buf + off, 0, start + 4 + sl - off); /* END + padding */
	off = start + 4 + sl;
	put16(buf + start + 2, (uint16_t)((off - start) / 4 - 1));
	if (ri->bye) {
		buf[off] = RTP_VERSION << 6 | 1;
		buf[off + 1] = 203;
		put16(buf + off + 2, 1);
		put32(buf + off + 4, ri->ssrc);
		off += 8;
	}
	*lenp = off;
	return 0;
}

/**
 * Walk a compound RTCP packet (after SRTCP unprotect) and count its parts.
 *
 * @return 0 or EBADMSG
 */
int ue_rtcp_parse(const uint8_t *buf, size_t len, struct ue_rtcp_seen *seen)
{
	size_t off = 0;

	memset(seen, 0, sizeof(*seen));
	if (len < 4)
		return EBADMSG;
	while (off < len) {
		size_t pl;

		if (len - off < 4 || (buf[off] >> 6) != RTP_VERSION)
			return EBADMSG;
		pl = 4u * (get16(buf + off + 2) + 1u);
		if (pl > len - off)
			return EBADMSG;
		switch (buf[off + 1]) {
		case 200:
			if (pl < 28)
				return EBADMSG;
			seen->n_sr++;
			seen->sr_ssrc = get32(buf + off + 4);
			seen->sr_ntp_mid = get32(buf + off + 10);
			break;
		case 201:
			seen->n_rr++;
			break;
		case 202:
			seen->n_sdes++;
			break;
		case 203:
			seen->n_bye++;
			break;
		default:
			seen->n_other++;
			break;
		}
		off += pl;
	}
	return 0;
}
