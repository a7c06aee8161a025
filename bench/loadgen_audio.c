/** @file loadgen_audio.c  Speech source and payload banks encoded at start */

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <opus/opus.h>
#include <speex/speex_resampler.h>

#include "bench/loadgen_int.h"

#define RATE48 48000u
#define FRAME48 960u

static const char speech_text[] =
	"The quarterly figures are in. Sales in the northern region rose "
	"by four percent, while costs stayed flat. Can everyone hear me? "
	"Let us move on to the second item: the migration of the media "
	"servers. We plan to start next Tuesday at nine, and finish by "
	"Friday. Any questions before we continue?";

/** Monotonic clock in nanoseconds */
int64_t lg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/** RMS of a frame in dBov (-127 for digital silence) */
double lg_rms_dbov(const int16_t *pcm, unsigned n)
{
	double acc = 0, rms;
	unsigned i;

	for (i = 0; i < n; i++)
		acc += (double)pcm[i] * pcm[i];
	rms = n ? sqrt(acc / n) : 0;
	if (rms < 1e-3)
		return -127;
	/* 0 dBov: a full-scale square wave (RFC 6464) */
	return 20 * log10(rms / 32768.0);
}

/** RFC 6464 level value (0 = loudest, 127 = silence) */
uint8_t lg_level_dbov(const int16_t *pcm, unsigned n)
{
	double db = -lg_rms_dbov(pcm, n);

	if (db < 0)
		db = 0;
	if (db > 127)
		db = 127;
	return (uint8_t)(db + 0.5);
}

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

