#!/usr/bin/python3
"""bridge_api.py  bridged's command line and control API contract.

Every error status of the API is provoked at least once (400, 401, 404,
409, 422, 503, and 502 with a fake KMS that answers garbage over mutual
TLS); nothing crashes and an established conference is not disturbed.
"""

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bridge_lib import bt  # noqa: E402

T = bt.Tally("bridge_api")
if not os.path.exists(bt.BRIDGED):
    print("bridged not built")
    sys.exit(77)

KEY16 = bt.b64(bytes(30))          # AES_CM_128: 16 + 14 bytes


def srtp(profile="AES_CM_128_HMAC_SHA1_80", rx=KEY16, tx=KEY16):
    return {"profile": profile, "key": {"inline": {"rx": rx, "tx": tx}}}


def leg(**kw):
    body = {"participant": "sip:x@example.org", "codec": "pcmu",
            "remote": "127.0.0.1:9"}
    body.update(kw)
    return body


# ---- command line ----
def run_cli(args, timeout=5):
    p = subprocess.run([bt.BRIDGED] + args, capture_output=True, text=True,
                       timeout=timeout)
    return p.returncode, p.stdout, p.stderr


rc, out, err = run_cli(["--token-file", "/nonexistent", "--rtp-ports",
                        "1-2", "--control", "192.0.2.1:80"])
T.check(rc == 2 and out == "" and "loopback" in err,
        "non-loopback control address refused without TLS (rc %d)" % rc)
rc, out, err = run_cli(["--control", "127.0.0.1:0"])
T.check(rc == 2 and "--token-file" in err, "missing --token-file: rc 2")
rc, out, err = run_cli(["--control", "127.0.0.1:0", "--token-file",
                        "/nonexistent/x", "--rtp-ports", "40000-40001"])
T.check(rc == 1 and out == "" and "token" in err,
        "unreadable token file: rc 1, message on stderr")
rc, out, err = run_cli(["--help"])
T.check(rc == 0 and "--rtp-ports" in out, "--help prints usage")

