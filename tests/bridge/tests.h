/**
 * @file tests.h  Test lists of the bridge unit tests
 */

#ifndef BRIDGE_TESTS_H
#define BRIDGE_TESTS_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

int run_rtp_tests(void);
int run_cli_tests(void);
int run_api_tests(void);

#endif
