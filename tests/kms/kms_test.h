/** @file kms_test.h  kms_nds unit tests: groups run by main (flows.c) */

#ifndef KMS_TEST_H
#define KMS_TEST_H

int kms_test_proto(void);
int kms_test_flows(void);

#endif
