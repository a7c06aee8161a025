/**
 * @file alloc_count.h  Count every allocation in a test program
 *
 * tests/mock/alloc_count.c replaces malloc and friends (forwarding to
 * glibc's own) in every unit test program, so a test can count every
 * allocation made by anyone in the process -- our modules, libsrtp2,
 * OpenSSL's providers, libopus, SpanDSP, speexdsp -- while
 * alloc_counting is set.  Under AddressSanitizer or ThreadSanitizer the
 * allocator belongs to the sanitizer: ALLOC_COUNTING is 0, nothing is
 * replaced and the tests say the count cannot be taken.
 */

#ifndef TESTS_ALLOC_COUNT_H
#define TESTS_ALLOC_COUNT_H

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define ALLOC_COUNTING 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define ALLOC_COUNTING 0
#endif
#endif
#ifndef ALLOC_COUNTING
#define ALLOC_COUNTING 1
#endif

extern volatile int alloc_counting;        /**< count while non-zero  */
extern volatile unsigned long alloc_count; /**< allocations counted   */

#endif
