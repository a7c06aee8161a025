/** @file t_net.c  Loss, jitter, reordering and clock drift */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include "sim.h"
#include "tmix.h"

struct pend {
	uint64_t at;
	size_t len;
	uint16_t seq;
	uint32_t ts;
	uint8_t buf[400];
};

#define NPEND 64

static void deliver(struct party *p, struct pend *q, unsigned *nq,
		    uint64_t upto)
{
	unsigned i = 0;

	while (i < *nq) {
		if (q[i].at <= upto) {
			mix_put(p->leg, q[i].buf, q[i].len, q[i].seq,
				q[i].ts, false, -1, false, q[i].at);
			q[i] = q[--*nq];
		}
		else {
			i++;
		}
	}
}

/*
 * 5 % loss in bursts (Gilbert-Elliott), 30 +- 30 ms jitter (so packets
 * overtake each other).  The talker's tone is keyed 700 ms on, 300 ms
 * off; the listener's stream must have no gap, the tone must be there in
 * (almost) every on-frame, and the delay at each onset must stay bounded.
 */
static void test_loss_jitter(void **state)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	struct party *t, *l;
	struct pend q[NPEND];
	unsigned nq = 0, tick, lost = 0, sent = 0, ok = 0, frames = 0;
	bool bad = false;
	uint64_t t0 = 0;
	double dmin = 1e9, dmax = -1e9;
	struct mix_leg_stats ts;
	const unsigned ticks = 1500; /* 30 s */
	unsigned k;

	(void)state;
	mix_conf_cfg_default(&cfg);
	sim_init(&s, &cfg);
	t = sim_add(&s, MIX_CODEC_OPUS, 800, 0.1, false);
	l = sim_add(&s, MIX_CODEC_OPUS, 0, 0, true);
	for (tick = 0; tick < ticks; tick++) {
		uint64_t now = s.now_us;
		uint8_t buf[MIX_PAYLOAD_MAX];
		int level;
		size_t len;

		/* talker: one packet per 20 ms of its own clock */
		t->on = (tick % 50) < 35;
		len = sim_make_packet(t, buf, &level);
		bad = bad ? sim_rand(&s) > 0.45 : sim_rand(&s) < 0.025;
		if (!bad && nq < NPEND && len <= sizeof(q[0].buf)) {
			struct pend *e = &q[nq++];

			e->at = now + 30000 + (uint64_t)(sim_rand(&s) * 60000)
				- 30000 + 1;
			e->len = len;
			e->seq = t->seq;
			e->ts = t->ts;
			memcpy(e->buf, buf, len);
		}
		lost += bad;
		sent++;
		t->seq++;
		t->ts += 960;
		/* the listener sends silence with levels */
		len = sim_make_packet(l, buf, &level);
		mix_put(l->leg, buf, len, l->seq++, l->ts, false, level,
			false, now);
		l->ts += 960;
		deliver(t, q, &nq, now);
		if (!l->rx_packets)
			t0 = now;
		mix_tick(s.conf, now);
		s.now_us += 20000;
		deliver(t, q, &nq, s.now_us - 1);
	}
	print_message("loss %.1f %%\n", 100.0 * lost / sent);
	assert_true(lost * 100 >= 3 * sent && lost * 100 <= 8 * sent);
	/* output continuous: a packet every tick, timestamps contiguous */
	assert_int_equal(s.bad_ts, 0);
	assert_true(l->rx_packets >= ticks - 10);

	/* onsets: find each in the listener's audio, measure the delay */
	for (k = 2; k < ticks / 50 - 1; k++) {
		uint64_t on_us = 1000000 + (uint64_t)k * 1000000;
		size_t i;
		double d;

		for (i = (size_t)((on_us - t0) / 1e6 * 48000 - 960);
		     i + 240 < l->rx_n; i += 48) {
			if (goertzel_amp(l->rx + i, 240, 800, 48000) > 0.05)
				break;
		}
		d = (double)t0 / 1e6 + (double)i / 48000 - on_us / 1e6;
		if (d < dmin)
			dmin = d;
		if (d > dmax)
			dmax = d;
		/* frames well inside the on part must carry the tone */
		for (i += 4800; i + 960 < l->rx_n &&
		     i < (size_t)((on_us - t0) / 1e6 * 48000 + d * 48000 +
				  0.6 * 48000); i += 960) {
			frames++;
			ok += goertzel_amp(l->rx + i, 960, 800, 48000) >
				0.05;
		}
	}
	mix_leg_stats_get(t->leg, &ts);
	print_message("delay %.0f..%.0f ms; tone in %u/%u frames; "
		      "concealed %llu fec %llu late %llu target %u ms\n",
		      dmin * 1000, dmax * 1000, ok, frames,
		      (unsigned long long)ts.concealed,
		      (unsigned long long)ts.fec_used,
		      (unsigned long long)ts.late, ts.jb_target_ms);
	assert_true(dmin >= 0.0);
	assert_true(dmax <= 0.200);
	assert_true(dmax - dmin <= 0.080);
	assert_true(frames > 500);
	assert_true(ok * 100 >= frames * 95);
	assert_true(ts.concealed > 0);
	assert_true(ts.fec_used > 0);
	assert_true(ts.jb_target_ms >= 60 && ts.jb_target_ms <= 200);
	sim_free(&s);
}

