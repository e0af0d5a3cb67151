// connpool-sim's engine (tools/sim/): the real pool state machine against workload models
// in virtual time, checked against answers known from queueing theory and from the
// pool's own rules. Every run is seeded, so each assertion is about one fixed schedule.
#include "connpool_catch.hpp"

#include "cli.hpp"
#include "report.hpp"

#include <cmath>
#include <sstream>

namespace sim = connpool::sim;
#if defined(CONNPOOL_CATCH2_V3)
using Catch::Approx;
#else
using Catch::Detail::Approx;
#endif
using namespace std::chrono_literals;

namespace {

sim::config workload(double rate, const char* hold, std::size_t max_size, std::chrono::seconds duration = 60s) {
    sim::config c;
    c.arrivals.steps = {{0.0, rate}};
    c.hold = sim::parse_hold(hold);
    c.duration = duration;
    c.warmup = 5s;
    c.pool.max_size = max_size;
    return c;
}

// P(wait > t) = C(c, a) exp(-(c - a) t / h) in M/M/c: the p99 solves it for 0.01.
double mmc_p99_ms(std::size_t c, double a, double hold_ms) {
    const double pc = connpool::detail::erlang_c(c, a);
    return pc <= 0.01 ? 0.0 : hold_ms / (static_cast<double>(c) - a) * std::log(pc / 0.01);
}

}  // namespace

TEST_CASE("with 1000 requests/s held 10 ms, about 10 connections are busy", "[sim][known]") {
    const auto r = sim::engine(workload(1000, "exp:10ms", 20)).run();
    CHECK(r.mean_busy == Approx(10.0).epsilon(0.05));  // Little's law: L = lambda W
    CHECK(r.timeouts == 0);
    CHECK(static_cast<double>(r.served) > 0.9 * static_cast<double>(r.requests));  // the warm-up's are not counted
    CHECK(r.completed > 50000);
}

TEST_CASE("an undersized pool's p99 wait lands near the M/M/c answer", "[sim][known]") {
    // 12 connections for 10 busy: Erlang C says 45 % wait and p99 = 19.0 ms.
    const auto r = sim::engine(workload(1000, "exp:10ms", 12, 300s)).run();
    const double expected = mmc_p99_ms(12, 10.0, 10.0);
    CHECK(expected == Approx(19.0).epsilon(0.01));
    CHECK(r.wait_p99_ms == Approx(expected).epsilon(0.25));
    CHECK(r.utilization == Approx(10.0 / 12.0).epsilon(0.05));
}

TEST_CASE("the sweep's answer grows with the arrival rate", "[sim][sweep]") {
    std::vector<std::size_t> answers;
    for (double rate : {250.0, 500.0, 1000.0}) {
        auto c = workload(rate, "exp:10ms", 1, 60s);
        const auto s = sim::sweep(c, sim::parse_sizes("1:24"), 5.0);
        REQUIRE(s.smallest_meeting.has_value());
        answers.push_back(*s.smallest_meeting);
        // At and above the answer the target holds: bigger pools only shorten the queue.
        for (const auto& row : s.rows) {
            if (row.max_size > *s.smallest_meeting) CHECK(row.r.wait_p99_ms <= 5.0);
        }
    }
    CHECK(answers[0] <= answers[1]);
    CHECK(answers[1] <= answers[2]);
    CHECK(answers[0] < answers[2]);
}

TEST_CASE("the sweep marks the sizes beyond the server budget", "[sim][sweep][budget]") {
    auto c = workload(400, "exp:10ms", 1, 20s);
    c.instances = 4;
    c.max_connections = 100;
    c.reserved = 3;
    const auto s = sim::sweep(c, sim::parse_sizes("15:23:2"), 5.0);
    REQUIRE(s.budget_limit == std::optional<std::size_t>(19));  // 80 % of (100 - 3) = 77, / 4
    for (const auto& row : s.rows) CHECK(row.over_budget == (row.max_size > 19));
}

