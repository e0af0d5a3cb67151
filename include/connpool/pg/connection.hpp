// connpool::pg::connection: an owned libpq connection that remembers whether it saw a fatal error.
#ifndef CONNPOOL_PG_CONNECTION_HPP
#define CONNPOOL_PG_CONNECTION_HPP

#include <connpool/error.hpp>
#include <connpool/pg/detail/statement_cache.hpp>
#include <connpool/pg/error.hpp>

#include <libpq-fe.h>

#include <array>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace connpool::pg {

// Frees a PGresult with PQclear.
struct result_deleter {
    // PQclear(r).
    void operator()(PGresult* r) const noexcept { PQclear(r); }
};

// An owned PGresult. Null means libpq returned no result (out of memory, or the connection was lost).
using result = std::unique_ptr<PGresult, result_deleter>;

// The SQLSTATE of a failed result ("" when there is none, e.g. a client-side error).
inline std::string_view sqlstate(const PGresult* r) noexcept {
    if (r == nullptr) return {};
    const char* s = PQresultErrorField(r, PG_DIAG_SQLSTATE);
    return s == nullptr ? std::string_view{} : std::string_view{s};
}

// True for the SQLSTATEs after which the session is gone: class 08 (connection exception) and
// 57P01..57P03 (admin shutdown, crash shutdown, cannot connect now).
inline bool is_fatal_sqlstate(std::string_view state) noexcept {
    if (state.size() != 5) return false;
    if (state.starts_with("08")) return true;
    return state == "57P01" || state == "57P02" || state == "57P03";
}

// True when a command succeeded: tuples, command done, an empty query, or COPY/single-row modes.
inline bool result_ok(const PGresult* r) noexcept {
    if (r == nullptr) return false;
    switch (PQresultStatus(r)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
    case PGRES_EMPTY_QUERY:
    case PGRES_SINGLE_TUPLE:
    case PGRES_COPY_IN:
    case PGRES_COPY_OUT:
    case PGRES_COPY_BOTH:
    case PGRES_PIPELINE_SYNC:
        return true;
    default:
        return false;
    }
}

// Thrown by connection::exec when a command fails. Carries the SQLSTATE so callers can retry on
// 40001 (serialization_failure) or 40P01 (deadlock_detected).
class sql_error : public std::runtime_error {
public:
    // An error for a failed command: its message, its SQLSTATE, and whether the connection was lost.
    sql_error(std::string message, std::string state, bool connection_lost)
        : std::runtime_error(std::move(message)), sqlstate_(std::move(state)), connection_lost_(connection_lost) {}

    // Five characters, or empty for a client-side error such as a lost connection.
    const std::string& sqlstate() const noexcept { return sqlstate_; }
    // True when the session is gone; the pool will close this connection on return.
    bool connection_lost() const noexcept { return connection_lost_; }

private:
    std::string sqlstate_;
    bool connection_lost_;
};

namespace detail {

// libpq messages end in a newline; a message for a person reads better without it.
inline std::string trim_message(const char* msg) {
    std::string s = msg == nullptr ? std::string{} : std::string{msg};
    while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
    return s;
}

// Text-format parameter conversion for exec(): null, strings, bool and integers. Floating point is
// left out on purpose: std::to_string rounds it; format it yourself with the precision you need.
inline std::optional<std::string> to_param(std::nullopt_t) { return std::nullopt; }
inline std::optional<std::string> to_param(std::nullptr_t) { return std::nullopt; }
inline std::optional<std::string> to_param(const char* s) {
    return s == nullptr ? std::nullopt : std::optional<std::string>{s};
}
inline std::optional<std::string> to_param(std::string_view s) { return std::string{s}; }
inline std::optional<std::string> to_param(const std::string& s) { return s; }
inline std::optional<std::string> to_param(bool b) { return std::string{b ? "true" : "false"}; }
template <class T>
    requires std::integral<T> && (!std::same_as<T, bool>)
std::optional<std::string> to_param(T v) {
    return std::to_string(v);
}
template <class T>
std::optional<std::string> to_param(const std::optional<T>& v) {
    if (!v) return std::nullopt;
    return to_param(*v);
}

}  // namespace detail

