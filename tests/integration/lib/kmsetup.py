"""kmsetup.py  Keymix pieces for e2e tests: keys, participants, bridged.

Participants are uemedia (our SRTP endpoint) or gstpeer.py (GStreamer's
SRTP stack).  Keys never go on a command line: they are written to 0600
files and passed as @FILE.
"""

import base64
import os
import secrets
import socket
import subprocess
import time

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
                 uri=None, level_ext=None, host="127.0.0.1",
                 encrypt_ext=False, talk=None):
        self.name = name
        self.talk = talk
        self.encrypt_ext = encrypt_ext
        self.host = host
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
        self.port = free_port(host=host)
        self.wav = os.path.join(outdir, "%s.wav" % name)
        self.keyargs = []
        self.proc = None
        self.stats = {}
        self.rc = None

    @property
    def addr(self):
        if ":" in self.host:
            return "[%s]:%d" % (self.host, self.port)
        return "%s:%d" % (self.host, self.port)

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
            if self.encrypt_ext and self.level_ext:
                body["srtp"]["encrypted_ext"] = [self.level_ext]
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
        if self.talk:
            a += ["--talk", ",".join("%g:%g" % w for w in self.talk)]
        if self.level_ext:
            a += ["--audio-level-ext", str(self.level_ext)]
            if self.encrypt_ext:
                a.append("--encrypt-ext")
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


# ------------------------------------------------------------------ KMS

def certs_dir():
    """The demo operator CA and node certificates (make certs)."""
    return os.path.join(kmtest.BUILD, "certs")


def make_certs():
    """Run scripts/certs.sh into build/certs (idempotent); return dir
    or None if the script is not on this branch."""
    script = os.path.join(kmtest.TOP, "scripts", "certs.sh")
    if not os.path.exists(script):
        return None
    d = certs_dir()
    subprocess.run(["bash", script, d], check=True, capture_output=True,
                   timeout=120)
    return d


def self_signed(tmp):
    """A directory with a self-signed kms.keymix.test certificate under
    the names Kms expects (no NDS listener: that needs `make certs`)."""
    d = os.path.join(tmp, "selfsigned")
    os.makedirs(d, exist_ok=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    os.path.join(d, "kmsd-nds.key"), "-out",
                    os.path.join(d, "kmsd-nds.crt"), "-days", "2",
                    "-subj", "/CN=" + Kms.SERVER_NAME, "-addext",
                    "subjectAltName=DNS:" + Kms.SERVER_NAME],
                   check=True, capture_output=True, timeout=30)
    with open(os.path.join(d, "kmsd-nds.crt")) as f:
        crt = f.read()
    with open(os.path.join(d, "ca.crt"), "w") as f:
        f.write(crt)
    return d


def kv_profiles(text):
    """The "profile=NAME tx=B64 rx=B64" lines of ue --print-keys."""
    d = {}
    for line in text.splitlines():
        if line.startswith("profile="):
            f = dict(p.split("=", 1) for p in line.split())
            d[f["profile"]] = (f["tx"], f["rx"])
    return d


def kv(text):
    """ue/kmsd key=value output -> dict ("profile=" lines skipped)."""
    d = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("profile="):
            k, v = line.split("=", 1)
            d[k] = v
    return d


