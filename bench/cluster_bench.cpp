// Reads through connpool::pg::cluster over two streaming standbys, against reads through a
// single connpool::pg::pool on the primary, in one run: the cost of routing (acquire + release
// with no query) and the throughput of a small read query.
//
// Connection facts come from the environment that tests/support/replica/start-cluster.sh writes:
//   env=$(mktemp -u); bash tests/support/replica/start-cluster.sh $env
//   set -a; source $env; set +a; build/release/bench/connpool_bench_cluster
//   bash tests/support/replica/stop-cluster.sh $env
// On one machine all three servers share its cores, so the query numbers show overhead and
// spreading, not the capacity a second server would add.
#include <connpool/pg.hpp>
#include <connpool/pg/cluster.hpp>

#include <benchmark/benchmark.h>

#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace pg = connpool::pg;
using namespace std::chrono_literals;

std::string conninfo(int n) {
    const std::string var = "CONNPOOL_REPLICA_CONNINFO_" + std::to_string(n);
    const char* v = std::getenv(var.c_str());
    if (v == nullptr) throw std::runtime_error(var + " is not set (see the comment at the top of cluster_bench.cpp)");
    return v;
}

connpool::options pool_options() {
    connpool::options o;
    o.max_size = 8;
    o.min_idle = 8;
    o.validation = connpool::validation_mode::optimistic;
    return o;
}

// Built once, on first use, shared by every thread of every benchmark.
pg::cluster& cluster() {
    static pg::cluster c = [] {
        std::vector<pg::cluster_member> m;
        for (int n = 0; n < 3; ++n) m.push_back({"n" + std::to_string(n), conninfo(n), 1.0});
        return pg::cluster(m, connpool::cluster_options{}, pool_options());
    }();
    return c;
}

pg::pool& single() {
    static pg::pool p(pg::factory(conninfo(0)), pool_options());
    return p;
}

const std::string read_sql = "SELECT count(*) FROM generate_series(1, 200)";

void single_pool_acquire(benchmark::State& state) {
    auto& p = single();
    for (auto _ : state) {
        auto l = p.acquire();
        benchmark::DoNotOptimize(l);
    }
}

void cluster_acquire(benchmark::State& state) {
    auto& c = cluster();
    for (auto _ : state) {
        auto l = c.acquire(connpool::intent::read);
        benchmark::DoNotOptimize(l);
    }
}

void single_pool_read(benchmark::State& state) {
    auto& p = single();
    std::uint64_t errors = 0;
    for (auto _ : state) {
        auto l = p.acquire();
        if (!pg::result_ok(l->try_exec(read_sql).get())) ++errors;
    }
    state.counters["reads/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["errors"] = static_cast<double>(errors);
}

void cluster_read(benchmark::State& state) {
    auto& c = cluster();
    std::uint64_t errors = 0;
    for (auto _ : state) {
        auto l = c.acquire(connpool::intent::read);
        if (!pg::result_ok(l->try_exec(read_sql).get())) ++errors;
    }
    state.counters["reads/s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
    state.counters["errors"] = static_cast<double>(errors);
}

BENCHMARK(single_pool_acquire)->ThreadRange(1, 8)->UseRealTime();
BENCHMARK(cluster_acquire)->ThreadRange(1, 8)->UseRealTime();
BENCHMARK(single_pool_read)->ThreadRange(1, 8)->UseRealTime();
BENCHMARK(cluster_read)->ThreadRange(1, 8)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
