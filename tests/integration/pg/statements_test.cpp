// The statement cache (connection::exec_cached, prepare_cached) over a real PostgreSQL and the
// fixture's PgBouncer in transaction mode (label "pg"): statements survive a return that does not
// drop them, the cache is cleared by every reset that does, it stays within its bound, and it is
// off, with a clear error, behind a transaction-mode pooler.
#include "connpool_catch.hpp"
#include "pg_test_util.hpp"

#include <connpool/pg.hpp>

#include <boost/asio/io_context.hpp>

#include <stdexcept>
#include <string>

namespace cpg = connpool::pg;
using namespace connpool_test::pg;

namespace {

connpool::options one_connection() {
    connpool::options o;
    o.max_size = 1;
    o.acquire_timeout = std::chrono::seconds(10);
    return o;
}

cpg::factory_options with_policy(cpg::reset_policy p, std::string sql = {}) {
    auto o = fopts(p, std::move(sql));
    return o;
}

cpg::factory make_factory(const std::string& what, cpg::factory_options o = {}) {
    return cpg::factory(conninfo_with("application_name=" + unique_app(what)), std::move(o));
}

// The statements this session holds on the server, by the server's own account.
int server_statements(cpg::connection& c) { return std::stoi(scalar(c, "SELECT count(*) FROM pg_prepared_statements")); }

const std::string query = "SELECT $1::int + 1";

std::string run_query(cpg::connection& c, int n) {
    auto r = c.exec_cached(query, n);
    return PQgetvalue(r.get(), 0, 0);
}

// Runs async_exec_cached to completion on a fresh io_context.
std::pair<connpool::error_code, cpg::result> run_async(cpg::connection& c, const std::string& sql, cpg::params args) {
    boost::asio::io_context io;
    std::pair<connpool::error_code, cpg::result> out;
    bool finished = false;
    cpg::async_exec_cached(io.get_executor(), c, sql, std::move(args), [&](connpool::error_code ec, cpg::result r) {
        out = {ec, std::move(r)};
        finished = true;
    });
    io.run();
    REQUIRE(finished);
    return out;
}

}  // namespace

TEST_CASE("statement cache options out of range throw invalid_argument naming the field", "[pg][statements]") {
    cpg::factory_options o;
    o.statement_cache_capacity = 65537;
    CHECK_THROWS_WITH(cpg::factory("host=127.0.0.1", o), Catch::Matchers::Contains("statement_cache_capacity"));
    o.statement_cache_capacity = 16;
    o.prepare_after = 0;
    CHECK_THROWS_WITH(cpg::factory("host=127.0.0.1", o), Catch::Matchers::Contains("prepare_after"));
}

TEST_CASE("a cached statement is prepared once and survives a clean return under the default reset",
          "[pg][statements]") {
    cpg::pool pool(make_factory("stmt_keep"), one_connection());
    std::string pid;
    {
        auto l = pool.acquire();
        pid = scalar(*l, "SELECT pg_backend_pid()");
        CHECK(run_query(*l, 1) == "2");
        CHECK(l->statement_cache_stats().prepares == 1);
        CHECK(l->cached_statements() == 1);
    }
    {
        auto l = pool.acquire();
        REQUIRE(scalar(*l, "SELECT pg_backend_pid()") == pid);  // the same session
        CHECK(server_statements(*l) == 1);
        CHECK(run_query(*l, 41) == "42");
        CHECK(l->statement_cache_stats().prepares == 1);  // not prepared again
        CHECK(l->statement_cache_stats().hits == 1);
    }
}

TEST_CASE("a return with an open transaction is rolled back and keeps the cached statements", "[pg][statements]") {
    cpg::pool pool(make_factory("stmt_dirty"), one_connection());
    {
        auto l = pool.acquire();
        l->exec("BEGIN");
        CHECK(run_query(*l, 1) == "2");
    }  // returned inside the transaction: the reset runs ROLLBACK
    auto l = pool.acquire();
    CHECK(PQtransactionStatus(l->native_handle()) == PQTRANS_IDLE);
    CHECK(l->cached_statements() == 1);
    CHECK(server_statements(*l) == 1);
    CHECK(run_query(*l, 2) == "3");
    CHECK(l->statement_cache_stats().prepares == 1);
}

