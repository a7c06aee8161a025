#!/usr/bin/python3
"""nds_link.py  The NDS/IP link of a real kmsd: certificates, roles, bad input.

kmsd serves the UE listener and the NDS listener; a passive-join
conference is made with the ue tool; network nodes (kmsnode, and a raw
TLS client in this script for input the library never sends) then use
the NDS link.  Checks: the focus bridge gets the leg key, every refusal
of the issue (other bridge, other CA, expired, no/unknown role, wrong
key usage, role not fitting), malformed / oversized / truncated frames
answered with errors while kmsd lives on, the audit log (and its
reopening on SIGHUP) with no key material.
"""
import base64
import os
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("KEYMIX_BUILD", os.path.join(
    os.path.dirname(__file__), "..", "..", "build"))
TOP = os.environ.get("KEYMIX_TOP", os.path.join(
    os.path.dirname(__file__), "..", ".."))
BIN = os.path.join(BUILD, "bin")
KMSD, UE, NODE = (os.path.join(BIN, n) for n in ("kmsd", "ue", "kmsnode"))

passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + str(detail)[:400] if detail else ""))


def kv(text):
    d = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("profile="):
            k, v = line.split("=", 1)
            d[k] = v
    return d


class Kmsd:
    def __init__(self, tmp):
        self.tmp = tmp
        self.certs = os.path.join(tmp, "certs")
        subprocess.run(["bash", os.path.join(TOP, "scripts", "certs.sh"),
                        self.certs], check=True, stdout=subprocess.DEVNULL)
        self.db = ["--db", os.path.join(tmp, "kms.db"),
                   "--storage-key", os.path.join(tmp, "storage.key")]
        subprocess.run([KMSD, "keygen", os.path.join(tmp, "storage.key")],
                       check=True)
        self.audit = os.path.join(tmp, "audit.log")
        self.proc = None
        self.san = []

    def c(self, name):
        return os.path.join(self.certs, name)

    def start(self):
        pf, npf = (os.path.join(self.tmp, f) for f in ("port", "nds-port"))
        for f in (pf, npf):
            if os.path.exists(f):
                os.unlink(f)
        self.log = open(os.path.join(self.tmp, "kmsd.log"), "a")
        self.proc = subprocess.Popen(
            [KMSD, "serve"] + self.db +
            ["--listen", "127.0.0.1:0", "--port-file", pf,
             "--cert", self.c("kmsd-nds.crt"), "--key", self.c("kmsd-nds.key"),
             "--request-timeout", "700",
             "--nds", "127.0.0.1:0", "--nds-port-file", npf,
             "--nds-cert", self.c("kmsd-nds.crt"),
             "--nds-key", self.c("kmsd-nds.key"),
             "--nds-ca", self.c("ca.crt"), "--audit-log", self.audit],
            stderr=self.log)
        for _ in range(200):
            if all(os.path.exists(f) and open(f).read().strip()
                   for f in (pf, npf)):
                self.port = int(open(pf).read())
                self.nds = int(open(npf).read())
                return
            time.sleep(0.05)
        raise RuntimeError("kmsd did not start")

    def stop(self):
        if self.proc:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=10)
            self.proc = None

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def admin(self, *args):
        r = subprocess.run([KMSD, "admin"] + self.db + list(args),
                           capture_output=True, text=True)
        if r.returncode:
            raise RuntimeError("admin %s: %s" % (args, r.stderr))
        return kv(r.stdout)

    def ue(self, cmd, who, *args):
        r = subprocess.run(
            [UE, cmd, "--state", os.path.join(self.tmp, who + ".json"),
             "--kms", "127.0.0.1:%d" % self.port,
             "--ca", self.c("ca.crt"), "--server-name", "localhost"] +
            list(args), capture_output=True, text=True, timeout=30)
        if r.returncode:
            raise RuntimeError("ue %s %s: %s" % (cmd, who, r.stderr))
        return kv(r.stdout)

    def node(self, cert, *args):
        r = subprocess.run(
            [NODE, "--kms", "127.0.0.1:%d" % self.nds,
             "--cert", self.c(cert + ".crt"), "--key", self.c(cert + ".key"),
             "--ca", self.c("ca.crt"), "--timeout", "3000"] + list(args),
            capture_output=True, text=True, timeout=30)
        if "Sanitizer" in r.stderr or "runtime error" in r.stderr:
            self.san.append(r.stderr)
        return r.returncode, kv(r.stdout), r.stderr


