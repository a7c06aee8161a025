#!/usr/bin/python3
# keymix: valgrind  (G.711 media: runs under tests/valgrind.sh)
"""rel_key_hygiene.py  Keys never logged, wiped when legs close; the
control API refuses requests without the token.

1. A conference at --log-level debug: three SRTP legs (three profiles),
   media, a rekey with new inline keys, mute, deletes, a drain.  Every
   log line the bridge wrote is searched for every master key, salt and
   the token, and for any 12-byte piece of them, in hex (both cases) and
   base64.  None may appear.
2. Memory scan: the live bridge's writable memory (/proc/PID/mem) is
   searched for the legs' SRTP session keys (RFC 3711 KDF of the master
   keys) and master keys.  While the legs are up the session keys must be
   found (the scan works); after they are deleted none of them, nor the
   master keys, nor the base64 text they arrived in, may be left.
3. Every route without a token, with a wrong one and with a token that
   only shares a prefix: 401, and nothing changes.
"""

import base64
import os
import re
import shutil
import signal
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bridge_lib import bt, srtp  # noqa: E402
from rel_lib.common import Tally  # noqa: E402
from rel_lib.hygiene import can_scan, scan_memory, search_logs  # noqa

T = Tally("rel_key_hygiene")
if not os.path.exists(bt.BRIDGED):
    print("SKIP: bridged not built")
    sys.exit(77)

PROFILES = ["AES_CM_128_HMAC_SHA1_80", "AEAD_AES_256_GCM",
            "AES_256_CM_HMAC_SHA1_80"]
FREQ = [500.0, 900.0, 1400.0]


def session_keys(profile, keysalt):
    c = srtp.Context(profile, keysalt)
    return {"rtp_k": c.rtp_k, "rtp_s": c.rtp_s, "rtcp_k": c.rtcp_k}


