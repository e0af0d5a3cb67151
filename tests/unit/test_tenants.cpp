// Tenants on the sans-I/O state machine in virtual time (state_driver.hpp plays the
// shell): weighted fair queuing across per-tenant FIFO sub-queues, quotas, cancel and
// timeout per tenant, runtime changes, and random schedules with tenants in the mix.
// Then the public API on a real pool over the fake factory.
#include "connpool_catch.hpp"
#include "fake.hpp"
#include "state_driver.hpp"

#include <connpool/metrics.hpp>
#include <connpool/tenants.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace state_test;

namespace {

options quiet(std::size_t max_size) {
    options o;
    o.max_size = max_size;
    o.min_idle = max_size;
    o.max_idle = 0;
    o.idle_timeout = 0ms;
    o.max_lifetime = 0ms;
    o.lifetime_jitter = 0.0;
    o.acquire_timeout = std::chrono::milliseconds::max();
    o.validation = validation_mode::optimistic;
    o.reset_on_return = false;
    o.leak_threshold = 0ms;
    o.handoff = handoff_policy::fifo;
    o.max_connecting = 4;
    o.housekeeping_interval = 1000ms;
    return o;
}

#define REQUIRE_SOUND(d) REQUIRE((d).check() == "")

void add_tenant(driver& d, std::uint32_t id, tenant_options t) {
    d.st.add_tenant(tenant_id{id}, t, d.now, d.raw_actions());
    d.process();
}

// Opens min_idle connections.
void warm(driver& d) {
    d.tick();
    while (!d.connects.empty()) d.connect_ok();
}

const tenant_stats& stats_of(const pool_stats& ps, std::uint32_t id) {
    for (const auto& t : ps.tenants) {
        if (t.id == id) return t;
    }
    throw std::logic_error("no stats for tenant " + std::to_string(id));
}

// Every caller holds its connection a random while, returns it and asks again at once,
// for `span` of virtual time. Returns the acquires per caller.
void saturate(driver& d, std::mt19937_64& rng, duration span) {
    const std::size_t n = d.callers.size();
    std::vector<time_point> next(n, d.now);
    std::vector<bool> was_holding(n, false);
    auto hold = [&] { return std::chrono::microseconds(std::uniform_int_distribution<int>(50, 150)(rng)); };
    auto note_served = [&] {
        for (std::size_t c = 0; c < n; ++c) {
            if (d.holds(c) && !was_holding[c]) {
                next[c] = d.callers[c].last_served + hold();
                was_holding[c] = true;
            }
        }
    };
    const time_point end = d.now + span;
    while (d.now < end) {
        std::size_t who = n;
        for (std::size_t c = 0; c < n; ++c) {
            if (d.waits(c)) continue;
            if (who == n || next[c] < next[who]) who = c;
        }
        REQUIRE(who != n);
        if (next[who] > d.now) d.advance(next[who] - d.now);
        note_served();
        if (next[who] > d.now) continue;
        if (d.holds(who)) {
            d.give_back(who);
            was_holding[who] = false;
            next[who] = d.now;
        } else {
            d.acquire(who);
        }
        note_served();
        REQUIRE_SOUND(d);
    }
}

}  // namespace

TEST_CASE("with weights 3:1 and both tenants saturating the pool, they are served 3:1 within 5 %",
          "[unit][tenants][fairness]") {
    for (std::uint64_t seed = 1; seed <= 20; ++seed) {
        CAPTURE(seed);
        driver d(quiet(2), 12, seed);
        warm(d);
        add_tenant(d, 1, {.weight = 3});
        add_tenant(d, 2, {.weight = 1});
        for (std::size_t c = 0; c < 12; ++c) d.callers[c].tenant = c < 6 ? 1 : 2;
        std::mt19937_64 rng(seed);
        saturate(d, rng, 300ms);
        const auto ps = d.st.snapshot(d.now);
        const double a = static_cast<double>(stats_of(ps, 1).acquired);
        const double b = static_cast<double>(stats_of(ps, 2).acquired);
        INFO("tenant 1: " << a << ", tenant 2: " << b);
        REQUIRE(a + b > 4000);
        CHECK(a / b > 3.0 * 0.95);
        CHECK(a / b < 3.0 * 1.05);
    }
}

TEST_CASE("a tenant of weight 1 next to one of weight 1000 is still served: no tenant starves",
          "[unit][tenants][fairness]") {
    driver d(quiet(2), 8, 7);
    warm(d);
    add_tenant(d, 1, {.weight = 1000});
    add_tenant(d, 2, {.weight = 1});
    for (std::size_t c = 0; c < 8; ++c) d.callers[c].tenant = c < 6 ? 1 : 2;
    std::mt19937_64 rng(7);
    saturate(d, rng, 300ms);
    const auto ps = d.st.snapshot(d.now);
    const auto heavy = stats_of(ps, 1).acquired, light = stats_of(ps, 2).acquired;
    INFO("heavy " << heavy << ", light " << light);
    // One turn per round of 1000 of the heavy tenant's, at least.
    CHECK(light >= heavy / 1001);
    CHECK(light >= 3);
}

