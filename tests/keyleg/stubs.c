#include "tkl.h"
int tkl_run_keys(void) { return 0; }
int tkl_run_packets(void) { return 0; }
int tkl_run_rekey(void) { return 0; }