def main():
    token = "tok-" + os.urandom(12).hex()
    br = bt.Bridge(rtp_ports="%d-%d" % (35600, 35615), workers=2,
                   token=token, config={"rtcp-interval-ms": 300})
    parts = [bt.Participant("p%d" % i, FREQ[i], profile=PROFILES[i])
             for i in range(3)]
    secrets = {"token": token.encode()}
    old_keys = []
    try:
        st, _ = br.conf("hyg", rate=16000)
        T.check(st == 201, "conference created")
        for p in parts:
            st, j = br.leg("hyg", **p.leg_body())
            if not T.check(st == 201, "leg %s (%s)" % (p.name, p.profile)):
                raise RuntimeError("leg")
            p.joined(j)
        for i, p in enumerate(parts):
            secrets["%s rx" % p.name] = p.rx_key
            secrets["%s tx" % p.name] = p.tx_key
        bt.run_media(parts, 1.5)
        for p in parts:
            x = p.audio()
            others = [bt.band_power(x, q.freq) for q in parts if q is not p]
            T.check(all(o > 0.05 for o in others),
                    "%s hears the others through SRTP" % p.name)

        # memory: session keys present while the legs are up
        scan = can_scan()
        needles = {}
        for p in parts:
            for d, k in (("rx", p.rx_key), ("tx", p.tx_key)):
                for n, v in session_keys(p.profile, k).items():
                    needles["%s %s %s" % (p.name, d, n)] = v
        if scan:
            hits = scan_memory(br.proc.pid, needles)
            enc_hits = [n for n in hits if n.endswith("rtp_k")]
            print("   live legs: %d of %d session keys found in memory" %
                  (len(hits), len(needles)))
            T.check(len(enc_hits) >= 3,
                    "memory scan finds live session keys (the scan works)",
                    "(%d)" % len(enc_hits))
        else:
            print("SKIP memory scan: /proc/PID/mem not readable")

        # a rekey with fresh inline keys: both generations are secrets
        p = parts[0]
        rx2, tx2 = bt.new_keys(p.profile)
        st, _ = br.request("PATCH", "/v1/conferences/hyg/legs/" + p.leg_id,
                           {"key": {"inline": {"rx": bt.b64(rx2),
                                               "tx": bt.b64(tx2)}},
                            "rekey": True})
        T.check(st == 200, "leg rekeyed with new inline keys", "(%s)" % st)
        old_keys.append((p.profile, p.rx_key, p.tx_key))
        p.rekey(rx2, tx2)
        secrets["p0 rx2"], secrets["p0 tx2"] = rx2, tx2
        for n, v in session_keys(p.profile, rx2).items():
            needles["p0 rx2 " + n] = v
        for n, v in session_keys(p.profile, tx2).items():
            needles["p0 tx2 " + n] = v
        st, _ = br.request("PATCH", "/v1/conferences/hyg/legs/" +
                           parts[1].leg_id, {"muted": True})
        bt.run_media(parts, 4.0)   # past the rekey overlap (2 s)
        T.check(parts[1].rx_errors == 0 and parts[2].rx_errors == 0,
                "media verified after the rekey")

        # close: one leg, then the whole conference
        st, _ = br.request("DELETE", "/v1/conferences/hyg/legs/" +
                           parts[2].leg_id)
        T.check(st == 204, "leg deleted")
        st, _ = br.request("DELETE", "/v1/conferences/hyg")
        T.check(st == 204, "conference deleted")
        for k, v in list(secrets.items()):
            if k != "token":
                needles[k + " master"] = v
        if scan:
            hits = scan_memory(br.proc.pid, needles)
            T.check(not hits, "no session or master key left in the "
                    "bridge's memory after the legs closed",
                    "(%s)" % (", ".join("%s in %s" % kv
                                        for kv in sorted(hits.items()))
                              or "none of %d" % len(needles)))
            # the base64 text the keys came in (HTTP buffers, JSON)
            b64n = {k + " b64": bt.b64(v).encode()
                    for k, v in secrets.items() if k != "token"}
            left = scan_memory(br.proc.pid, b64n)
            T.check(not left, "no base64 key text (request bodies) left "
                    "in the bridge's memory after close",
                    "(%s)" % (sorted(left) or "none of %d" % len(b64n)))

        # 3. no token, wrong token: 401 on every route, nothing changes
        st, _ = br.conf("hyg2")
        routes = [("GET", "/v1/health", None),
                  ("GET", "/metrics", None),
                  ("GET", "/v1/conferences", None),
                  ("POST", "/v1/conferences", {"id": "evil"}),
                  ("GET", "/v1/conferences/hyg2", None),
                  ("POST", "/v1/conferences/hyg2/legs",
                   parts[0].leg_body()),
                  ("PATCH", "/v1/conferences/hyg2/legs/l1", {"muted": 1}),
                  ("DELETE", "/v1/conferences/hyg2/legs/l1", None),
                  ("DELETE", "/v1/conferences/hyg2", None)]
        bad = [False, "Bearer " + token[:-1], "Bearer " + token + "x",
               "Bearer", "Basic " + base64.b64encode(
                   (":" + token).encode()).decode(), token]
        codes = []
        for m, path, body in routes:
            for tok in bad:
                st, j = br.request(m, path, body, token=tok)
                codes.append(st)
                if st != 401:
                    print("   %s %s with %r -> %s" % (m, path, tok, st))
        T.check(all(c == 401 for c in codes),
                "%d requests without the right token: all 401" %
                len(codes))
        st, conf = br.get("hyg2")
        st2, lst = br.request("GET", "/v1/conferences")
        T.check(st == 200 and not conf.get("legs") and
                "evil" not in str(lst),
                "nothing changed by the refused requests")
        st, _ = br.request("GET", "/v1/health")
        T.check(st == 200, "the right token still works")

        # drain, then search every log
        rc = br.stop(signal.SIGTERM)
        T.check(rc == 0, "bridge drained and exited 0", "(%s)" % rc)
        log = br.stderr()
        n_lines = len(log.splitlines())
        n_debug = len(re.findall(r" bridged debug: ", log))
        T.check(n_lines > 10, "the bridge logged the conference",
                "(%d lines, %d at debug)" % (n_lines, n_debug))
        found = search_logs({"bridged stderr": log}, secrets)
        T.check(not found, "no key, salt or token in any log (%d secrets, "
                "%d lines)" % (len(secrets), n_lines),
                "; ".join(found[:5]))
    except RuntimeError as e:
        T.check(False, "aborted: %s" % e)
    finally:
        for p in parts:
            p.close()
        br.stop()
        shutil.rmtree(br.dir, ignore_errors=True)
    T.finish()


if __name__ == "__main__":
    main()
