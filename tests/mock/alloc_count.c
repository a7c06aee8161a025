/** @file alloc_count.c  malloc and friends, counted (see alloc_count.h) */

#include <stddef.h>
#include "tests/mock/alloc_count.h"

volatile int alloc_counting;
volatile unsigned long alloc_count;

#if ALLOC_COUNTING
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t m);
void *__libc_realloc(void *p, size_t n);
void *__libc_memalign(size_t a, size_t n);
void __libc_free(void *p);
void *malloc(size_t n);
void *calloc(size_t n, size_t m);
void *realloc(void *p, size_t n);
void *memalign(size_t a, size_t n);
int posix_memalign(void **pp, size_t a, size_t n);
void *aligned_alloc(size_t a, size_t n);
void free(void *p);

void *malloc(size_t n)
{
	if (alloc_counting)
		alloc_count++;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t m)
{
	if (alloc_counting)
		alloc_count++;
	return __libc_calloc(n, m);
}

void *realloc(void *p, size_t n)
{
	if (alloc_counting)
		alloc_count++;
	return __libc_realloc(p, n);
}

void *memalign(size_t a, size_t n)
{
	if (alloc_counting)
		alloc_count++;
	return __libc_memalign(a, n);
}

int posix_memalign(void **pp, size_t a, size_t n)
{
	if (alloc_counting)
		alloc_count++;
	*pp = __libc_memalign(a, n);
	return *pp ? 0 : 12;
}

void *aligned_alloc(size_t a, size_t n)
{
	if (alloc_counting)
		alloc_count++;
	return __libc_memalign(a, n);
}

void free(void *p)
{
	__libc_free(p);
}
#endif
