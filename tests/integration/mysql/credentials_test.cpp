// connpool::credential_cache with connpool::mysql::factory against a real MariaDB, whose
// password the provider rotates (ALTER USER) each time it is asked: the provider is called
// only near expiry and once for many connects at once, a failed refresh is the connect error,
// and a pool keeps serving while the password rotates under it.
#include "connpool_catch.hpp"
#include "mysql/mysql_env.hpp"

#include <connpool/credentials.hpp>
#include <connpool/mysql.hpp>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace mysql = connpool::mysql;
using connpool_test::mysql::eventually;
using connpool_test::mysql::shared_server;

namespace {

const connpool::connect_request request{5s, 0};

// A user of its own whose password the provider sets on the server every time it is called,
// like a token service that issues a new token on each request.
class rotating_user {
public:
    explicit rotating_user(const std::string& tag)
        : user_("cred_" + tag + "_" + std::to_string(::getpid())) {
        shared_server().admin("CREATE OR REPLACE USER '" + user_ + "'@'%' IDENTIFIED BY 'never-used-0'");
    }
    ~rotating_user() {
        try {
            shared_server().admin("DROP USER IF EXISTS '" + user_ + "'@'%'");
        } catch (...) {
        }
    }

    // The provider; each credential expires `lifetime` from now.
    connpool::credential issue() {
        std::lock_guard lock(m_);
        const std::string password = "rotated-" + std::to_string(++issued_) + "-Secret";
        shared_server().admin("ALTER USER '" + user_ + "'@'%' IDENTIFIED BY '" + password + "'");
        if (delay_.count() > 0) std::this_thread::sleep_for(delay_);
        return {password, std::chrono::system_clock::now() + lifetime_};
    }

    void set_lifetime(std::chrono::milliseconds l) {
        std::lock_guard lock(m_);
        lifetime_ = l;
    }
    void set_delay(std::chrono::milliseconds d) {
        std::lock_guard lock(m_);
        delay_ = d;
    }
    int issued() {
        std::lock_guard lock(m_);
        return issued_;
    }

    mysql::connect_options options() const {
        auto o = shared_server().tcp();
        o.user = user_;
        o.database.clear();
        o.password = "ignored-when-credentials-are-given";
        return o;
    }

private:
    std::string user_;
    std::mutex m_;
    int issued_ = 0;
    std::chrono::milliseconds lifetime_ = std::chrono::hours(1);
    std::chrono::milliseconds delay_{0};
};

std::shared_ptr<connpool::credential_cache> cache_for(rotating_user& u, connpool::credential_options o = {}) {
    return std::make_shared<connpool::credential_cache>([&u] { return u.issue(); }, o);
}

}  // namespace

TEST_CASE("the provider is asked once while its credential is fresh, and again near expiry", "[mysql][credentials]") {
    rotating_user u("fresh");
    connpool::credential_options co;
    co.refresh_margin = 10min;
    co.retire_on_rotation = true;
    auto cache = cache_for(u, co);
    mysql::factory f(u.options(), cache);
    connpool::error_info err;

    std::vector<mysql::connection> open;
    for (int i = 0; i < 4; ++i) {
        auto c = f.connect(request, err);
        INFO(err.message);
        REQUIRE(c.has_value());
        open.push_back(std::move(*c));
    }
    CHECK(u.issued() == 1);
    CHECK(cache->refreshes() == 1);

    // The next credential is born inside the margin, so the next connect refreshes first, and
    // the server password changes under the four open sessions.
    u.set_lifetime(1min);
    cache->invalidate(cache->generation());
    auto rotated = f.connect(request, err);
    INFO(err.message);
    REQUIRE(rotated.has_value());
    CHECK(u.issued() == 2);
    CHECK(rotated->query_value("SELECT 1") == "1");
    // Sessions opened with the old password still work, but the pool should replace them.
    CHECK(open.front().query_value("SELECT 1") == "1");
    CHECK(f.is_broken(open.front()));
    CHECK_FALSE(f.is_broken(*rotated));
    // Within the margin every connect refreshes.
    REQUIRE(f.connect(request, err).has_value());
    CHECK(u.issued() == 3);
}