namespace detail {
template <class Executor>
struct async_exec_cached_op;  // pg/async.hpp
}  // namespace detail

// An owned PGconn. Moving transfers ownership; the destructor calls PQfinish.
//
// The helpers (exec, try_exec) record a fatal error so that the pool discards the connection when
// the lease goes back (is_broken). Code that calls libpq directly on native_handle() should hand
// each PGresult to report() for the same reason; PQstatus alone catches most, but not all, losses.
//
// exec and try_exec use the unnamed statement only (like PQexec and PQexecParams), so they keep no
// session state and work through PgBouncer in transaction mode. exec_cached and prepare_cached keep
// named, server-side prepared statements in a per-connection LRU cache (see below), which outlive
// a lease: the next user of the connection finds them prepared.
//
// Thread-safety: like PGconn, one thread at a time.
class connection {
public:
    connection() noexcept = default;

    // Takes ownership of native (may be null).
    explicit connection(PGconn* native) noexcept : conn_(native) {}

    // Moves the connection; other is empty afterwards.
    connection(connection&& other) noexcept
        : conn_(std::exchange(other.conn_, nullptr)),
          fatal_(std::exchange(other.fatal_, false)),
          credential_generation_(other.credential_generation_),
          statements_(std::exchange(other.statements_, detail::statement_cache(other.statements_.config()))),
          pending_deallocate_(std::move(other.pending_deallocate_)) {}

    // Closes the connection held, if any, then takes other's; other is empty afterwards.
    connection& operator=(connection&& other) noexcept {
        if (this != &other) {
            close();
            conn_ = std::exchange(other.conn_, nullptr);
            fatal_ = std::exchange(other.fatal_, false);
            credential_generation_ = other.credential_generation_;
            statements_ = std::exchange(other.statements_, detail::statement_cache(other.statements_.config()));
            pending_deallocate_ = std::move(other.pending_deallocate_);
            other.pending_deallocate_.clear();
        }
        return *this;
    }

    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    ~connection() { close(); }

    // The raw handle for libpq calls. Do not PQfinish it: the connection owns it.
    PGconn* native_handle() const noexcept { return conn_; }

    // True while the connection holds a PGconn.
    explicit operator bool() const noexcept { return conn_ != nullptr; }

    // Gives up ownership without closing.
    PGconn* release() noexcept {
        fatal_ = false;
        // The statements go with the session to the new owner; this cache no longer names any.
        statements_.clear();
        pending_deallocate_.clear();
        return std::exchange(conn_, nullptr);
    }

    // Closes now (idempotent). The server's prepared statements end with the session.
    void close() noexcept {
        if (conn_ != nullptr) PQfinish(std::exchange(conn_, nullptr));
        statements_.clear();
        pending_deallocate_.clear();
    }

    // Runs sql (one or more statements, no parameters; the simple query protocol, like PQexec) and
    // returns the last result.
    // Throws sql_error when the command fails.
    result exec(const std::string& sql) { return checked(try_exec(sql)); }

    // Runs one statement with text parameters $1, $2, ... (like PQexecParams: the unnamed statement).
    // Parameters may be strings, integers, bool, nullptr / std::nullopt (SQL NULL) or std::optional.
    // Throws sql_error when the command fails.
    template <class P, class... Ps>
    result exec(const std::string& sql, const P& p, const Ps&... ps) {
        return checked(try_exec(sql, p, ps...));
    }

    // As exec, but never throws for a failed command: check result_ok() and sqlstate() yourself.
    // Returns the first failed result if any (its SQLSTATE names the cause, e.g. 57P01, where
    // PQexec would return the later "server closed the connection" without one), else the last.
    result try_exec(const std::string& sql) {
        if (conn_ == nullptr || PQsendQuery(conn_, sql.c_str()) != 1) return send_failed();
        return collect();
    }

