/**
 * @file bridged_main.c  bridged: the conference bridge (MRFP) daemon
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include "bridge/bridge.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bridged --control ADDR:PORT --token-file FILE "
		"--rtp-ports LO-HI\n"
		"               [--workers N] [--kms HOST:PORT "
		"--nds-cert FILE --nds-key FILE\n"
		"               --nds-ca FILE] [--config FILE]\n"
		"               [--log-level error|warn|info|debug] "
		"[--user NAME]\n");
}

int main(int argc, char *argv[])
{
	struct bridge_cfg cfg;
	struct bridge *b = NULL;
	char err[512], addr[300];
	int e;

	bridge_cfg_defaults(&cfg);
	e = bridge_cfg_parse(&cfg, argc, argv, err, sizeof(err));
	if (e == ECANCELED) {
		usage(stdout);
		return 0;
	}
	if (e) {
		fprintf(stderr, "bridged: %s\n", err);
		usage(stderr);
		return 2;
	}
	bridge_log_set_level(cfg.log_level);
	e = bridge_alloc(&b, &cfg, err, sizeof(err));
	if (e) {
		bridge_log(BRIDGE_LOG_ERROR, "%s", err);
		return 1;
	}
	if (cfg.user[0]) {
		e = bridge_drop_privileges(cfg.user, err, sizeof(err));
		if (e) {
			bridge_log(BRIDGE_LOG_ERROR, "%s", err);
			bridge_free(b);
			return 1;
		}
		bridge_log(BRIDGE_LOG_INFO, "running as %s", cfg.user);
	}
	bridge_control_addr(b, addr, sizeof(addr));
	/* the one line on stdout: tests and scripts wait for it */
	printf("ready control=%s\n", addr);
	fflush(stdout);
	bridge_run(b);
	bridge_free(b);
	bridge_log(BRIDGE_LOG_INFO, "bye");
	return 0;
}
