/** @file ue_media_codec.c  uemedia: Opus (libopus), G.711, G.722 (SpanDSP) */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <opus/opus.h>
#include <spandsp.h>

#include "ue/ue_media_int.h"

struct ue_enc {
	enum ue_codec codec;
	OpusEncoder *opus;
	g711_state_t *g711;
	g722_encode_state_t *g722;
};

struct ue_dec {
	enum ue_codec codec;
	OpusDecoder *opus;
	g711_state_t *g711;
	g722_decode_state_t *g722;
};

static const struct {
	const char *name;
	uint32_t rate, clock;
	uint8_t pt;
} codecs[] = {
	[UE_CODEC_OPUS] = { "opus", 48000, 48000, 111 },
	[UE_CODEC_PCMU] = { "pcmu", 8000, 8000, 0 },
	[UE_CODEC_PCMA] = { "pcma", 8000, 8000, 8 },
	/* RFC 3551 4.5.2: G.722's RTP clock is 8000 though it samples 16k */
	[UE_CODEC_G722] = { "g722", 16000, 8000, 9 },
};

#define N_CODECS (sizeof(codecs) / sizeof(codecs[0]))

/** Codec by name: opus, pcmu, pcma, g722 (case-insensitive) */
int ue_codec_parse(const char *name, enum ue_codec *codecp)
{
	size_t i;

	for (i = 0; i < N_CODECS; i++) {
		if (!strcasecmp(name, codecs[i].name)) {
			*codecp = (enum ue_codec)i;
			return 0;
		}
	}
	return EINVAL;
}

const char *ue_codec_name(enum ue_codec codec)
{
	return (size_t)codec < N_CODECS ? codecs[codec].name : "?";
}

uint32_t ue_codec_default_rate(enum ue_codec codec)
{
	return (size_t)codec < N_CODECS ? codecs[codec].rate : 0;
}

uint8_t ue_codec_default_pt(enum ue_codec codec)
{
	return (size_t)codec < N_CODECS ? codecs[codec].pt : 0;
}

uint32_t ue_codec_rtp_clock(enum ue_codec codec)
{
	return (size_t)codec < N_CODECS ? codecs[codec].clock : 0;
}

/** Opus: 8, 12, 16, 24 or 48 kHz; G.711 8 kHz; G.722 16 kHz */
int ue_codec_check_rate(enum ue_codec codec, uint32_t rate)
{
	switch (codec) {
	case UE_CODEC_OPUS:
		return (rate == 8000 || rate == 12000 || rate == 16000 ||
			rate == 24000 || rate == 48000) ? 0 : EINVAL;
	case UE_CODEC_PCMU:
	case UE_CODEC_PCMA:
		return rate == 8000 ? 0 : EINVAL;
	case UE_CODEC_G722:
		return rate == 16000 ? 0 : EINVAL;
	}
	return EINVAL;
}

/**
 * Allocate an encoder for one codec at one audio rate.
 *
 * @return 0, EINVAL, ENOMEM or EPROTO (libopus refused a setting)
 */
int ue_enc_alloc(struct ue_enc **encp, enum ue_codec codec, uint32_t rate,
		 const struct ue_codec_opts *opts)
{
	struct ue_enc *enc;
	int err = 0, oerr;

	if (!encp || ue_codec_check_rate(codec, rate))
		return EINVAL;
	enc = calloc(1, sizeof(*enc));
	if (!enc)
		return ENOMEM;
	enc->codec = codec;
	switch (codec) {
	case UE_CODEC_OPUS:
		enc->opus = opus_encoder_create((opus_int32)rate, 1,
						OPUS_APPLICATION_VOIP, &oerr);
		if (!enc->opus) {
			err = oerr == OPUS_ALLOC_FAIL ? ENOMEM : EPROTO;
			break;
		}
		if (opus_encoder_ctl(enc->opus, OPUS_SET_BITRATE(
			     opts && opts->bitrate ? opts->bitrate : 32000)))
			err = EPROTO;
		if (!err && opts && opts->complexity >= 0 &&
		    opus_encoder_ctl(enc->opus,
				     OPUS_SET_COMPLEXITY(opts->complexity)))
			err = EPROTO;
		break;
	case UE_CODEC_PCMU:
	case UE_CODEC_PCMA:
		enc->g711 = g711_init(NULL, codec == UE_CODEC_PCMA ?
				      G711_ALAW : G711_ULAW);
		if (!enc->g711)
			err = ENOMEM;
		break;
	case UE_CODEC_G722:
		enc->g722 = g722_encode_init(NULL, 64000, 0);
		if (!enc->g722)
			err = ENOMEM;
		break;
	}
	if (err)
		ue_enc_free(enc);
	else
		*encp = enc;
	return err;
}

