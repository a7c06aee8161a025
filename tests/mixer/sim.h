/**
 * @file sim.h  Mixer test harness: simulated participants on a fake clock
 *
 * Each participant encodes its own signal with the real codec libraries
 * (libopus, SpanDSP) independently of the mixer's wrappers, feeds the
 * payloads to mix_put(), and decodes whatever the mixer sends it, so the
 * checks run on audio a real terminal would hear.
 */

#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mixer/mixer.h"

struct party;

struct sim {
	struct mix_conf *conf;
	struct mix_conf_cfg cfg;
	uint64_t now_us;
	unsigned nparty;
	struct party *p[128];
	uint64_t rng;
	/* output checks */
	unsigned bad_ts;         /* ts_inc != ptime (after the first)  */
	unsigned packets_out;
};

struct party {
	struct sim *sim;
	struct mix_leg *leg;
	struct mix_leg_cfg lcfg;
	unsigned arate;          /* audio rate of the participant      */
	unsigned clock;
	/* signal */
	double freq, amp;        /* amp in full-scale units (1.0)      */
	bool on;                 /* sending tone (else silence)        */
	bool noise;              /* white noise instead of the tone    */
	uint32_t nstate;
	bool send_levels;        /* add RFC 6464 levels                */
	bool silent_payload;     /* reuse a pre-encoded silent payload */
	uint64_t nsent;          /* samples generated (arate)          */
	uint32_t ts;
	uint16_t seq;
	double drift_ppm;        /* sender clock error                 */
	/* sender codec */
	void *oenc, *g722e;
	uint8_t silence[64];
	size_t silence_len;
	/* receiver */
	void *odec, *g722d;
	int16_t *rx;
	size_t rx_n, rx_cap;
	unsigned rx_packets, rx_markers;
	uint32_t last_ts_inc;
	/* raw payloads seen (passthrough checks) */
	uint8_t last_payload[MIX_PAYLOAD_MAX];
	size_t last_len;
};

void sim_init(struct sim *s, const struct mix_conf_cfg *cfg);
void sim_free(struct sim *s);
struct party *sim_add(struct sim *s, enum mix_codec codec, double freq,
		      double amp, bool levels);
struct party *sim_add_cfg(struct sim *s, const struct mix_leg_cfg *lcfg,
			  double freq, double amp, bool levels);
/* one packet of p's signal (ptime), encoded; returns payload length */
size_t sim_make_packet(struct party *p, uint8_t *buf, int *levelp);
/* send every party's packet now and run one tick */
void sim_step(struct sim *s);
void sim_run(struct sim *s, unsigned ticks);
double sim_rand(struct sim *s);

/* analysis */
double goertzel_amp(const int16_t *x, size_t n, double freq, double rate);
double tone_db(const struct party *p, size_t from, size_t n, double freq);
double db(double x);
void party_rx_clear(struct party *p);

#endif