TEST_CASE("a tenant at its quota waits while another tenant is served from the idle connections",
          "[unit][tenants][quota]") {
    driver d(quiet(3), 5);
    warm(d);
    add_tenant(d, 1, {.quota = 1});
    for (std::size_t c = 0; c < 3; ++c) d.callers[c].tenant = 1;
    d.callers[3].tenant = 2;  // unknown: the default tenant, no quota
    CHECK(d.acquire(0));
    CHECK_FALSE(d.acquire(1));
    CHECK_FALSE(d.acquire(2));
    REQUIRE_SOUND(d);
    CHECK(d.count_in(slot_state::idle) == 2);  // idle, and not for tenant 1
    CHECK(d.acquire(3));
    CHECK(d.acquire(4));
    REQUIRE_SOUND(d);
    auto ps = d.st.snapshot(d.now);
    CHECK(stats_of(ps, 1).held == 1);
    CHECK(stats_of(ps, 1).waiting == 2);
    CHECK(stats_of(ps, 0).held == 2);
    // Its lease back: the oldest of its waiters, and only one, gets a connection.
    d.give_back(0);
    CHECK(d.holds(1));
    CHECK(d.waits(2));
    // A tenant's discarded lease frees its quota too.
    d.give_back(1, ret::discard);
    d.close_done();
    while (!d.connects.empty()) d.connect_ok();
    CHECK(d.holds(2));
    REQUIRE_SOUND(d);
}

TEST_CASE("a tenant configured to fail at quota fails at once with tenant_quota_exceeded", "[unit][tenants][quota]") {
    driver d(quiet(3), 3);
    warm(d);
    add_tenant(d, 1, {.quota = 1, .fail_at_quota = true});
    d.callers[0].tenant = d.callers[1].tenant = 1;
    CHECK(d.acquire(0));
    CHECK_FALSE(d.acquire(1));
    CHECK_FALSE(d.waits(1));
    CHECK(d.callers[1].last_error.code == errc::tenant_quota_exceeded);
    CHECK(d.acquire(2));  // the default tenant is unaffected
    CHECK(stats_of(d.st.snapshot(d.now), 1).quota_refused == 1);
    REQUIRE_SOUND(d);
}

TEST_CASE("cancel and timeout each end only their own tenant's waiter and are counted per tenant",
          "[unit][tenants][cancel][timeout]") {
    options o = quiet(1);
    driver d(o, 4);
    warm(d);
    add_tenant(d, 1, {});
    add_tenant(d, 2, {});
    d.callers[1].tenant = 1;
    d.callers[2].tenant = 2;
    d.callers[3].tenant = 2;
    CHECK(d.acquire(0));
    d.acquire(1);
    d.acquire(2, 50ms);
    d.acquire(3);
    d.cancel(1);
    CHECK(d.callers[1].last_error.code == errc::cancelled);
    d.advance(60ms);
    CHECK(d.callers[2].last_error.code == errc::acquire_timeout);
    CHECK(d.waits(3));
    REQUIRE_SOUND(d);
    auto ps = d.st.snapshot(d.now);
    CHECK(stats_of(ps, 1).cancelled == 1);
    CHECK(stats_of(ps, 1).waiting == 0);
    CHECK(stats_of(ps, 2).timeouts == 1);
    CHECK(stats_of(ps, 2).waiting == 1);
    d.give_back(0);
    CHECK(d.holds(3));
    REQUIRE_SOUND(d);
}

