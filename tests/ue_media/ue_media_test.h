/** @file ue_media_test.h  uemedia unit tests: groups and shared helpers */

#ifndef UE_MEDIA_TEST_H
#define UE_MEDIA_TEST_H

#include <stddef.h>
#include <stdint.h>

int test_ue_parse_group(void);
int test_ue_rtp_group(void);
int test_ue_audio_group(void);
int test_ue_run_group(void);

/** Amplitude (peak, sample units) of frequency hz in pcm (Hann window) */
double tone_amplitude(const int16_t *pcm, size_t n, double hz,
		      uint32_t rate);
/** amplitude -> dBFS where a full-scale sine is 0 dBFS */
double amp_dbfs(double amp);

#endif
