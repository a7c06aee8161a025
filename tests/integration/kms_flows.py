#!/usr/bin/python3
"""kms_flows.py  Every UE flow end to end: real kmsd + ue over loopback.

Flows 1-6a of issue 3 plus the negatives that need real processes
(tampered and swapped statements, wrong credential, wrong conference
secret and its rate limit, expired token, token under a retired Kkms,
focus conflict).  Time moves with KEYMIX_TEST_CLOCK_OFFSET: kmsd is
restarted with a new offset, its store persists.
"""
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

BUILD = os.environ.get("KEYMIX_BUILD", os.path.join(
    os.path.dirname(__file__), "..", "..", "build"))
BIN = os.path.join(BUILD, "bin")
KMSD = os.path.join(BIN, "kmsd")
UE = os.path.join(BIN, "ue")
NODE = os.path.join(BIN, "kmsnode")
TOP = os.environ.get("KEYMIX_TOP", os.path.join(
    os.path.dirname(__file__), "..", ".."))

passed = 0
failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + detail if detail else ""))


def kv(text):
    """key=value lines -> dict (profile lines -> dict of (tx, rx))"""
    d = {"profiles": {}}
    for line in text.splitlines():
        if line.startswith("profile="):
            parts = dict(p.split("=", 1) for p in line.split())
            d["profiles"][parts["profile"]] = (parts["tx"], parts["rx"])
        elif "=" in line:
            k, v = line.split("=", 1)
            d[k] = v
    return d


