// connpool: a sizing advisor. Fed successive stats() snapshots with the time each was
// taken, it measures over a recent window the acquire rate, the mean hold time (from the
// use_time histogram) and the wait percentiles, and recommends a max_size:
//
//   busy connections = arrival rate x mean hold       (Little's law)
//   max_size         = the smallest c whose queue meets the wait target, read as M/M/c:
//                      P(wait > target) = ErlangC(c, busy) * exp(-(c - busy) * target / hold)
//
// plus the budget headroom against the server's max_connections shared by every instance.
// It reads only what stats() returns: no hooks, nothing paid on the acquire path.
#ifndef CONNPOOL_ADVISOR_HPP
#define CONNPOOL_ADVISOR_HPP

#include <connpool/detail/histogram.hpp>
#include <connpool/sizing/budget.hpp>
#include <connpool/stats.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <sstream>
#include <string>

namespace connpool {

// What the advice aims for, and the server budget it must fit in.
struct advice_target {
    std::chrono::microseconds wait{5000};  // the wait ...
    double quantile = 0.99;                // ... that this share of acquires stays within
    std::chrono::seconds window{60};       // how far back the measurements reach
    std::size_t max_connections = 0;       // the server's max_connections; 0: not checked
    std::size_t reserved = 0;              // of those, not for applications (superuser_reserved_connections)
    std::size_t instances = 1;             // application instances, each with a pool like this one
    // The budget rule (docs/scale-out.md): all instances together hold at most this share
    // of max_connections - reserved, as pg::check_budget and pg::auto_budget count it.
    double budget_share = 0.8;
};

// What the advisor recommends, and the measurements it is based on.
struct advice {
    bool measured = false;              // false until two snapshots with acquires in between
    double window_s = 0;                // the span actually measured
    double arrival_rate = 0;            // acquires per second, those that failed included
    // The mean time a lease was held, from the use_time histogram's deltas.
    std::chrono::microseconds mean_hold{};
    double busy = 0;                    // arrival_rate x mean_hold: connections in use on average
    // Acquire-wait percentiles over the window (upper bucket edges).
    std::chrono::microseconds wait_p50{}, wait_p99{};  // over the window (upper bucket edges)
    std::uint64_t timeouts = 0;         // over the window
    std::uint64_t connect_failures = 0; // over the window
    // The pool's max_size when the advice was computed.
    std::size_t current_max_size = 0;
    std::size_t max_size = 0;           // the recommendation
    std::size_t budget_per_instance = 0;  // share x (max_connections - reserved) / instances; 0: unknown
    long budget_headroom = 0;             // budget_per_instance - max_size (negative: over budget)
    // Why: the rates, the sizes and the budget, in one sentence for a person.
    std::string reason;
};

namespace detail {

// P(an arrival waits) in M/M/c with offered load a (Erlang C), through the stable Erlang B
// recursion. c must exceed a.
inline double erlang_c(std::size_t c, double a) noexcept {
    double b = 1.0;
    for (std::size_t k = 1; k <= c; ++k) b = a * b / (static_cast<double>(k) + a * b);
    const double cd = static_cast<double>(c);
    return cd * b / (cd - a * (1.0 - b));
}

// The smallest c meeting P(wait > target) <= 1 - quantile for load a and mean hold h.
inline std::size_t servers_for(double a, double hold_s, double target_s, double quantile) noexcept {
    if (a <= 0) return 1;
    const double allowed = std::max(1e-9, 1.0 - quantile);
    auto c = static_cast<std::size_t>(std::floor(a)) + 1;
    // Bounded: far above any pool; P(wait) falls off fast once c exceeds a by a few sqrt(a).
    for (const std::size_t stop = c + 10000; c < stop; ++c) {
        const double p_wait = erlang_c(c, a);
        const double tail = hold_s > 0 ? std::exp(-(static_cast<double>(c) - a) * target_s / hold_s) : 0.0;
        if (p_wait * tail <= allowed) return c;
    }
    return c;
}

inline duration_histogram histogram_minus(const duration_histogram& a, const duration_histogram& b) noexcept {
    duration_histogram d;
    for (std::size_t i = 0; i < duration_histogram::bucket_count; ++i) {
        d.buckets[i] = a.buckets[i] >= b.buckets[i] ? a.buckets[i] - b.buckets[i] : 0;
        d.count += d.buckets[i];
    }
    d.sum = a.sum > b.sum ? a.sum - b.sum : std::chrono::nanoseconds(0);
    return d;
}

}  // namespace detail

// Not thread-safe: one advisor per pool, fed by one thread (a metrics loop, a timer).
class advisor {
public:
    // The clock of the windows over which rates and percentiles are measured.
    using time_point = std::chrono::steady_clock::time_point;

    // An advisor aiming at target t.
    explicit advisor(advice_target t = {}) : target_(t) {}

