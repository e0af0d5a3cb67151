// Option validation: every invalid field throws std::invalid_argument naming it.
#include "connpool_catch.hpp"
#include "fake.hpp"

#include <string>

using namespace connpool;
using namespace connpool::test;

namespace {
std::string message_of(const options& o) {
    try {
        pool<fake_factory> p(fake_factory{}, o);
    } catch (const std::invalid_argument& e) {
        return e.what();
    }
    return "";
}
}  // namespace

TEST_CASE("the defaults are valid and documented values", "[options]") {
    options o;
    CHECK_NOTHROW(validate(o));
    CHECK(o.max_size == 10);
    CHECK(o.min_idle == 0);
    CHECK(o.acquire_timeout == 30s);
    CHECK(o.max_lifetime == 30min);
    CHECK(o.idle_timeout == 10min);
    CHECK(o.validation == validation_mode::when_idle);
    CHECK(o.reset_on_return);
}

TEST_CASE("an invalid option throws at construction naming the field and the value", "[options]") {
    struct bad {
        options o;
        const char* field;
        const char* value;
    };
    const bad cases[] = {
        {{.max_size = 0}, "max_size", "0"},
        {{.min_idle = 5, .max_size = 4}, "min_idle", "5"},
        {{.min_idle = 3, .max_size = 8, .max_idle = 2}, "max_idle", "2"},
        {{.max_size = 4, .max_idle = 5}, "max_idle", "5"},
        {{.idle_timeout = -1ms}, "idle_timeout", "-1ms"},
        {{.max_lifetime = -5ms}, "max_lifetime", "-5ms"},
        {{.lifetime_jitter = 0.9}, "lifetime_jitter", "0.9"},
        {{.acquire_timeout = 0ms}, "acquire_timeout", "0ms"},
        {{.connect_timeout = 0ms}, "connect_timeout", "0ms"},
        {{.validation_idle_threshold = -1ms}, "validation_idle_threshold", "-1ms"},
        {{.ping_timeout = 0ms}, "ping_timeout", "0ms"},
        {{.leak_threshold = -1ms}, "leak_threshold", "-1ms"},
        {{.max_connecting = 0}, "max_connecting", "0"},
        {{.backoff_initial = 0ms}, "backoff_initial", "0ms"},
        {{.backoff_initial = 2s, .backoff_max = 1s}, "backoff_max", "1000ms"},
        {{.housekeeping_interval = 0ms}, "housekeeping_interval", "0ms"},
        {{.worker_threads = 0}, "worker_threads", "0"},
    };
    for (const auto& c : cases) {
        INFO(c.field);
        const std::string m = message_of(c.o);
        CHECK(m.find(std::string("options::") + c.field + " = ") != std::string::npos);
        CHECK(m.find(c.value) != std::string::npos);
    }
}

TEST_CASE("runtime resize rejects sizes that break min_idle <= max_size", "[options][resize]") {
    pool<fake_factory> p(fake_factory{}, {.min_idle = 0, .max_size = 4});
    p.set_min_idle(2);
    CHECK_THROWS_WITH(p.set_max_size(1), Catch::Matchers::Contains("max_size = 1"));
    CHECK_THROWS_WITH(p.set_max_size(0), Catch::Matchers::Contains("max_size = 0"));
    CHECK_THROWS_WITH(p.set_min_idle(5), Catch::Matchers::Contains("min_idle = 5"));
    CHECK(p.stats().max_size == 4);
}
