// connpool::advisor and connpool::sizing::adaptive_size: known answers from hand-made
// stats() snapshots, and in virtual time against the simulator's runs of the real pool.
#include "connpool_catch.hpp"

#include "engine.hpp"
#include "fake.hpp"

#include <connpool/advisor.hpp>
#include <connpool/sizing/adaptive.hpp>

namespace sim = connpool::sim;
#if defined(CONNPOOL_CATCH2_V3)
using Catch::Approx;
#else
using Catch::Detail::Approx;
#endif
using namespace std::chrono_literals;
using connpool::advice;
using connpool::advisor;
using connpool::pool_stats;

namespace {

const auto T0 = std::chrono::steady_clock::time_point{} + 1h;

// A snapshot after `acquired` leases, each held `hold`, none of them waiting.
pool_stats after(std::uint64_t acquired, std::chrono::microseconds hold, std::size_t max_size = 10) {
    pool_stats s;
    s.acquired = acquired;
    s.max_size = max_size;
    s.use_time.count = acquired;
    s.use_time.buckets[connpool::detail::bucket_of(hold)] = acquired;
    s.use_time.sum = hold * static_cast<std::int64_t>(acquired);
    s.wait_time.count = acquired;
    s.wait_time.buckets[0] = acquired;
    return s;
}

}  // namespace

TEST_CASE("erlang_c gives the textbook probabilities of waiting", "[advisor][known]") {
    CHECK(connpool::detail::erlang_c(1, 0.5) == Approx(0.5));        // M/M/1: rho
    CHECK(connpool::detail::erlang_c(2, 1.0) == Approx(1.0 / 3.0));  // M/M/2 at rho 0.5
    CHECK(connpool::detail::erlang_c(12, 10.0) == Approx(0.44939).epsilon(1e-4));
}

TEST_CASE("the advisor applies Little's law and sizes for the wait target", "[advisor][known]") {
    advisor a({.wait = 5ms, .quantile = 0.99});
    a.observe(after(0, 10ms), T0);
    const advice x = a.observe(after(10000, 10ms), T0 + 10s);
    REQUIRE(x.measured);
    CHECK(x.arrival_rate == Approx(1000.0));
    CHECK(x.mean_hold == 10ms);
    CHECK(x.busy == Approx(10.0));
    CHECK(x.max_size == 15);  // smallest c with C(c, 10) e^{-(c - 10) / 2} <= 1 %
    CHECK_THAT(x.reason, Catch::Matchers::Contains("Little's law") && Catch::Matchers::Contains("needs 15"));
}

TEST_CASE("acquires that failed count as demand", "[advisor]") {
    advisor a;
    a.observe(after(0, 10ms), T0);
    pool_stats s = after(5000, 10ms);
    s.timeouts = 5000;
    CHECK(a.observe(s, T0 + 10s).arrival_rate == Approx(1000.0));
}

TEST_CASE("the budget headroom is what the server leaves each instance beyond the advice", "[advisor][budget]") {
    advisor a({.wait = 5ms, .max_connections = 100, .reserved = 3, .instances = 4});
    a.observe(after(0, 10ms), T0);
    auto x = a.observe(after(10000, 10ms), T0 + 10s);
    CHECK(x.budget_per_instance == 19);  // 80 % of (100 - 3) = 77, / 4
    CHECK(x.budget_headroom == 19 - 15);
    advisor tight({.wait = 5ms, .max_connections = 40, .reserved = 3, .instances = 4});
    tight.observe(after(0, 10ms), T0);
    x = tight.observe(after(10000, 10ms), T0 + 10s);
    CHECK(x.budget_headroom == 7 - 15);  // 80 % of 37 = 29, / 4
    CHECK_THAT(x.reason, Catch::Matchers::Contains("over budget by 8"));
}

TEST_CASE("the advisor forgets load older than its window", "[advisor][window]") {
    advisor a({.window = 60s});
    a.observe(after(0, 10ms), T0);
    a.observe(after(100000, 10ms), T0 + 60s);  // 1666/s for a minute
    advice x;
    for (int i = 1; i <= 20; ++i) x = a.observe(after(100000 + 600ull * static_cast<std::uint64_t>(i), 10ms), T0 + 60s + i * 6s);
    CHECK(x.arrival_rate == Approx(100.0).epsilon(0.02));  // only the last 60 s: 100/s
}

TEST_CASE("without acquires the advisor keeps the current size", "[advisor]") {
    advisor a;
    a.observe(after(0, 10ms, 7), T0);
    const auto x = a.observe(after(0, 10ms, 7), T0 + 10s);
    CHECK_FALSE(x.measured);
    CHECK(x.max_size == 7);
}

