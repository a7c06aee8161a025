#!/usr/bin/python3
"""bridge_rtp.py  RTP behaviour of bridged seen from the participants.

- Each leg's stream keeps one SSRC, sequence numbers that go up by exactly
  one and timestamps that only grow in whole frames, across talker changes
  (mute/unmute and a talker leaving) and direction changes.
- RFC 6464: with max_talkers 1, the leg whose packets carry the loudest
  client-to-mixer level is the talker, whatever the audio itself says:
  the bridge passes the parsed level to the mixer.
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bridge_lib import bt  # noqa: E402

T = bt.Tally("bridge_rtp")
if not os.path.exists(bt.BRIDGED):
    print("bridged not built")
    sys.exit(77)


def continuity(p):
    """(ok, why) for the audio stream p received from the bridge."""
    s = p.rx_seqts
    if len(s) < 50:
        return False, "only %d packets" % len(s)
    for (s0, t0, _), (s1, t1, _) in zip(s, s[1:]):
        if (s1 - s0) & 0xFFFF != 1:
            return False, "seq %d -> %d" % (s0, s1)
        dt = (t1 - t0) & 0xFFFFFFFF
        if dt == 0 or dt % 160 or dt > 0x7FFFFFFF:
            return False, "ts %d -> %d" % (t0, t1)
    return True, "%d packets" % len(s)


br = bt.Bridge(rtp_ports="32600-32699", workers=2)
parts = []
try:
    # ---- continuity ----
    st, j = br.conf("r1", rate=8000)
    names = (("alice", 500.0), ("bob", 900.0), ("carol", 1400.0))
    for n, f in names:
        p = bt.Participant(n, f, profile="AES_CM_128_HMAC_SHA1_80")
        st, j = br.leg("r1", **p.leg_body())
        p.joined(j)
        p.bridge_ssrc = j["ssrc"]
        parts.append(p)
    a, b, c = parts
    path = "/v1/conferences/r1/legs/"

    def hook(i):
        if i == 40:
            br.request("PATCH", path + b.leg_id, {"muted": True})
        if i == 70:
            br.request("PATCH", path + b.leg_id, {"muted": False})
        if i == 90:
            c.freq = None            # carol stops talking (and sending)
        if i == 120:
            br.request("PATCH", path + a.leg_id, {"direction": "sendonly"})
        if i == 140:
            br.request("PATCH", path + a.leg_id, {"direction": "sendrecv"})

    bt.run_media(parts, 3.5, hook)
    for p in (a, b):
        ok, why = continuity(p)
        T.check(ok, "%s: seq +1, ts in whole frames across talker "
                "changes (%s)" % (p.name, why))
        T.check(p.rx_ssrcs == {p.bridge_ssrc}, "%s: one SSRC" % p.name)
        T.check(p.rx_errors == 0, "%s: all packets verified" % p.name)
    st, conf = br.get("r1")
    T.check(all(x["lost"] == 0 for x in conf["legs"]), "no loss counted")
    br.request("DELETE", "/v1/conferences/r1")
    for p in parts:
        p.close()
    parts = []

    # ---- RFC 6464 levels drive talker selection ----
    st, j = br.conf("r2", rate=8000, max_talkers=1)
    levels = {"alice": 10, "bob": 90, "carol": 100}
    for n, f in names:
        p = bt.Participant(n, f, profile="AEAD_AES_128_GCM")
        p.level = levels[n]
        st, j = br.leg("r2", **p.leg_body(audio_level_ext=1))
        T.check(st == 201, "%s joins with audio_level_ext 1" % n)
        p.joined(j)
        parts.append(p)
    a, b, c = parts
    bt.run_media(parts, 2.5)
    st, conf = br.get("r2")
    T.check(conf["talkers"] == [a.leg_id], "the loudest RFC 6464 level "
            "is the one talker: %s" % conf["talkers"])
    pb = [bt.band_power(b.audio(1.0), f) for _, f in names]
    pc = [bt.band_power(c.audio(1.0), f) for _, f in names]
    print("bob hears", ["%.3f" % x for x in pb], "carol hears",
          ["%.3f" % x for x in pc])
    T.check(pb[0] > 0.5 and pb[2] < 0.01, "bob hears alice (level -10) "
            "and not carol (level -100)")
    T.check(pc[0] > 0.5 and pc[1] < 0.01, "carol hears alice and not bob")
    # now bob claims to be loudest: he becomes the talker
    b.level = 0
    for p in parts:
        p.rx_audio = []
    bt.run_media(parts, 2.5)
    st, conf = br.get("r2")
    T.check(conf["talkers"] == [b.leg_id], "bob (level 0) takes over: %s"
            % conf["talkers"])
    pc = [bt.band_power(c.audio(1.5), f) for _, f in names]
    T.check(pc[1] > 0.5 and pc[0] < 0.01, "carol now hears bob, not alice")
finally:
    br.stop()
    for p in parts:
        p.close()
T.done()
