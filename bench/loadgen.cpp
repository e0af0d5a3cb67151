// connpool_loadgen: the simulator's workload against a real PostgreSQL, to validate
// connpool-sim. Requests arrive as a Poisson process (a dispatcher thread sleeps until
// each precomputed arrival), a fixed set of application threads serves them, and each
// request acquires a connection from a real connpool::pg::pool, runs SELECT 1 and keeps
// the lease for the drawn hold time (a client-side sleep while holding it). It prints the
// acquire-wait percentiles as JSON, in the shape connpool-sim's JSON has.
//
//   CONNPOOL_PG_CONNINFO=... connpool_loadgen --rate 400 --hold exp:10ms --max-size 6
//       --threads 32 --duration 60s --warmup 5s --seed 1
#include "sim/workload.hpp"

#include <connpool/detail/histogram.hpp>
#include <connpool/pg.hpp>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

namespace pg = connpool::pg;
namespace sim = connpool::sim;
using clock_type = std::chrono::steady_clock;

namespace {

struct args {
    double rate = 400;
    std::string hold = "exp:10ms";
    std::size_t max_size = 6, threads = 32;
    std::chrono::nanoseconds duration = std::chrono::seconds(60), warmup = std::chrono::seconds(5);
    std::uint64_t seed = 1;
};

args parse(int argc, char** argv) {
    args a;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i], v = argv[i + 1];
        if (k == "--rate") a.rate = std::stod(v);
        else if (k == "--hold") a.hold = v;
        else if (k == "--max-size") a.max_size = std::stoul(v);
        else if (k == "--threads") a.threads = std::stoul(v);
        else if (k == "--duration") a.duration = sim::parse_duration(v);
        else if (k == "--warmup") a.warmup = sim::parse_duration(v);
        else if (k == "--seed") a.seed = std::stoull(v);
        else throw std::invalid_argument("unknown option " + k);
    }
    return a;
}

double quantile(std::vector<double>& v, double q) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(q * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k];
}

}  // namespace