class Env:
    def __init__(self, tmp):
        self.tmp = tmp
        self.offset = 0
        self.proc = None
        self.port = None
        self.extra = []
        self.san = []
        self.keys_seen = set()
        self.db = ["--db", os.path.join(tmp, "kms.db"),
                   "--storage-key", os.path.join(tmp, "storage.key")]
        subprocess.run([KMSD, "keygen", os.path.join(tmp, "storage.key")],
                       check=True)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                        "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", os.path.join(tmp, "kms.key"),
                        "-out", os.path.join(tmp, "kms.crt"), "-days", "60",
                        "-subj", "/CN=kms.keymix.test", "-addext",
                        "subjectAltName=DNS:kms.keymix.test"],
                       check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        self.certs = os.path.join(tmp, "certs")
        subprocess.run(["bash", os.path.join(TOP, "scripts", "certs.sh"),
                        self.certs], check=True, stdout=subprocess.DEVNULL)
        self.nds_port = None

    def env(self):
        e = dict(os.environ)
        e["KEYMIX_TEST_CLOCK_OFFSET"] = str(self.offset)
        return e

    def admin(self, *args, ok=True):
        r = subprocess.run([KMSD, "admin"] + self.db + list(args),
                           capture_output=True, text=True, env=self.env())
        if ok and r.returncode != 0:
            raise RuntimeError("admin %s: %s" % (args, r.stderr))
        return r

    def start(self):
        pf = os.path.join(self.tmp, "port")
        npf = os.path.join(self.tmp, "nds-port")
        for f in (pf, npf):
            if os.path.exists(f):
                os.unlink(f)
        c = self.certs
        self.proc = subprocess.Popen(
            [KMSD, "serve"] + self.db + self.extra +
            ["--nds", "127.0.0.1:0", "--nds-port-file", npf,
             "--nds-cert", os.path.join(c, "kmsd-nds.crt"),
             "--nds-key", os.path.join(c, "kmsd-nds.key"),
             "--nds-ca", os.path.join(c, "ca.crt"),
             "--audit-log", os.path.join(self.tmp, "audit.log"),
             "--listen", "127.0.0.1:0", "--port-file", pf,
             "--cert", os.path.join(self.tmp, "kms.crt"),
             "--key", os.path.join(self.tmp, "kms.key")],
            env=self.env(), stderr=open(os.path.join(self.tmp, "kmsd.log"),
                                        "a"))
        for _ in range(100):
            if os.path.exists(pf) and open(pf).read().strip() and \
                    os.path.exists(npf) and open(npf).read().strip():
                self.port = int(open(pf).read())
                self.nds_port = int(open(npf).read())
                return
            time.sleep(0.05)
        raise RuntimeError("kmsd did not start")

    def stop(self, sig=signal.SIGTERM):
        if self.proc:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)
            self.proc = None

    def ue(self, cmd, state, *args):
        r = subprocess.run(
            [UE, cmd, "--state", os.path.join(self.tmp, state + ".json"),
             "--kms", "127.0.0.1:%d" % self.port,
             "--ca", os.path.join(self.tmp, "kms.crt"),
             "--server-name", "kms.keymix.test"] + list(args),
            capture_output=True, text=True, env=self.env(), timeout=30)
        if "Sanitizer" in r.stderr or "runtime error" in r.stderr:
            self.san.append(r.stderr)
        out = kv(r.stdout)
        if "leg_key" in out:
            self.keys_seen.add(out["leg_key"])
            self.keys_seen.add(out["leg_key"].rstrip("="))
        return r.returncode, out, r.stderr

    def provision(self, who):
        r = self.admin("add-identity", who)
        cred = kv(r.stdout)["cred"]
        st = os.path.join(self.tmp, who + ".json")
        if os.path.exists(st):
            os.unlink(st)
        rc, _, err = self.ue("bootstrap", who, "--id", who, "--cred", cred)
        if rc != 0:
            raise RuntimeError("bootstrap %s: %s" % (who, err))
        return cred

    def node(self, cert, *args):
        """a network node's request over the NDS link (kmsnode)"""
        c = self.certs
        r = subprocess.run(
            [NODE, "--kms", "127.0.0.1:%d" % self.nds_port,
             "--cert", os.path.join(c, cert + ".crt"),
             "--key", os.path.join(c, cert + ".key"),
             "--ca", os.path.join(c, "ca.crt")] + list(args),
            capture_output=True, text=True, env=self.env(), timeout=30)
        if "Sanitizer" in r.stderr or "runtime error" in r.stderr:
            self.san.append(r.stderr)
        return r.returncode, kv(r.stdout), r.stderr

    def bridge_fetch(self, conf, who, bridge="bridge1"):
        """what the focus bridge gets over NDS (None if refused)"""
        rc, out, _ = self.node(bridge, "fetch", conf, who, "--print-key")
        return out if rc == 0 else None

    def store_fetch(self, conf, who):
        r = self.admin("leg-get", conf, who, "--print-key", ok=False)
        return kv(r.stdout) if r.returncode == 0 else None


def flip(b64):
    """tamper one character in the middle of a base64url string"""
    i = len(b64) // 2
    c = "A" if b64[i] != "A" else "B"
    return b64[:i] + c + b64[i + 1:]


def swapped(a, b):
    """tx/rx of one end are rx/tx of the other, for every profile"""
    return (a["profiles"] and a["profiles"].keys() == b["profiles"].keys()
            and all(a["profiles"][p] == b["profiles"][p][::-1]
                    for p in a["profiles"]))


def test_bootstrap(e):
    rc, out, err = e.ue("bootstrap", "mallory", "--id", "alice", "--cred",
                        "A" * 43)
    check("bootstrap with a wrong credential is refused",
          rc != 0 and "auth-failed" in err, err)


