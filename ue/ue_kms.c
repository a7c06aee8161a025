/** @file ue_kms.c  Terminal side of the KMS flows: state, requests, keys */

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "kms_nds/kms_proto.h"
#include "kms_nds/kms_store.h"
#include "ue/ue.h"

struct ue {
	struct ue_cfg cfg;
	char state_file[512];
	char kms[256], ca[512], sni[256];
	char id[UE_ID_MAX];
	uint8_t kue[32];
	uint8_t token[KMS_BLOB_MAX];
	size_t token_len;
	uint64_t expires;
	json_t *pending;          /**< label -> base64url Ra */
	char err[1024];
};

static int seterr(struct ue *u, int err, const char *fmt, const char *a,
		  const char *b)
{
	snprintf(u->err, sizeof(u->err), fmt, a ? a : "", b ? b : "");
	return err;
}

const char *ue_id(const struct ue *u)
{
	return u->id;
}

const char *ue_error(const struct ue *u)
{
	return u->err;
}

uint64_t ue_token_expires(const struct ue *u)
{
	return u->expires;
}

static void copy(char *dst, size_t sz, const char *src)
{
	snprintf(dst, sz, "%s", src ? src : "");
}

/* ---- state file ---- */

static int state_load(struct ue *u)
{
	json_t *j = json_load_file(u->state_file, 0, NULL);
	const char *id, *kue, *tok;
	size_t n;
	int err = 0;

	if (!j)
		return ENOENT;
	id = json_string_value(json_object_get(j, "id"));
	kue = json_string_value(json_object_get(j, "kue"));
	tok = json_string_value(json_object_get(j, "token"));
	if (!id || strlen(id) >= UE_ID_MAX)
		err = EINVAL;
	if (!err)
		copy(u->id, sizeof(u->id), id);
	if (!err && kue && tok) {
		if (kms_b64_decode(kue, u->kue, 32, &n) || n != 32 ||
		    kms_b64_decode(tok, u->token, sizeof(u->token),
				   &u->token_len))
			err = EINVAL;
		u->expires = (uint64_t)json_integer_value(
			json_object_get(j, "expires"));
	}
	if (!err && json_is_object(json_object_get(j, "pending")))
		json_object_update(u->pending, json_object_get(j, "pending"));
	json_decref(j);
	return err;
}

static int state_save(struct ue *u)
{
	char kue[64], tok[2 * KMS_BLOB_MAX], tmp[600];
	json_t *j;
	char *s;
	int fd, err = 0;
	size_t n;

	if (kms_b64_encode(u->kue, 32, kue, sizeof(kue)) ||
	    kms_b64_encode(u->token, u->token_len, tok, sizeof(tok)))
		return EINVAL;
	j = json_pack("{ss ss ss sI sO}", "id", u->id, "kue", kue, "token",
		      tok, "expires", (json_int_t)u->expires, "pending",
		      u->pending);
	kms_wipe(kue, sizeof(kue));
	if (!j)
		return ENOMEM;
	s = json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS);
	json_decref(j);
	if (!s)
		return ENOMEM;
	snprintf(tmp, sizeof(tmp), "%s.tmp", u->state_file);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0) {
		err = errno;
	}
	else {
		n = strlen(s);
		if (write(fd, s, n) != (ssize_t)n || fsync(fd))
			err = EIO;
		close(fd);
		if (!err && rename(tmp, u->state_file))
			err = errno;
	}
	kms_wipe(s, strlen(s));
	free(s);
	return err;
}

int ue_open(struct ue **up, const struct ue_cfg *cfg, const char *id)
{
	struct ue *u;
	int err;

	if (!up || !cfg || !cfg->state_file)
		return EINVAL;
	u = calloc(1, sizeof(*u));
	if (!u)
		return ENOMEM;
	u->cfg = *cfg;
	copy(u->state_file, sizeof(u->state_file), cfg->state_file);
	copy(u->kms, sizeof(u->kms), cfg->kms);
	copy(u->ca, sizeof(u->ca), cfg->ca_file);
	copy(u->sni, sizeof(u->sni), cfg->server_name);
	u->pending = json_object();
	err = u->pending ? state_load(u) : ENOMEM;
	if (err == ENOENT && id) {
		copy(u->id, sizeof(u->id), id);
		err = strlen(id) < UE_ID_MAX && *id ? 0 : EINVAL;
	}
	else if (!err && id && strcmp(id, u->id)) {
		err = EINVAL;
	}
	if (err) {
		ue_free(u);
		u = NULL;
	}
	*up = u;
	return err;
}