br = bt.Bridge(rtp_ports="32200-32203", workers=1)
try:
    T.check(br.ready_line.startswith("ready control=127.0.0.1:") and
            br.port > 0, "one ready line with the real port: %s" %
            br.ready_line)
    out_rest = br.proc.stdout.read1(4096) if hasattr(
        br.proc.stdout, "read1") else ""
    # ---- 401 ----
    st, j = br.request("GET", "/v1/health", token=None)
    T.check(st == 401 and "error" in j, "no token: 401 %s" % j)
    st, j = br.request("GET", "/v1/conferences",
                       token="Bearer " + br.token + "x")
    T.check(st == 401, "wrong token: 401")
    st, j = br.request("POST", "/v1/conferences", {"id": "z"},
                       token="Basic " + br.token)
    T.check(st == 401, "not a bearer token: 401")
    st, j = br.request("GET", "/metrics", token=None)
    T.check(st == 401, "metrics need the token too")
    # ---- health, metrics ----
    st, j = br.request("GET", "/v1/health")
    T.check(st == 200 and j["status"] == "ok", "health 200")
    # ---- conferences ----
    st, j = br.conf("c1", mode="mix", rate=48000, ptime=20, max_talkers=3,
                    opus={"complexity": 5, "bitrate": 32000, "fec": True,
                          "dtx": False})
    T.check(st == 201 and j == {"id": "c1"}, "POST conference: 201")
    st, j = br.conf("c1")
    T.check(st == 409 and "error" in j, "duplicate conference: 409")
    st, j = br.conf("t1", mode="transcode")
    T.check(st == 201, "transcode conference: 201")
    st, j = br.request("GET", "/v1/conferences")
    T.check(st == 200 and j == ["c1", "t1"],
            "list conferences: %s" % j)
    cases400 = [
        ("malformed JSON", "/v1/conferences", '{"id": "q",', None),
        ("body not an object", "/v1/conferences", '[1, 2]', None),
        ("missing id", "/v1/conferences", None, {"mode": "mix"}),
        ("id wrong type", "/v1/conferences", None, {"id": 5}),
        ("rate wrong type", "/v1/conferences", None,
         {"id": "q", "rate": "48000"}),
        ("opus.fec wrong type", "/v1/conferences", None,
         {"id": "q", "opus": {"fec": "yes"}}),
        ("id with a slash", "/v1/conferences", None, {"id": "a/b"}),
        ("leg: missing remote", "/v1/conferences/c1/legs", None,
         {"participant": "sip:a@b", "codec": "pcmu"}),
        ("leg: bad remote", "/v1/conferences/c1/legs", None,
         leg(remote="localhost:5")),
        ("leg: remote port 0", "/v1/conferences/c1/legs", None,
         leg(remote="127.0.0.1:0")),
        ("leg: payload_type wrong type", "/v1/conferences/c1/legs", None,
         leg(payload_type="0")),
        ("leg: bad base64", "/v1/conferences/c1/legs", None,
         leg(srtp=srtp(rx="!!notbase64!!"))),
        ("leg: base64 with broken padding", "/v1/conferences/c1/legs",
         None, leg(srtp=srtp(rx=KEY16[:-4] + "QQ="))),
        ("leg: base64 with non-zero unused bits", "/v1/conferences/c1/legs",
         None, leg(srtp=srtp("AEAD_AES_128_GCM",
                             bt.b64(bytes(28))[:-3] + "B==",
                             bt.b64(bytes(28))))),
        ("leg: srtp without key", "/v1/conferences/c1/legs", None,
         leg(srtp={"profile": "AES_CM_128_HMAC_SHA1_80"})),
        ("leg: srtp wrong type", "/v1/conferences/c1/legs", None,
         leg(srtp="AES_CM_128_HMAC_SHA1_80")),
    ]
    for what, path, raw, body in cases400:
        st, j = br.request("POST", path, body, raw=raw)
        T.check(st == 400 and isinstance(j, dict) and j.get("error"),
                "400 %s: %s" % (what, j))
    cases422 = [
        ("unsupported mode", "/v1/conferences", {"id": "q", "mode": "x"}),
        ("unsupported rate", "/v1/conferences", {"id": "q", "rate": 44100}),
        ("automatic rate in mix mode", "/v1/conferences",
         {"id": "q", "rate": 0}),
        ("unsupported ptime", "/v1/conferences", {"id": "q", "ptime": 30}),
        ("unsupported codec", "/v1/conferences/c1/legs",
         leg(codec="speex")),
        ("pcmu at 16000", "/v1/conferences/c1/legs", leg(rate=16000)),
        ("g722 at 8000", "/v1/conferences/c1/legs",
         leg(codec="g722", rate=8000)),
        ("unsupported profile", "/v1/conferences/c1/legs",
         leg(srtp=srtp(profile="NULL_HMAC"))),
        ("key too short for AES-256", "/v1/conferences/c1/legs",
         leg(srtp=srtp(profile="AES_256_CM_HMAC_SHA1_80"))),
        ("GCM key needs 28 bytes", "/v1/conferences/c1/legs",
         leg(srtp=srtp(profile="AEAD_AES_128_GCM"))),
        ("unsupported direction", "/v1/conferences/c1/legs",
         leg(direction="sideways")),
    ]
    for what, path, body in cases422:
        st, j = br.request("POST", path, body)
        T.check(st == 422 and j.get("error"), "422 %s: %s" % (what, j))
    # ---- legs ----
    st, j = br.leg("c1", **leg(srtp=srtp(), remote="127.0.0.1:40000",
                               direction="sendrecv", audio_level_ext=1,
                               telephone_event_pt=101, payload_type=0,
                               ptime=20, rate=8000))
    T.check(st == 201 and set(j) == {"leg", "local", "ssrc"} and
            j["local"].startswith("127.0.0.1:322"), "POST leg: 201 %s" % j)
    l1 = j["leg"]
    st, j = br.leg("c1", **leg(codec="opus", payload_type=111,
                               remote="[::1]:40002",
                               opus={"bitrate": 24000},
                               srtp=srtp("AEAD_AES_128_GCM",
                                         bt.b64(bytes(28)).rstrip("="),
                                         bt.b64(bytes(28)))))
    T.check(st == 201 and j["local"].startswith("[::1]:"),
            "IPv6 opus/GCM leg (one key without '=' padding): 201 %s" % j)
    l2 = j["leg"]
    # ---- 404 ----
    for m, path in (("GET", "/v1/conferences/nope"),
                    ("DELETE", "/v1/conferences/nope"),
                    ("POST", "/v1/conferences/nope/legs"),
                    ("PATCH", "/v1/conferences/c1/legs/l99"),
                    ("DELETE", "/v1/conferences/c1/legs/l99"),
                    ("GET", "/v2/whatever"),
                    ("GET", "/v1/conferences/c1/bogus")):
        st, j = br.request(m, path, {"muted": True} if m != "GET" else None)
        T.check(st == 404 and j.get("error"), "404 %s %s" % (m, path))
    # ---- PATCH ----
    st, j = br.request("PATCH", "/v1/conferences/c1/legs/" + l1,
                       {"muted": True, "gain_db": -3,
                        "direction": "recvonly"})
    T.check(st == 200 and j["muted"] is True and j["leg"] == l1 and
            j["direction"] == "recvonly" and j["gain_db"] == -3,
            "PATCH leg: 200 with the leg")
    st, j = br.request("PATCH", "/v1/conferences/c1/legs/" + l1,
                       {"muted": "yes"})
    T.check(st == 400, "PATCH muted wrong type: 400")
    st, j = br.request("PATCH", "/v1/conferences/c1/legs/" + l1,
                       {"key": {"inline": {"rx": KEY16,
                                           "tx": bt.b64(bytes(10))}}})
    T.check(st == 422, "PATCH rekey with a short key: 422")
    st, j = br.request("PATCH", "/v1/conferences/c1/legs/" + l1,
                       {"key": {"inline": {"rx": bt.b64(os.urandom(30)),
                                           "tx": bt.b64(os.urandom(30))}}})
    T.check(st == 200, "PATCH rekey with new inline keys: 200")
    st, j = br.request("PATCH", "/v1/conferences/c1/legs/" + l1,
                       {"rekey": True})
    T.check(st == 400, "PATCH rekey from the KMS on an inline leg: 400")
    # ---- 503: KMS not configured, overload, port range exhausted ----
    st, j = br.leg("c1", **leg(srtp={
        "profile": "AES_CM_128_HMAC_SHA1_80",
        "key": {"kms": {"conference": "conf-ref-1",
                        "participant": "sip:x@example.org"}}}))
    T.check(st == 503 and "KMS" in j["error"],
            "KMS key without a KMS: 503 %s" % j)
    # transcode conference: two legs; the range (4 ports) is then full
    for i in range(2):
        st, j = br.leg("t1", **leg(remote="127.0.0.1:%d" % (40010 + i)))
        T.check(st == 201, "transcode leg %d: 201" % (i + 1))
    st, j = br.leg("t1", **leg(remote="127.0.0.1:40012"))
    T.check(st == 503 and "exhausted" in j["error"],
            "port range exhausted: 503 %s" % j)
    st, j = br.get("t1")
    T.check(st == 200 and j.get("rate") == 8000 and j.get("rate_auto"),
            "transcode without a rate runs at its PCMU legs' 8000: %s %s" %
            (j.get("rate"), j.get("rate_auto")))
    # ---- conference GET shape ----
    st, j = br.get("c1")
    T.check(st == 200 and set(("id", "mode", "rate", "talkers", "legs"))
            <= set(j) and [x["leg"] for x in j["legs"]] == [l1, l2],
            "GET conference lists both legs in order")
    st, j = br.request("DELETE", "/v1/conferences/c1/legs/" + l2)
    T.check(st == 204, "DELETE leg: 204")
    st, j = br.request("DELETE", "/v1/conferences/c1/legs/" + l2)
    T.check(st == 404, "DELETE leg again: 404")
    st, j = br.leg("t1", **leg(remote="127.0.0.1:40012"))
    T.check(st == 409 and "full" in j["error"],
            "third leg of a transcode conference: 409 %s" % j)
    st, j = br.request("DELETE", "/v1/conferences/t1")
    T.check(st == 204, "DELETE conference: 204")
    st, j = br.request("GET", "/v1/conferences/t1")
    T.check(st == 404, "deleted conference: 404")
    legs_now = []
    for i in range(3):
        st, j = br.leg("c1", **leg(remote="127.0.0.1:%d" % (40100 + i)))
        legs_now.append(st)
    T.check(legs_now == [201, 201, 201], "ports freed by the deletes "
            "are reused: %s" % legs_now)
    st, j = br.request("GET", "/metrics")
    T.check(st == 200 and "\nkeymix_bridge_legs 4\n" in j and
            "# TYPE keymix_bridge_packets_in_total counter" in j,
            "metrics in Prometheus text")
    st, j = br.request("GET", "/v1/health")
    T.check(st == 200 and j["legs"] == 4, "still healthy: %s" % j)
    T.check(br.proc.poll() is None, "bridged still running")
