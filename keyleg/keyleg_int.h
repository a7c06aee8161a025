/** @file keyleg_int.h  keyleg internals shared by its .c files */

#ifndef KEYLEG_INT_H
#define KEYLEG_INT_H

#include <stdint.h>

/*
 * The glue file is the only one that includes libsrtp2's private headers
 * (build/third/srtp/include/srtp2-private); everything here uses opaque
 * pointers so that keyleg.c can keep to the public <srtp2/srtp.h>.
 */

/** Name of the crypto backend libsrtp2 was built on ("openssl", "nss",
 *  "builtin" or "unknown"), read from its crypto kernel */
const char *keyleg_glue_backend(void);

/**
 * Carry every stream of session @from into session @to: for each SSRC that
 * @from knows, add a stream with that SSRC to @to (policy @pol, whose ssrc
 * field is overwritten) and give it @from's packet index (ROC and highest
 * sequence number), with an empty replay window.  With @carry_rtcp the
 * SRTCP index is carried as well (transmit side).
 */
int keyleg_glue_carry(void *from, void *to, void *pol, int carry_rtcp);

#endif