int main(int argc, char** argv) {
    try {
        const args a = parse(argc, argv);
        const char* conninfo = std::getenv("CONNPOOL_PG_CONNINFO");
        if (conninfo == nullptr || *conninfo == '\0') {
            std::cerr << "connpool_loadgen: set CONNPOOL_PG_CONNINFO (bench/loadgen.sh starts a server)\n";
            return 2;
        }
        // The options connpool-sim is given too: opened up front, so that both runs start warm.
        connpool::options o;
        o.max_size = a.max_size;
        o.min_idle = a.max_size;
        pg::pool pool(pg::factory(conninfo), o);
        for (int i = 0; i < 200 && pool.stats().idle < a.max_size; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
        if (pool.stats().idle < a.max_size) {
            std::cerr << "connpool_loadgen: the pool did not fill: " << pool.stats().last_connect_error << "\n";
            return 1;
        }

        std::mt19937_64 rng(a.seed);
        sim::hold_model hold = sim::parse_hold(a.hold);
        std::mutex m;
        std::condition_variable cv;
        std::deque<std::pair<clock_type::time_point, std::chrono::nanoseconds>> work;  // arrival, hold
        bool done = false;
        std::mutex rec_m;
        std::vector<double> waits_ms, holds_ms;
        connpool::duration_histogram wake;  // how late each hold's sleep woke: this machine's wake-up latency
        std::atomic<std::uint64_t> errors{0}, late{0};
        const auto start = clock_type::now();
        const auto measure_from = start + a.warmup;

        std::vector<std::thread> threads;
        for (std::size_t t = 0; t < a.threads; ++t) {
            threads.emplace_back([&] {
                std::vector<double> my_waits, my_holds;
                connpool::duration_histogram my_wake;
                for (;;) {
                    std::pair<clock_type::time_point, std::chrono::nanoseconds> job;
                    {
                        std::unique_lock lk(m);
                        cv.wait(lk, [&] { return done || !work.empty(); });
                        if (work.empty()) break;
                        job = work.front();
                        work.pop_front();
                    }
                    const auto t0 = clock_type::now();
                    connpool::error_code ec;
                    auto l = pool.acquire(ec);
                    const auto t1 = clock_type::now();
                    if (!l) {
                        ++errors;
                        continue;
                    }
                    PGresult* r = PQexec(l->native_handle(), "SELECT 1");
                    if (PQresultStatus(r) != PGRES_TUPLES_OK) ++errors;
                    PQclear(r);
                    std::this_thread::sleep_until(t1 + job.second);
                    const auto t2 = clock_type::now();
                    l = {};
                    if (job.first >= measure_from) {
                        my_waits.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
                        my_holds.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
                        connpool::detail::record(my_wake, std::max(t2 - (t1 + job.second), clock_type::duration(0)));
                        if (t0 - job.first > std::chrono::milliseconds(1)) ++late;  // waited for a thread
                    }
                }
                std::lock_guard lk(rec_m);
                waits_ms.insert(waits_ms.end(), my_waits.begin(), my_waits.end());
                holds_ms.insert(holds_ms.end(), my_holds.begin(), my_holds.end());
                for (std::size_t i = 0; i < wake.buckets.size(); ++i) wake.buckets[i] += my_wake.buckets[i];
                wake.count += my_wake.count;
                wake.sum += my_wake.sum;
            });
        }
        // The dispatcher: Poisson arrivals at the given rate, for the run's duration.
        double t_s = 0;
        std::uint64_t requests = 0;
        const double end_s = std::chrono::duration<double>(a.duration).count();
        sim::arrival_model arrivals;
        arrivals.steps = {{0.0, a.rate}};
        for (std::uint64_t guard = 0; guard < 100000000; ++guard) {
            t_s = arrivals.next(t_s, rng);
            if (t_s >= end_s) break;
            const auto at = start + std::chrono::duration_cast<clock_type::duration>(std::chrono::duration<double>(t_s));
            std::this_thread::sleep_until(at);
            {
                std::lock_guard lk(m);
                work.emplace_back(at, hold.sample(rng));
            }
            cv.notify_one();
            ++requests;
        }
        {
            std::lock_guard lk(m);
            done = true;
        }
        cv.notify_all();
        for (auto& t : threads) t.join();

        const auto st = pool.stats();
        std::string buckets;
        for (std::size_t i = 0; i < wake.buckets.size(); ++i) buckets += (i ? "," : "") + std::to_string(wake.buckets[i]);
        double sum = 0, hold_sum = 0;
        for (double w : waits_ms) sum += w;
        for (double h : holds_ms) hold_sum += h;
        const double n = static_cast<double>(std::max<std::size_t>(waits_ms.size(), 1));
        std::printf("{\"max_size\":%zu,\"rate\":%g,\"hold\":\"%s\",\"requests\":%llu,\"served\":%zu,\"errors\":%llu,"
                    "\"late_for_thread\":%llu,\"wait_ms\":{\"p50\":%.4f,\"p99\":%.4f,\"max\":%.4f,\"mean\":%.4f},"
                    "\"mean_hold_ms\":%.4f,\"created\":%llu,\"create_ms_mean\":%.3f,\"wake_mean_ms\":%.4f,\"wake\":{\"buckets\":[%s]}}\n",
                    a.max_size, a.rate, a.hold.c_str(), static_cast<unsigned long long>(requests), waits_ms.size(),
                    static_cast<unsigned long long>(errors.load()), static_cast<unsigned long long>(late.load()),
                    quantile(waits_ms, 0.5), quantile(waits_ms, 0.99),
                    waits_ms.empty() ? 0.0 : *std::max_element(waits_ms.begin(), waits_ms.end()), sum / n, hold_sum / n,
                    static_cast<unsigned long long>(st.created),
                    st.create_time.count ? std::chrono::duration<double, std::milli>(st.create_time.sum).count() / static_cast<double>(st.create_time.count) : 0.0,
                    wake.count ? std::chrono::duration<double, std::milli>(wake.sum).count() / static_cast<double>(wake.count) : 0.0,
                    buckets.c_str());
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "connpool_loadgen: " << e.what() << "\n";
        return 2;
    }
}
