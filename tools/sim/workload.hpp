// connpool-sim: the workload model. Arrivals (Poisson over a piecewise-constant rate curve,
// plus bursts), hold times (fixed, exponential, log-normal, or replayed from a
// duration_histogram that stats() exported), and the text forms they are read from.
#ifndef CONNPOOL_TOOLS_SIM_WORKLOAD_HPP
#define CONNPOOL_TOOLS_SIM_WORKLOAD_HPP

#include "files.hpp"

#include <connpool/stats.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace connpool::sim {

using seconds_d = std::chrono::duration<double>;

// "10ms", "2.5s", "300us", "1m"; a bare number is in milliseconds.
inline std::chrono::nanoseconds parse_duration(const std::string& text) {
    std::size_t used = 0;
    double v = 0;
    try {
        v = std::stod(text, &used);
    } catch (const std::exception&) {
        throw std::invalid_argument("not a duration: '" + text + "'");
    }
    const std::string unit = text.substr(used);
    double ns = 0;
    if (unit.empty() || unit == "ms") ns = v * 1e6;
    else if (unit == "us") ns = v * 1e3;
    else if (unit == "ns") ns = v;
    else if (unit == "s") ns = v * 1e9;
    else if (unit == "m" || unit == "min") ns = v * 60e9;
    else if (unit == "h") ns = v * 3600e9;
    else throw std::invalid_argument("unknown time unit in '" + text + "'");
    if (ns < 0) throw std::invalid_argument("negative duration: '" + text + "'");
    return std::chrono::nanoseconds(static_cast<std::int64_t>(ns));
}

inline std::vector<std::string> split(const std::string& s, char sep) {
    std::vector<std::string> out;
    std::string part;
    std::istringstream in(s);
    while (std::getline(in, part, sep)) {
        if (!part.empty()) out.push_back(part);
    }
    return out;
}

// A hold-time distribution. Samples are drawn from the engine's own generator, so a run
// is a function of its seed.
struct hold_model {
    enum class kind { fixed, exponential, lognormal, histogram } k = kind::exponential;
    double mean_ns = 10e6;
    double sigma = 0.5;                 // log-normal: the sigma of log(hold)
    std::vector<double> weights;        // histogram: one per duration_histogram bucket
    std::discrete_distribution<std::size_t> pick;

    std::chrono::nanoseconds sample(std::mt19937_64& rng) {
        double ns = mean_ns;
        switch (k) {
        case kind::fixed: break;
        case kind::exponential: ns = std::exponential_distribution<double>(1.0 / mean_ns)(rng); break;
        case kind::lognormal: {
            // mean of a log-normal is exp(mu + sigma^2/2): choose mu so the mean is mean_ns.
            const double mu = std::log(mean_ns) - sigma * sigma / 2;
            ns = std::lognormal_distribution<double>(mu, sigma)(rng);
            break;
        }
        case kind::histogram: {
            // Uniform within the bucket: [2^(i-1), 2^i) us, bucket 0 is [0, 1) us.
            const std::size_t i = pick(rng);
            const double lo = i == 0 ? 0.0 : static_cast<double>(duration_histogram::upper_bound_us(i - 1));
            const double hi = static_cast<double>(duration_histogram::upper_bound_us(i));
            ns = std::uniform_real_distribution<double>(lo, hi)(rng) * 1e3;
            break;
        }
        }
        return std::chrono::nanoseconds(static_cast<std::int64_t>(std::max(ns, 0.0)));
    }

    // The histogram's mean under the same uniform-in-bucket reading as sample().
    void finish_histogram() {
        double total = 0, sum = 0;
        for (std::size_t i = 0; i < weights.size(); ++i) {
            const double lo = i == 0 ? 0.0 : static_cast<double>(duration_histogram::upper_bound_us(i - 1));
            const double hi = static_cast<double>(duration_histogram::upper_bound_us(i));
            total += weights[i];
            sum += weights[i] * (lo + hi) / 2 * 1e3;
        }
        if (total <= 0) throw std::invalid_argument("hold histogram has no samples");
        mean_ns = sum / total;
        pick = std::discrete_distribution<std::size_t>(weights.begin(), weights.end());
    }
};

