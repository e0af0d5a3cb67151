// Labels over a real PostgreSQL (label "pg"): session settings never leak between labels,
// a connection that already carries a label costs no round trip, and a failing apply
// closes the connection while the caller still gets a usable one.
#include "connpool_catch.hpp"
#include "pg_test_util.hpp"

#include <connpool/pg.hpp>

#include <atomic>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

namespace cpg = connpool::pg;
using namespace connpool_test::pg;

namespace {

// pg::factory with its apply() calls counted: each one is a round trip (none when the
// labels agree, which the pool never asks for).
struct counting_factory : cpg::factory {
    explicit counting_factory(cpg::factory f) : cpg::factory(std::move(f)) {}
    std::shared_ptr<std::atomic<int>> applies = std::make_shared<std::atomic<int>>(0);
    // While positive, an apply() sends a role that does not exist instead: the server fails it.
    std::shared_ptr<std::atomic<int>> sabotage = std::make_shared<std::atomic<int>>(0);

    bool apply(cpg::connection& c, const connpool::label& from, const connpool::label& to, connpool::error_info& e) {
        ++*applies;
        if (sabotage->fetch_sub(1) > 0) return cpg::factory::apply(c, from, connpool::label{{"role", "cpt_no_such_role"}}, e);
        return cpg::factory::apply(c, from, to, e);
    }
};

connpool::options opts(std::size_t n) {
    connpool::options o;
    o.max_size = n;
    o.acquire_timeout = std::chrono::seconds(10);
    return o;
}

void make_schemas() {
    admin_query("CREATE SCHEMA IF NOT EXISTS cpt_label_a");
    admin_query("CREATE SCHEMA IF NOT EXISTS cpt_label_b");
    admin_query("GRANT USAGE ON SCHEMA cpt_label_a, cpt_label_b TO PUBLIC");
}

}  // namespace

TEST_CASE("label B never sees label A's search_path, and an unlabelled caller sees the default", "[pg][labels]") {
    make_schemas();
    connpool::basic_pool<counting_factory> pool(
        counting_factory(cpg::factory(conninfo_with("application_name=" + unique_app("labels")))), opts(1));
    const connpool::label a{{"search_path", "cpt_label_a"}};
    const connpool::label b{{"search_path", "cpt_label_b"}, {"TimeZone", "Asia/Tokyo"}};
    std::string plain;
    {
        auto l = pool.acquire();
        plain = scalar(*l, "SELECT current_setting('search_path')");
    }
    {
        auto l = pool.acquire(a);
        CHECK(scalar(*l, "SELECT current_setting('search_path')") == "cpt_label_a");
    }
    {
        auto l = pool.acquire(b);  // the same connection (pool of 1), moved from A to B
        CHECK(scalar(*l, "SELECT current_setting('search_path')") == "cpt_label_b");
        CHECK(scalar(*l, "SELECT current_setting('TimeZone')") == "Asia/Tokyo");
    }
    {
        auto l = pool.acquire();
        CHECK(scalar(*l, "SELECT current_setting('search_path')") == plain);
        CHECK(scalar(*l, "SELECT current_setting('TimeZone')") != "Asia/Tokyo");
    }
}

TEST_CASE("acquiring with the label a connection already carries costs no extra round trip", "[pg][labels]") {
    make_schemas();
    counting_factory f(cpg::factory(conninfo_with("application_name=" + unique_app("labels0"))));
    auto applies = f.applies;
    connpool::basic_pool<counting_factory> pool(std::move(f), opts(2));
    const connpool::label a{{"search_path", "cpt_label_a"}};
    { auto l = pool.acquire(a); }
    CHECK(*applies == 1);
    for (int i = 0; i < 10; ++i) {
        auto l = pool.acquire(a);
        CHECK(scalar(*l, "SELECT current_setting('search_path')") == "cpt_label_a");
    }
    CHECK(*applies == 1);
}

TEST_CASE("a failing apply closes that connection and the caller still gets a usable one with its label",
          "[pg][labels]") {
    make_schemas();
    counting_factory f(cpg::factory(conninfo_with("application_name=" + unique_app("labelsfail"))));
    auto sabotage = f.sabotage;
    connpool::basic_pool<counting_factory> pool(std::move(f), opts(2));
    { auto warm = pool.acquire(); }
    *sabotage = 1;
    auto l = pool.acquire(connpool::label{{"search_path", "cpt_label_a"}});
    CHECK(scalar(*l, "SELECT current_setting('search_path')") == "cpt_label_a");
    CHECK(pool.stats().closed_for(connpool::close_reason::reset_failed) == 1);
}

TEST_CASE("a label whose role does not exist fails, and its quoted name cannot inject SQL", "[pg][labels]") {
    connpool::basic_pool<counting_factory> pool(
        counting_factory(cpg::factory(conninfo_with("application_name=" + unique_app("labelsbad")))), opts(2));
    // A role that does not exist: every SET ROLE fails and closes its connection; after a
    // few new connections the acquire fails with the server's error, not at its timeout.
    connpool::error_code ec;
    auto bad = pool.acquire_for(connpool::tenant_id{}, connpool::label{{"role", "no_such_role\"; DROP TABLE x; --"}},
                                std::chrono::milliseconds(300), ec);
    CHECK_FALSE(bad);
    CHECK(ec == connpool::errc::reset_failed);  // the cause, not acquire_timeout
    const auto st = pool.stats();
    CHECK(st.closed_for(connpool::close_reason::reset_failed) >= 1);
    CHECK(st.closed_for(connpool::close_reason::reset_failed) <= 3);  // no storm: 0.2 opened 16,603
    CHECK_THAT(st.last_connect_error, Catch::Contains("does not exist"));
    CHECK(st.label_apply_failures >= 1);
    // The pool is still usable, with clean connections.
    auto l = pool.acquire();
    CHECK(scalar(*l, "SELECT 1") == "1");
    CHECK(scalar(*l, "SELECT current_user") != "no_such_role");
}
