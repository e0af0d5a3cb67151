// The facts tests/support/replica/start-cluster.sh wrote about the replication set, and helpers
// that talk to its nodes with plain libpq or change its topology through ctl.sh (never through
// the code under test).
#ifndef CONNPOOL_TESTS_INTEGRATION_REPLICA_ENV_HPP
#define CONNPOOL_TESTS_INTEGRATION_REPLICA_ENV_HPP

#include <connpool/pg/cluster.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace connpool_test::replica {

using namespace std::chrono_literals;

// Reads KEY='value' lines from the file named by $CONNPOOL_REPLICA_ENV_FILE or else by the
// macro of that name the build defines. A missing file fails the test: never a skip.
class environment {
public:
    static const environment& get() {
        static const environment instance;
        return instance;
    }
    const std::string& operator[](const std::string& key) const {
        auto it = facts_.find(key);
        if (it == facts_.end()) throw std::runtime_error("replica test env: no " + key + " in " + path_);
        return it->second;
    }
    std::string conninfo(int node) const { return (*this)["CONNPOOL_REPLICA_CONNINFO_" + std::to_string(node)]; }
    std::string admin(int node) const { return (*this)["CONNPOOL_REPLICA_ADMIN_CONNINFO_" + std::to_string(node)]; }
    const std::string& password() const { return (*this)["CONNPOOL_REPLICA_PASSWORD"]; }

private:
    environment() {
        const char* from_env = std::getenv("CONNPOOL_REPLICA_ENV_FILE");
#ifdef CONNPOOL_REPLICA_ENV_FILE
        path_ = from_env ? from_env : CONNPOOL_REPLICA_ENV_FILE;
#else
        if (!from_env) throw std::runtime_error("replica test env: CONNPOOL_REPLICA_ENV_FILE is not set");
        path_ = from_env;
#endif
        std::ifstream in(path_);
        if (!in) throw std::runtime_error("replica test env: cannot read " + path_ + " (did the fixture run?)");
        for (std::string line; std::getline(in, line);) {
            auto eq = line.find('=');
            if (eq == std::string::npos) continue;
            std::string v = line.substr(eq + 1);
            if (v.size() >= 2 && v.front() == '\'' && v.back() == '\'') v = v.substr(1, v.size() - 2);
            facts_[line.substr(0, eq)] = v;
        }
    }
    std::string path_;
    std::map<std::string, std::string> facts_;
};

inline const environment& env() { return environment::get(); }

// Runs sql on a fresh connection to conninfo and returns the first column of the first row ("" when
// none). Throws on failure. connect_timeout bounds the connect; the statements here are short.
inline std::string query(const std::string& conninfo, const std::string& sql) {
    std::unique_ptr<PGconn, decltype(&PQfinish)> c(PQconnectdb((conninfo + " connect_timeout=5").c_str()), &PQfinish);
    if (PQstatus(c.get()) != CONNECTION_OK) throw std::runtime_error(std::string("connect: ") + PQerrorMessage(c.get()));
    std::unique_ptr<PGresult, decltype(&PQclear)> r(PQexec(c.get(), sql.c_str()), &PQclear);
    const auto st = PQresultStatus(r.get());
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
        throw std::runtime_error("query failed: " + sql + ": " + PQresultErrorMessage(r.get()));
    }
    return st == PGRES_TUPLES_OK && PQntuples(r.get()) > 0 ? PQgetvalue(r.get(), 0, 0) : std::string{};
}

inline std::string admin_query(int node, const std::string& sql) { return query(env().admin(node), sql); }

// ctl.sh kill|start|promote|rejoin; every step is bounded by pg_ctl's own -t.
inline void ctl(const std::string& args) {
    const std::string cmd = "bash '" + env()["CONNPOOL_REPLICA_CTL"] + "' " + args;
    if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
}

// As ctl(), returning the command's standard output without the trailing newline.
inline std::string ctl_output(const std::string& args) {
    const std::string cmd = "bash '" + env()["CONNPOOL_REPLICA_CTL"] + "' " + args;
    std::unique_ptr<FILE, decltype(&pclose)> p(popen(cmd.c_str(), "r"), &pclose);
    if (!p) throw std::runtime_error("cannot run: " + cmd);
    std::string out;
    char buf[256];
    while (std::fgets(buf, sizeof buf, p.get()) != nullptr) out += buf;
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

// The three nodes as cluster members n0 (the primary at start), n1, n2.
inline std::vector<connpool::pg::cluster_member> members(std::vector<double> weights = {1, 1, 1},
                                                         const std::string& prefix = "n") {
    std::vector<connpool::pg::cluster_member> m;
    for (int n = 0; n < 3; ++n) {
        m.push_back({prefix + std::to_string(n), env().conninfo(n), weights[static_cast<std::size_t>(n)]});
    }
    return m;
}

// Polls cond every 50 ms until it holds or timeout passes; returns whether it held.
inline bool eventually(std::chrono::milliseconds timeout, const std::function<bool()>& cond) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (cond()) return true;
        std::this_thread::sleep_for(50ms);
    }
    return cond();
}

// The host named name in c's view.
inline connpool::host_status status_of(const connpool::pg::cluster& c, const std::string& name) {
    for (auto& h : c.hosts()) {
        if (h.name == name) return h;
    }
    throw std::runtime_error("no host " + name);
}

// The name of the host c sees as the primary; empty if none.
inline std::string primary_of(const connpool::pg::cluster& c) {
    for (auto& h : c.hosts()) {
        if (h.role == connpool::host_role::primary) return h.name;
    }
    return {};
}

// Probes every 200 ms: a failover shows within a fraction of a second.
inline connpool::cluster_options fast_probes(std::chrono::milliseconds probe_timeout) {
    connpool::cluster_options o;
    o.refresh_interval = std::chrono::milliseconds(200);
    o.probe_timeout = probe_timeout;
    return o;
}

}  // namespace connpool_test::replica

#endif  // CONNPOOL_TESTS_INTEGRATION_REPLICA_ENV_HPP
