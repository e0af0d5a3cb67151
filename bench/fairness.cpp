// Fairness under overload: 32 threads share a pool of 4, each holding its connection for a
// fixed time of busy work, for a fixed duration. Reports the acquire wait p50 / p99 / max
// and the acquires per thread (min, max, min / mean): a starved thread shows as a low min.
// The textbook mutex + condition-variable pool runs the same load in the same binary.
//
// One benchmark iteration is the whole run; its counters are the figures:
//   acquires_per_s, wait_p50_us, wait_p90_us, wait_p99_us, wait_p999_us, wait_max_us,
//   per_thread_min, per_thread_max, min_over_mean (1 = perfectly even; a starved thread
//   drives it towards 0).
#include "bench_support.hpp"
#include "textbook_pool.hpp"

#include <connpool.hpp>

#include <benchmark/benchmark.h>

#include <latch>

namespace {

using mem_pool = connpool::pool<bench::mem_factory>;
using textbook = bench::textbook_pool<bench::mem_conn>;

constexpr std::size_t threads = 32;
constexpr std::size_t pool_size = 4;

std::chrono::microseconds hold() {
    return std::chrono::microseconds(std::stol(bench::env_or("CONNPOOL_BENCH_HOLD_US", "50")));
}
std::chrono::milliseconds duration() {
    return std::chrono::milliseconds(std::stol(bench::env_or("CONNPOOL_BENCH_FAIRNESS_MS", "2000")));
}

struct thread_record {
    std::vector<std::int64_t> waits_ns;
    std::uint64_t acquires = 0;
};

// Runs the load with acquire() returning something that releases when destroyed.
template <class Acquire>
void run_load(benchmark::State& state, Acquire&& acquire) {
    const auto h = hold();
    const auto d = duration();
    for (auto _ : state) {
        std::vector<thread_record> rec(threads);
        for (auto& r : rec) r.waits_ns.reserve(1 << 16);
        std::atomic<bool> stop{false};
        std::latch start(threads + 1);
        std::vector<std::thread> ts;
        for (std::size_t i = 0; i < threads; ++i) {
            ts.emplace_back([&, i] {
                auto& r = rec[i];
                start.arrive_and_wait();
                while (!stop.load(std::memory_order_relaxed)) {
                    const auto t0 = bench::clock::now();
                    auto l = acquire();
                    const auto t1 = bench::clock::now();
                    if (!l) break;  // counted by the acquire function; the figures would be wrong
                    r.waits_ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
                    ++r.acquires;
                    ++l->uses;
                    bench::busy_for(h);
                }
            });
        }
        start.arrive_and_wait();
        const auto began = bench::clock::now();
        std::this_thread::sleep_for(d);
        stop.store(true);
        for (auto& t : ts) t.join();
        const double secs = std::chrono::duration<double>(bench::clock::now() - began).count();

        std::vector<std::int64_t> all;
        std::uint64_t total = 0, lo = ~std::uint64_t{0}, hi = 0;
        for (auto& r : rec) {
            all.insert(all.end(), r.waits_ns.begin(), r.waits_ns.end());
            total += r.acquires;
            lo = std::min(lo, r.acquires);
            hi = std::max(hi, r.acquires);
        }
        const double mean = static_cast<double>(total) / threads;
        auto& c = state.counters;
        c["acquires_per_s"] = static_cast<double>(total) / secs;
        c["wait_p50_us"] = static_cast<double>(bench::quantile(all, 0.50)) / 1e3;
        c["wait_p90_us"] = static_cast<double>(bench::quantile(all, 0.90)) / 1e3;
        c["wait_p99_us"] = static_cast<double>(bench::quantile(all, 0.99)) / 1e3;
        c["wait_p999_us"] = static_cast<double>(bench::quantile(all, 0.999)) / 1e3;
        c["wait_max_us"] = static_cast<double>(*std::max_element(all.begin(), all.end())) / 1e3;
        c["per_thread_min"] = static_cast<double>(lo);
        c["per_thread_max"] = static_cast<double>(hi);
        c["min_over_mean"] = static_cast<double>(lo) / mean;
        c["hold_us"] = static_cast<double>(h.count());
        // The ceiling: 4 connections each busy for hold, on as many CPUs as there are.
        const double cpus = std::min<double>(pool_size, std::thread::hardware_concurrency());
        c["ceiling_per_s"] = cpus * 1e6 / static_cast<double>(h.count());
    }
}

void bm_connpool(benchmark::State& state) {
    connpool::options o;
    o.min_idle = pool_size;
    o.max_size = pool_size;
    o.validation = connpool::validation_mode::optimistic;
    o.reset_on_return = false;
    o.acquire_timeout = std::chrono::seconds(5);
    mem_pool pool(bench::mem_factory{}, o);
    while (pool.stats().idle < pool_size) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    bench::acquire_failures failures;
    run_load(state, [&] { return failures.acquire(pool); });
    if (failures.total() != 0) state.SkipWithError(failures.describe().c_str());
    const auto st = pool.stats();
    state.counters["pool_wait_p99_us"] = static_cast<double>(st.wait_p99.count());
}

void bm_textbook(benchmark::State& state) {
    textbook pool(pool_size, [] { return bench::mem_conn{}; });
    run_load(state, [&] { return pool.acquire(); });
}

BENCHMARK(bm_connpool)->Name("fairness/connpool/threads:32/size:4")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bm_textbook)->Name("fairness/textbook/threads:32/size:4")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