// The bucket counts of a duration_histogram: a file holding the JSON that stats() was
// exported as (the first "buckets": [...] array) or just the numbers.
inline std::vector<double> read_histogram_file(const std::string& path) {
    std::string text = read_text_file(path, "hold histogram");
    if (auto at = text.find("\"buckets\""); at != std::string::npos) {
        const auto open = text.find('[', at), close = text.find(']', at);
        if (open == std::string::npos || close == std::string::npos) throw std::invalid_argument("bad buckets in " + path);
        text = text.substr(open + 1, close - open - 1);
    }
    for (char& c : text) {
        if (c == ',' || c == '[' || c == ']') c = ' ';
    }
    std::vector<double> w;
    std::istringstream nums(text);
    for (double v; nums >> v && w.size() < duration_histogram::bucket_count;) w.push_back(v);
    return w;
}

// "fixed:10ms", "exp:10ms", "lognormal:10ms:0.8", "hist:FILE".
inline hold_model parse_hold(const std::string& text) {
    hold_model m;
    const auto colon = text.find(':');
    const std::string k = text.substr(0, colon);
    const std::string rest = colon == std::string::npos ? "" : text.substr(colon + 1);
    if (k == "hist") {
        m.k = hold_model::kind::histogram;
        m.weights = read_histogram_file(rest);
        m.finish_histogram();
        return m;
    }
    const auto parts = split(rest, ':');
    if (parts.empty()) throw std::invalid_argument("hold model needs a mean: '" + text + "'");
    m.mean_ns = static_cast<double>(parse_duration(parts[0]).count());
    if (k == "fixed") m.k = hold_model::kind::fixed;
    else if (k == "exp") m.k = hold_model::kind::exponential;
    else if (k == "lognormal") {
        m.k = hold_model::kind::lognormal;
        if (parts.size() > 1) m.sigma = std::stod(parts[1]);
    } else throw std::invalid_argument("unknown hold model '" + k + "' (fixed, exp, lognormal, hist)");
    return m;
}

// Arrivals: Poisson at a rate that steps at given times, and bursts of simultaneous
// requests. Piecewise-constant rates need no thinning: the exponential gap is memoryless,
// so a gap that crosses a step is simply drawn again from the step.
struct arrival_model {
    struct step {
        double at_s;
        double rate;  // requests per second, all instances together
    };
    struct burst {
        double at_s;
        std::size_t count;
    };
    std::vector<step> steps{{0.0, 1000.0}};
    std::vector<burst> bursts;

    double rate_at(double t_s) const {
        double r = steps.front().rate;
        for (const auto& s : steps) {
            if (s.at_s <= t_s) r = s.rate;
        }
        return r;
    }

    double next_step_after(double t_s) const {
        for (const auto& s : steps) {
            if (s.at_s > t_s) return s.at_s;
        }
        return INFINITY;
    }

    // The next arrival strictly after t_s (INFINITY when the rate stays 0).
    double next(double t_s, std::mt19937_64& rng) const {
        for (int guard = 0; guard < 1000; ++guard) {
            const double r = rate_at(t_s);
            const double edge = next_step_after(t_s);
            if (r <= 0) {
                if (edge == INFINITY) return INFINITY;
                t_s = edge;
                continue;
            }
            const double gap = std::exponential_distribution<double>(r)(rng);
            if (t_s + gap < edge) return t_s + gap;
            t_s = edge;
        }
        return INFINITY;
    }
};

// "1000" or "0:500,600:2000" (seconds:rate, in order).
inline std::vector<arrival_model::step> parse_rate(const std::string& text) {
    std::vector<arrival_model::step> out;
    for (const auto& p : split(text, ',')) {
        const auto c = p.find(':');
        if (c == std::string::npos) out.push_back({0.0, std::stod(p)});
        else out.push_back({std::stod(p.substr(0, c)), std::stod(p.substr(c + 1))});
    }
    if (out.empty()) throw std::invalid_argument("empty rate");
    std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.at_s < b.at_s; });
    if (out.front().at_s > 0) out.insert(out.begin(), {0.0, out.front().rate});
    return out;
}

// "120:200,300:50" (seconds:requests arriving at once).
inline std::vector<arrival_model::burst> parse_bursts(const std::string& text) {
    std::vector<arrival_model::burst> out;
    for (const auto& p : split(text, ',')) {
        const auto c = p.find(':');
        if (c == std::string::npos) throw std::invalid_argument("burst needs seconds:count: '" + p + "'");
        out.push_back({std::stod(p.substr(0, c)), static_cast<std::size_t>(std::stoul(p.substr(c + 1)))});
    }
    return out;
}

}  // namespace connpool::sim

#endif  // CONNPOOL_TOOLS_SIM_WORKLOAD_HPP
