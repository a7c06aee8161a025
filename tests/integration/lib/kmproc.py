"""kmproc.py  Start, watch and always stop the processes of one test.

Every process started through a Procs is stopped (SIGTERM, then SIGKILL)
when the test ends, also on an exception, SIGINT or SIGTERM; only those
processes are signalled, by their own pid.
"""

import atexit
import os
import signal as sigmod
import subprocess
import sys
import threading
import time


class ProcError(Exception):
    pass


ASAN_SUPP = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                         "asan.supp")


def child_env(env=None):
    """The environment for a child: ours (or env) plus our ASan
    suppressions (harmless for binaries built without ASan)."""
    e = dict(os.environ if env is None else env)
    opts = e.get("ASAN_OPTIONS", "")
    if "suppressions=" not in opts:
        e["ASAN_OPTIONS"] = (opts + ":suppressions=" + ASAN_SUPP).lstrip(":")
    return e


class Proc:
    def __init__(self, name, argv, logdir, env=None, cwd=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.lines = []
        self.cond = threading.Condition()
        self.out_path = os.path.join(logdir, name + ".out")
        self.err_path = os.path.join(logdir, name + ".err")
        self._err = open(self.err_path, "w")
        self._out = open(self.out_path, "w")
        self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.PIPE, stderr=self._err,
                                  env=child_env(env), cwd=cwd, text=True,
                                  start_new_session=True)
        self.pid = self.p.pid
        self.t = threading.Thread(target=self._reader, daemon=True)
        self.t.start()

    def _reader(self):
        for line in self.p.stdout:
            line = line.rstrip("\n")
            self._out.write(line + "\n")
            self._out.flush()
            with self.cond:
                self.lines.append(line)
                self.cond.notify_all()
        with self.cond:
            self.cond.notify_all()

    def wait_line(self, prefix, timeout=10.0):
        """Wait for a stdout line starting with prefix; return it."""
        end = time.monotonic() + timeout
        with self.cond:
            while True:
                for ln in self.lines:
                    if ln.startswith(prefix):
                        return ln
                if self.p.poll() is not None and not self.t.is_alive():
                    raise ProcError("%s exited (%s) before '%s': %s" % (
                        self.name, self.p.returncode, prefix,
                        self.stderr_tail()))
                left = end - time.monotonic()
                if left <= 0:
                    raise ProcError("%s: no '%s' line in %.0f s: %s" % (
                        self.name, prefix, timeout, self.stderr_tail()))
                self.cond.wait(min(left, 0.2))

    def stderr_tail(self, n=15):
        try:
            self._err.flush()
            with open(self.err_path) as f:
                return " | ".join(f.read().splitlines()[-n:])
        except OSError:
            return ""

    def alive(self):
        return self.p.poll() is None

    def wait(self, timeout=None):
        rc = self.p.wait(timeout)
        self.t.join(2)
        return rc

    def signal(self, sig):
        if self.p.poll() is None:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def stop(self, timeout=5.0, sig=sigmod.SIGTERM):
        """SIGTERM (or sig), then SIGKILL after timeout; return rc."""
        if self.p.poll() is None:
            self.signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal(sigmod.SIGKILL)
                self.p.wait(5)
        self.t.join(2)
        self._err.close()
        self._out.close()
        return self.p.returncode


class Procs:
    """The set of processes one test started."""

    def __init__(self, logdir):
        self.logdir = logdir
        os.makedirs(logdir, exist_ok=True)
        self.procs = []
        atexit.register(self.stop_all)
        for s in (sigmod.SIGINT, sigmod.SIGTERM):
            sigmod.signal(s, self._on_signal)

    def _on_signal(self, signum, frame):
        self.stop_all()
        sys.exit(128 + signum)

    def start(self, name, argv, ready=None, timeout=10.0, env=None,
              cwd=None):
        """Start argv; with ready, wait for a stdout line starting with
        it and return (proc, line); else return (proc, None)."""
        p = Proc(name, argv, self.logdir, env=env, cwd=cwd)
        self.procs.append(p)
        if ready is None:
            return p, None
        try:
            return p, p.wait_line(ready, timeout)
        except ProcError:
            p.stop(1)
            raise

    def stop_all(self):
        for p in reversed(self.procs):
            try:
                p.stop(3)
            except Exception:
                pass
        self.procs = []


def run(argv, timeout=30.0, env=None, input=None, check=True):
    """Run a command to completion; return CompletedProcess (text)."""
    r = subprocess.run([str(a) for a in argv], capture_output=True,
                       text=True, timeout=timeout, env=child_env(env),
                       input=input)
    if check and r.returncode != 0:
        raise ProcError("%s exited %d: %s" % (
            " ".join(str(a) for a in argv[:3]), r.returncode,
            r.stderr.strip()[-800:]))
    return r
