"""e2e_conference.py  Passive and active join through SRTP, end to end.

kmsd + ue + bridged + four uemedia participants (lib/kmscenario.py, the
same run as `make demo`): A (chairman) invites B and C, each gets its leg
key from kmsd; D joins A's conference actively with its secret; E's wrong
proof is refused by the KMS and the bridge cannot open a leg for her.
The bridge fetched every leg key over NDS as the conference's focus.
Each participant hears the three others at the level they spoke, and
not itself."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "lib"))
import kmscenario  # noqa: E402
from kmproc import Procs  # noqa: E402
from kmsetup import make_certs  # noqa: E402
from kmtest import Suite, srtp_clean  # noqa: E402

suite = Suite("e2e_conference")
suite.need("kmsd", "ue", "bridged", "uemedia")
expect = suite.expect
certs = make_certs()
if not certs:
    print("SKIP: scripts/certs.sh (make certs) is not on this branch")
    sys.exit(77)
procs = Procs(suite.logdir)
out = os.path.join(suite.tmp, "wav")
try:
    r = kmscenario.run_conference(procs, suite.tmp, out, certs, 5.0,
                                  log=lambda s: print("   " + s))
except Exception as e:          # a setup step broke: say which
    procs.stop_all()
    suite.fail_setup("%s: %s" % (type(e).__name__, e))
print("\n".join(kmscenario.table(r)))
print("\n".join(kmscenario.leg_stats(r)))
L = kmscenario.LEVEL

with suite.case("KMS: one reference, K1 for the chairman, distinct keys"):
    expect(r.ref, "no conference reference")
    expect(len(set(r.keys.values())) == len(r.keys), "leg keys repeat")

with suite.case("bridge: every leg created with a kms key source"):
    expect(all(l.get("leg") and l.get("local") for l in r.legs.values()),
           "legs %s" % r.legs)

for ue in r.ues:
    with suite.case("%s (%s) hears every other participant at %g dBFS"
                    % (ue.name, ue.codec, L)):
        for spk in r.ues:
            if spk is ue:
                continue
            v = r.levels[ue.name][spk.name]
            expect(abs(v - L) <= 1.0, "%s hears %s at %.2f" % (
                ue.name, spk.name, v))
    with suite.case("%s does not hear itself (>= 40 dB down)" % ue.name):
        v = r.levels[ue.name][ue.name]
        expect(v <= L - 40, "own tone at %.1f" % v)
    with suite.case("%s: SRTP clean both ways" % ue.name):
        s = ue.stats
        expect(ue.rc == 0, "uemedia exit %s" % ue.rc)
        ok, why = srtp_clean(s)
        expect(ok, "uemedia: %s" % why)
        expect(s.get("received", 0) > 0.8 * s.get("sent", 1),
               "received %s of %s" % (s.get("received"), s.get("sent")))

with suite.case("bridge stats: no auth failures, packets both ways"):
    legs = {l.get("participant"): l for l in r.conf_end.get("legs", [])}
    for ue in r.ues:
        l = legs.get(ue.uri)
        expect(l is not None, "no leg for %s in GET" % ue.uri)
        ok, why = srtp_clean(l)
        expect(ok, "%s at the bridge: %s" % (ue.name, why))
        # everything the participant sent verified at the bridge
        expect(l.get("packets_in", 0) >= 0.98 * ue.stats.get("sent", 0),
               "%s: bridge verified %s of %s RTP" % (
                   ue.name, l.get("packets_in"), ue.stats.get("sent")))
        if "rtcp_in" in l:
            expect(l["rtcp_in"] >= ue.stats.get("rtcp_sent", 0) - 1,
                   "%s: bridge verified %s of %s RTCP" % (
                       ue.name, l["rtcp_in"], ue.stats.get("rtcp_sent")))
        expect(l.get("packets_out", 0) > 0, "%s: nothing sent" % ue.name)

with suite.case("all four were talkers mid-conference"):
    t = r.conf_mid.get("talkers", [])
    expect(len(t) == len(r.ues), "talkers %s" % t)

with suite.case("bridge level per leg: -20 dBFS sine = -23 dBov (+-2)"):
    # alice sends RFC 6464 levels encrypted (RFC 6904), bob in clear
    legs = {l.get("participant"): l for l in r.conf_mid.get("legs", [])}
    for ue in r.ues:
        lv = legs.get(ue.uri, {}).get("level_dbov")
        expect(isinstance(lv, (int, float)) and abs(lv + 23) <= 2,
               "%s: level_dbov %s" % (ue.name, lv))

with suite.case("RFC 6464 levels reach the bridge (alice's RFC 6904-"
                "encrypted): exactly the 23 sent"):
    # uemedia sends level 23 (-dBov) in every packet; the bridge reports
    # that value for legs with audio_level_ext.  A header extension that
    # was not decrypted would read as another value.
    for ue in r.ues:
        if not ue.level_ext:
            continue
        lv = legs.get(ue.uri, {}).get("level_dbov")
        expect(isinstance(lv, (int, float)) and abs(lv + 23) < 0.05,
               "%s: level_dbov %s" % (ue.name, lv))

with suite.case("active join with a wrong proof refused by the KMS"):
    rc, key, err = r.intruder_join
    expect(rc != 0 and key is None, "ue conf-join rc %s" % rc)
    expect("wrong-secret" in err, "message: %s" % err)

with suite.case("... and the bridge cannot open her leg (502)"):
    st, js = r.intruder_leg
    expect(st == 502, "status %s %s" % (st, js))
    expect(isinstance(js, dict) and js.get("error"), "no error text")

with suite.case("KMS audit log: a release to bridge1 per leg, a deny for "
                "erin, no key material"):
    lines = open(r.audit).read().splitlines()
    for ue in r.ues:
        expect(any(" release " in ln and "node=" + kmscenario.FOCUS in ln
                   and "leg=" + ue.uri in ln for ln in lines),
               "no release of %s's key to the focus" % ue.name)
    expect(any(" deny " in ln and "erin" in ln for ln in lines),
           "no deny line for erin")
    text = "\n".join(lines)

with suite.case("one conference: every release under the chairman's "
                "reference, dave's too"):
    rel = [ln for ln in lines if " release " in ln and " req=legkey " in ln]
    expect(rel, "no legkey releases")
    for ln in rel:
        expect(" conf=%s " % r.ref in ln, "release elsewhere: %s" % ln)
    expect(r.join_ref == r.ref, "active join under %s, not %s"
           % (r.join_ref, r.ref))
    expect(any("leg=" + kmscenario.uri("dave") in ln for ln in rel),
           "no release of dave's key")
    for k in r.keys.values():
        expect(k not in text, "a leg key is in the audit log")

procs.stop_all()
suite.finish()
