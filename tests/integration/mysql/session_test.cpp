// The default reset (reset_policy::reset_if_dirty) against a real MariaDB: every kind of
// session dirt is cleaned before the next user sees it, a clean return costs no round trip
// (counted with the server's Com_* status counters), and every reset step and ping is bounded
// in time against a frozen server (SIGSTOP).
#include "connpool_catch.hpp"
#include "mysql/mysql_connect.hpp"
#include "mysql/mysql_env.hpp"

#include <connpool/mysql.hpp>

#include <cctype>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <map>
#include <optional>
#include <string>

using namespace std::chrono_literals;
namespace mysql = connpool::mysql;
using connpool_test::mysql::connect_or_fail;
using connpool_test::mysql::eventually;
using connpool_test::mysql::shared_server;

namespace {

// The server's global counters of the commands that a reset sends: COM_RESET_CONNECTION and
// COM_PING count as Com_admin_commands, ROLLBACK as Com_rollback, an init command's SET as
// Com_set_option, selecting a schema as Com_change_db. Read on one root session of its own,
// with one SELECT per reading, so that the reading adds exactly one to Com_select and nothing
// to the others.
class counters {
public:
    explicit counters(const connpool_test::mysql::server_facts& srv) : h_(mysql_init(nullptr), &mysql_close) {
        if (!mysql_real_connect(h_.get(), "localhost", "root", nullptr, nullptr, 0,
                                srv["CONNPOOL_MYSQL_SOCKET"].c_str(), 0))
            throw std::runtime_error(std::string("counters: ") + mysql_error(h_.get()));
    }

    std::map<std::string, long> read() {
        const std::string sql =
            "SELECT VARIABLE_NAME, VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME IN "
            "('Com_admin_commands', 'Com_rollback', 'Com_set_option', 'Com_change_db', 'Com_select')";
        if (mysql_real_query(h_.get(), sql.data(), sql.size()) != 0)
            throw std::runtime_error(std::string("counters: ") + mysql_error(h_.get()));
        std::map<std::string, long> out;
        MYSQL_RES* r = mysql_store_result(h_.get());
        while (MYSQL_ROW row = mysql_fetch_row(r)) {
            std::string name = row[0];
            for (auto& ch : name) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            out[name] = std::stol(row[1]);
        }
        mysql_free_result(r);
        return out;
    }

private:
    std::unique_ptr<MYSQL, decltype(&mysql_close)> h_;
};

}  // namespace

TEST_CASE("statements whose state the server does not flag are recognised from their text", "[mysql][reset]") {
    using mysql::detail::leaves_untracked_state;
    CHECK(leaves_untracked_state("LOCK TABLES t WRITE"));
    CHECK(leaves_untracked_state("select get_lock('x', 0)"));
    CHECK(leaves_untracked_state("SELECT @v := 1"));
    CHECK(leaves_untracked_state("SELECT 1 INTO @v"));
    CHECK(leaves_untracked_state("CALL p()"));
    CHECK(leaves_untracked_state("XA START 'x'"));
    CHECK_FALSE(leaves_untracked_state("SELECT 1"));
    CHECK_FALSE(leaves_untracked_state("SELECT @v"));
    CHECK_FALSE(leaves_untracked_state("INSERT INTO t VALUES (1)"));
    CHECK_FALSE(leaves_untracked_state("SELECT exact FROM xat"));
}

