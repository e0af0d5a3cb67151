#!/usr/bin/env python3
"""Compares connpool-sim with a real run (bench/loadgen.sh): wait p50 and p99 per pool size.

A percentile matches when the simulated value is within 25 % of the real one, or both are
under 0.1 ms (an acquire served at once takes a few microseconds for real and 0 simulated;
a relative error of two near-zero numbers says nothing).

    loadgen_compare.py RUNS.jsonl OUT.json RATE HOLD DURATION THREADS
"""
import json
import sys

runs_path, out_path, rate, hold, duration, threads = sys.argv[1:7]
rows = [json.loads(line) for line in open(runs_path) if line.strip()]


def match(sim, real):
    if sim < 0.1 and real < 0.1:
        return True, 0.0
    err = (sim - real) / real if real > 0 else float("inf")
    return abs(err) <= 0.25, err


out = {"rate": float(rate), "hold": hold, "duration": duration, "threads": int(threads), "rows": []}
print(f"workload: {rate}/s Poisson, hold {hold}, {threads} threads, {duration} per size")
print()
print("sim: the workload model alone; sim+wake: plus the wake-up latency the real run measured")
print()
print("| max_size | real p50 | sim p50 | sim+wake p50 | real p99 | sim p99 | sim+wake p99 | within 25 %: sim, sim+wake |")
print("|---:|---:|---:|---:|---:|---:|---:|:---:|")
all_ok = True
for r in rows:
    real, sim, woke = r["real"]["wait_ms"], r["sim"]["wait_ms"], r["sim_wake"]["wait_ms"]
    res = {"max_size": r["max_size"], "real": r["real"], "sim": r["sim"], "sim_wake": r["sim_wake"]}
    for name, s in (("sim", sim), ("sim_wake", woke)):
        for q in ("p50", "p99"):
            ok, err = match(s[q], real[q])
            res[f"{name}_{q}_ok"], res[f"{name}_{q}_error"] = ok, err
    ok = res["sim_p50_ok"] and res["sim_p99_ok"]
    ok_wake = res["sim_wake_p50_ok"] and res["sim_wake_p99_ok"]
    all_ok &= ok
    out["rows"].append(res)
    print(f"| {r['max_size']} | {real['p50']:.3f} | {sim['p50']:.3f} | {woke['p50']:.3f} | {real['p99']:.2f} "
          f"| {sim['p99']:.2f} ({res['sim_p99_error'] * 100:+.0f} %) | {woke['p99']:.2f} ({res['sim_wake_p99_error'] * 100:+.0f} %) "
          f"| {'yes' if ok else 'no'}, {'yes' if ok_wake else 'no'} |")
out["all_within_25_percent"] = all_ok
json.dump(out, open(out_path, "w"), indent=1)
print()
print("times in ms; the simulator (workload model alone) within 25 % at every size:", "yes" if all_ok else "no")
