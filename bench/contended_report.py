#!/usr/bin/env python3
"""Reads the contended shapes' results (bench/contended.sh writes one directory per core:
*.jsonl from the contended benches, burst.jsonl from Google Benchmark, machine.json) and
prints ONE table: each issue-8 target, the figure measured, pass or miss. With several
directories the cores stand side by side (separate runs; every ratio is within one run).

usage: contended_report.py [--readme README.md [--notes NOTES.md] [--findings FINDINGS.md]]
                           [LABEL=]DIR [[LABEL=]DIR...]
--readme replaces the README's "## 0.2 contended shapes" section (from that heading to the
end of the file) with the notes (how it measures), the target table, the findings (what
the figures say, written by hand) and every contender's figures.
"""
import json
import os
import statistics
import sys

HEADING = "## 0.2 contended shapes"
PEERS = ("textbook", "soci", "poco")


def load(d):
    recs, crashes = [], []
    for name in sorted(os.listdir(d)):
        path = os.path.join(d, name)
        if name == "burst.jsonl":
            recs += burst_records(path)
        elif name.endswith(".jsonl"):
            for line in open(path):
                line = line.strip()
                if not line.startswith("{"):
                    continue
                r = json.loads(line)
                (crashes if r["workload"] in ("crash", "hang") else recs).append(r)
    machine = {}
    if os.path.exists(os.path.join(d, "machine.json")):
        machine = json.load(open(os.path.join(d, "machine.json")))
    return recs, crashes, machine


def burst_records(path):
    try:
        doc = json.load(open(path))
    except (ValueError, OSError):
        return []
    out = []
    for b in doc.get("benchmarks", []):
        if b.get("error_occurred"):
            continue
        out.append({"workload": "burst", "pool": b["name"].split("/iterations")[0],
                    "threads": 50, "conns": 50, "open_after": b.get("open_after"),
                    "connects": b.get("connects_during_burst"), "wait_max_ms": b.get("wait_max_ms")})
    return out


class Run:
    """One core's results: medians over the rounds of each (workload, pool, threads, conns)."""

    def __init__(self, arg):
        # "LABEL=DIR" names the column (e.g. "0.1=bench/results/contended/507b86c").
        self.name, _, d = arg.rpartition("=")
        self.dir = d
        self.recs, self.crashes, self.machine = load(d)

    def get(self, workload, pool, threads, conns, key):
        vals = [r[key] for r in self.recs if r["workload"] == workload and r["pool"] == pool
                and r["threads"] == threads and r["conns"] == conns and r.get(key) is not None]
        return statistics.median(vals) if vals else None

    def errors(self, workload, pool, threads, conns):
        return sum(r.get("errors", 0) for r in self.recs if r["workload"] == workload and r["pool"] == pool
                   and r["threads"] == threads and r["conns"] == conns)

    def pools(self, workload):
        seen = []
        for r in self.recs:
            if r["workload"] == workload and r["pool"] not in seen:
                seen.append(r["pool"])
        return seen

    def shapes(self, workload):
        seen = []
        for r in self.recs:
            if r["workload"] == workload and (r["threads"], r["conns"]) not in seen:
                seen.append((r["threads"], r["conns"]))
        return seen


def ns(v):
    return "-" if v is None else (f"{v:.1f} ns" if v < 1000 else f"{v / 1000:.2f} µs" if v < 1e6 else f"{v / 1e6:.2f} ms")


def rate(v):
    return "-" if v is None else (f"{v / 1e3:.1f}k/s" if v >= 1e3 else f"{v:.0f}/s")


def mark(ok):
    return "-" if ok is None else ("pass" if ok else "**MISS**")


# Each target: (label, function(run) -> (figure text, ok or None)).
def cycle_target(threads, conns, limit):
    def f(run):
        v = run.get("mem", "connpool", threads, conns, "ns_per_cycle")
        cpu = run.get("mem", "connpool", threads, conns, "cpu_ns_per_cycle")
        return ns(v) + (f" (CPU {ns(cpu)})" if cpu is not None else ""), None if v is None else v <= limit
    return f"cycle, {threads} thread(s) on {conns}: aggregate <= {limit} ns", f


def best_peer_target(run):
    mine = run.get("mem", "connpool", 1, 4, "ns_per_cycle")
    peers = {p: run.get("mem", p, 1, 4, "ns_per_cycle") for p in PEERS}
    peers = {p: v for p, v in peers.items() if v is not None}
    if mine is None or not peers:
        return "-", None
    best = min(peers, key=peers.get)
    return f"{ns(mine)} vs {best} {ns(peers[best])}", mine <= peers[best]


