// connpool::mysql::pool against a real MariaDB: concurrency, clean returns, killed and
// restarted servers, bad credentials, a silent server, TLS. No assertion here is about
// speed: waits for states the pool reaches by itself are bounded polls, and the only
// durations checked are hang bounds far above the configured timeouts.
#include "connpool_catch.hpp"
#include "mysql/mysql_env.hpp"

#include <connpool/mysql.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace asio = boost::asio;
namespace mysql = connpool::mysql;
using connpool::close_reason;
using connpool::errc;
using connpool_test::mysql::eventually;
using connpool_test::mysql::shared_server;

namespace {

connpool::options pool_options(std::size_t max_size) {
    connpool::options o;
    o.max_size = max_size;
    o.acquire_timeout = 20s;
    o.connect_timeout = 5s;
    o.ping_timeout = 2s;
    // Several tests hold every lease of the pool on one thread on purpose.
    o.detect_nested_acquire = false;
    return o;
}

std::string in_list(const std::vector<unsigned long>& ids) {
    std::string s;
    for (auto id : ids) s += (s.empty() ? "" : ",") + std::to_string(id);
    return s;
}

// How many of these session ids the server still has.
int sessions_alive(const connpool_test::mysql::server_facts& srv, const std::vector<unsigned long>& ids) {
    return std::stoi(srv.admin("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE ID IN (" + in_list(ids) +
                               ")"));
}

}  // namespace

TEST_CASE("16 threads run queries through one pool at once", "[mysql][pool][concurrency]") {
    constexpr int threads = 16, rounds = 40;
    constexpr std::size_t max_size = 6;
    mysql::pool pool(mysql::factory(shared_server().tcp()), pool_options(max_size));

    std::atomic<int> ok{0}, wrong{0}, failed{0};
    std::mutex m;
    std::set<std::string> sessions;
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&, t] {
            for (int i = 0; i < rounds; ++i) {
                try {
                    auto lease = pool.acquire();
                    const std::string tag = std::to_string(t * 1000 + i);
                    auto r = lease->query("SELECT CONNECTION_ID(), " + tag + ", SLEEP(0.001)");
                    if (r.size() == 1 && r[0][1] == tag) {
                        ++ok;
                        std::lock_guard lock(m);
                        sessions.insert(*r[0][0]);
                    } else {
                        ++wrong;
                    }
                } catch (const std::exception& e) {
                    ++failed;
                    std::lock_guard lock(m);
                    UNSCOPED_INFO(e.what());
                }
            }
        });
    }
    for (auto& w : workers) w.join();

    CHECK(failed == 0);
    CHECK(wrong == 0);
    CHECK(ok == threads * rounds);
    CHECK(sessions.size() <= max_size);
    const auto st = pool.stats();
    CHECK(st.in_use == 0);
    CHECK(st.open <= max_size);
    CHECK(st.acquired == static_cast<std::uint64_t>(threads * rounds));
}

TEST_CASE("16 coroutines run queries through one pool at once", "[mysql][pool][concurrency][async]") {
    constexpr int coroutines = 16, rounds = 25;
    constexpr std::size_t max_size = 5;
    asio::io_context io;
    mysql::pool pool(io.get_executor(), mysql::factory(shared_server().tcp()), pool_options(max_size));

    std::atomic<int> ok{0}, wrong{0}, done{0};
    std::mutex m;
    std::vector<std::string> errors;
    for (int c = 0; c < coroutines; ++c) {
        asio::co_spawn(
            io,
            [&, c]() -> asio::awaitable<void> {
                for (int i = 0; i < rounds; ++i) {
                    auto lease = co_await pool.async_acquire(asio::use_awaitable);
                    const std::string tag = std::to_string(c * 1000 + i);
                    // The C API call blocks this io thread briefly; the other threads serve the rest.
                    if (lease->query_value("SELECT " + tag) == tag) ++ok;
                    else ++wrong;
                }
            },
            [&](std::exception_ptr e) {
                if (e) {
                    std::lock_guard lock(m);
                    try {
                        std::rethrow_exception(e);
                    } catch (const std::exception& x) {
                        errors.push_back(x.what());
                    }
                }
                // The pool's own timers keep io busy: close it once every coroutine is done.
                if (++done == coroutines) pool.close();
            });
    }
    std::atomic<int> returned{0};
    std::vector<std::thread> runners;
    for (int i = 0; i < 4; ++i) runners.emplace_back([&] {
        io.run();
        ++returned;
    });
    // The docs' promise: run() returns once the pool is closed. Checked with a bound, so
    // that a pool that keeps io busy fails this test instead of hanging it.
    CHECK(eventually([&] { return done == coroutines; }, std::chrono::seconds(120)));
    const bool run_returned = eventually([&] { return returned == 4; }, std::chrono::seconds(30));
    CHECK(run_returned);
    if (!run_returned) io.stop();
    for (auto& r : runners) r.join();

    INFO((errors.empty() ? std::string() : errors.front()));
    CHECK(errors.empty());
    CHECK(wrong == 0);
    CHECK(ok == coroutines * rounds);
    CHECK(pool.stats().acquired == static_cast<std::uint64_t>(coroutines * rounds));
}