TEST_CASE("the default reset cleans each kind of session dirt, and nothing else costs a reset", "[mysql][reset]") {
    auto opts = shared_server().tcp();
    opts.init_commands = {"SET @from_init = 7"};
    mysql::factory f(opts);
    REQUIRE(f.policy() == mysql::reset_policy::reset_if_dirty);
    auto c = connect_or_fail(f);
    c.execute("CREATE TABLE IF NOT EXISTS dirt_probe (v INT) ENGINE=InnoDB");
    c.execute("CREATE TABLE IF NOT EXISTS dirt_other (v INT) ENGINE=InnoDB");
    connpool::error_info err;
    REQUIRE(f.reset(c, err));
    const std::string id = *c.query_value("SELECT CONNECTION_ID()");

    SECTION("a clean lease: reads, a SELECT of a variable, an autocommitted write") {
        c.query("SELECT 1");
        c.query_value("SELECT @from_init");
        c.execute("INSERT INTO dirt_probe VALUES (1)");
        CHECK_FALSE(f.needs_reset(c));
    }
    SECTION("an open transaction") {
        const std::string before = *c.query_value("SELECT COUNT(*) FROM dirt_probe");
        c.execute("START TRANSACTION");
        c.execute("INSERT INTO dirt_probe VALUES (2)");
        REQUIRE(f.needs_reset(c));
        REQUIRE(f.reset(c, err));
        CHECK(c.query_value("SELECT @@in_transaction") == "0");
        CHECK(c.query_value("SELECT COUNT(*) FROM dirt_probe") == before);
    }
    SECTION("a user variable, set or assigned in a SELECT") {
        c.execute(GENERATE("SET @left = 1", "SELECT @left := 1", "SELECT 1 INTO @left"));
        REQUIRE(f.needs_reset(c));
        REQUIRE(f.reset(c, err));
        CHECK_FALSE(c.query_value("SELECT @left").has_value());
    }
    SECTION("a temporary table") {
        c.execute("CREATE TEMPORARY TABLE left_behind (v INT)");
        REQUIRE(f.needs_reset(c));
        REQUIRE(f.reset(c, err));
        CHECK_FALSE(c.execute("SELECT * FROM left_behind", err));
        CHECK(err.message.find("[1146]") != std::string::npos);
    }
    SECTION("SET SESSION") {
        const std::string mode = *c.query_value("SELECT @@SESSION.sql_mode");
        c.execute("SET SESSION sql_mode = 'ANSI_QUOTES'");
        REQUIRE(f.needs_reset(c));
        REQUIRE(f.reset(c, err));
        CHECK(c.query_value("SELECT @@SESSION.sql_mode") == mode);
    }
    SECTION("LOCK TABLES") {
        c.execute("LOCK TABLES dirt_probe WRITE");
        REQUIRE(f.needs_reset(c));
        REQUIRE(f.reset(c, err));
        // Under LOCK TABLES any other table is refused with [1100] "was not locked".
        INFO(err.message);
        CHECK(c.query_value("SELECT COUNT(*) FROM dirt_other").has_value());
    }
    SECTION("GET_LOCK") {
        c.query("SELECT GET_LOCK('connpool_dirt_lock', 0)");
        REQUIRE(shared_server().admin("SELECT IS_USED_LOCK('connpool_dirt_lock')") == id);
        REQUIRE(f.needs_reset(c));
        REQUIRE(f.reset(c, err));
        CHECK(shared_server().admin("SELECT IS_USED_LOCK('connpool_dirt_lock')").empty());
    }
    SECTION("work done through native_handle()") {
        REQUIRE(mysql_query(c.native_handle(), "SET @raw = 1") == 0);
        REQUIRE(f.needs_reset(c));
        REQUIRE(f.reset(c, err));
        CHECK_FALSE(c.query_value("SELECT @raw").has_value());
    }
    // Whatever was cleaned: the same session, the init commands in force again, the
    // tracking that the next verdict depends on still on, and no reset owed.
    CHECK(c.query_value("SELECT CONNECTION_ID()") == id);
    CHECK(c.query_value("SELECT @from_init") == "7");
    CHECK(c.query_value("SELECT @@session_track_state_change") == "1");
    CHECK_FALSE(f.needs_reset(c));
}

TEST_CASE("clean returns to a pool cost the server zero round trips, and a dirty one costs the reset",
          "[mysql][pool][reset]") {
    // A private server: the global counters must see this test's traffic only.
    connpool_test::mysql::private_server srv;
    connpool::options o;
    o.min_idle = 2;
    o.max_size = 2;
    o.validation = connpool::validation_mode::optimistic;  // no pings on acquire
    o.detect_nested_acquire = false;
    mysql::pool pool(mysql::factory(srv.facts().tcp()), o);
    REQUIRE(eventually([&] { return pool.stats().idle == 2; }));

    counters server(srv.facts());
    const auto before = server.read();
    constexpr int cycles = 50;
    for (int i = 0; i < cycles; ++i) {
        auto lease = pool.acquire();
        CHECK(lease->query_value("SELECT 1") == "1");
    }
    const auto after = server.read();
    CHECK(after.at("com_select") - before.at("com_select") == cycles + 1);  // + the reading itself
    CHECK(after.at("com_admin_commands") == before.at("com_admin_commands"));
    CHECK(after.at("com_rollback") == before.at("com_rollback"));
    CHECK(after.at("com_set_option") == before.at("com_set_option"));
    CHECK(after.at("com_change_db") == before.at("com_change_db"));

    // The counters do see a reset: one dirty return is one COM_RESET_CONNECTION, and the
    // init command that turns session tracking on again.
    pool.acquire()->execute("SET @dirty = 1");
    std::map<std::string, long> dirty;
    // The reset runs off the caller's path: wait for the reset and the init command after it.
    CHECK(eventually([&] {
        dirty = server.read();
        return dirty.at("com_admin_commands") == after.at("com_admin_commands") + 1 &&
               dirty.at("com_set_option") >= after.at("com_set_option") + 2;
    }));
    CHECK(dirty.at("com_admin_commands") == after.at("com_admin_commands") + 1);
    CHECK(dirty.at("com_set_option") == after.at("com_set_option") + 2);  // SET @dirty, and the init command
    CHECK(pool.stats().created == 2);
}

