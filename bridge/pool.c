/**
 * @file pool.c  Packet buffer pool, filled once at start (one per worker)
 *
 * Single-threaded by design: each worker owns its pool, so get/put are a
 * pointer swap with no lock and no allocation.
 */

#include <errno.h>
#include <stdlib.h>
#include "bridge/bridge_int.h"

/** Allocate n buffers up front */
int pool_init(struct pool *p, size_t n)
{
	size_t i;

	p->mem = calloc(n, sizeof(*p->mem));
	if (!p->mem)
		return ENOMEM;
	p->free = NULL;
	for (i = n; i > 0; i--) {
		p->mem[i - 1].next = p->free;
		p->free = &p->mem[i - 1];
	}
	p->n = n;
	p->nfree = n;
	p->low = n;
	p->exhausted = 0;
	return 0;
}

void pool_fini(struct pool *p)
{
	free(p->mem);
	p->mem = NULL;
	p->free = NULL;
	p->n = p->nfree = 0;
}

/** Take a buffer; NULL (and counted) if the pool is empty */
struct pkt *pool_get(struct pool *p)
{
	struct pkt *k = p->free;

	if (!k) {
		p->exhausted++;
		return NULL;
	}
	p->free = k->next;
	k->next = NULL;
	k->len = 0;
	if (--p->nfree < p->low)
		p->low = p->nfree;
	return k;
}

/** Give a buffer back */
void pool_put(struct pool *p, struct pkt *k)
{
	if (!k)
		return;
	k->next = p->free;
	p->free = k;
	p->nfree++;
}
