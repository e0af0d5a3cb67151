// connpool-sim's command line: --key value (or --key=value) flags, and --config FILE with
// the same keys as "key = value" lines (# starts a comment). Later settings win.
#ifndef CONNPOOL_TOOLS_SIM_CLI_HPP
#define CONNPOOL_TOOLS_SIM_CLI_HPP

#include "model.hpp"
#include "sweep.hpp"

#include <map>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace connpool::sim {

struct cli {
    config cfg;
    std::string sweep;                 // sizes, empty: no sweep
    std::chrono::nanoseconds sweep_duration{};  // 0: min(duration, 120 s)
    double target_p99_ms = 5;
    std::size_t nested_threads = 0, nested_cm = 0;  // the nested-acquire demo, when set
    std::string json, html, export_hold;
    bool quiet = false;
    bool help = false;
};

inline const char* usage() {
    return R"(connpool-sim: the real connpool pool logic against a workload, in virtual time.

workload   --rate R | T:R,T:R...   requests/s across all instances (a curve: seconds:rate)
           --bursts T:N,...        N requests arriving at once at second T
           --hold fixed:10ms | exp:10ms | lognormal:10ms:0.8 | hist:FILE (stats() use_time buckets)
           --duration 1h  --warmup 0s  --seed 1
           --threads N             application threads per instance (0: one per request)
           --nested Cm             connections each request holds at once
           --tenants S:W[:Q],...   tenants 1, 2...: share of the requests, weight, quota
server     --instances N  --max-connections N  --reserved N
           --connect-time fixed:5ms  --connect-failure 0.01  --ping-time 200us  --reset-time 0
           --outage START:LENGTH   e.g. 600s:30s, every backend dies and connects are refused
           --wake-latency exp:50us | hist:FILE   how late a woken application thread runs
pool       --max-size --min-idle --max-idle --acquire-timeout --connect-timeout --idle-timeout
           --max-lifetime --validation optimistic|always|when_idle --handoff barging|fifo
           --starvation-bound --queue-order fifo|lifo --max-connecting --max-waiters --housekeeping --reset-on-return 0|1
sizing     --sweep 2:40[:step] | 4,8,16   --sweep-duration 2m   --target-p99 5ms
           --advise 5s             run the advisor every 5 s (chart of its recommendation)
           --adaptive FLOOR:CEILING  let the adaptive size move max_size (implies --advise 5s)
           --nested-demo Tn:Cm     show the nested-acquire deadlock around Tn x (Cm - 1) + 1
output     --json FILE|-  --html FILE  --export-hold FILE  --quiet  --config FILE
)";
}

inline std::size_t to_size(const std::string& v) { return static_cast<std::size_t>(std::stoul(v)); }
inline std::chrono::milliseconds to_ms(const std::string& v) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(parse_duration(v));
}

inline void apply(cli& c, const std::string& key, const std::string& v);

// "3:1:0,1:3:2": per tenant SHARE:WEIGHT[:QUOTA], tenant ids 1, 2, ... in that order.
inline std::vector<tenant_mix> parse_tenants(const std::string& text) {
    std::vector<tenant_mix> out;
    for (const auto& t : split(text, ',')) {
        const auto p = split(t, ':');
        if (p.size() < 2 || p.size() > 3) throw std::invalid_argument("--tenants wants SHARE:WEIGHT[:QUOTA],..., got '" + t + "'");
        tenant_mix m;
        m.share = std::stod(p[0]);
        m.opts.weight = static_cast<std::uint32_t>(std::stoul(p[1]));
        if (p.size() > 2) m.opts.quota = to_size(p[2]);
        if (!(m.share >= 0)) throw std::invalid_argument("--tenants: a share must be >= 0, got '" + p[0] + "'");
        out.push_back(m);
    }
    return out;
}

inline void read_config(cli& c, const std::string& path) {
    std::istringstream in(read_text_file(path, "config"));
    std::string line;
    for (int n = 0; n < 10000 && std::getline(in, line); ++n) {
        if (auto h = line.find('#'); h != std::string::npos) line.erase(h);
        const auto eq = line.find_first_of("= \t");
        auto trim = [](std::string s) {
            s.erase(0, s.find_first_not_of(" \t"));
            s.erase(s.find_last_not_of(" \t\r") + 1);
            return s;
        };
        const std::string key = trim(line.substr(0, eq));
        if (key.empty()) continue;
        std::string value = eq == std::string::npos ? "1" : trim(line.substr(eq + 1));
        if (!value.empty() && value[0] == '=') value = trim(value.substr(1));
        apply(c, key, value);
    }
}

