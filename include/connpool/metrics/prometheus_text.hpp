// connpool metrics: Prometheus text exposition format (version 0.0.4), standard library only.
//
// Serve the result with Content-Type `text/plain; version=0.0.4; charset=utf-8`
// (prometheus_text_content_type).
#ifndef CONNPOOL_METRICS_PROMETHEUS_TEXT_HPP
#define CONNPOOL_METRICS_PROMETHEUS_TEXT_HPP

#include <connpool/metrics/instruments.hpp>
#include <connpool/metrics/prometheus_names.hpp>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace connpool::metrics {

inline constexpr std::string_view prometheus_text_content_type = "text/plain; version=0.0.4; charset=utf-8";

namespace detail {

// {k="v",k="v"} with an optional trailing le label; nothing when there are no labels.
inline void write_labels(std::string& out, const std::vector<attribute>& attrs, const std::string* le = nullptr) {
    if (attrs.empty() && !le) return;
    out += '{';
    bool first = true;
    for (const auto& a : attrs) {
        if (!first) out += ',';
        first = false;
        out += prometheus_label_name(a.key);
        out += "=\"";
        out += escape_label_value(a.value);
        out += '"';
    }
    if (le) {
        if (!first) out += ',';
        out += "le=\"";
        out += *le;
        out += '"';
    }
    out += '}';
}

inline void write_sample(std::string& out, std::string_view name, std::string_view suffix,
                         const std::vector<attribute>& attrs, const std::string& value,
                         const std::string* le = nullptr) {
    out += name;
    out += suffix;
    write_labels(out, attrs, le);
    out += ' ';
    out += value;
    out += '\n';
}

// A histogram point as Prometheus wants it: cumulative buckets ending in le="+Inf"
// (which equals _count), then _sum and _count.
inline void write_histogram(std::string& out, std::string_view name, const instrument& i) {
    const histogram_point& h = i.histogram;
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < h.counts.size(); ++b) {
        cumulative += h.counts[b];
        const double bound = b < h.bounds.size() ? h.bounds[b] : std::numeric_limits<double>::infinity();
        const std::string le = format_value(bound);
        write_sample(out, name, "_bucket", i.attributes, std::to_string(cumulative), &le);
    }
    if (h.counts.empty()) {
        // No buckets at all: +Inf is still required.
        const std::string le = "+Inf";
        write_sample(out, name, "_bucket", i.attributes, std::to_string(h.count), &le);
    }
    write_sample(out, name, "_sum", i.attributes, format_value(h.sum));
    write_sample(out, name, "_count", i.attributes, std::to_string(h.count));
}

}  // namespace detail

// Renders points as text exposition format. Points that share a Prometheus name form one
// family: one # HELP and # TYPE (from the first of them), then all their samples together,
// as the format requires, even when they come from different pools. Families appear in
// the order their first point does. The caller keeps the label sets of a family unique
// (one pool name per pool).
inline std::string to_prometheus_text(std::span<const instrument> points) {
    // Group by name, keeping first-seen order; a linear search is enough for a few dozen names.
    std::vector<std::string> family_names;
    std::vector<std::vector<const instrument*>> families;
    for (const auto& p : points) {
        std::string name = prometheus_name(p);
        std::size_t f = 0;
        while (f < family_names.size() && family_names[f] != name) ++f;
        if (f == family_names.size()) {
            family_names.push_back(std::move(name));
            families.emplace_back();
        }
        families[f].push_back(&p);
    }

    std::string out;
    out.reserve(points.size() * 120);
    for (std::size_t f = 0; f < families.size(); ++f) {
        const std::string& name = family_names[f];
        const instrument& head = *families[f].front();
        out += "# HELP ";
        out += name;
        out += ' ';
        out += escape_help(head.description);
        out += "\n# TYPE ";
        out += name;
        out += ' ';
        out += prometheus_type(head.kind);
        out += '\n';
        for (const instrument* p : families[f]) {
            if (p->kind == instrument_kind::histogram) {
                detail::write_histogram(out, name, *p);
            } else {
                detail::write_sample(out, name, "", p->attributes, format_value(p->value));
            }
        }
    }
    return out;
}

// One or several pools, each under its own name.
inline std::string to_prometheus_text(std::span<const named_stats> pools, const histogram_options& opts = {}) {
    const std::vector<instrument> points = to_instruments(pools, opts);
    return to_prometheus_text(std::span<const instrument>(points));
}

inline std::string to_prometheus_text(std::string_view pool, const pool_stats& s, const histogram_options& opts = {}) {
    const std::vector<instrument> points = to_instruments(pool, s, opts);
    return to_prometheus_text(std::span<const instrument>(points));
}

}  // namespace connpool::metrics

#endif  // CONNPOOL_METRICS_PROMETHEUS_TEXT_HPP
