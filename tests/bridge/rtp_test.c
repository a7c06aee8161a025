/**
 * @file rtp_test.c  RTP/RTCP parsing, RFC 6464/4733, RFC 3550 statistics
 */

#include <errno.h>
#include <string.h>
#include <unistd.h>
#include "tests/bridge/tests.h"
#include "bridge/bridge_int.h"

static size_t build(uint8_t *p, int cc, const uint8_t *ext, size_t ext_len,
		    uint16_t profile, size_t payload, uint8_t pad)
{
	size_t off;
	int i;

	rtp_write_hdr(p, 111, 1, 0x1234, 0xdeadbeef, 0x01020304);
	p[0] |= (uint8_t)cc;
	off = 12;
	for (i = 0; i < cc; i++) {
		memset(p + off, 0xc0 + i, 4);
		off += 4;
	}
	if (ext) {
		p[0] |= 0x10;
		p[off] = (uint8_t)(profile >> 8);
		p[off + 1] = (uint8_t)profile;
		p[off + 2] = 0;
		p[off + 3] = (uint8_t)(ext_len / 4);
		memcpy(p + off + 4, ext, ext_len);
		off += 4 + ext_len;
	}
	memset(p + off, 0x55, payload);
	off += payload;
	if (pad) {
		p[0] |= 0x20;
		memset(p + off, 0, pad);
		off += pad;
		p[off - 1] = pad;
	}
	return off;
}

static void t_parse_basic(void **state)
{
	uint8_t p[256];
	struct rtp_hdr h;
	size_t n = build(p, 2, NULL, 0, 0, 40, 0);
	(void)state;

	assert_int_equal(rtp_parse(p, n, &h), 0);
	assert_int_equal(h.pt, 111);
	assert_true(h.marker);
	assert_int_equal(h.seq, 0x1234);
	assert_int_equal(h.ts, 0xdeadbeef);
	assert_int_equal(h.ssrc, 0x01020304);
	assert_int_equal(h.hdr_len, 20);
	assert_int_equal(h.payload_len, 40);
	assert_null(h.ext);
}

static void t_parse_ext_padding(void **state)
{
	/* one-byte extension: id 1 len 1 (level), padding, id 3 len 2 */
	const uint8_t ext[8] = {0x10, 0x80 | 42, 0x00, 0x31, 1, 2, 0, 0};
	uint8_t p[256], level = 0;
	struct rtp_hdr h;
	int voice = 0;
	size_t n = build(p, 0, ext, sizeof(ext), 0xBEDE, 20, 4);
	(void)state;

	assert_int_equal(rtp_parse(p, n, &h), 0);
	assert_int_equal(h.hdr_len, 12 + 4 + 8);
	assert_int_equal(h.payload_len, 20);
	assert_int_equal(rtp_audio_level(&h, 1, &level, &voice), 0);
	assert_int_equal(level, 42);
	assert_int_equal(voice, 1);
	assert_int_equal(rtp_audio_level(&h, 2, &level, &voice), ENOENT);
	assert_int_equal(rtp_audio_level(&h, 0, &level, &voice), ENOENT);
}

static void t_level_two_byte(void **state)
{
	const uint8_t ext[8] = {5, 1, 0x7f, 0, 7, 2, 0x00 | 90, 0};
	uint8_t p[256], level = 0;
	struct rtp_hdr h;
	int voice = 1;
	size_t n = build(p, 0, ext, sizeof(ext), 0x1000, 10, 0);
	(void)state;

	assert_int_equal(rtp_parse(p, n, &h), 0);
	assert_int_equal(rtp_audio_level(&h, 7, &level, &voice), 0);
	assert_int_equal(level, 90);
	assert_int_equal(voice, 0);
	assert_int_equal(rtp_audio_level(&h, 5, &level, &voice), 0);
	assert_int_equal(level, 127);
	/* an element running past the block is not believed */
	{
		const uint8_t bad[4] = {0x13, 1, 2, 3}; /* id1 len 4 */
		size_t m = build(p, 0, bad, sizeof(bad), 0xBEDE, 10, 0);

		assert_int_equal(rtp_parse(p, m, &h), 0);
		assert_int_equal(rtp_audio_level(&h, 1, &level, &voice),
				 ENOENT);
	}
}