TEST_CASE("the advice, applied to the simulated pool, meets its wait target", "[advisor][sim]") {
    sim::config c;
    c.arrivals.steps = {{0.0, 800.0}};
    c.hold = sim::parse_hold("exp:10ms");
    c.duration = 120s;
    c.warmup = 5s;
    c.pool.max_size = 40;
    c.advise_every = 10s;
    c.advice.wait = 5ms;
    const auto r = sim::engine(c).run();
    REQUIRE_FALSE(r.advice.empty());
    const std::size_t n = r.advice.back().recommended;
    CHECK(n >= 9);   // 8 busy need more than 8
    CHECK(n <= 16);
    c.pool.max_size = n;
    c.advise_every = {};
    const auto at_n = sim::engine(c).run();
    CHECK(at_n.wait_p99_ms <= 5.0);
    CHECK(at_n.timeouts == 0);
}

TEST_CASE("connect failures cut the adaptive size multiplicatively and hold it", "[adaptive]") {
    connpool::sizing::adaptive_size z({.floor = 2, .ceiling = 50, .cooldown = 2}, 20);
    advice grow;
    grow.measured = true;
    grow.max_size = 40;
    advice overload = grow;
    overload.connect_failures = 3;
    CHECK(z.step(overload, 20) == std::optional<std::size_t>(14));  // 20 x 0.7
    CHECK_FALSE(z.step(grow, 14).has_value());                       // cooling down
    CHECK_FALSE(z.step(grow, 14).has_value());
    CHECK(z.step(grow, 14) == std::optional<std::size_t>(18));  // then additive: max_step 4
}

TEST_CASE("a recommendation wobbling inside the dead band never moves the adaptive size", "[adaptive]") {
    connpool::sizing::adaptive_size z({.floor = 2, .ceiling = 50}, 20);
    advice a;
    a.measured = true;
    int moves = 0;
    for (int i = 0; i < 200; ++i) {
        a.max_size = 17 + static_cast<std::size_t>(i % 4);  // 17..20: within 20 % below 20
        if (z.step(a, z.size())) ++moves;
    }
    CHECK(moves == 0);
}

TEST_CASE("adaptive_size refuses bad options with the field's name, a ceiling below the floor too", "[adaptive]") {
    using connpool::sizing::adaptive_size;
    auto message = [](connpool::sizing::adaptive_options o) {
        try {
            adaptive_size z(o, 10);
            (void)z;
        } catch (const std::invalid_argument& e) {
            return std::string(e.what());
        }
        return std::string("no exception");
    };
    CHECK_THAT(message({.floor = 5, .ceiling = 2}), Catch::Matchers::StartsWith("adaptive_options::ceiling = 2"));
    CHECK_THAT(message({.floor = 0}), Catch::Matchers::StartsWith("adaptive_options::floor = 0"));
    CHECK(adaptive_size({.floor = 2, .ceiling = 8}, 20).size() == 8);
}

TEST_CASE("on a rate step the adaptive size climbs once and does not oscillate", "[adaptive][sim]") {
    sim::config c;
    c.arrivals.steps = {{0.0, 200.0}, {120.0, 1000.0}};
    c.hold = sim::parse_hold("exp:10ms");
    c.duration = 300s;
    c.pool.max_size = 4;
    c.advise_every = 5s;
    c.advice.wait = 5ms;
    c.adaptive = connpool::sizing::adaptive_options{.floor = 2, .ceiling = 40};
    const auto r = sim::engine(c).run();
    REQUIRE(r.advice.size() > 20);
    int direction_changes = 0, last = 0;
    for (std::size_t i = 1; i < r.advice.size(); ++i) {
        const long d = static_cast<long>(r.advice[i].max_size) - static_cast<long>(r.advice[i - 1].max_size);
        const int dir = d > 0 ? 1 : d < 0 ? -1 : 0;
        if (dir != 0 && last != 0 && dir != last) ++direction_changes;
        if (dir != 0) last = dir;
    }
    CHECK(direction_changes <= 1);
    const std::size_t before = r.advice[20].max_size;  // t = 105 s, on 200/s
    const std::size_t after_step = r.advice.back().max_size;
    CHECK(before <= 8);
    CHECK(after_step >= 12);  // 10 busy at 1000/s
    CHECK(after_step <= 20);
}

TEST_CASE("pool.advise() feeds the advisor the pool's own stats", "[advisor][pool]") {
    connpool::pool<connpool::test::minimal_factory> p(connpool::test::minimal_factory{}, {.max_size = 3});
    advisor a({.max_connections = 50, .instances = 2});
    const advice first = p.advise(a);  // the base; it also turns use-time measuring on
    CHECK_FALSE(first.measured);
    for (int i = 0; i < 200; ++i) {
        auto l = p.acquire();
        REQUIRE(l);
    }
    const advice x = p.advise(a);
    REQUIRE(x.measured);
    CHECK(x.current_max_size == 3);
    CHECK(x.arrival_rate > 0);
    CHECK(x.max_size >= 1);
    CHECK(x.budget_per_instance == 20);  // 80 % of 50, / 2
    CHECK_THAT(x.reason, Catch::Matchers::Contains("Little's law"));
}
