// connpool-sim's outputs: a table for the terminal, JSON, and a self-contained HTML report
// whose charts are inline SVG.
#ifndef CONNPOOL_TOOLS_SIM_REPORT_HPP
#define CONNPOOL_TOOLS_SIM_REPORT_HPP

#include "sweep.hpp"
#include "svg.hpp"

#include <cstdio>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace connpool::sim {

struct report {
    std::string command;  // how it was run, shown in the report
    config cfg;
    result main;
    std::optional<sweep_result> sizes;
    std::size_t nested_threads = 0, nested_cm = 0;
    std::vector<deadlock_row> nested;
};

inline std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

inline void print_table(std::ostream& o, const report& rp) {
    const result& r = rp.main;
    o << "connpool-sim: " << rp.cfg.instances << " instance(s) x max_size " << rp.cfg.pool.max_size << ", "
      << fmt("%.0f", r.duration_s) << " s virtual in " << fmt("%.2f", r.wall_s) << " s\n";
    o << "  requests " << r.requests << ", served acquires " << r.served << ", timeouts " << r.timeouts
      << " (nested " << r.nested_timeouts << "), other errors " << r.other_errors << "\n";
    o << "  wait ms: p50 " << fmt("%.3f", r.wait_p50_ms) << "  p99 " << fmt("%.3f", r.wait_p99_ms) << "  max "
      << fmt("%.3f", r.wait_max_ms) << "  mean " << fmt("%.3f", r.wait_mean_ms) << "\n";
    o << "  busy " << fmt("%.2f", r.mean_busy) << ", server connections mean " << fmt("%.2f", r.mean_server_connections)
      << " peak " << r.peak_server_connections << ", utilization " << fmt("%.0f%%", r.utilization * 100) << "\n";
    o << "  connections opened " << r.connections_opened << ", connect failures " << r.connect_failures
      << " (refused by server " << r.refused_by_server << "), peak waiting " << r.peak_waiting << "\n";
    if (rp.sizes) {
        const auto& s = *rp.sizes;
        o << "\n  max_size   p50 ms    p99 ms    max ms  timeouts  util  server peak\n";
        for (const auto& row : s.rows) {
            char b[200];
            std::snprintf(b, sizeof b, "  %8zu %8.3f %9.3f %9.3f %9llu %4.0f%% %12zu  %s%s\n", row.max_size, row.r.wait_p50_ms,
                          row.r.wait_p99_ms, row.r.wait_max_ms, static_cast<unsigned long long>(row.r.timeouts),
                          row.r.utilization * 100, row.r.peak_server_connections,
                          s.smallest_meeting && *s.smallest_meeting == row.max_size ? "<- smallest meeting target " : "",
                          row.over_budget ? "over budget" : "");
            o << b;
        }
        o << "  target p99 <= " << fmt("%.3f", s.target_p99_ms) << " ms: "
          << (s.smallest_meeting ? "max_size " + std::to_string(*s.smallest_meeting) : std::string("not met in the range"));
        if (s.budget_limit)
            o << "; server budget (" << fmt("%g", rp.cfg.advice.budget_share * 100)
              << " % of max_connections - reserved) allows max_size <= " << *s.budget_limit << " per instance";
        o << "\n";
    }
    if (!rp.nested.empty()) {
        o << "\n  nested acquire: " << rp.nested_threads << " threads x " << rp.nested_cm
          << " connections each; safe from max_size " << rp.nested_threads * (rp.nested_cm - 1) + 1 << "\n";
        for (const auto& d : rp.nested) {
            o << "  max_size " << d.max_size << ": completed " << d.r.completed << ", nested timeouts "
              << d.r.nested_timeouts << (d.r.nested_timeouts > 0 ? "  <- deadlocks until acquire_timeout" : "") << "\n";
        }
    }
}

