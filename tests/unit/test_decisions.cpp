// The pool's pure decisions, without threads, timers or connections.
#include "connpool_catch.hpp"

#include <connpool/detail/decisions.hpp>
#include <connpool/detail/histogram.hpp>

using namespace connpool::detail;
using namespace std::chrono_literals;

namespace {
creation_policy policy(std::size_t max_size, std::size_t min_idle, std::size_t max_connecting = 2) {
    creation_policy p;
    p.max_size = max_size;
    p.min_idle = min_idle;
    p.max_connecting = max_connecting;
    return p;
}
}  // namespace

TEST_CASE("a waiter with nothing open starts a connect", "[decisions][create]") {
    CHECK(connects_to_start({.waiting = 1}, policy(4, 0)) == 1);
}

TEST_CASE("waiters already covered by connects in flight start nothing more", "[decisions][create]") {
    CHECK(connects_to_start({.connecting = 2, .waiting = 2}, policy(10, 0)) == 0);
}

TEST_CASE("an empty pool opens up to max_connecting at once", "[decisions][create]") {
    CHECK(connects_to_start({.waiting = 10}, policy(10, 0, 2)) == 2);
    CHECK(connects_to_start({.waiting = 10}, policy(10, 0, 5)) == 5);
}

TEST_CASE("while leases are out the pool connects one at a time", "[decisions][create][burst]") {
    // HikariCP's spike test: 5 warm connections leased, 45 callers waiting.
    CHECK(connects_to_start({.open = 5, .in_use = 5, .waiting = 45}, policy(50, 5, 4)) == 1);
    CHECK(connects_to_start({.open = 5, .connecting = 1, .in_use = 5, .waiting = 44}, policy(50, 5, 4)) == 0);
}

TEST_CASE("connects never take the pool past max_size", "[decisions][create]") {
    CHECK(connects_to_start({.open = 3, .connecting = 1, .waiting = 9}, policy(4, 0)) == 0);
    CHECK(connects_to_start({.open = 3, .waiting = 9}, policy(4, 0, 4)) == 0 + 1);
}

TEST_CASE("min_idle is topped up when nothing is leased", "[decisions][create][min_idle]") {
    CHECK(connects_to_start({}, policy(10, 3, 8)) == 3);
    CHECK(connects_to_start({.open = 2, .idle = 2}, policy(10, 3)) == 1);
    CHECK(connects_to_start({.open = 3, .idle = 3}, policy(10, 3)) == 0);
}

TEST_CASE("nothing starts during backoff or after close", "[decisions][create][backoff]") {
    auto p = policy(10, 3);
    p.in_backoff = true;
    CHECK(connects_to_start({.waiting = 4}, p) == 0);
    p.in_backoff = false;
    p.closed = true;
    CHECK(connects_to_start({.waiting = 4}, p) == 0);
}

TEST_CASE("backoff doubles up to its cap, with jitter between half and all of it", "[decisions][backoff]") {
    CHECK(backoff_delay(0, 100ms, 10s, 0.0) == 0ms);
    CHECK(backoff_delay(1, 100ms, 10s, 1.0) == 100ms);
    CHECK(backoff_delay(2, 100ms, 10s, 1.0) == 200ms);
    CHECK(backoff_delay(4, 100ms, 10s, 1.0) == 800ms);
    CHECK(backoff_delay(4, 100ms, 10s, 0.0) == 400ms);
    CHECK(backoff_delay(30, 100ms, 10s, 1.0) == 10s);
    CHECK(backoff_delay(1000, 100ms, 10s, 1.0) == 10s);
}

TEST_CASE("lifetime jitter only shortens, by at most its fraction", "[decisions][lifetime]") {
    CHECK(jittered_lifetime(1000s, 0.025, 0.0) == 1000s);
    CHECK(jittered_lifetime(1000s, 0.025, 1.0) == 975s);
    CHECK(jittered_lifetime(1000s, 0.025, 0.5) == 987500ms);
    CHECK(jittered_lifetime(0ms, 0.025, 0.7) == 0ms);
}

TEST_CASE("idle connections close by rank: expired first, then max_idle, then idle timeout above min_idle",
          "[decisions][idle]") {
    const idle_policy p{.min_idle = 2, .max_idle = 4, .idle_timeout = 10min};
    CHECK(judge_idle({.expired = true, .idle_rank = 0}, p) == idle_verdict::lifetime);
    CHECK(judge_idle({.idle_for = 1s, .idle_rank = 4}, p) == idle_verdict::max_idle);
    CHECK(judge_idle({.idle_for = 11min, .idle_rank = 1}, p) == idle_verdict::keep);  // min_idle keeps the warmest
    CHECK(judge_idle({.idle_for = 11min, .idle_rank = 2}, p) == idle_verdict::idle_timeout);
    CHECK(judge_idle({.idle_for = 9min, .idle_rank = 3}, p) == idle_verdict::keep);
    const idle_policy never{.min_idle = 0, .max_idle = 0, .idle_timeout = 0ms};
    CHECK(judge_idle({.idle_for = 100h, .idle_rank = 50}, never) == idle_verdict::keep);
}

TEST_CASE("validation pings by mode and idle time", "[decisions][validation]") {
    using connpool::validation_mode;
    CHECK_FALSE(needs_validation(validation_mode::optimistic, 1h, 1s));
    CHECK(needs_validation(validation_mode::always, 0s, 1s));
    CHECK(needs_validation(validation_mode::when_idle, 2s, 1s));
    CHECK_FALSE(needs_validation(validation_mode::when_idle, 500ms, 1s));
}

TEST_CASE("the duration histogram reports percentiles counting zero waits in its first bucket", "[decisions][stats]") {
    connpool::duration_histogram h;
    CHECK(quantile(h, 0.5, 0us) == 0us);
    h.buckets[0] += 89;  // acquires served at once
    h.count += 89;
    for (int i = 0; i < 10; ++i) record(h, 1000us);  // bucket up to 1024 us
    record(h, 1s);
    CHECK(h.count == 100);
    CHECK(quantile(h, 0.5, 1s) == 0us);
    CHECK(quantile(h, 0.95, 1s) > 500us);
    CHECK(quantile(h, 0.95, 1s) <= 1024us);
    CHECK(quantile(h, 1.0, 1s) == 1s);
    CHECK(h.sum == 1s + 10 * 1000us);
}

TEST_CASE("burst elision counts connections being reset as coming back", "[decisions][creation]") {
    // One waiter, its connection being reset: no connect (defect 15).
    CHECK(connects_to_start({.open = 1, .connecting = 0, .idle = 0, .in_use = 1, .waiting = 1, .coming_back = 1},
                            {.max_size = 8, .min_idle = 0, .max_connecting = 2}) == 0);
    CHECK(connects_to_start({.open = 1, .connecting = 0, .idle = 0, .in_use = 1, .waiting = 2, .coming_back = 1},
                            {.max_size = 8, .min_idle = 0, .max_connecting = 2}) == 1);
}
