// Pool overhead: acquire + release of an in-memory connection, no I/O, so that what is
// measured is the pool itself. connpool's blocking face and async face, and the textbook
// mutex + condition-variable pool, in the same binary and the same run.
//
// Reported per benchmark (Google Benchmark JSON):
//   real_time            aggregate ns per cycle (wall time / cycles of all threads)
//   cycles_per_s         aggregate cycles per second (Counter::kIsRate)
//   allocs_per_cycle     operator new calls per cycle, counted by alloc_counter.cpp
#include "bench_support.hpp"
#include "textbook_pool.hpp"

#include <connpool.hpp>

#include <benchmark/benchmark.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <memory>

namespace {

namespace asio = boost::asio;
using mem_pool = connpool::pool<bench::mem_factory>;
using textbook = bench::textbook_pool<bench::mem_conn>;

// Every connection opened up front and kept: the benchmark measures hand-outs, not
// connects. The in-memory factory has no ping or reset, so validation and reset cost
// nothing whatever their settings; they are set to the cheapest anyway to say so.
connpool::options mem_options(std::size_t size) {
    connpool::options o;
    o.min_idle = size;
    o.max_size = size;
    o.max_connecting = size;
    o.validation = connpool::validation_mode::optimistic;
    o.reset_on_return = false;
    o.worker_threads = 1;
    return o;
}

void wait_ready(const mem_pool& p, std::size_t size) {
    while (p.stats().idle < size) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

void report(benchmark::State& state, std::uint64_t allocations) {
    state.counters["cycles_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()),
                                                        benchmark::Counter::kIsRate);
    state.counters["allocs_per_cycle"] =
        benchmark::Counter(static_cast<double>(allocations), benchmark::Counter::kAvgIterations);
}

// Shared by the threads of one benchmark run. Thread 0 makes it before the loop and
// destroys it after: Google Benchmark's start and stop barriers order the other threads'
// use of it in between.
std::unique_ptr<mem_pool> g_pool;
std::unique_ptr<textbook> g_textbook;

void bm_connpool_blocking(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    if (state.thread_index() == 0) {
        g_pool = std::make_unique<mem_pool>(bench::mem_factory{}, mem_options(size));
        wait_ready(*g_pool, size);
    }
    const auto before = bench::thread_allocations();
    for (auto _ : state) {
        auto l = g_pool->acquire();
        benchmark::DoNotOptimize(++l->uses);
    }
    report(state, bench::thread_allocations() - before);
    if (state.thread_index() == 0) {
        state.counters["waited_fraction"] =
            benchmark::Counter(static_cast<double>(g_pool->stats().waited) /
                               static_cast<double>(std::max<std::uint64_t>(1, g_pool->stats().acquired)));
    }
}

void bm_textbook(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    if (state.thread_index() == 0) {
        g_textbook = std::make_unique<textbook>(size, [] { return bench::mem_conn{}; });
    }
    const auto before = bench::thread_allocations();
    for (auto _ : state) {
        auto l = g_textbook->acquire();
        benchmark::DoNotOptimize(++l->uses);
    }
    report(state, bench::thread_allocations() - before);
}

// Async face: `coros` coroutines on an io_context run by `io` threads, each doing
// acquire + release in a loop. One benchmark iteration is a batch of `batch` cycles in all.
constexpr std::size_t batch = 4096;

asio::awaitable<void> async_cycles(mem_pool& pool, std::size_t n, std::atomic<std::size_t>& left,
                                   bench::done_signal& done) {
    for (std::size_t i = 0; i < n; ++i) {
        auto l = co_await pool.async_acquire(asio::use_awaitable);
        benchmark::DoNotOptimize(++l->uses);
    }
    if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) done.set();
}

void bm_connpool_async(benchmark::State& state) {
    const auto io = static_cast<int>(state.range(0));
    const auto coros = static_cast<std::size_t>(state.range(1));
    const auto size = static_cast<std::size_t>(state.range(2));
    std::uint64_t main_allocs = 0;
    bench::io_runner runner(io);
    {
        mem_pool pool(runner.context(), bench::mem_factory{}, mem_options(size));
        wait_ready(pool, size);
        const std::size_t per = batch / coros;
        std::atomic<std::size_t> left{0};
        bench::done_signal done;
        for (auto _ : state) {
            const auto before = bench::thread_allocations();
            left.store(coros);
            for (std::size_t c = 0; c < coros; ++c) {
                asio::co_spawn(runner.context(), async_cycles(pool, per, left, done), asio::detached);
            }
            done.wait_and_rearm();
            main_allocs += bench::thread_allocations() - before;
        }
    }
    runner.finish();
    const auto cycles = static_cast<double>(state.iterations()) * static_cast<double>(batch / coros * coros);
    state.counters["cycles_per_s"] = benchmark::Counter(cycles, benchmark::Counter::kIsRate);
    state.counters["ns_per_cycle"] = benchmark::Counter(cycles, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    // Includes the coroutine frames and the spawns, once per coroutine per batch.
    state.counters["allocs_per_cycle"] =
        benchmark::Counter(static_cast<double>(runner.allocations() + main_allocs) / cycles);
    state.counters["spawn_allocs_per_cycle"] = benchmark::Counter(static_cast<double>(main_allocs) / cycles);
}

void register_all() {
    constexpr int thread_counts[] = {1, 2, 4, 8, 16};
    for (int t : thread_counts) {
        const int half = std::max(1, t / 2);
        std::vector<int> sizes{t};
        if (half != t) sizes.push_back(half);  // 1 thread: both sizes are 1
        for (int size : sizes) {
            benchmark::RegisterBenchmark("overhead/connpool/blocking", bm_connpool_blocking)
                ->ArgName("size")
                ->Arg(size)
                ->Threads(t)
                ->UseRealTime();
            benchmark::RegisterBenchmark("overhead/textbook/blocking", bm_textbook)
                ->ArgName("size")
                ->Arg(size)
                ->Threads(t)
                ->UseRealTime();
        }
    }
    // {io threads, coroutines, pool size}
    constexpr long async_cases[][3] = {{1, 1, 1}, {1, 2, 2}, {1, 8, 8}, {1, 8, 4}, {1, 32, 4},
                                       {2, 2, 2}, {2, 4, 4}, {2, 4, 2}, {2, 8, 8}, {2, 32, 4}};
    for (const auto& c : async_cases) {
        benchmark::RegisterBenchmark("overhead/connpool/async", bm_connpool_async)
            ->ArgNames({"io", "coros", "size"})
            ->Args({c[0], c[1], c[2]})
            ->UseRealTime();
    }
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