def p99_target(run):
    v = run.get("mem", "connpool", 32, 4, "p99_ns")
    return ns(v), None if v is None else v <= 50_000


def fairness_target(workload, threads, conns):
    def f(run):
        v = run.get(workload, "connpool", threads, conns, "fairness")
        return ("-" if v is None else f"{v:.2f}"), None if v is None else v >= 0.5
    return f


def alloc_target(workload, pool, threads):
    def f(run):
        v = run.get(workload, pool, threads, 4, "allocs_per_cycle")
        return ("-" if v is None else f"{v:.4f}"), None if v is None else v == 0
    return f


def pg_ratio(run, workload, threads, base_threads, base_workload=None):
    mine = run.get(workload, "connpool", threads, 4, "per_s")
    base = run.get(base_workload or workload, "dedicated", base_threads, 4, "per_s")
    if mine is None or not base:
        return None, mine, base
    return mine / base, mine, base


def pg_target(workload, threads, base_threads, limit, label_base):
    def f(run):
        ratio, mine, base = pg_ratio(run, workload, threads, base_threads)
        if ratio is None:
            return "-", None
        p99 = run.get(workload, "connpool", threads, 4, "p99_ns")
        return f"{ratio:.2f} ({rate(mine)} vs {rate(base)}, p99 {ns(p99)})", ratio >= limit
    return f"SELECT 1, {threads} thread(s), pool 4 >= {limit} of {label_base}", f


def pg_p99_target(run):
    v = run.get("pg", "connpool", 32, 4, "p99_ns")
    return ns(v), None if v is None else v <= 3e6


def pg_ahead_target(threads):
    def f(run):
        mine = run.get("pg", "connpool", threads, 4, "per_s")
        peers = {p: run.get("pg", p, threads, 4, "per_s") for p in PEERS}
        peers = {p: v for p, v in peers.items() if v is not None}
        if mine is None or not peers:
            return "-", None
        best = max(peers, key=peers.get)
        return f"{rate(mine)} vs {best} {rate(peers[best])}", mine > peers[best]
    return f


def async_target(run):
    mine = run.get("async", "connpool", 32, 4, "per_s")
    base = run.get("pg", "dedicated", 4, 4, "per_s")
    abase = run.get("async", "dedicated", 4, 4, "per_s")
    if mine is None or not base:
        return "-", None
    extra = f"; {mine / abase:.2f} of 4 async dedicated" if abase else ""
    return f"{mine / base:.2f} ({rate(mine)} vs {rate(base)} blocking{extra})", mine / base >= 0.90


def burst_target(name):
    def f(run):
        v = run.get("burst", name, 50, 50, "open_after")
        c = run.get("burst", name, 50, 50, "connects")
        return ("-" if v is None else f"{v:.0f} ({c:.0f} connects)"), None if v is None else v <= 6
    return f


TARGETS = [
    cycle_target(1, 4, 15),
    ("cycle, 1 thread: no slower than the best peer", best_peer_target),
    cycle_target(2, 4, 15),
    cycle_target(4, 4, 15),
    cycle_target(8, 4, 30),
    cycle_target(32, 4, 60),
    ("cycle, 32 on 4: p99 of one cycle <= 50 µs", p99_target),
    ("cycle, 8 on 4: fairness (min / mean share) >= 0.5", fairness_target("mem", 8, 4)),
    ("cycle, 32 on 4: fairness >= 0.5", fairness_target("mem", 32, 4)),
    ("cycle, 32 on 16: fairness >= 0.5", fairness_target("mem", 32, 16)),
    ("allocations per cycle, uncontended blocking (1 on 4) = 0", alloc_target("mem", "connpool", 1)),
    ("allocations per cycle, uncontended async (1 coroutine, 1 io thread) = 0",
     alloc_target("alloc", "connpool_async", 1)),
    pg_target("pg_pinned", 1, 1, 0.98, "1 dedicated, client + server pinned to one CPU"),
    pg_target("pg", 2, 2, 0.97, "2 dedicated"),
    pg_target("pg", 8, 4, 0.90, "4 dedicated"),
    ("SELECT 1, 8 threads: ahead of every peer", pg_ahead_target(8)),
    pg_target("pg", 32, 4, 0.90, "4 dedicated"),
    ("SELECT 1, 32 threads: p99 <= 3 ms", pg_p99_target),
    ("SELECT 1, 32 threads: ahead of every peer", pg_ahead_target(32)),
    ("SELECT 1, 32 threads: fairness >= 0.5", fairness_target("pg", 32, 4)),
    ("32 coroutines over 2 io threads, pool 4 >= 0.90 of 4 dedicated", async_target),
    ("burst (150 ms connects, 50 threads, min_idle 5): <= 6 connections left", burst_target("burst/connpool/reset:0")),
    ("burst, reset on return: <= 6 connections left", burst_target("burst/connpool/reset:1")),
]