def test_p2p(e):
    rc, inv, _ = e.ue("call", "alice", "--to", "bob",
                      "--transcoder", "transcoder1.keymix.test")
    check("p2p: invite statement printed", rc == 0 and "invite" in inv)
    stmt = inv["invite"]
    rc, t, err = e.ue("answer", "bob", "--from", "alice",
                      "--invite", flip(stmt))
    check("p2p: tampered invite refused", rc != 0 and
          ("auth-failed" in err or "malformed" in err), err)
    rc, t, err = e.ue("answer", "carol", "--from", "alice",
                      "--invite", stmt)
    check("p2p: invite for bob used by carol refused (identities bound)",
          rc != 0 and "auth-failed" in err, err)
    rc, b, err = e.ue("answer", "bob", "--from", "alice", "--invite", stmt,
                      "--print-keys")
    check("p2p: callee gets K", rc == 0 and "leg_key" in b, err)
    rc, nokeys, _ = e.ue("finish", "alice", "--to", "bob", "--reply",
                         flip(b.get("reply_a", "x")))
    check("p2p: tampered reply refused by the caller", rc != 0)
    rc, a, err = e.ue("finish", "alice", "--to", "bob", "--reply",
                      b.get("reply_a", ""), "--print-keys")
    check("p2p: caller recovers the same K", rc == 0 and
          a.get("leg_key") == b.get("leg_key") and
          a.get("call") == b.get("call"), err)
    check("p2p: initiator tx == responder rx for every profile",
          swapped(a, b) and len(a["profiles"]) == 5)
    rc, t, err = e.node("transcoder1", "transcoder", a.get("call", ""),
                        "--print-key")
    check("p2p: the named transcoder fetches K over NDS",
          rc == 0 and t.get("leg_key") == a.get("leg_key"), err)
    rc, t, err = e.node("bridge1", "transcoder", a.get("call", ""))
    check("p2p: a bridge cannot fetch a call key", rc != 0, err)
    rc, quiet, _ = e.ue("answer", "bob", "--from", "alice", "--invite",
                        e.ue("invite", "alice", "--to", "bob")[1]["invite"])
    check("no key material without --print-keys",
          rc == 0 and "leg_key" not in quiet and not quiet["profiles"])


