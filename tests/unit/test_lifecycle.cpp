// close, drain, retire_all, resize, stats and hooks.
#include "connpool_catch.hpp"
#include "fake.hpp"

#include <boost/asio/use_future.hpp>

#include <thread>

using namespace connpool;
using namespace connpool::test;

using lease_t = pool<fake_factory>::lease_type;

TEST_CASE("close fails new acquires and wakes waiters with pool_closed", "[lifecycle][close]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1, .acquire_timeout = 30s, .detect_nested_acquire = false});
    auto held = p.acquire();
    error_code waiter_ec;
    std::thread t([&] { (void)p.acquire(waiter_ec); });
    REQUIRE(eventually([&] { return p.stats().waiting == 1; }));
    p.close();
    t.join();
    CHECK(waiter_ec == errc::pool_closed);
    error_code ec;
    (void)p.acquire(ec);
    CHECK(ec == errc::pool_closed);
    held.release();  // closed on return
    CHECK(p.factory().db->open == 0);
    CHECK(p.stats().closed_for(close_reason::pool_closed) == 1);
}

TEST_CASE("drain waits for leases to come back, then everything is closed", "[lifecycle][drain]") {
    pool<fake_factory> p(fake_factory{}, {.min_idle = 1, .max_size = 3});
    auto a = p.acquire();
    auto b = p.acquire();
    CHECK_FALSE(p.drain(10ms));  // two leases out
    std::thread t([&] {
        std::this_thread::sleep_for(5ms);
        a.release();
        b.release();
    });
    CHECK(p.drain(10s));
    t.join();
    CHECK(p.factory().db->open == 0);
    CHECK(p.stats().open == 0);
}

TEST_CASE("async_drain completes once the last lease is back", "[lifecycle][drain][async]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 2});
    auto a = p.acquire();
    auto done = p.async_drain(asio::use_future);
    CHECK(done.wait_for(10ms) == std::future_status::timeout);
    a.release();
    CHECK_NOTHROW(done.get());
    CHECK(p.factory().db->open == 0);
}

TEST_CASE("retire_all replaces idle connections now and leased ones at return", "[lifecycle][retire]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 2});
    auto leased = p.acquire();
    const int leased_id = leased->id;
    int idle_id = 0;
    { idle_id = p.acquire()->id; }
    p.retire_all();
    CHECK(p.stats().closed_for(close_reason::retired) == 1);
    leased.release();
    CHECK(p.stats().closed_for(close_reason::retired) == 2);
    auto fresh = p.acquire();
    CHECK(fresh->id != leased_id);
    CHECK(fresh->id != idle_id);
}

TEST_CASE("shrinking max_size closes idle surplus now and leased surplus at return", "[lifecycle][resize]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 4});
    std::vector<lease_t> held;
    for (int i = 0; i < 4; ++i) held.push_back(p.acquire());
    held[0].release();
    held[1].release();
    p.set_max_size(1);
    CHECK(p.stats().closed_for(close_reason::resized) == 2);
    held[2].release();
    CHECK(p.stats().closed_for(close_reason::resized) == 3);
    held[3].release();  // now within size: kept
    CHECK(p.stats().open == 1);
    CHECK(p.stats().idle == 1);
}

TEST_CASE("growing max_size lets waiters in at once", "[lifecycle][resize]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1, .acquire_timeout = 30s, .detect_nested_acquire = false});
    auto held = p.acquire();
    lease_t second;
    std::thread t([&] { second = p.acquire(); });
    REQUIRE(eventually([&] { return p.stats().waiting == 1; }));
    p.set_max_size(2);
    t.join();
    CHECK(second);
    CHECK(p.stats().open == 2);
}

TEST_CASE("raising min_idle opens connections in the background", "[lifecycle][resize][min_idle]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 5});
    p.set_min_idle(3);
    REQUIRE(eventually([&] { return p.stats().idle == 3; }));
}

TEST_CASE("stats count acquires, waits, creations and closes", "[lifecycle][stats]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 2});
    for (int i = 0; i < 5; ++i) (void)p.acquire();
    auto l = p.acquire();
    l.discard();
    const auto s = p.stats();
    CHECK(s.acquired == 6);
    CHECK(s.created == 1);
    CHECK(s.closed_for(close_reason::discarded) == 1);
    CHECK(s.closed_total() == 1);
    CHECK(s.open == 0);
    CHECK(s.wait_p50 <= s.wait_max);
}

TEST_CASE("hooks see connects, acquires, returns and closes", "[lifecycle][hooks]") {
    // Hooks run on the pool's threads too, so they only count; the test thread asserts.
    std::atomic<int> connects{0}, failed_connects{0}, acquires{0}, returns{0}, closes{0}, discards{0};
    hooks h;
    h.on_connect = [&](const connect_event& e) { ++(e.error ? failed_connects : connects); };
    h.on_acquire = [&](const acquire_event& e) {
        if (e.location.line() > 0) ++acquires;
    };
    h.on_return = [&](const return_event&) { ++returns; };
    h.on_close = [&](const close_event& e) {
        ++closes;
        if (e.reason == close_reason::discarded) ++discards;
    };
    pool<fake_factory> p(fake_factory{}, {.max_size = 1}, h);
    (void)p.acquire();
    p.acquire().discard();
    CHECK(connects == 1);
    CHECK(failed_connects == 0);
    CHECK(discards == 1);
    CHECK(acquires == 2);
    CHECK(returns == 2);
    CHECK(closes == 1);
}

TEST_CASE("a throwing hook does not break the pool", "[lifecycle][hooks]") {
    hooks h;
    h.on_acquire = [](const acquire_event&) { throw std::runtime_error("hook bug"); };
    pool<fake_factory> p(fake_factory{}, {.max_size = 1}, h);
    auto l = p.acquire();
    CHECK(l);
}

TEST_CASE("leases() lists the outstanding leases with their call sites", "[lifecycle][observability]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 3});
    auto a = p.acquire();
    auto b = p.acquire();
    auto list = p.leases();
    REQUIRE(list.size() == 2);
    for (const auto& info : list) {
        CHECK(std::string(info.location.file_name()).find("test_lifecycle.cpp") != std::string::npos);
        CHECK(info.thread == std::this_thread::get_id());
    }
}
