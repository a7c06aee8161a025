#!/usr/bin/python3
"""bridge_rtp.py  RTP behaviour of bridged seen from the participants.

- Each leg's stream keeps one SSRC, sequence numbers that go up by exactly
  one and timestamps that only grow in whole frames, across talker changes
  (mute/unmute and a talker leaving) and direction changes.
- RFC 6464: with max_talkers 1, the leg whose packets carry the loudest
  client-to-mixer level is the talker, whatever the audio itself says:
  the bridge passes the parsed level to the mixer.

This bridge sends with sendmmsg ("send-io-uring": 0); the other
integration tests run the default, one io_uring submission per loop pass
where the kernel allows it.
"""

import os
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bridge_lib import bt, srtp  # noqa: E402

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


br = bt.Bridge(rtp_ports="32600-32699", workers=2,
               config={"rtcp-interval-ms": 500, "send-io-uring": 0})
parts = []
try:
    T.check(", sends sendmmsg" in br.stderr(), "the bridge sends with "
            "sendmmsg as configured")
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
            br.request("PATCH", path + a.leg_id, {"direction": "recvonly"})
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

    # RTCP: answer the bridge's last SR with an RR held back 300 ms and
    # DLSR 0: the bridge's RTT is at least the hold; our loss is reported
    srs = [(pk, t) for pk, t in zip(a.rx_rtcp, a.rx_rtcp_t)
           if pk[1] == 200]
    T.check(len(srs) >= 1, "alice got sender reports (%d)" % len(srs))
    if srs:
        pk, t_sr = srs[-1]
        lsr = (struct.unpack("!I", pk[8:12])[0] << 16 |
               struct.unpack("!I", pk[12:16])[0] >> 16) & 0xFFFFFFFF
        while time.monotonic() < t_sr + 0.3:
            time.sleep(0.01)
        a.send_rtcp_rr(a.bridge_ssrc, lsr, 0, cum_lost=7, fraction=64)
        ok = bt.wait_for(lambda: [x for x in br.get("r1")[1]["legs"]
                                  if x["leg"] == a.leg_id][0]
                         ["remote_lost"] == 7)
        la = [x for x in br.get("r1")[1]["legs"] if x["leg"] == a.leg_id][0]
        T.check(ok, "loss from alice's receiver report: %s" %
                la["remote_lost"])
        T.check(la["rtt_ms"] >= 290, "RTT from LSR/DLSR covers the 300 ms "
                "hold (%.1f ms)" % la["rtt_ms"])
    # ---- symmetric RTP: an authenticated packet from a new address
    # moves the leg there (a NAT rebinding); a plain leg never moves ----
    import socket
    new = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    new.bind(("127.0.0.1", 0))
    new.setblocking(False)
    old_sock, a.sock = a.sock, new
    a.remote_str_new = "127.0.0.1:%d" % new.getsockname()[1]
    for p in parts:
        p.rx_audio = []
    bt.run_media([a, b], 1.0)
    la = [x for x in br.get("r1")[1]["legs"] if x["leg"] == a.leg_id][0]
    T.check(la["latches"] == 1 and la["remote"] == a.remote_str_new,
            "alice's leg followed her to %s after a verified packet "
            "(%s, %d)" % (a.remote_str_new, la["remote"], la["latches"]))
    T.check(bt.band_power(a.audio(0.3), b.freq) > 0.05,
            "alice hears bob on her new port")
    old_sock.close()
    br.request("DELETE", "/v1/conferences/r1")
    for p in parts:
        p.close()
    parts = []

    # a plain RTP leg: packets from elsewhere are taken, never followed
    st, j = br.conf("r3", rate=8000)
    pl = bt.Participant("plain", 700.0)
    st, j = br.leg("r3", **pl.leg_body())
    pl.joined(j)
    parts.append(pl)
    other = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    other.bind(("127.0.0.1", 0))
    old_sock, pl.sock = pl.sock, other
    for _ in range(5):
        pl.send_frame()
    pl.sock = old_sock
    other.close()
    lp = bt.wait_for(lambda: br.get("r3")[1]["legs"][0]["packets_in"] >= 5)
    lp = br.get("r3")[1]["legs"][0]
    T.check(lp["packets_in"] >= 5 and lp["latches"] == 0 and
            lp["remote"] == pl.remote_str, "plain RTP leg never re-latches "
            "(%s, %d)" % (lp["remote"], lp["latches"]))
    br.request("DELETE", "/v1/conferences/r3")
    pl.close()
    parts.remove(pl)

    # ---- direction is the participant's: recvonly = listen-only ----
    st, j = br.conf("r4", rate=8000)
    trio = []
    for n, f, d in (("lis", 500.0, "recvonly"), ("talk", 900.0,
                                                 "sendonly"),
                    ("both", 1400.0, "sendrecv")):
        p = bt.Participant(n, f, profile="AES_CM_128_HMAC_SHA1_80")
        st, j = br.leg("r4", **p.leg_body(direction=d))
        p.joined(j)
        trio.append(p)
    lis, talk, both = trio
    parts.extend(trio)
    bt.run_media(trio, 2.0)
    pb = [bt.band_power(both.audio(), p.freq) for p in trio]
    pl = [bt.band_power(lis.audio(), p.freq) for p in trio]
    T.check(pb[0] < 0.01 and pb[1] > 0.05, "sendrecv hears the sendonly "
            "participant, not the recvonly one (%.3f, %.3f)" %
            (pb[1], pb[0]))
    T.check(pl[1] > 0.05 and pl[2] > 0.05, "the recvonly participant "
            "hears the others (%.3f, %.3f)" % (pl[1], pl[2]))
    T.check(len(talk.rx_audio) == 0, "the sendonly participant gets no "
            "audio (%d packets)" % len(talk.rx_audio))
    br.request("DELETE", "/v1/conferences/r4")
    for p in trio:
        p.close()
        parts.remove(p)

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
    # 3.5 s, judged after 2 s: the switch waits out the talker hysteresis,
    # and a loaded machine delays the Python senders
    bt.run_media(parts, 3.5)
    st, conf = br.get("r2")
    T.check(conf["talkers"] == [b.leg_id], "bob (level 0) takes over: %s"
            % conf["talkers"])
    pc = [bt.band_power(c.audio(2.0), f) for _, f in names]
    T.check(pc[1] > 0.5 and pc[0] < 0.01, "carol now hears bob, not alice")

    # ---- RFC 6904: an encrypted level is decrypted before it is used ----
    br.request("DELETE", "/v1/conferences/r2")
    for p in parts:
        p.close()
    parts = []
    st, j = br.conf("r5", rate=8000, max_talkers=1)
    levels = {"alice": 0, "bob": 40, "carol": 50}
    for n, f in names:
        p = bt.Participant(n, f, profile="AES_CM_128_HMAC_SHA1_80")
        p.level = levels[n]
        body = p.leg_body(audio_level_ext=1)
        if n == "alice":
            body["srtp"]["encrypted_ext"] = [1]
            p.send_ctx = srtp.Context(p.profile, p.rx_key, enc_ext=[1])
        st, j = br.leg("r5", **body)
        T.check(st == 201, "%s joins (RFC 6904 %s)" % (n, n == "alice"))
        p.joined(j)
        parts.append(p)
    a, b, c = parts
    during = []
    bt.run_media(parts, 2.5, lambda i: i == 100 and
                 during.append(br.get("r5")[1]))
    wire = a.sent[-1][12:20]
    T.check(wire[:4] == b"\xbe\xde\x00\x01" and wire[5] != 0x80,
            "alice's level is not in clear on the wire")
    st, conf = br.get("r5")
    la = [x for x in conf["legs"] if x["leg"] == a.leg_id][0]
    T.check(la["auth_failures"] == 0 and la["packets_in"] > 100,
            "bridge verified alice's packets with encrypted extensions")
    conf = during[0]
    la = [x for x in conf["legs"] if x["leg"] == a.leg_id][0]
    # a level read without decryption would be noise, averaging -63 dBov;
    # the decrypted 0 dBov reaches the smoothed level within a few dB
    T.check(la["level_dbov"] > -20, "the mixer got alice's decrypted level "
            "-0 dBov (%.1f)" % la["level_dbov"])
    T.check(conf["talkers"] == [a.leg_id], "alice is the talker: %s" %
            conf["talkers"])
    pb = bt.band_power(b.audio(1.0), a.freq)
    T.check(pb > 0.9, "bob hears alice alone all along (%.3f)" % pb)
finally:
    br.stop()
    for p in parts:
        p.close()
T.done()
