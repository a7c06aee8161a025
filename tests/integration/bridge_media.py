#!/usr/bin/python3
"""bridge_media.py  bridged alone with inline keys: SRTP media end to end.

Three participants (AES-CM-80, AEAD-AES-128-GCM over IPv6, AES-CM-32)
send distinct tones as SRTP/PCMU through an independent SRTP stack
(bridge_lib/srtp.py); each must hear the other two and not itself.
Forged, replayed, truncated and malformed packets aimed at one leg are
counted in that leg's stats only and nobody's audio suffers.  Then RFC 4733
events, RTCP, a rekey with new inline keys, and a clean SIGTERM drain.
"""

import os
import signal
import socket
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bridge_lib import bt  # noqa: E402

T = bt.Tally("bridge_media")
if not os.path.exists(bt.BRIDGED):
    print("bridged not built")
    sys.exit(77)

br = bt.Bridge(rtp_ports="32100-32199", workers=2,
               config={"rtcp-interval-ms": 300})
FREQ = {"alice": 500.0, "bob": 900.0, "carol": 1400.0}
# alice's sequence numbers wrap in her first second: her rekey below
# must carry the rollover counter (RFC 3711 3.3.1) on both sides
a = bt.Participant("alice", FREQ["alice"],
                   profile="AES_CM_128_HMAC_SHA1_80", te_pt=101,
                   first_seq=65500)
b = bt.Participant("bob", FREQ["bob"], family=socket.AF_INET6,
                   profile="AEAD_AES_128_GCM", te_pt=101)
c = bt.Participant("carol", FREQ["carol"],
                   profile="AES_CM_128_HMAC_SHA1_32")
