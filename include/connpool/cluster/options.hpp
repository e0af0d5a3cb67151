// connpool: a cluster's routing and probing policies, their defaults, and their validation.
#ifndef CONNPOOL_CLUSTER_OPTIONS_HPP
#define CONNPOOL_CLUSTER_OPTIONS_HPP

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace connpool {

// How reads are spread over the standbys that may serve them.
enum class balance_policy {
    // Default. Draw two hosts at random, in proportion to their weights, and take the one
    // with fewer outstanding leases per unit of weight (power of two choices): close to
    // least-loaded, without every caller piling onto the same host between two updates.
    power_of_two,
    // The host with the fewest outstanding leases per unit of weight; ties by weight.
    least_loaded,
};

// An aggregate, like connpool::options:
//   connpool::cluster_options{.max_replica_lag = std::chrono::seconds(5)}
struct cluster_options {
    // How often each host's role, log position and round-trip time are probed. Each host
    // has its own prober thread, so a hung host never delays the others; callers never
    // wait for a probe. A promotion is found within about refresh_interval + probe_timeout.
    std::chrono::milliseconds refresh_interval = std::chrono::milliseconds(1000);
    // Bound on one probe: connect (when needed) plus the query. A probe that runs out of
    // time marks the host down.
    std::chrono::milliseconds probe_timeout = std::chrono::milliseconds(1000);
    // A standby whose replay is this far behind in time leaves read routing until it is
    // back within it. Time lag is how long ago the primary (as probed) first went past the
    // standby's replayed position, on the cluster's clock; before the cluster has seen the
    // primary move, the age of the standby's last replayed transaction while it is behind.
    // It is measured in probe steps, so it is known to within about refresh_interval. 0 disables.
    std::chrono::milliseconds max_replica_lag = std::chrono::seconds(60);
    // The same in bytes of log (primary position minus replayed position). 0 disables.
    std::uint64_t max_replica_lag_bytes = 0;
    // How reads are spread over the eligible hosts.
    balance_policy balance = balance_policy::power_of_two;
    // When positive, reads go only to the standbys whose measured round-trip time is
    // within this much of the nearest standby's, so that a service reads in its own zone
    // while a replica there is usable. 0 disables (every usable standby is a candidate).
    std::chrono::microseconds nearest_rtt_slack{0};
    // Reads fall back to the primary when no standby can serve them. Off: such a read
    // fails with cluster_errc::no_host, keeping read load off the primary entirely.
    bool read_from_primary = true;
    // The constructor probes every host once (each bounded by probe_timeout, all at once)
    // so that the first acquire already knows the roles.
    bool probe_at_start = true;
};

namespace detail {

[[noreturn]] inline void invalid_cluster_option(const char* field, const std::string& value, const char* why) {
    throw std::invalid_argument(std::string("connpool::cluster_options::") + field + " = " + value + ": " + why);
}

}  // namespace detail

// Throws std::invalid_argument naming the first invalid field and its value.
inline void validate(const cluster_options& o) {
    using detail::invalid_cluster_option;
    auto ms = [](std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; };
    if (o.refresh_interval.count() <= 0)
        invalid_cluster_option("refresh_interval", ms(o.refresh_interval), "must be positive");
    if (o.probe_timeout.count() <= 0) invalid_cluster_option("probe_timeout", ms(o.probe_timeout), "must be positive");
    if (o.max_replica_lag.count() < 0)
        invalid_cluster_option("max_replica_lag", ms(o.max_replica_lag), "must not be negative");
    if (o.nearest_rtt_slack.count() < 0)
        invalid_cluster_option("nearest_rtt_slack", std::to_string(o.nearest_rtt_slack.count()) + "us",
                               "must not be negative");
}

}  // namespace connpool

#endif  // CONNPOOL_CLUSTER_OPTIONS_HPP
