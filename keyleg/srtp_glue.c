/** @file srtp_glue.c  The few keyleg calls that need libsrtp2's internals */

#include <errno.h>
#include <string.h>
#include <arpa/inet.h>

/* libsrtp2's private headers, installed by scripts/deps.sh */
#include "srtp_priv.h"
#include "stream_list_priv.h"
#include "crypto_kernel.h"

#include "keyleg_int.h"

/* Defined (not static) in libsrtp2 2.5's crypto_kernel.c, not declared */
const srtp_cipher_type_t *srtp_crypto_kernel_get_cipher_type(
	srtp_cipher_type_id_t id);

/**
 * Tell which crypto backend the linked libsrtp2 uses.  Its crypto kernel
 * registers one AES-ICM implementation per build, and each describes
 * itself ("AES-128 counter mode using openssl", "... using NSS"); an
 * AES-GCM capability test could not tell the builds apart.
 */
const char *keyleg_glue_backend(void)
{
	const srtp_cipher_type_t *ct;

	ct = srtp_crypto_kernel_get_cipher_type(SRTP_AES_ICM_128);
	if (!ct || !ct->description)
		return "unknown";
	if (strstr(ct->description, "openssl"))
		return "openssl";
	if (strstr(ct->description, "NSS") || strstr(ct->description, "nss"))
		return "nss";
	return "builtin";
}

struct carry {
	srtp_t to;
	srtp_policy_t *pol;
	int carry_rtcp;
	srtp_err_status_t err;
};

static int carry_one(srtp_stream_t old, void *arg)
{
	struct carry *c = arg;
	srtp_stream_t neu;
	srtp_xtd_seq_num_t idx;

	c->pol->ssrc.type = ssrc_specific;
	c->pol->ssrc.value = ntohl(old->ssrc);
	c->err = srtp_add_stream(c->to, c->pol);
	if (c->err)
		return 1;
	neu = srtp_get_stream(c->to, old->ssrc);
	if (!neu) {
		c->err = srtp_err_status_fail;
		return 1;
	}

	/*
	 * The ROC is never sent, so the new context must continue from the
	 * old one's packet index; the replay window starts empty because no
	 * packet has been seen under the new key yet.  srtp_set_stream_roc()
	 * is not enough: its "pending ROC" takes the ROC literally for the
	 * first packet and so misplaces a packet sent just after a wrap.
	 */
	idx = srtp_rdbx_get_packet_index(&old->rtp_rdbx);
	c->err = srtp_rdbx_set_roc_seq(&neu->rtp_rdbx, (uint32_t)(idx >> 16),
				       (uint16_t)(idx & 0xffff));
	if (c->err)
		return 1;
	neu->direction = old->direction;
	if (c->carry_rtcp)
		neu->rtcp_rdb = old->rtcp_rdb;
	return 0;
}

int keyleg_glue_carry(void *from, void *to, void *pol, int carry_rtcp)
{
	srtp_t f = from;
	srtp_policy_t *p = pol;
	struct carry c = {
		.to = to, .pol = p, .carry_rtcp = carry_rtcp,
		.err = srtp_err_status_ok,
	};
	srtp_ssrc_t saved = p->ssrc;

	srtp_stream_list_for_each(f->stream_list, carry_one, &c);
	p->ssrc = saved;
	if (c.err == srtp_err_status_alloc_fail)
		return ENOMEM;
	return c.err ? EPROTO : 0;
}
