// connpool::credential_cache with connpool::pg::factory against a real PostgreSQL, whose
// password the provider rotates (ALTER ROLE ... PASSWORD) each time it is asked: the
// provider is called only when its credential is stale, a failed refresh is the connect
// error, and a pool keeps serving while the password rotates under it.
#include "connpool_catch.hpp"
#include "pg_test_util.hpp"

#include <connpool/credentials.hpp>
#include <connpool/pg.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace cpg = connpool::pg;
using namespace connpool_test::pg;
using connpool::error_info;

namespace {

// A role of its own whose password the provider sets on the server at every call.
class rotating_role {
public:
    explicit rotating_role(const std::string& tag) : role_("cred_" + tag + "_" + std::to_string(::getpid())) {
        admin_query("DROP ROLE IF EXISTS " + role_);
        admin_query("CREATE ROLE " + role_ + " LOGIN PASSWORD 'never-used-0'");
    }
    ~rotating_role() {
        try {
            admin_query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '" + role_ + "'");
            admin_query("DROP ROLE IF EXISTS " + role_);
        } catch (...) {
        }
    }

    connpool::credential issue() {
        std::lock_guard lock(m_);
        const std::string password = "rotated-" + std::to_string(++issued_) + "-Secret";
        admin_query("ALTER ROLE " + role_ + " PASSWORD '" + password + "'");
        return {password, std::chrono::system_clock::now() + lifetime_};
    }

    void set_lifetime(std::chrono::milliseconds l) {
        std::lock_guard lock(m_);
        lifetime_ = l;
    }
    int issued() {
        std::lock_guard lock(m_);
        return issued_;
    }

    cpg::keywords keywords() const {
        return {{"host", env()["CONNPOOL_PG_HOST"]},
                {"port", env().port()},
                {"dbname", env()["CONNPOOL_PG_DBNAME"]},
                {"user", role_},
                {"password", "ignored-when-credentials-are-given"},
                {"sslmode", "disable"}};
    }

private:
    std::string role_;
    std::mutex m_;
    int issued_ = 0;
    std::chrono::milliseconds lifetime_ = std::chrono::hours(1);
};

}  // namespace

TEST_CASE("the provider is asked once while fresh, and after the server refused its password",
          "[pg][credentials]") {
    rotating_role r("fresh");
    connpool::credential_options co;
    co.retire_on_rotation = true;
    auto cache = std::make_shared<connpool::credential_cache>([&r] { return r.issue(); }, co);
    cpg::factory f(r.keywords(), cache);
    error_info e;
    auto first = f.connect({5s, 0}, e);
    INFO(e.message);
    REQUIRE(first.has_value());
    REQUIRE(f.connect({5s, 0}, e).has_value());
    CHECK(r.issued() == 1);

    // Rotated behind the cache's back: the connect fails with the server's refusal, which
    // makes the cached password stale, so the next connect fetches a new one.
    admin_query("ALTER ROLE cred_fresh_" + std::to_string(::getpid()) + " PASSWORD 'changed-elsewhere-9'");
    CHECK_FALSE(f.connect({5s, 0}, e).has_value());
    CHECK(e.message.find("password authentication failed") != std::string::npos);
    CHECK(e.message.find("changed-elsewhere-9") == std::string::npos);
    auto second = f.connect({5s, 0}, e);
    INFO(e.message);
    REQUIRE(second.has_value());
    CHECK(r.issued() == 2);
    CHECK(f.is_broken(*first));  // opened with the replaced password: retired on return
    CHECK_FALSE(f.is_broken(*second));
    CHECK(scalar(*first, "SELECT 1") == "1");  // yet the server keeps its session
}

TEST_CASE("a failed refresh fails the connect, blocking and async, with the provider's message",
          "[pg][credentials]") {
    auto cache = std::make_shared<connpool::credential_cache>(
        []() -> connpool::credential { throw std::runtime_error("token service unavailable"); });
    cpg::factory f(env().conninfo(), cache);
    error_info e;
    CHECK_FALSE(f.connect({5s, 0}, e).has_value());
    CHECK(e.code == connpool::errc::connect_failed);
    CHECK(e.message.find("token service unavailable") != std::string::npos);
    boost::asio::io_context io;
    error_info async_e;
    f.async_connect({5s, 0}, io.get_executor(),
                    [&](error_info got, std::optional<cpg::connection>) { async_e = std::move(got); });
    io.run();
    CHECK(async_e.message.find("token service unavailable") != std::string::npos);
}

TEST_CASE("a pool keeps serving while the provider rotates the role's password mid-run", "[pg][pool][credentials]") {
    rotating_role r("pool");
    r.set_lifetime(1500ms);
    connpool::credential_options co;
    co.refresh_margin = 1s;
    co.retire_on_rotation = true;
    auto cache = std::make_shared<connpool::credential_cache>([&r] { return r.issue(); }, co);
    connpool::options o;
    o.min_idle = 2;
    o.max_size = 2;
    o.max_connecting = 1;  // a connect never holds a password a concurrent refresh replaced
    o.max_lifetime = 300ms;
    o.lifetime_jitter = 0;
    o.acquire_timeout = 20s;
    o.detect_nested_acquire = false;
    cpg::pool pool(cpg::factory(r.keywords(), cache), o);

    std::atomic<bool> stop{false};
    std::atomic<int> queries{0}, failures{0};
    std::mutex m;
    std::string first_failure;
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t) {
        ts.emplace_back([&] {
            while (!stop) {
                try {
                    auto lease = pool.acquire();
                    if (scalar(*lease, "SELECT 1") == "1") ++queries;
                } catch (const std::exception& ex) {
                    ++failures;
                    std::lock_guard lock(m);
                    if (first_failure.empty()) first_failure = ex.what();
                }
            }
        });
    }
    const bool rotated = eventually([&] { return r.issued() >= 3 && queries > 100; }, 60s);
    stop = true;
    for (auto& t : ts) t.join();
    CHECK(rotated);
    INFO(first_failure);
    CHECK(failures == 0);
    CHECK(pool.stats().created >= 3);
}
