// connpool: the cluster's pure decisions: what a probe means for a host, and which host serves
// an acquire. No I/O, no clock, no locks: the cluster passes everything in, so that tests can
// drive every case with made-up host states.
#ifndef CONNPOOL_CLUSTER_ROUTING_HPP
#define CONNPOOL_CLUSTER_ROUTING_HPP

#include <connpool/cluster/error.hpp>
#include <connpool/cluster/host_status.hpp>
#include <connpool/cluster/intent.hpp>
#include <connpool/cluster/options.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <deque>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace connpool::detail {

inline std::string seconds_text(std::chrono::milliseconds d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(d.count()) / 1000.0);
    return buf;
}

// Folds one probe into a host's status. primary_position is the primary's last known log
// position (none while no primary is known), against which a standby's lag is measured.
// behind_for, when the cluster knows it, is how long ago the primary first went past this
// standby's position: the time lag, measured on the cluster's own clock.
inline void apply_probe(host_status& h, const probe_result& p, std::chrono::microseconds rtt,
                        std::optional<std::uint64_t> primary_position, const cluster_options& o,
                        std::optional<std::chrono::milliseconds> behind_for = std::nullopt) {
    ++h.probes;
    h.role = p.role;
    h.replay_paused = p.replay_paused;
    h.lag_bytes = 0;
    h.lag = std::chrono::milliseconds(0);
    h.readable = false;
    if (p.role == host_role::down) {
        h.last_error = p.error;
        h.note = "is down: " + p.error;
        return;
    }
    h.position = p.position;
    // Smoothed, so that one slow probe does not move a host out of the nearest set.
    h.rtt = h.rtt.count() == 0 ? rtt : (h.rtt * 3 + rtt) / 4;
    if (p.role == host_role::primary) {
        h.note = {};
        return;
    }
    // A standby ahead of the (older) primary position we know is caught up, not negative.
    if (primary_position && *primary_position > p.position) {
        h.lag_bytes = *primary_position - p.position;
        // Prefer the cluster's own measure. Else the age of the last replayed transaction,
        // which means lag only while there is log left to replay (an idle primary makes it
        // grow without any lag) and is unknown until the standby has replayed one.
        if (behind_for) {
            h.lag = *behind_for;
        } else if (p.replay_age_seconds && *p.replay_age_seconds > 0) {
            h.lag = std::chrono::milliseconds(static_cast<long long>(std::llround(*p.replay_age_seconds * 1000.0)));
        }
    }
    if (o.max_replica_lag.count() > 0 && h.lag > o.max_replica_lag) {
        h.note = "lags " + seconds_text(h.lag) + " > max_replica_lag " + seconds_text(o.max_replica_lag);
        return;
    }
    if (o.max_replica_lag_bytes > 0 && h.lag_bytes > o.max_replica_lag_bytes) {
        h.note = "lags " + std::to_string(h.lag_bytes) + " bytes > max_replica_lag_bytes " +
                 std::to_string(o.max_replica_lag_bytes);
        return;
    }
    h.readable = true;
    h.note = {};
}

// "host n1 is in recovery" and the like, for the message of a failed route.
inline std::string describe_for_write(const host_status& h) {
    switch (h.role) {
    case host_role::unknown: return "host " + h.name + " is not probed yet";
    case host_role::primary: return "host " + h.name + " claims to be primary";
    case host_role::standby: return "host " + h.name + " is in recovery";
    case host_role::down: return "host " + h.name + " " + h.note;
    }
    return "host " + h.name;
}

inline std::string describe_for_read(const host_status& h) {
    switch (h.role) {
    case host_role::unknown: return "host " + h.name + " is not probed yet";
    case host_role::primary: return "host " + h.name + " is the primary";
    case host_role::standby: return "host " + h.name + (h.note.empty() ? std::string(" is usable") : " " + h.note);
    case host_role::down: return "host " + h.name + " " + h.note;
    }
    return "host " + h.name;
}

// "primary a", "standby b", or "host c" when no probe has said which: never a guessed role.
// How the cluster names the host an acquire failed on.
inline std::string host_label(host_role role, const std::string& name) {
    return (role == host_role::primary ? "primary " : role == host_role::standby ? "standby " : "host ") + name;
}

// The primary's positions over time, so that a standby's time lag can be read off the
// cluster's own clock: how long ago the primary first went past the standby's replayed
// position. The cluster keeps one under its lock.
class primary_history {
public:
    using time_point = std::chrono::steady_clock::time_point;

    void note(std::size_t host, std::uint64_t pos, time_point now) {
        if (host_ != host) {
            samples_.clear();  // a new primary: its positions start a new history
            host_ = host;
        }
        if (samples_.empty() || pos > samples_.back().second) samples_.emplace_back(now, pos);
        // Bounded: a standby further behind than the oldest sample is reported as lagging since
        // then, which is still more than any sensible max_replica_lag.
        while (samples_.size() > 4096 || (samples_.size() > 1 && now - samples_.front().first > std::chrono::hours(1))) {
            samples_.pop_front();
        }
    }

    // None when the history cannot tell (no sample, or the standby is not behind any sample).
    std::optional<std::chrono::milliseconds> behind_for(std::uint64_t pos, time_point now) const {
        for (const auto& [when, primary_pos] : samples_) {
            if (primary_pos > pos) return std::chrono::duration_cast<std::chrono::milliseconds>(now - when);
        }
        return std::nullopt;
    }

private:
    std::deque<std::pair<time_point, std::uint64_t>> samples_;
    std::size_t host_ = static_cast<std::size_t>(-1);
};

