/** @file ue_media_wav.c  uemedia: 16-bit PCM WAV files and resampling */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <speex/speex_resampler.h>

#include "ue/ue_media_int.h"

#define WAV_MAX_BYTES (512u * 1024 * 1024)

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		(uint32_t)p[3] << 24;
}

static void wle16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void wle32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static int read_all(const char *path, uint8_t **bufp, size_t *lenp)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long sz;
	int err = 0;

	if (!f)
		return errno;
	if (fseek(f, 0, SEEK_END) || (sz = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET)) {
		err = EIO;
		goto out;
	}
	if ((unsigned long)sz > WAV_MAX_BYTES) {
		err = EFBIG;
		goto out;
	}
	buf = malloc((size_t)sz + 1);
	if (!buf) {
		err = ENOMEM;
		goto out;
	}
	if (fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
		err = EIO;
		goto out;
	}
	*bufp = buf;
	*lenp = (size_t)sz;
	buf = NULL;
 out:
	free(buf);
	fclose(f);
	return err;
}

/* Find the fmt and data chunks; check the format is 16-bit PCM. */
static int parse_wav(const uint8_t *b, size_t len, unsigned *chp,
		     uint32_t *ratep, const uint8_t **datap, size_t *dlenp)
{
	size_t off = 12;
	bool have_fmt = false;

	if (len < 12 || memcmp(b, "RIFF", 4) || memcmp(b + 8, "WAVE", 4))
		return EBADMSG;
	while (off + 8 <= len) {
		uint32_t cl = le32(b + off + 4);
		const uint8_t *c = b + off + 8;
		size_t avail = len - off - 8;

		if (!memcmp(b + off, "fmt ", 4)) {
			uint16_t fmt, bits;

			if (cl < 16 || cl > avail)
				return EBADMSG;
			fmt = le16(c);
			bits = le16(c + 14);
			if (fmt == 0xfffe && cl >= 40)
				fmt = le16(c + 24); /* subformat GUID */
			if (fmt != 1 || bits != 16)
				return ENOTSUP;
			*chp = le16(c + 2);
			*ratep = le32(c + 4);
			if (*chp == 0 || *ratep == 0)
				return EBADMSG;
			have_fmt = true;
		}
		else if (!memcmp(b + off, "data", 4)) {
			if (!have_fmt)
				return EBADMSG;
			/* streaming writers leave a 0 or oversized length */
			*datap = c;
			*dlenp = (cl == 0 || cl > avail) ? avail : cl;
			return 0;
		}
		if (cl > avail)
			return EBADMSG;
		off += 8 + cl + (cl & 1);
	}
	return EBADMSG;
}

/**
 * Read a 16-bit PCM WAV file as mono (channels averaged).
 *
 * @param pcmp   malloc'ed samples (caller frees)
 * @return 0, an errno from the file system, EBADMSG or ENOTSUP
 */
int ue_wav_read(const char *path, int16_t **pcmp, size_t *np,
		uint32_t *ratep)
{
	uint8_t *buf = NULL;
	const uint8_t *data = NULL;
	size_t len = 0, dlen = 0, frames, i;
	unsigned ch = 0, c;
	int16_t *pcm;
	int err;

	err = read_all(path, &buf, &len);
	if (err)
		return err;
	err = parse_wav(buf, len, &ch, ratep, &data, &dlen);
	if (err)
		goto out;
	frames = dlen / (2u * ch);
	pcm = malloc((frames ? frames : 1) * sizeof(*pcm));
	if (!pcm) {
		err = ENOMEM;
		goto out;
	}
	for (i = 0; i < frames; i++) {
		int32_t sum = 0;

		for (c = 0; c < ch; c++)
			sum += (int16_t)le16(data + 2 * (i * ch + c));
		pcm[i] = (int16_t)(sum / (int32_t)ch);
	}
	*pcmp = pcm;
	*np = frames;
 out:
	free(buf);
	return err;
}

/**
 * Write mono 16-bit PCM as a WAV file.
 *
 * @return 0 or an errno value
 */
int ue_wav_write(const char *path, const int16_t *pcm, size_t n,
		 uint32_t rate)
{
	uint8_t h[44], s[2];
	FILE *f;
	size_t i;
	int err = 0;

	if (n > (WAV_MAX_BYTES - 44) / 2)
		return EFBIG;
	memcpy(h, "RIFF", 4);
	wle32(h + 4, (uint32_t)(36 + 2 * n));
	memcpy(h + 8, "WAVEfmt ", 8);
	wle32(h + 16, 16);
	wle16(h + 20, 1);
	wle16(h + 22, 1);
	wle32(h + 24, rate);
	wle32(h + 28, rate * 2);
	wle16(h + 32, 2);
	wle16(h + 34, 16);
	memcpy(h + 36, "data", 4);
	wle32(h + 40, (uint32_t)(2 * n));
	f = fopen(path, "wb");
	if (!f)
		return errno;
	if (fwrite(h, 1, sizeof(h), f) != sizeof(h))
		err = EIO;
	for (i = 0; !err && i < n; i++) {
		wle16(s, (uint16_t)pcm[i]);
		if (fwrite(s, 1, 2, f) != 2)
			err = EIO;
	}
	if (fclose(f) && !err)
		err = EIO;
	return err;
}

/**
 * Resample mono PCM with speexdsp (quality 5).  Equal rates copy.
 *
 * @return 0, EINVAL, ENOMEM or EPROTO
 */
int ue_resample(const int16_t *in, size_t n, uint32_t from, uint32_t to,
		int16_t **outp, size_t *noutp)
{
	SpeexResamplerState *rs;
	size_t cap = (size_t)((uint64_t)n * to / from) + 64;
	spx_uint32_t il, ol;
	int16_t *out;
	int e;

	if (!from || !to || n > UINT32_MAX / 2)
		return EINVAL;
	out = malloc(cap * sizeof(*out));
	if (!out)
		return ENOMEM;
	if (from == to) {
		memcpy(out, in, n * sizeof(*in));
		*outp = out;
		*noutp = n;
		return 0;
	}
	rs = speex_resampler_init(1, from, to, 5, &e);
	if (!rs) {
		free(out);
		return EPROTO;
	}
	speex_resampler_skip_zeros(rs);
	il = (spx_uint32_t)n;
	ol = (spx_uint32_t)cap;
	e = speex_resampler_process_int(rs, 0, in, &il, out, &ol);
	speex_resampler_destroy(rs);
	if (e != RESAMPLER_ERR_SUCCESS) {
		free(out);
		return EPROTO;
	}
	*outp = out;
	*noutp = ol;
	return 0;
}
