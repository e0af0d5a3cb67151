// Prints one scrape of hand-made pool_stats with every histogram filled and awkward pool
// names, for `promtool check metrics`: the core does not fill the histograms yet, so the
// examples alone would not show promtool a histogram with data.
//
//   render_sample text            connpool/metrics.hpp's renderer
//   render_sample prometheus-cpp  the Collectable through prometheus-cpp's serializer
#include <connpool/metrics.hpp>

#if defined(CONNPOOL_TEST_PROMETHEUS_CPP)
#include <connpool/prometheus.hpp>
#include <prometheus/text_serializer.h>
#endif

#include <chrono>
#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

namespace {

// Samples spread over many buckets, so the cumulative counts grow along le.
connpool::duration_histogram spread(std::uint64_t scale) {
    connpool::duration_histogram h;
    for (std::size_t i = 0; i < connpool::duration_histogram::bucket_count; i += 3) {
        h.buckets[i] = scale * (i + 1);
        h.count += h.buckets[i];
        h.sum += std::chrono::microseconds(static_cast<std::int64_t>(h.buckets[i] << i));
    }
    return h;
}

connpool::pool_stats busy_pool() {
    connpool::pool_stats s;
    s.open = 9;
    s.idle = 2;
    s.in_use = 6;
    s.creating = 1;
    s.waiting = 3;
    s.max_size = 10;
    s.min_idle = 2;
    s.max_idle = 10;
    s.acquired = 123456;
    s.waited = 789;
    s.created = 42;
    s.connect_failures = 7;
    s.timeouts = 5;
    s.closed[static_cast<std::size_t>(connpool::close_reason::idle_timeout)] = 30;
    s.wait_max = std::chrono::milliseconds(250);
    s.wait_time = spread(5);
    s.use_time = spread(11);
    s.create_time = spread(1);
    return s;
}

}  // namespace

int main(int argc, char** argv) {
    const std::string mode = argc > 1 ? argv[1] : "text";
    const std::vector<connpool::metrics::named_stats> pools{
        {"primary", busy_pool()},
        {"db.example.com:5432/app \"quoted\" back\\slash\nnewline caf\xc3\xa9", busy_pool()},
        {"", connpool::pool_stats{}},
    };
    if (mode == "text") {
        std::cout << connpool::metrics::to_prometheus_text(pools);
        return 0;
    }
#if defined(CONNPOOL_TEST_PROMETHEUS_CPP)
    if (mode == "prometheus-cpp") {
        connpool::metrics::prometheus_collectable collectable;
        for (const auto& p : pools) collectable.add(p.name, [s = p.stats] { return s; });
        prometheus::TextSerializer().Serialize(std::cout, collectable.Collect());
        return 0;
    }
#endif
    std::fprintf(stderr, "usage: %s text|prometheus-cpp\n", argv[0]);
    return 2;
}
