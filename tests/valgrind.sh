#!/usr/bin/env bash
# valgrind.sh  Run the G.711 integration tests with every daemon and tool
# under valgrind memcheck: zero errors and zero definite leaks.
#
#   KEYMIX_BUILD=/abs/build bash tests/valgrind.sh [SCRIPT...]
#
# Without arguments it runs every tests/integration script that carries
# the line "# keymix: valgrind" (tests whose media is G.711: Opus at full
# complexity cannot keep real time under valgrind).  It builds a shadow
# tree build/valgrind/ whose bin/ holds wrappers that start the real
# binaries under valgrind (logs in build/valgrind/logs/), points
# KEYMIX_BUILD at it and sets KEYMIX_VALGRIND=1 (tests may lighten their
# load then).  A non-empty valgrind log is a failure.  Not part of CI.
set -u
top=$(cd "$(dirname "$0")/.." && pwd)
build=${KEYMIX_BUILD:-$top/build}
vg=$build/valgrind
command -v valgrind >/dev/null || { echo "valgrind not installed"; exit 1; }
rm -rf "$vg"
mkdir -p "$vg/bin" "$vg/logs"
for d in "$build"/*; do
	n=$(basename "$d")
	case $n in bin|valgrind|asan|tsan|libfuzzer) continue ;; esac
	ln -s "$d" "$vg/$n"
done
for b in "$build"/bin/*; do
	[ -x "$b" ] || continue
	n=$(basename "$b")
	cat >"$vg/bin/$n" <<WRAP
#!/bin/sh
exec valgrind --quiet --leak-check=full --show-leak-kinds=definite \\
	--errors-for-leak-kinds=definite --num-callers=30 \\
	--suppressions=$top/tests/valgrind.supp \\
	--log-file=$vg/logs/$n.%p.log "$b" "\$@"
WRAP
	chmod +x "$vg/bin/$n"
done

if [ $# -gt 0 ]; then
	scripts=("$@")
else
	mapfile -t scripts < <(grep -l '^# keymix: valgrind' \
		"$top"/tests/integration/*.sh "$top"/tests/integration/*.py \
		2>/dev/null)
fi
passed=0 failed=0
for s in "${scripts[@]}"; do
	name=$(basename "$s")
	echo "== valgrind: $name"
	case $s in
	*.py) KEYMIX_BUILD=$vg KEYMIX_VALGRIND=1 timeout 900 \
		/usr/bin/python3 "$s" >"$vg/logs/$name.out" 2>&1 ;;
	*) KEYMIX_BUILD=$vg KEYMIX_VALGRIND=1 timeout 900 \
		bash "$s" >"$vg/logs/$name.out" 2>&1 ;;
	esac
	rc=$?
	tail -n 1 "$vg/logs/$name.out"
	if [ "$rc" -eq 0 ]; then
		passed=$((passed + 1))
	elif [ "$rc" -eq 77 ]; then
		echo "   skipped"
	else
		echo "   FAILED (exit $rc): see $vg/logs/$name.out"
		failed=$((failed + 1))
	fi
done
nlogs=0
for l in "$vg"/logs/*.log; do
	[ -e "$l" ] || continue
	nlogs=$((nlogs + 1))
	if [ -s "$l" ]; then
		echo "!! valgrind reported in $(basename "$l"):"
		head -n 40 "$l"
		failed=$((failed + 1))
	fi
done
echo "valgrind: $nlogs processes checked"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