finally:
    rc = br.stop(signal.SIGTERM)
T.check(rc == 0, "SIGTERM exit 0")

# ---- IPv6 control listener ----
p = subprocess.Popen([bt.BRIDGED, "--control", "[::1]:0", "--token-file",
                      os.path.join(br.dir, "token"), "--rtp-ports",
                      "32240-32249", "--workers", "1"],
                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                     text=True)
line = p.stdout.readline().strip()
T.check(line.startswith("ready control=[::1]:"), "IPv6 ready line: %s" %
        line)
p.terminate()
T.check(p.wait(timeout=10) == 0, "IPv6 bridged exits 0 on SIGTERM")

# ---- TLS on the control listener: a non-loopback address is allowed ----
tdir = br.dir
r = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout",
                    tdir + "/ctl.key", "-out", tdir + "/ctl.crt", "-days",
                    "2", "-subj", "/CN=127.0.0.1", "-addext",
                    "subjectAltName=IP:127.0.0.1"], capture_output=True)
if r.returncode == 0:
    rc, out, err = run_cli(["--control", "0.0.0.0:0", "--token-file",
                            tdir + "/token", "--rtp-ports", "1-2"])
    T.check(rc == 2 and "TLS" in err, "0.0.0.0 without TLS refused")
    br = bt.Bridge(rtp_ports="32250-32259", workers=1,
                   control="0.0.0.0:0", tls_ca=tdir + "/ctl.crt",
                   config={"control-cert": tdir + "/ctl.crt",
                           "control-key": tdir + "/ctl.key"})
    try:
        T.check(br.ready_line.startswith("ready control=0.0.0.0:"),
                "TLS listener on 0.0.0.0: %s" % br.ready_line)
        st, j = br.request("GET", "/v1/health")
        T.check(st == 200 and j["status"] == "ok", "health over TLS")
        st, j = br.request("GET", "/v1/health", token=None)
        T.check(st == 401, "no token over TLS: 401")
        st, j = br.conf("tls1")
        T.check(st == 201, "conference over TLS")
        plain = bt.Bridge.__new__(bt.Bridge)
        plain.host, plain.port, plain.token, plain.tls_ca = \
            br.host, br.port, br.token, None
        try:
            st, j = plain.request("GET", "/v1/health")
        except (OSError, http.client.HTTPException):
            st = None
        T.check(st is None, "plain HTTP to the TLS listener gets nothing")
        os.kill(br.proc.pid, signal.SIGHUP)
        T.check(bt.wait_for(lambda: "control TLS certificate re-read" in
                            br.stderr()), "SIGHUP re-reads the TLS cert")
        st, j = br.request("GET", "/v1/conferences")
        T.check(st == 200 and j == ["tls1"], "still serving after reload")
    finally:
        T.check(br.stop(signal.SIGTERM) == 0, "TLS bridged exits 0")
