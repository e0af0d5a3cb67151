// connpool: what a cluster caller asks for (write, read, read_fresh) and the roles hosts play.
#ifndef CONNPOOL_CLUSTER_INTENT_HPP
#define CONNPOOL_CLUSTER_INTENT_HPP

#include <cstdint>
#include <cstdio>
#include <string>

namespace connpool {

// What a host is, as the cluster's last probe of it found.
enum class host_role {
    // Not probed yet: never routed to.
    unknown,
    // Accepts writes (PostgreSQL: pg_is_in_recovery() is false).
    primary,
    // Read-only copy that replays the primary's log.
    standby,
    // The last probe failed: unreachable, refused, or timed out.
    down,
};

inline const char* to_string(host_role r) noexcept {
    switch (r) {
    case host_role::unknown: return "unknown";
    case host_role::primary: return "primary";
    case host_role::standby: return "standby";
    case host_role::down: return "down";
    }
    return "unknown";
}

// A position in the primary's log that a read must see. For PostgreSQL it is an LSN (see
// connpool::pg::commit_token); a zero position is an empty token, which every host satisfies.
struct freshness_token {
    // The position in the log; 0: an empty token.
    std::uint64_t position = 0;

    // True when the token names a position.
    constexpr explicit operator bool() const noexcept { return position != 0; }
    // Tokens are equal when their positions are.
    friend bool operator==(const freshness_token&, const freshness_token&) = default;
};

// A log position as PostgreSQL prints an LSN ("16/B374D848"): the high and low 32 bits in hex.
inline std::string format_position(std::uint64_t p) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(p >> 32), static_cast<unsigned>(p & 0xffffffffu));
    return buf;
}

enum class intent_kind {
    // The primary only.
    write,
    // A healthy standby within max_replica_lag, else the primary.
    read,
    // A standby that has replayed at least the token's position, else the primary.
    read_fresh,
};

// What one acquire asks for: an intent and, for read_fresh, the token.
struct route {
    // The intent: write, read or read_fresh.
    intent_kind kind = intent_kind::read;
    // For read_fresh: the position the host must have replayed.
    freshness_token token{};
};

// The intents as values: cluster.acquire(connpool::intent::write),
// cluster.acquire(connpool::intent::read_fresh(token)). A namespace rather than free names
// so that connpool::read / connpool::write never shadow POSIX read() and write().
namespace intent {
// Goes to the primary, or fails at once.
inline constexpr route write{intent_kind::write, {}};
// Goes to a standby within the lag bounds, else to the primary.
inline constexpr route read{intent_kind::read, {}};
// An empty token asks for nothing beyond a plain read.
constexpr route read_fresh(freshness_token t) noexcept {
    return t ? route{intent_kind::read_fresh, t} : route{intent_kind::read, {}};
}
}  // namespace intent

}  // namespace connpool

#endif  // CONNPOOL_CLUSTER_INTENT_HPP