TEST_CASE("nested acquires deadlock below Tn x (Cm - 1) + 1 connections and never from there on", "[sim][nested]") {
    // 4 threads, each request holding 3 connections at once: 9 connections are always enough.
    auto c = workload(2000, "exp:5ms", 1, 120s);
    c.pool.acquire_timeout = 1000ms;
    const auto rows = sim::nested_demo(c, 4, 3);
    REQUIRE(rows.size() >= 3);
    for (const auto& row : rows) {
        INFO("max_size " << row.max_size);
        if (row.max_size >= 9) {
            CHECK(row.r.timeouts == 0);
        } else if (row.max_size == 8) {
            CHECK(row.r.nested_timeouts > 0);
        }
    }
}

TEST_CASE("a server outage kills the connections and the pool opens new ones after it", "[sim][outage]") {
    auto c = workload(500, "exp:10ms", 10, 60s);
    c.outage_start = 20s;
    c.outage_length = 5s;
    c.pool.acquire_timeout = 2000ms;
    const auto r = sim::engine(c).run();
    CHECK(r.connect_failures > 0);  // refused during the outage
    CHECK(r.connections_opened > 10);  // the dead ones were replaced
    CHECK(r.series.back().server_connections > 0);
    // 30000 arrive; the outage and the connect backoff after it (up to 3.2 s by then) cost
    // well under a third of them.
    CHECK(r.completed > 20000);
}

TEST_CASE("a server at max_connections refuses what the instances ask beyond it", "[sim][budget]") {
    auto c = workload(3000, "exp:10ms", 12, 20s);
    c.instances = 4;
    c.max_connections = 30;
    const auto r = sim::engine(c).run();
    CHECK(r.peak_server_connections <= 30);
    CHECK(r.refused_by_server > 0);
}

TEST_CASE("a use-time histogram exported by stats() replays with about the same mean", "[sim][hold]") {
    const auto r = sim::engine(workload(500, "lognormal:8ms:0.6", 20, 30s)).run();
    sim::hold_model m;
    m.k = sim::hold_model::kind::histogram;
    for (auto b : r.final_stats.use_time.buckets) m.weights.push_back(static_cast<double>(b));
    m.finish_histogram();
    // log2 buckets read as uniform: the mean is off by less than a bucket's skew.
    CHECK(m.mean_ns / 1e6 == Approx(8.0).epsilon(0.25));
    auto c = workload(500, "exp:1ms", 20, 30s);
    c.hold = m;
    const auto replay = sim::engine(c).run();
    CHECK(replay.mean_busy == Approx(500 * m.mean_ns / 1e9).epsilon(0.1));
}

TEST_CASE("the same seed gives the same run, another seed another one", "[sim][determinism]") {
    const auto a = sim::engine(workload(800, "exp:10ms", 10, 20s)).run();
    const auto b = sim::engine(workload(800, "exp:10ms", 10, 20s)).run();
    auto c = workload(800, "exp:10ms", 10, 20s);
    c.seed = 2;
    const auto d = sim::engine(c).run();
    CHECK(a.requests == b.requests);
    CHECK(a.wait_p99_ms == b.wait_p99_ms);
    CHECK(a.requests != d.requests);
}

TEST_CASE("the HTML report is self-contained and holds every chart", "[sim][report]") {
    const auto cl = sim::parse_cli({"--rate", "0:300,30:900", "--hold", "exp:10ms", "--duration", "60s", "--max-size", "6",
                                    "--sweep", "4:14:2", "--sweep-duration", "20s", "--adaptive", "2:30",
                                    "--nested-demo", "3:2", "--max-connections", "50", "--instances", "2"});
    sim::report rp;
    rp.cfg = cl.cfg;
    rp.main = sim::engine(cl.cfg).run();
    auto sc = cl.cfg;
    sc.duration = 20s;
    sc.adaptive.reset();
    sc.advise_every = {};
    rp.sizes = sim::sweep(sc, sim::parse_sizes(cl.sweep), cl.target_p99_ms);
    rp.nested_threads = 3;
    rp.nested_cm = 2;
    rp.nested = sim::nested_demo(sc, 3, 2);
    std::ostringstream html;
    sim::print_html(html, rp);
    const std::string h = html.str();
    for (const char* id : {"chart-sweep", "chart-connections", "chart-queue", "chart-adaptive", "chart-nested"}) {
        INFO(id);
        CHECK(h.find(std::string("<svg id=\"") + id + "\"") != std::string::npos);
    }
    CHECK(h.find("<script") == std::string::npos);
    CHECK(h.find("<link") == std::string::npos);
    CHECK(h.find("src=") == std::string::npos);
    std::ostringstream json;
    sim::print_json(json, rp);
    CHECK(json.str().find("\"smallest_meeting\":") != std::string::npos);
}

