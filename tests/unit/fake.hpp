// Test doubles for the core: an in-memory "database" whose connects can fail, hang, be
// slow or throw, connections that can break, and a manual clock.
#ifndef CONNPOOL_TESTS_UNIT_FAKE_HPP
#define CONNPOOL_TESTS_UNIT_FAKE_HPP

#include <connpool.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace connpool::test {

namespace asio = boost::asio;
using namespace std::chrono_literals;

// Time that moves only when a test says so. Timers on it are polled (see
// detail::pool_wait_traits), so io_context::poll() after advance() fires what is due.
struct manual_clock {
    using rep = std::int64_t;
    using period = std::nano;
    using duration = std::chrono::nanoseconds;
    using time_point = std::chrono::time_point<manual_clock>;
    static constexpr bool is_steady = true;

    static time_point now() noexcept { return time_point(duration(ns.load())); }
    static void advance(duration d) noexcept { ns.fetch_add(d.count()); }

    static inline std::atomic<rep> ns{1'000'000'000'000};
};

// What every fake connection and factory shares, so a test can steer and observe the
// "database" after the factory moved into the pool.
struct fake_db {
    std::atomic<bool> down{false};           // connects fail with `refusal`
    std::atomic<bool> throw_on_connect{false};
    std::atomic<bool> hang{false};           // connects wait until released (or forever, async)
    std::atomic<bool> ping_fails{false};
    std::atomic<bool> reset_fails{false};
    std::atomic<bool> connect_timeout{false};  // connects fail with errc::connect_timeout
    std::string refusal = "connection refused by fake server";

    std::atomic<int> connects{0};       // attempts
    std::atomic<int> open{0};           // live connections
    std::atomic<int> max_open{0};       // high-water mark of open
    std::atomic<int> pings{0};
    std::atomic<int> resets{0};
    std::atomic<int> next_id{0};
    std::atomic<int> in_connect{0};     // connects in progress right now
    std::atomic<long> last_connect_timeout_ms{-1};  // what the pool passed
    std::atomic<long> last_ping_timeout_ms{-1};
    std::atomic<int> probes{0};
    std::atomic<int> killed_up_to{0};  // connections with an id up to this are dead (a "restart")
    // A frozen server: pings and resets block until the test lifts the flag (held), or a
    // ping sleeps out its whole timeout and fails (freeze_pings).
    std::atomic<bool> hold_pings{false};
    std::atomic<bool> hold_resets{false};
    std::atomic<bool> freeze_pings{false};
    std::atomic<long> max_ping_timeout_ms{-1};
    std::atomic<long> ping_timeout_total_ms{0};
    std::atomic<int> in_ping{0};
    std::atomic<int> in_reset{0};

    // Blocks while flag is set; lift() wakes every blocked call.
    void hold_while(std::atomic<bool>& flag) {
        std::unique_lock lk(m);
        cv.wait(lk, [&] { return !flag.load(); });
    }
    void lift(std::atomic<bool>& flag) {
        std::lock_guard lk(m);
        flag = false;
        cv.notify_all();
    }

    // Hanging blocking connects wait here.
    std::mutex m;
    std::condition_variable cv;
    bool released = false;

    void release_hang() {
        hang = false;
        std::lock_guard lk(m);
        released = true;
        cv.notify_all();
    }

    void opened() {
        int now = ++open;
        int seen = max_open.load();
        while (now > seen && !max_open.compare_exchange_weak(seen, now)) {
        }
    }
};

struct fake_connection {
    std::shared_ptr<fake_db> db;
    int id = 0;
    bool broken = false;   // the "driver" saw a fatal error
    bool dirty = false;    // left in a transaction
    int uses = 0;

    fake_connection(std::shared_ptr<fake_db> d, int i) : db(std::move(d)), id(i) { db->opened(); }
    fake_connection(fake_connection&& o) noexcept
        : db(std::move(o.db)), id(o.id), broken(o.broken), dirty(o.dirty), uses(o.uses) {}
    fake_connection& operator=(fake_connection&& o) noexcept {
        if (this != &o) {
            close();
            db = std::move(o.db);
            id = o.id;
            broken = o.broken;
            dirty = o.dirty;
            uses = o.uses;
        }
        return *this;
    }
    ~fake_connection() { close(); }

    void close() {
        if (db) --db->open;
        db.reset();
    }
};

// A factory with only the blocking members (Async = false), or with async_connect too.
template <bool Async>
struct basic_fake_factory {
    using connection_type = fake_connection;
    std::shared_ptr<fake_db> db = std::make_shared<fake_db>();

    std::optional<fake_connection> connect(const connect_request& r, error_info& e) {
        ++db->connects;
        db->last_connect_timeout_ms = r.timeout.count();
        ++db->in_connect;
        struct leave {
            fake_db& d;
            ~leave() { --d.in_connect; }
        } guard{*db};
        if (db->hang) {
            std::unique_lock lk(db->m);
            db->cv.wait(lk, [&] { return db->released; });
        }
        return outcome(e);
    }

