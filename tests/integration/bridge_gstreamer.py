#!/usr/bin/python3
"""bridge_gstreamer.py  An independent SRTP/Opus stack joins a conference.

GStreamer (srtpenc/srtpdec on libsrtp, opusenc/opusdec, rtpopuspay/depay)
joins with inline keys, sending a 700 Hz tone as Opus over SRTP from the
same UDP socket it receives on (symmetric RTP).  Two test participants
(bridge_lib, PCMU over SRTP) send 500 Hz and 1400 Hz.  GStreamer must hear
both of them and not its own tone; they must hear GStreamer.
Skipped (77) when GStreamer or its Python bindings are missing.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bridge_lib import bt  # noqa: E402

try:
    import gi
    gi.require_version("Gst", "1.0")
    from gi.repository import Gst, Gio
    import numpy as np
    Gst.init(None)
    for el in ("srtpenc", "srtpdec", "opusenc", "opusdec", "rtpopuspay",
               "rtpopusdepay", "udpsrc", "udpsink", "audiotestsrc"):
        if not Gst.ElementFactory.find(el):
            raise ImportError(el)
except (ImportError, ValueError) as e:
    print("GStreamer not available: %s" % e)
    sys.exit(77)

T = bt.Tally("bridge_gstreamer")
if not os.path.exists(bt.BRIDGED):
    print("bridged not built")
    sys.exit(77)

PROFILES = {
    # bridged profile: (GStreamer cipher, auth)
    "AES_CM_128_HMAC_SHA1_80": ("aes-128-icm", "hmac-sha1-80"),
    "AEAD_AES_128_GCM": ("aes-128-gcm", "null"),
}


def run(profile, mode="mix"):
    cipher, auth = PROFILES[profile]
    transcode = mode == "transcode"
    br = bt.Bridge(rtp_ports="32400-32499", workers=1,
                   config={"rtcp-interval-ms": 1000})
    outfile = os.path.join(br.dir, "gst.raw")
    a = bt.Participant("alice", 500.0, profile="AES_CM_128_HMAC_SHA1_80",
                       codec="pcma" if transcode else "pcmu")
    c = bt.Participant("carol", 1400.0, profile="AEAD_AES_128_GCM")
    parts = [a] if transcode else [a, c]
    g_rx, g_tx = bt.new_keys(profile)   # g_rx: GStreamer sends with it
    sock = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM,
                          Gio.SocketProtocol.UDP)
    sock.bind(Gio.InetSocketAddress.new_from_string("127.0.0.1", 0), False)
    gport = sock.get_local_address().get_port()
    pipe = None
    try:
        st, j = br.conf("g1", rate=48000, mode=mode)
        for p in parts:
            st, j = br.leg("g1", **p.leg_body())
            p.joined(j)
        st, j = br.leg("g1", participant="sip:gst@example.org",
                       codec="opus", payload_type=111,
                       remote="127.0.0.1:%d" % gport,
                       srtp={"profile": profile, "key": {"inline": {
                           "rx": bt.b64(g_rx), "tx": bt.b64(g_tx)}}})
        T.check(st == 201, "%s %s: GStreamer's leg: %s" %
                (mode, profile, j))
        gleg = j["leg"]
        host, bport = j["local"].rsplit(":", 1)
        caps = ("application/x-srtp, media=(string)audio, "
                "clock-rate=(int)48000, encoding-name=(string)OPUS, "
                "payload=(int)111")
        pipe = Gst.parse_launch(
            "audiotestsrc is-live=true freq=700 volume=0.3 "
            "samplesperbuffer=960 ! audio/x-raw,rate=48000,channels=1 ! "
            "audioconvert ! opusenc bitrate=32000 frame-size=20 ! "
            "rtpopuspay pt=111 ! srtpenc name=enc ! "
            "udpsink name=sink host=127.0.0.1 port=%s sync=false "
            "async=false close-socket=false "
            "udpsrc name=src close-socket=false caps=\"%s\" ! "
            "srtpdec name=dec ! rtpjitterbuffer latency=60 ! "
            "rtpopusdepay ! opusdec ! audioconvert ! audioresample ! "
            "audio/x-raw,format=S16LE,rate=8000,channels=1 ! "
            "filesink location=%s "
            # rtcp-mux: srtpdec hands the bridge's SRTCP to this pad
            "dec.rtcp_src ! fakesink name=rtcp sync=false async=false "
            "signal-handoffs=true" % (bport, caps, outfile))
        rtcp_seen = []
        pipe.get_by_name("rtcp").connect(
            "handoff", lambda sink, buf, pad: rtcp_seen.append(1))
        enc = pipe.get_by_name("enc")
        enc.set_property("key", Gst.Buffer.new_wrapped(g_rx))
        enc.set_property("rtp-cipher", cipher)
        enc.set_property("rtp-auth", auth)
        enc.set_property("rtcp-cipher", cipher)
        enc.set_property("rtcp-auth", auth)
        pipe.get_by_name("sink").set_property("socket", sock)
        pipe.get_by_name("src").set_property("socket", sock)
        key_caps = Gst.Caps.from_string(
            "application/x-srtp, srtp-key=(buffer)%s, "
            "srtp-cipher=(string)%s, srtp-auth=(string)%s, "
            "srtcp-cipher=(string)%s, srtcp-auth=(string)%s" %
            (g_tx.hex(), cipher, auth, cipher, auth))
        pipe.get_by_name("dec").connect("request-key",
                                        lambda dec, ssrc: key_caps)
        T.check(pipe.set_state(Gst.State.PLAYING) !=
                Gst.StateChangeReturn.FAILURE, "pipeline plays")
        bt.run_media(parts, 4.0)
        time.sleep(0.3)
        pipe.set_state(Gst.State.NULL)
        st, conf = br.get("g1")
        gl = [x for x in conf["legs"] if x["leg"] == gleg][0]
        print("gstreamer leg:", gl)
        T.check(gl["packets_in"] >= 150 and gl["auth_failures"] == 0,
                "%s: bridge verified GStreamer's SRTP (%d in, %d bad)" %
                (profile, gl["packets_in"], gl["auth_failures"]))
        T.check(gl["remote"] == "127.0.0.1:%d" % gport and
                gl["latches"] == 0, "symmetric RTP: remote unchanged")
        x = np.fromfile(outfile, dtype="<i2").astype(np.float64) \
            if os.path.exists(outfile) else np.zeros(0)
        x = x[4000:]
        p500, p1400, p700 = (bt.band_power(x, f) for f in (500, 1400,
                                                           700))
        print("GStreamer heard %d samples: 500 Hz %.3f, 1400 Hz %.3f, "
              "own 700 Hz %.4f" % (len(x), p500, p1400, p700))
        T.check(len(x) > 8000, "%s: GStreamer decoded the %s" %
                (profile, mode))
        if transcode:
            # Opus 700 Hz at -13.5 dBFS <-> PCMA 500 Hz at -15.3 dBFS
            lg, la = bt.rms_dbfs(x), bt.rms_dbfs(a.audio(1.0))
            pa = bt.band_power(a.audio(1.0), 700.0)
            print("transcode: GStreamer hears %.1f dBFS, alice %.1f dBFS"
                  % (lg, la))
            T.check(p500 > 0.9 and p700 < 0.01,
                    "transcode: GStreamer hears alice's PCMA tone only")
            T.check(pa > 0.9, "transcode: alice hears GStreamer's Opus "
                    "tone only (%.3f)" % pa)
            T.check(abs(lg - -15.3) < 3, "transcode: PCMA -> Opus level "
                    "kept (%.1f dBFS, sent -15.3)" % lg)
            T.check(abs(la - -13.5) < 3, "transcode: Opus -> PCMA level "
                    "kept (%.1f dBFS, sent -13.5)" % la)
        else:
            T.check(p500 > 0.05 and p1400 > 0.05,
                    "%s: GStreamer hears both participants" % profile)
            T.check(p700 < 0.01, "%s: GStreamer does not hear itself" %
                    profile)
            for p in parts:
                pw = bt.band_power(p.audio(1.0), 700.0)
                T.check(pw > 0.05, "%s: %s hears GStreamer (%.3f)" %
                        (profile, p.name, pw))
        T.check(len(rtcp_seen) >= 1, "%s: GStreamer verified the "
                "bridge's SRTCP (%d)" % (profile, len(rtcp_seen)))
    finally:
        if pipe:
            pipe.set_state(Gst.State.NULL)
        br.stop()
        for p in (a, c):
            p.close()


for prof in PROFILES:
    run(prof)
run("AEAD_AES_128_GCM", "transcode")
T.done()
