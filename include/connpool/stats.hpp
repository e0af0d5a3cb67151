// connpool: what a pool reports about itself: a snapshot of its state and its counters.
#ifndef CONNPOOL_STATS_HPP
#define CONNPOOL_STATS_HPP

#include <connpool/detail/thread_id.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <source_location>
#include <string>
#include <vector>

namespace connpool {

// Why the pool closed a connection.
enum class close_reason {
    idle_timeout,       // idle longer than idle_timeout, above min_idle
    max_idle,           // more idle connections than max_idle
    lifetime,           // reached its max_lifetime (with jitter)
    retired,            // retire_all() marked it
    broken,             // the factory's is_broken() said so on return
    discarded,          // the user called lease::discard()
    validation_failed,  // the ping before a hand-out failed
    reset_failed,       // the reset on return failed
    pool_closed,        // close(), drain() or the pool's destruction
    resized,            // set_max_size() shrank the pool
};

inline constexpr std::size_t close_reason_count = 10;

inline const char* to_string(close_reason r) noexcept {
    switch (r) {
    case close_reason::idle_timeout: return "idle_timeout";
    case close_reason::max_idle: return "max_idle";
    case close_reason::lifetime: return "lifetime";
    case close_reason::retired: return "retired";
    case close_reason::broken: return "broken";
    case close_reason::discarded: return "discarded";
    case close_reason::validation_failed: return "validation_failed";
    case close_reason::reset_failed: return "reset_failed";
    case close_reason::pool_closed: return "pool_closed";
    case close_reason::resized: return "resized";
    }
    return "unknown";
}

// A latency histogram as the pool exports it: fixed log2 buckets, so that recording costs
// a few instructions and no allocation, and exporters (Prometheus, OpenTelemetry) can map
// the buckets one to one.
struct duration_histogram {
    // Bucket 0 counts samples under 1 us; bucket i (i >= 1) counts samples in
    // [2^(i-1), 2^i) us. The last bucket also holds everything longer.
    static constexpr std::size_t bucket_count = 40;

    // Samples per bucket (the edges are above).
    std::array<std::uint64_t, bucket_count> buckets{};
    std::uint64_t count = 0;          // samples recorded, the sum of buckets
    std::chrono::nanoseconds sum{};   // the samples' total

    // The exclusive upper edge of bucket i, in microseconds: 1, 2, 4, ... The last bucket
    // has no upper edge (+Inf in Prometheus terms).
    static constexpr std::uint64_t upper_bound_us(std::size_t i) noexcept { return std::uint64_t{1} << i; }
};

// One tenant's share of the pool (pool_stats::tenants; empty while no tenant is configured).
struct tenant_stats {
    // The tenant's id (tenant_id::value).
    std::uint32_t id = 0;
    std::string name;              // tenant_options::name, or the id's number
    std::size_t quota = 0;         // 0: no quota
    // Its weight (tenant_options::weight).
    std::uint32_t weight = 1;
    std::size_t held = 0;          // connections it holds now (leased, or being checked for it)
    std::size_t waiting = 0;       // its callers waiting now
    std::uint64_t acquired = 0;    // leases handed to it
    std::uint64_t timeouts = 0;    // its acquires that failed with acquire_timeout
    std::uint64_t cancelled = 0;   // its acquires cancelled by their caller
    std::uint64_t quota_refused = 0;  // its acquires failed with tenant_quota_exceeded
    std::uint64_t rejected = 0;    // its acquires failed with too_many_waiters (either limit)
    // Its acquire-wait median.
    std::chrono::microseconds wait_p50{};
    // Its acquire-wait 99th percentile.
    std::chrono::microseconds wait_p99{};
    // Its longest acquire wait.
    std::chrono::microseconds wait_max{};
    duration_histogram wait_time;  // every acquire it was served (0 when served at once)
};

// A point-in-time view of a pool. The gauges are read without stopping the pool, so
// under load they may disagree with each other by a connection or two.
struct pool_stats {
    // Gauges.
    std::size_t open = 0;      // connections that exist: idle + in_use + busy with reset or ping
    std::size_t idle = 0;      // ready to hand out
    std::size_t in_use = 0;    // held by leases
    std::size_t creating = 0;  // connects in flight
    std::size_t waiting = 0;   // callers waiting in acquire
    // options::max_size in force.
    std::size_t max_size = 0;
    // options::min_idle in force.
    std::size_t min_idle = 0;
    std::size_t max_idle = 0;  // the effective cap: options::max_idle, or max_size when that is 0

    // Counters since the pool was created.
    std::uint64_t acquired = 0;           // leases handed out
    std::uint64_t waited = 0;             // of those, how many had to wait
    std::uint64_t created = 0;            // connects that succeeded
    std::uint64_t connect_failures = 0;   // connects that failed
    std::uint64_t timeouts = 0;           // acquires that failed with acquire_timeout
    std::uint64_t cancelled = 0;          // acquires cancelled by their caller
    std::uint64_t rejected = 0;           // acquires refused with too_many_waiters
    std::uint64_t fast_failed = 0;        // acquires failed at once with the last connect error
    std::uint64_t leaks_reported = 0;     // leases reported by leak detection
    std::uint64_t label_hits = 0;         // labelled acquires whose connection already carried the label
    std::uint64_t label_applies = 0;      // apply() calls started to move a connection to a label
    std::uint64_t label_apply_failures = 0;  // of those, how many failed (the connection closed)
    std::array<std::uint64_t, close_reason_count> closed{};  // indexed by close_reason

    // Acquire wait, over every acquire that succeeded (those that did not wait count as 0).
    std::chrono::microseconds wait_p50{};
    // The 99th percentile.
    std::chrono::microseconds wait_p99{};
    // The longest.
    std::chrono::microseconds wait_max{};

    // Full distributions, for exporters. wait_time counts every successful acquire (one
    // served at once records 0); use_time is how long each returned lease was held;
    // create_time is how long each successful connect took.
    duration_histogram wait_time;
    // Lease hold times (see above).
    duration_histogram use_time;
    // Connect times (see above).
    duration_histogram create_time;

    // The last connect failure's message (empty once a connect succeeds again).
    std::string last_connect_error;

    // Per tenant, the default tenant (id 0) first; empty while no tenant is configured.
    std::vector<tenant_stats> tenants;

    // Connections closed for reason r.
    std::uint64_t closed_for(close_reason r) const noexcept { return closed[static_cast<std::size_t>(r)]; }

    // Connections closed for any reason.
    std::uint64_t closed_total() const noexcept {
        std::uint64_t n = 0;
        for (auto c : closed) n += c;
        return n;
    }
};

// An outstanding lease, as pool::leases() lists it.
struct lease_info {
    std::source_location location;      // where acquire was called
    std::chrono::nanoseconds held_for{};  // how long it has been held (coarse clock)
    thread_id thread{};                  // the thread that acquired it
};

// "file.cpp:88 (function)": how the library names a call site in its messages.
inline std::string to_string(const std::source_location& loc) {
    std::string s = loc.file_name();
    if (auto slash = s.find_last_of('/'); slash != std::string::npos) s.erase(0, slash + 1);
    s += ':';
    s += std::to_string(loc.line());
    if (*loc.function_name() != '\0') {
        s += " (";
        s += loc.function_name();
        s += ')';
    }
    return s;
}

}  // namespace connpool

#endif  // CONNPOOL_STATS_HPP
