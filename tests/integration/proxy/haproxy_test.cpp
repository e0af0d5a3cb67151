// A plain connpool::pg::pool behind HAProxy in front of Patroni (fixture haproxy_set over
// patroni_set, label "proxy"): the pool knows one address, HAProxy's primary port, and HAProxy
// follows the leader by Patroni's REST API (GET /primary, inter 500ms fall 2). Through a
// patronictl switchover and through a killed leader under a 6-thread write load, only the
// operations in flight fail, none hangs, the pool drops its broken connections by itself, and
// writes resume on the new leader. The measured figures are printed (docs/proxies.md quotes them).
#include "connpool_catch.hpp"
#include "replica_env.hpp"

#include <connpool/pg.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <iostream>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace connpool_test::replica;
using clock_type = std::chrono::steady_clock;

namespace {

// acquire_timeout is above Patroni's failover time here (about 3 s for a kill), so that the
// acquires waiting through the outage succeed; a hang is anything past it plus the margin.
constexpr auto acquire_timeout = 8s;
constexpr auto hang_margin = 7s;
constexpr std::size_t pool_size = 6;

connpool::options pool_options() {
    connpool::options o;
    o.max_size = pool_size;
    o.acquire_timeout = acquire_timeout;
    o.connect_timeout = 1s;
    o.backoff_initial = 50ms;
    o.backoff_max = 200ms;
    return o;
}

int node_of(const std::string& name) { return name.at(1) - '0'; }  // "p1" -> 1
int port_of(int node) { return std::stoi(env()["CONNPOOL_REPLICA_PORT_" + std::to_string(node)]); }

struct op {
    clock_type::time_point start, end;
    bool ok = false;
    int port = 0;  // the server's port (inet_server_port()) of a write that succeeded
    std::string error;
};

// Threads doing INSERTs through the pool until stopped; every operation (acquire and exec) is
// recorded. A failed exec does not discard the lease: the pool must see the broken connection.
class write_load {
public:
    explicit write_load(connpool::pg::pool& p) {
        for (int t = 0; t < 6; ++t) threads_.emplace_back([this, &p, t] { run(p, t); });
    }
    ~write_load() { stop(); }
    void stop() {
        stop_ = true;
        for (auto& th : threads_) {
            if (th.joinable()) th.join();
        }
    }
    std::vector<op> ops() {
        std::lock_guard lk(mu_);
        return ops_;
    }

private:
    void run(connpool::pg::pool& p, int t) {
        while (!stop_) {
            op o;
            o.start = clock_type::now();
            try {
                auto l = p.acquire();
                auto r = l->exec("INSERT INTO hp_t (who) VALUES ($1) RETURNING inet_server_port()", t);
                o.port = std::stoi(PQgetvalue(r.get(), 0, 0));
                o.ok = true;
            } catch (const std::exception& e) {
                o.error = e.what();
            }
            o.end = clock_type::now();
            {
                std::lock_guard lk(mu_);
                ops_.push_back(o);
            }
            if (!o.ok) std::this_thread::sleep_for(20ms);
        }
    }

