// Honest under failure: clear errors, fast failure while the database is down, no hang,
// self-healing, and no storm of connections after a burst.
#include "connpool_catch.hpp"
#include "fake.hpp"

#include <thread>

using namespace connpool;
using namespace connpool::test;

TEST_CASE("a refused connect fails the acquire at once with the cause, not with a timeout",
          "[failure][connect]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 2, .acquire_timeout = 60s});
    p.factory().db->down = true;
    try {
        (void)p.acquire();
        FAIL("expected connect_failed");
    } catch (const connpool::error& e) {
        CHECK(e.code() == errc::connect_failed);
        CHECK(std::string(e.what()) == "connect failed: connection refused by fake server");
        CHECK(e.info().message == e.what());
    }
    CHECK(p.stats().connect_failures >= 1);
}

TEST_CASE("during backoff, acquires fail fast with the last connect error", "[failure][backoff]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 2, .acquire_timeout = 60s, .backoff_initial = 30s,
                                          .backoff_max = 60s});
    p.factory().db->down = true;
    error_code ec;
    (void)p.acquire(ec);
    CHECK(ec == errc::connect_failed);
    const int attempts = p.factory().db->connects;
    error_info diag;
    (void)p.acquire(ec, diag);
    CHECK(ec == errc::connect_failed);
    CHECK(diag.message.find("connection refused by fake server") != std::string::npos);
    CHECK(diag.message.find("retries in") != std::string::npos);
    CHECK(p.factory().db->connects == attempts);  // no new connect hammered the database
    CHECK(p.stats().fast_failed >= 1);
}

TEST_CASE("the pool heals by itself once the database is back", "[failure][recovery]") {
    fake_factory f;
    f.db->down = true;  // down from the start: min_idle cannot be met
    pool<fake_factory> p(std::move(f), {.min_idle = 2, .max_size = 4, .backoff_initial = 5ms, .backoff_max = 20ms,
                                        .housekeeping_interval = 5ms});
    REQUIRE(eventually([&] { return p.factory().db->connects >= 3; }));
    CHECK(p.stats().open == 0);
    p.factory().db->down = false;
    REQUIRE(eventually([&] { return p.stats().idle == 2; }));
    auto l = p.acquire();
    CHECK(l);
    CHECK(p.stats().last_connect_error.empty());
}

TEST_CASE("an exception thrown by the factory becomes connect_failed with its what()", "[failure][exception]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    p.factory().db->throw_on_connect = true;
    error_code ec;
    error_info diag;
    auto l = p.acquire(ec, diag);
    CHECK_FALSE(l);
    CHECK(ec == errc::connect_failed);
    CHECK(diag.message == "connect failed: factory threw: fake factory exploded");
    CHECK(p.stats().open == 0);
    CHECK(p.stats().creating == 0);  // the slot was not lost
}

TEST_CASE("a factory's connect timeout is reported as connect_timeout", "[failure][connect]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    p.factory().db->connect_timeout = true;
    error_code ec;
    error_info diag;
    (void)p.acquire(ec, diag);
    CHECK(ec == errc::connect_timeout);
    CHECK(diag.message == "connect timed out: fake server did not answer within 10 ms");
}

TEST_CASE("a factory message that already names the failure is not prefixed twice", "[failure][connect]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    p.factory().db->down = true;
    p.factory().db->refusal = "connect failed: [1045] Access denied for user 'app'";
    error_code ec;
    error_info diag;
    (void)p.acquire(ec, diag);
    CHECK(diag.message == "connect failed: [1045] Access denied for user 'app'");
}

TEST_CASE("a hanging connect cannot hang the caller past acquire_timeout", "[failure][hang]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1, .acquire_timeout = 50ms});
    p.factory().db->hang = true;
    error_code ec;
    error_info diag;
    (void)p.acquire(ec, diag);
    CHECK(ec == errc::acquire_timeout);
    CHECK(diag.message.find("waiting on a connect (1 in flight") != std::string::npos);
    // The connect was not abandoned: once it completes the connection waits, idle.
    p.factory().db->release_hang();
    REQUIRE(eventually([&] { return p.stats().idle == 1; }));
    auto l = p.acquire();
    CHECK(l);
    CHECK(p.factory().db->connects == 1);
}

TEST_CASE("a burst does not leave a storm of connections behind", "[failure][burst]") {
    asio::io_context ctx;
    pool<fake_async_factory> p(ctx, fake_async_factory{}, {.min_idle = 2, .max_size = 50, .max_connecting = 8});
    REQUIRE(poll_until(ctx, [&] { return p.stats().idle == 2; }));
    using lease_t = pool<fake_async_factory>::lease_type;
    std::vector<lease_t> first;
    for (int i = 0; i < 2; ++i) {
        p.async_acquire([&](error_code, lease_t l) { first.push_back(std::move(l)); });
    }
    REQUIRE(poll_until(ctx, [&] { return first.size() == 2; }));
    p.factory().db->hang = true;  // new connects take "forever"
    int served = 0;
    for (int i = 0; i < 20; ++i) {
        p.async_acquire([&](error_code ec, lease_t l) {
            if (!ec) ++served;
            l.release();
        });
    }
    ctx.poll();
    // Leases are out and will come back: one connect at a time.
    CHECK(p.stats().creating == 1);
    first.clear();  // the two leases return and serve all 20 waiters in turn
    REQUIRE(poll_until(ctx, [&] { return served == 20; }));
    p.factory().db->hang = false;
    fake_async_factory::complete_hung(true);
    REQUIRE(poll_until(ctx, [&] { return p.stats().creating == 0; }));
    CHECK(p.stats().open == 3);
    CHECK(p.factory().db->connects == 3);
}

TEST_CASE("connect errors never carry a password through redact()", "[failure][secrets]") {
    const std::string raw = "FATAL: password authentication failed for user \"app\" (password=s3cr3t!)";
    const std::string clean = redact(raw, "s3cr3t!");
    CHECK(clean.find("s3cr3t!") == std::string::npos);
    CHECK(clean.find("********") != std::string::npos);
    CHECK(redact("no secret here", "") == "no secret here");
    CHECK(redact("aaa", "a") == "************************");
}

TEST_CASE("an exception thrown by async_connect becomes connect_failed too", "[failure][exception][async]") {
    asio::io_context ctx;
    pool<fake_async_factory> p(ctx, fake_async_factory{}, {.max_size = 1});
    p.factory().db->throw_on_connect = true;
    error_info diag;
    error_code got;
    bool done = false;
    p.async_acquire(diag, [&](error_code ec, pool<fake_async_factory>::lease_type) {
        got = ec;
        done = true;
    });
    REQUIRE(poll_until(ctx, [&] { return done; }));
    CHECK(got == errc::connect_failed);
    CHECK(diag.message == "connect failed: factory threw: fake factory exploded");
    CHECK(p.stats().creating == 0);
}