static void t_parse_malformed(void **state)
{
	const uint8_t ext[4] = {0x10, 1, 0, 0};
	uint8_t p[256];
	struct rtp_hdr h;
	size_t n;
	(void)state;

	n = build(p, 0, NULL, 0, 0, 10, 0);
	assert_int_equal(rtp_parse(p, 11, &h), EBADMSG);
	p[0] = (uint8_t)((p[0] & 0x3f) | 0x40); /* version 1 */
	assert_int_equal(rtp_parse(p, n, &h), EBADMSG);
	/* 15 CSRCs announced, 10 bytes there */
	n = build(p, 0, NULL, 0, 0, 10, 0);
	p[0] |= 0x0f;
	assert_int_equal(rtp_parse(p, n, &h), EBADMSG);
	/* extension length past the end */
	n = build(p, 0, ext, sizeof(ext), 0xBEDE, 0, 0);
	p[15] = 9;
	assert_int_equal(rtp_parse(p, n, &h), EBADMSG);
	/* padding count 0 and past the payload */
	n = build(p, 0, NULL, 0, 0, 10, 2);
	p[n - 1] = 0;
	assert_int_equal(rtp_parse(p, n, &h), EBADMSG);
	p[n - 1] = 200;
	assert_int_equal(rtp_parse(p, n, &h), EBADMSG);
	p[n - 1] = 2;
	assert_int_equal(rtp_parse(p, n, &h), 0);
	assert_int_equal(h.payload_len, 10);
}

static void t_rtcp_demux(void **state)
{
	uint8_t p[2] = {0x80, 0};
	(void)state;

	p[1] = 191;
	assert_false(rtp_is_rtcp(p, 2));
	p[1] = 192;
	assert_true(rtp_is_rtcp(p, 2));
	p[1] = 200;
	assert_true(rtp_is_rtcp(p, 2));
	p[1] = 223;
	assert_true(rtp_is_rtcp(p, 2));
	p[1] = 224;
	assert_false(rtp_is_rtcp(p, 2));
	assert_false(rtp_is_rtcp(p, 1));
	/* PT 111 with the marker set is RTP */
	p[1] = 0x80 | 111;
	assert_false(rtp_is_rtcp(p, 2));
}

static void t_event(void **state)
{
	const uint8_t pl[4] = {5, 0x80 | 10, 0x03, 0x20};
	struct rtp_event ev;
	(void)state;

	assert_int_equal(rtp_event_parse(pl, 4, &ev), 0);
	assert_int_equal(ev.event, 5);
	assert_true(ev.end);
	assert_int_equal(ev.volume, 10);
	assert_int_equal(ev.duration, 800);
	assert_int_equal(rtp_event_parse(pl, 3, &ev), EBADMSG);
}

static void t_rxstats_loss_wrap(void **state)
{
	struct rtp_rxstats s;
	uint32_t i;
	uint16_t seq = 65530;
	(void)state;

	memset(&s, 0, sizeof(s));
	/* 20 packets across the wrap, numbers 3 and 4 missing */
	for (i = 0; i < 20; i++, seq++) {
		if (i == 3 || i == 4)
			continue;
		rtp_rxstats_update(&s, 7, seq, i * 160, 1000 + i * 160, 1);
	}
	assert_int_equal(rtp_rxstats_ext_max(&s), 65536 + 13);
	assert_int_equal(rtp_rxstats_lost(&s), 2);
	assert_int_equal(rtp_rxstats_fraction(&s), (2 << 8) / 20);
	/* nothing new lost: next interval's fraction is 0 */
	rtp_rxstats_update(&s, 7, seq, 20 * 160, 1000 + 20 * 160, 1);
	assert_int_equal(rtp_rxstats_fraction(&s), 0);
	/* perfectly paced arrivals: no jitter */
	assert_int_equal(s.jitter, 0);
	/* a duplicate does not count as recovered loss */
	rtp_rxstats_update(&s, 7, seq, 20 * 160, 1000 + 20 * 160, 1);
	assert_int_equal(rtp_rxstats_lost(&s), 1);
	/* a new SSRC restarts the statistics */
	rtp_rxstats_update(&s, 8, 100, 0, 0, 1);
	assert_int_equal(rtp_rxstats_lost(&s), 0);
	assert_int_equal(s.ssrc, 8);
}

