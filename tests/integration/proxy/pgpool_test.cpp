// A plain connpool::pg::pool behind pgpool-II 4.3 in streaming-replication mode with load
// balancing (fixture pgpool_set, label "proxy"): one primary and one standby, backend_weight 0
// and 1, so that every read pgpool balances runs on the standby. Each statement asks
// inet_server_port() (a stable function, which pgpool balances; a volatile one such as
// pg_is_in_recovery() always goes to the primary), so the tests see where it ran. What works and
// what does not is written up in docs/proxies.md ("pgpool-II").
#include "connpool_catch.hpp"
#include "replica_env.hpp"

#include <connpool/pg.hpp>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace connpool_test::replica;
namespace cpg = connpool::pg;

namespace {

// Functions, not constants: the env file exists only once the fixture ran (never at test discovery).
int primary_port() { return std::stoi(env()["CONNPOOL_REPLICA_PORT_0"]); }
int standby_port() { return std::stoi(env()["CONNPOOL_REPLICA_PORT_1"]); }

connpool::options pool_options(std::size_t n) {
    connpool::options o;
    o.max_size = n;
    o.acquire_timeout = 10s;
    return o;
}

cpg::pool make_pool(std::size_t n, cpg::factory_options f = {}) {
    return cpg::pool(cpg::factory(env()["CONNPOOL_PGPOOL_CONNINFO"], std::move(f)), pool_options(n));
}

std::string text(cpg::connection& c, const std::string& sql, int column = 0) {
    auto r = c.exec(sql);
    return PQgetvalue(r.get(), 0, column);
}
int where(cpg::connection& c) { return std::stoi(text(c, "SELECT inet_server_port()")); }

// Reloads pgpool with name = value (its ctl.sh) for the life of the object, then back to before.
// New sessions see the value; make the pools after this.
class pgpool_setting {
public:
    pgpool_setting(std::string name, const std::string& value, std::string before)
        : name_(std::move(name)), before_(std::move(before)) {
        set(value);
    }
    ~pgpool_setting() {
        try {
            set(before_);
        } catch (const std::exception& e) {
            std::cerr << e.what() << "\n";
        }
    }

private:
    void set(const std::string& v) {
        const std::string cmd = "bash '" + env()["CONNPOOL_PGPOOL_CTL"] + "' set " + name_ + " '" + v + "'";
        if (std::system(cmd.c_str()) != 0) throw std::runtime_error("failed: " + cmd);
    }
    std::string name_, before_;
};

void make_table() {
    auto p = make_pool(1);
    p.acquire()->exec("CREATE TABLE IF NOT EXISTS pp_t (id bigserial PRIMARY KEY, who int)");
}

}  // namespace

