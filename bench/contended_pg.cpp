// Contended shapes on PostgreSQL (issue 8): SELECT 1 over TCP, a pool of 4, at 2, 4, 8 and
// 32 plain threads started together for a fixed wall time, against dedicated connections
// (each of min(threads, 4) threads owns one: the ceiling a pool of 4 can approach). Pools
// in the same run: connpool, the textbook pool (LIFO), SOCI's connection_pool, Poco's
// SessionPool. Every pool's connection runs the same libpq call (PQexec "SELECT 1" on its
// native PGconn), so the figures compare pools, not SQL layers. Then the async shape: 32
// coroutines over two io threads with async_acquire + pg::async_exec on a pool of 4, and
// 4 coroutines with dedicated connections on the same two io threads.
//
//   connpool_bench_contended_pg [--shapes 2/4,8/4] [--workload NAME] [--pools LIST] [--no-async]
// bench/run.sh (part contended) runs it once unpinned and once with --shapes 1/4 --workload pg_pinned,
// client and server pinned to one CPU. Reads CONNPOOL_PG_CONNINFO (start-servers.sh).
#include "contended.hpp"
#include "peers.hpp"
#include "textbook_pool.hpp"

#include <connpool/pg.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <libpq-fe.h>

#include <iostream>
#include <memory>

#if CONNPOOL_BENCH_HAVE_SOCI
#include <soci/postgresql/soci-postgresql.h>
#endif
#if CONNPOOL_BENCH_HAVE_POCO
#include <Poco/Data/PostgreSQL/Connector.h>
#include <Poco/Data/PostgreSQL/SessionImpl.h>
#endif