class Kms:
    """kmsd with SQLite in a temp dir, its UE listener and NDS listener;
    identities provisioned and bootstrapped through the ue tool."""

    SERVER_NAME = "kms.keymix.test"

    def __init__(self, procs, tmp, certs, nds=True):
        self.procs = procs
        self.with_nds = nds
        self.tmp = tmp
        self.certs = certs
        self.proc = None
        self.port = None
        self.nds_port = free_port(socket.SOCK_STREAM)
        self.db = ["--db", os.path.join(tmp, "kms.db"),
                   "--storage-key", os.path.join(tmp, "storage.key")]
        r = subprocess.run([binary("kmsd"), "keygen",
                            os.path.join(tmp, "storage.key")],
                           capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise RuntimeError("kmsd keygen: " + r.stderr)
        self.starts = 0

    @property
    def nds(self):
        return "127.0.0.1:%d" % self.nds_port

    def start(self, timeout=10.0):
        pf = os.path.join(self.tmp, "kmsd.port")
        if os.path.exists(pf):
            os.unlink(pf)
        c = self.certs
        self.starts += 1
        self.proc, _ = self.procs.start(
            "kmsd-%d" % self.starts,
            [binary("kmsd"), "serve"] + self.db +
            ["--listen", "127.0.0.1:0", "--port-file", pf,
             "--cert", os.path.join(c, "kmsd-nds.crt"),
             "--key", os.path.join(c, "kmsd-nds.key")] +
            (["--nds", self.nds,
              "--nds-cert", os.path.join(c, "kmsd-nds.crt"),
              "--nds-key", os.path.join(c, "kmsd-nds.key"),
              "--nds-ca", os.path.join(c, "ca.crt"),
              "--audit-log", os.path.join(self.tmp, "audit.log")]
             if self.with_nds else []))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if os.path.exists(pf):
                txt = open(pf).read().strip()
                if txt:
                    self.port = int(txt)
                    return
            if not self.proc.alive():
                break
            time.sleep(0.05)
        raise RuntimeError("kmsd did not start: " + self.proc.stderr_tail())

    def stop(self, sig=None):
        if self.proc:
            if sig:
                self.proc.signal(sig)
            self.proc.stop(5)
            self.proc = None

    def admin(self, *args, ok=True):
        r = subprocess.run([binary("kmsd"), "admin"] + self.db +
                           [str(a) for a in args], capture_output=True,
                           text=True, timeout=30)
        if ok and r.returncode:
            raise RuntimeError("kmsd admin %s: %s" % (args[0], r.stderr))
        return r

    def ue(self, who, cmd, *args, raw=False):
        """Run `ue CMD` as identity who; return (rc, dict, stderr), or
        (rc, stdout text, stderr) with raw."""
        r = subprocess.run(
            [binary("ue"), cmd, "--state",
             os.path.join(self.tmp, "ue-%s.json" % who.replace("/", "_")),
             "--kms", "127.0.0.1:%d" % self.port,
             "--ca", os.path.join(self.certs, "ca.crt"),
             "--server-name", self.SERVER_NAME] + [str(a) for a in args],
            capture_output=True, text=True, timeout=30)
        return (r.returncode, r.stdout if raw else kv(r.stdout),
                r.stderr.strip())

    def provision(self, who):
        cred = kv(self.admin("add-identity", who).stdout)["cred"]
        rc, _, err = self.ue(who, "bootstrap", "--id", who, "--cred", cred)
        if rc:
            raise RuntimeError("bootstrap %s: %s" % (who, err))

    def passive_join(self, chairman, invitees, focus, label="c1"):
        """The chairman invites every invitee (one Ra); each answers and
        gets its leg key; the chairman finishes each invitation and gets
        K1.  Returns (conference reference, {identity: leg key b64})."""
        keys = {}
        ref = None
        k1 = set()
        for i, who in enumerate(invitees):
            args = ["--to", who, "--focus", focus, "--label", label]
            if i == 0:
                args.append("--new")
            rc, inv, err = self.ue(chairman, "conf-invite", *args)
            if rc:
                raise RuntimeError("conf-invite %s: %s" % (who, err))
            rc, ans, err = self.ue(who, "conf-answer", "--from", chairman,
                                   "--invite", inv["invite"],
                                   "--print-keys")
            if rc:
                raise RuntimeError("conf-answer %s: %s" % (who, err))
            keys[who] = ans["leg_key"]
            if ref and ans["conference"] != ref:
                raise RuntimeError("two conference references")
            ref = ans["conference"]
            rc, fin, err = self.ue(chairman, "conf-finish", "--to", who,
                                   "--reply", ans["reply_a"], "--label",
                                   label, "--print-keys")
            if rc:
                raise RuntimeError("conf-finish %s: %s" % (who, err))
            k1.add(fin["leg_key"])
        if len(k1) != 1:
            raise RuntimeError("chairman got %d different K1" % len(k1))
        keys[chairman] = k1.pop()
        return ref, keys

    def register_active(self, ref, focus, secret):
        """Register ref for active join, or open the existing passive-join
        conference ref for it (focus: the one its chairman named)."""
        self.admin("conf-register", ref, "--focus", focus, "--secret",
                   secret)

    def active_join(self, who, ref, secret):
        """(rc, leg key or None, stderr)"""
        rc, out, err = self.ue(who, "conf-join", "--conf", ref, "--secret",
                               secret, "--print-keys")
        return rc, out.get("leg_key"), err
