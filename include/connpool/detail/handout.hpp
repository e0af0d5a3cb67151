// connpool internals: pure verdicts on a connection at hand-out and at return, shared by
// the blocking and the async faces so that each rule is written once.
#ifndef CONNPOOL_DETAIL_HANDOUT_HPP
#define CONNPOOL_DETAIL_HANDOUT_HPP

#include <connpool/detail/clock.hpp>
#include <connpool/detail/decisions.hpp>
#include <connpool/options.hpp>
#include <connpool/stats.hpp>

#include <chrono>
#include <cstdint>
#include <optional>

namespace connpool::detail {

// What the pool knows about a connection it holds, at no I/O cost.
struct connection_facts {
    time_point now{};
    time_point expires_at = time_point::max();
    time_point last_used{};
    std::uint64_t generation = 0;
    std::uint64_t acquires = 0;  // leases it served so far
};

// What the pool as a whole says, read without its lock.
struct pool_facts {
    bool closed = false;
    std::uint64_t generation = 0;
    bool over_capacity = false;  // set_max_size() shrank below the open count
};

// Why a connection must not be used again, if it must not.
inline std::optional<close_reason> retire_reason(const connection_facts& c, const pool_facts& p) noexcept {
    if (p.closed) return close_reason::pool_closed;
    if (c.now >= c.expires_at) return close_reason::lifetime;
    if (c.generation != p.generation) return close_reason::retired;
    if (p.over_capacity) return close_reason::resized;
    return std::nullopt;
}

enum class handout_kind {
    deliver,  // hand it out as it is
    ping,     // ping it first (options::validation)
    close,    // close it and find the caller another
};

struct handout_verdict {
    handout_kind kind = handout_kind::deliver;
    close_reason reason = close_reason::pool_closed;  // with close
};

// At hand-out. A connection just opened and never leased proved itself by connecting.
inline handout_verdict judge_handout(const connection_facts& c, const pool_facts& p, const options& o,
                                     bool can_ping) noexcept {
    if (auto why = retire_reason(c, p)) return {handout_kind::close, *why};
    if (!can_ping) return {};
    const auto idle_for = c.now - c.last_used;
    if (c.acquires == 0 && idle_for < o.validation_idle_threshold) return {};
    if (needs_validation(o.validation, idle_for, o.validation_idle_threshold)) return {handout_kind::ping, {}};
    return {};
}

enum class return_kind {
    keep,   // reuse it: idle, or to the next waiter
    reset,  // run the factory's reset first, off the caller's path
    close,
};

struct return_verdict {
    return_kind kind = return_kind::keep;
    close_reason reason = close_reason::pool_closed;
};

// What the returning caller and the factory's no-I/O checks said.
struct return_facts {
    bool discard = false;
    bool broken = false;  // factory.is_broken()
    bool dirty = false;   // reset on return is on, the lease did not skip it, and needs_reset() agreed
};

inline return_verdict judge_return(const return_facts& r, const connection_facts& c, const pool_facts& p) noexcept {
    if (r.discard) return {return_kind::close, close_reason::discarded};
    if (auto why = retire_reason(c, p)) return {return_kind::close, *why};
    if (r.broken) return {return_kind::close, close_reason::broken};
    if (r.dirty) return {return_kind::reset, {}};
    return {};
}

// The time a ping or a reset done for a caller may take: its own timeout, capped at what
// the caller has left.
inline std::chrono::milliseconds capped_timeout(std::chrono::milliseconds own, time_point now,
                                                time_point deadline) noexcept {
    if (deadline == time_point::max()) return own;
    if (deadline <= now) return std::chrono::milliseconds(0);
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
    return std::min(own, left);
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_HANDOUT_HPP
