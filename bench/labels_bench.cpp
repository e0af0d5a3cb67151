// Labels over PostgreSQL: 8 labels (search_path=cpt_bench_<i>, TimeZone) over a pool of 8,
// 2, 4 and 8 threads, a random label per request that then runs SELECT 1. Throughput with
// settings-aware reuse (acquire(label)) against applying the settings on every acquire
// (a plain acquire, then SET ... for the request's label), in one run.
//
// With as many threads as connections, almost every connection is out at any moment: the
// one carrying the label asked for is rarely idle, so most acquires move a connection to
// another label (one round trip, as the SET would), and reuse saves little. With fewer
// threads, idle connections carry most labels, and the SET is saved on most requests.
//
// CONNPOOL_PG_CONNINFO from the environment (bench/run.sh); CONNPOOL_BENCH_LABELS_MS sets
// each phase's length (default 3000).
#include <connpool/pg.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace pg = connpool::pg;

struct phase {
    double per_second = 0;
    std::size_t errors = 0;
    double applies_per_request = 0;
};

// pg::factory with its apply() calls counted: how often reuse missed.
struct counting_factory : pg::factory {
    explicit counting_factory(pg::factory f) : pg::factory(std::move(f)) {}
    std::shared_ptr<std::atomic<std::size_t>> applies = std::make_shared<std::atomic<std::size_t>>(0);
    bool apply(pg::connection& c, const connpool::label& from, const connpool::label& to, connpool::error_info& e) {
        applies->fetch_add(1, std::memory_order_relaxed);
        return pg::factory::apply(c, from, to, e);
    }
};

phase run(const std::string& conninfo, bool reuse, int threads, std::chrono::milliseconds span) {
    connpool::options o;
    o.max_size = 8;
    o.min_idle = 8;
    o.acquire_timeout = std::chrono::seconds(30);
    o.reset_on_return = false;
    counting_factory f(pg::factory{conninfo});
    auto applies = f.applies;
    connpool::basic_pool<counting_factory> pool(std::move(f), o);
    std::vector<connpool::label> labels;
    std::vector<std::string> set_sql;
    for (int i = 0; i < 8; ++i) {
        const std::string schema = "cpt_bench_" + std::to_string(i);
        labels.push_back(connpool::label{{"search_path", schema}, {"TimeZone", i % 2 ? "UTC" : "Asia/Tokyo"}});
        set_sql.push_back("SET search_path TO \"" + schema + "\"; SET TimeZone TO '" + (i % 2 ? "UTC" : "Asia/Tokyo") + "'");
    }
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> done{0}, errors{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t));
            while (!stop.load(std::memory_order_relaxed)) {
                const std::size_t i = rng() % labels.size();
                try {
                    if (reuse) {
                        auto l = pool.acquire(labels[i]);
                        l->exec("SELECT 1");
                    } else {
                        auto l = pool.acquire();
                        l->exec(set_sql[i]);
                        l->exec("SELECT 1");
                    }
                    ++done;
                } catch (const std::exception&) {
                    ++errors;
                }
            }
        });
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(span);
    stop = true;
    for (auto& t : ts) t.join();
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return {static_cast<double>(done) / secs, errors,
            static_cast<double>(applies->load()) / static_cast<double>(std::max<std::size_t>(done, 1))};
}

}  // namespace

int main() {
    const char* ci = std::getenv("CONNPOOL_PG_CONNINFO");
    if (ci == nullptr) {
        std::fprintf(stderr, "CONNPOOL_PG_CONNINFO is not set (see bench/run.sh)\n");
        return 2;
    }
    const char* ms = std::getenv("CONNPOOL_BENCH_LABELS_MS");
    const std::chrono::milliseconds span(ms != nullptr ? std::atol(ms) : 3000);
    std::printf("%-8s %-24s %12s %8s %16s\n", "threads", "case", "requests/s", "errors", "applies/request");
    for (int threads : {2, 4, 8}) {
        const phase reuse = run(ci, true, threads, span);
        const phase every = run(ci, false, threads, span);
        std::printf("%-8d %-24s %12.0f %8zu %16.2f\n", threads, "settings-aware reuse", reuse.per_second, reuse.errors,
                    reuse.applies_per_request);
        std::printf("%-8d %-24s %12.0f %8zu\n", threads, "SET on every acquire", every.per_second, every.errors);
        std::printf("%-8d %-24s %12.2f\n", threads, "ratio", reuse.per_second / every.per_second);
    }
}
