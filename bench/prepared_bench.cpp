// The statement cache over PostgreSQL (issue 18): a 4-table join with parameters, run through
// connection::exec_cached (named prepared statement, parsed and planned once per connection) against
// connection::exec (the unnamed statement: parsed and planned on every call), 8 std::threads on a
// pool of 4, in one run. Each phase warms up for 0.2 s, then counts completed queries for a fixed
// wall time; phases alternate (cached, unprepared, cached, unprepared, ...) so that drift in the
// machine's load hits both alike.
//
//   CONNPOOL_PG_CONNINFO="host=127.0.0.1 ..." connpool_bench_prepared [seconds per phase] [reps]
//
// Creates (once) the schema cpb_prepared with customers (2,000), products (500), orders (40,000)
// and order_items (160,000), indexed on the join keys. The query picks one customer's orders since
// a date and sums them by product category: a few dozen rows to join, so planning the 4 tables is
// a visible share of each call, as in the OLTP queries a statement cache is for.
#include <connpool/pg.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace pg = connpool::pg;
using clock_type = std::chrono::steady_clock;

const std::string join_sql =
    "SELECT p.category, count(*), sum(oi.quantity * p.price) "
    "FROM cpb_prepared.customers c "
    "JOIN cpb_prepared.orders o ON o.customer_id = c.id "
    "JOIN cpb_prepared.order_items oi ON oi.order_id = o.id "
    "JOIN cpb_prepared.products p ON p.id = oi.product_id "
    "WHERE c.id = $1 AND o.placed_at >= $2::date AND c.region = $3 "
    "GROUP BY p.category ORDER BY p.category";

void make_schema(const std::string& conninfo) {
    pg::factory f(conninfo);
    connpool::error_info err;
    auto c = f.connect(connpool::connect_request{std::chrono::seconds(10), 0}, err);
    if (!c) throw std::runtime_error("connect failed: " + err.what());
    auto exists = c->exec("SELECT count(*) FROM pg_namespace WHERE nspname = 'cpb_prepared'");
    if (std::string(PQgetvalue(exists.get(), 0, 0)) == "1") return;
    c->exec(
        "BEGIN;"
        "CREATE SCHEMA cpb_prepared;"
        "CREATE TABLE cpb_prepared.customers (id int PRIMARY KEY, region text NOT NULL, name text NOT NULL);"
        "CREATE TABLE cpb_prepared.products (id int PRIMARY KEY, category text NOT NULL, price numeric(10,2) NOT NULL);"
        "CREATE TABLE cpb_prepared.orders (id int PRIMARY KEY, customer_id int NOT NULL REFERENCES cpb_prepared.customers,"
        "  placed_at date NOT NULL);"
        "CREATE TABLE cpb_prepared.order_items (order_id int NOT NULL REFERENCES cpb_prepared.orders,"
        "  product_id int NOT NULL REFERENCES cpb_prepared.products, quantity int NOT NULL);"
        "INSERT INTO cpb_prepared.customers SELECT g, 'region_' || (g % 8), 'customer ' || g FROM generate_series(1, 2000) g;"
        "INSERT INTO cpb_prepared.products SELECT g, 'category_' || (g % 20), (g % 97) + 0.99 FROM generate_series(1, 500) g;"
        "INSERT INTO cpb_prepared.orders SELECT g, 1 + (g * 7919) % 2000, date '2024-01-01' + (g % 700)"
        "  FROM generate_series(1, 40000) g;"
        "INSERT INTO cpb_prepared.order_items SELECT 1 + (g / 4), 1 + (g * 31) % 500, 1 + g % 5"
        "  FROM generate_series(0, 159999) g;"
        "CREATE INDEX ON cpb_prepared.orders (customer_id, placed_at);"
        "CREATE INDEX ON cpb_prepared.order_items (order_id);"
        "COMMIT;"
        "ANALYZE cpb_prepared.customers, cpb_prepared.products, cpb_prepared.orders, cpb_prepared.order_items;");
}

struct phase {
    double per_second = 0;
    std::size_t errors = 0;
};

phase run(pg::pool& pool, bool cached, int threads, std::chrono::milliseconds span) {
    std::atomic<bool> stop{false};
    std::atomic<std::size_t> done{0}, errors{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            std::mt19937 rng(static_cast<unsigned>(t) * 7919u + (cached ? 1u : 0u));
            while (!stop.load(std::memory_order_relaxed)) {
                const int customer = 1 + static_cast<int>(rng() % 2000);
                const std::string region = "region_" + std::to_string(customer % 8);
                try {
                    auto l = pool.acquire();
                    auto r = cached ? l->exec_cached(join_sql, customer, "2024-06-01", region)
                                    : l->exec(join_sql, customer, "2024-06-01", region);
                    if (PQntuples(r.get()) < 1) ++errors;
                    done.fetch_add(1, std::memory_order_relaxed);
                } catch (const std::exception&) {
                    errors.fetch_add(1, std::memory_order_relaxed);
                }
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // warm-up: every connection prepared
    const std::size_t d0 = done.load();
    const auto t0 = clock_type::now();
    std::this_thread::sleep_for(span);
    const std::size_t d1 = done.load();
    const auto t1 = clock_type::now();
    stop = true;
    for (auto& t : ts) t.join();
    return {static_cast<double>(d1 - d0) / std::chrono::duration<double>(t1 - t0).count(), errors.load()};
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
    const char* ci = std::getenv("CONNPOOL_PG_CONNINFO");
    if (ci == nullptr) {
        std::fprintf(stderr, "CONNPOOL_PG_CONNINFO is not set\n");
        return 2;
    }
    const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
    const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
    const auto span = std::chrono::milliseconds(static_cast<long>(seconds * 1000));
    try {
        make_schema(ci);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "schema setup failed: %s\n", e.what());
        return 1;
    }
    connpool::options o;
    o.max_size = 4;
    o.min_idle = 4;
    o.acquire_timeout = std::chrono::seconds(30);
    pg::pool pool(pg::factory{ci}, o);
    constexpr int threads = 8;
    std::printf("4-table join, %d threads on a pool of %zu, %.1f s per phase after 0.2 s warm-up\n", threads,
                o.max_size, seconds);
    std::printf("%-4s %-12s %12s %8s\n", "rep", "case", "queries/s", "errors");
    std::vector<double> cached_rates, plain_rates, ratios;
    std::size_t errors = 0;
    for (int rep = 1; rep <= reps; ++rep) {
        const phase c = run(pool, true, threads, span);
        const phase u = run(pool, false, threads, span);
        std::printf("%-4d %-12s %12.0f %8zu\n", rep, "cached", c.per_second, c.errors);
        std::printf("%-4d %-12s %12.0f %8zu\n", rep, "unprepared", u.per_second, u.errors);
        cached_rates.push_back(c.per_second);
        plain_rates.push_back(u.per_second);
        ratios.push_back(c.per_second / u.per_second);
        errors += c.errors + u.errors;
    }
    std::printf("median: cached %.0f/s, unprepared %.0f/s, ratio cached/unprepared %.2f (per-rep ratios:",
                median(cached_rates), median(plain_rates), median(ratios));
    for (double r : ratios) std::printf(" %.2f", r);
    std::printf(")\n");
    return errors == 0 ? 0 : 1;
}
