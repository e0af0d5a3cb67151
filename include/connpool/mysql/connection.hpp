// connpool::mysql::connection: one MySQL/MariaDB session, owned through RAII, with a few
// query helpers that notice when the connection itself has failed.
#ifndef CONNPOOL_MYSQL_CONNECTION_HPP
#define CONNPOOL_MYSQL_CONNECTION_HPP

#include <connpool/error.hpp>
#include <connpool/mysql/detail/dirt.hpp>
#include <connpool/mysql/detail/library.hpp>
#include <connpool/mysql/detail/statement_cache.hpp>
#include <connpool/mysql/error.hpp>

#include <mysql.h>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace connpool::mysql {

// One row of a result: a value per column, nullopt for SQL NULL. Values are the text
// protocol's strings.
using row = std::vector<std::optional<std::string>>;
using rows = std::vector<row>;

class factory;
namespace detail {
class async_connect_op;

// One parameter of query_cached, as MYSQL_BIND wants it: strings as MYSQL_TYPE_STRING,
// integers and bool as MYSQL_TYPE_LONGLONG, null as MYSQL_TYPE_NULL. Floating point is left
// out on purpose, as in the PostgreSQL adapter: format it yourself with the precision you need.
struct stmt_param {
    enum_field_types type = MYSQL_TYPE_NULL;
    std::string text;
    long long number = 0;
    bool is_unsigned = false;
};

inline stmt_param to_stmt_param(std::nullopt_t) { return {}; }
inline stmt_param to_stmt_param(std::nullptr_t) { return {}; }
inline stmt_param to_stmt_param(std::string_view s) { return {MYSQL_TYPE_STRING, std::string(s), 0, false}; }
inline stmt_param to_stmt_param(const std::string& s) { return {MYSQL_TYPE_STRING, s, 0, false}; }
inline stmt_param to_stmt_param(const char* s) {
    return s == nullptr ? stmt_param{} : stmt_param{MYSQL_TYPE_STRING, std::string(s), 0, false};
}
inline stmt_param to_stmt_param(bool b) { return {MYSQL_TYPE_LONGLONG, {}, b ? 1 : 0, false}; }
template <class T>
    requires std::integral<T> && (!std::same_as<T, bool>)
stmt_param to_stmt_param(T v) {
    // The bits of an unsigned value go through unchanged; is_unsigned tells the server.
    return {MYSQL_TYPE_LONGLONG, {}, static_cast<long long>(v), std::is_unsigned_v<T>};
}
template <class T>
stmt_param to_stmt_param(const std::optional<T>& v) {
    return v ? to_stmt_param(*v) : stmt_param{};
}

// The MYSQL* a connection owns: a move leaves nullptr behind, and the owner closes it.
class owned_handle {
public:
    owned_handle() = default;
    explicit owned_handle(MYSQL* h) noexcept : h_(h) {}
    owned_handle(owned_handle&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
    owned_handle& operator=(owned_handle&& o) noexcept {
        if (this != &o) {
            reset();
            h_ = std::exchange(o.h_, nullptr);
        }
        return *this;
    }
    ~owned_handle() { reset(); }

    void reset() noexcept {
        if (h_ != nullptr) mysql_close(std::exchange(h_, nullptr));
    }
    operator MYSQL*() const noexcept { return h_; }
    MYSQL* operator->() const noexcept { return h_; }

private:
    MYSQL* h_ = nullptr;
};
}

// Owns a connected MYSQL* and closes it (mysql_close) on destruction. Move-only.
//
// The pool needs three facts about a returned connection without doing I/O:
//   - broken():          a call saw a connection-level error (server gone, connection lost
//                        or killed, protocol out of step), so the pool closes it;
//   - used():            the session was touched since the last reset;
//   - session_changed(): the session may hold state beyond a transaction (a variable, a
//                        temporary table, a lock...), so the default reset must clean it.
// The query helpers record all three, the last from the server's own status flag
// (SERVER_SESSION_STATE_CHANGED, which the factory turns on at connect) plus a look at the
// statement text for the state the server does not flag (locks, see detail/dirt.hpp).
// Code that calls the C API directly through native_handle() cannot be watched, so it
// counts as changing the session; it should pass failures to record_error() so that a dead
// connection is not handed to the next caller.
//
// Thread-safety: like MYSQL*, one thread at a time.
class connection {
public:
    connection() noexcept = default;

    // Takes ownership of a connected handle.
    explicit connection(MYSQL* handle) noexcept : handle_(handle) {}

