"""bt.py  Bridge test kit: run bridged, call its API, simulate participants.

Used by tests/integration/bridge_*.py.  Network traffic stays on loopback.
"""

import base64
import http.client
import json
import os
import select
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

from . import srtp

BUILD = os.environ.get("KEYMIX_BUILD") or os.path.join(
    os.path.dirname(__file__), "..", "..", "..", "build")
BRIDGED = os.path.join(BUILD, "bin", "bridged")


class Tally:
    """Counts checks; prints 'N passed, N failed' at the end."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, cond, what):
        if cond:
            self.passed += 1
            print("ok   %s" % what)
        else:
            self.failed += 1
            print("FAIL %s" % what)
        sys.stdout.flush()
        return cond

    def done(self):
        if not self.failed:
            for d in Bridge.dirs:
                shutil.rmtree(d, ignore_errors=True)
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.exit(1 if self.failed else 0)


class Bridge:
    """A bridged process on loopback with a fresh token."""

    dirs = []

    def __init__(self, rtp_ports="32000-32099", workers=2, extra=(),
                 config=None, token="t0k3n-" + os.urandom(8).hex(),
                 control="127.0.0.1:0", tls_ca=None):
        self.dir = tempfile.mkdtemp(prefix="bridge_test_")
        Bridge.dirs.append(self.dir)
        self.token = token
        tf = os.path.join(self.dir, "token")
        with open(tf, "w") as f:
            f.write(token + "\n")
        os.chmod(tf, 0o600)
        # e.g. BRIDGE_TEST_WRAPPER="valgrind --tool=callgrind"
        wrap = os.environ.get("BRIDGE_TEST_WRAPPER", "").split()
        self.tls_ca = tls_ca
        args = wrap + [BRIDGED, "--control", control, "--token-file", tf,
                "--rtp-ports", rtp_ports, "--workers", str(workers),
                "--log-level", "debug"]
        if config is not None:
            cf = os.path.join(self.dir, "config.json")
            with open(cf, "w") as f:
                json.dump(config, f)
            args += ["--config", cf]
        args += list(extra)
        self.errlog = open(os.path.join(self.dir, "stderr"), "w+")
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE,
                                     stderr=self.errlog, text=True)
        line = self.proc.stdout.readline().strip()
        if not line.startswith("ready control="):
            self.stop()
            raise RuntimeError("bridged did not start: %r %s" %
                               (line, self.stderr()))
        self.ready_line = line
        host, port = line.split("=", 1)[1].rsplit(":", 1)
        host = host.strip("[]")
        # a wildcard listener is reached over loopback
        self.host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
        self.port = int(port)

    def stderr(self):
        self.errlog.flush()
        self.errlog.seek(0)
        return self.errlog.read()

    def stop(self, sig=None):
        if self.proc.poll() is None:
            self.proc.terminate() if sig is None else \
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def request(self, method, path, body=None, token=True, raw=None):
        if self.tls_ca:
            ctx = ssl.create_default_context(cafile=self.tls_ca)
            c = http.client.HTTPSConnection(self.host, self.port,
                                            timeout=15, context=ctx)
        else:
            c = http.client.HTTPConnection(self.host, self.port,
                                           timeout=15)
        h = {}
        if token is True:
            h["Authorization"] = "Bearer " + self.token
        elif token:
            h["Authorization"] = token
        data = raw if raw is not None else (
            json.dumps(body) if body is not None else None)
        if data is not None:
            h["Content-Type"] = "application/json"
        c.request(method, path, body=data, headers=h)
        r = c.getresponse()
        text = r.read().decode()
        c.close()
        try:
            j = json.loads(text) if text.strip() else None
        except ValueError:
            j = text
        return r.status, j

    def conf(self, cid, **kw):
        kw["id"] = cid
        return self.request("POST", "/v1/conferences", kw)

    def leg(self, cid, **kw):
        return self.request("POST", "/v1/conferences/%s/legs" % cid, kw)

    def get(self, cid):
        return self.request("GET", "/v1/conferences/" + cid)


def wait_for(cond, timeout=5.0):
    """Poll cond() until true or timeout (a deadline, not a measurement)."""
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.02)
    return True


def b64(b):
    return base64.b64encode(b).decode()


def new_keys(profile):
    kl, sl, _, _ = srtp.PROFILES[profile]
    return os.urandom(kl + sl), os.urandom(kl + sl)


# ---- G.711 (ITU-T G.711, by formula) ----

def ulaw_encode(x):
    x = np.clip(np.asarray(x, dtype=np.int32), -32635, 32635)
    sign = (x < 0).astype(np.int32) * 0x80
    mag = np.abs(x) + 0x84
    exp = np.floor(np.log2(mag)).astype(np.int32) - 7
    exp = np.clip(exp, 0, 7)
    mant = (mag >> (exp + 3)) & 0x0F
    return (~(sign | (exp << 4) | mant) & 0xFF).astype(np.uint8)


def ulaw_decode(b):
    b = ~np.frombuffer(bytes(b), dtype=np.uint8).astype(np.int32) & 0xFF
    sign = b & 0x80
    exp = (b >> 4) & 7
    mant = b & 0x0F
    mag = (((mant << 3) + 0x84) << exp) - 0x84
    return np.where(sign, -mag, mag).astype(np.float64)


def alaw_encode(x):
    v = np.clip(np.asarray(x, dtype=np.int32), -32768, 32767) >> 3
    mask = np.where(v >= 0, 0xD5, 0x55)
    v = np.where(v >= 0, v, -v - 1)
    seg = np.searchsorted(np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF,
                                    0x7FF, 0xFFF]), v)
    shift = np.where(seg < 2, 1, seg)
    aval = (np.minimum(seg, 7) << 4) | ((v >> shift) & 0x0F)
    aval = np.where(seg >= 8, 0x7F, aval)
    return (aval ^ mask).astype(np.uint8)


def alaw_decode(b):
    a = np.frombuffer(bytes(b), dtype=np.uint8).astype(np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, t + 0x108)
    t = np.where(seg > 1, t << np.maximum(seg - 1, 0), t)
    return np.where(a & 0x80, t, -t).astype(np.float64)


def rms_dbfs(x):
    if len(x) == 0:
        return -120.0
    return 20 * np.log10(max(np.sqrt(np.mean(x * x)), 1e-9) / 32768.0)


def tone(freq, n, start, rate=8000, amp=8000):
    t = (np.arange(n) + start) / rate
    return amp * np.sin(2 * np.pi * freq * t)


def band_power(x, freq, rate=8000, width=25):
    if len(x) < 1024:
        return 0.0
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)))) ** 2
    f = np.fft.rfftfreq(len(x), 1.0 / rate)
    sel = (f > freq - width) & (f < freq + width)
    return float(spec[sel].sum() / max(spec.sum(), 1e-9))


# ---- a participant ----

class Participant:
    """An RTP/SRTP endpoint sending a PCMU tone and recording PCMU."""

    def __init__(self, name, freq, family=socket.AF_INET, profile=None,
                 te_pt=None, codec="pcmu", first_seq=None):
        self.name = name
        self.codec = codec
        self.pt = 0 if codec == "pcmu" else 8
        self.enc = ulaw_encode if codec == "pcmu" else alaw_encode
        self.dec = ulaw_decode if codec == "pcmu" else alaw_decode
        self.freq = freq
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind(("::1" if family == socket.AF_INET6 else
                        "127.0.0.1", 0))
        self.sock.setblocking(False)
        self.addr = self.sock.getsockname()[:2]
        self.remote_str = ("[%s]:%d" if family == socket.AF_INET6 else
                           "%s:%d") % self.addr
        self.profile = profile
        self.te_pt = te_pt
        self.ssrc = struct.unpack("!I", os.urandom(4))[0]
        self.seq = struct.unpack("!H", os.urandom(2))[0] if first_seq is None \
            else first_seq
        self.ts = struct.unpack("!I", os.urandom(4))[0]
        self.sample = 0
        self.sent = []          # protected packets sent (for replays)
        self.rx_audio = []
        self.rx_pts = {}
        self.rx_events = []
        self.rx_rtcp = []
        self.rx_rtcp_t = []
        self.rx_errors = 0
        self.rx_ssrcs = set()
        self.rx_seqts = []       # (seq, ts, marker) of audio received
        self.level = None        # RFC 6464 level (0..127) to send
        self.level_id = 1
        self.bridge_addr = None
        self.rx_key = self.tx_key = None
        self.send_ctx = self.recv_ctx = self.old_recv_ctx = None
        if profile:
            self.rx_key, self.tx_key = new_keys(profile)
            self.send_ctx = srtp.Context(profile, self.rx_key)
            self.recv_ctx = srtp.Context(profile, self.tx_key)

    def leg_body(self, **kw):
        body = {"participant": "sip:%s@example.org" % self.name,
                "codec": self.codec, "remote": self.remote_str}
        if self.profile:
            body["srtp"] = {"profile": self.profile, "key": {"inline": {
                "rx": b64(self.rx_key), "tx": b64(self.tx_key)}}}
        if self.te_pt is not None:
            body["telephone_event_pt"] = self.te_pt
        body.update(kw)
        return body

    def joined(self, resp):
        host, port = resp["local"].rsplit(":", 1)
        self.bridge_addr = (host.strip("[]"), int(port))
        self.leg_id = resp["leg"]

    def rekey(self, rx_key, tx_key, same_streams=True):
        """Switch to new keys; keep the old receive key as a fallback.

        On a rekey of a live leg the packet index (ROC, highest sequence
        number) of every SSRC carries over to the new contexts, as the
        bridge's does (RFC 3711 3.3.1: the index belongs to the stream).
        same_streams=False is a new leg (a restarted bridge): new SRTP
        streams, whose index starts afresh on both sides."""
        self.rx_key, self.tx_key = rx_key, tx_key
        old_send = self.send_ctx
        self.send_ctx = srtp.Context(self.profile, rx_key)
        self.old_recv_ctx = self.recv_ctx
        self.recv_ctx = srtp.Context(self.profile, tx_key)
        if same_streams and old_send:
            self.send_ctx.roc = dict(old_send.roc)
        if same_streams and self.old_recv_ctx:
            self.recv_ctx.roc = dict(self.old_recv_ctx.roc)

    def forged(self, k):
        """A packet with a fresh sequence number and a wrong tag."""
        hdr = struct.pack("!BBHII", 0x80, 0, (self.seq + 300 + k) & 0xFFFF,
                          self.ts, self.ssrc)
        saved = self.send_ctx.roc.get(self.ssrc)
        pkt = bytearray(self.send_ctx.protect(hdr + bytes(160)))
        if saved is None:
            del self.send_ctx.roc[self.ssrc]
        else:
            self.send_ctx.roc[self.ssrc] = saved
        pkt[-1] ^= 1
        return bytes(pkt)

    def _send(self, pkt):
        if self.send_ctx:
            pkt = self.send_ctx.protect(pkt)
        self.sent.append(pkt)
        self.sock.sendto(pkt, self.bridge_addr)

    def send_frame(self, marker=False):
        pcm = tone(self.freq, 160, self.sample) if self.freq else \
            np.zeros(160)
        self.sample += 160
        x = 0x10 if self.level is not None else 0
        hdr = struct.pack("!BBHII", 0x80 | x, (0x80 if marker else 0) |
                          self.pt, self.seq, self.ts, self.ssrc)
        if x:
            # RFC 8285 one-byte form: id, len-1 = 0, V bit + level
            hdr += struct.pack("!HHBBH", 0xBEDE, 1, self.level_id << 4,
                               0x80 | self.level, 0)
        self.seq = (self.seq + 1) & 0xFFFF
        self.ts = (self.ts + 160) & 0xFFFFFFFF
        self._send(hdr + self.enc(pcm).tobytes())

    def send_event(self, event, duration, end=False, first=False):
        """RFC 4733: every packet of one event carries its start time."""
        if first:
            self.ev_ts = self.ts
        hdr = struct.pack("!BBHII", 0x80, (0x80 if first else 0) |
                          self.te_pt, self.seq, self.ev_ts, self.ssrc)
        self.seq = (self.seq + 1) & 0xFFFF
        pl = struct.pack("!BBH", event, (0x80 if end else 0) | 10, duration)
        self._send(hdr + pl)

    def send_rtcp_sr(self):
        ntp = int((time.time() + 2208988800) * (1 << 32))
        sr = struct.pack("!BBHIIIIII", 0x80, 200, 6, self.ssrc, ntp >> 32,
                         ntp & 0xFFFFFFFF, self.ts, len(self.sent), 0)
        cname = b"test"
        sdes = struct.pack("!BBHIBB", 0x81, 202, 3, self.ssrc, 1,
                           len(cname)) + cname + b"\0\0"
        pkt = sr + sdes
        if self.send_ctx:
            pkt = self.send_ctx.protect_rtcp(pkt)
        self.sock.sendto(pkt, self.bridge_addr)

    def send_rtcp_rr(self, about_ssrc, lsr, dlsr, cum_lost, fraction=0):
        """An RR with one report block about the bridge's stream."""
        rr = struct.pack("!BBHI", 0x81, 201, 7, self.ssrc)
        rr += struct.pack("!IIIIII", about_ssrc,
                          (fraction << 24) | (cum_lost & 0xFFFFFF),
                          0, 0, lsr, dlsr)
        cname = b"test"
        rr += struct.pack("!BBHIBB", 0x81, 202, 3, self.ssrc, 1,
                          len(cname)) + cname + b"\0\0"
        if self.send_ctx:
            rr = self.send_ctx.protect_rtcp(rr)
        self.sock.sendto(rr, self.bridge_addr)

    def poll(self):
        while True:
            try:
                pkt, _ = self.sock.recvfrom(2048)
            except BlockingIOError:
                return
            if len(pkt) >= 2 and 192 <= pkt[1] <= 223:
                try:
                    if self.recv_ctx:
                        pkt = self.recv_ctx.unprotect_rtcp(pkt)
                    self.rx_rtcp.append(pkt)
                    self.rx_rtcp_t.append(time.monotonic())
                except srtp.AuthError:
                    self.rx_errors += 1
                continue
            try:
                if self.recv_ctx:
                    try:
                        pkt = self.recv_ctx.unprotect(pkt)
                    except srtp.AuthError:
                        if not self.old_recv_ctx:
                            raise
                        pkt = self.old_recv_ctx.unprotect(pkt)
            except (srtp.AuthError, srtp.ReplayError):
                self.rx_errors += 1
                continue
            pt = pkt[1] & 0x7F
            self.rx_pts[pt] = self.rx_pts.get(pt, 0) + 1
            self.rx_ssrcs.add(struct.unpack("!I", pkt[8:12])[0])
            cc = pkt[0] & 0x0F
            h = 12 + 4 * cc
            if pkt[0] & 0x10:
                h += 4 + 4 * struct.unpack("!H", pkt[h + 2:h + 4])[0]
            if self.te_pt is not None and pt == self.te_pt:
                self.rx_events.append(pkt[h:h + 4])
            elif pt == self.pt:
                self.rx_audio.append(self.dec(pkt[h:]))
                self.rx_seqts.append(struct.unpack("!HI", pkt[2:8]) +
                                     (pkt[1] >> 7,))

    def audio(self, skip_s=0.5):
        if not self.rx_audio:
            return np.zeros(0)
        x = np.concatenate(self.rx_audio)
        return x[int(skip_s * 8000):]

    def close(self):
        self.sock.close()


def run_media(parts, seconds, hook=None):
    """Send 20 ms frames from every participant for `seconds`, paced on a
    fixed grid, and collect what comes back.  hook(frame_no) runs once per
    frame (to inject attacks, rekey, events)."""
    frames = int(seconds * 50)
    t0 = time.monotonic()
    for p in parts:
        # a real sender's RTP clock runs on through a pause
        if getattr(p, "last_frame_t", None) is not None:
            gap = int((t0 - p.last_frame_t) / 0.02) - 1
            if gap > 0:
                p.ts = (p.ts + 160 * gap) & 0xFFFFFFFF
    for i in range(frames):
        for p in parts:
            if p.freq is not None:
                p.send_frame(marker=(i == 0))
        if hook:
            hook(i)
        while True:
            left = t0 + (i + 1) * 0.02 - time.monotonic()
            if left <= 0:
                break
            select.select([p.sock for p in parts], [], [], left)
            for p in parts:
                p.poll()
    for p in parts:
        p.last_frame_t = t0 + (frames - 1) * 0.02
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        select.select([p.sock for p in parts], [], [], 0.05)
        for p in parts:
            p.poll()
