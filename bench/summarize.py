#!/usr/bin/env python3
"""Reads bench/results/*.json (Google Benchmark output, plus machine.json and
compile_cost.json), prints one summary table with the ratios against the baselines measured
in the same run and whether each target is met, writes gnuplot data and scripts into the
results directory, and rewrites bench/README.md with the table.

usage: summarize.py RESULTS_DIR README_PATH
"""
import json
import os
import re
import sys

results_dir, readme_path = sys.argv[1], sys.argv[2]
bench_dir = os.path.dirname(os.path.abspath(readme_path))

UNIT_NS = {"ns": 1.0, "us": 1e3, "ms": 1e6, "s": 1e9}


def load(name):
    path = os.path.join(results_dir, name)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def parse_name(run_name):
    """'pg/tcp/connpool/size:4/min_time:0.500/real_time/threads:32' ->
    ('pg/tcp/connpool', {'size': 4, 'threads': 32, ...})"""
    family, params = [], {}
    for tok in run_name.split("/"):
        m = re.fullmatch(r"([a-z_]+):([0-9.]+)", tok)
        if m:
            v = float(m.group(2))
            params[m.group(1)] = int(v) if v.is_integer() else v
        elif tok not in ("real_time", "manual_time"):
            family.append(tok)
    params.setdefault("threads", 1)
    return "/".join(family), params


def medians(doc):
    """One record per benchmark: the median aggregate when repetitions ran, else the run."""
    out = {}
    if not doc:
        return out
    runs = {}
    errors = {}
    for b in doc.get("benchmarks", []):
        key = b.get("run_name", b["name"])
        if b.get("error_occurred"):
            errors.setdefault(key, []).append(b.get("error_message", "error"))
            continue
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                runs[key] = (2, b)
        elif key not in runs or runs[key][0] < 1:
            runs[key] = (1, b)
    for key, (_, b) in runs.items():
        fam, params = parse_name(key)
        rec = dict(b)
        scale = UNIT_NS.get(b.get("time_unit", "ns"), 1.0)
        rec["real_ns"] = b["real_time"] * scale
        rec["cpu_ns"] = b["cpu_time"] * scale
        rec["params"] = params
        rec["family"] = fam
        if key in errors:
            rec["failed_runs"] = len(errors[key])
            rec["error"] = errors[key][0]
        out[key] = rec
    # Benchmarks that failed in every repetition: an error record, so that the table says so.
    for key, msgs in errors.items():
        if key not in out:
            fam, params = parse_name(key)
            out[key] = {"family": fam, "params": params, "error": msgs[0], "failed_runs": len(msgs), "failed": True}
    return out


def find(recs, family, include_failed=False, **params):
    for r in recs.values():
        if r.get("failed") and not include_failed:
            continue
        if r["family"] != family:
            continue
        if all(r["params"].get(k) == v for k, v in params.items()):
            return r
    return None


rows = []  # (section, what, connpool, baseline, ratio, target, verdict)


def add(section, what, mine, base, ratio, target, verdict):
    rows.append((section, what, mine, base, ratio, target, verdict))


def fmt_ns(v):
    return "-" if v is None else f"{v:.1f} ns"


def fmt_rate(v):
    if v is None:
        return "-"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M/s"
    if v >= 1e3:
        return f"{v / 1e3:.1f} k/s"
    return f"{v:.0f} /s"


def fmt_us(v):
    if v is None:
        return "-"
    if v >= 1000:
        return f"{v / 1000:.2f} ms"
    return f"{v:.0f} µs"


def verdict(ok):
    if ok is None:
        return "n/a"
    return "**met**" if ok else "**MISSED**"


plots = []  # (png, gnuplot script text)

# ----------------------------------------------------------------- pool overhead
ov = medians(load("overhead.json"))


def cyc_ns(r):
    return 1e9 / r["cycles_per_s"] if r and r.get("cycles_per_s") else None


