// connpool::pg::cluster through a failover on a real replication set (fixture replica_failover_set,
// private to this test): the primary is killed under an 8-thread mixed load, a standby is promoted
// with pg_ctl promote, and the old primary is rebuilt as a standby of the new one.
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

// What the workers saw, in the phase they saw it.
struct tally {
    std::atomic<int> writes_ok{0}, writes_failed{0}, reads_ok{0}, reads_failed{0}, exec_lost{0};
    std::atomic<int> timeouts{0};
    std::atomic<long long> longest_acquire_ms{0};
    std::mutex mu;
    std::vector<std::string> bad_write_messages;  // write failures that do not name the primary
    std::vector<std::string> read_messages;
    std::set<std::string> write_hosts;
};

}  // namespace

TEST_CASE("killing the primary under load fails writes fast naming the primary until a standby is promoted, "
          "while reads go on and no lease is lost",
          "[replica][failover]") {
    connpool::cluster_options co;
    co.refresh_interval = 200ms;
    co.probe_timeout = 500ms;
    connpool::options po;
    po.max_size = 6;
    po.acquire_timeout = 3s;
    po.connect_timeout = 1s;
    po.backoff_initial = 50ms;
    po.backoff_max = 200ms;
    connpool::pg::cluster c(members(), co, po);
    {
        auto w = c.acquire(intent::write);
        w->exec("CREATE TABLE IF NOT EXISTS fo_t (id bigserial PRIMARY KEY, who int)");
    }

    tally before, during, after;
    std::atomic<tally*> phase{&before};
    std::atomic<bool> stop{false};
    std::vector<std::thread> workers;
    for (int t = 0; t < 8; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; !stop.load(); ++i) {
                tally& k = *phase.load();
                const bool write = (i + t) % 2 == 0;
                const auto t0 = std::chrono::steady_clock::now();
                connpool::error_code ec;
                connpool::error_info diag;
                auto l = c.acquire(write ? intent::write : intent::read, ec, diag);
                const auto ms =
                    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
                if (ms > k.longest_acquire_ms) k.longest_acquire_ms = ms;
                if (ec == connpool::errc::acquire_timeout) ++k.timeouts;
                if (!l) {
                    std::lock_guard lk(k.mu);
                    if (write) {
                        ++k.writes_failed;
                        if (diag.message.find("primary") == std::string::npos) k.bad_write_messages.push_back(diag.message);
                    } else {
                        ++k.reads_failed;
                        k.read_messages.push_back(diag.message);
                    }
                    std::this_thread::sleep_for(20ms);
                    continue;
                }
                try {
                    if (write) {
                        l->exec("INSERT INTO fo_t (who) VALUES ($1)", t);
                        ++k.writes_ok;
                        std::lock_guard lk(k.mu);
                        k.write_hosts.insert(l.host());
                    } else {
                        l->exec("SELECT count(*) FROM fo_t");
                        ++k.reads_ok;
                    }
                } catch (const connpool::pg::sql_error& e) {
                    // The primary died under this lease: the pool closes it on return.
                    ++k.exec_lost;
                    if (!write) {
                        std::lock_guard lk(k.mu);
                        k.read_messages.push_back(e.what());
                    }
                    l.discard();
                }
            }
        });
    }
    std::this_thread::sleep_for(800ms);
    phase = &during;
    ctl("kill 0");
    // Writes fail while there is no primary; the probers see n0 down within a probe or two.
    REQUIRE(eventually(10s, [&] { return status_of(c, "n0").role == host_role::down; }));
    std::this_thread::sleep_for(600ms);
    ctl("promote 1");
    REQUIRE(eventually(15s, [&] { return status_of(c, "n1").role == host_role::primary; }));
    phase = &after;
    REQUIRE(eventually(10s, [&] { return after.writes_ok.load() > 20; }));
    stop = true;
    for (auto& w : workers) w.join();

    INFO("before: writes " << before.writes_ok << " ok / " << before.writes_failed << " failed; during: writes "
                           << during.writes_ok << " ok / " << during.writes_failed << " failed, reads "
                           << during.reads_ok << " ok / " << during.reads_failed << " failed; after: writes "
                           << after.writes_ok << " ok; longest acquire " << during.longest_acquire_ms << " ms");
    CHECK(before.writes_ok > 0);
    CHECK(before.write_hosts == std::set<std::string>{"n0"});
    // Writes failed, each naming the primary; none waited out its timeout.
    CHECK(during.writes_failed > 0);
    CHECK(during.bad_write_messages.empty());
    CHECK(before.timeouts + during.timeouts + after.timeouts == 0);
    // Reads went on, on the standbys, throughout.
    CHECK(during.reads_ok > 0);
    CHECK(during.reads_failed == 0);
    CHECK(during.read_messages.empty());
    // After the promotion writes land on n1 only.
    CHECK(after.write_hosts == std::set<std::string>{"n1"});
    CHECK(after.writes_failed == 0);
    // No lease lost: nothing outstanding, nothing in use in any pool.
    for (auto& h : c.hosts()) CHECK(h.outstanding == 0);
    // A returned lease may still be in its reset (bounded by reset_timeout) for a moment.
    for (std::size_t i = 0; i < c.size(); ++i) {
        INFO("pool of " << c.hosts()[i].name);
        CHECK(eventually(10s, [&] { return c.host_pool(i).stats().in_use == 0; }));
    }

    SECTION("the old primary, rebuilt as a standby of the new one, serves reads") {
        ctl("rejoin 0 1");
        REQUIRE(eventually(15s, [&] { return status_of(c, "n0").role == host_role::standby; }));
        REQUIRE(eventually(10s, [&] { return status_of(c, "n0").readable; }));
        std::set<std::string> readers;
        for (int i = 0; i < 60; ++i) {
            auto r = c.acquire(intent::read);
            readers.insert(r.host());
            r->exec("SELECT 1");
        }
        CHECK(readers.count("n0") == 1);
        auto w = c.acquire(intent::write);
        CHECK(w.host() == "n1");
    }
}
