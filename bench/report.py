#!/usr/bin/python3
"""report.py  Merge the bench rows into latest.json, latest.md and a plot.

    report.py MODE OUTDIR MACHINE COMMIT PINNING ROW.json...

Each ROW.json is one loadgen result (plus what run.sh added: "method",
"search").  Writes OUTDIR/latest.json (the format of issue 6),
OUTDIR/latest.md (table with Keymix/peer ratios) and OUTDIR/plot.dat +
OUTDIR/plot.gp for gnuplot (run.sh renders latest.png if gnuplot runs).
"""
import json
import os
import sys

KEYS = ["name", "system", "srtp", "opus_complexity", "legs",
        "cpu_per_leg_second", "legs_per_core", "calls_per_core", "method",
        "tick_lateness_p99_ms", "loss_pct", "added_latency_ms",
        "generator_overloaded"]

# The comparisons of issue 6: (peer row, keymix rows to compare, metric)
COMPARE = [
    (("janus", "opus10_2talk"), "legs_per_core", 4),
    (("janus", "g711_10"), "legs_per_core", None),
    (("rtpengine", "transcode_opus_pcmu"), "calls_per_core", None),
    (("rtpengine", "relay_srtp"), "calls_per_core", None),
]


def load(paths):
    rows = []
    for p in paths:
        try:
            with open(p) as f:
                rows.append(json.load(f))
        except (OSError, ValueError) as e:
            print("report.py: skipping %s: %s" % (p, e), file=sys.stderr)
    return rows


def ordered(r):
    out = {k: r.get(k) for k in KEYS}
    for k, v in r.items():
        if k not in out:
            out[k] = v
    return out


def fmt(v, nd=1):
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) < 0.01 and v != 0:
            return "%.2g" % v
        return ("%." + str(nd) + "f") % v
    return str(v)


def label(r):
    s = "%s %s" % (r["system"], r["name"])
    bits = ["SRTP" if r.get("srtp") else "no SRTP"]
    if r.get("opus_complexity") is not None and "g711" not in r["name"] \
            and r["name"] != "relay_srtp":
        bits.append("c%d" % r["opus_complexity"])
    return "%s (%s)" % (s, ", ".join(bits))


def find(rows, system, name, srtp=None, cx=None):
    for r in rows:
        if r["system"] == system and r["name"] == name and \
                (srtp is None or bool(r.get("srtp")) == srtp) and \
                (cx is None or r.get("opus_complexity") == cx):
            return r
    return None


def profile_note(r):
    top = (r or {}).get("profile_top") or []
    if not top:
        return "-"
    return "; ".join(t.replace("|", "/").rstrip(" -") for t in top[:4])


def targets(rows, mode):
    """Issue 6's targets, checked against this run (reported, never
    asserted anywhere)."""
    out = ["## Targets (issue 6)\n",
           "| target | this run | met | profile of the Keymix row "
           "(top symbols) |", "|---|---|---|---|"]

    def line(text, fig, ok, row):
        out.append("| %s | %s | %s | %s |" % (
            text, fig, "-" if ok is None else ("yes" if ok else "**no**"),
            profile_note(row) if ok is False else "-"))

    def ratio(k, p, metric):
        if k and p and k.get(metric) and p.get(metric):
            return k[metric] / p[metric]
        return None

    k = find(rows, "keymix", "opus10_2talk", True, 4)
    p = find(rows, "janus", "opus10_2talk")
    r = ratio(k, p, "legs_per_core")
    line("opus10_2talk, SRTP, complexity 4: >= 4x Janus legs/core",
         "%.2fx" % r if r else "not run", r >= 4 if r else None, k)
    k = find(rows, "keymix", "opus10_2talk_levels", True, 5)
    v = k and k.get("legs_per_core")
    line("opus10_2talk_levels, SRTP, complexity 5: >= 250 legs/core",
         fmt(v, 0), v >= 250 if v else None, k)
    k = find(rows, "keymix", "g711_10", True)
    v = k and k.get("legs_per_core")
    line("g711_10, SRTP: >= 2000 legs/core", fmt(v, 0),
         v >= 2000 if v else None, k)
    k = find(rows, "keymix", "transcode_opus_pcmu", True)
    p = find(rows, "rtpengine", "transcode_opus_pcmu")
    r = ratio(k, p, "calls_per_core")
    line("transcode_opus_pcmu: >= 4x rtpengine calls/core",
         "%.2fx" % r if r else "not run", r >= 4 if r else None, k)
    v = k and k.get("added_latency_ms")
    line("transcode_opus_pcmu: added latency < 1 ms",
         fmt(v, 2) + " ms" if v is not None else "-",
         v < 1 if v is not None else None, k)
    k = find(rows, "keymix", "relay_srtp", True)
    p = find(rows, "rtpengine", "relay_srtp")
    r = ratio(k, p, "calls_per_core")
    line("relay_srtp: >= 3x rtpengine (userspace) calls/core",
         "%.2fx" % r if r else "not run", r >= 3 if r else None, k)
    k = find(rows, "keymix", "opus100_3talk_levels", True)
    v = k and k.get("legs_per_core")
    line("opus100_3talk_levels: >= 800 legs/core", fmt(v, 0),
         v >= 800 if v else None, k)
    where = "at 80 % of capacity" if mode == "full" else \
        "at the quick load (not 80 % of capacity)"
    for k in rows:
        if k["system"] != "keymix" or k.get("legs_per_core") is None:
            continue
        late = k.get("tick_lateness_p99_ms")
        lt = (k.get("at_80pct") or k).get("late_ticks")
        loss = k.get("loss_pct")
        ok = late is not None and late < 2 and not lt and not loss
        line("%s: tick lateness p99 < 2 ms %s, no late ticks, no loss" %
             (label(k), where),
             "p99 %s ms (%s), late ticks %s, loss %s %%" % (
                 fmt(late), k.get("tick_lateness_source", "?"), fmt(lt),
                 fmt(loss, 2)), ok, k)
    out.append("")
    return out