    std::mutex mu_;
    std::vector<op> ops_;
    std::atomic<bool> stop_{false};
    std::vector<std::thread> threads_;
};

// Polls the nodes other than old_leader directly (not through HAProxy) every 20 ms and keeps the
// moment the first of them accepts writes: the "new leader writable" of the figures.
class writable_watch {
public:
    explicit writable_watch(int old_leader) : th_([this, old_leader] { run(old_leader); }) {}
    ~writable_watch() {
        stop_ = true;
        th_.join();
    }
    std::optional<clock_type::time_point> at() {
        std::lock_guard lk(mu_);
        return at_;
    }
    int node() const { return node_; }  // -1 until at() is set

private:
    void run(int old_leader) {
        while (!stop_ && node_ < 0) {
            for (int n = 0; n < 3 && node_ < 0; ++n) {
                if (n == old_leader) continue;
                try {
                    if (query(env().admin(n), "SELECT NOT pg_is_in_recovery()") == "t") {
                        std::lock_guard lk(mu_);
                        at_ = clock_type::now();
                        node_ = n;
                    }
                } catch (const std::exception&) {
                    // Restarting: not writable yet.
                }
            }
            std::this_thread::sleep_for(20ms);
        }
    }
    std::mutex mu_;
    std::optional<clock_type::time_point> at_;
    std::atomic<int> node_{-1};
    std::atomic<bool> stop_{false};
    std::thread th_;
};

double seconds_between(clock_type::time_point a, clock_type::time_point b) {
    return std::chrono::duration<double>(b - a).count();
}

// Runs the write load through HAProxy's primary port, calls trigger() (which changes the leader)
// after 800 ms, and checks the guarantees once writes have run on the new leader for 2 s.
void check_leader_change(const std::string& what, const std::function<void()>& trigger) {
    const std::string old_name = ctl_output("leader");
    const int old_leader = node_of(old_name);
    connpool::pg::pool p{connpool::pg::factory(env()["CONNPOOL_HAPROXY_PRIMARY_CONNINFO"]), pool_options()};
    p.acquire()->exec("CREATE TABLE IF NOT EXISTS hp_t (id bigserial PRIMARY KEY, who int)");

    std::optional<writable_watch> watch;
    write_load load(p);
    std::this_thread::sleep_for(800ms);
    const auto t_event = clock_type::now();
    watch.emplace(old_leader);
    trigger();
    REQUIRE(eventually(30s, [&] { return watch->at().has_value(); }));
    const auto t_writable = *watch->at();
    const int new_port = port_of(watch->node());
    // Writes resumed: the first write that succeeded on the new leader.
    std::optional<clock_type::time_point> t_resumed;
    REQUIRE(eventually(20s, [&] {
        for (auto& o : load.ops()) {
            if (o.ok && o.port == new_port && (!t_resumed || o.end < *t_resumed)) t_resumed = o.end;
        }
        return t_resumed.has_value();
    }));
    std::this_thread::sleep_for(2s);
    load.stop();
    const auto ops = load.ops();
    const auto stats = p.stats();

    std::size_t before_ok = 0, failed = 0, failed_after_resume = 0, late_ok = 0, late_failed = 0;
    auto longest = clock_type::duration::zero();
    std::optional<clock_type::time_point> first_failure;
    std::set<int> before_ports, late_ports;
    std::string a_failure;
    for (auto& o : ops) {
        longest = std::max(longest, o.end - o.start);
        if (o.end < t_event) {
            before_ok += o.ok;
            if (o.ok) before_ports.insert(o.port);
        }
        if (!o.ok) {
            ++failed;
            a_failure = o.error;
            if (!first_failure || o.start < *first_failure) first_failure = o.start;
            if (o.start > *t_resumed) ++failed_after_resume;
        }
        // The last second: everything settled.
        if (o.start > *t_resumed + 1s) {
            if (o.ok) late_ports.insert(o.port);
            late_ok += o.ok;
            late_failed += !o.ok;
        }
    }
    const double resume_after_writable = seconds_between(t_writable, *t_resumed);
    const auto stale_closed = stats.closed_for(connpool::close_reason::broken) +
                              stats.closed_for(connpool::close_reason::validation_failed) +
                              stats.closed_for(connpool::close_reason::reset_failed);
    std::cout << "haproxy " << what << ": new leader writable " << seconds_between(t_event, t_writable)
              << " s after the " << what << ", writes through HAProxy resumed " << resume_after_writable
              << " s after that; write outage " << (first_failure ? seconds_between(*first_failure, *t_resumed) : 0.0)
              << " s; " << failed << " of " << ops.size() << " operations failed (" << failed_after_resume
              << " after the resume); longest operation " << std::chrono::duration<double>(longest).count()
              << " s; pool closed " << stats.closed_for(connpool::close_reason::broken) << " broken, "
              << stats.closed_for(connpool::close_reason::validation_failed) << " failed validation, "
              << stats.closed_for(connpool::close_reason::reset_failed) << " failed reset; "
              << stats.connect_failures << " connects failed, " << stats.timeouts << " acquire timeouts\n";
    INFO("a failure: " << a_failure);
    CHECK(before_ports == std::set<int>{port_of(old_leader)});
    CHECK(before_ok > 0);
    // No hang: every operation ended within the acquire timeout and the margin.
    CHECK(longest < acquire_timeout + hang_margin);
    CHECK(stats.timeouts == 0);
    // Only what was in flight fails: after the first write on the new leader, at most one
    // failure for each connection the pool held (a stale one used once), then none.
    CHECK(failed_after_resume <= pool_size);
    CHECK(late_failed == 0);
    CHECK(late_ok > 0);
    CHECK(late_ports == std::set<int>{new_port});
    // The pool saw the connections HAProxy shut down and closed them itself.
    CHECK(stale_closed > 0);
    // fall x inter (1 s) + a check (0.5 s) + the backoff (0.2 s), bounded generously for a busy machine.
    CHECK(resume_after_writable < 10.0);
    CHECK(eventually(10s, [&] { return p.stats().in_use == 0; }));

    // Leave three healthy members for the next test: the old leader back as a streaming replica.
    CHECK(eventually(40s, [&] {
        try {
            return query(env().admin(watch->node()),
                         "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") == "2";
        } catch (const std::exception&) {
            return false;
        }
    }));
}

}  // namespace

