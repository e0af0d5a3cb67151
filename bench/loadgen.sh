#!/usr/bin/env bash
# Validates connpool-sim against a real run: starts a throwaway PostgreSQL (the test
# harness's start-servers.sh), runs connpool_loadgen at three pool sizes with one workload
# (Poisson arrivals, exponential holds, SELECT 1 plus a client-side sleep while the lease
# is held), runs connpool-sim with the same model, and compares the wait p50 and p99.
#
#   bench/loadgen.sh [BUILD_DIR]     (default build/sim; builds connpool_loadgen and connpool-sim)
#
# Environment: LOADGEN_RATE (80), LOADGEN_HOLD (exp:50ms), LOADGEN_SIZES ("5 6 8"),
# LOADGEN_DURATION (120s), LOADGEN_SIM_DURATION (20m), LOADGEN_THREADS (32). Writes
# docs/sim/validation.json. 4 connections busy on average: sizes 5, 6, 8 run at 80, 67 and
# 50 % utilization. Holds of tens of milliseconds keep the scheduler's stalls on a shared
# machine (a few ms, now and then tens) small against the waits being measured.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=${1:-$root/build/sim}
rate=${LOADGEN_RATE:-80}
hold=${LOADGEN_HOLD:-exp:50ms}
sizes=${LOADGEN_SIZES:-5 6 8}
duration=${LOADGEN_DURATION:-120s}
sim_duration=${LOADGEN_SIM_DURATION:-20m}  # the model's percentiles without sampling noise
threads=${LOADGEN_THREADS:-32}
work=$(mktemp -d /tmp/connpool-loadgen.XXXXXX)
pg_env=$work/pg.env
cleanup() {
    [[ -f $pg_env ]] && "$root/tests/support/pg/stop-servers.sh" "$pg_env" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

cmake --build "$build" --target connpool_loadgen connpool-sim -j 2 >"$work/build.log" 2>&1 || { cat "$work/build.log" >&2; exit 1; }
loadgen=$(find "$build" -name connpool_loadgen -type f -perm -u+x | head -n1)
sim=$(find "$build" -name connpool-sim -type f -perm -u+x | head -n1)
"$root/tests/support/pg/start-servers.sh" "$pg_env" --no-pgbouncer >"$work/pg-start.log" 2>&1 || { cat "$work/pg-start.log" >&2; exit 1; }
set -a; . "$pg_env"; set +a

out=$work/runs.jsonl
for n in $sizes; do
    common=(--rate "$rate" --hold "$hold" --max-size "$n" --threads "$threads" --duration "$duration" --warmup 5s --seed "$n")
    real=$("$loadgen" "${common[@]}")
    echo "loadgen.sh: real max_size $n: $real" >&2
    # The simulator gets the connect time the real pool measured.
    connect_ms=$(python3 -c "import json,sys; print(max(0.1, json.loads(sys.argv[1])['create_ms_mean']))" "$real")
    # ... and, in a second run, this machine's wake-up latency as the real run measured it
    # (how late each hold's sleep woke), applied to every wake of a simulated thread.
    python3 -c "import json,sys; json.dump(json.loads(sys.argv[1])['wake'], open(sys.argv[2], 'w'))" "$real" "$work/wake$n.json"
    simrun=(--rate "$rate" --hold "$hold" --max-size "$n" --threads "$threads" --duration "$sim_duration" --warmup 5s --seed "$n")
    plain=$("$sim" "${simrun[@]}" --min-idle "$n" --connect-time "fixed:${connect_ms}ms" --quiet --json -)
    woken=$("$sim" "${simrun[@]}" --min-idle "$n" --connect-time "fixed:${connect_ms}ms" --wake-latency "hist:$work/wake$n.json" \
        --quiet --json -)
    python3 -c "
import json, sys
r = json.loads(sys.argv[1]); p = json.loads(sys.argv[2])['run']; w = json.loads(sys.argv[3])['run']
pick = lambda s: {k: s[k] for k in ('wait_ms', 'mean_busy', 'served', 'timeouts')}
r.pop('wake')
print(json.dumps({'max_size': r['max_size'], 'real': r, 'sim': pick(p), 'sim_wake': pick(w)}))
" "$real" "$plain" "$woken" >>"$out"
done
mkdir -p "$root/docs/sim"
python3 "$here/loadgen_compare.py" "$out" "$root/docs/sim/validation.json" "$rate" "$hold" "$duration" "$threads"
