// Labels over a real MariaDB (label "mysql"): session settings (schema, role, time zone,
// variables) never leak between labels or to unlabelled callers, a connection that already
// carries a label costs no round trip (the session's own Com_* counters), a full reset
// forgets the label and a ROLLBACK keeps it, and a failing apply closes the connection
// while the caller still gets a usable one.
#include "connpool_catch.hpp"
#include "mysql/mysql_connect.hpp"
#include "mysql/mysql_env.hpp"

#include <connpool/mysql.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <optional>
#include <string>

using namespace std::chrono_literals;
namespace mysql = connpool::mysql;
using connpool_test::mysql::connect_or_fail;
using connpool_test::mysql::shared_server;

namespace {

// mysql::factory with its apply() calls counted.
struct counting_factory : mysql::factory {
    explicit counting_factory(mysql::factory f) : mysql::factory(std::move(f)) {}
    std::shared_ptr<std::atomic<int>> applies = std::make_shared<std::atomic<int>>(0);
    // While positive, an apply() asks for a role that does not exist: the server refuses it.
    std::shared_ptr<std::atomic<int>> sabotage = std::make_shared<std::atomic<int>>(0);

    bool apply(mysql::connection& c, const connpool::label& from, const connpool::label& to,
               connpool::error_info& e) {
        ++*applies;
        if (sabotage->fetch_sub(1) > 0) {
            return mysql::factory::apply(c, from, connpool::label{{"role", "cpt_no_such_role"}}, e);
        }
        return mysql::factory::apply(c, from, to, e);
    }
};

using label_pool = connpool::basic_pool<counting_factory>;

connpool::options opts(std::size_t n) {
    connpool::options o;
    o.max_size = n;
    o.acquire_timeout = 10s;
    return o;
}

// Two schemas and a role the test user may use; idempotent, as every case calls it.
void make_objects() {
    const auto& srv = shared_server();
    for (const char* db : {"cpt_label_a", "cpt_label_b"}) {
        srv.admin(std::string("CREATE DATABASE IF NOT EXISTS ") + db);
        for (const char* host : {"%", "localhost"}) {
            srv.admin(std::string("GRANT ALL ON ") + db + ".* TO 'connpool'@'" + host + "'");
        }
    }
    srv.admin("CREATE ROLE IF NOT EXISTS cpt_reporting");
    for (const char* host : {"%", "localhost"}) srv.admin(std::string("GRANT cpt_reporting TO 'connpool'@'") + host + "'");
    srv.admin("CREATE TABLE IF NOT EXISTS connpool_test.cpt_victim (v INT)");
}

std::string value(mysql::connection& c, const std::string& sql) {
    connpool::error_info err;
    auto v = c.query_value(sql, err);
    INFO(sql << ": " << err.message);
    REQUIRE_FALSE(err);
    return v.value_or("NULL");
}

// The session's own counter: no other session can move it.
long session_status(mysql::connection& c, const std::string& name) {
    return std::stol(value(c, "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = '" +
                                  name + "'"));
}

struct session_view {
    std::string id, schema, role, time_zone, sql_mode;
};

session_view view(mysql::connection& c) {
    return {value(c, "SELECT CONNECTION_ID()"), value(c, "SELECT DATABASE()"), value(c, "SELECT CURRENT_ROLE()"),
            value(c, "SELECT @@SESSION.time_zone"), value(c, "SELECT @@SESSION.sql_mode")};
}

const connpool::label label_a{{"database", "cpt_label_a"},
                              {"role", "cpt_reporting"},
                              {"TimeZone", "+09:00"},
                              {"sql_mode", "ANSI_QUOTES"}};
const connpool::label label_b{{"schema", "cpt_label_b"}, {"time_zone", "+01:00"}, {"div_precision_increment", "7"}};

}  // namespace

