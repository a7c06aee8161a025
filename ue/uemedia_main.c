/** @file uemedia_main.c  uemedia: a conference participant simulator */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ue/ue_media_int.h"

static volatile int stop_flag;

static void on_signal(int sig)
{
	(void)sig;
	stop_flag = 1;
}

static void usage(FILE *f)
{
	fputs(
"usage: uemedia --remote ADDR:PORT [options]\n"
"  --local ADDR:PORT      bind here (port 0: any; printed on the ready line)\n"
"  --remote ADDR:PORT     where to send (the bridge leg's local address)\n"
"  --codec opus|pcmu|pcma|g722   (default opus)\n"
"  --rate HZ              audio rate (opus 8k..48k, pcm* 8k, g722 16k)\n"
"  --ptime MS             10..60 (default 20)\n"
"  --pt N                 RTP payload type (default: 111, 0, 8, 9)\n"
"  --bitrate BPS          Opus bitrate (default 32000)\n"
"  --profile NAME         SRTP profile (default AES_CM_128_HMAC_SHA1_80)\n"
"  --tx-key B64           inline key||salt this participant sends with\n"
"  --rx-key B64           inline key||salt the bridge sends with\n"
"  --leg-key B64          KMS leg key: both directions derived by role\n"
"                         (a key argument @FILE reads the value from FILE)\n"
"  --encrypt-ext          encrypt the audio-level extension (RFC 6904)\n"
"  --tone HZ[:DBFS]       send a sine (0 dBFS = full-scale sine; def. -20)\n"
"  --wav-in FILE          send a WAV file (16-bit PCM, resampled) [--loop]\n"
"  --talk S:E[,S:E...]    speak only in these windows (s from start)\n"
"  --wav-out FILE         record what is received (mono, 16-bit, --rate)\n"
"  --duration S           seconds to run (default 5)\n"
"  --audio-level-ext ID   send RFC 6464 levels with this extension id\n"
"  --ssrc N               own SSRC (default random)\n"
"  --direction sendrecv|sendonly|recvonly\n"
"  --rtcp-interval S      seconds between RTCP reports (0: none; default 1)\n"
"  --cname NAME           RTCP CNAME\n"
"Without keys it speaks plain RTP.  Prints 'ready local=ADDR:PORT ssrc=N'\n"
"when bound and one 'stats key=value ...' line at exit.\n", f);
}

enum {
	O_LOCAL = 256, O_REMOTE, O_CODEC, O_RATE, O_PTIME, O_PT, O_BITRATE,
	O_PROFILE, O_TXKEY, O_RXKEY, O_LEGKEY, O_ENCEXT, O_TONE, O_WAVIN,
	O_LOOP, O_WAVOUT, O_DURATION, O_LEVEL, O_SSRC, O_DIR, O_RTCP,
	O_CNAME, O_TALK, O_HELP,
};

static const struct option opts[] = {
	{ "local", required_argument, NULL, O_LOCAL },
	{ "remote", required_argument, NULL, O_REMOTE },
	{ "codec", required_argument, NULL, O_CODEC },
	{ "rate", required_argument, NULL, O_RATE },
	{ "ptime", required_argument, NULL, O_PTIME },
	{ "pt", required_argument, NULL, O_PT },
	{ "bitrate", required_argument, NULL, O_BITRATE },
	{ "profile", required_argument, NULL, O_PROFILE },
	{ "tx-key", required_argument, NULL, O_TXKEY },
	{ "rx-key", required_argument, NULL, O_RXKEY },
	{ "leg-key", required_argument, NULL, O_LEGKEY },
	{ "encrypt-ext", no_argument, NULL, O_ENCEXT },
	{ "tone", required_argument, NULL, O_TONE },
	{ "wav-in", required_argument, NULL, O_WAVIN },
	{ "loop", no_argument, NULL, O_LOOP },
	{ "wav-out", required_argument, NULL, O_WAVOUT },
	{ "duration", required_argument, NULL, O_DURATION },
	{ "audio-level-ext", required_argument, NULL, O_LEVEL },
	{ "ssrc", required_argument, NULL, O_SSRC },
	{ "direction", required_argument, NULL, O_DIR },
	{ "rtcp-interval", required_argument, NULL, O_RTCP },
	{ "cname", required_argument, NULL, O_CNAME },
	{ "talk", required_argument, NULL, O_TALK },
	{ "help", no_argument, NULL, O_HELP },
	{ NULL, 0, NULL, 0 },
};

