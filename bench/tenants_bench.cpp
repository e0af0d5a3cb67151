// Tenants over PostgreSQL, in issue 16's shape: a light tenant at 5 % of the load next to a
// heavy tenant that drives a pool of 4 to saturation (32 threads). Each request: acquire,
// SELECT pg_sleep(0.0005), return. The light tenant has 2 threads, each paced so that the
// two together ask for 5 % of what the pool served to the heavy tenant alone (measured in
// the same run, first). One run:
//
//   capacity         the heavy tenant alone: the pool's throughput, which sets the pace;
//   light alone      the light tenant alone, tenants configured as in the next cases;
//   weights 1:19     both tenants, weights in the ratio of their loads, no quota;
//   weights 1:1      equal weights: the light tenant asks for far less than its share;
//   quota 3 + 1      the same, the heavy tenant held to 3 connections: the 4th is the light's;
//   own pool         control: the light tenant on a pool of 1 of its own, next to the heavy
//                    tenant's pool of 3, no tenants: what the machine's load alone does to
//                    the light tenant's wait (client, server and 34 threads share 2 cores).
//
// Reports the light tenant's acquire wait (p50, p99), its p99 against "light alone" (target:
// at most 2x), and its share of the requests served against its weight's share (5 %).
//
// CONNPOOL_PG_CONNINFO from the environment (bench/run.sh). CONNPOOL_BENCH_TENANTS_MS sets
// each phase's length (default 3000).
#include <connpool/pg.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace pg = connpool::pg;
using clock_type = std::chrono::steady_clock;

struct result {
    double p50_us = 0, p99_us = 0;
    std::size_t light_requests = 0, heavy_requests = 0;
    double seconds = 0;
};

double pct(std::vector<std::int64_t>& v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return static_cast<double>(v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))]) / 1000.0;
}

enum class shape { shared_pool, own_pools };

struct setup {
    shape layout = shape::shared_pool;
    bool tenants = true;
    std::size_t heavy_quota = 0;  // 0: none
    std::uint32_t heavy_weight = 19;
    int heavy_threads = 32;
    int light_threads = 2;
    double light_rate = 0;  // requests/s of the light tenant, all threads together
};

std::unique_ptr<pg::pool> make_pool(const std::string& ci, std::size_t n) {
    connpool::options o;
    o.max_size = n;
    o.min_idle = n;
    o.acquire_timeout = std::chrono::seconds(30);
    auto p = std::make_unique<pg::pool>(pg::factory(ci), o);
    std::vector<pg::pool::lease_type> warm;
    for (std::size_t i = 0; i < n; ++i) warm.push_back(p->acquire());
    return p;
}

result run(const std::string& ci, const setup& s, std::chrono::milliseconds span) {
    const connpool::tenant_id heavy{1}, light{2};
    std::unique_ptr<pg::pool> shared, light_pool, heavy_pool;
    if (s.layout == shape::shared_pool) {
        shared = make_pool(ci, 4);
        if (s.tenants) {
            shared->add_tenant(heavy, {.quota = s.heavy_quota, .weight = s.heavy_weight, .name = "heavy"});
            shared->add_tenant(light, {.weight = 1, .name = "light"});
        }
    } else {
        heavy_pool = make_pool(ci, 3);
        light_pool = make_pool(ci, 1);
    }
    pg::pool& for_heavy = shared ? *shared : *heavy_pool;
    pg::pool& for_light = shared ? *shared : *light_pool;
    std::atomic<bool> stop{false};
    std::mutex m;
    std::vector<std::int64_t> waits;
    std::atomic<std::size_t> heavy_n{0};
    const auto t0 = clock_type::now();
    auto heavy_worker = [&] {
        while (!stop.load(std::memory_order_relaxed)) {
            auto l = for_heavy.acquire(heavy);
            (void)l->try_exec("SELECT pg_sleep(0.0005)");
            heavy_n.fetch_add(1, std::memory_order_relaxed);
        }
    };
    auto light_worker = [&](int k) {
        std::vector<std::int64_t> mine;
        // Paced: request i of this thread is due at t0 + (k + i * threads) / rate, so the
        // light tenant asks for what it asks for whatever the pool does (an open loop).
        const double period = static_cast<double>(s.light_threads) / s.light_rate;
        for (std::size_t i = 0; !stop.load(std::memory_order_relaxed); ++i) {
            const auto due = t0 + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(
                                      period * (static_cast<double>(i) + static_cast<double>(k) / s.light_threads)));
            std::this_thread::sleep_until(due);
            if (stop.load(std::memory_order_relaxed)) break;
            const auto a = clock_type::now();
            auto l = for_light.acquire(light);
            mine.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(clock_type::now() - a).count());
            (void)l->try_exec("SELECT pg_sleep(0.0005)");
        }
        std::lock_guard lk(m);
        waits.insert(waits.end(), mine.begin(), mine.end());
    };
    std::vector<std::thread> ts;
    for (int i = 0; i < s.heavy_threads; ++i) ts.emplace_back(heavy_worker);
    if (s.light_rate > 0)
        for (int k = 0; k < s.light_threads; ++k) ts.emplace_back(light_worker, k);
    std::this_thread::sleep_for(span);
    stop = true;
    for (auto& t : ts) t.join();
    result r;
    r.seconds = std::chrono::duration<double>(clock_type::now() - t0).count();
    r.light_requests = waits.size();
    r.heavy_requests = heavy_n;
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

    const result cap = run(ci, {.light_rate = 0}, span);
    const double capacity = static_cast<double>(cap.heavy_requests) / cap.seconds;
    const double rate = 0.05 * capacity;
    std::printf("pool of 4, SELECT pg_sleep(0.0005): heavy tenant alone %.0f requests/s; light tenant paced at "
                "%.0f/s (5 %%)\n",
                capacity, rate);
    std::printf("%-22s %11s %11s %9s %11s %11s %11s\n", "case", "light p50us", "light p99us", "p99/alone",
                "light req/s", "heavy req/s", "light share");
    const struct {
        const char* name;
        setup s;
    } cases[] = {
        {"light alone", {.heavy_threads = 0, .light_rate = rate}},
        {"weights 1:19", {.light_rate = rate}},
        {"weights 1:1", {.heavy_weight = 1, .light_rate = rate}},
        {"quota 3 + 1", {.heavy_quota = 3, .light_rate = rate}},
        {"own pool (control)", {.layout = shape::own_pools, .tenants = false, .light_rate = rate}},
    };
    double alone_p99 = 0;
    for (const auto& c : cases) {
        const result r = run(ci, c.s, span);
        if (alone_p99 == 0) alone_p99 = std::max(r.p99_us, 1.0);
        const double total = static_cast<double>(r.light_requests + r.heavy_requests);
        std::printf("%-22s %11.0f %11.0f %9.1f %11.0f %11.0f %10.1f%%\n", c.name, r.p50_us, r.p99_us,
                    r.p99_us / alone_p99, static_cast<double>(r.light_requests) / r.seconds,
                    static_cast<double>(r.heavy_requests) / r.seconds,
                    total > 0 ? 100.0 * static_cast<double>(r.light_requests) / total : 0.0);
    }
}
