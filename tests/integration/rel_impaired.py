#!/usr/bin/python3
# keymix: valgrind  (G.711 media: runs under tests/valgrind.sh)
"""rel_impaired.py  A conference over an impaired network.

alice reaches the bridge through build/bin/impair (a userspace relay on
loopback: this kernel has no netem); bob and carol are direct.  Two runs:
  loss    5 % loss in bursts (Gilbert, mean burst 3) alice -> bridge
  jitter  30 ms jitter with reordering and 1 % duplication, both ways
In each, everybody still hears the other two (tone checks), the bridge's
jitter buffer stays bounded (jb_delay_ms sampled each second), the loss
the bridge reports for alice's leg, in its stats and in the RTCP report it
sends alice, is the loss the relay caused, within 1 % of the packets.
RTCP passes the relay unimpaired (--spare-rtcp) so the counts compare.
"""

import os
import shutil
import socket
import struct
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bridge_lib import bt  # noqa: E402
from rel_lib.common import (Procs, Tally, last_json, parse_kv,  # noqa
                            read_rest, split_addr)

T = Tally("rel_impaired")
IMPAIR = os.path.join(bt.BUILD, "bin", "impair")
if not os.path.exists(bt.BRIDGED) or not os.path.exists(IMPAIR):
    print("SKIP: bridged or impair not built")
    sys.exit(77)

PROFILE = "AES_CM_128_HMAC_SHA1_80"
FREQ = {"alice": 500.0, "bob": 900.0, "carol": 1400.0}
SECONDS = 8.0
JB_MAX_MS = 200     # the mixer's default jitter buffer ceiling


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rtcp_cum_lost(pkts, ssrc):
    """Cumulative loss for ssrc from the last SR/RR report block."""
    last = None
    for p in pkts:
        off = 0
        while off + 8 <= len(p):
            rc, pt = p[off] & 0x1F, p[off + 1]
            length = (struct.unpack("!H", p[off + 2:off + 4])[0] + 1) * 4
            blk = off + (28 if pt == 200 else 8 if pt == 201 else length)
            if pt in (200, 201):
                for i in range(rc):
                    b = blk + 24 * i
                    if b + 24 > off + length or b + 24 > len(p):
                        break
                    src, word = struct.unpack("!II", p[b:b + 8])
                    if src == ssrc:
                        cum = word & 0xFFFFFF
                        if cum & 0x800000:
                            cum -= 1 << 24
                        last = cum
            off += length
    return last


