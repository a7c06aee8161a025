"""e2e_kms_outage.py  kmsd stopped in the middle of a conference.

A and B talk through the bridge with KMS-fetched leg keys.  kmsd is
stopped: A and B keep hearing each other (their keys are installed); a
new KMS-keyed leg for C is refused with 503 and a message naming the KMS.
kmsd comes back (same store, same NDS port): the bridge reconnects, C's
leg is created, and C hears A and B, who hear C."""

import os
import signal
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import kmaudio  # noqa: E402
from kmproc import Procs  # noqa: E402
from kmsetup import UE, Kms, make_certs, start_bridged  # noqa: E402
from kmtest import Suite, srtp_clean  # noqa: E402

FOCUS = "bridge1.keymix.test"
suite = Suite("e2e_kms_outage")
suite.need("kmsd", "ue", "bridged", "uemedia")
expect = suite.expect
certs = make_certs()
if not certs:
    print("SKIP: scripts/certs.sh (make certs) is not on this branch")
    sys.exit(77)
procs = Procs(suite.logdir)
T = suite.tmp
uri = "sip:%s@example.org".__mod__
DUR_AB = 14.0   # long enough for C to join after reconnect backoff
DUR_C = 3.0

try:
    kms = Kms(procs, T, certs)
    kms.start()
    for n in ("alice", "bob", "carol"):
        kms.provision(uri(n))
    ref, keys = kms.passive_join(uri("alice"), [uri("bob"), uri("carol")],
                                 FOCUS)
    api, bridged = start_bridged(procs, T, kms=kms.nds, certs={
        "cert": os.path.join(certs, "bridge1.crt"),
        "key": os.path.join(certs, "bridge1.key"),
        "ca": os.path.join(certs, "ca.crt")})
    api.create_conference("out", mode="mix", rate=48000, max_talkers=3)
    people = {}
    for n, tone, codec in (("alice", 600, "opus"), ("bob", 1300, "opus"),
                           ("carol", 2100, "g722")):
        ue = UE(n, T, tone=tone, level=-20, codec=codec,
                profile="AES_CM_128_HMAC_SHA1_80", uri=uri(n))
        ue.leg_key(T, keys[uri(n)])
        people[n] = ue
    a, b, c = people["alice"], people["bob"], people["carol"]

    def kms_leg(ue):
        return ue.leg_body(key={"kms": {"conference": ref,
                                        "participant": ue.uri}})

    for ue in (a, b):
        ue.leg = api.add_leg("out", kms_leg(ue))
    t0 = time.monotonic()
    for ue in (a, b):
        ue.start(procs, ue.leg["local"], DUR_AB)
except Exception as e:
    suite.fail_setup("%s: %s" % (type(e).__name__, e))

time.sleep(1.5)
kms.stop()                                  # SIGTERM, waits for exit
t_down = time.monotonic() - t0
with suite.case("kmsd down: a new KMS-keyed leg fails with 503"):
    st, js = api.add_leg_status("out", kms_leg(c))
    expect(st == 503, "status %s %s" % (st, js))
    msg = (js or {}).get("error", "") if isinstance(js, dict) else str(js)
    expect("kms" in msg.lower(), "message does not name the KMS: %r" % msg)
with suite.case("kmsd down: the bridge is still healthy"):
    expect(api.health(), "GET /v1/health failed")

time.sleep(max(0.0, 4.0 - (time.monotonic() - t0)))
t_up = time.monotonic() - t0
c_leg = None
try:
    kms.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        st, js = api.add_leg_status("out", kms_leg(c))
        if st == 201:
            c_leg = js
            break
        time.sleep(0.3)
except Exception as e:
    print("restart: %s" % e)
t_c = time.monotonic() - t0
with suite.case("kmsd back: the same leg is created (bridge reconnected)"):
    expect(c_leg is not None, "last status %s %s" % (st, js))
if c_leg:
    c.leg = c_leg
    c.start(procs, c.leg["local"], DUR_C)
    c.finish(DUR_C + 20)
for ue in (a, b):
    ue.finish(DUR_AB + 20)
print("kmsd down at %.1f s, up at %.1f s, C joined at %.1f s"
      % (t_down, t_up, t_c))

# while kmsd was down, A and B kept hearing each other
down = (t_down + 0.3, t_up - 0.1)
for lis, spk in ((a, b), (b, a)):
    with suite.case("%s hears %s while kmsd is down" % (lis.name,
                                                       spk.name)):
        ok, m = kmaudio.has_tone(lis.wav, spk.tone, spk.level, 1.0, *down)
        expect(ok, "measured %.2f in %.1f-%.1f s" % ((m,) + down))
if c_leg:
    for spk in (a, b):
        with suite.case("C (joined after the outage) hears %s" % spk.name):
            ok, m = kmaudio.has_tone(c.wav, spk.tone, spk.level, 1.0, 0.8,
                                     DUR_C - 0.2)
            expect(ok, "measured %.2f" % m)
    for lis in (a, b):
        with suite.case("%s hears C after the outage" % lis.name):
            w = (t_c + 0.8, t_c + DUR_C - 0.3)
            ok, m = kmaudio.has_tone(lis.wav, c.tone, c.level, 1.0, *w)
            expect(ok, "measured %.2f in %.1f-%.1f s" % ((m,) + w))
with suite.case("no SRTP failures anywhere"):
    for ue in (a, b, c):
        if ue.stats:
            ok, why = srtp_clean(ue.stats)
            expect(ok, "%s: %s" % (ue.name, why))

procs.stop_all()
suite.finish()
