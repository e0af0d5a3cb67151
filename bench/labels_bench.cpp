// Labels over PostgreSQL, in the shape labels exist for: 8 labels of 6 settings each
// (search_path, role, TimeZone, statement_timeout, work_mem, DateStyle), 16 threads, a random
// label per request, then SELECT 1. Three ways to give every request its settings, in one run:
//
//   labels      one pool of 8, acquire(label): a connection that carries the label costs no
//               round trip, another one gets the difference applied;
//   (a) SET     one pool of 8 that resets on return (DISCARD ALL) and runs the 6 SETs after
//               every acquire: two extra round trips per request, what a pool without labels
//               makes an application do;
//   (b) pools   one pool per label (8 pools of 2): always a hit, at the price of holding a
//               connection set per label.
//   labels, 16  as the first, with as many connections as (b).
//
// Reports requests/s, the hit rate (acquires served a connection already carrying the label),
// applies per 1,000 acquires, and the server connections each way holds. Target (issue 16):
// labels >= 1.3x (a), with at most 1.2x (b)'s connections.
//
// CONNPOOL_PG_CONNINFO and CONNPOOL_PG_ADMIN_CONNINFO from the environment (bench/run.sh, or
// `source` the env file tests/support/pg/start-servers.sh writes): the admin one creates the
// 8 roles. CONNPOOL_BENCH_LABELS_MS sets each phase's length (default 3000),
// CONNPOOL_BENCH_LABELS_THREADS the threads (default 16).
#include <connpool/pg.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

namespace {

namespace pg = connpool::pg;
constexpr int label_count = 8;

struct phase {
    double per_second = 0;
    std::size_t errors = 0;
    double hit_rate = 0;
    double applies_per_1000 = 0;
    std::size_t connections = 0;
};

std::string setting_of(int i, int k) {
    switch (k) {
        case 0: return "cpt_bench_" + std::to_string(i);
        case 1: return "cpt_bench_role_" + std::to_string(i);
        case 2: return i % 2 ? "UTC" : "Asia/Tokyo";
        case 3: return std::to_string(10000 + i) + "ms";
        case 4: return std::to_string(4096 + 64 * i) + "kB";
        default: return i % 2 ? "ISO, MDY" : "ISO, DMY";
    }
}

const char* const names[] = {"search_path", "role", "TimeZone", "statement_timeout", "work_mem", "DateStyle"};

connpool::label label_of(int i) {
    connpool::label l;
    for (int k = 0; k < 6; ++k) l.set(names[k], setting_of(i, k));
    return l;
}

// The SETs of (a), in one round trip: what an application without labels sends.
std::string set_sql_of(int i) {
    return "SET search_path TO \"" + setting_of(i, 0) + "\"; SET ROLE \"" + setting_of(i, 1) + "\"; SET TimeZone TO '" +
           setting_of(i, 2) + "'; SET statement_timeout TO '" + setting_of(i, 3) + "'; SET work_mem TO '" +
           setting_of(i, 4) + "'; SET DateStyle TO '" + setting_of(i, 5) + "'";
}

void prepare_server(const std::string& conninfo, const std::string& admin) {
    pg::factory f(admin);
    connpool::error_info e;
    auto a = f.connect({std::chrono::seconds(10), 0}, e);
    if (!a) throw std::runtime_error("admin connect: " + e.message);
    auto u = pg::factory(conninfo).connect({std::chrono::seconds(10), 0}, e);
    if (!u) throw std::runtime_error("connect: " + e.message);
    const std::string user = PQgetvalue(u->exec("SELECT current_user").get(), 0, 0);
    for (int i = 0; i < label_count; ++i) {
        const std::string role = setting_of(i, 1), schema = setting_of(i, 0);
        a->exec("DO $$BEGIN CREATE ROLE " + role + "; EXCEPTION WHEN duplicate_object THEN NULL; END$$");
        a->exec("GRANT " + role + " TO \"" + user + "\"");
        u->exec("CREATE SCHEMA IF NOT EXISTS " + schema);
        u->exec("GRANT USAGE ON SCHEMA " + schema + " TO " + role);
    }
}

template <class Request>
std::pair<double, std::size_t> drive(int threads, std::chrono::milliseconds span, Request&& request) {
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> done{0}, errors{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t) + 1);
            while (!stop.load(std::memory_order_relaxed)) {
                try {
                    request(static_cast<int>(rng() % label_count));
                    done.fetch_add(1, std::memory_order_relaxed);
                } catch (const std::exception&) {
                    errors.fetch_add(1, std::memory_order_relaxed);
                }
            }
        });
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(span);
    stop = true;
    for (auto& t : ts) t.join();
    return {static_cast<double>(done) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
            errors.load()};
}

