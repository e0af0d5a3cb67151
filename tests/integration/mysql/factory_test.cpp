// connpool::mysql::factory and connection against a real MariaDB, without a pool: connect
// (blocking and Asio), errors, TLS, timeouts, ping, reset policies, broken detection.
#include "connpool_catch.hpp"
#include "mysql/mysql_connect.hpp"
#include "mysql/mysql_env.hpp"

#include <connpool/mysql/factory.hpp>

#include <boost/asio/io_context.hpp>

#include <chrono>
#include <mutex>
#include <optional>
#include <string>

using namespace std::chrono_literals;
namespace mysql = connpool::mysql;
using connpool_test::mysql::connect_or_fail;
using connpool_test::mysql::shared_server;

namespace {

const connpool::connect_request request{5s, 0};

#if CONNPOOL_MYSQL_NONBLOCKING
// Runs one async_connect on a fresh io_context and returns what the handler got.
std::pair<connpool::error_info, std::optional<mysql::connection>> async_connect(mysql::factory& f,
                                                                              connpool::connect_request r = request) {
    boost::asio::io_context io;
    std::pair<connpool::error_info, std::optional<mysql::connection>> out;
    int calls = 0;
    f.async_connect(r, io.get_executor(), [&](connpool::error_info e, std::optional<mysql::connection> c) {
        ++calls;
        out = {std::move(e), std::move(c)};
    });
    // The handler never runs inside async_connect itself.
    CHECK(calls == 0);
    io.run();
    CHECK(calls == 1);
    return out;
}
#endif

}  // namespace

TEST_CASE("blocking connect over TCP and over the Unix socket opens a working session", "[mysql][connect]") {
    auto opts = GENERATE(shared_server().tcp(), shared_server().socket());
    mysql::factory f(opts);
    auto c = connect_or_fail(f);
    CHECK(c.query_value("SELECT 40 + 2") == "42");
    CHECK(c.query_value("SELECT DATABASE()") == opts.database);
    CHECK(c.thread_id() != 0);
    CHECK_FALSE(f.is_broken(c));
}

#if CONNPOOL_MYSQL_NONBLOCKING
TEST_CASE("async_connect drives the non-blocking connect on the executor", "[mysql][connect][async]") {
    auto opts = GENERATE(shared_server().tcp(), shared_server().socket());
    mysql::factory f(opts);
    auto [err, c] = async_connect(f);
    INFO(err.message);
    REQUIRE(c.has_value());
    CHECK_FALSE(err);
    CHECK(c->query_value("SELECT CONNECTION_ID()") == std::to_string(c->thread_id()));
}
#else
TEST_CASE("without the non-blocking API the factory has no async_connect", "[mysql][connect]") {
    STATIC_REQUIRE_FALSE(connpool::detail::has_async_connect<mysql::factory>);
}
#endif

TEST_CASE("auto-reconnect is off: a lost session stays lost", "[mysql][connect]") {
    const auto& srv = shared_server();
    mysql::factory f(srv.tcp());
    auto c = connect_or_fail(f);
    c.execute("SET @mark = 1");
    srv.admin("KILL " + std::to_string(c.thread_id()));
    connpool::error_info err;
    CHECK_FALSE(c.execute("SELECT 1", err));
    // With MYSQL_OPT_RECONNECT the library would now open a new session and run this.
    CHECK_FALSE(c.query_value("SELECT @mark", err).has_value());
    CHECK(mysql::is_connection_error(static_cast<unsigned>(err.code.value())));
}

TEST_CASE("a wrong password fails with the server's message and never shows the password", "[mysql][errors]") {
    auto opts = shared_server().tcp();
    opts.password = "wrong-Secret-4e7f9a";
    mysql::factory f(opts);
    SECTION("blocking") {
        connpool::error_info err;
        CHECK_FALSE(f.connect(request, err).has_value());
        CHECK(err.code == connpool::errc::connect_failed);
        CHECK(err.message.find("[1045]") != std::string::npos);
        CHECK(err.message.find("Access denied") != std::string::npos);
        CHECK(err.message.find(opts.password) == std::string::npos);
    }
#if CONNPOOL_MYSQL_NONBLOCKING
    SECTION("async") {
        auto [err, c] = async_connect(f);
        CHECK_FALSE(c.has_value());
        CHECK(err.code == connpool::errc::connect_failed);
        CHECK(err.message.find("[1045]") != std::string::npos);
        CHECK(err.message.find(opts.password) == std::string::npos);
    }
#endif
}

