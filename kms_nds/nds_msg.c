/**
 * @file nds_msg.c  NDS/IP link wire format: parse, validate, encode
 *
 * The parser never copies: fields point into the caller's body buffer.
 * It accepts exactly what docs/nds.md describes and nothing else.
 */

#include <errno.h>
#include <string.h>

#include "kms_nds/nds_int.h"

/* Bounds of one field value, by tag */
struct tag_rule {
	uint16_t min, max;
	enum { V_BYTES, V_ID, V_TOKEN, V_TEXT } kind;
};

static const struct tag_rule tag_rules[NDS_TAG_COUNT] = {
	[NDS_TAG_CONF_REF]    = { 1, KMS_NDS_ID_MAX, V_ID },
	[NDS_TAG_PARTICIPANT] = { 1, KMS_NDS_ID_MAX, V_ID },
	[NDS_TAG_CALL_ID]     = { 1, KMS_NDS_ID_MAX, V_ID },
	[NDS_TAG_ID_A]        = { 1, KMS_NDS_ID_MAX, V_ID },
	[NDS_TAG_ID_B]        = { 1, KMS_NDS_ID_MAX, V_ID },
	[NDS_TAG_SEALED]      = { 1, KMS_NDS_BLOB_MAX, V_TOKEN },
	[NDS_TAG_KEY]         = { 1, KMS_NDS_KEY_MAX, V_BYTES },
	[NDS_TAG_GENERATION]  = { 4, 4, V_BYTES },
	[NDS_TAG_EXPIRES]     = { 8, 8, V_BYTES },
	[NDS_TAG_FOR_A]       = { 1, KMS_NDS_BLOB_MAX, V_TOKEN },
	[NDS_TAG_STORE]       = { 1, KMS_NDS_BLOB_MAX, V_TOKEN },
	[NDS_TAG_KE2M]        = { 1, KMS_NDS_KEY_MAX, V_BYTES },
	[NDS_TAG_ERR_CODE]    = { 2, 2, V_BYTES },
	[NDS_TAG_ERR_TEXT]    = { 0, NDS_ERRTEXT_MAX, V_TEXT },
	[NDS_TAG_WANT_KE2M]   = { 1, 1, V_BYTES },
	[NDS_TAG_NODE]        = { 1, KMS_NDS_ID_MAX, V_ID },
	[NDS_TAG_ROLE]        = { 1, 32, V_ID },
};

#define B(t) (1u << (t))

/* Required and allowed fields, by message type */
struct type_rule {
	uint8_t type;
	uint32_t req, opt;
};

static const struct type_rule type_rules[] = {
	{ NDS_T_LEGKEY_REQ, B(NDS_TAG_CONF_REF) | B(NDS_TAG_PARTICIPANT), 0 },
	{ NDS_T_TRANSCODER_REQ, B(NDS_TAG_CALL_ID), 0 },
	{ NDS_T_MAILBOX_REQ,
	  B(NDS_TAG_ID_A) | B(NDS_TAG_ID_B) | B(NDS_TAG_SEALED),
	  B(NDS_TAG_WANT_KE2M) },
	{ NDS_T_PING_REQ, 0, 0 },
	{ NDS_T_KEY_RESP, B(NDS_TAG_KEY) | B(NDS_TAG_GENERATION),
	  B(NDS_TAG_EXPIRES) },
	{ NDS_T_MAILBOX_RESP, B(NDS_TAG_FOR_A) | B(NDS_TAG_STORE),
	  B(NDS_TAG_KE2M) | B(NDS_TAG_EXPIRES) },
	{ NDS_T_PONG_RESP, 0, 0 },
	{ NDS_T_HELLO, B(NDS_TAG_NODE) | B(NDS_TAG_ROLE), 0 },
	{ NDS_T_ERROR_RESP, B(NDS_TAG_ERR_CODE), B(NDS_TAG_ERR_TEXT) },
};

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static int token_valid(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] < 0x21 || p[i] > 0x7e)
			return 0;
	return 1;
}

/** Identity characters: printable ASCII without space (no log injection) */
int nds_id_valid(const uint8_t *p, size_t len)
{
	if (!len || len > KMS_NDS_ID_MAX)
		return 0;
	return token_valid(p, len);
}

static int text_valid(const uint8_t *p, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (p[i] < 0x20 || p[i] > 0x7e)
			return 0;
	return 1;
}

/**
 * Read a frame's length prefix.  Returns 0 with *body_lenp set, EAGAIN
 * when fewer than 4 bytes are available, EMSGSIZE when the announced body
 * is larger than NDS_BODY_MAX and EBADMSG when smaller than a header.
 */
