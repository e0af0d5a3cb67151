// connpool::pg::cluster against a real primary and two streaming standbys (fixture replica_set):
// roles, intents, both faces, lag from paused replay, read-your-writes, balancing and the
// connection budget. The tests share the set and pause replay, so they run one at a time
// (RESOURCE_LOCK in CMakeLists.txt).
#include "connpool_catch.hpp"
#include "replica_env.hpp"

#include <connpool/pg/cluster.hpp>

#include <boost/asio/io_context.hpp>

#include <signal.h>

#include <atomic>
#include <fstream>
#include <future>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace connpool_test::replica;
using connpool::host_role;
namespace intent = connpool::intent;

namespace {


connpool::options small_pools() {
    connpool::options o;
    o.max_size = 8;
    o.acquire_timeout = 5s;
    o.connect_timeout = 2s;
    return o;
}

std::string scalar(connpool::pg::connection& c, const std::string& sql) {
    auto r = c.exec(sql);
    return PQntuples(r.get()) > 0 ? PQgetvalue(r.get(), 0, 0) : std::string{};
}

// Pauses replay on a node for its lifetime, and resumes it on every path out of the test.
struct paused_replay {
    int node;
    explicit paused_replay(int n) : node(n) { admin_query(n, "SELECT pg_wal_replay_pause()"); }
    ~paused_replay() {
        try {
            admin_query(node, "SELECT pg_wal_replay_resume()");
        } catch (...) {
        }
    }
    paused_replay(const paused_replay&) = delete;
    paused_replay& operator=(const paused_replay&) = delete;
};

// SIGSTOP on the given processes until destroyed or thawed (SIGCONT on every path): a server
// that accepts bytes and never answers, unlike a dead one.
class frozen {
public:
    explicit frozen(std::vector<int> pids) : pids_(std::move(pids)) {
        for (int pid : pids_) REQUIRE(::kill(pid, SIGSTOP) == 0);
    }
    ~frozen() { thaw(); }
    void thaw() {
        for (int pid : pids_) ::kill(pid, SIGCONT);
        pids_.clear();
    }
    frozen(const frozen&) = delete;
    frozen& operator=(const frozen&) = delete;

private:
    std::vector<int> pids_;
};

int postmaster_pid(int node) {
    std::ifstream in(env()["CONNPOOL_REPLICA_STATE_DIR"] + "/n" + std::to_string(node) + "/postmaster.pid");
    int pid = 0;
    in >> pid;
    REQUIRE(pid > 0);
    return pid;
}

void make_table(connpool::pg::cluster& c, const std::string& name) {
    auto w = c.acquire(intent::write);
    w->exec("CREATE TABLE IF NOT EXISTS " + name + " (id bigint PRIMARY KEY, v text)");
}

}  // namespace

TEST_CASE("the cluster finds the primary and both standbys and routes writes and reads by intent",
          "[replica][cluster]") {
    connpool::pg::cluster c(members(), fast_probes(1000ms), small_pools());
    auto hs = c.hosts();
    REQUIRE(hs.size() == 3);
    CHECK(hs[0].role == host_role::primary);
    CHECK(hs[1].role == host_role::standby);
    CHECK(hs[2].role == host_role::standby);
    CHECK(hs[1].readable);

    auto w = c.acquire(intent::write);
    CHECK(w.host() == "n0");
    CHECK(w.role() == host_role::primary);
    CHECK(scalar(*w, "SELECT pg_is_in_recovery()") == "f");
    w.release();

    std::set<std::string> readers;
    for (int i = 0; i < 40; ++i) {
        auto r = c.acquire(intent::read);
        REQUIRE(r.role() == host_role::standby);
        REQUIRE(scalar(*r, "SELECT pg_is_in_recovery()") == "t");
        readers.insert(r.host());
    }
    CHECK(readers == std::set<std::string>{"n1", "n2"});
    for (auto& h : c.hosts()) CHECK(h.outstanding == 0);
}

