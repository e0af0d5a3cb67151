// connpool metrics: a pool's stats() as OpenTelemetry-style instruments, one data point
// each, named by the OpenTelemetry database-client semantic conventions.
//
// Plain structs, no OpenTelemetry SDK: a service that runs one records these points into
// its own instruments (an observable callback per name), and the Prometheus renderers in
// this library read the same list, so both exports always agree.
#ifndef CONNPOOL_METRICS_INSTRUMENTS_HPP
#define CONNPOOL_METRICS_INSTRUMENTS_HPP

#include <connpool/stats.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace connpool::metrics {

// The OpenTelemetry instrument kinds the pool's numbers map to.
enum class instrument_kind {
    counter,          // monotonic sum since the pool was created (Prometheus: counter)
    up_down_counter,  // a sum that goes both ways, e.g. connections now (Prometheus: gauge)
    gauge,            // a sampled value that is not a sum, e.g. the longest wait (Prometheus: gauge)
    histogram,        // explicit-bucket histogram (Prometheus: histogram)
};

inline const char* to_string(instrument_kind k) noexcept {
    switch (k) {
    case instrument_kind::counter: return "counter";
    case instrument_kind::up_down_counter: return "up_down_counter";
    case instrument_kind::gauge: return "gauge";
    case instrument_kind::histogram: return "histogram";
    }
    return "unknown";
}

// One attribute of a data point: a key and its value.
struct attribute {
    // The attribute's name, e.g. names::pool_name.
    std::string key;
    // Its value, e.g. the pool's name.
    std::string value;

    // Attributes are equal when key and value are.
    friend bool operator==(const attribute&, const attribute&) = default;
};

// OpenTelemetry's explicit-bucket layout: counts has bounds.size() + 1 entries, counts[i]
// holds samples in (bounds[i-1], bounds[i]] and the last one everything above the last
// bound. Not cumulative (the Prometheus renderers accumulate).
struct histogram_point {
    std::vector<double> bounds;         // upper bounds, in the instrument's unit (seconds)
    std::vector<std::uint64_t> counts;  // per bucket
    // Samples recorded, the sum of counts.
    std::uint64_t count = 0;
    // The samples' total, in the instrument's unit.
    double sum = 0;
};

// One data point of one instrument, for one pool.
struct instrument {
    std::string name;         // OpenTelemetry name, e.g. "db.client.connection.count"
    // Counter, up-down counter, gauge or histogram.
    instrument_kind kind = instrument_kind::gauge;
    std::string unit;         // UCUM, e.g. "s" or "{connection}"
    std::string description;  // one line
    std::vector<attribute> attributes;  // the pool's name first
    double value = 0;                   // every kind except histogram
    histogram_point histogram;          // kind == histogram only
};

// The names, so that code which reads the points needs no string literals of its own.
namespace names {
// Attribute: the pool's name, on every point.
inline constexpr std::string_view pool_name = "db.client.connection.pool.name";
// Attribute: idle or used, on db.client.connection.count.
inline constexpr std::string_view state = "db.client.connection.state";
// Attribute: why connections closed, on connpool.closed.
inline constexpr std::string_view close_reason = "connpool.close_reason";
inline constexpr std::string_view tenant = "connpool.tenant";  // Prometheus: connpool_tenant

// Instrument: connections by state (idle, used).
inline constexpr std::string_view count = "db.client.connection.count";
// Instrument: pool_stats::max_size.
inline constexpr std::string_view max = "db.client.connection.max";
// Instrument: pool_stats::max_idle.
inline constexpr std::string_view idle_max = "db.client.connection.idle.max";
// Instrument: pool_stats::min_idle.
inline constexpr std::string_view idle_min = "db.client.connection.idle.min";
// Instrument: callers waiting (pool_stats::waiting).
inline constexpr std::string_view pending_requests = "db.client.connection.pending_requests";
// Instrument: acquires that timed out (pool_stats::timeouts).
inline constexpr std::string_view timeouts = "db.client.connection.timeouts";
// Instrument: histogram of connect times (pool_stats::create_time).
inline constexpr std::string_view create_time = "db.client.connection.create_time";
// Instrument: histogram of acquire waits (pool_stats::wait_time).
inline constexpr std::string_view wait_time = "db.client.connection.wait_time";
// Instrument: histogram of lease hold times (pool_stats::use_time).
inline constexpr std::string_view use_time = "db.client.connection.use_time";
}  // namespace names

// How histograms are cut into buckets.
struct histogram_options {
    // Every stride-th log2 edge of duration_histogram is kept: 1 keeps all 39 finite edges
    // (1 us ... 2^38 us) one to one, 2 keeps 1, 4, 16 us ..., fewer series per pool. Counts
    // stay exact at every edge that is kept, because the edges are a subset.
    std::size_t stride = 1;
};

