// connpool::pg: log sequence numbers, and the read-your-writes token taken after a commit.
#ifndef CONNPOOL_PG_CLUSTER_LSN_HPP
#define CONNPOOL_PG_CLUSTER_LSN_HPP

#include <connpool/cluster/intent.hpp>
#include <connpool/pg/connection.hpp>

#include <libpq-fe.h>

#include <cstdint>
#include <optional>
#include <string_view>

namespace connpool::pg {

// Parses an LSN as PostgreSQL prints it ("16/B374D848"). None for anything else, NULL included.
inline std::optional<std::uint64_t> parse_lsn(std::string_view s) noexcept {
    const auto slash = s.find('/');
    if (slash == std::string_view::npos || slash == 0 || slash + 1 >= s.size()) return std::nullopt;
    std::uint64_t hi = 0, lo = 0;
    auto hex = [](std::string_view part, std::uint64_t& out) {
        if (part.size() > 8) return false;
        for (char c : part) {
            int d;
            if (c >= '0' && c <= '9') d = c - '0';
            else if (c >= 'A' && c <= 'F') d = c - 'A' + 10;
            else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
            else return false;
            out = out * 16 + static_cast<std::uint64_t>(d);
        }
        return true;
    };
    if (!hex(s.substr(0, slash), hi) || !hex(s.substr(slash + 1), lo)) return std::nullopt;
    return (hi << 32) | lo;
}

// The token for a read that must see this session's committed writes: the primary's WAL insert
// position, read on the same connection after COMMIT. The insert position, not
// pg_current_wal_lsn() (what has been written out): with synchronous_commit = off a commit
// record can be inserted and not yet written, and the token must not be older than it.
// A standby that has replayed this position has replayed the commit.
//
// Precondition: c is connected to the primary and not inside a transaction (call it after
// COMMIT). Throws sql_error when the query fails, e.g. on a standby ("recovery is in progress").
inline freshness_token commit_token(connection& c) {
    result r = c.exec("SELECT pg_current_wal_insert_lsn()::text");
    const auto lsn = PQntuples(r.get()) == 1 ? parse_lsn(PQgetvalue(r.get(), 0, 0)) : std::nullopt;
    if (!lsn) throw sql_error("commit_token: pg_current_wal_insert_lsn() returned no LSN", "", false);
    return freshness_token{*lsn};
}

// replayed_position() is in probe.hpp: it must give up at the acquire's deadline, so it uses the
// probe's bounded query.

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_CLUSTER_LSN_HPP
