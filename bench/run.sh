#!/usr/bin/env bash
# run.sh  Throughput bench: Keymix (bridged) and its peers under loadgen.
#
#   KEYMIX_BUILD=/abs/build bash bench/run.sh quick|full [FILTER]
#
# quick: every row of bench/scenarios/rows.tsv once at its fixed load
#        (3 s warm-up + 9 s window) and capacity extrapolated from CPU per
#        leg-second ("method": "extrapolated"); about 4 minutes.
# full:  a capacity search per row (probe, jump to the predicted capacity,
#        back off on failure) and a final run at 80 % of the capacity for
#        lateness/loss/latency; "measured" when the system's core was
#        saturated with the generator keeping up, else "extrapolated".
# FILTER keeps rows whose "system scenario" contains it.
#
# The system under test runs on CPU 1 and the generator on CPU 0 (taskset)
# when the machine has 2 CPUs or more.  Janus and rtpengine are installed
# with apt-get on demand (bench/peers/*.sh) and run on 127.0.0.1 only; every
# process started here is stopped by its PID.  Results: bench/results/.
set -u
mode=${1:-quick}
filter=${2:-}
top=$(cd "$(dirname "$0")/.." && pwd)
build=${KEYMIX_BUILD:-$top/build}
bin=$build/bin
out=$top/bench/results
work=$build/bench
PY=/usr/bin/python3

case $mode in quick|full) ;; *) echo "usage: run.sh quick|full" >&2; exit 2 ;;
esac
for b in loadgen bridged; do
	[ -x "$bin/$b" ] || { echo "run.sh: $bin/$b missing (make)" >&2; exit 1; }
done
mkdir -p "$out" "$work/rows"
rm -f "$work"/rows/*.json "$work/loadgen.log"

say() { printf 'bench: %s\n' "$*" >&2; }

ncpu=$(nproc 2>/dev/null || echo 1)
if [ "$ncpu" -ge 2 ]; then
	SYS_CPU=1 GEN_CPU=0
	pinning="system under test on CPU 1, generator on CPU 0 (taskset); $ncpu CPUs, shared with other work on this machine"
else
	SYS_CPU=0 GEN_CPU=0
	pinning="one CPU: system and generator share CPU 0 (figures pessimistic)"
fi
# Both the system under test and the generator run SCHED_FIFO priority 10
# (the same for every system; the kernel's RT throttling still leaves 5 %
# of each CPU to other work) so that other jobs on this shared machine do
# not delay their wake-ups; without root they run at normal priority.
if [ "$(id -u)" = 0 ]; then
	PRIO=(chrt -f 10)
	pinning="$pinning; system and generator SCHED_FIFO 10"
else
	PRIO=(nice -n 0)
	pinning="$pinning; normal priority (not root)"
fi
machine="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), $ncpu CPUs, $(uname -sr)"
commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
[ -n "$(git -C "$top" status --porcelain --untracked-files=no 2>/dev/null)" ] &&
	commit="$commit-dirty"

token_file=$work/token
( umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' \
	> "$token_file" )
# bridged's admission control (503 past 2000 legs or 80 % of a worker's
# tick budget) would stop the capacity search short of the capacity: the
# bench lifts it, and measures where real time is lost instead.
bridged_cfg=$work/bridged.json
echo '{"max_legs_per_worker": 100000, "max_load_permille": 1000}' \
	> "$bridged_cfg"

SYS_PID= SYS_CTL=
stop_system() {
	case ${1:-} in
	keymix)
		if [ -n "$SYS_PID" ]; then
			kill -TERM "$SYS_PID" 2>/dev/null
			for _ in $(seq 1 50); do
				kill -0 "$SYS_PID" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL "$SYS_PID" 2>/dev/null
			wait "$SYS_PID" 2>/dev/null
		fi ;;
	janus) bash "$top/bench/peers/janus.sh" stop "$work/janus" ;;
	rtpengine) bash "$top/bench/peers/rtpengine.sh" stop "$work/rtpengine" ;;
	esac
	SYS_PID= SYS_CTL=
}

start_system() {
	local sys=$1 line
	case $sys in
	keymix)
		"${PRIO[@]}" taskset -c "$SYS_CPU" "$bin/bridged" \
			--control 127.0.0.1:0 \
			--token-file "$token_file" --rtp-ports 20000-29999 \
			--workers 1 --log-level warn --config "$bridged_cfg" \
			> "$work/bridged.out" 2> "$work/bridged.err" &
		SYS_PID=$!
		for _ in $(seq 1 100); do
			line=$(grep -m1 '^ready control=' "$work/bridged.out" \
				2>/dev/null) && break
			kill -0 "$SYS_PID" 2>/dev/null || break
			sleep 0.1
		done
		SYS_CTL=${line#ready control=} ;;
	janus|rtpengine)
		line=$(BENCH_CPU=$SYS_CPU BENCH_PRIO="${PRIO[*]}" \
			bash "$top/bench/peers/$sys.sh" \
			start "$work/$sys" 2> "$work/$sys.err" | tail -n 1)
		SYS_CTL=$(echo "$line" | sed -n 's/.*control=\([^ ]*\).*/\1/p')
		SYS_PID=$(echo "$line" | sed -n 's/.*pid=\([0-9]*\).*/\1/p') ;;
	esac
	if [ -z "$SYS_CTL" ] || [ -z "$SYS_PID" ]; then
		say "$sys did not start: $(tail -n 3 "$work/$sys.err" \
			"$work/bridged.err" 2>/dev/null | tr '\n' ' ')"
		stop_system "$sys"
		return 1
	fi
	return 0
}

