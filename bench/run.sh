#!/usr/bin/env bash
# run.sh  Run the benchmarks of a built tree: `make bench` / `make bench-quick`
#
#   KEYMIX_BUILD=/abs/build bash bench/run.sh quick|full
#
# Each benchmark prints its own table (see docs/performance.md for what
# the columns mean and the figures measured on the project's VM).
set -u
build=${KEYMIX_BUILD:-$(cd "$(dirname "$0")/.." && pwd)/build}
mode=${1:-quick}
rc=0

run() { # name args...
	local b=$build/bin/$1
	shift
	if [ ! -x "$b" ]; then
		echo "== $(basename "$b"): not built, skipped"
		return 0
	fi
	echo "== $(basename "$b") $*"
	"$b" "$@" || rc=1
}

case $mode in
quick)
	run srtpbench -t 0.01 -n 1,100
	run mixbench -q
	;;
full)
	run srtpbench
	run mixbench
	;;
*)
	echo "usage: bench/run.sh quick|full" >&2
	exit 2
	;;
esac
exit $rc
