/**
 * @file main.c  test_bridge: every bridge unit test group
 */

#include "tests/bridge/tests.h"

int main(void)
{
	int failed = 0;

	failed += run_rtp_tests();
	failed += run_cli_tests();
	failed += run_api_tests();
	return failed ? 1 : 0;
}
