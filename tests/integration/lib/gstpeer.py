#!/usr/bin/python3
"""gstpeer.py  A conference participant made of GStreamer's own SRTP stack.

An independent implementation to check Keymix against: audiotestsrc ->
opusenc -> rtpopuspay -> srtpenc -> one UDP socket -> srtpdec ->
rtpopusdepay -> opusdec -> wavenc.  Inline keys only (SDES-style master
key || salt, base64).  Sending and receiving share one socket so the far
end sees symmetric RTP.

    gstpeer.py --local PORT --remote ADDR:PORT --profile NAME \
        --tx-key B64 --rx-key B64 --tone HZ:DBFS --duration S --wav-out F

srtpdec learns keys through its request-key signal, so it accepts the
far end's SSRC without knowing it in advance.  Prints "ready" once
playing and "gstpeer done" at the end.
"""

import argparse
import base64
import sys
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib, Gst  # noqa: E402

# profile -> (cipher, rtp auth, rtcp auth, key||salt bytes)
PROFILES = {
    "AES_CM_128_HMAC_SHA1_80": ("aes-128-icm", "hmac-sha1-80",
                                "hmac-sha1-80", 30),
    "AES_CM_128_HMAC_SHA1_32": ("aes-128-icm", "hmac-sha1-32",
                                "hmac-sha1-80", 30),
    "AES_256_CM_HMAC_SHA1_80": ("aes-256-icm", "hmac-sha1-80",
                                "hmac-sha1-80", 46),
    "AEAD_AES_128_GCM": ("aes-128-gcm", "null", "null", 28),
    "AEAD_AES_256_GCM": ("aes-256-gcm", "null", "null", 44),
}


def key_caps(profile, key):
    cipher, auth, rauth, _ = PROFILES[profile]
    buf = Gst.Buffer.new_wrapped(key)
    caps = Gst.Caps.from_string(
        "application/x-srtp, srtp-cipher=(string)%s, srtp-auth=(string)%s,"
        " srtcp-cipher=(string)%s, srtcp-auth=(string)%s"
        % (cipher, auth, cipher, rauth))
    caps.set_value("srtp-key", buf)
    return caps


def drop_rtcp(pad, info, _data):
    buf = info.get_buffer()
    ok, m = buf.map(Gst.MapFlags.READ)
    if not ok:
        return Gst.PadProbeReturn.OK
    try:
        rtcp = m.size >= 2 and 192 <= m.data[1] <= 223
    finally:
        buf.unmap(m)
    return Gst.PadProbeReturn.DROP if rtcp else Gst.PadProbeReturn.OK


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--local", type=int, required=True)
    ap.add_argument("--remote", required=True)
    ap.add_argument("--profile", default="AES_CM_128_HMAC_SHA1_80")
    ap.add_argument("--tx-key", required=True)
    ap.add_argument("--rx-key", required=True)
    ap.add_argument("--tone", default="440:-20")
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--wav-out", required=True)
    ap.add_argument("--ssrc", type=int, default=0x6757)
    ap.add_argument("--pt", type=int, default=111)
    a = ap.parse_args()

    Gst.init(None)
    prof = PROFILES[a.profile]
    tx = base64.b64decode(a.tx_key + "=" * (-len(a.tx_key) % 4))
    rx = base64.b64decode(a.rx_key + "=" * (-len(a.rx_key) % 4))
    if len(tx) != prof[3] or len(rx) != prof[3]:
        sys.exit("gstpeer: %s needs %d key bytes" % (a.profile, prof[3]))
    hz, db = (a.tone.split(":") + ["-20"])[:2]
    rhost, rport = a.remote.rsplit(":", 1)

    sock = Gio.Socket.new(Gio.SocketFamily.IPV4, Gio.SocketType.DATAGRAM,
                          Gio.SocketProtocol.UDP)
    sock.bind(Gio.InetSocketAddress.new_from_string("127.0.0.1", a.local),
              False)
    nbuf = int(a.duration * 50)
    desc = (
        "audiotestsrc name=src is-live=true wave=sine freq=%s volume=%f "
        "samplesperbuffer=960 num-buffers=%d ! "
        "audio/x-raw,rate=48000,channels=1 ! audioconvert ! "
        "opusenc bitrate=32000 frame-size=20 ! "
        "rtpopuspay pt=%d ssrc=%d ! "
        "srtpenc name=enc rtp-cipher=%s rtp-auth=%s rtcp-cipher=%s "
        "rtcp-auth=%s ! udpsink name=out host=%s port=%s sync=false "
        "async=false "
        "udpsrc name=in ! "
        "application/x-srtp,media=audio,clock-rate=48000,"
        "encoding-name=OPUS,payload=%d ! "
        "srtpdec name=dec ! rtpopusdepay ! opusdec ! audioconvert ! "
        "audioresample ! audio/x-raw,format=S16LE,rate=48000,channels=1 ! "
        "wavenc ! filesink name=file location=%s"
        % (hz, 10 ** (float(db) / 20.0), nbuf, a.pt, a.ssrc, prof[0],
           prof[1], prof[0], prof[2], rhost, rport, a.pt, a.wav_out))
    pipe = Gst.parse_launch(desc)
    pipe.get_by_name("in").set_property("socket", sock)
    pipe.get_by_name("out").set_property("socket", sock)
    pipe.get_by_name("enc").set_property("key", Gst.Buffer.new_wrapped(tx))
    # RTCP arrives on the same port (RFC 5761): keep it away from the
    # decoding branch, which only takes SRTP
    pipe.get_by_name("in").get_static_pad("src").add_probe(
        Gst.PadProbeType.BUFFER, drop_rtcp, None)
    dec = pipe.get_by_name("dec")
    dec.connect("request-key", lambda d, ssrc: key_caps(a.profile, rx))

    loop = GLib.MainLoop()
    bus = pipe.get_bus()
    bus.add_signal_watch()
    state = {"eos": False, "err": None}

    def on_msg(_bus, msg):
        if msg.type == Gst.MessageType.EOS:
            state["eos"] = True
            loop.quit()
        elif msg.type == Gst.MessageType.ERROR:
            err, dbg = msg.parse_error()
            state["err"] = "%s (%s)" % (err.message, dbg)
            loop.quit()

    bus.connect("message", on_msg)
    pipe.set_state(Gst.State.PLAYING)
    # say ready only once the pipeline really plays (a loaded machine can
    # take a while), so the others' checks never start before our tone
    pipe.get_state(5 * Gst.SECOND)
    print("ready local=127.0.0.1:%d" % a.local, flush=True)

    def finish():
        # the receive branch never ends by itself: end it so wavenc
        # writes its header; the send branch ended after num-buffers
        pipe.get_by_name("in").send_event(Gst.Event.new_eos())
        return False

    GLib.timeout_add(int(a.duration * 1000) + 300, finish)
    GLib.timeout_add(int(a.duration * 1000) + 8000, loop.quit)
    t0 = time.monotonic()
    loop.run()
    pipe.set_state(Gst.State.NULL)
    if state["err"]:
        sys.exit("gstpeer: %s" % state["err"])
    print("gstpeer done eos=%d secs=%.1f" % (state["eos"],
                                           time.monotonic() - t0),
          flush=True)


if __name__ == "__main__":
    main()
