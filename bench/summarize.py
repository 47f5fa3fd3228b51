#!/usr/bin/env python3
"""Turns one bench/run.sh results directory into a markdown summary.

usage: bench/summarize.py bench/results/<timestamp>
"""

import json
import os
import sys

OUT = sys.argv[1] if len(sys.argv) > 1 else "."
TARGETS = ["mock", "nginx", "sluice"]


def load(name):
    path = os.path.join(OUT, name)
    try:
        with open(path) as f:
            text = f.read().strip()
        return json.loads(text.splitlines()[-1] if name.startswith(("stream", "hold")) else text)
    except (OSError, ValueError, IndexError):
        return None


def jsonl(name):
    rows = {}
    try:
        with open(os.path.join(OUT, name)) as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    rows[r["label"]] = r
    except OSError:
        pass
    return rows


def env():
    d = {}
    try:
        with open(os.path.join(OUT, "env.txt")) as f:
            for line in f:
                if ":" in line and not line.startswith("BENCH_"):
                    k, v = line.split(":", 1)
                    d[k.strip()] = v.strip()
                elif "=" in line:
                    k, v = line.strip().split("=", 1)
                    d[k] = v
    except OSError:
        pass
    return d


E = env()
errors = {t: 0 for t in TARGETS}
notes = []


def oha(name, target):
    """(p50, p99, p99.9 in ms, req/s, errors) of one oha run."""
    d = load(f"{name}-{target}.json")
    if not d:
        notes.append(f"{name}-{target}: no oha output")
        errors[target] += 1
        return None
    codes = d.get("statusCodeDistribution") or {}
    errs = sum(v for k, v in codes.items() if k != "200")
    errs += sum((d.get("errorDistribution") or {}).values())
    errors[target] += errs
    if errs:
        notes.append(f"{name}-{target}: {errs} errors {codes} {d.get('errorDistribution')}")
    lp = d.get("latencyPercentiles") or {}
    ms = lambda k: (lp.get(k) or float("nan")) * 1e3
    return {
        "p50": ms("p50"),
        "p99": ms("p99"),
        "p99.9": ms("p99.9"),
        "rps": d["summary"]["requestsPerSec"],
        "n": sum(codes.values()),
        "errors": errs,
    }


def f(v, digits=3):
    if v is None or v != v:
        return "n/a"
    return f"{v:,.{digits}f}"


def verdict(ok):
    return "PASS" if ok else "**FAIL**"


rows = []  # (metric, mock, nginx, sluice, nginx_added, sluice_added, bar, result)
bars = []  # (bar, value, result)


numbers = {}  # bar -> (value, lower is better?, limit) for bench/median.py


def bar(name, value, ok, num=None, limit=None, higher_better=False):
    bars.append((name, value, verdict(ok)))
    if num is not None:
        numbers[name] = {"value": num, "limit": limit, "higher_better": higher_better}
    return verdict(ok)


# ---- throughput ----
rps = {t: oha("rps", t) for t in TARGETS}
if all(rps.values()):
    ratio = rps["sluice"]["rps"] / rps["nginx"]["rps"]
    res = bar("RPS >= 75% of nginx (aim 100%)", f"{ratio:.0%}", ratio >= 0.75,
              100 * ratio, 75, True)
    rows.append((f"Closed-loop req/s, {E.get('BENCH_CONNS', '50')} conns",
                 f(rps["mock"]["rps"], 0), f(rps["nginx"]["rps"], 0), f(rps["sluice"]["rps"], 0),
                 f"{rps['nginx']['rps'] / rps['mock']['rps']:.0%} of mock",
                 f"{ratio:.0%} of nginx", ">= 75% of nginx", res))

# CPU time per request of the proxy itself during the closed-loop phase
cpu = {}
try:
    with open(os.path.join(OUT, "rps-cpu.jsonl")) as fh:
        for line in fh:
            r = json.loads(line)
            cpu[r["target"]] = r["cpu_ticks"] / r["clk_tck"]
except (OSError, ValueError):
    pass