# run_one SYS SCEN SRTP CX LEGS WARMUP DUR OUT.json -> 0 if a row was written
run_one() {
	local sys=$1 sc=$2 srtp=$3 cx=$4 legs=$5 wu=$6 dur=$7 json=$8
	local args=(--target "$sys" --scenario "$sc" --legs "$legs"
		--srtp "$srtp" --warmup "$wu" --duration "$dur" --json "$json")
	# "-": no Opus encoding in the scenario, the bridge's default
	if [ "$cx" = "-" ]; then args+=(--complexity -1)
	else args+=(--complexity "$cx"); fi
	rm -f "$json"
	if ! start_system "$sys"; then
		$PY - "$json" "$sys" "$sc" "$srtp" "$cx" "$legs" "$work" <<'PY'
import json, os, sys
j, s, sc, srtp, cx, legs, work = sys.argv[1:]
def tail(name):
    try:
        lines = [l.strip() for l in open(os.path.join(work, name))
                 if l.strip()]
        return " / ".join(lines[-3:])
    except OSError:
        return "no log"
why = {"janus": "Janus did not start: " + tail("janus.err"),
       "rtpengine": "rtpengine did not start: " + tail("rtpengine.err"),
       "keymix": "bridged did not start: " + tail("bridged.err")}
json.dump({"name": sc, "system": s, "srtp": srtp == "1",
           "opus_complexity": None if cx == "-" else int(cx),
           "legs": int(legs), "cpu_per_leg_second": None,
           "legs_per_core": None, "calls_per_core": None,
           "method": None, "tick_lateness_p99_ms": None, "loss_pct": None,
           "added_latency_ms": None, "generator_overloaded": False,
           "error": why[s]}, open(j, "w"))
PY
		return 1
	fi
	args+=(--control "$SYS_CTL" --pid "$SYS_PID")
	[ "$sys" = keymix ] && args+=(--token-file "$token_file")
	local perf_pid=
	rm -f "$work/perf.data" "$work/profile.txt"
	if [ -n "${PROFILE:-}" ] && [ "$sys" = keymix ] &&
		command -v perf >/dev/null 2>&1; then
		# sample the bridge inside the steady window (setup takes a
		# moment, so start a little after the warm-up)
		( sleep $((wu + 2)); exec perf record -q -F 499 -g \
			-p "$SYS_PID" -o "$work/perf.data" -- \
			sleep $((dur > 6 ? dur - 3 : 3)) ) \
			> /dev/null 2>&1 &
		perf_pid=$!
	fi
	timeout $((wu + dur + 240)) "${PRIO[@]}" \
		taskset -c "$GEN_CPU" "$bin/loadgen" \
		"${args[@]}" > /dev/null 2> "$work/loadgen.err"
	local rc=$?
	{ echo "== $sys $sc srtp=$srtp cx=$cx legs=$legs"
	  cat "$work/loadgen.err"; } >> "$work/loadgen.log"
	if [ -n "$perf_pid" ]; then
		wait "$perf_pid" 2>/dev/null
		perf report -i "$work/perf.data" --no-children \
			--sort dso,symbol --stdio 2>/dev/null |
			grep -E '^ +[0-9.]+%' | head -n 12 |
			sed -E 's/ +/ /g; s/^ //; s/ +$//; s/( -)+$//' \
			> "$work/profile.txt"
	fi
	stop_system "$sys"
	if [ ! -s "$json" ]; then
		say "loadgen failed ($rc): $(tail -n 2 "$work/loadgen.err")"
		return 1
	fi
	if [ -s "$work/profile.txt" ]; then
		$PY - "$json" "$work/profile.txt" <<'PY'
import json, sys
row = json.load(open(sys.argv[1]))
row["profile_top"] = [l.strip() for l in open(sys.argv[2]) if l.strip()]
json.dump(row, open(sys.argv[1], "w"), indent=1)
PY
	fi
	return 0
}

