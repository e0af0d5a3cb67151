// The same N requests served three ways, with throughput and latency for each:
//   1. a new connection per request (connect, query, close),
//   2. a connpool pool shared by the workers,
//   3. a dedicated connection per worker (the floor: no pool, no connects),
// plus the pool with reset_policy::discard_all, to show what a full reset on every return costs.
//
//   CONNPOOL_PG_CONNINFO="..." ./example_pg_demo [requests=2000] [workers=8] [pool_size=4]
#include <connpool/pg.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace pg = connpool::pg;
using clock_type = std::chrono::steady_clock;

struct outcome {
    double per_second = 0;
    double p50_ms = 0, p99_ms = 0;
    int errors = 0;
};

// Runs `requests` requests split over `workers` threads. request(worker) serves one and returns
// false on failure. Latency is measured per request, from start to answer.
outcome run(int requests, int workers, const std::function<bool(int)>& request) {
    std::vector<std::vector<double>> latencies(workers);
    std::atomic<int> next{0}, errors{0};
    const auto start = clock_type::now();
    std::vector<std::thread> ts;
    for (int w = 0; w < workers; ++w) {
        ts.emplace_back([&, w] {
            while (next.fetch_add(1) < requests) {
                const auto t0 = clock_type::now();
                if (!request(w)) ++errors;
                latencies[w].push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
            }
        });
    }
    for (auto& t : ts) t.join();
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    std::vector<double> all;
    for (auto& l : latencies) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    auto pct = [&](double p) { return all.empty() ? 0.0 : all[std::min(all.size() - 1, std::size_t(p * all.size()))]; };
    return {requests / seconds, pct(0.50), pct(0.99), errors.load()};
}

// The request: one small parameterised query, checked.
bool query(pg::connection& c) {
    auto r = c.try_exec("SELECT $1::int * 2", 21);
    return pg::result_ok(r.get()) && std::string(PQgetvalue(r.get(), 0, 0)) == "42";
}

void print(const char* way, const outcome& o) {
    std::printf("%-40s %10.0f %9.2f %9.2f %7d\n", way, o.per_second, o.p50_ms, o.p99_ms, o.errors);
}

int main(int argc, char** argv) {
    const char* conninfo = std::getenv("CONNPOOL_PG_CONNINFO");
    if (conninfo == nullptr) {
        std::cerr << "set CONNPOOL_PG_CONNINFO to a libpq conninfo string\n";
        return 2;
    }
    const int requests = argc > 1 ? std::atoi(argv[1]) : 2000;
    const int workers = argc > 2 ? std::atoi(argv[2]) : 8;
    const int pool_size = argc > 3 ? std::atoi(argv[3]) : 4;
    if (requests <= 0 || workers <= 0 || pool_size <= 0) {
        std::cerr << "usage: example_pg_demo [requests>0] [workers>0] [pool_size>0]\n";
        return 2;
    }
    std::printf("%d requests, %d worker threads, %u CPUs\n\n", requests, workers, std::thread::hardware_concurrency());
    std::printf("%-40s %10s %9s %9s %7s\n", "way", "req/s", "p50 ms", "p99 ms", "errors");

    // 1. A new connection per request, as code without a pool does it.
    const auto per_request = run(requests, workers, [&](int) {
        pg::connection c(PQconnectdb(conninfo));
        return PQstatus(c.native_handle()) == CONNECTION_OK && query(c);
    });
    print("new connection per request", per_request);

    // 2. A connpool pool shared by all workers.
    auto pooled = [&](pg::factory_options fo) {
        connpool::options o;
        o.max_size = static_cast<std::size_t>(pool_size);
        o.min_idle = static_cast<std::size_t>(pool_size);
        pg::pool pool(pg::factory(conninfo, fo), o);
        // Warm up: the pool opens min_idle connections in the background; wait for them, so the
        // run measures pooled requests and not the first connects.
        for (int i = 0; i < 500 && pool.stats().idle < o.min_idle; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        return run(requests, workers, [&](int) {
            connpool::error_code ec;
            auto l = pool.acquire(ec);
            return !ec && query(*l);
        });
    };
    const auto pool_default = pooled({});
    const std::string pool_label = "connpool pool of " + std::to_string(pool_size);
    print(pool_label.c_str(), pool_default);

    // 3. A dedicated connection per worker, opened before the clock starts.
    std::vector<pg::connection> dedicated;
    for (int w = 0; w < workers; ++w) dedicated.emplace_back(PQconnectdb(conninfo));
    for (auto& c : dedicated) {
        if (PQstatus(c.native_handle()) != CONNECTION_OK) {
            std::cerr << "connect failed: " << c.error_message() << "\n";
            return 1;
        }
    }
    const auto own = run(requests, workers, [&](int w) { return query(dedicated[w]); });
    const std::string own_label = "dedicated connection per worker (" + std::to_string(workers) + ")";
    print(own_label.c_str(), own);

    pg::factory_options full;
    full.reset = pg::reset_policy::discard_all;
    const auto pool_discard = pooled(full);
    print((pool_label + ", DISCARD ALL on return").c_str(), pool_discard);

    std::printf("\nconnpool pool vs a new connection per request: %.0fx the throughput\n",
                pool_default.per_second / per_request.per_second);
    std::printf("connpool pool vs a dedicated connection per worker: %.2f of its throughput\n",
                pool_default.per_second / own.per_second);
    std::printf("DISCARD ALL on every return costs %.0f%% of the pool's throughput (one extra round trip)\n",
                100.0 * (1.0 - pool_discard.per_second / pool_default.per_second));
    const int errors = per_request.errors + pool_default.errors + own.errors + pool_discard.errors;
    return errors == 0 ? 0 : 1;
}
