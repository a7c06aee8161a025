/**
 * @file bridge_pkt.c  libFuzzer target: the bridge's receive packet path
 *
 * One conference on a worker (no thread: the target calls the stages
 * directly) with three legs: plain PCMU with RFC 6464 and RFC 4733, SRTP
 * AES-CM-80 PCMA and SRTP AEAD-AES-128-GCM Opus.  The first input byte picks the
 * leg and whether the rest is first protected with the participant's key
 * (so the fuzzer reaches the stages after authentication), then the
 * packet runs through leg_process(); bit 6 runs a mixing tick after it.
 * Output goes to a connected AF_UNIX datagram socket pair, never to the
 * network.  Every packet must leave the leg counters consistent.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <event2/event.h>

#include "bridge/bridge_int.h"

#define NLEGS 3

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct bridge br;
static struct worker wk;
static struct conf *conf;
static struct leg *legs[NLEGS];
static struct keyleg *peer[NLEGS];    /* the participants' contexts */
static uint64_t now_us = 1000000;

static void fill_key(struct keyleg_keysalt *ks, enum keyleg_profile p,
		     uint8_t seed)
{
	size_t i;

	ks->len = keyleg_profile_key_len(p) + keyleg_profile_salt_len(p);
	for (i = 0; i < ks->len; i++)
		ks->b[i] = (uint8_t)(seed + 7 * i);
}

static void setup_leg(int i, int srtp, enum keyleg_profile prof)
{
	struct leg_params par;
	struct baddr local;
	int sv[2];

	memset(&par, 0, sizeof(par));
	snprintf(par.participant, sizeof(par.participant), "fuzz%d", i);
	/* leg 0 PCMU, leg 1 PCMA, leg 2 Opus */
	par.codec = i == 0 ? MIX_CODEC_PCMU : i == 1 ? MIX_CODEC_PCMA :
		MIX_CODEC_OPUS;
	par.rate = 8000;
	par.ptime = 20;
	par.pt = i == 0 ? 0 : i == 1 ? 8 : 111;
	par.te_pt = i == 0 ? 101 : -1;
	par.level_ext = i == 0 ? 1 : 0;
	par.dir = DIR_SENDRECV;
	baddr_parse(&par.remote, "127.0.0.1:9");
	baddr_parse(&local, "127.0.0.1:30000");
	if (srtp) {
		par.srtp = 1;
		par.profile = prof;
		fill_key(&par.rx, prof, (uint8_t)(i * 31));
		fill_key(&par.tx, prof, (uint8_t)(i * 31 + 1));
		/* the participant sends with our rx, receives with our tx */
		if (keyleg_alloc(&peer[i], prof, &par.tx, &par.rx, NULL))
			abort();
	}
	if (socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv))
		abort();
	close(sv[1]);
	if (leg_create(&legs[i], conf, &par, sv[0], &local, 30000))
		abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	if (keyleg_init())
		abort();
	bridge_cfg_defaults(&br.cfg);
	wk.b = &br;
	wk.base = event_base_new();
	if (!wk.base || pool_init(&wk.pool, 256))
		abort();
	conf = calloc(1, sizeof(*conf));
	conf->mode = MODE_MIX;
	conf->rate = 8000;
	conf->ptime = 20;
	conf->max_talkers = 3;
	conf->w = &wk;
	if (conf_mix_alloc(conf))
		abort();
	setup_leg(0, 0, KEYLEG_AES_CM_128_HMAC_SHA1_80);
	setup_leg(1, 1, KEYLEG_AES_CM_128_HMAC_SHA1_80);
	setup_leg(2, 1, KEYLEG_AEAD_AES_128_GCM);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct leg_counters before;
	struct baddr src;
	struct pkt *k;
	struct leg *l;
	uint64_t drops_before, drops_after;
	int i;

	if (!conf)
		LLVMFuzzerInitialize(NULL, NULL);
	if (size < 1 || size - 1 > PKT_MTU)
		return 0;
	i = data[0] % NLEGS;
	l = legs[i];
	k = pool_get(&wk.pool);
	if (!k)
		abort();
	memcpy(pkt_data(k), data + 1, size - 1);
	k->len = size - 1;
	if ((data[0] & 0x80) && peer[i]) {
		if (rtp_is_rtcp(pkt_data(k), k->len))
			(void)keyleg_protect_rtcp(peer[i], pkt_data(k),
						  &k->len, PKT_CAP);
		else
			(void)keyleg_protect_rtp(peer[i], pkt_data(k),
						 &k->len, PKT_CAP);
	}
	baddr_parse(&src, (data[0] & 0x20) ? "127.0.0.1:10" :
		    "127.0.0.1:9");
	before = l->cnt;
	now_us += 20000;
	leg_process(l, k, &src, now_us);
	pool_put(&wk.pool, k);
	if (data[0] & 0x40)
		conf_tick(conf, now_us);
	worker_flush(&wk);

	/* exactly one verdict per packet: accepted, or one drop counter */
	drops_before = before.packets_in + before.auth_failures +
		before.replays + before.malformed + before.rtcp_in;
	drops_after = l->cnt.packets_in + l->cnt.auth_failures +
		l->cnt.replays + l->cnt.malformed + l->cnt.rtcp_in;
	if (drops_after - drops_before > 1)
		abort();
	/* a plain leg never moves, an SRTP leg only after a verified one */
	if (!l->kl && l->cnt.latches)
		abort();
	if (l->cnt.latches != before.latches &&
	    l->cnt.packets_in + l->cnt.rtcp_in ==
	    before.packets_in + before.rtcp_in)
		abort();
	if (wk.pool.nfree != wk.pool.n)
		abort();
	return 0;
}
