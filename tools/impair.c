/**
 * @file impair.c  Seeded network impairment: bursty loss, jitter, duplicates
 *
 * Loss follows the Gilbert model (the two-state Gilbert-Elliott chain with
 * loss probability 0 in the good state and 1 in the bad state): from the
 * target loss ratio L and mean burst length B, the bad->good transition
 * probability is r = 1/B and the good->bad one is p = L*r/(1-L), so that
 * the stationary share of the bad state, p/(p+r), is L and bad runs last
 * B packets on average.  Each surviving copy is held for delay + a uniform
 * 0..jitter; copies leave in order of their due time, so packets closer
 * together than the jitter get reordered.  A min-heap over a pool made at
 * allocation holds them.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/tools.h"

struct slot {
	uint64_t due;   /* release time, us                            */
	uint64_t ord;   /* copy number: ties leave in push order       */
	uint64_t idx;   /* input packet number (for reorder counting)  */
	size_t len;
	uint8_t data[IMPAIR_PKT_MAX];
};

struct impair {
	struct impair_cfg cfg;
	uint64_t rng;
	double p_gb, p_bg;      /* Gilbert transitions                  */
	int bad;                /* chain state                          */
	int last_lost;
	uint64_t run;           /* current run of losses                */
	uint64_t ord, idx;
	uint64_t max_out_idx;   /* highest input number released + 1    */
	struct slot *slots;
	unsigned *heap;         /* slot numbers, min-heap on (due, ord) */
	unsigned *freel;        /* free slot numbers (a stack)          */
	unsigned n, nfree, cap;
	struct impair_counts c;
};

