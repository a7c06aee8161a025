"""kmscenario.py  The passive + active join conference, end to end.

Used by scripts/demo.sh (make demo) and by tests/integration/
e2e_conference.py, so the demo and the test run the same thing:

 1. kmsd (SQLite in a temp dir) with its UE listener and its NDS listener
    (mutual TLS, the demo operator CA of `make certs`).
 2. Every participant is provisioned and bootstraps (ue bootstrap).
 3. Passive join: the chairman alice invites bob and carol naming the
    focus bridge1.keymix.test; bob gets K2, carol K3, alice K1 (the same
    for both invitations).
 4. Active join: the controller opens alice's conference (its own
    reference, the focus alice named) for active join with a secret;
    dave proves the secret and gets his leg key under that reference;
    erin's proof is wrong and refused.
 5. bridged starts with bridge1's node certificate; the controller
    (this script) creates a "mix" conference and one leg per participant
    with a "kms" key source: the bridge fetches each leg key over NDS.
    erin's leg fails: the KMS has no key for her.
 6. Each participant runs uemedia with its own leg key, speaking its own
    tone, and records what it hears; the recordings are measured with
    Goertzel: who heard whom, at what level.
"""

import os
import time

import kmaudio
from kmapi import Control
from kmsetup import UE, Kms, start_bridged

FOCUS = "bridge1.keymix.test"

PEOPLE = [
    # name, how they join, codec, rate, tone Hz, SRTP profile,
    # RFC 6464 audio level: None, "clear" or "encrypted" (RFC 6904)
    ("alice", "chairman, passive join (K1)", "opus", 48000, 400,
     "AES_CM_128_HMAC_SHA1_80", "encrypted"),
    ("bob", "invited, passive join (K2)", "opus", 48000, 700,
     "AEAD_AES_128_GCM", "clear"),
    ("carol", "invited, passive join (K3)", "g722", 16000, 1100,
     "AES_256_CM_HMAC_SHA1_80", None),
    ("dave", "active join with the secret", "pcma", 8000, 1700,
     "AES_CM_128_HMAC_SHA1_80", None),
]
INTRUDER = "erin"
LEVEL = -20.0

CODEC_NAME = {"opus": "Opus", "pcma": "PCMA", "pcmu": "PCMU",
              "g722": "G.722"}


def uri(name):
    return "sip:%s@example.org" % name


class Result:
    pass