    // The handle moves; the moved-from connection is closed (and reads as broken).
    connection(connection&&) noexcept = default;
    // Moves the handle; the moved-from connection is closed (and reads as broken).
    connection& operator=(connection&&) noexcept = default;

    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    ~connection() { close(); }

    // The raw handle, for the C API. Marks the session used and changed: what the caller
    // does through it is invisible to the pool, so the next reset is a full one. After a
    // failed C API call, call record_error().
    MYSQL* native_handle() noexcept {
        used_ = true;
        raw_used_ = true;
        return handle_;
    }

    // True while the connection has a handle (not closed, not moved from).
    bool is_open() const noexcept { return handle_ != nullptr; }

#if CONNPOOL_MYSQL_MARIADB
    // The socket, for a readiness check that must not count as using the session.
    int socket() const noexcept { return handle_ ? static_cast<int>(mysql_get_socket(handle_)) : -1; }
#endif
    // True while the connection is open (is_open()).
    explicit operator bool() const noexcept { return is_open(); }

    // The server's id of this session (what KILL takes, CONNECTION_ID() returns).
    unsigned long thread_id() const noexcept { return handle_ ? mysql_thread_id(handle_) : 0; }

    // True once a connection-level error was seen, or the protocol was left mid-result.
    bool broken() const noexcept {
        if (broken_ || handle_ == nullptr) return true;
        // A result left unread (mysql_use_result not drained) makes every later command fail
        // with "commands out of sync"; such a session cannot be cleaned, only closed.
        return handle_->status != MYSQL_STATUS_READY;
    }

    // True when the session was touched since it was opened or last reset.
    bool used() const noexcept { return used_; }

    // True when the session may hold state that outlives a transaction: the server flagged
    // a change (session variable, user variable, temporary table, prepared statement,
    // schema), a helper ran a statement whose state the server does not flag (LOCK TABLES,
    // GET_LOCK, an assignment inside a SELECT, CALL) or that names a ROLE, or native_handle()
    // was used. query_cached's own statements (COM_STMT_PREPARE / EXECUTE) are not flagged by
    // the server and are not dirt: the factory closes them before any full reset.
    bool session_changed() const noexcept { return session_changed_ || raw_used_ || schema_changed_; }

    // True when the server's last reply said a transaction is open.
    bool in_transaction() const noexcept {
        return handle_ != nullptr && (handle_->server_status & SERVER_STATUS_IN_TRANS) != 0;
    }

    // Says that this connection must not be reused (e.g. after a failure the helpers cannot see).
    void mark_broken() noexcept { broken_ = true; }

    // Reads the error of the last failed C API call on this handle, marks the connection
    // broken when the error is connection-level, and returns it (code: connpool::mysql
    // category, value mysql_errno(); message "[errno] text"). Call it after a C API call
    // made through native_handle() failed.
    error_info record_error(std::string_view what = "query failed") {
        error_info e;
        if (handle_ == nullptr) {
            e.code = make_error_code(2006u);
            e.message = std::string(what) + ": [2006] no connection";
            broken_ = true;
        } else {
            unsigned n = mysql_errno(handle_);
            if (n == 0) n = 2000;  // CR_UNKNOWN_ERROR: a failure the library did not number
            e.code = make_error_code(n);
            e.message = detail::describe(what, n, mysql_error(handle_), {});
            if (is_connection_error(n)) broken_ = true;
        }
        last_error_ = e;
        return e;
    }

    // The last error record_error() or a helper recorded; empty when none.
    const error_info& last_error() const noexcept { return last_error_; }

    // Runs a statement and discards any result sets. Returns false and fills err on failure.
    bool execute(std::string_view sql, error_info& err) {
        if (!start(sql, err)) return false;
        for (;;) {
            if (MYSQL_RES* res = mysql_store_result(handle_)) {
                mysql_free_result(res);
                note_reply();
            } else if (mysql_field_count(handle_) != 0) {
                err = record_error();
                return false;
            } else {
                note_reply();
            }
            int next = mysql_next_result(handle_);
            if (next == -1) return true;
            if (next > 0) {
                err = record_error();
                return false;
            }
        }
    }

    // Throwing form: connpool::error on failure.
    void execute(std::string_view sql) {
        error_info err;
        if (!execute(sql, err)) throw connpool::error(std::move(err));
    }