TEST_CASE("the async face routes by intent and completes on the caller's executor", "[replica][cluster][async]") {
    boost::asio::io_context io;
    connpool::pg::cluster c(io.get_executor(), members(), fast_probes(1000ms), small_pools());
    // The two complete in either order: each is keyed by its intent.
    std::map<std::string, std::string> got;
    std::atomic<bool> on_io_thread{true};
    const auto io_thread = std::this_thread::get_id();
    for (auto [name, r] : {std::pair{"write", intent::write}, std::pair{"read", intent::read}}) {
        c.async_acquire(r, [&, name = std::string(name)](connpool::error_code ec, connpool::pg::cluster::lease_type l) {
            if (std::this_thread::get_id() != io_thread) on_io_thread = false;
            got[name] = ec ? "error: " + ec.message() : l.host() + " " + connpool::to_string(l.role());
        });
    }
    io.run_for(10s);
    REQUIRE(got.size() == 2);
    CHECK(got["write"] == "n0 primary");
    CHECK((got["read"] == "n1 standby" || got["read"] == "n2 standby"));
    CHECK(on_io_thread);
}

TEST_CASE("a write fails at once with no_primary naming every host when only standbys are left",
          "[replica][cluster][failover]") {
    auto m = members();
    m.erase(m.begin());  // n1 and n2 only: both in recovery
    connpool::pg::cluster c(m, fast_probes(1000ms), small_pools());

    connpool::error_code ec;
    connpool::error_info diag;
    auto l = c.acquire(intent::write, ec, diag);
    CHECK_FALSE(l);
    // acquire_timeout would mean the write waited; it must not.
    CHECK(ec == connpool::cluster_errc::no_primary);
    CHECK(diag.message == "no primary: host n1 is in recovery, host n2 is in recovery");
    CHECK_THROWS_WITH(c.acquire(intent::write), "no primary: host n1 is in recovery, host n2 is in recovery");

    boost::asio::io_context io;
    connpool::error_info adiag;
    connpool::error_code aec;
    c.async_acquire(intent::write, adiag, [&](connpool::error_code e, connpool::pg::cluster::lease_type) { aec = e; });
    io.run_for(5s);  // the default executor is the pools' own; run_for only bounds the wait
    CHECK(eventually(5s, [&] { return static_cast<bool>(aec); }));
    CHECK(aec == connpool::cluster_errc::no_primary);
    CHECK(adiag.message == "no primary: host n1 is in recovery, host n2 is in recovery");

    // Reads still work without a primary.
    auto r = c.acquire(intent::read);
    CHECK(r.role() == host_role::standby);
}

TEST_CASE("a standby with paused replay leaves read routing while it lags and comes back after resume",
          "[replica][cluster][lag]") {
    auto o = fast_probes(1000ms);
    o.max_replica_lag = 500ms;
    connpool::pg::cluster c(members(), o, small_pools());
    make_table(c, "lag_t");
    REQUIRE(eventually(10s, [&] { return status_of(c, "n1").readable && status_of(c, "n2").readable; }));
    int id = 0;
    auto write_one = [&] {
        auto w = c.acquire(intent::write);
        w->exec("INSERT INTO lag_t VALUES ($1, 'x') ON CONFLICT DO NOTHING", ++id);
    };
    {
        paused_replay pause(1);
        // Keep the primary writing, so that there is log for n1 to fall behind on.
        const bool left = eventually(15s, [&] {
            write_one();
            return !status_of(c, "n1").readable;
        });
        auto s = status_of(c, "n1");
        INFO("n1: " << connpool::to_string(s.role) << ", paused " << s.replay_paused << ", lag " << s.lag.count()
                    << " ms / " << s.lag_bytes << " bytes, probes " << s.probes << ", note '" << s.note
                    << "', last error '" << s.last_error << "'; replay state on n1: "
                    << admin_query(1, "SELECT pg_get_wal_replay_pause_state()"));
        REQUIRE(left);
        CHECK(s.replay_paused);
        CHECK(s.lag_bytes > 0);
        CHECK(s.note.find("max_replica_lag") != std::string::npos);
        for (int i = 0; i < 30; ++i) {
            auto r = c.acquire(intent::read);
            REQUIRE(r.host() == "n2");
        }
    }
    REQUIRE(eventually(15s, [&] {
        write_one();
        return status_of(c, "n1").readable;
    }));
    std::set<std::string> readers;
    for (int i = 0; i < 40; ++i) readers.insert(c.acquire(intent::read).host());
    CHECK(readers.count("n1") == 1);
}

