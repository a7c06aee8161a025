#!/usr/bin/python3
"""kms_restart.py  SIGKILL kmsd in the middle of a passive-join conference.

The chairman invites eight participants; three answer, five answer at the
same moment kmsd is killed with SIGKILL.  After a restart on the same
store: every participant whose answer completed still has its leg key
in the store (the bridge role fetches it), the ones cut off answer again
and succeed, new participants still join, the chairman's K1 is unchanged.
The bridge-role fetch goes over the NDS link (kmsnode, bridge1's
certificate), as the bridge does.
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
KMSD = os.path.join(BUILD, "bin", "kmsd")
UE = os.path.join(BUILD, "bin", "ue")
NODE = os.path.join(BUILD, "bin", "kmsnode")
TOP = os.environ.get("KEYMIX_TOP", os.path.join(
    os.path.dirname(__file__), "..", ".."))
passed = failed = 0


def check(name, cond, detail=""):
    global passed, failed
    if cond:
        passed += 1
        print("ok   " + name)
    else:
        failed += 1
        print("FAIL " + name + (": " + detail if detail else ""))


def kv(text):
    return dict(l.split("=", 1) for l in text.splitlines()
                if "=" in l and not l.startswith("profile="))


def main():
    if not all(os.access(b, os.X_OK) for b in (KMSD, UE, NODE)):
        sys.exit(77)
    tmp = tempfile.mkdtemp(prefix="kms_restart.")
    db = ["--db", os.path.join(tmp, "kms.db"),
          "--storage-key", os.path.join(tmp, "sk")]
    crt, key = os.path.join(tmp, "kms.crt"), os.path.join(tmp, "kms.key")
    subprocess.run([KMSD, "keygen", os.path.join(tmp, "sk")], check=True)
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key,
                    "-out", crt, "-days", "2", "-subj", "/CN=kms.keymix.test",
                    "-addext", "subjectAltName=DNS:kms.keymix.test"],
                   check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    certs = os.path.join(tmp, "certs")
    subprocess.run(["bash", os.path.join(TOP, "scripts", "certs.sh"),
                    certs], check=True, stdout=subprocess.DEVNULL)
    pf, npf = os.path.join(tmp, "port"), os.path.join(tmp, "nds-port")
    state = {"proc": None, "port": 0, "nds": 0}

    def start():
        for f in (pf, npf):
            if os.path.exists(f):
                os.unlink(f)
        state["proc"] = subprocess.Popen(
            [KMSD, "serve"] + db + [
                "--listen", "127.0.0.1:0", "--port-file", pf, "--cert",
                crt, "--key", key, "--nds", "127.0.0.1:0",
                "--nds-port-file", npf,
                "--nds-cert", os.path.join(certs, "kmsd-nds.crt"),
                "--nds-key", os.path.join(certs, "kmsd-nds.key"),
                "--nds-ca", os.path.join(certs, "ca.crt")],
            stderr=open(os.path.join(tmp, "kmsd.log"), "a"))
        for _ in range(100):
            if all(os.path.exists(f) and open(f).read().strip()
                   for f in (pf, npf)):
                state["port"] = int(open(pf).read())
                state["nds"] = int(open(npf).read())
                return
            time.sleep(0.05)
        raise RuntimeError("kmsd did not start")

    def ue_args(cmd, who, *args):
        return [UE, cmd, "--state", os.path.join(tmp, who + ".json"),
                "--kms", "127.0.0.1:%d" % state["port"], "--ca", crt,
                "--server-name", "kms.keymix.test"] + list(args)

    def ue(cmd, who, *args):
        r = subprocess.run(ue_args(cmd, who, *args), capture_output=True,
                           text=True, timeout=30)
        return r.returncode, kv(r.stdout), r.stderr

    def fetch(conf, who):
        r = subprocess.run(
            [NODE, "--kms", "127.0.0.1:%d" % state["nds"],
             "--cert", os.path.join(certs, "bridge1.crt"),
             "--key", os.path.join(certs, "bridge1.key"),
             "--ca", os.path.join(certs, "ca.crt"), "fetch", conf, who,
             "--print-key"], capture_output=True, text=True, timeout=30)
        return kv(r.stdout).get("leg_key") if r.returncode == 0 else None

    try:
        start()
        people = ["p%d" % i for i in range(10)]
        for who in ["chair"] + people:
            cred = kv(subprocess.run(
                [KMSD, "admin"] + db + ["add-identity", who],
                capture_output=True, text=True, check=True).stdout)["cred"]
            rc, _, err = ue("bootstrap", who, "--id", who, "--cred", cred)
            if rc:
                raise RuntimeError(err)
        inv = {}
        for who in people:
            rc, out, err = ue("conf-invite", "chair", "--to", who, "--focus",
                              "bridge1.keymix.test", "--label", "r")
            inv[who] = out["invite"]
        keys, replies = {}, {}
        for who in people[:3]:
            rc, out, err = ue("conf-answer", who, "--from", "chair",
                              "--invite", inv[who], "--print-keys")
            keys[who], replies[who] = out.get("leg_key"), out.get("reply_a")
        conf = out.get("conference")
        check("three participants joined before the crash",
              all(keys.get(w) for w in people[:3]) and conf)
        procs = {w: subprocess.Popen(
            ue_args("conf-answer", w, "--from", "chair", "--invite", inv[w],
                    "--print-keys"), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True) for w in people[3:8]}
        # kill as soon as the first of them completes: mid-flight
        deadline = time.time() + 5
        while time.time() < deadline and \
                all(p.poll() is None for p in procs.values()):
            time.sleep(0.002)
        state["proc"].send_signal(signal.SIGKILL)
        state["proc"].wait()
        cut = []
        for w, p in procs.items():
            o, _ = p.communicate(timeout=30)
            if p.returncode == 0:
                d = kv(o)
                keys[w], replies[w] = d.get("leg_key"), d.get("reply_a")
            else:
                cut.append(w)
        print("answers cut off by SIGKILL: %d of 5" % len(cut))
        start()
        ok = all(fetch(conf, w) == keys[w] for w in keys)
        check("after restart the bridge role fetches every completed leg "
              "(%d)" % len(keys), ok)
        for w in cut + people[8:]:
            rc, out, err = ue("conf-answer", w, "--from", "chair",
                              "--invite", inv[w], "--print-keys")
            if rc == 0:
                keys[w], replies[w] = out.get("leg_key"), out.get("reply_a")
        check("cut-off and new participants join after the restart",
              all(keys.get(w) for w in people), str(sorted(keys)))
        k1 = set()
        for w in people:
            rc, out, err = ue("conf-finish", "chair", "--to", w, "--reply",
                              replies.get(w) or "", "--label", "r",
                              "--print-keys")
            k1.add(out.get("leg_key"))
        check("chairman's K1 is the same before and after the crash",
              len(k1) == 1 and None not in k1 and
              fetch(conf, "chair") in k1)
        check("the bridge role fetches all %d legs + K1" % len(people),
              all(fetch(conf, w) == keys[w] for w in people))
    except Exception as ex:
        check("harness", False, repr(ex))
    finally:
        if state["proc"]:
            state["proc"].terminate()
            state["proc"].wait()
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
