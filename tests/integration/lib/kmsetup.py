"""kmsetup.py  Keymix pieces for e2e tests: keys, participants, bridged.

Participants are uemedia (our SRTP endpoint) or gstpeer.py (GStreamer's
SRTP stack).  Keys never go on a command line: they are written to 0600
files and passed as @FILE.
"""

import base64
import os
import secrets
import subprocess

import kmtest
from kmtest import binary, free_port, parse_stats

PY = "/usr/bin/python3"
HERE = os.path.dirname(os.path.abspath(__file__))

KEY_LEN = {
    "AES_CM_128_HMAC_SHA1_80": 30,
    "AES_CM_128_HMAC_SHA1_32": 30,
    "AES_256_CM_HMAC_SHA1_80": 46,
    "AEAD_AES_128_GCM": 28,
    "AEAD_AES_256_GCM": 44,
}


def b64key(n):
    return base64.b64encode(secrets.token_bytes(n)).decode()


def inline_pair(profile):
    """(participant_sends_with, bridge_sends_with) as base64."""
    n = KEY_LEN[profile]
    return b64key(n), b64key(n)


def secret_file(tmp, name, text):
    path = os.path.join(tmp, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    return path


class UE:
    """One simulated participant (uemedia)."""

    def __init__(self, name, outdir, tone=None, level=-20.0, codec="opus",
                 rate=None, ptime=20, pt=None, profile=None,
                 uri=None, level_ext=None):
        self.name = name
        self.outdir = outdir
        self.tone = tone
        self.level = level
        self.codec = codec
        self.rate = rate
        self.ptime = ptime
        self.pt = pt
        self.profile = profile
        self.uri = uri or "sip:%s@example.org" % name.lower()
        self.level_ext = level_ext
        self.port = free_port()
        self.wav = os.path.join(outdir, "%s.wav" % name)
        self.keyargs = []
        self.proc = None
        self.stats = {}
        self.rc = None

    @property
    def addr(self):
        return "127.0.0.1:%d" % self.port

    def inline(self, tmp):
        """Make inline keys; return the leg's srtp "key" object."""
        mine, bridge = inline_pair(self.profile)
        self.keyargs = [
            "--tx-key", "@" + secret_file(tmp, self.name + ".tx", mine),
            "--rx-key", "@" + secret_file(tmp, self.name + ".rx", bridge)]
        return {"inline": {"rx": mine, "tx": bridge}}

    def leg_key(self, tmp, b64):
        self.keyargs = ["--leg-key",
                        "@" + secret_file(tmp, self.name + ".leg", b64)]

    def leg_body(self, key=None, **extra):
        body = {"participant": self.uri, "codec": self.codec,
                "remote": self.addr, "ptime": self.ptime}
        if self.rate:
            body["rate"] = self.rate
        if self.pt is not None:
            body["payload_type"] = self.pt
        if self.level_ext:
            body["audio_level_ext"] = self.level_ext
        if self.profile:
            body["srtp"] = {"profile": self.profile, "key": key}
        else:
            body["srtp"] = None
        body.update(extra)
        return body

    def argv(self, remote, duration, extra=()):
        a = [binary("uemedia"), "--local", self.addr, "--remote", remote,
             "--codec", self.codec, "--ptime", str(self.ptime),
             "--duration", str(duration), "--wav-out", self.wav]
        if self.rate:
            a += ["--rate", str(self.rate)]
        if self.pt is not None:
            a += ["--pt", str(self.pt)]
        if self.tone:
            a += ["--tone", "%g:%g" % (self.tone, self.level)]
        if self.level_ext:
            a += ["--audio-level-ext", str(self.level_ext)]
        if self.profile:
            a += ["--profile", self.profile] + self.keyargs
        return a + list(extra)

    def start(self, procs, remote, duration, extra=()):
        self.proc, _ = procs.start("ue-" + self.name,
                                   self.argv(remote, duration, extra),
                                   ready="ready ")
        return self.proc

    def finish(self, timeout=30):
        self.rc = self.proc.wait(timeout)
        line = next((ln for ln in self.proc.lines
                     if ln.startswith("stats ")), "")
        self.stats = parse_stats(line)
        return self.stats


class GstUE(UE):
    """A participant made of GStreamer elements (Opus, inline keys)."""

    def __init__(self, name, outdir, tone, level=-20.0,
                 profile="AEAD_AES_128_GCM", ssrc=0x6757):
        super().__init__(name, outdir, tone=tone, level=level,
                         codec="opus", profile=profile)
        self.ssrc = ssrc
        self.pt = 111

    def inline(self, tmp):
        self.mine, self.bridge = inline_pair(self.profile)
        return {"inline": {"rx": self.mine, "tx": self.bridge}}

    def argv(self, remote, duration, extra=()):
        return [PY, os.path.join(HERE, "gstpeer.py"), "--local",
                str(self.port), "--remote", remote, "--profile",
                self.profile, "--tx-key", self.mine, "--rx-key",
                self.bridge, "--tone", "%g:%g" % (self.tone, self.level),
                "--duration", str(duration), "--wav-out", self.wav,
                "--ssrc", str(self.ssrc)] + list(extra)

    def finish(self, timeout=30):
        self.rc = self.proc.wait(timeout)
        self.stats = {}
        return self.stats


def gst_available():
    """True if GStreamer's Python bindings and SRTP/Opus elements exist."""
    r = _rc([PY, "-c",
                    "import gi; gi.require_version('Gst','1.0');"
                    "from gi.repository import Gst; Gst.init(None);"
                    "import sys; sys.exit(0 if all(Gst.ElementFactory.find"
                    "(e) for e in ('srtpenc','srtpdec','opusenc','opusdec',"
                    "'rtpopuspay','rtpopusdepay','wavenc','audiotestsrc'"
                    ")) else 1)"])
    return r == 0


def _rc(argv):
    try:
        return subprocess.run(argv, capture_output=True,
                              timeout=30).returncode
    except (OSError, subprocess.TimeoutExpired):
        return 1


def write_token(tmp):
    tok = secrets.token_urlsafe(24)
    return secret_file(tmp, "token", tok), tok


def start_bridged(procs, tmp, kms=None, certs=None, workers=1,
                  extra=()):
    """Start bridged on a free control port; return (Control, proc).
    kms: "HOST:PORT" of kmsd's NDS listener; certs: dict with cert, key,
    ca paths of the bridge's node certificate."""
    from kmapi import Control
    tok_path, tok = write_token(tmp)
    lo, hi = kmtest.rtp_range()
    argv = [binary("bridged"), "--control", "127.0.0.1:0",
            "--token-file", tok_path, "--rtp-ports", "%d-%d" % (lo, hi),
            "--workers", str(workers), "--log-level", "info"]
    if kms:
        argv += ["--kms", kms, "--nds-cert", certs["cert"], "--nds-key",
                 certs["key"], "--nds-ca", certs["ca"]]
    argv += list(extra)
    p, line = procs.start("bridged", argv, ready="ready control=",
                          timeout=15)
    addr = line.split("control=", 1)[1].strip()
    return Control(addr, tok), p
