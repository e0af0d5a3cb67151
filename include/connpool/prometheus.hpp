// connpool: pools as a prometheus-cpp Collectable (target connpool::prometheus).
//
//   auto pools = std::make_shared<connpool::metrics::prometheus_collectable>();
//   pools->add("primary", primary_pool);          // or add(name, [&] { return ...stats(); })
//   exposer.RegisterCollectable(pools);           // or registry->... through your own Registry
//
// The families and samples are the same as connpool/metrics.hpp's text renderer produces
// (same names, labels and buckets), built from the same instrument list.
#ifndef CONNPOOL_PROMETHEUS_HPP
#define CONNPOOL_PROMETHEUS_HPP

#include <connpool/metrics.hpp>

#include <prometheus/client_metric.h>
#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>
#include <prometheus/metric_type.h>

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace connpool::metrics {

// Points as prometheus-cpp families: one family per Prometheus name, in the order the
// names first appear, every point's attributes as labels.
inline std::vector<::prometheus::MetricFamily> to_prometheus_families(std::span<const instrument> points) {
    std::vector<::prometheus::MetricFamily> families;
    for (const auto& p : points) {
        std::string name = prometheus_name(p);
        std::size_t f = 0;
        while (f < families.size() && families[f].name != name) ++f;
        if (f == families.size()) {
            ::prometheus::MetricFamily fam;
            fam.name = std::move(name);
            fam.help = p.description;
            switch (p.kind) {
            case instrument_kind::counter: fam.type = ::prometheus::MetricType::Counter; break;
            case instrument_kind::up_down_counter:
            case instrument_kind::gauge: fam.type = ::prometheus::MetricType::Gauge; break;
            case instrument_kind::histogram: fam.type = ::prometheus::MetricType::Histogram; break;
            }
            families.push_back(std::move(fam));
        }

        ::prometheus::ClientMetric m;
        for (const auto& a : p.attributes) m.label.push_back({prometheus_label_name(a.key), a.value});
        switch (p.kind) {
        case instrument_kind::counter: m.counter.value = p.value; break;
        case instrument_kind::up_down_counter:
        case instrument_kind::gauge: m.gauge.value = p.value; break;
        case instrument_kind::histogram: {
            // prometheus-cpp wants cumulative counts, the +Inf bucket included.
            const histogram_point& h = p.histogram;
            std::uint64_t cumulative = 0;
            for (std::size_t b = 0; b < h.counts.size(); ++b) {
                cumulative += h.counts[b];
                const double bound = b < h.bounds.size() ? h.bounds[b] : std::numeric_limits<double>::infinity();
                m.histogram.bucket.push_back({cumulative, bound});
            }
            if (h.counts.empty()) m.histogram.bucket.push_back({h.count, std::numeric_limits<double>::infinity()});
            m.histogram.sample_count = h.count;
            m.histogram.sample_sum = h.sum;
            break;
        }
        }
        families[f].metric.push_back(std::move(m));
    }
    return families;
}

// A prometheus::Collectable over a pool_registry: each Collect() (each scrape) reads every
// registered pool's stats() once.
//
// Thread-safety and lifetimes: as pool_registry. Collect() runs on the Exposer's threads;
// after remove(name) returns, that pool is never read again, so it may be destroyed.
// Register the collectable as a shared_ptr: Exposer and Registry hold it by weak_ptr.
class prometheus_collectable : public ::prometheus::Collectable {
public:
    // An empty collectable; opts chooses the histogram buckets kept (see histogram_options).
    explicit prometheus_collectable(histogram_options opts = {}) : opts_(opts) {}

    // Throws std::invalid_argument when name is taken or fn is empty.
    void add(std::string name, pool_registry::source fn) { pools_.add(std::move(name), std::move(fn)); }

    // Any pool type (anything with stats()); remove() the name before the pool goes away.
    template <class Pool>
        requires requires(const Pool& p) {
            { p.stats() } -> std::convertible_to<pool_stats>;
        }
    void add(std::string name, const Pool& pool) {
        pools_.add(std::move(name), pool);
    }

    // Unregisters the pool called name; false when there is none. Call it before the pool dies.
    bool remove(std::string_view name) { return pools_.remove(name); }
    // True when a pool is registered under name.
    bool contains(std::string_view name) const { return pools_.contains(name); }
    // The number of pools registered.
    std::size_t size() const { return pools_.size(); }

    // prometheus-cpp's scrape: one stats() per pool, as Prometheus metric families.
    std::vector<::prometheus::MetricFamily> Collect() const override {
        const std::vector<named_stats> snapshot = pools_.collect();
        const std::vector<instrument> points = to_instruments(snapshot, opts_);
        return to_prometheus_families(points);
    }

private:
    histogram_options opts_;
    pool_registry pools_;
};

}  // namespace connpool::metrics

#endif  // CONNPOOL_PROMETHEUS_HPP
