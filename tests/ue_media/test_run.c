/** @file test_run.c  uemedia unit tests: a participant vs a test bridge */

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "ue/ue_media_int.h"
#include "tests/ue_media/ue_media_test.h"

/*
 * The test plays the bridge's part by hand: it derives the BRIDGE side of
 * the same leg key, latches on the participant's address, checks every
 * packet it receives and answers each with one frame of its own tone.
 */
struct run {
	struct ue_media_cfg cfg;
	struct ue_media_stats st;
	volatile int stop;
	volatile int done;
	int err;
};

struct seen {
	unsigned rtp, rtcp_sr, rtcp_rr, rtcp_bye;
	unsigned bad_seq, bad_ts, bad_ssrc, markers;
	unsigned levels_ok, sent_back;
	struct sockaddr_storage ue;
	socklen_t ue_len;
};

static void *run_ue(void *arg)
{
	struct run *r = arg;

	r->err = ue_media_run(&r->cfg, &r->stop, NULL, &r->st);
	r->done = 1;
	return NULL;
}

static int bridge_socket(struct sockaddr_storage *ss, socklen_t *sl)
{
	struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	assert_true(fd >= 0);
	memset(ss, 0, sizeof(*ss));
	s4->sin_family = AF_INET;
	s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)ss, sizeof(*s4)), 0);
	*sl = sizeof(*ss);
	assert_int_equal(getsockname(fd, (struct sockaddr *)ss, sl), 0);
	return fd;
}

static void random_bytes(uint8_t *b, size_t n)
{
	FILE *f = fopen("/dev/urandom", "rb");

	assert_non_null(f);
	assert_int_equal(fread(b, 1, n, f), n);
	fclose(f);
}

/* Send one PCMA frame of the bridge's tone back to the participant. */
static void answer(int fd, struct seen *s, struct keyleg *kl,
		   struct ue_enc *enc, struct ue_tone *tone, uint16_t seq,
		   bool corrupt)
{
	int16_t pcm[160];
	uint8_t pl[160], pkt[256];
	struct ue_rtp_out h = { .pt = 8, .seq = seq, .ts = 1000u + 160u * seq,
				.ssrc = 0xb1d9e };
	size_t plen, len;

	ue_tone_fill(tone, pcm, 160);
	assert_int_equal(ue_enc_encode(enc, pcm, 160, pl, sizeof(pl), &plen),
			 0);
	assert_int_equal(ue_rtp_write(pkt, sizeof(pkt) - KEYLEG_TAILROOM, &h,
				      pl, plen, &len), 0);
	assert_int_equal(keyleg_protect_rtp(kl, pkt, &len, sizeof(pkt)),
			 KEYLEG_OK);
	if (corrupt)
		pkt[len - 1] ^= 1;
	assert_int_equal(sendto(fd, pkt, len, 0, (struct sockaddr *)&s->ue,
				s->ue_len), (ssize_t)len);
	/* a replay of the same protected packet */
	if (!corrupt && seq == 7)
		assert_int_equal(sendto(fd, pkt, len, 0,
					(struct sockaddr *)&s->ue,
					s->ue_len), (ssize_t)len);
	if (!corrupt)
		s->sent_back++;
}

static void check_rtp(struct seen *s, const uint8_t *pkt, size_t len,
		      uint16_t *seq, uint32_t *ts)
{
	struct ue_rtp_in in;

	assert_int_equal(ue_rtp_parse(pkt, len, 1, &in), 0);
	assert_int_equal(in.pt, 8);
	if (in.ssrc != 0x1234)
		s->bad_ssrc++;
	if (s->rtp && in.seq != (uint16_t)(*seq + 1))
		s->bad_seq++;
	if (s->rtp && in.ts != *ts + 160)
		s->bad_ts++;
	if (in.marker)
		s->markers++;
	/* -20 dBFS sine = -23 dBov */
	if (in.level >= 22 && in.level <= 24 && in.voice)
		s->levels_ok++;
	assert_int_equal(in.payload_len, 160);
	*seq = in.seq;
	*ts = in.ts;
	s->rtp++;
}

static void bridge_loop(int fd, struct run *r, struct keyleg *kl,
			struct seen *s)
{
	struct ue_enc *enc = NULL;
	struct ue_tone tone;
	uint8_t pkt[1600];
	uint16_t seq = 0, bseq = 0;
	uint32_t ts = 0;
	int tail = 0;