TEST_CASE("label B never sees label A's schema, role, time zone or variables, and an unlabelled caller sees the "
          "configured defaults",
          "[mysql][labels]") {
    make_objects();
    label_pool pool(counting_factory(mysql::factory(shared_server().tcp())), opts(1));
    session_view plain;
    {
        auto l = pool.acquire();
        plain = view(*l);
        REQUIRE(plain.schema == "connpool_test");
        REQUIRE(plain.role == "NULL");
    }
    {
        auto l = pool.acquire(label_a);
        const auto a = view(*l);
        CHECK(a.id == plain.id);  // the one connection of the pool, moved
        CHECK(a.schema == "cpt_label_a");
        CHECK(a.role == "cpt_reporting");
        CHECK(a.time_zone == "+09:00");
        CHECK(a.sql_mode == "ANSI_QUOTES");
    }
    {
        auto l = pool.acquire(label_b);
        const auto b = view(*l);
        CHECK(b.id == plain.id);
        CHECK(b.schema == "cpt_label_b");
        CHECK(b.role == "NULL");
        CHECK(b.time_zone == "+01:00");
        CHECK(b.sql_mode == plain.sql_mode);
        CHECK(value(*l, "SELECT @@SESSION.div_precision_increment") == "7");
    }
    {
        auto l = pool.acquire();
        const auto back = view(*l);
        CHECK(back.id == plain.id);
        CHECK(back.schema == plain.schema);
        CHECK(back.role == plain.role);
        CHECK(back.time_zone == plain.time_zone);
        CHECK(back.sql_mode == plain.sql_mode);
        CHECK(value(*l, "SELECT @@SESSION.div_precision_increment = @@GLOBAL.div_precision_increment") == "1");
    }
}

TEST_CASE("acquiring with the label a connection already carries costs no extra round trip", "[mysql][labels]") {
    make_objects();
    counting_factory f(mysql::factory(shared_server().tcp()));
    auto applies = f.applies;
    label_pool pool(std::move(f), opts(1));
    long set_options = 0;
    long change_db = 0;
    {
        auto l = pool.acquire(label_a);
        set_options = session_status(*l, "COM_SET_OPTION");
        change_db = session_status(*l, "COM_CHANGE_DB");
        CHECK(set_options >= 1);  // the SET of the label's variables
    }
    CHECK(*applies == 1);
    for (int i = 0; i < 10; ++i) {
        auto l = pool.acquire(label_a);
        CHECK(value(*l, "SELECT DATABASE()") == "cpt_label_a");
        CHECK(session_status(*l, "COM_SET_OPTION") == set_options);
        CHECK(session_status(*l, "COM_CHANGE_DB") == change_db);
    }
    CHECK(*applies == 1);
}

TEST_CASE("a full reset forgets the label and restores the configured schema, and a ROLLBACK keeps the label",
          "[mysql][labels][reset]") {
    make_objects();
    counting_factory f(mysql::factory(shared_server().tcp()));
    auto applies = f.applies;
    label_pool pool(std::move(f), opts(1));
    {
        auto l = pool.acquire(label_a);
        l->execute("SET @left_behind = 1");  // session dirt: a full reset follows
    }
    {
        auto l = pool.acquire();
        const auto v = view(*l);
        CHECK(v.schema == "connpool_test");
        CHECK(v.role == "NULL");
        CHECK(v.time_zone != "+09:00");
        CHECK(value(*l, "SELECT @left_behind") == "NULL");
    }
    CHECK(*applies == 1);  // the reset, not an apply, took the settings away
    {
        auto l = pool.acquire(label_a);
        CHECK(*applies == 2);  // forgotten, so applied again
        CHECK(value(*l, "SELECT DATABASE()") == "cpt_label_a");
        l->execute("START TRANSACTION");
        l->execute("INSERT INTO connpool_test.cpt_victim VALUES (1)");  // dirt a ROLLBACK cleans
    }
    {
        auto l = pool.acquire(label_a);
        CHECK(*applies == 2);  // the ROLLBACK kept the settings and the label
        CHECK(value(*l, "SELECT @@in_transaction") == "0");
        const auto v = view(*l);
        CHECK(v.schema == "cpt_label_a");
        CHECK(v.time_zone == "+09:00");
    }
}

TEST_CASE("a lease's own SET ROLE is undone by the reset, which COM_RESET_CONNECTION alone would keep",
          "[mysql][labels][reset]") {
    using mysql::detail::untracked_state;
    CHECK(untracked_state("SET ROLE cpt_reporting").role);
    CHECK(untracked_state("set role none").state);
    CHECK_FALSE(untracked_state("SELECT * FROM user_roles").role);
    make_objects();
    mysql::pool pool(mysql::factory(shared_server().tcp()), opts(1));
    {
        auto l = pool.acquire();
        l->execute("SET ROLE cpt_reporting");
        REQUIRE(value(*l, "SELECT CURRENT_ROLE()") == "cpt_reporting");
    }
    auto l = pool.acquire();
    CHECK(value(*l, "SELECT CURRENT_ROLE()") == "NULL");
}