TEST_CASE("tenants can be added, re-weighted and removed at runtime, and bad changes throw naming the field",
          "[unit][tenants][runtime]") {
    driver d(quiet(1), 4);
    warm(d);
    CHECK(d.acquire(0));
    d.callers[1].tenant = d.callers[2].tenant = 5;
    d.acquire(1);  // queued before tenants exist: joins tenant 5's queue when it is added
    add_tenant(d, 5, {.quota = 0, .weight = 2});
    d.acquire(2);
    REQUIRE_SOUND(d);
    CHECK(stats_of(d.st.snapshot(d.now), 5).waiting == 2);
    CHECK_THROWS_WITH(d.st.add_tenant(tenant_id{5}, {}, d.now, d.raw_actions()), Catch::Matchers::Contains("tenant_id"));
    CHECK_THROWS_WITH(d.st.set_tenant(tenant_id{5}, {.weight = 0}, d.now, d.raw_actions()),
                      Catch::Matchers::Contains("weight"));
    CHECK_THROWS_AS(d.st.remove_tenant(tenant_id{0}, d.now, d.raw_actions()), std::invalid_argument);
    CHECK_THROWS_AS(d.st.remove_tenant(tenant_id{9}, d.now, d.raw_actions()), std::invalid_argument);
    d.st.set_tenant(tenant_id{5}, {.weight = 7}, d.now, d.raw_actions());
    CHECK(stats_of(d.st.snapshot(d.now), 5).weight == 7);
    // Removed: its waiters move to the default tenant, oldest first, and are served.
    d.st.remove_tenant(tenant_id{5}, d.now, d.raw_actions());
    d.process();
    REQUIRE_SOUND(d);
    CHECK(stats_of(d.st.snapshot(d.now), 0).waiting == 2);
    d.give_back(0);
    CHECK(d.holds(1));
    CHECK(d.waits(2));
    REQUIRE_SOUND(d);
}

namespace {

// Random events with tenants, quotas and runtime changes; every invariant after each.
std::string run_tenant_schedule(std::uint64_t seed) {
    std::mt19937_64 rng(seed);
    auto below = [&](std::size_t n) { return static_cast<std::size_t>(rng() % n); };
    options o = quiet(1 + below(4));
    o.min_idle = below(2);
    o.reset_on_return = below(2) == 0;
    o.validation = below(2) == 0 ? validation_mode::always : validation_mode::optimistic;
    o.acquire_timeout = 300ms;
    const std::size_t n = 2 + below(6);
    driver d(o, n, seed);
    d.tick();
    for (std::size_t c = 0; c < n; ++c) d.callers[c].tenant = static_cast<std::uint32_t>(below(4));
    for (int i = 0; i < 300; ++i) {
        const std::size_t c = below(n);
        switch (below(12)) {
        case 0:
        case 1:
        case 2:
            if (!d.holds(c) && !d.waits(c)) d.acquire(c, below(3) == 0 ? 20ms : 300ms);
            break;
        case 3:
        case 4:
            if (d.holds(c)) d.give_back(c, static_cast<ret>(below(4)));
            break;
        case 5:
            if (!d.connects.empty()) below(4) != 0 ? d.connect_ok(below(d.connects.size())) : d.connect_fail();
            break;
        case 6:
            if (!d.closes.empty()) d.close_done(below(d.closes.size()));
            if (!d.resets.empty()) d.reset_done(below(d.resets.size()), below(5) != 0);
            if (!d.pings.empty()) d.ping_done(below(d.pings.size()), below(5) != 0);
            break;
        case 7: d.advance(std::chrono::milliseconds(below(100))); break;
        case 8:
            if (d.waits(c)) d.cancel(c);
            break;
        case 9: {
            const auto id = static_cast<std::uint32_t>(1 + below(3));
            tenant_options t{.quota = below(3), .weight = static_cast<std::uint32_t>(1 + below(4)),
                             .fail_at_quota = below(3) == 0};
            try {
                below(2) == 0 ? d.st.add_tenant(tenant_id{id}, t, d.now, d.raw_actions())
                              : d.st.set_tenant(tenant_id{id}, t, d.now, d.raw_actions());
            } catch (const std::invalid_argument&) {
            }
            d.process();
            break;
        }
        case 10:
            try {
                d.st.remove_tenant(tenant_id{static_cast<std::uint32_t>(below(4))}, d.now, d.raw_actions());
            } catch (const std::invalid_argument&) {
            }
            d.process();
            break;
        case 11: d.tick(); break;
        }
        if (auto s = d.check(); !s.empty()) return "event " + std::to_string(i) + ": " + s + "\n" + d.describe();
    }
    for (bool any = true; any;) {
        any = false;
        for (std::size_t c = 0; c < n; ++c) {
            if (d.holds(c)) {
                any = true;
                d.give_back(c);
            }
        }
    }
    d.close();
    for (int guard = 0; d.work_pending(); ++guard) {
        if (guard > 10000) return "pending work never ends";
        if (!d.connects.empty()) d.connect_ok();
        else if (!d.resets.empty()) d.reset_done();
        else if (!d.pings.empty()) d.ping_done();
        else d.close_done();
        if (auto s = d.check(); !s.empty()) return "wind-down: " + s;
    }
    if (!d.st.drained()) return "not drained: " + d.describe();
    for (const auto& w : d.waiters) {
        if (w->outcomes != 1) return "a waiter ended with " + std::to_string(w->outcomes) + " outcomes";
    }
    return {};
}

}  // namespace