# jget FILE KEY -> value (empty if null/missing)
jget() {
	$PY -c 'import json,sys
d=json.load(open(sys.argv[1])); v=d
for k in sys.argv[2].split("."):
    v=v.get(k) if isinstance(v,dict) else None
print("" if v is None else (str(v).lower() if isinstance(v,bool) else v))' \
		"$1" "$2" 2>/dev/null
}

# set_fields FILE key=json ... : add/replace fields of a row
set_fields() {
	local f=$1; shift
	$PY - "$f" "$@" <<'PY'
import json, sys
f = sys.argv[1]
d = json.load(open(f))
for kv in sys.argv[2:]:
    k, v = kv.split("=", 1)
    d[k] = json.loads(v)
json.dump(d, open(f, "w"), indent=1)
PY
}

# A run is good when the system kept real time for it: nothing lost, every
# check passed, the generator kept up, and the system below 95 % of its
# core: SCHED_FIFO tasks are throttled there by the kernel
# (sched_rt_runtime_us 950000 of 1000000), so a run that reads 0.95 was
# asking for more than the core gave it.  Late ticks are reported, not
# judged here: on this shared VM one stall of the virtual CPU makes every
# conference late once, at any load.
good() {
	local f=$1
	[ "$(jget "$f" checks.ok)" = true ] || return 1
	[ "$(jget "$f" generator_overloaded)" = false ] || return 1
	$PY -c 'import json,sys
d=json.load(open(sys.argv[1]))
ok = ((d.get("loss_pct") or 0) <= 0.5 and
      (d.get("system_core_load") or 0) < 0.945)
sys.exit(0 if ok else 1)' "$f"
}


