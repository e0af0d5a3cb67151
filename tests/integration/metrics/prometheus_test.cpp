// A real Prometheus scrapes the metrics examples (the prometheus-cpp Exposer and the Beast
// endpoint, one job each) and its HTTP API returns the pools' series with the values the
// examples' fixed workload makes. The fixture (tests/support/metrics/start-prometheus.sh)
// starts everything; each test waits, bounded, for a first complete scrape.
//
// The examples run with --requests 50 --hold 2 (see CMakeLists.txt): pool "primary" (max 4,
// min_idle 1) has handed out 52 leases and holds 2; pool "replica" (max 2) handed out 10.
#include "connpool_catch.hpp"
#include "prometheus_api.hpp"

#include <boost/json/src.hpp>

#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

using connpool::test::query;
using connpool::test::series;

namespace {

const std::vector<std::string> jobs{"example_metrics", "example_metrics_beast"};

connpool::test::prometheus_server server() { return connpool::test::read_prometheus_env(CONNPOOL_PROMETHEUS_ENV_FILE); }

// Until every job's series of both pools are in Prometheus, at most 30 s. Polling sleeps
// between attempts: Prometheus scrapes on its own clock (every second), nothing to drive.
void wait_for_scrapes(const connpool::test::prometheus_server& s) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    std::string last;
    while (std::chrono::steady_clock::now() < deadline) {
        try {
            std::set<std::string> seen;
            for (const series& r : query(s, "connpool_acquired_total"))
                seen.insert(r.labels.at("job") + "/" + r.labels.at("db_client_connection_pool_name"));
            if (seen.size() == jobs.size() * 2) return;
            last = std::to_string(seen.size()) + " of " + std::to_string(jobs.size() * 2) + " job/pool series";
        } catch (const std::exception& e) {
            last = e.what();
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
    FAIL("Prometheus did not scrape every example within 30 s; last: " << last);
}

// The value of the one series the query selects.
double value_of(const connpool::test::prometheus_server& s, const std::string& promql) {
    const auto result = query(s, promql);
    INFO(promql);
    REQUIRE(result.size() == 1);
    return result.front().value;
}

std::string selector(const std::string& job, const std::string& pool, const std::string& extra = "") {
    return "{job=\"" + job + "\",db_client_connection_pool_name=\"" + pool + "\"" + extra + "}";
}

}  // namespace

TEST_CASE("Prometheus scrapes every metrics example and reports its target up", "[metrics][prometheus]") {
    const auto s = server();
    wait_for_scrapes(s);
    for (const auto& job : jobs) {
        INFO(job);
        CHECK(value_of(s, "up{job=\"" + job + "\"}") == 1);
    }
}

TEST_CASE("the scraped semantic-convention gauges show the pool's limits and its held leases",
          "[metrics][prometheus]") {
    const auto s = server();
    wait_for_scrapes(s);
    for (const auto& job : jobs) {
        INFO(job);
        CHECK(value_of(s, "db_client_connection_max" + selector(job, "primary")) == 4);
        CHECK(value_of(s, "db_client_connection_max" + selector(job, "replica")) == 2);
        CHECK(value_of(s, "db_client_connection_idle_min" + selector(job, "primary")) == 1);
        CHECK(value_of(s, "db_client_connection_count" +
                              selector(job, "primary", ",db_client_connection_state=\"used\"")) == 2);
        CHECK(value_of(s, "db_client_connection_count" +
                              selector(job, "replica", ",db_client_connection_state=\"used\"")) == 0);
        CHECK(value_of(s, "db_client_connection_pending_requests" + selector(job, "primary")) == 0);
        CHECK(value_of(s, "db_client_connection_timeouts_total" + selector(job, "primary")) == 0);
        // Filled by the core once it reports max_idle; present today.
        CHECK(query(s, "db_client_connection_idle_max" + selector(job, "primary")).size() == 1);
    }
}

TEST_CASE("the scraped connpool counters match the work each example did", "[metrics][prometheus]") {
    const auto s = server();
    wait_for_scrapes(s);
    for (const auto& job : jobs) {
        INFO(job);
        CHECK(value_of(s, "connpool_acquired_total" + selector(job, "primary")) == 52);
        CHECK(value_of(s, "connpool_acquired_total" + selector(job, "replica")) == 10);
        CHECK(value_of(s, "connpool_connection_in_use" + selector(job, "primary")) == 2);
        const double created = value_of(s, "connpool_created_total" + selector(job, "primary"));
        CHECK(created >= 2);
        CHECK(created <= 4);  // never more than max_size: nothing was closed
        CHECK(value_of(s, "connpool_connect_failures_total" + selector(job, "primary")) == 0);
        CHECK(value_of(s, "connpool_closed_total" +
                              selector(job, "primary", ",connpool_close_reason=\"broken\"")) == 0);
    }
}

TEST_CASE("every pool's three duration histograms are scraped with all their buckets", "[metrics][prometheus]") {
    const auto s = server();
    wait_for_scrapes(s);
    for (const std::string h : {"create_time", "wait_time", "use_time"}) {
        const std::string name = "db_client_connection_" + h + "_seconds";
        INFO(name);
        // 39 finite log2 edges plus +Inf, per pool and job.
        const auto buckets = query(s, "count by (job, db_client_connection_pool_name) (" + name + "_bucket)");
        CHECK(buckets.size() == jobs.size() * 2);
        for (const auto& b : buckets) CHECK(b.value == 40);
        CHECK(query(s, name + "_bucket{le=\"+Inf\"}").size() == jobs.size() * 2);
        CHECK(query(s, name + "_sum").size() == jobs.size() * 2);
        CHECK(query(s, name + "_count").size() == jobs.size() * 2);
        // Whatever the core has recorded so far, the +Inf bucket is the count.
        const auto inf_minus_count = query(s, name + "_count - ignoring(le) " + name + "_bucket{le=\"+Inf\"}");
        CHECK(inf_minus_count.size() == jobs.size() * 2);
        for (const auto& d : inf_minus_count) CHECK(d.value == 0);
    }
}
