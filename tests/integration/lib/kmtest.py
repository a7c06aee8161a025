"""kmtest.py  Test bookkeeping and the Keymix processes of an e2e test.

A test script:
    suite = Suite("e2e_passive")
    suite.need("bridged", "kmsd", "ue", "uemedia")   # exit 77 if missing
    with suite.case("B hears A"):
        ...assertions with suite.expect(...)...
    suite.finish()       # prints "N passed, N failed", exits
"""

import os
import re
import shutil
import socket
import sys
import tempfile
import time
import traceback

TOP = os.environ.get("KEYMIX_TOP") or os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BUILD = os.environ.get("KEYMIX_BUILD") or os.path.join(TOP, "build")
BIN = os.path.join(BUILD, "bin")


def binary(name):
    return os.path.join(BIN, name)


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "WARNING: ThreadSanitizer")


class CaseFailed(Exception):
    pass


class _Case:
    def __init__(self, suite, name):
        self.suite = suite
        self.name = name

    def __enter__(self):
        self.t0 = time.monotonic()
        return self

    def __exit__(self, et, ev, tb):
        dt = time.monotonic() - self.t0
        if et is None:
            self.suite.passed += 1
            print("ok   %s (%.1f s)" % (self.name, dt), flush=True)
        else:
            self.suite.failed += 1
            self.suite.failures.append(self.name)
            if et is CaseFailed:
                print("FAIL %s: %s" % (self.name, ev), flush=True)
            else:
                print("FAIL %s: %s" % (self.name, ev), flush=True)
                traceback.print_exception(et, ev, tb, file=sys.stdout)
        return True    # go on with the next case


class Suite:
    def __init__(self, name):
        self.name = name
        self.passed = 0
        self.failed = 0
        self.failures = []
        self.tmp = tempfile.mkdtemp(prefix="keymix-%s-" % name)
        self.logdir = os.path.join(BUILD, "test-logs", name)
        shutil.rmtree(self.logdir, ignore_errors=True)   # no stale logs
        os.makedirs(self.logdir, exist_ok=True)
        print("== %s (logs: %s)" % (name, self.logdir), flush=True)

    def need(self, *names):
        """Skip (exit 77) if a binary is not built on this branch."""
        missing = [n for n in names if not os.access(binary(n), os.X_OK)]
        if missing:
            print("SKIP %s: not built here: %s" % (
                self.name, ", ".join(missing)), flush=True)
            sys.exit(77)

    def case(self, name):
        return _Case(self, name)

    @staticmethod
    def expect(cond, msg):
        if not cond:
            raise CaseFailed(msg)

    def fail_setup(self, msg):
        """Setup broke: count one failure and finish."""
        self.failed += 1
        self.failures.append("setup")
        print("FAIL setup: %s" % msg, flush=True)
        self.finish()

    def sanitizer_reports(self):
        """Names of this test's process logs holding a sanitizer report
        (a process may report at exit, after its test case passed)."""
        bad = []
        for f in sorted(os.listdir(self.logdir)):
            if not f.endswith(".err"):
                continue
            try:
                with open(os.path.join(self.logdir, f),
                          errors="replace") as fh:
                    txt = fh.read()
            except OSError:
                continue
            if any(m in txt for m in SANITIZER_MARKS):
                bad.append(f)
        return bad

    def finish(self):
        san = self.sanitizer_reports()
        if san:
            self.failed += 1
            self.failures.append("sanitizer")
            print("FAIL sanitizer reports in %s (see %s)" % (
                ", ".join(san), self.logdir), flush=True)
        if self.failures:
            print("failed: " + ", ".join(self.failures))
        print("%d passed, %d failed" % (self.passed, self.failed),
              flush=True)
        if not self.failed and not os.environ.get("KEYMIX_KEEP"):
            shutil.rmtree(self.tmp, ignore_errors=True)
        sys.exit(1 if self.failed or not self.passed else 0)


def free_port(kind=socket.SOCK_DGRAM, host="127.0.0.1"):
    """A port the kernel just handed out (closed again at once)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, kind)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def rtp_range(n=64):
    """A block of n UDP ports in 20000-31999, below the kernel's ephemeral
    range (32768-), so legs never collide with the ports free_port()
    hands to participants.  The first block tried depends on the pid, so
    concurrent test runs tend to use different blocks."""
    blocks = (32000 - 20000) // n
    first = os.getpid() * 97 % blocks
    for i in range(blocks):
        start = 20000 + ((first + i) % blocks) * n
        ok = True
        for p in (start, start + n - 1):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return start, start + n - 1
    raise RuntimeError("no free RTP port block")


# SRTP authentication failures a test tolerates on one leg.  A wrong key
# fails every packet (hundreds); this allows for a stray datagram from a
# process of an earlier or a concurrent test run on the same machine
# landing on a port that was just reused.  Every packet the participant
# itself sent is still required to verify (the tests compare counts).
STRAYS = 2


def srtp_clean(stats):
    """(ok, text) for a uemedia stats dict or a bridge leg dict."""
    a = stats.get("auth_failures")
    ok = a is not None and a <= STRAYS and stats.get("replays", 0) == 0
    return ok, "auth_failures %s replays %s" % (a, stats.get("replays"))


_STATS = re.compile(r"(\w+)=(-?[0-9.]+)")


def parse_stats(line):
    """uemedia's 'stats k=v ...' line as a dict of numbers."""
    d = {}
    for k, v in _STATS.findall(line or ""):
        d[k] = float(v) if "." in v else int(v)
    return d