    // Runs a statement and returns the rows of its first result set (empty for a statement
    // without one). Further result sets are read and dropped.
    std::optional<rows> query(std::string_view sql, error_info& err) {
        if (!start(sql, err)) return std::nullopt;
        rows out;
        MYSQL_RES* res = mysql_store_result(handle_);
        if (res == nullptr) {
            if (mysql_field_count(handle_) != 0) {
                err = record_error();
                return std::nullopt;
            }
            note_reply();
        } else {
            const unsigned columns = mysql_num_fields(res);
            while (MYSQL_ROW r = mysql_fetch_row(res)) {
                const unsigned long* lengths = mysql_fetch_lengths(res);
                row values;
                values.reserve(columns);
                for (unsigned i = 0; i < columns; ++i) {
                    if (r[i] == nullptr) values.emplace_back(std::nullopt);
                    else values.emplace_back(std::string(r[i], lengths[i]));
                }
                out.push_back(std::move(values));
            }
            mysql_free_result(res);
            note_reply();
        }
        // Drain the rest so that the protocol is ready for the next command.
        for (int next = mysql_next_result(handle_); next != -1; next = mysql_next_result(handle_)) {
            if (next > 0) {
                err = record_error();
                return std::nullopt;
            }
            if (MYSQL_RES* extra = mysql_store_result(handle_)) mysql_free_result(extra);
            note_reply();
        }
        return out;
    }

    // As query(sql, err), throwing connpool::error on failure.
    rows query(std::string_view sql) {
        error_info err;
        auto r = query(sql, err);
        if (!r) throw connpool::error(std::move(err));
        return std::move(*r);
    }

    // The first column of the first row: nullopt when there is no row or the value is NULL.
    std::optional<std::string> query_value(std::string_view sql, error_info& err) {
        auto r = query(sql, err);
        if (!r || r->empty() || r->front().empty()) return std::nullopt;
        return std::move(r->front().front());
    }

    // As query_value(sql, err), throwing connpool::error on failure.
    std::optional<std::string> query_value(std::string_view sql) {
        error_info err;
        auto r = query(sql, err);
        if (!r) throw connpool::error(std::move(err));
        if (r->empty() || r->front().empty()) return std::nullopt;
        return std::move(r->front().front());
    }

    // --- The statement cache ---------------------------------------------------------------
    //
    // query_cached runs sql as a server-side prepared statement of this connection (the
    // binary protocol, mysql_stmt_*): prepared on first use, then only executed. At most
    // connect_options::statement_cache_capacity statements are kept; the least recently used
    // one is closed to make room (COM_STMT_CLOSE, no round trip). Parameters ? take strings,
    // integers, bool, nullptr / std::nullopt (NULL) and std::optional. Values come back as the
    // text the client library makes of each column, so rows look like query()'s.
    //
    // The statements survive a return that needs no full reset: a clean one, or one that only
    // left a transaction open (ROLLBACK) under reset_if_dirty, and any return under
    // rollback_only or none (preparing and executing do not mark the session changed). A full
    // reset (COM_RESET_CONNECTION) drops them on the server, so the factory closes every handle
    // first: a handle used after the reset would fail with error 2013, which reads as a lost
    // connection. A change of the default schema (a label's database, USE) closes them too: a
    // statement keeps the schema it was prepared in. If you reset or change the schema through
    // native_handle(), call forget_statements().

    // Throwing form: connpool::error on failure.
    template <class... Ps>
    rows query_cached(std::string_view sql, const Ps&... ps) {
        error_info err;
        auto r = try_query_cached(err, sql, ps...);
        if (!r) throw connpool::error(std::move(err));
        return std::move(*r);
    }

    // The rows of sql's result (empty for a statement without one); nullopt with err filled on
    // failure, as query() does.
    template <class... Ps>
    std::optional<rows> try_query_cached(error_info& err, std::string_view sql, const Ps&... ps) {
        std::vector<detail::stmt_param> params{detail::to_stmt_param(ps)...};
        return run_cached(err, sql, params);
    }

    // Statements prepared on the server now, by this connection's cache.
    std::size_t cached_statements() const noexcept { return statements_.size(); }

    // Hits, prepares, evictions and clears since the connection opened.
    detail::statement_cache::counters statement_cache_stats() const noexcept { return statements_.stats(); }

    // Closes every cached statement (COM_STMT_CLOSE each, no round trip).
    void forget_statements() noexcept { statements_.clear(); }

    // Closes the session now (idempotent).
    void close() noexcept {
        statements_.clear();  // before the handle they belong to
        handle_.reset();
    }

private:
    friend class factory;
    friend class detail::async_connect_op;

    bool start(std::string_view sql, error_info& err) {
        used_ = true;
        const auto dirt = detail::untracked_state(sql);
        if (dirt.state) session_changed_ = true;
        if (dirt.role) role_set_ = true;
        if (handle_ == nullptr) {
            err = record_error();
            return false;
        }
        if (mysql_real_query(handle_, sql.data(), static_cast<unsigned long>(sql.size())) != 0) {
            err = record_error();
            return false;
        }
        return true;
    }

