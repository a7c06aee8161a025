"""common.py  Shared helpers of the rel_* integration tests.

Processes started through Procs are killed (by their own pid) when the
test ends, also on an exception or a signal; Tally prints the
"N passed, N failed" line tests/run.sh reads.
"""

import json
import os
import select
import signal
import socket
import subprocess
import sys
import time

BUILD = os.environ.get("KEYMIX_BUILD") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "..", "..", "build")
BIN = os.path.join(BUILD, "bin")
TOP = os.environ.get("KEYMIX_TOP") or os.path.abspath(
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                 ".."))


def skip(why):
    """Exit 77 (skipped) with a loud reason."""
    print("SKIP: " + why)
    sys.stdout.flush()
    sys.exit(77)


def need_bin(name):
    path = os.path.join(BIN, name)
    if not os.access(path, os.X_OK):
        skip("%s not built" % path)
    return path


class Tally:
    """Counts checks; every check prints one line."""

    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0

    def check(self, ok, what, detail=""):
        if ok:
            self.passed += 1
            print("ok   %s %s" % (what, detail))
        else:
            self.failed += 1
            print("FAIL %s %s" % (what, detail))
        sys.stdout.flush()
        return ok

    def finish(self):
        print("%d passed, %d failed" % (self.passed, self.failed))
        sys.stdout.flush()
        sys.exit(1 if self.failed or not self.passed else 0)


class Procs:
    """Processes of one test, stopped at exit whatever happens."""

    def __init__(self):
        self.procs = []
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, self._on_signal)

    def _on_signal(self, sig, frame):
        self.stop_all()
        sys.exit(128 + sig)

    def start(self, argv, ready_prefix=None, timeout=10.0, stderr=None,
              env=None):
        """Start argv; if ready_prefix, wait for that stdout line and
        return (proc, line)."""
        p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                             stderr=stderr if stderr is not None
                             else subprocess.DEVNULL,
                             stdin=subprocess.DEVNULL, env=env)
        self.procs.append(p)
        if ready_prefix is None:
            return p, None
        line = read_line(p, timeout)
        if line is None or not line.startswith(ready_prefix):
            raise RuntimeError("%s: no '%s' line (got %r)" %
                               (argv[0], ready_prefix, line))
        return p, line

    def stop(self, p, sig=signal.SIGTERM, timeout=5.0):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        return p.returncode

    def stop_all(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.kill()
                    p.wait(5)
                except Exception:
                    pass


def read_line(p, timeout):
    """One line of p's stdout within timeout seconds, or None."""
    end = time.monotonic() + timeout
    buf = b""
    fd = p.stdout.fileno()
    while time.monotonic() < end:
        r, _, _ = select.select([fd], [], [], end - time.monotonic())
        if not r:
            break
        ch = os.read(fd, 1)
        if not ch:
            break
        if ch == b"\n":
            return buf.decode(errors="replace")
        buf += ch
    return None


def read_rest(p, timeout=5.0):
    """Everything p still writes to stdout until it exits."""
    try:
        out, _ = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return (out or b"").decode(errors="replace")


def parse_kv(line):
    """'ready front=1.2.3.4:5 back=...' -> {'front': ..., 'back': ...}"""
    out = {}
    for tok in line.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
    return out


def split_addr(s):
    host, port = s.rsplit(":", 1)
    return host.strip("[]"), int(port)


def udp_socket(host="127.0.0.1", port=0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
    s.bind((host, port))
    return s


def last_json(text):
    for line in reversed(text.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            return json.loads(line)
    return None