struct ue_enc *ue_enc_free(struct ue_enc *enc)
{
	if (!enc)
		return NULL;
	if (enc->opus)
		opus_encoder_destroy(enc->opus);
	if (enc->g711)
		g711_free(enc->g711);
	if (enc->g722)
		g722_encode_free(enc->g722);
	free(enc);
	return NULL;
}

/**
 * Encode one frame.
 *
 * @param n    samples in the frame (rate * ptime)
 * @return 0, EINVAL, ENOSPC or EPROTO
 */
int ue_enc_encode(struct ue_enc *enc, const int16_t *pcm, size_t n,
		  uint8_t *out, size_t cap, size_t *lenp)
{
	int r;

	if (!enc || !pcm || !out || n == 0 || n > 5760)
		return EINVAL;
	switch (enc->codec) {
	case UE_CODEC_OPUS:
		r = opus_encode(enc->opus, pcm, (int)n, out,
				(opus_int32)(cap > 1275 ? 1275 : cap));
		if (r < 0)
			return r == OPUS_BUFFER_TOO_SMALL ? ENOSPC : EPROTO;
		*lenp = (size_t)r;
		return 0;
	case UE_CODEC_PCMU:
	case UE_CODEC_PCMA:
		if (cap < n)
			return ENOSPC;
		*lenp = (size_t)g711_encode(enc->g711, out, pcm, (int)n);
		return 0;
	case UE_CODEC_G722:
		if (cap < n / 2)
			return ENOSPC;
		*lenp = (size_t)g722_encode(enc->g722, out, pcm, (int)n);
		return 0;
	}
	return EINVAL;
}

/** Allocate a decoder producing audio at rate */
int ue_dec_alloc(struct ue_dec **decp, enum ue_codec codec, uint32_t rate)
{
	struct ue_dec *dec;
	int err = 0, oerr;

	if (!decp || ue_codec_check_rate(codec, rate))
		return EINVAL;
	dec = calloc(1, sizeof(*dec));
	if (!dec)
		return ENOMEM;
	dec->codec = codec;
	switch (codec) {
	case UE_CODEC_OPUS:
		dec->opus = opus_decoder_create((opus_int32)rate, 1, &oerr);
		if (!dec->opus)
			err = oerr == OPUS_ALLOC_FAIL ? ENOMEM : EPROTO;
		break;
	case UE_CODEC_PCMU:
	case UE_CODEC_PCMA:
		dec->g711 = g711_init(NULL, codec == UE_CODEC_PCMA ?
				      G711_ALAW : G711_ULAW);
		if (!dec->g711)
			err = ENOMEM;
		break;
	case UE_CODEC_G722:
		dec->g722 = g722_decode_init(NULL, 64000, 0);
		if (!dec->g722)
			err = ENOMEM;
		break;
	}
	if (err)
		ue_dec_free(dec);
	else
		*decp = dec;
	return err;
}

struct ue_dec *ue_dec_free(struct ue_dec *dec)
{
	if (!dec)
		return NULL;
	if (dec->opus)
		opus_decoder_destroy(dec->opus);
	if (dec->g711)
		g711_free(dec->g711);
	if (dec->g722)
		g722_decode_free(dec->g722);
	free(dec);
	return NULL;
}

/**
 * Decode one payload.
 *
 * @return 0, EINVAL, ENOSPC or EBADMSG (the decoder rejected it)
 */
int ue_dec_decode(struct ue_dec *dec, const uint8_t *in, size_t len,
		  int16_t *pcm, size_t cap, size_t *np)
{
	int r;

	if (!dec || !in || !pcm || len == 0)
		return EINVAL;
	switch (dec->codec) {
	case UE_CODEC_OPUS:
		r = opus_decode(dec->opus, in, (opus_int32)len, pcm,
				(int)cap, 0);
		if (r < 0)
			return r == OPUS_BUFFER_TOO_SMALL ? ENOSPC : EBADMSG;
		*np = (size_t)r;
		return 0;
	case UE_CODEC_PCMU:
	case UE_CODEC_PCMA:
		if (cap < len)
			return ENOSPC;
		*np = (size_t)g711_decode(dec->g711, pcm, in, (int)len);
		return 0;
	case UE_CODEC_G722:
		if (cap < 2 * len)
			return ENOSPC;
		*np = (size_t)g722_decode(dec->g722, pcm, in, (int)len);
		return 0;
	}
	return EINVAL;
}