TEST_CASE("the command line rejects what it does not know, naming it", "[sim][cli]") {
    CHECK_THROWS_WITH(sim::parse_cli({"--rat", "5"}), Catch::Matchers::Contains("--rat"));
    CHECK_THROWS_WITH(sim::parse_cli({"--hold", "weird:5ms"}), Catch::Matchers::Contains("weird"));
    CHECK_THROWS_WITH(sim::parse_cli({"--duration", "5 parsecs"}), Catch::Matchers::Contains("parsecs"));
    const auto c = sim::parse_cli({"--rate=0:100,60:200", "--max-size", "7", "--outage", "10s:2s"});
    CHECK(c.cfg.pool.max_size == 7);
    CHECK(c.cfg.arrivals.rate_at(61) == 200);
    CHECK(c.cfg.outage_length == 2s);
}

// The browser simulator steps the engine frame by frame and adds bursts live; its figures
// must be the command line's for the same scenario (tools/sim/web/, label web).
TEST_CASE("a run stepped in uneven pieces, with a burst added live, equals run() with that burst", "[sim][stepping]") {
    auto c = workload(40, "fixed:25ms", 5, 20s);
    c.warmup = {};
    sim::engine live(c);
    live.begin();
    live.advance_to(live.at(0.0137));
    for (double t = 0.05; t < 4.3; t += 0.0731) live.advance_to(live.at(t));
    const double burst_at = live.add_burst(60);
    CHECK(burst_at > 4.2);
    CHECK(burst_at * 1000 == Approx(std::round(burst_at * 1000)));  // a whole millisecond
    for (double t = 4.3; t < 20; t += 0.05) live.advance_to(live.at(t));
    live.advance_to(live.at(20.0));
    const auto stepped = live.summary();

    c.arrivals.bursts = {{burst_at, 60}};
    const auto whole = sim::engine(c).run();
    CHECK(stepped.requests == whole.requests);
    CHECK(stepped.served == whole.served);
    CHECK(stepped.timeouts == whole.timeouts);
    CHECK(stepped.wait_p50_ms == whole.wait_p50_ms);
    CHECK(stepped.wait_p99_ms == whole.wait_p99_ms);
    CHECK(stepped.wait_max_ms == whole.wait_max_ms);
    CHECK(whole.wait_p99_ms > 100);  // the burst queued: the comparison is about something
}

TEST_CASE("two tenants share the pool by weight and a quota caps one of them", "[sim][tenants]") {
    const auto cl = sim::parse_cli({"--rate", "2000", "--hold", "exp:5ms", "--max-size", "6", "--duration", "20s",
                                    "--tenants", "1:1:0,1:3:2"});
    REQUIRE(cl.cfg.tenants.size() == 2);
    CHECK(cl.cfg.tenants[1].opts.weight == 3);
    CHECK(cl.cfg.tenants[1].opts.quota == 2);
    const auto r = sim::engine(cl.cfg).run();
    const auto& ts = r.final_stats.tenants;
    REQUIRE(ts.size() == 3);  // the default tenant, then 1 and 2
    // Equal shares of the traffic, but tenant 2 holds at most 2 connections: it is served
    // less often than tenant 1 however heavy its weight.
    CHECK(ts[1].acquired > ts[2].acquired);
    CHECK(ts[2].held <= 2);
    CHECK_THROWS_WITH(sim::parse_cli({"--tenants", "1"}), Catch::Matchers::Contains("SHARE:WEIGHT"));
}
