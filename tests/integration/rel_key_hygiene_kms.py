#!/usr/bin/python3
"""rel_key_hygiene_kms.py  Key hygiene of a whole KMS-keyed conference.

The passive + active join conference of `make demo` (lib/kmscenario.py:
kmsd with its NDS listener, ue flows, bridged fetching every leg key over
NDS, uemedia participants).  Afterwards:
  - every log any process wrote (kmsd, its audit log, bridged, each
    uemedia) is searched for every leg key, the SRTP master keys and
    salts derived from it for both directions (docs/keys.md), each
    participant's Kue and KMS token and long-term credential (from the
    ue state files), the active-join conference secret and the control
    API token, in hex (both cases) and base64, whole or any 12 bytes of
    them: none may appear;
  - the bridge's memory, after the conference was deleted, holds none of
    the leg keys or derived master keys (/proc/PID/mem scan).
"""

import base64
import glob
import hashlib
import hmac
import json
import os
import sys

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "lib"))
from rel_lib.common import Tally  # noqa: E402
from rel_lib import hygiene as hyg  # noqa: E402

T = Tally("rel_key_hygiene_kms")
try:
    import kmscenario  # noqa: E402
    from kmproc import Procs  # noqa: E402
    from kmsetup import make_certs, KEY_LEN  # noqa: E402
    import kmtest  # noqa: E402
except ImportError as e:
    print("SKIP: the e2e kit (tests/integration/lib) is missing: %s" % e)
    sys.exit(77)

for b in ("kmsd", "ue", "bridged", "uemedia"):
    if not os.access(os.path.join(kmtest.BIN, b), os.X_OK):
        print("SKIP: %s not built" % b)
        sys.exit(77)

SECRET = "correct horse battery staple"   # kmscenario's active-join secret
LABELS = ("participant-to-bridge", "bridge-to-participant")


def hkdf(ikm, info, n):
    prk = hmac.new(b"\0" * 32, ikm, hashlib.sha256).digest()
    out, t, i = b"", b"", 1
    while len(out) < n:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        out += t
        i += 1
    return out[:n]


def derived(lk, profile):
    """Both directions' master key || salt of a conference leg."""
    n = KEY_LEN[profile]
    return {lab: hkdf(lk, ("keymix leg v1|%s|%s" % (profile, lab)).encode(),
                      n) for lab in LABELS}


def b64any(s):
    s = s.strip()
    for dec in (base64.b64decode, base64.urlsafe_b64decode):
        try:
            return dec(s + "=" * (-len(s) % 4))
        except (ValueError, TypeError):
            continue
    return None


def state_secrets(tmp):
    """Kue, token, credential... from every ue state file: any string
    field that decodes to 16 bytes or more."""
    out = {}
    for f in glob.glob(os.path.join(tmp, "ue-*.json")):
        try:
            with open(f) as fh:
                st = json.load(fh)
        except (OSError, ValueError):
            continue

        def walk(o, path):
            if isinstance(o, dict):
                for k, v in o.items():
                    walk(v, path + "." + k)
            elif isinstance(o, list):
                for i, v in enumerate(o):
                    walk(v, "%s[%d]" % (path, i))
            elif isinstance(o, str) and len(o) >= 22:
                b = b64any(o)
                if b and len(b) >= 16 and not path.endswith(
                        (".id", ".kms", ".identity")):
                    out["%s%s" % (os.path.basename(f), path)] = b
        walk(st, "")
    return out


def main():
    certs = make_certs()
    if not certs:
        print("SKIP: scripts/certs.sh is not on this branch")
        sys.exit(77)
    import tempfile
    tmp = tempfile.mkdtemp(prefix="keymix-rel-hyg-kms-")
    logdir = os.path.join(kmtest.BUILD, "test-logs", "rel_key_hygiene_kms")
    os.makedirs(logdir, exist_ok=True)
    for f in glob.glob(os.path.join(logdir, "*")):
        os.unlink(f)
    procs = Procs(logdir)
    try:
        r = kmscenario.run_conference(procs, tmp, os.path.join(tmp, "wav"),
                                      certs, 3.0,
                                      log=lambda s: print("   " + s))
    except Exception as e:
        procs.stop_all()
        T.check(False, "conference ran", "(%s: %s)" % (type(e).__name__,
                                                      e))
        T.finish()
    heard = all(r.levels[u.name][v.name] > kmscenario.LEVEL - 6
                for u in r.ues for v in r.ues if u is not v)
    T.check(heard, "the KMS-keyed conference carried audio both ways")

    secrets = {"conference secret": SECRET.encode()}
    profiles = {p[0]: p[5] for p in kmscenario.PEOPLE}
    for who, b64 in r.keys.items():
        lk = b64any(b64)
        name = who.split(":")[1].split("@")[0]
        secrets["leg key " + name] = lk
        for lab, ks in derived(lk, profiles[name]).items():
            secrets["%s %s" % (name, lab)] = ks
    secrets.update(state_secrets(tmp))
    tokf = os.path.join(tmp, "token")
    if os.path.exists(tokf):
        secrets["control token"] = open(tokf).read().strip().encode()
    print("   %d secrets: %s" % (len(secrets), ", ".join(sorted(secrets))))
    T.check(sum(1 for k in secrets if k.startswith("ue-")) >= 4,
            "Kue/token/credential found in the ue state files")

    # memory of the bridge after the conference was deleted
    bridged = [p for p in procs.procs if p.name == "bridged"]
    if bridged and hyg.can_scan():
        needles = {k: v for k, v in secrets.items()
                   if k.startswith(("leg key", "alice", "bob", "carol",
                                    "dave"))}
        hits = hyg.scan_memory(bridged[0].pid, needles)
        T.check(not hits, "no leg key or derived key left in the bridge's "
                "memory after the conference was deleted",
                "(%s)" % (", ".join("%s in %s" % kv for kv in
                                    sorted(hits.items())) or
                          "none of %d" % len(needles)))
        # the same keys as base64 text (NDS messages, JSON)
        b64n = {k + " b64": base64.b64encode(v) for k, v in needles.items()}
        b64n.update({k + " b64url": base64.urlsafe_b64encode(v).rstrip(
            b"=") for k, v in needles.items()})
        left = hyg.scan_memory(bridged[0].pid, b64n)
        T.check(not left, "no base64 key text left in the bridge's memory",
                "(%s)" % (sorted(left) or "none of %d" % len(b64n)))
    procs.stop_all()

    logs = {}
    for f in sorted(glob.glob(os.path.join(logdir, "*")) +
                    [os.path.join(tmp, "audit.log")]):
        if os.path.isfile(f):
            with open(f, errors="replace") as fh:
                logs[os.path.basename(f)] = fh.read()
    n_lines = sum(len(t.splitlines()) for t in logs.values())
    T.check(any(k.startswith("kmsd") for k in logs) and
            any(k.startswith("bridged") for k in logs) and
            "audit.log" in logs and n_lines > 20,
            "logs of kmsd, its audit, bridged and the participants",
            "(%d files, %d lines)" % (len(logs), n_lines))
    found = hyg.search_logs(logs, secrets)
    T.check(not found, "no key, salt, secret, token or credential in any "
            "log", "; ".join(found[:6]))
    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    T.finish()


if __name__ == "__main__":
    main()
