// connpool::pg: the connection budget across application instances. The rule operators follow:
// all instances together should hold at most fraction (80 %) of max_connections minus the
// superuser-reserved ones, so that maintenance, replication and a deploy's overlap still fit.
#ifndef CONNPOOL_PG_CLUSTER_BUDGET_HPP
#define CONNPOOL_PG_CLUSTER_BUDGET_HPP

#include <connpool/pg/cluster/probe.hpp>
#include <connpool/sizing/budget.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <stdexcept>
#include <string>

namespace connpool::pg {

// What check_budget does when the pools would exceed the budget.
enum class budget_mode {
    // Report through budget_options::on_warning (default: standard error) and change nothing.
    warn,
    // Lower the pool's max_size to its share (at least 1), and report.
    clamp,
    // Throw budget_error: for services that must not start with a configuration that can
    // exhaust the server.
    refuse,
};

// What check_budget and apply_budget count, and what they do when the budget is exceeded.
struct budget_options {
    // Application instances that run this same pool configuration against the server.
    std::size_t instances = 1;
    // Share of (max_connections - superuser_reserved_connections) all instances may use.
    double fraction = 0.8;
    // Over budget: warn, clamp max_size to the share, or throw budget_error (see budget_mode).
    budget_mode mode = budget_mode::warn;
    // Receives the message in warn and clamp modes; empty: standard error.
    std::function<void(const std::string&)> on_warning;
};

// The numbers behind one check, and the message that names them.
struct budget_report {
    // The server asked (its host, as the conninfo names it).
    std::string host;
    // The server's max_connections.
    int max_connections = 0;
    // The server's superuser_reserved_connections.
    int reserved = 0;
    // Client backends on the server when it was asked (all databases and users).
    int in_use = 0;
    // Instances counted (budget_options::instances).
    std::size_t instances = 0;
    // Each instance's max_size before the check.
    std::size_t max_size = 0;
    // floor(fraction x (max_connections - reserved)).
    std::size_t allowed_total = 0;
    // allowed_total / instances: what each instance's pool may hold.
    std::size_t per_instance = 0;
    // True when instances x max_size exceeds allowed_total.
    bool over = false;
    // The max_size the pool has after the check (clamped or not).
    std::size_t applied_max_size = 0;
    // "4 instances x max_size 30 = 120 > 80 % of (100 - 3) = 77"; the <= form when within. Empty
    // when the server could not be asked (error then says why).
    std::string message;
    // Why the server could not be asked; empty when it could.
    std::string error;
};

// Thrown by budget_mode::refuse when the pools are over budget; what() is the report's message.
class budget_error : public std::runtime_error {
public:
    // An error carrying report r.
    explicit budget_error(budget_report r) : std::runtime_error(r.message), report_(std::move(r)) {}
    // The numbers behind the refusal.
    const budget_report& report() const noexcept { return report_; }

private:
    budget_report report_;
};

// The pure arithmetic, for any source of the server's numbers.
inline budget_report evaluate_budget(int max_connections, int reserved, int in_use, std::size_t instances,
                                     std::size_t max_size, double fraction) {
    if (instances == 0) throw std::invalid_argument("connpool::pg::budget_options::instances = 0: must be at least 1");
    if (!(fraction > 0 && fraction <= 1))
        throw std::invalid_argument("connpool::pg::budget_options::fraction = " + std::to_string(fraction) +
                                    ": must be within (0, 1]");
    budget_report r;
    r.max_connections = max_connections;
    r.reserved = reserved;
    r.in_use = in_use;
    r.instances = instances;
    r.max_size = max_size;
    r.allowed_total = sizing::budget_total(static_cast<std::size_t>(std::max(0, max_connections)),
                                           static_cast<std::size_t>(std::max(0, reserved)), fraction);
    r.per_instance = r.allowed_total / instances;
    const std::size_t total = instances * max_size;
    r.over = total > r.allowed_total;
    char pct[16];
    std::snprintf(pct, sizeof pct, "%g", fraction * 100);
    r.message = std::to_string(instances) + (instances == 1 ? " instance" : " instances") + " x max_size " +
                std::to_string(max_size) + " = " + std::to_string(total) + (r.over ? " > " : " <= ") + pct + " % of (" +
                std::to_string(max_connections) + " - " + std::to_string(reserved) + ") = " +
                std::to_string(r.allowed_total);
    r.applied_max_size = max_size;
    return r;
}

// Asks the server behind s for its numbers and evaluates max_size against them.
inline budget_report read_budget(probe_session& s, std::size_t instances, std::size_t max_size, double fraction,
                                 std::chrono::milliseconds timeout) {
    std::string error;
    result res = s.query(
        "SELECT current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int,"
        " (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int",
        timeout, error);
    if (!res || PQntuples(res.get()) != 1) {
        budget_report r;
        r.instances = instances;
        r.max_size = r.applied_max_size = max_size;
        r.error = error.empty() ? "no row" : error;
        return r;
    }
    return evaluate_budget(std::atoi(PQgetvalue(res.get(), 0, 0)), std::atoi(PQgetvalue(res.get(), 0, 1)),
                           std::atoi(PQgetvalue(res.get(), 0, 2)), instances, max_size, fraction);
}

// Checks pool against the server behind s and acts by b.mode. Pool is any connpool pool
// (stats(), set_max_size()). Throws budget_error in refuse mode when over.
template <class Pool>
budget_report apply_budget(Pool& pool, probe_session& s, const budget_options& b, std::chrono::milliseconds timeout,
                           const std::string& host = {}) {
    budget_report r = read_budget(s, b.instances, pool.stats().max_size, b.fraction, timeout);
    r.host = host;
    const std::string where = host.empty() ? std::string() : "host " + host + ": ";
    auto say = [&](const std::string& m) {
        if (b.on_warning) b.on_warning(m);
        else std::cerr << m << '\n';
    };
    if (!r.error.empty()) {
        say("connpool: connection budget of " + where + "not checked: " + r.error);
        return r;
    }
    if (!r.over) return r;
    switch (b.mode) {
    case budget_mode::warn: say("connpool: connection budget exceeded: " + where + r.message); break;
    case budget_mode::clamp:
        r.applied_max_size = std::max<std::size_t>(1, r.per_instance);
        pool.set_max_size(r.applied_max_size);
        say("connpool: connection budget exceeded: " + where + r.message + "; max_size clamped to " +
            std::to_string(r.applied_max_size));
        break;
    case budget_mode::refuse:
        r.message = "connection budget exceeded: " + where + r.message;
        throw budget_error(r);
    }
    return r;
}

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_CLUSTER_BUDGET_HPP