else:
    print("no openssl command: TLS listener not tested")

# ---- overload: a worker at its leg limit refuses new legs ----
br = bt.Bridge(rtp_ports="32220-32229", workers=1,
               config={"max-legs-per-worker": 1})
try:
    br.conf("o1")
    st, j = br.leg("o1", **leg(remote="127.0.0.1:40400"))
    T.check(st == 201, "first leg under the limit")
    st, j = br.leg("o1", **leg(remote="127.0.0.1:40401"))
    T.check(st == 503 and "overload" in j["error"],
            "over the limit: 503 overload %s" % j)
    st, j = br.request("GET", "/metrics")
    T.check("keymix_bridge_legs_refused_total 1" in j,
            "refusal counted in metrics")
finally:
    br.stop()

# ---- overload by tick budget: a worker past max-load-permille ----
br = bt.Bridge(rtp_ports="32270-32279", workers=1,
               config={"max-load-permille": 1})
try:
    br.conf("busy", rate=48000)
    # set-up: the worker may publish its first load figure at any time,
    # so only the first leg is sure to get in
    codes = [br.leg("busy", **leg(codec="opus", remote="127.0.0.1:%d" %
                                  (40700 + i)))[0] for i in range(2)]
    T.check(codes[0] == 201, "a leg while the worker is idle")

    def load():
        m = br.request("GET", "/metrics")[1]
        return [float(x.split()[-1]) for x in m.splitlines()
                if x.startswith("keymix_bridge_worker_load_ratio{")][0]
    T.check(bt.wait_for(lambda: load() >= 0.001, 10),
            "mixing shows in the worker's load (%.3f)" % load())
    st, j = br.leg("busy", **leg(codec="opus", remote="127.0.0.1:40702"))
    T.check(st == 503 and "tick budget" in j["error"],
            "worker over its budget: 503 %s" % j)
    # the tick lateness histogram: cumulative buckets, +Inf = _count =
    # the ticks run (the conference ticks every 20 ms)
    m = br.request("GET", "/metrics")[1]
    hn = "keymix_bridge_tick_lateness_seconds"
    buckets = [float(x.split()[-1]) for x in m.splitlines()
               if x.startswith(hn + '_bucket{worker="0"')]
    count = [float(x.split()[-1]) for x in m.splitlines()
             if x.startswith(hn + '_count{worker="0"}')]
    ticks = [float(x.split()[-1]) for x in m.splitlines()
             if x.startswith('keymix_bridge_worker_ticks_total{worker="0"}')]
    T.check("# TYPE %s histogram" % hn in m and len(buckets) == 13 and
            buckets == sorted(buckets) and count and buckets[-1] ==
            count[0] == ticks[0] > 0,
            "tick lateness histogram: %s count %s ticks %s" % (
                buckets, count, ticks))