	assert_int_equal(ue_enc_alloc(&enc, UE_CODEC_PCMA, 8000, NULL), 0);
	assert_int_equal(ue_tone_init(&tone, 500, -10, 8000), 0);
	while (tail < 10) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;
		size_t len;

		if (r->done)
			tail++;
		if (poll(&p, 1, 20) <= 0)
			continue;
		s->ue_len = sizeof(s->ue);
		n = recvfrom(fd, pkt, sizeof(pkt) - KEYLEG_TAILROOM, 0,
			     (struct sockaddr *)&s->ue, &s->ue_len);
		if (n <= 0)
			continue;
		len = (size_t)n;
		if (ue_is_rtcp(pkt, len)) {
			struct ue_rtcp_seen rs;

			assert_int_equal(keyleg_unprotect_rtcp(kl, pkt, &len,
							       0), KEYLEG_OK);
			assert_int_equal(ue_rtcp_parse(pkt, len, &rs), 0);
			s->rtcp_sr += rs.n_sr;
			s->rtcp_rr += rs.n_rr;
			s->rtcp_bye += rs.n_bye;
			assert_int_equal(rs.n_sdes, 1);
			continue;
		}
		assert_int_equal(keyleg_unprotect_rtp(kl, pkt, &len, 0),
				 KEYLEG_OK);
		check_rtp(s, pkt, len, &seq, &ts);
		answer(fd, s, kl, enc, &tone, bseq, bseq == 5);
		bseq++;
	}
	ue_enc_free(enc);
}

static void test_run_leg_key_pcma(void **state)
{
	struct run r;
	struct seen s;
	struct keyleg *kl = NULL;
	struct keyleg_keysalt brx, btx;
	uint8_t leg[32];
	pthread_t th;
	char wav[128];
	int fd;
	int16_t *pcm = NULL;
	size_t n = 0;
	uint32_t rate = 0;

	(void)state;
	memset(&r, 0, sizeof(r));
	memset(&s, 0, sizeof(s));
	snprintf(wav, sizeof(wav), "/tmp/ue_media_run_%d.wav", (int)getpid());
	random_bytes(leg, sizeof(leg));
	ue_media_cfg_init(&r.cfg);
	r.cfg.codec = UE_CODEC_PCMA;
	r.cfg.rate = 8000;
	r.cfg.pt = 8;
	r.cfg.srtp = true;
	r.cfg.profile = KEYLEG_AEAD_AES_128_GCM;
	assert_int_equal(keyleg_derive(leg, sizeof(leg), r.cfg.profile,
				       KEYLEG_FLOW_CONFERENCE,
				       KEYLEG_SIDE_PARTICIPANT, &r.cfg.rx,
				       &r.cfg.tx), 0);
	assert_int_equal(keyleg_derive(leg, sizeof(leg), r.cfg.profile,
				       KEYLEG_FLOW_CONFERENCE,
				       KEYLEG_SIDE_BRIDGE, &brx, &btx), 0);
	assert_int_equal(keyleg_alloc(&kl, r.cfg.profile, &brx, &btx, NULL),
			 0);
	r.cfg.tone_hz = 1000;
	r.cfg.tone_dbfs = -20;
	r.cfg.duration = 1.0;
	r.cfg.level_ext_id = 1;
	r.cfg.ssrc = 0x1234;
	r.cfg.ssrc_set = true;
	r.cfg.rtcp_interval = 0.3;
	r.cfg.wav_out = wav;
	fd = bridge_socket(&r.cfg.remote, &r.cfg.remote_len);
	assert_int_equal(ue_addr_parse("127.0.0.1:0", &r.cfg.local,
				       &r.cfg.local_len), 0);

	assert_int_equal(pthread_create(&th, NULL, run_ue, &r), 0);
	bridge_loop(fd, &r, kl, &s);
	pthread_join(th, NULL);
	close(fd);
	kl = keyleg_free(kl);

	assert_int_equal(r.err, 0);
	/* one packet per 20 ms frame, exactly, with continuous seq/ts */
	assert_int_equal(r.st.sent, 50);
	assert_int_equal(s.rtp, 50);
	assert_int_equal(s.bad_seq + s.bad_ts + s.bad_ssrc, 0);
	assert_int_equal(s.markers, 1);
	assert_int_equal(s.levels_ok, 50);
	assert_true(s.rtcp_sr >= 1);
	assert_int_equal(s.rtcp_bye, 1);
	/* what came back: all good packets, one forged, one replayed */
	assert_int_equal(r.st.received, s.sent_back);
	assert_int_equal(r.st.auth_failures, 1);
	assert_int_equal(r.st.replays, 1);
	assert_int_equal(r.st.remote_ssrc, 0xb1d9e);
	assert_int_equal(r.st.lost, 1);            /* the forged one */
	/* the recording holds the bridge's tone, not our own */
	assert_int_equal(ue_wav_read(wav, &pcm, &n, &rate), 0);
	assert_int_equal(rate, 8000);
	assert_true(n >= 8000);
	assert_true(fabs(amp_dbfs(tone_amplitude(pcm + 2400, 4000, 500,
						 8000)) + 10) < 1.0);
	assert_true(amp_dbfs(tone_amplitude(pcm + 2400, 4000, 1000, 8000)) <
		    -10 - 40);
	free(pcm);
	unlink(wav);
}

