// Real PostgreSQL: SELECT 1 over TCP (scram-sha-256) and over the Unix socket (also scram),
// with connpool::pg. Three ways (db_bench.hpp): a connection per request, connpool, and a
// dedicated connection per thread, plus the textbook pool; the async face (32 coroutines on
// a pool of 4, against 4 dedicated connections driven the same way); and the cost of each
// reset-on-return policy.
//
// Connection facts come from the environment that tests/support/pg/start-servers.sh writes
// (bench/run.sh sources it): CONNPOOL_PG_CONNINFO (TCP) and CONNPOOL_PG_SOCKET_CONNINFO.
#include "db_bench.hpp"

#include <connpool/pg.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <iostream>

namespace {

namespace asio = boost::asio;
namespace pg = connpool::pg;

struct pg_db {
    using factory = pg::factory;
    static bool query(pg::connection& c) {
        auto r = c.try_exec("SELECT 1");
        return pg::result_ok(r.get());
    }
};

using blocking = bench::db_bench<pg_db>;

std::function<pg::factory()> maker(std::string conninfo, pg::factory_options o = {}) {
    return [conninfo = std::move(conninfo), o] { return pg::factory(conninfo, o); };
}

// ------------------------------------------------------------------ async face

std::chrono::milliseconds async_duration() {
    return std::chrono::milliseconds(std::stol(bench::env_or("CONNPOOL_BENCH_ASYNC_MS", "1000")));
}

struct async_record {
    std::vector<std::int64_t> latencies;
    std::uint64_t errors = 0;
};

asio::awaitable<void> pool_worker(pg::pool& pool, const std::atomic<bool>& stop, async_record& rec,
                                  std::atomic<std::size_t>& left, bench::done_signal& done) {
    auto ex = co_await asio::this_coro::executor;
    while (!stop.load(std::memory_order_relaxed)) {
        const auto t0 = bench::clock::now();
        auto [aec, l] = co_await pool.async_acquire(asio::as_tuple(asio::use_awaitable));
        if (aec) {
            ++rec.errors;
        } else {
            auto [ec, r] = co_await pg::async_exec(ex, *l, std::string("SELECT 1"), asio::as_tuple(asio::use_awaitable));
            if (ec || !pg::result_ok(r.get())) ++rec.errors;
            l.release();
        }
        rec.latencies.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(bench::clock::now() - t0).count());
    }
    if (left.fetch_sub(1) == 1) done.set();
}

asio::awaitable<void> dedicated_worker(pg::connection& c, const std::atomic<bool>& stop, async_record& rec,
                                       std::atomic<std::size_t>& left, bench::done_signal& done) {
    auto ex = co_await asio::this_coro::executor;
    while (!stop.load(std::memory_order_relaxed)) {
        const auto t0 = bench::clock::now();
        auto [ec, r] = co_await pg::async_exec(ex, c, std::string("SELECT 1"), asio::as_tuple(asio::use_awaitable));
        if (ec || !pg::result_ok(r.get())) ++rec.errors;
        rec.latencies.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(bench::clock::now() - t0).count());
    }
    if (left.fetch_sub(1) == 1) done.set();
}

void report_async(benchmark::State& state, std::vector<async_record>& recs, double secs) {
    std::vector<std::int64_t> all;
    std::uint64_t errors = 0;
    for (auto& r : recs) {
        all.insert(all.end(), r.latencies.begin(), r.latencies.end());
        errors += r.errors;
    }
    state.counters["req_per_s"] = static_cast<double>(all.size()) / secs;
    state.counters["p50_us"] = static_cast<double>(bench::quantile(all, 0.50)) / 1e3;
    state.counters["p99_us"] = static_cast<double>(bench::quantile(all, 0.99)) / 1e3;
    state.counters["errors"] = static_cast<double>(errors);
}

