/**
 * @file cli_test.c  bridged command line and --config parsing
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "tests/bridge/tests.h"
#include "bridge/bridge.h"

static int parse(struct bridge_cfg *cfg, char *err, size_t errsz, ...)
{
	char *argv[32];
	int argc = 0;
	va_list ap;
	char *a;

	argv[argc++] = "bridged";
	va_start(ap, errsz);
	while ((a = va_arg(ap, char *)) && argc < 31)
		argv[argc++] = a;
	va_end(ap);
	argv[argc] = NULL;
	bridge_cfg_defaults(cfg);
	return bridge_cfg_parse(cfg, argc, argv, err, errsz);
}

static void t_cli_full(void **state)
{
	struct bridge_cfg c;
	char err[256];
	(void)state;

	assert_int_equal(parse(&c, err, sizeof(err), "--control",
			       "127.0.0.1:0", "--token-file", "/tmp/t",
			       "--rtp-ports", "30000-30099", "--workers", "3",
			       "--kms", "kms.example:4443", "--nds-cert", "c",
			       "--nds-key", "k", "--nds-ca", "ca",
			       "--log-level", "debug", "--user", "nobody",
			       NULL), 0);
	assert_string_equal(c.control_host, "127.0.0.1");
	assert_int_equal(c.control_port, 0);
	assert_string_equal(c.token_file, "/tmp/t");
	assert_int_equal(c.port_lo, 30000);
	assert_int_equal(c.port_hi, 30099);
	assert_int_equal(c.workers, 3);
	assert_string_equal(c.kms_host, "kms.example");
	assert_int_equal(c.kms_port, 4443);
	assert_string_equal(c.nds_ca, "ca");
	assert_int_equal(c.log_level, BRIDGE_LOG_DEBUG);
	assert_string_equal(c.user, "nobody");
}

static void t_cli_v6_defaults(void **state)
{
	struct bridge_cfg c;
	char err[256];
	(void)state;

	assert_int_equal(parse(&c, err, sizeof(err), "--control=[::1]:8080",
			       "--token-file", "t", "--rtp-ports", "5-5",
			       NULL), 0);
	assert_string_equal(c.control_host, "::1");
	assert_int_equal(c.control_port, 8080);
	assert_int_equal(c.workers, 0); /* = nproc */
	assert_int_equal(c.log_level, BRIDGE_LOG_INFO);
	assert_string_equal(c.kms_host, "");
}

static void t_cli_errors(void **state)
{
	struct bridge_cfg c;
	char err[256];
	(void)state;

	/* each must fail with a message */
	assert_int_equal(parse(&c, err, sizeof(err), "--control",
			       "127.0.0.1:0", "--rtp-ports", "1-2", NULL),
			 EINVAL);
	assert_non_null(strstr(err, "--token-file"));
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       NULL), EINVAL);
	assert_non_null(strstr(err, "--rtp-ports"));
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "5-3", NULL), EINVAL);
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "0-3", NULL), EINVAL);
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "x-3", NULL), EINVAL);
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "1-70000", NULL), EINVAL);
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "1-2", "--workers", "0", NULL),
			 EINVAL);
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "1-2", "--log-level", "loud",
			       NULL), EINVAL);
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "1-2", "--bogus", NULL),
			 EINVAL);
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "1-2", "extra", NULL), EINVAL);
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "1-2", "--control",
			       "localhost:80", NULL), EINVAL);
	/* --kms without the NDS credentials */
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "1-2", "--kms", "h:1", NULL),
			 EINVAL);
	assert_non_null(strstr(err, "--nds-cert"));
	/* a non-loopback control address without TLS is refused */
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "1-2", "--control",
			       "192.0.2.1:80", NULL), EINVAL);
	assert_non_null(strstr(err, "loopback"));
	assert_int_equal(parse(&c, err, sizeof(err), "--token-file", "t",
			       "--rtp-ports", "1-2", "--control",
			       "[2001:db8::1]:80", NULL), EINVAL);
	assert_int_equal(parse(&c, err, sizeof(err), "--help", NULL),
			 ECANCELED);
}

