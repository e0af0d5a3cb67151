// The cluster's pure decisions (connpool/cluster/routing.hpp), driven with made-up host states:
// no server, no clock, a seeded generator.
#include "connpool_catch.hpp"

#include <connpool/cluster/routing.hpp>
#include <connpool/pg/cluster/budget.hpp>
#include <connpool/pg/cluster/lsn.hpp>

#include <map>
#include <random>
#include <string>
#include <vector>

using namespace connpool;
using namespace std::chrono_literals;

namespace {

host_status host(std::string name, host_role role, std::uint64_t pos = 100, bool readable = true, double weight = 1.0) {
    host_status h;
    h.name = std::move(name);
    h.role = role;
    h.position = pos;
    h.readable = role == host_role::standby && readable;
    h.weight = weight;
    if (role == host_role::standby && !readable) h.note = "lags 9.0 s > max_replica_lag 1.0 s";
    if (role == host_role::down) h.note = "is down: connection refused";
    return h;
}

std::map<std::string, int> shares(const std::vector<host_status>& hs, route r, const cluster_options& o, int n,
                                  unsigned seed = 42) {
    std::minstd_rand rng(seed);
    std::map<std::string, int> out;
    const std::vector<bool> none(hs.size(), false);
    for (int i = 0; i < n; ++i) {
        auto c = detail::choose_host(hs, r, o, none, false, rng);
        REQUIRE(c.host);
        ++out[hs[*c.host].name];
    }
    return out;
}

}  // namespace

TEST_CASE("a write goes to the one primary and fails at once naming every host when there is none",
          "[replica][routing]") {
    std::minstd_rand rng(1);
    cluster_options o;
    std::vector<host_status> hs{host("a", host_role::down), host("b", host_role::standby), host("c", host_role::primary)};
    const std::vector<bool> none(3, false);
    auto c = detail::choose_host(hs, intent::write, o, none, false, rng);
    REQUIRE(c.host == 2u);

    hs[2].role = host_role::standby;
    c = detail::choose_host(hs, intent::write, o, none, false, rng);
    REQUIRE_FALSE(c.host);
    CHECK(c.code == cluster_errc::no_primary);
    CHECK(c.message == "no primary: host a is down: connection refused, host b is in recovery, host c is in recovery");
}

TEST_CASE("two hosts that both claim to be primary get no writes", "[replica][routing]") {
    std::minstd_rand rng(1);
    std::vector<host_status> hs{host("a", host_role::primary), host("b", host_role::primary)};
    auto c = detail::choose_host(hs, intent::write, cluster_options{}, std::vector<bool>(2, false), false, rng);
    REQUIRE_FALSE(c.host);
    CHECK(c.message == "no primary: host a claims to be primary, host b claims to be primary");
}

TEST_CASE("reads skip lagging standbys and fall back to the primary only when no standby is usable",
          "[replica][routing][lag]") {
    std::minstd_rand rng(1);
    cluster_options o;
    std::vector<host_status> hs{host("p", host_role::primary), host("s1", host_role::standby, 100, false),
                                host("s2", host_role::standby)};
    const std::vector<bool> none(3, false);
    for (int i = 0; i < 50; ++i) REQUIRE(detail::choose_host(hs, intent::read, o, none, false, rng).host == 2u);
    hs[2].readable = false;
    REQUIRE(detail::choose_host(hs, intent::read, o, none, false, rng).host == 0u);
    o.read_from_primary = false;
    auto c = detail::choose_host(hs, intent::read, o, none, false, rng);
    REQUIRE_FALSE(c.host);
    CHECK(c.code == cluster_errc::no_host);
    CHECK(c.message.find("host s1 lags 9.0 s > max_replica_lag 1.0 s") != std::string::npos);
    CHECK(c.message.find("(read_from_primary is off)") != std::string::npos);
}

