#!/usr/bin/python3
"""kms_server.py  kmsd as a server: framing, errors, limits, timeouts.

Talks to a real kmsd over TLS 1.3 on loopback with Python's ssl module:
malformed, oversized and truncated frames get a clear error; garbage
does not crash it; many clients at once; idle and partial-request
timeouts close connections; --max-conns is enforced; TLS below 1.3 and a
wrong server name are refused.
"""
import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("KEYMIX_BUILD", os.path.join(
    os.path.dirname(__file__), "..", "..", "build"))
KMSD = os.path.join(BUILD, "bin", "kmsd")
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + str(detail) if detail else ""))


class Kms:
    def __init__(self, tmp, extra):
        self.tmp = tmp
        self.crt = os.path.join(tmp, "kms.crt")
        key = os.path.join(tmp, "kms.key")
        subprocess.run([KMSD, "keygen", os.path.join(tmp, "sk")], check=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", self.crt, "-days", "2",
                        "-subj", "/CN=kms.keymix.test", "-addext",
                        "subjectAltName=DNS:kms.keymix.test"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pf = os.path.join(tmp, "port")
        self.proc = subprocess.Popen(
            [KMSD, "serve", "--db", os.path.join(tmp, "db"),
             "--storage-key", os.path.join(tmp, "sk"), "--listen",
             "127.0.0.1:0", "--port-file", pf, "--cert", self.crt,
             "--key", key] + extra,
            stderr=open(os.path.join(tmp, "kmsd.log"), "w"))
        for _ in range(100):
            if os.path.exists(pf) and open(pf).read().strip():
                self.port = int(open(pf).read())
                break
            time.sleep(0.05)
        self.ctx = ssl.create_default_context(cafile=self.crt)

    def connect(self, name="kms.keymix.test", ctx=None):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        return (ctx or self.ctx).wrap_socket(s, server_hostname=name)

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def send(s, payload):
    s.sendall(struct.pack(">I", len(payload)) + payload)


def recv(s):
    hdr = b""
    while len(hdr) < 4:
        c = s.recv(4 - len(hdr))
        if not c:
            return None
        hdr += c
    n = struct.unpack(">I", hdr)[0]
    body = b""
    while len(body) < n:
        c = s.recv(n - len(body))
        if not c:
            return None
        body += c
    return json.loads(body)


def closed(s):
    try:
        return s.recv(1) == b""
    except (ssl.SSLError, OSError):
        return True


def main():
    if not os.access(KMSD, os.X_OK):
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="kms_server.")
    k = Kms(tmp, ["--idle-timeout", "3000", "--request-timeout", "700",
                  "--max-conns", "40"])
    try:
        s = k.connect()
        check("TLS 1.3 negotiated", s.version() == "TLSv1.3", s.version())
        errs = []
        for p in [b"{", b"[]", b"null", b"\xff\xfe", b'{"v":1}',
                  b'{"v":1,"type":"p2p"}', b'{"v":"1","type":"p2p"}',
                  b'{"v":1,"type":"bootstrap","id":"x"}',
                  b'{"v":1,"type":"conf-join","id":"a","conf":"b",'
                  b'"request":"!!!"}']:
            send(s, p)
            r = recv(s)
            errs.append(r and r.get("type") == "error" and r.get("error"))
        check("malformed requests get error responses on one connection",
              all(errs), errs)
        send(s, b'{"v":1,"type":"bootstrap","id":"nobody","time":0,'
                b'"nonce":"AAAAAAAAAAAAAAAAAAAAAA","mac":"' +
             b"A" * 43 + b'"}')
        r = recv(s)
        check("stale bootstrap refused with a clear code",
              r and r.get("error") == "stale", r)
        big = b'{"v":1,"type":"nope","pad":"' + b"x" * 16340 + b'"}'
        send(s, big)
        r = recv(s)
        check("a frame of %d bytes (near the limit) is handled" % len(big),
              r and r.get("error") == "unsupported", r)
        s.sendall(b"".join(struct.pack(">I", 21) + b'{"v":1,"type":"nope"}'
                           for _ in range(20)))
        rs = [recv(s) for _ in range(20)]
        check("20 pipelined requests get 20 answers in order",
              all(r and r.get("error") == "unsupported" for r in rs))
        # a client that writes but does not read: kmsd stops reading it
        # once 64 KiB of answers wait, and loses nothing
        def rss():
            for l in open("/proc/%d/status" % k.proc.pid):
                if l.startswith("VmRSS:"):
                    return int(l.split()[1])
            return 0
        r0 = rss()
        slow = k.connect()
        req = struct.pack(">I", 21) + b'{"v":1,"type":"nope"}'
        slow.settimeout(2)
        sent = 0
        try:
            for _ in range(200):
                slow.sendall(req * 100)
                sent += 100
        except (socket.timeout, ssl.SSLError, OSError):
            pass
        grown = rss() - r0
        slow.settimeout(20)
        got = 0
        while got < sent and (recv(slow) or {}).get("error"):
            got += 1
        check("slow reader: memory bounded (%d KiB grown) and %d/%d "
              "answers" % (grown, got, sent), grown < 16384 and
              got == sent and sent > 0)
        slow.close()
        s = k.connect()
        s.sendall(struct.pack(">I", 1 << 20))
        r = recv(s)
        check("oversized frame: error, then the connection closes",
              r and r.get("error") == "oversized" and closed(s), r)
        s = k.connect()
        s.sendall(struct.pack(">I", 0))
        r = recv(s)
        check("zero-length frame refused", r and
              r.get("error") == "oversized", r)
        # garbage of every size does not crash kmsd
        for n in (1, 3, 7, 100, 5000):
            try:
                g = k.connect()
                g.sendall(os.urandom(n))
                g.close()
            except OSError:
                pass
        raw = socket.create_connection(("127.0.0.1", k.port))
        raw.sendall(os.urandom(3000))
        raw.close()
        time.sleep(0.2)
        check("garbage (TLS and plain) does not crash kmsd", k.alive())
        # partial request: the request timeout closes it
        p = k.connect()
        p.sendall(struct.pack(">I", 100) + b'{"v":1')
        t0 = time.time()
        r = recv(p)
        check("a partial request is timed out with an error",
              r and r.get("error") == "timeout" and closed(p), r)
        # idle: nothing sent at all
        i = k.connect()
        r = recv(i)
        check("an idle connection is closed", r is None or
              r.get("error") == "timeout")
        # many clients at once
        cs = [k.connect() for _ in range(30)]
        for c in cs:
            send(c, b'{"v":1,"type":"nope"}')
        ok = sum(1 for c in cs if (recv(c) or {}).get("error") ==
                 "unsupported")
        check("30 clients at once all answered", ok == 30, ok)
        more = []
        for _ in range(15):
            try:
                more.append(k.connect())
            except (OSError, ssl.SSLError):
                more.append(None)
        refused = 0
        for c in more:
            if c is None:
                refused += 1
                continue
            try:
                send(c, b'{"v":1,"type":"nope"}')
                if recv(c) is None:
                    refused += 1
            except (OSError, ssl.SSLError):
                refused += 1
        check("connections past --max-conns are refused", refused >= 5,
              refused)
        for c in cs + [c for c in more if c]:
            c.close()
        time.sleep(0.3)
        # TLS 1.2 and a wrong name
        ctx12 = ssl.create_default_context(cafile=k.crt)
        ctx12.maximum_version = ssl.TLSVersion.TLSv1_2
        try:
            k.connect(ctx=ctx12)
            check("TLS 1.2 refused", False)
        except (ssl.SSLError, OSError):
            check("TLS 1.2 refused", True)
        try:
            k.connect(name="evil.example")
            check("a wrong server name fails verification", False)
        except ssl.SSLCertVerificationError:
            check("a wrong server name fails verification", True)
        check("kmsd still running", k.alive())
    except Exception as ex:
        check("harness", False, repr(ex))
    finally:
        k.stop()
        log = open(os.path.join(tmp, "kmsd.log")).read()
        check("no sanitizer report from kmsd",
              "Sanitizer" not in log and "runtime error" not in log,
              log[:2000])
    if failed == 0:
        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print("kept " + tmp)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