int nds_frame_len(const uint8_t *hdr, size_t avail, size_t *body_lenp)
{
	uint32_t n;

	if (!hdr || !body_lenp)
		return EINVAL;
	if (avail < NDS_LEN_SIZE)
		return EAGAIN;
	n = get32(hdr);
	if (n > NDS_BODY_MAX)
		return EMSGSIZE;
	if (n < NDS_BODY_MIN)
		return EBADMSG;
	*body_lenp = n;
	return 0;
}

/**
 * Parse a body (without its length prefix) into m.  Structure only:
 * returns EBADMSG on a truncated field, a repeated or unknown tag or a
 * value out of its tag's bounds, ENOTSUP on another version.  Call
 * nds_msg_validate() for the per-type rules.
 */
int nds_msg_parse(struct nds_msg *m, const uint8_t *body, size_t len)
{
	size_t off;

	if (!m || !body)
		return EINVAL;
	memset(m, 0, sizeof(*m));
	if (len < NDS_HDR_SIZE || len > NDS_BODY_MAX)
		return EBADMSG;
	m->version = body[0];
	m->type = body[1];
	m->req_id = get32(body + 4);
	if (m->version != NDS_VERSION)
		return ENOTSUP;
	if (get16(body + 2) != 0)
		return EBADMSG;

	for (off = NDS_HDR_SIZE; off < len;) {
		const struct tag_rule *r;
		uint8_t tag;
		uint16_t flen;

		if (len - off < NDS_FIELD_HDR)
			return EBADMSG;
		tag = body[off];
		flen = get16(body + off + 1);
		off += NDS_FIELD_HDR;
		if (flen > len - off)
			return EBADMSG;
		if (tag == 0 || tag >= NDS_TAG_COUNT)
			return EBADMSG;
		if (m->present & B(tag))
			return EBADMSG;
		r = &tag_rules[tag];
		if (flen < r->min || flen > r->max)
			return EBADMSG;
		if (r->kind == V_ID && !nds_id_valid(body + off, flen))
			return EBADMSG;
		if (r->kind == V_TOKEN && !token_valid(body + off, flen))
			return EBADMSG;
		if (r->kind == V_TEXT && !text_valid(body + off, flen))
			return EBADMSG;
		if (tag == NDS_TAG_WANT_KE2M && body[off] > 1)
			return EBADMSG;
		m->present |= B(tag);
		m->f[tag].p = body + off;
		m->f[tag].len = flen;
		off += flen;
	}
	return 0;
}

/**
 * Check m's fields against its type: every required field present, no
 * field the type does not allow.  Returns 0, or EBADMSG / ENOTSUP with
 * the wire error code in *codep.
 */
int nds_msg_validate(const struct nds_msg *m, enum nds_err *codep)
{
	size_t i;
	enum nds_err dummy;

	if (!codep)
		codep = &dummy;
	*codep = NDS_E_MALFORMED;
	if (!m)
		return EINVAL;
	for (i = 0; i < sizeof(type_rules) / sizeof(type_rules[0]); i++) {
		const struct type_rule *t = &type_rules[i];

		if (t->type != m->type)
			continue;
		if ((m->present & t->req) != t->req)
			return EBADMSG;
		if (m->present & ~(t->req | t->opt))
			return EBADMSG;
		return 0;
	}
	*codep = NDS_E_UNSUPPORTED;
	return ENOTSUP;
}

/** Copy a present id/text field to a NUL-terminated string */
int nds_msg_str(const struct nds_msg *m, enum nds_tag tag, char *out,
		size_t outsz)
{
	if (!m || !out || (unsigned)tag >= NDS_TAG_COUNT)
		return EINVAL;
	if (!(m->present & B(tag)))
		return ENOENT;
	if (m->f[tag].len >= outsz)
		return EMSGSIZE;
	memcpy(out, m->f[tag].p, m->f[tag].len);
	out[m->f[tag].len] = '\0';
	return 0;
}

int nds_msg_u32(const struct nds_msg *m, enum nds_tag tag, uint32_t *v)
{
	if (!m || !v || (unsigned)tag >= NDS_TAG_COUNT)
		return EINVAL;
	if (!(m->present & B(tag)))
		return ENOENT;
	if (m->f[tag].len != 4)
		return EBADMSG;
	*v = get32(m->f[tag].p);
	return 0;
}

int nds_msg_u64(const struct nds_msg *m, enum nds_tag tag, uint64_t *v)
{
	if (!m || !v || (unsigned)tag >= NDS_TAG_COUNT)
		return EINVAL;
	if (!(m->present & B(tag)))
		return ENOENT;
	if (m->f[tag].len != 8)
		return EBADMSG;
	*v = ((uint64_t)get32(m->f[tag].p) << 32) |
	     get32(m->f[tag].p + 4);
	return 0;
}