TEST_CASE("read_fresh goes to a standby known to have replayed the token, else verifies one, else the primary",
          "[replica][routing][fresh]") {
    std::minstd_rand rng(1);
    cluster_options o;
    std::vector<host_status> hs{host("p", host_role::primary, 500), host("s1", host_role::standby, 300),
                                host("s2", host_role::standby, 200)};
    const std::vector<bool> none(3, false);
    auto c = detail::choose_host(hs, intent::read_fresh({250}), o, none, false, rng);
    REQUIRE(c.host == 1u);
    CHECK_FALSE(c.verify);

    c = detail::choose_host(hs, intent::read_fresh({400}), o, none, false, rng);
    REQUIRE(c.host == 0u);  // nobody known to be there, and no way to check

    c = detail::choose_host(hs, intent::read_fresh({400}), o, none, true, rng);
    REQUIRE(c.host);
    CHECK(*c.host != 0u);
    CHECK(c.verify);

    c = detail::choose_host(hs, intent::read_fresh({400}), o, std::vector<bool>{false, true, true}, true, rng);
    REQUIRE(c.host == 0u);  // both standbys were checked and were behind
    CHECK_FALSE(c.verify);
}

TEST_CASE("weights 2:1 give read shares close to 2:1 when nothing is outstanding", "[replica][routing][balance]") {
    std::vector<host_status> hs{host("p", host_role::primary), host("big", host_role::standby, 100, true, 2.0),
                                host("small", host_role::standby, 100, true, 1.0)};
    for (auto policy : {balance_policy::power_of_two, balance_policy::least_loaded}) {
        cluster_options o;
        o.balance = policy;
        auto s = shares(hs, intent::read, o, 30000);
        const double ratio = static_cast<double>(s["big"]) / s["small"];
        INFO("policy " << static_cast<int>(policy) << ": big " << s["big"] << ", small " << s["small"]);
        CHECK(ratio > 1.8);
        CHECK(ratio < 2.2);
        CHECK(s["p"] == 0);
    }
}

TEST_CASE("the host with more outstanding leases per weight gets fewer reads", "[replica][routing][balance]") {
    std::vector<host_status> hs{host("p", host_role::primary), host("busy", host_role::standby),
                                host("idle", host_role::standby)};
    hs[1].outstanding = 8;
    hs[2].outstanding = 1;
    cluster_options o;
    auto s = shares(hs, intent::read, o, 10000);
    // Power of two over two hosts: the busy one wins only when drawn twice (a quarter).
    CHECK(s["busy"] < s["idle"] / 2);
    o.balance = balance_policy::least_loaded;
    s = shares(hs, intent::read, o, 1000);
    CHECK(s["busy"] == 0);
}

TEST_CASE("nearest_rtt_slack keeps reads on the standbys near the nearest one", "[replica][routing][balance]") {
    std::vector<host_status> hs{host("p", host_role::primary), host("near", host_role::standby),
                                host("far", host_role::standby), host("near2", host_role::standby)};
    hs[1].rtt = 300us;
    hs[2].rtt = 20000us;
    hs[3].rtt = 700us;
    cluster_options o;
    o.nearest_rtt_slack = 1000us;
    auto s = shares(hs, intent::read, o, 5000);
    CHECK(s["far"] == 0);
    CHECK(s["near"] > 1000);
    CHECK(s["near2"] > 1000);
    o.nearest_rtt_slack = 0us;
    s = shares(hs, intent::read, o, 5000);
    CHECK(s["far"] > 1000);
}