/* overwrite the config file at path with text */
static void put_cfg(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void t_cli_config(void **state)
{
	char path[] = "/tmp/bridge_cfg_XXXXXX", err[256];
	struct bridge_cfg c;
	int fd;
	(void)state;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	put_cfg(path, "{\"token_file\": \"/etc/tok\", \"rtp-ports\": "
		"\"40000-40010\", \"workers\": 2, \"log-level\": \"warn\", "
		"\"max-legs-per-worker\": 7, \"rtcp-interval-ms\": 900}");
	assert_int_equal(parse(&c, err, sizeof(err), "--config", path,
			       "--workers", "4", NULL), 0);
	assert_string_equal(c.token_file, "/etc/tok");
	assert_int_equal(c.port_lo, 40000);
	assert_int_equal(c.workers, 4); /* the command line wins */
	assert_int_equal(c.log_level, BRIDGE_LOG_WARN);
	assert_int_equal(c.max_legs_per_worker, 7);
	assert_int_equal(c.rtcp_interval_ms, 900);
	assert_int_equal(c.send_io_uring, 1);   /* the default */

	/* the send path: 0 (sendmmsg) or 1 (io_uring), nothing else */
	put_cfg(path, "{\"send-io-uring\": 0}");
	assert_int_equal(parse(&c, err, sizeof(err), "--config", path,
			       "--token-file", "t", "--rtp-ports", "1-2",
			       NULL), 0);
	assert_int_equal(c.send_io_uring, 0);
	put_cfg(path, "{\"send_io_uring\": 2}");
	assert_int_equal(parse(&c, err, sizeof(err), "--config", path,
			       "--token-file", "t", "--rtp-ports", "1-2",
			       NULL), EINVAL);
	assert_non_null(strstr(err, "send_io_uring"));

	/* TLS for the control listener lifts the loopback rule */
	put_cfg(path, "{\"control-cert\": \"/c.pem\", \"control_key\": "
		"\"/k.pem\"}");
	assert_int_equal(parse(&c, err, sizeof(err), "--config", path,
			       "--token-file", "t", "--rtp-ports", "1-2",
			       "--control", "0.0.0.0:443", NULL), 0);
	assert_string_equal(c.control_cert, "/c.pem");
	assert_string_equal(c.control_key, "/k.pem");
	put_cfg(path, "{\"control-cert\": \"/c.pem\"}");
	assert_int_equal(parse(&c, err, sizeof(err), "--config", path,
			       "--token-file", "t", "--rtp-ports", "1-2",
			       NULL), EINVAL);
	assert_non_null(strstr(err, "control-key"));

	put_cfg(path, "{\"nonsense\": 1}");
	assert_int_equal(parse(&c, err, sizeof(err), "--config", path, NULL),
			 EINVAL);
	assert_non_null(strstr(err, "nonsense"));
	put_cfg(path, "{\"workers\": [1]}");
	assert_int_equal(parse(&c, err, sizeof(err), "--config", path, NULL),
			 EINVAL);
	put_cfg(path, "{not json");
	assert_int_equal(parse(&c, err, sizeof(err), "--config", path, NULL),
			 EINVAL);
	unlink(path);
}

static void t_loopback(void **state)
{
	(void)state;
	assert_true(bridge_addr_is_loopback("127.0.0.1"));
	assert_true(bridge_addr_is_loopback("127.1.2.3"));
	assert_true(bridge_addr_is_loopback("::1"));
	assert_false(bridge_addr_is_loopback("0.0.0.0"));
	assert_false(bridge_addr_is_loopback("::"));
	assert_false(bridge_addr_is_loopback("10.0.0.1"));
	assert_false(bridge_addr_is_loopback("localhost"));
}

int run_cli_tests(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(t_cli_full),
		cmocka_unit_test(t_cli_v6_defaults),
		cmocka_unit_test(t_cli_errors),
		cmocka_unit_test(t_cli_config),
		cmocka_unit_test(t_loopback),
	};

	return cmocka_run_group_tests_name("bridge_cli", tests, NULL, NULL);
}