TEST_CASE("the options callable is asked on every connect, so rotated passwords work", "[mysql][connect]") {
    const auto& srv = shared_server();
    const std::string user = "rot_" + std::to_string(::getpid());
    srv.admin("CREATE OR REPLACE USER '" + user + "'@'%' IDENTIFIED BY 'first-pw-1'");
    std::mutex m;
    std::string current = "first-pw-1";
    int asked = 0;
    mysql::factory f([&] {
        std::lock_guard lock(m);
        ++asked;
        auto o = srv.tcp();
        o.user = user;
        o.database.clear();
        o.password = current;
        return o;
    });
    connect_or_fail(f);
    srv.admin("ALTER USER '" + user + "'@'%' IDENTIFIED BY 'second-pw-2'");
    connpool::error_info err;
    CHECK_FALSE(f.connect(request, err).has_value());
    CHECK(err.message.find("[1045]") != std::string::npos);
    {
        std::lock_guard lock(m);
        current = "second-pw-2";
    }
    connect_or_fail(f);
#if CONNPOOL_MYSQL_NONBLOCKING
    auto [aerr, ac] = async_connect(f);
    CHECK(ac.has_value());
    CHECK(asked == 4);
#else
    CHECK(asked == 3);
#endif
    srv.admin("DROP USER '" + user + "'@'%'");
}

