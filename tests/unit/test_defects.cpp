// Regression tests for the defects an outside review of 0.1 found (issue 8, "Defects to
// fix"). Each one failed on the 0.1 core; the number in the name is the issue's.
#include "connpool_catch.hpp"
#include "fake.hpp"

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>

#include <future>
#include <memory>
#include <thread>

using namespace connpool;
using namespace connpool::test;

namespace {

template <class Pool>
typename Pool::lease_type take_async(Pool& p, asio::io_context& ctx) {
    typename Pool::lease_type out;
    bool done = false;
    p.async_acquire([&](error_code ec, typename Pool::lease_type l) {
        CHECK_FALSE(ec);
        out = std::move(l);
        done = true;
    });
    REQUIRE(poll_until(ctx, [&] { return done; }));
    return out;
}

// Runs f on a thread and says whether it finished within limit: a hang check, not a
// speed check (the limit is many times what the work needs).
template <class F>
bool finishes(F&& f, std::chrono::seconds limit = std::chrono::seconds(20)) {
    auto fut = std::async(std::launch::async, std::forward<F>(f));
    if (fut.wait_for(limit) != std::future_status::ready) {
        fut.wait();  // let it end (or hang the test binary's timeout, which reports it)
        return false;
    }
    fut.get();
    return true;
}

}  // namespace

TEST_CASE("defect 1: a lease that outlives its pool and the pool's io_context closes its connection safely",
          "[defect][lifetime]") {
    fake_async_factory f;
    auto db = f.db;
    pool<fake_async_factory>::lease_type l;
    {
        asio::io_context ctx;
        pool<fake_async_factory> p(ctx, f, {.max_size = 2});
        l = take_async(p, ctx);
        REQUIRE(l);
    }  // the pool, then the io_context, are gone; the lease is not
    CHECK(db->open == 1);
    l.release();
    CHECK(db->open == 0);
}

TEST_CASE("defect 2: leases returned while the pool is being destroyed leave nothing behind", "[defect][lifetime]") {
    for (int round = 0; round < 50; ++round) {
        fake_factory f;
        auto db = f.db;
        auto p = std::make_unique<pool<fake_factory>>(f, options{.max_size = 4});
        std::vector<pool<fake_factory>::lease_type> held;
        for (int i = 0; i < 4; ++i) held.push_back(p->acquire());
        std::atomic<bool> go{false};
        std::vector<std::thread> returners;
        for (auto& l : held) {
            returners.emplace_back([&go, lease = std::move(l)]() mutable {
                while (!go) std::this_thread::yield();
                lease.release();
            });
        }
        go = true;
        p.reset();
        for (auto& t : returners) t.join();
        CHECK(db->open == 0);
    }
}

TEST_CASE("defect 3: destroying the pool inside a completion that runs on the pool's own thread does not deadlock",
          "[defect][lifetime]") {
    auto p = std::make_shared<std::unique_ptr<pool<fake_factory>>>(
        std::make_unique<pool<fake_factory>>(fake_factory{}, options{.max_size = 1}));
    std::promise<std::thread::id> destroyed_on;
    (*p)->async_acquire([p, &destroyed_on](error_code ec, pool<fake_factory>::lease_type l) {
        CHECK_FALSE(ec);
        l.release();
        p->reset();  // on the pool's internal io thread
        destroyed_on.set_value(std::this_thread::get_id());
    });
    auto fut = destroyed_on.get_future();
    REQUIRE(fut.wait_for(std::chrono::seconds(20)) == std::future_status::ready);
    CHECK(fut.get() != std::this_thread::get_id());
}

TEST_CASE("defect 3: destroying the pool inside a hook on a worker thread does not deadlock", "[defect][lifetime]") {
    std::unique_ptr<pool<fake_factory>> p;
    std::atomic<bool> ready{false};
    std::promise<void> destroyed;
    hooks h;
    h.on_connect = [&](const connect_event&) {
        while (!ready) std::this_thread::yield();
        p.reset();  // on the connect lane's thread
        destroyed.set_value();
    };
    p = std::make_unique<pool<fake_factory>>(fake_factory{}, options{.min_idle = 1, .max_size = 1}, h);
    ready = true;
    CHECK(destroyed.get_future().wait_for(std::chrono::seconds(20)) == std::future_status::ready);
}

