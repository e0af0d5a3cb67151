// The blocking face: reuse order, limits, fairness, errors, reset on return.
#include "connpool_catch.hpp"
#include "fake.hpp"

#include <algorithm>
#include <thread>
#include <vector>

using namespace connpool;
using namespace connpool::test;

TEST_CASE("a factory with only connect() works", "[blocking][factory]") {
    pool<minimal_factory> p(minimal_factory{}, {.max_size = 2});
    auto a = p.acquire();
    auto b = p.acquire();
    CHECK(*a != *b);
    CHECK(*p.factory().made == 2);
}

TEST_CASE("idle connections are handed out most recently used first", "[blocking][lifo]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 3});
    auto a = p.acquire();
    auto b = p.acquire();
    auto c = p.acquire();
    const int ida = a->id, idc = c->id;
    a.release();
    b.release();
    c.release();  // c is the most recent
    auto first = p.acquire();
    CHECK(first->id == idc);
    auto second = p.acquire();
    auto third = p.acquire();
    CHECK(third->id == ida);  // the coldest comes last
}

TEST_CASE("never more than max_size connections open", "[blocking][limits]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 3, .acquire_timeout = 20ms});
    std::vector<pool<fake_factory>::lease_type> held;
    for (int i = 0; i < 3; ++i) held.push_back(p.acquire());
    error_code ec;
    error_info diag;
    auto l = p.acquire(ec, diag);
    CHECK_FALSE(l);
    CHECK(ec == errc::acquire_timeout);
    CHECK(p.factory().db->max_open == 3);
}

TEST_CASE("an exhausted pool's timeout names the counts and the oldest lease's call site",
          "[blocking][timeout][errors]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 2, .acquire_timeout = 30ms, .detect_nested_acquire = false});
    auto a = p.acquire();
    const unsigned line = __LINE__ - 1;
    auto b = p.acquire();
    try {
        (void)p.acquire();
        FAIL("acquire should have timed out");
    } catch (const connpool::error& e) {
        CHECK(e.code() == errc::acquire_timeout);
        const std::string m = e.what();
        CHECK(m.find("pool exhausted (2/2 in use, 0 idle, 1 waiting") != std::string::npos);
        CHECK(m.find("test_blocking.cpp:" + std::to_string(line)) != std::string::npos);
        CHECK(m.find("oldest lease held") != std::string::npos);
    }
    CHECK(p.stats().timeouts == 1);
}

TEST_CASE("max_waiters refuses the next caller at once with too_many_waiters", "[blocking][errors]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1, .acquire_timeout = 5s, .max_waiters = 1});
    auto held = p.acquire();
    std::atomic<bool> served{false};
    std::thread waiter([&] {
        auto l = p.acquire();  // the one allowed waiter; served when `held` returns
        served = static_cast<bool>(l);
    });
    REQUIRE(eventually([&] { return p.stats().waiting == 1; }));
    error_info diag;
    error_code ec;
    auto refused = p.acquire(ec, diag);
    CHECK(ec == errc::too_many_waiters);
    CHECK(diag.message.find("max_waiters = 1") != std::string::npos);
    CHECK(p.stats().rejected == 1);
    held.release();
    waiter.join();
    CHECK(served);
}

TEST_CASE("waiters are served in arrival order, with no barging", "[blocking][fairness]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1, .acquire_timeout = 10s, .detect_nested_acquire = false});
    auto held = p.acquire();
    std::mutex m;
    std::vector<int> order;
    std::vector<std::thread> threads;
    for (int i = 0; i < 5; ++i) {
        threads.emplace_back([&, i] {
            auto l = p.acquire();
            std::lock_guard lk(m);
            order.push_back(i);
        });
        // Each thread is queued before the next one starts.
        REQUIRE(eventually([&] { return p.stats().waiting == static_cast<std::size_t>(i + 1); }));
    }
    held.release();
    for (auto& t : threads) t.join();
    CHECK(order == std::vector<int>{0, 1, 2, 3, 4});
    CHECK(p.stats().waited == 6);  // the five, and the first acquire, which waited for the connect
}

TEST_CASE("a returned connection goes straight to the oldest waiter", "[blocking][handoff]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1, .detect_nested_acquire = false});
    auto held = p.acquire();
    const int id = held->id;
    int got = 0;
    std::thread t([&] { got = p.acquire()->id; });
    REQUIRE(eventually([&] { return p.stats().waiting == 1; }));
    held.release();
    t.join();
    CHECK(got == id);
    CHECK(p.factory().db->connects == 1);
}