TEST_CASE("a reset that drops prepared statements clears the cache, one that does not keeps it",
          "[pg][statements]") {
    struct variant {
        cpg::reset_policy policy;
        std::string sql;
        bool clears;
    };
    const variant v = GENERATE(variant{cpg::reset_policy::discard_all, "", true},
                               variant{cpg::reset_policy::custom_sql, "DEALLOCATE ALL", true},
                               variant{cpg::reset_policy::custom_sql, "SELECT 1; deallocate prepare all", true},
                               variant{cpg::reset_policy::custom_sql, "RESET ALL", false});
    CAPTURE(v.sql, v.clears);
    cpg::pool pool(make_factory("stmt_reset", with_policy(v.policy, v.sql)), one_connection());
    {
        auto l = pool.acquire();
        CHECK(run_query(*l, 1) == "2");
    }
    auto l = pool.acquire();
    CHECK(server_statements(*l) == (v.clears ? 0 : 1));
    CHECK(l->cached_statements() == (v.clears ? 0u : 1u));
    CHECK(run_query(*l, 5) == "6");  // works either way: prepared again, or reused
    CHECK(l->statement_cache_stats().prepares == (v.clears ? 2u : 1u));
    CHECK(server_statements(*l) == 1);
}

TEST_CASE("a label change keeps the cached statements, and a reset that clears labels clears them too",
          "[pg][statements][labels]") {
    const connpool::label a{{"TimeZone", "UTC"}};
    const connpool::label b{{"TimeZone", "Asia/Tokyo"}, {"search_path", "public"}};
    SECTION("default reset: SET / RESET between labels") {
        cpg::pool pool(make_factory("stmt_label"), one_connection());
        {
            auto l = pool.acquire(a);
            CHECK(run_query(*l, 1) == "2");
        }
        auto l = pool.acquire(b);
        CHECK(scalar(*l, "SELECT current_setting('TimeZone')") == "Asia/Tokyo");
        CHECK(l->cached_statements() == 1);
        CHECK(server_statements(*l) == 1);
        CHECK(run_query(*l, 2) == "3");
        CHECK(l->statement_cache_stats().prepares == 1);
    }
    SECTION("discard_all: the label and the statements go together") {
        cpg::pool pool(make_factory("stmt_label_discard", with_policy(cpg::reset_policy::discard_all)),
                       one_connection());
        {
            auto l = pool.acquire(a);
            CHECK(run_query(*l, 1) == "2");
        }
        auto l = pool.acquire(b);
        CHECK(scalar(*l, "SELECT current_setting('TimeZone')") == "Asia/Tokyo");
        CHECK(l->cached_statements() == 0);
        CHECK(server_statements(*l) == 0);
        CHECK(run_query(*l, 2) == "3");
    }
}

TEST_CASE("the cache holds at most statement_cache_capacity statements and deallocates the least recently used",
          "[pg][statements]") {
    cpg::factory_options o;
    o.statement_cache_capacity = 2;
    cpg::pool pool(make_factory("stmt_lru", o), one_connection());
    auto l = pool.acquire();
    l->exec_cached("SELECT 1");
    l->exec_cached("SELECT 2");
    l->exec_cached("SELECT 1");  // now SELECT 2 is the least recently used
    l->exec_cached("SELECT 3");  // pushes SELECT 2 out
    CHECK(l->statement_cache_stats().evictions == 1);
    CHECK(l->cached_statements() == 2);
    CHECK(server_statements(*l) == 2);
    CHECK(scalar(*l, "SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT 2'") == "0");
    CHECK(scalar(*l, "SELECT count(*) FROM pg_prepared_statements WHERE statement = 'SELECT 1'") == "1");
    const auto prepares = l->statement_cache_stats().prepares;
    l->exec_cached("SELECT 1");  // still cached
    CHECK(l->statement_cache_stats().prepares == prepares);
}

TEST_CASE("with prepare_after N a text runs unnamed until its Nth use", "[pg][statements]") {
    cpg::factory_options o;
    o.prepare_after = 3;
    cpg::pool pool(make_factory("stmt_after", o), one_connection());
    auto l = pool.acquire();
    CHECK(run_query(*l, 1) == "2");
    CHECK(run_query(*l, 2) == "3");
    CHECK(server_statements(*l) == 0);
    CHECK(run_query(*l, 3) == "4");
    CHECK(server_statements(*l) == 1);
    CHECK(l->statement_cache_stats().prepares == 1);
}

