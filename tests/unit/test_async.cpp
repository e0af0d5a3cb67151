// The async face: completion tokens, executors, cancellation, and one queue with the
// blocking face.
#include "connpool_catch.hpp"
#include "fake.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <future>
#include <thread>

using namespace connpool;
using namespace connpool::test;

using async_pool = pool<fake_async_factory>;
using lease_t = async_pool::lease_type;

TEST_CASE("a callback gets a lease, never inline, on the io_context", "[async][executor]") {
    asio::io_context ctx;
    async_pool p(ctx, fake_async_factory{}, {.max_size = 2});
    bool done = false;
    error_code got = make_error_code(errc::cancelled);
    p.async_acquire([&](error_code ec, lease_t l) {
        got = ec;
        done = static_cast<bool>(l);
    });
    CHECK_FALSE(done);  // not completed inside async_acquire
    REQUIRE(poll_until(ctx, [&] { return done; }));
    CHECK_FALSE(got);
    CHECK(p.stats().in_use == 0);  // the lease died at the end of the callback
    CHECK(p.stats().idle == 1);
}

TEST_CASE("an idle connection is also delivered by post, not inline", "[async][executor]") {
    asio::io_context ctx;
    async_pool p(ctx, fake_async_factory{}, {.min_idle = 1, .max_size = 2});
    REQUIRE(poll_until(ctx, [&] { return p.stats().idle == 1; }));
    bool done = false;
    p.async_acquire([&](error_code, lease_t) { done = true; });
    CHECK_FALSE(done);
    ctx.poll();
    CHECK(done);
}

TEST_CASE("use_future works with a pool that has no io_context of its own", "[async][future]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    std::future<lease_t> f = p.async_acquire(asio::use_future);
    lease_t l = f.get();
    REQUIRE(l);
    CHECK(l->id == 1);
}

TEST_CASE("use_future surfaces a failure as an exception", "[async][future][errors]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    p.factory().db->down = true;
    auto f = p.async_acquire(asio::use_future);
    try {
        (void)f.get();
        FAIL("expected a connect failure");
    } catch (const boost::system::system_error& e) {
        CHECK(e.code() == errc::connect_failed);
    }
}

TEST_CASE("use_awaitable acquires inside a coroutine", "[async][awaitable]") {
    asio::io_context ctx;
    async_pool p(ctx, fake_async_factory{}, {.max_size = 2});
    int id = 0;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto l = co_await p.async_acquire(asio::use_awaitable);
            id = l->id;
        },
        asio::detached);
    // Not ctx.run(): the pool's housekeeping timer keeps a user's io_context busy until close().
    REQUIRE(poll_until(ctx, [&] { return id != 0; }));
    CHECK(id == 1);
    CHECK(p.stats().in_use == 0);
}

TEST_CASE("deferred and as_tuple compose", "[async][deferred]") {
    asio::io_context ctx;
    async_pool p(ctx, fake_async_factory{}, {.max_size = 1});
    auto op = p.async_acquire(asio::deferred);
    bool done = false;
    CHECK(p.factory().db->connects == 0);  // deferred: nothing started yet
    std::move(op)([&](error_code ec, lease_t l) { done = !ec && l; });
    REQUIRE(poll_until(ctx, [&] { return done; }));

    error_code ec2;
    bool ok = false;
    asio::co_spawn(
        ctx,
        [&]() -> asio::awaitable<void> {
            auto [ec, l] = co_await p.async_acquire(asio::as_tuple(asio::use_awaitable));
            ec2 = ec;
            ok = static_cast<bool>(l);
        },
        asio::detached);
    REQUIRE(poll_until(ctx, [&] { return ok || ec2; }));
    CHECK_FALSE(ec2);
    CHECK(ok);
}

TEST_CASE("the error_info overload carries the message", "[async][errors]") {
    asio::io_context ctx;
    async_pool p(ctx, fake_async_factory{}, {.max_size = 1});
    p.factory().db->down = true;
    error_info diag;
    error_code got;
    bool done = false;
    p.async_acquire(diag, [&](error_code ec, lease_t) {
        got = ec;
        done = true;
    });
    REQUIRE(poll_until(ctx, [&] { return done; }));
    CHECK(got == errc::connect_failed);
    CHECK(diag.message == "connect failed: connection refused by fake server");
}

TEST_CASE("completion runs on the handler's associated executor", "[async][executor]") {
    asio::io_context pool_ctx;
    asio::io_context user_ctx;
    async_pool p(pool_ctx, fake_async_factory{}, {.min_idle = 1, .max_size = 1});
    REQUIRE(poll_until(pool_ctx, [&] { return p.stats().idle == 1; }));
    bool done = false;
    p.async_acquire(asio::bind_executor(user_ctx, [&](error_code, lease_t) { done = true; }));
    pool_ctx.poll();
    CHECK_FALSE(done);  // it hops to user_ctx
    user_ctx.poll();
    CHECK(done);
}