    void async_connect(const connect_request& r, asio::any_io_executor ex, connect_handler<fake_connection> h)
        requires Async
    {
        ++db->connects;
        db->last_connect_timeout_ms = r.timeout.count();
        if (db->hang) {
            // Never completes until the test calls complete_hung().
            std::lock_guard lk(pending_m());
            pending().push_back({ex, std::move(h), db});
            return;
        }
        error_info e;
        auto c = outcome(e);
        asio::post(ex, [h = std::move(h), e = std::move(e), c = std::move(c)]() mutable {
            std::move(h)(std::move(e), std::move(c));
        });
    }

    bool ping(fake_connection& c, std::chrono::milliseconds timeout, error_info& e) {
        ++db->pings;
        db->last_ping_timeout_ms = timeout.count();
        db->ping_timeout_total_ms += timeout.count();
        long seen = db->max_ping_timeout_ms.load();
        while (timeout.count() > seen && !db->max_ping_timeout_ms.compare_exchange_weak(seen, timeout.count())) {
        }
        ++db->in_ping;
        struct leave {
            fake_db& d;
            ~leave() { --d.in_ping; }
        } guard{*db};
        db->hold_while(db->hold_pings);
        if (db->freeze_pings) {
            std::this_thread::sleep_for(timeout);
            e = error_info{make_error_code(errc::ping_failed), "fake ping timed out"};
            return false;
        }
        if (db->ping_fails || c.broken || db->down) {
            e = error_info{make_error_code(errc::ping_failed), "fake ping failed"};
            return false;
        }
        return true;
    }

    bool reset(fake_connection& c, error_info&) {
        ++db->resets;
        ++db->in_reset;
        struct leave {
            fake_db& d;
            ~leave() { --d.in_reset; }
        } guard{*db};
        db->hold_while(db->hold_resets);
        if (db->reset_fails) return false;
        c.dirty = false;
        return true;
    }

    bool needs_reset(const fake_connection& c) const { return c.dirty; }
    bool is_broken(const fake_connection& c) const { return c.broken; }

    // Only the async fake probes, so that the blocking tests' idle counts never see a
    // connection that housekeeping is probing.
    bool probe(fake_connection& c)
        requires Async
    {
        ++db->probes;
        return c.id > db->killed_up_to;
    }

    std::optional<fake_connection> outcome(error_info& e) {
        if (db->throw_on_connect) throw std::runtime_error("fake factory exploded");
        if (db->connect_timeout) {
            e = error_info{make_error_code(errc::connect_timeout), "fake server did not answer within 10 ms"};
            return std::nullopt;
        }
        if (db->down) {
            e = error_info{make_error_code(errc::connect_failed), db->refusal};
            return std::nullopt;
        }
        return fake_connection(db, ++db->next_id);
    }

    // Hung async connects, completed on demand.
    struct hung {
        asio::any_io_executor ex;
        connect_handler<fake_connection> handler;
        std::shared_ptr<fake_db> db;
    };
    static std::mutex& pending_m() {
        static std::mutex m;
        return m;
    }
    static std::vector<hung>& pending() {
        static std::vector<hung> v;
        return v;
    }
    static void complete_hung(bool succeed) {
        std::vector<hung> all;
        {
            std::lock_guard lk(pending_m());
            all.swap(pending());
        }
        for (auto& h : all) {
            std::optional<fake_connection> c;
            error_info e;
            if (succeed) {
                c.emplace(h.db, ++h.db->next_id);
            } else {
                e = error_info{make_error_code(errc::connect_failed), "hung connect gave up"};
            }
            asio::post(h.ex, [hd = std::move(h.handler), e = std::move(e), c = std::move(c)]() mutable {
                std::move(hd)(std::move(e), std::move(c));
            });
        }
    }
};

using fake_factory = basic_fake_factory<false>;
using fake_async_factory = basic_fake_factory<true>;

static_assert(connection_factory<fake_factory>);
static_assert(!detail::has_async_connect<fake_factory>);
static_assert(detail::has_async_connect<fake_async_factory>);

// The smallest factory: connect() and nothing else.
struct minimal_factory {
    using connection_type = int;
    std::shared_ptr<std::atomic<int>> made = std::make_shared<std::atomic<int>>(0);
    std::optional<int> connect(const connect_request&, error_info&) { return ++*made; }
};

// Polls ctx until pred() holds or `rounds` polls went by; for tests driven by an
// io_context whose work may come from the pool's worker threads too.
template <class Pred>
bool poll_until(asio::io_context& ctx, Pred pred, int rounds = 20000) {
    for (int i = 0; i < rounds; ++i) {
        ctx.poll();
        ctx.restart();
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
    return pred();
}

// Waits (bounded) for a condition that background threads make true.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
    const auto end = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return pred();
}

}  // namespace connpool::test

#endif  // CONNPOOL_TESTS_UNIT_FAKE_HPP