TEST_CASE("a read with the commit token always sees the write, even with replay paused on one standby",
          "[replica][cluster][fresh]") {
    connpool::pg::cluster c(members(), fast_probes(1000ms), small_pools());
    make_table(c, "ryw_t");
    // Wait until the table itself has reached both standbys.
    connpool::freshness_token t0;
    {
        auto w = c.acquire(intent::write);
        t0 = connpool::pg::commit_token(*w);
    }
    REQUIRE(eventually(10s, [&] {
        c.refresh(2s);
        return status_of(c, "n1").position >= t0.position && status_of(c, "n2").position >= t0.position;
    }));

    paused_replay pause(1);
    std::map<std::string, int> served;
    long long last = 0;
    for (long long id = 1; id <= 40; ++id) {
        connpool::freshness_token t;
        {
            auto w = c.acquire(intent::write);
            w->exec("INSERT INTO ryw_t VALUES ($1, 'v')", id);
            t = connpool::pg::commit_token(*w);
        }
        REQUIRE(t.position > t0.position);
        auto r = c.acquire(intent::read_fresh(t));
        ++served[r.host()];
        INFO("read " << id << " on " << r.host());
        REQUIRE(scalar(*r, "SELECT count(*) FROM ryw_t WHERE id = " + std::to_string(id)) == "1");
        last = id;
    }
    CHECK(served.count("n1") == 0);
    // The paused standby really is stale: a plain query there misses the last write.
    CHECK(query(env().conninfo(1), "SELECT count(*) FROM ryw_t WHERE id = " + std::to_string(last)) == "0");
    // And the caught-up standby served fresh reads (after checking its replay position).
    CHECK(served["n2"] > 0);
}

