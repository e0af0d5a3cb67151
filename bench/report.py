#!/usr/bin/env python3
"""connpool's one benchmark report. Reads what bench/run.sh wrote into a results directory
and prints Markdown: the Google Benchmark suite (overhead, fairness, burst, compile cost,
PostgreSQL, MariaDB: ratios against the baselines measured in the same run, each target met
or missed, every database configuration), then the contended shapes (each issue-8 target,
the figure measured, pass or miss, and every contender's figures). It also writes gnuplot
data and scripts for the plots into the results directory. docs/benchmarks.md quotes the
tables by hand, with the prose that explains them.

usage: report.py RESULTS_DIR                 the whole report of one run (RESULTS_DIR/report.md too)
       report.py --contended [LABEL=]DIR...  contended shapes only, several runs side by side
                                             (e.g. 0.1=old/contended 0.2=build/bench/results/contended)
"""
import json
import os
import re
import statistics
import sys

PEERS = ("textbook", "soci", "poco")


# ================================================================== Google Benchmark suite

def summarize(results_dir):
    """The Google Benchmark part of the report, as Markdown; writes the plots' data and scripts."""
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
    met = sum(1 for r in rows if r[6] == "**met**")
    missed = sum(1 for r in rows if r[6] == "**MISSED**")
    failed = sum(1 for r in rows if r[6] == "**ERROR**")

    detail_md = []
    for db, det in db_details.items():
        if not det:
            continue
        detail_md.append(f"\n#### {db}: every configuration\n")
        detail_md.append("| transport | way | threads | requests/s | p50 | p99 | errors |")
        detail_md.append("|---|---|---|---|---|---|---|")
        for transport, way, t, v, p50, p99, errs in det:
            detail_md.append(f"| {transport} | {way} | {t} | {fmt_rate(v)} | {fmt_us(p50)} | {fmt_us(p99)} | {errs:.0f} |")


    machine = load("machine.json") or {}
    pngs = [p for p, _ in plots]
    out = [
        "## Google Benchmark suite",
        "",
        f"- Date: {machine.get('date', '?')}; commit {machine.get('commit', '?')}, headers sha256 "
        f"{machine.get('headers_sha256', '?')} (the tree may be ahead of the commit)",
        f"- Machine: {machine.get('nproc', '?')} vCPUs, {machine.get('cpu_model', '?')}, Linux {machine.get('kernel', '?')}; "
        f"load average before / after: {' '.join(machine.get('load_before', [])) or '?'} / "
        f"{' '.join(machine.get('load_after', [])) or '?'}",
        f"- Pinned: {('taskset -c ' + machine['pinned']) if machine.get('pinned') else 'no'}; "
        f"each figure the median of {machine.get('repetitions', '?')} interleaved repetitions; "
        f"database benches {machine.get('db_min_time_s', '?')} s per repetition",
        "",
        summary,
        "",
        f"Targets met: {met}, missed: {missed}; rows with failures: {failed}.",
    ] + detail_md + [""] + [f"Plot: {p}" for p in pngs]
    return "\n".join(out) + "\n"


# ================================================================== contended shapes
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
        # "LABEL=DIR" names the column (e.g. "0.1=old-run/contended").
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


def contended_report(dirs):
    """The contended shapes' part of the report, as Markdown: the target table, then every
    contender's figures, for one run or several side by side."""
    runs = [Run(d) for d in dirs]
    parts = ["## Contended shapes", "", "### Targets", "", target_table(runs), ""]
    for r in runs:
        for c in r.crashes:
            parts.append(f"- {label(r)}: {c['pool']} {c.get('what', '')}: {failure(c)}")
    parts += ["", "### Figures", ""] + [details(r) for r in runs]
    return "\n".join(parts).rstrip("\n") + "\n"


def main(argv):
    if not argv:
        sys.exit(__doc__)
    if argv[0] == "--contended":
        if len(argv) < 2:
            sys.exit(__doc__)
        print(contended_report(argv[1:]))
        return
    results_dir = argv[0]
    report = "# connpool benchmark report\n\n" + summarize(results_dir)
    contended = os.path.join(results_dir, "contended")
    if os.path.isdir(contended):
        report += "\n" + contended_report([contended])
    with open(os.path.join(results_dir, "report.md"), "w") as f:
        f.write(report)
    print(report)


if __name__ == "__main__":
    main(sys.argv[1:])
