// The MySQL statement cache (issue 18): the 4-table join of prepared_bench.cpp on MariaDB,
// connection::query_cached (mysql_stmt_*, prepared once per connection) against
// connection::query with the values written into the SQL text (the text protocol, parsed and
// optimised on every call), 8 std::threads on a pool of 4 over TCP, in one run. Phases as in
// prepared_bench.cpp: 0.2 s warm-up, then a fixed wall time, cached and text alternating.
//
//   CONNPOOL_MYSQL_HOST=... _PORT _USER _PASSWORD _DATABASE connpool_bench_prepared_mysql [seconds] [reps]
//
// Creates (once) the tables cpb_customers, cpb_products, cpb_orders and cpb_order_items in the
// configured database, with the same sizes and keys as the PostgreSQL bench.
#include <connpool/mysql.hpp>

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

namespace cm = connpool::mysql;
using clock_type = std::chrono::steady_clock;

std::string env(const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? std::string{} : std::string{v};
}

const std::string join_head =
    "SELECT p.category, COUNT(*), SUM(oi.quantity * p.price) "
    "FROM cpb_customers c "
    "JOIN cpb_orders o ON o.customer_id = c.id "
    "JOIN cpb_order_items oi ON oi.order_id = o.id "
    "JOIN cpb_products p ON p.id = oi.product_id ";
const std::string join_tail = " GROUP BY p.category ORDER BY p.category";
const std::string join_sql = join_head + "WHERE c.id = ? AND o.placed_at >= ? AND c.region = ?" + join_tail;

// The text-protocol form: the values are digits and a fixed 'region_N' word, so no escaping
// is needed here.
std::string join_text(int customer, const std::string& region) {
    return join_head + "WHERE c.id = " + std::to_string(customer) + " AND o.placed_at >= '2024-06-01' AND c.region = '" +
           region + "'" + join_tail;
}

void make_schema(const cm::connect_options& o) {
    cm::factory f(o);
    connpool::error_info err;
    auto c = f.connect(connpool::connect_request{std::chrono::seconds(10), 0}, err);
    if (!c) throw std::runtime_error("connect failed: " + err.what());
    auto n = c->query_value("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() "
                            "AND TABLE_NAME = 'cpb_order_items'");
    if (n && *n == "1") return;
    for (const char* sql : {
             "CREATE TABLE cpb_customers (id INT PRIMARY KEY, region VARCHAR(20) NOT NULL, name VARCHAR(40) NOT NULL)",
             "CREATE TABLE cpb_products (id INT PRIMARY KEY, category VARCHAR(20) NOT NULL, price DECIMAL(10,2) NOT NULL)",
             "CREATE TABLE cpb_orders (id INT PRIMARY KEY, customer_id INT NOT NULL, placed_at DATE NOT NULL,"
             " KEY (customer_id, placed_at))",
             "CREATE TABLE cpb_order_items (order_id INT NOT NULL, product_id INT NOT NULL, quantity INT NOT NULL,"
             " KEY (order_id))",
             // MariaDB's Sequence engine: seq_1_to_N is a table of 1..N.
             "INSERT INTO cpb_customers SELECT seq, CONCAT('region_', seq % 8), CONCAT('customer ', seq) FROM seq_1_to_2000",
             "INSERT INTO cpb_products SELECT seq, CONCAT('category_', seq % 20), (seq % 97) + 0.99 FROM seq_1_to_500",
             "INSERT INTO cpb_orders SELECT seq, 1 + (seq * 7919) % 2000, DATE '2024-01-01' + INTERVAL (seq % 700) DAY"
             " FROM seq_1_to_40000",
             "INSERT INTO cpb_order_items SELECT 1 + (seq DIV 4), 1 + (seq * 31) % 500, 1 + seq % 5 FROM seq_0_to_159999",
             "ANALYZE TABLE cpb_customers, cpb_products, cpb_orders, cpb_order_items",
         }) {
        c->execute(sql);
    }
}

struct phase {
    double per_second = 0;
    std::size_t errors = 0;
};

phase run(cm::pool& pool, bool cached, int threads, std::chrono::milliseconds span) {
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
                    auto r = cached ? l->query_cached(join_sql, customer, "2024-06-01", region)
                                    : l->query(join_text(customer, region));
                    if (r.empty()) ++errors;
                    done.fetch_add(1, std::memory_order_relaxed);
                } catch (const std::exception&) {
                    errors.fetch_add(1, std::memory_order_relaxed);
                }
            }
        });
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
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
    cm::connect_options o;
    o.host = env("CONNPOOL_MYSQL_HOST");
    if (o.host.empty()) {
        std::fprintf(stderr, "CONNPOOL_MYSQL_HOST, _PORT, _USER, _PASSWORD, _DATABASE must be set\n");
        return 2;
    }
    o.port = static_cast<unsigned>(std::atoi(env("CONNPOOL_MYSQL_PORT").c_str()));
    o.user = env("CONNPOOL_MYSQL_USER");
    o.password = env("CONNPOOL_MYSQL_PASSWORD");
    o.database = env("CONNPOOL_MYSQL_DATABASE");
    const double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
    const int reps = argc > 2 ? std::atoi(argv[2]) : 3;
    const auto span = std::chrono::milliseconds(static_cast<long>(seconds * 1000));
    try {
        make_schema(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "schema setup failed: %s\n", e.what());
        return 1;
    }
    connpool::options po;
    po.max_size = 4;
    po.min_idle = 4;
    po.acquire_timeout = std::chrono::seconds(30);
    cm::pool pool(cm::factory(o), po);
    constexpr int threads = 8;
    std::printf("MariaDB 4-table join, %d threads on a pool of %zu, %.1f s per phase after 0.2 s warm-up\n", threads,
                po.max_size, seconds);
    std::printf("%-4s %-12s %12s %8s\n", "rep", "case", "queries/s", "errors");
    std::vector<double> cached_rates, text_rates, ratios;
    std::size_t errors = 0;
    for (int rep = 1; rep <= reps; ++rep) {
        const phase c = run(pool, true, threads, span);
        const phase u = run(pool, false, threads, span);
        std::printf("%-4d %-12s %12.0f %8zu\n", rep, "cached", c.per_second, c.errors);
        std::printf("%-4d %-12s %12.0f %8zu\n", rep, "text", u.per_second, u.errors);
        cached_rates.push_back(c.per_second);
        text_rates.push_back(u.per_second);
        ratios.push_back(c.per_second / u.per_second);
        errors += c.errors + u.errors;
    }
    std::printf("median: cached %.0f/s, text %.0f/s, ratio cached/text %.2f (per-rep ratios:", median(cached_rates),
                median(text_rates), median(ratios));
    for (double r : ratios) std::printf(" %.2f", r);
    std::printf(")\n");
    return errors == 0 ? 0 : 1;
}
