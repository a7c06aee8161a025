/** @file loadgen_scenario.c  The benchmark scenarios (issue 6) */

#include <string.h>

#include "bench/loadgen_int.h"

static const struct lg_scenario scenarios[] = {
	{ "opus10_2talk", 0, 10, 2, LG_OPUS, LG_OPUS, 0 },
	{ "opus10_2talk_levels", 0, 10, 2, LG_OPUS, LG_OPUS, 1 },
	{ "g711_10", 0, 10, 2, LG_PCMU, LG_PCMU, 0 },
	{ "transcode_opus_pcmu", 1, 2, 2, LG_OPUS, LG_PCMU, 0 },
	{ "relay_srtp", 1, 2, 2, LG_OPUS, LG_OPUS, 0 },
	{ "opus100_3talk_levels", 0, 100, 3, LG_OPUS, LG_OPUS, 1 },
};

/** The scenario called name, or NULL */
const struct lg_scenario *lg_scenario_find(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (!strcmp(scenarios[i].name, name))
			return &scenarios[i];
	return NULL;
}