def main():
    mode, outdir, machine, commit, pinning = sys.argv[1:6]
    rows = [ordered(r) for r in load(sys.argv[6:])]
    doc = {"machine": machine, "commit": commit, "mode": mode,
           "pinning": pinning, "scenarios": rows}
    with open(os.path.join(outdir, "latest.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")

    md = []
    md.append("# Keymix throughput bench (%s)\n" % mode)
    md.append("- machine: %s" % machine)
    md.append("- commit: %s" % commit)
    md.append("- pinning: %s" % pinning)
    md.append("- command: `make %s` (`bash bench/run.sh %s`)\n" %
              ("bench" if mode == "full" else "bench-quick", mode))
    md.append("| system | scenario | SRTP | cx | legs | CPU s/leg-s | "
              "legs/core | calls/core | method | late p99 ms | loss % | "
              "added ms | gen. overl. | checks |")
    md.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        chk = r.get("checks") or {}
        md.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |"
                  " %s | %s | %s |" % (
                      r["system"], r["name"], fmt(r["srtp"]),
                      fmt(r["opus_complexity"]), fmt(r["legs"]),
                      fmt(r["cpu_per_leg_second"], 5),
                      fmt(r["legs_per_core"], 0),
                      fmt(r["calls_per_core"], 0), fmt(r["method"]),
                      fmt(r["tick_lateness_p99_ms"]), fmt(r["loss_pct"], 2),
                      fmt(r["added_latency_ms"]),
                      fmt(r["generator_overloaded"]),
                      "ok" if chk.get("ok") else
                      ("FAIL " + r.get("error", "")).strip()))
    md.append("")
    md.append("## Keymix / peer\n")
    md.append("| comparison | Keymix row | Keymix | peer | ratio |")
    md.append("|---|---|---|---|---|")
    for (psys, pname), metric, cx in COMPARE:
        peer = [r for r in rows if r["system"] == psys and
                r["name"] == pname]
        if not peer:
            md.append("| %s %s | - | - | not run | - |" % (psys, pname))
            continue
        p = peer[0]
        ours = [r for r in rows if r["system"] == "keymix" and
                r["name"] == pname and
                (cx is None or r.get("opus_complexity") == cx)]
        if not ours:
            md.append("| %s %s | - | - | %s | - |" %
                      (psys, pname, fmt(p.get(metric), 0)))
        for k in ours:
            ratio = None
            if k.get(metric) and p.get(metric):
                ratio = k[metric] / p[metric]
            md.append("| %s %s (%s) | %s | %s | %s | %s |" % (
                psys, pname, metric.replace("_", " "), label(k),
                fmt(k.get(metric), 0), fmt(p.get(metric), 0),
                ("%.2fx" % ratio) if ratio else "-"))
    md.append("")
    md.append("Janus AudioBridge has no SRTP for plain-RTP participants "
              "and encodes Opus at complexity 4 (fixed in 1.1.2): its rows "
              "are compared with Keymix at complexity 4, with and without "
              "SRTP. rtpengine runs userspace only (--table=-1); in "
              "relay_srtp its B leg uses AES_CM_128_HMAC_SHA1_32 so that "
              "rtpengine decrypts and re-encrypts instead of passing the "
              "SDES key through; its Opus encoder (ffmpeg's libopus "
              "wrapper) runs at libopus's default complexity 10, hence "
              "the Keymix transcode row at complexity 10 as well.")
    md.append("")
    md.extend(targets(rows, mode))
    notes = [r for r in rows if r.get("error") or r.get("note") or
             r.get("generator_overloaded")]
    if notes:
        md.append("## Notes\n")
        for r in notes:
            md.append("- %s: %s%s" % (
                label(r), r.get("error") or r.get("note") or "",
                " (generator overloaded: not trusted)"
                if r.get("generator_overloaded") else ""))
        md.append("")
    md.append("![legs per core](latest.png)\n")
    with open(os.path.join(outdir, "latest.md"), "w") as f:
        f.write("\n".join(md))

    with open(os.path.join(outdir, "plot.dat"), "w") as f:
        for r in rows:
            v = r.get("legs_per_core")
            color = {"keymix": 0x3a6ea5, "janus": 0xd9822b,
                     "rtpengine": 0x5a9e4b}.get(r["system"], 0x888888)
            f.write('"%s" %s %d\n' % (label(r).replace('"', "'"),
                                      v if v is not None else 0, color))
    with open(os.path.join(outdir, "plot.gp"), "w") as f:
        f.write("""set terminal pngcairo size 1200,700 noenhanced
set output '%s'
set title 'Legs per core (%s, %s)'
set style fill solid 0.8 border -1
set boxwidth 0.7
set xrange [-0.6:*]
set rmargin 16
set bmargin 13
set xtics rotate by -40 scale 0 font ',8'
set ylabel 'legs per core (log)'
set logscale y
set grid ytics
set key off
plot '%s' using 0:($2 > 0 ? $2 : 1/0):3:xtic(1) with boxes \
     linecolor rgb variable
""" % (os.path.join(outdir, "latest.png"), mode, commit,
       os.path.join(outdir, "plot.dat")))


if __name__ == "__main__":
    main()
