// connpool::pg internals: one statement of our own (ping, ROLLBACK, DISCARD ALL, reset_sql)
// sent and read to the end under a deadline, unlike PQexec, which can block forever.
#ifndef CONNPOOL_PG_DETAIL_ROUND_TRIP_HPP
#define CONNPOOL_PG_DETAIL_ROUND_TRIP_HPP

#include <connpool/pg/connection.hpp>
#include <connpool/pg/detail/connect.hpp>

#include <libpq-fe.h>

#include <string>

namespace connpool::pg::detail {

// Sends sql and reads every result until the deadline. Returns the first failed result's message in
// err (empty if all succeeded) and false on timeout or a lost connection. Used by ping and reset so
// that neither can block past its bound, unlike PQexec.
struct round_trip_outcome {
    bool completed = false;        // all results read
    bool ok = false;               // completed and no result failed
    ExecStatusType last_status = PGRES_COMMAND_OK;
    std::string error;             // the first failure, or why it did not complete
};

inline round_trip_outcome round_trip(connection& conn, const char* sql, clock::time_point deadline) {
    round_trip_outcome out;
    PGconn* c = conn.native_handle();
    if (PQsendQuery(c, sql) != 1) {
        out.error = conn.error_message();
        conn.report(nullptr);
        return out;
    }
    bool failed = false;
    for (;;) {
        // Read all that has arrived, then hand out results until one would block.
        if (PQconsumeInput(c) != 1) {
            out.error = conn.error_message();
            conn.mark_broken();
            return out;
        }
        while (PQisBusy(c) == 0) {
            result r(PQgetResult(c));
            if (!r) {
                out.completed = true;
                out.ok = !failed;
                return out;
            }
            conn.report(r.get());
            out.last_status = PQresultStatus(r.get());
            if (out.last_status == PGRES_COPY_IN || out.last_status == PGRES_COPY_OUT ||
                out.last_status == PGRES_COPY_BOTH) {
                // Our own SQL never starts COPY; a custom reset_sql that does is not supported.
                out.error = "unexpected COPY state";
                conn.mark_broken();
                return out;
            }
            if (!result_ok(r.get()) && !failed) {
                failed = true;
                out.error = trim_message(PQresultErrorMessage(r.get()));
            }
        }
        const int w = wait_socket(PQsocket(c), false, deadline);
        if (w <= 0) {
            out.error = w == 0 ? "timed out" : "poll failed";
            // The protocol state is unknown now; never hand this connection out again.
            conn.mark_broken();
            return out;
        }
    }
}

}  // namespace connpool::pg::detail

#endif  // CONNPOOL_PG_DETAIL_ROUND_TRIP_HPP
