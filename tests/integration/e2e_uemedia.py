"""e2e_uemedia.py  uemedia on its own: tone helpers, SRTP between two
uemedia processes for every codec, wrong keys, the RTP it puts on the wire
(checked by a plain socket), and interop with GStreamer's SRTP stack.

Needs only build/bin/uemedia (and GStreamer for the interop cases)."""

import math
import os
import socket
import struct
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import kmaudio  # noqa: E402
import numpy as np  # noqa: E402
from kmproc import Procs  # noqa: E402
from kmsetup import UE, GstUE, gst_available, inline_pair, \
    secret_file  # noqa: E402
from kmtest import Suite, binary, free_port, \
    srtp_clean  # noqa: E402

suite = Suite("e2e_uemedia")
suite.need("uemedia")
expect = suite.expect
procs = Procs(suite.logdir)
T = suite.tmp

# -------------------------------------------------------------- helpers
with suite.case("goertzel: level of a known tone within 0.05 dB"):
    x = kmaudio.sine(48000, 997.3, -17.0, 1.0)
    m = kmaudio.tone_level((48000, x), 997.3)
    expect(abs(m + 17) < 0.05, "measured %.3f" % m)
    ok, m2 = kmaudio.has_tone((48000, x), 997.3, -17.0)
    expect(ok, "has_tone %.2f" % m2)
    ok, m3 = kmaudio.has_tone((48000, x), 997.3, -15.5)
    expect(not ok, "1.5 dB off must not pass (%.2f)" % m3)

with suite.case("goertzel: closed form matches the recurrence"):
    x = kmaudio.sine(8000, 1000, -6.0, 0.25)      # integer bin
    a = kmaudio.goertzel_recurrence(x, 8000, 1000)
    b = kmaudio.goertzel_amplitude(x, 8000, 1000)
    expect(abs(kmaudio.to_dbfs(a) - kmaudio.to_dbfs(b)) < 0.05,
           "%.3f vs %.3f" % (kmaudio.to_dbfs(a), kmaudio.to_dbfs(b)))

with suite.case("goertzel: neighbour tone +20 dB, absent tone -40 dB"):
    x = (kmaudio.sine(16000, 700, -30.0, 1.0) +
         kmaudio.sine(16000, 800, -10.0, 1.0))
    m = kmaudio.tone_level((16000, x), 700)
    expect(abs(m + 30) < 0.2, "700 Hz under a loud 800 Hz: %.2f" % m)
    ok, m = kmaudio.lacks_tone((16000, x), 1100, -10.0)
    expect(ok, "absent 1100 Hz read %.1f" % m)
    ok, m = kmaudio.lacks_tone((16000, x), 700, 0.0)
    expect(not ok, "a -30 dBFS tone is not 40 dB under 0 (%.1f)" % m)

with suite.case("block judgement: a click or a short gap tolerated, "
                "a real absence or a leak not"):
    x = kmaudio.sine(16000, 1330, -18.0, 1.2)
    x[8000:8400] += 20000 * np.sin(np.arange(400) * 0.9)   # 25 ms burst
    whole = kmaudio.tone_level((16000, x), 2000.0)
    ok, m = kmaudio.lacks_tone((16000, x), 2000.0, -18.0)
    expect(ok, "median %.1f (whole window %.1f)" % (m, whole))
    ok, m = kmaudio.has_tone((16000, x), 1330, -18.0)
    expect(ok, "median level %.2f" % m)
    y = kmaudio.sine(16000, 1330, -18.0, 1.2)
    y[12800:16000] = 0                         # the last 2 of 12 blocks
    ok, m = kmaudio.has_tone((16000, y), 1330, -18.0)
    expect(ok, "a tone present in 10 of 12 blocks failed (%.2f)" % m)
    y[9600:16000] = 0                          # the last 4 of 12 blocks
    ok, m = kmaudio.has_tone((16000, y), 1330, -18.0)
    expect(not ok, "a tone missing a third of the time passed (%.2f)" % m)
    z = kmaudio.sine(16000, 2000, -18.0, 1.2)
    z[:17600] = 0                              # present in 1 of 12 blocks
    ok, m = kmaudio.lacks_tone((16000, z), 2000, -18.0)
    expect(ok, "one block of leak must be tolerated (%.1f)" % m)
    z[:] = kmaudio.sine(16000, 2000, -18.0, 1.2)
    z[:16000] = 0                              # present in 2 of 12 blocks
    ok, m = kmaudio.lacks_tone((16000, z), 2000, -18.0)
    expect(not ok, "two blocks of leak must not pass (%.1f)" % m)

