// Reset, ping and a label's apply() against a frozen PostgreSQL (SIGSTOP on the postmaster
// and the backend): each gives up within its bound instead of hanging, and an acquire whose
// apply() meets a frozen backend ends at the caller's deadline. Uses the private pg_restart_server, because
// freezing the postmaster stalls every session on it; the tests hold its resource lock.
#include "connpool_catch.hpp"
#include "pg_test_util.hpp"

#include <connpool/pg.hpp>

#include <signal.h>

#include <chrono>
#include <fstream>
#include <string>
#include <vector>

namespace cpg = connpool::pg;
using namespace connpool_test::pg;
using connpool::errc;
using connpool::error_info;

namespace {

// SIGSTOP on the given processes until destroyed (SIGCONT on every path).
class frozen {
public:
    explicit frozen(std::vector<int> pids) : pids_(std::move(pids)) {
        for (int pid : pids_) REQUIRE(::kill(pid, SIGSTOP) == 0);
    }
    ~frozen() {
        for (int pid : pids_) ::kill(pid, SIGCONT);
    }
    frozen(const frozen&) = delete;
    frozen& operator=(const frozen&) = delete;

private:
    std::vector<int> pids_;
};

int postmaster_pid() {
    std::ifstream in(env()["CONNPOOL_PG_STATE_DIR"] + "/data/postmaster.pid");
    int pid = 0;
    in >> pid;
    REQUIRE(pid > 0);
    return pid;
}

std::optional<cpg::connection> connect_ok(cpg::factory& f) {
    error_info e;
    auto c = f.connect({5s, 0}, e);
    INFO(e.message);
    REQUIRE(c.has_value());
    return c;
}

}  // namespace

TEST_CASE("the cancel request can be built from this libpq's PGcancel", "[pg][reset]") {
    cpg::factory f(env().conninfo());
    auto c = connect_ok(f);
    const auto target = cpg::detail::cancel_target_of(c->native_handle());
    CHECK(target.usable);
    CHECK(static_cast<int>(target.pid) == PQbackendPID(c->native_handle()));
}

TEST_CASE("reset and ping give up on a frozen server within reset_timeout and ping's timeout",
          "[pg][reset][ping][timeout]") {
    cpg::factory_options o;
    o.reset_timeout = 500ms;
    cpg::factory f(env().conninfo(), o);
    auto c = connect_ok(f);
    PGconn* n = c->native_handle();

    SECTION("a query still running: the cancel and the drain are bounded") {
        REQUIRE(PQsendQuery(n, "SELECT pg_sleep(60)") == 1);
    }
    SECTION("an open transaction: the ROLLBACK is bounded") {
        c->exec("BEGIN");
    }
    SECTION("a ping is bounded") {
        frozen stop({postmaster_pid(), PQbackendPID(n)});
        error_info e;
        CHECK_FALSE(f.ping(*c, 300ms, e));
        CHECK(e.code == errc::ping_failed);
        CHECK(f.is_broken(*c));
        return;
    }
    REQUIRE(f.needs_reset(*c));
    frozen stop({postmaster_pid(), PQbackendPID(n)});
    error_info e;
    CHECK_FALSE(f.reset(*c, e));
    CHECK(e.code == errc::reset_failed);
    CHECK(f.is_broken(*c));
}

TEST_CASE("an acquire whose label apply() meets a frozen backend ends at the caller's deadline, and the "
          "connection comes back carrying the label once the server answers",
          "[pg][labels][timeout]") {
    cpg::factory_options fo;
    fo.reset_timeout = 5s;  // bounds apply()'s round trip: far beyond the caller's 200 ms
    connpool::options o;
    o.max_size = 1;
    o.acquire_timeout = 10s;
    cpg::pool pool(cpg::factory(env().conninfo(), fo), o);
    int backend = 0;
    {
        auto l = pool.acquire();
        backend = PQbackendPID(l->native_handle());
    }
    const connpool::label tokyo{{"TimeZone", "Asia/Tokyo"}};
    {
        frozen stop({backend});
        connpool::error_code ec;
        const auto t0 = std::chrono::steady_clock::now();
        auto l = pool.acquire_for(tokyo, 200ms, ec);
        const auto took = std::chrono::steady_clock::now() - t0;
        CHECK_FALSE(l);
        CHECK(ec == errc::acquire_timeout);
        // Not a speed check: on 0.2 the caller waited for the whole apply (its reset_timeout).
        CHECK(took < 2s);
    }
    // Thawed: the apply ends, the connection goes back labelled (or, had it failed, closed
    // and replaced); either way the next caller gets the label.
    auto l = pool.acquire_for(tokyo, 10s);
    CHECK(scalar(*l, "SELECT current_setting('TimeZone')") == "Asia/Tokyo");
    CHECK(pool.stats().open == 1);
}
