/** @file main.c  keyleg unit tests: runs every group */

#include <stdio.h>

#include "tkl.h"

int main(void)
{
	int failed = 0;

	if (keyleg_init()) {
		fprintf(stderr, "keyleg_init failed\n");
		return 1;
	}
	failed += tkl_run_env();
	failed += tkl_run_vectors();
	failed += tkl_run_keys();
	failed += tkl_run_packets();
	failed += tkl_run_rekey();
	failed += tkl_run_alloc();
	return failed ? 1 : 0;
}
