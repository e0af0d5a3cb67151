// connpool::pg: a bounded libpq session that answers the cluster's questions about one host
// (role, log position, replay age) and a few short admin-ish queries (the budget check).
#ifndef CONNPOOL_PG_CLUSTER_PROBE_HPP
#define CONNPOOL_PG_CLUSTER_PROBE_HPP

#include <connpool/cluster/host_status.hpp>
#include <connpool/error.hpp>
#include <connpool/pg/cluster/lsn.hpp>
#include <connpool/pg/connection.hpp>

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace connpool::pg {

namespace cluster_detail {

using clock = std::chrono::steady_clock;

// 1 ready, 0 timed out, -1 error.
inline int wait_fd(int fd, bool for_write, clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0) return 0;
        pollfd p{};
        p.fd = fd;
        p.events = static_cast<short>(for_write ? POLLOUT : POLLIN);
        const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 60000)));
        if (n > 0) return 1;
        if (n < 0 && errno != EINTR) return -1;
    }
}

// The password in a conninfo, for redacting messages; empty when there is none or it does
// not parse (a parse error is reported without quoting the conninfo).
inline std::string password_of(const std::string& conninfo) {
    std::string out;
    char* err = nullptr;
    PQconninfoOption* opts = PQconninfoParse(conninfo.c_str(), &err);
    if (err) PQfreemem(err);
    if (!opts) return out;
    for (PQconninfoOption* o = opts; o->keyword; ++o) {
        if (std::string(o->keyword) == "password" && o->val) out = o->val;
    }
    PQconninfoFree(opts);
    return out;
}

}  // namespace cluster_detail

// One libpq connection kept open across probes and reopened when it breaks. Every call is
// bounded by its timeout (non-blocking connect and query with poll), unlike PQconnectdb and
// PQexec. One thread at a time.
class probe_session {
public:
    explicit probe_session(std::string conninfo)
        : conninfo_(std::move(conninfo)), secret_(cluster_detail::password_of(conninfo_)) {}

    probe_session(probe_session&&) noexcept = default;
    probe_session& operator=(probe_session&&) noexcept = default;

    // Runs sql (one statement) and returns its result, or null with error set. Reconnects
    // first when needed; the whole call is bounded by timeout.
    result query(const std::string& sql, std::chrono::milliseconds timeout, std::string& error) {
        const auto deadline = cluster_detail::clock::now() + timeout;
        if (!conn_ || PQstatus(conn_.native_handle()) != CONNECTION_OK || conn_.saw_fatal_error()) {
            if (!connect(deadline, error)) return {};
        }
        PGconn* c = conn_.native_handle();
        if (PQsendQuery(c, sql.c_str()) != 1) return fail(error, conn_.error_message());
        result kept;
        for (;;) {
            // PQgetResult would block: read what has arrived, waiting for more up to the deadline.
            while (PQisBusy(c) == 1) {
                const int w = cluster_detail::wait_fd(PQsocket(c), false, deadline);
                if (w == 0) return fail(error, "timed out after " + std::to_string(timeout.count()) + " ms");
                if (w < 0) return fail(error, "poll failed");
                if (PQconsumeInput(c) != 1) return fail(error, conn_.error_message());
            }
            result r(PQgetResult(c));
            if (!r) break;
            conn_.report(r.get());
            if (!kept || result_ok(kept.get())) kept = std::move(r);
        }
        if (!result_ok(kept.get())) {
            error = kept ? detail::trim_message(PQresultErrorMessage(kept.get())) : conn_.error_message();
            error = redact(error, secret_);
            if (conn_.is_broken()) conn_.close();
            return {};
        }
        return kept;
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

    void close() noexcept { conn_.close(); }

private:
    result fail(std::string& error, std::string why) {
        error = redact(why, secret_);
        conn_.close();  // the protocol state is unknown now
        return {};
    }

    bool connect(cluster_detail::clock::time_point deadline, std::string& error) {
        conn_.close();
        connection c(PQconnectStart(conninfo_.c_str()));
        if (!c || PQstatus(c.native_handle()) == CONNECTION_BAD) {
            error = redact(c ? c.error_message() : std::string("out of memory"), secret_);
            if (error.empty()) error = "connect failed";
            return false;
        }
        for (PostgresPollingStatusType st = PGRES_POLLING_WRITING;;) {
            if (st == PGRES_POLLING_OK) break;
            if (st == PGRES_POLLING_FAILED) {
                error = redact(c.error_message(), secret_);
                if (error.empty()) error = "connect failed";
                return false;
            }
            // libpq may move to another socket between polls (multi-host), so re-read it.
            const int w = cluster_detail::wait_fd(PQsocket(c.native_handle()), st == PGRES_POLLING_WRITING, deadline);
            if (w == 0) {
                error = "connect timed out";
                return false;
            }
            if (w < 0) {
                error = "poll failed";
                return false;
            }
            st = PQconnectPoll(c.native_handle());
        }
        conn_ = std::move(c);
        return true;
    }

    std::string conninfo_;
    std::string secret_;
    connection conn_;
};

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_CLUSTER_PROBE_HPP