TEST_CASE("a probe puts a standby out of read routing while it lags and back when it catches up",
          "[replica][routing][lag]") {
    cluster_options o;
    o.max_replica_lag = 1000ms;
    host_status h;
    h.name = "s";
    probe_result p;
    p.role = host_role::standby;
    p.position = 100;
    p.replay_age_seconds = 5.0;
    detail::apply_probe(h, p, 200us, std::uint64_t{500}, o);
    CHECK_FALSE(h.readable);
    CHECK(h.lag_bytes == 400);
    CHECK(h.note == "lags 5.0 s > max_replica_lag 1.0 s");

    // Caught up: an old last transaction is no lag when nothing is left to replay.
    p.position = 500;
    detail::apply_probe(h, p, 200us, std::uint64_t{500}, o);
    CHECK(h.readable);
    CHECK(h.lag.count() == 0);

    // No primary known (it is down): lag cannot be measured, and the standby keeps serving.
    p.position = 100;
    detail::apply_probe(h, p, 200us, std::nullopt, o);
    CHECK(h.readable);

    o.max_replica_lag_bytes = 100;
    detail::apply_probe(h, p, 200us, std::uint64_t{500}, cluster_options{.max_replica_lag = 0ms, .max_replica_lag_bytes = 100});
    CHECK_FALSE(h.readable);
    CHECK(h.note == "lags 400 bytes > max_replica_lag_bytes 100");

    // The cluster's own measure wins over the transaction age, which is unknown until the
    // standby has replayed a transaction since it started.
    cluster_options timed;
    timed.max_replica_lag = 1000ms;
    probe_result fresh_start;
    fresh_start.role = host_role::standby;
    fresh_start.position = 100;
    detail::apply_probe(h, fresh_start, 200us, std::uint64_t{500}, timed, std::chrono::milliseconds(1500));
    CHECK_FALSE(h.readable);
    CHECK(h.lag == std::chrono::milliseconds(1500));
    detail::apply_probe(h, fresh_start, 200us, std::uint64_t{500}, timed, std::chrono::milliseconds(300));
    CHECK(h.readable);

    probe_result down;
    down.error = "connection refused";
    detail::apply_probe(h, down, 0us, std::nullopt, o);
    CHECK(h.role == host_role::down);
    CHECK(h.note == "is down: connection refused");
}

TEST_CASE("cluster options that make no sense are refused naming the field", "[replica][options]") {
    CHECK_THROWS_WITH(validate(cluster_options{.refresh_interval = 0ms}),
                      "connpool::cluster_options::refresh_interval = 0ms: must be positive");
    CHECK_THROWS_WITH(validate(cluster_options{.probe_timeout = -1ms}),
                      "connpool::cluster_options::probe_timeout = -1ms: must be positive");
    CHECK_NOTHROW(validate(cluster_options{}));
}

TEST_CASE("an LSN token prints the way PostgreSQL prints it", "[replica][routing]") {
    CHECK(format_position((std::uint64_t{0x16} << 32) | 0xB374D848u) == "16/B374D848");
    CHECK(format_position(0) == "0/0");
    CHECK_FALSE(intent::read_fresh({}).kind == intent_kind::read_fresh);
}

TEST_CASE("the budget message names the instances, the pool size and the server's numbers", "[replica][budget]") {
    auto r = connpool::pg::evaluate_budget(100, 3, 12, 4, 30, 0.8);
    CHECK(r.over);
    CHECK(r.allowed_total == 77);
    CHECK(r.per_instance == 19);
    CHECK(r.message == "4 instances x max_size 30 = 120 > 80 % of (100 - 3) = 77");
    r = connpool::pg::evaluate_budget(100, 3, 12, 2, 30, 0.8);
    CHECK_FALSE(r.over);
    CHECK(r.message == "2 instances x max_size 30 = 60 <= 80 % of (100 - 3) = 77");
    CHECK_THROWS_WITH(connpool::pg::evaluate_budget(100, 3, 0, 0, 30, 0.8),
                      "connpool::pg::budget_options::instances = 0: must be at least 1");
}

TEST_CASE("LSNs parse from PostgreSQL's text form and nothing else", "[replica][routing]") {
    CHECK(connpool::pg::parse_lsn("16/B374D848") == ((std::uint64_t{0x16} << 32) | 0xB374D848u));
    CHECK(connpool::pg::parse_lsn("0/3000060") == 0x3000060u);
    CHECK_FALSE(connpool::pg::parse_lsn(""));
    CHECK_FALSE(connpool::pg::parse_lsn("16B374D848"));
    CHECK_FALSE(connpool::pg::parse_lsn("1/xyz"));
    CHECK_FALSE(connpool::pg::parse_lsn("/1"));
}