with suite.case("wav helpers round-trip"):
    p = os.path.join(T, "rt.wav")
    kmaudio.write_wav(p, 8000, kmaudio.sine(8000, 440, -3, 0.5))
    rate, y = kmaudio.read_wav(p)
    expect(rate == 8000 and len(y) == 4000, "rate %d n %d" % (rate, len(y)))
    expect(abs(kmaudio.tone_level(p, 440) + 3) < 0.05, "level")

# ------------------------------------------------- uemedia <-> uemedia
DUR = 1.5
MEAS = (0.4, DUR - 0.1)
pairs = [
    ("opus", None, "AES_CM_128_HMAC_SHA1_80", 440, 1000),
    ("opus", 16000, "AEAD_AES_128_GCM", 500, 1300),
    ("pcmu", None, "AES_CM_128_HMAC_SHA1_32", 600, 1700),
    ("pcma", None, "AES_256_CM_HMAC_SHA1_80", 700, 1500),
    ("g722", None, "AEAD_AES_256_GCM", 800, 2300),
]
running = []
for codec, rate, prof, fa, fb in pairs:
    tag = "%s%s" % (codec, rate or "")
    a = UE("A-" + tag, T, tone=fa, level=-20, codec=codec, rate=rate,
           profile=prof, level_ext=1)
    b = UE("B-" + tag, T, tone=fb, level=-12, codec=codec, rate=rate,
           profile=prof)
    ka, kb = inline_pair(prof)
    a.keyargs = ["--tx-key", "@" + secret_file(T, a.name + ".k1", ka),
                 "--rx-key", "@" + secret_file(T, a.name + ".k2", kb)]
    b.keyargs = ["--tx-key", kb, "--rx-key", ka]   # literal form too
    a.start(procs, b.addr, DUR)
    b.start(procs, a.addr, DUR)
    running.append((codec, rate, prof, a, b))

for codec, rate, prof, a, b in running:
    sa, sb = a.finish(), b.finish()
    with suite.case("%s/%s: both directions, right level, not itself"
                    % (codec + str(rate or ""), prof)):
        n = int(DUR * 1000 / 20)
        expect(a.rc == 0 and b.rc == 0, "exit %s %s" % (a.rc, b.rc))
        expect(sa.get("sent") == n and sb.get("sent") == n,
               "sent %s/%s, want %d" % (sa.get("sent"), sb.get("sent"), n))
        expect(srtp_clean(sa)[0] and srtp_clean(sb)[0],
               "A %s, B %s" % (srtp_clean(sa)[1], srtp_clean(sb)[1]))
        # the peer may start a few frames later (ready-line order)
        expect(sa.get("received", 0) >= 0.85 * n and
               sb.get("received", 0) >= 0.85 * n,
               "received %s/%s" % (sa.get("received"), sb.get("received")))
        ok, m = kmaudio.has_tone(a.wav, b.tone, b.level, 1.0, *MEAS)
        expect(ok, "A hears B at %.2f dBFS, want %g" % (m, b.level))
        ok, m = kmaudio.has_tone(b.wav, a.tone, a.level, 1.0, *MEAS)
        expect(ok, "B hears A at %.2f dBFS, want %g" % (m, a.level))
        ok, m = kmaudio.lacks_tone(a.wav, a.tone, a.level, 40, *MEAS)
        expect(ok, "A hears itself at %.1f" % m)
        ok, m = kmaudio.lacks_tone(b.wav, b.tone, b.level, 40, *MEAS)
        expect(ok, "B hears itself at %.1f" % m)
        expect(sa.get("rtcp_received", 0) >= 1, "no RTCP at A")

# ------------------------------------------------------------ wrong key
with suite.case("wrong key: every packet refused, recording silent"):
    prof = "AES_CM_128_HMAC_SHA1_80"
    a = UE("A-wrong", T, tone=440, profile=prof)
    b = UE("B-wrong", T, tone=1000, profile=prof)
    ka, kb = inline_pair(prof)
    kc, _ = inline_pair(prof)
    a.keyargs = ["--tx-key", ka, "--rx-key", kb]
    b.keyargs = ["--tx-key", kb, "--rx-key", kc]        # not ka
    a.start(procs, b.addr, 1.0)
    b.start(procs, a.addr, 1.0)
    sa, sb = a.finish(), b.finish()
    expect(sb.get("received") == 0, "B accepted %s" % sb.get("received"))
    expect(sb.get("auth_failures", 0) >= 45,
           "B auth failures %s" % sb.get("auth_failures"))
    expect(sa.get("received", 0) >= 45, "A (right key) got %s"
           % sa.get("received"))
    expect(kmaudio.rms_dbfs(b.wav) < -90, "B's file is not silent")