    using flag = decltype(std::declval<MYSQL_BIND>().is_null_value);  // my_bool or bool

    error_info record_stmt_error(MYSQL_STMT* stmt, std::string_view what = "query failed") {
        error_info e;
        unsigned n = mysql_stmt_errno(stmt);
        if (n == 0) n = 2000;
        e.code = make_error_code(n);
        e.message = detail::describe(what, n, mysql_stmt_error(stmt), {});
        if (is_connection_error(n)) broken_ = true;
        last_error_ = e;
        return e;
    }

    std::optional<rows> run_cached(error_info& err, std::string_view sql, std::vector<detail::stmt_param>& params) {
        used_ = true;
        const auto dirt = detail::untracked_state(sql);
        if (dirt.state) session_changed_ = true;
        if (dirt.role) role_set_ = true;
        if (handle_ == nullptr) {
            err = record_error();
            return std::nullopt;
        }
        if (statements_.capacity == 0) {
            err = {make_error_code(2000u), "query failed: connect_options::statement_cache_capacity is 0"};
            return std::nullopt;
        }
        MYSQL_STMT* stmt = statements_.find(sql);
        if (stmt == nullptr) {
            stmt = mysql_stmt_init(handle_);
            if (stmt == nullptr) {
                err = record_error("prepare failed");
                return std::nullopt;
            }
            if (mysql_stmt_prepare(stmt, sql.data(), static_cast<unsigned long>(sql.size())) != 0) {
                err = record_stmt_error(stmt, "prepare failed");
                mysql_stmt_close(stmt);
                return std::nullopt;
            }
            statements_.insert(sql, stmt);
        }
        if (mysql_stmt_param_count(stmt) != params.size()) {
            err = {make_error_code(2034u), "query failed: the statement has " +
                                               std::to_string(mysql_stmt_param_count(stmt)) + " parameters, " +
                                               std::to_string(params.size()) + " given"};
            return std::nullopt;
        }
        std::vector<MYSQL_BIND> in(params.size());
        std::vector<unsigned long> in_lengths(params.size());
        for (std::size_t i = 0; i < params.size(); ++i) {
            auto& b = in[i];
            auto& p = params[i];
            b.buffer_type = p.type;
            if (p.type == MYSQL_TYPE_STRING) {
                in_lengths[i] = static_cast<unsigned long>(p.text.size());
                b.buffer = p.text.data();
                b.buffer_length = in_lengths[i];
                b.length = &in_lengths[i];
            } else if (p.type == MYSQL_TYPE_LONGLONG) {
                b.buffer = &p.number;
                b.is_unsigned = p.is_unsigned;
            }
        }
        if ((!in.empty() && mysql_stmt_bind_param(stmt, in.data())) || mysql_stmt_execute(stmt) != 0) {
            err = record_stmt_error(stmt);
            return std::nullopt;
        }
        note_reply();
        rows out;
        if (!read_result(stmt, out, err, true)) return std::nullopt;
        // A CALL may send more result sets: read and drop them, so the protocol is ready.
        for (int next = mysql_stmt_next_result(stmt); next != -1; next = mysql_stmt_next_result(stmt)) {
            if (next > 0) {
                err = record_stmt_error(stmt);
                return std::nullopt;
            }
            rows ignored;
            if (!read_result(stmt, ignored, err, false)) return std::nullopt;
        }
        return out;
    }