inline void json_result(std::ostream& o, const result& r, bool with_series) {
    o << "{\"requests\":" << r.requests << ",\"completed\":" << r.completed << ",\"served\":" << r.served
      << ",\"timeouts\":" << r.timeouts << ",\"nested_timeouts\":" << r.nested_timeouts << ",\"other_errors\":" << r.other_errors
      << ",\"query_failures\":" << r.query_failures << ",\"connections_opened\":" << r.connections_opened
      << ",\"connect_failures\":" << r.connect_failures << ",\"refused_by_server\":" << r.refused_by_server
      << ",\"wait_ms\":{\"p50\":" << r.wait_p50_ms << ",\"p99\":" << r.wait_p99_ms << ",\"max\":" << r.wait_max_ms
      << ",\"mean\":" << r.wait_mean_ms << "},\"mean_busy\":" << r.mean_busy
      << ",\"mean_server_connections\":" << r.mean_server_connections << ",\"utilization\":" << r.utilization
      << ",\"peak_server_connections\":" << r.peak_server_connections << ",\"peak_waiting\":" << r.peak_waiting
      << ",\"duration_s\":" << r.duration_s << ",\"wall_s\":" << r.wall_s;
    if (with_series) {
        o << ",\"series\":[";
        for (std::size_t i = 0; i < r.series.size(); ++i) {
            const auto& p = r.series[i];
            o << (i ? "," : "") << "{\"t\":" << p.t_s << ",\"server\":" << p.server_connections << ",\"open\":" << p.open
              << ",\"busy\":" << p.busy << ",\"waiting\":" << p.waiting << ",\"max_size\":" << p.max_size << "}";
        }
        o << "],\"advice\":[";
        for (std::size_t i = 0; i < r.advice.size(); ++i) {
            const auto& a = r.advice[i];
            o << (i ? "," : "") << "{\"t\":" << a.t_s << ",\"recommended\":" << a.recommended << ",\"max_size\":" << a.max_size
              << ",\"rate\":" << a.arrival_rate << "}";
        }
        o << "],\"use_time\":{\"buckets\":[";
        for (std::size_t i = 0; i < duration_histogram::bucket_count; ++i) o << (i ? "," : "") << r.final_stats.use_time.buckets[i];
        o << "]}";
    }
    o << "}";
}

inline void print_json(std::ostream& o, const report& rp) {
    o << "{\"max_size\":" << rp.cfg.pool.max_size << ",\"instances\":" << rp.cfg.instances
      << ",\"max_connections\":" << rp.cfg.max_connections << ",\"run\":";
    json_result(o, rp.main, true);
    if (rp.sizes) {
        o << ",\"sweep\":{\"target_p99_ms\":" << rp.sizes->target_p99_ms << ",\"smallest_meeting\":";
        if (rp.sizes->smallest_meeting) o << *rp.sizes->smallest_meeting; else o << "null";
        o << ",\"budget_limit\":";
        if (rp.sizes->budget_limit) o << *rp.sizes->budget_limit; else o << "null";
        o << ",\"rows\":[";
        for (std::size_t i = 0; i < rp.sizes->rows.size(); ++i) {
            const auto& row = rp.sizes->rows[i];
            o << (i ? "," : "") << "{\"max_size\":" << row.max_size << ",\"meets_target\":" << (row.meets_target ? "true" : "false")
              << ",\"over_budget\":" << (row.over_budget ? "true" : "false") << ",\"result\":";
            json_result(o, row.r, false);
            o << "}";
        }
        o << "]}";
    }
    if (!rp.nested.empty()) {
        o << ",\"nested\":{\"threads\":" << rp.nested_threads << ",\"connections_per_request\":" << rp.nested_cm
          << ",\"safe_max_size\":" << rp.nested_threads * (rp.nested_cm - 1) + 1 << ",\"rows\":[";
        for (std::size_t i = 0; i < rp.nested.size(); ++i) {
            o << (i ? "," : "") << "{\"max_size\":" << rp.nested[i].max_size << ",\"result\":";
            json_result(o, rp.nested[i].r, false);
            o << "}";
        }
        o << "]}";
    }
    o << "}\n";
}