inline void apply(cli& c, const std::string& key, const std::string& v) {
    auto& o = c.cfg.pool;
    if (key == "rate") c.cfg.arrivals.steps = parse_rate(v);
    else if (key == "bursts") c.cfg.arrivals.bursts = parse_bursts(v);
    else if (key == "hold") c.cfg.hold = parse_hold(v);
    else if (key == "duration") c.cfg.duration = parse_duration(v);
    else if (key == "warmup") c.cfg.warmup = parse_duration(v);
    else if (key == "seed") c.cfg.seed = std::stoull(v);
    else if (key == "threads") c.cfg.threads = to_size(v);
    else if (key == "nested") c.cfg.nested = std::max<std::size_t>(1, to_size(v));
    else if (key == "instances") c.cfg.instances = std::max<std::size_t>(1, to_size(v));
    else if (key == "max-connections") c.cfg.max_connections = to_size(v);
    else if (key == "reserved") c.cfg.reserved = to_size(v);
    else if (key == "connect-time") c.cfg.connect_time = parse_hold(v);
    else if (key == "connect-failure") c.cfg.connect_failure = std::stod(v);
    else if (key == "ping-time") c.cfg.ping_time = parse_duration(v);
    else if (key == "reset-time") c.cfg.reset_time = parse_duration(v);
    else if (key == "tenants") c.cfg.tenants = parse_tenants(v);
    else if (key == "wake-latency") c.cfg.wake_latency = parse_hold(v);
    else if (key == "outage") {
        const auto p = split(v, ':');
        if (p.size() != 2) throw std::invalid_argument("--outage wants START:LENGTH, got '" + v + "'");
        c.cfg.outage_start = parse_duration(p[0]);
        c.cfg.outage_length = parse_duration(p[1]);
    } else if (key == "max-size") o.max_size = to_size(v);
    else if (key == "min-idle") o.min_idle = to_size(v);
    else if (key == "max-idle") o.max_idle = to_size(v);
    else if (key == "acquire-timeout") o.acquire_timeout = to_ms(v);
    else if (key == "connect-timeout") o.connect_timeout = to_ms(v);
    else if (key == "idle-timeout") o.idle_timeout = to_ms(v);
    else if (key == "max-lifetime") o.max_lifetime = to_ms(v);
    else if (key == "starvation-bound") o.starvation_bound = std::chrono::duration_cast<std::chrono::microseconds>(parse_duration(v));
    else if (key == "max-connecting") o.max_connecting = to_size(v);
    else if (key == "max-waiters") o.max_waiters = to_size(v);
    else if (key == "housekeeping") o.housekeeping_interval = to_ms(v);
    else if (key == "reset-on-return") o.reset_on_return = v != "0" && v != "false";
    else if (key == "validation") {
        if (v == "optimistic") o.validation = validation_mode::optimistic;
        else if (v == "always") o.validation = validation_mode::always;
        else if (v == "when_idle") o.validation = validation_mode::when_idle;
        else throw std::invalid_argument("--validation: optimistic, always or when_idle, not '" + v + "'");
    } else if (key == "handoff") {
        if (v == "barging" || v == "sticky") o.handoff = handoff_policy::barging;
        else if (v == "fifo") o.handoff = handoff_policy::fifo;
        else throw std::invalid_argument("--handoff: barging or fifo, not '" + v + "'");
    } else if (key == "queue-order") {
        if (v == "fifo") o.queue_order = waiter_order::fifo;
        else if (v == "lifo") o.queue_order = waiter_order::lifo;
        else throw std::invalid_argument("--queue-order: fifo or lifo, not '" + v + "'");
    } else if (key == "sweep") c.sweep = v;
    else if (key == "sweep-duration") c.sweep_duration = parse_duration(v);
    else if (key == "target-p99") c.target_p99_ms = static_cast<double>(parse_duration(v).count()) / 1e6;
    else if (key == "advise") c.cfg.advise_every = parse_duration(v);
    else if (key == "adaptive") {
        const auto p = split(v, ':');
        if (p.size() != 2) throw std::invalid_argument("--adaptive wants FLOOR:CEILING, got '" + v + "'");
        sizing::adaptive_options a;
        a.floor = to_size(p[0]);
        a.ceiling = to_size(p[1]);
        c.cfg.adaptive = a;
        if (c.cfg.advise_every.count() == 0) c.cfg.advise_every = std::chrono::seconds(5);
    } else if (key == "nested-demo") {
        const auto p = split(v, ':');
        if (p.size() != 2) throw std::invalid_argument("--nested-demo wants Tn:Cm, got '" + v + "'");
        c.nested_threads = to_size(p[0]);
        c.nested_cm = std::max<std::size_t>(2, to_size(p[1]));
    } else if (key == "json") c.json = v;
    else if (key == "html") c.html = v;
    else if (key == "export-hold") c.export_hold = v;
    else if (key == "quiet") c.quiet = v != "0";
    else if (key == "config") read_config(c, v);
    else throw std::invalid_argument("unknown option --" + key + " (see --help)");
}

inline cli parse_cli(const std::vector<std::string>& args) {
    cli c;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string a = args[i];
        if (a == "-h" || a == "--help") {
            c.help = true;
            continue;
        }
        if (a.rfind("--", 0) != 0) throw std::invalid_argument("unexpected argument '" + a + "'");
        a.erase(0, 2);
        std::string value;
        if (auto eq = a.find('='); eq != std::string::npos) {
            value = a.substr(eq + 1);
            a.erase(eq);
        } else if (a == "quiet") {
            value = "1";
        } else {
            if (i + 1 >= args.size()) throw std::invalid_argument("--" + a + " needs a value");
            value = args[++i];
        }
        apply(c, a, value);
    }
    // The advisor and the adaptive size see the budget the sweep reports.
    c.cfg.advice.max_connections = c.cfg.max_connections;
    c.cfg.advice.reserved = c.cfg.reserved;
    c.cfg.advice.instances = c.cfg.instances;
    c.cfg.advice.wait = std::chrono::microseconds(static_cast<std::int64_t>(c.target_p99_ms * 1000));
    if (c.cfg.adaptive) {
        c.cfg.adaptive->floor = std::max(c.cfg.adaptive->floor, std::max<std::size_t>(1, c.cfg.pool.min_idle));
        c.cfg.pool.max_size = std::clamp(c.cfg.pool.max_size, c.cfg.adaptive->floor, c.cfg.adaptive->ceiling);
    }
    return c;
}

}  // namespace connpool::sim

#endif  // CONNPOOL_TOOLS_SIM_CLI_HPP
