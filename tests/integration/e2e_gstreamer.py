"""e2e_gstreamer.py  An independent SRTP stack in the conference.

GStreamer (srtpenc/srtpdec, opusenc/rtpopuspay, lib/gstpeer.py) joins a
"mix" conference with inline AEAD_AES_128_GCM keys next to two uemedia
participants (Opus and PCMU, other profiles).  GStreamer's recording must
hold both others' tones at their levels and not its own; both uemedia
participants must hear GStreamer."""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import kmaudio  # noqa: E402
from kmproc import Procs  # noqa: E402
from kmsetup import UE, GstUE, gst_available, start_bridged  # noqa: E402
from kmtest import Suite, srtp_clean  # noqa: E402

suite = Suite("e2e_gstreamer")
suite.need("bridged", "uemedia")
if not gst_available():
    # the packages are in scripts/packages.txt: make deps installs them
    suite.fail_setup("GStreamer with srtp/opus elements and python3-gst-1.0"
                     " not installed (run make deps)")
expect = suite.expect
procs = Procs(suite.logdir)
T = suite.tmp
DUR = 4.0
WIN = (1.0, DUR - 0.2)

try:
    api, bridged = start_bridged(procs, T)
    api.create_conference("gst", mode="mix", rate=48000, max_talkers=3)
    g = GstUE("gst", T, tone=1200, level=-18, profile="AEAD_AES_128_GCM")
    u1 = UE("u1", T, tone=500, level=-20, codec="opus",
            profile="AES_CM_128_HMAC_SHA1_80")
    u2 = UE("u2", T, tone=800, level=-20, codec="pcmu",
            profile="AES_256_CM_HMAC_SHA1_80")
    everyone = (g, u1, u2)
    for ue in everyone:
        body = ue.leg_body(key=ue.inline(T))
        if ue is g:
            body["payload_type"] = 111
            body["rate"] = 48000
        ue.leg = api.add_leg("gst", body)
    for ue in everyone:
        ue.start(procs, ue.leg["local"], DUR)
except Exception as e:
    suite.fail_setup("%s: %s" % (type(e).__name__, e))

# a mid-call snapshot of the legs (talkers, levels, jitter buffers) and
# the one after the call, both kept with the logs for a failing run
time.sleep(DUR / 2)
mid = api.conference("gst")
for ue in everyone:
    ue.finish(DUR + 20)
conf = api.conference("gst")
with open(os.path.join(suite.logdir, "conference.json"), "w") as f:
    json.dump({"mid_call": mid, "after": conf}, f, indent=1)

with suite.case("GStreamer pipeline ran to the end"):
    expect(g.rc == 0, "gstpeer exit %s: %s" % (g.rc, g.proc.stderr_tail()))
    expect(any(ln.startswith("gstpeer done eos=1") for ln in g.proc.lines),
           "no clean EOS: %s" % g.proc.lines[-2:])

for spk in (u1, u2):
    with suite.case("GStreamer hears %s (%s) at %g dBFS" % (
            spk.name, spk.codec, spk.level)):
        ok, m = kmaudio.has_tone(g.wav, spk.tone, spk.level, 1.0, *WIN)
        expect(ok, "measured %.2f" % m)

with suite.case("GStreamer does not hear itself"):
    ok, m = kmaudio.lacks_tone(g.wav, g.tone, g.level, 40, *WIN)
    expect(ok, "own tone at %.1f" % m)

for lis in (u1, u2):
    with suite.case("%s hears GStreamer at %g dBFS" % (lis.name, g.level)):
        ok, m = kmaudio.has_tone(lis.wav, g.tone, g.level, 1.0, *WIN)
        expect(ok, "measured %.2f" % m)

with suite.case("bridge: GStreamer's leg authenticated every packet"):
    legs = {l.get("participant"): l for l in conf.get("legs", [])}
    l = legs.get(g.uri, {})
    expect(l.get("packets_in", 0) >= 0.9 * DUR * 50,
           "packets_in %s" % l.get("packets_in"))
    ok, why = srtp_clean(l)
    expect(ok, why)

procs.stop_all()
suite.finish()