def test_conference(e):
    ia = e.ue("conf-invite", "alice", "--to", "bob", "--focus",
              "bridge1.keymix.test", "--label", "c1", "--new")[1]
    ic = e.ue("conf-invite", "alice", "--to", "carol", "--focus",
              "bridge1.keymix.test", "--label", "c1")[1]
    idn = e.ue("conf-invite", "alice", "--to", "dave", "--focus",
               "bridge1.keymix.test", "--label", "c1")[1]
    # carol and dave answer concurrently (the editor's note)
    procs = []
    for who, inv in (("carol", ic), ("dave", idn)):
        procs.append(subprocess.Popen(
            [UE, "conf-answer", "--state",
             os.path.join(e.tmp, who + ".json"),
             "--kms", "127.0.0.1:%d" % e.port,
             "--ca", os.path.join(e.tmp, "kms.crt"),
             "--server-name", "kms.keymix.test", "--from", "alice",
             "--invite", inv["invite"], "--print-keys"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=e.env()))
    rc, b, err = e.ue("conf-answer", "bob", "--from", "alice", "--invite",
                      ia["invite"], "--print-keys")
    outs = [kv(p.communicate(timeout=30)[0]) for p in procs]
    c, d = outs
    check("conf: B, C, D get their leg keys", rc == 0 and
          all("leg_key" in x for x in (b, c, d)), err)
    check("conf: one conference reference for every invitation",
          b.get("conference") and
          b.get("conference") == c.get("conference") == d.get("conference"))
    check("conf: K2, K3, K4 differ", len({b.get("leg_key"),
                                        c.get("leg_key"),
                                        d.get("leg_key")}) == 3)
    k1 = []
    for who, x in (("bob", b), ("carol", c), ("dave", d)):
        rc, a, err = e.ue("conf-finish", "alice", "--to", who, "--reply",
                          x.get("reply_a", ""), "--label", "c1",
                          "--print-keys")
        k1.append(a.get("leg_key"))
    check("conf: chairman gets the same K1 from every invitation",
          k1[0] and k1[0] == k1[1] == k1[2] and k1[0] != b.get("leg_key"))
    conf = b.get("conference", "")
    ok = True
    for who, key in (("alice", k1[0]), ("bob", b.get("leg_key")),
                     ("carol", c.get("leg_key")), ("dave", d.get("leg_key"))):
        f = e.bridge_fetch(conf, who)
        ok = ok and f is not None and f.get("leg_key") == key
    check("conf: the focus bridge fetches every leg key over NDS", ok)
    check("conf: another bridge is refused",
          e.bridge_fetch(conf, "bob", bridge="bridge2") is None)
    f = e.store_fetch(conf, "bob")
    check("conf: the store holds the focus", f is not None and
          f.get("focus") == "bridge1.keymix.test")
    check("conf: participant keys are conference/participant side",
          b.get("side") == "participant" and b.get("flow") == "conference")
    # another focus for the same conference is refused
    ie = e.ue("conf-invite", "alice", "--to", "erin", "--focus",
              "bridge2.keymix.test", "--label", "c1")[1]
    rc, _, err = e.ue("conf-answer", "erin", "--from", "alice", "--invite",
                      ie["invite"])
    check("conf: a second focus for one conference is refused",
          rc != 0 and "focus-conflict" in err, err)
    return conf, b


def test_rekey(e, conf, b):
    rc, r, err = e.ue("rekey", "bob", "--conf", conf, "--print-keys")
    f = e.bridge_fetch(conf, "bob")
    check("rekey: generation 2, new key, bridge fetches it",
          rc == 0 and r.get("generation") == "2" and
          r.get("leg_key") != b.get("leg_key") and f and
          f.get("leg_key") == r.get("leg_key") and
          f.get("generation") == "2", err)
    rc, _, err = e.ue("rekey", "erin", "--conf", conf)
    check("rekey: a non-participant cannot rekey", rc != 0 and
          "no-leg" in err, err)


def test_active_passive(e, conf):
    """The controller opens the chairman's passive conference for active
    join: the joiner's leg is under the chairman's reference."""
    sf = os.path.join(e.tmp, "conf.secret")
    fd = os.open(sf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("open sesame\n")
    rc, _, err = e.ue("conf-join", "frank", "--conf", conf, "--secret",
                      "open sesame")
    check("open: a passive conference is not open for active join yet",
          rc != 0 and "not-active-join" in err, err)
    r = e.admin("conf-register", conf, "--focus", "bridge2.keymix.test",
                "--secret-file", sf, ok=False)
    check("open: another focus than the chairman named is refused",
          r.returncode != 0 and "another focus" in r.stderr, r.stderr)
    rc, _, err = e.ue("conf-join", "frank", "--conf", conf, "--secret",
                      "open sesame")
    check("open: ... and leaves the conference closed",
          rc != 0 and "not-active-join" in err, err)
    r = e.admin("conf-register", conf, "--focus", "bridge1.keymix.test",
                "--secret-file", sf, ok=False)
    check("open: the chairman's focus opens it", r.returncode == 0,
          r.stderr)
    rc, x, err = e.ue("conf-join", "frank", "--conf", conf, "--secret",
                      "open sesame", "--print-keys")
    f = e.bridge_fetch(conf, "frank")
    check("open: active joiner's leg under the chairman's reference, "
          "fetched by the focus", rc == 0 and x.get("conference") == conf
          and f is not None and f.get("leg_key") == x.get("leg_key"), err)
    check("open: another bridge still refused",
          e.bridge_fetch(conf, "frank", bridge="bridge2") is None)
    rc, _, err = e.ue("conf-join", "erin", "--conf", conf, "--secret",
                      "open says me")
    check("open: wrong secret refused, no leg recorded",
          rc != 0 and "wrong-secret" in err and
          e.bridge_fetch(conf, "erin") is None, err)
    r = e.admin("conf-register", conf, "--focus", "bridge1.keymix.test",
                "--secret", "another", ok=False)
    check("open: opening twice is refused", r.returncode != 0 and
          "already open" in r.stderr, r.stderr)
    rc, x, err = e.ue("conf-join", "frank", "--conf", conf, "--secret",
                      "another")
    check("open: the first secret stays", rc != 0 and
          "wrong-secret" in err, err)


def test_active(e):
    e.admin("conf-register", "team-call", "--focus", "bridge1.keymix.test",
            "--secret", "correct horse", "--eligible", "frank")
    rc, x, err = e.ue("conf-join", "erin", "--conf", "team-call",
                      "--secret", "correct horse", "--print-keys")
    f = e.bridge_fetch("team-call", "erin")
    check("active join with the secret", rc == 0 and f and
          f.get("leg_key") == x.get("leg_key"), err)
    rc, y, err = e.ue("conf-join", "frank", "--conf", "team-call",
                      "--print-keys")
    check("active join from the eligible list", rc == 0 and
          "leg_key" in y, err)
    rc, _, err = e.ue("conf-join", "bob", "--conf", "team-call",
                      "--secret", "wrong")
    check("wrong conference secret refused", rc != 0 and
          "wrong-secret" in err, err)
    check("no leg recorded for a wrong proof",
          e.bridge_fetch("team-call", "bob") is None)
    for _ in range(5):
        e.ue("conf-join", "bob", "--conf", "team-call", "--secret", "nope")
    rc, _, err = e.ue("conf-join", "bob", "--conf", "team-call",
                      "--secret", "correct horse")
    check("rate limit per identity after repeated wrong proofs",
          rc != 0 and "rate-limited" in err, err)
    rc, _, err = e.ue("conf-join", "erin", "--conf", "no-such-conf",
                      "--secret", "x")
    check("unknown conference refused", rc != 0 and
          "conference-unknown" in err, err)


def test_fork(e):
    e.admin("group-add", "sales", "bob")
    e.admin("group-add", "sales", "carol")
    inv = e.ue("invite", "alice", "--to", "sales")[1]["invite"]
    rc, b, err = e.ue("fork-answer", "bob", "--from", "alice", "--group",
                      "sales", "--invite", inv, "--print-keys")
    rc2, c, err2 = e.ue("fork-answer", "carol", "--from", "alice",
                        "--group", "sales", "--invite", inv, "--print-keys")
    check("fork: both forked terminals get a key", rc == 0 and rc2 == 0,
          err + err2)
    rc, a, err = e.ue("fork-finish", "alice", "--to", "sales", "--reply",
                      b.get("reply_a", ""), "--print-keys")
    check("fork: caller and answerer share KDF(K, Rb)", rc == 0 and
          a.get("leg_key") == b.get("leg_key") and a.get("peer") == "bob",
          err)
    check("fork: the other terminal's key differs (it lacks Rb)",
          c.get("leg_key") and c.get("leg_key") != b.get("leg_key"))
    rc, _, err = e.ue("fork-answer", "dave", "--from", "alice", "--group",
                      "sales", "--invite", inv)
    check("fork: a non-member is refused", rc != 0 and
          "not-member" in err, err)


def test_deferred_and_time(e):
    e.admin("mailbox-set", "bob", "mailbox1.keymix.test")
    e.admin("mailbox-set", "carol", "vm9.keymix.test")
    inv = e.ue("invite", "alice", "--to", "bob")[1]["invite"]
    rc, _, err = e.node("bridge1", "deposit", "alice", "bob", inv, "--ke2m")
    check("deferred: a bridge cannot deposit", rc != 0, err)
    inv_c = e.ue("invite", "alice", "--to", "carol")[1]["invite"]
    rc, _, err = e.node("mailbox1", "deposit", "alice", "carol", inv_c)
    check("deferred: a mailbox not serving the recipient is refused",
          rc != 0, err)
    rc, dep, err = e.node("mailbox1", "deposit", "alice", "bob", inv,
                          "--ke2m")
    check("deferred: mailbox gets ticket and Ke2m over NDS, never K",
          rc == 0 and "ticket" in dep and "ke2m" in dep and
          "leg_key" not in dep, err)
    rc, a, err = e.ue("finish", "alice", "--to", "bob", "--reply",
                      dep.get("ea_reply", ""), "--print-keys")
    check("deferred: caller gets K and Ke2m", rc == 0 and
          a.get("ke2m") == dep.get("ke2m"), err)
    # 3 h later: the first Kkms (lifetime 2 h) is replaced, in its grace
    e.stop()
    e.offset = 3 * 3600
    e.start()
    inv2 = e.ue("invite", "alice", "--to", "bob")[1]["invite"]
    rc, _, err = e.ue("answer", "bob", "--from", "alice", "--invite", inv2)
    check("Kkms rotated: old tokens accepted during the grace period",
          rc == 0, err)
    # 4 h: the grace period (10 min) is over
    e.stop()
    e.offset = 4 * 3600
    e.start()
    inv3 = e.ue("invite", "alice", "--to", "bob")[1]["invite"]
    rc, _, err = e.ue("answer", "bob", "--from", "alice", "--invite", inv3)
    check("token under a retired Kkms refused after the grace period",
          rc != 0 and "kkms-retired" in err, err)
    e.provision("bob")
    e.provision("frank")
    rc, m, err = e.ue("retrieve", "bob", "--from", "alice", "--ticket",
                      dep.get("ticket", ""), "--print-keys")
    check("deferred: recipient gets K after Kkms rotated past grace",
          rc == 0 and m.get("leg_key") == a.get("leg_key") and
          swapped(a, m), err)
    rc, _, err = e.ue("retrieve", "bob", "--from", "alice", "--ticket",
                      flip(dep.get("ticket", "")))
    check("deferred: tampered ticket refused", rc != 0, err)
    # a day later every token (lifetime 12 h) has expired
    e.stop()
    e.offset = 30 * 3600
    e.start()
    e.provision("alice")
    rc, _, err = e.ue("conf-join", "frank", "--conf", "team-call")
    check("expired token refused", rc != 0 and "token-expired" in err, err)


def main():
    if not (os.access(KMSD, os.X_OK) and os.access(UE, os.X_OK)):
        print("kmsd/ue not built")
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="kms_flows.")
    e = Env(tmp)
    e.extra = ["--token-lifetime", "43200", "--kkms-lifetime", "7200",
               "--kkms-grace", "600", "--leg-lifetime", "200000",
               "--invite-validity", "3600"]
    if not os.access(NODE, os.X_OK):
        print("kmsnode not built")
        sys.exit(77)
    try:
        e.start()
        for who in ("alice", "bob", "carol", "dave", "erin", "frank"):
            e.provision(who)
        test_bootstrap(e)
        test_p2p(e)
        conf, b = test_conference(e)
        test_rekey(e, conf, b)
        test_active_passive(e, conf)
        test_active(e)
        test_fork(e)
        test_deferred_and_time(e)
    except Exception as ex:  # a crash in the harness is a failure
        check("harness", False, repr(ex))
    finally:
        e.stop()
        audit = open(os.path.join(tmp, "audit.log")).read() \
            if os.path.exists(os.path.join(tmp, "audit.log")) else ""
        check("audit log records releases, never key material",
              "bridge1.keymix.test" in audit and
              all(k not in audit for k in e.keys_seen), audit[:500])
        log = open(os.path.join(tmp, "kmsd.log")).read()
        check("kmsd warns that the test clock offset is set",
              "WARNING: KEYMIX_TEST_CLOCK_OFFSET" in log, log[:500])
        check("no sanitizer report from kmsd or ue",
              not e.san and "Sanitizer" not in log and
              "runtime error" not in log, "".join(e.san)[:2000] + log[:2000])
        if failed == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept " + tmp)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
