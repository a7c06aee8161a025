/** @file loadgen_main.c  build/bin/loadgen: drive a system, report a row */

#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "keyleg/keyleg.h"
#include "bench/loadgen_int.h"

struct opts {
	const char *target, *control, *token_file, *scenario, *json;
	const char *speech, *label;
	unsigned legs;
	int srtp, complexity, pid, levels_override;
	double warmup, duration;
	unsigned sample_every, monitors;
};

struct edges {
	struct opts *o;
	const char *token;
	struct bench_proc_cpu cpu0, cpu1;
	struct rusage ru0, ru1;
	int64_t t0, t1;
	int cpu_ok;
	/* /metrics snapshots, fetched by a helper thread */
	pthread_t th;
	int th_started;
	char *met0, *met1;
	int64_t tx0, tx1;
};

static void usage(void)
{
	fprintf(stderr,
"usage: loadgen --target keymix|janus|rtpengine|reflector --control A:P\n"
"               --scenario NAME --legs N [--pid PID] [--token-file F]\n"
"               [--srtp 0|1] [--complexity N|-1] [--warmup S] [--duration S]\n"
"               [--json FILE] [--speech WAV] [--sample-every N]\n"
"               [--monitors N]\n"
"       loadgen --reflector --control 127.0.0.1:0 --token-file F\n"
"scenarios: opus10_2talk opus10_2talk_levels g711_10\n"
"           transcode_opus_pcmu relay_srtp opus100_3talk_levels\n");
}

static int read_token(const char *path, char *tok, size_t sz)
{
	FILE *f;
	size_t n;

	tok[0] = '\0';
	if (!path)
		return 0;
	f = fopen(path, "r");
	if (!f)
		return errno;
	n = fread(tok, 1, sz - 1, f);
	fclose(f);
	tok[n] = '\0';
	while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' ||
		     tok[n - 1] == ' '))
		tok[--n] = '\0';
	return 0;
}

/* Legs of the scenario: roles, codecs, phases, monitors */
static int build_legs(struct lg *g, unsigned want, unsigned monitors)
{
	const struct lg_scenario *sc = g->sc;
	unsigned size = sc->conf_size, i, mon = 0;

	g->n_confs = (want + size - 1) / size;
	if (!g->n_confs)
		g->n_confs = 1;
	g->n_legs = g->n_confs * size;
	g->legs = calloc(g->n_legs, sizeof(*g->legs));
	if (!g->legs)
		return ENOMEM;
	for (i = 0; i < g->n_legs; i++) {
		struct lg_leg *l = &g->legs[i];
		unsigned c = i / size, k = i % size;

		l->conf = c;
		l->idx = k;
		l->peer = -1;
		l->codec = sc->transcode && k == 1 ? sc->codec_b : sc->codec_a;
		l->banks = l->codec == LG_OPUS ? &g->opus : &g->pcmu;
		l->pt = l->banks->pt;
		lg_random(&l->ssrc, sizeof(l->ssrc));
		lg_random(&l->seq, sizeof(l->seq));
		lg_random(&l->ts, sizeof(l->ts));
		l->phase = (uint8_t)(i % LG_PTIME_MS);
		l->level_ext = sc->levels ? LG_LEVEL_EXT_ID : 0;
		if (sc->transcode) {
			l->peer = (int)(k ? i - 1 : i + 1);
			l->role = LG_TALKER;
			if (c == 0)
				l->role = k == 0 ? LG_PROBE : LG_SILENT;
			if (k == 1 && (c == 0 || mon < monitors)) {
				l->monitor = c == 0 ? 2 : 1;
				mon++;
			}
		}
		else {
			l->role = k < sc->talkers ? LG_TALKER : LG_SILENT;
			if (c == 0)
				l->role = k == 0 ? LG_PROBE : LG_SILENT;
			if (k == sc->talkers && (c == 0 || mon < monitors)) {
				l->monitor = c == 0 ? 2 : 1;
				mon++;
			}
		}
		l->pos = (c * 37 + k * 101) % (l->banks->speech.n ?
					       l->banks->speech.n : 1);
	}
	return 0;
}

static void *metrics_thread(void *arg)
{
	struct edges *e = arg;
	int status;

	e->met0 = lg_http_get(e->o->control, "/metrics", e->token, &status);
	return NULL;
}

