// Metrics export: OpenTelemetry names, the Prometheus mapping and text format, the registry.
// The renderers are fed hand-made pool_stats, so histogram values are checked exactly even
// where the core does not fill them yet; a real pool only feeds the gauges and counters.
#include "connpool_catch.hpp"

#include <connpool.hpp>
#include <connpool/metrics.hpp>

#if defined(CONNPOOL_TEST_PROMETHEUS_CPP)
#include <connpool/prometheus.hpp>
#include <prometheus/text_serializer.h>
#endif

#include <algorithm>
#include <atomic>
#include <limits>
#include <memory>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace connpool;
using namespace connpool::metrics;

namespace {

const instrument* find_point(const std::vector<instrument>& points, std::string_view name,
                             std::string_view attr_key = {}, std::string_view attr_value = {}) {
    for (const auto& p : points) {
        if (p.name != name) continue;
        if (attr_key.empty()) return &p;
        for (const auto& a : p.attributes)
            if (a.key == attr_key && a.value == attr_value) return &p;
    }
    return nullptr;
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) out.push_back(line);
    return out;
}

// A pool_stats with every field distinct, so a value exported under the wrong name shows.
pool_stats sample_stats() {
    pool_stats s;
    s.open = 7;
    s.idle = 3;
    s.in_use = 2;  // 7 - 3 - 2 = 2 connections busy with reset or ping
    s.creating = 1;
    s.waiting = 4;
    s.max_size = 10;
    s.min_idle = 2;
    s.max_idle = 6;
    s.acquired = 1001;
    s.waited = 17;
    s.created = 23;
    s.connect_failures = 5;
    s.timeouts = 9;
    s.cancelled = 11;
    s.rejected = 13;
    s.fast_failed = 19;
    s.leaks_reported = 29;
    s.label_hits = 41;
    s.label_applies = 43;
    s.label_apply_failures = 47;
    s.closed[static_cast<std::size_t>(close_reason::lifetime)] = 31;
    s.closed[static_cast<std::size_t>(close_reason::broken)] = 37;
    s.wait_max = std::chrono::microseconds(2500);
    // wait_time: 2 under 1 us, 5 in [4, 8) us, 1 beyond every edge.
    s.wait_time.buckets[0] = 2;
    s.wait_time.buckets[3] = 5;
    s.wait_time.buckets[duration_histogram::bucket_count - 1] = 1;
    s.wait_time.count = 8;
    s.wait_time.sum = std::chrono::milliseconds(1500);
    s.use_time.buckets[10] = 3;  // [512, 1024) us
    s.use_time.count = 3;
    s.use_time.sum = std::chrono::microseconds(2100);
    return s;
}

// A trivial factory: connections are integers, connects never fail.
struct counting_factory {
    using connection_type = int;
    std::shared_ptr<std::atomic<int>> next = std::make_shared<std::atomic<int>>(0);
    std::optional<int> connect(const connect_request&, error_info&) { return ++*next; }
};

}  // namespace

TEST_CASE("OpenTelemetry names map to Prometheus names with unit and _total suffixes", "[metrics][names]") {
    using k = instrument_kind;
    CHECK(prometheus_name("db.client.connection.wait_time", "s", k::histogram) ==
          "db_client_connection_wait_time_seconds");
    CHECK(prometheus_name("db.client.connection.timeouts", "{timeout}", k::counter) ==
          "db_client_connection_timeouts_total");
    CHECK(prometheus_name("db.client.connection.count", "{connection}", k::up_down_counter) ==
          "db_client_connection_count");
    CHECK(prometheus_name("db.client.connection.idle.max", "{connection}", k::up_down_counter) ==
          "db_client_connection_idle_max");
    SECTION("a suffix already present is not doubled") {
        CHECK(prometheus_name("request.duration_seconds", "s", k::histogram) == "request_duration_seconds");
        CHECK(prometheus_name("bytes.sent_total", "By", k::counter) == "bytes_sent_bytes_total");
        CHECK(prometheus_name("requests.total", "{request}", k::counter) == "requests_total");
    }
    SECTION("invalid characters become one underscore and a leading digit is prefixed") {
        CHECK(prometheus_name("my..pool-metric/x", "", k::gauge) == "my_pool_metric_x");
        CHECK(prometheus_name("9lives", "", k::gauge) == "_9lives");
        CHECK(prometheus_label_name("db.client.connection.pool.name") == "db_client_connection_pool_name");
        CHECK(prometheus_label_name("a:b") == "a_b");
    }
    SECTION("up-down counters are gauges to Prometheus") {
        CHECK(std::string(prometheus_type(k::up_down_counter)) == "gauge");
        CHECK(std::string(prometheus_type(k::counter)) == "counter");
        CHECK(std::string(prometheus_type(k::histogram)) == "histogram");
    }
}