TEST_CASE("behind HAProxy a patronictl switchover fails only in-flight writes and writes resume on the new leader",
          "[proxy][haproxy]") {
    const std::string leader = ctl_output("leader");
    const std::string candidate = leader == "p1" ? "p2" : "p1";
    check_leader_change("switchover", [&] { ctl("switchover " + leader + " " + candidate); });
    CHECK(ctl_output("leader") == candidate);
}

TEST_CASE("behind HAProxy a killed Patroni leader fails only in-flight writes and writes resume on the new leader",
          "[proxy][haproxy]") {
    const std::string leader = ctl_output("leader");
    check_leader_change("leader kill", [&] { CHECK(ctl_output("kill-leader") == leader); });
    CHECK(ctl_output("leader") != leader);
}

TEST_CASE("HAProxy's replicas port serves reads from standbys and refuses writes", "[proxy][haproxy]") {
    connpool::options o = pool_options();
    o.max_size = 4;
    connpool::pg::pool p{connpool::pg::factory(env()["CONNPOOL_HAPROXY_REPLICAS_CONNINFO"]), o};
    const int leader_port = port_of(node_of(ctl_output("leader")));
    std::set<int> ports;
    // Four connections at once: round robin puts them on both replicas. After a failover test
    // the old leader rejoins as a standby only after a while, and HAProxy sees it at its next
    // check: sample new connections until both replicas answer (or 30 s pass).
    const bool both = eventually(30s, [&] {
        ports.clear();
        p.retire_all();
        std::vector<connpool::pg::pool::lease_type> held;
        for (int i = 0; i < 4; ++i) held.push_back(p.acquire());
        for (auto& l : held) {
            auto r = l->exec("SELECT pg_is_in_recovery(), inet_server_port()");
            CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "t");
            ports.insert(std::stoi(PQgetvalue(r.get(), 0, 1)));
        }
        return ports.size() == 2;
    });
    CHECK(both);
    CHECK(ports.size() == 2);
    CHECK(ports.count(leader_port) == 0);
    auto l = p.acquire();
    try {
        l->exec("CREATE TABLE hp_never (x int)");
        FAIL("a write through the replicas port succeeded");
    } catch (const connpool::pg::sql_error& e) {
        CHECK(e.sqlstate() == "25006");  // read_only_sql_transaction
    }
}