def run_conference(procs, tmp, outdir, certs, duration=8.0, log=print,
                   people=PEOPLE):
    """Run the whole scenario; return a Result (see the fields below).
    Raises on a setup failure (kmsd/bridged not starting, a KMS flow
    failing for an honest participant)."""
    r = Result()
    r.people = people
    r.duration = duration
    os.makedirs(outdir, exist_ok=True)

    log("1. kmsd: SQLite store in %s, NDS listener with the demo CA" % tmp)
    kms = Kms(procs, tmp, certs)
    kms.start()
    r.kms = kms
    log("   kmsd up: UE listener 127.0.0.1:%d, NDS %s"
        % (kms.port, kms.nds))

    names = [p[0] for p in people]
    log("2. provisioning and bootstrapping %s"
        % ", ".join(names + [INTRUDER]))
    for n in names + [INTRUDER]:
        kms.provision(uri(n))

    passive = [p for p in people if "passive" in p[1]]
    active = [p for p in people if "active" in p[1]]
    chair = passive[0][0]
    log("3. passive join: %s invites %s (focus %s)" % (
        chair, ", ".join(p[0] for p in passive[1:]), FOCUS))
    r.ref, keys = kms.passive_join(uri(chair),
                                   [uri(p[0]) for p in passive[1:]], FOCUS)
    log("   conference reference %s; leg keys for %s" % (
        r.ref, ", ".join(sorted(keys))))
    r.keys = dict(keys)

    # one conference: the active joiners join the chairman's own
    # reference, opened for active join with the focus alice named
    r.join_ref = r.ref
    secret = "correct horse battery staple"
    log("4. active join: conference %s opened for active join with a "
        "secret" % r.join_ref)
    kms.register_active(r.join_ref, FOCUS, secret)
    for p in active:
        rc, key, err = kms.active_join(uri(p[0]), r.join_ref, secret)
        if rc or not key:
            raise RuntimeError("active join of %s: %s" % (p[0], err))
        r.keys[uri(p[0])] = key
        log("   %s proved the secret: leg key issued" % p[0])
    rc, key, err = kms.active_join(uri(INTRUDER), r.join_ref,
                                   "correct horse battery stable")
    r.intruder_join = (rc, key, err)
    log("   %s with a wrong proof: %s" % (
        INTRUDER, "REFUSED (%s)" % err.split(": ", 1)[-1] if rc else
        "ACCEPTED?!"))

    log("5. bridged as %s, fetching leg keys over NDS" % FOCUS)
    api, bproc = start_bridged(procs, tmp, kms=kms.nds, certs={
        "cert": os.path.join(certs, "bridge1.crt"),
        "key": os.path.join(certs, "bridge1.key"),
        "ca": os.path.join(certs, "ca.crt")})
    r.api = api
    r.conf_id = "demo"
    api.create_conference(r.conf_id, mode="mix", rate=48000, ptime=20,
                          max_talkers=len(people))
    r.ues = []
    r.legs = {}
    for name, how, codec, rate, tone, prof, alevel in people:
        ue = UE(name, outdir, tone=tone, level=LEVEL, codec=codec,
                rate=rate, profile=prof, uri=uri(name),
                level_ext=1 if alevel else None,
                encrypt_ext=alevel == "encrypted")
        ue.how = how
        ref = r.join_ref if "active" in how else r.ref
        body = ue.leg_body(key={"kms": {"conference": ref,
                                        "participant": uri(name)}})
        leg = api.add_leg(r.conf_id, body)
        ue.leg = leg
        ue.leg_key(tmp, r.keys[uri(name)])
        r.legs[name] = leg
        r.ues.append(ue)
        log("   leg %-6s %-5s %s -> bridge %s (key fetched over NDS%s)" % (
            name, CODEC_NAME[codec], ue.addr, leg["local"],
            {"clear": "; audio level", "encrypted":
             "; audio level, encrypted"}.get(alevel, "")))
    st, js = api.add_leg_status(r.conf_id, UE(
        INTRUDER, outdir, codec="opus", profile="AES_CM_128_HMAC_SHA1_80",
        uri=uri(INTRUDER)).leg_body(key={"kms": {
            "conference": r.join_ref, "participant": uri(INTRUDER)}}))
    r.intruder_leg = (st, js)
    log("   leg %-6s refused by the bridge: %s %s" % (
        INTRUDER, st, (js or {}).get("error", js) if isinstance(js, dict)
        else js))

    log("6. %d participants speak for %.0f s (distinct tones, %g dBFS)"
        % (len(people), duration, LEVEL))
    for ue in r.ues:
        ue.start(procs, ue.leg["local"], duration)
    time.sleep(duration * 0.6)
    r.conf_mid = api.conference(r.conf_id)
    for ue in r.ues:
        ue.finish(duration + 20)
    r.conf_end = api.conference(r.conf_id)
    r.metrics = api.metrics()
    r.audit = os.path.join(tmp, "audit.log")

    # who heard whom: each listener's file, each speaker's tone
    start, end = 1.0, max(duration - 0.3, 1.5)
    r.window = (start, end)
    r.levels = {}
    for lis in r.ues:
        data = kmaudio.read_wav(lis.wav)
        r.levels[lis.name] = {
            spk.name: kmaudio.tone_level_blocks(data, spk.tone, start, end)
            for spk in r.ues}
    api.delete_conference(r.conf_id)
    return r


def table(r):
    """The who-heard-whom table as text lines."""
    names = [u.name for u in r.ues]
    out = ["Level of each speaker's tone in each listener's recording "
           "(dBFS, %.1f-%.1f s; sent at %g dBFS):" % (r.window + (LEVEL,)),
           "",
           "  %-18s" % "listener \\ speaker" +
           "".join("%10s" % n for n in names)]
    for lis in r.ues:
        row = "  %-18s" % ("%s (%s)" % (lis.name, CODEC_NAME[lis.codec]))
        for n in names:
            v = r.levels[lis.name][n]
            cell = "%.1f" % v if v > -99 else "<-99"
            if n == lis.name:
                cell = "self" if v < LEVEL - 40 else cell + "!"
            row += "%10s" % cell
        out.append(row)
    return out


def audit_lines(r):
    """kmsd's NDS audit log (who got which leg key; never key material)."""
    try:
        with open(r.audit) as f:
            return ["  " + ln.rstrip() for ln in f if ln.strip()]
    except OSError:
        return ["  (no audit log)"]


def leg_stats(r):
    out = ["  %-8s %8s %8s %6s %6s %8s %8s" % (
        "leg", "in", "out", "lost", "auth", "replays", "jit ms")]
    legs = {l.get("participant"): l for l in r.conf_end.get("legs", [])}
    for ue in r.ues:
        l = legs.get(ue.uri, {})
        out.append("  %-8s %8s %8s %6s %6s %8s %8s" % (
            ue.name, l.get("packets_in"), l.get("packets_out"),
            l.get("lost"), l.get("auth_failures"), l.get("replays"),
            "%.2f" % l["jitter_ms"] if isinstance(l.get("jitter_ms"), (int, float)) else l.get("jitter_ms")))
    return out