struct drift_tx {
	struct party *p;
	uint64_t next_us;  /* real time of the next packet            */
	double step_us;    /* 20 ms of the sender's clock, in real us */
	double acc;
};

static void drift_send(struct drift_tx *d, uint64_t upto)
{
	while (d->next_us <= upto) {
		uint8_t buf[MIX_PAYLOAD_MAX];
		int level;
		size_t len = sim_make_packet(d->p, buf, &level);

		mix_put(d->p->leg, buf, len, d->p->seq++, d->p->ts, false,
			-1, false, d->next_us);
		d->p->ts += 160;
		d->acc += d->step_us;
		d->next_us = 1000000 + (uint64_t)d->acc;
	}
}

/* one simulated hour with senders 200 ppm fast and 200 ppm slow */
static void test_drift_hour(void **state)
{
	struct mix_conf_cfg cfg;
	struct sim s;
	struct drift_tx a, b;
	struct party *c;
	unsigned tick, maxd = 0, maxd_first = 0, maxd_last = 0;
	const unsigned ticks = 3600 * 50;
	struct mix_leg_stats sa, sb;

	(void)state;
	mix_conf_cfg_default(&cfg);
	cfg.rate = 8000;
	sim_init(&s, &cfg);
	a.p = sim_add(&s, MIX_CODEC_PCMU, 500, 0.1, false);
	b.p = sim_add(&s, MIX_CODEC_PCMU, 900, 0.1, false);
	c = sim_add(&s, MIX_CODEC_PCMU, 0, 0, false);
	c->lcfg.recv = false;
	assert_int_equal(mix_leg_update(c->leg, &c->lcfg), 0);
	a.step_us = 20000.0 * (1 - 200e-6);
	b.step_us = 20000.0 * (1 + 200e-6);
	a.acc = b.acc = 0;
	a.next_us = b.next_us = 1000000;
	for (tick = 0; tick < ticks; tick++) {
		drift_send(&a, s.now_us);
		drift_send(&b, s.now_us);
		mix_tick(s.conf, s.now_us);
		s.now_us += 20000;
		if (tick % 500 == 499) {
			mix_leg_stats_get(a.p->leg, &sa);
			mix_leg_stats_get(b.p->leg, &sb);
			if (sa.jb_delay_ms > maxd)
				maxd = sa.jb_delay_ms;
			if (sb.jb_delay_ms > maxd)
				maxd = sb.jb_delay_ms;
			if (tick < 600 * 50)
				maxd_first = maxd;
			if (tick >= ticks - 600 * 50) {
				if (sa.jb_delay_ms > maxd_last)
					maxd_last = sa.jb_delay_ms;
				if (sb.jb_delay_ms > maxd_last)
					maxd_last = sb.jb_delay_ms;
			}
			if (tick < ticks - 200)
				party_rx_clear(c);
		}
	}
	mix_leg_stats_get(a.p->leg, &sa);
	mix_leg_stats_get(b.p->leg, &sb);
	print_message("drift: jb delay max %u ms (first 10 min %u, last "
		      "%u); late %llu/%llu resyncs %llu/%llu\n", maxd,
		      maxd_first, maxd_last, (unsigned long long)sa.late,
		      (unsigned long long)sb.late,
		      (unsigned long long)sa.resyncs,
		      (unsigned long long)sb.resyncs);
	assert_true(maxd <= 80);
	/* bounded: the last ten minutes are no worse than the first */
	assert_true(maxd_last <= maxd_first + 10);
	assert_int_equal(sa.resyncs + sb.resyncs, 0);
	assert_true(sa.late + sb.late < 50);
	assert_int_equal(s.bad_ts, 0);
	assert_int_equal(c->rx_packets, ticks);
	/* both still heard at full level at the end of the hour */
	assert_true(c->rx_n >= 8000);
	assert_true(fabs(tone_db(c, c->rx_n - 8000, 8000, 500) - db(0.1))
		    <= 1.0);
	assert_true(fabs(tone_db(c, c->rx_n - 8000, 8000, 900) - db(0.1))
		    <= 1.0);
	sim_free(&s);
}