TEST_CASE("random schedules with tenants keep every invariant after every event and drain after close",
          "[unit][tenants][random]") {
    const char* one = std::getenv("STATE_SEED");
    const std::uint64_t base = one != nullptr ? std::strtoull(one, nullptr, 0) : 0x7e4a0000;
    const std::size_t schedules = one != nullptr ? 1 : 1500;
    for (std::uint64_t i = 0; i < schedules; ++i) {
        const std::string broken = run_tenant_schedule(base + i);
        if (!broken.empty()) FAIL("seed " << base + i << " broke: " << broken);
    }
    SUCCEED();
}

// ------------------------------------------------------------------ the public API

TEST_CASE("a pool's tenant acquires count against the tenant's quota and show in stats", "[unit][tenants][pool]") {
    using connpool::test::fake_factory;
    connpool::pool<fake_factory> p(fake_factory{}, {.max_size = 3, .acquire_timeout = 10s});
    p.add_tenant(connpool::tenant_id{1}, {.quota = 1, .fail_at_quota = true, .name = "noisy"});
    auto a = p.acquire(connpool::tenant_id{1});
    error_code ec;
    auto b = p.acquire_for(connpool::tenant_id{1}, 20ms, ec);
    CHECK(ec == errc::tenant_quota_exceeded);
    CHECK_FALSE(b);
    auto c = p.acquire();  // the default tenant
    CHECK(c);
    const auto st = p.stats();
    REQUIRE(st.tenants.size() == 2);
    CHECK(st.tenants[1].name == "noisy");
    CHECK(st.tenants[1].held == 1);
    CHECK(st.tenants[0].held == 1);
    // The metrics export labels each tenant's points with its name.
    const auto text = connpool::metrics::to_prometheus_text("p", st);
    CHECK_THAT(text, Catch::Matchers::Contains("connpool_tenant=\"noisy\""));
    a = {};
    auto again = p.acquire_for(connpool::tenant_id{1}, 10s);
    CHECK(again);
    CHECK_THROWS_AS(p.add_tenant(connpool::tenant_id{2}, {.weight = 5000}), std::invalid_argument);
}

// Issue 16, defect 5: the waiters of a tenant at its quota filled max_waiters, and admit()
// refused a tenant below quota too_many_waiters while connections were idle.
TEST_CASE("a tenant below quota takes an idle connection while only a tenant at quota waits, whatever max_waiters",
          "[unit][tenants][quota]") {
    options o = quiet(3);
    o.max_waiters = 1;
    driver d(o, 3);
    warm(d);
    add_tenant(d, 1, tenant_options{.quota = 1});
    add_tenant(d, 2, tenant_options{.quota = 2});
    d.callers[0].tenant = 1;
    d.callers[1].tenant = 1;
    d.callers[2].tenant = 2;
    REQUIRE(d.acquire(0));  // tenant 1 at its quota
    d.acquire(1);           // waits for tenant 1's quota: the only waiter place
    REQUIRE(d.waits(1));
    REQUIRE(d.count_in(slot_state::idle) == 2);
    CHECK(d.acquire(2));  // on 0.2: too_many_waiters
    CHECK(d.callers[2].errors == 0);
    REQUIRE_SOUND(d);
}

TEST_CASE("a tenant's max_waiters bounds its own queue: its flood is refused while another tenant still queues",
          "[unit][tenants][max_waiters]") {
    options o = quiet(1);
    o.max_waiters = 10;
    driver d(o, 6);
    warm(d);
    add_tenant(d, 1, tenant_options{.max_waiters = 2});
    add_tenant(d, 2, tenant_options{});
    for (std::size_t i = 0; i < 4; ++i) d.callers[i].tenant = 1;
    d.callers[4].tenant = 2;
    REQUIRE(d.acquire(5));  // the default tenant holds the only connection: everyone else queues
    d.acquire(0);
    d.acquire(1);
    CHECK(d.waits(0));
    CHECK(d.waits(1));
    CHECK_FALSE(d.acquire(2));  // tenant 1's third waiter: over its own limit, not the pool's
    CHECK_FALSE(d.waits(2));
    CHECK(d.callers[2].last_error.code == errc::too_many_waiters);
    CHECK_THAT(d.callers[2].last_error.message, Catch::Contains("tenant 1") && Catch::Contains("max_waiters = 2"));
    d.acquire(4);  // tenant 2 still finds a place
    CHECK(d.waits(4));
    auto ps = d.st.snapshot(d.now);
    CHECK(stats_of(ps, 1).rejected == 1);
    CHECK(stats_of(ps, 2).rejected == 0);
    CHECK(ps.rejected == 1);
    // A place frees when a waiter leaves: the tenant may queue again.
    d.cancel(0);
    d.acquire(3);
    CHECK(d.waits(3));
    REQUIRE_SOUND(d);
}