// What choose_host decided.
struct routing_choice {
    // The host to acquire from; none when the route cannot be served (code and message say why).
    std::optional<std::size_t> host;
    // read_fresh on a standby not known to have replayed the token: the caller checks the
    // connection's replayed position and goes to the primary if it is behind.
    bool verify = false;
    error_code code;
    std::string message;
};

// Weighted draw of one index from candidates.
template <class Rng>
std::size_t weighted_pick(const std::vector<host_status>& hs, const std::vector<std::size_t>& candidates, Rng& rng) {
    double total = 0;
    for (std::size_t i : candidates) total += hs[i].weight;
    std::uniform_real_distribution<double> dist(0.0, total);
    double x = dist(rng);
    for (std::size_t i : candidates) {
        x -= hs[i].weight;
        if (x < 0) return i;
    }
    return candidates.back();
}

// Outstanding leases per unit of weight: what both policies minimise.
inline double load_score(const host_status& h) { return static_cast<double>(h.outstanding) / h.weight; }

// Picks among candidates (not empty) by the balance policy, after the nearest-RTT filter.
template <class Rng>
std::size_t balance(const std::vector<host_status>& hs, std::vector<std::size_t> candidates, const cluster_options& o,
                    Rng& rng) {
    if (o.nearest_rtt_slack.count() > 0 && candidates.size() > 1) {
        auto nearest = hs[candidates.front()].rtt;
        for (std::size_t i : candidates) nearest = std::min(nearest, hs[i].rtt);
        std::erase_if(candidates, [&](std::size_t i) { return hs[i].rtt > nearest + o.nearest_rtt_slack; });
    }
    if (candidates.size() == 1) return candidates.front();
    if (o.balance == balance_policy::least_loaded) {
        double best = load_score(hs[candidates.front()]);
        for (std::size_t i : candidates) best = std::min(best, load_score(hs[i]));
        std::erase_if(candidates, [&](std::size_t i) { return load_score(hs[i]) > best; });
        return weighted_pick(hs, candidates, rng);
    }
    // Power of two choices. The first draw wins ties, so that with no load the shares follow
    // the weights; a second draw of the same host simply keeps it.
    const std::size_t a = weighted_pick(hs, candidates, rng);
    const std::size_t b = weighted_pick(hs, candidates, rng);
    return load_score(hs[b]) < load_score(hs[a]) ? b : a;
}

// Chooses the host for r. excluded[i]: host i already failed this acquire. can_verify: the
// cluster can check a standby connection's replayed position (read_fresh).
template <class Rng>
routing_choice choose_host(const std::vector<host_status>& hs, const route& r, const cluster_options& o,
                           const std::vector<bool>& excluded, bool can_verify, Rng& rng) {
    routing_choice out;
    std::vector<std::size_t> primaries;
    for (std::size_t i = 0; i < hs.size(); ++i) {
        if (hs[i].role == host_role::primary) primaries.push_back(i);
    }
    auto usable = [&](std::size_t i) { return !excluded[i]; };
    // Two hosts that both say primary is a split brain: writing to either could lose data.
    const bool one_primary = primaries.size() == 1 && usable(primaries.front());
    auto no_primary_reason = [&] {
        std::string m;
        for (std::size_t i = 0; i < hs.size(); ++i) {
            if (!m.empty()) m += ", ";
            m += describe_for_write(hs[i]);
            if (excluded[i] && hs[i].role == host_role::primary) m += " but failed: see above";
        }
        return m;
    };

    if (r.kind == intent_kind::write) {
        if (one_primary) {
            out.host = primaries.front();
            return out;
        }
        out.code = make_error_code(cluster_errc::no_primary);
        out.message = "no primary: " + no_primary_reason();
        return out;
    }

    std::vector<std::size_t> candidates;
    if (r.kind == intent_kind::read_fresh) {
        // A standby known to have replayed the token serves it even if it lags now.
        for (std::size_t i = 0; i < hs.size(); ++i) {
            if (usable(i) && hs[i].role == host_role::standby && hs[i].position >= r.token.position) {
                candidates.push_back(i);
            }
        }
    }
    if (candidates.empty()) {
        for (std::size_t i = 0; i < hs.size(); ++i) {
            if (usable(i) && hs[i].role == host_role::standby && hs[i].readable) candidates.push_back(i);
        }
        // A standby not known to have replayed the token serves it only if checked first.
        if (r.kind == intent_kind::read_fresh && !can_verify) candidates.clear();
        out.verify = r.kind == intent_kind::read_fresh && !candidates.empty();
    }
    if (!candidates.empty()) {
        out.host = balance(hs, std::move(candidates), o, rng);
        return out;
    }
    if (o.read_from_primary && one_primary) {
        out.host = primaries.front();
        return out;
    }
    out.code = make_error_code(cluster_errc::no_host);
    std::string m = r.kind == intent_kind::read_fresh ? "no host for a read at " + format_position(r.token.position) + ": "
                                                      : std::string("no host for a read: ");
    for (std::size_t i = 0; i < hs.size(); ++i) {
        if (i != 0) m += ", ";
        m += describe_for_read(hs[i]);
        if (excluded[i]) m += " but failed";
    }
    if (!o.read_from_primary) m += " (read_from_primary is off)";
    out.message = std::move(m);
    return out;
}

}  // namespace connpool::detail

#endif  // CONNPOOL_CLUSTER_ROUTING_HPP
