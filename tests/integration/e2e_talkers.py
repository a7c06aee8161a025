"""e2e_talkers.py  Participants take turns: talker changes in a mix.

A (Opus), B (G.722) and C (PCMA) speak one after the other (uemedia
--talk windows) while L (Opus) only listens; all send RFC 6464 levels.
Every listener hears exactly the current speaker, at its level, and
nobody else: a speaker who stopped is gone, nobody hears itself.  Across
the talker changes the stream each participant receives from the bridge
stays one SSRC with a continuous sequence (no loss counted)."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import kmaudio  # noqa: E402
from kmproc import Procs  # noqa: E402
from kmsetup import UE, start_bridged  # noqa: E402
from kmtest import Suite, srtp_clean  # noqa: E402

suite = Suite("e2e_talkers")
suite.need("bridged", "uemedia")
expect = suite.expect
procs = Procs(suite.logdir)
T = suite.tmp
DUR = 6.0
TURNS = {"A": (0.5, 2.3), "B": (2.3, 4.1), "C": (4.1, 5.9)}
LEVEL = -18.0

try:
    api, bridged = start_bridged(procs, T)
    api.create_conference("turns", mode="mix", rate=48000, max_talkers=2)
    ues = [
        UE("A", T, tone=520, level=LEVEL, codec="opus", level_ext=1,
           profile="AES_CM_128_HMAC_SHA1_80", talk=[TURNS["A"]]),
        UE("B", T, tone=1330, level=LEVEL, codec="g722", level_ext=1,
           profile="AEAD_AES_128_GCM", talk=[TURNS["B"]]),
        UE("C", T, tone=2210, level=LEVEL, codec="pcma", level_ext=1,
           profile="AES_CM_128_HMAC_SHA1_80", talk=[TURNS["C"]]),
        UE("L", T, codec="opus", level_ext=1,
           profile="AES_CM_128_HMAC_SHA1_80"),
    ]
    for ue in ues:
        ue.leg = api.add_leg("turns", ue.leg_body(key=ue.inline(T)))
    for ue in ues:
        ue.start(procs, ue.leg["local"], DUR)
except Exception as e:
    suite.fail_setup("%s: %s" % (type(e).__name__, e))

for ue in ues:
    ue.finish(DUR + 20)
speakers = ues[:3]


def inner(w):
    """the part of a turn clear of both switches (and codec start-up)"""
    return (w[0] + 0.5, w[1] - 0.15)


for lis in ues:
    data = kmaudio.read_wav(lis.wav)
    for spk in speakers:
        for who, w in TURNS.items():
            win = inner(w)
            if spk.name == who and spk is not lis:
                with suite.case("%s hears %s during %s's turn" % (
                        lis.name, spk.name, who)):
                    ok, m = kmaudio.has_tone(data, spk.tone, LEVEL, 1.0,
                                             *win)
                    expect(ok, "%.2f dBFS in %.1f-%.1f s" % ((m,) + win))
            else:
                with suite.case("%s does not hear %s during %s's turn" % (
                        lis.name, spk.name, who)):
                    ok, m = kmaudio.lacks_tone(data, spk.tone, LEVEL, 40,
                                               *win)
                    expect(ok, "%.1f dBFS in %.1f-%.1f s" % ((m,) + win))

for ue in ues:
    with suite.case("%s: one continuous stream from the bridge" % ue.name):
        s = ue.stats
        expect(ue.rc == 0, "uemedia exit %s" % ue.rc)
        expect(s.get("sources") == 1, "SSRCs seen: %s" % s.get("sources"))
        expect(s.get("lost") == 0, "lost %s (sequence gaps)" % s.get("lost"))
        expect(s.get("received", 0) > 0.8 * DUR * 50,
               "received %s" % s.get("received"))
        ok, why = srtp_clean(s)
        expect(ok, why)

procs.stop_all()
suite.finish()
