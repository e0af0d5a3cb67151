// A bounded multi-threaded stress run: blocking threads and coroutines hammer one pool
// with random holds, discards, timeouts and cancellations. Afterwards the invariants
// must hold: never more than max_size open, no connection held twice at once, every
// lease back, no waiter left behind.
#include "connpool_catch.hpp"
#include "fake.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <cstdio>
#include <memory>
#include <random>
#include <thread>
#include <vector>

using namespace connpool;
using namespace connpool::test;

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int iterations = 5'000;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr int iterations = 5'000;
#else
constexpr int iterations = 100'000;
#endif
#else
constexpr int iterations = 100'000;
#endif

// Who holds connection id i right now: 0 or 1, never 2.
struct holders {
    std::vector<std::atomic<int>> by_id = std::vector<std::atomic<int>>(1 << 20);
    std::atomic<int> double_holds{0};

    void enter(int id) {
        if (by_id[static_cast<std::size_t>(id)].fetch_add(1) != 0) ++double_holds;
    }
    void leave(int id) { by_id[static_cast<std::size_t>(id)].fetch_sub(1); }
};

}  // namespace

TEST_CASE("16 workers with random holds, discards, timeouts and cancels keep every invariant",
          "[stress][threads][async]") {
    using namespace boost::asio::experimental::awaitable_operators;
    constexpr std::size_t max_size = 4;
    asio::io_context ctx;
    pool<fake_factory> p(ctx, fake_factory{},
                         {.max_size = max_size, .acquire_timeout = 2ms, .detect_nested_acquire = false});
    auto db = p.factory().db;
    holders h;
    std::atomic<long> ok{0}, failed{0}, unexpected{0};  // Catch2 asserts only on the test thread

    auto use = [&](pool<fake_factory>::lease_type& l, std::mt19937& rng) {
        const int id = l->id;
        h.enter(id);
        const int r = static_cast<int>(rng() % 100);
        if (r < 10) std::this_thread::yield();
        if (r < 2) std::this_thread::sleep_for(std::chrono::microseconds(50));
        h.leave(id);
        if (r >= 97) {
            l.discard();
        } else if (r >= 94) {
            l->dirty = true;  // needs a reset on return
        }
    };

    std::vector<std::thread> threads;
    for (int t = 0; t < 12; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t));
            for (int i = 0; i < iterations / 16; ++i) {
                error_code ec;
                auto l = p.acquire(ec);
                if (!l) {
                    if (ec != errc::acquire_timeout) {
                        ++unexpected;
                        std::fprintf(stderr, "unexpected blocking error: %s\n", ec.message().c_str());
                    }
                    ++failed;
                    continue;
                }
                ++ok;
                use(l, rng);
            }
        });
    }
    // Four coroutines race each acquire against a short timer: the loser is cancelled.
    std::atomic<int> coroutines_done{0};
    for (int c = 0; c < 4; ++c) {
        asio::co_spawn(
            asio::make_strand(ctx),
            [&, c]() -> asio::awaitable<void> {
                std::mt19937 rng(static_cast<unsigned>(100 + c));
                asio::steady_timer timer(co_await asio::this_coro::executor);
                for (int i = 0; i < iterations / 16; ++i) {
                    timer.expires_after(std::chrono::microseconds(rng() % 200));
                    auto res = co_await (p.async_acquire(asio::as_tuple(asio::use_awaitable)) ||
                                         timer.async_wait(asio::as_tuple(asio::use_awaitable)));
                    if (res.index() == 0) {
                        auto& [ec, l] = std::get<0>(res);
                        if (l) {
                            ++ok;
                            use(l, rng);
                        } else {
                            if (ec != errc::acquire_timeout && ec != errc::cancelled) {
                                ++unexpected;
                                std::fprintf(stderr, "unexpected async error: %s\n", ec.message().c_str());
                            }
                            ++failed;
                        }
                    } else {
                        ++failed;  // the timer won; the acquire was cancelled
                    }
                }
                ++coroutines_done;
            },
            asio::detached);
    }
    std::thread io1([&] { ctx.run(); });
    std::thread io2([&] { ctx.run(); });
    for (auto& t : threads) t.join();
    CHECK(eventually([&] { return coroutines_done == 4; }, std::chrono::seconds(120)));
    // The pool's housekeeping timer keeps ctx busy, so stop it by hand.
    ctx.stop();
    io1.join();
    io2.join();

    CHECK(h.double_holds == 0);
    CHECK(unexpected == 0);
    CHECK(db->max_open <= static_cast<int>(max_size));
    CHECK(ok > 0);
    REQUIRE(eventually([&] {
        const auto s = p.stats();
        return s.in_use == 0 && s.waiting == 0 && s.creating == 0;
    }));
    const auto s = p.stats();
    CHECK(s.open == s.idle);                       // nothing stuck in reset or closing
    CHECK(static_cast<int>(s.open) == db->open);  // the pool's count matches reality
    // A coroutine whose timer won while its lease was already on the way drops that lease
    // unused: it was acquired and returned, but not counted as ok.
    CHECK(s.acquired >= static_cast<std::uint64_t>(ok.load()));
    CHECK(s.acquired <= static_cast<std::uint64_t>(ok.load() + failed.load()));
    INFO("ok=" << ok << " failed=" << failed << " created=" << s.created);
}