TEST_CASE("connects that find the credential stale wait for one refresh together", "[mysql][credentials]") {
    rotating_user u("flight");
    u.set_delay(200ms);  // a slow token service
    auto cache = cache_for(u);
    mysql::factory f(u.options(), cache);
    std::atomic<int> ok{0};
    std::vector<std::thread> ts;
    for (int i = 0; i < 8; ++i) {
        ts.emplace_back([&] {
            connpool::error_info err;
            if (f.connect(request, err)) ++ok;
        });
    }
    for (auto& t : ts) t.join();
    CHECK(ok == 8);
    CHECK(u.issued() == 1);
}

TEST_CASE("a failed refresh is the connect error, and names no password", "[mysql][credentials]") {
    auto cache = std::make_shared<connpool::credential_cache>(
        []() -> connpool::credential { throw std::runtime_error("token service unavailable"); });
    auto opts = shared_server().tcp();
    mysql::factory f(opts, cache);
    connpool::error_info err;
    CHECK_FALSE(f.connect(request, err).has_value());
    CHECK(err.code == connpool::errc::connect_failed);
    CHECK(err.message.find("token service unavailable") != std::string::npos);
    CHECK(err.message.find(opts.password) == std::string::npos);
#if CONNPOOL_MYSQL_NONBLOCKING
    boost::asio::io_context io;
    connpool::error_info async_err;
    bool connected = true;
    f.async_connect(request, io.get_executor(), [&](connpool::error_info e, std::optional<mysql::connection> c) {
        async_err = std::move(e);
        connected = c.has_value();
    });
    io.run();
    CHECK_FALSE(connected);
    CHECK(async_err.message.find("token service unavailable") != std::string::npos);
#endif
}

#if CONNPOOL_MYSQL_NONBLOCKING
TEST_CASE("async_connect takes its password from an asynchronous provider", "[mysql][credentials][async]") {
    rotating_user u("async");
    // Answers from a thread of its own, as a client of a token service would.
    auto cache = std::make_shared<connpool::credential_cache>([&u](connpool::credential_handler h) {
        std::thread([&u, h = std::move(h)]() mutable { std::move(h)(connpool::error_info{}, u.issue()); }).detach();
    });
    mysql::factory f(u.options(), cache);
    boost::asio::io_context io;
    int connected = 0;
    for (int i = 0; i < 3; ++i) {
        f.async_connect(request, io.get_executor(), [&](connpool::error_info e, std::optional<mysql::connection> c) {
            INFO(e.message);
            CHECK(c.has_value());
            if (c) ++connected;
        });
    }
    io.run();
    CHECK(connected == 3);
    CHECK(u.issued() == 1);
}
#endif

TEST_CASE("a pool keeps serving while the provider rotates the server password mid-run",
          "[mysql][pool][credentials]") {
    rotating_user u("pool");
    // Each credential is inside the refresh margin soon after it is issued, so connects
    // after that rotate the password.
    u.set_lifetime(1500ms);
    connpool::credential_options co;
    co.refresh_margin = 1s;
    co.retire_on_rotation = true;
    auto cache = cache_for(u, co);
    connpool::options o;
    o.min_idle = 2;
    o.max_size = 2;
    // One connect at a time: a connect never holds a password that a concurrent refresh has
    // just replaced on the server (MariaDB has no overlap of old and new passwords).
    o.max_connecting = 1;
    o.max_lifetime = 300ms;  // reconnects, which find the credential near expiry
    o.lifetime_jitter = 0;
    o.acquire_timeout = 20s;
    o.detect_nested_acquire = false;
    mysql::pool pool(mysql::factory(u.options(), cache), o);

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
                    if (lease->query_value("SELECT 1") == "1") ++queries;
                } catch (const std::exception& e) {
                    ++failures;
                    std::lock_guard lock(m);
                    if (first_failure.empty()) first_failure = e.what();
                }
            }
        });
    }
    const bool rotated = eventually([&] { return u.issued() >= 3 && queries > 100; }, std::chrono::seconds(60));
    stop = true;
    for (auto& t : ts) t.join();
    CHECK(rotated);
    INFO(first_failure);
    CHECK(failures == 0);
    const auto st = pool.stats();
    CHECK(st.created >= 3);
    CHECK(first_failure.find("rotated-") == std::string::npos);
}
