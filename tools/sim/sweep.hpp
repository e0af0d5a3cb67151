// connpool-sim: runs over a range of max_size, the answer to "how big", and the
// nested-acquire demonstration.
#ifndef CONNPOOL_TOOLS_SIM_SWEEP_HPP
#define CONNPOOL_TOOLS_SIM_SWEEP_HPP

#include "engine.hpp"

#include <connpool/sizing/budget.hpp>

#include <cstddef>
#include <optional>
#include <vector>

namespace connpool::sim {

struct sweep_row {
    std::size_t max_size = 0;
    result r;
    bool meets_target = false;
    bool over_budget = false;  // instances x max_size exceeds what the server admits
};

struct sweep_result {
    std::vector<sweep_row> rows;
    std::optional<std::size_t> smallest_meeting;  // the smallest max_size meeting the target
    std::optional<std::size_t> budget_limit;      // the largest max_size within the server budget
    double target_p99_ms = 0;
};

// The budget rule as pg::check_budget counts it (sizing/budget.hpp): the most each
// instance may open.
inline std::optional<std::size_t> budget_per_instance(const config& c) {
    if (c.max_connections == 0) return std::nullopt;
    return sizing::budget_per_instance(c.max_connections, c.reserved, c.advice.budget_share, c.instances);
}

// A size meets the target when its p99 wait is within it and no acquire timed out.
inline sweep_result sweep(const config& base, const std::vector<std::size_t>& sizes, double target_p99_ms) {
    sweep_result out;
    out.target_p99_ms = target_p99_ms;
    out.budget_limit = budget_per_instance(base);
    for (std::size_t n : sizes) {
        config c = base;
        c.pool.max_size = n;
        c.pool.min_idle = std::min(c.pool.min_idle, n);
        if (c.pool.max_idle > n) c.pool.max_idle = n;
        c.sample_every = c.duration / 100;  // the sweep's own series are not charted
        sweep_row row;
        row.max_size = n;
        row.r = engine(c).run();
        row.meets_target = row.r.wait_p99_ms <= target_p99_ms && row.r.timeouts == 0;
        row.over_budget = out.budget_limit && n > *out.budget_limit;
        if (row.meets_target && !out.smallest_meeting) out.smallest_meeting = n;
        out.rows.push_back(std::move(row));
    }
    return out;
}

// "4:32" (every size), "4:32:4" (a step), or "4,8,16".
inline std::vector<std::size_t> parse_sizes(const std::string& text) {
    std::vector<std::size_t> out;
    if (text.find(':') != std::string::npos) {
        const auto p = split(text, ':');
        const std::size_t lo = std::stoul(p.at(0)), hi = std::stoul(p.at(1));
        const std::size_t step = p.size() > 2 ? std::max<std::size_t>(1, std::stoul(p[2])) : 1;
        for (std::size_t n = std::max<std::size_t>(lo, 1); n <= hi; n += step) out.push_back(n);
    } else {
        for (const auto& s : split(text, ',')) out.push_back(std::max<std::size_t>(1, std::stoul(s)));
    }
    return out;
}

// Tn threads, each request holding Cm connections at once, taken one after the other.
// Below Tn x (Cm - 1) + 1 connections every thread can end up holding Cm - 1 and waiting
// for one more that nobody returns: each such wait ends only in acquire_timeout.
struct deadlock_row {
    std::size_t max_size = 0;
    result r;
};

inline std::vector<deadlock_row> nested_demo(const config& base, std::size_t threads, std::size_t nested) {
    std::vector<deadlock_row> out;
    const std::size_t safe = threads * (nested - 1) + 1;
    for (std::size_t n = std::max<std::size_t>(safe > 3 ? safe - 3 : 1, 1); n <= safe + 1; ++n) {
        config c = base;
        c.threads = threads;
        c.nested = nested;
        c.pool.max_size = n;
        c.pool.min_idle = std::min(c.pool.min_idle, n);
        if (c.pool.max_idle > n) c.pool.max_idle = n;
        out.push_back({n, engine(c).run()});
    }
    return out;
}

}  // namespace connpool::sim

#endif  // CONNPOOL_TOOLS_SIM_SWEEP_HPP