    // As exec(sql, p, ps...), but never throws for a failed command (see try_exec(sql)).
    template <class P, class... Ps>
    result try_exec(const std::string& sql, const P& p, const Ps&... ps) {
        constexpr std::size_t n = 1 + sizeof...(Ps);
        std::array<std::optional<std::string>, n> storage{detail::to_param(p), detail::to_param(ps)...};
        std::array<const char*, n> values{};
        for (std::size_t i = 0; i < n; ++i) values[i] = storage[i] ? storage[i]->c_str() : nullptr;
        if (conn_ == nullptr ||
            PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(n), nullptr, values.data(), nullptr, nullptr, 0) != 1) {
            return send_failed();
        }
        return collect();
    }


    // --- The statement cache ---------------------------------------------------------------
    //
    // exec_cached runs sql as a named prepared statement of this connection: prepared (Parse) the
    // first time, or on its factory_options::prepare_after-th use, then only bound and executed,
    // so the server skips parsing and planning. The cache maps SQL text to a generated name
    // ("connpool_s<N>"); at most factory_options::statement_cache_capacity texts are kept, and the
    // least recently used one is DEALLOCATEd to make room.
    //
    // The statements survive a return to the pool under reset_policy::rollback (a ROLLBACK does not
    // drop them, and a clean return runs nothing), and label changes (SET / RESET). A reset that
    // drops them (DISCARD ALL, or a reset_sql with DISCARD ALL or DEALLOCATE ALL) clears the cache
    // too, so it never names a statement the server lost. If your own code drops them, call
    // forget_statements(); a statement found missing anyway (SQLSTATE 26000) is prepared again, and
    // outside a transaction block the call is retried once.
    //
    // With factory_options::transaction_pooling the cache is off: every call fails with
    // statement_errc::prepared_statements_unsupported (see pg/error.hpp).
    //
    // pg::async_exec_cached (pg/async.hpp) is the same without blocking the calling thread.

    // Throws sql_error when the command fails, connpool::error when the cache is off.
    template <class... Ps>
    result exec_cached(const std::string& sql, const Ps&... ps) {
        error_info err;
        result r = try_exec_cached(err, sql, ps...);
        if (err) throw connpool::error(std::move(err));
        return checked(std::move(r));
    }

    // As exec_cached, but never throws: err is set (and the result null) only when the cache is
    // off; a failed command returns its failed result, as try_exec does.
    template <class... Ps>
    result try_exec_cached(error_info& err, const std::string& sql, const Ps&... ps) {
        constexpr std::size_t n = sizeof...(Ps);
        std::array<std::optional<std::string>, n> storage{detail::to_param(ps)...};
        std::array<const char*, n> values{};
        for (std::size_t i = 0; i < n; ++i) values[i] = storage[i] ? storage[i]->c_str() : nullptr;
        return run_cached(err, sql, static_cast<int>(n), values.data());
    }

    // Prepares sql now (whatever prepare_after says) unless it is cached, and returns its
    // statement name, for PQexecPrepared / PQsendQueryPrepared on native_handle(). The name is
    // valid until the cache drops it: use it at once, not across leases.
    // Throws sql_error when the prepare fails, connpool::error when the cache is off.
    std::string prepare_cached(const std::string& sql) {
        error_info err;
        std::string name;
        result r = try_prepare_cached(err, sql, name);
        if (err) throw connpool::error(std::move(err));
        checked(std::move(r));
        return name;
    }

    // As prepare_cached, but never throws: err is set only when the cache is off; a failed
    // prepare returns its failed result. On success name is set and the result is a
    // PGRES_COMMAND_OK one.
    result try_prepare_cached(error_info& err, const std::string& sql, std::string& name) {
        err.clear();
        name.clear();
        if (!cache_usable(err)) return result{};
        if (conn_ == nullptr) return send_failed();
        flush_deallocations();
        detail::statement_cache::entry* e = statements_.find(sql);
        if (e != nullptr && !e->name.empty()) {
            statements_.count_hit();
            name = e->name;
            return result(PQmakeEmptyPGresult(conn_, PGRES_COMMAND_OK));
        }
        if (e == nullptr) {
            e = &insert_entry(sql);
            flush_deallocations();
        }
        result r = prepare(*e);
        if (result_ok(r.get())) name = e->name;
        return r;
    }

    // Statements prepared on the server now, by this connection's cache.
    std::size_t cached_statements() const noexcept { return statements_.prepared(); }

    // Hits, prepares, evictions and clears since the connection opened.
    detail::statement_cache::counters statement_cache_stats() const noexcept { return statements_.stats(); }

    // Forgets every cached statement without I/O: for code that ran DISCARD ALL or DEALLOCATE ALL
    // itself on native_handle().
    void forget_statements() noexcept {
        statements_.clear();
        pending_deallocate_.clear();
    }

    // For code that calls libpq directly: records a fatal error seen in r (or a null result on a
    // dead connection), so that the pool closes this connection instead of reusing it.
    void report(const PGresult* r) noexcept {
        if (r == nullptr) {
            if (conn_ == nullptr || PQstatus(conn_) == CONNECTION_BAD) fatal_ = true;
            return;
        }
        const ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_BAD_RESPONSE) fatal_ = true;
        if (st == PGRES_FATAL_ERROR && is_fatal_sqlstate(sqlstate(r))) fatal_ = true;
        if (st == PGRES_FATAL_ERROR && conn_ != nullptr && PQstatus(conn_) == CONNECTION_BAD) fatal_ = true;
    }

    // Marks the connection unusable: the pool closes it when the lease goes back.
    void mark_broken() noexcept { fatal_ = true; }

    // True once a fatal error was reported (see report()).
    bool saw_fatal_error() const noexcept { return fatal_; }

    // No I/O: the connection is closed, libpq says it is bad, or a fatal error was seen.
    bool is_broken() const noexcept { return conn_ == nullptr || fatal_ || PQstatus(conn_) != CONNECTION_OK; }

    // The error message libpq holds for this connection, without the trailing newline.
    std::string error_message() const { return detail::trim_message(conn_ ? PQerrorMessage(conn_) : nullptr); }