TEST_CASE("label values escape backslash, double quote and line feed only", "[metrics][names]") {
    CHECK(escape_label_value(R"(a"b\c)" "\nd") == R"(a\"b\\c\nd)");
    CHECK(escape_label_value("caf\xc3\xa9 {x=1}") == "caf\xc3\xa9 {x=1}");
    CHECK(escape_help("one\\two\nthree \"q\"") == "one\\\\two\\nthree \"q\"");
}

TEST_CASE("values print as the shortest text that reads back the same", "[metrics][names]") {
    CHECK(format_value(3) == "3");
    CHECK(format_value(1.6e-05) == "1.6e-05");
    CHECK(format_value(0.25) == "0.25");
    CHECK(format_value(std::numeric_limits<double>::infinity()) == "+Inf");
    CHECK(format_value(std::numeric_limits<double>::quiet_NaN()) == "NaN");
}

TEST_CASE("every semantic-convention instrument carries the pool's name and the right value", "[metrics][otel]") {
    const auto points = to_instruments("primary", sample_stats());
    for (const auto& p : points) {
        REQUIRE_FALSE(p.attributes.empty());
        CHECK(p.attributes.front() == attribute{"db.client.connection.pool.name", "primary"});
    }
    const auto* idle = find_point(points, names::count, names::state, "idle");
    const auto* used = find_point(points, names::count, names::state, "used");
    REQUIRE(idle);
    REQUIRE(used);
    CHECK(idle->value == 3);
    CHECK(used->value == 4);  // open minus idle: leased plus busy with reset or ping
    CHECK(idle->kind == instrument_kind::up_down_counter);
    CHECK(idle->unit == "{connection}");

    struct expected {
        std::string_view name;
        instrument_kind kind;
        std::string_view unit;
        double value;
    };
    using k = instrument_kind;
    for (const expected& e : {expected{names::max, k::up_down_counter, "{connection}", 10},
                              expected{names::idle_max, k::up_down_counter, "{connection}", 6},
                              expected{names::idle_min, k::up_down_counter, "{connection}", 2},
                              expected{names::pending_requests, k::up_down_counter, "{request}", 4},
                              expected{names::timeouts, k::counter, "{timeout}", 9},
                              expected{"connpool.connection.in_use", k::up_down_counter, "{connection}", 2},
                              expected{"connpool.connection.creating", k::up_down_counter, "{connection}", 1},
                              expected{"connpool.acquired", k::counter, "{lease}", 1001},
                              expected{"connpool.waited", k::counter, "{lease}", 17},
                              expected{"connpool.created", k::counter, "{connection}", 23},
                              expected{"connpool.connect_failures", k::counter, "{failure}", 5},
                              expected{"connpool.cancelled", k::counter, "{request}", 11},
                              expected{"connpool.rejected", k::counter, "{request}", 13},
                              expected{"connpool.fast_failed", k::counter, "{request}", 19},
                              expected{"connpool.leaks_reported", k::counter, "{lease}", 29},
                              expected{"connpool.label.hits", k::counter, "{lease}", 41},
                              expected{"connpool.label.applies", k::counter, "{call}", 43},
                              expected{"connpool.label.apply_failures", k::counter, "{call}", 47},
                              expected{"connpool.wait.max", k::gauge, "s", 0.0025}}) {
        INFO(e.name);
        const auto* p = find_point(points, e.name);
        REQUIRE(p);
        CHECK(p->kind == e.kind);
        CHECK(p->unit == e.unit);
        CHECK(p->value == e.value);
    }
    for (std::string_view h : {names::create_time, names::wait_time, names::use_time}) {
        INFO(h);
        const auto* p = find_point(points, h);
        REQUIRE(p);
        CHECK(p->kind == instrument_kind::histogram);
        CHECK(p->unit == "s");
    }
    const auto* lifetime = find_point(points, "connpool.closed", names::close_reason, "lifetime");
    const auto* broken = find_point(points, "connpool.closed", names::close_reason, "broken");
    const auto* resized = find_point(points, "connpool.closed", names::close_reason, "resized");
    REQUIRE(lifetime);
    REQUIRE(broken);
    REQUIRE(resized);
    CHECK(lifetime->value == 31);
    CHECK(broken->value == 37);
    CHECK(resized->value == 0);
}

TEST_CASE("histogram points keep the log2 edges in seconds and their counts", "[metrics][otel][histogram]") {
    const pool_stats s = sample_stats();
    SECTION("stride 1 keeps every finite edge") {
        const auto h = to_histogram_point(s.wait_time, {});
        REQUIRE(h.bounds.size() == duration_histogram::bucket_count - 1);
        REQUIRE(h.counts.size() == duration_histogram::bucket_count);
        CHECK(h.bounds[0] == 1e-6);
        CHECK(h.bounds[3] == 8e-6);
        CHECK(h.counts[0] == 2);
        CHECK(h.counts[3] == 5);
        CHECK(h.counts.back() == 1);
        CHECK(h.count == 8);
        CHECK(h.sum == 1.5);
    }
    SECTION("stride 2 merges buckets and keeps the counts exact at the edges it keeps") {
        const auto h = to_histogram_point(s.wait_time, {.stride = 2});
        REQUIRE(h.bounds.size() == 20);  // edges 2^0, 2^2, ... 2^38 us
        CHECK(h.bounds[1] == 4e-6);
        CHECK(h.bounds[2] == 16e-6);
        CHECK(h.counts[0] == 2);
        CHECK(h.counts[1] == 0);  // (1, 4] us
        CHECK(h.counts[2] == 5);  // (4, 16] us
        CHECK(h.counts.back() == 1);
        std::uint64_t total = 0;
        for (auto c : h.counts) total += c;
        CHECK(total == h.count);
    }
}

TEST_CASE("the text format has cumulative buckets ending in +Inf, then _sum and _count", "[metrics][prometheus]") {
    const std::string text = to_prometheus_text("primary", sample_stats());
    const std::string labels = R"(db_client_connection_pool_name="primary")";
    const std::string name = "db_client_connection_wait_time_seconds";
    CHECK(text.find("# TYPE " + name + " histogram\n") != std::string::npos);
    CHECK(text.find(name + "_bucket{" + labels + R"(,le="1e-06"} 2)" "\n") != std::string::npos);
    CHECK(text.find(name + "_bucket{" + labels + R"(,le="4e-06"} 2)" "\n") != std::string::npos);
    CHECK(text.find(name + "_bucket{" + labels + R"(,le="8e-06"} 7)" "\n") != std::string::npos);
    CHECK(text.find(name + "_bucket{" + labels + R"(,le="+Inf"} 8)" "\n") != std::string::npos);
    CHECK(text.find(name + "_sum{" + labels + "} 1.5\n") != std::string::npos);
    CHECK(text.find(name + "_count{" + labels + "} 8\n") != std::string::npos);
    CHECK(text.find("db_client_connection_use_time_seconds_sum{" + labels + "} 0.0021\n") != std::string::npos);
    CHECK(text.find("db_client_connection_timeouts_total{" + labels + "} 9\n") != std::string::npos);
    CHECK(text.find("db_client_connection_count{" + labels + R"(,db_client_connection_state="used"} 4)") !=
          std::string::npos);
    CHECK(text.find("connpool_closed_total{" + labels + R"(,connpool_close_reason="broken"} 37)") !=
          std::string::npos);
    CHECK(text.find("connpool_wait_max_seconds{" + labels + "} 0.0025\n") != std::string::npos);
}

TEST_CASE("several pools share one HELP and TYPE per family and their samples stay together", "[metrics][prometheus]") {
    const std::vector<named_stats> pools{{"primary", sample_stats()}, {R"(odd "name"\)" "\n", pool_stats{}}};
    const std::string text = to_prometheus_text(pools, {.stride = 4});
    // Every line is a comment or a well-formed sample; both pools' label values are present.
    const std::regex sample(R"re(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? \S+$)re");
    std::set<std::string> finished;  // families whose samples are over
    std::string current;
    std::size_t type_lines = 0;
    for (const std::string& line : lines_of(text)) {
        INFO(line);
        if (line.starts_with("# TYPE ")) {
            ++type_lines;
            const std::string family = line.substr(7, line.find(' ', 7) - 7);
            CHECK(finished.insert(family).second);  // no family is announced twice
            current = family;
            continue;
        }
        if (line.starts_with("# HELP ")) continue;
        CHECK(std::regex_match(line, sample));
        CHECK(line.starts_with(current));  // a sample belongs to the family announced last
    }
    CHECK(type_lines == to_instruments("x", pool_stats{}).size() - 1 - (close_reason_count - 1));
    CHECK(text.find(R"(db_client_connection_pool_name="odd \"name\"\\\n")") != std::string::npos);
    CHECK(text.find(R"(db_client_connection_max{db_client_connection_pool_name="primary"} 10)") != std::string::npos);
}

TEST_CASE("the registry reads every pool in the order added and refuses a duplicate name", "[metrics][registry]") {
    pool_registry reg;
    reg.add("b", [] {
        pool_stats s;
        s.max_size = 2;
        return s;
    });
    reg.add("a", [] {
        pool_stats s;
        s.max_size = 1;
        return s;
    });
    CHECK_THROWS_AS(reg.add("a", [] { return pool_stats{}; }), std::invalid_argument);
    CHECK_THROWS_AS(reg.add("c", pool_registry::source{}), std::invalid_argument);
    const auto snapshot = reg.collect();
    REQUIRE(snapshot.size() == 2);
    CHECK(snapshot[0].name == "b");
    CHECK(snapshot[0].stats.max_size == 2);
    CHECK(snapshot[1].name == "a");
    CHECK(reg.remove("b"));
    CHECK_FALSE(reg.remove("b"));
    CHECK_FALSE(reg.contains("b"));
    CHECK(reg.size() == 1);
}

TEST_CASE("registering a pool reads its stats once, so that its measurements start then", "[metrics][registry]") {
    pool_registry reg;
    int calls = 0;
    reg.add("counted", [&] {
        ++calls;
        return pool_stats{};
    });
    CHECK(calls == 1);
    (void)reg.collect();
    CHECK(calls == 2);
}

TEST_CASE("a pool whose stats function throws is left out and the others are still read", "[metrics][registry]") {
    pool_registry reg;
    reg.add("broken", []() -> pool_stats { throw std::runtime_error("gone"); });
    reg.add("fine", [] { return pool_stats{}; });
    const auto snapshot = reg.collect();
    REQUIRE(snapshot.size() == 1);
    CHECK(snapshot[0].name == "fine");
}

TEST_CASE("a real pool's gauges and counters reach the text through the registry", "[metrics][registry]") {
    pool<counting_factory> p(counting_factory{}, {.max_size = 3});
    pool_registry reg;
    reg.add("live", p);
    {
        typename pool<counting_factory>::lease_type a = p.acquire();
        typename pool<counting_factory>::lease_type b = p.acquire();
        REQUIRE(a);
        REQUIRE(b);
        const std::string text = to_prometheus_text(reg.collect());
        CHECK(text.find(R"(connpool_connection_in_use{db_client_connection_pool_name="live"} 2)") != std::string::npos);
        CHECK(text.find(R"(connpool_acquired_total{db_client_connection_pool_name="live"} 2)") != std::string::npos);
        CHECK(text.find(R"(db_client_connection_max{db_client_connection_pool_name="live"} 3)") != std::string::npos);
        // The histograms are present whether or not the core fills them yet.
        for (const char* h : {"create_time", "wait_time", "use_time"}) {
            INFO(h);
            CHECK(text.find(std::string("db_client_connection_") + h +
                            R"(_seconds_count{db_client_connection_pool_name="live"} )") != std::string::npos);
        }
    }
    CHECK(reg.remove("live"));
}

TEST_CASE("removing a pool while another thread collects never reads it afterwards", "[metrics][registry]") {
    pool_registry reg;
    std::atomic<bool> removed{false};
    std::atomic<int> reads_after_removal{0};
    reg.add("keep", [] { return pool_stats{}; });
    reg.add("going", [&] {
        if (removed.load()) ++reads_after_removal;
        return pool_stats{};
    });
    std::atomic<bool> stop{false};
    std::thread scraper([&] {
        while (!stop.load()) (void)reg.collect();
    });
    for (int i = 0; i < 200; ++i) (void)reg.collect();  // let the scraper run a while, without sleeping
    REQUIRE(reg.remove("going"));
    removed = true;
    for (int i = 0; i < 200; ++i) (void)reg.collect();
    stop = true;
    scraper.join();
    CHECK(reads_after_removal.load() == 0);
}

#if defined(CONNPOOL_TEST_PROMETHEUS_CPP)
TEST_CASE("the prometheus-cpp collectable serializes to the same samples as the text renderer",
          "[metrics][prometheus-cpp]") {
    auto collectable = std::make_shared<prometheus_collectable>(histogram_options{.stride = 3});
    collectable->add("primary", [] { return sample_stats(); });
    collectable->add("other", [] { return pool_stats{}; });
    std::ostringstream out;
    ::prometheus::TextSerializer().Serialize(out, collectable->Collect());

    // prometheus-cpp orders a histogram's _count and _sum before its buckets: compare sets.
    const std::vector<named_stats> pools{{"primary", sample_stats()}, {"other", pool_stats{}}};
    auto ours = lines_of(to_prometheus_text(pools, {.stride = 3}));
    auto theirs = lines_of(out.str());
    std::erase(theirs, std::string());
    std::sort(ours.begin(), ours.end());
    std::sort(theirs.begin(), theirs.end());
    CHECK(ours == theirs);

    CHECK(collectable->remove("other"));
    CHECK(collectable->size() == 1);
}
#endif

TEST_CASE("tenant cancellations, tenant rejections and the label counters are exported in both forms",
          "[metrics][otel][prometheus]") {
    pool_stats s = sample_stats();
    tenant_stats t;
    t.id = 7;
    t.name = "acme";
    t.cancelled = 5;
    t.rejected = 3;
    s.tenants.push_back(t);
    const auto points = to_instruments("primary", s);
    const auto* cancelled = find_point(points, "connpool.tenant.cancelled", "connpool.tenant", "acme");
    REQUIRE(cancelled);
    CHECK(cancelled->value == 5);
    const auto* rejected = find_point(points, "connpool.tenant.rejected", "connpool.tenant", "acme");
    REQUIRE(rejected);
    CHECK(rejected->value == 3);
    const std::string text = to_prometheus_text("primary", s);
    CHECK_THAT(text, Catch::Contains("connpool_tenant_cancelled_total{"));
    CHECK_THAT(text, Catch::Contains("connpool_tenant_rejected_total{"));
    CHECK_THAT(text, Catch::Contains("connpool_label_hits_total{"));
    CHECK_THAT(text, Catch::Contains("connpool_label_applies_total{"));
    CHECK_THAT(text, Catch::Contains("connpool_label_apply_failures_total{"));
}