def label(run):
    commit = run.machine.get("commit", os.path.basename(run.dir))
    return f"{run.name} (commit {commit})" if run.name else f"core {commit}"


def target_table(runs):
    head = "| target | " + " | ".join(f"{label(r)} | verdict" for r in runs) + " |\n"
    head += "|---|" + "---|---|" * len(runs) + "\n"
    lines = []
    for name, f in TARGETS:
        cells = []
        for r in runs:
            fig, ok = f(r)
            cells += [fig, mark(ok)]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    tally = []
    for r in runs:
        oks = [f(r)[1] for _, f in TARGETS]
        tally.append(f"{label(r)}: {sum(1 for o in oks if o)} pass, {sum(1 for o in oks if o is False)} miss, "
                     f"{sum(1 for o in oks if o is None)} not measured")
    return head + "\n".join(lines) + "\n\n" + "; ".join(tally) + "\n"


def contender_table(run, workload):
    """Every contender at every shape of one workload: medians over the rounds."""
    pools = run.pools(workload)
    if not pools:
        return ""
    out = [f"| {workload}: threads / conns | " + " | ".join(pools) + " |", "|---|" + "---|" * len(pools)]
    for t, c in run.shapes(workload):
        cells = []
        for p in pools:
            v = run.get(workload, p, t, c, "ns_per_cycle")
            if v is None:
                cells.append("")
                continue
            per_s = run.get(workload, p, t, c, "per_s")
            p99 = run.get(workload, p, t, c, "p99_ns")
            fair = run.get(workload, p, t, c, "fairness")
            err = run.errors(workload, p, t, c)
            main = ns(v) if workload in ("mem", "alloc") else rate(per_s)
            cpu = run.get(workload, p, t, c, "cpu_ns_per_cycle")
            if workload == "mem" and cpu is not None:
                main += f" (CPU {ns(cpu)})"
            cells.append(f"{main}, p99 {ns(p99)}, fair {fair:.2f}" + (f", {err} errors" if err else ""))
        out.append(f"| {t} / {c} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def failure(c):
    status = c.get("status")
    if status is None:
        return f"hung ({c.get('stuck_threads', '?')} threads never returned)"
    if status == 143:
        return "hung, stopped by hand (SIGTERM)"
    return f"crashed (exit status {status}{', SIGSEGV' if status == 139 else ''})"


def details(run):
    m = run.machine
    parts = [f"#### {label(run)}: every contender (median of the rounds)\n",
             f"Run {m.get('date', '?')}, load average before / after {' '.join(m.get('load_before', []))} / "
             f"{' '.join(m.get('load_after', []))}.\n"]
    for w in ("mem", "pg", "pg_pinned", "async", "alloc"):
        t = contender_table(run, w)
        if t:
            parts.append(t)
    for c in run.crashes:
        parts.append(f"- **{c['pool']} {c.get('what', '')}: {failure(c)}**; its stderr: `{run.dir}/{c['pool']}.err`")
    parts.append("")
    return "\n".join(parts)


def main(argv):
    readme = notes = findings = None
    dirs = []
    i = 0
    while i < len(argv):
        if argv[i] == "--readme":
            readme, i = argv[i + 1], i + 2
        elif argv[i] == "--notes":
            notes, i = argv[i + 1], i + 2
        elif argv[i] == "--findings":
            findings, i = argv[i + 1], i + 2
        else:
            dirs.append(argv[i])
            i += 1
    if not dirs:
        sys.exit(__doc__)
    runs = [Run(d) for d in dirs]
    table = target_table(runs)
    print(table)
    for r in runs:
        for c in r.crashes:
            print(f"{label(r)}: {c['pool']} {c.get('what', '')}: {failure(c)}")
    if readme:
        body = open(readme).read()
        if HEADING in body:
            body = body[:body.index(HEADING)]
        section = [HEADING, "", open(notes).read().strip() if notes else "", "",
                   "### Targets", "", table]
        if findings:
            section += ["### What the figures say", "", open(findings).read().strip(), ""]
        section += ["### Figures", ""] + [details(r) for r in runs]
        with open(readme, "w") as f:
            f.write(body.rstrip("\n") + "\n\n" + "\n".join(section).rstrip("\n") + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