TEST_CASE("defect 4: an async validation ping does not wait behind hung blocking connects", "[defect][deadline]") {
    asio::io_context ctx;
    fake_factory f;
    auto db = f.db;
    pool<fake_factory> p(ctx, f, {.max_size = 4, .validation = validation_mode::always, .max_connecting = 2,
                                  .worker_threads = 2});
    { auto l = p.acquire(); }  // one idle connection
    db->hang = true;
    p.set_min_idle(3);  // two connects start and hang, one on each connect thread
    REQUIRE(eventually([&] { return db->in_connect == 2; }));
    error_code got = errc::pool_closed;
    bool done = false;
    p.async_acquire_for(std::chrono::milliseconds(300), [&](error_code ec, pool<fake_factory>::lease_type) {
        got = ec;
        done = true;
    });
    REQUIRE(poll_until(ctx, [&] { return done; }));
    CHECK_FALSE(got);  // served after its ping, not timed out
    CHECK(db->pings >= 1);
    db->release_hang();
}

TEST_CASE("defect 5: a cancellation sent while the pool pings the chosen connection is honoured at once",
          "[defect][cancel]") {
    asio::io_context ctx;
    fake_factory f;
    auto db = f.db;
    pool<fake_factory> p(ctx, f, {.max_size = 1, .validation = validation_mode::always});
    { auto l = p.acquire(); }
    db->hold_pings = true;
    db->ping_fails = true;
    asio::cancellation_signal sig;
    error_code got;
    int completions = 0;
    p.async_acquire(asio::bind_cancellation_slot(sig.slot(), [&](error_code ec, pool<fake_factory>::lease_type) {
        got = ec;
        ++completions;
    }));
    REQUIRE(poll_until(ctx, [&] { return db->in_ping == 1; }));
    sig.emit(asio::cancellation_type::terminal);
    REQUIRE(poll_until(ctx, [&] { return completions == 1; }));
    CHECK(got == errc::cancelled);  // while the ping still hangs
    db->lift(db->hold_pings);       // the ping now fails: the waiter must not be queued again
    REQUIRE(eventually([&] { return db->in_ping == 0 && p.stats().open == 0; }));
    poll_until(ctx, [] { return false; }, 50);
    CHECK(completions == 1);
    CHECK(p.stats().waiting == 0);
    CHECK(p.stats().closed_for(close_reason::validation_failed) == 1);
}

TEST_CASE("defect 6: set_min_idle above max_idle is refused at runtime", "[defect][options]") {
    pool<fake_factory> p(fake_factory{}, {.min_idle = 0, .max_size = 8, .max_idle = 2});
    CHECK_THROWS_WITH(p.set_min_idle(3), Catch::Matchers::Contains("min_idle = 3") &&
                                             Catch::Matchers::Contains("max_idle"));
    CHECK_NOTHROW(p.set_min_idle(2));
}

TEST_CASE("defect 7: retire_all retires a connect that is already in flight", "[defect][retire]") {
    asio::io_context ctx;
    fake_async_factory f;
    auto db = f.db;
    pool<fake_async_factory> p(ctx, f, {.max_size = 1});
    db->hang = true;
    pool<fake_async_factory>::lease_type got;
    p.async_acquire([&](error_code ec, pool<fake_async_factory>::lease_type l) {
        CHECK_FALSE(ec);
        got = std::move(l);
    });
    REQUIRE(poll_until(ctx, [&] { return db->connects == 1; }));
    p.retire_all();
    db->hang = false;
    fake_async_factory::complete_hung(true);  // the connect started before retire_all
    REQUIRE(poll_until(ctx, [&] { return static_cast<bool>(got); }));
    CHECK(p.stats().closed_for(close_reason::retired) == 1);
    CHECK(got->id == 2);  // a connection opened after the retirement
}

