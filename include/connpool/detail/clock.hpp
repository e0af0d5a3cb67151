// connpool internals: the cheap time source of the acquire and return paths.
#ifndef CONNPOOL_DETAIL_CLOCK_HPP
#define CONNPOOL_DETAIL_CLOCK_HPP

#include <chrono>
#include <cstdint>
#include <type_traits>

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

// "Most recently used" order, with no shared write: the coarse time of a return plus
// this thread's count of returns within that tick, so one thread's returns keep their
// order inside a tick (a tick is milliseconds long: the count never reaches the next).
// Returns by different threads within one tick tie loosely. rdtsc would be finer but
// costs 35 ns on this kind of VM (it traps), more than the whole fast path.
inline std::uint64_t recency_of(time_point t) noexcept {
    static thread_local std::uint64_t tick = 0;
    static thread_local std::uint64_t seq = 0;
    const auto ns = static_cast<std::uint64_t>(t.time_since_epoch().count());
    if (ns != tick) {
        tick = ns;
        seq = 0;
    }
    return ns + ++seq;
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_CLOCK_HPP