if all(rps.values()) and all(t in cpu for t in TARGETS):
    per = {t: 1e6 * cpu[t] / max(rps[t]["n"], 1) for t in TARGETS}
    rows.append(("CPU per request, closed loop (µs)", *(f(per[t], 1) for t in TARGETS),
                 f"{per['nginx'] / per['mock']:.1f}x mock", f"{per['sluice'] / per['nginx']:.1f}x nginx", "", ""))
    rows.append(("CPU used, closed loop (cores)", *(f(cpu[t] / float(E.get('BENCH_RPS_SECS', 10)), 2) for t in TARGETS),
                 "", "", "", ""))

# ---- concurrency 1 ----
c1 = {t: oha("c1", t) for t in TARGETS}
if all(c1.values()):
    for p, limit in (("p50", 0.10), ("p99", 0.25)):
        add_s = c1["sluice"][p] - c1["mock"][p]
        add_n = c1["nginx"][p] - c1["mock"][p]
        res = bar(f"added latency c=1 {p} <= {limit} ms", f"{add_s:+.3f} ms", add_s <= limit,
                  add_s, limit)
        rows.append((f"Latency c=1 {p} (ms)", f(c1["mock"][p]), f(c1["nginx"][p]), f(c1["sluice"][p]),
                     f"{add_n:+.3f}", f"{add_s:+.3f}", f"added <= {limit}", res))

# ---- fixed rates ----
for rate in E.get("BENCH_RATES", "1000 5000").split():
    r = {t: oha(f"rate{rate}", t) for t in TARGETS}
    if not all(r.values()):
        continue
    for p in ("p50", "p99", "p99.9"):
        add_s = r["sluice"][p] - r["mock"][p]
        add_n = r["nginx"][p] - r["mock"][p]
        res = ""
        limit = ""
        if p == "p99":
            limit = "added <= 1"
            res = bar(f"added p99 at {rate} req/s <= 1 ms", f"{add_s:+.3f} ms", add_s <= 1.0,
                      add_s, 1.0)
        rows.append((f"{rate} req/s {p} (ms)", f(r["mock"][p]), f(r["nginx"][p]), f(r["sluice"][p]),
                     f"{add_n:+.3f}", f"{add_s:+.3f}", limit, res))
    achieved = {t: r[t]["rps"] for t in TARGETS}
    rows.append((f"{rate} req/s achieved", *(f(achieved[t], 0) for t in TARGETS), "", "", "", ""))

# ---- streaming ----
st = {t: load(f"stream-{t}.json") for t in TARGETS}
if all(st.values()):
    for t in TARGETS:
        e = st[t]["errors"] + st[t]["short_streams"]
        errors[t] += e
        if e:
            notes.append(f"stream-{t}: {st[t]['errors']} errors, {st[t]['short_streams']} streams with a wrong event count {st[t].get('first_errors')}")
    for p, label in (("p50", "TTFT p50 (ms)"), ("p99", "TTFT p99 (ms)")):
        add_s = st["sluice"]["ttft_ms"][p] - st["mock"]["ttft_ms"][p]
        add_n = st["nginx"]["ttft_ms"][p] - st["mock"]["ttft_ms"][p]
        res, limit = "", ""
        if p == "p99":
            limit = "added <= 1"
            res = bar("added TTFT p99 <= 1 ms", f"{add_s:+.3f} ms", add_s <= 1.0, add_s, 1.0)
        rows.append((f"Stream {label}", *(f(st[t]["ttft_ms"][p]) for t in TARGETS),
                     f"{add_n:+.3f}", f"{add_s:+.3f}", limit, res))
    for k, label in (("p50", "gap p50"), ("p99", "gap p99"), ("max", "max chunk gap")):
        add_s = st["sluice"]["gap_ms"][k] - st["mock"]["gap_ms"][k]
        add_n = st["nginx"]["gap_ms"][k] - st["mock"]["gap_ms"][k]
        rows.append((f"Stream {label} (ms)", *(f(st[t]["gap_ms"][k]) for t in TARGETS),
                     f"{add_n:+.3f}", f"{add_s:+.3f}", "", ""))
    held = st["sluice"]["bunched_events"] - st["mock"]["bunched_events"]
    ok = held <= 0 and st["sluice"]["short_streams"] == 0 and st["sluice"]["streams"] > 0
    res = bar("no chunk held back", f"{st['sluice']['bunched_events']} bunched events", ok)
    rows.append(("Stream events < 1 ms after the previous", *(str(st[t]["bunched_events"]) for t in TARGETS),
                 "", "", "none extra", res))
    rows.append(("Streams completed", *(str(st[t]["streams"]) for t in TARGETS), "", "", "", ""))