finally:
    br.stop()

# ---- --user: privileges dropped after binding (only testable as root) ----
if os.geteuid() == 0:
    br = bt.Bridge(rtp_ports="32230-32239", workers=1,
                   extra=["--user", "nobody"])
    try:
        with open("/proc/%d/status" % br.proc.pid) as f:
            uids = [ln.split()[1:] for ln in f if ln.startswith("Uid:")][0]
        T.check(set(uids) == {"65534"}, "--user nobody: all uids dropped "
                "(%s)" % uids)
        br.conf("u1")
        st, j = br.leg("u1", **leg(remote="127.0.0.1:40500"))
        T.check(st == 201, "legs still open after the drop")
        # the token file is root's 0600: reload fails, old token kept
        os.kill(br.proc.pid, signal.SIGHUP)
        st, j = br.request("GET", "/v1/health")
        T.check(st == 200, "SIGHUP as nobody: old token still works")
        T.check(bt.wait_for(lambda: "reload" in br.stderr()),
                "failed reload logged")
    finally:
        T.check(br.stop(signal.SIGTERM) == 0, "--user run exits 0")
else:
    print("not root: --user not tested")

# ---- 502 / 503 from the KMS (fake NDS peer over mutual TLS) ----
d = br.dir


def sh(*a):
    subprocess.run(a, check=True, capture_output=True)


try:
    sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
       "ec_paramgen_curve:P-256", "-nodes", "-keyout", d + "/ca.key",
       "-out", d + "/ca.pem", "-subj", "/CN=test-ca", "-days", "2")
    for n, cn in (("kms", "127.0.0.1"), ("bridge", "bridge.test")):
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt",
           "ec_paramgen_curve:P-256", "-nodes", "-keyout",
           "%s/%s.key" % (d, n), "-out", "%s/%s.csr" % (d, n), "-subj",
           "/CN=" + cn)
        ext = "%s/%s.ext" % (d, n)
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:%s\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n" % cn)
        sh("openssl", "x509", "-req", "-in", "%s/%s.csr" % (d, n), "-CA",
           d + "/ca.pem", "-CAkey", d + "/ca.key", "-CAcreateserial",
           "-out", "%s/%s.pem" % (d, n), "-days", "2", "-extfile", ext)
    certs_ok = True
except (subprocess.CalledProcessError, FileNotFoundError) as e:
    print("cannot make test certificates: %s" % e)
    certs_ok = False

