#!/usr/bin/env bash
# Builds connpool's benchmarks (Release, in build/bench), starts throwaway PostgreSQL and
# MariaDB servers with the test harness's scripts, runs every bench, writes the raw Google
# Benchmark JSON to bench/results/, prints one summary table (ratios against the baselines
# measured in the same run, targets met or missed), draws the plots with gnuplot and
# rewrites bench/README.md.
#
#   bench/run.sh [PART...]      PART: overhead fairness burst compile pg mysql (default: all)
#
# Environment:
#   CONNPOOL_BENCH_REPS      repetitions of each benchmark, randomly interleaved (default 5):
#                            this machine is shared and noisy, so ratios come from medians of
#                            runs interleaved with their baselines
#   CONNPOOL_BENCH_MIN_TIME  seconds per database benchmark repetition (default 0.3)
#   CONNPOOL_BENCH_PIN       a taskset CPU list to pin the benches to (default: unpinned)
# The whole run takes about 12 minutes on 2 vCPUs.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/.." && pwd)
build=$root/build/bench
results=$here/results
reps=${CONNPOOL_BENCH_REPS:-5}
export CONNPOOL_BENCH_MIN_TIME=${CONNPOOL_BENCH_MIN_TIME:-0.3}
pin=${CONNPOOL_BENCH_PIN:-}