private:
    result send_failed() {
        report(nullptr);
        return result{};
    }

    // Reads every result of the command just sent (PQgetResult blocks, like PQexec). Stops at a COPY
    // result, which the caller continues with libpq's COPY functions.
    result collect() {
        result kept;
        for (;;) {
            result r(PQgetResult(conn_));
            if (!r) break;
            report(r.get());
            const ExecStatusType st = PQresultStatus(r.get());
            const bool copy = st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH;
            if (!kept || result_ok(kept.get())) kept = std::move(r);
            if (copy) break;
        }
        if (!kept) report(nullptr);
        return kept;
    }

    result checked(result r) {
        if (result_ok(r.get())) return r;
        std::string msg = r ? detail::trim_message(PQresultErrorMessage(r.get())) : error_message();
        if (msg.empty()) msg = "command failed";
        const bool lost = is_broken();
        throw sql_error(std::move(msg), std::string(sqlstate(r.get())), lost);
    }

    bool cache_usable(error_info& err) const {
        const auto& cfg = statements_.config();
        if (cfg.unsupported) {
            err.code = make_error_code(statement_errc::prepared_statements_unsupported);
            err.message =
                "prepared statements are off: factory_options::transaction_pooling is set, and PgBouncer before "
                "1.21 (Debian 12 ships 1.18) does not keep protocol-level prepared statements across "
                "transactions; use exec(), which uses the unnamed statement";
            return false;
        }
        if (cfg.capacity == 0) {
            err.code = make_error_code(statement_errc::statement_cache_disabled);
            err.message = "prepared statements are off: factory_options::statement_cache_capacity is 0";
            return false;
        }
        return true;
    }

    // A new entry for sql; the one it pushes out of the LRU waits in pending_deallocate_, for
    // the next flush (the blocking helpers flush at once, async_exec_cached on its next call).
    detail::statement_cache::entry& insert_entry(const std::string& sql) {
        std::string evicted;
        auto& e = statements_.insert(sql, evicted);
        if (!evicted.empty()) pending_deallocate_.push_back(std::move(evicted));
        return e;
    }

    // "DEALLOCATE a;DEALLOCATE b;" for the evicted statements, emptying the list; "" when there
    // are none or a transaction block is open (see flush_deallocations).
    std::string take_deallocations() {
        if (pending_deallocate_.empty() || conn_ == nullptr || PQtransactionStatus(conn_) != PQTRANS_IDLE) return {};
        std::string sql;
        for (const auto& name : pending_deallocate_) sql += "DEALLOCATE " + name + ";";
        pending_deallocate_.clear();
        return sql;
    }

    // DEALLOCATEs evicted statements in one round trip, only outside a transaction block: there a
    // failed DEALLOCATE would abort the caller's transaction, and in a failed one every command
    // but ROLLBACK fails. So the server may hold a few more than the capacity for a while; the
    // cache never names a statement the server lost. A failure (a statement already gone, say)
    // drops the list: there is nothing better to do with it.
    void flush_deallocations() {
        const std::string sql = take_deallocations();
        if (!sql.empty()) (void)try_exec(sql);
    }

    // Parses e.sql on the server under a new name; a failure leaves e out of the cache.
    result prepare(detail::statement_cache::entry& e) {
        std::string name = statements_.next_name();
        if (PQsendPrepare(conn_, name.c_str(), e.sql.c_str(), 0, nullptr) != 1) {
            statements_.erase(e.sql);
            return send_failed();
        }
        result r = collect();
        if (result_ok(r.get())) {
            statements_.mark_prepared(e, std::move(name));
        } else {
            statements_.erase(e.sql);
        }
        return r;
    }

    result exec_named(const std::string& name, int n, const char* const* values) {
        if (PQsendQueryPrepared(conn_, name.c_str(), n, values, nullptr, nullptr, 0) != 1) return send_failed();
        return collect();
    }

    result run_cached(error_info& err, const std::string& sql, int n, const char* const* values) {
        err.clear();
        if (!cache_usable(err)) return result{};
        if (conn_ == nullptr) return send_failed();
        flush_deallocations();
        detail::statement_cache::entry* e = statements_.find(sql);
        if (e == nullptr) {
            e = &insert_entry(sql);
            flush_deallocations();
        }
        if (e->name.empty()) {
            // Not worth a statement yet: run it unnamed, as exec would.
            if (++e->uses < statements_.config().prepare_after) {
                if (PQsendQueryParams(conn_, sql.c_str(), n, nullptr, values, nullptr, nullptr, 0) != 1) {
                    return send_failed();
                }
                return collect();
            }
            result p = prepare(*e);
            if (!result_ok(p.get())) return p;
        } else {
            statements_.count_hit();
        }
        result r = exec_named(e->name, n, values);
        if (result_ok(r.get()) || sqlstate(r.get()) != "26000") return r;
        // The server lost this statement behind the cache's back (a DEALLOCATE or DISCARD ALL
        // that did not go through the factory). Forget it; outside a transaction block the failed
        // call changed nothing, so prepare it again and retry once.
        statements_.erase(sql);
        if (PQtransactionStatus(conn_) != PQTRANS_IDLE) return r;
        e = &insert_entry(sql);
        flush_deallocations();
        result p = prepare(*e);
        if (!result_ok(p.get())) return p;
        return exec_named(e->name, n, values);
    }

    friend class factory;
    template <class Executor>
    friend struct detail::async_exec_cached_op;

    PGconn* conn_ = nullptr;
    bool fatal_ = false;
    // Set by the factory: which credential opened this session (see connpool/credentials.hpp).
    std::uint64_t credential_generation_ = 0;
    // Set by the factory from factory_options on connect; see the statement cache above.
    detail::statement_cache statements_;
    // Evicted statements still on the server (see flush_deallocations).
    std::vector<std::string> pending_deallocate_;
};

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_CONNECTION_HPP
