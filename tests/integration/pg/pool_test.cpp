// connpool::pg::pool against a real PostgreSQL 15 and PgBouncer: concurrency, dirty returns, killed
// backends, a server that hangs, wrong credentials.
#include "connpool_catch.hpp"
#include "pg_test_util.hpp"

#include <connpool/pg.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <atomic>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace cpg = connpool::pg;
using namespace connpool_test::pg;
using connpool::errc;
using connpool::error_code;
using connpool::error_info;

namespace {

connpool::options small_pool(std::size_t max_size, std::size_t min_idle = 0) {
    connpool::options o;
    o.max_size = max_size;
    o.min_idle = min_idle;
    o.acquire_timeout = 10s;
    o.connect_timeout = 5s;
    o.backoff_initial = 20ms;
    o.backoff_max = 200ms;
    o.housekeeping_interval = 50ms;
    return o;
}

// 16 threads each run `rounds` transfers in transactions over a pool of 4; the total must balance.
void run_thread_workload(cpg::pool& pool, const std::string& table) {
    {
        auto l = pool.acquire();
        l->exec("DROP TABLE IF EXISTS " + table);
        l->exec("CREATE TABLE " + table + " (id int PRIMARY KEY, balance int NOT NULL)");
        l->exec("INSERT INTO " + table + " SELECT g, 1000 FROM generate_series(1, 16) g");
    }
    constexpr int threads = 16, rounds = 25;
    // Catch2's assertion macros are not thread-safe: workers count and record, the test thread checks.
    std::atomic<int> done{0}, failures{0};
    std::mutex m;
    std::vector<std::string> errors;
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&, t] {
            for (int i = 0; i < rounds; ++i) {
                try {
                    auto l = pool.acquire();
                    // Lock rows in id order so that concurrent transfers cannot deadlock.
                    const int a = t + 1, b = (t + 1 + i) % threads + 1;
                    l->exec("BEGIN");
                    l->exec("SELECT id FROM " + table + " WHERE id IN ($1, $2) ORDER BY id FOR UPDATE", a, b);
                    l->exec("UPDATE " + table + " SET balance = balance - 1 WHERE id = $1", a);
                    l->exec("UPDATE " + table + " SET balance = balance + 1 WHERE id = $1", b);
                    l->exec("COMMIT");
                    if (scalar(*l, "SELECT 1") == "1") ++done;
                } catch (const std::exception& e) {
                    ++failures;
                    std::lock_guard lock(m);
                    errors.emplace_back(e.what());
                }
            }
        });
    }
    for (auto& t : ts) t.join();
    for (const auto& e : errors) UNSCOPED_INFO(e);
    CHECK(failures == 0);
    CHECK(done == threads * rounds);
    auto l = pool.acquire();
    CHECK(scalar(*l, "SELECT sum(balance) FROM " + table) == "16000");
    l->exec("DROP TABLE " + table);
}

}  // namespace

TEST_CASE("16 threads run queries and transactions through a pool of 4", "[pg][pool][threads]") {
    cpg::pool pool(cpg::factory(conninfo_with("application_name=" + unique_app("threads"))), small_pool(4));
    run_thread_workload(pool, unique_app("accounts"));
    const auto s = pool.stats();
    CHECK(s.open <= 4);
    CHECK(s.created <= 4);
    CHECK(s.acquired >= 16 * 25);
}

TEST_CASE("16 coroutines run queries through a pool of 4 without blocking the io thread", "[pg][pool][async]") {
    asio::io_context io;
    // The pool does its background work on its own thread; the coroutines run on io, and each
    // acquire completes on io (the handler's executor).
    cpg::pool pool(cpg::factory(conninfo_with("application_name=" + unique_app("coro"))), small_pool(4));
    constexpr int coroutines = 16, rounds = 20;
    int ok = 0, failures = 0, in_flight = 0, max_in_flight = 0;
    for (int c = 0; c < coroutines; ++c) {
        asio::co_spawn(
            io,
            [&, c]() -> asio::awaitable<void> {
                auto ex = co_await asio::this_coro::executor;
                for (int i = 0; i < rounds; ++i) {
                    auto lease = co_await pool.async_acquire(asio::use_awaitable);
                    max_in_flight = std::max(max_in_flight, ++in_flight);
                    cpg::params p{std::to_string(c), std::to_string(i)};
                    // pg_sleep makes the queries overlap, so the pool really is shared.
                    auto r = co_await cpg::async_exec(
                        ex, *lease, std::string("SELECT $1::int * 1000 + $2::int, pg_sleep(0.002)"), std::move(p),
                        asio::use_awaitable);
                    --in_flight;
                    if (cpg::result_ok(r.get()) && std::stoi(PQgetvalue(r.get(), 0, 0)) == c * 1000 + i) {
                        ++ok;
                    } else {
                        ++failures;
                    }
                }
            },
            [&](std::exception_ptr e) {
                if (e) ++failures;
            });
    }
    io.run();
    CHECK(failures == 0);
    CHECK(ok == coroutines * rounds);
    // Several queries were in flight at once on the single io thread: nothing blocked it.
    CHECK(max_in_flight > 1);
    CHECK(max_in_flight <= 4);
    CHECK(pool.stats().open <= 4);
}