with suite.case("bad options are refused with exit 2"):
    import subprocess
    for bad in (["--codec", "g729"], ["--ptime", "25"],
                ["--tx-key", "AAAA", "--rx-key", "AAAA"],
                ["--profile", "NOPE"], ["--tone", "abc"],
                ["--audio-level-ext", "15"]):
        r = subprocess.run([binary("uemedia"), "--remote",
                            "127.0.0.1:9"] + bad, capture_output=True,
                           timeout=10)
        expect(r.returncode == 2, "%s -> %d" % (bad, r.returncode))

with suite.case("--wav-in: a 44.1 kHz stereo file arrives at its level"):
    import wave
    import numpy as np
    src = os.path.join(T, "in.wav")
    x = kmaudio.sine(44100, 1234, -10, 1.5)
    st = np.clip(np.round(np.repeat(x, 2)), -32768, 32767).astype("<i2")
    with wave.open(src, "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(44100)
        w.writeframes(st.tobytes())
    a = UE("A-wav", T, codec="pcmu")
    b = UE("B-wav", T, codec="pcmu")
    a.start(procs, b.addr, 1.5, extra=["--wav-in", src])
    b.start(procs, a.addr, 1.5)
    a.finish()
    b.finish()
    ok, m = kmaudio.has_tone(b.wav, 1234, -10, 1.0, 0.4, 1.3)
    expect(ok, "B hears the file at %.2f" % m)

with suite.case("demo.sh refuses clearly when pieces are missing"):
    import subprocess
    empty = os.path.join(T, "empty-build")
    os.makedirs(os.path.join(empty, "bin"))
    r = subprocess.run(["bash", os.path.join(os.path.dirname(__file__),
                                             "..", "..", "scripts",
                                             "demo.sh")],
                       env=dict(os.environ, KEYMIX_BUILD=empty),
                       capture_output=True, text=True, timeout=30)
    expect(r.returncode != 0, "exit %d" % r.returncode)
    expect("not built yet" in r.stderr and "bridged" in r.stderr,
           "message: %r" % r.stderr)
    expect("Level of each" not in r.stdout, "printed a table anyway")

# ----------------------------------- a KMS leg key, as the ue tool gets it
if all(os.access(binary(b), os.X_OK) for b in ("kmsd", "ue")):
    with suite.case("--leg-key from `ue conf-answer` talks to the bridge "
                    "side of the inline keys `ue --print-keys` prints"):
        from kmsetup import Kms, kv_profiles, self_signed
        kms = Kms(procs, T, self_signed(T), nds=False)
        kms.start()
        for n in ("sip:ann@example.org", "sip:ben@example.org"):
            kms.provision(n)
        rc, inv, err = kms.ue("sip:ann@example.org", "conf-invite", "--to",
                              "sip:ben@example.org", "--focus",
                              "bridge1.keymix.test", "--new")
        expect(rc == 0, "conf-invite: %s" % err)
        rc, out, err = kms.ue("sip:ben@example.org", "conf-answer",
                              "--from", "sip:ann@example.org", "--invite",
                              inv["invite"], "--print-keys", raw=True)
        expect(rc == 0, "conf-answer: %s" % err)
        kms.stop()
        leg = [ln.split("=", 1)[1] for ln in out.splitlines()
               if ln.startswith("leg_key=")][0]
        prof = "AEAD_AES_256_GCM"
        tx, rx = kv_profiles(out)[prof]     # the participant's view
        ben = UE("ben", T, tone=880, level=-14, codec="opus", profile=prof)
        ben.leg_key(T, leg)
        brg = UE("brg", T, tone=330, level=-14, codec="opus", profile=prof)
        brg.keyargs = ["--tx-key", rx, "--rx-key", tx]   # bridge's view
        ben.start(procs, brg.addr, 1.2)
        brg.start(procs, ben.addr, 1.2)
        s1, s2 = ben.finish(), brg.finish()
        expect(srtp_clean(s1)[0] and srtp_clean(s2)[0],
               "auth failures %s %s" % (s1, s2))
        ok, m = kmaudio.has_tone(brg.wav, 880, -14, 1.0, 0.4, 1.1)
        expect(ok, "the bridge side hears ben at %.2f" % m)
        ok, m = kmaudio.has_tone(ben.wav, 330, -14, 1.0, 0.4, 1.1)
        expect(ok, "ben hears the bridge side at %.2f" % m)

# --------------------------------------------------- the RTP on the wire
with suite.case("plain RTP: own SSRC, seq +1, G.722 8 kHz clock, levels"):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.2)
    port = s.getsockname()[1]
    ue = UE("plain", T, tone=1000, level=-20, codec="g722", level_ext=3)
    ue.start(procs, "127.0.0.1:%d" % port, 0.5,
             extra=["--ssrc", "4242", "--rtcp-interval", "0"])
    pkts = []
    t_end = time.monotonic() + 5
    while time.monotonic() < t_end:
        try:
            pkts.append(s.recv(2000))
        except socket.timeout:
            if not ue.proc.alive():
                break
    ue.finish()
    s.close()
    rtcp = [p for p in pkts if 192 <= p[1] <= 223]
    pkts = [p for p in pkts if not 192 <= p[1] <= 223]
    # --rtcp-interval 0: no reports, only the BYE when leaving
    expect(len(rtcp) == 1 and rtcp[0][-8:-4] == b"\x81\xcb\x00\x01",
           "RTCP: %s" % [p.hex() for p in rtcp])
    expect(len(pkts) == 25, "%d packets for 0.5 s at 20 ms" % len(pkts))
    hdr = [struct.unpack("!BBHII", p[:12]) for p in pkts]
    expect(all(h[0] == 0x90 for h in hdr), "V=2 X=1 expected")
    expect(all(h[1] & 0x7f == 9 for h in hdr), "payload type 9")
    expect([h[1] >> 7 for h in hdr] == [1] + [0] * 24, "marker on first")
    expect(all(h[4] == 4242 for h in hdr), "SSRC")
    expect(all((hdr[i + 1][2] - hdr[i][2]) & 0xffff == 1
               for i in range(24)), "sequence not +1")
    expect(all((hdr[i + 1][3] - hdr[i][3]) & 0xffffffff == 160
               for i in range(24)), "timestamp not +160")
    # one-byte extension: 0xBEDE, 1 word, id 3 len 1, level byte
    lv = [p[17] & 0x7f for p in pkts if p[12:14] == b"\xbe\xde"
          and p[16] == 0x30]
    expect(len(lv) == 25 and all(22 <= v <= 24 for v in lv),
           "audio levels %s" % lv[:5])
    expect(all(len(p) == 12 + 8 + 160 for p in pkts), "G.722 20 ms = 160 B")