TEST_CASE("a connection returned dirty comes back clean", "[mysql][pool][reset]") {
    // One connection, so the next lease gets the very session the last one dirtied.
    mysql::pool pool(mysql::factory(shared_server().tcp(), mysql::reset_policy::reset_connection),
                     pool_options(1));
    std::string session;
    {
        auto lease = pool.acquire();
        lease->execute("CREATE TABLE IF NOT EXISTS dirty_probe (v INT) ENGINE=InnoDB");
        session = *lease->query_value("SELECT CONNECTION_ID()");
    }
    const int rows_before = std::stoi(*pool.acquire()->query_value("SELECT COUNT(*) FROM dirty_probe"));

    SECTION("mid-transaction") {
        {
            auto lease = pool.acquire();
            lease->execute("START TRANSACTION");
            lease->execute("INSERT INTO dirty_probe VALUES (1)");
        }
        auto lease = pool.acquire();
        CHECK(lease->query_value("SELECT CONNECTION_ID()") == session);
        CHECK(lease->query_value("SELECT @@in_transaction") == "0");
        CHECK(std::stoi(*lease->query_value("SELECT COUNT(*) FROM dirty_probe")) == rows_before);
    }
    SECTION("with a user variable") {
        pool.acquire()->execute("SET @left_behind = 'secret'");
        auto lease = pool.acquire();
        CHECK(lease->query_value("SELECT CONNECTION_ID()") == session);
        CHECK_FALSE(lease->query_value("SELECT @left_behind").has_value());
    }
    SECTION("with a temporary table") {
        pool.acquire()->execute("CREATE TEMPORARY TABLE left_behind (v INT)");
        auto lease = pool.acquire();
        CHECK(lease->query_value("SELECT CONNECTION_ID()") == session);
        connpool::error_info err;
        CHECK_FALSE(lease->execute("SELECT * FROM left_behind", err));
        CHECK(err.message.find("[1146]") != std::string::npos);
        CHECK_FALSE(lease->broken());  // an SQL error, not a lost connection
    }
    CHECK(pool.stats().created == 1);
}

TEST_CASE("rollback_only ends the transaction and keeps the session's variables", "[mysql][pool][reset]") {
    mysql::pool pool(mysql::factory(shared_server().tcp(), mysql::reset_policy::rollback_only), pool_options(1));
    {
        auto lease = pool.acquire();
        lease->execute("SET @kept = 'yes'");
        lease->execute("START TRANSACTION");
    }
    auto lease = pool.acquire();
    CHECK(lease->query_value("SELECT @@in_transaction") == "0");
    CHECK(lease->query_value("SELECT @kept") == "yes");
}

TEST_CASE("KILL of every idle pooled connection: the pool replaces them and keeps every slot",
          "[mysql][pool][kill]") {
    const auto& srv = shared_server();
    constexpr std::size_t size = 4;
    auto opts = pool_options(size);
    opts.min_idle = size;
    opts.validation = GENERATE(connpool::validation_mode::always, connpool::validation_mode::when_idle);
    opts.validation_idle_threshold = 0ms;
    mysql::pool pool(mysql::factory(srv.tcp()), opts);
    REQUIRE(eventually([&] { return pool.stats().idle == size; }));

    std::vector<unsigned long> killed;
    {
        std::vector<mysql::pool::lease_type> leases;
        for (std::size_t i = 0; i < size; ++i) leases.push_back(pool.acquire());
        for (auto& l : leases) killed.push_back(l->thread_id());
    }
    for (auto id : killed) srv.admin("KILL " + std::to_string(id));
    REQUIRE(eventually([&] { return sessions_alive(srv, killed) == 0; }));

    // Every slot can be leased at once, and each lease works on a new session.
    std::vector<mysql::pool::lease_type> leases;
    for (std::size_t i = 0; i < size; ++i) leases.push_back(pool.acquire());
    for (auto& l : leases) {
        connpool::error_info err;
        auto id = l->query_value("SELECT CONNECTION_ID()", err);
        INFO(err.message);
        REQUIRE(id.has_value());
        CHECK(std::find(killed.begin(), killed.end(), std::stoul(*id)) == killed.end());
    }
    // Each dead session was caught either by housekeeping's probe or by the ping before a
    // hand-out, and none was handed out.
    const auto st = pool.stats();
    CHECK(st.closed_for(close_reason::validation_failed) + st.closed_for(close_reason::broken) == size);
    leases.clear();
    CHECK(eventually([&] {
        auto st = pool.stats();
        return st.open == size && st.idle == size;
    }));
}