TEST_CASE("a connection returned dirty comes back clean to the next user", "[pg][pool][reset]") {
    // One connection, so the next user gets the very same backend.
    cpg::pool pool(cpg::factory(conninfo_with("application_name=" + unique_app("dirty"))), small_pool(1));
    std::string pid;
    {
        auto l = pool.acquire();
        pid = scalar(*l, "SELECT pg_backend_pid()");
        l->exec("CREATE TEMP TABLE t_dirty(x int)");
    }
    {
        auto l = pool.acquire();
        PGconn* n = l->native_handle();
        SECTION("mid-transaction") {
            l->exec("BEGIN");
            l->exec("INSERT INTO t_dirty VALUES (1)");
        }
        SECTION("in a failed transaction") {
            l->exec("BEGIN");
            CHECK_THROWS(l->exec("SELECT 1/0"));
        }
        SECTION("with an unread result") {
            REQUIRE(PQsendQuery(n, "SELECT generate_series(1, 100000)") == 1);
        }
        SECTION("with a query still running") {
            l->exec("BEGIN");
            l->exec("INSERT INTO t_dirty VALUES (1)");
            REQUIRE(PQsendQuery(n, "SELECT pg_sleep(60)") == 1);
        }
    }
    auto l = pool.acquire();
    CHECK(PQtransactionStatus(l->native_handle()) == PQTRANS_IDLE);
    CHECK(scalar(*l, "SELECT pg_backend_pid()") == pid);
    CHECK(scalar(*l, "SELECT count(*) FROM t_dirty") == "0");
    const auto s = pool.stats();
    CHECK(s.closed_for(connpool::close_reason::reset_failed) == 0);
    CHECK(s.created == 1);
}

TEST_CASE("killing every idle pooled backend loses no request and no slot", "[pg][pool][terminate]") {
    const std::string app = unique_app("kill_idle");
    auto o = small_pool(4, 4);
    // Ping every connection that sat idle at all, so that a dead one is never handed out.
    o.validation = connpool::validation_mode::always;
    // The pool trusts a connection opened less than validation_idle_threshold ago and never leased;
    // these were killed right after they opened, so validate regardless of age.
    o.validation_idle_threshold = 0ms;
    cpg::pool pool(cpg::factory(conninfo_with("application_name=" + app)), o);
    REQUIRE(eventually([&] { return count_backends(app) == 4; }, 10s));

    CHECK(terminate_backends(app) == 4);
    REQUIRE(eventually([&] { return count_backends(app) == 0; }, 5s));

    std::atomic<int> failures{0};
    std::mutex m;
    std::vector<std::string> errors;
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&] {
            try {
                auto l = pool.acquire();
                l->exec("SELECT 1");
            } catch (const std::exception& e) {
                ++failures;
                std::lock_guard lock(m);
                errors.emplace_back(e.what());
            }
        });
    }
    for (auto& t : ts) t.join();
    for (const auto& e : errors) UNSCOPED_INFO(e);
    CHECK(failures == 0);
    // The pool replaced them and still has all four slots.
    CHECK(eventually([&] { return count_backends(app) == 4 && pool.stats().open == 4; }, 10s));
    CHECK(pool.stats().open <= 4);
}

TEST_CASE("killing every leased backend fails only the requests in flight", "[pg][pool][terminate]") {
    const std::string app = unique_app("kill_leased");
    cpg::pool pool(cpg::factory(conninfo_with("application_name=" + app)), small_pool(4, 4));
    {
        std::vector<cpg::pool::lease_type> leases;
        for (int i = 0; i < 4; ++i) leases.push_back(pool.acquire());
        CHECK(terminate_backends(app) == 4);
        int lost = 0;
        for (auto& l : leases) {
            // Each in-flight request fails with a lost connection, never with a hang.
            try {
                l->exec("SELECT 1");
            } catch (const cpg::sql_error& e) {
                if (e.connection_lost()) ++lost;
            }
            CHECK(l->is_broken());
        }
        CHECK(lost == 4);
    }
    const auto s = pool.stats();
    CHECK(s.closed_for(connpool::close_reason::broken) == 4);
    // Every later request succeeds, on new backends, and no slot was lost.
    for (int i = 0; i < 8; ++i) {
        auto l = pool.acquire();
        CHECK(scalar(*l, "SELECT 1") == "1");
    }
    CHECK(eventually([&] { return count_backends(app) == 4 && pool.stats().open == 4; }, 10s));
}

