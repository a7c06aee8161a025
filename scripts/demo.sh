#!/usr/bin/env bash
# demo.sh  `make demo`: a secure conference on loopback (docs/demo.md)
#
#   KEYMIX_BUILD=/abs/build bash scripts/demo.sh
#
# kmsd (SQLite in a temp dir), bridged, and four simulated participants
# (uemedia) who get their SRTP leg keys from the KMS -- three by passive
# join, one by active join with the secret of that same conference (its
# controller opens it for active join) -- while a fifth with a wrong
# secret is refused.  Prints who heard whom at what level and
# leaves the recordings in demo-out/.  Everything it starts is stopped on
# exit.  DEMO_SECONDS sets how long the participants speak (default 8).
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
build=${KEYMIX_BUILD:-$top/build}
out=${DEMO_OUT:-$top/demo-out}
secs=${DEMO_SECONDS:-8}

missing=()
for b in kmsd ue bridged uemedia; do
	[ -x "$build/bin/$b" ] || missing+=("build/bin/$b")
done
[ -f "$top/scripts/certs.sh" ] || missing+=("scripts/certs.sh (make certs)")
if [ ${#missing[@]} -gt 0 ]; then
	echo "demo: not built yet: ${missing[*]}" >&2
	echo "demo: the demo needs the KMS, the bridge and the participant" \
		"simulator; nothing was run." >&2
	exit 1
fi

echo "== make certs: demo operator CA and node certificates"
bash "$top/scripts/certs.sh" "$build/certs" >/dev/null

work=$(mktemp -d "${TMPDIR:-/tmp}/keymix-demo.XXXXXX")
child=
cleanup() {
	# the Python runner stops every process it started; make sure it
	# is gone too, then drop the temp dir (the KMS store and keys)
	if [ -n "$child" ] && kill -0 "$child" 2>/dev/null; then
		kill -TERM "$child" 2>/dev/null || true
		wait "$child" 2>/dev/null || true
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

rm -rf "$out"
mkdir -p "$out"
KEYMIX_BUILD=$build KEYMIX_TOP=$top /usr/bin/python3 - "$work" "$out" \
	"$build/certs" "$secs" <<'PY' &
import os
import sys

top = os.environ["KEYMIX_TOP"]
sys.path.insert(0, os.path.join(top, "tests", "integration", "lib"))
import kmscenario  # noqa: E402
from kmproc import Procs  # noqa: E402

work, out, certs, secs = sys.argv[1:5]
procs = Procs(os.path.join(out, "logs"))
try:
    r = kmscenario.run_conference(procs, work, out, certs, float(secs))
finally:
    procs.stop_all()
print()
print("\n".join(kmscenario.table(r)))
print()
print("KMS audit log of the NDS link (key releases, no key material):")
print("\n".join(kmscenario.audit_lines(r)))
print()
print("Bridge legs at the end (GET /v1/conferences/demo):")
print("\n".join(kmscenario.leg_stats(r)))
print()
bad = []
for lis in r.ues:
    for spk in r.ues:
        v = r.levels[lis.name][spk.name]
        if spk is lis and v > kmscenario.LEVEL - 40:
            bad.append("%s hears itself (%.1f)" % (lis.name, v))
        if spk is not lis and abs(v - kmscenario.LEVEL) > 1.0:
            bad.append("%s hears %s at %.1f" % (lis.name, spk.name, v))
if r.intruder_join[0] == 0:
    bad.append("the wrong secret was accepted")
print("Recordings: %s/*.wav   logs: %s/logs/   (docs/demo.md explains "
      "this output)" % (out, out))
if bad:
    print("demo: UNEXPECTED: " + "; ".join(bad))
    sys.exit(1)
print("demo: everyone heard everyone else at %g dBFS +- 1 dB and not "
      "themselves; the wrong secret was refused." % kmscenario.LEVEL)
PY
child=$!
wait "$child"
