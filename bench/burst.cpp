// Burst elision (HikariCP's spike test): connects take 150 ms, min_idle 5, max 50. Once the
// 5 are open, 50 threads arrive at once and each holds a connection for 2 ms. A pool that
// opens a connection per waiter ends with about 50; one that sees that the held connections
// come back long before a connect finishes ends with about 6. Target: <= 6.
//
// Counters: open_after (connections once every connect in flight has landed),
// connects_during_burst, burst_ms (first arrival to last release), wait_max_ms.
// Baseline: the textbook pool that grows on demand, same factory delay, same burst.
// burst/connpool/reset:1 runs the same burst with reset on return and every returned
// connection dirty (a 1 ms reset each): connections being reset are coming back too, and
// must not make the pool open new ones (issue 8, defect 15).
#include "bench_support.hpp"
#include "textbook_pool.hpp"

#include <connpool.hpp>

#include <benchmark/benchmark.h>

#include <latch>

namespace {

using slow_pool = connpool::pool<bench::slow_factory>;

constexpr std::size_t burst_threads = 50;
constexpr auto connect_delay = std::chrono::milliseconds(150);
constexpr auto hold = std::chrono::milliseconds(2);

template <class Acquire>
void run_burst(benchmark::State& state, Acquire&& acquire) {
    std::latch start(burst_threads + 1);
    std::vector<std::thread> ts;
    std::vector<std::int64_t> waits(burst_threads);
    for (std::size_t i = 0; i < burst_threads; ++i) {
        ts.emplace_back([&, i] {
            start.arrive_and_wait();
            const auto t0 = bench::clock::now();
            auto l = acquire();
            waits[i] = std::chrono::duration_cast<std::chrono::microseconds>(bench::clock::now() - t0).count();
            std::this_thread::sleep_for(hold);
        });
    }
    const auto t0 = bench::clock::now();
    start.arrive_and_wait();
    for (auto& t : ts) t.join();
    state.counters["burst_ms"] = std::chrono::duration<double, std::milli>(bench::clock::now() - t0).count();
    state.counters["wait_max_ms"] = static_cast<double>(*std::max_element(waits.begin(), waits.end())) / 1e3;
}

void bm_connpool(benchmark::State& state) {
    const bool reset = state.range(0) != 0;
    for (auto _ : state) {
        std::atomic<std::uint64_t> connects{0};
        connpool::options o;
        o.min_idle = 5;
        o.max_size = burst_threads;
        o.validation = connpool::validation_mode::optimistic;
        o.reset_on_return = reset;
        bench::slow_factory f{connect_delay, &connects};
        f.dirty = reset;
        slow_pool pool(f, o);
        while (pool.stats().idle < 5) std::this_thread::sleep_for(std::chrono::milliseconds(1));
        const auto before = connects.load();
        bench::acquire_failures failures;
        run_burst(state, [&] { return failures.acquire(pool); });
        if (failures.total() != 0) state.SkipWithError(failures.describe().c_str());
        // Let every connect started during the burst land (they are never aborted), then
        // a little longer for housekeeping to act on what it sees.
        for (int i = 0; i < 200 && pool.stats().creating > 0; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        const auto st = pool.stats();
        state.counters["open_after"] = static_cast<double>(st.open);
        state.counters["connects_during_burst"] = static_cast<double>(connects.load() - before);
        state.counters["target_open"] = 6;
    }
}

void bm_growing(benchmark::State& state) {
    for (auto _ : state) {
        std::atomic<std::uint64_t> connects{0};
        bench::slow_factory f{connect_delay, &connects};
        auto make = [&] {
            connpool::error_info e;
            return *f.connect(connpool::connect_request{}, e);
        };
        bench::growing_pool<bench::mem_conn> pool(5, burst_threads, make);
        const auto before = connects.load();
        run_burst(state, [&] { return pool.acquire(); });
        state.counters["open_after"] = static_cast<double>(pool.open());
        state.counters["connects_during_burst"] = static_cast<double>(connects.load() - before);
        state.counters["target_open"] = 6;
    }
}

BENCHMARK(bm_connpool)->Name("burst/connpool")->ArgName("reset")->Arg(0)->Arg(1)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(bm_growing)->Name("burst/textbook_growing")->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
