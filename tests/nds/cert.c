/**
 * @file cert.c  Identity and role from the certificates certs.sh makes
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tests/nds/nds_test.h"

static int ident(const char *name, char *id, size_t idsz,
		 enum nds_role *role, char *why, size_t whysz)
{
	FILE *f = fopen(certpath(name, "crt"), "r");
	X509 *x;
	int err;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	err = nds_cert_identity(x, id, idsz, role, why, whysz);
	X509_free(x);
	return err;
}

static void test_roles(void **state)
{
	static const struct {
		const char *file, *id;
		enum nds_role role;
	} ok[] = {
		{ "bridge1", "bridge1" DOM, NDS_ROLE_BRIDGE },
		{ "bridge2", "bridge2" DOM, NDS_ROLE_BRIDGE },
		{ "transcoder1", "transcoder1" DOM, NDS_ROLE_TRANSCODER },
		{ "mailbox1", "mailbox1" DOM, NDS_ROLE_MAILBOX },
		{ "kmsd-nds", "kms" DOM, NDS_ROLE_KMS },
		{ "test/other-bridge1", "bridge1" DOM, NDS_ROLE_BRIDGE },
	};
	char id[KMS_NDS_ID_MAX + 1], why[128];
	enum nds_role role;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		role = NDS_ROLE_NONE;
		assert_int_equal(ident(ok[i].file, id, sizeof(id), &role, why,
				       sizeof(why)), 0);
		assert_string_equal(id, ok[i].id);
		assert_int_equal(role, ok[i].role);
	}
}

static void test_no_role(void **state)
{
	char id[KMS_NDS_ID_MAX + 1], why[128];
	enum nds_role role = NDS_ROLE_NONE;

	(void)state;
	assert_int_equal(ident("test/norole1", id, sizeof(id), &role, why,
			       sizeof(why)), EACCES);
	assert_non_null(strstr(why, "no keymix-role"));
	assert_int_equal(ident("test/badrole1", id, sizeof(id), &role, why,
			       sizeof(why)), EACCES);
	assert_non_null(strstr(why, "unknown role"));
	/* identity buffer too small */
	assert_int_not_equal(ident("bridge1", id, 5, &role, why,
				   sizeof(why)), 0);
}

static void test_role_names(void **state)
{
	enum nds_role r;

	(void)state;
	assert_int_equal(nds_role_parse("bridge", 6, &r), 0);
	assert_int_equal(r, NDS_ROLE_BRIDGE);
	assert_int_equal(nds_role_parse("bridgeX", 7, &r), ENOENT);
	assert_int_equal(nds_role_parse("none", 4, &r), ENOENT);
	assert_int_equal(nds_role_parse("", 0, &r), ENOENT);
	assert_string_equal(nds_role_name(NDS_ROLE_MAILBOX), "mailbox");
	assert_string_equal(nds_role_name((enum nds_role)42), "none");
}

int run_cert_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roles),
		cmocka_unit_test(test_no_role),
		cmocka_unit_test(test_role_names),
	};

	return cmocka_run_group_tests_name("nds_cert", tests, NULL, NULL);
}
