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

// The hot path stamps lease and idle times. A precise steady_clock::now() costs 20-30 ns
// in a VM, more than the rest of an acquire; CLOCK_MONOTONIC_COARSE costs a few ns and
// shares steady_clock's epoch on Linux, trailing it by at most one tick (1-4 ms), which
// is plenty for idle timeouts, lifetimes and leak ages. Other clocks (the tests' manual
// clock) are read as they are.
template <class Clock>
typename Clock::time_point coarse_now() noexcept {
#if defined(__linux__) && defined(CLOCK_MONOTONIC_COARSE)
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
        timespec ts;
        ::clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
        return typename Clock::time_point(std::chrono::duration_cast<typename Clock::duration>(
            std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec)));
    }
#endif
    return Clock::now();
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

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_CLOCK_HPP