static void t_rxstats_jitter(void **state)
{
	struct rtp_rxstats s;
	uint32_t j = 0;
	int32_t prev = 0, t;
	int i;
	(void)state;

	memset(&s, 0, sizeof(s));
	/* arrival alternates 0 / +40 units late: |D| = 40 every packet */
	for (i = 0; i < 50; i++) {
		uint32_t arr = (uint32_t)(i * 160 + (i & 1) * 40);

		rtp_rxstats_update(&s, 1, (uint16_t)i, (uint32_t)(i * 160),
				   arr, 1);
		t = (int32_t)(arr - (uint32_t)(i * 160));
		if (i > 0) {
			int32_t d = t - prev;

			if (d < 0)
				d = -d;
			j += (uint32_t)d - ((j + 8) >> 4);
		}
		prev = t;
		/* an event packet in between counts but has no timing */
		if (i == 25)
			rtp_rxstats_update(&s, 1, (uint16_t)++i,
					   0x12345678, arr + 7, 0);
	}
	assert_int_equal(s.jitter, j);
	assert_true((s.jitter >> 4) > 30 && (s.jitter >> 4) <= 40);
	assert_true(rtp_rxstats_jitter_ms(&s, 8000) > 3.0);
}

static void t_rtcp_roundtrip(void **state)
{
	struct rtcp_report r;
	struct rtcp_info info;
	uint8_t p[512];
	size_t n;
	(void)state;

	memset(&r, 0, sizeof(r));
	r.ssrc = 0xaaaa0001;
	r.sender = 1;
	r.ntp = 0x0123456789abcdefULL;
	r.rtp_ts = 5;
	r.packets = 10;
	r.octets = 1000;
	r.have_block = 1;
	r.src_ssrc = 0xbbbb0002;
	r.fraction = 25;
	r.cum_lost = 3;
	r.ext_max = 70000;
	r.jitter = 12;
	r.lsr = 0x11112222;
	r.dlsr = 0x00010000;
	r.cname = "test@bridge";
	n = rtcp_build(p, sizeof(p), &r);
	assert_true(n > 0 && n % 4 == 0);
	n += rtcp_build_bye(p + n, sizeof(p) - n, r.ssrc);

	/* seen from the far end: our report block is about its SSRC */
	assert_int_equal(rtcp_parse(p, n, 0xbbbb0002, &info), 0);
	assert_true(info.have_sr);
	assert_int_equal(info.sr_ssrc, 0xaaaa0001);
	assert_int_equal(info.sr_ntp_mid, 0x456789ab);
	assert_true(info.have_rb);
	assert_int_equal(info.fraction, 25);
	assert_int_equal(info.cum_lost, 3);
	assert_int_equal(info.jitter, 12);
	assert_int_equal(info.lsr, 0x11112222);
	assert_int_equal(info.dlsr, 0x00010000);
	assert_true(info.bye);
	/* a block about someone else is ignored */
	assert_int_equal(rtcp_parse(p, n, 0x99, &info), 0);
	assert_false(info.have_rb);
	/* receiver report without a block */
	r.sender = 0;
	r.have_block = 0;
	n = rtcp_build(p, sizeof(p), &r);
	assert_int_equal(rtcp_parse(p, n, 1, &info), 0);
	assert_false(info.have_sr);
	/* truncated compound packet */
	assert_int_equal(rtcp_parse(p, n - 4, 1, &info), EBADMSG);
	assert_int_equal(rtcp_parse(p, 4, 1, &info), EBADMSG);
	/* too small a buffer */
	assert_int_equal(rtcp_build(p, 20, &r), 0);
}

static void t_pool(void **state)
{
	struct pool p;
	struct pkt *k[4];
	int i;
	(void)state;

	assert_int_equal(pool_init(&p, 3), 0);
	for (i = 0; i < 3; i++)
		assert_non_null(k[i] = pool_get(&p));
	assert_null(pool_get(&p));
	assert_int_equal(p.exhausted, 1);
	assert_int_equal(p.low, 0);
	pool_put(&p, k[1]);
	k[3] = pool_get(&p);
	assert_ptr_equal(k[3], k[1]);
	assert_true(PKT_CAP >= PKT_MTU + KEYLEG_TAILROOM);
	assert_true(pkt_data(k[0]) + PKT_CAP <= k[0]->buf + PKT_BUFSZ);
	pool_fini(&p);
}

