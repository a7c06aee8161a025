/** @file test_rtp.c  uemedia unit tests: RTP/RTCP framing, receive stats */

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "ue/ue_media_int.h"
#include "tests/ue_media/ue_media_test.h"

static void test_rtp_roundtrip(void **state)
{
	struct ue_rtp_out h = {
		.pt = 111, .marker = true, .seq = 65535, .ts = 0xfffffff0,
		.ssrc = 0xdeadbeef, .level_ext_id = 1, .level = 23,
		.voice = true,
	};
	const uint8_t pl[3] = { 0xaa, 0xbb, 0xcc };
	struct ue_rtp_in in;
	uint8_t buf[64];
	size_t len;

	(void)state;
	assert_int_equal(ue_rtp_write(buf, sizeof(buf), &h, pl, 3, &len), 0);
	assert_int_equal(len, 12 + 8 + 3);
	assert_int_equal(buf[0], 0x90);            /* V=2, X=1 */
	assert_int_equal(buf[1], 0x80 | 111);
	assert_int_equal(buf[12], 0xbe);
	assert_int_equal(buf[13], 0xde);
	assert_int_equal(buf[16], 0x10);           /* id 1, L-1 = 0 */
	assert_int_equal(buf[17], 0x80 | 23);
	assert_int_equal(ue_rtp_parse(buf, len, 1, &in), 0);
	assert_int_equal(in.pt, 111);
	assert_true(in.marker);
	assert_int_equal(in.seq, 65535);
	assert_int_equal(in.ts, 0xfffffff0);
	assert_int_equal(in.ssrc, 0xdeadbeef);
	assert_int_equal(in.level, 23);
	assert_true(in.voice);
	assert_int_equal(in.payload_len, 3);
	assert_memory_equal(in.payload, pl, 3);
	/* other ext id: level not reported */
	assert_int_equal(ue_rtp_parse(buf, len, 2, &in), 0);
	assert_int_equal(in.level, -1);
	/* no extension at all */
	h.level_ext_id = 0;
	assert_int_equal(ue_rtp_write(buf, sizeof(buf), &h, pl, 3, &len), 0);
	assert_int_equal(len, 15);
	assert_int_equal(buf[0], 0x80);
	assert_int_equal(ue_rtp_write(buf, 14, &h, pl, 3, &len), ENOSPC);
	h.pt = 128;
	assert_int_equal(ue_rtp_write(buf, sizeof(buf), &h, pl, 3, &len),
			 EINVAL);
}

static void test_rtp_parse_csrc_pad_twobyte(void **state)
{
	/* V=2 P=1 X=1 CC=1; two-byte ext (0x1000) with id 3 len 1 */
	uint8_t p[] = {
		0xb1, 0x08, 0x00, 0x07, 0, 0, 0, 160, 1, 2, 3, 4,
		9, 9, 9, 9,                        /* CSRC */
		0x10, 0x00, 0x00, 0x01,            /* ext header, 1 word */
		0x03, 0x01, 0x2a, 0x00,            /* id 3, len 1, level 42 */
		0xd5, 0xd5,                        /* payload */
		0x00, 0x02,                        /* padding, count 2 */
	};
	struct ue_rtp_in in;

	(void)state;
	assert_int_equal(ue_rtp_parse(p, sizeof(p), 3, &in), 0);
	assert_int_equal(in.pt, 8);
	assert_int_equal(in.seq, 7);
	assert_int_equal(in.ts, 160);
	assert_int_equal(in.level, 42);
	assert_false(in.voice);
	assert_int_equal(in.payload_len, 2);
	assert_int_equal(in.payload[0], 0xd5);
	/* padding count larger than the packet */
	p[sizeof(p) - 1] = 200;
	assert_int_equal(ue_rtp_parse(p, sizeof(p), 3, &in), EBADMSG);
	p[sizeof(p) - 1] = 0;
	assert_int_equal(ue_rtp_parse(p, sizeof(p), 3, &in), EBADMSG);
}