/* Read a 16-bit mono PCM WAV file (any rate) */
static int wav_read(const char *path, int16_t **pcm, unsigned *n,
		    unsigned *rate)
{
	uint8_t *buf = NULL;
	struct stat st;
	size_t off = 12, got = 0;
	unsigned ch = 0, bits = 0;
	int fd, err = EBADMSG;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	if (fstat(fd, &st) || st.st_size < 44 || st.st_size > (64 << 20)) {
		close(fd);
		return EBADMSG;
	}
	buf = malloc((size_t)st.st_size);
	if (!buf) {
		close(fd);
		return ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, buf + got, (size_t)st.st_size - got);

		if (r <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	if (got < 44 || memcmp(buf, "RIFF", 4) || memcmp(buf + 8, "WAVE", 4))
		goto out;
	*rate = 0;
	while (off + 8 <= got) {
		uint32_t clen = rd32(buf + off + 4);
		size_t body = off + 8;

		if (!memcmp(buf + off, "fmt ", 4) && clen >= 16 &&
		    body + 16 <= got) {
			if (rd16(buf + body) != 1)
				goto out;
			ch = rd16(buf + body + 2);
			*rate = rd32(buf + body + 4);
			bits = rd16(buf + body + 14);
		}
		else if (!memcmp(buf + off, "data", 4)) {
			size_t avail = got - body, i;

			/* a streamed WAV may carry a bogus size */
			if (clen < avail)
				avail = clen;
			if (ch != 1 || bits != 16 || !*rate)
				goto out;
			*n = (unsigned)(avail / 2);
			*pcm = malloc(sizeof(int16_t) * (*n + 1));
			if (!*pcm) {
				err = ENOMEM;
				goto out;
			}
			for (i = 0; i < *n; i++)
				(*pcm)[i] = (int16_t)rd16(buf + body + 2 * i);
			err = 0;
			goto out;
		}
		off = body + clen + (clen & 1);
	}
 out:
	free(buf);
	return err;
}

/* Run espeak-ng into a temporary WAV; 0 on success */
static int espeak_wav(const char *path)
{
	pid_t pid;
	int status;

	pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		int dn = open("/dev/null", O_RDWR);

		if (dn >= 0) {
			dup2(dn, 1);
			dup2(dn, 2);
		}
		execlp("espeak-ng", "espeak-ng", "-v", "en-us", "-s", "155",
		       "-w", path, speech_text, (char *)NULL);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : ENOENT;
}

/*
 * A speech-like synthetic signal: a glottal pulse train (pitch gliding
 * 100-180 Hz) shaped by two moving formants, in 4 Hz syllables with
 * pauses between phrases.  Used when espeak-ng is not installed.
 */
static int synth_speech(int16_t **pcm, unsigned *n)
{
	unsigned i, len = RATE48 * 12;
	double ph = 0, y1 = 0, y2 = 0, z1 = 0, z2 = 0;

	*pcm = malloc(sizeof(int16_t) * len);
	if (!*pcm)
		return ENOMEM;
	for (i = 0; i < len; i++) {
		double t = (double)i / RATE48;
		double f0 = 140 + 40 * sin(2 * M_PI * 0.3 * t);
		double env = 0.5 - 0.5 * cos(2 * M_PI * 4 * t);
		double phrase = fmod(t, 3.0) < 2.2 ? 1 : 0;
		double f1 = 500 + 250 * sin(2 * M_PI * 1.1 * t);
		double f2 = 1500 + 600 * sin(2 * M_PI * 0.7 * t);
		double r = 0.97, x, c1, c2, v;

		ph += f0 / RATE48;
		x = 0;
		if (ph >= 1) {
			ph -= 1;
			x = 1;
		}
		c1 = 2 * r * cos(2 * M_PI * f1 / RATE48);
		c2 = 2 * r * cos(2 * M_PI * f2 / RATE48);
		v = x + c1 * y1 - r * r * y2;
		y2 = y1;
		y1 = v;
		x = v + c2 * z1 - r * r * z2;
		z2 = z1;
		z1 = x;
		(*pcm)[i] = (int16_t)(x * 900 * env * phrase);
	}
	*n = len;
	return 0;
}

static int resample(const int16_t *in, unsigned n_in, unsigned r_in,
		    int16_t **out, unsigned *n_out, unsigned r_out)
{
	SpeexResamplerState *rs;
	spx_uint32_t il, ol;
	int err = 0;

	*n_out = (unsigned)((uint64_t)n_in * r_out / r_in);
	*out = calloc(*n_out + 64, sizeof(int16_t));
	if (!*out)
		return ENOMEM;
	if (r_in == r_out) {
		memcpy(*out, in, sizeof(int16_t) * n_in);
		return 0;
	}
	rs = speex_resampler_init(1, r_in, r_out, 5, &err);
	if (!rs)
		return ENOMEM;
	il = n_in;
	ol = *n_out + 64;
	speex_resampler_process_int(rs, 0, in, &il, *out, &ol);
	speex_resampler_destroy(rs);
	*n_out = ol;
	return 0;
}

/**
 * Load the speech every talker loops over, as 48 kHz mono: from a WAV
 * file if given, else espeak-ng's rendering of a meeting sentence, else a
 * synthetic speech-like signal.  The level is normalised to about -26 dBov
 * while speaking.
 */
int lg_audio_load_speech(const char *wav, int16_t **pcm48, unsigned *n48,
			 int *from_espeak)
{
	char tmp[64];
	int16_t *raw = NULL;
	unsigned n = 0, rate = 0, i;
	double peak = 0, gain;
	int err = ENOENT;

	*from_espeak = 0;
	if (wav) {
		err = wav_read(wav, &raw, &n, &rate);
		if (err)
			return err;
	}
	else {
		snprintf(tmp, sizeof(tmp), "/tmp/loadgen-speech-%d.wav",
			 (int)getpid());
		if (!espeak_wav(tmp) && !wav_read(tmp, &raw, &n, &rate)) {
			*from_espeak = 1;
			err = 0;
		}
		unlink(tmp);
	}
	if (err || n < rate) {
		free(raw);
		raw = NULL;
		*from_espeak = 0;
		rate = RATE48;
		err = synth_speech(&raw, &n);
		if (err)
			return err;
	}
	err = resample(raw, n, rate, pcm48, n48, RATE48);
	free(raw);
	if (err)
		return err;
	for (i = 0; i < *n48; i++)
		if (fabs((double)(*pcm48)[i]) > peak)
			peak = fabs((double)(*pcm48)[i]);
	/* peaks of speech sit ~14 dB above its active RMS */
	gain = peak > 0 ? 32768.0 * pow(10, -12.0 / 20) / peak : 1;
	for (i = 0; i < *n48; i++) {
		double v = (*pcm48)[i] * gain;

		(*pcm48)[i] = (int16_t)(v > 32767 ? 32767 :
					v < -32768 ? -32768 : v);
	}
	return 0;
}

/** G.711 mu-law encoder (ITU-T G.711, bias 0x84) */
uint8_t lg_ulaw_enc(int16_t pcm)
{
	int v = pcm, sign = 0, exp = 7, mask;

	if (v < 0) {
		v = -v;
		sign = 0x80;
	}
	if (v > 32635)
		v = 32635;
	v += 0x84;
	for (mask = 0x4000; !(v & mask) && exp > 0; mask >>= 1)
		exp--;
	return (uint8_t)~(sign | exp << 4 | ((v >> (exp + 3)) & 0x0f));
}

/** G.711 mu-law decoder */
int16_t lg_ulaw_dec(uint8_t u)
{
	int v;

	u = (uint8_t)~u;
	v = ((u & 0x0f) << 3) + 0x84;
	v <<= (u & 0x70) >> 4;
	return (int16_t)(u & 0x80 ? 0x84 - v : v - 0x84);
}

struct enc {
	enum lg_codec codec;
	OpusEncoder *opus;
	unsigned frame;      /**< samples per frame at the codec rate */
	unsigned rate;
};

static int bank_add(struct lg_bank *bk, size_t *cap, struct enc *e,
		    const int16_t *pcm, uint8_t mark)
{
	uint8_t out[1500];
	int len;
	unsigned i;

	if (e->codec == LG_OPUS) {
		len = opus_encode(e->opus, pcm, (int)e->frame, out,
				  sizeof(out));
		if (len < 0)
			return EPROTO;
	}
	else {
		for (i = 0; i < e->frame; i++)
			out[i] = lg_ulaw_enc(pcm[i]);
		len = (int)e->frame;
	}
	{
		size_t used = bk->n ? bk->frames[bk->n - 1].off +
			bk->frames[bk->n - 1].len : 0;

		if (used + (size_t)len > *cap)
			return ENOSPC;
		memcpy(bk->data + used, out, (size_t)len);
		bk->frames[bk->n].off = (uint32_t)used;
	}
	bk->frames[bk->n].len = (uint16_t)len;
	bk->frames[bk->n].level = lg_level_dbov(pcm, e->frame);
	bk->frames[bk->n].mark = mark;
	bk->n++;
	return 0;
}

static int bank_alloc(struct lg_bank *bk, unsigned frames, size_t *cap)
{
	*cap = (size_t)frames * 400 + 4096;
	bk->data = malloc(*cap);
	bk->frames = calloc(frames, sizeof(*bk->frames));
	bk->n = 0;
	return bk->data && bk->frames ? 0 : ENOMEM;
}

/* Frames of one signal at the codec rate, encoded in order */
static int bank_encode(struct lg_bank *bk, struct enc *e,
		       const int16_t *pcm, unsigned n, const uint8_t *marks)
{
	unsigned frames = n / e->frame, i;
	size_t cap;
	int err;

	err = bank_alloc(bk, frames, &cap);
	if (err)
		return err;
	for (i = 0; i < frames; i++) {
		err = bank_add(bk, &cap, e, pcm + (size_t)i * e->frame,
			       marks ? marks[i] : 0);
		if (err)
			return err;
	}
	return 0;
}

/**
 * Encode the banks of one codec once: speech (the whole recording),
 * silence (2 s of -70 dBov noise) and the probe (1 s: a -40 dBov 1 kHz
 * tone with two 60 ms marks at -6 dBov, at 0 and 500 ms).
 */
int lg_banks_make(struct lg_banks *b, enum lg_codec codec,
		  const int16_t *speech48, unsigned n48)
{
	struct enc e = { .codec = codec };
	int16_t *sp = NULL, *sil = NULL, *pr = NULL;
	uint8_t marks[50];
	unsigned nsp, nsil, npr, i, seed = 12345;
	int err;

	memset(b, 0, sizeof(*b));
	e.rate = codec == LG_OPUS ? 48000 : 8000;
	e.frame = e.rate / 1000 * LG_PTIME_MS;
	b->samples = e.frame;
	b->pt = codec == LG_OPUS ? 111 : 0;
	if (codec == LG_OPUS) {
		int oe;

		e.opus = opus_encoder_create(48000, 1, OPUS_APPLICATION_VOIP,
					     &oe);
		if (!e.opus)
			return ENOMEM;
		opus_encoder_ctl(e.opus, OPUS_SET_BITRATE(32000));
		opus_encoder_ctl(e.opus, OPUS_SET_COMPLEXITY(10));
		opus_encoder_ctl(e.opus, OPUS_SET_INBAND_FEC(1));
		opus_encoder_ctl(e.opus, OPUS_SET_PACKET_LOSS_PERC(5));
	}
	err = resample(speech48, n48, 48000, &sp, &nsp, e.rate);
	if (err)
		goto out;
	err = bank_encode(&b->speech, &e, sp, nsp, NULL);
	if (err)
		goto out;
	if (e.opus)
		opus_encoder_ctl(e.opus, OPUS_RESET_STATE);
	nsil = e.rate * 2;
	sil = malloc(sizeof(int16_t) * nsil);
	if (!sil) {
		err = ENOMEM;
		goto out;
	}
	for (i = 0; i < nsil; i++) {
		seed = seed * 1103515245u + 12345u;
		sil[i] = (int16_t)((int)((seed >> 16) & 0x1f) - 16);
	}
	err = bank_encode(&b->silence, &e, sil, nsil, NULL);
	if (err)
		goto out;
	if (e.opus)
		opus_encoder_ctl(e.opus, OPUS_RESET_STATE);
	npr = e.rate;
	pr = malloc(sizeof(int16_t) * npr);
	if (!pr) {
		err = ENOMEM;
		goto out;
	}
	for (i = 0; i < npr; i++) {
		unsigned f = i / e.frame;
		int loud = (f % 25) < 3;
		double a = loud ? 0.5 * 32768 * 0.7 : 0.01 * 32768 * 0.7;

		pr[i] = (int16_t)(a * sin(2 * M_PI * 1000.0 * i / e.rate));
	}
	memset(marks, 0, sizeof(marks));
	marks[0] = marks[25] = 1;
	err = bank_encode(&b->probe, &e, pr, npr, marks);
 out:
	if (e.opus)
		opus_encoder_destroy(e.opus);
	free(sp);
	free(sil);
	free(pr);
	return err;
}

static void bank_free(struct lg_bank *bk)
{
	free(bk->data);
	free(bk->frames);
	memset(bk, 0, sizeof(*bk));
}

void lg_banks_free(struct lg_banks *b)
{
	bank_free(&b->speech);
	bank_free(&b->silence);
	bank_free(&b->probe);
}

/**
 * Build an RTP packet (RFC 3550) in buf, with the RFC 6464 one-byte
 * header extension when ext_id is 1..14.  Returns its length; buf must
 * hold 20 + plen bytes plus the SRTP tailroom the caller needs.
 */
size_t lg_rtp_build(uint8_t *buf, uint8_t pt, uint16_t seq, uint32_t ts,
		    uint32_t ssrc, int ext_id, uint8_t level, int vad,
		    const uint8_t *payload, size_t plen)
{
	size_t h = 12;

	buf[0] = 0x80 | (ext_id > 0 ? 0x10 : 0);
	buf[1] = pt & 0x7f;
	buf[2] = (uint8_t)(seq >> 8);
	buf[3] = (uint8_t)seq;
	buf[4] = (uint8_t)(ts >> 24);
	buf[5] = (uint8_t)(ts >> 16);
	buf[6] = (uint8_t)(ts >> 8);
	buf[7] = (uint8_t)ts;
	buf[8] = (uint8_t)(ssrc >> 24);
	buf[9] = (uint8_t)(ssrc >> 16);
	buf[10] = (uint8_t)(ssrc >> 8);
	buf[11] = (uint8_t)ssrc;
	if (ext_id > 0) {
		buf[12] = 0xbe;
		buf[13] = 0xde;
		buf[14] = 0;
		buf[15] = 1;
		buf[16] = (uint8_t)(ext_id << 4); /* L-1 = 0: one byte */
		buf[17] = (uint8_t)((vad ? 0x80 : 0) | (level & 0x7f));
		buf[18] = 0;
		buf[19] = 0;
		h = 20;
	}
	memcpy(buf + h, payload, plen);
	return h + plen;
}

/** Parse an RTP header; payload_off skips CSRCs and extensions */
int lg_rtp_parse(const uint8_t *buf, size_t len, uint8_t *pt, uint16_t *seq,
		 uint32_t *ssrc, size_t *payload_off)
{
	size_t off;

	if (len < 12 || (buf[0] >> 6) != 2)
		return EBADMSG;
	*pt = buf[1] & 0x7f;
	*seq = (uint16_t)(buf[2] << 8 | buf[3]);
	*ssrc = (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 |
		(uint32_t)buf[10] << 8 | buf[11];
	off = 12 + 4 * (size_t)(buf[0] & 0x0f);
	if (buf[0] & 0x10) {
		size_t xl;

		if (off + 4 > len)
			return EBADMSG;
		xl = 4 * (size_t)(buf[off + 2] << 8 | buf[off + 3]);
		off += 4 + xl;
	}
	if (off > len)
		return EBADMSG;
	if ((buf[0] & 0x20) && len > off) {
		uint8_t padn = buf[len - 1];

		if (padn > len - off)
			return EBADMSG;
		len -= padn;
	}
	*payload_off = off;
	(void)len;
	return 0;
}