// A pool's snapshot and the name it is exported under.
struct named_stats {
    // The name the pool is exported under (db.client.connection.pool.name).
    std::string name;
    // Its stats() snapshot.
    pool_stats stats;
};

// A duration_histogram as OpenTelemetry buckets in seconds. duration_histogram's edges are
// exclusive and Prometheus's le inclusive: a sample of exactly an edge (whole microseconds)
// is counted one bucket up.
inline histogram_point to_histogram_point(const duration_histogram& h, const histogram_options& opts = {}) {
    const std::size_t stride = opts.stride == 0 ? 1 : opts.stride;
    histogram_point p;
    p.count = h.count;
    p.sum = std::chrono::duration<double>(h.sum).count();
    // Bucket i of duration_histogram ends below 2^i us; the last one has no upper edge.
    std::uint64_t pending = 0;
    for (std::size_t i = 0; i < duration_histogram::bucket_count; ++i) {
        pending += h.buckets[i];
        const bool last = i + 1 == duration_histogram::bucket_count;
        if (!last && i % stride == 0) {
            p.bounds.push_back(static_cast<double>(duration_histogram::upper_bound_us(i)) * 1e-6);
            p.counts.push_back(pending);
            pending = 0;
        }
    }
    p.counts.push_back(pending);  // above the last bound kept
    return p;
}

namespace detail {

inline void add_point(std::vector<instrument>& out, std::string_view pool, std::string_view name,
                      instrument_kind kind, std::string_view unit, std::string_view description, double value,
                      std::vector<attribute> extra = {}) {
    instrument i;
    i.name = name;
    i.kind = kind;
    i.unit = unit;
    i.description = description;
    i.attributes.push_back({std::string(names::pool_name), std::string(pool)});
    for (auto& a : extra) i.attributes.push_back(std::move(a));
    i.value = value;
    out.push_back(std::move(i));
}

inline void add_histogram(std::vector<instrument>& out, std::string_view pool, std::string_view name,
                          std::string_view description, const duration_histogram& h,
                          const histogram_options& opts) {
    add_point(out, pool, name, instrument_kind::histogram, "s", description, 0);
    out.back().histogram = to_histogram_point(h, opts);
}

}  // namespace detail

// Per tenant (pool_stats::tenants, empty without tenants), labelled connpool.tenant with
// the tenant's name; each name's points stay together, as the Prometheus text wants.
inline void append_tenant_instruments(std::vector<instrument>& out, std::string_view pool, const pool_stats& s,
                                      const histogram_options& opts) {
    using k = instrument_kind;
    const auto label = [](const tenant_stats& t) {
        return std::vector<attribute>{{std::string(names::tenant), t.name}};
    };
    const auto each = [&](std::string_view name, k kind, std::string_view unit, std::string_view what, auto value) {
        for (const auto& t : s.tenants)
            detail::add_point(out, pool, name, kind, unit, what, static_cast<double>(value(t)), label(t));
    };
    each("connpool.tenant.held", k::up_down_counter, "{connection}", "Connections the tenant holds",
         [](const tenant_stats& t) { return t.held; });
    each("connpool.tenant.waiting", k::up_down_counter, "{request}", "The tenant's acquires waiting",
         [](const tenant_stats& t) { return t.waiting; });
    each("connpool.tenant.quota", k::up_down_counter, "{connection}", "The tenant's quota (0: none)",
         [](const tenant_stats& t) { return t.quota; });
    each("connpool.tenant.acquired", k::counter, "{lease}", "Leases handed to the tenant",
         [](const tenant_stats& t) { return t.acquired; });
    each("connpool.tenant.timeouts", k::counter, "{timeout}", "The tenant's acquires that timed out",
         [](const tenant_stats& t) { return t.timeouts; });
    each("connpool.tenant.quota_refused", k::counter, "{request}", "The tenant's acquires refused at its quota",
         [](const tenant_stats& t) { return t.quota_refused; });
    each("connpool.tenant.rejected", k::counter, "{request}", "The tenant's acquires refused for too many waiters",
         [](const tenant_stats& t) { return t.rejected; });
    each("connpool.tenant.cancelled", k::counter, "{request}", "The tenant's acquires cancelled by their caller",
         [](const tenant_stats& t) { return t.cancelled; });
    for (const auto& t : s.tenants) {
        detail::add_histogram(out, pool, "connpool.tenant.wait_time", "The tenant's acquire wait", t.wait_time, opts);
        out.back().attributes.push_back({std::string(names::tenant), t.name});
    }
}

