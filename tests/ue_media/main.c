/** @file main.c  uemedia unit tests: runner and shared helpers */

#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/ue_media/ue_media_test.h"

/*
 * Single-bin DFT at an arbitrary frequency (what Goertzel computes), with
 * a Hann window; returns the sine's peak amplitude.
 */
double tone_amplitude(const int16_t *pcm, size_t n, double hz,
		      uint32_t rate)
{
	double re = 0, im = 0, wsum = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		double w = 0.5 - 0.5 * cos(2 * M_PI * i / (n - 1));
		double ph = 2 * M_PI * hz * i / rate;

		re += w * pcm[i] * cos(ph);
		im -= w * pcm[i] * sin(ph);
		wsum += w;
	}
	return 2 * sqrt(re * re + im * im) / wsum;
}

double amp_dbfs(double amp)
{
	return amp > 0 ? 20 * log10(amp / 32767.0) : -200;
}

int main(void)
{
	int fails = 0;

	fails += test_ue_parse_group();
	fails += test_ue_rtp_group();
	fails += test_ue_audio_group();
	fails += test_ue_run_group();
	return fails ? 1 : 0;
}
