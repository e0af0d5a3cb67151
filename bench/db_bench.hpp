// The blocking real-database benchmarks, shared by pg_bench.cpp and mysql_bench.cpp: the
// same query three ways (a new connection per request, connpool, a dedicated connection per
// thread) plus the textbook pool, each a Google Benchmark run on T threads.
//
// Db provides:
//   using factory = ...;                              // a connpool factory
//   static bool query(typename factory::connection_type&);   // one SELECT 1, true if it worked
//
// Counters: req_per_s (aggregate, Counter::kIsRate over real time), p50_us and p99_us of
// the request latency (acquire + query + release, or connect + query + close), errors.
#ifndef CONNPOOL_BENCH_DB_BENCH_HPP
#define CONNPOOL_BENCH_DB_BENCH_HPP

#include "bench_support.hpp"
#include "textbook_pool.hpp"

#include <connpool.hpp>

#include <benchmark/benchmark.h>

#include <array>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace bench {

template <class Db>
struct db_bench {
    using factory = typename Db::factory;
    using connection = typename factory::connection_type;
    using pool_type = connpool::pool<factory>;
    using textbook_type = textbook_pool<connection>;

    // One benchmark's setup: how to make its factory, the pool size, and the pool options
    // beyond the size.
    struct config {
        std::function<factory()> make;
        std::size_t size = 4;
        bool reset_on_return = true;
    };

    static constexpr std::size_t max_threads = 64;
    static inline std::array<std::vector<std::int64_t>, max_threads> latencies;
    static inline std::unique_ptr<pool_type> pool;
    static inline std::unique_ptr<textbook_type> textbook;

    static connpool::connect_request request() { return connpool::connect_request{std::chrono::seconds(10), 0}; }

    static std::optional<connection> connect(factory& f, std::string& why) {
        connpool::error_info e;
        auto c = f.connect(request(), e);
        if (!c) why = e.message;
        return c;
    }

    static connpool::options pool_options(const config& cfg) {
        connpool::options o;
        o.min_idle = cfg.size;
        o.max_size = cfg.size;
        o.max_connecting = cfg.size;
        o.reset_on_return = cfg.reset_on_return;
        o.acquire_timeout = std::chrono::seconds(5);  // counted as an error, not a stall
        return o;
    }

