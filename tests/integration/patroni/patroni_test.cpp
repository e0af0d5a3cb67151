// connpool::pg::cluster under a real HA manager: three Patroni nodes and one etcd (fixture
// patroni_set), through a `patronictl switchover` and through a killed leader, each under an
// 8-thread mixed load, with the guarantees of the replica failover test.
#include "connpool_catch.hpp"
#include "replica_env.hpp"

#include <connpool/pg/cluster.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace connpool_test::replica;
using connpool::host_role;
namespace intent = connpool::intent;

namespace {

struct tally {
    std::atomic<int> writes_ok{0}, writes_failed{0}, reads_ok{0}, reads_failed{0}, exec_lost{0}, timeouts{0};
    std::mutex mu;
    std::vector<std::string> bad_write_messages;  // write failures that do not name the primary
    std::set<std::string> write_hosts;
};

// 8 threads, half writes and half reads, until stopped; each outcome goes to the current phase.
class mixed_load {
public:
    mixed_load(connpool::pg::cluster& c, tally* first) : phase_(first) {
        for (int t = 0; t < 8; ++t) threads_.emplace_back([this, &c, t] { run(c, t); });
    }
    ~mixed_load() { stop(); }
    void enter(tally* next) { phase_ = next; }
    void stop() {
        stop_ = true;
        for (auto& th : threads_) {
            if (th.joinable()) th.join();
        }
    }

private:
    void run(connpool::pg::cluster& c, int t) {
        for (int i = 0; !stop_; ++i) {
            tally& k = *phase_.load();
            const bool write = (i + t) % 2 == 0;
            connpool::error_code ec;
            connpool::error_info diag;
            auto l = c.acquire(write ? intent::write : intent::read, ec, diag);
            if (ec == connpool::errc::acquire_timeout) ++k.timeouts;
            if (!l) {
                if (write) {
                    ++k.writes_failed;
                    std::lock_guard lk(k.mu);
                    if (diag.message.find("primary") == std::string::npos) k.bad_write_messages.push_back(diag.message);
                } else {
                    ++k.reads_failed;
                }
                std::this_thread::sleep_for(20ms);
                continue;
            }
            try {
                if (write) {
                    l->exec("INSERT INTO pt_t (who) VALUES ($1)", t);
                    ++k.writes_ok;
                    std::lock_guard lk(k.mu);
                    k.write_hosts.insert(l.host());
                } else {
                    l->exec("SELECT 1");
                    ++k.reads_ok;
                }
            } catch (const connpool::pg::sql_error&) {
                // The server went away or was demoted under the lease.
                ++k.exec_lost;
                l.discard();
            }
        }
    }

    std::atomic<tally*> phase_;
    std::atomic<bool> stop_{false};
    std::vector<std::thread> threads_;
};


// acquire_timeout is well above how long Patroni takes to fail over here (about 3 s), so that
// an acquire that runs into it is a failure of the guarantee, never a slow machine.
connpool::options pools() {
    connpool::options o;
    o.max_size = 6;
    o.acquire_timeout = 10s;
    o.connect_timeout = 1s;
    o.backoff_initial = 50ms;
    o.backoff_max = 200ms;
    return o;
}


// The checks both tests share, after the load has stopped.
void check_guarantees(connpool::pg::cluster& c, tally& before, tally& during, tally& after,
                      const std::string& old_leader, const std::string& new_leader) {
    INFO("before: writes " << before.writes_ok << " ok; during: writes " << during.writes_ok << " ok / "
                           << during.writes_failed << " failed, reads " << during.reads_ok << " ok / "
                           << during.reads_failed << " failed, " << during.exec_lost << " lost in exec; after: writes "
                           << after.writes_ok << " ok / " << after.writes_failed << " failed");
    CHECK(before.write_hosts == std::set<std::string>{old_leader});
    CHECK(during.bad_write_messages.empty());
    CHECK(before.timeouts + during.timeouts + after.timeouts == 0);
    CHECK(during.reads_ok > 0);
    CHECK(after.write_hosts == std::set<std::string>{new_leader});
    CHECK(after.writes_failed == 0);
    for (auto& h : c.hosts()) CHECK(h.outstanding == 0);
    // A returned lease may still be in its reset (bounded by reset_timeout) for a moment.
    for (std::size_t i = 0; i < c.size(); ++i) {
        INFO("pool of " << c.hosts()[i].name);
        CHECK(eventually(10s, [&] { return c.host_pool(i).stats().in_use == 0; }));
    }
    // Patroni brings the old leader back as a replica; the cluster then reads from it.
    REQUIRE(eventually(30s, [&] {
        auto s = status_of(c, old_leader);
        return s.role == host_role::standby && s.readable;
    }));
    // Its probed round trip may still be high from its recovery (nearest_rtt_slack filters
    // it out until the next probes): it must come back into the reads, not at once.
    CHECK(eventually(15s, [&] {
        std::set<std::string> readers;
        for (int i = 0; i < 60; ++i) readers.insert(c.acquire(intent::read).host());
        return readers.count(old_leader) == 1;
    }));
}

}  // namespace

TEST_CASE("a patronictl switchover under load moves writes to the new leader with fast failures in between",
          "[patroni][failover]") {
    connpool::pg::cluster c(members({1, 1, 1}, "p"), fast_probes(500ms), pools());
    const std::string leader = ctl_output("leader");
    REQUIRE(primary_of(c) == leader);
    const std::string candidate = leader == "p1" ? "p2" : "p1";
    c.acquire(intent::write)->exec("CREATE TABLE IF NOT EXISTS pt_t (id bigserial PRIMARY KEY, who int)");

    tally before, during, after;
    mixed_load load(c, &before);
    std::this_thread::sleep_for(800ms);
    load.enter(&during);
    ctl("switchover " + leader + " " + candidate);
    REQUIRE(eventually(20s, [&] { return primary_of(c) == candidate; }));
    load.enter(&after);
    REQUIRE(eventually(15s, [&] { return after.writes_ok.load() > 20; }));
    load.stop();
    check_guarantees(c, before, during, after, leader, candidate);
}

TEST_CASE("a killed Patroni leader under load is failed over and writes follow the new leader",
          "[patroni][failover]") {
    connpool::pg::cluster c(members({1, 1, 1}, "p"), fast_probes(500ms), pools());
    const std::string leader = ctl_output("leader");
    REQUIRE(primary_of(c) == leader);
    c.acquire(intent::write)->exec("CREATE TABLE IF NOT EXISTS pt_t (id bigserial PRIMARY KEY, who int)");

    tally before, during, after;
    mixed_load load(c, &before);
    std::this_thread::sleep_for(800ms);
    load.enter(&during);
    const std::string killed = ctl_output("kill-leader");
    CHECK(killed == leader);
    std::string next;
    REQUIRE(eventually(30s, [&] {
        next = primary_of(c);
        return !next.empty() && next != leader;
    }));
    load.enter(&after);
    REQUIRE(eventually(15s, [&] { return after.writes_ok.load() > 20; }));
    load.stop();
    CHECK(during.writes_failed > 0);
    check_guarantees(c, before, during, after, leader, next);
}
