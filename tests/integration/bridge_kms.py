#!/usr/bin/python3
"""bridge_kms.py  KMS-keyed legs: bridged fetches leg keys from a real kmsd.

kmsd (SQLite) with its NDS listener, the demo certificates
(scripts/certs.sh), two UEs that join conference "kmsconf" actively with
the `ue` tool.  The test derives each participant's SRTP keys from the
printed leg key with its own HKDF (docs/keys.md) and checks they match what
`ue` prints; bridged, keyed over NDS, must verify and decrypt the
participants' SRTP and be verified by them.  Then: an unknown participant
is a 502, a rekey through the KMS leaves no gap, and with kmsd stopped the
established legs keep flowing while a new KMS leg is a 503 that succeeds
once kmsd is back.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bridge_lib import bt, srtp  # noqa: E402

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.kdf.hkdf import HKDF  # noqa: E402

T = bt.Tally("bridge_kms")
BIN = os.path.dirname(bt.BRIDGED)
KMSD, UE = os.path.join(BIN, "kmsd"), os.path.join(BIN, "ue")
TOP = os.environ.get("KEYMIX_TOP") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", ".."))
for b in (bt.BRIDGED, KMSD, UE):
    if not os.path.exists(b):
        print("%s not built" % b)
        sys.exit(77)
REF = "kmsconf"
FOCUS = "bridge1.keymix.test"


def kv(text):
    d = {}
    for line in text.splitlines():
        for part in line.split(" ") if line.startswith("profile=") else \
                [line]:
            if "=" in part:
                k, v = part.split("=", 1)
                d.setdefault(k, v)
        if line.startswith("profile="):
            f = dict(p.split("=", 1) for p in line.split(" "))
            d["keys:" + f["profile"]] = (f["tx"], f["rx"])
    return d


def derive(leg_key, profile, label):
    """docs/keys.md: HKDF-SHA-256, empty salt, info by profile and role."""
    kl, sl, _, _ = srtp.PROFILES[profile]
    info = ("keymix leg v1|%s|%s" % (profile, label)).encode()
    return HKDF(hashes.SHA256(), kl + sl, b"", info).derive(leg_key)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Kms:
    def __init__(self, tmp, certs):
        self.tmp, self.certs = tmp, certs
        self.db = ["--db", os.path.join(tmp, "kms.db"), "--storage-key",
                   os.path.join(tmp, "storage.key")]
        subprocess.run([KMSD, "keygen", os.path.join(tmp, "storage.key")],
                       check=True, capture_output=True)
        self.nds_port = free_port()
        self.proc = None
        self.port = None

    def admin(self, *args):
        r = subprocess.run([KMSD, "admin"] + self.db + list(args),
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("kmsd admin %s: %s" % (args, r.stderr))
        return kv(r.stdout)

    def start(self):
        pf = os.path.join(self.tmp, "port")
        if os.path.exists(pf):
            os.unlink(pf)
        c = self.certs
        self.proc = subprocess.Popen(
            [KMSD, "serve"] + self.db +
            ["--listen", "127.0.0.1:%d" % (self.port or 0), "--port-file",
             pf, "--cert", c + "/kmsd-nds.crt", "--key",
             c + "/kmsd-nds.key", "--nds", "127.0.0.1:%d" % self.nds_port,
             "--nds-cert", c + "/kmsd-nds.crt", "--nds-key",
             c + "/kmsd-nds.key", "--nds-ca", c + "/ca.crt"],
            stderr=open(os.path.join(self.tmp, "kmsd.log"), "a"))
        log = os.path.join(self.tmp, "kmsd.log")
        if not bt.wait_for(lambda: os.path.exists(pf) and
                           open(pf).read().strip() or
                           self.proc.poll() is not None, 10) or \
                self.proc.poll() is not None:
            if "no NDS listener" in open(log).read():
                print("kmsd has no NDS listener in this build")
                bt.shutil.rmtree(self.tmp, ignore_errors=True)
                sys.exit(77)
            raise RuntimeError("kmsd did not start: " + open(log).read())
        self.port = int(open(pf).read())

    def stop(self):
        if self.proc:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def ue(self, cmd, who, *args):
        r = subprocess.run(
            [UE, cmd, "--state", os.path.join(self.tmp, who + ".json"),
             "--kms", "127.0.0.1:%d" % self.port, "--ca",
             self.certs + "/ca.crt", "--server-name", "localhost"] +
            list(args), capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise RuntimeError("ue %s %s: %s" % (cmd, who, r.stderr))
        return kv(r.stdout)


tmp = tempfile.mkdtemp(prefix="bridge_kms_")
certs = os.path.join(tmp, "certs")
r = subprocess.run(["bash", os.path.join(TOP, "scripts", "certs.sh"),
                    certs], capture_output=True, text=True)
if r.returncode:
    print("certs.sh failed: %s" % r.stderr)
    sys.exit(77)
kms = Kms(tmp, certs)
br = None
parts = []
try:
    kms.start()
    kms.admin("conf-register", REF, "--focus", FOCUS, "--secret", "s3cret")
    people = {"alice": "AES_CM_128_HMAC_SHA1_80",
              "bob": "AEAD_AES_128_GCM"}
    keys = {}
    for who in people:
        ident = who + "@keymix.test"
        cred = kms.admin("add-identity", ident)["cred"]
        kms.ue("bootstrap", who, "--id", ident, "--cred", cred)
        keys[who] = kms.ue("conf-join", who, "--conf", REF, "--secret",
                           "s3cret", "--print-keys")
    # our own HKDF agrees with what ue (keyleg_derive) prints
    for who, prof in people.items():
        lk = bt.base64.b64decode(keys[who]["leg_key"])
        tx_ue, rx_ue = keys[who]["keys:" + prof]
        T.check(bt.b64(derive(lk, prof, "participant-to-bridge")) == tx_ue
                and bt.b64(derive(lk, prof, "bridge-to-participant")) ==
                rx_ue, "%s: independent HKDF matches ue's %s keys" %
                (who, prof))

    br = bt.Bridge(rtp_ports="32500-32599", workers=2, extra=[
        "--kms", "127.0.0.1:%d" % kms.nds_port,
        "--nds-cert", certs + "/bridge1.crt",
        "--nds-key", certs + "/bridge1.key", "--nds-ca", certs + "/ca.crt"])
    st, j = br.conf("k1", rate=16000)
    T.check(st == 201, "conference")
    for who, f in (("alice", 500.0), ("bob", 1400.0)):
        prof = people[who]
        # alice's sequence numbers wrap before her rekey: the rollover
        # counter must carry over on both sides (RFC 3711 3.3.1)
        p = bt.Participant(who, f, profile=prof,
                           first_seq=65500 if who == "alice" else None)
        tx, rx = keys[who]["keys:" + prof]
        p.rx_key, p.tx_key = bt.base64.b64decode(tx), bt.base64.b64decode(rx)
        p.send_ctx = srtp.Context(prof, p.rx_key)
        p.recv_ctx = srtp.Context(prof, p.tx_key)
        body = p.leg_body()
        body["srtp"] = {"profile": prof, "key": {"kms": {
            "conference": REF, "participant": who + "@keymix.test"}}}
        st, j = br.leg("k1", **body)
        T.check(st == 201, "%s: KMS-keyed leg: %s %s" % (who, st, j))
        p.joined(j)
        parts.append(p)
    a, b = parts

    def hears(p, q, skip=0.5):
        return bt.band_power(p.audio(skip), q.freq) > 0.05

    def leg_of(p):
        conf = br.get("k1")[1]
        return [x for x in conf["legs"] if x["leg"] == p.leg_id][0]

    bt.run_media(parts, 2.0)
    T.check(hears(a, b) and hears(b, a), "alice and bob hear each other "
            "through KMS-keyed SRTP")
    T.check(a.rx_errors == 0 and b.rx_errors == 0,
            "participants verify every packet from the bridge")
    T.check(leg_of(a)["auth_failures"] == 0 and
            leg_of(a)["key_source"] == "kms", "bridge verifies alice")

    # unknown participant: the KMS refuses -> 502
    st, j = br.leg("k1", participant="sip:carol@keymix.test", codec="pcmu",
                   remote="127.0.0.1:40600", srtp={
                       "profile": "AES_CM_128_HMAC_SHA1_80", "key": {
                           "kms": {"conference": REF,
                                   "participant": "carol@keymix.test"}}})
    T.check(st == 502 and j.get("error"), "unknown participant: 502 %s" % j)

    # rekey through the KMS: alice gets generation 2, the bridge follows
    k2 = kms.ue("rekey", "alice", "--conf", REF, "--print-keys")
    T.check(k2.get("generation") != keys["alice"].get("generation"),
            "ue rekey: new generation %s" % k2.get("generation"))
    st, j = br.request("PATCH", "/v1/conferences/k1/legs/" + a.leg_id,
                       {"rekey": True})
    T.check(st == 200, "PATCH rekey from the KMS: %s" % st)
    tx, rx = k2["keys:" + people["alice"]]
    a.rekey(bt.base64.b64decode(tx), bt.base64.b64decode(rx))
    for p in parts:
        p.rx_audio = []
    bt.run_media(parts, 1.5)
    T.check(hears(a, b, 0.3) and hears(b, a, 0.3),
            "audio both ways after the KMS rekey")
    T.check(leg_of(a)["auth_failures"] == 0, "no auth failure across the "
            "rekey")

    # kmsd down: media goes on; a new KMS leg is a 503
    kms.stop()
    for p in parts:
        p.rx_audio = []
    bt.run_media(parts, 1.5)
    T.check(hears(a, b, 0.3) and hears(b, a, 0.3),
            "established legs keep flowing with kmsd stopped")
    body = {"participant": "sip:bob@keymix.test", "codec": "pcmu",
            "remote": "127.0.0.1:40601", "srtp": {
                "profile": "AES_CM_128_HMAC_SHA1_80", "key": {"kms": {
                    "conference": REF,
                    "participant": "bob@keymix.test"}}}}
    st, j = br.leg("k1", **body)
    T.check(st == 503 and "KMS" in j.get("error", ""),
            "new KMS leg with kmsd down: 503 %s" % j)
    kms.start()
    got = []
    bt.wait_for(lambda: got.append(br.leg("k1", **body)) or
                got[-1][0] == 201, 15)
    T.check(got and got[-1][0] == 201, "the same request succeeds once "
            "kmsd is back (%d tries, last %s)" % (len(got), got[-1][0]))
    st, j = br.request("GET", "/metrics")
    T.check("keymix_bridge_kms_failures_total" in j, "KMS metrics")
finally:
    if br:
        br.stop()
    kms.stop()
    for p in parts:
        p.close()
if not T.failed:
    bt.shutil.rmtree(tmp, ignore_errors=True)
T.done()
