// connpool internals: the pool's decisions as pure functions of counts, time and options,
// so that they are tested without threads, timers or connections.
#ifndef CONNPOOL_DETAIL_DECISIONS_HPP
#define CONNPOOL_DETAIL_DECISIONS_HPP

#include <connpool/options.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>

namespace connpool::detail {

// What the pool knows when it decides whether to open connections.
struct pool_counts {
    std::size_t open = 0;        // connections that exist (idle, leased, busy)
    std::size_t connecting = 0;  // connects in flight
    std::size_t idle = 0;
    std::size_t in_use = 0;  // leased or busy: they will come back
    std::size_t waiting = 0;
    // Connections on their way back to the queue soon: being reset, or idle (while others
    // wait, an idle one is there for barging, handoff_policy::barging, and reaches a waiter
    // within the starvation bound). A waiter they will serve needs no connect of its own.
    std::size_t coming_back = 0;
};

struct creation_policy {
    std::size_t max_size = 0;
    std::size_t min_idle = 0;
    std::size_t max_connecting = 1;
    bool in_backoff = false;  // a connect failed recently and its backoff has not elapsed
    bool closed = false;
};

// How many connects to start now.
// - Demand is the waiters not already covered by a connect in flight or a connection
//   coming back (being reset: with reset on return, a sequential caller must not grow
//   the pool at every return), or the idle
//   connections missing below min_idle, whichever is larger.
// - While leases are out, they will come back and serve waiters, so one connect at a time
//   is enough: this is what keeps a burst from leaving a storm of connections behind.
// - During backoff nothing starts; housekeeping retries when it ends.
inline std::size_t connects_to_start(const pool_counts& c, const creation_policy& p) noexcept {
    if (p.closed || p.in_backoff) return 0;
    const std::size_t used = c.open + c.connecting;
    if (used >= p.max_size) return 0;
    const std::size_t covered = c.connecting + c.coming_back;
    const std::size_t for_waiters = c.waiting > covered ? c.waiting - covered : 0;
    const std::size_t have_idle = c.idle + c.connecting;
    const std::size_t for_min_idle = p.min_idle > have_idle ? p.min_idle - have_idle : 0;
    const std::size_t demand = std::max(for_waiters, for_min_idle);
    const std::size_t in_flight_limit = c.in_use > 0 ? 1 : p.max_connecting;
    if (c.connecting >= in_flight_limit) return 0;
    return std::min({demand, p.max_size - used, in_flight_limit - c.connecting});
}

// Backoff before the next connect after `failures` consecutive failures (>= 1):
// initial * 2^(failures-1), capped, then scaled by a factor in [0.5, 1] drawn from unit
// (a uniform random number in [0, 1)) so that many clients do not retry in lockstep.
inline std::chrono::milliseconds backoff_delay(unsigned failures, std::chrono::milliseconds initial,
                                               std::chrono::milliseconds cap, double unit) noexcept {
    if (failures == 0) return std::chrono::milliseconds(0);
    const unsigned shift = std::min(failures - 1, 30u);
    const auto raw = initial.count() > (cap.count() >> shift) ? cap.count() : initial.count() << shift;
    const auto capped = std::min<std::int64_t>(raw, cap.count());
    const double factor = 0.5 + 0.5 * std::clamp(unit, 0.0, 1.0);
    return std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(capped) * factor));
}

// A connection's lifetime with its jitter, fixed once when it opens: max_lifetime minus a
// random part (unit in [0, 1)) of jitter * max_lifetime. Zero means no limit.
inline std::chrono::milliseconds jittered_lifetime(std::chrono::milliseconds max_lifetime, double jitter,
                                                   double unit) noexcept {
    if (max_lifetime.count() == 0) return max_lifetime;
    const double cut = static_cast<double>(max_lifetime.count()) * jitter * std::clamp(unit, 0.0, 1.0);
    return std::chrono::milliseconds(max_lifetime.count() - static_cast<std::int64_t>(cut));
}

// Why an idle connection should close now, if it should.
enum class idle_verdict { keep, lifetime, idle_timeout, max_idle };

struct idle_facts {
    bool expired = false;         // lifetime reached or retired
    std::chrono::nanoseconds idle_for{};
    std::size_t idle_rank = 0;    // 0 = most recently used
    std::size_t idle_count = 0;   // idle connections in all
};

struct idle_policy {
    std::size_t min_idle = 0;
    std::size_t max_idle = 0;  // 0 = no limit
    std::chrono::nanoseconds idle_timeout{};  // 0 = never
};

// Idle connections are judged most recently used first, so the ones that close are the
// coldest, and min_idle keeps the warmest.
inline idle_verdict judge_idle(const idle_facts& f, const idle_policy& p) noexcept {
    if (f.expired) return idle_verdict::lifetime;
    if (p.max_idle != 0 && f.idle_rank >= p.max_idle) return idle_verdict::max_idle;
    if (p.idle_timeout.count() > 0 && f.idle_rank >= p.min_idle && f.idle_for >= p.idle_timeout)
        return idle_verdict::idle_timeout;
    return idle_verdict::keep;
}

// Whether a connection about to be handed out must be pinged first.
inline bool needs_validation(validation_mode mode, std::chrono::nanoseconds idle_for,
                             std::chrono::nanoseconds threshold) noexcept {
    switch (mode) {
    case validation_mode::always: return true;
    case validation_mode::when_idle: return idle_for >= threshold;
    case validation_mode::optimistic: return false;
    }
    return false;
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_DECISIONS_HPP
