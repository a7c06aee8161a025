/** @file loadgen_bencode.c  Bencode encoder and decoder (rtpengine ng) */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "bench/bench.h"

/** Start encoding into buf (cap bytes); nothing is allocated */
void bench_benc_init(struct bench_benc *b, char *buf, size_t cap)
{
	b->buf = buf;
	b->cap = cap;
	b->len = 0;
	b->err = 0;
}

static void put(struct bench_benc *b, const void *p, size_t n)
{
	if (b->err)
		return;
	if (n > b->cap - b->len) {
		b->err = ENOSPC;
		return;
	}
	memcpy(b->buf + b->len, p, n);
	b->len += n;
}

/** Byte string "<len>:<bytes>" */
void bench_benc_bytes(struct bench_benc *b, const void *p, size_t n)
{
	char hdr[32];
	int k = snprintf(hdr, sizeof(hdr), "%zu:", n);

	put(b, hdr, (size_t)k);
	put(b, p, n);
}

/** NUL-terminated string */
void bench_benc_str(struct bench_benc *b, const char *s)
{
	bench_benc_bytes(b, s, strlen(s));
}

/** Integer "i<v>e" */
void bench_benc_int(struct bench_benc *b, int64_t v)
{
	char tmp[32];
	int k = snprintf(tmp, sizeof(tmp), "i%llde", (long long)v);

	put(b, tmp, (size_t)k);
}

void bench_benc_dict(struct bench_benc *b)
{
	put(b, "d", 1);
}

void bench_benc_list(struct bench_benc *b)
{
	put(b, "l", 1);
}

void bench_benc_end(struct bench_benc *b)
{
	put(b, "e", 1);
}

void bench_benc_kv_str(struct bench_benc *b, const char *k, const char *v)
{
	bench_benc_str(b, k);
	bench_benc_str(b, v);
}

struct dec {
	const char *in;
	size_t len, pos;
	struct bench_bnode *nodes;
	int max, n;
};

static int dec_value(struct dec *d, int depth);

static int dec_num(struct dec *d, char end, int64_t *v)
{
	int neg = 0, digits = 0;
	uint64_t acc = 0;

	if (d->pos < d->len && d->in[d->pos] == '-') {
		neg = 1;
		d->pos++;
	}
	while (d->pos < d->len && d->in[d->pos] >= '0' &&
	       d->in[d->pos] <= '9') {
		if (acc > (UINT64_C(1) << 62))
			return EOVERFLOW;
		acc = acc * 10 + (uint64_t)(d->in[d->pos] - '0');
		d->pos++;
		digits++;
	}
	if (!digits || d->pos >= d->len || d->in[d->pos] != end)
		return EBADMSG;
	d->pos++;
	*v = neg ? -(int64_t)acc : (int64_t)acc;
	return 0;
}

static int dec_value(struct dec *d, int depth)
{
	struct bench_bnode *nd;
	int idx, err;
	int64_t v;
	char c;

	if (depth > 32)
		return ELOOP;
	if (d->pos >= d->len)
		return EBADMSG;
	if (d->n >= d->max)
		return ENOSPC;
	idx = d->n++;
	nd = &d->nodes[idx];
	memset(nd, 0, sizeof(*nd));
	c = d->in[d->pos];
	if (c == 'i') {
		d->pos++;
		nd->type = BENCH_BINT;
		err = dec_num(d, 'e', &v);
		if (err)
			return err;
		nd->i = v;
	}
	else if (c >= '0' && c <= '9') {
		nd->type = BENCH_BSTR;
		err = dec_num(d, ':', &v);
		if (err)
			return err;
		if (v < 0 || (uint64_t)v > d->len - d->pos)
			return EBADMSG;
		nd->s = d->in + d->pos;
		nd->slen = (size_t)v;
		d->pos += (size_t)v;
	}
	else if (c == 'l' || c == 'd') {
		int count = 0;

		d->pos++;
		nd->type = c == 'l' ? BENCH_BLIST : BENCH_BDICT;
		while (d->pos < d->len && d->in[d->pos] != 'e') {
			int child = d->n;

			err = dec_value(d, depth + 1);
			if (err)
				return err;
			if (nd->type == BENCH_BDICT && !(count & 1) &&
			    d->nodes[child].type != BENCH_BSTR)
				return EBADMSG;
			count++;
			nd = &d->nodes[idx];
		}
		if (d->pos >= d->len)
			return EBADMSG;
		if (nd->type == BENCH_BDICT && (count & 1))
			return EBADMSG;
		d->pos++;
		nd->n = count;
	}
	else {
		return EBADMSG;
	}
	d->nodes[idx].next = d->n;
	return 0;
}

/**
 * Decode one bencoded value from in[0..len) into a flat node array in
 * pre-order.  Node 0 is the root; a container's children follow it, and
 * each node's next is the index just past its subtree.
 */
int bench_bdec(const char *in, size_t len, struct bench_bnode *nodes,
	       int max_nodes, int *n_nodes, size_t *used)
{
	struct dec d = { in, len, 0, nodes, max_nodes, 0 };
	int err;

	if (!in || !nodes || max_nodes <= 0)
		return EINVAL;
	err = dec_value(&d, 0);
	if (err)
		return err;
	if (n_nodes)
		*n_nodes = d.n;
	if (used)
		*used = d.pos;
	return 0;
}

/** True if a string node equals s */
int bench_bnode_streq(const struct bench_bnode *n, const char *s)
{
	size_t l = strlen(s);

	return n->type == BENCH_BSTR && n->slen == l && !memcmp(n->s, s, l);
}

/** Index of the value stored under key in dict node, or -1 */
int bench_bdict_get(const struct bench_bnode *nodes, int dict,
		    const char *key)
{
	int i, c;

	if (dict < 0 || nodes[dict].type != BENCH_BDICT)
		return -1;
	c = dict + 1;
	for (i = 0; i < nodes[dict].n; i += 2) {
		int val = nodes[c].next;

		if (bench_bnode_streq(&nodes[c], key))
			return val;
		c = nodes[val].next;
	}
	return -1;
}

/** Index of item idx of a list node, or -1 */
int bench_blist_item(const struct bench_bnode *nodes, int list, int idx)
{
	int i, c;

	if (list < 0 || nodes[list].type != BENCH_BLIST || idx < 0 ||
	    idx >= nodes[list].n)
		return -1;
	c = list + 1;
	for (i = 0; i < idx; i++)
		c = nodes[c].next;
	return c;
}
