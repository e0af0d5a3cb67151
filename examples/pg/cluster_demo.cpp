// A read-heavy service over one primary and two streaming standbys, through connpool::pg::cluster.
//
//   cluster_demo [seconds] [threads]
//
// The hosts' conninfo strings come from CONNPOOL_REPLICA_CONNINFO_0, _1 and _2 (what
// tests/support/replica/start-cluster.sh writes; scripts/demo-cluster.sh runs this program and
// changes the topology under it). Each worker does nine reads for every write; after each write
// it reads its own row back with the write's token (read-your-writes). Twice a second the program
// prints where the leases went and what the cluster knows about each host, so that you can watch
// reads spread, a lagging standby drop out and come back, and a failover.
#include <connpool/pg/cluster.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace intent = connpool::intent;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
    const int seconds = argc > 1 ? std::atoi(argv[1]) : 10;
    const int threads = argc > 2 ? std::atoi(argv[2]) : 8;
    std::vector<connpool::pg::cluster_member> members;
    for (int n = 0; n < 3; ++n) {
        const std::string var = "CONNPOOL_REPLICA_CONNINFO_" + std::to_string(n);
        const char* ci = std::getenv(var.c_str());
        if (ci == nullptr) {
            std::fprintf(stderr, "cluster_demo: set %s (see scripts/demo-cluster.sh)\n", var.c_str());
            return 2;
        }
        members.push_back({"n" + std::to_string(n), ci, 1.0});
    }

    connpool::cluster_options co;
    co.refresh_interval = 250ms;
    co.probe_timeout = 500ms;
    co.max_replica_lag = 1s;  // a standby more than a second behind serves no plain reads
    connpool::options po;
    po.max_size = 4;
    po.acquire_timeout = 2s;
    po.connect_timeout = 1s;
    connpool::pg::cluster db(members, co, po);
    db.acquire(intent::write)->exec("CREATE TABLE IF NOT EXISTS demo_orders (id bigserial PRIMARY KEY, worker int)");

    std::mutex mu;
    std::map<std::string, int> reads, writes, errors;  // per interval, by host (errors by kind)
    std::atomic<bool> stop{false};
    std::atomic<long> fresh_ok{0}, fresh_stale{0};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; !stop; ++i) {
                try {
                    if (i % 10 == 0) {
                        connpool::freshness_token token;
                        std::string id;
                        {
                            auto w = db.acquire(intent::write);
                            auto r = w->exec("INSERT INTO demo_orders (worker) VALUES ($1) RETURNING id", t);
                            id = PQgetvalue(r.get(), 0, 0);
                            token = connpool::pg::commit_token(*w);
                            std::lock_guard lk(mu);
                            ++writes[w.host()];
                        }
                        auto r = db.acquire(intent::read_fresh(token));
                        auto seen = r->exec("SELECT count(*) FROM demo_orders WHERE id = $1", id);
                        (std::string(PQgetvalue(seen.get(), 0, 0)) == "1" ? fresh_ok : fresh_stale)++;
                    } else {
                        auto r = db.acquire(intent::read);
                        r->exec("SELECT count(*) FROM demo_orders WHERE worker = $1", t);
                        std::lock_guard lk(mu);
                        ++reads[r.host()];
                    }
                } catch (const connpool::error& e) {
                    std::lock_guard lk(mu);
                    ++errors[e.code() == connpool::cluster_errc::no_primary ? "no primary" : e.code().message()];
                    std::this_thread::sleep_for(20ms);
                } catch (const connpool::pg::sql_error&) {
                    // The server went away under the lease; the pool closes that connection.
                    std::lock_guard lk(mu);
                    ++errors["connection lost"];
                }
            }
        });
    }

    const auto start = std::chrono::steady_clock::now();
    for (int tick = 1; tick <= seconds * 2; ++tick) {
        std::this_thread::sleep_until(start + tick * 500ms);
        std::map<std::string, int> r, w, e;
        {
            std::lock_guard lk(mu);
            r.swap(reads);
            w.swap(writes);
            e.swap(errors);
        }
        std::string line;
        char buf[64];
        std::snprintf(buf, sizeof buf, "t=%4.1fs  reads", tick * 0.5);
        line = buf;
        for (auto& h : db.hosts()) line += " " + h.name + ":" + std::to_string(r[h.name]);
        line += "  writes";
        for (auto& h : db.hosts()) line += " " + h.name + ":" + std::to_string(w[h.name]);
        for (auto& [what, n] : e) line += "  [" + what + " x" + std::to_string(n) + "]";
        line += "  |";
        for (auto& h : db.hosts()) {
            line += " " + h.name + " " + connpool::to_string(h.role);
            if (h.role == connpool::host_role::standby) {
                std::snprintf(buf, sizeof buf, " lag %.1fs%s%s", static_cast<double>(h.lag.count()) / 1000.0,
                              h.replay_paused ? " paused" : "", h.readable ? "" : " (out)");
                line += buf;
            }
            line += ";";
        }
        std::printf("%s\n", line.c_str());
        std::fflush(stdout);
    }
    stop = true;
    for (auto& th : workers) th.join();
    std::printf("read-your-writes: %ld reads saw their write, %ld did not\n", fresh_ok.load(), fresh_stale.load());
    return fresh_stale == 0 ? 0 : 1;
}