parts = [a, b, c]
try:
    # the default send path: io_uring where the kernel allows it
    sends = [x for x in ("io_uring", "sendmmsg")
             if ", sends " + x in br.stderr()]
    T.check(len(sends) == 1, "the bridge says how it sends: %s" % sends)
    st, j = br.conf("room1", rate=16000)
    T.check(st == 201 and j == {"id": "room1"}, "conference created")
    for p in parts:
        st, j = br.leg("room1", **p.leg_body())
        T.check(st == 201 and set(j) == {"leg", "local", "ssrc"},
                "leg for %s: %s %s" % (p.name, st, j))
        p.joined(j)
        p.bridge_ssrc = j["ssrc"]
    T.check(b.bridge_addr[0] == "::1", "IPv6 leg bound on ::1")

    attacker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    attacker.bind(("127.0.0.1", 0))
    attacks = {"forged": 0, "replayed": 0, "malformed": 0}

    def hook(i):
        # frames 60..79: one attack of each kind per frame at alice's leg
        if 60 <= i < 80:
            good = a.sent[-1]
            attacker.sendto(a.forged(i), a.bridge_addr)
            attacks["forged"] += 1
            attacker.sendto(a.sent[i - 50], a.bridge_addr)  # replay
            attacks["replayed"] += 1
            attacker.sendto(good[:8], a.bridge_addr)         # truncated
            attacker.sendto(b"\x40" + good[1:], a.bridge_addr)  # v1
            attacks["malformed"] += 2
        if i == 90:
            a.send_rtcp_sr()
            b.send_rtcp_sr()
        if i == 100:
            a.send_event(5, 160, first=True)
        if i == 101:
            a.send_event(5, 320)
        if i == 102:
            for _ in range(3):   # end packet sent three times
                a.send_event(5, 480, end=True)

    bt.run_media(parts, 3.0, hook)
    for p in parts:
        x = p.audio()
        own = bt.band_power(x, p.freq)
        others = [bt.band_power(x, q.freq) for q in parts if q is not p]
        print("%s heard: own %.4f others %s (%d samples)" %
              (p.name, own, ["%.3f" % o for o in others], len(x)))
        T.check(len(x) > 8000, "%s received audio" % p.name)
        T.check(all(o > 0.05 for o in others),
                "%s hears both others" % p.name)
        T.check(own < 0.01 and own * 10 < min(others),
                "%s does not hear itself" % p.name)
        T.check(p.rx_errors == 0, "%s: every packet from the bridge "
                "verified (%d errors)" % (p.name, p.rx_errors))
        T.check(p.rx_ssrcs == {p.bridge_ssrc}, "%s: one SSRC from the "
                "bridge, the one it announced" % p.name)

    st, conf = br.get("room1")
    T.check(st == 200, "GET conference")
    want = {"id", "mode", "rate", "talkers", "legs"}
    T.check(want <= set(conf), "conference fields present")
    T.check(conf["mode"] == "mix" and conf["rate"] == 16000,
            "mode and rate echoed")
    legs = {leg["participant"].split(":")[1].split("@")[0]: leg
            for leg in conf["legs"]}
    fields = {"leg", "participant", "codec", "local", "remote", "muted",
              "talking", "level_dbov", "packets_in", "packets_out", "lost",
              "jitter_ms", "auth_failures", "replays", "malformed"}
    T.check(all(fields <= set(leg) for leg in conf["legs"]),
            "every leg has every contract field")
    la, lb, lc = legs["alice"], legs["bob"], legs["carol"]
    print("alice:", la)
    T.check(la["auth_failures"] == attacks["forged"],
            "forged packets counted on alice's leg (%d of %d)" %
            (la["auth_failures"], attacks["forged"]))
    T.check(la["replays"] == attacks["replayed"],
            "replayed packets counted (%d of %d)" %
            (la["replays"], attacks["replayed"]))
    T.check(la["malformed"] == attacks["malformed"],
            "truncated/malformed counted (%d of %d)" %
            (la["malformed"], attacks["malformed"]))
    T.check(la["remote"] == a.remote_str and la["latches"] == 0,
            "attacks did not move alice's leg (remote %s)" % la["remote"])
    for name, leg in (("bob", lb), ("carol", lc)):
        T.check(leg["auth_failures"] == 0 and leg["replays"] == 0 and
                leg["malformed"] == 0, "%s's leg untouched by the attack"
                % name)
    for name, leg in legs.items():
        T.check(leg["packets_in"] >= 140 and leg["packets_out"] >= 100,
                "%s packet counters (in %d, out %d)" %
                (name, leg["packets_in"], leg["packets_out"]))
        T.check(leg["lost"] == 0, "%s: nothing lost on loopback" % name)
        T.check(isinstance(leg["jitter_ms"], float),
                "%s jitter_ms is a number" % name)
    T.check(la["codec"] == "pcmu" and la["srtp"] ==
            "AES_CM_128_HMAC_SHA1_80", "alice codec/profile echoed")
    T.check(la["telephone_events"] == 1 and la["last_event"] == 5,
            "alice's DTMF 5 reported (%s, %s)" % (la["telephone_events"],
                                                 la["last_event"]))
    T.check(len(b.rx_events) == 5 and b.rx_events[0][0] == 5,
            "bob (te_pt 101) got the relayed event (%d packets)" %
            len(b.rx_events))
    T.check(101 not in c.rx_pts, "carol (no telephone-event) got none")
    T.check(la["rtcp_in"] >= 1 and lb["rtcp_in"] >= 1,
            "SRTCP sender reports accepted (%d, %d)" %
            (la["rtcp_in"], lb["rtcp_in"]))
    T.check(all(len(p.rx_rtcp) >= 2 for p in parts),
            "every participant got SRTCP reports from the bridge")
    rr_ok = False
    for pkt in a.rx_rtcp:
        if pkt[1] in (200, 201):
            off = 28 if pkt[1] == 200 else 8
            if pkt[0] & 0x1F and struct.unpack(
                    "!I", pkt[off:off + 4])[0] == a.ssrc:
                rr_ok = True
    T.check(rr_ok, "bridge's report block is about alice's SSRC")

    # mute bob: the others stop hearing 900 Hz
    st, j = br.request("PATCH", "/v1/conferences/room1/legs/" + b.leg_id,
                       {"muted": True})
    T.check(st == 200 and j["muted"] is True, "bob muted")
    # rekey alice with new inline keys, no gap: she switches at once
    nrx, ntx = bt.new_keys(a.profile)
    for p in parts:
        p.rx_audio = []
    st, j = br.request("PATCH", "/v1/conferences/room1/legs/" + a.leg_id,
                       {"key": {"inline": {"rx": bt.b64(nrx),
                                           "tx": bt.b64(ntx)}}})
    T.check(st == 200, "alice rekeyed with new inline keys (%s)" % st)
    a.rekey(nrx, ntx)
    bt.run_media(parts, 2.0)
    st, conf = br.get("room1")
    la = [leg for leg in conf["legs"] if leg["leg"] == a.leg_id][0]
    T.check(la["auth_failures"] == attacks["forged"],
            "no auth failure across the rekey")
    xa, xc = a.audio(0.3), c.audio(0.3)
    print("after rekey: alice got %d samples, %d errors; carol %d, %d" %
          (len(xa), a.rx_errors, len(xc), c.rx_errors))
    print("alice hears carol %.3f; carol hears alice %.3f, bob %.3f" %
          (bt.band_power(xa, FREQ["carol"]), bt.band_power(xc, FREQ["alice"]),
           bt.band_power(xc, FREQ["bob"])))
    T.check(bt.band_power(xa, FREQ["carol"]) > 0.05,
            "alice hears carol after the rekey")
    T.check(bt.band_power(xc, FREQ["alice"]) > 0.05,
            "carol hears alice after the rekey")
    T.check(bt.band_power(xc, FREQ["bob"]) < 0.01,
            "carol no longer hears muted bob")

    # a plain-RTP packet to an SRTP leg fails authentication
    plain = struct.pack("!BBHII", 0x80, 0, 1, 1, 1) + bytes(160)
    attacker.sendto(plain, c.bridge_addr)
    st, j = br.request("DELETE", "/v1/conferences/room1/legs/" + c.leg_id)
    T.check(st == 204, "carol's leg deleted")
    st, conf = br.get("room1")
    T.check(len(conf["legs"]) == 2, "two legs left")
    rc = br.stop(signal.SIGTERM)
    T.check(rc == 0, "SIGTERM: drained and exited 0 (rc %s)" % rc)
    bt.run_media([], 0)
    for p in (a, b):
        p.poll()
    T.check(any(len(pk) > 1 and any(pk[o + 1] == 203 for o in
                range(0, len(pk) - 1, 4) if pk[o] & 0xC0 == 0x80)
                for pk in a.rx_rtcp[-2:]),
            "alice got an RTCP BYE at shutdown")
    T.check("drained" in br.stderr(), "drain logged on stderr")
finally:
    br.stop()
    for p in parts:
        p.close()
T.done()
