/**
 * @file rtp_srtp.c  Fuzz target: SRTP/SRTCP unprotect (keyleg) of hostile
 * packets, raw or first protected by a peer so the fuzzer gets past the tag
 *
 * Input: one flags byte, then either one packet (the rest) or, with
 * F_MULTI, up to 32 records of a 2-byte big-endian length and that many
 * bytes, all fed to one receiving context (replay window, ROC guessing,
 * rekey overlap).
 *   bits 0-2  profile (mod KEYLEG_PROFILE_COUNT)
 *   bit 3     RTCP instead of RTP
 *   bit 4     protect each packet with the peer's context first
 *   bit 5     RFC 6904 header-extension encryption (ids 1, 2, 5)
 *   bit 6     rekey both ends after half of the packets
 *   bit 7     F_MULTI
 * Every packet, as received and after a successful unprotect, also goes
 * through the bridge's RTP/RTCP parsers (rtp_parse, rtp_audio_level,
 * rtp_event_parse, receive statistics, rtcp_parse), which plain-RTP legs
 * meet unauthenticated.  They are folder-private (bridge/bridge_int.h):
 * there is no public parse entry point.
 * Invariants checked: unprotect never grows a packet, a protected packet
 * that the peer made unprotects to the original bytes, every status is
 * one of enum keyleg_status, and a parsed header, extension and payload
 * lie inside the packet.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bridge/bridge_int.h"
#include "keyleg/keyleg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	F_RTCP = 1 << 3,
	F_PROTECT = 1 << 4,
	F_ENC_EXT = 1 << 5,
	F_REKEY = 1 << 6,
	F_MULTI = 1 << 7,
	MAX_RECORDS = 32,
};

static uint8_t pkt[KEYLEG_MAX_PACKET + KEYLEG_TAILROOM];
static uint8_t orig[KEYLEG_MAX_PACKET];

static void fill_key(struct keyleg_keysalt *ks, enum keyleg_profile p,
		     uint8_t seed)
{
	size_t i;

	ks->len = keyleg_profile_key_len(p) + keyleg_profile_salt_len(p);
	for (i = 0; i < ks->len; i++)
		ks->b[i] = (uint8_t)(seed + 7 * i);
}

static struct rtp_rxstats rxs;

/* The bridge's parsers on what arrived (plain legs) or was unprotected */
static void parse(const uint8_t *p, size_t len)
{
	struct rtp_hdr h;
	struct rtcp_info info;
	struct rtp_event ev;
	uint8_t level;
	int voice;
	unsigned id;

	if (rtp_is_rtcp(p, len)) {
		(void)rtcp_parse(p, len, 0x11223344, &info);
		return;
	}
	if (rtp_parse(p, len, &h))
		return;
	if (h.hdr_len > len || h.payload_len > len - h.hdr_len)
		abort();
	if (h.ext && (h.ext < p || h.ext + h.ext_len > p + len))
		abort();
	for (id = 1; id <= 14; id++)
		if (rtp_audio_level(&h, (uint8_t)id, &level, &voice) == 0 &&
		    level > 127)
			abort();
	(void)rtp_event_parse(p + h.hdr_len, h.payload_len, &ev);
	rtp_rxstats_update(&rxs, h.ssrc, h.seq, h.ts, h.ts + 17, h.marker);
	(void)rtp_rxstats_lost(&rxs);
	(void)rtp_rxstats_fraction(&rxs);
	(void)rtp_rxstats_jitter_ms(&rxs, 48000);
}

static void one(struct keyleg *peer, struct keyleg *me, int flags,
		const uint8_t *p, size_t len, uint64_t now)
{
	size_t n = len, before;
	enum keyleg_status st;
	int made = 0;

	if (len > KEYLEG_MAX_PACKET)
		return;
	memcpy(pkt, p, len);
	if (flags & F_PROTECT) {
		memcpy(orig, p, len);
		if (flags & F_RTCP)
			st = keyleg_protect_rtcp(peer, pkt, &n, sizeof(pkt));
		else
			st = keyleg_protect_rtp(peer, pkt, &n, sizeof(pkt));
		if (st >= KEYLEG_STATUS_COUNT)
			abort();
		if (st == KEYLEG_OK) {
			if (n < len || n > len + KEYLEG_TAILROOM)
				abort();
			made = 1;
		}
		else
			n = len;
	}
	before = n;
	parse(pkt, n);
	if (flags & F_RTCP)
		st = keyleg_unprotect_rtcp(me, pkt, &n, now);
	else
		st = keyleg_unprotect_rtp(me, pkt, &n, now);
	if (st >= KEYLEG_STATUS_COUNT || (st == KEYLEG_OK && n > before))
		abort();
	/* What our own peer protected comes back intact, unless it is a
	 * replay of an earlier record (same sequence number) */
	if (made && st == KEYLEG_OK && (n != len || memcmp(pkt, orig, len)))
		abort();
	if (made && st != KEYLEG_OK && st != KEYLEG_ERR_REPLAY)
		abort();
	if (st == KEYLEG_OK)
		parse(pkt, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct keyleg_keysalt a, b, a2, b2;
	struct keyleg_opts opts;
	struct keyleg *peer = NULL, *me = NULL;
	enum keyleg_profile prof;
	const uint8_t *p;
	size_t left, nrec = 0, i;
	const uint8_t *rec[MAX_RECORDS];
	size_t rlen[MAX_RECORDS];
	int flags;

	if (size < 1)
		return 0;
	flags = data[0];
	prof = (enum keyleg_profile)((flags & 7) % KEYLEG_PROFILE_COUNT);
	p = data + 1;
	left = size - 1;
	if (flags & F_MULTI) {
		while (left >= 2 && nrec < MAX_RECORDS) {
			size_t l = (size_t)p[0] << 8 | p[1];

			p += 2;
			left -= 2;
			if (l > left)
				l = left;
			rec[nrec] = p;
			rlen[nrec++] = l;
			p += l;
			left -= l;
		}
	}
	else {
		rec[0] = p;
		rlen[0] = left;
		nrec = 1;
	}

	memset(&rxs, 0, sizeof(rxs));
	memset(&opts, 0, sizeof(opts));
	if (flags & F_ENC_EXT) {
		opts.enc_ext[0] = 1;
		opts.enc_ext[1] = 2;
		opts.enc_ext[2] = 5;
		opts.n_enc_ext = 3;
	}
	opts.replay_window = 64;
	fill_key(&a, prof, 1);
	fill_key(&b, prof, 99);
	/* the peer sends with a, we receive with a */
	if (keyleg_alloc(&peer, prof, &b, &a, &opts) ||
	    keyleg_alloc(&me, prof, &a, &b, &opts))
		abort();
	for (i = 0; i < nrec; i++) {
		if ((flags & F_REKEY) && i == nrec / 2 && i > 0) {
			fill_key(&a2, prof, 33);
			fill_key(&b2, prof, 77);
			if (keyleg_rekey(peer, &b2, &a2, 1000 + i) ||
			    keyleg_rekey(me, &a2, &b2, 1000 + i))
				abort();
		}
		one(peer, me, flags, rec[i], rlen[i], 1000 + i);
	}
	peer = keyleg_free(peer);
	me = keyleg_free(me);
	return 0;
}