TEST_CASE("defect 8: async_drain keeps its handler's executor busy until the drain completes", "[defect][drain]") {
    asio::io_context ctx;
    pool<fake_async_factory> p(ctx, fake_async_factory{}, {.max_size = 1});
    auto l = take_async(p, ctx);
    bool drained = false;
    p.async_drain([&](error_code ec) {
        CHECK_FALSE(ec);
        drained = true;
    });
    std::thread returner([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
        l.release();
    });
    ctx.restart();
    ctx.run();  // returns only when no work is left: the drain must count as work
    returner.join();
    CHECK(drained);
}

TEST_CASE("defect 9: shrinking max_size while returns overlap closes exactly the excess", "[defect][resize]") {
    fake_factory f;
    auto db = f.db;
    pool<fake_factory> p(f, {.max_size = 8});
    std::vector<pool<fake_factory>::lease_type> held;
    for (int i = 0; i < 8; ++i) held.push_back(p.acquire());
    p.set_max_size(4);
    std::atomic<bool> go{false};
    std::vector<std::thread> ts;
    for (auto& l : held) {
        ts.emplace_back([&go, lease = std::move(l)]() mutable {
            while (!go) std::this_thread::yield();
            lease.release();
        });
    }
    go = true;
    for (auto& t : ts) t.join();
    REQUIRE(eventually([&] { return p.stats().open == 4; }));
    CHECK(p.stats().closed_for(close_reason::resized) == 4);
    CHECK(p.stats().idle == 4);
}

TEST_CASE("defect 10: a timeout of milliseconds::max() means no timeout", "[defect][deadline]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1, .acquire_timeout = std::chrono::milliseconds::max()});
    auto first = p.acquire_for(std::chrono::milliseconds::max());
    REQUIRE(first);
    std::thread returner([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        first.release();
    });
    error_code ec;
    auto second = p.acquire(ec);  // waits, does not fail at once with "after -1 ms"
    returner.join();
    CHECK_FALSE(ec);
    CHECK(second);
}

TEST_CASE("defect 11: validation pings of dead idle connections stay within the caller's timeout",
          "[defect][deadline]") {
    fake_factory f;
    auto db = f.db;
    pool<fake_factory> p(f, {.max_size = 8, .validation = validation_mode::always, .ping_timeout = 5000ms});
    {
        std::vector<pool<fake_factory>::lease_type> all;
        for (int i = 0; i < 8; ++i) all.push_back(p.acquire());
    }
    db->freeze_pings = true;  // every ping sleeps out its timeout, then fails
    error_code ec;
    error_info diag;
    const auto start = std::chrono::steady_clock::now();
    (void)p.acquire_for(100ms, ec);
    const auto took = std::chrono::steady_clock::now() - start;
    CHECK(ec == errc::acquire_timeout);
    // The caller's deadline ends its wait while the ping runs out its own ping_timeout
    // (issue 16: capping it closed healthy connections): it does not wait through the pings
    // of the dead connections one after another (a hang check: 8 x 5 s otherwise).
    CHECK(took < std::chrono::seconds(4));
    CHECK(db->pings <= 2);
    db->freeze_pings = false;
}

TEST_CASE("defect 12: an async lease is held by the thread that asked for it", "[defect][async]") {
    asio::io_context ctx;
    pool<fake_async_factory> p(ctx, fake_async_factory{}, {.max_size = 1});
    std::promise<void> served;
    pool<fake_async_factory>::lease_type l;
    p.async_acquire([&](error_code, pool<fake_async_factory>::lease_type got) {
        l = std::move(got);
        served.set_value();
    });
    std::thread io([&] { ctx.run_for(std::chrono::seconds(5)); });
    REQUIRE(served.get_future().wait_for(std::chrono::seconds(5)) == std::future_status::ready);
    const auto infos = p.leases();
    REQUIRE(infos.size() == 1);
    CHECK(infos[0].thread == std::this_thread::get_id());
    l.release();
    p.close();
    io.join();
}

TEST_CASE("defect 13: the core is freed when an async connect fails after the pool is destroyed",
          "[defect][lifetime]") {
    asio::io_context ctx;
    fake_async_factory f;
    auto db = f.db;
    {
        pool<fake_async_factory> p(ctx, f, {.max_size = 1});
        db->hang = true;
        p.async_acquire([](error_code, pool<fake_async_factory>::lease_type) {});
        REQUIRE(poll_until(ctx, [&] { return db->connects == 1; }));
    }
    fake_async_factory::complete_hung(false);
    poll_until(ctx, [] { return false; }, 50);
    CHECK(db.use_count() == 2);  // this test and f: the core's factory copy is gone
}

