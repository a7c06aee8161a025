/** @file main.c  Mixer unit tests: runs every group */

#include "tmix.h"

int main(void)
{
	int failed = 0;

	failed += tmix_run_unit();
	failed += tmix_run_tone();
	failed += tmix_run_shared();
	failed += tmix_run_net();
	failed += tmix_run_transcode();
	failed += tmix_run_alloc();
	return failed ? 1 : 0;
}
