// Contended shapes with an in-memory connection (issue 8): acquire + release, no I/O, on
// plain threads started together for a fixed wall time, at threads/connections 1/4, 2/4,
// 4/4, 8/4, 32/4 and 32/16 (HikariCP's JMH "contended"). Contenders in the same run:
// connpool, the textbook mutex + condvar pool (LIFO), SOCI's connection_pool and Poco's
// SessionPool (over SQLite :memory: sessions, so that no I/O is involved), each when found.
// Then the zero-allocation check of the uncontended async path (the blocking one is the
// 1/4 row's allocs_per_cycle).
//
//   connpool_bench_contended [--shapes 1/4,8/4] [--pools connpool,soci] [--no-alloc]
// Environment: CONNPOOL_BENCH_WARMUP_MS (200), CONNPOOL_BENCH_RUN_MS (1000), CONNPOOL_BENCH_ROUNDS (3),
// CONNPOOL_BENCH_WORK_NS (0: busy work while holding the connection),
// CONNPOOL_BENCH_SAMPLE_EVERY (64: one cycle in 64 is timed for the histogram).
#include "contended.hpp"
#include "peers.hpp"
#include "textbook_pool.hpp"

#include <connpool.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <benchmark/benchmark.h>  // DoNotOptimize only

#include <iostream>

#if CONNPOOL_BENCH_HAVE_POCO
#include <Poco/Data/SQLite/Connector.h>
#endif

