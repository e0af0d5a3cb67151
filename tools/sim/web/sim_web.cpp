// The browser simulator's module (issue 19): connpool-sim's engine, the real
// detail::pool_state, compiled to wasm32-wasi and stepped by docs/simulator/index.html.
//
// The page talks in connpool-sim's own flags: sim_start() takes the command line's
// arguments (one per line) and parses them with the CLI's parser, so a scenario in the URL,
// the command line the page offers and the run it shows are one and the same. Every answer
// is JSON in a buffer the page reads (sim_out, sim_out_len).
#include "cli.hpp"
#include "report.hpp"

#include <connpool/advisor.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace sim = connpool::sim;

namespace {

std::string in_buf;    // what the page wrote (sim_in)
std::string out_buf;   // what the page reads next (sim_out)
std::string last_error;

struct live_run {
    sim::cli c;
    std::unique_ptr<sim::engine> e;
    std::vector<float> window;  // waits since the last chart point (µs)
    // The last second of chart points: each one's waits and timeouts, for rolling figures.
    std::deque<std::pair<std::vector<float>, std::uint64_t>> recent;
    std::vector<float> scratch;
    double last_p50 = 0, last_p99 = 0;
    std::uint64_t steps = 0;
    std::ostringstream points;  // chart points since the last sim_state()
    std::size_t points_n = 0;
    std::uint64_t timeouts_at_point = 0;
    connpool::advisor adv;
    connpool::advice last_advice;
    double next_advice_s = 1;
};
std::unique_ptr<live_run> run;

// Percentile of a small vector, the engine's rule (index p x (n - 1), nth_element).
double quantile_ms(std::vector<float>& v, double p) {
    if (v.empty()) return 0;
    const auto k = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
    return v[k] / 1000.0;
}

const char* slot_letter(connpool::detail::slot_state s) {
    using connpool::detail::slot_state;
    switch (s) {
    case slot_state::empty: return "e";
    case slot_state::connecting: return "c";
    case slot_state::idle: return "i";
    case slot_state::leased: return "b";
    case slot_state::resetting: return "r";
    case slot_state::pinging: return "p";
    case slot_state::applying: return "p";  // drawn as a check in progress, as a ping
    case slot_state::probing: return "q";
    case slot_state::closing: return "x";
    case slot_state::orphaned: return "o";
    }
    return "?";
}

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::string line;
    std::istringstream in(text);
    while (std::getline(in, line)) {
        if (!line.empty()) out.push_back(line);
    }
    return out;
}

const char* answer(std::string s) {
    out_buf = std::move(s);
    return out_buf.c_str();
}

void advise_now() {
    auto& r = *run;
    const auto s = r.e->state(0).snapshot(r.e->now());
    r.last_advice = r.adv.observe(s, r.e->now());
}

std::string ms_text(double ns) {
    char b[40];
    std::snprintf(b, sizeof b, "%.10gms", ns / 1e6);
    return b;
}

// A hold model as its flag is written ("fixed:25ms", "lognormal:10ms:0.5").
std::string hold_text(const sim::hold_model& h) {
    using k = sim::hold_model::kind;
    switch (h.k) {
    case k::fixed: return "fixed:" + ms_text(h.mean_ns);
    case k::exponential: return "exp:" + ms_text(h.mean_ns);
    case k::lognormal: return "lognormal:" + ms_text(h.mean_ns) + ":" + sim::fmt("%.10g", h.sigma);
    case k::histogram: break;
    }
    return "hist:?";
}

}  // namespace

// ------------------------------------------------------------------ exceptions
// Debian's wasm32 libc++abi is built without exception support, so the module is compiled
// with -fexceptions (no wasm EH instructions: a throw never unwinds) and these two stand in
// for the runtime: a throw keeps its what() for sim_last_error() and traps. Everything the
// engine throws derives from std::exception by single inheritance, so the object starts
// with its std::exception. The page reloads the module after a trap (the stack pointer is
// not restored) and shows the message.
extern "C" void* __cxa_allocate_exception(std::size_t n) noexcept { return std::malloc(n); }
extern "C" [[noreturn]] void __cxa_throw(void* obj, void*, void (*)(void*)) {
    last_error = static_cast<std::exception*>(obj)->what();
    __builtin_trap();
}

// ------------------------------------------------------------------ the page's interface