TEST_CASE("a statement dropped behind the cache's back is prepared again", "[pg][statements]") {
    cpg::pool pool(make_factory("stmt_lost"), one_connection());
    auto l = pool.acquire();
    CHECK(run_query(*l, 1) == "2");
    l->exec("DEALLOCATE ALL");  // not through the factory: the cache still names the statement
    CHECK(run_query(*l, 2) == "3");
    CHECK(l->statement_cache_stats().prepares == 2);
    CHECK(server_statements(*l) == 1);
}

TEST_CASE("prepare_cached returns a statement name that PQexecPrepared runs", "[pg][statements]") {
    cpg::pool pool(make_factory("stmt_name"), one_connection());
    auto l = pool.acquire();
    const std::string name = l->prepare_cached(query);
    CHECK(name.starts_with("connpool_s"));
    const char* values[] = {"9"};
    cpg::result r(PQexecPrepared(l->native_handle(), name.c_str(), 1, values, nullptr, nullptr, 0));
    l->report(r.get());
    REQUIRE(cpg::result_ok(r.get()));
    CHECK(std::string(PQgetvalue(r.get(), 0, 0)) == "10");
    CHECK(l->prepare_cached(query) == name);  // a hit, no new statement
    CHECK(server_statements(*l) == 1);
    CHECK_THROWS_AS(l->prepare_cached("SELECT FROM nowhere_at_all"), cpg::sql_error);
    CHECK(l->cached_statements() == 1);
}

TEST_CASE("behind PgBouncer in transaction mode the cache is off with a clear error", "[pg][statements][pgbouncer]") {
    cpg::factory_options o;
    o.transaction_pooling = true;
    cpg::pool pool(cpg::factory(env().bouncer_conninfo(), o), one_connection());
    auto l = pool.acquire();
    CHECK(scalar(*l, "SELECT 1") == "1");  // the unnamed path works
    connpool::error_info err;
    auto r = l->try_exec_cached(err, query, 1);
    CHECK(!r);
    CHECK(err.code == cpg::make_error_code(cpg::statement_errc::prepared_statements_unsupported));
    CHECK_THAT(err.message, Catch::Matchers::Contains("transaction_pooling") && Catch::Matchers::Contains("1.21"));
    try {
        l->exec_cached(query, 1);
        FAIL("exec_cached did not throw");
    } catch (const connpool::error& e) {
        CHECK(e.code() == cpg::make_error_code(cpg::statement_errc::prepared_statements_unsupported));
    }
    CHECK_THROWS_AS(l->prepare_cached(query), connpool::error);
    CHECK(l->cached_statements() == 0);
    CHECK(scalar(*l, "SELECT 2") == "2");  // and the connection is still fine
}

TEST_CASE("a capacity of 0 turns the cache off with its own error", "[pg][statements]") {
    cpg::factory_options o;
    o.statement_cache_capacity = 0;
    cpg::pool pool(make_factory("stmt_off", o), one_connection());
    auto l = pool.acquire();
    connpool::error_info err;
    auto r = l->try_exec_cached(err, query, 1);
    CHECK(!r);
    CHECK(err.code == cpg::make_error_code(cpg::statement_errc::statement_cache_disabled));
    CHECK_THAT(err.message, Catch::Matchers::Contains("statement_cache_capacity"));
    CHECK(server_statements(*l) == 0);
}

// The LRU alone, no server: what the connection relies on.
TEST_CASE("the statement LRU evicts the least recently used text and reports its name", "[statements][lru]") {
    cpg::detail::statement_cache_config cfg;
    cfg.capacity = 2;
    cpg::detail::statement_cache cache(cfg);
    std::string evicted;
    auto& a = cache.insert("a", evicted);
    CHECK(evicted.empty());
    cache.mark_prepared(a, cache.next_name());
    auto& b = cache.insert("b", evicted);
    cache.mark_prepared(b, cache.next_name());
    const std::string a_name = cache.find("a")->name;  // a is now the most recently used
    cache.insert("c", evicted);                        // so b goes
    CHECK(cache.find("b") == nullptr);
    CHECK(evicted.starts_with("connpool_s"));
    CHECK(evicted != a_name);
    CHECK(cache.prepared() == 1);  // c is not prepared yet
    CHECK(cache.size() == 2);
    CHECK(cache.stats().evictions == 1);
    cache.insert("d", evicted);  // a goes now: c was used more recently
    CHECK(evicted == a_name);
    cache.insert("e", evicted);  // c was never prepared: nothing to deallocate
    CHECK(evicted.empty());
}

