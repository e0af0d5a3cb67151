// Time-based policies on a manual clock: nothing here sleeps to make time pass.
#include "connpool_catch.hpp"
#include "fake.hpp"

#include <thread>

using namespace connpool;
using namespace connpool::test;

using timed_pool = basic_pool<fake_async_factory, manual_clock>;
using lease_t = timed_pool::lease_type;

namespace {
// Lets the reactor look at the manual clock again: timers on a non-steady clock are
// re-checked about every millisecond of real time (detail::pool_wait_traits).
void settle(asio::io_context& ctx) {
    for (int i = 0; i < 3; ++i) {
        ctx.poll();
        ctx.restart();
        std::this_thread::sleep_for(700us);
    }
    ctx.poll();
    ctx.restart();
}

// Advances the manual clock in steps, letting the pool's timer see each one.
void run_for(asio::io_context& ctx, std::chrono::nanoseconds total, std::chrono::nanoseconds step = 500ms) {
    for (auto done = std::chrono::nanoseconds(0); done < total; done += step) {
        manual_clock::advance(std::min(step, total - done));
        settle(ctx);
    }
}

lease_t take(timed_pool& p, asio::io_context& ctx) {
    lease_t out;
    bool done = false;
    p.async_acquire([&](error_code ec, lease_t l) {
        REQUIRE_FALSE(ec);
        out = std::move(l);
        done = true;
    });
    REQUIRE(poll_until(ctx, [&] { return done; }));
    return out;
}
}  // namespace

TEST_CASE("an async acquire on an exhausted pool fails at acquire_timeout, not before",
          "[time][timeout][async]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{}, {.max_size = 1, .acquire_timeout = 30s});
    auto held = take(p, ctx);
    error_code got;
    error_info diag;
    bool done = false;
    p.async_acquire(diag, [&](error_code ec, lease_t) {
        got = ec;
        done = true;
    });
    run_for(ctx, 29s);
    CHECK_FALSE(done);
    run_for(ctx, 2s);
    CHECK(done);
    CHECK(got == errc::acquire_timeout);
    CHECK(diag.message.find("acquire timed out after 30000 ms: pool exhausted (1/1 in use") != std::string::npos);
}

TEST_CASE("a blocking acquire on a manual clock times out when the clock says so", "[time][timeout][blocking]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{},
                 {.max_size = 1, .acquire_timeout = 5s, .detect_nested_acquire = false});
    auto held = take(p, ctx);
    std::atomic<bool> done{false};
    error_code got;
    std::thread t([&] {
        error_code ec;
        (void)p.acquire(ec);
        got = ec;
        done = true;
    });
    REQUIRE(poll_until(ctx, [&] { return p.stats().waiting == 1; }));
    run_for(ctx, 4s);
    CHECK_FALSE(done);
    run_for(ctx, 2s);
    REQUIRE(poll_until(ctx, [&] { return done.load(); }));
    t.join();
    CHECK(got == errc::acquire_timeout);
}

TEST_CASE("idle connections above min_idle close after idle_timeout, the coldest first", "[time][idle]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{}, {.min_idle = 1, .max_size = 3, .idle_timeout = 60s});
    int warm = 0;
    {
        auto a = take(p, ctx);
        auto b = take(p, ctx);
        auto c = take(p, ctx);
        warm = c->id;
        a.release();
        b.release();
        c.release();  // c is the most recently used
    }
    CHECK(p.stats().open == 3);
    run_for(ctx, 59s);
    CHECK(p.stats().open == 3);
    run_for(ctx, 3s);
    CHECK(p.stats().open == 1);
    CHECK(p.stats().closed_for(close_reason::idle_timeout) == 2);
    auto l = take(p, ctx);
    CHECK(l->id == warm);
}

TEST_CASE("max_idle trims the surplus of idle connections", "[time][idle]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{}, {.max_size = 4, .max_idle = 1, .idle_timeout = 0ms});
    {
        auto a = take(p, ctx);
        auto b = take(p, ctx);
        auto c = take(p, ctx);
    }
    run_for(ctx, 2s);
    CHECK(p.stats().idle == 1);
    CHECK(p.stats().closed_for(close_reason::max_idle) == 2);
}

TEST_CASE("lifetime retires a leased connection at its return", "[time][lifetime]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{}, {.max_size = 2, .max_lifetime = 60s, .lifetime_jitter = 0.0});
    auto l = take(p, ctx);
    manual_clock::advance(61s);  // no housekeeping ran: the return itself must notice
    l.release();
    CHECK(p.stats().closed_for(close_reason::lifetime) == 1);
    CHECK(p.factory().db->open == 0);
}

TEST_CASE("lifetime is enforced at acquire even before housekeeping runs", "[time][lifetime]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{}, {.max_size = 1, .max_lifetime = 60s, .lifetime_jitter = 0.0});
    int old_id = take(p, ctx)->id;
    manual_clock::advance(61s);
    auto l = take(p, ctx);
    CHECK(l->id != old_id);
    CHECK(p.stats().closed_for(close_reason::lifetime) == 1);
}

