// connpool-sim: what a run is given (config) and what it reports (result).
#ifndef CONNPOOL_TOOLS_SIM_MODEL_HPP
#define CONNPOOL_TOOLS_SIM_MODEL_HPP

#include "workload.hpp"

#include <connpool/advisor.hpp>
#include <connpool/options.hpp>
#include <connpool/sizing/adaptive.hpp>
#include <connpool/stats.hpp>
#include <connpool/tenants.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

namespace connpool::sim {

inline hold_model fixed_time(std::chrono::nanoseconds d) {
    hold_model m;
    m.k = hold_model::kind::fixed;
    m.mean_ns = static_cast<double>(d.count());
    return m;
}

// One tenant of a mix: its part of the traffic, and the pool's tenant_options for it.
struct tenant_mix {
    double share = 1;  // relative: requests pick a tenant in proportion to the shares
    tenant_options opts;
};

struct config {
    arrival_model arrivals;
    hold_model hold;                                   // how long a request holds its connections
    std::chrono::nanoseconds duration = std::chrono::seconds(60);
    std::chrono::nanoseconds warmup{};                 // waits before this are not counted
    std::size_t instances = 1;                         // application instances, one pool each
    std::size_t threads = 0;                           // per instance; 0: a thread per request
    std::size_t nested = 1;                            // Cm: connections a request holds at once
    hold_model connect_time = fixed_time(std::chrono::milliseconds(5));
    double connect_failure = 0.0;                      // probability that a connect fails
    std::chrono::nanoseconds ping_time = std::chrono::microseconds(200);
    std::chrono::nanoseconds reset_time{};             // 0: the factory has nothing to reset
    std::chrono::nanoseconds outage_start{};
    std::chrono::nanoseconds outage_length{};          // 0: no outage
    // How late a parked application thread runs once woken (a completed acquire, the end
    // of a hold's sleep): the scheduler's latency on a busy machine. None: at once.
    std::optional<hold_model> wake_latency;
    std::size_t max_connections = 0;                   // the server's; 0: unlimited
    std::size_t reserved = 0;                          // superuser_reserved_connections
    options pool{.max_size = 10};
    std::chrono::nanoseconds sample_every{};           // 0: duration / 400
    std::uint64_t seed = 1;
    // The advisor runs every advise_every (0: never); with adaptive set, it also sizes.
    std::chrono::nanoseconds advise_every{};
    advice_target advice;
    std::optional<sizing::adaptive_options> adaptive;
    // Empty: no tenants. Else tenant ids 1..n on every instance, and each request picks one.
    std::vector<tenant_mix> tenants;
};

struct series_point {
    double t_s = 0;
    std::size_t server_connections = 0;  // across every instance, as the server counts them
    std::size_t open = 0;                // the pools' view (a dead connection counts until closed)
    std::size_t busy = 0;
    std::size_t waiting = 0;
    std::size_t max_size = 0;            // instance 0's
};

struct advice_point {
    double t_s = 0;
    std::size_t recommended = 0;
    std::size_t max_size = 0;  // after the adaptive size acted
    double arrival_rate = 0;
};

struct result {
    std::uint64_t requests = 0, completed = 0, served = 0;
    std::uint64_t timeouts = 0, nested_timeouts = 0, other_errors = 0, query_failures = 0;
    std::uint64_t connections_opened = 0, connect_failures = 0, refused_by_server = 0, leaks = 0;
    double wait_mean_ms = 0, wait_p50_ms = 0, wait_p99_ms = 0, wait_max_ms = 0;
    double mean_busy = 0;                // connections leased, time-averaged (Little's L)
    double mean_server_connections = 0;
    double utilization = 0;              // mean_busy / mean_server_connections
    std::size_t peak_server_connections = 0, peak_waiting = 0, peak_backlog = 0;
    double duration_s = 0, wall_s = 0, sample_every_s = 0;
    std::uint64_t events = 0;
    std::vector<series_point> series;
    std::vector<advice_point> advice;
    pool_stats final_stats;  // instance 0's stats() at the end
};

}  // namespace connpool::sim

#endif  // CONNPOOL_TOOLS_SIM_MODEL_HPP