namespace {

namespace asio = boost::asio;
namespace pg = connpool::pg;

std::string conninfo;

bool select1(PGconn* c) {
    PGresult* r = PQexec(c, "SELECT 1");
    const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    PQclear(r);
    return ok;
}

bench::thread_opts opts_for(const bench::shape& s) {
    bench::thread_opts o;
    o.threads = s.threads;
    o.duration = bench::run_duration();
    o.sample_every = 1;  // a cycle is tens of µs: timing each costs under 0.5 %
    return o;
}

// The pool as an application configures it: the defaults (validation of connections idle
// over 1 s, reset on return only when a transaction is left open), sized 4 and opened
// up front.
connpool::options pg_options(std::size_t size) { return bench::fixed_size_options(size); }

std::optional<std::vector<pg::connection>> open_connections(int n) {
    pg::factory f(conninfo);
    std::vector<pg::connection> out;
    for (int i = 0; i < n; ++i) {
        connpool::error_info e;
        auto c = f.connect(connpool::connect_request{std::chrono::seconds(10), 0}, e);
        if (!c) {
            std::cerr << "contended_pg: connect failed: " << e.message << "\n";
            return std::nullopt;
        }
        out.push_back(std::move(*c));
    }
    return out;
}

std::optional<bench::shape_result> run_dedicated(const bench::shape& s) {
    if (s.threads > s.conns) return std::nullopt;
    auto conns = open_connections(s.threads);
    if (!conns) return std::nullopt;
    return bench::run_threads(opts_for(s), [&](int i) {
        return select1((*conns)[static_cast<std::size_t>(i)].native_handle());
    });
}

// fifo: strict FIFO handoff; bound_us > 0: the barging handoff with that starvation bound.
std::optional<bench::shape_result> run_connpool(const bench::shape& s, bool fifo, long bound_us = 0) {
    auto o = pg_options(static_cast<std::size_t>(s.conns));
    if (fifo) bench::set_fifo_handoff(o);
    if (bound_us > 0) bench::set_starvation_bound(o, std::chrono::microseconds(bound_us));
    pg::pool pool(pg::factory(conninfo), o);
    if (!bench::wait_idle(pool, static_cast<std::size_t>(s.conns))) {
        std::cerr << "contended_pg: connpool did not fill: " << pool.stats().last_connect_error << "\n";
        return std::nullopt;
    }
    auto r = bench::run_threads(opts_for(s), [&](int) {
        connpool::error_code ec;
        auto l = pool.acquire(ec);
        return l && select1(l->native_handle());
    });
    const auto st = pool.stats();
    r.extra["created"] = std::to_string(st.created);
    return r;
}

std::optional<bench::shape_result> run_textbook(const bench::shape& s) {
    auto conns = open_connections(s.conns);
    if (!conns) return std::nullopt;
    std::size_t next = 0;
    bench::textbook_pool<pg::connection> pool(static_cast<std::size_t>(s.conns),
                                              [&] { return std::move((*conns)[next++]); });
    return bench::run_threads(opts_for(s), [&](int) {
        auto l = pool.acquire();
        return select1(l->native_handle());
    });
}

#if CONNPOOL_BENCH_HAVE_SOCI
std::optional<bench::shape_result> run_soci(const bench::shape& s) {
    soci::connection_pool pool(static_cast<std::size_t>(s.conns));
    try {
        for (int i = 0; i < s.conns; ++i) pool.at(static_cast<std::size_t>(i)).open(soci::postgresql, conninfo);
    } catch (const std::exception& e) {
        std::cerr << "contended_pg: soci open failed: " << e.what() << "\n";
        return std::nullopt;
    }
    return bench::run_threads(opts_for(s), [&](int) {
        bench::soci_lease l(pool);
        return select1(static_cast<soci::postgresql_session_backend*>(l.session().get_backend())->conn_);
    });
}
#endif

#if CONNPOOL_BENCH_HAVE_POCO
std::optional<bench::shape_result> run_poco(const bench::shape& s) {
    try {
        Poco::Data::SessionPool pool("PostgreSQL", conninfo, s.conns, s.conns, 3600);
        {  // open every session up front, as the other pools do
            std::vector<Poco::Data::Session> all;
            for (int i = 0; i < s.conns; ++i) all.push_back(pool.get());
        }
        return bench::run_threads(opts_for(s), [&](int) {
            auto l = bench::poco_get(pool);
            if (!l) return false;
            auto* impl = static_cast<Poco::Data::PostgreSQL::SessionImpl*>(bench::poco_pooled_peek::inner(*l));
            return select1(impl->handle());
        });
    } catch (const std::exception& e) {
        std::cerr << "contended_pg: poco failed: " << e.what() << "\n";
        return std::nullopt;
    }
}
#endif

// ------------------------------------------------------------------ async shape

struct coro_record {
    std::uint64_t cycles = 0;
    std::uint64_t errors = 0;
    bench::histogram latency;
};

// One coroutine's loop: with a pool (acquire, query, release) or with its own connection.
asio::awaitable<void> coro_loop(pg::pool* pool, pg::connection* own, const std::atomic<bool>& stop, coro_record& rec,
                                std::atomic<int>& left, bench::done_signal& done) {
    auto ex = co_await asio::this_coro::executor;
    while (!stop.load(std::memory_order_relaxed)) {
        const auto t0 = bench::clock::now();
        bool ok = false;
        if (pool != nullptr) {
            auto [aec, l] = co_await pool->async_acquire(asio::as_tuple(asio::use_awaitable));
            if (l) {
                auto [ec, r] = co_await pg::async_exec(ex, *l, std::string("SELECT 1"), asio::as_tuple(asio::use_awaitable));
                ok = !ec && pg::result_ok(r.get());
            }
        } else {
            auto [ec, r] = co_await pg::async_exec(ex, *own, std::string("SELECT 1"), asio::as_tuple(asio::use_awaitable));
            ok = !ec && pg::result_ok(r.get());
        }
        rec.latency.add(static_cast<std::uint64_t>((bench::clock::now() - t0).count()));
        ++rec.cycles;
        rec.errors += ok ? 0 : 1;
    }
    if (left.fetch_sub(1) == 1) done.set();
}

// `coros` coroutines on CONNPOOL_BENCH_IO_THREADS io threads (default 2): on a pool of
// `conns` (dedicated == false), or each with its own connection (then coros == conns).
std::optional<bench::shape_result> run_async(const bench::shape& s, bool dedicated) {
    const int io_threads = static_cast<int>(bench::env_long("CONNPOOL_BENCH_IO_THREADS", 2));
    std::vector<coro_record> recs(static_cast<std::size_t>(s.threads));
    bench::shape_result r;
    {
        bench::io_runner runner(io_threads);
        std::optional<std::vector<pg::connection>> conns;
        std::unique_ptr<pg::pool> pool;
        if (dedicated) {
            conns = open_connections(s.threads);
            if (!conns) return std::nullopt;
        } else {
            pool = std::make_unique<pg::pool>(runner.context(), pg::factory(conninfo),
                                              pg_options(static_cast<std::size_t>(s.conns)));
            if (!bench::wait_idle(*pool, static_cast<std::size_t>(s.conns))) return std::nullopt;
        }
        std::atomic<bool> stop{false};
        std::atomic<int> left{s.threads};
        bench::done_signal done;
        const auto t0 = bench::clock::now();
        for (std::size_t i = 0; i < recs.size(); ++i) {
            asio::co_spawn(runner.context(),
                           coro_loop(pool.get(), dedicated ? &(*conns)[i] : nullptr, stop, recs[i], left, done),
                           asio::detached);
        }
        std::this_thread::sleep_for(bench::run_duration());
        stop.store(true);
        done.wait_and_rearm();
        r.secs = std::chrono::duration<double>(bench::clock::now() - t0).count();
        pool.reset();
        runner.finish();
    }
    r.threads = s.threads;
    for (const auto& c : recs) {
        r.cycles.push_back(c.cycles);
        r.errors += c.errors;
        r.latency.merge(c.latency);
    }
    r.extra["io_threads"] = std::to_string(io_threads);
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    std::string shapes = "2/4,4/4,8/4,32/4";
    std::string workload = "pg";
    std::string pools;
    bool async = true;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--shapes" && i + 1 < argc) shapes = argv[++i];
        else if (a == "--workload" && i + 1 < argc) workload = argv[++i];
        else if (a == "--pools" && i + 1 < argc) pools = argv[++i];
        else if (a == "--no-async") async = false;
        else {
            std::cerr << "usage: " << argv[0] << " [--shapes 2/4,8/4] [--workload NAME] [--pools LIST] [--no-async]\n";
            return 2;
        }
    }
    conninfo = bench::env_or("CONNPOOL_PG_CONNINFO");
    if (conninfo.empty()) {
        std::cerr << "contended_pg: CONNPOOL_PG_CONNINFO must be set (bench/run.sh starts a server)\n";
        return 2;
    }
    std::vector<bench::contender> cs{{"dedicated", run_dedicated},
                                     {"connpool", [](const bench::shape& s) { return run_connpool(s, false); }},
                                     {"textbook", run_textbook}};
    if (connpool::options probe; bench::set_fifo_handoff(probe)) {
        cs.push_back({"connpool_fifo", [](const bench::shape& s) { return run_connpool(s, true); }});
    }
    // CONNPOOL_BENCH_BOUND_US=5000: also the barging handoff with a 5 ms starvation bound.
    const long bound = bench::env_long("CONNPOOL_BENCH_BOUND_US", 0);
    if (connpool::options probe; bound > 0 && bench::set_starvation_bound(probe, std::chrono::microseconds(bound))) {
        cs.push_back({"connpool_b" + std::to_string(bound) + "us",
                      [bound](const bench::shape& s) { return run_connpool(s, false, bound); }});
    }
#if CONNPOOL_BENCH_HAVE_SOCI
    cs.push_back({"soci", run_soci});
#endif
#if CONNPOOL_BENCH_HAVE_POCO
    Poco::Data::PostgreSQL::Connector::registerConnector();
    cs.push_back({"poco", run_poco});
#endif
    bench::keep_only(cs, pools);
    bench::run_rounds(workload, bench::parse_shapes(shapes), cs);
    if (async) {
        bench::run_rounds("async", {{32, 4}},
                          {{"connpool", [](const bench::shape& s) { return run_async(s, false); }},
                           {"dedicated", [](const bench::shape&) { return run_async({4, 4}, true); }}});
    }
    return 0;
}