search() { # sys sc srtp cx start max json
	local sys=$1 sc=$2 srtp=$3 cx=$4 legs=$5 max=$6 json=$7
	local tmp=$work/search.json best= best_lpc= fail= load next i
	local method=extrapolated trail=""
	for i in 1 2 3 4; do
		run_one "$sys" "$sc" "$srtp" "$cx" "$legs" 3 6 "$tmp" || break
		load=$(jget "$tmp" system_core_load)
		trail="$trail$legs:${load:-?}:$(good "$tmp" && echo ok || echo bad) "
		say "  $sys $sc: $legs legs, system load ${load:-?}, $(good "$tmp" && echo good || echo bad)"
		if good "$tmp"; then
			best=$legs
			best_lpc=$(jget "$tmp" legs_per_core)
			cp "$tmp" "$json"
			if $PY -c "import sys; sys.exit(0 if float('${load:-0}') >= 0.85 else 1)"; then
				method=measured
				break
			fi
			[ "$legs" -ge "$max" ] && break
			# jump to 90 % of the predicted capacity (95 % is the
			# throttle, where a run fails)
			next=$($PY -c "print(max($legs + 1, min($max, int($legs * 0.90 / max(float('${load:-0.01}'), 0.01)))))")
		else
			[ "$(jget "$tmp" generator_overloaded)" = true ] && break
			fail=$legs
			[ -z "$best" ] && next=$((legs / 2)) ||
				next=$(( (best + legs) / 2 ))
			[ "$next" -le "${best:-0}" ] && break
		fi
		legs=$next
	done
	[ -s "$json" ] || { [ -s "$tmp" ] && cp "$tmp" "$json"; } || return 1
	set_fields "$json" "method=\"$method\"" "search=\"$trail\""
	if [ "$method" = measured ]; then
		# legs one core holds in real time: what passed, at most the
		# load-based figure, never beyond a failed load
		local cap
		cap=$($PY -c "
b=$best; l=float('${best_lpc:-0}' or 0); f='${fail}'
c=min(l, float(f)) if f else l
print(int(max(b, c)))")
		set_fields "$json" "legs_per_core=$cap"
		[ "$sc" = transcode_opus_pcmu ] || [ "$sc" = relay_srtp ] &&
			set_fields "$json" "calls_per_core=$((cap / 2))"
	fi
	# lateness, loss and latency at 80 % of that capacity
	local lpc at80
	lpc=$(jget "$json" legs_per_core)
	if [ -n "$lpc" ]; then
		# beyond the generator's reach (extrapolated): the largest load
		# that ran clean instead
		local reach=$max
		[ "$method" = extrapolated ] && [ -n "$best" ] && reach=$best
		# whole conferences (loadgen's conference_size), rounded down:
		# loadgen rounds a load up, and with 100-leg conferences that
		# overshot 80 % by up to 10 points
		local size
		size=$(jget "$json" conference_size)
		size=${size:-1}
		at80=$($PY -c "
n = min($reach, int(float('$lpc') * 0.8)) // $size * $size
print(max($size, n))")
		if PROFILE=1 run_one "$sys" "$sc" "$srtp" "$cx" "$at80" 3 8 \
			"$tmp"; then
			$PY - "$json" "$tmp" <<'PY'
import json, sys
row = json.load(open(sys.argv[1]))
at = json.load(open(sys.argv[2]))
row["at_80pct"] = {k: at.get(k) for k in (
    "legs", "system_core_load", "tick_lateness_p50_ms",
    "tick_lateness_p99_ms", "tick_lateness_max_ms", "late_ticks",
    "loss_pct", "added_latency_ms", "generator_overloaded", "checks")}
if at.get("profile_top"):
    row["profile_top"] = at["profile_top"]
if not at.get("generator_overloaded") and (at.get("checks") or {}).get("ok"):
    for k in ("tick_lateness_p99_ms", "loss_pct", "added_latency_ms"):
        row[k] = at.get(k)
json.dump(row, open(sys.argv[1], "w"), indent=1)
PY
		fi
	fi
	return 0
}

t0=$(date +%s)
n=0
while read -r sys sc srtp cx qlegs max; do
	case $sys in ''|\#*) continue ;; esac
	[ -n "$filter" ] && [[ "$sys $sc" != *$filter* ]] && continue
	n=$((n + 1))
	json=$work/rows/$(printf '%02d' $n)-$sys-$sc-s$srtp-c$cx.json
	say "$mode: $sys $sc srtp=$srtp complexity=$cx"
	if [ "$mode" = quick ]; then
		PROFILE=1 run_one "$sys" "$sc" "$srtp" "$cx" "$qlegs" 3 9 \
			"$json" &&
			set_fields "$json" 'method="extrapolated"'
	else
		search "$sys" "$sc" "$srtp" "$cx" "$qlegs" "$max" "$json"
	fi
	[ -s "$json" ] && say "  -> $(jget "$json" legs_per_core) legs/core, p99 $(jget "$json" tick_lateness_p99_ms) ms, loss $(jget "$json" loss_pct) %, checks $(jget "$json" checks.ok)"
done < "$top/bench/scenarios/rows.tsv"

$PY "$top/bench/report.py" "$mode" "$out" "$machine" "$commit" \
	"$pinning" "$work"/rows/*.json || exit 1
if ! command -v gnuplot >/dev/null 2>&1; then
	say "installing gnuplot-nox for the plot"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends gnuplot-nox >/dev/null 2>&1 || true
fi
if command -v gnuplot >/dev/null 2>&1; then
	gnuplot "$out/plot.gp" 2>/dev/null || say "gnuplot failed"
fi
rm -f "$out/plot.gp" "$out/plot.dat"
say "done in $(( $(date +%s) - t0 )) s: $out/latest.md"
cat "$out/latest.md"