/*
 * GStreamer's opusenc trims the encoder's look-ahead from its first
 * packet, so rtpopuspay stamps the second packet 648 ticks (13.5 ms) after
 * the first although the first holds 20 ms: every later packet lies 6.5 ms
 * before the grid the first one set.  Whatever the arrival phase against
 * the mixing tick, the leg must not be left behind ("late") for more than
 * a packet or two, and the listener must hear the talker from the start.
 */
static void test_first_packet_overlap(void **state)
{
	unsigned phase;

	(void)state;
	for (phase = 0; phase < 20; phase++) {
		struct mix_conf_cfg cfg;
		struct sim s;
		struct party *t, *l;
		struct mix_leg_stats ts;
		uint64_t next;
		unsigned tick, k = 0;
		double lv;

		mix_conf_cfg_default(&cfg);
		sim_init(&s, &cfg);
		t = sim_add(&s, MIX_CODEC_OPUS, 1200, 0.1, false);
		l = sim_add(&s, MIX_CODEC_OPUS, 0, 0, true);
		next = s.now_us + 1000 * phase + 1;
		for (tick = 0; tick < 150; tick++) {
			uint8_t buf[MIX_PAYLOAD_MAX];
			int level;
			size_t len;

			while (next <= s.now_us) {
				len = sim_make_packet(t, buf, &level);
				mix_put(t->leg, buf, len, t->seq++, t->ts,
					false, -1, false, next);
				t->ts += k ? 960 : 648;
				next += k ? 20000 : 17500;
				k++;
			}
			len = sim_make_packet(l, buf, &level);
			mix_put(l->leg, buf, len, l->seq++, l->ts, false,
				level, false, s.now_us);
			l->ts += 960;
			mix_tick(s.conf, s.now_us);
			s.now_us += 20000;
		}
		mix_leg_stats_get(t->leg, &ts);
		lv = tone_db(l, 48000, 48000, 1200);
		print_message("phase %2u ms: late %llu concealed %llu, "
			      "tone %.1f dB\n", phase,
			      (unsigned long long)ts.late,
			      (unsigned long long)ts.concealed, lv);
		assert_true(ts.late <= 2);
		assert_true(fabs(lv - db(0.1)) <= 1.0);
		sim_free(&s);
	}
}

int tmix_run_net(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loss_jitter),
		cmocka_unit_test(test_drift_hour),
		cmocka_unit_test(test_first_packet_overlap),
	};
	return cmocka_run_group_tests_name("mixer_net", tests, NULL, NULL);
}
