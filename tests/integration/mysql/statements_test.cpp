// The MySQL statement cache (connection::query_cached, mysql_stmt_*) against a real MariaDB
// (label "mysql"): statements survive a return that needs no full reset, a full reset closes
// them first (a handle used after COM_RESET_CONNECTION would fail with 2013 and get a healthy
// connection closed), a schema change closes them, and values come back as query() gives them.
#include "connpool_catch.hpp"
#include "mysql/mysql_env.hpp"

#include <connpool/mysql.hpp>

#include <chrono>
#include <cstdint>
#include <string>

using namespace std::chrono_literals;
namespace mysql = connpool::mysql;
using connpool_test::mysql::shared_server;

namespace {

connpool::options one_connection() {
    connpool::options o;
    o.max_size = 1;
    o.acquire_timeout = 10s;
    return o;
}

// COM_STMT_PREPARE commands this session sent, by the server's count.
long prepares_on_server(mysql::connection& c) {
    auto v = c.query_value("SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS "
                           "WHERE VARIABLE_NAME = 'COM_STMT_PREPARE'");
    REQUIRE(v);
    return std::stol(*v);
}

const std::string sum_sql = "SELECT ? + 1, ?, CONNECTION_ID()";

}  // namespace

TEST_CASE("a MySQL statement_cache_capacity above 65536 throws invalid_argument naming the field",
          "[mysql][statements]") {
    auto o = shared_server().tcp();
    o.statement_cache_capacity = 65537;
    CHECK_THROWS_WITH(mysql::factory(o), Catch::Matchers::Contains("statement_cache_capacity"));
}

TEST_CASE("a MySQL cached statement is prepared once and survives a clean return", "[mysql][statements]") {
    mysql::pool pool(mysql::factory(shared_server().tcp()), one_connection());
    std::string id;
    long before = 0;
    {
        auto l = pool.acquire();
        before = prepares_on_server(*l);
        auto r = l->query_cached(sum_sql, 41, "text");
        REQUIRE(r.size() == 1);
        CHECK(r[0][0] == "42");
        CHECK(r[0][1] == "text");
        id = *r[0][2];
        CHECK(l->statement_cache_stats().prepares == 1);
    }
    {
        auto l = pool.acquire();
        auto r = l->query_cached(sum_sql, 1, std::nullopt);
        CHECK(*r[0][2] == id);  // the same session
        CHECK(r[0][0] == "2");
        CHECK(!r[0][1]);  // NULL
        CHECK(l->statement_cache_stats().hits == 1);
        CHECK(prepares_on_server(*l) == before + 1);  // prepared once, not twice
        CHECK(!l->session_changed());                 // statements are no session dirt
    }
}

TEST_CASE("a MySQL return with only a transaction open keeps the statements", "[mysql][statements]") {
    mysql::pool pool(mysql::factory(shared_server().tcp()), one_connection());
    {
        auto l = pool.acquire();
        l->execute("BEGIN");
        l->query_cached("SELECT ?", 1);
    }  // ROLLBACK
    auto l = pool.acquire();
    CHECK(!l->in_transaction());
    CHECK(l->cached_statements() == 1);
    CHECK(l->query_cached("SELECT ?", 2)[0][0] == "2");
    CHECK(l->statement_cache_stats().prepares == 1);
}

TEST_CASE("a MySQL full reset closes the statements first, and the connection stays healthy", "[mysql][statements]") {
    const auto policy = GENERATE(mysql::reset_policy::reset_if_dirty, mysql::reset_policy::reset_connection);
    mysql::pool pool(mysql::factory(shared_server().tcp(), policy), one_connection());
    std::string id;
    {
        auto l = pool.acquire();
        id = *l->query_cached("SELECT CONNECTION_ID()")[0][0];
        l->execute("SET @cpt_dirt = 1");  // a session change: the default policy resets in full too
    }
    auto l = pool.acquire();
    CHECK(l->cached_statements() == 0);
    auto r = l->query_cached("SELECT CONNECTION_ID()");  // prepared again, not a stale handle
    CHECK(*r[0][0] == id);                               // on the same, healthy session
    CHECK(!l->broken());
    CHECK(l->statement_cache_stats().clears == 1);
}

