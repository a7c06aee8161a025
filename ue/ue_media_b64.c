/** @file ue_media_b64.c  uemedia: base64 decoding of key arguments */

#include <errno.h>
#include <string.h>

#include "ue/ue_media_int.h"

static int b64_val(char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/**
 * Decode standard base64 (padding optional, no whitespace).
 *
 * @param out   destination
 * @param cap   its size
 * @param lenp  decoded length
 * @return 0, EINVAL (not base64) or ENOSPC
 */
int ue_b64_decode(const char *s, uint8_t *out, size_t cap, size_t *lenp)
{
	size_t n = strlen(s), i, o = 0;
	uint32_t acc = 0;
	unsigned bits = 0;

	while (n && s[n - 1] == '=')
		n--;
	if (strlen(s) - n > 2 || n % 4 == 1)
		return EINVAL;
	for (i = 0; i < n; i++) {
		int v = b64_val(s[i]);

		if (v < 0)
			return EINVAL;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o >= cap)
				return ENOSPC;
			out[o++] = (uint8_t)(acc >> bits);
		}
	}
	/* leftover bits must be zero (canonical encoding) */
	if (bits && (acc & ((1u << bits) - 1)))
		return EINVAL;
	*lenp = o;
	return 0;
}
