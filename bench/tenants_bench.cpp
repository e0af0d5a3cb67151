// Tenants over PostgreSQL: one tenant floods (32 threads), one is light (2 threads), on a
// pool of 4. The light tenant's acquire wait (p50, p99), in one run: alone; with the flood
// and no tenants configured; with both tenants configured, equal weights and no quotas
// (fair queuing only); with quotas 2+2 (the flood cannot take what the light tenant needs:
// its two threads never queue behind the flood); and with quotas 3+1 (the light tenant's
// two threads share its one connection, so they wait for each other, not for the flood).
//
// Each request: acquire, SELECT pg_sleep(0.0005), return. Connection facts come from the
// environment tests/support/pg/start-servers.sh writes (bench/run.sh sources it):
// CONNPOOL_PG_CONNINFO. CONNPOOL_BENCH_TENANTS_MS sets each phase's length (default 3000).
#include <connpool/pg.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace pg = connpool::pg;
using clock_type = std::chrono::steady_clock;

struct result {
    double p50_us = 0, p99_us = 0;
    std::size_t light_requests = 0, flood_requests = 0;
};

double pct(std::vector<std::int64_t>& v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return static_cast<double>(v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))]) / 1000.0;
}

struct tenant_setup {
    bool configured = false;
    std::size_t flood_quota = 0, light_quota = 0;  // 0: no quota
};

result run(const std::string& conninfo, int flood_threads, tenant_setup setup, std::chrono::milliseconds span) {
    connpool::options o;
    o.max_size = 4;
    o.min_idle = 4;
    o.acquire_timeout = std::chrono::seconds(30);
    pg::pool pool(pg::factory(conninfo), o);
    const connpool::tenant_id flood{1}, light{2};
    if (setup.configured) {
        pool.add_tenant(flood, {.quota = setup.flood_quota, .weight = 1, .fail_at_quota = false, .name = "flood"});
        pool.add_tenant(light, {.quota = setup.light_quota, .weight = 1, .fail_at_quota = false, .name = "light"});
    }
    { std::vector<pg::pool::lease_type> warm; for (int i = 0; i < 4; ++i) warm.push_back(pool.acquire()); }
    std::atomic<bool> stop{false};
    std::mutex m;
    std::vector<std::int64_t> waits;
    std::atomic<std::size_t> flood_n{0};
    auto worker = [&](connpool::tenant_id t, bool record) {
        std::vector<std::int64_t> mine;
        while (!stop.load(std::memory_order_relaxed)) {
            const auto t0 = clock_type::now();
            auto l = pool.acquire(t);
            const auto waited = std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - t0).count();
            auto r = l->try_exec("SELECT pg_sleep(0.0005)");
            if (record) mine.push_back(waited); else ++flood_n;
        }
        std::lock_guard lk(m);
        if (record) waits.insert(waits.end(), mine.begin(), mine.end());
    };
    std::vector<std::thread> ts;
    for (int i = 0; i < flood_threads; ++i) ts.emplace_back(worker, flood, false);
    for (int i = 0; i < 2; ++i) ts.emplace_back(worker, light, true);
    std::this_thread::sleep_for(span);
    stop = true;
    for (auto& t : ts) t.join();
    result r;
    r.light_requests = waits.size();
    r.flood_requests = flood_n;
    r.p50_us = pct(waits, 0.50);
    r.p99_us = pct(waits, 0.99);
    return r;
}

}  // namespace

int main() {
    const char* ci = std::getenv("CONNPOOL_PG_CONNINFO");
    if (ci == nullptr) {
        std::fprintf(stderr, "CONNPOOL_PG_CONNINFO is not set (see bench/run.sh)\n");
        return 2;
    }
    const char* ms = std::getenv("CONNPOOL_BENCH_TENANTS_MS");
    const std::chrono::milliseconds span(ms != nullptr ? std::atol(ms) : 3000);
    std::printf("%-24s %12s %12s %14s %14s\n", "case", "light p50us", "light p99us", "light reqs", "flood reqs");
    const struct {
        const char* name;
        int flood;
        tenant_setup setup;
    } cases[] = {{"light alone", 0, {}},
                 {"flood 32, no tenants", 32, {}},
                 {"flood 32, weights 1:1", 32, {true, 0, 0}},
                 {"flood 32, quotas 2+2", 32, {true, 2, 2}},
                 {"flood 32, quotas 3+1", 32, {true, 3, 1}}};
    for (const auto& c : cases) {
        const result r = run(ci, c.flood, c.setup, span);
        std::printf("%-24s %12.0f %12.0f %14zu %14zu\n", c.name, r.p50_us, r.p99_us, r.light_requests, r.flood_requests);
    }
}