TEST_CASE("cancelling a queued acquire completes it with cancelled and keeps the queue intact",
          "[async][cancel]") {
    asio::io_context ctx;
    async_pool p(ctx, fake_async_factory{}, {.max_size = 1});
    lease_t held;
    p.async_acquire([&](error_code, lease_t l) { held = std::move(l); });
    REQUIRE(poll_until(ctx, [&] { return static_cast<bool>(held); }));

    asio::cancellation_signal sig;
    error_code cancelled_ec;
    bool cancelled_done = false;
    p.async_acquire(asio::bind_cancellation_slot(sig.slot(), [&](error_code ec, lease_t l) {
        cancelled_ec = ec;
        cancelled_done = true;
        CHECK_FALSE(l);
    }));
    bool second_done = false;
    p.async_acquire([&](error_code ec, lease_t l) { second_done = !ec && l; });
    ctx.poll();
    CHECK(p.stats().waiting == 2);

    sig.emit(asio::cancellation_type::terminal);
    REQUIRE(poll_until(ctx, [&] { return cancelled_done; }));
    CHECK(cancelled_ec == errc::cancelled);
    CHECK(p.stats().waiting == 1);
    CHECK(p.stats().cancelled == 1);

    held.release();  // goes to the next waiter, not the cancelled one
    REQUIRE(poll_until(ctx, [&] { return second_done; }));
}

TEST_CASE("cancelling an acquire does not abort the connect it started", "[async][cancel][connect]") {
    asio::io_context ctx;
    async_pool p(ctx, fake_async_factory{}, {.max_size = 1});
    p.factory().db->hang = true;
    asio::cancellation_signal sig;
    error_code ec1;
    bool done1 = false;
    p.async_acquire(asio::bind_cancellation_slot(sig.slot(), [&](error_code ec, lease_t) {
        ec1 = ec;
        done1 = true;
    }));
    REQUIRE(poll_until(ctx, [&] { return p.factory().db->connects == 1; }));
    sig.emit(asio::cancellation_type::terminal);
    REQUIRE(poll_until(ctx, [&] { return done1; }));
    CHECK(ec1 == errc::cancelled);
    CHECK(p.stats().creating == 1);  // still connecting

    bool done2 = false;
    p.async_acquire([&](error_code ec, lease_t l) { done2 = !ec && l; });
    ctx.poll();
    CHECK(p.factory().db->connects == 1);  // no second connect: the first one will serve
    fake_async_factory::complete_hung(true);
    REQUIRE(poll_until(ctx, [&] { return done2; }));
    CHECK(p.factory().db->connects == 1);
}

TEST_CASE("a coroutine destroyed while it waits leaves no waiter and no leak", "[async][cancel][lifetime]") {
    auto db = std::make_shared<fake_db>();
    {
        asio::io_context ctx;
        fake_async_factory f;
        f.db = db;
        async_pool p(ctx, std::move(f), {.max_size = 1});
        lease_t held;
        p.async_acquire([&](error_code, lease_t l) { held = std::move(l); });
        REQUIRE(poll_until(ctx, [&] { return static_cast<bool>(held); }));
        bool reached_end = false;
        asio::co_spawn(
            ctx,
            [&]() -> asio::awaitable<void> {
                auto l = co_await p.async_acquire(asio::use_awaitable);
                reached_end = true;
            },
            asio::detached);
        ctx.poll();
        CHECK(p.stats().waiting == 1);
        held.release();  // handed to the suspended coroutine; its completion is posted
        // ctx is destroyed before it runs the completion: the frame and the lease in
        // the posted handler are destroyed, and the connection goes back.
        (void)reached_end;
    }
    CHECK(db->open == 0);
}

TEST_CASE("blocking and async waiters share one FIFO queue", "[async][blocking][fairness]") {
    asio::io_context ctx;
    async_pool p(ctx, fake_async_factory{}, {.max_size = 1, .detect_nested_acquire = false});
    lease_t held;
    p.async_acquire([&](error_code, lease_t l) { held = std::move(l); });
    REQUIRE(poll_until(ctx, [&] { return static_cast<bool>(held); }));

    std::atomic<int> order{0};
    int async_pos = 0, sync_pos = 0;
    p.async_acquire([&](error_code, lease_t l) {
        async_pos = ++order;
        l.release();
    });
    std::thread t([&] {
        auto l = p.acquire();
        sync_pos = ++order;
    });
    REQUIRE(eventually([&] { return p.stats().waiting == 2; }));
    held.release();
    REQUIRE(poll_until(ctx, [&] { return order.load() == 2; }));
    t.join();
    CHECK(async_pos == 1);  // it came first
    CHECK(sync_pos == 2);
}

TEST_CASE("a cancellation that arrives after a connection was assigned is ignored", "[async][cancel]") {
    asio::io_context ctx;
    async_pool p(ctx, fake_async_factory{}, {.min_idle = 1, .max_size = 1});
    REQUIRE(poll_until(ctx, [&] { return p.stats().idle == 1; }));
    asio::cancellation_signal sig;
    error_code got = make_error_code(errc::pool_closed);
    bool have = false, done = false;
    p.async_acquire(asio::bind_cancellation_slot(sig.slot(), [&](error_code ec, lease_t l) {
        got = ec;
        have = static_cast<bool>(l);
        done = true;
    }));
    // The idle connection was assigned inside async_acquire; the completion is only posted.
    sig.emit(asio::cancellation_type::terminal);
    REQUIRE(poll_until(ctx, [&] { return done; }));
    CHECK_FALSE(got);
    CHECK(have);
    CHECK(p.stats().cancelled == 0);
}
