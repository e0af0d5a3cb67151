// connpool: what a probe reports about one host, and what the cluster knows about each host.
#ifndef CONNPOOL_CLUSTER_HOST_STATUS_HPP
#define CONNPOOL_CLUSTER_HOST_STATUS_HPP

#include <connpool/cluster/intent.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace connpool {

// One probe's answer. A database adapter writes the probe (e.g. connpool::pg's asks
// pg_is_in_recovery() and the log positions); the cluster calls it on its prober threads.
struct probe_result {
    // down when the probe failed; error then says why.
    host_role role = host_role::down;
    // Primary: its current log position. Standby: the position it has replayed.
    std::uint64_t position = 0;
    // Standby: seconds since the last replayed transaction committed on the primary, when
    // the standby has replayed one.
    std::optional<double> replay_age_seconds;
    // Standby: replay is paused (pg_wal_replay_pause()); reported, not acted on by itself.
    bool replay_paused = false;
    // Why the host is down, never containing a password.
    std::string error;
};

// The cluster's view of one host, as cluster::hosts() reports it.
struct host_status {
    // The host's name, as given to the cluster.
    std::string name;
    // The host's weight, as given to the cluster.
    double weight = 1.0;
    // The role its last probe found.
    host_role role = host_role::unknown;
    // Its position in the log at the last probe (primary: written; standby: replayed).
    std::uint64_t position = 0;
    // Standby: the primary's last known position minus this host's, 0 when caught up or
    // when no primary is known.
    std::uint64_t lag_bytes = 0;
    // Standby: the time lag (see cluster_options::max_replica_lag); 0 when caught up.
    std::chrono::milliseconds lag{0};
    // Standby: its replay is paused, as its last probe reported.
    bool replay_paused = false;
    // Round-trip time of the last probe's query (smoothed).
    std::chrono::microseconds rtt{0};
    // Leases from this host not yet returned.
    std::size_t outstanding = 0;
    // A standby that reads may go to now: up and within max_replica_lag and
    // max_replica_lag_bytes.
    bool readable = false;
    // What keeps the host out of routing, worded to follow "host <name> " in messages:
    // "lags 4.2 s > max_replica_lag 1.0 s" (or "lags <n> bytes > max_replica_lag_bytes <m>")
    // for a lagging standby, "is down: connection refused", "is not probed yet". Empty for a
    // primary and a readable standby; a standby's "is in recovery" in write errors is not
    // kept here (routing says it).
    std::string note;
    // The last probe's error, kept after the host comes back for diagnosis.
    std::string last_error;
    // Probes completed; a test or tool waits for it to advance (cluster::refresh()).
    std::uint64_t probes = 0;
};

}  // namespace connpool

#endif  // CONNPOOL_CLUSTER_HOST_STATUS_HPP