inline std::vector<svg::chart> charts(const report& rp) {
    std::vector<svg::chart> out;
    const result& r = rp.main;
    if (rp.sizes) {
        svg::chart c{"chart-sweep", "Acquire wait against max_size", "max_size (per instance)", "wait (ms)", {}, {}, {}, 0};
        svg::line p50{"p50", "#1f77b4", {}, true}, p99{"p99", "#d62728", {}, true};
        double top = rp.sizes->target_p99_ms * 4;
        for (const auto& row : rp.sizes->rows) {
            p50.points.push_back({static_cast<double>(row.max_size), row.r.wait_p50_ms});
            p99.points.push_back({static_cast<double>(row.max_size), row.r.wait_p99_ms});
        }
        c.lines = {p50, p99};
        c.y_max = svg::nice_ceil(top);  // the steep left end would flatten the interesting part
        c.horizontal.push_back({rp.sizes->target_p99_ms, "target p99", "#2ca02c"});
        if (rp.sizes->smallest_meeting)
            c.vertical.push_back({static_cast<double>(*rp.sizes->smallest_meeting), "smallest meeting target: " + std::to_string(*rp.sizes->smallest_meeting), "#2ca02c"});
        if (rp.sizes->budget_limit)
            c.vertical.push_back({static_cast<double>(*rp.sizes->budget_limit), "server budget: " + std::to_string(*rp.sizes->budget_limit), "#9467bd"});
        out.push_back(c);
    }
    svg::chart conns{"chart-connections", "Connections over time", "virtual time (s)", "connections", {}, {}, {}, 0};
    svg::chart queue{"chart-queue", "Callers waiting over time", "virtual time (s)", "waiting", {}, {}, {}, 0};
    svg::line server{"at the server", "#9467bd", {}, false, true}, open{"pools' open", "#1f77b4", {}, false},
        busy{"busy", "#ff7f0e", {}, false}, waiting{"waiting", "#d62728", {}, false};
    for (const auto& p : r.series) {
        server.points.push_back({p.t_s, static_cast<double>(p.server_connections)});
        open.points.push_back({p.t_s, static_cast<double>(p.open)});
        busy.points.push_back({p.t_s, static_cast<double>(p.busy)});
        waiting.points.push_back({p.t_s, static_cast<double>(p.waiting)});
    }
    conns.lines = {open, busy, server};
    if (rp.cfg.max_connections) conns.horizontal.push_back({static_cast<double>(rp.cfg.max_connections), "max_connections", "#d62728"});
    if (rp.cfg.outage_length.count() > 0)
        conns.vertical.push_back({seconds_d(rp.cfg.outage_start).count(), "outage", "#7f7f7f"});
    queue.lines = {waiting};
    out.push_back(conns);
    out.push_back(queue);
    if (!r.advice.empty()) {
        svg::chart c{"chart-adaptive", rp.cfg.adaptive ? "Adaptive max_size (instance 0)" : "Advisor's recommendation (instance 0)",
                     "virtual time (s)", "connections", {}, {}, {}, 0};
        svg::line rec{"recommended", "#2ca02c", {}, true}, size{"max_size", "#1f77b4", {}, false};
        for (const auto& a : r.advice) {
            rec.points.push_back({a.t_s, static_cast<double>(a.recommended)});
            size.points.push_back({a.t_s, static_cast<double>(a.max_size)});
        }
        c.lines = {size, rec};
        for (const auto& s : rp.cfg.arrivals.steps) {
            if (s.at_s > 0) c.vertical.push_back({s.at_s, "rate " + fmt("%.0f/s", s.rate), "#7f7f7f"});
        }
        out.push_back(c);
    }
    if (!rp.nested.empty()) {
        svg::chart c{"chart-nested", "Nested acquire: timeouts while holding a connection", "max_size", "nested timeouts", {}, {}, {}, 0};
        svg::line t{"nested timeouts", "#d62728", {}, true};
        for (const auto& d : rp.nested) t.points.push_back({static_cast<double>(d.max_size), static_cast<double>(d.r.nested_timeouts)});
        c.lines = {t};
        c.vertical.push_back({static_cast<double>(rp.nested_threads * (rp.nested_cm - 1) + 1), "Tn x (Cm - 1) + 1", "#2ca02c"});
        out.push_back(c);
    }
    return out;
}

inline void print_html(std::ostream& o, const report& rp) {
    o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>connpool-sim report</title>\n"
         "<style>body{font-family:sans-serif;max-width:800px;margin:20px auto;color:#222}"
         "pre{background:#f4f4f4;padding:8px;overflow-x:auto;font-size:12px}svg{display:block;margin:14px 0}</style>"
         "</head><body>\n<h1>connpool-sim report</h1>\n";
    o << "<p>The real connpool state machine (<code>detail::pool_state</code>) in virtual time.</p>\n";
    if (!rp.command.empty()) o << "<pre>" << svg::escape(rp.command) << "</pre>\n";
    std::ostringstream table;
    print_table(table, rp);
    o << "<pre id=\"summary\">" << svg::escape(table.str()) << "</pre>\n";
    for (const auto& c : charts(rp)) o << svg::render(c);
    o << "</body></html>\n";
}

}  // namespace connpool::sim

#endif  // CONNPOOL_TOOLS_SIM_REPORT_HPP
