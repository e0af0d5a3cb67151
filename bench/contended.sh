#!/usr/bin/env bash
# The contended shapes of issue 8, end to end: builds the benches in Release against one
# commit's core, starts a throwaway PostgreSQL, runs the in-memory shapes, the SELECT 1
# shapes (unpinned, then 1 thread with client and server pinned to one CPU), the async
# shape and the bursts, and prints ONE table: each issue-8 target, the measured figure,
# pass or miss.
#
#   bench/contended.sh [COMMIT]       COMMIT: the core to measure (default HEAD)
#   bench/contended.sh --report DIR   only print the table of an earlier run's results
#
# The core is taken from the commit, not from the work tree: this tree is shared, and a
# core being rebuilt in it would be measured half-done. The commit's tree is exported to
# build/bench/src-HASH with this tree's bench/ copied over it, and built in build/bench/HASH
# (Release, no global flags changed). Raw results: bench/results/contended/HASH/*.jsonl.
#
# Environment: CONNPOOL_BENCH_RUN_MS (2000 ms per run), CONNPOOL_BENCH_ROUNDS (3 rounds,
# contenders interleaved; the table takes each figure's median over the rounds),
# CONNPOOL_BENCH_PIN_CPU (0: the CPU of the pinned 1-thread run).
# About 7 minutes on 2 vCPUs with the defaults.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
log() { echo "contended.sh: $*" >&2; }

if [[ ${1:-} == --report ]]; then
    exec python3 "$here/contended_report.py" "${2:?usage: contended.sh --report DIR}"
fi

commit=$(git -C "$root" rev-parse --short "${1:-HEAD}")
src=$root/build/bench/src-$commit
build=$root/build/bench/$commit
out=$here/results/contended/$commit
pin_cpu=${CONNPOOL_BENCH_PIN_CPU:-0}
all_cpus=0-$(( $(nproc) - 1 ))

work=$(mktemp -d /tmp/connpool-contended.XXXXXX)
pg_env=$work/pg.env
postmaster=""
cleanup() {
    [[ -n $postmaster ]] && pin_server "$all_cpus" || true
    [[ -f $pg_env ]] && "$root/tests/support/pg/stop-servers.sh" "$pg_env" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

# --- the core's tree, with this tree's benches -----------------------------------------------
# Synced by content (rsync --checksum), so that a rerun rebuilds only what changed.
mkdir -p "$src" "$out" "$work/tree"
git -C "$root" archive "$commit" | tar -x -C "$work/tree"
rm -rf "$work/tree/bench"
rsync -a --exclude results "$here/" "$work/tree/bench/"
rsync -a --checksum --delete "$work/tree/" "$src/"
log "core $commit ($(git -C "$root" log -1 --format=%s "$commit" | cut -c1-70))"

cmake -S "$src" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCONNPOOL_BUILD_BENCH=ON \
    -DCONNPOOL_BUILD_TESTS=OFF -DCONNPOOL_BUILD_EXAMPLES=OFF >"$out/cmake.log" 2>&1 \
    || { tail -n 30 "$out/cmake.log" >&2; exit 1; }
grep "connpool bench" "$out/cmake.log" >&2 || true
targets=(connpool_bench_contended connpool_bench_contended_pg connpool_bench_burst)
if ! cmake --build "$build" --target "${targets[@]}" -j 2 >"$out/build.log" 2>&1; then
    log "build failed against core $commit (full log: $out/build.log):"
    grep -m 20 -E "error|FAILED" "$out/build.log" >&2 || tail -n 30 "$out/build.log" >&2
    exit 1
fi
bin=$build/bench

python3 - "$out/machine.json" "$commit" "$(git -C "$root" rev-parse --short "$commit:include")" <<'PY'
import json, sys, datetime
path, commit = sys.argv[1:3]
json.dump({"commit": commit, "include_tree": sys.argv[3], "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
           "load_before": open('/proc/loadavg').read().split()[:3]}, open(path, "w"), indent=2)
PY

# Runs one bench, appending to out/NAME.jsonl; a crash is recorded with its exit status
# and what ran (the figures printed before it are kept).
run() {
    local name=$1 what=$2
    shift 2
    log "running $name $what"
    local rc=0
    "$@" >>"$out/$name.jsonl" 2>>"$out/$name.err" || rc=$?
    if (( rc != 0 )); then
        log "$name $what exited with status $rc; its stderr:"
        tail -n 5 "$out/$name.err" >&2
        echo "{\"workload\":\"crash\",\"pool\":\"$name\",\"what\":\"$what\",\"status\":$rc}" >>"$out/$name.jsonl"
    fi
}
rounds=${CONNPOOL_BENCH_ROUNDS:-3}
# One process per round (and, in memory, per shape): a core that crashes loses one run.
per_round() {
    local name=$1 r
    shift
    for (( r = 0; r < rounds; ++r )); do
        CONNPOOL_BENCH_ROUNDS=1 CONNPOOL_BENCH_FIRST_ROUND=$r run "$name" "round $r${shape:+ shape $shape}" "$@"
    done
}
rm -f "$out"/*.jsonl "$out"/*.err

# PostgreSQL's postmaster and every backend (backends forked later inherit the mask).
pin_server() {
    local p
    for p in $postmaster $(pgrep -P "$postmaster" || true); do
        taskset -a -cp "$1" "$p" >/dev/null 2>&1 || true
    done
}

for shape in 1/4 2/4 4/4 8/4 32/4 32/16; do
    per_round mem "$bin/connpool_bench_contended" --shapes "$shape" --no-alloc
done
shape=""
run mem "async allocations" "$bin/connpool_bench_contended" --shapes ""
run burst "" "$bin/connpool_bench_burst" --benchmark_format=json

log "starting PostgreSQL"
if "$root/tests/support/pg/start-servers.sh" "$pg_env" --no-pgbouncer >"$work/pg-start.log" 2>&1; then
    set -a; . "$pg_env"; set +a
    postmaster=$(head -n1 "$CONNPOOL_PG_STATE_DIR/data/postmaster.pid")
    per_round pg "$bin/connpool_bench_contended_pg"
    # 1 thread, client and server on one CPU: an unpinned single thread mostly measures
    # vCPU wake-ups (an idle vCPU here halts at once).
    pin_server "$pin_cpu"
    per_round pg_pinned taskset -c "$pin_cpu" "$bin/connpool_bench_contended_pg" --shapes 1/4 --workload pg_pinned --no-async
    pin_server "$all_cpus"
else
    log "PostgreSQL did not start:"; tail -n 20 "$work/pg-start.log" >&2
fi

python3 - "$out/machine.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["load_after"] = open('/proc/loadavg').read().split()[:3]
json.dump(m, open(sys.argv[1], "w"), indent=2)
PY

python3 "$here/contended_report.py" "$out"
