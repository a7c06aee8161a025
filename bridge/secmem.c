/**
 * @file secmem.c  Wipe what libevent and jansson free: control requests
 * carry SRTP keys (inline keys in base64), and a freed HTTP buffer or
 * JSON string would otherwise keep them in the heap after the leg closed.
 *
 * Both libraries take allocator hooks; ours wipe the whole usable size of
 * a block before handing it back to libc (realloc moves and wipes).  Set
 * once, before the first libevent or jansson call of the process.
 */

#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <event2/event.h>
#include <jansson.h>
#include "bridge/bridge_int.h"

static void wipe_free(void *p)
{
	if (!p)
		return;
	keyleg_wipe(p, malloc_usable_size(p));
	free(p);
}

static void *wipe_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (!p)
		return malloc(n);
	if (n == 0) {
		wipe_free(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	q = malloc(n);
	if (!q)
		return NULL;
	memcpy(q, p, old < n ? old : n);
	wipe_free(p);
	return q;
}

/** Install the wiping allocators (idempotent, not thread-safe: call it
 *  from main's thread before any other libevent or jansson call) */
void bridge_secmem_init(void)
{
	static int done;

	if (done)
		return;
	done = 1;
	event_set_mem_functions(malloc, wipe_realloc, wipe_free);
	json_set_alloc_funcs(malloc, wipe_free);
}