    // Reads the current result set of stmt into out (keep = false: reads and drops it).
    bool read_result(MYSQL_STMT* stmt, rows& out, error_info& err, bool keep) {
        MYSQL_RES* meta = mysql_stmt_result_metadata(stmt);
        if (meta == nullptr) {
            if (mysql_stmt_errno(stmt) != 0) {
                err = record_stmt_error(stmt);
                return false;
            }
            return true;  // no result set (an INSERT, say)
        }
        const unsigned columns = mysql_num_fields(meta);
        mysql_free_result(meta);
        if (mysql_stmt_store_result(stmt) != 0) {
            err = record_stmt_error(stmt);
            return false;
        }
        // Every column as text, in a small buffer; longer values are fetched again below.
        std::vector<MYSQL_BIND> binds(columns);
        std::vector<std::string> buffers(columns, std::string(64, '\0'));
        std::vector<unsigned long> lengths(columns);
        // Arrays, not std::vector: with Oracle's client flag is bool, and vector<bool> has no
        // addressable elements.
        std::unique_ptr<flag[]> nulls(new flag[columns]()), errors(new flag[columns]());
        for (unsigned i = 0; i < columns; ++i) {
            binds[i].buffer_type = MYSQL_TYPE_STRING;
            binds[i].buffer = buffers[i].data();
            binds[i].buffer_length = static_cast<unsigned long>(buffers[i].size());
            binds[i].length = &lengths[i];
            binds[i].is_null = &nulls[i];
            binds[i].error = &errors[i];
        }
        if (columns != 0 && mysql_stmt_bind_result(stmt, binds.data()) != 0) {
            err = record_stmt_error(stmt);
            mysql_stmt_free_result(stmt);
            return false;
        }
        for (;;) {
            const int rc = mysql_stmt_fetch(stmt);
            if (rc == MYSQL_NO_DATA) break;
            if (rc == 1) {
                err = record_stmt_error(stmt);
                mysql_stmt_free_result(stmt);
                return false;
            }
            if (!keep) continue;
            row values;
            values.reserve(columns);
            for (unsigned i = 0; i < columns; ++i) {
                if (nulls[i]) {
                    values.emplace_back(std::nullopt);
                } else if (lengths[i] <= buffers[i].size()) {
                    values.emplace_back(std::string(buffers[i].data(), lengths[i]));
                } else {
                    // Truncated (rc == MYSQL_DATA_TRUNCATED): fetch this column whole.
                    std::string whole(lengths[i], '\0');
                    MYSQL_BIND b = binds[i];
                    b.buffer = whole.data();
                    b.buffer_length = lengths[i];
                    if (mysql_stmt_fetch_column(stmt, &b, i, 0) != 0) {
                        err = record_stmt_error(stmt);
                        mysql_stmt_free_result(stmt);
                        return false;
                    }
                    values.emplace_back(std::move(whole));
                }
            }
            out.push_back(std::move(values));
        }
        mysql_stmt_free_result(stmt);
        note_reply();
        return true;
    }

    // The status flags of the reply just read: a session-state change is flagged on that one
    // reply only, so it is collected after every reply. When the change includes the default
    // schema (USE, session_track_schema), the reset must select the configured one again,
    // because COM_RESET_CONNECTION keeps the current schema.
    void note_reply() noexcept {
        if ((handle_->server_status & SERVER_SESSION_STATE_CHANGED) == 0) return;
        session_changed_ = true;
#if CONNPOOL_MYSQL_MARIADB || (defined(MYSQL_VERSION_ID) && MYSQL_VERSION_ID >= 50700)
        const char* data = nullptr;
        size_t length = 0;
        // The tracker data belongs to this reply: the flag says the reply carried some.
        if (mysql_session_track_get_first(handle_, SESSION_TRACK_SCHEMA, &data, &length) == 0) {
            schema_changed_ = true;
            // A prepared statement keeps the schema it was prepared in; query() would not.
            statements_.clear();
        }
#endif
    }

    // After a reset: nothing since.
    void mark_clean() noexcept {
        used_ = false;
        raw_used_ = false;
        session_changed_ = false;
        schema_changed_ = false;
    }

    // Before handle_: a defaulted move assignment closes the old statements while the old
    // handle is still open (close() does the same for the destructor).
    detail::statement_cache statements_;
    detail::owned_handle handle_;
    bool broken_ = false;
    bool used_ = false;
    bool raw_used_ = false;         // native_handle() was called: anything may have happened
    bool session_changed_ = false;  // the server flagged a change, or the text implies one
    bool schema_changed_ = false;   // the default schema may differ from the configured one
    // A label's apply() selected another schema: not dirt (the label says so), but a full
    // reset, which keeps the current schema, must select the configured one again.
    bool label_schema_ = false;
    // The last reset ran COM_RESET_CONNECTION: every session setting, a label's too, is gone.
    bool settings_reset_ = false;
    // A label or a lease may have set a role, which COM_RESET_CONNECTION keeps.
    bool role_set_ = false;
    error_info last_error_;
    // Set by the factory: run again after reset_connection wiped session variables.
    std::vector<std::string> init_commands_;
    // Set by the factory: the schema to select again when a lease changed it.
    std::string database_;
    // Set by the factory: which credential opened this session (see credentials.hpp).
    std::uint64_t credential_generation_ = 0;
    // Set by the factory: the bound on each reset step (connect_options::reset_timeout).
    std::chrono::milliseconds reset_timeout_{5000};
};

}  // namespace connpool::mysql

#endif  // CONNPOOL_MYSQL_CONNECTION_HPP
