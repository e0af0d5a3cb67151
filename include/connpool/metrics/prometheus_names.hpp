// connpool metrics: OpenTelemetry names and values as Prometheus spells them.
//
// The mapping is the one in OpenTelemetry's "Prometheus and OpenMetrics compatibility"
// specification, which the OpenTelemetry Collector and the Prometheus clients apply too, so
// a pool exported directly and a pool exported through an OTel pipeline show the same names:
//   - a character outside [a-zA-Z0-9_:] becomes '_', runs of '_' collapse into one;
//   - the unit is appended as a suffix, spelled out ("s" -> "_seconds"), unless it is an
//     annotation in braces such as "{connection}", which is dropped;
//   - a counter (a monotonic sum) gets "_total".
#ifndef CONNPOOL_METRICS_PROMETHEUS_NAMES_HPP
#define CONNPOOL_METRICS_PROMETHEUS_NAMES_HPP

#include <connpool/metrics/instruments.hpp>

#include <charconv>
#include <cmath>
#include <string>
#include <string_view>

namespace connpool::metrics {

namespace detail {

inline bool is_name_char(char c, bool colon_allowed) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           (colon_allowed && c == ':');
}

inline std::string sanitize_name(std::string_view in, bool colon_allowed) {
    std::string out;
    out.reserve(in.size() + 1);
    for (char c : in) {
        const char mapped = is_name_char(c, colon_allowed) ? c : '_';
        if (mapped == '_' && !out.empty() && out.back() == '_') continue;
        out += mapped;
    }
    // A name may not start with a digit; an empty name is not valid either.
    if (out.empty() || (out[0] >= '0' && out[0] <= '9')) out.insert(out.begin(), '_');
    return out;
}

inline bool ends_with_suffix(std::string_view name, std::string_view suffix) noexcept {
    return name.size() > suffix.size() && name.ends_with(suffix) && name[name.size() - suffix.size() - 1] == '_';
}

}  // namespace detail

// A Prometheus label name: as a metric name, without ':' (reserved for recording rules).
inline std::string prometheus_label_name(std::string_view otel_key) { return detail::sanitize_name(otel_key, false); }

// The unit's Prometheus suffix without the underscore, empty for none.
inline std::string prometheus_unit_suffix(std::string_view unit, instrument_kind kind) {
    if (unit.empty() || unit.front() == '{') return {};  // an annotation, not a unit
    if (unit == "s") return "seconds";
    if (unit == "ms") return "milliseconds";
    if (unit == "us") return "microseconds";
    if (unit == "ns") return "nanoseconds";
    if (unit == "By") return "bytes";
    if (unit == "1") return kind == instrument_kind::histogram || kind == instrument_kind::counter ? "" : "ratio";
    std::string s = detail::sanitize_name(unit, false);
    while (!s.empty() && s.front() == '_') s.erase(s.begin());
    return s;
}

// The metric family's name, e.g. db.client.connection.wait_time (s, histogram) ->
// db_client_connection_wait_time_seconds. A histogram's series add _bucket, _sum, _count.
inline std::string prometheus_name(std::string_view otel_name, std::string_view unit, instrument_kind kind) {
    std::string name = detail::sanitize_name(otel_name, true);
    // A counter's _total goes last, after the unit: bytes.sent_total (By) -> bytes_sent_bytes_total.
    if (kind == instrument_kind::counter && detail::ends_with_suffix(name, "total")) name.resize(name.size() - 6);
    if (const std::string suffix = prometheus_unit_suffix(unit, kind);
        !suffix.empty() && !detail::ends_with_suffix(name, suffix)) {
        name += '_';
        name += suffix;
    }
    if (kind == instrument_kind::counter) name += "_total";
    return name;
}

inline std::string prometheus_name(const instrument& i) { return prometheus_name(i.name, i.unit, i.kind); }

// The # TYPE of a kind: an up-down counter is not monotonic, so it is a gauge to Prometheus.
inline const char* prometheus_type(instrument_kind kind) noexcept {
    switch (kind) {
    case instrument_kind::counter: return "counter";
    case instrument_kind::up_down_counter: return "gauge";
    case instrument_kind::gauge: return "gauge";
    case instrument_kind::histogram: return "histogram";
    }
    return "untyped";
}

// A label value inside double quotes: backslash, double quote and line feed are escaped,
// everything else (UTF-8 included) is kept as it is.
inline std::string escape_label_value(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        switch (c) {
        case '\\': out += "\\\\"; break;
        case '"': out += "\\\""; break;
        case '\n': out += "\\n"; break;
        default: out += c;
        }
    }
    return out;
}

// # HELP text: backslash and line feed are escaped; a double quote is not special there.
inline std::string escape_help(std::string_view v) {
    std::string out;
    out.reserve(v.size());
    for (char c : v) {
        switch (c) {
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        default: out += c;
        }
    }
    return out;
}

// A sample value or an le bound: the shortest text that reads back as the same double
// (so 3 prints as "3" and 1.6e-05 as "1.6e-05"), and +Inf, -Inf, NaN as Prometheus spells them.
inline std::string format_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    char buf[32];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);
    return std::string(buf, r.ptr);
}

}  // namespace connpool::metrics

#endif  // CONNPOOL_METRICS_PROMETHEUS_NAMES_HPP