/** Start a frame in buf (length prefix filled by nds_enc_end) */
void nds_enc_begin(struct nds_enc *e, uint8_t *buf, size_t cap,
		   enum nds_type type, uint32_t req_id)
{
	e->buf = buf;
	e->cap = cap < NDS_FRAME_MAX ? cap : NDS_FRAME_MAX;
	e->len = 0;
	e->err = 0;
	if (!buf || e->cap < NDS_LEN_SIZE + NDS_HDR_SIZE) {
		e->err = ENOBUFS;
		return;
	}
	memset(buf, 0, NDS_LEN_SIZE);
	buf[4] = NDS_VERSION;
	buf[5] = (uint8_t)type;
	put16(buf + 6, 0);
	put32(buf + 8, req_id);
	e->len = NDS_LEN_SIZE + NDS_HDR_SIZE;
}

void nds_enc_put(struct nds_enc *e, enum nds_tag tag, const void *p,
		 size_t len)
{
	if (e->err)
		return;
	if (len > 0xffff || (len && !p)) {
		e->err = EINVAL;
		return;
	}
	if (e->cap - e->len < NDS_FIELD_HDR + len) {
		e->err = ENOBUFS;
		return;
	}
	e->buf[e->len] = (uint8_t)tag;
	put16(e->buf + e->len + 1, (uint16_t)len);
	if (len)
		memcpy(e->buf + e->len + NDS_FIELD_HDR, p, len);
	e->len += NDS_FIELD_HDR + len;
}

void nds_enc_str(struct nds_enc *e, enum nds_tag tag, const char *s)
{
	if (!s) {
		if (!e->err)
			e->err = EINVAL;
		return;
	}
	nds_enc_put(e, tag, s, strlen(s));
}

void nds_enc_u16(struct nds_enc *e, enum nds_tag tag, uint16_t v)
{
	uint8_t b[2];

	put16(b, v);
	nds_enc_put(e, tag, b, sizeof(b));
}

void nds_enc_u32(struct nds_enc *e, enum nds_tag tag, uint32_t v)
{
	uint8_t b[4];

	put32(b, v);
	nds_enc_put(e, tag, b, sizeof(b));
}

void nds_enc_u64(struct nds_enc *e, enum nds_tag tag, uint64_t v)
{
	uint8_t b[8];

	put32(b, (uint32_t)(v >> 32));
	put32(b + 4, (uint32_t)v);
	nds_enc_put(e, tag, b, sizeof(b));
}

/** Finish the frame: fill the length prefix; *lenp = whole frame size */
int nds_enc_end(struct nds_enc *e, size_t *lenp)
{
	if (e->err)
		return e->err;
	put32(e->buf, (uint32_t)(e->len - NDS_LEN_SIZE));
	if (lenp)
		*lenp = e->len;
	return 0;
}

/** Encode an error response frame */
int nds_enc_error(uint8_t *buf, size_t cap, uint32_t req_id,
		  enum nds_err code, const char *text, size_t *lenp)
{
	struct nds_enc e;
	size_t n = text ? strnlen(text, NDS_ERRTEXT_MAX) : 0;

	nds_enc_begin(&e, buf, cap, NDS_T_ERROR_RESP, req_id);
	nds_enc_u16(&e, NDS_TAG_ERR_CODE, (uint16_t)code);
	if (n)
		nds_enc_put(&e, NDS_TAG_ERR_TEXT, text, n);
	return nds_enc_end(&e, lenp);
}

const char *nds_err_name(enum nds_err code)
{
	static const char *const names[NDS_E_COUNT] = {
		[NDS_E_MALFORMED]   = "malformed",
		[NDS_E_TOO_LARGE]   = "too-large",
		[NDS_E_UNSUPPORTED] = "unsupported",
		[NDS_E_FORBIDDEN]   = "forbidden",
		[NDS_E_NOT_FOUND]   = "not-found",
		[NDS_E_EXPIRED]     = "expired",
		[NDS_E_INTERNAL]    = "internal",
		[NDS_E_BUSY]        = "busy",
		[NDS_E_TIMEOUT]     = "timeout",
	};

	if ((unsigned)code >= NDS_E_COUNT || !names[code])
		return "unknown";
	return names[code];
}

/** The errno a client returns for a wire error code (kms.h contract) */
int nds_err_errno(enum nds_err code)
{
	switch (code) {
	case NDS_E_FORBIDDEN:
		return EACCES;
	case NDS_E_NOT_FOUND:
	case NDS_E_EXPIRED:
		return ENOENT;
	case NDS_E_MALFORMED:
	case NDS_E_TOO_LARGE:
	case NDS_E_UNSUPPORTED:
		return EBADMSG;
	case NDS_E_BUSY:
		return ECONNREFUSED;
	case NDS_E_TIMEOUT:
		return ETIMEDOUT;
	default:
		return EPROTO;
	}
}
