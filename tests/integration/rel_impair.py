"""rel_impair.py  The impairment relay (build/bin/impair) on loopback.

A sender pushes numbered RTP-like packets through the relay to a
receiver, which echoes each back; the relay impairs one direction.  What
the receiver sees must match what the relay says it did, packet for
packet: losses, bursts, duplicates, reordering, RTCP spared, and the
clean direction untouched.
"""

import os
import signal
import struct
import sys
import tempfile
import time

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rel_lib.common import (Procs, Tally, need_bin, parse_kv, read_rest,
                            split_addr, udp_socket, last_json)

N = 3000          # packets, 1 ms apart
SPACING = 0.001


def rtp(seq):
    return struct.pack("!BBHII", 0x80, 0, seq & 0xffff, seq * 160,
                       0x1234) + struct.pack("!I", seq) + b"x" * 40


def rtcp(i):
    return struct.pack("!BBHI", 0x80, 200, 6, 0x1234) + struct.pack(
        "!I", i) + b"r" * 20


def drain(sock, into, timeout):
    sock.settimeout(timeout)
    try:
        while True:
            into.append(sock.recv(4096))
    except OSError:
        pass


def run_case(t, procs, impair, name, extra, jitter_ms):
    rx = udp_socket()          # the "bridge"
    tx = udp_socket()          # the "participant"
    stats = tempfile.NamedTemporaryFile(prefix="impair", delete=False)
    stats.close()
    argv = [impair, "--listen", "127.0.0.1:0",
            "--to", "127.0.0.1:%d" % rx.getsockname()[1],
            "--seed", "7", "--dir", "up", "--spare-rtcp",
            "--stats", stats.name, "--jitter-ms", str(jitter_ms)] + extra
    p, line = procs.start(argv, "ready ")
    front = split_addr(parse_kv(line)["front"])
    got, echoes = [], []
    rx.setblocking(False)
    tx.setblocking(False)
    t0 = time.monotonic()
    for i in range(N):
        tx.sendto(rtp(i), front)
        if i % 60 == 0:
            tx.sendto(rtcp(i), front)
        # echo what arrived so far back through the clean direction
        while True:
            try:
                d, src = rx.recvfrom(4096)
            except BlockingIOError:
                break
            got.append(d)
            rx.sendto(d, src)
        while True:
            try:
                echoes.append(tx.recv(4096))
            except BlockingIOError:
                break
        delay = t0 + (i + 1) * SPACING - time.monotonic()
        if delay > 0:
            time.sleep(delay)
    time.sleep(0.1 + jitter_ms / 1000.0)
    rest = []
    drain(rx, rest, 0.2)
    got += rest
    for d in rest:
        rx.sendto(d, src)
    drain(tx, echoes, 0.3)

    os.kill(p.pid, signal.SIGUSR1)
    time.sleep(0.2)
    with open(stats.name) as f:
        mid = f.read()
    procs.stop(p)
    final = last_json(read_rest(p))
    os.unlink(stats.name)
    t.check(final is not None, name + ": counts printed at exit")
    t.check(mid.strip().startswith("{\"up\""),
            name + ": SIGUSR1 wrote the stats file")
    if final is None:
        return None
    up, down = final["up"], final["down"]

    rtp_got = [struct.unpack("!I", d[12:16])[0] for d in got
               if d[1] != 200]
    n_rtcp = sum(1 for d in got if d[1] == 200)
    uniq = set(rtp_got)
    lost = N - len(uniq)
    dups = len(rtp_got) - len(uniq)
    reord, hi = 0, -1
    for s in rtp_got:
        if s < hi:
            reord += 1
        hi = max(hi, s)
    t.check(up["in"] == N, name + ": relay saw every packet",
            "(%d of %d)" % (up["in"], N))
    t.check(lost == up["dropped"] + up["overflow"],
            name + ": receiver's loss == relay's drops",
            "(%d vs %d)" % (lost, up["dropped"]))
    t.check(dups == up["duplicated"],
            name + ": duplicates seen == relay's count",
            "(%d vs %d)" % (dups, up["duplicated"]))
    t.check(reord == up["reordered"],
            name + ": reordered seen == relay's count",
            "(%d vs %d)" % (reord, up["reordered"]))
    t.check(n_rtcp == final["rtcp_up"] and n_rtcp == (N + 59) // 60 and
            final["rtcp_down"] == n_rtcp,
            name + ": RTCP passed unimpaired", "(%d)" % n_rtcp)
    t.check(down["dropped"] == 0 and down["reordered"] == 0 and
            down["in"] == len(got) - n_rtcp and len(echoes) == len(got),
            name + ": clean direction untouched",
            "(%d sent back, %d echoed)" % (len(got), len(echoes)))
    print("   %s: up %s" % (name, up))
    return lost, dups, reord


def main():
    impair = need_bin("impair")
    t = Tally("rel_impair")
    procs = Procs()
    try:
        r = run_case(t, procs, impair, "loss",
                     ["--loss", "0.05", "--burst", "3"], 0)
        if r:
            t.check(abs(r[0] / N - 0.05) < 0.02,
                    "loss: about 5 % lost", "(%.2f %%)" % (100.0 * r[0] / N))
            t.check(r[1] == 0 and r[2] == 0,
                    "loss: no duplicates or reordering asked, none made")
        r = run_case(t, procs, impair, "jitter",
                     ["--dup", "0.01"], 3)
        if r:
            t.check(r[0] == 0, "jitter: nothing lost")
            t.check(r[2] > 0, "jitter: packets reordered", "(%d)" % r[2])
            t.check(0 < r[1] < 100, "jitter: about 1 % duplicated",
                    "(%d)" % r[1])
        # a bad argument is refused
        p, _ = procs.start([impair, "--listen", "127.0.0.1:0", "--to",
                            "127.0.0.1:1", "--loss", "1.5"])
        rc = p.wait(5)
        t.check(rc == 2, "bad --loss refused", "(exit %s)" % rc)
    finally:
        procs.stop_all()
    t.finish()


if __name__ == "__main__":
    main()
