// connpool::sizing: the server's connection budget, one rule for every place that counts it
// (pg::check_budget and auto_budget, the advisor, connpool-sim's sweep): all instances
// together may hold share x (max_connections - reserved), rounded down.
#ifndef CONNPOOL_SIZING_BUDGET_HPP
#define CONNPOOL_SIZING_BUDGET_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace connpool::sizing {

inline std::size_t budget_total(std::size_t max_connections, std::size_t reserved, double share) noexcept {
    const std::size_t usable = max_connections > reserved ? max_connections - reserved : 0;
    // The small epsilon keeps 0.8 x 100 at 80: 0.8 is not exact in binary.
    return static_cast<std::size_t>(std::floor(share * static_cast<double>(usable) + 1e-9));
}

// The most each of `instances` may open (0 instances count as 1).
inline std::size_t budget_per_instance(std::size_t max_connections, std::size_t reserved, double share,
                                       std::size_t instances) noexcept {
    return budget_total(max_connections, reserved, share) / std::max<std::size_t>(instances, 1);
}

// What one instance knows at a heartbeat, per server (every number counts connections on one
// server; the same share applies to every host's pool).
struct share_inputs {
    // budget_total(): what all instances together may hold, their own connections included.
    std::size_t allowed = 0;
    // Live instances, this one included (0 counts as 1).
    std::size_t live = 1;
    // What the other live instances claim in the registry: each one's pool limit (or what its
    // pools still hold, when more) plus its own connections.
    std::size_t others_claimed = 0;
    // This instance's connections outside its pools: its heartbeat's and its probes'.
    std::size_t own = 1;
    // The least a pool can be set to: max(1, min_idle). A joining instance starts there.
    std::size_t floor = 1;
    // The configured max_size: never grow above it.
    std::size_t max_size = 1;
};

// What a joining instance holds before it has read the registry, and what it keeps in reserve
// for the next one: its own connections plus the floor of its pools. Those connect before the
// joiner can read anything (its probes and heartbeat open at construction), so the instances
// already running leave room for them.
inline std::size_t joiner_reserve(const share_inputs& in) noexcept { return in.own + in.floor; }

// This instance's pool limit: its fair part of what is left once every live instance's own
// connections and one joiner's reserve are set aside, and never more than the room the other
// instances leave unclaimed, so that no instance grows into connections another still holds.
// Never below the floor (a pool has at least 1) nor above max_size.
//   fair = (allowed - reserve - live x own) / live
//   room = allowed - reserve - others_claimed - own
//   share = clamp(min(fair, room), floor, max_size)
inline std::size_t budget_share(const share_inputs& in) noexcept {
    auto minus = [](std::size_t a, std::size_t b) { return a > b ? a - b : 0; };
    const std::size_t live = std::max<std::size_t>(in.live, 1);
    const std::size_t reserve = joiner_reserve(in);
    const std::size_t fair = minus(in.allowed, reserve + live * in.own) / live;
    const std::size_t room = minus(in.allowed, reserve + in.others_claimed + in.own);
    const std::size_t floor = std::min(std::max<std::size_t>(in.floor, 1), std::max<std::size_t>(in.max_size, 1));
    return std::clamp(std::min(fair, room), floor, std::max(floor, in.max_size));
}

// What an instance writes into the registry at a beat: what its pools may hold (its limit, or
// what they still hold when more: a pool shrinks as its leases come back) plus its own
// connections. Others never grow into it.
inline std::size_t budget_claim(std::size_t limit, std::size_t held, std::size_t own) noexcept {
    return std::max(limit, held) + own;
}

}  // namespace connpool::sizing

#endif  // CONNPOOL_SIZING_BUDGET_HPP
