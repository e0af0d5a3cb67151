// The mixed stress of issue 20 (defects 8 and 9): blocking threads and coroutines on a busy
// io_context of the user's, with labels, tenants added and removed, validation, dirty and
// discarded returns, resize, retire_all and short async timeouts, all at once. Run under
// ASan+UBSan and TSan by the test command (label unit). It checks what must hold whatever
// the interleaving: every lease carries the label it asked for, the counts never wrap,
// every acquire ends by its deadline (plus scheduling slack), and the pool drains to zero.
#include "connpool_catch.hpp"
#include "fake.hpp"
#include "label_fake.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

using namespace connpool;
using namespace connpool::test;
using namespace std::chrono_literals;

namespace {

const label labels[] = {label{}, label{{"search_path", "a"}}, label{{"search_path", "b"}, {"role", "r"}}};

struct tally {
    std::atomic<int> served{0};
    std::atomic<int> failed{0};
    std::atomic<int> wrong_label{0};
    std::atomic<long> worst_overshoot_ms{0};  // how far past its deadline an acquire ended
    std::atomic<bool> wrapped{false};         // a count in stats() went below zero

    void overshoot(std::chrono::steady_clock::duration d) {
        const long ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
        long seen = worst_overshoot_ms.load();
        while (ms > seen && !worst_overshoot_ms.compare_exchange_weak(seen, ms)) {
        }
    }
};

template <class Lease>
void check_label(const Lease& l, const label& want, const sessions& srv_const, tally& t) {
    auto& srv = const_cast<sessions&>(srv_const);
    if (!(srv.of(l->id) == want)) ++t.wrong_label;
}

}  // namespace

TEST_CASE("a mixed load of threads and coroutines with labels, tenants, resize and retire keeps every promise",
          "[unit][stress][handoff]") {
    asio::io_context ctx;
    label_factory f;
    auto srv = f.srv;
    auto db = f.db;
    options o;
    o.max_size = 4;
    o.acquire_timeout = 200ms;
    o.validation = validation_mode::always;
    o.ping_timeout = 50ms;
    o.connect_timeout = 200ms;
    o.housekeeping_interval = 20ms;
    auto p = std::make_unique<pool<label_factory>>(ctx, f, o);
    p->add_tenant(tenant_id{1}, tenant_options{.quota = 3, .weight = 2});
    p->add_tenant(tenant_id{2}, tenant_options{.quota = 2, .weight = 1});

    std::atomic<bool> stop{false};
    tally t;
    auto guard = asio::make_work_guard(ctx);
    std::vector<std::thread> io;
    for (int i = 0; i < 2; ++i) io.emplace_back([&] { ctx.run(); });

    // The user's executor is busy: a handler that hogs it for 2 ms, again and again.
    asio::steady_timer hog(ctx);
    std::function<void()> rearm = [&] {
        hog.expires_after(3ms);
        hog.async_wait([&](error_code ec) {
            if (ec || stop) return;
            std::this_thread::sleep_for(2ms);
            rearm();
        });
    };
    asio::post(ctx, rearm);

    std::vector<std::thread> threads;
    for (int i = 0; i < 4; ++i) {
        threads.emplace_back([&, i] {
            std::mt19937 rng(static_cast<unsigned>(i));
            while (!stop) {
                const label& want = labels[rng() % 3];
                const tenant_id who{1 + static_cast<std::uint32_t>(rng() % 2)};
                const auto timeout = 200ms;
                const auto start = std::chrono::steady_clock::now();
                error_code ec;
                auto l = p->acquire_for(who, want, timeout, ec);
                const auto took = std::chrono::steady_clock::now() - start;
                if (took > timeout) t.overshoot(took - timeout);
                if (ec) {
                    ++t.failed;
                    continue;
                }
                ++t.served;
                check_label(l, want, *srv, t);
                std::this_thread::sleep_for(std::chrono::microseconds(rng() % 200));
                switch (rng() % 8) {
                case 0: l.discard(); break;
                case 1: l->dirty = true; break;
                default: break;
                }
                l.release();
            }
        });
    }

    for (int i = 0; i < 3; ++i) {
        asio::co_spawn(
            ctx,
            [&, i]() -> asio::awaitable<void> {
                std::mt19937 rng(static_cast<unsigned>(100 + i));
                asio::steady_timer q(co_await asio::this_coro::executor);
                for (int n = 0; !stop; ++n) {
                    const auto start = std::chrono::steady_clock::now();
                    if (n % 2 == 0) {
                        const label& want = labels[rng() % 3];
                        auto [ec, l] = co_await p->async_acquire(want, asio::as_tuple(asio::use_awaitable));
                        if (ec) {
                            ++t.failed;
                            continue;
                        }
                        ++t.served;
                        check_label(l, want, *srv, t);
                        q.expires_after(std::chrono::microseconds(rng() % 300));
                        co_await q.async_wait(asio::as_tuple(asio::use_awaitable));
                    } else {
                        const auto timeout = std::chrono::milliseconds(rng() % 3);
                        auto [ec, l] = co_await p->async_acquire_for(
                            tenant_id{1 + static_cast<std::uint32_t>(rng() % 2)}, timeout,
                            asio::as_tuple(asio::use_awaitable));
                        (void)start;
                        if (ec) {
                            ++t.failed;
                            continue;
                        }
                        ++t.served;
                        check_label(l, label{}, *srv, t);
                    }
                }
            },
            asio::detached);
    }

    // Control: resize, min_idle, tenants removed and added, retire_all, stats every 15 ms.
    std::mt19937 rng(7);
    const auto until = std::chrono::steady_clock::now() + 2s;
    for (int round = 0; std::chrono::steady_clock::now() < until; ++round) {
        std::this_thread::sleep_for(15ms);
        p->set_max_size(2 + rng() % 5);
        p->set_min_idle(rng() % 2);
        if (round % 6 == 0) p->retire_all();
        if (round % 4 == 0) {
            p->add_tenant(tenant_id{3}, tenant_options{.quota = 1});
        } else if (round % 4 == 2) {
            p->remove_tenant(tenant_id{3});
        }
        const auto st = p->stats();
        if (st.open > 1000000 || st.creating > 1000000 || st.waiting > 1000000) t.wrapped = true;
    }
    stop = true;
    for (auto& th : threads) th.join();
    // Let the coroutines see stop (their acquires end by their deadlines), then drain.
    std::this_thread::sleep_for(300ms);
    const bool drained = p->drain(5s);
    guard.reset();
    hog.cancel();
    for (auto& th : io) th.join();
    p.reset();

    INFO("served " << t.served << ", failed " << t.failed << ", worst overshoot " << t.worst_overshoot_ms << " ms");
    CHECK(t.served > 100);
    CHECK(t.wrong_label == 0);
    CHECK(srv->wrong_from == 0);
    CHECK_FALSE(t.wrapped);
    // A deadline plus 10 %, or 50 ms on a loaded 2-core runner under TSan, whichever is more.
    CHECK(t.worst_overshoot_ms <= 50);
    CHECK(drained);
    CHECK(db->open == 0);
}