    static bool wait_ready(const pool_type& p, std::size_t size) {
        const auto until = clock::now() + std::chrono::seconds(30);
        while (p.stats().idle < size) {
            if (clock::now() > until) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        return true;
    }

    static void begin_thread(benchmark::State& state) {
        auto& v = latencies[static_cast<std::size_t>(state.thread_index())];
        v.clear();
        v.reserve(1 << 18);
    }

    static void record(benchmark::State& state, clock::time_point t0) {
        latencies[static_cast<std::size_t>(state.thread_index())].push_back(
            std::chrono::duration_cast<std::chrono::nanoseconds>(clock::now() - t0).count());
    }

    // After the loop; Google Benchmark's stop barrier has ordered every thread's samples.
    static void end_thread(benchmark::State& state, std::uint64_t errors) {
        state.counters["req_per_s"] =
            benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
        state.counters["errors"] = benchmark::Counter(static_cast<double>(errors));
        if (state.thread_index() != 0) return;
        std::vector<std::int64_t> all;
        for (int t = 0; t < state.threads(); ++t) {
            auto& v = latencies[static_cast<std::size_t>(t)];
            all.insert(all.end(), v.begin(), v.end());
        }
        state.counters["p50_us"] = static_cast<double>(quantile(all, 0.50)) / 1e3;
        state.counters["p99_us"] = static_cast<double>(quantile(all, 0.99)) / 1e3;
    }

    // connect, query, close: what an application without a pool does.
    static void per_request(benchmark::State& state, const config& cfg) {
        factory f = cfg.make();
        begin_thread(state);
        std::uint64_t errors = 0;
        std::string why;
        for (auto _ : state) {
            const auto t0 = clock::now();
            {
                auto c = connect(f, why);
                if (!c || !Db::query(*c)) ++errors;
            }
            record(state, t0);
        }
        end_thread(state, errors);
    }

    // The ideal: each thread owns a connection for the whole run.
    static void dedicated(benchmark::State& state, const config& cfg) {
        factory f = cfg.make();
        std::string why;
        auto c = connect(f, why);
        if (!c) {
            state.SkipWithError(("connect failed: " + why).c_str());
        }
        begin_thread(state);
        std::uint64_t errors = 0;
        for (auto _ : state) {
            const auto t0 = clock::now();
            if (!Db::query(*c)) ++errors;
            record(state, t0);
        }
        end_thread(state, errors);
    }

    static void connpool_blocking(benchmark::State& state, const config& cfg) {
        if (state.thread_index() == 0) {
            pool = std::make_unique<pool_type>(cfg.make(), pool_options(cfg));
            if (!wait_ready(*pool, cfg.size)) {
                state.SkipWithError(("pool did not fill: " + pool->stats().last_connect_error).c_str());
            }
        }
        begin_thread(state);
        std::uint64_t errors = 0;
        for (auto _ : state) {
            const auto t0 = clock::now();
            {
                connpool::error_code ec;
                auto l = pool->acquire(ec);
                if (!l || !Db::query(*l)) ++errors;
            }
            record(state, t0);
        }
        end_thread(state, errors);
        if (state.thread_index() == 0) {
            const auto st = pool->stats();
            state.counters["created"] = static_cast<double>(st.created);
            pool.reset();
        }
    }

    static void textbook_blocking(benchmark::State& state, const config& cfg) {
        if (state.thread_index() == 0) {
            factory f = cfg.make();
            textbook = std::make_unique<textbook_type>(cfg.size, [&] {
                std::string why;
                auto c = connect(f, why);
                if (!c) throw std::runtime_error("connect failed: " + why);
                return std::move(*c);
            });
        }
        begin_thread(state);
        std::uint64_t errors = 0;
        for (auto _ : state) {
            const auto t0 = clock::now();
            {
                auto l = textbook->acquire();
                if (!Db::query(*l)) ++errors;
            }
            record(state, t0);
        }
        end_thread(state, errors);
        if (state.thread_index() == 0) textbook.reset();
    }

    // Registers name/{per_request,dedicated,connpool,textbook} for the given thread counts
    // and pool sizes (the textbook pool only at textbook_sizes x textbook_threads). Dedicated runs only where the threads are no more than the largest
    // pool size (the comparison the targets make), per_request once per thread count.
    static void register_family(const std::string& prefix, std::function<factory()> make,
                                const std::vector<int>& thread_counts, const std::vector<int>& sizes,
                                const std::vector<int>& textbook_sizes, const std::vector<int>& textbook_threads,
                                double min_time) {
        const int largest = *std::max_element(sizes.begin(), sizes.end());
        for (int t : thread_counts) {
            benchmark::RegisterBenchmark((prefix + "/per_request").c_str(), per_request, config{make, 0, true})
                ->Threads(t)
                ->UseRealTime()
                ->MinTime(min_time)
                ->Unit(benchmark::kMicrosecond);
        }
        std::vector<int> dedicated_threads;
        for (int t : thread_counts) {
            if (t <= largest) dedicated_threads.push_back(t);
        }
        if (std::find(dedicated_threads.begin(), dedicated_threads.end(), largest) == dedicated_threads.end()) {
            dedicated_threads.push_back(largest);  // the "N dedicated connections" baseline
        }
        for (int t : dedicated_threads) {
            benchmark::RegisterBenchmark((prefix + "/dedicated").c_str(), dedicated, config{make, 0, true})
                ->Threads(t)
                ->UseRealTime()
                ->MinTime(min_time)
                ->Unit(benchmark::kMicrosecond);
        }
        for (int size : sizes) {
            std::vector<int> ts = thread_counts;
            if (std::find(ts.begin(), ts.end(), size) == ts.end()) ts.push_back(size);
            std::sort(ts.begin(), ts.end());
            for (int t : ts) {
                benchmark::RegisterBenchmark((prefix + "/connpool/size:" + std::to_string(size)).c_str(),
                                             connpool_blocking, config{make, static_cast<std::size_t>(size), true})
                    ->Threads(t)
                    ->UseRealTime()
                    ->MinTime(min_time)
                    ->Unit(benchmark::kMicrosecond);
            }
            if (std::find(textbook_sizes.begin(), textbook_sizes.end(), size) == textbook_sizes.end()) continue;
            for (int t : textbook_threads) {
                benchmark::RegisterBenchmark((prefix + "/textbook/size:" + std::to_string(size)).c_str(),
                                             textbook_blocking, config{make, static_cast<std::size_t>(size), true})
                    ->Threads(t)
                    ->UseRealTime()
                    ->MinTime(min_time)
                    ->Unit(benchmark::kMicrosecond);
            }
        }
    }
};

inline int run_benchmarks(int argc, char** argv) {
    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}

}  // namespace bench

#endif  // CONNPOOL_BENCH_DB_BENCH_HPP