TEST_CASE("statement names are never reused, even after the cache is cleared", "[statements][lru]") {
    cpg::detail::statement_cache cache;
    std::string evicted;
    auto& a = cache.insert("a", evicted);
    const std::string first = cache.next_name();
    cache.mark_prepared(a, first);
    cache.clear();
    CHECK(cache.prepared() == 0);
    CHECK(cache.find("a") == nullptr);
    CHECK(cache.stats().clears == 1);
    auto& again = cache.insert("a", evicted);
    cache.mark_prepared(again, cache.next_name());
    CHECK(again.name != first);
}

TEST_CASE("async_exec_cached prepares once, shares the cache with exec_cached, and re-prepares a lost statement",
          "[pg][statements][async]") {
    cpg::pool pool(make_factory("stmt_async"), one_connection());
    auto l = pool.acquire();
    auto [ec1, r1] = run_async(*l, query, cpg::params{std::string("4")});
    REQUIRE(!ec1);
    REQUIRE(cpg::result_ok(r1.get()));
    CHECK(std::string(PQgetvalue(r1.get(), 0, 0)) == "5");
    CHECK(l->statement_cache_stats().prepares == 1);
    CHECK(run_query(*l, 9) == "10");  // the blocking helper finds it prepared
    CHECK(l->statement_cache_stats().prepares == 1);
    CHECK(l->statement_cache_stats().hits == 1);
    l->exec("DEALLOCATE ALL");
    auto [ec2, r2] = run_async(*l, query, cpg::params{std::string("6")});
    REQUIRE(!ec2);
    REQUIRE(cpg::result_ok(r2.get()));
    CHECK(std::string(PQgetvalue(r2.get(), 0, 0)) == "7");
    CHECK(l->statement_cache_stats().prepares == 2);
    auto [ec3, r3] = run_async(*l, "SELECT no_such_column", {});
    CHECK(!ec3);
    CHECK(cpg::sqlstate(r3.get()) == "42703");
    CHECK(l->cached_statements() == 1);  // the failed prepare left nothing behind
    CHECK(server_statements(*l) == 1);
}

TEST_CASE("async_exec_cached deallocates what the LRU evicts and honours prepare_after", "[pg][statements][async]") {
    cpg::factory_options o;
    o.statement_cache_capacity = 1;
    o.prepare_after = 2;
    cpg::pool pool(make_factory("stmt_async_lru", o), one_connection());
    auto l = pool.acquire();
    CHECK(!run_async(*l, "SELECT 1", {}).first);
    CHECK(server_statements(*l) == 0);  // first use: unnamed
    CHECK(!run_async(*l, "SELECT 1", {}).first);
    CHECK(server_statements(*l) == 1);
    CHECK(!run_async(*l, "SELECT 2", {}).first);  // evicts SELECT 1, counts its first use
    CHECK(!run_async(*l, "SELECT 2", {}).first);  // deallocates SELECT 1, prepares SELECT 2
    CHECK(server_statements(*l) == 1);
    CHECK(scalar(*l, "SELECT statement FROM pg_prepared_statements") == "SELECT 2");
}

TEST_CASE("async_exec_cached behind PgBouncer in transaction mode completes with the cache's error",
          "[pg][statements][async][pgbouncer]") {
    cpg::factory_options o;
    o.transaction_pooling = true;
    cpg::pool pool(cpg::factory(env().bouncer_conninfo(), o), one_connection());
    auto l = pool.acquire();
    auto [ec, r] = run_async(*l, query, cpg::params{std::string("1")});
    CHECK(ec == cpg::make_error_code(cpg::statement_errc::prepared_statements_unsupported));
    CHECK(!r);
    CHECK(scalar(*l, "SELECT 3") == "3");
}
