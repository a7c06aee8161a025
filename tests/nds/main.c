/**
 * @file main.c  NDS link test program (cmocka): wire format, certificates,
 * listener and client over loopback
 */

#include "tests/nds/nds_test.h"

int main(void)
{
	int fails = 0;

	certdir();
	fails += run_msg_tests();
	fails += run_cert_tests();
	fails += run_link_tests();
	return fails ? 1 : 0;
}