TEST_CASE("a pool behind pgpool-II serves writes and balanced reads from 8 threads without an error",
          "[proxy][pgpool]") {
    make_table();
    auto p = make_pool(6);
    const std::string before = query(env().conninfo(0), "SELECT count(*) FROM pp_t");
    std::atomic<int> writes{0}, reads{0}, errors{0}, reads_elsewhere{0};
    std::string an_error;
    std::mutex mu;
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < 150; ++i) {
                try {
                    auto l = p.acquire();
                    if ((i + t) % 2 == 0) {
                        l->exec("INSERT INTO pp_t (who) VALUES ($1)", t);
                        ++writes;
                    } else {
                        if (where(*l) != standby_port()) ++reads_elsewhere;
                        ++reads;
                    }
                } catch (const std::exception& e) {
                    ++errors;
                    std::lock_guard lk(mu);
                    an_error = e.what();
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    std::cout << "pgpool load: " << writes << " writes, " << reads << " reads, " << errors << " errors; pool "
              << p.stats().created << " connections\n";
    INFO("an error: " << an_error);
    CHECK(errors == 0);
    CHECK(writes == 600);
    CHECK(reads == 600);
    CHECK(reads_elsewhere == 0);
    CHECK(std::stoi(query(env().conninfo(0), "SELECT count(*) FROM pp_t")) == std::stoi(before) + 600);
}

TEST_CASE("in a transaction pgpool-II runs the reads after a write on the primary, so they see the write",
          "[proxy][pgpool]") {
    make_table();
    SECTION("disable_load_balance_on_write = 'transaction' (the default)") {
        auto p = make_pool(1);
        auto l = p.acquire();
        l->exec("BEGIN");
        CHECK(where(*l) == standby_port());  // no write yet in this transaction: balanced
        const std::string id = text(*l, "INSERT INTO pp_t (who) VALUES (-1) RETURNING id");
        auto r = l->exec("SELECT inet_server_port(), count(*) FROM pp_t WHERE id = $1", id);
        CHECK(std::stoi(PQgetvalue(r.get(), 0, 0)) == primary_port());
        CHECK(std::string(PQgetvalue(r.get(), 0, 1)) == "1");
        l->exec("COMMIT");
        // The next transaction is balanced again: an autocommit read after a write may run on
        // the standby, which may not have replayed it yet.
        l->exec("INSERT INTO pp_t (who) VALUES (-2)");
        CHECK(where(*l) == standby_port());
    }
    SECTION("disable_load_balance_on_write = 'always': every read after the session's first write") {
        pgpool_setting always("disable_load_balance_on_write", "always", "transaction");
        auto p = make_pool(1);
        auto l = p.acquire();
        CHECK(where(*l) == standby_port());
        l->exec("INSERT INTO pp_t (who) VALUES (-3)");
        CHECK(where(*l) == primary_port());
        CHECK(where(*l) == primary_port());
    }
}

// pgpool sends a SET to every backend, but a query string of several statements only to the
// primary. apply() moves a connection to a label in one round trip, one string of one SET per
// setting that differs: a label of two settings reaches the primary alone.
TEST_CASE("behind pgpool-II a label of one setting reaches the standby, one of two settings only the primary",
          "[proxy][pgpool]") {
    const connpool::label one{{"TimeZone", "Asia/Tokyo"}};
    // TimeZone and application_name as the read sees them, and where it ran; then the same read
    // with pg_is_in_recovery(), a volatile function, which pgpool always sends to the primary.
    const std::string read = "SELECT inet_server_port(), current_setting('TimeZone'), current_setting('application_name')";
    const std::string on_primary = read + ", pg_is_in_recovery()";
    auto seen = [](cpg::connection& c, const std::string& sql) {
        auto r = c.exec(sql);
        return std::to_string(std::stoi(PQgetvalue(r.get(), 0, 0))) + " " + PQgetvalue(r.get(), 0, 1) + " " +
               PQgetvalue(r.get(), 0, 2);
    };
    const std::string p0 = std::to_string(primary_port()), p1 = std::to_string(standby_port());
    SECTION("one setting: the read on the standby sees it") {
        auto p = make_pool(1);
        auto l = p.acquire(one);
        CHECK(seen(*l, read) == p1 + " Asia/Tokyo ");
    }
    SECTION("two settings: one multi-statement string, run on the primary only") {
        auto p = make_pool(1);
        auto l = p.acquire(connpool::label{{"TimeZone", "Asia/Tokyo"}, {"application_name", "pp_label"}});
        const std::string standby = seen(*l, read), primary = seen(*l, on_primary);
        std::cout << "pgpool, a label of two settings: the standby's session has \"" << standby
                  << "\", the primary's \"" << primary << "\" (port, TimeZone, application_name)\n";
        CHECK(primary == p0 + " Asia/Tokyo pp_label");
        CHECK(standby != p1 + " Asia/Tokyo pp_label");
    }
    SECTION("statement_level_load_balance = on, weights 1:1: every statement sees a one-setting label") {
        pgpool_setting level("statement_level_load_balance", "on", "off");
        pgpool_setting weight("backend_weight0", "1", "0");
        auto p = make_pool(1);
        std::set<int> ports;
        std::set<std::string> zones;
        auto l = p.acquire(one);
        for (int i = 0; i < 40; ++i) {
            auto r = l->exec("SELECT inet_server_port(), current_setting('TimeZone')");
            ports.insert(std::stoi(PQgetvalue(r.get(), 0, 0)));
            zones.insert(PQgetvalue(r.get(), 0, 1));
        }
        CHECK(ports == std::set<int>{primary_port(), standby_port()});
        CHECK(zones == std::set<std::string>{"Asia/Tokyo"});
    }
}

TEST_CASE("prepared statements and a DISCARD ALL reset work behind pgpool-II", "[proxy][pgpool]") {
    cpg::factory_options f;
    f.reset = cpg::reset_policy::discard_all;
    auto p = make_pool(1, f);
    int cached_port = 0;
    {
        auto l = p.acquire();
        for (int i = 0; i < 3; ++i) {
            auto r = l->exec_cached("SELECT inet_server_port(), $1::int", i);
            cached_port = std::stoi(PQgetvalue(r.get(), 0, 0));
            CHECK(std::string(PQgetvalue(r.get(), 0, 1)) == std::to_string(i));
        }
        l->exec("PREPARE pp_s AS SELECT inet_server_port()");
        CHECK(!text(*l, "EXECUTE pp_s").empty());
        l->exec("SET search_path = pp_nowhere");
        CHECK(text(*l, "SELECT current_setting('search_path')") == "pp_nowhere");
    }
    std::cout << "pgpool: exec_cached ran on " << (cached_port == standby_port() ? "the standby" : "the primary") << "\n";
    CHECK(cached_port == standby_port());
    {
        // The same connection (a pool of 1), after DISCARD ALL went through pgpool to both backends.
        auto l = p.acquire();
        CHECK(text(*l, "SELECT current_setting('search_path')") != "pp_nowhere");
        CHECK_THROWS_AS(l->exec("EXECUTE pp_s"), cpg::sql_error);
        l->exec("ROLLBACK");
        auto r = l->exec_cached("SELECT inet_server_port(), $1::int", 7);
        CHECK(std::string(PQgetvalue(r.get(), 0, 1)) == "7");
    }
    CHECK(p.stats().created == 1);
    CHECK(p.stats().closed_for(connpool::close_reason::reset_failed) == 0);
}
