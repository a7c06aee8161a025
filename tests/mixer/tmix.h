/** @file tmix.h  Mixer unit test groups */

#ifndef TMIX_H
#define TMIX_H

#include <math.h>

int tmix_run_tone(void);
int tmix_run_shared(void);
int tmix_run_net(void);
int tmix_run_transcode(void);
int tmix_run_unit(void);
int tmix_run_alloc(void);

#endif
