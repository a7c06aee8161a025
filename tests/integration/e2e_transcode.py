"""e2e_transcode.py  Opus/SRTP <-> PCMA/SRTP through a "transcode"
conference, each leg with its own inline keys and its own profile.

A (Opus 48 kHz, AES_CM_128_HMAC_SHA1_80) speaks 1000 Hz at -12 dBFS,
B (PCMA 8 kHz, AEAD_AES_128_GCM) speaks 450 Hz at -18 dBFS: each must hear
the other's tone at the level sent (+- 1 dB) and its own not at all
(>= 40 dB down).  Then the same with G.722 against Opus 16 kHz, and
PCMU against Opus 24 kHz with both legs over IPv6 (::1).  The conferences
give no rate: each runs at the lower of its legs' rates, at least 16 kHz
for an Opus encoder (16 kHz in all three)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import kmaudio  # noqa: E402
from kmproc import Procs  # noqa: E402
from kmsetup import UE, start_bridged  # noqa: E402
from kmtest import Suite, srtp_clean  # noqa: E402

suite = Suite("e2e_transcode")
suite.need("bridged", "uemedia")
expect = suite.expect
procs = Procs(suite.logdir)
T = suite.tmp
DUR = 3.0
WIN = (0.8, DUR - 0.2)

try:
    api, bridged = start_bridged(procs, T)
except Exception as e:
    suite.fail_setup(str(e))

AUDIO_RATE = {"opus": 48000, "g722": 16000, "pcmu": 8000, "pcma": 8000}
cases = [
    ("opus-pcma",
     UE("A", T, tone=1000, level=-12, codec="opus", rate=48000,
        profile="AES_CM_128_HMAC_SHA1_80"),
     UE("B", T, tone=450, level=-18, codec="pcma",
        profile="AEAD_AES_128_GCM")),
    ("opus16-g722",
     UE("C", T, tone=900, level=-15, codec="opus", rate=16000,
        profile="AES_256_CM_HMAC_SHA1_80"),
     UE("D", T, tone=2500, level=-20, codec="g722",
        profile="AEAD_AES_256_GCM")),
    ("v6-pcmu-opus",
     UE("E", T, tone=350, level=-16, codec="pcmu",
        profile="AES_CM_128_HMAC_SHA1_32", host="::1"),
     UE("F", T, tone=1900, level=-22, codec="opus", rate=24000,
        profile="AES_CM_128_HMAC_SHA1_80", host="::1")),
]
for cid, a, b in cases:
    try:
        api.create_conference(cid, mode="transcode")
        for ue in (a, b):
            ue.leg = api.add_leg(cid, ue.leg_body(key=ue.inline(T)))
        for ue in (a, b):
            ue.start(procs, ue.leg["local"], DUR)
    except Exception as e:
        suite.fail_setup("%s: %s" % (cid, e))

for cid, a, b in cases:
    sa, sb = a.finish(), b.finish()
    conf = api.conference(cid)
    with suite.case("%s: %s hears %s at %g dBFS" % (cid, a.name, b.name,
                                                    b.level)):
        ok, m = kmaudio.has_tone(a.wav, b.tone, b.level, 1.0, *WIN)
        expect(ok, "measured %.2f" % m)
    with suite.case("%s: %s hears %s at %g dBFS" % (cid, b.name, a.name,
                                                    a.level)):
        ok, m = kmaudio.has_tone(b.wav, a.tone, a.level, 1.0, *WIN)
        expect(ok, "measured %.2f" % m)
    with suite.case("%s: nobody hears itself" % cid):
        for ue in (a, b):
            ok, m = kmaudio.lacks_tone(ue.wav, ue.tone, ue.level, 40, *WIN)
            expect(ok, "%s own tone at %.1f" % (ue.name, m))
    with suite.case("%s: SRTP clean, packets both ways" % cid):
        for ue, s in ((a, sa), (b, sb)):
            expect(ue.rc == 0, "%s exit %s" % (ue.name, ue.rc))
            ok, why = srtp_clean(s)
            expect(ok, "%s: %s" % (ue.name, why))
            expect(s.get("received", 0) >= 0.9 * s.get("sent", 1),
                   "%s received %s of %s" % (ue.name, s.get("received"),
                                             s.get("sent")))
        for l in conf.get("legs", []):
            ok, why = srtp_clean(l)
            expect(ok, "bridge leg %s: %s" % (l.get("participant"), why))
    with suite.case("%s: conference reports mode transcode" % cid):
        expect(conf.get("mode") == "transcode", "mode %s" %
               conf.get("mode"))
        expect(len(conf.get("legs", [])) == 2, "legs")
    # no "rate" given: the lower of the legs' rates, Opus counting 48 kHz,
    # and at least 16 kHz for an Opus encoder
    want = max(16000, min([AUDIO_RATE[ue.codec] for ue in (a, b)]))
    with suite.case("%s: automatic rate %d Hz" % (cid, want)):
        expect(conf.get("rate") == want and conf.get("rate_auto") is True,
               "rate %s, rate_auto %s" % (conf.get("rate"),
                                          conf.get("rate_auto")))

with suite.case("a third leg on a transcode conference is refused"):
    x = UE("X", T, codec="opus", profile=None)
    st, js = api.add_leg_status("opus-pcma", x.leg_body())
    expect(st in (409, 422), "status %s %s" % (st, js))

procs.stop_all()
suite.finish()