def run(name, args, procs, base):
    br = bt.Bridge(rtp_ports="%d-%d" % (base, base + 7), workers=2,
                   config={"rtcp-interval-ms": 300})
    a = bt.Participant("alice", FREQ["alice"], profile=PROFILE)
    b = bt.Participant("bob", FREQ["bob"], profile=PROFILE)
    c = bt.Participant("carol", FREQ["carol"], profile=PROFILE)
    parts = [a, b, c]
    try:
        st, _ = br.conf("imp", rate=16000)
        T.check(st == 201, "%s: conference created" % name)
        # the bridge sends alice's media to the relay's back socket
        back = free_port()
        body = a.leg_body(remote="127.0.0.1:%d" % back)
        st, ja = br.leg("imp", **body)
        T.check(st == 201, "%s: alice's leg (via the relay)" % name)
        for p in (b, c):
            st, j = br.leg("imp", **p.leg_body())
            T.check(st == 201, "%s: %s's leg" % (name, p.name))
            p.joined(j)
        relay, line = procs.start(
            [IMPAIR, "--listen", "127.0.0.1:0",
             "--bind", "127.0.0.1:%d" % back, "--to", ja["local"],
             "--peer", a.remote_str, "--spare-rtcp"] + args, "ready ")
        a.joined(ja)
        a.bridge_addr = split_addr(parse_kv(line)["front"])
        jb = []

        def sample(i):
            # the jitter buffer's depth, once a second during the call
            if i % 50 == 25:
                st, cj = br.get("imp")
                for lg in cj.get("legs", []) if st == 200 else []:
                    if lg["leg"] == a.leg_id and "jb_delay_ms" in lg:
                        jb.append((lg["jb_delay_ms"], lg["jb_target_ms"]))

        bt.run_media(parts, SECONDS, sample)
        # one more report interval for the last RTCP from the bridge
        bt.run_media([], 0.7)
        for _ in range(3):
            for p in parts:
                p.poll()
        procs.stop(relay)
        counts = last_json(read_rest(relay))
        up = counts["up"]
        print("   %s relay up: %s" % (name, up))
        print("   %s relay down: %s" % (name, counts["down"]))

        for p in parts:
            x = p.audio()
            pw = {q.name: bt.band_power(x, q.freq)
                  for q in parts if q is not p}
            T.check(all(v > 0.05 for v in pw.values()) and len(x) > 8000,
                    "%s: %s hears %s" % (name, p.name, "+".join(pw)),
                    "(%s)" % " ".join("%s %.3f" % kv for kv in pw.items()))
        st, conf = br.get("imp")
        leg = [lg for lg in conf["legs"] if lg["leg"] == a.leg_id][0]
        print("   %s alice's leg: %s" % (name, {k: leg.get(k) for k in (
            "packets_in", "lost", "jitter_ms", "jb_delay_ms",
            "jb_target_ms", "replays", "auth_failures")}))
        n = up["in"]
        tol = max(1, int(0.01 * n))
        # RFC 3550 counts a duplicate as received: the bridge's loss may
        # be anywhere from drops - duplicates to drops
        lo = up["dropped"] + up["overflow"] - up["duplicated"] - tol
        hi = up["dropped"] + up["overflow"] + tol
        T.check(lo <= leg["lost"] <= hi,
                "%s: bridge stats report the relay's loss (+-1 %%)" % name,
                "(bridge %d, relay dropped %d dup %d of %d)" %
                (leg["lost"], up["dropped"], up["duplicated"], n))
        cum = rtcp_cum_lost(a.rx_rtcp, a.ssrc)
        T.check(cum is not None and lo <= cum <= hi,
                "%s: bridge RTCP to alice reports the relay's loss" % name,
                "(cumulative lost %s)" % cum)
        if jb:
            T.check(len(jb) >= SECONDS - 1 and
                    all(0 <= d <= JB_MAX_MS and t <= JB_MAX_MS
                        for d, t in jb),
                    "%s: jitter buffer bounded during the call" % name,
                    "(depth/target ms each second: %s)" %
                    " ".join("%d/%d" % x for x in jb))
        else:
            T.check(False, "%s: the bridge reports its jitter buffer "
                    "(jb_delay_ms)" % name)
        return up, leg
    finally:
        for p in parts:
            p.close()
        br.stop()
        shutil.rmtree(br.dir, ignore_errors=True)


def main():
    procs = Procs()
    base = 35000 + 8 * (os.getpid() % 60)
    try:
        up, leg = run("loss", ["--seed", "11", "--dir", "up", "--loss",
                               "0.05", "--burst", "3"], procs, base)
        T.check(up["dropped"] >= 5 and up["bursts"] < up["dropped"],
                "loss: the relay lost packets in bursts",
                "(%d in %d bursts, longest %d)" %
                (up["dropped"], up["bursts"], up["max_burst"]))
        up, leg = run("jitter", ["--seed", "12", "--dir", "both",
                                 "--jitter-ms", "30", "--dup", "0.01"],
                      procs, base + 8)
        T.check(up["reordered"] > 0 and up["dropped"] == 0,
                "jitter: the relay reordered and lost nothing",
                "(%d reordered, %d duplicated)" %
                (up["reordered"], up["duplicated"]))
        T.check(leg["jitter_ms"] > 3,
                "jitter: the bridge reports the jitter",
                "(%.1f ms)" % leg["jitter_ms"])
    except (RuntimeError, KeyError, IndexError, TypeError) as e:
        T.check(False, "aborted: %r" % e)
    finally:
        procs.stop_all()
    T.finish()


if __name__ == "__main__":
    main()