extern "C" {

// A buffer of n bytes for the page to write its argument into.
__attribute__((export_name("sim_in"))) char* sim_in(std::size_t n) {
    in_buf.assign(n, '\0');
    return in_buf.data();
}
__attribute__((export_name("sim_out"))) const char* sim_out() { return out_buf.c_str(); }
__attribute__((export_name("sim_out_len"))) std::size_t sim_out_len() { return out_buf.size(); }
__attribute__((export_name("sim_last_error"))) const char* sim_last_error() { return answer(last_error); }

// connpool-sim's defaults, as flag values: what a flag left out means, so the page leaves
// out of its command line and URL whatever equals these.
__attribute__((export_name("sim_defaults"))) const char* sim_defaults() {
    const sim::cli c = sim::parse_cli({});
    const auto& o = c.cfg.pool;
    auto q = [](const std::string& s) { return "\"" + s + "\""; };
    auto ms = [&](std::chrono::milliseconds d) { return q(std::to_string(d.count()) + "ms"); };
    std::ostringstream j;
    j << "{\"rate\":" << q(sim::fmt("%g", c.cfg.arrivals.steps.front().rate)) << ",\"hold\":" << q(hold_text(c.cfg.hold))
      << ",\"connect-time\":" << q(hold_text(c.cfg.connect_time)) << ",\"max-size\":" << q(std::to_string(o.max_size))
      << ",\"min-idle\":" << q(std::to_string(o.min_idle)) << ",\"acquire-timeout\":" << ms(o.acquire_timeout)
      << ",\"max-lifetime\":" << ms(o.max_lifetime) << ",\"idle-timeout\":" << ms(o.idle_timeout)
      << ",\"validation\":" << q(o.validation == connpool::validation_mode::always     ? "always"
                                  : o.validation == connpool::validation_mode::optimistic ? "optimistic"
                                                                                          : "when_idle")
      << ",\"reset-on-return\":" << q(o.reset_on_return ? "1" : "0")
      << ",\"reset-time\":" << q(ms_text(static_cast<double>(c.cfg.reset_time.count())))
      << ",\"handoff\":" << q(o.handoff == connpool::handoff_policy::fifo ? "fifo" : "barging")
      << ",\"instances\":" << q(std::to_string(c.cfg.instances))
      << ",\"max-connections\":" << q(std::to_string(c.cfg.max_connections))
      << ",\"reserved\":" << q(std::to_string(c.cfg.reserved)) << ",\"threads\":" << q(std::to_string(c.cfg.threads))
      << ",\"tenants\":\"\",\"bursts\":\"\",\"seed\":" << q(std::to_string(c.cfg.seed))
      << ",\"target-p99\":" << q(sim::fmt("%gms", c.target_p99_ms)) << "}";
    return answer(j.str());
}

// Starts a run from connpool-sim's arguments (in sim_in, one per line). The run has no
// end: the page steps it with sim_step(). Returns the settings as the CLI parsed them.
__attribute__((export_name("sim_start"))) const char* sim_start() {
    last_error = "invalid value in the scenario";  // what a trap without a message meant
    auto r = std::make_unique<live_run>();
    r->c = sim::parse_cli(lines_of(in_buf));
    r->c.cfg.duration = std::chrono::hours(24 * 365);
    r->c.cfg.sample_every = std::chrono::hours(1);  // the page samples at its own steps
    r->c.cfg.advise_every = {};
    r->c.cfg.adaptive.reset();
    connpool::advice_target t = r->c.cfg.advice;
    t.window = std::chrono::seconds(10);  // a page reacts within seconds
    r->adv = connpool::advisor(t);
    r->e = std::make_unique<sim::engine>(r->c.cfg);
    r->e->tap_waits(&r->window);
    r->e->keep_waits(std::size_t{1} << 23);  // 32 MB of exact waits, then the histogram
    r->e->begin();
    run = std::move(r);
    advise_now();
    last_error.clear();
    std::ostringstream o;
    const auto& cfg = run->e->cfg();
    o << "{\"max_size\":" << cfg.pool.max_size << ",\"min_idle\":" << cfg.pool.min_idle
      << ",\"instances\":" << cfg.instances << ",\"seed\":" << cfg.seed << "}";
    return answer(o.str());
}

// Plays the run to virtual second t, then records one chart point: the wait percentiles
// and the timeouts over the last virtual second, and the gauges at t:
//   [t, wait p50 ms, wait p99 ms, in_use, waiting, timeouts, open, waits counted, max_size]
__attribute__((export_name("sim_step"))) void sim_step(double t_s) {
    auto& r = *run;
    r.e->advance_to(r.e->at(t_s));
    if (r.e->now_s() >= r.next_advice_s) {
        advise_now();
        r.next_advice_s = r.e->now_s() + 1;
    }
    std::size_t in_use = 0, waiting = 0, open = 0;
    for (std::size_t i = 0; i < r.e->instances(); ++i) {
        const auto s = r.e->state(i).snapshot(r.e->now());
        in_use += s.in_use;
        waiting += s.waiting;
        open += s.open;
    }
    const std::uint64_t timeouts = r.e->counters().timeouts;
    // A point covers 1/20 s or more (the page steps 50 ms): keep 20 points' worth. Past
    // 20,000 waits a second the figures come from the newest points only, to stay cheap.
    r.recent.emplace_back(std::move(r.window), timeouts - r.timeouts_at_point);
    r.window = {};
    r.timeouts_at_point = timeouts;
    while (r.recent.size() > 20) r.recent.pop_front();
    std::uint64_t timeouts_1s = 0;
    std::size_t waits_1s = 0;
    for (const auto& [w, t] : r.recent) {
        timeouts_1s += t;
        waits_1s += w.size();
    }
    // Past 2,000 waits a second the percentiles are taken every fourth point (200 ms): the
    // sort would otherwise cost a third of the engine's own time.
    if (waits_1s <= 2000 || r.steps++ % 4 == 0) {
        r.scratch.clear();
        for (auto it = r.recent.rbegin(); it != r.recent.rend() && r.scratch.size() < 20000; ++it) {
            r.scratch.insert(r.scratch.end(), it->first.begin(), it->first.end());
        }
        r.last_p50 = quantile_ms(r.scratch, 0.50);
        r.last_p99 = quantile_ms(r.scratch, 0.99);
    }
    const double p50 = r.last_p50, p99 = r.last_p99;
    char b[200];
    std::snprintf(b, sizeof b, "%s[%.4f,%.4f,%.4f,%zu,%zu,%llu,%zu,%zu,%zu]", r.points_n++ ? "," : "", r.e->now_s(), p50, p99,
                  in_use, waiting, static_cast<unsigned long long>(timeouts_1s), open, waits_1s,
                  r.e->state(0).current().max_size);
    r.points << b;
}

// What the views draw, now; the chart points since the last call.
__attribute__((export_name("sim_state"))) const char* sim_state() {
    auto& r = *run;
    const auto& e = *r.e;
    const auto& cfg = e.cfg();
    std::ostringstream o;
    char b[64];
    std::snprintf(b, sizeof b, "%.0f", std::chrono::duration<double, std::nano>(e.now() - e.at(0)).count());
    o << "{\"now_s\":" << e.now_s() << ",\"now_ns\":" << b;
    // stats() of instance 0 with the names stats() has; the gauges also summed over instances.
    const auto s = e.state(0).snapshot(e.now());
    o << ",\"stats\":{\"open\":" << s.open << ",\"idle\":" << s.idle << ",\"in_use\":" << s.in_use
      << ",\"creating\":" << s.creating << ",\"waiting\":" << s.waiting << ",\"max_size\":" << s.max_size
      << ",\"min_idle\":" << s.min_idle << ",\"acquired\":" << s.acquired << ",\"waited\":" << s.waited
      << ",\"created\":" << s.created << ",\"connect_failures\":" << s.connect_failures << ",\"timeouts\":" << s.timeouts
      << ",\"rejected\":" << s.rejected << ",\"fast_failed\":" << s.fast_failed
      << ",\"wait_p50_us\":" << s.wait_p50.count() << ",\"wait_p99_us\":" << s.wait_p99.count()
      << ",\"wait_max_us\":" << s.wait_max.count() << ",\"wait_time\":[";
    // The wait histogram over every instance.
    std::vector<std::uint64_t> hist(connpool::duration_histogram::bucket_count, 0);
    std::size_t open = 0, idle = 0, in_use = 0, creating = 0, waiting = 0;
    for (std::size_t i = 0; i < e.instances(); ++i) {
        const auto si = i == 0 ? s : e.state(i).snapshot(e.now());
        for (std::size_t k = 0; k < hist.size(); ++k) hist[k] += si.wait_time.buckets[k];
        open += si.open;
        idle += si.idle;
        in_use += si.in_use;
        creating += si.creating;
        waiting += si.waiting;
    }
    for (std::size_t k = 0; k < hist.size(); ++k) o << (k ? "," : "") << hist[k];
    o << "],\"tenants\":[";
    for (std::size_t i = 0; i < s.tenants.size(); ++i) {
        const auto& t = s.tenants[i];
        o << (i ? "," : "") << "{\"id\":" << t.id << ",\"quota\":" << t.quota << ",\"weight\":" << t.weight
          << ",\"held\":" << t.held << ",\"waiting\":" << t.waiting << ",\"acquired\":" << t.acquired
          << ",\"timeouts\":" << t.timeouts << ",\"wait_p99_us\":" << t.wait_p99.count() << "}";
    }
    o << "]},\"all\":{\"open\":" << open << ",\"idle\":" << idle << ",\"in_use\":" << in_use << ",\"creating\":" << creating
      << ",\"waiting\":" << waiting << ",\"backlog\":" << e.backlog() << "}";
    // Instance 0's slots, one letter each (slot_letter), as the cells of the pool box.
    o << ",\"slots\":\"";
    std::size_t shown = 0;
    e.state(0).slots().for_each([&](const auto& sl) {
        if (shown++ < 400) o << slot_letter(sl.load());
    });
    const auto& c = e.counters();
    o << "\",\"run\":{\"requests\":" << c.requests << ",\"served\":" << c.served << ",\"completed\":" << c.completed
      << ",\"timeouts\":" << c.timeouts << ",\"other_errors\":" << c.other_errors
      << ",\"connections_opened\":" << c.connections_opened << ",\"refused_by_server\":" << c.refused_by_server
      << ",\"peak_waiting\":" << c.peak_waiting << ",\"events\":" << c.events << "}";
    const auto budget = sim::budget_per_instance(cfg);
    o << ",\"server\":{\"connections\":" << e.server_connections() << ",\"max_connections\":" << cfg.max_connections
      << ",\"reserved\":" << cfg.reserved << ",\"instances\":" << cfg.instances
      << ",\"budget_share\":" << cfg.advice.budget_share << ",\"budget_per_instance\":" << (budget ? *budget : 0) << "}";
    const auto& a = r.last_advice;
    o << ",\"advice\":{\"measured\":" << (a.measured ? "true" : "false") << ",\"arrival_rate\":" << a.arrival_rate
      << ",\"mean_hold_us\":" << a.mean_hold.count() << ",\"busy\":" << a.busy << ",\"max_size\":" << a.max_size
      << ",\"current_max_size\":" << a.current_max_size << ",\"budget_per_instance\":" << a.budget_per_instance
      << ",\"budget_headroom\":" << a.budget_headroom << ",\"window_s\":" << a.window_s
      << ",\"target_wait_us\":" << r.adv.target().wait.count() << ",\"reason\":\"";
    for (char ch : a.reason) {
        if (ch == '"' || ch == '\\') o << '\\';
        if (static_cast<unsigned char>(ch) >= 0x20) o << ch;
    }
    o << "\"},\"points\":[" << r.points.str() << "]}";
    r.points.str("");
    r.points_n = 0;
    return answer(o.str());
}

// The run so far as connpool-sim reports it at the end of --duration (its JSON "run"
// object), plus its p50/p99 exactly as its table prints them.
__attribute__((export_name("sim_summary"))) const char* sim_summary() {
    auto& r = *run;
    const sim::result res = r.e->summary();
    std::ostringstream o;
    o << "{\"exact\":" << (res.served <= (std::size_t{1} << 23) ? "true" : "false") << ",\"p50_text\":\""
      << sim::fmt("%.3f", res.wait_p50_ms) << "\",\"p99_text\":\"" << sim::fmt("%.3f", res.wait_p99_ms)
      << "\",\"max_text\":\"" << sim::fmt("%.3f", res.wait_max_ms) << "\",\"run\":";
    sim::json_result(o, res, false);
    o << "}";
    return answer(o.str());
}

// A burst of n requests on the next whole millisecond; returns that second, the T of the
// "--bursts T:N" that replays it.
__attribute__((export_name("sim_burst"))) double sim_burst(std::size_t n) { return run->e->add_burst(n); }

// A live change, by connpool-sim's flag name and value (in sim_in as "key\nvalue").
__attribute__((export_name("sim_set"))) int sim_set() {
    last_error = "invalid value";
    const auto kv = lines_of(in_buf);
    if (kv.size() != 2) return 1;
    const std::string& k = kv[0];
    const std::string& v = kv[1];
    auto& e = *run->e;
    if (k == "max-size") e.set_max_size(sim::to_size(v));
    else if (k == "min-idle") e.set_min_idle(sim::to_size(v));
    else if (k == "rate") e.set_rate(std::stod(v));
    else if (k == "hold") e.set_hold(sim::parse_hold(v));
    else if (k == "connect-time") e.set_connect_time(sim::parse_hold(v));
    else if (k == "acquire-timeout") e.set_acquire_timeout(sim::to_ms(v));
    else if (k == "max-connections" || k == "reserved") {
        const std::size_t n = sim::to_size(v);
        e.set_server(k == "reserved" ? e.cfg().max_connections : n, k == "reserved" ? n : e.cfg().reserved);
        connpool::advice_target t = run->adv.target();  // the advisor's budget follows
        t.max_connections = e.cfg().max_connections;
        t.reserved = e.cfg().reserved;
        run->adv = connpool::advisor(t);
    } else if (k == "tenants") {
        const auto ts = sim::parse_tenants(v);
        if (ts.size() != e.cfg().tenants.size()) return 1;  // adding or removing tenants restarts
        for (std::size_t i = 0; i < ts.size(); ++i) e.set_tenant(i, ts[i]);
    } else if (k == "target-p99") {
        connpool::advice_target t = run->adv.target();
        t.wait = std::chrono::duration_cast<std::chrono::microseconds>(sim::parse_duration(v));
        run->adv = connpool::advisor(t);
    } else return 1;
    last_error.clear();
    return 0;
}

// The CLI's max_size sweep (sweep.hpp) over the scenario in sim_in, for the sizes lo..hi:
// each size a separate run of duration_s, as connpool-sim --sweep lo:hi --sweep-duration.
__attribute__((export_name("sim_sweep"))) const char* sim_sweep(std::size_t lo, std::size_t hi, double duration_s) {
    last_error = "invalid value in the scenario";
    sim::cli c = sim::parse_cli(lines_of(in_buf));
    sim::config sc = c.cfg;
    sc.duration = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(duration_s));
    sc.warmup = std::min(sc.warmup, sc.duration / 2);
    sc.advise_every = {};
    sc.adaptive.reset();
    std::vector<std::size_t> sizes;
    for (std::size_t n = std::max<std::size_t>(lo, 1); n <= hi; ++n) sizes.push_back(n);
    const auto s = sim::sweep(sc, sizes, c.target_p99_ms);
    std::ostringstream o;
    o << "{\"target_p99_ms\":" << s.target_p99_ms << ",\"smallest_meeting\":";
    if (s.smallest_meeting) o << *s.smallest_meeting; else o << "null";
    o << ",\"budget_limit\":";
    if (s.budget_limit) o << *s.budget_limit; else o << "null";
    o << ",\"rows\":[";
    for (std::size_t i = 0; i < s.rows.size(); ++i) {
        const auto& row = s.rows[i];
        o << (i ? "," : "") << "{\"max_size\":" << row.max_size << ",\"p50\":" << row.r.wait_p50_ms << ",\"p99\":"
          << row.r.wait_p99_ms << ",\"p99_text\":\"" << sim::fmt("%.3f", row.r.wait_p99_ms) << "\",\"timeouts\":" << row.r.timeouts << ",\"utilization\":" << row.r.utilization
          << ",\"meets_target\":" << (row.meets_target ? "true" : "false")
          << ",\"over_budget\":" << (row.over_budget ? "true" : "false") << "}";
    }
    o << "]}";
    last_error.clear();
    return answer(o.str());
}

// A whole run, as the connpool-sim command line in sim_in would make it (its JSON "run"
// object and the table's p99): what the test compares with the native binary.
__attribute__((export_name("sim_run"))) const char* sim_run() {
    last_error = "invalid value in the scenario";
    sim::cli c = sim::parse_cli(lines_of(in_buf));
    const sim::result res = sim::engine(c.cfg).run();
    std::ostringstream o;
    o << "{\"p50_text\":\"" << sim::fmt("%.3f", res.wait_p50_ms) << "\",\"p99_text\":\"" << sim::fmt("%.3f", res.wait_p99_ms)
      << "\",\"run\":";
    sim::json_result(o, res, false);
    o << "}";
    last_error.clear();
    return answer(o.str());
}

}  // extern "C"
