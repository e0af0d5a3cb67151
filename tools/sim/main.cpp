// connpool-sim: runs the real pool state machine against a workload in virtual time and
// reports waits, timeouts, utilization and connections, a sweep over max_size, and the
// nested-acquire deadlock. See cli.hpp for the flags, README "Sizing your pool" for a tour.
#include "cli.hpp"
#include "report.hpp"

#include <fstream>
#include <iostream>

namespace sim = connpool::sim;

namespace {

void write_to(const std::string& path, const auto& writer) {
    if (path == "-") return writer(std::cout);
    std::ofstream out(path);
    if (!out) throw std::runtime_error("cannot write '" + path + "'");
    writer(out);
}

}  // namespace

int main(int argc, char** argv) {
    try {
        sim::cli c = sim::parse_cli(std::vector<std::string>(argv + 1, argv + argc));
        if (c.help) {
            std::cout << sim::usage();
            return 0;
        }
        sim::report rp;
        for (int i = 0; i < argc; ++i) rp.command += (i ? " " : "") + std::string(i ? argv[i] : "connpool-sim");
        rp.cfg = c.cfg;
        rp.main = sim::engine(c.cfg).run();
        if (!c.sweep.empty()) {
            sim::config sc = c.cfg;
            sc.duration = c.sweep_duration.count() > 0 ? c.sweep_duration : std::min<std::chrono::nanoseconds>(sc.duration, std::chrono::minutes(2));
            sc.warmup = std::min(sc.warmup, sc.duration / 2);
            sc.advise_every = {};  // the sweep measures fixed sizes
            sc.adaptive.reset();
            rp.sizes = sim::sweep(sc, sim::parse_sizes(c.sweep), c.target_p99_ms);
        }
        if (c.nested_threads > 0) {
            sim::config nc = c.cfg;
            // A deadlock lasts until acquire_timeout: a short one shows many in a short run.
            nc.duration = std::min<std::chrono::nanoseconds>(nc.duration, std::chrono::minutes(10));
            nc.pool.acquire_timeout = std::min(nc.pool.acquire_timeout, std::chrono::milliseconds(1000));
            nc.advise_every = {};
            nc.adaptive.reset();
            rp.nested_threads = c.nested_threads;
            rp.nested_cm = c.nested_cm;
            rp.nested = sim::nested_demo(nc, c.nested_threads, c.nested_cm);
        }
        if (!c.quiet && c.json != "-") sim::print_table(std::cout, rp);
        if (!c.json.empty()) write_to(c.json, [&](std::ostream& o) { sim::print_json(o, rp); });
        if (!c.html.empty()) write_to(c.html, [&](std::ostream& o) { sim::print_html(o, rp); });
        if (!c.export_hold.empty()) {
            write_to(c.export_hold, [&](std::ostream& o) {
                o << "{\"use_time\":{\"buckets\":[";
                const auto& h = rp.main.final_stats.use_time;
                for (std::size_t i = 0; i < h.buckets.size(); ++i) o << (i ? "," : "") << h.buckets[i];
                o << "]}}\n";
            });
        }
        return 0;
    } catch (const std::exception& e) {
        std::cerr << "connpool-sim: " << e.what() << "\n";
        return 2;
    }
}
