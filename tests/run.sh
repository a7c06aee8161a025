#!/usr/bin/env bash
# run.sh  Run every test of a built tree and print one summary line.
#
#   KEYMIX_BUILD=/abs/build bash tests/run.sh [FILTER]
#
# Unit tests are cmocka binaries (build/tests/test_*); their summaries are
# parsed.  Fuzz corpora are replayed (build/fuzz/*).  Integration scripts in
# tests/integration/ print "N passed, N failed" themselves; a script that
# prints no such line counts as one test, judged by its exit status.  A
# script that exits 77 is skipped (missing optional tool), said loudly.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${KEYMIX_BUILD:-$top/build}
export KEYMIX_BUILD=$build KEYMIX_TOP=$top
filter=${1:-}
logdir=$build/test-logs
mkdir -p "$logdir"
# Tests run on Debian's python3, not whatever python3 is first on PATH.
PY=/usr/bin/python3

passed=0 failed=0 skipped=0
failures=()

tally() { # name status npass nfail
	passed=$((passed + $3)); failed=$((failed + $4))
	[ "$4" -gt 0 ] && failures+=("$1")
	return 0
}

run_cmocka() {
	local t=$1 name out np nf
	name=$(basename "$t")
	out=$logdir/$name.log
	"$t" >"$out" 2>&1
	local rc=$?
	cat "$out"
	np=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" |
		awk '{s+=$1} END {print s+0}')
	nf=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" |
		awk '{s+=$1} END {print s+0}')
	if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then
		echo "!! $name exited $rc (crash or sanitizer report?)"
		nf=1
	fi
	tally "$name" "$rc" "$np" "$nf"
}

run_fuzz_replay() {
	local t=$1 name corpus out
	name=$(basename "$t")
	corpus=$top/tests/fuzz/corpus/$name
	out=$logdir/fuzz_$name.log
	if "$t" "$corpus" >"$out" 2>&1; then
		echo "fuzz replay $name: $(tail -n 1 "$out")"
		tally "fuzz:$name" 0 1 0
	else
		cat "$out"; echo "!! fuzz replay $name failed"
		tally "fuzz:$name" 1 0 1
	fi
}

run_script() {
	local s=$1 name out rc line
	name=$(basename "$s")
	out=$logdir/$name.log
	echo "== integration: $name"
	case $s in
	*.py) timeout 900 "$PY" "$s" >"$out" 2>&1 ;;
	*) timeout 900 bash "$s" >"$out" 2>&1 ;;
	esac
	rc=$?
	cat "$out"
	if [ "$rc" -eq 77 ]; then
		echo "-- $name skipped (see above)"; skipped=$((skipped + 1))
		return
	fi
	line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$out" |
		tail -n 1)
	if [ -n "$line" ]; then
		local np nf
		np=$(echo "$line" | sed -E 's/^([A-Za-z]+: )?([0-9]+) passed.*/\2/')
		nf=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
		if [ "$rc" -ne 0 ] && [ "$nf" -eq 0 ]; then nf=1; fi
		tally "$name" "$rc" "$np" "$nf"
	elif [ "$rc" -eq 0 ]; then
		tally "$name" 0 1 0
	else
		echo "!! $name exited $rc"; tally "$name" "$rc" 0 1
	fi
}

for t in "$build"/tests/test_*; do
	[ -x "$t" ] || continue
	[ -n "$filter" ] && [[ $(basename "$t") != *$filter* ]] && continue
	run_cmocka "$t"
done
for t in "$build"/fuzz/*; do
	[ -x "$t" ] || continue
	[ -n "$filter" ] && [[ $(basename "$t") != *$filter* ]] && continue
	run_fuzz_replay "$t"
done
if [ "${KEYMIX_TESTS:-}" != unit ]; then
	for s in "$top"/tests/integration/*.sh "$top"/tests/integration/*.py; do
		[ -f "$s" ] || continue
		[ -n "$filter" ] && [[ $(basename "$s") != *$filter* ]] && continue
		run_script "$s"
	done
fi

echo
[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]}"
[ "$skipped" -gt 0 ] && echo "skipped scripts: $skipped"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
