/**
 * @file main.c  NDS link test program (cmocka): wire format, certificates,
 * listener and client over loopback
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>

#include <cmocka.h>

#include "tests/nds/nds_test.h"

int main(void)
{
	int fails = 0;

	/* NDS_TEST_FILTER=pattern runs only the matching tests */
	if (getenv("NDS_TEST_FILTER"))
		cmocka_set_test_filter(getenv("NDS_TEST_FILTER"));
	certdir();
	fails += run_msg_tests();
	fails += run_cert_tests();
	fails += run_link_tests();
	fails += run_store_tests();
	return fails ? 1 : 0;
}