/* Two participants with the same leg key cannot talk: roles differ. */
static void test_run_roles_not_swappable(void **state)
{
	struct keyleg_keysalt rx1, tx1, rx2, tx2;
	struct keyleg *a = NULL, *b = NULL;
	struct ue_rtp_out h = { .pt = 0, .seq = 1, .ssrc = 9 };
	uint8_t leg[32], pkt[128], pl[20] = { 0 };
	size_t len;

	(void)state;
	random_bytes(leg, sizeof(leg));
	assert_int_equal(keyleg_derive(leg, 32, KEYLEG_AES_CM_128_HMAC_SHA1_80,
				       KEYLEG_FLOW_CONFERENCE,
				       KEYLEG_SIDE_PARTICIPANT, &rx1, &tx1),
			 0);
	assert_int_equal(keyleg_derive(leg, 32, KEYLEG_AES_CM_128_HMAC_SHA1_80,
				       KEYLEG_FLOW_CONFERENCE,
				       KEYLEG_SIDE_PARTICIPANT, &rx2, &tx2),
			 0);
	assert_int_equal(keyleg_alloc(&a, KEYLEG_AES_CM_128_HMAC_SHA1_80,
				      &rx1, &tx1, NULL), 0);
	assert_int_equal(keyleg_alloc(&b, KEYLEG_AES_CM_128_HMAC_SHA1_80,
				      &rx2, &tx2, NULL), 0);
	assert_int_equal(ue_rtp_write(pkt, 96, &h, pl, sizeof(pl), &len), 0);
	assert_int_equal(keyleg_protect_rtp(a, pkt, &len, sizeof(pkt)),
			 KEYLEG_OK);
	assert_int_equal(keyleg_unprotect_rtp(b, pkt, &len, 0),
			 KEYLEG_ERR_AUTH);
	keyleg_free(a);
	keyleg_free(b);
}

static void test_run_bad_cfg(void **state)
{
	struct ue_media_cfg cfg;

	(void)state;
	ue_media_cfg_init(&cfg);
	assert_int_equal(ue_media_run(&cfg, NULL, NULL, NULL), EINVAL);
	assert_int_equal(ue_addr_parse("127.0.0.1:9", &cfg.remote,
				       &cfg.remote_len), 0);
	cfg.ptime = 30;                            /* not an Opus frame */
	assert_int_equal(ue_media_run(&cfg, NULL, NULL, NULL), EINVAL);
	cfg.ptime = 20;
	cfg.rate = 44100;
	assert_int_equal(ue_media_run(&cfg, NULL, NULL, NULL), EINVAL);
	cfg.rate = 48000;
	cfg.duration = 0;
	assert_int_equal(ue_media_run(&cfg, NULL, NULL, NULL), EINVAL);
	cfg.duration = 1;
	cfg.wav_in = "/nonexistent.wav";
	assert_int_equal(ue_media_run(&cfg, NULL, NULL, NULL), ENOENT);
}

int test_ue_run_group(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_run_leg_key_pcma),
		cmocka_unit_test(test_run_roles_not_swappable),
		cmocka_unit_test(test_run_bad_cfg),
	};

	return cmocka_run_group_tests_name("ue_media_run", tests, NULL,
					   NULL);
}