static void t_addr(void **state)
{
	struct baddr a, b;
	char s[80];
	(void)state;

	assert_int_equal(baddr_parse(&a, "127.0.0.1:4000"), 0);
	assert_int_equal(baddr_format(&a, s, sizeof(s)), 0);
	assert_string_equal(s, "127.0.0.1:4000");
	assert_int_equal(baddr_parse(&b, "[::1]:5"), 0);
	assert_int_equal(baddr_format(&b, s, sizeof(s)), 0);
	assert_string_equal(s, "[::1]:5");
	assert_false(baddr_equal(&a, &b));
	assert_int_equal(baddr_parse(&b, "127.0.0.1:4000"), 0);
	assert_true(baddr_equal(&a, &b));
	assert_int_equal(baddr_parse(&b, "127.0.0.1:4001"), 0);
	assert_false(baddr_equal(&a, &b));
	assert_int_equal(baddr_parse(&a, "127.0.0.1"), EINVAL);
	assert_int_equal(baddr_parse(&a, "127.0.0.1:70000"), EINVAL);
	assert_int_equal(baddr_parse(&a, "localhost:5"), EINVAL);
	assert_int_equal(baddr_parse(&a, "::1:5"), EINVAL);
	assert_int_equal(baddr_parse(&a, "[::1]5"), EINVAL);
	assert_int_equal(baddr_parse(&a, ":5"), EINVAL);
	assert_int_equal(baddr_parse(&a, "1.2.3.4:"), EINVAL);
}

static void t_ports(void **state)
{
	struct baddr remote, local, r6;
	uint16_t port, p1, p2;
	struct ports p;
	int fd1, fd2, fd3, e;
	char s[80];
	(void)state;

	/* a free 2-port range: find one by binding nothing, take 39871.. */
	assert_int_equal(ports_init(&p, 39871, 39872), 0);
	assert_int_equal(baddr_parse(&remote, "127.0.0.1:9"), 0);
	assert_int_equal(ports_open(&p, &remote, &fd1, &local, &p1), 0);
	assert_int_equal(baddr_format(&local, s, sizeof(s)), 0);
	assert_non_null(strstr(s, "127.0.0.1:"));
	assert_int_equal(ports_open(&p, &remote, &fd2, &local, &p2), 0);
	assert_int_not_equal(p1, p2);
	assert_true(p1 >= 39871 && p1 <= 39872);
	e = ports_open(&p, &remote, &fd3, &local, &port);
	assert_int_equal(e, EADDRNOTAVAIL);
	/* a released port is handed out again */
	close(fd1);
	ports_release(&p, p1);
	assert_int_equal(ports_open(&p, &remote, &fd1, &local, &port), 0);
	assert_int_equal(port, p1);
	close(fd1);
	close(fd2);
	ports_release(&p, p1);
	ports_release(&p, p2);
	/* IPv6 remote: an IPv6 leg on ::1 */
	assert_int_equal(baddr_parse(&r6, "[::1]:9"), 0);
	assert_int_equal(ports_open(&p, &r6, &fd1, &local, &port), 0);
	assert_int_equal(local.ss.ss_family, AF_INET6);
	close(fd1);
	ports_fini(&p);
}

static uint64_t ticks_seen[64];
static unsigned nticks;

static void record_tick(struct conf *c, uint64_t grid_us)
{
	(void)c;
	if (nticks < 64)
		ticks_seen[nticks++] = grid_us;
}

static void t_clock(void **state)
{
	struct worker_stats st;
	struct conf c;
	(void)state;

	memset(&st, 0, sizeof(st));
	memset(&c, 0, sizeof(c));
	c.ptime = 20;
	c.next_tick_us = 1000000;
	nticks = 0;
	/* early: nothing due */
	assert_int_equal(conf_clock_run(&c, 999999, record_tick, &st), 0);
	/* on time: one tick at its grid time */
	assert_int_equal(conf_clock_run(&c, 1000300, record_tick, &st), 1);
	assert_int_equal(ticks_seen[0], 1000000);
	assert_int_equal(st.late_ticks, 0);
	/* woken 45 ms late: the two missed ticks run, on the grid */
	assert_int_equal(conf_clock_run(&c, 1065000, record_tick, &st), 3);
	assert_int_equal(ticks_seen[1], 1020000);
	assert_int_equal(ticks_seen[2], 1040000);
	assert_int_equal(ticks_seen[3], 1060000);
	assert_int_equal(c.next_tick_us, 1080000);
	assert_int_equal(st.late_ticks, 1);
	assert_int_equal(st.ticks, 4);
	/* lateness histogram: 300 µs, then 45, 25 and 5 ms */
	assert_int_equal(st.late_hist[2], 1);   /* <= 500 µs */
	assert_int_equal(st.late_hist[5], 1);   /* <= 5 ms   */
	assert_int_equal(st.late_hist[7], 0);   /* <= 20 ms  */
	assert_int_equal(st.late_hist[8], 2);   /* <= 50 ms  */
	assert_int_equal(st.late_sum_us, 300 + 45000 + 25000 + 5000);
	/* a stall of over a second: jump to now, not 60 catch-up ticks */
	assert_int_equal(conf_clock_run(&c, 3000000, record_tick, &st), 1);
	assert_int_equal(ticks_seen[4], 3000000);
	assert_int_equal(st.resyncs, 1);
	assert_int_equal(c.next_tick_us, 3020000);
	/* 10 ms ptime keeps its own grid */
	c.ptime = 10;
	assert_int_equal(conf_clock_run(&c, 3041000, record_tick, &st), 3);
	assert_int_equal(ticks_seen[7], 3040000);
	/* a stall off the grid: back onto the grid's last point */
	c.next_tick_us = 3050000;
	assert_int_equal(conf_clock_run(&c, 4567000, record_tick, &st), 1);
	assert_int_equal(ticks_seen[8], 4560000);
	assert_int_equal(c.next_tick_us, 4570000);
	assert_int_equal(st.resyncs, 2);
}