static void test_rtp_parse_bad(void **state)
{
	uint8_t p[32];
	struct ue_rtp_in in;
	size_t i;

	(void)state;
	memset(p, 0, sizeof(p));
	p[0] = 0x80;
	assert_int_equal(ue_rtp_parse(p, 11, 0, &in), EBADMSG);
	assert_int_equal(ue_rtp_parse(p, 12, 0, &in), 0);
	assert_int_equal(in.payload_len, 0);
	p[0] = 0x40;                               /* version 1 */
	assert_int_equal(ue_rtp_parse(p, 20, 0, &in), EBADMSG);
	p[0] = 0x8f;                               /* 15 CSRCs > length */
	assert_int_equal(ue_rtp_parse(p, 32, 0, &in), EBADMSG);
	p[0] = 0x90;                               /* ext longer than pkt */
	p[14] = 0x00;
	p[15] = 0x10;
	assert_int_equal(ue_rtp_parse(p, 32, 1, &in), EBADMSG);
	/* every truncation of a valid packet with an extension */
	{
		struct ue_rtp_out h = { .pt = 0, .level_ext_id = 5 };
		uint8_t b[40];
		size_t len;

		assert_int_equal(ue_rtp_write(b, sizeof(b), &h, NULL, 0,
					      &len), 0);
		for (i = 0; i < len; i++)
			assert_int_equal(ue_rtp_parse(b, i, 5, &in),
					 EBADMSG);
	}
}

static void test_rtcp_demux(void **state)
{
	uint8_t p[2] = { 0x80, 200 };

	(void)state;
	assert_true(ue_is_rtcp(p, 2));
	p[1] = 201;
	assert_true(ue_is_rtcp(p, 2));
	p[1] = 111;                                /* RTP PT 111 */
	assert_false(ue_is_rtcp(p, 2));
	p[1] = 0x80 | 111;                         /* with marker */
	assert_false(ue_is_rtcp(p, 2));
	p[1] = 0x80 | 8;                           /* PCMA + marker = 136 */
	assert_false(ue_is_rtcp(p, 2));
	assert_false(ue_is_rtcp(p, 1));
}

static void test_rx_src_wrap_and_loss(void **state)
{
	struct ue_rx_src s;
	uint32_t i;

	(void)state;
	memset(&s, 0, sizeof(s));
	/* 200 packets across the 16-bit wrap, perfectly paced */
	for (i = 0; i < 200; i++)
		ue_rx_src_update(&s, 42, (uint16_t)(65500 + i), i * 960,
				 1000 + i * 960);
	assert_int_equal(s.cycles, 65536);
	assert_int_equal(s.received, 200);
	assert_int_equal(ue_rx_src_lost(&s), 0);
	assert_true(s.jitter < 1e-9);
	/* skip 5 packets */
	ue_rx_src_update(&s, 42, (uint16_t)(65500 + 205), 205 * 960,
			 1000 + 205 * 960);
	assert_int_equal(ue_rx_src_lost(&s), 5);
	/* a late duplicate does not move max_seq; it counts as received */
	ue_rx_src_update(&s, 42, (uint16_t)(65500 + 150), 150 * 960,
			 1000 + 206 * 960);
	assert_int_equal(s.max_seq, (uint16_t)(65500 + 205));
	assert_int_equal(ue_rx_src_lost(&s), 4);
	assert_true(s.jitter > 0);
	/* one packet far away is ignored ... */
	ue_rx_src_update(&s, 42, 20000, 0, 0);
	assert_int_equal(s.max_seq, (uint16_t)(65500 + 205));
	assert_int_equal(s.received, 202);
	/* ... unless the next one follows it: the sender restarted */
	ue_rx_src_update(&s, 42, 20001, 960, 960);
	assert_int_equal(s.base_seq, 20001);
	assert_int_equal(s.received, 1);
	/* a new SSRC restarts */
	ue_rx_src_update(&s, 43, 10, 0, 0);
	assert_int_equal(s.ssrc, 43);
	assert_int_equal(s.received, 1);
	assert_int_equal(ue_rx_src_lost(&s), 0);
}

static void test_rx_src_jitter(void **state)
{
	struct ue_rx_src s;
	uint32_t i;

	(void)state;
	memset(&s, 0, sizeof(s));
	/* arrivals alternate 80 ticks early/late: |D| = 160 each step */
	for (i = 0; i < 400; i++)
		ue_rx_src_update(&s, 1, (uint16_t)i, i * 160,
				 i * 160 + ((i & 1) ? 160 : 0));
	assert_true(s.jitter > 150 && s.jitter < 161);
}