TEST_CASE("a failing apply closes that connection and the caller still gets a usable one with its label",
          "[mysql][labels]") {
    make_objects();
    counting_factory f(mysql::factory(shared_server().tcp()));
    auto sabotage = f.sabotage;
    label_pool pool(std::move(f), opts(2));
    { auto warm = pool.acquire(); }
    *sabotage = 1;
    auto l = pool.acquire(label_b);
    CHECK(value(*l, "SELECT DATABASE()") == "cpt_label_b");
    CHECK(value(*l, "SELECT @@SESSION.time_zone") == "+01:00");
    CHECK(pool.stats().closed_for(connpool::close_reason::reset_failed) == 1);
}

TEST_CASE("a label the server refuses fails with the server's error, its quoted text cannot inject SQL, and the "
          "pool stays usable",
          "[mysql][labels]") {
    make_objects();
    label_pool pool(counting_factory(mysql::factory(shared_server().tcp())), opts(2));
    const connpool::label bad = GENERATE(connpool::label{{"role", "no_such`; DROP TABLE connpool_test.cpt_victim; --"}},
                                         connpool::label{{"sql_mode", "x'; DROP TABLE connpool_test.cpt_victim; --"}},
                                         connpool::label{{"no_such_variable`=1; DROP TABLE cpt_victim; --", "1"}},
                                         connpool::label{{"database", "cpt_no_such_schema"}});
    connpool::error_code ec;
    auto refused = pool.acquire_for(connpool::tenant_id{}, bad, 300ms, ec);
    CHECK_FALSE(refused);
    CHECK(ec == connpool::errc::reset_failed);  // after a few new connections, not a storm until the timeout
    const auto st = pool.stats();
    CHECK(st.closed_for(connpool::close_reason::reset_failed) >= 1);
    CHECK(st.closed_for(connpool::close_reason::reset_failed) <= 3);  // no storm: 0.2 opened 16,603
    CHECK_FALSE(st.last_connect_error.empty());                       // the server's words
    auto l = pool.acquire();
    CHECK(value(*l, "SELECT COUNT(*) >= 0 FROM connpool_test.cpt_victim") == "1");  // still there
    CHECK(value(*l, "SELECT CURRENT_ROLE()") == "NULL");
}

TEST_CASE("apply() names the setting it cannot send, and goes back to no schema only through a new session",
          "[mysql][labels]") {
    make_objects();
    auto o = shared_server().tcp();
    o.database.clear();
    mysql::factory f(o);
    auto c = connect_or_fail(f);
    connpool::error_info err;
    const connpool::label in_a{{"database", "cpt_label_a"}};
    REQUIRE(f.apply(c, {}, in_a, err));
    CHECK(value(c, "SELECT DATABASE()") == "cpt_label_a");
    CHECK_FALSE(f.apply(c, in_a, {}, err));
    CHECK(err.code == connpool::errc::reset_failed);
    CHECK(err.message.find("setting database") != std::string::npos);
    CHECK(err.message.find("connect_options::database") != std::string::npos);
}

TEST_CASE("label values go as numbers when they are numbers and as escaped strings otherwise", "[mysql][labels]") {
    using mysql::detail::is_number;
    CHECK(is_number("7"));
    CHECK(is_number("-12"));
    CHECK(is_number("3.25"));
    CHECK_FALSE(is_number(""));
    CHECK_FALSE(is_number("-"));
    CHECK_FALSE(is_number("1."));
    CHECK_FALSE(is_number(".5"));
    CHECK_FALSE(is_number("1e3"));
    CHECK_FALSE(is_number("+09:00"));
    CHECK(mysql::detail::quoted_identifier("a`b") == "`a``b`");
    CHECK_FALSE(mysql::detail::quoted_identifier(std::string("a\0b", 3)));
    mysql::factory f(shared_server().tcp());
    auto c = connect_or_fail(f);
    const auto plan = mysql::detail::statements_for(
        c.native_handle(), connpool::label{{"role", "r"}, {"sql_mode", "old"}},
        connpool::label{{"sql_mode", "it's"}, {"wait_timeout", "100"}, {"database", "cpt_label_a"}}, "connpool_test");
    CHECK(plan.bad_setting.empty());
    CHECK(plan.schema == "cpt_label_a");
    CHECK(plan.role == "SET ROLE NONE");
    CHECK(plan.variables == "SET SESSION `sql_mode` = 'it\\'s', SESSION `wait_timeout` = 100");
}