TEST_CASE("a read_fresh acquire that checks a frozen standby returns within its timeout",
          "[replica][cluster][fresh][timeout]") {
    auto o = fast_probes(1000ms);
    // No probe after the first: n1 stays as first seen, so a newer token makes routing ask
    // n1's connection instead of trusting a probe.
    o.refresh_interval = 1h;
    auto po = small_pools();
    po.validation = connpool::validation_mode::optimistic;  // the check itself must meet the frozen server
    const auto m = members();
    connpool::pg::cluster c({m[0], m[1]}, o, po);
    make_table(c, "frozen_t");
    REQUIRE(status_of(c, "n1").readable);

    int backend = 0;
    {
        auto r = c.acquire(intent::read);
        REQUIRE(r.host() == "n1");
        backend = PQbackendPID(r->native_handle());
    }
    REQUIRE(eventually(5s, [&] { return c.host_pool(1).stats().idle == 1; }));
    connpool::freshness_token t;
    {
        auto w = c.acquire(intent::write);
        w->exec("INSERT INTO frozen_t VALUES (1, 'v') ON CONFLICT (id) DO UPDATE SET v = 'w'");
        t = connpool::pg::commit_token(*w);
    }
    REQUIRE(t.position > status_of(c, "n1").position);

    frozen stop({postmaster_pid(1), backend});
    const auto timeout = 1500ms;
    const auto t0 = std::chrono::steady_clock::now();
    // On a thread, so that a hang fails the test (after the thaw lets it finish) instead of
    // stalling it until CTest's timeout.
    std::promise<std::string> outcome;
    std::thread caller([&] {
        try {
            outcome.set_value("lease on " + c.acquire_for(intent::read_fresh(t), timeout).host());
        } catch (const connpool::error& e) {
            outcome.set_value(e.what());
        }
    });
    auto f = outcome.get_future();
    const bool returned = f.wait_for(timeout + 3s) == std::future_status::ready;
    const auto elapsed = std::chrono::steady_clock::now() - t0;
    stop.thaw();
    caller.join();
    INFO(f.get() << " after " << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms");
    CHECK(returned);
    CHECK(elapsed < timeout + 1s);
    // The connection whose answer was cut off is closed, never handed out again.
    CHECK(eventually(5s, [&] {
        const auto s = c.host_pool(1).stats();
        return s.closed_for(connpool::close_reason::discarded) + s.closed_for(connpool::close_reason::broken) == 1;
    }));
}

TEST_CASE("a slow standby gets fewer leases than a fast one under concurrent reads", "[replica][cluster][balance]") {
    connpool::pg::cluster c(members(), fast_probes(1000ms), small_pools());
    std::map<std::string, std::atomic<int>> count;
    count["n0"] = 0;
    count["n1"] = 0;
    count["n2"] = 0;
    std::atomic<int> failures{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 40; ++i) {
                try {
                    auto r = c.acquire(intent::read);
                    ++count[r.host()];
                    // n1 plays the slow server: each read there takes ten times as long.
                    r->exec(r.host() == "n1" ? "SELECT pg_sleep(0.02)" : "SELECT pg_sleep(0.002)");
                } catch (...) {
                    ++failures;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    INFO("n1 (slow) " << count["n1"] << ", n2 (fast) " << count["n2"]);
    CHECK(failures == 0);
    CHECK(count["n0"] == 0);
    // Fewer by a clear margin, not a fixed ratio: how much fewer depends on the machine's load.
    CHECK(count["n1"] * 3 < count["n2"] * 2);
}

TEST_CASE("standby weights 2:1 give read shares close to 2:1", "[replica][cluster][balance]") {
    connpool::pg::cluster c(members({1, 2, 1}), fast_probes(1000ms), small_pools());
    std::map<std::string, int> count;
    for (int i = 0; i < 900; ++i) ++count[c.acquire(intent::read).host()];
    const double ratio = static_cast<double>(count["n1"]) / count["n2"];
    INFO("n1 (weight 2) " << count["n1"] << ", n2 (weight 1) " << count["n2"]);
    CHECK(ratio > 1.5);
    CHECK(ratio < 2.6);
}

TEST_CASE("the budget check reads the server's max_connections and warns, clamps or refuses",
          "[replica][budget]") {
    auto po = small_pools();
    po.max_size = 30;
    connpool::pg::cluster c(members(), fast_probes(1000ms), po);
    std::vector<std::string> said;
    connpool::pg::budget_options b;
    b.instances = 4;
    b.on_warning = [&](const std::string& m) { said.push_back(m); };
    const std::string numbers = "4 instances x max_size 30 = 120 > 80 % of (100 - 3) = 77";

    SECTION("warn") {
        auto reports = c.check_budget(b);
        REQUIRE(reports.size() == 3);
        CHECK(reports[0].max_connections == 100);
        CHECK(reports[0].reserved == 3);
        CHECK(reports[0].in_use >= 1);
        REQUIRE(said.size() == 3);
        CHECK(said[0] == "connpool: connection budget exceeded: host n0: " + numbers);
        CHECK(c.host_pool(0).stats().max_size == 30);
    }
    SECTION("clamp") {
        b.mode = connpool::pg::budget_mode::clamp;
        auto reports = c.check_budget(b);
        CHECK(reports[1].applied_max_size == 19);
        CHECK(c.host_pool(1).stats().max_size == 19);
        CHECK(said.at(1) == "connpool: connection budget exceeded: host n1: " + numbers + "; max_size clamped to 19");
    }
    SECTION("refuse") {
        b.mode = connpool::pg::budget_mode::refuse;
        CHECK_THROWS_WITH(c.check_budget(b), "connection budget exceeded: host n0: " + numbers);
    }
    SECTION("within the budget nothing is said or changed") {
        b.instances = 2;
        b.mode = connpool::pg::budget_mode::clamp;
        auto reports = c.check_budget(b);
        CHECK_FALSE(reports[0].over);
        CHECK(said.empty());
        CHECK(c.host_pool(0).stats().max_size == 30);
    }
}