static void test_rtcp_sr_rr(void **state)
{
	struct ue_rx_src s;
	struct ue_rtcp_info ri = {
		.ssrc = 0x11223344, .sender = true,
		.ntp = 0x0102030405060708ull,
		.rtp_ts = 12345, .packets = 50, .octets = 4000,
		.cname = "alice", .now_ns = 2000000000ull,
	};
	struct ue_rtcp_seen seen;
	uint8_t b[256];
	size_t len;
	uint32_t i;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (i = 0; i <= 100; i++)
		if (i % 10 != 5)                   /* 10 of 101 lost */
			ue_rx_src_update(&s, 0xabc, (uint16_t)i, i * 160,
					 i * 160);
	s.lsr = 0x55667788;
	s.lsr_at_ns = 1000000000ull;
	assert_int_equal(ue_rtcp_write(b, sizeof(b), &ri, &s, &len), 0);
	assert_int_equal(len % 4, 0);
	assert_int_equal(b[0], 0x81);              /* V=2, RC=1 */
	assert_int_equal(b[1], 200);
	assert_int_equal((b[2] << 8 | b[3]), (28 + 24) / 4 - 1);
	/* report block at offset 28 */
	assert_int_equal(b[28 + 3], 0xbc);
	assert_int_equal(b[32], (10 << 8) / 101);  /* fraction lost */
	assert_int_equal(b[33] << 16 | b[34] << 8 | b[35], 10);
	assert_int_equal(b[38] << 8 | b[39], 100); /* highest seq */
	assert_int_equal(b[44], 0x55);             /* LSR */
	assert_int_equal(b[48] << 24 | b[49] << 16 | b[50] << 8 | b[51],
			 65536);                   /* DLSR: 1 s */
	/* SDES follows */
	assert_int_equal(b[52 + 1], 202);
	assert_int_equal(b[52 + 8], 1);
	assert_int_equal(b[52 + 9], 5);
	assert_memory_equal(b + 52 + 10, "alice", 5);
	assert_int_equal(ue_rtcp_parse(b, len, &seen), 0);
	assert_int_equal(seen.n_sr, 1);
	assert_int_equal(seen.n_sdes, 1);
	assert_int_equal(seen.sr_ssrc, 0x11223344);
	assert_int_equal(seen.sr_ntp_mid, 0x03040506);
	/* the next report covers only the new interval: nothing lost */
	ri.sender = false;
	assert_int_equal(ue_rtcp_write(b, sizeof(b), &ri, &s, &len), 0);
	assert_int_equal(b[1], 201);
	assert_int_equal(b[8 + 4], 0);             /* fraction lost */
	assert_int_equal(ue_rtcp_parse(b, len, &seen), 0);
	assert_int_equal(seen.n_rr, 1);
	/* leaving: BYE at the end of the compound packet */
	ri.bye = true;
	assert_int_equal(ue_rtcp_write(b, sizeof(b), &ri, &s, &len), 0);
	assert_int_equal(b[len - 8], 0x81);
	assert_int_equal(b[len - 7], 203);
	assert_int_equal(b[len - 1], 0x44);        /* our SSRC */
	assert_int_equal(ue_rtcp_parse(b, len, &seen), 0);
	assert_int_equal(seen.n_bye, 1);
	ri.bye = false;
	/* no source yet: RR without blocks */
	memset(&s, 0, sizeof(s));
	assert_int_equal(ue_rtcp_write(b, sizeof(b), &ri, &s, &len), 0);
	assert_int_equal(b[0], 0x80);
	assert_int_equal(ue_rtcp_write(b, 20, &ri, &s, &len), ENOSPC);
}

static void test_rtcp_parse_bad(void **state)
{
	uint8_t b[64];
	struct ue_rtcp_seen seen;
	struct ue_rtcp_info ri = { .ssrc = 1, .sender = true };
	size_t len, i;

	(void)state;
	assert_int_equal(ue_rtcp_write(b, sizeof(b), &ri, NULL, &len), 0);
	assert_int_equal(ue_rtcp_parse(b, len, &seen), 0);
	/* every cut but the one between SR and SDES breaks a packet */
	for (i = 0; i < len; i++)
		assert_int_equal(ue_rtcp_parse(b, i, &seen),
				 i == 28 ? 0 : EBADMSG);
	b[0] = 0x40;
	assert_int_equal(ue_rtcp_parse(b, len, &seen), EBADMSG);
}

int test_ue_rtp_group(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rtp_roundtrip),
		cmocka_unit_test(test_rtp_parse_csrc_pad_twobyte),
		cmocka_unit_test(test_rtp_parse_bad),
		cmocka_unit_test(test_rtcp_demux),
		cmocka_unit_test(test_rx_src_wrap_and_loss),
		cmocka_unit_test(test_rx_src_jitter),
		cmocka_unit_test(test_rtcp_sr_rr),
		cmocka_unit_test(test_rtcp_parse_bad),
	};

	return cmocka_run_group_tests_name("ue_media_rtp", tests, NULL,
					   NULL);
}