if certs_ok:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(d + "/kms.pem", d + "/kms.key")
    ctx.load_verify_locations(d + "/ca.pem")
    ctx.verify_mode = ssl.CERT_REQUIRED
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(8)
    kport = lsock.getsockname()[1]
    stop = threading.Event()

    def fake_kms():
        lsock.settimeout(0.2)
        while not stop.is_set():
            try:
                s, _ = lsock.accept()
            except socket.timeout:
                continue
            try:
                t = ctx.wrap_socket(s, server_side=True)
                t.settimeout(2)
                t.recv(4096)
                t.sendall(b"\xff" * 64 + b"this is not an NDS answer\n")
                t.close()
            except (OSError, ssl.SSLError):
                s.close()

    th = threading.Thread(target=fake_kms, daemon=True)
    th.start()
    # a port where nobody listens, for "KMS down"
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    dead_port = dead.getsockname()[1]
    dead.close()
    kms_leg = leg(srtp={"profile": "AES_CM_128_HMAC_SHA1_80", "key": {
        "kms": {"conference": "conf-ref-1",
                "participant": "sip:x@example.org"}}})
    for port, want, what in ((kport, 502, "KMS answers garbage"),
                             (dead_port, 503, "KMS unreachable")):
        try:
            b2 = bt.Bridge(rtp_ports="32210-32219", workers=1, extra=[
                "--kms", "127.0.0.1:%d" % port, "--nds-cert",
                d + "/bridge.pem", "--nds-key", d + "/bridge.key",
                "--nds-ca", d + "/ca.pem"])
        except RuntimeError as e:
            if "without the NDS client" not in str(e):
                raise
            print("bridged has no NDS client yet: KMS cases not run")
            break
        try:
            b2.conf("k1")
            st, j = b2.leg("k1", **leg(remote="127.0.0.1:40300"))
            T.check(st == 201, "plain leg next to the KMS legs")
            st, j = b2.leg("k1", **kms_leg)
            T.check(st == want and j.get("error"),
                    "%s: %d %s" % (what, st, j))
            st, j = b2.get("k1")
            T.check(st == 200 and len(j["legs"]) == 1,
                    "the failed KMS leg left nothing behind")
            os.kill(b2.proc.pid, signal.SIGHUP)
            st, j = b2.request("GET", "/v1/health")
            T.check(st == 200 and j["kms"] is True,
                    "SIGHUP reload keeps serving")
            T.check(bt.wait_for(lambda: "NDS credentials re-read" in
                                b2.stderr()),
                    "SIGHUP: the KMS thread re-read the NDS files")
        finally:
            b2.stop()
    stop.set()
    th.join()

    # a KMS that accepts and then says nothing: the fetch waits on the
    # KMS thread while the control API keeps answering
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(4)
    accepted = threading.Event()
    release = threading.Event()
    held = []

    def hang_kms():
        s, _ = hang.accept()
        held.append(s)
        accepted.set()
        release.wait(30)
        s.close()
        hang.close()     # a reconnect is refused, not left waiting

    th = threading.Thread(target=hang_kms, daemon=True)
    th.start()
    b3 = bt.Bridge(rtp_ports="32260-32269", workers=1,
                   config={"kms-timeout-ms": 8000}, extra=[
                       "--kms", "127.0.0.1:%d" % hang.getsockname()[1],
                       "--nds-cert", d + "/bridge.pem", "--nds-key",
                       d + "/bridge.key", "--nds-ca", d + "/ca.pem"])
    try:
        b3.conf("h1")
        result = []
        post = threading.Thread(target=lambda: result.append(
            b3.leg("h1", **kms_leg)), daemon=True)
        post.start()
        T.check(accepted.wait(10), "the KMS fetch reached the hanging KMS")
        st, j = b3.request("GET", "/v1/health")
        waiting = post.is_alive() and not release.is_set()
        T.check(st == 200 and waiting, "control API answers while a KMS "
                "fetch is pending (health %s, fetch pending %s)" %
                (st, waiting))
        st, j = b3.conf("h2")
        T.check(st == 201 and post.is_alive(), "and creates conferences")
        release.set()
        post.join(30)
        T.check(result and result[0][0] in (502, 503),
                "the fetch fails once the KMS hangs up: %s" % result)
        st, j = b3.get("h1")
        T.check(st == 200 and j["legs"] == [], "no leg left behind")
    finally:
        release.set()
        b3.stop()
T.done()