static void window_edge(struct lg *g, int start, void *arg)
{
	struct edges *e = arg;
	struct bench_proc_cpu *pc = start ? &e->cpu0 : &e->cpu1;
	unsigned i;
	int64_t tx = 0;

	if (e->o->pid > 0 && bench_proc_stat_read(e->o->pid, pc))
		e->cpu_ok = 0;
	getrusage(RUSAGE_SELF, start ? &e->ru0 : &e->ru1);
	for (i = 0; i < g->n_legs; i++)
		tx += (int64_t)g->legs[i].tx;
	if (start) {
		e->t0 = lg_now_ns();
		e->tx0 = tx;
	}
	else {
		e->t1 = lg_now_ns();
		e->tx1 = tx;
	}
	if (g->target == LG_KEYMIX || g->target == LG_REFLECTOR) {
		if (start) {
			e->th_started = !pthread_create(&e->th, NULL,
							metrics_thread, e);
		}
		else {
			if (e->th_started)
				pthread_join(e->th, NULL);
			e->th_started = 0;
			/* the second snapshot may block: the window is over */
			e->met1 = NULL;
		}
	}
}

static double tv_s(const struct timeval *tv)
{
	return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static const char *target_name(enum lg_target t)
{
	switch (t) {
	case LG_JANUS:
		return "janus";
	case LG_RTPENGINE:
		return "rtpengine";
	case LG_REFLECTOR:
		return "reflector";
	default:
		return "keymix";
	}
}

static json_t *num_or_null(double v, int ok)
{
	return ok ? json_real(round(v * 1000) / 1000) : json_null();
}

/* Assemble the result row (latest.json format plus details) */
static json_t *report(struct lg *g, struct opts *o, struct edges *e,
		      const char *setup_err)
{
	struct bench_cpu_report cr = { 0, 0, 0 };
	double win_s = (double)(e->t1 - e->t0) / 1e9, gen_cpu, gen_load;
	uint64_t exp_out = 0, got_out = 0, checked = 0, auth = 0, ssrcb = 0;
	uint64_t ptb = 0, rebases = 0;
	unsigned i, monitored = 0, audio_ok = 0;
	int have_cpu = 0, have_metrics = 0, overloaded, transcode;
	double late50, late99, latemax, loss_out, loss_in = -1, loss;
	const char *late_src = "metrics";
	json_t *j, *chk;

	transcode = g->sc->transcode;
	if (o->pid > 0 && e->cpu_ok && win_s > 0) {
		uint64_t t = (e->cpu1.utime + e->cpu1.stime) -
			     (e->cpu0.utime + e->cpu0.stime);

		have_cpu = !bench_cpu_report(t, sysconf(_SC_CLK_TCK), win_s,
					     g->n_legs, &cr);
	}
	gen_cpu = tv_s(&e->ru1.ru_utime) + tv_s(&e->ru1.ru_stime) -
		  tv_s(&e->ru0.ru_utime) - tv_s(&e->ru0.ru_stime);
	gen_load = win_s > 0 ? gen_cpu / win_s : 0;
	for (i = 0; i < g->n_legs; i++) {
		struct lg_leg *l = &g->legs[i];
		struct lg_rx *rx = &l->rx;

		if (rx->win_started) {
			exp_out += (uint64_t)(uint32_t)(rx->win_ext1 -
							rx->win_ext0) + 1;
			got_out += rx->win_pkts;
		}
		else if (l->tx) {
			/* the system sent this leg nothing in the window */
			exp_out += (uint64_t)(win_s * 1000 / LG_PTIME_MS);
		}
		checked += rx->checked;
		auth += rx->auth_fail;
		ssrcb += rx->ssrc_bad;
		ptb += rx->pt_bad;
		rebases += rx->rebases;
		if (l->monitor) {
			monitored++;
			if (rx->decoded && rx->audio_frames * 5 >= rx->decoded)
				audio_ok++;
		}
	}
	loss_out = bench_loss_pct(exp_out, got_out);
	if (getenv("LOADGEN_DEBUG")) {
		for (i = 0; i < g->n_legs; i++) {
			struct lg_rx *rx = &g->legs[i].rx;

			if (rx->auth_fail || rx->ssrc_bad || !rx->pkts)
				fprintf(stderr, "leg %u (conf %u idx %u): "
					"pkts %llu checked %llu auth %llu "
					"ssrc %llu first seq %u last seq %u "
					"ssrc %08x\n", i, g->legs[i].conf,
					g->legs[i].idx,
					(unsigned long long)rx->pkts,
					(unsigned long long)rx->checked,
					(unsigned long long)rx->auth_fail,
					(unsigned long long)rx->ssrc_bad,
					(unsigned)rx->base_seq,
					(unsigned)rx->max_seq,
					(unsigned)rx->ssrc);
		}
	}
	/* generator -> system: the bridge's own count, when it has one */
	if (e->met1) {
		double b;
		uint64_t tx_all = 0;

		/* whole run: the system serves only this generator's legs */
		for (i = 0; i < g->n_legs; i++)
			tx_all += g->legs[i].tx;
		if (!bench_prom_sum(e->met1, "keymix_bridge_packets_in_total",
				    &b) && tx_all)
			loss_in = bench_loss_pct(tx_all, (uint64_t)b);
	}
	{
		struct bench_prom_hist ha, hb;
		const char *hn = "keymix_bridge_tick_lateness_seconds";

		if (e->met0 && e->met1 && !bench_prom_hist(e->met0, hn, &ha) &&
		    !bench_prom_hist(e->met1, hn, &hb) &&
		    bench_prom_hist_quantile_ms(&ha, &hb, 0.99) >= 0)
			have_metrics = 1;
		if (have_metrics && !transcode) {
			late_src = "metrics";
			late50 = bench_prom_hist_quantile_ms(&ha, &hb, 0.5);
			late99 = bench_prom_hist_quantile_ms(&ha, &hb, 0.99);
			latemax = bench_prom_hist_quantile_ms(&ha, &hb, 1.0);
		}
		else {
			/* mix: per tick; transcode/relay: per packet */
			const struct bench_hist *h = transcode ?
				&g->arr_late : &g->tick_late;

			late_src = transcode ? "arrivals per packet" :
				"arrivals per tick";
			late50 = bench_hist_quantile_ms(h, 0.5);
			late99 = bench_hist_quantile_ms(h, 0.99);
			latemax = h->max_us / 1000;
		}
	}
	loss = loss_out;
	if (loss_in > loss)
		loss = loss_in;
	overloaded = bench_generator_overloaded(
		gen_load, g->sends ? (double)g->late_sends / g->sends : 0,
		g->max_send_late_ms, LG_PTIME_MS);
	j = json_object();
	json_object_set_new(j, "name", json_string(g->sc->name));
	json_object_set_new(j, "system", json_string(
		o->label ? o->label : target_name(g->target)));
	json_object_set_new(j, "srtp", json_boolean(g->srtp));
	json_object_set_new(j, "opus_complexity",
			    g->target == LG_JANUS ?
			    (g->sc->codec_a == LG_OPUS ? json_integer(4) :
			     json_null()) :
			    g->target == LG_RTPENGINE || g->complexity < 0 ?
			    json_null() : json_integer(g->complexity));
	json_object_set_new(j, "legs", json_integer(g->n_legs));
	json_object_set_new(j, "conference_size",
			    json_integer(g->sc->conf_size));
	json_object_set_new(j, "cpu_per_leg_second", have_cpu ?
			    json_real(round(cr.cpu_per_leg_second * 1e7) /
				      1e7) : json_null());
	json_object_set_new(j, "legs_per_core",
			    num_or_null(cr.legs_per_core, have_cpu));
	json_object_set_new(j, "calls_per_core",
			    transcode ? num_or_null(cr.legs_per_core / 2,
						    have_cpu) : json_null());
	json_object_set_new(j, "method", json_string("extrapolated"));
	json_object_set_new(j, "tick_lateness_p50_ms",
			    num_or_null(late50, 1));
	json_object_set_new(j, "tick_lateness_p99_ms",
			    num_or_null(late99, 1));
	json_object_set_new(j, "tick_lateness_max_ms",
			    num_or_null(latemax, 1));
	json_object_set_new(j, "tick_lateness_source",
			    json_string(late_src));
	json_object_set_new(j, "delivery_lateness_p99_ms",
			    num_or_null(bench_hist_quantile_ms(&g->arr_late,
							       0.99), 1));
	json_object_set_new(j, "timestamp_jumps",
			    json_integer((json_int_t)rebases));
	json_object_set_new(j, "loss_pct", num_or_null(loss, 1));
	json_object_set_new(j, "loss_to_system_pct",
			    num_or_null(loss_in, loss_in >= 0));
	json_object_set_new(j, "loss_from_system_pct",
			    num_or_null(loss_out, 1));
	json_object_set_new(j, "added_latency_ms",
			    num_or_null(bench_hist_quantile_ms(&g->latency,
							       0.5),
					g->latency.count > 0));
	json_object_set_new(j, "added_latency_p99_ms",
			    num_or_null(bench_hist_quantile_ms(&g->latency,
							       0.99),
					g->latency.count > 0));
	json_object_set_new(j, "latency_probes",
			    json_integer((json_int_t)g->latency.count));
	json_object_set_new(j, "generator_overloaded",
			    json_boolean(overloaded));
	json_object_set_new(j, "system_core_load",
			    num_or_null(cr.core_load, have_cpu));
	json_object_set_new(j, "generator_core_load",
			    num_or_null(gen_load, 1));
	json_object_set_new(j, "generator_send_late_p99_ms",
			    num_or_null(bench_hist_quantile_ms(&g->send_late,
							       0.99), 1));
	json_object_set_new(j, "window_s", num_or_null(win_s, 1));
	chk = json_pack("{s:I, s:I, s:I, s:I, s:i, s:i}",
			"decrypted", (json_int_t)checked,
			"auth_failures", (json_int_t)auth,
			"ssrc_mismatches", (json_int_t)ssrcb,
			"pt_mismatches", (json_int_t)ptb,
			"monitored_legs", monitored,
			"audio_ok_legs", audio_ok);
	json_object_set_new(chk, "ok", json_boolean(
		!setup_err && checked > 0 && !auth && !ssrcb &&
		audio_ok == monitored));
	json_object_set_new(j, "checks", chk);
	{
		double lt;

		if (e->met1 && !bench_prom_sum(e->met1,
				"keymix_bridge_worker_late_ticks_total", &lt))
			json_object_set_new(j, "late_ticks",
					    json_integer((json_int_t)lt));
	}
	if (setup_err)
		json_object_set_new(j, "error", json_string(setup_err));
	else if (g->err[0])
		json_object_set_new(j, "note", json_string(g->err));
	return j;
}

static int parse_opts(int argc, char **argv, struct opts *o, int *reflect)
{
	static const struct option lo[] = {
		{ "target", 1, NULL, 't' }, { "control", 1, NULL, 'c' },
		{ "token-file", 1, NULL, 'k' }, { "scenario", 1, NULL, 's' },
		{ "legs", 1, NULL, 'n' }, { "pid", 1, NULL, 'p' },
		{ "srtp", 1, NULL, 'S' }, { "complexity", 1, NULL, 'C' },
		{ "warmup", 1, NULL, 'w' }, { "duration", 1, NULL, 'd' },
		{ "json", 1, NULL, 'j' }, { "speech", 1, NULL, 'a' },
		{ "sample-every", 1, NULL, 'e' }, { "monitors", 1, NULL, 'm' },
		{ "label", 1, NULL, 'L' }, { "reflector", 0, NULL, 'R' },
		{ "help", 0, NULL, 'h' }, { NULL, 0, NULL, 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		char *end = NULL;

		switch (c) {
		case 't': o->target = optarg; break;
		case 'c': o->control = optarg; break;
		case 'k': o->token_file = optarg; break;
		case 's': o->scenario = optarg; break;
		case 'j': o->json = optarg; break;
		case 'a': o->speech = optarg; break;
		case 'L': o->label = optarg; break;
		case 'R': *reflect = 1; break;
		case 'n': o->legs = (unsigned)strtoul(optarg, &end, 10); break;
		case 'p': o->pid = (int)strtol(optarg, &end, 10); break;
		case 'S': o->srtp = (int)strtol(optarg, &end, 10); break;
		case 'C': o->complexity = (int)strtol(optarg, &end, 10); break;
		case 'e':
			o->sample_every = (unsigned)strtoul(optarg, &end, 10);
			break;
		case 'm':
			o->monitors = (unsigned)strtoul(optarg, &end, 10);
			break;
		case 'w': o->warmup = strtod(optarg, &end); break;
		case 'd': o->duration = strtod(optarg, &end); break;
		default:
			usage();
			return EINVAL;
		}
		if (end && *end) {
			fprintf(stderr, "loadgen: bad number '%s'\n", optarg);
			return EINVAL;
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct opts o = { .srtp = 1, .complexity = 5, .warmup = 3,
			  .duration = 10, .sample_every = 16, .monitors = 8,
			  .target = "keymix", .legs = 10 };
	struct lg g;
	struct edges e;
	char token[512], *setup_err = NULL;
	int16_t *speech = NULL;
	unsigned nspeech = 0;
	int reflect = 0, from_espeak = 0, err;
	json_t *row;

	if (parse_opts(argc, argv, &o, &reflect))
		return 2;
	if (reflect) {
		if (!o.control)
			o.control = "127.0.0.1:0";
		return lg_reflector_run(o.control, o.token_file) ? 1 : 0;
	}
	memset(&g, 0, sizeof(g));
	memset(&e, 0, sizeof(e));
	g.sock = -1;
	g.sc = o.scenario ? lg_scenario_find(o.scenario) : NULL;
	if (!g.sc || !o.control) {
		usage();
		return 2;
	}
	if (!strcmp(o.target, "keymix"))
		g.target = LG_KEYMIX;
	else if (!strcmp(o.target, "janus"))
		g.target = LG_JANUS;
	else if (!strcmp(o.target, "rtpengine"))
		g.target = LG_RTPENGINE;
	else if (!strcmp(o.target, "reflector"))
		g.target = LG_REFLECTOR;
	else {
		usage();
		return 2;
	}
	if (g.target == LG_JANUS)
		o.srtp = 0;
	g.srtp = o.srtp;
	g.complexity = o.complexity;
	g.sample_every = o.sample_every ? o.sample_every : 16;
	if (read_token(o.token_file, token, sizeof(token))) {
		fprintf(stderr, "loadgen: cannot read %s\n", o.token_file);
		return 2;
	}
	if (keyleg_init()) {
		fprintf(stderr, "loadgen: keyleg_init failed\n");
		return 1;
	}
	err = lg_audio_load_speech(o.speech, &speech, &nspeech, &from_espeak);
	if (!err)
		err = lg_banks_make(&g.opus, LG_OPUS, speech, nspeech);
	if (!err)
		err = lg_banks_make(&g.pcmu, LG_PCMU, speech, nspeech);
	free(speech);
	if (err) {
		fprintf(stderr, "loadgen: audio: %s\n", strerror(err));
		return 1;
	}
	err = lg_engine_open(&g);
	if (!err)
		err = build_legs(&g, o.legs, o.monitors);
	if (err) {
		fprintf(stderr, "loadgen: %s\n", strerror(err));
		return 1;
	}
	fprintf(stderr, "loadgen: %s on %s: %u legs in %u %s, srtp %s, "
		"speech from %s\n", g.sc->name, target_name(g.target),
		g.n_legs, g.n_confs, g.sc->transcode ? "calls" : "conferences",
		g.srtp ? "on" : "off", from_espeak ? "espeak-ng" :
		o.speech ? o.speech : "the synthetic voice");
	switch (g.target) {
	case LG_JANUS:
		err = lg_setup_janus(&g, o.control);
		break;
	case LG_RTPENGINE:
		err = lg_setup_rtpengine(&g, o.control);
		break;
	default:
		err = lg_setup_keymix(&g, o.control, token);
		break;
	}
	if (err) {
		setup_err = g.err[0] ? g.err : strerror(err);
		fprintf(stderr, "loadgen: setup: %s\n", setup_err);
	}
	else {
		e.o = &o;
		e.token = token;
		e.cpu_ok = 1;
		err = lg_engine_run(&g, o.warmup, o.duration, window_edge, &e);
		if (err)
			setup_err = strerror(err);
		if (g.target == LG_KEYMIX || g.target == LG_REFLECTOR) {
			int status;

			if (e.th_started)
				pthread_join(e.th, NULL);
			/* second snapshot right after the window (the send
			 * count was taken at the edge; in-flight is small) */
			e.met1 = lg_http_get(o.control, "/metrics", token,
					     &status);
		}
	}
	row = report(&g, &o, &e, setup_err);
	json_object_set_new(row, "speech", json_string(
		from_espeak ? "espeak-ng" : o.speech ? "file" : "synthetic"));
	switch (g.target) {
	case LG_RTPENGINE:
		lg_teardown_rtpengine(&g, o.control);
		break;
	case LG_JANUS:
		break;
	default:
		lg_teardown_keymix(&g, o.control, token);
		break;
	}
	if (o.json) {
		if (json_dump_file(row, o.json, JSON_INDENT(1) |
				   JSON_REAL_PRECISION(7)))
			fprintf(stderr, "loadgen: cannot write %s\n", o.json);
	}
	{
		char *s = json_dumps(row, JSON_COMPACT |
				     JSON_REAL_PRECISION(7));

		if (s)
			printf("%s\n", s);
		free(s);
	}
	json_decref(row);
	free(e.met0);
	free(e.met1);
	lg_engine_close(&g);
	lg_banks_free(&g.opus);
	lg_banks_free(&g.pcmu);
	free(g.legs);
	return setup_err ? 1 : 0;
}