# ---- memory ----
mem = jsonl("sluice-mem.jsonl")
nmem = jsonl("nginx-mem.jsonl")
hold_n = E.get("BENCH_HOLD_STREAMS", "2000")
for label, text, limit in (("idle", "idle", 30), ("conns50", f"after {E.get('BENCH_CONNS', '50')} conns", 64),
                           (f"streams{hold_n}", f"{hold_n} open streams", 150)):
    if label not in mem:
        continue
    mib = mem[label]["vmhwm_kib"] / 1024
    res = bar(f"RSS {text} <= {limit} MiB", f"{mib:.1f} MiB", mib <= limit, mib, limit)
    n = f"{nmem[label]['vmhwm_kib'] / 1024:.1f}" if label in nmem else ""
    rows.append((f"Peak RSS (VmHWM) {text}, MiB", "", n, f"{mib:.1f}", "", "", f"<= {limit}", res))

# ---- many open streams ----
for t in ("sluice", "nginx"):
    h = load(f"hold-{t}.json")
    if not h:
        continue
    e = h["errors"]
    errors[t] += e
    if e or h["opened"] < h["streams"]:
        notes.append(f"hold-{t}: {h['opened']}/{h['streams']} opened, {e} errors {h.get('first_errors')}")
        errors[t] += h["streams"] - h["opened"] - e
    rows.append((f"Open streams held ({t})", "", *(("", f"{h['peak_open']}/{h['streams']}") if t == "sluice"
                                                  else (f"{h['peak_open']}/{h['streams']}", "")),
                 "", "", "", ""))

# upstream streams still open after the probe dropped its clients
try:
    with open(os.path.join(OUT, "hold-leftover.jsonl")) as fh:
        for line in fh:
            r = json.loads(line)
            left = r["upstream_streams_left"]
            rows.append((f"Upstream streams left open 2 s after clients left ({r['target']})", "",
                         *((left, "") if r["target"] == "nginx" else ("", left)), "", "", "", ""))
except (OSError, ValueError):
    pass

# server side: sluice's access log
ls = load("sluice-log-stats.json")
if ls:
    errors["sluice"] += ls["unexpected"]
    if ls["unexpected"]:
        notes.append(f"sluice access log: {ls['unexpected_by_kind']}")
    st = ", ".join(f"{k}: {v:,}" for k, v in sorted(ls["statuses"].items()))
    rows.append(("sluice access-log lines by status (499 = streams the probe dropped)", "", "",
                 st, "", "", "", ""))

# ---- errors ----
total = errors["sluice"]
res = bar("zero errors (sluice)", str(total), total == 0, total, 0)
rows.append(("Errors (all phases)", *(str(errors[t]) for t in TARGETS), "", "", "0", res))

# ---- print ----
print(f"## sluice benchmark — {E.get('date_utc', '?')}")
print()
print(f"Machine: {E.get('nproc', '?')} cores, {E.get('cpu', '?')}, {E.get('mem_total', '?')} RAM, "
      f"kernel {E.get('kernel', '?')}. sluice {E.get('git', '?')}; {E.get('oha', 'oha ?')}; "
      f"{E.get('nginx', 'nginx ?')}. Pinned: {'yes' if E.get('pin') == '1' else 'no'}. "
      f"Load average at start / end: {E.get('loadavg_start', '?')} / {E.get('loadavg_end', '?')}.")
print()
print("| Metric | mock direct | nginx | sluice | nginx added | sluice added | bar | result |")
print("|---|---:|---:|---:|---:|---:|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
print()
print("### Bars")
print()
print("| Bar | sluice | result |")
print("|---|---:|---|")
for b in bars:
    print(f"| {b[0]} | {b[1]} | {b[2]} |")
if notes:
    print()
    print("### Notes")
    print()
    for n in notes:
        print(f"- {n}")

with open(os.path.join(OUT, "bars.json"), "w") as fh:
    json.dump(numbers, fh, indent=1)
