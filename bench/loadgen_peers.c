/** @file loadgen_peers.c  Janus AudioBridge and rtpengine set-up (stubs) */

#include <errno.h>
#include <stdio.h>

#include "bench/loadgen_int.h"

int lg_setup_janus(struct lg *g, const char *control)
{
	(void)control;
	snprintf(g->err, sizeof(g->err), "janus driver not built yet");
	return ENOTSUP;
}

int lg_setup_rtpengine(struct lg *g, const char *control)
{
	(void)control;
	snprintf(g->err, sizeof(g->err), "rtpengine driver not built yet");
	return ENOTSUP;
}

int lg_teardown_rtpengine(struct lg *g, const char *control)
{
	(void)g;
	(void)control;
	return 0;
}