TEST_CASE("KILL of every leased connection: only the in-flight queries fail", "[mysql][pool][kill]") {
    const auto& srv = shared_server();
    constexpr std::size_t size = 4;
    auto opts = pool_options(size);
    // No ping on acquire: what saves the next caller is is_broken() on return.
    opts.validation = connpool::validation_mode::optimistic;
    mysql::pool pool(mysql::factory(srv.tcp()), opts);

    std::atomic<int> failed_connection_level{0}, other{0};
    std::mutex m;
    std::vector<unsigned long> ids;
    std::vector<std::thread> in_flight;
    for (std::size_t i = 0; i < size; ++i) {
        in_flight.emplace_back([&] {
            auto lease = pool.acquire();
            {
                std::lock_guard lock(m);
                ids.push_back(lease->thread_id());
            }
            connpool::error_info err;
            // Killed while the server runs it.
            if (!lease->execute("SELECT SLEEP(60)", err) &&
                mysql::is_connection_error(static_cast<unsigned>(err.code.value())) && lease->broken()) {
                ++failed_connection_level;
            } else {
                ++other;
            }
        });
    }
    REQUIRE(eventually([&] {
        std::lock_guard lock(m);
        return ids.size() == size &&
               srv.admin("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(60)%' "
                         "AND ID IN (" + in_list(ids) + ")") == std::to_string(size);
    }));
    for (auto id : ids) srv.admin("KILL " + std::to_string(id));
    for (auto& t : in_flight) t.join();
    CHECK(failed_connection_level == static_cast<int>(size));
    CHECK(other == 0);
    CHECK(eventually([&] { return pool.stats().closed_for(close_reason::broken) == size; }));

    // The next requests all succeed, on new sessions, with every slot usable at once.
    std::vector<mysql::pool::lease_type> leases;
    for (std::size_t i = 0; i < size; ++i) leases.push_back(pool.acquire());
    for (auto& l : leases) {
        auto id = std::stoul(*l->query_value("SELECT CONNECTION_ID()"));
        CHECK(std::find(ids.begin(), ids.end(), id) == ids.end());
    }
    CHECK(pool.stats().open == size);
}

TEST_CASE("a server restart under load: no acquire hangs, and the pool refills by itself",
          "[mysql][pool][restart]") {
    connpool_test::mysql::private_server srv;
    constexpr std::size_t size = 4;
    auto opts = pool_options(size);
    opts.min_idle = 2;
    opts.acquire_timeout = 2s;
    opts.connect_timeout = 1s;
    opts.ping_timeout = 1s;
    opts.backoff_max = 500ms;
    opts.validation_idle_threshold = 0ms;
    mysql::pool pool(mysql::factory(srv.facts().tcp()), opts);

    std::atomic<bool> stop{false};
    std::atomic<long> ok{0}, failed{0};
    std::atomic<long long> longest_acquire_ms{0};
    std::vector<std::thread> load;
    for (int t = 0; t < 8; ++t) {
        load.emplace_back([&] {
            while (!stop) {
                const auto t0 = std::chrono::steady_clock::now();
                connpool::error_code ec;
                auto lease = pool.acquire(ec);
                const long long ms =
                    std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
                for (auto prev = longest_acquire_ms.load(); ms > prev && !longest_acquire_ms.compare_exchange_weak(prev, ms);) {
                }
                connpool::error_info err;
                if (lease && lease->query_value("SELECT 1", err) == "1") ++ok;
                else ++failed;
                if (!lease) std::this_thread::sleep_for(10ms);
            }
        });
    }
    REQUIRE(eventually([&] { return ok > 100; }));
    const auto created_before = pool.stats().created;
    srv.restart(1s);
    const long ok_after_restart = ok.load();
    // Load goes on succeeding against the new server process, without anyone's help.
    CHECK(eventually([&] { return ok > ok_after_restart + 100; }, 60s));
    stop = true;
    for (auto& t : load) t.join();

    // A hang bound, not a speed check: acquire_timeout plus a ping, with a wide margin.
    CHECK(longest_acquire_ms.load() < std::chrono::milliseconds(opts.acquire_timeout + opts.ping_timeout + 10s).count());
    CHECK(pool.stats().created > created_before);
    CHECK(eventually([&] {
        auto st = pool.stats();
        return st.in_use == 0 && st.idle >= opts.min_idle;
    }));
    // Every slot works on the new server.
    std::vector<mysql::pool::lease_type> leases;
    for (std::size_t i = 0; i < size; ++i) leases.push_back(pool.acquire());
    for (auto& l : leases) CHECK(l->query_value("SELECT 1") == "1");
}