TEST_CASE("TLS: a required, verified connect succeeds with the harness CA", "[mysql][tls]") {
    mysql::factory f(shared_server().tls());
    SECTION("blocking") {
        auto c = connect_or_fail(f);
        auto cipher = c.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'");
        REQUIRE(cipher.size() == 1);
        CHECK_FALSE(cipher[0][1].value_or("").empty());
    }
#if CONNPOOL_MYSQL_NONBLOCKING
    SECTION("async") {
        auto [err, c] = async_connect(f);
        INFO(err.message);
        REQUIRE(c.has_value());
        CHECK_FALSE(c->query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")[0][1].value_or("").empty());
    }
#endif
}

TEST_CASE("TLS: the server refuses the TLS user in plaintext, and an unknown CA fails verification",
          "[mysql][tls]") {
    connpool::error_info err;
    SECTION("no TLS") {
        auto opts = shared_server().tls();
        opts.tls = {};
        mysql::factory f(opts);
        CHECK_FALSE(f.connect(request, err).has_value());
        CHECK(err.message.find("[1045]") != std::string::npos);
    }
    SECTION("verification without the CA") {
        auto opts = shared_server().tls();
        opts.tls.ca.clear();
        mysql::factory f(opts);
        CHECK_FALSE(f.connect(request, err).has_value());
        CHECK(err.message.find("[2026]") != std::string::npos);
    }
}

TEST_CASE("a listener that accepts and never answers: connects give up at their timeout", "[mysql][timeout]") {
    connpool_test::mysql::silent_listener silent;
    auto opts = shared_server().tcp();
    opts.port = silent.port();
    mysql::factory f(opts);
#if CONNPOOL_MYSQL_NONBLOCKING
    SECTION("async: errc::connect_timeout") {
        auto [err, c] = async_connect(f, {300ms, 0});
        CHECK_FALSE(c.has_value());
        CHECK(err.code == connpool::errc::connect_timeout);
        CHECK(err.message.find(opts.password) == std::string::npos);
    }
#endif
    SECTION("blocking: MYSQL_OPT_CONNECT_TIMEOUT") {
        connpool::error_info err;
        CHECK_FALSE(f.connect({1s, 0}, err).has_value());
        CHECK(err.code == connpool::errc::connect_timeout);
        CHECK(err.message.find("[2013]") != std::string::npos);
    }
}

TEST_CASE("a server that hangs in the middle of the TLS handshake: connects give up at their timeout",
          "[mysql][tls][timeout]") {
    connpool_test::mysql::tls_black_hole hole;
    auto opts = shared_server().tls();
    opts.port = hole.port();
    opts.tls.verify_server_cert = false;
    mysql::factory f(opts);
    SECTION("blocking") {
        connpool::error_info err;
        CHECK_FALSE(f.connect({1s, 0}, err).has_value());
        INFO(err.message);
        CHECK(err.code == connpool::errc::connect_timeout);
        CHECK(err.message.find("[2026]") != std::string::npos);
        CHECK(err.message.find(opts.password) == std::string::npos);
    }
#if CONNPOOL_MYSQL_NONBLOCKING
    SECTION("async: on the factory's threads, completed on the executor") {
        auto [err, c] = async_connect(f, {1s, 0});
        CHECK_FALSE(c.has_value());
        INFO(err.message);
        CHECK(err.code == connpool::errc::connect_timeout);
    }
#endif
    // The client got as far as asking for TLS: the hang was inside the handshake.
    CHECK(hole.tls_requests() >= 1);
}

TEST_CASE("ping answers on a live session and gives up on a frozen server", "[mysql][ping]") {
    connpool_test::mysql::private_server srv;
    auto opts = srv.facts().tcp();
#if !CONNPOOL_MYSQL_NONBLOCKING
    opts.read_timeout = 1s;  // what bounds a blocking mysql_ping
#endif
    mysql::factory f(opts);
    auto c = connect_or_fail(f);
    connpool::error_info err;
    CHECK(f.ping(c, 2s, err));
    CHECK_FALSE(c.used());  // a ping is not a use: no reset needed for it

    srv.freeze();
    CHECK_FALSE(f.ping(c, 300ms, err));
    CHECK(err.code == connpool::errc::ping_failed);
    CHECK(f.is_broken(c));
    srv.thaw();
}

TEST_CASE("a killed session is reported broken, and only then", "[mysql][broken]") {
    const auto& srv = shared_server();
    mysql::factory f(srv.tcp());
    auto c = connect_or_fail(f);
    connpool::error_info err;

    // An SQL error is not a connection error.
    CHECK_FALSE(c.execute("SELECT * FROM no_such_table_here", err));
    CHECK(err.code == mysql::make_error_code(1146u));
    CHECK(err.message.find("[1146]") != std::string::npos);
    CHECK_FALSE(f.is_broken(c));

    SECTION("through a helper") {
        srv.admin("KILL " + std::to_string(c.thread_id()));
        CHECK_FALSE(c.query("SELECT 1", err).has_value());
        CHECK(mysql::is_connection_error(static_cast<unsigned>(err.code.value())));
        CHECK(f.is_broken(c));
    }
    SECTION("through the C API and record_error") {
        srv.admin("KILL " + std::to_string(c.thread_id()));
        MYSQL* h = c.native_handle();
        REQUIRE(mysql_query(h, "SELECT 1") != 0);
        CHECK_FALSE(f.is_broken(c));  // not yet told
        auto e = c.record_error();
        CHECK(mysql::is_connection_error(static_cast<unsigned>(e.code.value())));
        CHECK(f.is_broken(c));
    }
    SECTION("ping") {
        srv.admin("KILL " + std::to_string(c.thread_id()));
        CHECK_FALSE(f.ping(c, 2s, err));
        CHECK(f.is_broken(c));
    }
}

TEST_CASE("an unread result leaves the session unusable, so it counts as broken", "[mysql][broken]") {
    mysql::factory f(shared_server().tcp());
    auto c = connect_or_fail(f);
    MYSQL* h = c.native_handle();
    REQUIRE(mysql_query(h, "SELECT 1 UNION SELECT 2") == 0);
    MYSQL_RES* r = mysql_use_result(h);
    REQUIRE(r != nullptr);
    CHECK(f.is_broken(c));
    while (mysql_fetch_row(r) != nullptr) {
    }
    mysql_free_result(r);
    CHECK_FALSE(f.is_broken(c));
}

TEST_CASE("reset_connection clears transaction, user variables and temporary tables", "[mysql][reset]") {
    auto opts = shared_server().tcp();
    opts.charset = "latin1";
    opts.init_commands = {"SET @from_init = 7"};
    mysql::factory f(opts, mysql::reset_policy::reset_connection);
    auto c = connect_or_fail(f);
    CHECK_FALSE(f.needs_reset(c));  // untouched: no round trip on return
    c.execute("CREATE TABLE IF NOT EXISTS reset_probe (v INT) ENGINE=InnoDB");
    c.execute("SET @left_behind = 1");
    c.execute("CREATE TEMPORARY TABLE scratch (v INT)");
    c.execute("START TRANSACTION");
    c.execute("INSERT INTO reset_probe VALUES (1)");
    const std::string id = *c.query_value("SELECT CONNECTION_ID()");
    const std::string before = *c.query_value("SELECT COUNT(*) FROM reset_probe");
    REQUIRE(f.needs_reset(c));

    connpool::error_info err;
    REQUIRE(f.reset(c, err));
    CHECK_FALSE(f.needs_reset(c));

    CHECK(c.query_value("SELECT CONNECTION_ID()") == id);  // the same session, cleaned
    CHECK(c.query_value("SELECT @@in_transaction") == "0");
    CHECK_FALSE(c.query_value("SELECT @left_behind").has_value());
    CHECK_FALSE(c.execute("SELECT * FROM scratch", err));
    CHECK(err.message.find("[1146]") != std::string::npos);
    CHECK(std::stoi(*c.query_value("SELECT COUNT(*) FROM reset_probe")) == std::stoi(before) - 1);
    // What the factory configured survives the reset.
    CHECK(c.query_value("SELECT @@character_set_client") == "latin1");
    CHECK(c.query_value("SELECT @from_init") == "7");
}

TEST_CASE("rollback_only rolls back but keeps session state, and none keeps everything", "[mysql][reset]") {
    SECTION("rollback_only") {
        mysql::factory f(shared_server().tcp(), mysql::reset_policy::rollback_only);
        auto c = connect_or_fail(f);
        c.execute("SET @kept = 5");
        CHECK_FALSE(f.needs_reset(c));  // no transaction open: nothing to do
        c.execute("START TRANSACTION");
        CHECK(f.needs_reset(c));
        connpool::error_info err;
        REQUIRE(f.reset(c, err));
        CHECK(c.query_value("SELECT @@in_transaction") == "0");
        CHECK(c.query_value("SELECT @kept") == "5");
    }
    SECTION("none") {
        mysql::factory f(shared_server().tcp(), mysql::reset_policy::none);
        auto c = connect_or_fail(f);
        c.execute("START TRANSACTION");
        CHECK_FALSE(f.needs_reset(c));
    }
}
