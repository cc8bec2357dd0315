#!/usr/bin/env python3
"""summarize: the results of run-benchmarks.sh as one JSON file and a table.

Reads the list of runs (scenario, target, round, wsgw-bench JSON report,
exit code), takes per scenario and target the median of the rounds whose
report passed (every message delivered exactly once, every connection
ready; the rounds that failed are listed and counted, not hidden), and
compares wsgw with Nchan and with the one-write ceiling as ratios of those
medians, against the targets of issue 5.

usage: summarize.py RUNS.tsv RESULTS.json COMMAND
"""
import json
import os
import platform
import statistics
import sys
import time


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "loadavg_at_end": os.getloadavg(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def metrics(scen, rep):
    """The numbers a scenario is judged by, from one wsgw-bench report."""
    d = rep.get("delivery", {})
    lat = rep.get("latency_ms", {})
    mem = rep.get("memory", {})
    m = {"ready": rep["connect"]["ready"], "connect_rate": rep["connect"]["rate_per_s"]}
    if scen == "idle":
        m["bytes_per_conn"] = mem.get("gateway_bytes_per_connection")
        m["rss_before_kb"] = mem.get("gateway_rss_before_kb")
        m["rss_after_kb"] = mem.get("gateway_rss_after_kb")
    else:
        m["deliveries_per_s"] = d.get("deliveries_per_s")
        m["lost"] = d.get("lost")
        m["duplicates"] = d.get("duplicates")
        for q in ("p50", "p99", "p999", "max"):
            m[q + "_ms"] = lat.get(q)
        cpu = rep.get("cpu_pct_while_publishing", {})
        m["server_cpu_pct"] = cpu.get("server")
        m["bench_cpu_pct"] = cpu.get("bench_workers")
        # On a shared machine the server may get only part of its core: what
        # it delivers per second of CPU it actually had is the steadier
        # measure of work per core.
        if m["server_cpu_pct"] and m["deliveries_per_s"]:
            m["deliveries_per_cpu_s"] = m["deliveries_per_s"] * 100 / m["server_cpu_pct"]
    return m


def median(runs, key):
    vals = [r["metrics"][key] for r in runs if r["metrics"].get(key) is not None]
    return statistics.median(vals) if vals else None


# (scenario, metric, compared with, ratio bound, "min" = at least / "max" = at most)
TARGETS = [
    ("broadcast", "deliveries_per_s", "nchan", 1.5, "min"),
    ("broadcast", "deliveries_per_s", "onewrite", 1.0, "min"),
    ("broadcast", "deliveries_per_cpu_s", "nchan", 1.5, "min"),
    ("broadcast", "deliveries_per_cpu_s", "onewrite", 1.0, "min"),
    ("latency", "p99_ms", "nchan", 0.7, "max"),
    ("perjob", "deliveries_per_s", "nchan", 1.5, "min"),
    ("perjob", "deliveries_per_cpu_s", "nchan", 1.5, "min"),
]
IDLE_LIMIT = 3 * 1024  # bytes per idle authenticated connection


def main():
    runs_path, out_path, command = sys.argv[1:4]
    runs = []
    with open(runs_path) as f:
        for line in f:
            scen, target, rnd, path, rc = line.rstrip("\n").split("\t")
            entry = {"scenario": scen, "target": target, "round": int(rnd), "exit_code": int(rc),
                     "report": os.path.basename(path)}
            try:
                with open(path) as jf:
                    rep = json.load(jf)
                entry["passed"] = rep["result"] == "pass"
                entry["failures"] = rep["failures"]
                entry["metrics"] = metrics(scen, rep)
            except (OSError, ValueError, KeyError) as e:
                entry["passed"] = False
                entry["failures"] = ["no report: %s" % e]
                entry["metrics"] = {}
            runs.append(entry)

    summary = {}
    for r in runs:
        s = summary.setdefault(r["scenario"], {}).setdefault(r["target"], {"runs": []})
        s["runs"].append(r)
    for scen, targets in summary.items():
        for target, s in targets.items():
            good = [r for r in s["runs"] if r["passed"]]
            s["rounds"] = len(s["runs"])
            s["passed"] = len(good)
            use = good or s["runs"]
            keys = set().union(*(r["metrics"].keys() for r in use))
            s["median"] = {k: median(use, k) for k in sorted(keys)}
            del s["runs"]

    verdicts = []
    for scen, key, peer, bound, kind in TARGETS:
        w = summary.get(scen, {}).get("wsgw", {}).get("median", {}).get(key)
        p = summary.get(scen, {}).get(peer, {}).get("median", {}).get(key)
        if not w or not p:
            continue
        ratio = w / p
        met = ratio >= bound if kind == "min" else ratio <= bound
        verdicts.append({"scenario": scen, "metric": key, "versus": peer, "wsgw": w, peer: p,
                         "ratio": round(ratio, 3),
                         "target": ("at least " if kind == "min" else "at most ") + "%gx" % bound,
                         "met": met})
    idle = summary.get("idle", {})
    w = idle.get("wsgw", {}).get("median", {}).get("bytes_per_conn")
    if w:
        p = idle.get("nchan", {}).get("median", {}).get("bytes_per_conn")
        verdicts.append({"scenario": "idle", "metric": "bytes_per_conn", "versus": "nchan",
                         "wsgw": w, "nchan": p, "ratio": round(w / p, 3) if p else None,
                         "target": "at most %d bytes" % IDLE_LIMIT, "met": w <= IDLE_LIMIT})

    result = {"machine": machine(), "command": command, "summary": summary,
              "verdicts": verdicts, "runs": runs}
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)

    print("\n%-10s %-9s %6s %13s %13s %9s %9s %9s %11s %8s %8s" % (
        "scenario", "target", "passed", "deliveries/s", "per cpu-s", "p50 ms", "p99 ms",
        "p99.9 ms", "bytes/conn", "srv cpu", "bench"))
    for scen in ("broadcast", "latency", "idle", "perjob"):
        for target, s in summary.get(scen, {}).items():
            m = s["median"]

            def f(k, fmt):
                return fmt % m[k] if m.get(k) is not None else "-"
            print("%-10s %-9s %3d/%-2d %13s %13s %9s %9s %9s %11s %8s %8s" % (
                scen, target, s["passed"], s["rounds"], f("deliveries_per_s", "%.0f"),
                f("deliveries_per_cpu_s", "%.0f"), f("p50_ms", "%.2f"), f("p99_ms", "%.2f"), f("p999_ms", "%.2f"),
                f("bytes_per_conn", "%.0f"), f("server_cpu_pct", "%.0f%%"),
                f("bench_cpu_pct", "%.0f%%")))
    print()
    for v in verdicts:
        print("%-10s %-20s wsgw/%-8s %7s  target %-16s %s" % (
            v["scenario"], v["metric"], v["versus"],
            "%.2fx" % v["ratio"] if v["ratio"] is not None else "-", v["target"],
            "MET" if v["met"] else "MISSED"))
    print("\nresults: %s" % out_path)


if __name__ == "__main__":
    main()