TEST_CASE("a wrong password fails acquire at once with the authentication error", "[pg][pool][auth]") {
    const std::string secret = "Wr0ng-" + unique_app("pool_pw");
    auto o = small_pool(2, 0);
    o.acquire_timeout = 30s;  // "at once": the acquire must not sit out this timeout
    cpg::pool pool(cpg::factory(conninfo_with("password=" + secret)), o);
    auto fut = std::async(std::launch::async, [&] {
        error_code ec;
        error_info diag;
        auto l = pool.acquire(ec, diag);
        return std::make_tuple(ec, diag, static_cast<bool>(l));
    });
    // Bounded wait so that a hang fails the test instead of blocking it; 30 s would be the timeout.
    REQUIRE(fut.wait_for(15s) == std::future_status::ready);
    auto [ec, diag, got] = fut.get();
    CHECK_FALSE(got);
    CHECK(ec == errc::connect_failed);
    CHECK_THAT(diag.message, Catch::Matchers::Contains("password authentication failed"));
    CHECK(diag.message.find(secret) == std::string::npos);
    const auto s = pool.stats();
    CHECK(s.connect_failures >= 1);
    CHECK_THAT(s.last_connect_error, Catch::Matchers::Contains("password authentication failed"));
    CHECK(s.last_connect_error.find(secret) == std::string::npos);
    // The throwing form carries the same message.
    try {
        (void)pool.acquire();
        FAIL("acquire did not throw");
    } catch (const connpool::error& e) {
        CHECK(std::string(e.what()).find(secret) == std::string::npos);
    }
}

TEST_CASE("against a server that never answers, connect and acquire timeouts hold, and the pool recovers",
          "[pg][pool][timeout]") {
    silent_listener hung;
    const std::string bad = "host=127.0.0.1 port=" + std::to_string(hung.port()) +
                            " user=app dbname=connpool_test sslmode=disable password=" + env().password();
    std::mutex m;
    std::string target = bad;
    cpg::factory f([&] {
        std::lock_guard lock(m);
        return target;
    });
    auto o = small_pool(2, 0);
    o.connect_timeout = 300ms;
    o.acquire_timeout = 1s;
    cpg::pool pool(f, o);

    for (int i = 0; i < 3; ++i) {
        auto fut = std::async(std::launch::async, [&] {
            error_code ec;
            error_info diag;
            auto l = pool.acquire(ec, diag);
            return std::make_tuple(ec, diag, static_cast<bool>(l));
        });
        // Far above acquire_timeout: only a hang can miss it.
        REQUIRE(fut.wait_for(15s) == std::future_status::ready);
        auto [ec, diag, got] = fut.get();
        CHECK_FALSE(got);
        INFO(diag.message);
        CHECK((ec == errc::connect_timeout || ec == errc::acquire_timeout || ec == errc::connect_failed));
    }
    CHECK(pool.stats().connect_failures >= 1);
    CHECK(pool.stats().open == 0);

    {
        std::lock_guard lock(m);
        target = env().conninfo();
    }
    bool recovered = eventually(
        [&] {
            error_code ec;
            auto l = pool.acquire(ec);
            return !ec && l && scalar(*l, "SELECT 1") == "1";
        },
        15s);
    CHECK(recovered);
}

TEST_CASE("the concurrent workload runs through PgBouncer in transaction mode", "[pg][pool][pgbouncer]") {
    cpg::factory f(env().bouncer_conninfo() + " application_name=" + unique_app("bouncer"),
                   fopts(cpg::reset_policy::rollback, "", true));
    cpg::pool pool(f, small_pool(4));
    run_thread_workload(pool, unique_app("bouncer_accounts"));
    // Parameterised queries use the unnamed statement, which transaction pooling allows.
    auto l = pool.acquire();
    CHECK(scalar(*l, "SELECT 1") == "1");
    auto r = l->exec("SELECT $1::text || $2::text", "con", "npool");
    CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "connpool");
}

TEST_CASE("a pool on a two-host conninfo whose first host is down uses the second", "[pg][pool][failover]") {
    const std::string conninfo = "host=127.0.0.1,127.0.0.1 port=" + std::to_string(closed_port()) + "," +
                                 env().port() + " user=app dbname=connpool_test password=" + env().password() +
                                 " target_session_attrs=read-write sslmode=disable";
    asio::io_context io;
    cpg::pool pool(cpg::factory(conninfo), small_pool(2));
    std::string port;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto l = co_await pool.async_acquire(asio::use_awaitable);
            port = PQport(l->native_handle());
        },
        asio::detached);
    io.run();
    CHECK(port == env().port());
    auto l = pool.acquire();
    CHECK(std::string(PQport(l->native_handle())) == env().port());
}
