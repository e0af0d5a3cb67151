// connpool::pg::cluster: a PostgreSQL primary and its streaming standbys as one object, with one
// pool per host, roles found by pg_is_in_recovery(), lag-aware reads, failover and
// read-your-writes tokens. Link connpool::pg.
#ifndef CONNPOOL_PG_CLUSTER_HPP
#define CONNPOOL_PG_CLUSTER_HPP

#include <connpool/cluster.hpp>
#include <connpool/pg/cluster/budget.hpp>
#include <connpool/pg/cluster/heartbeat.hpp>
#include <connpool/pg/cluster/lsn.hpp>
#include <connpool/pg/cluster/probe.hpp>
#include <connpool/pg/factory.hpp>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace connpool::pg {

// One server of the cluster. conninfo is a libpq conninfo string for this one host (no
// multi-host list: the cluster does the choosing); weight as in connpool::cluster_host.
struct cluster_member {
    // The member's name, for leases, host_status and messages.
    std::string name;
    // A libpq conninfo string for this one host.
    std::string conninfo;
    // Its share of the reads, as cluster_host::weight.
    double weight = 1.0;
};

// A connpool::basic_cluster over connpool::pg::factory:
//
//   connpool::pg::cluster db({{"a", "host=a.db ..."}, {"b", "host=b.db ..."}, {"c", "host=c.db ..."}},
//                            {.max_replica_lag = std::chrono::seconds(5)}, {.max_size = 16});
//   {
//       auto w = db.acquire(connpool::intent::write);
//       w->exec("INSERT ...");
//       token = connpool::pg::commit_token(*w);            // after COMMIT (autocommit here)
//   }
//   auto r = db.acquire(connpool::intent::read_fresh(token));   // sees the insert
//
// Each host is probed on its own thread every refresh_interval with a separate small
// connection (not one of the pool's), so a probe never takes a connection from callers. The
// pools are constructed with pool_opts and fopts as they are; budget() checks them against
// each server's max_connections.
class cluster : public basic_cluster<factory> {
public:
    // A cluster of members: one pool per member, built with pool_opts and a pg::factory with fopts.
    cluster(std::vector<cluster_member> members, cluster_options copts = {}, options pool_opts = {},
            factory_options fopts = {})
        : basic_cluster<factory>(make_hosts(members, fopts), std::move(copts), pool_opts, check()),
          members_(std::move(members)) {}

    // As above, with the pools' background work on executor ex.
    cluster(executor_type ex, std::vector<cluster_member> members, cluster_options copts = {},
            options pool_opts = {}, factory_options fopts = {})
        : basic_cluster<factory>(std::move(ex), make_hosts(members, fopts), std::move(copts), pool_opts, check()),
          members_(std::move(members)) {}

    // Checks each host's pool against that server's connection budget (see budget.hpp) and
    // acts by b.mode: warn, clamp that pool's max_size, or throw budget_error. Blocking,
    // bounded by timeout per host; a host that cannot be asked is skipped and reported.
    std::vector<budget_report> check_budget(const budget_options& b,
                                            std::chrono::milliseconds timeout = std::chrono::seconds(2)) {
        std::vector<budget_report> out;
        for (std::size_t i = 0; i < members_.size(); ++i) {
            probe_session s(members_[i].conninfo);
            out.push_back(apply_budget(host_pool(i), s, b, timeout, members_[i].name));
        }
        return out;
    }

    // Connections the cluster keeps open to each host for itself: its prober's session. They
    // count against the server's budget (auto_budget subtracts them from the pools' share).
    static constexpr std::size_t own_connections_per_host = 1;

    // The members, as given to the constructor.
    const std::vector<cluster_member>& members() const noexcept { return members_; }

private:
    static std::vector<cluster_host<factory>> make_hosts(const std::vector<cluster_member>& members,
                                                         const factory_options& fopts) {
        std::vector<cluster_host<factory>> hosts;
        for (const auto& m : members) {
            auto session = std::make_shared<probe_session>(m.conninfo);
            hosts.push_back(cluster_host<factory>{
                m.name, factory(m.conninfo, fopts), m.weight,
                [session](std::chrono::milliseconds timeout) { return session->probe(timeout); }});
        }
        return hosts;
    }

    static position_check check() {
        return [](connection& c, std::chrono::milliseconds timeout) { return replayed_position(c, timeout); };
    }

    std::vector<cluster_member> members_;
};

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_CLUSTER_HPP