TEST_CASE("defect 14: a blocking acquire on the pool's own io thread with an async factory is reported",
          "[defect][nested]") {
    asio::io_context ctx;
    std::atomic<int> reports{0};
    hooks h;
    h.on_nested_acquire = [&](const nested_acquire_event& e) {
        if (e.on_io_thread) ++reports;
    };
    fake_async_factory f;
    f.db->hang = true;
    pool<fake_async_factory> p(ctx, f, {.max_size = 1}, h);
    error_code ec;
    bool ran = false;
    asio::post(ctx, [&] {
        (void)p.acquire_for(50ms, ec);
        ran = true;
    });
    for (int i = 0; i < 100 && !ran; ++i) ctx.run_one_for(100ms);
    REQUIRE(ran);
    CHECK(ec == errc::acquire_timeout);
    CHECK(reports == 1);
    f.db->hang = false;
    fake_async_factory::complete_hung(false);
}

TEST_CASE("defect 15: a sequential caller returning dirty connections keeps one connection", "[defect][creation]") {
    fake_factory f;
    auto db = f.db;
    pool<fake_factory> p(f, {.max_size = 8});
    for (int i = 0; i < 200; ++i) {
        auto l = p.acquire();
        l->dirty = true;  // every return needs a reset
    }
    CHECK(eventually([&] { return db->resets == 200; }));  // the last reset runs after the loop
    CHECK(db->max_open == 1);
}

TEST_CASE("defect 16: hung resets block neither async deadlines nor the pool's destruction", "[defect][frozen]") {
    asio::io_context ctx;
    fake_factory f;
    auto db = f.db;
    auto p = std::make_unique<pool<fake_factory>>(ctx, f,
                                                  options{.max_size = 2, .connect_timeout = 200ms, .worker_threads = 2});
    db->hold_resets = true;  // the server froze: PQcancel-like resets never return
    {
        auto a = p->acquire();
        auto b = p->acquire();
        a->dirty = true;
        b->dirty = true;
    }
    REQUIRE(eventually([&] { return db->in_reset == 2; }));
    error_code got;
    bool done = false;
    p->async_acquire_for(100ms, [&](error_code ec, pool<fake_factory>::lease_type) {
        got = ec;
        done = true;
    });
    REQUIRE(poll_until(ctx, [&] { return done; }));
    CHECK(got == errc::acquire_timeout);
    CHECK(finishes([&] { p.reset(); }));  // waits connect_timeout for the hung calls, then lets go
    db->lift(db->hold_resets);
    REQUIRE(eventually([&] { return db->open == 0; }));
}

TEST_CASE("async_acquire() with no token returns a deferred operation on Boost 1.81", "[async][api]") {
    asio::io_context ctx;
    pool<fake_async_factory> p(ctx, fake_async_factory{}, {.max_size = 1});
    auto op = p.async_acquire();  // no token: asio::deferred
    bool served = false;
    std::move(op)([&](error_code ec, pool<fake_async_factory>::lease_type l) {
        served = !ec && static_cast<bool>(l);
    });
    REQUIRE(poll_until(ctx, [&] { return served; }));
}

TEST_CASE("an async connect whose handler is destroyed uncalled still frees the pool's core", "[defect][lifetime]") {
    asio::io_context ctx;
    fake_async_factory f;
    auto db = f.db;
    {
        pool<fake_async_factory> p(ctx, f, {.max_size = 1});
        db->hang = true;
        p.async_acquire([](error_code, pool<fake_async_factory>::lease_type) {});
        REQUIRE(poll_until(ctx, [&] { return db->connects == 1; }));
    }
    {
        // What destroying the io_context does to a pending handler: destroys it uncalled.
        std::vector<fake_async_factory::hung> dropped;
        std::lock_guard lk(fake_async_factory::pending_m());
        dropped.swap(fake_async_factory::pending());
    }
    poll_until(ctx, [] { return false; }, 50);
    CHECK(db.use_count() == 2);  // this test and f: the core and its factory copy are gone
    db->hang = false;
}
