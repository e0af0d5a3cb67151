// Pool overhead: acquire + release of an in-memory connection, no I/O, so that what is
// measured is the pool itself. connpool's blocking face and async face, and the textbook
// mutex + condition-variable pool, in the same binary and the same run.
//
// Reported per benchmark (Google Benchmark JSON counters):
//   cycles_per_s         aggregate cycles per second: cycles of all threads / wall time
//   ns_per_cycle         its inverse, in seconds (Counter::kInvert): the aggregate cost
//   cpu_ns_per_cycle     CPU time of the whole process per cycle, in ns
//   allocs_per_cycle     operator new calls per cycle, counted by alloc_counter.cpp
#include "bench_support.hpp"
#include "textbook_pool.hpp"

#include <connpool.hpp>

#include <benchmark/benchmark.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <barrier>
#include <ctime>
#include <memory>

namespace {

namespace asio = boost::asio;
using mem_pool = connpool::pool<bench::mem_factory>;
using textbook = bench::textbook_pool<bench::mem_conn>;

// The blocking benchmarks run their own threads rather than Google Benchmark's: with more
// threads than CPUs, Google Benchmark averages per-thread timers that only start once each
// thread runs, which hides the time a thread waits to be scheduled. Here T persistent
// threads do `per_thread` cycles each per benchmark iteration, between two barriers, and
// the main thread reports the wall time from release to the last finish (manual time), so
// that ns per cycle is truly aggregate. CPU time is the whole process's (pool threads
// included), per cycle: the cost that does not depend on how loaded the machine is.
std::uint64_t process_cpu_ns() {
    timespec ts{};
    ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// acquire() returns a lease, empty on failure; the first failure ends the batch early and the
// benchmark reports it (a pool that lost a connection would otherwise wait out timeouts).
template <class Acquire>
void run_blocking(benchmark::State& state, int threads, std::size_t per_thread, Acquire acquire) {
    std::barrier sync(threads + 1);
    std::atomic<bool> quit{false};
    std::atomic<bool> failed{false};
    std::atomic<std::uint64_t> allocations{0};
    std::vector<std::thread> workers;
    for (int i = 0; i < threads; ++i) {
        workers.emplace_back([&] {
            const auto before = bench::thread_allocations();
            for (;;) {
                sync.arrive_and_wait();  // start of a batch
                if (quit.load(std::memory_order_relaxed)) break;
                for (std::size_t n = 0; n < per_thread && !failed.load(std::memory_order_relaxed); ++n) {
                    auto l = acquire();
                    if (!l) {
                        failed.store(true);
                        break;
                    }
                    benchmark::DoNotOptimize(++l->uses);
                }
                sync.arrive_and_wait();  // end of the batch
            }
            allocations.fetch_add(bench::thread_allocations() - before);
        });
    }
    std::uint64_t cpu = 0;
    for (auto _ : state) {
        const auto cpu0 = process_cpu_ns();
        sync.arrive_and_wait();
        const auto t0 = bench::clock::now();
        sync.arrive_and_wait();
        const auto t1 = bench::clock::now();
        cpu += process_cpu_ns() - cpu0;
        state.SetIterationTime(std::chrono::duration<double>(t1 - t0).count());
        if (failed.load()) break;
    }
    quit.store(true);
    sync.arrive_and_wait();
    for (auto& w : workers) w.join();
    const double cycles = static_cast<double>(state.iterations()) * static_cast<double>(per_thread) * threads;
    state.counters["cycles_per_s"] = benchmark::Counter(cycles, benchmark::Counter::kIsRate);
    state.counters["ns_per_cycle"] =
        benchmark::Counter(cycles, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.counters["cpu_ns_per_cycle"] = static_cast<double>(cpu) / cycles;
    // Counted on the benchmark threads only; the warm-up acquires (first use of a hint) are
    // in it, which is why it is a fraction and not an integer.
    state.counters["allocs_per_cycle"] = static_cast<double>(allocations.load()) / cycles;
}

// Cycles per benchmark iteration (all threads): at least ~10 ms of work per batch, so that
// the threads overlap (a thread that finished its share within one time slice would never
// meet the others) and the two barriers per batch cost little.
std::size_t per_thread_cycles(int threads) {
    return (std::size_t{1} << 18) / static_cast<std::size_t>(threads);
}

void bm_connpool_blocking(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    const int threads = static_cast<int>(state.range(1));
    mem_pool pool(bench::mem_factory{}, bench::mem_pool_options(size));
    bench::wait_idle(pool, size);
    bench::acquire_failures failures;
    run_blocking(state, threads, per_thread_cycles(threads), [&] { return failures.acquire(pool); });
    if (failures.total() != 0) state.SkipWithError(failures.describe().c_str());
    const auto st = pool.stats();
    state.counters["waited_fraction"] =
        static_cast<double>(st.waited) / static_cast<double>(std::max<std::uint64_t>(1, st.acquired));
}

void bm_textbook(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    const int threads = static_cast<int>(state.range(1));
    textbook pool(size, [] { return bench::mem_conn{}; });
    run_blocking(state, threads, per_thread_cycles(threads), [&] { return pool.acquire(); });
}

// Async face: `coros` coroutines on an io_context run by `io` threads, each doing
// acquire + release in a loop. One benchmark iteration is a batch of `batch` cycles in all.
constexpr std::size_t batch = 4096;

asio::awaitable<void> async_cycles(mem_pool& pool, std::size_t n, std::atomic<std::size_t>& left,
                                   std::atomic<std::uint64_t>& failures, bench::done_signal& done) {
    for (std::size_t i = 0; i < n; ++i) {
        auto [ec, l] = co_await pool.async_acquire(asio::as_tuple(asio::use_awaitable));
        if (!l) {
            failures.fetch_add(1);
            break;
        }
        benchmark::DoNotOptimize(++l->uses);
    }
    if (left.fetch_sub(1, std::memory_order_acq_rel) == 1) done.set();
}

void bm_connpool_async(benchmark::State& state) {
    const auto io = static_cast<int>(state.range(0));
    const auto coros = static_cast<std::size_t>(state.range(1));
    const auto size = static_cast<std::size_t>(state.range(2));
    std::uint64_t main_allocs = 0;
    std::uint64_t cpu = 0;
    bench::io_runner runner(io);
    {
        mem_pool pool(runner.context(), bench::mem_factory{}, bench::mem_pool_options(size));
        bench::wait_idle(pool, size);
        const std::size_t per = batch / coros;
        std::atomic<std::size_t> left{0};
        std::atomic<std::uint64_t> failures{0};
        bench::done_signal done;
        for (auto _ : state) {
            const auto cpu0 = process_cpu_ns();
            const auto before = bench::thread_allocations();
            left.store(coros);
            for (std::size_t c = 0; c < coros; ++c) {
                asio::co_spawn(runner.context(), async_cycles(pool, per, left, failures, done), asio::detached);
            }
            done.wait_and_rearm();
            main_allocs += bench::thread_allocations() - before;
            cpu += process_cpu_ns() - cpu0;
            if (failures.load() != 0) {
                state.SkipWithError(("async_acquire failed " + std::to_string(failures.load()) + " times").c_str());
                break;
            }
        }
    }
    runner.finish();
    const auto cycles = static_cast<double>(state.iterations()) * static_cast<double>(batch / coros * coros);
    state.counters["cycles_per_s"] = benchmark::Counter(cycles, benchmark::Counter::kIsRate);
    state.counters["ns_per_cycle"] = benchmark::Counter(cycles, benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
    state.counters["cpu_ns_per_cycle"] = static_cast<double>(cpu) / cycles;
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
            for (auto fn : {bm_connpool_blocking, bm_textbook}) {
                benchmark::RegisterBenchmark(fn == bm_textbook ? "overhead/textbook/blocking"
                                                               : "overhead/connpool/blocking",
                                             fn)
                    ->ArgNames({"size", "threads"})
                    ->Args({size, t})
                    ->UseManualTime()
                    ->MinTime(0.3);
            }
        }
    }
    // {io threads, coroutines, pool size}
    constexpr long async_cases[][3] = {{1, 1, 1}, {1, 8, 8}, {1, 32, 4}, {2, 2, 2}, {2, 8, 4}, {2, 32, 4}};
    for (const auto& c : async_cases) {
        benchmark::RegisterBenchmark("overhead/connpool/async", bm_connpool_async)
            ->ArgNames({"io", "coros", "size"})
            ->Args({c[0], c[1], c[2]})
            ->Iterations(60)  // batches of 4096 cycles: about 0.4 s
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
