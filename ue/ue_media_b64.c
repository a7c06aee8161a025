/** @file ue_media_b64.c  uemedia: base64 decoding of key arguments */

#include "keyleg/keyleg.h"
#include "ue/ue_media_int.h"

/**
 * Decode a key argument: keyleg's strict standard base64 (padding
 * optional, canonical, no whitespace).
 *
 * @return 0, EINVAL (not base64) or ENOSPC (longer than cap)
 */
int ue_b64_decode(const char *s, uint8_t *out, size_t cap, size_t *lenp)
{
	return keyleg_b64_decode(s, out, cap, lenp);
}