parts=("$@")
[[ ${#parts[@]} -eq 0 ]] && parts=(overhead fairness burst compile pg mysql)
want() { local p; for p in "${parts[@]}"; do [[ $p == "$1" ]] && return 0; done; return 1; }
log() { echo "run.sh: $*" >&2; }

mkdir -p "$results"
work=$(mktemp -d /tmp/connpool-bench.XXXXXX)
pg_env=$work/pg.env
mysql_env=$work/mysql.env
cleanup() {
    [[ -f $pg_env && -x $root/tests/support/pg/stop-servers.sh ]] && "$root/tests/support/pg/stop-servers.sh" "$pg_env" || true
    [[ -f $mysql_env && -x $root/tests/support/mysql/stop.sh ]] && "$root/tests/support/mysql/stop.sh" "$mysql_env" || true
    rm -rf "$work"
}
trap cleanup EXIT

started=$(date +%s)

# --- build ---------------------------------------------------------------------------------
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
if [[ -f $build/CMakeCache.txt ]]; then generator=(); fi  # keep the tree's generator
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DCONNPOOL_BUILD_BENCH=ON \
    -DCONNPOOL_BUILD_TESTS=OFF -DCONNPOOL_BUILD_EXAMPLES=OFF >"$work/cmake.log" 2>&1 \
    || { cat "$work/cmake.log" >&2; exit 1; }
grep "connpool" "$work/cmake.log" >&2 || true
cmake --build "$build" --target connpool_benches -j "$(nproc)" >"$work/build.log" 2>&1 \
    || { cat "$work/build.log" >&2; exit 1; }
bin=$build/bench

# --- the machine -----------------------------------------------------------------------------
cpu_model=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
# Which core was measured: the commit, and a hash of the headers (the tree may be uncommitted).
commit=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo none)
headers=$(cd "$root" && find include -name '*.hpp' | sort | xargs sha256sum | sha256sum | cut -c1-12)
python3 - "$results/machine.json" "$cpu_model" "$(nproc)" "${pin:-}" "$reps" "$CONNPOOL_BENCH_MIN_TIME" \
    "$commit" "$headers" <<'PY'
import json, sys, datetime, platform, os
path, cpu, nproc, pin, reps, min_time, commit, headers = sys.argv[1:]
load = open('/proc/loadavg').read().split()[:3]
json.dump({"cpu_model": cpu, "nproc": int(nproc), "pinned": pin or None, "repetitions": int(reps),
           "db_min_time_s": float(min_time), "kernel": platform.release(),
           "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
           "commit": commit, "headers_sha256": headers, "load_before": load}, open(path, "w"), indent=2)
PY

runner=()
[[ -n $pin ]] && runner=(taskset -c "$pin")

# Runs one bench binary into results/NAME.json; a failed bench is reported, not fatal, so
# that the other figures still come out.
run_bench() {
    local name=$1 exe=$2
    shift 2
    log "running $name"
    if ! "${runner[@]}" "$exe" --benchmark_out="$results/$name.json" --benchmark_out_format=json \
        --benchmark_repetitions="$reps" --benchmark_enable_random_interleaving=true "$@" \
        >"$work/$name.out" 2>&1; then
        log "$name failed; its output:"
        tail -n 30 "$work/$name.out" >&2
        return 0
    fi
}

want overhead && run_bench overhead "$bin/connpool_bench_overhead"
want fairness && run_bench fairness "$bin/connpool_bench_fairness"
want burst && run_bench burst "$bin/connpool_bench_burst"

# --- compile cost ----------------------------------------------------------------------------
# The same flags for each translation unit: what a user pays for including the header,
# against Asio alone; plus, for information, a TU that instantiates a pool and both faces.
if want compile; then
    log "timing compiles"
    cxx=$(sed -n 's/^CMAKE_CXX_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
    flags=(-std=c++20 -O3 -DNDEBUG -I"$root/include" -fsyntax-only)
    printf '#include <boost/asio.hpp>\nint main() { return 0; }\n' >"$work/asio_only.cpp"
    printf '#include <connpool.hpp>\nint main() { return 0; }\n' >"$work/connpool_header.cpp"
    cat >"$work/connpool_used.cpp" <<'CPP'
#include <connpool.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
struct conn { int id = 0; };
struct factory {
    using connection_type = conn;
    std::optional<conn> connect(const connpool::connect_request&, connpool::error_info&) { return conn{}; }
};
int main() {
    boost::asio::io_context ctx;
    connpool::pool<factory> pool(ctx, factory{});
    auto l = pool.acquire();
    boost::asio::co_spawn(ctx, [&]() -> boost::asio::awaitable<void> {
        auto m = co_await pool.async_acquire(boost::asio::use_awaitable);
    }, boost::asio::detached);
    ctx.run();
}
CPP
    # Full compiles (not only syntax) for the header-only TUs, as a user's build does them.
    flags=(-std=c++20 -O3 -DNDEBUG -I"$root/include" -c -o /dev/null)
    time_tu() {  # best of 3, in seconds
        local best="" t0 t1 d
        for _ in 1 2 3; do
            t0=$(date +%s.%N)
            "$cxx" "${flags[@]}" "$1" || return 1
            t1=$(date +%s.%N)
            d=$(echo "$t1 - $t0" | bc -l)
            if [[ -z $best ]] || (( $(echo "$d < $best" | bc -l) )); then best=$d; fi
        done
        echo "$best"
    }
    t_asio=$(time_tu "$work/asio_only.cpp")
    t_header=$(time_tu "$work/connpool_header.cpp")
    t_used=$(time_tu "$work/connpool_used.cpp")
    printf '{"compiler": "%s", "flags": "%s", "asio_only_s": %s, "connpool_header_s": %s, "connpool_used_s": %s}\n' \
        "$("$cxx" --version | head -n1)" "${flags[*]}" "$t_asio" "$t_header" "$t_used" >"$results/compile_cost.json"
fi

# --- PostgreSQL ------------------------------------------------------------------------------
if want pg; then
    if [[ ! -x $bin/connpool_bench_pg ]]; then
        log "connpool_bench_pg was not built (no connpool::pg): skipping PostgreSQL"
    elif [[ ! -x $root/tests/support/pg/start-servers.sh ]]; then
        log "tests/support/pg/start-servers.sh missing: skipping PostgreSQL"
    else
        log "starting PostgreSQL"
        if "$root/tests/support/pg/start-servers.sh" "$pg_env" --no-pgbouncer >"$work/pg-start.log" 2>&1; then
            (set -a; . "$pg_env"; set +a; run_bench pg "$bin/connpool_bench_pg")
            # The target comparisons again, with many short interleaved repetitions: the
            # medians of the main run's 5 still swing with the machine's other load.
            (set -a; . "$pg_env"; set +a; CONNPOOL_BENCH_MIN_TIME=0.2 reps=15 run_bench pg_confirm \
                "$bin/connpool_bench_pg" --benchmark_repetitions=15 \
                '--benchmark_filter=pg/(tcp|unix)/(dedicated/.*threads:(2|4)|connpool/size:2/.*threads:2|connpool/size:4/.*threads:(2|4|32)|textbook/size:4/.*threads:32)$')
            # Tenants and labels print tables of their own (bench/README.md, "0.2 tenants and labels").
            for plain in tenants labels; do
                [[ -x $bin/connpool_bench_$plain ]] || continue
                log "running $plain"
                (set -a; . "$pg_env"; set +a; "${runner[@]}" "$bin/connpool_bench_$plain" >"$results/$plain.txt" 2>&1) ||
                    { log "$plain failed; its output:"; tail -n 30 "$results/$plain.txt" >&2; }
            done
            "$root/tests/support/pg/stop-servers.sh" "$pg_env" || true
        else
            log "PostgreSQL did not start:"; cat "$work/pg-start.log" >&2
        fi
    fi
fi

# --- MariaDB ---------------------------------------------------------------------------------
if want mysql; then
    if [[ ! -x $bin/connpool_bench_mysql ]]; then
        log "connpool_bench_mysql was not built (no connpool::mysql): skipping MariaDB"
    elif [[ ! -x $root/tests/support/mysql/start.sh ]]; then
        log "tests/support/mysql/start.sh missing: skipping MariaDB"
    else
        log "starting MariaDB"
        if "$root/tests/support/mysql/start.sh" "$mysql_env" >"$work/mysql-start.log" 2>&1; then
            (set -a; . "$mysql_env"; set +a; run_bench mysql "$bin/connpool_bench_mysql")
            "$root/tests/support/mysql/stop.sh" "$mysql_env" || true
        else
            log "MariaDB did not start:"; cat "$work/mysql-start.log" >&2
        fi
    fi
fi

python3 - "$results/machine.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
m["load_after"] = open('/proc/loadavg').read().split()[:3]
json.dump(m, open(sys.argv[1], "w"), indent=2)
PY

# --- summary, plots, README ------------------------------------------------------------------
python3 "$here/summarize.py" "$results" "$here/README.md"
if command -v gnuplot >/dev/null; then
    for g in "$results"/*.gp; do
        [[ -f $g ]] && (cd "$results" && gnuplot "$(basename "$g")") || log "gnuplot failed on $g"
    done
else
    log "gnuplot not found: no plots"
fi
log "done in $(( $(date +%s) - started )) s; raw JSON, plots and data in $results"