/** splitmix64: small, fast, well distributed, and seedable with 0 */
uint64_t impair_rand(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/** Uniform in [0, 1) with 53 bits */
double impair_rand_unit(uint64_t *state)
{
	return (double)(impair_rand(state) >> 11) * (1.0 / 9007199254740992.0);
}

static int before(const struct impair *imp, unsigned a, unsigned b)
{
	const struct slot *x = &imp->slots[a], *y = &imp->slots[b];

	if (x->due != y->due)
		return x->due < y->due;
	return x->ord < y->ord;
}

static void heap_up(struct impair *imp, unsigned i)
{
	while (i > 0) {
		unsigned parent = (i - 1) / 2, t;

		if (!before(imp, imp->heap[i], imp->heap[parent]))
			break;
		t = imp->heap[i];
		imp->heap[i] = imp->heap[parent];
		imp->heap[parent] = t;
		i = parent;
	}
}

static void heap_down(struct impair *imp, unsigned i)
{
	for (;;) {
		unsigned l = 2 * i + 1, r = l + 1, m = i, t;

		if (l < imp->n && before(imp, imp->heap[l], imp->heap[m]))
			m = l;
		if (r < imp->n && before(imp, imp->heap[r], imp->heap[m]))
			m = r;
		if (m == i)
			break;
		t = imp->heap[i];
		imp->heap[i] = imp->heap[m];
		imp->heap[m] = t;
		i = m;
	}
}

/**
 * Allocate an impairment model.
 *
 * @param imp  receives the model
 * @param cfg  settings; loss must be in [0, 1), burst 0 or >= 1, dup in
 *             [0, 1]
 * @return 0, EINVAL for settings out of range, ENOMEM
 */
int impair_alloc(struct impair **imp, const struct impair_cfg *cfg)
{
	struct impair *m;
	double burst;
	unsigned i;

	if (!imp || !cfg)
		return EINVAL;
	burst = cfg->burst > 0 ? cfg->burst : 1.0;
	if (!(cfg->loss >= 0 && cfg->loss < 1) || burst < 1 ||
	    !(cfg->dup >= 0 && cfg->dup <= 1) || cfg->queue > 1u << 20)
		return EINVAL;

	m = calloc(1, sizeof(*m));
	if (!m)
		return ENOMEM;
	m->cfg = *cfg;
	m->cfg.burst = burst;
	m->cap = cfg->queue ? cfg->queue : 1024;
	m->rng = cfg->seed;
	m->p_bg = 1.0 / burst;
	m->p_gb = cfg->loss * m->p_bg / (1.0 - cfg->loss);
	/* A loss ratio above B/(B+1) cannot be reached with runs of mean
	 * length B; saturate rather than refuse. */
	if (m->p_gb > 1.0)
		m->p_gb = 1.0;
	m->slots = calloc(m->cap, sizeof(*m->slots));
	m->heap = calloc(m->cap, sizeof(*m->heap));
	m->freel = calloc(m->cap, sizeof(*m->freel));
	if (!m->slots || !m->heap || !m->freel) {
		impair_free(m);
		return ENOMEM;
	}
	for (i = 0; i < m->cap; i++)
		m->freel[i] = m->cap - 1 - i;
	m->nfree = m->cap;
	*imp = m;
	return 0;
}

struct impair *impair_free(struct impair *imp)
{
	if (!imp)
		return NULL;
	free(imp->slots);
	free(imp->heap);
	free(imp->freel);
	free(imp);
	return NULL;
}

/** One step of the Gilbert chain: is this packet lost? */
static int lose(struct impair *imp)
{
	if (imp->cfg.loss <= 0)
		return 0;
	if (imp->bad)
		imp->bad = impair_rand_unit(&imp->rng) >= imp->p_bg;
	else
		imp->bad = impair_rand_unit(&imp->rng) < imp->p_gb;
	return imp->bad;
}

static uint64_t hold_us(struct impair *imp)
{
	uint64_t j = 0, span = (uint64_t)imp->cfg.jitter_us + 1;

	if (imp->cfg.jitter_us)
		j = impair_rand(&imp->rng) % span;
	return imp->cfg.delay_us + j;
}

static void enqueue(struct impair *imp, const uint8_t *pkt, size_t len,
		    uint64_t now_us)
{
	struct slot *s;
	unsigned k;
	uint64_t h = hold_us(imp);

	if (imp->nfree == 0) {
		imp->c.overflow++;
		return;
	}
	k = imp->freel[--imp->nfree];
	s = &imp->slots[k];
	s->due = now_us + h;
	s->ord = imp->ord++;
	s->idx = imp->idx;
	s->len = len;
	memcpy(s->data, pkt, len);
	if (h > imp->c.max_delay_us)
		imp->c.max_delay_us = h;
	imp->heap[imp->n] = k;
	heap_up(imp, imp->n++);
}

/**
 * Offer one packet to the network.
 *
 * @return 0 (also when the model drops it), EINVAL, EMSGSIZE if longer
 *         than IMPAIR_PKT_MAX
 */
int impair_push(struct impair *imp, const uint8_t *pkt, size_t len,
		uint64_t now_us)
{
	if (!imp || (!pkt && len))
		return EINVAL;
	if (len > IMPAIR_PKT_MAX)
		return EMSGSIZE;
	imp->c.in++;
	if (lose(imp)) {
		imp->c.dropped++;
		if (!imp->last_lost)
			imp->c.bursts++;
		imp->last_lost = 1;
		if (++imp->run > imp->c.max_burst)
			imp->c.max_burst = imp->run;
		imp->idx++;
		return 0;
	}
	imp->last_lost = 0;
	imp->run = 0;
	enqueue(imp, pkt, len, now_us);
	if (imp->cfg.dup > 0 && impair_rand_unit(&imp->rng) < imp->cfg.dup) {
		imp->c.duplicated++;
		enqueue(imp, pkt, len, now_us);
	}
	imp->idx++;
	return 0;
}

/**
 * Take the next copy that is due at now_us.
 *
 * @return 0 with the copy in buf, ENOENT if none is due, ENOSPC if buf is
 *         too small (the copy is then dropped and counted as overflow)
 */
int impair_pop(struct impair *imp, uint64_t now_us, uint8_t *buf,
	       size_t cap, size_t *lenp)
{
	struct slot *s;
	unsigned k;

	if (!imp || !buf || !lenp)
		return EINVAL;
	if (imp->n == 0 || imp->slots[imp->heap[0]].due > now_us)
		return ENOENT;
	k = imp->heap[0];
	imp->heap[0] = imp->heap[--imp->n];
	heap_down(imp, 0);
	imp->freel[imp->nfree++] = k;
	s = &imp->slots[k];
	if (s->len > cap) {
		imp->c.overflow++;
		return ENOSPC;
	}
	memcpy(buf, s->data, s->len);
	*lenp = s->len;
	imp->c.out++;
	if (s->idx + 1 < imp->max_out_idx)
		imp->c.reordered++;
	else if (s->idx + 1 > imp->max_out_idx)
		imp->max_out_idx = s->idx + 1;
	return 0;
}

/** Due time of the next held copy in us, or -1 if none is held */
int64_t impair_next_due(const struct impair *imp)
{
	if (!imp || imp->n == 0)
		return -1;
	return (int64_t)imp->slots[imp->heap[0]].due;
}

void impair_counts_get(const struct impair *imp, struct impair_counts *c)
{
	if (imp && c)
		*c = imp->c;
}

/**
 * Print counts as one JSON object.
 *
 * @return 0, or ENOSPC if buf is too small
 */
int impair_counts_json(const struct impair_counts *c, char *buf, size_t size)
{
	int n;

	if (!c || !buf)
		return EINVAL;
	n = snprintf(buf, size,
		     "{\"in\": %llu, \"dropped\": %llu, \"bursts\": %llu, "
		     "\"max_burst\": %llu, \"duplicated\": %llu, "
		     "\"overflow\": %llu, \"out\": %llu, \"reordered\": %llu, "
		     "\"max_delay_us\": %llu}",
		     (unsigned long long)c->in,
		     (unsigned long long)c->dropped,
		     (unsigned long long)c->bursts,
		     (unsigned long long)c->max_burst,
		     (unsigned long long)c->duplicated,
		     (unsigned long long)c->overflow,
		     (unsigned long long)c->out,
		     (unsigned long long)c->reordered,
		     (unsigned long long)c->max_delay_us);
	if (n < 0 || (size_t)n >= size)
		return ENOSPC;
	return 0;
}