static int parse_ulong(const char *s, unsigned long max, unsigned long *vp)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-')
		return EINVAL;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v > max)
		return EINVAL;
	*vp = v;
	return 0;
}

static int parse_double(const char *s, double *vp)
{
	char *end;

	errno = 0;
	*vp = strtod(s, &end);
	return (errno || end == s || *end) ? EINVAL : 0;
}

/* A key argument is the base64 text itself or @FILE holding it. */
static int key_text(const char *arg, char *out, size_t outsz)
{
	FILE *f;
	size_t n;

	if (arg[0] != '@') {
		n = strlen(arg);
		if (n >= outsz)
			return EINVAL;
		memcpy(out, arg, n + 1);
		return 0;
	}
	f = fopen(arg + 1, "r");
	if (!f)
		return errno;
	n = fread(out, 1, outsz - 1, f);
	fclose(f);
	while (n && (out[n - 1] == '\n' || out[n - 1] == '\r' ||
		     out[n - 1] == ' '))
		n--;
	out[n] = '\0';
	return 0;
}

struct keyargs {
	const char *tx, *rx, *leg;
};

static int setup_keys(struct ue_media_cfg *cfg, const struct keyargs *ka)
{
	char txt[256];
	uint8_t leg[128];
	size_t ll = 0;
	int err;

	if (!ka->tx && !ka->rx && !ka->leg)
		return 0;
	if (ka->leg && (ka->tx || ka->rx)) {
		fprintf(stderr, "uemedia: --leg-key excludes --tx/--rx-key\n");
		return EINVAL;
	}
	if (!ka->leg && (!ka->tx || !ka->rx)) {
		fprintf(stderr, "uemedia: --tx-key needs --rx-key\n");
		return EINVAL;
	}
	cfg->srtp = true;
	err = keyleg_init();
	if (err)
		return err;
	if (ka->leg) {
		err = key_text(ka->leg, txt, sizeof(txt));
		if (!err)
			err = keyleg_b64_decode(txt, leg, sizeof(leg), &ll);
		if (!err && ll == 0)
			err = EINVAL;
		if (!err)
			err = keyleg_derive(leg, ll, cfg->profile,
					    KEYLEG_FLOW_CONFERENCE,
					    KEYLEG_SIDE_PARTICIPANT,
					    &cfg->rx, &cfg->tx);
		if (err)
			fprintf(stderr, "uemedia: bad --leg-key: %s\n",
				strerror(err));
		goto out;
	}
	err = key_text(ka->tx, txt, sizeof(txt));
	if (!err)
		err = keyleg_inline_decode(txt, cfg->profile, &cfg->tx);
	if (err) {
		fprintf(stderr, "uemedia: bad --tx-key for %s: %s\n",
			keyleg_profile_name(cfg->profile), strerror(err));
		goto out;
	}
	err = key_text(ka->rx, txt, sizeof(txt));
	if (!err)
		err = keyleg_inline_decode(txt, cfg->profile, &cfg->rx);
	if (err)
		fprintf(stderr, "uemedia: bad --rx-key for %s: %s\n",
			keyleg_profile_name(cfg->profile), strerror(err));
 out:
	keyleg_wipe(txt, sizeof(txt));
	keyleg_wipe(leg, sizeof(leg));
	return err;
}

static int parse_dir(const char *s, enum ue_dir *dp)
{
	if (!strcmp(s, "sendrecv"))
		*dp = UE_DIR_SENDRECV;
	else if (!strcmp(s, "sendonly"))
		*dp = UE_DIR_SENDONLY;
	else if (!strcmp(s, "recvonly"))
		*dp = UE_DIR_RECVONLY;
	else
		return EINVAL;
	return 0;
}

