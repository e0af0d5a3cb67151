// connpool::mysql::connection: one MySQL/MariaDB session, owned through RAII, with a few
// query helpers that notice when the connection itself has failed.
#ifndef CONNPOOL_MYSQL_CONNECTION_HPP
#define CONNPOOL_MYSQL_CONNECTION_HPP

#include <connpool/error.hpp>
#include <connpool/mysql/detail/dirt.hpp>
#include <connpool/mysql/detail/library.hpp>
#include <connpool/mysql/error.hpp>

#include <mysql.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
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
    // was used.
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

    // Closes the session now (idempotent).
    void close() noexcept { handle_.reset(); }

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
        if (mysql_session_track_get_first(handle_, SESSION_TRACK_SCHEMA, &data, &length) == 0) schema_changed_ = true;
#endif
    }

    // After a reset: nothing since.
    void mark_clean() noexcept {
        used_ = false;
        raw_used_ = false;
        session_changed_ = false;
        schema_changed_ = false;
    }

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
