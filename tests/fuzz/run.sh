#!/usr/bin/env bash
# run.sh  Run every libFuzzer target for N seconds; report how each ended.
#
#   bash tests/fuzz/run.sh BINDIR SECONDS
#
# Each target starts from its committed corpus (tests/fuzz/corpus/T/) and
# writes what it finds to a scratch corpus under build/fuzz-work/T/; a crash
# input lands in build/fuzz-work/T/crash-* (copy it into the corpus once
# the bug is fixed, so `make test` replays it for ever).
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
bindir=$1 secs=${2:-60}
status=0
for bin in "$bindir"/*; do
	[ -x "$bin" ] || continue
	t=$(basename "$bin")
	work=$top/build/fuzz-work/$t
	mkdir -p "$work/corpus" "$top/tests/fuzz/corpus/$t"
	echo "== fuzz $t for ${secs}s"
	if "$bin" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$work/" "$work/corpus" \
		"$top/tests/fuzz/corpus/$t" >"$work/log" 2>&1; then
		echo "   clean: $(grep -E 'stat::number_of_executed_units' \
			"$work/log" | awk '{print $2}') runs in ${secs}s"
	else
		status=1
		echo "   FAILED: see $work/log"; tail -n 30 "$work/log"
	fi
done
exit $status