# ---------------------------------------------------- GStreamer interop
if not gst_available():
    print("note: GStreamer (python3-gst-1.0, srtp, opus) missing: "
          "interop cases not run")
else:
    for prof in ("AEAD_AES_128_GCM", "AES_CM_128_HMAC_SHA1_80"):
        with suite.case("GStreamer srtpenc/srtpdec <-> uemedia, %s" % prof):
            g = GstUE("G-" + prof[:8], T, tone=1100, level=-15,
                      profile=prof)
            key = g.inline(T)
            u = UE("U-" + prof[:8], T, tone=550, level=-18, profile=prof)
            u.keyargs = ["--tx-key", key["inline"]["tx"],
                         "--rx-key", key["inline"]["rx"]]
            u.start(procs, g.addr, 2.0)
            g.start(procs, u.addr, 2.0)
            su = u.finish()
            g.finish()
            expect(g.rc == 0, "gstpeer exit %s: %s" % (
                g.rc, g.proc.stderr_tail()))
            expect(srtp_clean(su)[0], "at U: %s" % srtp_clean(su)[1])
            ok, m = kmaudio.has_tone(u.wav, 1100, -15, 1.0, 0.5, 1.9)
            expect(ok, "uemedia hears GStreamer at %.2f" % m)
            ok, m = kmaudio.has_tone(g.wav, 550, -18, 1.0, 0.5, 1.7)
            expect(ok, "GStreamer hears uemedia at %.2f" % m)

procs.stop_all()
suite.finish()