TEST_CASE("idle connections retire in the background at the end of their lifetime", "[time][lifetime]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{},
                 {.min_idle = 2, .max_size = 2, .idle_timeout = 0ms, .max_lifetime = 60s, .lifetime_jitter = 0.0});
    REQUIRE(poll_until(ctx, [&] { return p.stats().idle == 2; }));
    run_for(ctx, 61s);
    CHECK(p.stats().closed_for(close_reason::lifetime) == 2);
    // ... and min_idle brings in fresh ones.
    REQUIRE(poll_until(ctx, [&] { return p.stats().idle == 2; }));
    CHECK(p.factory().db->connects == 4);
}

TEST_CASE("lifetime jitter is fixed per connection, so retirements spread out", "[time][lifetime][jitter]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{},
                 {.min_idle = 8, .max_size = 8, .idle_timeout = 0ms, .max_lifetime = 100s, .lifetime_jitter = 0.5});
    REQUIRE(poll_until(ctx, [&] { return p.stats().idle == 8; }));
    run_for(ctx, 49s, 1s);
    CHECK(p.stats().closed_for(close_reason::lifetime) == 0);  // jitter never cuts more than 50 %
    run_for(ctx, 52s, 1s);
    const auto retired = p.stats().closed_for(close_reason::lifetime);
    CHECK(retired >= 8);  // every original connection retired by max_lifetime
}

TEST_CASE("failed connects back off exponentially and the pool refills once the database is back",
          "[time][backoff][recovery]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{},
                 {.min_idle = 2, .max_size = 4, .backoff_initial = 1s, .backoff_max = 8s,
                  .housekeeping_interval = 100ms});
    p.factory().db->down = true;
    REQUIRE(poll_until(ctx, [&] { return p.factory().db->connects >= 1; }));
    const int first = p.factory().db->connects;
    run_for(ctx, 20s);
    const int attempts = p.factory().db->connects - first;
    // 1,2,4,8,8 s with jitter in [0.5, 1] of each: between 3 and about 10 attempts in 20 s,
    // far fewer than one per 100 ms housekeeping tick.
    CHECK(attempts >= 3);
    CHECK(attempts <= 12);
    CHECK(p.stats().connect_failures >= 3);
    CHECK(p.stats().last_connect_error == "connect failed: connection refused by fake server");

    p.factory().db->down = false;
    run_for(ctx, 9s);
    CHECK(p.stats().idle == 2);
    CHECK(p.stats().last_connect_error.empty());
}

TEST_CASE("when_idle validation pings only connections idle past the threshold", "[time][validation]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{},
                 {.max_size = 1, .validation = validation_mode::when_idle, .validation_idle_threshold = 1s});
    take(p, ctx).release();
    manual_clock::advance(500ms);
    take(p, ctx).release();
    CHECK(p.factory().db->pings == 0);
    manual_clock::advance(2s);
    auto l = take(p, ctx);
    CHECK(p.factory().db->pings == 1);
}

TEST_CASE("an idle connection that fails its ping is replaced before the caller sees it",
          "[time][validation]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{},
                 {.max_size = 1, .validation = validation_mode::when_idle, .validation_idle_threshold = 1s});
    int old_id = take(p, ctx)->id;
    manual_clock::advance(5s);
    p.factory().db->ping_fails = true;
    auto l = take(p, ctx);
    CHECK(l->id != old_id);
    CHECK(p.stats().closed_for(close_reason::validation_failed) == 1);
}

TEST_CASE("a lease held past leak_threshold is reported once, with its call site", "[time][leak]") {
    asio::io_context ctx;
    std::vector<leak_event> leaks;
    hooks h;
    h.on_leak = [&](const leak_event& e) { leaks.push_back(e); };
    timed_pool p(ctx, fake_async_factory{}, {.max_size = 2, .leak_threshold = 10s}, h);
    auto l = take(p, ctx);
    run_for(ctx, 9s);
    CHECK(leaks.empty());
    run_for(ctx, 2s);
    REQUIRE(leaks.size() == 1);
    CHECK(std::string(leaks[0].lease.location.file_name()).find("test_time.cpp") != std::string::npos);
    CHECK(leaks[0].lease.held_for >= 10s);
    run_for(ctx, 30s);
    CHECK(leaks.size() == 1);  // once
    CHECK(p.stats().leaks_reported == 1);
    auto out = p.leases();
    REQUIRE(out.size() == 1);
    CHECK(out[0].held_for >= 40s);
}

TEST_CASE("min_idle is replenished after a connection closes", "[time][min_idle]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{}, {.min_idle = 2, .max_size = 4});
    REQUIRE(poll_until(ctx, [&] { return p.stats().idle == 2; }));
    take(p, ctx).discard();
    REQUIRE(poll_until(ctx, [&] { return p.stats().idle == 2; }));
    CHECK(p.factory().db->connects == 3);
}

TEST_CASE("housekeeping probes idle connections and replaces dead ones before anyone acquires them",
          "[time][probe][recovery]") {
    asio::io_context ctx;
    timed_pool p(ctx, fake_async_factory{}, {.min_idle = 3, .max_size = 4});
    REQUIRE(poll_until(ctx, [&] { return p.stats().idle == 3; }));
    p.factory().db->killed_up_to = 3;  // the server restarted: all three are dead
    run_for(ctx, 1500ms);
    CHECK(p.factory().db->probes >= 3);
    CHECK(p.stats().closed_for(close_reason::broken) == 3);
    REQUIRE(poll_until(ctx, [&] { return p.stats().idle == 3; }));
    CHECK(p.factory().db->connects == 6);
    auto l = take(p, ctx);
    CHECK(l->id > 3);  // nobody is handed a dead one
}
