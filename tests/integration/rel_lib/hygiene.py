"""hygiene.py  Finding secrets where they must not be: in log text (hex,
base64, whole or any 12-byte run) and in a live process's memory."""

import base64
import os


def pieces(secret):
    """Every form of a secret (and of any 12-byte run of it) that a log
    line could carry: hex in both cases, base64 at every alignment."""
    out = set()
    runs = [secret] if len(secret) <= 12 else \
        [secret[i:i + 12] for i in range(len(secret) - 11)]
    for r in runs:
        out.add(r.hex())
        out.add(r.hex().upper())
        # base64 of r inside any longer text: r may start at any of the
        # three byte positions of a 3-byte group; keep only characters
        # that depend on r's bytes alone (skip 0, 2 or 3 characters)
        for pad, skip in ((0, 0), (1, 2), (2, 3)):
            enc = base64.b64encode(b"\0" * pad + r).decode()
            out.add(enc[skip:skip + 12])
            url = base64.urlsafe_b64encode(b"\0" * pad + r).decode()
            out.add(url[skip:skip + 12])
    return out


def search_logs(texts, secrets):
    found = []
    for name, s in secrets.items():
        for p in pieces(s):
            for tname, t in texts.items():
                if p in t:
                    found.append("%s as %r in %s" % (name, p, tname))
    return found


def scan_memory(pid, needles):
    """Which of needles (name -> bytes) occur in pid's writable memory."""
    hits = {}
    with open("/proc/%d/maps" % pid) as maps, \
            open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            f = line.split()
            if "w" not in f[1] or (len(f) > 5 and f[5].startswith("[v")):
                continue
            lo, hi = (int(x, 16) for x in f[0].split("-"))
            # sanitizer shadow memory: terabytes of reserved zeros
            if hi - lo > (512 << 20):
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            for name, n in needles.items():
                if name not in hits and data.find(n) >= 0:
                    hits[name] = f[5] if len(f) > 5 else "anon"
    return hits


def can_scan():
    try:
        with open("/proc/self/mem", "rb", 0):
            pass
        return os.geteuid() == 0
    except OSError:
        return False
