#!/usr/bin/env bash
# bench_loadgen.sh  The load generator against its reflector (a stand-in
# bridge with the same control API): SRTP legs set up through the API with
# their own keys, traffic both ways, the sampled checks pass; a wrong token
# is refused.  A correctness test of the instrument, not a benchmark: no
# figure is asserted.
set -u
bin=${KEYMIX_BUILD:?}/bin
work=$(mktemp -d)
pass=0 fail=0
refl=
cleanup() {
	[ -n "$refl" ] && kill "$refl" 2>/dev/null && wait "$refl" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT
ok() { echo "ok: $*"; pass=$((pass + 1)); }
ko() { echo "FAIL: $*"; fail=$((fail + 1)); }

umask 077
echo "bench-test-token-$$" > "$work/token"
"$bin/loadgen" --reflector --control 127.0.0.1:0 --token-file "$work/token" \
	> "$work/refl.out" 2> "$work/refl.err" &
refl=$!
for _ in $(seq 1 50); do
	grep -q '^ready control=' "$work/refl.out" && break
	sleep 0.1
done
ctl=$(sed -n 's/^ready control=//p' "$work/refl.out")
[ -n "$ctl" ] && ok "reflector ready on $ctl" || { ko "reflector"; echo "0 passed, 1 failed"; exit 1; }

check_row() { # name file
	/usr/bin/python3 - "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
c = d["checks"]
bad = []
if not c["ok"]: bad.append("checks not ok")
if c["auth_failures"]: bad.append("auth failures")
if c["ssrc_mismatches"]: bad.append("ssrc mismatches")
if not c["decrypted"]: bad.append("nothing decrypted")
if c["audio_ok_legs"] != c["monitored_legs"] or not c["monitored_legs"]:
    bad.append("audio missing on monitored legs")
if d.get("cpu_per_leg_second") is None: bad.append("no CPU figure")
if d.get("latency_probes", 0) < 1: bad.append("no latency probe seen")
for k in ("name", "system", "srtp", "opus_complexity", "legs",
          "cpu_per_leg_second", "legs_per_core", "calls_per_core", "method",
          "tick_lateness_p99_ms", "loss_pct", "added_latency_ms",
          "generator_overloaded"):
    if k not in d: bad.append("missing " + k)
print("; ".join(bad))
sys.exit(1 if bad else 0)
PY
}

for sc in opus10_2talk_levels transcode_opus_pcmu; do
	if "$bin/loadgen" --target reflector --control "$ctl" \
		--token-file "$work/token" --scenario "$sc" --legs 20 \
		--pid "$refl" --warmup 1 --duration 2 --json "$work/$sc.json" \
		> /dev/null 2> "$work/$sc.err"; then
		why=$(check_row "$sc" "$work/$sc.json") &&
			ok "$sc: keys, SSRCs, audio and probes check out" ||
			ko "$sc: $why"
	else
		ko "$sc: loadgen failed: $(tail -n 2 "$work/$sc.err")"
	fi
done

echo "wrong-token" > "$work/bad"
if "$bin/loadgen" --target reflector --control "$ctl" --token-file \
	"$work/bad" --scenario g711_10 --legs 10 --warmup 0 --duration 1 \
	--json "$work/bad.json" > /dev/null 2> "$work/bad.err"; then
	ko "a wrong token was not refused"
else
	grep -q '401' "$work/bad.json" && ok "wrong token refused (401)" ||
		ko "wrong token: no 401 in $(cat "$work/bad.json")"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
