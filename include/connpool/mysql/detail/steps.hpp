// connpool::mysql internals: the round trips of ping and reset, each bounded by a deadline of
// our own. With Connector/C's non-blocking API every step is a *_start/*_cont pair driven by
// poll() (detail/wait.hpp); a step that misses its deadline is abandoned half done, so the
// caller must close the connection. Without that API (Oracle's libmysqlclient) the steps are
// the blocking calls, and the socket's read/write timeouts (connect_options) bound them.
#ifndef CONNPOOL_MYSQL_DETAIL_STEPS_HPP
#define CONNPOOL_MYSQL_DETAIL_STEPS_HPP

#include <connpool/mysql/detail/library.hpp>
#include <connpool/mysql/detail/wait.hpp>

#include <mysql.h>

#include <chrono>
#include <string_view>

namespace connpool::mysql::detail {

// How a bounded step ended.
enum class step_result {
    ok,         // the server answered with success
    failed,     // the server or the library reported an error (mysql_errno() says which)
    timed_out,  // the deadline passed first; the protocol is mid-command, close the handle
};

using deadline_type = std::chrono::steady_clock::time_point;

#if CONNPOOL_MYSQL_NONBLOCKING

// Drives start() and then cont(ready) until the library says it is done (status 0), waiting
// on the socket in between. False when the deadline passed first.
template <class Start, class Cont>
bool drive(MYSQL* h, deadline_type deadline, Start start, Cont cont) {
    int status = start();
    while (status != 0) {
        const int ready = wait_for_status(h, status, deadline);
        if (ready < 0) return false;
        status = cont(ready);
    }
    return true;
}

inline step_result ping_step(MYSQL* h, deadline_type deadline) {
    int ret = 0;
    if (!drive(h, deadline, [&] { return mysql_ping_start(&ret, h); },
               [&](int ready) { return mysql_ping_cont(&ret, h, ready); }))
        return step_result::timed_out;
    return ret == 0 ? step_result::ok : step_result::failed;
}

inline step_result reset_connection_step(MYSQL* h, deadline_type deadline) {
    int ret = 0;
    if (!drive(h, deadline, [&] { return mysql_reset_connection_start(&ret, h); },
               [&](int ready) { return mysql_reset_connection_cont(&ret, h, ready); }))
        return step_result::timed_out;
    return ret == 0 ? step_result::ok : step_result::failed;
}

inline step_result rollback_step(MYSQL* h, deadline_type deadline) {
    my_bool ret = 0;
    if (!drive(h, deadline, [&] { return mysql_rollback_start(&ret, h); },
               [&](int ready) { return mysql_rollback_cont(&ret, h, ready); }))
        return step_result::timed_out;
    return ret == 0 ? step_result::ok : step_result::failed;
}

inline step_result select_db_step(MYSQL* h, const char* db, deadline_type deadline) {
    int ret = 0;
    if (!drive(h, deadline, [&] { return mysql_select_db_start(&ret, h, db); },
               [&](int ready) { return mysql_select_db_cont(&ret, h, ready); }))
        return step_result::timed_out;
    return ret == 0 ? step_result::ok : step_result::failed;
}

// One statement of our own (an init command): sent, and every result read and dropped.
inline step_result statement_step(MYSQL* h, std::string_view sql, deadline_type deadline) {
    int ret = 0;
    if (!drive(h, deadline,
               [&] { return mysql_real_query_start(&ret, h, sql.data(), static_cast<unsigned long>(sql.size())); },
               [&](int ready) { return mysql_real_query_cont(&ret, h, ready); }))
        return step_result::timed_out;
    if (ret != 0) return step_result::failed;
    for (;;) {
        MYSQL_RES* res = nullptr;
        if (!drive(h, deadline, [&] { return mysql_store_result_start(&res, h); },
                   [&](int ready) { return mysql_store_result_cont(&res, h, ready); }))
            return step_result::timed_out;
        if (res != nullptr) mysql_free_result(res);
        else if (mysql_field_count(h) != 0) return step_result::failed;
        if (!mysql_more_results(h)) return step_result::ok;
        int next = 0;
        if (!drive(h, deadline, [&] { return mysql_next_result_start(&next, h); },
                   [&](int ready) { return mysql_next_result_cont(&next, h, ready); }))
            return step_result::timed_out;
        if (next > 0) return step_result::failed;
    }
}

#else

// The blocking forms: the deadline is not ours to enforce; the socket timeouts set at
// connect (MYSQL_OPT_READ_TIMEOUT / _WRITE_TIMEOUT) end a call that hangs, with error 2013.
inline step_result blocking(bool ok) { return ok ? step_result::ok : step_result::failed; }

inline step_result ping_step(MYSQL* h, deadline_type) { return blocking(mysql_ping(h) == 0); }
inline step_result reset_connection_step(MYSQL* h, deadline_type) { return blocking(mysql_reset_connection(h) == 0); }
inline step_result rollback_step(MYSQL* h, deadline_type) { return blocking(mysql_rollback(h) == 0); }
inline step_result select_db_step(MYSQL* h, const char* db, deadline_type) {
    return blocking(mysql_select_db(h, db) == 0);
}

inline step_result statement_step(MYSQL* h, std::string_view sql, deadline_type) {
    if (mysql_real_query(h, sql.data(), static_cast<unsigned long>(sql.size())) != 0) return step_result::failed;
    for (;;) {
        if (MYSQL_RES* res = mysql_store_result(h)) mysql_free_result(res);
        else if (mysql_field_count(h) != 0) return step_result::failed;
        const int next = mysql_next_result(h);
        if (next == -1) return step_result::ok;
        if (next > 0) return step_result::failed;
    }
}

#endif

}  // namespace connpool::mysql::detail

#endif  // CONNPOOL_MYSQL_DETAIL_STEPS_HPP