TEST_CASE("a MySQL schema change closes the cached statements, and a time_zone label keeps them",
          "[mysql][statements][labels]") {
    const auto& srv = shared_server();
    srv.admin("CREATE DATABASE IF NOT EXISTS cpt_stmt_b");
    for (const char* host : {"%", "localhost"}) srv.admin(std::string("GRANT ALL ON cpt_stmt_b.* TO 'connpool'@'") + host + "'");
    mysql::pool pool(mysql::factory(srv.tcp()), one_connection());
    {
        auto l = pool.acquire(connpool::label{{"time_zone", "+01:00"}});
        CHECK(l->query_cached("SELECT DATABASE()")[0][0] == srv["CONNPOOL_MYSQL_DATABASE"]);
    }
    {
        auto l = pool.acquire(connpool::label{{"time_zone", "+02:00"}});
        CHECK(l->cached_statements() == 1);
    }
    auto l = pool.acquire(connpool::label{{"database", "cpt_stmt_b"}});
    CHECK(l->cached_statements() == 0);
    // Prepared again in the new schema: a statement keeps the schema it was prepared in.
    CHECK(l->query_cached("SELECT DATABASE()")[0][0] == "cpt_stmt_b");
}

TEST_CASE("the MySQL cache holds at most statement_cache_capacity statements", "[mysql][statements]") {
    auto o = shared_server().tcp();
    o.statement_cache_capacity = 2;
    mysql::pool pool(mysql::factory(o), one_connection());
    auto l = pool.acquire();
    l->query_cached("SELECT 1");
    l->query_cached("SELECT 2");
    l->query_cached("SELECT 1");
    l->query_cached("SELECT 3");  // closes SELECT 2
    CHECK(l->cached_statements() == 2);
    CHECK(l->statement_cache_stats().evictions == 1);
    const auto prepares = l->statement_cache_stats().prepares;
    l->query_cached("SELECT 1");
    CHECK(l->statement_cache_stats().prepares == prepares);
    l->query_cached("SELECT 2");
    CHECK(l->statement_cache_stats().prepares == prepares + 1);
}

TEST_CASE("MySQL query_cached returns what query returns, long values and big integers included",
          "[mysql][statements]") {
    mysql::pool pool(mysql::factory(shared_server().tcp()), one_connection());
    auto l = pool.acquire();
    const std::uint64_t big = 18446744073709551615ull;
    auto r = l->query_cached("SELECT REPEAT('x', ?), ?, ?, CAST(? AS CHAR), NULL", 1000, big, -7, true);
    REQUIRE(r.size() == 1);
    CHECK(r[0][0] == std::string(1000, 'x'));
    CHECK(r[0][1] == "18446744073709551615");
    CHECK(r[0][2] == "-7");
    CHECK(r[0][3] == "1");
    CHECK(!r[0][4]);
    auto plain = l->query("SELECT REPEAT('x', 1000), 18446744073709551615, -7, '1', NULL");
    CHECK(plain == r);
    auto none = l->query_cached("DO ?", 1);  // no result set
    CHECK(none.empty());
}

TEST_CASE("a failing MySQL prepare or execute is an error, not a lost connection", "[mysql][statements]") {
    mysql::pool pool(mysql::factory(shared_server().tcp()), one_connection());
    auto l = pool.acquire();
    connpool::error_info err;
    CHECK(!l->try_query_cached(err, "SELECT no_such_column"));
    CHECK(err.message.find("prepare failed") != std::string::npos);
    CHECK(!l->try_query_cached(err, "SELECT ?"));  // one parameter, none given
    CHECK(err.message.find("1 parameters, 0 given") != std::string::npos);
    CHECK(!l->broken());
    CHECK(l->cached_statements() == 1);  // SELECT ? prepared fine
    CHECK(l->query_cached("SELECT ?", 5)[0][0] == "5");
}