// `coros` coroutines on an io_context run by `io` threads, for a fixed time: with a pool of
// `size` (dedicated == false), or each with its own connection (dedicated == true).
void bm_async(benchmark::State& state, std::string conninfo, bool dedicated) {
    const auto io = static_cast<int>(state.range(0));
    const auto coros = static_cast<std::size_t>(state.range(1));
    const auto size = static_cast<std::size_t>(state.range(2));
    for (auto _ : state) {
        bench::io_runner runner(io);
        std::vector<async_record> recs(coros);
        for (auto& r : recs) r.latencies.reserve(1 << 17);
        std::atomic<bool> stop{false};
        std::atomic<std::size_t> left{coros};
        bench::done_signal done;
        std::unique_ptr<pg::pool> pool;
        std::vector<pg::connection> conns;
        pg::factory f(conninfo);
        if (dedicated) {
            for (std::size_t i = 0; i < coros; ++i) {
                connpool::error_info e;
                auto c = f.connect(blocking::request(), e);
                if (!c) {
                    state.SkipWithError(("connect failed: " + e.message).c_str());
                    return;
                }
                conns.push_back(std::move(*c));
            }
        } else {
            bench::db_bench<pg_db>::config cfg{maker(conninfo), size, true};
            pool = std::make_unique<pg::pool>(runner.context(), f, blocking::pool_options(cfg));
            if (!blocking::wait_ready(*pool, size)) {
                state.SkipWithError("pool did not fill");
                return;
            }
        }
        const auto t0 = bench::clock::now();
        for (std::size_t i = 0; i < coros; ++i) {
            if (dedicated) {
                asio::co_spawn(runner.context(), dedicated_worker(conns[i], stop, recs[i], left, done), asio::detached);
            } else {
                asio::co_spawn(runner.context(), pool_worker(*pool, stop, recs[i], left, done), asio::detached);
            }
        }
        std::this_thread::sleep_for(async_duration());
        stop.store(true);
        done.wait_and_rearm();
        const double secs = std::chrono::duration<double>(bench::clock::now() - t0).count();
        pool.reset();
        runner.finish();
        report_async(state, recs, secs);
    }
}

// ------------------------------------------------------------------ registration

void register_all() {
    const std::string tcp = bench::env_or("CONNPOOL_PG_CONNINFO");
    const std::string unix_socket = bench::env_or("CONNPOOL_PG_SOCKET_CONNINFO");
    const double min_time = std::stod(bench::env_or("CONNPOOL_BENCH_MIN_TIME", "0.3"));
    if (tcp.empty() || unix_socket.empty()) {
        std::cerr << "pg_bench: CONNPOOL_PG_CONNINFO and CONNPOOL_PG_SOCKET_CONNINFO must be set "
                     "(bench/run.sh starts a server and sets them)\n";
        std::exit(2);
    }
    for (const auto& [name, conninfo] : {std::pair{std::string("tcp"), tcp}, std::pair{std::string("unix"), unix_socket}}) {
        const std::string prefix = "pg/" + name;
        blocking::register_family(prefix, maker(conninfo), {1, 2, 8, 32}, {2, 4}, {4}, {8, 32}, min_time);
        // {io threads, coroutines, pool size}
        for (long io : {1L, 2L}) {
            benchmark::RegisterBenchmark((prefix + "/async_connpool").c_str(), bm_async, conninfo, false)
                ->ArgNames({"io", "coros", "size"})
                ->Args({io, 32, 4})
                ->Iterations(1)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
            benchmark::RegisterBenchmark((prefix + "/async_dedicated").c_str(), bm_async, conninfo, true)
                ->ArgNames({"io", "coros", "size"})
                ->Args({io, 4, 4})
                ->Iterations(1)
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
        }
    }
    // Reset-on-return policies, TCP, pool of 4: none (reset_on_return = false), the default
    // (rollback only when the connection is not idle: no round trip for a clean return), and
    // DISCARD ALL on every return.
    struct policy {
        const char* name;
        pg::reset_policy reset;
        bool on;
    };
    for (const policy& p : {policy{"none", pg::reset_policy::rollback, false},
                            policy{"default", pg::reset_policy::rollback, true},
                            policy{"discard_all", pg::reset_policy::discard_all, true}}) {
        pg::factory_options fo;
        fo.reset = p.reset;
        for (int t : {2, 8}) {
            benchmark::RegisterBenchmark((std::string("pg/tcp/reset:") + p.name + "/size:4").c_str(),
                                         blocking::connpool_blocking, blocking::config{maker(tcp, fo), 4, p.on})
                ->Threads(t)
                ->UseRealTime()
                ->MinTime(min_time)
                ->Unit(benchmark::kMicrosecond);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    return bench::run_benchmarks(argc, argv);
}