TEST_CASE("a dirty connection is reset off the returning thread before reuse", "[blocking][reset]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    {
        auto l = p.acquire();
        l->dirty = true;
    }
    auto l = p.acquire();
    CHECK_FALSE(l->dirty);
    CHECK(p.factory().db->resets == 1);
}

TEST_CASE("a clean connection skips the reset", "[blocking][reset]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    { auto l = p.acquire(); }
    { auto l = p.acquire(); }
    CHECK(p.factory().db->resets == 0);
}

TEST_CASE("reset_on_return = false hands the connection back as it was", "[blocking][reset]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1, .reset_on_return = false});
    {
        auto l = p.acquire();
        l->dirty = true;
    }
    auto l = p.acquire();
    CHECK(l->dirty);
    CHECK(p.factory().db->resets == 0);
}

TEST_CASE("a failed reset closes the connection", "[blocking][reset][failure]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    p.factory().db->reset_fails = true;
    int first = 0;
    {
        auto l = p.acquire();
        first = l->id;
        l->dirty = true;
    }
    auto l = p.acquire();
    CHECK(l->id != first);
    CHECK(p.stats().closed_for(close_reason::reset_failed) == 1);
}

TEST_CASE("validation always pings before a hand-out and replaces a dead connection",
          "[blocking][validation]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1, .validation = validation_mode::always});
    int first = 0;
    { first = p.acquire()->id; }
    p.factory().db->ping_fails = true;
    {
        // The only idle connection fails its ping; the pool opens a new one (which is not
        // pinged, being fresh).
        auto l = p.acquire();
        CHECK(l->id != first);
    }
    CHECK(p.stats().closed_for(close_reason::validation_failed) == 1);
}

TEST_CASE("optimistic validation never pings", "[blocking][validation]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1, .validation = validation_mode::optimistic});
    for (int i = 0; i < 3; ++i) (void)p.acquire();
    CHECK(p.factory().db->pings == 0);
}

TEST_CASE("a thread blocking on an exhausted pool while holding a lease from it is reported",
          "[blocking][nested]") {
    std::vector<nested_acquire_event> reports;
    std::mutex m;
    hooks h;
    h.on_nested_acquire = [&](const nested_acquire_event& e) {
        std::lock_guard lk(m);
        reports.push_back(e);
    };
    pool<fake_factory> p(fake_factory{},
                         {.max_size = 1, .acquire_timeout = 20ms, .detect_nested_acquire = true}, h);
    auto outer = p.acquire();
    const unsigned outer_line = __LINE__ - 1;
    error_code ec;
    auto inner = p.acquire(ec);
    CHECK(ec == errc::acquire_timeout);
    REQUIRE(reports.size() == 1);
    CHECK(reports[0].already_held.location.line() == outer_line);
    CHECK(reports[0].already_held.thread == std::this_thread::get_id());
}

TEST_CASE("no nested-acquire report when the thread holds nothing from the pool", "[blocking][nested]") {
    int reports = 0;
    hooks h;
    h.on_nested_acquire = [&](const nested_acquire_event&) { ++reports; };
    pool<fake_factory> p(fake_factory{},
                         {.max_size = 1, .acquire_timeout = 20ms, .detect_nested_acquire = true}, h);
    std::thread other([&] {
        auto l = p.acquire();
        std::this_thread::sleep_for(50ms);
    });
    REQUIRE(eventually([&] { return p.stats().in_use == 1; }));
    error_code ec;
    (void)p.acquire(ec);
    other.join();
    CHECK(reports == 0);
}

TEST_CASE("handed-over connections are not blamed on the thread that returned them", "[blocking][nested]") {
    std::atomic<int> reports{0};
    hooks h;
    h.on_nested_acquire = [&](const nested_acquire_event&) { ++reports; };
    pool<fake_factory> p(fake_factory{}, {.max_size = 4, .detect_nested_acquire = true}, h);
    std::vector<std::thread> threads;
    std::atomic<int> served{0};
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 2000; ++i) {
                auto l = p.acquire();
                if (l) ++served;
                std::this_thread::yield();
            }
        });
    }
    for (auto& t : threads) t.join();
    CHECK(served == 8 * 2000);
    CHECK(reports == 0);  // nobody ever held two leases
}

TEST_CASE("connect_timeout and ping_timeout reach the factory", "[blocking][options]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1, .connect_timeout = 1234ms,
                                          .validation = validation_mode::always, .ping_timeout = 567ms});
    { auto l = p.acquire(); }
    { auto l = p.acquire(); }  // used before: pinged
    CHECK(p.factory().db->last_connect_timeout_ms == 1234);
    CHECK(p.factory().db->last_ping_timeout_ms == 567);
}
