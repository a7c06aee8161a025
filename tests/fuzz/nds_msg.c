/**
 * @file nds_msg.c  libFuzzer target: NDS/IP link frames and messages
 *
 * The input is read as kmsd reads a connection: length-prefixed frames,
 * one after another, each parsed and validated as the listener and the
 * client do.  Every accepted message is re-encoded field by field and
 * parsed again, which must give the same fields; the first input byte
 * also picks a direct body parse of the whole input.
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kms_nds/nds_int.h"

static void check_fields(const struct nds_msg *m, const uint8_t *body,
			 size_t len)
{
	static uint8_t out[NDS_FRAME_MAX];
	struct nds_msg m2;
	struct nds_enc e;
	char s[KMS_NDS_BLOB_MAX + 1];
	uint32_t v32;
	uint64_t v64;
	size_t n;
	int t;

	nds_enc_begin(&e, out, sizeof(out), (enum nds_type)m->type,
		      m->req_id);
	for (t = 1; t < NDS_TAG_COUNT; t++) {
		if (!(m->present & (1u << t)))
			continue;
		/* every field lies inside the body */
		if (m->f[t].p < body || m->f[t].p + m->f[t].len > body + len)
			abort();
		(void)nds_msg_str(m, (enum nds_tag)t, s, sizeof(s));
		(void)nds_msg_u32(m, (enum nds_tag)t, &v32);
		(void)nds_msg_u64(m, (enum nds_tag)t, &v64);
		nds_enc_put(&e, (enum nds_tag)t, m->f[t].p, m->f[t].len);
	}
	if (nds_enc_end(&e, &n))
		abort();
	if (nds_msg_parse(&m2, out + NDS_LEN_SIZE, n - NDS_LEN_SIZE))
		abort();
	if (m2.present != m->present || m2.type != m->type ||
	    m2.req_id != m->req_id)
		abort();
	for (t = 1; t < NDS_TAG_COUNT; t++)
		if ((m->present & (1u << t)) &&
		    (m2.f[t].len != m->f[t].len ||
		     memcmp(m2.f[t].p, m->f[t].p, m->f[t].len)))
			abort();
}

static void one_body(const uint8_t *body, size_t len)
{
	struct nds_msg m;
	enum nds_err code;

	if (nds_msg_parse(&m, body, len))
		return;
	check_fields(&m, body, len);
	(void)nds_msg_validate(&m, &code);
	(void)nds_err_name(code);
	(void)nds_err_errno(code);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0, blen;

	if (size && (data[0] & 0x80))
		one_body(data + 1, size - 1);
	while (off < size) {
		if (nds_frame_len(data + off, size - off, &blen))
			break;
		if (size - off - NDS_LEN_SIZE < blen)
			break;
		one_body(data + off + NDS_LEN_SIZE, blen);
		off += NDS_LEN_SIZE + blen;
	}
	return 0;
}
