// connpool::pg::factory and connection against a real PostgreSQL 15, without a pool: connect
// (blocking and async), errors, TLS, multi-host, ping, broken detection and reset.
#include "connpool_catch.hpp"
#include "pg_test_util.hpp"

#include <connpool/pg/async.hpp>
#include <connpool/pg/connection.hpp>
#include <connpool/pg/factory.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <future>
#include <optional>
#include <string>

namespace asio = boost::asio;
namespace cpg = connpool::pg;
using namespace connpool_test::pg;
using connpool::connect_request;
using connpool::errc;
using connpool::error_info;

namespace {

const connect_request quick{std::chrono::milliseconds(5000), 0};

// Runs factory.async_connect on a fresh io_context and returns what the handler got. Also checks
// that the handler ran exactly once.
std::pair<error_info, std::optional<cpg::connection>> async_connect(cpg::factory& f, connect_request r = quick) {
    asio::io_context io;
    int calls = 0;
    std::pair<error_info, std::optional<cpg::connection>> out;
    f.async_connect(r, io.get_executor(), [&](error_info e, std::optional<cpg::connection> c) {
        ++calls;
        out = {std::move(e), std::move(c)};
    });
    io.run();
    REQUIRE(calls == 1);
    return out;
}

std::optional<cpg::connection> connect_ok(cpg::factory& f) {
    error_info e;
    auto c = f.connect(quick, e);
    INFO(e.message);
    REQUIRE(c);
    REQUIRE_FALSE(e);
    return c;
}

}  // namespace

TEST_CASE("blocking and async connect both open working connections", "[pg][connect]") {
    cpg::factory f(env().conninfo());
    SECTION("blocking") {
        auto c = connect_ok(f);
        CHECK(scalar(*c, "SELECT 40 + 2") == "42");
        CHECK(PQstatus(c->native_handle()) == CONNECTION_OK);
    }
    SECTION("async") {
        auto [e, c] = async_connect(f);
        INFO(e.message);
        REQUIRE(c);
        CHECK_FALSE(e);
        CHECK(scalar(*c, "SELECT current_user") == "app");
    }
    SECTION("keywords") {
        cpg::keywords kw{{"host", env()["CONNPOOL_PG_SOCKET_DIR"]},
                         {"port", env().port()},
                         {"user", "app"},
                         {"dbname", "connpool_test"},
                         {"password", env().password()}};
        cpg::factory fk(kw);
        auto c = connect_ok(fk);
        CHECK(scalar(*c, "SELECT current_database()") == "connpool_test");
    }
}

TEST_CASE("the conninfo callable is asked on every connect", "[pg][connect]") {
    int asked = 0;
    cpg::factory f([&] {
        ++asked;
        return conninfo_with("application_name=rotation_" + std::to_string(asked));
    });
    auto a = connect_ok(f);
    auto b = connect_ok(f);
    CHECK(asked == 2);
    CHECK(scalar(*a, "SHOW application_name") == "rotation_1");
    CHECK(scalar(*b, "SHOW application_name") == "rotation_2");
}

TEST_CASE("a wrong password fails with the authentication error and no trace of the password", "[pg][auth]") {
    const std::string secret = "Wr0ng-Secret-" + unique_app("pw");
    cpg::factory f(conninfo_with("password=" + secret));
    SECTION("blocking") {
        error_info e;
        auto c = f.connect(quick, e);
        REQUIRE_FALSE(c);
        CHECK(e.code == errc::connect_failed);
        CHECK_THAT(e.message, Catch::Matchers::Contains("password authentication failed"));
        CHECK(e.message.find(secret) == std::string::npos);
    }
    SECTION("async") {
        auto [e, c] = async_connect(f);
        REQUIRE_FALSE(c);
        CHECK(e.code == errc::connect_failed);
        CHECK_THAT(e.message, Catch::Matchers::Contains("password authentication failed"));
        CHECK(e.message.find(secret) == std::string::npos);
    }
}

TEST_CASE("a malformed conninfo fails without echoing any part of it", "[pg][auth]") {
    const std::string secret = "S3cret-" + unique_app("malformed");
    cpg::factory f("host=127.0.0.1 password=" + secret + " port");
    error_info e;
    auto c = f.connect(quick, e);
    REQUIRE_FALSE(c);
    CHECK(e.code == errc::connect_failed);
    CHECK_THAT(e.message, Catch::Matchers::Contains("invalid PostgreSQL conninfo"));
    CHECK(e.message.find(secret) == std::string::npos);
    CHECK(e.message.find("127.0.0.1") == std::string::npos);
}

