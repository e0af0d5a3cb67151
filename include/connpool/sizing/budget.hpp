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

}  // namespace connpool::sizing

#endif  // CONNPOOL_SIZING_BUDGET_HPP