/* First deadlines: relay conferences share one phase, mixes whole ms,
 * spread over the period */
static void t_first_tick(void **state)
{
	struct conf c, o[25];
	unsigned i, seen[20] = {0};
	(void)state;

	memset(&c, 0, sizeof(c));
	c.ptime = 20;
	c.mode = MODE_TRANSCODE;
	assert_int_equal(conf_first_tick(NULL, &c, 1000000), 1020000);
	assert_int_equal(conf_first_tick(NULL, &c, 1000001), 1020000);
	assert_int_equal(conf_first_tick(NULL, &c, 1019999), 1020000);
	assert_int_equal(conf_first_tick(NULL, &c, 1020000), 1040000);
	c.mode = MODE_MIX;
	assert_int_equal(conf_first_tick(NULL, &c, 1000000), 1021000);
	assert_int_equal(conf_first_tick(NULL, &c, 1000400), 1021000);
	assert_int_equal(conf_first_tick(NULL, &c, 1007999), 1028000);

	/* 25 created within the same ms: the first 20 take the 20 phases,
	 * each as far as it can be from the others (the second half a
	 * period from the first), the next ones share the least used */
	memset(o, 0, sizeof(o));
	for (i = 0; i < 25; i++) {
		o[i].ptime = 20;
		o[i].mode = MODE_MIX;
		o[i].next = i ? &o[i - 1] : NULL;
		o[i].next_tick_us = conf_first_tick(o[i].next, &o[i],
						    1000400 + i);
		assert_true(o[i].next_tick_us >= 1021000);
		assert_true(o[i].next_tick_us < 1041000);
		assert_int_equal(o[i].next_tick_us % 1000, 0);
		seen[(o[i].next_tick_us / 1000) % 20]++;
		if (i < 20)
			assert_int_equal(seen[(o[i].next_tick_us / 1000) % 20],
					 1);
	}
	assert_int_equal(o[0].next_tick_us, 1021000);
	assert_int_equal(o[1].next_tick_us, 1031000);
	/* the third and fourth split the two 10 ms gaps */
	assert_int_equal(((o[2].next_tick_us / 1000) % 20 +
			  (o[3].next_tick_us / 1000) % 20), 6 + 16);
	assert_int_equal((o[2].next_tick_us / 1000) % 10, 6);
	for (i = 0; i < 20; i++)
		assert_true(seen[i] == 1 || seen[i] == 2);
	/* relay conferences do not take mixing phases */
	o[0].mode = MODE_TRANSCODE;
	c.next = NULL;
	assert_int_equal(conf_first_tick(&o[0], &c, 1000000), 1021000);
}

int run_rtp_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_parse_basic),
		cmocka_unit_test(t_parse_ext_padding),
		cmocka_unit_test(t_level_two_byte),
		cmocka_unit_test(t_parse_malformed),
		cmocka_unit_test(t_rtcp_demux),
		cmocka_unit_test(t_event),
		cmocka_unit_test(t_rxstats_loss_wrap),
		cmocka_unit_test(t_rxstats_jitter),
		cmocka_unit_test(t_rtcp_roundtrip),
		cmocka_unit_test(t_pool),
		cmocka_unit_test(t_addr),
		cmocka_unit_test(t_ports),
		cmocka_unit_test(t_clock),
		cmocka_unit_test(t_first_tick),
	};

	return cmocka_run_group_tests_name("bridge_rtp", tests, NULL, NULL);
}
