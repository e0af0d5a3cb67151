// Acknowledged writes across a killed Patroni leader (fixture patroni_set). A pool cannot keep a
// write that the server acknowledged and then lost: with asynchronous replicas the promoted
// one may lack the last commits. With Patroni's synchronous_mode every COMMIT waits for a
// synchronous standby, and only that standby may be promoted, so no acknowledged write is lost.
// The test records every acknowledged id through the kill and reads them back from the new
// leader. It also measures the write rate with and without synchronous_mode (its cost).
#include "connpool_catch.hpp"
#include "replica_env.hpp"

#include <connpool/pg/cluster.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace connpool_test::replica;
using connpool::host_role;
namespace intent = connpool::intent;

namespace {

// 8 threads that insert unique ids and remember each one whose INSERT returned (autocommit:
// the COMMIT's acknowledgement) until stopped.
class writers {
public:
    explicit writers(connpool::pg::cluster& c) {
        for (int t = 0; t < 8; ++t) threads_.emplace_back([this, &c] { run(c); });
    }
    ~writers() { stop(); }
    void stop() {
        stop_ = true;
        for (auto& th : threads_) {
            if (th.joinable()) th.join();
        }
    }
    std::vector<long long> acknowledged() {
        std::lock_guard lk(mu_);
        return acked_;
    }
    std::size_t count() {
        std::lock_guard lk(mu_);
        return acked_.size();
    }
    std::atomic<int> failed{0};
    std::string last_error;  // the first failed INSERT's message, for the report (under mu_)

private:
    void run(connpool::pg::cluster& c) {
        while (!stop_) {
            // Unique across every set of writers of the run.
            static std::atomic<long long> next_id{1};
            const long long id = next_id++;
            connpool::error_code ec;
            auto l = c.acquire(intent::write, ec);
            if (!l) {
                ++failed;
                std::this_thread::sleep_for(20ms);
                continue;
            }
            try {
                l->exec("INSERT INTO pt_sync (id) VALUES ($1)", id);
            } catch (const connpool::pg::sql_error& e) {
                // Not acknowledged: it may or may not have committed, and either is allowed.
                ++failed;
                std::lock_guard lk(mu_);
                if (last_error.empty()) last_error = e.what();
                l.discard();
                continue;
            }
            std::lock_guard lk(mu_);
            acked_.push_back(id);
        }
    }

    std::mutex mu_;
    std::vector<long long> acked_;
    std::atomic<bool> stop_{false};
    std::vector<std::thread> threads_;
};

// synchronous_mode for the guard's lifetime, and asynchronous again on every path out.
struct synchronous_mode {
    synchronous_mode() { ctl("sync on"); }
    ~synchronous_mode() {
        try {
            ctl("sync off");
        } catch (...) {
        }
    }
    synchronous_mode(const synchronous_mode&) = delete;
    synchronous_mode& operator=(const synchronous_mode&) = delete;
};


connpool::options pools() {
    connpool::options o;
    o.max_size = 8;
    o.acquire_timeout = 10s;
    o.connect_timeout = 1s;
    o.backoff_initial = 50ms;
    o.backoff_max = 200ms;
    return o;
}


// Acknowledged writes per second over d, with a fresh set of writers.
double write_rate(connpool::pg::cluster& c, std::chrono::milliseconds d) {
    writers w(c);
    std::this_thread::sleep_for(d);
    w.stop();
    return static_cast<double>(w.count()) * 1000.0 / static_cast<double>(d.count());
}

}  // namespace

TEST_CASE("with Patroni's synchronous_mode a killed leader loses no acknowledged write", "[patroni][sync]") {
    connpool::pg::cluster c(members({1, 1, 1}, "p"), fast_probes(500ms), pools());
    const std::string leader = ctl_output("leader");
    REQUIRE(primary_of(c) == leader);
    c.acquire(intent::write)->exec("DROP TABLE IF EXISTS pt_sync; CREATE TABLE pt_sync (id bigint PRIMARY KEY)");
    const double async_rate = write_rate(c, 1s);

    synchronous_mode sync;
    const double sync_rate = write_rate(c, 1s);
    writers w(c);
    std::this_thread::sleep_for(800ms);
    const std::string killed = ctl_output("kill-leader");
    CHECK(killed == leader);
    std::string next;
    REQUIRE(eventually(30s, [&] {
        next = primary_of(c);
        return !next.empty() && next != leader;
    }));
    const std::size_t at_failover = w.count();
    INFO("acknowledged at failover " << at_failover << ", " << w.failed.load() << " failed so far: " << w.last_error);
    REQUIRE(eventually(15s, [&] { return w.count() > at_failover + 20; }));
    w.stop();

    std::set<long long> stored;
    {
        auto l = c.acquire(intent::write);
        REQUIRE(l.host() == next);
        auto r = l->exec("SELECT id FROM pt_sync");
        for (int i = 0; i < PQntuples(r.get()); ++i) stored.insert(std::atoll(PQgetvalue(r.get(), i, 0)));
    }
    const auto acked = w.acknowledged();
    std::size_t lost = 0;
    for (long long id : acked) lost += stored.count(id) == 0 ? 1 : 0;
    std::printf("synchronous_mode: %zu acknowledged writes across the kill of %s (new leader %s), %zu lost, "
                "%d not acknowledged; 8 writers: %.0f writes/s async, %.0f writes/s sync\n",
                acked.size(), killed.c_str(), next.c_str(), lost, w.failed.load(), async_rate, sync_rate);
    CHECK(acked.size() > 20);
    CHECK(lost == 0);
    // The old leader comes back as a replica before the next test takes the set.
    CHECK(eventually(30s, [&] {
        auto s = status_of(c, leader);
        return s.role == host_role::standby && s.readable;
    }));
}