static int parse_opt(struct ue_media_cfg *cfg, struct keyargs *ka, int c,
		     const char *a, bool *rate_set, bool *pt_set,
		     bool *enc_ext)
{
	unsigned long v;
	int err = 0;

	switch (c) {
	case O_LOCAL:
		return ue_addr_parse(a, &cfg->local, &cfg->local_len);
	case O_REMOTE:
		return ue_addr_parse(a, &cfg->remote, &cfg->remote_len);
	case O_CODEC:
		return ue_codec_parse(a, &cfg->codec);
	case O_RATE:
		err = parse_ulong(a, 48000, &v);
		cfg->rate = (uint32_t)v;
		*rate_set = true;
		return err;
	case O_PTIME:
		err = parse_ulong(a, 60, &v);
		cfg->ptime = (uint32_t)v;
		return err;
	case O_PT:
		err = parse_ulong(a, 127, &v);
		cfg->pt = (uint8_t)v;
		*pt_set = true;
		return err;
	case O_BITRATE:
		err = parse_ulong(a, 510000, &v);
		cfg->copts.bitrate = (int)v;
		return err;
	case O_PROFILE:
		return keyleg_profile_parse(a, &cfg->profile);
	case O_TXKEY:
		ka->tx = a;
		return 0;
	case O_RXKEY:
		ka->rx = a;
		return 0;
	case O_LEGKEY:
		ka->leg = a;
		return 0;
	case O_ENCEXT:
		*enc_ext = true;
		return 0;
	case O_TONE:
		return ue_tone_parse(a, &cfg->tone_hz, &cfg->tone_dbfs);
	case O_WAVIN:
		cfg->wav_in = a;
		return 0;
	case O_LOOP:
		cfg->loop = true;
		return 0;
	case O_WAVOUT:
		cfg->wav_out = a;
		return 0;
	case O_DURATION:
		return parse_double(a, &cfg->duration);
	case O_LEVEL:
		err = parse_ulong(a, 14, &v);
		if (!err && v == 0)
			err = EINVAL;
		cfg->level_ext_id = (uint8_t)v;
		return err;
	case O_SSRC:
		err = parse_ulong(a, UINT32_MAX, &v);
		cfg->ssrc = (uint32_t)v;
		cfg->ssrc_set = true;
		return err;
	case O_DIR:
		return parse_dir(a, &cfg->dir);
	case O_RTCP:
		return parse_double(a, &cfg->rtcp_interval);
	case O_CNAME:
		cfg->cname = a;
		return 0;
	case O_TALK:
		return ue_talk_parse(a, &cfg->talk);
	}
	return EINVAL;
}

int main(int argc, char **argv)
{
	struct ue_media_cfg cfg;
	struct ue_media_stats st;
	struct keyargs ka = { NULL, NULL, NULL };
	struct sigaction sa;
	bool rate_set = false, pt_set = false, enc_ext = false;
	char line[512];
	int c, err;

	ue_media_cfg_init(&cfg);
	cfg.profile = KEYLEG_AES_CM_128_HMAC_SHA1_80;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'h' || c == O_HELP) {
			usage(stdout);
			return 0;
		}
		if (c == '?') {
			usage(stderr);
			return 2;
		}
		if (parse_opt(&cfg, &ka, c, optarg, &rate_set, &pt_set,
			      &enc_ext)) {
			fprintf(stderr, "uemedia: bad value for --%s: %s\n",
				opts[c - O_LOCAL].name, optarg);
			return 2;
		}
	}
	if (optind < argc || !cfg.remote.ss_family) {
		usage(stderr);
		return 2;
	}
	if (!rate_set)
		cfg.rate = ue_codec_default_rate(cfg.codec);
	if (!pt_set)
		cfg.pt = ue_codec_default_pt(cfg.codec);
	if (enc_ext) {
		if (!cfg.level_ext_id) {
			fprintf(stderr, "uemedia: --encrypt-ext needs "
				"--audio-level-ext\n");
			return 2;
		}
		cfg.enc_ext[0] = cfg.level_ext_id;
		cfg.n_enc_ext = 1;
	}
	if (ue_media_cfg_check(&cfg)) {
		fprintf(stderr, "uemedia: invalid settings: %s at %u Hz, "
			"%u ms (Opus: 10/20/40/60 ms; duration 0..3600 s)\n",
			ue_codec_name(cfg.codec), cfg.rate, cfg.ptime);
		return 2;
	}
	if (setup_keys(&cfg, &ka))
		return 2;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	memset(&st, 0, sizeof(st));
	err = ue_media_run(&cfg, &stop_flag, stdout, &st);
	keyleg_wipe(&cfg.rx, sizeof(cfg.rx));
	keyleg_wipe(&cfg.tx, sizeof(cfg.tx));
	if (err) {
		fprintf(stderr, "uemedia: %s\n", err == EINVAL ?
			"invalid settings (codec/rate/ptime/duration)" :
			strerror(err));
		return 1;
	}
	if (!ue_media_stats_format(&st, line, sizeof(line)))
		printf("%s\n", line);
	return 0;
}