// Appends one pool's points to out, in a fixed order: the semantic-convention instruments
// first, then connpool's own (connpool.*). Every point carries the pool's name.
//
// "used" connections are open minus idle: besides those held by leases (in_use), a
// connection being reset or pinged is not available either. The sum over both states is
// the number of open connections, as the conventions intend.
inline void append_instruments(std::vector<instrument>& out, std::string_view pool, const pool_stats& s,
                               const histogram_options& opts = {}) {
    using detail::add_point;
    using k = instrument_kind;
    const auto d = [](auto v) { return static_cast<double>(v); };
    const std::size_t used = s.open > s.idle ? s.open - s.idle : 0;

    add_point(out, pool, names::count, k::up_down_counter, "{connection}",
              "Connections in the state given by db.client.connection.state", d(s.idle),
              {{std::string(names::state), "idle"}});
    add_point(out, pool, names::count, k::up_down_counter, "{connection}",
              "Connections in the state given by db.client.connection.state", d(used),
              {{std::string(names::state), "used"}});
    add_point(out, pool, names::max, k::up_down_counter, "{connection}", "The most open connections allowed",
              d(s.max_size));
    add_point(out, pool, names::idle_max, k::up_down_counter, "{connection}",
              "The most idle open connections allowed", d(s.max_idle));
    add_point(out, pool, names::idle_min, k::up_down_counter, "{connection}",
              "The fewest idle open connections kept", d(s.min_idle));
    add_point(out, pool, names::pending_requests, k::up_down_counter, "{request}",
              "Acquires waiting for a connection", d(s.waiting));
    add_point(out, pool, names::timeouts, k::counter, "{timeout}",
              "Acquires that failed because no connection came within the acquire timeout", d(s.timeouts));
    detail::add_histogram(out, pool, names::create_time, "The time it took to create a new connection",
                          s.create_time, opts);
    detail::add_histogram(out, pool, names::wait_time, "The time it took to obtain an open connection from the pool",
                          s.wait_time, opts);
    detail::add_histogram(out, pool, names::use_time,
                          "The time between borrowing a connection and returning it to the pool", s.use_time, opts);

    add_point(out, pool, "connpool.connection.in_use", k::up_down_counter, "{connection}",
              "Connections held by leases", d(s.in_use));
    add_point(out, pool, "connpool.connection.creating", k::up_down_counter, "{connection}", "Connects in flight",
              d(s.creating));
    add_point(out, pool, "connpool.acquired", k::counter, "{lease}", "Leases handed out", d(s.acquired));
    add_point(out, pool, "connpool.waited", k::counter, "{lease}", "Leases handed out after a wait", d(s.waited));
    add_point(out, pool, "connpool.created", k::counter, "{connection}", "Connects that succeeded", d(s.created));
    add_point(out, pool, "connpool.connect_failures", k::counter, "{failure}", "Connects that failed",
              d(s.connect_failures));
    add_point(out, pool, "connpool.cancelled", k::counter, "{request}", "Acquires cancelled by their caller",
              d(s.cancelled));
    add_point(out, pool, "connpool.rejected", k::counter, "{request}",
              "Acquires refused because too many callers were waiting", d(s.rejected));
    add_point(out, pool, "connpool.fast_failed", k::counter, "{request}",
              "Acquires failed at once with the last connect error", d(s.fast_failed));
    add_point(out, pool, "connpool.leaks_reported", k::counter, "{lease}", "Leases reported by leak detection",
              d(s.leaks_reported));
    add_point(out, pool, "connpool.label.hits", k::counter, "{lease}",
              "Labelled acquires whose connection already carried the label", d(s.label_hits));
    add_point(out, pool, "connpool.label.applies", k::counter, "{call}",
              "apply() calls that moved a connection to a label", d(s.label_applies));
    add_point(out, pool, "connpool.label.apply_failures", k::counter, "{call}",
              "apply() calls that failed (the connection closed)", d(s.label_apply_failures));
    for (std::size_t r = 0; r < close_reason_count; ++r) {
        add_point(out, pool, "connpool.closed", k::counter, "{connection}", "Connections closed, by reason",
                  d(s.closed[r]), {{std::string(names::close_reason), to_string(static_cast<close_reason>(r))}});
    }
    add_point(out, pool, "connpool.wait.max", k::gauge, "s", "The longest acquire wait since the pool was created",
              std::chrono::duration<double>(s.wait_max).count());
    append_tenant_instruments(out, pool, s, opts);
}

inline std::vector<instrument> to_instruments(std::string_view pool, const pool_stats& s,
                                              const histogram_options& opts = {}) {
    std::vector<instrument> out;
    append_instruments(out, pool, s, opts);
    return out;
}

inline std::vector<instrument> to_instruments(std::span<const named_stats> pools, const histogram_options& opts = {}) {
    std::vector<instrument> out;
    for (const auto& p : pools) append_instruments(out, p.name, p.stats, opts);
    return out;
}

}  // namespace connpool::metrics

#endif  // CONNPOOL_METRICS_INSTRUMENTS_HPP