struct ue *ue_free(struct ue *u)
{
	if (!u)
		return NULL;
	json_decref(u->pending);
	kms_wipe(u, sizeof(*u));
	free(u);
	return NULL;
}

/* ---- transport ---- */

struct conn {
	SSL_CTX *ctx;
	SSL *ssl;
	int fd;
	uint8_t exporter[KMS_EXPORTER_LEN];
};

static void conn_close(struct conn *c)
{
	if (c->ssl) {
		SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	SSL_CTX_free(c->ctx);
	if (c->fd >= 0)
		close(c->fd);
	kms_wipe(c, sizeof(*c));
	c->fd = -1;
}

static int tcp_connect(struct ue *u, const char *host, const char *port)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res, *ai;
	unsigned ms = u->cfg.timeout_ms ? u->cfg.timeout_ms : 5000;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	int fd = -1;

	if (getaddrinfo(host, port, &hints, &res))
		return -1;
	for (ai = res; ai; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype, ai->ai_protocol);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

static int conn_open(struct ue *u, struct conn *c)
{
	char host[256], *port;
	const char *name;

	memset(c, 0, sizeof(*c));
	c->fd = -1;
	if (u->cfg.xfer) {
		memcpy(c->exporter, u->cfg.xfer_exporter, KMS_EXPORTER_LEN);
		return 0;
	}
	if (!u->kms[0] || !u->ca[0])
		return seterr(u, EINVAL, "need --kms and --ca%s%s", 0, 0);
	copy(host, sizeof(host), u->kms);
	port = strrchr(host, ':');
	if (!port)
		return seterr(u, EINVAL, "bad KMS address %s%s", u->kms, 0);
	*port++ = '\0';
	if (host[0] == '[') {
		memmove(host, host + 1, strlen(host));
		host[strcspn(host, "]")] = '\0';
	}
	c->fd = tcp_connect(u, host, port);
	if (c->fd < 0)
		return seterr(u, ECONNREFUSED, "cannot reach KMS %s%s", u->kms,
			      0);
	c->ctx = SSL_CTX_new(TLS_client_method());
	if (!c->ctx ||
	    !SSL_CTX_set_min_proto_version(c->ctx, TLS1_3_VERSION) ||
	    SSL_CTX_load_verify_locations(c->ctx, u->ca, NULL) != 1)
		return seterr(u, EINVAL, "cannot load CA %s%s", u->ca, 0);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	c->ssl = SSL_new(c->ctx);
	if (!c->ssl)
		return ENOMEM;
	SSL_set_fd(c->ssl, c->fd);
	name = u->sni[0] ? u->sni : host;
	SSL_set_tlsext_host_name(c->ssl, name);
	SSL_set1_host(c->ssl, name);
	if (SSL_connect(c->ssl) != 1)
		return seterr(u, EPROTO, "TLS handshake with %s failed%s",
			      u->kms, " (certificate or name?)");
	if (SSL_export_keying_material(c->ssl, c->exporter, KMS_EXPORTER_LEN,
				       KMS_EXPORTER_LABEL,
				       strlen(KMS_EXPORTER_LABEL), NULL, 0,
				       0) != 1)
		return seterr(u, EPROTO, "TLS exporter failed%s%s", 0, 0);
	return 0;
}

static int io_all(SSL *ssl, void *p, size_t n, int wr)
{
	uint8_t *b = p;

	while (n) {
		int r = wr ? SSL_write(ssl, b, (int)n) : SSL_read(ssl, b,
								   (int)n);

		if (r <= 0)
			return EIO;
		b += r;
		n -= (size_t)r;
	}
	return 0;
}

/** Send one request, receive one response; EPERM + u->err on refusal */
static int conn_call(struct ue *u, struct conn *c, json_t *req,
		     json_t **resp)
{
	char *s = json_dumps(req, JSON_COMPACT);
	uint8_t hdr[4];
	char *buf = NULL;
	const char *type;
	size_t n;
	int err;

	*resp = NULL;
	if (!s)
		return ENOMEM;
	n = strlen(s);
	hdr[0] = (uint8_t)(n >> 24);
	hdr[1] = (uint8_t)(n >> 16);
	hdr[2] = (uint8_t)(n >> 8);
	hdr[3] = (uint8_t)n;
	if (u->cfg.xfer) {
		err = u->cfg.xfer(s, n, &buf, &n, u->cfg.xfer_arg);
		free(s);
		goto parse;
	}
	err = io_all(c->ssl, hdr, 4, 1);
	if (!err)
		err = io_all(c->ssl, s, n, 1);
	free(s);
	if (!err)
		err = io_all(c->ssl, hdr, 4, 0);
	if (!err)
		err = kms_frame_len(hdr, &n);
	if (!err)
		buf = malloc(n);
	if (!err && !buf)
		err = ENOMEM;
	if (!err)
		err = io_all(c->ssl, buf, n, 0);
 parse:
	if (!err)
		*resp = json_loadb(buf, n, 0, NULL);
	free(buf);
	if (err || !*resp)
		return seterr(u, err ? err : EPROTO, "no valid response from "
			      "KMS%s%s", 0, 0);
	type = json_string_value(json_object_get(*resp, "type"));
	if (type && !strcmp(type, "error")) {
		seterr(u, EPERM, "KMS refused: %s: %s",
		       json_string_value(json_object_get(*resp, "error")),
		       json_string_value(json_object_get(*resp, "message")));
		json_decref(*resp);
		*resp = NULL;
		return EPERM;
	}
	return 0;
}

static int call(struct ue *u, json_t *req, json_t **resp)
{
	struct conn c;
	int err = conn_open(u, &c);

	if (!err)
		err = conn_call(u, &c, req, resp);
	conn_close(&c);
	return err;
}

/* ---- flows ---- */

int ue_bootstrap(struct ue *u, const uint8_t cred[32])
{
	uint8_t nonce[KMS_RAND_LEN], mac[KMS_MAC_LEN], blob[KMS_BLOB_MAX];
	uint8_t pt[KMS_BLOB_MAX];
	char nb[32], mb[64];
	uint64_t now = kms_now();
	struct kms_fields f;
	json_t *req = NULL, *resp = NULL;
	struct conn c;
	size_t n, pl;
	int err;

	err = conn_open(u, &c);
	if (!err)
		err = kms_random(nonce, sizeof(nonce));
	if (!err)
		err = kms_boot_mac(cred, c.exporter, u->id, now, nonce, mac);
	if (!err && (kms_b64_encode(nonce, 16, nb, sizeof(nb)) ||
		     kms_b64_encode(mac, 32, mb, sizeof(mb))))
		err = EINVAL;
	if (!err) {
		req = json_pack("{si ss ss sI ss ss}", "v", KMS_PROTO_VERSION,
				"type", "bootstrap", "id", u->id, "time",
				(json_int_t)now, "nonce", nb, "mac", mb);
		err = req ? conn_call(u, &c, req, &resp) : ENOMEM;
	}
	conn_close(&c);
	json_decref(req);
	if (err)
		return err;
	if (kms_b64_decode(json_string_value(json_object_get(resp, "kue")),
			   blob, sizeof(blob), &n) ||
	    kms_open(cred, KMS_T_BOOT_KUE, u->id, "", blob, n, NULL, pt,
		     sizeof(pt), &pl) ||
	    kms_fparse(pt, pl, &f) ||
	    kms_fget_fixed(&f, KMS_F_K, u->kue, 32) ||
	    kms_fget_u64(&f, KMS_F_EXPIRES, &u->expires) ||
	    kms_b64_decode(json_string_value(json_object_get(resp, "token")),
			   u->token, sizeof(u->token), &u->token_len))
		err = seterr(u, EBADMSG, "bootstrap response does not "
			     "authenticate%s%s", 0, 0);
	kms_wipe(pt, sizeof(pt));
	json_decref(resp);
	return err ? err : state_save(u);
}

static int need_token(struct ue *u)
{
	if (!u->token_len)
		return seterr(u, ENOKEY, "no token: run bootstrap first%s%s",
			      0, 0);
	return 0;
}

/** Seal fields under Kue and wrap with the token: the compact form */
static int make_stmt(struct ue *u, enum kms_seal_type type,
		     const char *id1, const char *id2, struct kms_fbuf *fb,
		     char *out, size_t outsz)
{
	uint8_t sealed[KMS_BLOB_MAX];
	size_t n;
	int err;

	err = fb->err ? fb->err : kms_seal(u->kue, type, 0, kms_now(), id1,
					   id2, fb->b, fb->len, sealed,
					   sizeof(sealed), &n);
	kms_wipe(fb, sizeof(*fb));
	if (!err)
		err = kms_stmt_encode(u->token, u->token_len, sealed, n, out,
				      outsz);
	return err;
}

static void label_of(char *out, size_t sz, const char *label,
		     const char *to)
{
	if (label)
		snprintf(out, sz, "conf:%s", label);
	else
		snprintf(out, sz, "to:%s", to);
}

int ue_invite(struct ue *u, const char *to, const char *focus,
	      const char *transcoder, const char *label, int fresh,
	      char *stmt, size_t stmt_sz)
{
	struct kms_fbuf fb = { .len = 0 };
	uint8_t ra[KMS_RAND_LEN];
	char lab[UE_ID_MAX + 8], rb64[32];
	const char *old;
	size_t n;
	int err = need_token(u);

	if (err)
		return err;
	if (!to || !*to)
		return EINVAL;
	label_of(lab, sizeof(lab), label, to);
	old = json_string_value(json_object_get(u->pending, lab));
	if (old && !fresh && label) {
		if (kms_b64_decode(old, ra, sizeof(ra), &n) || n != 16)
			return EINVAL;
	}
	else {
		err = kms_random(ra, sizeof(ra));
		if (!err)
			err = kms_b64_encode(ra, 16, rb64, sizeof(rb64));
		if (!err)
			json_object_set_new(u->pending, lab,
					    json_string(rb64));
	}
	kms_fput(&fb, KMS_F_R, ra, sizeof(ra));
	kms_fput_str(&fb, KMS_F_IDA, u->id);
	kms_fput_str(&fb, KMS_F_IDB, to);
	if (focus)
		kms_fput_str(&fb, KMS_F_FOCUS, focus);
	if (transcoder)
		kms_fput_str(&fb, KMS_F_XCODER, transcoder);
	if (!err)
		err = make_stmt(u, KMS_T_INVITE, u->id, to, &fb, stmt,
				stmt_sz);
	kms_wipe(ra, sizeof(ra));
	if (!err)
		err = state_save(u);
	return err;
}

/** Open a reply blob sealed for us and check its random */
static int open_reply(struct ue *u, const char *b64, enum kms_seal_type t,
		      const char *id1, const char *id2,
		      const uint8_t r[KMS_RAND_LEN], uint8_t *pt,
		      struct kms_fields *f)
{
	uint8_t blob[KMS_BLOB_MAX];
	size_t n, pl;

	if (!b64 || kms_b64_decode(b64, blob, sizeof(blob), &n))
		return seterr(u, EPROTO, "malformed reply%s%s", 0, 0);
	if (kms_open(u->kue, t, id1, id2, blob, n, NULL, pt, KMS_BLOB_MAX,
		     &pl) || kms_fparse(pt, pl, f))
		return seterr(u, EBADMSG, "reply does not authenticate%s%s", 0,
			      0);
	if (!f->v[KMS_F_R] || f->len[KMS_F_R] != KMS_RAND_LEN ||
	    !kms_ct_equal(f->v[KMS_F_R], r, KMS_RAND_LEN))
		return seterr(u, EBADMSG, "reply is not for our request%s%s",
			      0, 0);
	if (!f->v[KMS_F_K] || f->len[KMS_F_K] != 32)
		return seterr(u, EBADMSG, "reply carries no key%s%s", 0, 0);
	return 0;
}

/** Our request statement Eb(Rb, id1, id2 [, ref][, proof]) */
static int make_request(struct ue *u, const char *id1, const char *id2,
			const uint8_t rb[KMS_RAND_LEN], const uint8_t *proof,
			char *out, size_t outsz)
{
	struct kms_fbuf fb = { .len = 0 };

	kms_fput(&fb, KMS_F_R, rb, KMS_RAND_LEN);
	kms_fput_str(&fb, KMS_F_IDA, id1);
	kms_fput_str(&fb, KMS_F_IDB, id2);
	if (proof)
		kms_fput(&fb, KMS_F_PROOF, proof, KMS_MAC_LEN);
	return make_stmt(u, KMS_T_REQUEST, id1, id2, &fb, out, outsz);
}

int ue_answer(struct ue *u, const char *kind, const char *from,
	      const char *group, const char *invite, char *reply_a,
	      size_t reply_sz, struct ue_key *k)
{
	int fork = kind && !strcmp(kind, "fork");
	int conf = kind && !strcmp(kind, "conf-passive");
	uint8_t rb[KMS_RAND_LEN], pt[KMS_BLOB_MAX];
	char *stmt = malloc(UE_STMT_MAX);
	json_t *req = NULL, *resp = NULL;
	struct kms_fields f;
	const char *ra;
	uint32_t gen = 1;
	int err = need_token(u);

	memset(k, 0, sizeof(*k));
	if (!stmt)
		return ENOMEM;
	if (!err && (!kind || !from || !invite || (fork && !group) ||
		     (!fork && !conf && strcmp(kind, "p2p"))))
		err = EINVAL;
	if (!err)
		err = kms_random(rb, sizeof(rb));
	if (!err)
		err = make_request(u, from, u->id, rb, NULL, stmt,
				   UE_STMT_MAX);
	if (!err) {
		req = json_pack("{si ss ss ss ss ss}", "v", KMS_PROTO_VERSION,
				"type", kind, "ida", from, "idb", u->id,
				"invite", invite, "request", stmt);
		if (req && fork)
			json_object_set_new(req, "idg", json_string(group));
		err = req ? call(u, req, &resp) : ENOMEM;
	}
	json_decref(req);
	free(stmt);
	if (err)
		return err;
	err = open_reply(u, json_string_value(json_object_get(resp,
							      "reply_b")),
			 KMS_T_REPLY_B, from, u->id, rb, pt, &f);
	ra = json_string_value(json_object_get(resp, "reply_a"));
	if (!err && (!ra || strlen(ra) >= reply_sz))
		err = seterr(u, EPROTO, "no reply for the caller%s%s", 0, 0);
	if (!err) {
		copy(reply_a, reply_sz, ra);
		copy(k->peer, sizeof(k->peer), from);
		kms_fget_str(&f, KMS_F_REF, k->ref, sizeof(k->ref));
		kms_fget_u32(&f, KMS_F_GEN, &gen);
		k->generation = gen;
		if (fork) {
			/* KDF(K, Rb): C also holds K but lacks Rb */
			err = kms_fork_key(f.v[KMS_F_K], rb, from, u->id,
					   k->leg_key);
		}
		else {
			memcpy(k->leg_key, f.v[KMS_F_K], 32);
		}
		k->flow = conf ? KEYLEG_FLOW_CONFERENCE : KEYLEG_FLOW_P2P;
		k->side = conf ? KEYLEG_SIDE_PARTICIPANT
			       : KEYLEG_SIDE_RESPONDER;
	}
	kms_wipe(pt, sizeof(pt));
	json_decref(resp);
	return err;
}

int ue_finish(struct ue *u, const char *to, const char *label,
	      const char *reply, int fork, struct ue_key *k)
{
	uint8_t ra[KMS_RAND_LEN], pt[KMS_BLOB_MAX];
	char lab[UE_ID_MAX + 8];
	struct kms_fields f;
	const char *rs;
	uint32_t gen = 1;
	size_t n;
	int err = need_token(u);

	memset(k, 0, sizeof(*k));
	if (err)
		return err;
	if (!to || !reply)
		return EINVAL;
	label_of(lab, sizeof(lab), label, to);
	rs = json_string_value(json_object_get(u->pending, lab));
	if (!rs || kms_b64_decode(rs, ra, sizeof(ra), &n) || n != 16)
		return seterr(u, ENOENT, "no pending invitation %s%s", lab, 0);
	err = open_reply(u, reply, KMS_T_REPLY_A, u->id, to, ra, pt, &f);
	if (!err && fork) {
		if (!f.v[KMS_F_R2] || f.len[KMS_F_R2] != KMS_RAND_LEN ||
		    kms_fget_str(&f, KMS_F_IDB, k->peer, sizeof(k->peer)))
			err = seterr(u, EBADMSG, "fork reply incomplete%s%s",
				     0, 0);
		if (!err)
			err = kms_fork_key(f.v[KMS_F_K], f.v[KMS_F_R2], u->id,
					   k->peer, k->leg_key);
	}
	else if (!err) {
		memcpy(k->leg_key, f.v[KMS_F_K], 32);
		copy(k->peer, sizeof(k->peer), to);
		if (f.v[KMS_F_K2] && f.len[KMS_F_K2] == 32) {
			memcpy(k->ke2m, f.v[KMS_F_K2], 32);
			k->has_ke2m = 1;
		}
	}
	if (!err) {
		kms_fget_str(&f, KMS_F_REF, k->ref, sizeof(k->ref));
		kms_fget_u32(&f, KMS_F_GEN, &gen);
		k->generation = gen;
		k->flow = label ? KEYLEG_FLOW_CONFERENCE : KEYLEG_FLOW_P2P;
		k->side = label ? KEYLEG_SIDE_PARTICIPANT
				: KEYLEG_SIDE_INITIATOR;
	}
	/* a p2p / fork Ra is used once; a conference Ra stays for more */
	if (!err && !label) {
		json_object_del(u->pending, lab);
		err = state_save(u);
	}
	kms_wipe(ra, sizeof(ra));
	kms_wipe(pt, sizeof(pt));
	return err;
}

static int member(struct ue *u, const char *type, const char *conf,
		  const char *secret, struct ue_key *k)
{
	uint8_t rb[KMS_RAND_LEN], pt[KMS_BLOB_MAX], kj[32];
	uint8_t proof[KMS_MAC_LEN];
	char *stmt = malloc(UE_STMT_MAX);
	json_t *req = NULL, *resp = NULL;
	struct kms_fields f;
	uint32_t gen = 0;
	int err = need_token(u);

	memset(k, 0, sizeof(*k));
	if (!stmt)
		return ENOMEM;
	if (!err && (!conf || !*conf || strlen(conf) >= UE_REF_MAX))
		err = EINVAL;
	if (!err)
		err = kms_random(rb, sizeof(rb));
	if (!err && secret) {
		err = kms_join_key(secret, conf, kj);
		if (!err)
			err = kms_join_proof(kj, u->id, conf, rb, proof);
		kms_wipe(kj, sizeof(kj));
	}
	if (!err)
		err = make_request(u, u->id, conf, rb, secret ? proof : NULL,
				   stmt, UE_STMT_MAX);
	if (!err) {
		req = json_pack("{si ss ss ss ss}", "v", KMS_PROTO_VERSION,
				"type", type, "id", u->id, "conf", conf,
				"request", stmt);
		err = req ? call(u, req, &resp) : ENOMEM;
	}
	json_decref(req);
	free(stmt);
	kms_wipe(proof, sizeof(proof));
	if (err)
		return err;
	err = open_reply(u, json_string_value(json_object_get(resp, "reply")),
			 KMS_T_REPLY_B, u->id, conf, rb, pt, &f);
	if (!err) {
		memcpy(k->leg_key, f.v[KMS_F_K], 32);
		copy(k->ref, sizeof(k->ref), conf);
		copy(k->peer, sizeof(k->peer),
		     json_string_value(json_object_get(resp, "focus")));
		kms_fget_u32(&f, KMS_F_GEN, &gen);
		k->generation = gen;
		k->flow = KEYLEG_FLOW_CONFERENCE;
		k->side = KEYLEG_SIDE_PARTICIPANT;
	}
	kms_wipe(pt, sizeof(pt));
	json_decref(resp);
	return err;
}

int ue_join(struct ue *u, const char *conf, const char *secret,
	    struct ue_key *k)
{
	return member(u, "conf-join", conf, secret, k);
}

int ue_rekey(struct ue *u, const char *conf, struct ue_key *k)
{
	return member(u, "rekey", conf, NULL, k);
}

int ue_retrieve(struct ue *u, const char *from, const char *ticket,
		struct ue_key *k)
{
	uint8_t rb[KMS_RAND_LEN], pt[KMS_BLOB_MAX];
	char *stmt = malloc(UE_STMT_MAX);
	json_t *req = NULL, *resp = NULL;
	struct kms_fields f;
	int err = need_token(u);

	memset(k, 0, sizeof(*k));
	if (!stmt)
		return ENOMEM;
	if (!err && (!from || !ticket))
		err = EINVAL;
	if (!err)
		err = kms_random(rb, sizeof(rb));
	if (!err)
		err = make_request(u, from, u->id, rb, NULL, stmt,
				   UE_STMT_MAX);
	if (!err) {
		req = json_pack("{si ss ss ss ss ss}", "v", KMS_PROTO_VERSION,
				"type", "retrieve", "ida", from, "idb", u->id,
				"ticket", ticket, "request", stmt);
		err = req ? call(u, req, &resp) : ENOMEM;
	}
	json_decref(req);
	free(stmt);
	if (err)
		return err;
	err = open_reply(u, json_string_value(json_object_get(resp, "reply")),
			 KMS_T_REPLY_B, from, u->id, rb, pt, &f);
	if (!err) {
		memcpy(k->leg_key, f.v[KMS_F_K], 32);
		copy(k->peer, sizeof(k->peer), from);
		k->generation = 1;
		k->flow = KEYLEG_FLOW_P2P;
		k->side = KEYLEG_SIDE_RESPONDER;
	}
	kms_wipe(pt, sizeof(pt));
	json_decref(resp);
	return err;
}

static const char *side_name(enum keyleg_side s)
{
	switch (s) {
	case KEYLEG_SIDE_BRIDGE: return "bridge";
	case KEYLEG_SIDE_PARTICIPANT: return "participant";
	case KEYLEG_SIDE_INITIATOR: return "initiator";
	default: return "responder";
	}
}

static void b64_std(const uint8_t *p, size_t n, char *out)
{
	EVP_EncodeBlock((unsigned char *)out, p, (int)n);
}

/**
 * Print the outcome as key=value lines (docs/kms-protocol.md, "ue
 * output").  Key material only with print_keys: leg_key, ke2m and one
 * "profile=NAME tx=INLINE rx=INLINE" line per SRTP profile.
 */
int ue_key_print(FILE *f, const struct ue_key *k, int print_keys)
{
	struct keyleg_keysalt rx, tx;
	char b64[64], itx[128], irx[128];
	int p, err = 0;

	fprintf(f, "%s=%s\n", k->flow == KEYLEG_FLOW_CONFERENCE
		? "conference" : "call", k->ref);
	fprintf(f, "flow=%s\nside=%s\npeer=%s\ngeneration=%u\n",
		k->flow == KEYLEG_FLOW_CONFERENCE ? "conference" : "p2p",
		side_name(k->side), k->peer, k->generation);
	if (!print_keys)
		return 0;
	b64_std(k->leg_key, 32, b64);
	fprintf(f, "leg_key=%s\n", b64);
	if (k->has_ke2m) {
		b64_std(k->ke2m, 32, b64);
		fprintf(f, "ke2m=%s\n", b64);
	}
	for (p = 0; p < KEYLEG_PROFILE_COUNT && !err; p++) {
		err = keyleg_derive(k->leg_key, 32, (enum keyleg_profile)p,
				    k->flow, k->side, &rx, &tx);
		if (!err)
			err = keyleg_inline_encode(&tx, itx, sizeof(itx));
		if (!err)
			err = keyleg_inline_encode(&rx, irx, sizeof(irx));
		if (!err)
			fprintf(f, "profile=%s tx=%s rx=%s\n",
				keyleg_profile_name((enum keyleg_profile)p),
				itx, irx);
	}
	kms_wipe(b64, sizeof(b64));
	kms_wipe(itx, sizeof(itx));
	kms_wipe(irx, sizeof(irx));
	kms_wipe(&rx, sizeof(rx));
	kms_wipe(&tx, sizeof(tx));
	fflush(f);
	return err;
}