TEST_CASE("a password echoed by libpq is redacted", "[pg][auth]") {
    // libpq puts the socket path in its messages; a password that is also part of that path shows
    // that the factory replaces it wherever it appears.
    const std::string secret = "nosuchdir-" + unique_app("echo");
    cpg::factory f(cpg::keywords{{"host", "/tmp/" + secret}, {"password", secret}, {"user", "app"}});
    error_info e;
    auto c = f.connect(quick, e);
    REQUIRE_FALSE(c);
    CHECK(e.message.find(secret) == std::string::npos);
    CHECK_THAT(e.message, Catch::Matchers::Contains("********"));
}

TEST_CASE("sslmode=verify-full works with the test CA and fails clearly with another CA", "[pg][tls]") {
    const std::string base = "host=localhost hostaddr=127.0.0.1 port=" + env().port() +
                             " user=app dbname=connpool_test password=" + env().password() + " sslmode=verify-full";
    SECTION("the right CA") {
        cpg::factory f(base + " sslrootcert=" + env()["CONNPOOL_PG_CA"]);
        auto c = connect_ok(f);
        CHECK(PQsslInUse(c->native_handle()) == 1);
        CHECK(scalar(*c, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()") == "t");
        auto [e, ac] = async_connect(f);
        INFO(e.message);
        REQUIRE(ac);
        CHECK(PQsslInUse(ac->native_handle()) == 1);
    }
    SECTION("a wrong CA") {
        cpg::factory f(base + " sslrootcert=" + env()["CONNPOOL_PG_WRONG_CA"]);
        error_info e;
        REQUIRE_FALSE(f.connect(quick, e));
        CHECK(e.code == errc::connect_failed);
        CHECK_THAT(e.message, Catch::Matchers::Contains("certificate verify failed"));
        auto [ae, ac] = async_connect(f);
        REQUIRE_FALSE(ac);
        CHECK_THAT(ae.message, Catch::Matchers::Contains("certificate verify failed"));
    }
}

TEST_CASE("a two-host conninfo whose first host is down connects to the second", "[pg][failover]") {
    const std::string conninfo = "host=127.0.0.1,127.0.0.1 port=" + std::to_string(closed_port()) + "," +
                                 env().port() + " user=app dbname=connpool_test password=" + env().password() +
                                 " target_session_attrs=read-write sslmode=disable";
    cpg::factory f(conninfo);
    SECTION("blocking") {
        auto c = connect_ok(f);
        CHECK(std::string(PQport(c->native_handle())) == env().port());
        CHECK(scalar(*c, "SELECT 1") == "1");
    }
    SECTION("async: the socket changes between hosts") {
        auto [e, c] = async_connect(f);
        INFO(e.message);
        REQUIRE(c);
        CHECK(std::string(PQport(c->native_handle())) == env().port());
        CHECK(scalar(*c, "SELECT 1") == "1");
    }
}

TEST_CASE("a two-host conninfo whose first host is a read-only standby moves to the second on a new socket",
          "[pg][failover]") {
    read_only_server standby;
    const std::string conninfo = "host=127.0.0.1,127.0.0.1 port=" + std::to_string(standby.port()) + "," +
                                 env().port() + " user=app dbname=connpool_test password=" + env().password() +
                                 " target_session_attrs=read-write sslmode=disable";
    cpg::factory f(conninfo);
    SECTION("blocking") {
        auto c = connect_ok(f);
        CHECK(std::string(PQport(c->native_handle())) == env().port());
        CHECK(scalar(*c, "SELECT 1") == "1");
    }
    SECTION("async") {
        auto [e, c] = async_connect(f);
        INFO(e.message);
        REQUIRE(c);
        CHECK(std::string(PQport(c->native_handle())) == env().port());
        CHECK(scalar(*c, "SELECT 1") == "1");
    }
    // The standby was really tried first, so the connect did switch sockets.
    CHECK(standby.sessions() >= 1);
}

TEST_CASE("connect gives up at its timeout against a server that never answers", "[pg][timeout]") {
    silent_listener hung;
    cpg::factory f("host=127.0.0.1 port=" + std::to_string(hung.port()) + " user=app dbname=x sslmode=disable");
    const connect_request r{std::chrono::milliseconds(300), 0};
    SECTION("blocking") {
        // Run it on another thread so that a hang fails the test instead of blocking it forever.
        auto fut = std::async(std::launch::async, [&] {
            error_info e;
            auto c = f.connect(r, e);
            return std::make_pair(std::move(e), c.has_value());
        });
        REQUIRE(fut.wait_for(20s) == std::future_status::ready);
        auto [e, ok] = fut.get();
        CHECK_FALSE(ok);
        CHECK(e.code == errc::connect_timeout);
        CHECK_THAT(e.message, Catch::Matchers::Contains("timed out"));
    }
    SECTION("async") {
        auto fut = std::async(std::launch::async, [&] { return async_connect(f, r); });
        REQUIRE(fut.wait_for(20s) == std::future_status::ready);
        auto [e, c] = fut.get();
        CHECK_FALSE(c);
        CHECK(e.code == errc::connect_timeout);
    }
}

TEST_CASE("ping answers on a live connection and fails on a dead one", "[pg][ping]") {
    cpg::factory f(env().conninfo());
    auto c = connect_ok(f);
    error_info e;
    CHECK(f.ping(*c, 2s, e));
    CHECK_FALSE(e);
    const std::string pid = scalar(*c, "SELECT pg_backend_pid()");
    admin_query("SELECT pg_terminate_backend(" + pid + ")");
    // The server needs a moment to close the socket; ping must fail, not hang, either way.
    CHECK(eventually([&] { return !f.ping(*c, 2s, e); }, 5s));
    CHECK(e.code == errc::ping_failed);
    CHECK(f.is_broken(*c));
}

TEST_CASE("a fatal error marks the connection broken without any I/O", "[pg][broken]") {
    cpg::factory f(env().conninfo());
    auto c = connect_ok(f);
    CHECK_FALSE(f.is_broken(*c));
    SECTION("through the helpers") {
        auto r = c->try_exec("SELECT pg_terminate_backend(pg_backend_pid())");
        CHECK(cpg::sqlstate(r.get()) == "57P01");
        CHECK(c->saw_fatal_error());
        CHECK(f.is_broken(*c));
    }
    SECTION("through exec, which throws with connection_lost") {
        try {
            c->exec("SELECT pg_terminate_backend(pg_backend_pid())");
            FAIL("exec did not throw");
        } catch (const cpg::sql_error& e) {
            CHECK(e.sqlstate() == "57P01");
            CHECK(e.connection_lost());
        }
        CHECK(f.is_broken(*c));
    }
    SECTION("reported by code that calls libpq directly") {
        cpg::result r(PQexec(c->native_handle(), "SELECT pg_terminate_backend(pg_backend_pid())"));
        c->report(r.get());
        CHECK(f.is_broken(*c));
    }
    SECTION("an ordinary SQL error is not fatal") {
        auto r = c->try_exec("SELECT 1/0");
        CHECK(cpg::sqlstate(r.get()) == "22012");
        CHECK_FALSE(f.is_broken(*c));
    }
}

TEST_CASE("reset brings a dirty connection back to idle on the same backend", "[pg][reset]") {
    cpg::factory f(env().conninfo());
    auto c = connect_ok(f);
    const std::string pid = scalar(*c, "SELECT pg_backend_pid()");
    CHECK_FALSE(f.needs_reset(*c));
    PGconn* n = c->native_handle();

    SECTION("in a transaction: rolled back") {
        c->exec("CREATE TEMP TABLE IF NOT EXISTS t_reset(x int)");
        c->exec("BEGIN");
        c->exec("INSERT INTO t_reset VALUES (1)");
    }
    SECTION("in a failed transaction") {
        c->exec("BEGIN");
        CHECK_THROWS_AS(c->exec("SELECT 1/0"), cpg::sql_error);
        CHECK(PQtransactionStatus(n) == PQTRANS_INERROR);
    }
    SECTION("with results unread") {
        REQUIRE(PQsendQuery(n, "SELECT generate_series(1, 1000)") == 1);
    }
    SECTION("with a query still running: cancelled") {
        REQUIRE(PQsendQuery(n, "SELECT pg_sleep(60)") == 1);
    }
    SECTION("in a transaction with a query still running") {
        c->exec("BEGIN");
        REQUIRE(PQsendQuery(n, "SELECT pg_sleep(60)") == 1);
    }
    SECTION("left in non-blocking mode") {
        REQUIRE(PQsetnonblocking(n, 1) == 0);
    }

    CHECK(f.needs_reset(*c));
    error_info e;
    const bool reset_ok = f.reset(*c, e);
    INFO(e.message);
    REQUIRE(reset_ok);
    CHECK(PQtransactionStatus(n) == PQTRANS_IDLE);
    CHECK(PQisnonblocking(n) == 0);
    CHECK_FALSE(f.needs_reset(*c));
    CHECK_FALSE(f.is_broken(*c));
    CHECK(scalar(*c, "SELECT pg_backend_pid()") == pid);
    // Nothing of the rolled back transaction is visible.
    auto r = c->try_exec("SELECT count(*) FROM t_reset");
    if (cpg::result_ok(r.get())) CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "0");
}

TEST_CASE("reset policies: rollback keeps session state, discard_all and custom_sql clear it", "[pg][reset]") {
    SECTION("rollback: an idle connection needs no reset, so session settings survive") {
        cpg::factory f(env().conninfo());
        auto c = connect_ok(f);
        c->exec("SET statement_timeout = '7s'");
        CHECK_FALSE(f.needs_reset(*c));
        CHECK(scalar(*c, "SHOW statement_timeout") == "7s");
    }
    SECTION("discard_all: every return resets the session") {
        cpg::factory f(env().conninfo(), fopts(cpg::reset_policy::discard_all));
        auto c = connect_ok(f);
        c->exec("SET statement_timeout = '7s'");
        c->exec("CREATE TEMP TABLE t_discard(x int)");
        c->exec("BEGIN");
        CHECK(f.needs_reset(*c));
        error_info e;
        REQUIRE(f.reset(*c, e));
        CHECK(f.needs_reset(*c));  // a full reset runs on every return, even idle
        CHECK(scalar(*c, "SHOW statement_timeout") == "0");
        CHECK(scalar(*c, "SELECT count(*) FROM pg_class WHERE relname = 't_discard'") == "0");
    }
    SECTION("custom_sql") {
        cpg::factory f(env().conninfo(), fopts(cpg::reset_policy::custom_sql, "RESET ALL"));
        auto c = connect_ok(f);
        c->exec("SET statement_timeout = '7s'");
        error_info e;
        REQUIRE(f.reset(*c, e));
        CHECK(scalar(*c, "SHOW statement_timeout") == "0");
    }
    SECTION("a failing custom_sql fails the reset and does not leak the SQL") {
        cpg::factory f(env().conninfo(),
                       fopts(cpg::reset_policy::custom_sql, "SELECT no_such_function_xyz()"));
        auto c = connect_ok(f);
        error_info e;
        CHECK_FALSE(f.reset(*c, e));
        CHECK(e.code == errc::reset_failed);
        CHECK(f.is_broken(*c));
    }
}

TEST_CASE("factory options are validated", "[pg][options]") {
    CHECK_THROWS_AS(cpg::factory(env().conninfo(),
                                 fopts(cpg::reset_policy::discard_all, "", true)),
                    std::invalid_argument);
    CHECK_THROWS_AS(cpg::factory(env().conninfo(), fopts(cpg::reset_policy::custom_sql)), std::invalid_argument);
    CHECK_NOTHROW(cpg::factory(env().conninfo(), fopts(cpg::reset_policy::rollback, "", true)));
}

TEST_CASE("async_exec runs queries without blocking and records fatal errors", "[pg][async]") {
    cpg::factory f(env().conninfo());
    auto c = connect_ok(f);
    asio::io_context io;
    std::string answer, state, param_answer;
    bool broken_after = false;
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
            auto ex = co_await asio::this_coro::executor;
            auto r = co_await cpg::async_exec(ex, *c, std::string("SELECT 6 * 7"), asio::use_awaitable);
            answer = PQgetvalue(r.get(), 0, 0);
            cpg::params p{"20", "22"};
            r = co_await cpg::async_exec(ex, *c, std::string("SELECT $1::int + $2::int"), std::move(p),
                                         asio::use_awaitable);
            param_answer = PQgetvalue(r.get(), 0, 0);
            r = co_await cpg::async_exec(ex, *c, std::string("SELECT pg_terminate_backend(pg_backend_pid())"),
                                         asio::use_awaitable);
            state = std::string(cpg::sqlstate(r.get()));
            broken_after = c->is_broken();
        },
        asio::detached);
    io.run();
    CHECK(answer == "42");
    CHECK(param_answer == "42");
    CHECK(state == "57P01");
    CHECK(broken_after);
}
