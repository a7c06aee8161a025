/** @file env.c  The process runs the private OpenSSL build of libsrtp2 */

#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

#include <srtp2/srtp.h>

#include "tkl.h"

#ifndef KEYLEG_SRTP_PREFIX
#error "KEYLEG_SRTP_PREFIX comes from keyleg/module.mk"
#endif

struct libs {
	int crypto, nss, srtp, srtp_priv;
	char srtp_name[256];
};

static int lib_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct libs *l = arg;
	const char *name = info->dlpi_name, *base;

	(void)size;
	if (!name || !*name)
		return 0;
	base = strrchr(name, '/');
	base = base ? base + 1 : name;
	if (!strncmp(base, "libcrypto.so", 12))
		l->crypto++;
	if (!strncmp(base, "libnss3.so", 10) || !strncmp(base, "libnspr4", 8))
		l->nss++;
	if (!strncmp(base, "libsrtp2.so", 11)) {
		l->srtp++;
		snprintf(l->srtp_name, sizeof(l->srtp_name), "%s", name);
		if (!strncmp(name, KEYLEG_SRTP_PREFIX "/",
			     strlen(KEYLEG_SRTP_PREFIX "/")))
			l->srtp_priv++;
	}
	return 0;
}

/*
 * Walk the loaded objects: libcrypto must be there, NSS must not, and no
 * shared libsrtp2 at all (Debian's has the same soname as ours; ours is
 * linked statically from the private prefix).
 */
static void t_loaded_libs(void **state)
{
	struct libs l;

	(void)state;
	memset(&l, 0, sizeof(l));
	dl_iterate_phdr(lib_cb, &l);
	assert_true(l.crypto >= 1);
	assert_int_equal(l.nss, 0);
	if (l.srtp)
		fail_msg("shared libsrtp2 loaded: %s", l.srtp_name);
}

/* srtp_protect lives in this executable, not in a shared object */
static void t_srtp_static(void **state)
{
	Dl_info srtp, self;

	(void)state;
	memset(&srtp, 0, sizeof(srtp));
	memset(&self, 0, sizeof(self));
	assert_int_not_equal(dladdr((void *)(uintptr_t)srtp_protect, &srtp),
			     0);
	assert_int_not_equal(dladdr((void *)(uintptr_t)t_srtp_static, &self),
			     0);
	assert_non_null(srtp.dli_fbase);
	assert_ptr_equal(srtp.dli_fbase, self.dli_fbase);
}

/* keyleg_srtp_version() is the version of the private build's config.h */
static void t_version(void **state)
{
	const char *path = KEYLEG_SRTP_PREFIX "/include/srtp2-private/config.h";
	char line[256], want[128] = "", *p, *q;
	FILE *f;

	(void)state;
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "#define PACKAGE_STRING ", 23))
			continue;
		p = strchr(line, '"');
		q = p ? strrchr(line, '"') : NULL;
		assert_true(p && q > p);
		snprintf(want, sizeof(want), "%.*s", (int)(q - p - 1), p + 1);
	}
	fclose(f);
	assert_true(want[0]);
	assert_string_equal(keyleg_srtp_version(), want);
	assert_string_equal(keyleg_srtp_version(), srtp_get_version_string());
	assert_non_null(strstr(want, "libsrtp2 2."));
}

static void t_backend(void **state)
{
	(void)state;
	assert_string_equal(keyleg_crypto_backend(), "openssl");
}

int tkl_run_env(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_loaded_libs),
		cmocka_unit_test(t_srtp_static),
		cmocka_unit_test(t_version),
		cmocka_unit_test(t_backend),
	};

	return cmocka_run_group_tests_name("keyleg_env", tests, NULL, NULL);
}