    // The target the advisor aims at.
    const advice_target& target() const noexcept { return target_; }

    // Adds a snapshot taken at t (times must not go backwards) and advises from the window.
    advice observe(const pool_stats& s, time_point t) {
        history_.push_back({t, s});
        // Keep one snapshot at or before the window's start, as the base of the deltas.
        while (history_.size() > 2 && history_[1].t <= t - target_.window) history_.pop_front();
        last_ = advise_from(history_.front(), history_.back());
        return last_;
    }

    // The last advice computed.
    const advice& last() const noexcept { return last_; }

private:
    struct entry {
        time_point t;
        pool_stats s;
    };

    advice advise_from(const entry& base, const entry& now) const {
        advice a;
        a.current_max_size = now.s.max_size;
        a.max_size = now.s.max_size;
        if (target_.max_connections != 0) {
            a.budget_per_instance = sizing::budget_per_instance(target_.max_connections, target_.reserved,
                                                                target_.budget_share, target_.instances);
        }
        a.window_s = std::chrono::duration<double>(now.t - base.t).count();
        const auto d = [&](std::uint64_t pool_stats::*m) { return now.s.*m >= base.s.*m ? now.s.*m - base.s.*m : 0; };
        const std::uint64_t served = d(&pool_stats::acquired);
        const std::uint64_t failed = d(&pool_stats::timeouts) + d(&pool_stats::rejected) + d(&pool_stats::fast_failed);
        a.timeouts = d(&pool_stats::timeouts);
        a.connect_failures = d(&pool_stats::connect_failures);
        const auto use = detail::histogram_minus(now.s.use_time, base.s.use_time);
        const auto wait = detail::histogram_minus(now.s.wait_time, base.s.wait_time);
        // A window's difference has no longest sample: its bucket's upper edge it is.
        a.wait_p50 = detail::quantile(wait, 0.50, std::chrono::microseconds::max());
        a.wait_p99 = detail::quantile(wait, 0.99, std::chrono::microseconds::max());
        if (a.window_s <= 0 || served + failed == 0 || use.count == 0) {
            a.reason = "not enough data yet: keep max_size " + std::to_string(a.max_size);
            a.budget_headroom = headroom(a);
            return a;
        }
        a.measured = true;
        a.arrival_rate = static_cast<double>(served + failed) / a.window_s;
        const double hold_s = std::chrono::duration<double>(use.sum).count() / static_cast<double>(use.count);
        a.mean_hold = std::chrono::microseconds(static_cast<std::int64_t>(hold_s * 1e6));
        a.busy = a.arrival_rate * hold_s;
        const double target_s = std::chrono::duration<double>(target_.wait).count();
        a.max_size = detail::servers_for(a.busy, hold_s, target_s, target_.quantile);
        a.budget_headroom = headroom(a);
        a.reason = explain(a);
        return a;
    }

    // 0.99 -> "99", 0.999 -> "99.9".
    static std::string percent_text(double q) {
        std::ostringstream os;
        os << q * 100;
        return os.str();
    }

    static long headroom(const advice& a) noexcept {
        return a.budget_per_instance == 0 ? 0
                                          : static_cast<long>(a.budget_per_instance) - static_cast<long>(a.max_size);
    }

    std::string explain(const advice& a) const {
        std::ostringstream os;
        os.setf(std::ios::fixed);
        os.precision(1);
        os << a.arrival_rate << " acquires/s x " << static_cast<double>(a.mean_hold.count()) / 1000.0
           << " ms mean hold = " << a.busy << " connections busy (Little's law); p"
           << percent_text(target_.quantile) << " wait <= " << static_cast<double>(target_.wait.count()) / 1000.0
           << " ms needs " << a.max_size << " (M/M/c, Erlang C)";
        os << "; measured p99 wait " << static_cast<double>(a.wait_p99.count()) / 1000.0 << " ms at max_size "
           << a.current_max_size;
        if (a.timeouts > 0) os << ", " << a.timeouts << " timeouts";
        if (a.connect_failures > 0) os << ", " << a.connect_failures << " connect failures (server overloaded?)";
        if (a.budget_per_instance != 0) {
            os << "; budget " << static_cast<int>(target_.budget_share * 100) << " % of (" << target_.max_connections
               << " - " << target_.reserved << ") / " << target_.instances << " instances = " << a.budget_per_instance
               << " per instance, ";
            if (a.budget_headroom >= 0) os << "headroom " << a.budget_headroom;
            else os << "over budget by " << -a.budget_headroom << ": add server capacity, instances share it, or put PgBouncer in front";
        }
        return os.str();
    }

    advice_target target_;
    std::deque<entry> history_;
    advice last_;
};

}  // namespace connpool

#endif  // CONNPOOL_ADVISOR_HPP