if ov:
    sec = "overhead"
    c1 = find(ov, "overhead/connpool/blocking", size=1, threads=1)
    t1 = find(ov, "overhead/textbook/blocking", size=1, threads=1)
    if c1 and t1:
        ok = cyc_ns(c1) <= 20 and cyc_ns(c1) <= cyc_ns(t1)
        add(sec, "1 thread, pool 1: ns per acquire+release (CPU ns per cycle in brackets)",
            f"{cyc_ns(c1):.1f} ns ({c1.get('cpu_ns_per_cycle', 0):.1f})", f"{cyc_ns(t1):.1f} ns ({t1.get('cpu_ns_per_cycle', 0):.1f})",
            f"{cyc_ns(c1) / cyc_ns(t1):.2f}x cost", "<= 20 ns and <= textbook", verdict(ok))
        add(sec, "allocations per cycle, uncontended (1 thread)", f"{c1.get('allocs_per_cycle', 0):.4f}",
            f"{t1.get('allocs_per_cycle', 0):.4f}", "-", "0", verdict(c1.get("allocs_per_cycle", 1) < 0.001))
    data = []
    for t in (1, 2, 4, 8, 16):
        half = max(1, t // 2)
        row = [t]
        for fam in ("overhead/connpool/blocking", "overhead/textbook/blocking"):
            for size in (t, half):
                r = find(ov, fam, size=size, threads=t)
                row.append(cyc_ns(r) if r else float("nan"))
        data.append(row)
        if t == 1:
            continue
        for size, label in ((t, "pool = threads"), (half, "pool = threads/2")):
            c = find(ov, "overhead/connpool/blocking", size=size, threads=t)
            b = find(ov, "overhead/textbook/blocking", size=size, threads=t)
            cf = find(ov, "overhead/connpool/blocking", include_failed=True, size=size, threads=t)
            if cf and cf.get("error"):
                n = cf["failed_runs"]
                add(sec, f"{t} threads, {label} ({size}): connpool FAILED in {n} of "
                         f"{(load('machine.json') or {}).get('repetitions', '?')} repetitions",
                    cf["error"], fmt_ns(cyc_ns(b)) if b else "-", "-", "no failure", "**ERROR**")
            if not (c and b):
                continue
            speed = cyc_ns(b) / cyc_ns(c)
            ok = cyc_ns(c) <= 30 and speed >= 4
            extra = ""
            if c.get("waited_fraction", 0) > 0.01:
                extra = f"; {c['waited_fraction'] * 100:.0f}% of acquires waited"
            add(sec, f"{t} threads, {label} ({size}): aggregate ns/cycle (CPU ns per cycle){extra}",
                f"{cyc_ns(c):.1f} ns ({c.get('cpu_ns_per_cycle', 0):.0f})", f"{cyc_ns(b):.1f} ns ({b.get('cpu_ns_per_cycle', 0):.0f})",
                f"{speed:.2f}x throughput", "<= 30 ns, >= 4x textbook", verdict(ok))
            if size == t:
                add(sec, f"{t} threads, pool {size}: allocations per cycle", f"{c.get('allocs_per_cycle', 0):.4f}",
                    f"{b.get('allocs_per_cycle', 0):.4f}", "-", "0", verdict(c.get("allocs_per_cycle", 1) < 0.001))
    for r in sorted((r for r in ov.values() if r["family"] == "overhead/connpool/async"),
                    key=lambda r: (r["params"]["io"], r["params"]["coros"], -r["params"]["size"])):
        p = r["params"]
        add(sec, f"async: {p['coros']} coroutine(s), {p['io']} io thread(s), pool {p['size']}: "
                 f"ns/cycle (CPU ns), allocations per cycle",
            f"{fmt_ns(cyc_ns(r))} ({r.get('cpu_ns_per_cycle', 0):.0f}), {r.get('allocs_per_cycle', 0):.2f} allocs",
            "-", "-", "no allocation uncontended" if p["coros"] == 1 else "report",
            verdict(r.get("allocs_per_cycle", 1) < 0.001) if p["coros"] == 1 else "n/a")
    with open(os.path.join(results_dir, "overhead.dat"), "w") as f:
        f.write("# threads connpool(pool=threads) connpool(pool=threads/2) textbook(pool=threads) "
                "textbook(pool=threads/2), ns per cycle\n")
        for row in data:
            f.write(" ".join(f"{v:g}" for v in row) + "\n")
    plots.append(("overhead.png", """set terminal pngcairo size 900,560
set output 'overhead.png'
set title 'Pool overhead: acquire + release, in-memory connection (aggregate ns per cycle, lower is better)'
set xlabel 'threads'
set ylabel 'ns per cycle'
set logscale xy 2
set key top left
set grid
plot 'overhead.dat' using 1:2 with linespoints lw 2 title 'connpool, pool = threads', \\
     '' using 1:3 with linespoints lw 2 title 'connpool, pool = threads/2', \\
     '' using 1:4 with linespoints lw 2 dt 2 title 'textbook, pool = threads', \\
     '' using 1:5 with linespoints lw 2 dt 2 title 'textbook, pool = threads/2'
"""))

# ----------------------------------------------------------------- fairness
fa = medians(load("fairness.json"))
if fa:
    sec = "fairness"
    c = find(fa, "fairness/connpool", size=4)
    t = find(fa, "fairness/textbook", size=4)
    if c and t:
        add(sec, "32 threads, pool 4, 50 µs hold: acquire wait p50 / p99 / max",
            f"{fmt_us(c['wait_p50_us'])} / {fmt_us(c['wait_p99_us'])} / {fmt_us(c['wait_max_us'])}",
            f"{fmt_us(t['wait_p50_us'])} / {fmt_us(t['wait_p99_us'])} / {fmt_us(t['wait_max_us'])}",
            f"p99 {c['wait_p99_us'] / t['wait_p99_us']:.2f}x", "report", "n/a")
        add(sec, "acquires per thread min / max (min / mean)",
            f"{c['per_thread_min']:.0f} / {c['per_thread_max']:.0f} ({c['min_over_mean']:.2f})",
            f"{t['per_thread_min']:.0f} / {t['per_thread_max']:.0f} ({t['min_over_mean']:.2f})", "-",
            "no starvation: min >= 0.5 x mean", verdict(c["min_over_mean"] >= 0.5))
        add(sec, "throughput (ceiling: min(4, CPUs) / hold)", fmt_rate(c["acquires_per_s"]),
            fmt_rate(t["acquires_per_s"]), f"{c['acquires_per_s'] / t['acquires_per_s']:.2f}x",
            f"report (ceiling {fmt_rate(c['ceiling_per_s'])})", "n/a")
        with open(os.path.join(results_dir, "fairness.dat"), "w") as f:
            f.write("# percentile connpool_us textbook_us\n")
            for i, (label, key) in enumerate((("p50", "wait_p50_us"), ("p90", "wait_p90_us"),
                                              ("p99", "wait_p99_us"), ("p99.9", "wait_p999_us"),
                                              ("max", "wait_max_us"))):
                f.write(f"{i} {label} {max(c.get(key, 0), 0.01):g} {max(t.get(key, 0), 0.01):g}\n")
        plots.append(("fairness.png", """set terminal pngcairo size 900,560
set output 'fairness.png'
set title 'Acquire wait under overload: 32 threads, pool of 4, 50 us busy hold'
set ylabel 'acquire wait (us)'
set logscale y
set style data histogram
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
set grid ytics
plot 'fairness.dat' using 3:xtic(2) title 'connpool', '' using 4 title 'textbook mutex + condvar'
"""))

# ----------------------------------------------------------------- burst
bu = medians(load("burst.json"))
if bu:
    g = find(bu, "burst/textbook_growing")
    for reset, how in ((0, ""), (1, ", reset on return (every return dirty, 1 ms reset)")):
        c = find(bu, "burst/connpool", reset=reset)
        if c:
            add("burst", "150 ms connects, min_idle 5, max 50, burst of 50 x 2 ms" + how + ": connections afterwards",
                f"{c['open_after']:.0f} ({c['connects_during_burst']:.0f} connects, worst wait {c['wait_max_ms']:.0f} ms)",
                f"{g['open_after']:.0f} ({g['connects_during_burst']:.0f} connects, worst wait {g['wait_max_ms']:.0f} ms)"
                if g else "-", "-", "<= 6", verdict(c["open_after"] <= 6))

# ----------------------------------------------------------------- compile cost
cc = load("compile_cost.json")
if cc:
    ratio = cc["connpool_header_s"] / cc["asio_only_s"]
    add("compile", "compile time: TU with <connpool.hpp> vs TU with <boost/asio.hpp>",
        f"{cc['connpool_header_s']:.2f} s", f"{cc['asio_only_s']:.2f} s", f"{ratio:.2f}x", "<= 1.2x",
        verdict(ratio <= 1.2))
    add("compile", "for information: TU that instantiates a pool, acquire and async_acquire",
        f"{cc['connpool_used_s']:.2f} s", f"{cc['asio_only_s']:.2f} s",
        f"{cc['connpool_used_s'] / cc['asio_only_s']:.2f}x", "report", "n/a")


# ----------------------------------------------------------------- databases
def db_section(db, recs, thread_counts, sizes, plot_prefix):
    detail = []
    for transport in ("tcp", "unix"):
        base = f"{db}/{transport}"
        if not any(r["family"].startswith(base) for r in recs.values()):
            continue
        sec = f"{db} {transport}"

        def rate(fam, **p):
            r = find(recs, f"{base}/{fam}", **p)
            return (r["req_per_s"], r) if r and r.get("req_per_s") else (None, r)

        # ratios to the dedicated connection where threads <= pool size
        for size in sizes:
            for t in sorted(set(thread_counts + [size])):
                if t > size:
                    continue
                mine, mr = rate("connpool", size=size, threads=t)
                ded, _ = rate("dedicated", threads=t)
                if mine and ded:
                    ratio = mine / ded
                    what = "connpool vs dedicated connection per thread"
                    if db == "mysql":
                        what = "connpool (default reset) vs dedicated connection per thread"
                    if t == 1:
                        what += " (1 thread unpinned: mostly vCPU wake-ups)"
                    add(sec, f"{t} thread(s), pool {size}: {what}",
                        f"{fmt_rate(mine)} (p99 {fmt_us(mr['p99_us'])})", fmt_rate(ded), f"{ratio:.2f}",
                        ">= 0.97", verdict(ratio >= 0.97))
        # overload: the largest thread count on the largest pool vs that many dedicated
        size = max(sizes)
        tmax = max(thread_counts)
        ded, _ = rate("dedicated", threads=size)
        mine, mr = rate("connpool", size=size, threads=tmax)
        tb, tr = rate("textbook", size=size, threads=tmax)
        if mine and ded:
            ratio = mine / ded
            target = ">= 0.85, p99 <= 4 ms" if db == "pg" else "report"
            ok = (ratio >= 0.85 and mr["p99_us"] <= 4000) if db == "pg" else None
            add(sec, f"{tmax} threads on pool {size} vs {size} dedicated (p99)",
                f"{fmt_rate(mine)} = {ratio:.2f} (p99 {fmt_us(mr['p99_us'])})",
                f"{fmt_rate(ded)}; textbook {fmt_rate(tb)} = {tb / ded:.2f} (p99 {fmt_us(tr['p99_us'])})"
                if tb else fmt_rate(ded), f"{ratio:.2f}", target, verdict(ok))
        for io in (1, 2):
            a = find(recs, f"{base}/async_connpool", io=io, coros=32, size=4)
            ad = find(recs, f"{base}/async_dedicated", io=io, coros=4, size=4)
            if a and ded:
                ratio = a["req_per_s"] / ded
                add(sec, f"async: 32 coroutines on pool 4, {io} io thread(s), vs 4 dedicated (blocking; "
                         f"async dedicated in brackets)",
                    f"{fmt_rate(a['req_per_s'])} (p99 {fmt_us(a['p99_us'])})",
                    f"{fmt_rate(ded)} ({fmt_rate(ad['req_per_s']) if ad else '-'})",
                    f"{ratio:.2f} ({a['req_per_s'] / ad['req_per_s']:.2f})" if ad else f"{ratio:.2f}",
                    ">= 0.9", verdict(ratio >= 0.9))
        for t in (1, 2):
            pr, _ = rate("per_request", threads=t)
            mine, _ = rate("connpool", size=max(sizes), threads=t)
            if pr and mine:
                add(sec, f"{t} thread(s): speed-up of connpool (pool {max(sizes)}) over a connect per request",
                    fmt_rate(mine), fmt_rate(pr), f"{mine / pr:.0f}x", "report", "n/a")
        # reset policies
        for t in (2, 8):
            none, _ = rate("reset:none", size=4, threads=t)
            if not none:
                continue
            for pol in ("default", "discard_all"):
                v, vr = rate(f"reset:{pol}", size=4, threads=t)
                if v:
                    add(sec, f"reset on return '{pol}' vs none, {t} threads, pool 4", fmt_rate(v), fmt_rate(none),
                        f"{v / none:.2f}", "report", "n/a")
        if db == "mysql":
            for t in (1, 2, 4):
                none, nr = rate("reset:none", size=4, threads=t)
                ded, _ = rate("dedicated", threads=t)
                if none and ded:
                    add(sec, f"{t} thread(s), pool 4, no reset: connpool vs dedicated connection per thread",
                        f"{fmt_rate(none)} (p99 {fmt_us(nr['p99_us'])})", fmt_rate(ded), f"{none / ded:.2f}",
                        ">= 0.97 (as for PostgreSQL)", verdict(none / ded >= 0.97))
            for t in (2, 8):
                none, _ = rate("reset:none", size=4, threads=t)
                dflt, _ = rate("connpool", size=4, threads=t)
                if none and dflt:
                    add(sec, f"default reset (COM_RESET_CONNECTION per used return) vs none, {t} threads, pool 4",
                        fmt_rate(dflt), fmt_rate(none), f"{dflt / none:.2f}", "report", "n/a")
        # detail table and plot data
        all_threads = sorted({r["params"]["threads"] for r in recs.values() if r["family"].startswith(base)
                              and r["family"].split("/")[-1] in ("per_request", "dedicated", "connpool", "textbook")})
        series = [("per_request", {}), ("dedicated", {})] + [("connpool", {"size": s}) for s in sizes] + \
                 [("textbook", {"size": s}) for s in sizes]
        dat = os.path.join(results_dir, f"{plot_prefix}_{transport}.dat")
        with open(dat, "w") as f:
            f.write("# threads " + " ".join(n + ("_" + str(p["size"]) if p else "") for n, p in series) +
                    " (requests/s; ? = not run)\n")
            for t in all_threads:
                vals = []
                for n, p in series:
                    v, r = rate(n, threads=t, **p)
                    vals.append(f"{v:g}" if v else "?")
                    if r and v:
                        detail.append((transport, n + (f" pool {p['size']}" if p else ""), t, v, r["p50_us"],
                                       r["p99_us"], r.get("errors", 0)))
                f.write(f"{t} " + " ".join(vals) + "\n")
        cols = []
        present = set()
        for t in all_threads:
            for i, (n, p) in enumerate(series):
                if rate(n, threads=t, **p)[0]:
                    present.add(i)
        for i, (n, p) in enumerate(series):
            if i not in present:
                continue
            label = {"per_request": "connect per request", "dedicated": "dedicated connection per thread"}.get(
                n, f"{n} pool {p.get('size')}" if p else n)
            style = "dt 2" if n == "textbook" else ""
            cols.append(f"'{os.path.basename(dat)}' using 1:{i + 2} with linespoints lw 2 {style} title '{label}'")
        plots.append((f"{plot_prefix}_{transport}.png", f"""set terminal pngcairo size 900,560
set output '{plot_prefix}_{transport}.png'
set title '{db} SELECT 1 over {transport}: throughput against client threads (unpinned, 2 vCPUs)'
set xlabel 'client threads'
set ylabel 'requests per second'
set logscale xy
set datafile missing '?'
set key bottom right
set grid
plot {', '.join(cols)}
"""))
    return detail


def confirm_section(recs):
    for transport in ("tcp", "unix"):
        base = f"pg/{transport}"

        def rate(fam, **p):
            r = find(recs, f"{base}/{fam}", **p)
            return (r["req_per_s"], r) if r and r.get("req_per_s") else (None, r)

        sec = f"pg {transport}, 15 reps"
        for size, t in ((2, 2), (4, 2), (4, 4)):
            mine, mr = rate("connpool", size=size, threads=t)
            ded, _ = rate("dedicated", threads=t)
            if mine and ded:
                add(sec, f"{t} threads, pool {size}: connpool vs dedicated connection per thread",
                    f"{fmt_rate(mine)} (p99 {fmt_us(mr['p99_us'])})", fmt_rate(ded), f"{mine / ded:.2f}", ">= 0.97",
                    verdict(mine / ded >= 0.97))
        mine, mr = rate("connpool", size=4, threads=32)
        ded, _ = rate("dedicated", threads=4)
        tb, tr = rate("textbook", size=4, threads=32)
        if mine and ded:
            ratio = mine / ded
            add(sec, "32 threads on pool 4 vs 4 dedicated (p99)",
                f"{fmt_rate(mine)} = {ratio:.2f} (p99 {fmt_us(mr['p99_us'])})",
                f"{fmt_rate(ded)}; textbook {fmt_rate(tb)} = {tb / ded:.2f} (p99 {fmt_us(tr['p99_us'])})"
                if tb else fmt_rate(ded), f"{ratio:.2f}", ">= 0.85, p99 <= 4 ms",
                verdict(ratio >= 0.85 and mr["p99_us"] <= 4000))


db_details = {}
pg = medians(load("pg.json"))
if pg:
    db_details["PostgreSQL"] = db_section("pg", pg, [1, 2, 8, 32], [2, 4], "throughput_pg")
pc = medians(load("pg_confirm.json"))
if pc:
    confirm_section(pc)
my = medians(load("mysql.json"))
if my:
    db_details["MariaDB"] = db_section("mysql", my, [1, 2, 8], [2, 4], "throughput_mysql")

# Failures outside the overhead section (reported there row by row), and failed queries.
for name, recs in (("fairness", fa), ("burst", bu), ("pg", pg), ("pg_confirm", pc), ("mysql", my)):
    for key, r in sorted((recs or {}).items()):
        if r.get("error"):
            add(name, f"{key}: failed in {r['failed_runs']} repetition(s)", r["error"], "-", "-", "no failure",
                "**ERROR**")
        elif r.get("errors", 0) > 0:
            add(name, f"{key}: {r['errors']:.0f} failed requests", "-", "-", "-", "no failure", "**ERROR**")

for png, script in plots:
    with open(os.path.join(results_dir, png.replace(".png", ".gp")), "w") as f:
        f.write(script)

# ----------------------------------------------------------------- output
machine = load("machine.json") or {}


def table(rows):
    out = ["| section | measurement | connpool | baseline (same run) | ratio | target | verdict |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        out.append("| " + " | ".join(str(x) for x in r) + " |")
    return "\n".join(out)


summary = table(rows)
print(summary)
met = sum(1 for r in rows if r[6] == "**met**")
missed = sum(1 for r in rows if r[6] == "**MISSED**")
failed = sum(1 for r in rows if r[6] == "**ERROR**")
print(f"\ntargets met: {met}, missed: {missed}, benchmarks with failures: {failed}")

detail_md = []
for db, det in db_details.items():
    if not det:
        continue
    detail_md.append(f"\n#### {db}: every configuration\n")
    detail_md.append("| transport | way | threads | requests/s | p50 | p99 | errors |")
    detail_md.append("|---|---|---|---|---|---|---|")
    for transport, way, t, v, p50, p99, errs in det:
        detail_md.append(f"| {transport} | {way} | {t} | {fmt_rate(v)} | {fmt_us(p50)} | {fmt_us(p99)} | {errs:.0f} |")

notes_path = os.path.join(bench_dir, "notes.md")
notes = open(notes_path).read() if os.path.exists(notes_path) else ""
pngs = [p for p, _ in plots]

readme = f"""# connpool benchmarks

The evidence for choosing connpool: what pooling buys over a connect per request, how close
connpool comes to a dedicated connection per thread, its own overhead against a textbook
mutex + condition-variable pool, and how it behaves under overload and bursts. Every
baseline is measured in the same run as connpool (this machine is shared and noisy), and
the table gives ratios.

Run everything (about 12 minutes on 2 vCPUs), or some parts:

```sh
bench/run.sh                     # build (Release, build/bench), start servers, run, summarize, plot
bench/run.sh overhead fairness   # parts: overhead fairness burst compile pg mysql
```

`run.sh` starts throwaway PostgreSQL 15 and MariaDB servers with the test harness's scripts
(`tests/support/pg/start-servers.sh`, `tests/support/mysql/start.sh`), writes the raw Google
Benchmark JSON to `bench/results/*.json`, prints the table below, draws the plots with
gnuplot, and rewrites this file. The programs are `connpool_bench_overhead`,
`connpool_bench_fairness`, `connpool_bench_burst`, `connpool_bench_pg`, `connpool_bench_mysql`;
any of them can be run alone with the usual Google Benchmark flags (the database ones read
the facts from the environment that the start scripts write).

## Latest results

- Date: {machine.get('date', '?')}
- Machine: {machine.get('nproc', '?')} vCPUs, {machine.get('cpu_model', '?')}, Linux {machine.get('kernel', '?')};
  load average before / after the run: {' '.join(machine.get('load_before', [])) or '?'} /
  {' '.join(machine.get('load_after', [])) or '?'} (the machine is shared: other jobs ran during the run)
- Core measured: commit {machine.get('commit', '?')}, headers sha256 {machine.get('headers_sha256', '?')}
  (hash of `include/**/*.hpp`, because the tree may be ahead of the commit)
- Google Benchmark 1.7.1 from Debian (its library is built without NDEBUG; it prints a
  DEBUG warning, which concerns its own bookkeeping outside the timed loops)
- Pinned: {('yes, taskset -c ' + machine['pinned']) if machine.get('pinned') else 'no (unpinned; client, server and the pool threads float over both vCPUs)'}
- Each figure is the median of {machine.get('repetitions', '?')} repetitions, randomly interleaved with
  the other benchmarks (and so with their baselines); database benches run
  {machine.get('db_min_time_s', '?')} s per repetition.
- ns per cycle is aggregate: wall time divided by the cycles of all threads.

{summary}

Targets met: {met}, missed: {missed}; rows with failures: {failed}.
{chr(10).join(detail_md)}

## Plots

{chr(10).join(f'![{p}](results/{p})' for p in pngs)}

{notes}
"""
# The contended shapes' section (bench/contended.sh writes it) is not this script's: carry
# it over from the README being replaced.
contended_heading = "## 0.2 contended shapes"
if os.path.exists(readme_path):
    old = open(readme_path).read()
    if contended_heading in old:
        readme = readme.rstrip("\n") + "\n\n" + old[old.index(contended_heading):]
with open(readme_path, "w") as f:
    f.write(readme)