# ---- raw frames (docs/nds.md) ----

def frame(typ, rid, fields=(), version=1):
    body = struct.pack(">BBHI", version, typ, 0, rid)
    for tag, val in fields:
        if isinstance(val, str):
            val = val.encode()
        body += struct.pack(">BH", tag, len(val)) + val
    return struct.pack(">I", len(body)) + body


def read_frame(s):
    def need(n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                return None
            b += c
        return b
    h = need(4)
    if h is None:
        return None
    body = need(struct.unpack(">I", h)[0])
    if body is None:
        return None
    typ, rid = body[1], struct.unpack(">I", body[4:8])[0]
    fields, off = {}, 8
    while off + 3 <= len(body):
        tag, ln = struct.unpack(">BH", body[off:off + 3])
        fields[tag] = body[off + 3:off + 3 + ln]
        off += 3 + ln
    return typ, rid, fields


def err_code(f):
    if f is None or f[0] != 0xff:
        return None
    return struct.unpack(">H", f[2][13])[0]


def raw(k, cert="bridge1"):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_verify_locations(k.c("ca.crt"))
    ctx.load_cert_chain(k.c(cert + ".crt"), k.c(cert + ".key"))
    s = socket.create_connection(("127.0.0.1", k.nds), timeout=5)
    s = ctx.wrap_socket(s, server_hostname="localhost")
    return s, read_frame(s)


def test_fetch_and_refusals(k, conf, bob_key):
    rc, out, err = k.node("bridge1", "fetch", conf, "bob", "--print-key")
    check("focus bridge fetches bob's leg key", rc == 0 and
          out.get("leg_key", "").rstrip("=") == bob_key.rstrip("="), err)
    rc, out, err = k.node("bridge1", "fetch", conf, "alice")
    check("no key material printed without --print-key",
          rc == 0 and "leg_key" not in out, out)
    rc, _, err = k.node("bridge2", "fetch", conf, "bob")
    check("another bridge is refused (not the focus)",
          rc != 0 and "not the focus" in err, err)
    for cert, why in (("test/other-bridge1", "refused"),
                      ("test/expired-bridge1", "expired"),
                      ("test/norole1", "no keymix-role"),
                      ("test/badrole1", "unknown role"),
                      ("test/serveronly1", "refused"),
                      ("kmsd-nds", "refused")):
        rc, _, err = k.node(cert, "fetch", conf, "bob")
        check("certificate %s refused" % cert, rc != 0 and why in err, err)
    rc, _, err = k.node("transcoder1", "fetch", conf, "bob")
    check("a transcoder may not fetch leg keys",
          rc != 0 and "role transcoder" in err, err)
    rc, _, err = k.node("mailbox1", "transcoder", "call-x")
    check("a mailbox may not fetch call keys",
          rc != 0 and "role mailbox" in err, err)
    rc, _, err = k.node("bridge1", "fetch", conf, "mallory")
    check("unknown participant: not found",
          rc != 0 and "not-found" in err, err)


def test_raw_frames(k):
    s, hello = raw(k)
    check("kmsd greets with the identity and role it saw",
          hello and hello[0] == 0x85 and
          hello[2].get(16) == b"bridge1.keymix.test" and
          hello[2].get(17) == b"bridge", hello)
    s.sendall(frame(0x04, 7))
    f = read_frame(s)
    check("ping -> pong", f and f[0] == 0x84 and f[1] == 7, f)
    bad = frame(0x04, 8)
    bad = struct.pack(">I", len(bad) - 4 + 5) + bad[4:] + b"\x01\x00\x09ab"
    s.sendall(bad)
    check("malformed field -> error malformed",
          err_code(read_frame(s)) == 1)
    s.sendall(frame(0x04, 9, version=7))
    check("other version -> error unsupported",
          err_code(read_frame(s)) == 3)
    s.sendall(frame(0x01, 10, [(1, "c"), (1, "d"), (2, "p")]))
    check("duplicate field -> error malformed", err_code(read_frame(s)) == 1)
    s.sendall(frame(0x01, 11, [(1, "conf x"), (2, "p")]))
    check("identity with a space -> error malformed",
          err_code(read_frame(s)) == 1)
    s.sendall(frame(0x04, 12))
    f = read_frame(s)
    check("the connection survives bad messages", f and f[0] == 0x84, f)
    s.sendall(struct.pack(">I", 0x00ffffff) + b"\x01" * 64)
    f = read_frame(s)
    check("oversized frame -> error too-large, then closed",
          err_code(f) == 2 and read_frame(s) is None, f)
    s.close()

    s, _ = raw(k)
    s.sendall(struct.pack(">I", 200) + b"\x01\x01\x00\x00\x00\x00")
    f = read_frame(s)   # kmsd's request timeout (700 ms)
    check("truncated request -> error timeout, then closed",
          err_code(f) == 9 and read_frame(s) is None, f)
    s.close()

    # plain TCP garbage and handshakes cut short
    for i in range(30):
        t = socket.create_connection(("127.0.0.1", k.nds), timeout=5)
        if i % 3 == 0:
            t.sendall(b"\x16\x03\x01\x02\x00" + os.urandom(300))
        elif i % 3 == 1:
            t.sendall(b"GET / HTTP/1.0\r\n\r\n")
        t.close()
    check("kmsd alive after garbage and cut handshakes", k.alive())


def test_pipelined(k, conf):
    s, _ = raw(k)
    reqs = b"".join(frame(0x01, 100 + i, [(1, conf), (2, "bob")])
                    for i in range(20))
    s.sendall(reqs)
    got = [read_frame(s) for _ in range(20)]
    check("20 pipelined fetches answered in order on one connection",
          all(f and f[0] == 0x81 and f[1] == 100 + i
              for i, f in enumerate(got)), got[:2])
    s.close()


def main():
    if not all(os.access(b, os.X_OK) for b in (KMSD, UE, NODE)):
        print("kmsd/ue/kmsnode not built")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="nds_link.")
    k = Kmsd(tmp)
    secret = []
    try:
        k.start()
        for who in ("alice", "bob"):
            cred = k.admin("add-identity", who)["cred"]
            k.ue("bootstrap", who, "--id", who, "--cred", cred)
        inv = k.ue("conf-invite", "alice", "--to", "bob", "--focus",
                   "bridge1.keymix.test", "--label", "n1", "--new")
        b = k.ue("conf-answer", "bob", "--from", "alice", "--invite",
                 inv["invite"], "--print-keys")
        conf, bob_key = b.get("conference"), b.get("leg_key", "")
        secret.append(bob_key)
        check("passive join made a conference", conf and bob_key, b)
        test_fetch_and_refusals(k, conf, bob_key)
        test_raw_frames(k)
        test_pipelined(k, conf)
        rc, out, err = k.node("bridge1", "fetch", conf, "bob")
        check("fetch works after all the bad input", rc == 0, err)

        # audit log rotation: move the file, SIGHUP, new file
        os.rename(k.audit, k.audit + ".1")
        k.proc.send_signal(signal.SIGHUP)
        time.sleep(0.3)
        rc, _, err = k.node("bridge1", "fetch", conf, "bob")
        check("SIGHUP reopens the audit log", rc == 0 and
              os.path.exists(k.audit) and
              "release role=bridge" in open(k.audit).read(), err)
    except Exception as ex:
        check("harness", False, repr(ex))
    finally:
        k.stop()
        text = ""
        for f in (k.audit + ".1", k.audit):
            if os.path.exists(f):
                text += open(f).read()
        check("audit: releases, refusals and drops are recorded",
              "release role=bridge node=bridge1.keymix.test" in text and
              "leg=bob" in text and
              "deny role=bridge node=bridge2.keymix.test" in text and
              "certificate has expired" in text and
              "reason=frame-too-large" in text, text[:600])
        keys = [x for x in secret if x]
        raw_keys = [base64.b64decode(x + "=" * (-len(x) % 4))
                    for x in keys]
        check("audit: no key material",
              keys and all(x.rstrip("=") not in text for x in keys) and
              all(r.hex() not in text for r in raw_keys))
        check("no sanitizer reports", not k.san, k.san[:1])
        log = open(os.path.join(tmp, "kmsd.log")).read()
        check("kmsd: no sanitizer report in its log",
              "Sanitizer" not in log and "runtime error" not in log,
              log[-800:])
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