connpool::options sized(std::size_t n) {
    connpool::options o;
    if (const char* h = std::getenv("CONNPOOL_BENCH_LABELS_HANDOFF"); h != nullptr && std::string(h) == "fifo")
        o.handoff = connpool::handoff_policy::fifo;
    o.max_size = n;
    o.min_idle = n;
    o.acquire_timeout = std::chrono::seconds(30);
    return o;
}

void fill(phase& p, const std::vector<connpool::pool_stats>& stats) {
    std::uint64_t acquired = 0, hits = 0, applies = 0;
    for (const auto& s : stats) {
        acquired += s.acquired;
        hits += s.label_hits;
        applies += s.label_applies;
        p.connections += s.open;
    }
    p.hit_rate = acquired != 0 ? static_cast<double>(hits) / static_cast<double>(acquired) : 0;
    p.applies_per_1000 = acquired != 0 ? 1000.0 * static_cast<double>(applies) / static_cast<double>(acquired) : 0;
}

phase with_labels(const std::string& ci, int threads, std::chrono::milliseconds span, std::size_t size) {
    pg::pool pool(pg::factory{ci}, sized(size));
    std::vector<connpool::label> labels;
    for (int i = 0; i < label_count; ++i) labels.push_back(label_of(i));
    phase p;
    std::tie(p.per_second, p.errors) = drive(threads, span, [&](int i) { pool.acquire(labels[i])->exec("SELECT 1"); });
    fill(p, {pool.stats()});
    return p;
}

phase set_every_time(const std::string& ci, int threads, std::chrono::milliseconds span) {
    pg::factory_options fo;
    fo.reset = pg::reset_policy::discard_all;
    pg::pool pool(pg::factory{ci, fo}, sized(8));
    std::vector<std::string> sql;
    for (int i = 0; i < label_count; ++i) sql.push_back(set_sql_of(i));
    phase p;
    std::tie(p.per_second, p.errors) = drive(threads, span, [&](int i) {
        auto l = pool.acquire();
        l->exec(sql[i]);
        l->exec("SELECT 1");
    });
    fill(p, {pool.stats()});
    p.applies_per_1000 = 1000;  // every acquire sends the settings
    return p;
}

phase pool_per_label(const std::string& ci, int threads, std::chrono::milliseconds span) {
    std::vector<std::unique_ptr<pg::pool>> pools;
    std::vector<connpool::label> labels;
    for (int i = 0; i < label_count; ++i) {
        pools.push_back(std::make_unique<pg::pool>(pg::factory{ci}, sized(2)));
        labels.push_back(label_of(i));
    }
    phase p;
    std::tie(p.per_second, p.errors) =
        drive(threads, span, [&](int i) { pools[static_cast<std::size_t>(i)]->acquire(labels[i])->exec("SELECT 1"); });
    std::vector<connpool::pool_stats> stats;
    for (auto& pp : pools) stats.push_back(pp->stats());
    fill(p, stats);
    return p;
}

}  // namespace

int main() {
    const char* ci = std::getenv("CONNPOOL_PG_CONNINFO");
    const char* admin = std::getenv("CONNPOOL_PG_ADMIN_CONNINFO");
    if (ci == nullptr || admin == nullptr) {
        std::fprintf(stderr, "CONNPOOL_PG_CONNINFO and CONNPOOL_PG_ADMIN_CONNINFO must be set (see bench/run.sh)\n");
        return 2;
    }
    const char* ms = std::getenv("CONNPOOL_BENCH_LABELS_MS");
    const char* th = std::getenv("CONNPOOL_BENCH_LABELS_THREADS");
    const std::chrono::milliseconds span(ms != nullptr ? std::atol(ms) : 3000);
    const int threads = th != nullptr ? std::atoi(th) : 16;
    prepare_server(ci, admin);
    std::printf("%d labels of 6 settings, %d threads, SELECT 1 per request\n", label_count, threads);
    std::printf("%-26s %12s %8s %9s %14s %12s\n", "case", "requests/s", "errors", "hit rate", "applies/1000",
                "connections");
    const phase l = with_labels(ci, threads, span, 8);
    const phase l16 = with_labels(ci, threads, span, 16);
    const phase a = set_every_time(ci, threads, span);
    const phase b = pool_per_label(ci, threads, span);
    const auto row = [](const char* name, const phase& p) {
        std::printf("%-26s %12.0f %8zu %9.2f %14.0f %12zu\n", name, p.per_second, p.errors, p.hit_rate,
                    p.applies_per_1000, p.connections);
    };
    row("labels, pool of 8", l);
    row("labels, pool of 16", l16);
    row("(a) SET + DISCARD ALL", a);
    row("(b) pool per label, 8x2", b);
    std::printf("labels / (a) throughput: %.2f (target >= 1.3)\n", l.per_second / a.per_second);
    std::printf("labels / (b) throughput: %.2f; connections labels / (b): %.2f (target <= 1.2)\n",
                l.per_second / b.per_second,
                static_cast<double>(l.connections) / static_cast<double>(std::max<std::size_t>(b.connections, 1)));
}
