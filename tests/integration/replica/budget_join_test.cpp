// The automatic budget while an instance joins, against the real replica_set: two clusters over
// the same three servers share 19 connections (20 % of (100 - 3)) through the heartbeat table.
// The first runs saturated; the second joins under load. A sampler counts every connection of
// the app user on each server (pools, probes and heartbeats alike) every few ms, during the
// join and after it: none may exceed the allowed total.
#include "connpool_catch.hpp"
#include "replica_env.hpp"

#include <connpool/pg/cluster.hpp>

#include <libpq-fe.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

using namespace connpool_test::replica;
namespace intent = connpool::intent;

namespace {

constexpr double fraction = 0.2;     // floor(0.2 x (100 - 3)) = 19
constexpr std::size_t allowed = 19;  // what the outside test had
constexpr std::size_t ceiling = 30;  // each pool's configured max_size: above the budget

// Counts the app user's backends on the three servers every few ms through admin connections
// of its own (user postgres, so they are not counted), and keeps the most seen per server.
class sampler {
public:
    sampler() {
        for (int n = 0; n < 3; ++n) {
            conns_[n].reset(PQconnectdb((env().admin(n) + " connect_timeout=5").c_str()));
            if (PQstatus(conns_[n].get()) != CONNECTION_OK) throw std::runtime_error("sampler: cannot connect");
        }
        thread_ = std::thread([this] { run(); });
    }
    ~sampler() {
        stop_ = true;
        thread_.join();
    }
    // The most seen on each server since the last reset, and how many samples that took.
    std::array<int, 3> worst() const { return {worst_[0].load(), worst_[1].load(), worst_[2].load()}; }
    int samples() const { return samples_.load(); }
    void reset() {
        for (auto& w : worst_) w = 0;
        samples_ = 0;
    }

private:
    void run() {
        while (!stop_) {
            for (int n = 0; n < 3; ++n) {
                std::unique_ptr<PGresult, decltype(&PQclear)> r(
                    PQexec(conns_[n].get(), "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'"), &PQclear);
                if (PQresultStatus(r.get()) != PGRES_TUPLES_OK) continue;
                const int v = std::atoi(PQgetvalue(r.get(), 0, 0));
                if (v > worst_[n].load()) worst_[n] = v;
            }
            ++samples_;
            std::this_thread::sleep_for(3ms);
        }
    }

    struct finish {
        void operator()(PGconn* c) const { PQfinish(c); }
    };
    std::array<std::unique_ptr<PGconn, finish>, 3> conns_;
    std::array<std::atomic<int>, 3> worst_{};
    std::atomic<int> samples_{0};
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

// More threads than the budget lets any instance hold: reads on the standbys and writes on the
// primary, each holding its connection for 20 ms, so that the pools run at their limit.
class load {
public:
    explicit load(connpool::pg::cluster& c) {
        for (int t = 0; t < 60; ++t) {
            threads_.emplace_back([this, &c, t] {
                while (!stop_) {
                    connpool::error_code ec;
                    auto l = c.acquire(t % 3 == 0 ? intent::write : intent::read, ec);
                    if (!l) {
                        ++failed;
                        std::this_thread::sleep_for(10ms);
                        continue;
                    }
                    try {
                        l->exec("SELECT pg_sleep(0.02)");
                        ++done;
                    } catch (const std::exception&) {
                        ++failed;
                        l.discard();
                    }
                }
            });
        }
    }
    ~load() { stop(); }
    void stop() {
        stop_ = true;
        for (auto& th : threads_) {
            if (th.joinable()) th.join();
        }
    }
    std::atomic<int> done{0}, failed{0};

private:
    std::atomic<bool> stop_{false};
    std::vector<std::thread> threads_;
};


connpool::options pools() {
    connpool::options o;
    o.max_size = ceiling;
    o.acquire_timeout = 10s;
    o.connect_timeout = 2s;
    return o;
}

connpool::pg::heartbeat_options beats(const std::string& table, const std::string& id) {
    connpool::pg::heartbeat_options o;
    o.table = table;
    o.instance_id = id;
    o.interval = 200ms;
    o.ttl = 1000ms;
    o.fraction = fraction;
    o.on_change = [id](const std::string& m) { std::printf("%s: %s\n", id.c_str(), m.c_str()); };
    return o;
}

std::size_t most_open(connpool::pg::cluster& c) {
    std::size_t most = 0;
    for (std::size_t i = 0; i < c.size(); ++i) most = std::max(most, c.host_pool(i).stats().open);
    return most;
}

std::string figures(const std::array<int, 3>& w) {
    return std::to_string(w[0]) + " / " + std::to_string(w[1]) + " / " + std::to_string(w[2]);
}

}  // namespace

TEST_CASE("an instance that joins under load never takes the servers past the shared budget, "
          "probes and heartbeats included",
          "[replica][budget][heartbeat][join]") {
    const std::string table = "hbj_" + std::to_string(::getpid());
    // Whatever an earlier test left must be gone first: the sampler counts every app backend.
    REQUIRE(eventually(10s, [] {
        for (int n = 0; n < 3; ++n) {
            if (admin_query(n, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'app'") != "0") return false;
        }
        return true;
    }));
    sampler s;
    connpool::pg::cluster a(members(), fast_probes(1000ms), pools());
    connpool::pg::auto_budget ha(a, env().conninfo(0), beats(table, "a"));
    load la(a);
    REQUIRE(eventually(10s, [&] { return most_open(a) == ha.limit(); }));  // saturated at its share
    std::this_thread::sleep_for(1s);
    const auto solo = s.worst();
    const std::size_t solo_limit = ha.limit();
    s.reset();

    connpool::pg::cluster b(members(), fast_probes(1000ms), pools());
    connpool::pg::auto_budget hb(b, env().conninfo(0), beats(table, "b"));
    load lb(b);
    // The join is over when both have settled on the same share: the fair one for two.
    REQUIRE(eventually(20s, [&] { return ha.live_instances() == 2 && hb.limit() == ha.limit() && hb.limit() > 1; }));
    const auto join = s.worst();
    const int join_samples = s.samples();
    s.reset();
    std::this_thread::sleep_for(2s);
    const auto steady = s.worst();
    const int steady_samples = s.samples();
    la.stop();
    lb.stop();

    std::printf("budget join: allowed %zu per server; app connections at most (n0 / n1 / n2): alone %s (limit %zu), "
                "while b joins %s (%d samples), both steady %s (%d samples, limit %zu each); "
                "a %d ops / %d failed, b %d ops / %d failed\n",
                allowed, figures(solo).c_str(), solo_limit, figures(join).c_str(), join_samples,
                figures(steady).c_str(), steady_samples, ha.limit(), la.done.load(), la.failed.load(),
                lb.done.load(), lb.failed.load());
    for (int n = 0; n < 3; ++n) {
        INFO("server n" << n);
        CHECK(solo[n] <= static_cast<int>(allowed));
        CHECK(join[n] <= static_cast<int>(allowed));
        CHECK(steady[n] <= static_cast<int>(allowed));
    }
    // Both did work, and the second grew past its floor: a budget that starves is no answer.
    CHECK(la.done.load() > 0);
    CHECK(lb.done.load() > 0);
    CHECK(steady[1] >= static_cast<int>(2 * hb.limit()));
}