namespace {

namespace asio = boost::asio;
using mem_pool = connpool::pool<bench::mem_factory>;

bench::thread_opts opts_for(const bench::shape& s) {
    bench::thread_opts o;
    o.threads = s.threads;
    o.duration = bench::run_duration();
    o.sample_every = static_cast<std::uint64_t>(bench::env_long("CONNPOOL_BENCH_SAMPLE_EVERY", 64));
    o.allocations = &bench::thread_allocations;
    return o;
}

// What a cycle does while it holds the connection: touch it, plus optional busy work.
const std::chrono::nanoseconds work{bench::env_long("CONNPOOL_BENCH_WORK_NS", 0)};

template <class Conn>
void touch(Conn& c) {
    benchmark::DoNotOptimize(c);
    if (work.count() > 0) bench::busy_for(work);
}

std::optional<bench::shape_result> run_connpool(const bench::shape& s, bool fifo) {
    auto o = bench::mem_pool_options(static_cast<std::size_t>(s.conns));
    if (fifo) bench::set_fifo_handoff(o);
    mem_pool pool(bench::mem_factory{}, o);
    if (!bench::wait_idle(pool, static_cast<std::size_t>(s.conns))) {
        std::cerr << "contended: connpool did not fill\n";
        return std::nullopt;
    }
    auto r = bench::run_threads(opts_for(s), [&](int) {
        connpool::error_code ec;
        auto l = pool.acquire(ec);
        if (!l) return false;
        touch(l->uses);
        return true;
    });
    const auto st = pool.stats();
    r.extra["waited_fraction"] =
        std::to_string(static_cast<double>(st.waited) / static_cast<double>(std::max<std::uint64_t>(1, st.acquired)));
    return r;
}

std::optional<bench::shape_result> run_textbook(const bench::shape& s) {
    bench::textbook_pool<bench::mem_conn> pool(static_cast<std::size_t>(s.conns), [] { return bench::mem_conn{}; });
    return bench::run_threads(opts_for(s), [&](int) {
        auto l = pool.acquire();
        touch(l->uses);
        return true;
    });
}

#if CONNPOOL_BENCH_HAVE_SOCI
// Its sessions stay unopened: lease / give_back never touch them.
std::optional<bench::shape_result> run_soci(const bench::shape& s) {
    soci::connection_pool pool(static_cast<std::size_t>(s.conns));
    return bench::run_threads(opts_for(s), [&](int) {
        bench::soci_lease l(pool);
        touch(l.session());
        return true;
    });
}
#endif

#if CONNPOOL_BENCH_HAVE_POCO
std::optional<bench::shape_result> run_poco(const bench::shape& s) {
    Poco::Data::SessionPool pool("SQLite", ":memory:", s.conns, s.conns, 3600);
    {  // open every session up front, as the other pools do
        std::vector<Poco::Data::Session> all;
        for (int i = 0; i < s.conns; ++i) all.push_back(pool.get());
    }
    return bench::run_threads(opts_for(s), [&](int) {
        auto l = bench::poco_get(pool);
        if (!l) return false;
        touch(*l);
        return true;
    });
}
#endif

// ------------------------------------------------------------------ async allocations

// One coroutine on one io thread, pool of 4: the uncontended async path. Allocations are
// read on the io thread (where the coroutine, the pool's posts and the completions run)
// after a warm-up, so that the coroutine frame and the first use of Asio's recycling
// allocator are not counted.
asio::awaitable<void> async_loop(mem_pool& pool, const std::atomic<bool>& stop, bench::shape_result& r,
                                 std::uint64_t& allocs, std::uint64_t& counted, bench::done_signal& done) {
    constexpr std::uint64_t warmup = 1024;
    std::uint64_t n = 0, a0 = 0;
    while (!stop.load(std::memory_order_relaxed)) {
        if (n == warmup) a0 = bench::thread_allocations();
        const auto t0 = bench::clock::now();
        {
            auto [ec, l] = co_await pool.async_acquire(asio::as_tuple(asio::use_awaitable));
            if (!l) ++r.errors;
            else touch(l->uses);
        }
        r.latency.add(static_cast<std::uint64_t>((bench::clock::now() - t0).count()));
        ++n;
    }
    if (n > warmup) {
        allocs = bench::thread_allocations() - a0;
        counted = n - warmup;
    }
    r.cycles.push_back(n);
    done.set();
}

void run_async_alloc() {
    for (int round = 0; round < bench::rounds(); ++round) {
        bench::shape_result r;
        std::uint64_t allocs = 0, counted = 0;
        {
            bench::io_runner runner(1);
            // Housekeeping is pushed out of the run: its timer allocates on the io thread
            // (a few per tick on 0.1), and it is not the acquire path.
            auto o = bench::mem_pool_options(4);
            bench::set_if_present(o, [](auto& x) -> decltype(void(x.housekeeping_interval = std::chrono::hours(1))) {
                x.housekeeping_interval = std::chrono::hours(1);
            });
            mem_pool pool(runner.context(), bench::mem_factory{}, o);
            if (!bench::wait_idle(pool, 4)) {
                std::cerr << "contended: async pool did not fill\n";
                return;
            }
            std::atomic<bool> stop{false};
            bench::done_signal done;
            const auto t0 = bench::clock::now();
            asio::co_spawn(runner.context(), async_loop(pool, stop, r, allocs, counted, done), asio::detached);
            std::this_thread::sleep_for(bench::run_duration());
            stop.store(true);
            done.wait_and_rearm();
            r.secs = std::chrono::duration<double>(bench::clock::now() - t0).count();
        }
        r.workload = "alloc";
        r.pool = "connpool_async";
        r.threads = 1;
        r.conns = 4;
        r.round = round;
        r.extra["io_threads"] = "1";
        if (counted > 0) r.allocs_per_cycle = static_cast<double>(allocs) / static_cast<double>(counted);
        bench::print_result(r);
    }
}

}  // namespace

int main(int argc, char** argv) {
    std::string shapes = "1/4,2/4,4/4,8/4,32/4,32/16";
    std::string pools;
    bool alloc = true;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--shapes" && i + 1 < argc) shapes = argv[++i];
        else if (a == "--pools" && i + 1 < argc) pools = argv[++i];
        else if (a == "--no-alloc") alloc = false;
        else {
            std::cerr << "usage: " << argv[0] << " [--shapes 1/4,8/4] [--pools connpool,soci] [--no-alloc]\n";
            return 2;
        }
    }
    std::vector<bench::contender> cs{{"connpool", [](const bench::shape& s) { return run_connpool(s, false); }},
                                     {"textbook", run_textbook}};
    if (connpool::options probe; bench::set_fifo_handoff(probe)) {
        cs.push_back({"connpool_fifo", [](const bench::shape& s) { return run_connpool(s, true); }});
    }
#if CONNPOOL_BENCH_HAVE_SOCI
    cs.push_back({"soci", run_soci});
#endif
#if CONNPOOL_BENCH_HAVE_POCO
    Poco::Data::SQLite::Connector::registerConnector();
    cs.push_back({"poco", run_poco});
#endif
    bench::keep_only(cs, pools);
    bench::run_rounds("mem", bench::parse_shapes(shapes), cs);
    if (alloc) run_async_alloc();
    return 0;
}
