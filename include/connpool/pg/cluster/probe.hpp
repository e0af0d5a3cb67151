// connpool::pg: a bounded libpq session that answers the cluster's questions about one host
// (role, log position, replay age) and a few short admin-ish queries (the budget check).
#ifndef CONNPOOL_PG_CLUSTER_PROBE_HPP
#define CONNPOOL_PG_CLUSTER_PROBE_HPP

#include <connpool/cluster/host_status.hpp>
#include <connpool/error.hpp>
#include <connpool/pg/cluster/lsn.hpp>
#include <connpool/pg/connection.hpp>
#include <connpool/pg/detail/connect.hpp>

#include <libpq-fe.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace connpool::pg {

namespace cluster_detail {

// Sends sql (one statement of ours) on conn and reads every result until deadline, unlike
// PQexec, which can block forever on a frozen server. Returns the last result when all
// succeeded; else null and error set. A result cut off by the deadline leaves the protocol
// state unknown, so every failure short of an SQL error marks conn broken.
inline result bounded_query(connection& conn, const std::string& sql, detail::clock::time_point deadline,
                            std::string& error) {
    PGconn* c = conn.native_handle();
    auto lost = [&](std::string why) {
        error = std::move(why);
        conn.mark_broken();
        return result{};
    };
    if (c == nullptr) return lost("not connected");
    if (PQsendQuery(c, sql.c_str()) != 1) return lost(conn.error_message());
    result kept;
    for (;;) {
        // PQgetResult would block: read what has arrived, waiting for more up to the deadline.
        while (PQisBusy(c) == 1) {
            const int w = detail::wait_socket(PQsocket(c), false, deadline);
            if (w == 0) return lost("timed out");
            if (w < 0) return lost("poll failed");
            if (PQconsumeInput(c) != 1) return lost(conn.error_message());
        }
        result r(PQgetResult(c));
        if (!r) break;
        conn.report(r.get());
        if (!kept || result_ok(kept.get())) kept = std::move(r);
    }
    if (!result_ok(kept.get())) {
        error = kept ? detail::trim_message(PQresultErrorMessage(kept.get())) : conn.error_message();
        if (!kept) conn.report(nullptr);
        return {};
    }
    return kept;
}

}  // namespace cluster_detail

// What a standby connection has replayed (pg_last_wal_replay_lsn()), or on a primary its
// insert position, which it has by definition; none when the query fails or does not finish
// within timeout (then c is marked broken: a half-read result leaves it unusable). The
// cluster uses it to check a standby for read_fresh before handing the connection out.
inline std::optional<std::uint64_t> replayed_position(connection& c, std::chrono::milliseconds timeout) {
    std::string error;
    result r = cluster_detail::bounded_query(
        c, "SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END::text",
        detail::clock::now() + timeout, error);
    if (!r || PQntuples(r.get()) != 1 || PQgetisnull(r.get(), 0, 0)) return std::nullopt;
    return parse_lsn(PQgetvalue(r.get(), 0, 0));
}

// One libpq connection kept open across probes and reopened when it breaks. Every call is
// bounded by its timeout (non-blocking connect and query with poll), unlike PQconnectdb and
// PQexec. One thread at a time.
class probe_session {
public:
    // A conninfo that does not parse is reported by every query, without quoting it.
    explicit probe_session(std::string conninfo) {
        error_info e;
        if (!detail::make_params(conninfo, params_, e)) params_error_ = std::move(e.message);
    }

    // Moves the session.
    probe_session(probe_session&&) noexcept = default;
    // Moves the session.
    probe_session& operator=(probe_session&&) noexcept = default;

    // Runs sql (one statement) and returns its result, or null with error set. Reconnects
    // first when needed; the whole call is bounded by timeout.
    result query(const std::string& sql, std::chrono::milliseconds timeout, std::string& error) {
        const auto deadline = detail::clock::now() + timeout;
        if (!conn_ || conn_.is_broken()) {
            if (!connect(deadline, error)) return {};
        }
        result r = cluster_detail::bounded_query(conn_, sql, deadline, error);
        if (!r) {
            if (error == "timed out") error += " after " + std::to_string(timeout.count()) + " ms";
            error = scrub(std::move(error));
            if (conn_.is_broken()) conn_.close();
        }
        return r;
    }

    // The role probe for connpool::basic_cluster: pg_is_in_recovery(), the position (current
    // on a primary, replayed on a standby), the replay age and whether replay is paused.
    probe_result probe(std::chrono::milliseconds timeout) {
        probe_result out;
        std::string error;
        result r = query(
            "SELECT pg_is_in_recovery(),"
            " (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text,"
            " extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8,"
            " CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END",
            timeout, error);
        if (!r || PQntuples(r.get()) != 1) {
            out.error = error.empty() ? "probe returned no row" : error;
            return out;
        }
        const bool standby = std::string_view(PQgetvalue(r.get(), 0, 0)) == "t";
        out.role = standby ? host_role::standby : host_role::primary;
        if (!PQgetisnull(r.get(), 0, 1)) out.position = parse_lsn(PQgetvalue(r.get(), 0, 1)).value_or(0);
        if (standby && !PQgetisnull(r.get(), 0, 2)) out.replay_age_seconds = std::strtod(PQgetvalue(r.get(), 0, 2), nullptr);
        out.replay_paused = std::string_view(PQgetvalue(r.get(), 0, 3)) == "t";
        return out;
    }

    // Closes the session's connection.
    void close() noexcept { conn_.close(); }

private:
    // Both secrets make_params found (password and sslpassword): libpq may echo either.
    std::string scrub(std::string msg) const {
        for (const auto& secret : params_.secrets) msg = redact(msg, secret);
        return msg;
    }

    bool connect(detail::clock::time_point deadline, std::string& error) {
        conn_.close();
        if (!params_error_.empty()) {
            error = params_error_;
            return false;
        }
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - detail::clock::now());
        error_info e;
        std::optional<connection> c;
        if (left.count() > 0) c = detail::blocking_connect(params_, left, e);
        else e.message = "connect timed out";
        if (!c) {
            error = e.message.empty() ? std::string("connect failed") : std::move(e.message);
            return false;
        }
        conn_ = std::move(*c);
        return true;
    }

    detail::connect_params params_;
    std::string params_error_;
    connection conn_;
};

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_CLUSTER_PROBE_HPP
