// pg_ctl restart -m fast under load. This program has a private server (fixture pg_restart_server),
// because the restart cuts every session on it.
#include "connpool_catch.hpp"
#include "pg_test_util.hpp"

#include <connpool/pg.hpp>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace cpg = connpool::pg;
using namespace connpool_test::pg;
using connpool::errc;
using connpool::error_code;
using connpool::error_info;

TEST_CASE("after pg_ctl restart under load from 8 threads the pool fails fast, then refills by itself",
          "[pg][pool][restart]") {
    const std::string app = unique_app("restart");
    connpool::options o;
    o.max_size = 4;
    o.min_idle = 4;
    o.acquire_timeout = 1s;
    o.connect_timeout = 1s;
    o.backoff_initial = 20ms;
    o.backoff_max = 200ms;  // so that the refill does not sit in a long backoff
    o.housekeeping_interval = 50ms;
    cpg::pool pool(cpg::factory(conninfo_with("application_name=" + app)), o);
    REQUIRE(eventually([&] { return count_backends(app) == 4; }, 10s));

    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, acquire_failures{0}, query_failures{0}, unexpected{0};
    std::atomic<long long> slowest_failed_acquire_ms{0};
    std::mutex m;
    std::set<std::string> failure_codes;

    std::vector<std::thread> ts;
    for (int t = 0; t < 8; ++t) {
        ts.emplace_back([&] {
            while (!stop) {
                const auto start = std::chrono::steady_clock::now();
                error_code ec;
                error_info diag;
                auto l = pool.acquire(ec, diag);
                if (ec) {
                    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::steady_clock::now() - start)
                                        .count();
                    long long prev = slowest_failed_acquire_ms;
                    while (ms > prev && !slowest_failed_acquire_ms.compare_exchange_weak(prev, ms)) {
                    }
                    ++acquire_failures;
                    std::lock_guard lock(m);
                    failure_codes.insert(ec.message() + " | " + diag.message);
                    if (ec != errc::connect_failed && ec != errc::connect_timeout && ec != errc::acquire_timeout) {
                        ++unexpected;
                    }
                    continue;
                }
                try {
                    l->exec("SELECT pg_sleep(0.001)");
                    ++ok;
                } catch (const cpg::sql_error&) {
                    // A request in flight when the server went down.
                    ++query_failures;
                }
            }
        });
    }

    REQUIRE(eventually([&] { return ok > 50; }, 10s));
    const int restart_rc = std::system(env()["CONNPOOL_PG_RESTART"].c_str());
    REQUIRE(restart_rc == 0);
    // Load goes on after the restart until every thread has been served again.
    const int ok_at_restart = ok;
    CHECK(eventually([&] { return ok > ok_at_restart + 50; }, 15s));
    stop = true;
    for (auto& t : ts) t.join();

    for (const auto& f : failure_codes) UNSCOPED_INFO(f);
    const auto s = pool.stats();
    // The outage was seen: in-flight queries failed and connects were refused during it.
    CHECK(query_failures + acquire_failures > 0);
    CHECK(s.closed_for(connpool::close_reason::broken) + s.closed_for(connpool::close_reason::validation_failed) >= 1);
    // Failed acquires failed with the connect error or their own timeout, nothing else ...
    CHECK(unexpected == 0);
    // ... and none hung: the slowest failure came back near acquire_timeout (1 s), far under 5 s.
    CHECK(slowest_failed_acquire_ms < 5000);

    // With no load at all, the pool gets back to min_idle live backends by itself within 2 s.
    CHECK(eventually([&] { return pool.stats().idle >= 4 && count_backends(app) >= 4; }, 2s));
    CHECK(pool.stats().open <= 4);
}

// Without load, housekeeping's probe notices that the idle connections died (their sockets turn
// readable with the FATAL message and EOF), closes them and refills to min_idle by itself, before
// anyone acquires: nobody is ever handed a dead connection.
TEST_CASE("after pg_ctl restart with no load the pool replaces its dead idle connections by itself",
          "[pg][pool][restart][probe]") {
    const std::string app = unique_app("restart_idle");
    connpool::options o;
    o.max_size = 4;
    o.min_idle = 4;
    o.acquire_timeout = 5s;
    o.connect_timeout = 1s;
    o.backoff_initial = 20ms;
    o.backoff_max = 200ms;
    o.housekeeping_interval = 50ms;
    o.validation = connpool::validation_mode::optimistic;  // only the probe can notice
    cpg::pool pool(cpg::factory(conninfo_with("application_name=" + app)), o);
    REQUIRE(eventually([&] { return count_backends(app) == 4; }, 10s));
    REQUIRE(std::system(env()["CONNPOOL_PG_RESTART"].c_str()) == 0);
    // (The pool may already be reconnecting here, so no count of backends right after the
    // restart: that the four old ones were closed as broken says they were replaced.)
    CHECK(eventually([&] {
        return pool.stats().closed_for(connpool::close_reason::broken) >= 4 && count_backends(app) >= 4 &&
               pool.stats().idle >= 4;
    }, 2s));
    CHECK(pool.stats().open <= 4);
    auto l = pool.acquire();
    CHECK(scalar(*l, "SELECT 1") == "1");
}