TEST_CASE("reset, ping and queries give up on a frozen server within their bounds", "[mysql][reset][ping][timeout]") {
    connpool_test::mysql::private_server srv;
    auto opts = srv.facts().tcp();
    opts.reset_timeout = 300ms;
    // What bounds the blocking calls, and queries on either build.
    opts.read_timeout = 1s;
    opts.write_timeout = 1s;
    mysql::factory f(opts);
    auto changed = connect_or_fail(f);
    auto in_transaction = connect_or_fail(f);
    auto pinged = connect_or_fail(f);
    auto queried = connect_or_fail(f);
    changed.execute("SET @x = 1");
    in_transaction.execute("START TRANSACTION");
    REQUIRE(f.needs_reset(changed));
    REQUIRE(f.needs_reset(in_transaction));

    srv.freeze();
    connpool::error_info err;
    SECTION("a full reset") {
        CHECK_FALSE(f.reset(changed, err));
        CHECK(err.code == connpool::errc::reset_failed);
        CHECK(f.is_broken(changed));
    }
    SECTION("a rollback") {
        CHECK_FALSE(f.reset(in_transaction, err));
        CHECK(err.code == connpool::errc::reset_failed);
        CHECK(f.is_broken(in_transaction));
    }
    SECTION("a ping") {
        CHECK_FALSE(f.ping(pinged, 300ms, err));
        CHECK(err.code == connpool::errc::ping_failed);
        CHECK(f.is_broken(pinged));
    }
    SECTION("a query, by read_timeout") {
        CHECK_FALSE(queried.execute("SELECT 1", err));
        CHECK(err.message.find("[2013]") != std::string::npos);
        CHECK(f.is_broken(queried));
    }
    srv.thaw();
}

TEST_CASE("a non-positive reset_timeout is refused by name", "[mysql][options]") {
    auto opts = shared_server().tcp();
    opts.reset_timeout = 0ms;
    std::string what;
    try {
        mysql::factory f(opts);
    } catch (const std::invalid_argument& e) {
        what = e.what();
    }
    CHECK(what.find("connect_options::reset_timeout") != std::string::npos);
}

TEST_CASE("an acquire whose label apply() meets a frozen server ends at the caller's deadline, and the connection "
          "comes back carrying the label once the server answers",
          "[mysql][labels][timeout]") {
    connpool_test::mysql::private_server srv;
    auto fo = srv.facts().tcp();
    // What bounds apply()'s round trips: far beyond the caller's 200 ms.
    fo.reset_timeout = 5s;
    fo.read_timeout = 5s;
    fo.write_timeout = 5s;
    connpool::options o;
    o.max_size = 1;
    o.acquire_timeout = 10s;
    mysql::pool pool(mysql::factory(fo), o);
    { auto warm = pool.acquire(); }
    const connpool::label tz{{"time_zone", "+02:00"}};
    srv.freeze();
    connpool::error_code ec;
    const auto t0 = std::chrono::steady_clock::now();
    auto l = pool.acquire_for(tz, 200ms, ec);
    const auto took = std::chrono::steady_clock::now() - t0;
    srv.thaw();
    CHECK_FALSE(l);
    CHECK(ec == connpool::errc::acquire_timeout);
    // Not a speed check: on 0.2 the caller waited for the whole apply (its reset_timeout).
    CHECK(took < 2s);
    auto again = pool.acquire_for(tz, 10s);
    connpool::error_info err;
    const auto zone = again->query_value("SELECT @@session.time_zone", err);
    INFO(err.message);
    REQUIRE(zone.has_value());
    CHECK(*zone == "+02:00");
    CHECK(pool.stats().open == 1);
}