TEST_CASE("a wrong password fails at once with the server's message, and the password appears nowhere",
          "[mysql][pool][errors]") {
    auto conn = shared_server().tcp();
    conn.password = "wrong-Secret-91c3d";
    std::mutex m;
    std::vector<std::string> hook_messages;
    connpool::hooks h;
    h.on_connect = [&](const connpool::connect_event& e) {
        std::lock_guard lock(m);
        hook_messages.push_back(e.error.message);
    };
    auto opts = pool_options(2);
    opts.acquire_timeout = 60s;  // "at once": the failure must come from the connect, not this
    mysql::pool pool(mysql::factory(conn), opts, h);

    connpool::error_code ec;
    connpool::error_info diag;
    auto lease = pool.acquire(ec, diag);
    CHECK_FALSE(lease);
    CHECK(ec == errc::connect_failed);
    CHECK(diag.message.find("[1045]") != std::string::npos);
    CHECK(diag.message.find("Access denied") != std::string::npos);
    CHECK(diag.message.find(conn.password) == std::string::npos);

    try {
        (void)pool.acquire();
        FAIL("acquire succeeded with a wrong password");
    } catch (const connpool::error& e) {
        CHECK(e.code() == errc::connect_failed);
        CHECK(std::string(e.what()).find("[1045]") != std::string::npos);
        CHECK(std::string(e.what()).find(conn.password) == std::string::npos);
    }

    const auto st = pool.stats();
    CHECK(st.connect_failures >= 1);
    CHECK(st.timeouts == 0);
    CHECK(st.last_connect_error.find("[1045]") != std::string::npos);
    CHECK(st.last_connect_error.find(conn.password) == std::string::npos);
    std::lock_guard lock(m);
    REQUIRE_FALSE(hook_messages.empty());
    for (const auto& msg : hook_messages) CHECK(msg.find(conn.password) == std::string::npos);
}

TEST_CASE("a listener that accepts and never answers: connect and acquire timeouts hold", "[mysql][pool][timeout]") {
    connpool_test::mysql::silent_listener silent;
    auto conn = shared_server().tcp();
    conn.port = silent.port();
    auto opts = pool_options(2);
    opts.connect_timeout = 500ms;
    opts.acquire_timeout = 1500ms;

    SECTION("blocking acquire") {
        mysql::pool pool(mysql::factory(conn), opts);
        const auto t0 = std::chrono::steady_clock::now();
        connpool::error_code ec;
        connpool::error_info diag;
        auto lease = pool.acquire(ec, diag);
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK_FALSE(lease);
        INFO(diag.message);
        CHECK((ec == errc::connect_timeout || ec == errc::acquire_timeout));
        CHECK(took < opts.acquire_timeout + 10s);  // a hang bound
        CHECK(pool.stats().created == 0);
    }
    SECTION("async acquire") {
        asio::io_context io;
        mysql::pool pool(io.get_executor(), mysql::factory(conn), opts);
        connpool::error_code ec;
        bool called = false;
        pool.async_acquire([&](connpool::error_code e, mysql::pool::lease_type l) {
            called = true;
            ec = e;
            CHECK_FALSE(l);
            pool.close();
        });
        io.run_for(opts.acquire_timeout + 10s);  // a hang bound
        CHECK(called);
        CHECK((ec == errc::connect_timeout || ec == errc::acquire_timeout));
    }
}

TEST_CASE("TLS required: the pool connects with the harness CA", "[mysql][pool][tls]") {
    mysql::pool pool(mysql::factory(shared_server().tls()), pool_options(2));
    auto lease = pool.acquire();
    auto r = lease->query("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
    REQUIRE(r.size() == 1);
    CHECK_FALSE(r[0][1].value_or("").empty());
    CHECK(lease->query_value("SELECT CURRENT_USER()")->rfind(shared_server()["CONNPOOL_MYSQL_TLS_USER"] + "@", 0) == 0);
}
