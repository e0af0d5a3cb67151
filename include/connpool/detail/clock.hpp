// connpool internals: the cheap time source of the acquire and return paths.
#ifndef CONNPOOL_DETAIL_CLOCK_HPP
#define CONNPOOL_DETAIL_CLOCK_HPP

#include <chrono>
#include <cstdint>
#include <type_traits>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#endif

#if defined(__linux__)
#include <time.h>
#endif

namespace connpool::detail {

// The pool's internal time: a steady_clock time point. A pool on another clock (the
// tests' virtual clock) converts its readings, so that slots, leases and the state
// machine do not depend on the clock type.
using time_point = std::chrono::steady_clock::time_point;
using duration = std::chrono::steady_clock::duration;

template <class Clock>
time_point to_internal(typename Clock::time_point t) noexcept {
    return time_point(std::chrono::duration_cast<duration>(t.time_since_epoch()));
}

template <class Clock>
time_point internal_now() noexcept {
    return to_internal<Clock>(Clock::now());
}

// now + d without overflow: a timeout of milliseconds::max() means "never". Compared in
// d's own unit, because converting milliseconds::max() to nanoseconds overflows.
template <class Rep, class Period>
time_point saturating_add(time_point now, std::chrono::duration<Rep, Period> d) noexcept {
    if (d.count() <= 0) return now;
    if (d >= std::chrono::duration_cast<std::chrono::duration<Rep, Period>>(time_point::max() - now)) {
        return time_point::max();
    }
    return now + std::chrono::duration_cast<duration>(d);
}

// The hot path stamps lease and idle times. A precise steady_clock::now() costs 20-30 ns
// in a VM, more than the rest of an acquire; CLOCK_MONOTONIC_COARSE costs a few ns and
// shares steady_clock's epoch on Linux, trailing it by at most one tick (1-4 ms), which
// is plenty for idle timeouts, lifetimes and leak ages. Other clocks (the tests' manual
// clock) are read as they are.
template <class Clock>
time_point coarse_now() noexcept {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
        timespec ts;
        ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return time_point(std::chrono::duration_cast<duration>(std::chrono::seconds(ts.tv_sec) +
                                                               std::chrono::nanoseconds(ts.tv_nsec)));
    }
#endif
    return internal_now<Clock>();
}

// An ordering stamp for "most recently used", cheaper than any clock: which idle
// connection was returned last. Only compared, never turned into a duration. The TSC is
// invariant and synchronized across cores on the x86 machines this runs on; elsewhere
// the steady clock serves.
inline std::uint64_t recency_stamp() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#else
    return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
#endif
}

// Nanoseconds per recency_stamp() tick, measured once against the steady clock (about
// 200 us of spinning, paid by the first stats() call that turns use-time measuring on).
inline double stamp_ns_per_tick() noexcept {
    static const double rate = [] {
        const auto t0 = std::chrono::steady_clock::now();
        const auto s0 = recency_stamp();
        auto t1 = t0;
        while (t1 - t0 < std::chrono::microseconds(200)) t1 = std::chrono::steady_clock::now();
        const auto s1 = recency_stamp();
        const double ticks = static_cast<double>(s1 - s0);
        return ticks > 0 ? static_cast<double>(std::chrono::nanoseconds(t1 - t0).count()) / ticks : 1.0;
    }();
    return rate;
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_CLOCK_HPP
