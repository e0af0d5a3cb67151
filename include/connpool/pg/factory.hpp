// connpool::pg::factory: opens, checks and resets libpq connections for a connpool pool.
#ifndef CONNPOOL_PG_FACTORY_HPP
#define CONNPOOL_PG_FACTORY_HPP

#include <connpool/error.hpp>
#include <connpool/factory.hpp>
#include <connpool/pg/connection.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <concepts>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace connpool::pg {

// libpq connection keywords (host, port, dbname, user, password, sslmode, sslrootcert, ...),
// passed to libpq literally: a "dbname" value is a database name, never a nested conninfo.
using keywords = std::map<std::string, std::string>;

// What a connection source yields: a conninfo string ("host=... dbname=..." or a postgresql:// URI),
// or keywords.
using conninfo = std::variant<std::string, keywords>;

// What reset() does to a returned connection beyond making it idle.
enum class reset_policy {
    // Default. Only what the next user would trip over: cancel a running query and read the rest of
    // its results, then ROLLBACK an open or failed transaction. A connection returned idle needs no
    // reset at all (needs_reset() is false), so a clean return costs no round trip. Session state
    // (SET, prepared statements, temp tables, advisory locks, LISTEN) survives to the next user.
    rollback,
    // As rollback, then DISCARD ALL on every return: a fresh session for the next user, at the cost
    // of one round trip per return (run by the pool, not by the returning caller).
    discard_all,
    // As rollback, then factory_options::reset_sql on every return (e.g. "RESET ALL; DEALLOCATE ALL"
    // or "SELECT pg_advisory_unlock_all()"), one round trip per return.
    custom_sql,
};

struct factory_options {
    // See reset_policy.
    reset_policy reset = reset_policy::rollback;

    // The SQL that reset_policy::custom_sql runs (may hold several statements; runs outside a
    // transaction).
    std::string reset_sql;

    // Set this when the conninfo points at PgBouncer (or another pooler) in transaction mode, where
    // session state does not belong to this connection: a full reset would reset some other
    // client's server connection, so only reset_policy::rollback is allowed (the constructor throws
    // std::invalid_argument otherwise). The helpers never use named prepared statements anyway.
    bool transaction_pooling = false;

    // Upper bound on each reset step (cancel and drain, ROLLBACK, full reset). A reset that runs out
    // of time fails and the pool closes the connection.
    std::chrono::milliseconds reset_timeout{5000};
};

namespace detail {

using clock = std::chrono::steady_clock;

// Waits until fd is readable (or writable) or the deadline passes: 1 ready, 0 timed out, -1 error.
inline int wait_socket(int fd, bool for_write, clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now()).count();
        if (left <= 0) return 0;
        pollfd p{};
        p.fd = fd;
        p.events = static_cast<short>(for_write ? POLLOUT : POLLIN);
        const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(left, 1000 * 60)));
        if (n > 0) return 1;
        if (n < 0 && errno != EINTR) return -1;
    }
}

// Keywords and values as libpq wants them: two null-terminated arrays.
struct connect_params {
    std::vector<std::string> keys;
    std::vector<std::string> values;
    std::vector<const char*> key_ptrs;
    std::vector<const char*> value_ptrs;
    std::vector<std::string> secrets;  // password and sslpassword, for redaction only

    void add(std::string k, std::string v) {
        if ((k == "password" || k == "sslpassword") && !v.empty()) secrets.push_back(v);
        keys.push_back(std::move(k));
        values.push_back(std::move(v));
    }
    void finish() {
        for (std::size_t i = 0; i < keys.size(); ++i) {
            key_ptrs.push_back(keys[i].c_str());
            value_ptrs.push_back(values[i].c_str());
        }
        key_ptrs.push_back(nullptr);
        value_ptrs.push_back(nullptr);
    }
};

// Removes every double-quoted fragment: libpq's conninfo parse errors quote pieces of the conninfo,
// which may hold the password, and a parse error means we could not find the password to redact.
inline std::string strip_quoted(const std::string& msg) {
    std::string out;
    bool in_quote = false;
    for (char c : msg) {
        if (c == '"') {
            if (!in_quote) out += "\"...\"";
            in_quote = !in_quote;
            continue;
        }
        if (!in_quote) out += c;
    }
    return out;
}

// Turns a conninfo into libpq parameters. A string is parsed with PQconninfoParse (key=value or URI)
// so that the password is known for redaction. Returns false and fills err on a parse error.
inline bool make_params(const conninfo& info, connect_params& out, error_info& err) {
    if (const auto* kw = std::get_if<keywords>(&info)) {
        for (const auto& [k, v] : *kw) out.add(k, v);
        out.finish();
        return true;
    }
    char* errmsg = nullptr;
    PQconninfoOption* opts = PQconninfoParse(std::get<std::string>(info).c_str(), &errmsg);
    if (opts == nullptr) {
        err.code = make_error_code(errc::connect_failed);
        err.message = "invalid PostgreSQL conninfo: " +
                      strip_quoted(errmsg ? trim_message(errmsg) : std::string{"out of memory"});
        if (errmsg) PQfreemem(errmsg);
        return false;
    }
    for (PQconninfoOption* o = opts; o->keyword != nullptr; ++o) {
        if (o->val != nullptr) out.add(o->keyword, o->val);
    }
    PQconninfoFree(opts);
    out.finish();
    return true;
}

// "host:port" of where libpq is (or was last) connecting, for messages.
inline std::string where(PGconn* c) {
    if (c == nullptr) return "server";
    const char* h = PQhost(c);
    const char* p = PQport(c);
    std::string s = (h && *h) ? h : "server";
    if (p && *p) s += std::string(":") + p;
    return s;
}

inline void set_connect_failure(PGconn* c, const std::vector<std::string>& secrets, error_info& err) {
    err.code = make_error_code(errc::connect_failed);
    std::string msg = c ? trim_message(PQerrorMessage(c)) : std::string{"out of memory"};
    if (msg.empty()) msg = "connection to " + where(c) + " failed";
    for (const auto& secret : secrets) msg = redact(msg, secret);
    err.message = std::move(msg);
}

inline void set_connect_timeout(PGconn* c, std::chrono::milliseconds timeout, error_info& err) {
    err.code = make_error_code(errc::connect_timeout);
    err.message = "connect to " + where(c) + " timed out after " + std::to_string(timeout.count()) + " ms";
}

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

// The connect loop shared by the blocking path: PQconnectPoll driven by poll(2) with one deadline
// for the whole attempt (all hosts of a multi-host conninfo), re-reading PQsocket() every step
// because libpq opens a new socket when it moves to the next host.
inline std::optional<connection> blocking_connect(const connect_params& p, std::chrono::milliseconds timeout,
                                                  error_info& err) {
    const auto deadline = clock::now() + timeout;
    connection conn(PQconnectStartParams(p.key_ptrs.data(), p.value_ptrs.data(), 0));
    PGconn* c = conn.native_handle();
    if (c == nullptr || PQstatus(c) == CONNECTION_BAD) {
        set_connect_failure(c, p.secrets, err);
        return std::nullopt;
    }
    // libpq: after PQconnectStart, act as if PQconnectPoll returned PGRES_POLLING_WRITING.
    PostgresPollingStatusType st = PGRES_POLLING_WRITING;
    for (;;) {
        if (st == PGRES_POLLING_OK) return conn;
        if (st == PGRES_POLLING_FAILED) {
            set_connect_failure(c, p.secrets, err);
            return std::nullopt;
        }
        const int w = wait_socket(PQsocket(c), st == PGRES_POLLING_WRITING, deadline);
        if (w == 0) {
            set_connect_timeout(c, timeout, err);
            return std::nullopt;
        }
        if (w < 0) {
            err.code = make_error_code(errc::connect_failed);
            err.message = "poll() on the libpq socket failed";
            return std::nullopt;
        }
        st = PQconnectPoll(c);
    }
}

// One async connect: PQconnectPoll driven by Asio. The socket is libpq's, so the descriptor is
// assigned only while waiting and released (never closed) before every PQconnectPoll, because
// libpq may close the socket and open another one for the next host.
class async_connect_op : public std::enable_shared_from_this<async_connect_op> {
public:
    using handler_type = connect_handler<connection>;

    async_connect_op(asio::any_io_executor ex, connect_params params, std::chrono::milliseconds timeout,
                     handler_type handler)
        : ex_(ex),
          strand_(asio::make_strand(ex)),
          socket_(strand_),
          timer_(strand_),
          params_(std::move(params)),
          timeout_(timeout),
          handler_(std::move(handler)) {}

    ~async_connect_op() { release_socket(); }

    void start() {
        asio::post(strand_, [self = shared_from_this()] { self->begin(); });
    }

private:
    void begin() {
        conn_ = connection(PQconnectStartParams(params_.key_ptrs.data(), params_.value_ptrs.data(), 0));
        PGconn* c = conn_.native_handle();
        if (c == nullptr || PQstatus(c) == CONNECTION_BAD) return fail_connect();
        timer_.expires_after(timeout_);
        timer_.async_wait([self = shared_from_this()](const error_code& ec) { self->on_timer(ec); });
        wait(PGRES_POLLING_WRITING);
    }

    void wait(PostgresPollingStatusType st) {
        const int fd = PQsocket(conn_.native_handle());
        if (fd < 0) return fail_connect();
        error_code ec;
        socket_.assign(fd, ec);
        if (ec) {
            error_info e;
            e.code = make_error_code(errc::connect_failed);
            e.message = "cannot watch the libpq socket: " + ec.message();
            return finish(std::move(e));
        }
        socket_.async_wait(st == PGRES_POLLING_READING ? asio::posix::descriptor_base::wait_read
                                                       : asio::posix::descriptor_base::wait_write,
                           [self = shared_from_this()](const error_code& wec) { self->on_ready(wec); });
    }

    void on_ready(const error_code& ec) {
        if (done_) return;
        release_socket();
        if (ec == asio::error::operation_aborted) return;  // only finish() and the timer cancel us
        if (ec) {
            error_info e;
            e.code = make_error_code(errc::connect_failed);
            e.message = "waiting on the libpq socket failed: " + ec.message();
            return finish(std::move(e));
        }
        switch (PQconnectPoll(conn_.native_handle())) {
        case PGRES_POLLING_OK: return finish({});
        case PGRES_POLLING_FAILED: return fail_connect();
        case PGRES_POLLING_READING: return wait(PGRES_POLLING_READING);
        default: return wait(PGRES_POLLING_WRITING);
        }
    }

    void on_timer(const error_code& ec) {
        if (done_ || ec) return;
        error_info e;
        set_connect_timeout(conn_.native_handle(), timeout_, e);
        finish(std::move(e));
    }

    void fail_connect() {
        error_info e;
        set_connect_failure(conn_.native_handle(), params_.secrets, e);
        finish(std::move(e));
    }

    void release_socket() noexcept {
        // release() hands the fd back without closing it (it belongs to libpq).
        if (socket_.is_open()) socket_.release();
    }

    // Completes exactly once, through the handler's associated executor (never inline in start()).
    void finish(error_info e) {
        done_ = true;
        release_socket();
        timer_.cancel();
        std::optional<connection> result;
        if (!e) result.emplace(std::move(conn_));
        conn_.close();  // on failure; after a move it is empty
        // post on ex_, then the handler runs on its associated executor (Asio's post semantics).
        asio::post(ex_, asio::append(std::move(handler_), std::move(e), std::move(result)));
    }

    asio::any_io_executor ex_;
    asio::strand<asio::any_io_executor> strand_;
    asio::posix::basic_stream_descriptor<asio::strand<asio::any_io_executor>> socket_;
    asio::basic_waitable_timer<std::chrono::steady_clock, asio::wait_traits<std::chrono::steady_clock>,
                               asio::strand<asio::any_io_executor>>
        timer_;
    connect_params params_;
    std::chrono::milliseconds timeout_;
    handler_type handler_;
    connection conn_;
    bool done_ = false;
};

template <class F>
concept conninfo_source = std::invocable<F&> && std::convertible_to<std::invoke_result_t<F&>, conninfo>;

}  // namespace detail

// Opens and maintains PostgreSQL connections for connpool::pool (see connpool/factory.hpp).
//
// Built from a conninfo string, keywords, or a callable returning either. The callable is asked on
// every connect, so it can hand out rotated credentials; it may be called from several threads at
// once. Every libpq option passes through: sslmode, sslrootcert, sslcert, sslkey, target_session_attrs,
// multi-host "host=a,b", and so on.
//
// Errors: connect failures carry libpq's message with the password replaced by "********"; the
// conninfo itself is never put in a message.
class factory {
public:
    using connection_type = connection;

    explicit factory(std::string conninfo_string, factory_options o = {})
        : factory(constant_source(conninfo{std::move(conninfo_string)}), std::move(o)) {}

    explicit factory(const char* conninfo_string, factory_options o = {})
        : factory(std::string(conninfo_string), std::move(o)) {}

    explicit factory(keywords kw, factory_options o = {})
        : factory(constant_source(conninfo{std::move(kw)}), std::move(o)) {}

    // source() -> std::string or keywords, called on every connect.
    template <detail::conninfo_source F>
        requires(!std::convertible_to<F, std::string> && !std::convertible_to<F, keywords>)
    explicit factory(F source, factory_options o = {})
        : source_([s = std::move(source)]() mutable -> conninfo { return conninfo(s()); }), options_(std::move(o)) {
        validate();
    }

    const factory_options& options() const noexcept { return options_; }

    // Blocking connect: PQconnectStartParams + PQconnectPoll under one deadline of r.timeout for the
    // whole attempt (libpq's own connect_timeout counts whole seconds, at least 2, per host).
    std::optional<connection> connect(const connect_request& r, error_info& err) {
        detail::connect_params p;
        if (!resolve(p, err)) return std::nullopt;
        return detail::blocking_connect(p, effective(r.timeout), err);
    }

    // Non-blocking connect on ex: waits on libpq's socket with Asio, with a deadline timer.
    // The handler runs exactly once, on its associated executor (default: ex).
    void async_connect(const connect_request& r, asio::any_io_executor ex, connect_handler<connection> handler) {
        detail::connect_params p;
        error_info err;
        if (!resolve(p, err)) {
            asio::post(ex, asio::append(std::move(handler), std::move(err), std::optional<connection>{}));
            return;
        }
        std::make_shared<detail::async_connect_op>(ex, std::move(p), effective(r.timeout), std::move(handler))
            ->start();
    }

    // Sends an empty query and waits for its answer, at most timeout. false = close the connection.
    bool ping(connection& c, std::chrono::milliseconds timeout, error_info& err) {
        if (c.is_broken()) {
            err.code = make_error_code(errc::ping_failed);
            err.message = "ping failed: connection is broken: " + c.error_message();
            return false;
        }
        auto out = detail::round_trip(c, "", detail::clock::now() + timeout);
        if (out.ok && out.last_status == PGRES_EMPTY_QUERY) return true;
        c.mark_broken();
        err.code = make_error_code(errc::ping_failed);
        err.message = "ping failed: " + (out.error.empty() ? std::string{"unexpected answer"} : out.error);
        return false;
    }

    // No I/O: is there anything reset() must do?
    bool needs_reset(const connection& c) const {
        PGconn* n = c.native_handle();
        if (n == nullptr) return false;  // is_broken() closes it
        if (options_.reset != reset_policy::rollback) return true;
        // ACTIVE covers a running query, unread results and COPY: libpq is not idle.
        return PQtransactionStatus(n) != PQTRANS_IDLE || PQpipelineStatus(n) != PQ_PIPELINE_OFF ||
               PQisnonblocking(n) != 0;
    }

    // Makes a connection clean for the next user; false = close it instead (err says why).
    bool reset(connection& c, error_info& err) {
        auto fail = [&](std::string why) {
            c.mark_broken();
            err.code = make_error_code(errc::reset_failed);
            err.message = "reset failed: " + why;
            return false;
        };
        if (c.is_broken()) return fail("connection is broken");
        PGconn* n = c.native_handle();
        if (PQisnonblocking(n) != 0 && PQsetnonblocking(n, 0) != 0) return fail("cannot leave non-blocking mode");
        // Pipeline mode with queries queued but no sync cannot be drained reliably; with nothing
        // queued it can simply be left. Otherwise a new connection is cheaper than guessing.
        if (PQpipelineStatus(n) != PQ_PIPELINE_OFF && PQexitPipelineMode(n) != 1) {
            return fail("connection returned in pipeline mode with results pending");
        }
        if (PQtransactionStatus(n) == PQTRANS_ACTIVE && !drain(c, err)) return false;
        const auto ts = PQtransactionStatus(n);
        if (ts == PQTRANS_INTRANS || ts == PQTRANS_INERROR) {
            if (!run(c, "ROLLBACK", "ROLLBACK", err)) return false;
        }
        if (options_.reset == reset_policy::discard_all && !run(c, "DISCARD ALL", "DISCARD ALL", err)) return false;
        if (options_.reset == reset_policy::custom_sql && !run(c, options_.reset_sql.c_str(), "reset_sql", err)) {
            return false;
        }
        if (PQtransactionStatus(n) != PQTRANS_IDLE) return fail("connection is not idle after reset");
        return true;
    }

    // No I/O: PQstatus, or a fatal error seen by the connection's helpers or report().
    bool is_broken(const connection& c) const { return c.is_broken(); }

    // Never waits. An idle backend has nothing to say, so a readable socket means the
    // server is talking anyway: a NOTICE or NOTIFY (harmless), or the FATAL message and EOF
    // of a terminated backend or a shutting-down server, which PQconsumeInput turns into
    // CONNECTION_BAD. Housekeeping calls this on idle connections, so that the pool
    // replaces dead ones before anyone acquires them.
    bool probe(connection& c) {
        PGconn* n = c.native_handle();
        if (n == nullptr || c.is_broken()) return false;
        const int fd = PQsocket(n);
        if (fd < 0) return false;
        pollfd p{};
        p.fd = fd;
        p.events = POLLIN;
        const int ready = ::poll(&p, 1, 0);
        if (ready == 0) return true;
        if (ready < 0) return errno == EINTR;
        if ((p.revents & (POLLERR | POLLNVAL)) != 0) {
            c.mark_broken();
            return false;
        }
        if (PQconsumeInput(n) == 0 || PQstatus(n) != CONNECTION_OK) {
            c.mark_broken();
            return false;
        }
        return true;
    }

private:
    static std::function<conninfo()> constant_source(conninfo info) {
        return [info = std::move(info)] { return info; };
    }

    factory(std::function<conninfo()> source, factory_options o) : source_(std::move(source)), options_(std::move(o)) {
        validate();
    }

    void validate() const {
        if (options_.transaction_pooling && options_.reset != reset_policy::rollback) {
            throw std::invalid_argument(
                "connpool::pg::factory_options::reset: only reset_policy::rollback works with transaction_pooling");
        }
        if (options_.reset == reset_policy::custom_sql && options_.reset_sql.empty()) {
            throw std::invalid_argument("connpool::pg::factory_options::reset_sql: empty with reset_policy::custom_sql");
        }
        if (options_.reset_timeout <= std::chrono::milliseconds::zero()) {
            throw std::invalid_argument("connpool::pg::factory_options::reset_timeout: must be positive");
        }
    }

    // A zero timeout from the pool would fail every connect at once; treat it as "no bound" like libpq.
    static std::chrono::milliseconds effective(std::chrono::milliseconds t) {
        return t > std::chrono::milliseconds::zero() ? t : std::chrono::hours(24 * 365);
    }

    bool resolve(detail::connect_params& p, error_info& err) const {
        conninfo info = source_();
        return detail::make_params(info, p, err);
    }

    // label names the step in the message (the custom SQL itself stays out of messages).
    bool run(connection& c, const char* sql, const char* label, error_info& err) {
        auto out = detail::round_trip(c, sql, detail::clock::now() + options_.reset_timeout);
        if (out.ok) return true;
        c.mark_broken();
        err.code = make_error_code(errc::reset_failed);
        err.message = std::string("reset failed: ") + label + ": " + out.error;
        return false;
    }

    // A query is still running or its results are unread: cancel only if results are still to come,
    // then read and drop everything up to the end of the command.
    bool drain(connection& c, error_info& err) {
        PGconn* n = c.native_handle();
        const auto deadline = detail::clock::now() + options_.reset_timeout;
        if (PQconsumeInput(n) != 1) {
            c.mark_broken();
            err.code = make_error_code(errc::reset_failed);
            err.message = "reset failed: " + c.error_message();
            return false;
        }
        // A cancel that reaches the backend before it starts the query is ignored, which happens
        // when a query was sent just before the lease went back; so cancel again every 100 ms while
        // results are still to come.
        auto send_cancel = [n] {
            if (PGcancel* cancel = PQgetCancel(n)) {
                char buf[256] = {};
                PQcancel(cancel, buf, sizeof buf);  // a failed cancel only means a longer drain
                PQfreeCancel(cancel);
            }
        };
        auto next_cancel = detail::clock::time_point::max();
        if (PQisBusy(n) != 0) {
            send_cancel();
            next_cancel = detail::clock::now() + std::chrono::milliseconds(100);
        }
        for (;;) {
            while (PQisBusy(n) == 0) {
                result r(PQgetResult(n));
                if (!r) {
                    // Outside pipeline mode a null result ends the command and libpq goes idle.
                    if (PQtransactionStatus(n) != PQTRANS_ACTIVE) return true;
                    c.mark_broken();
                    err.code = make_error_code(errc::reset_failed);
                    err.message = "reset failed: libpq still busy after the last result";
                    return false;
                }
                c.report(r.get());
                const auto st = PQresultStatus(r.get());
                if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH) {
                    // Finishing someone else's COPY is not worth the risk: a new connection is cheaper.
                    c.mark_broken();
                    err.code = make_error_code(errc::reset_failed);
                    err.message = "reset failed: connection returned in the middle of COPY";
                    return false;
                }
                if (c.is_broken()) {
                    err.code = make_error_code(errc::reset_failed);
                    err.message = "reset failed: " + c.error_message();
                    return false;
                }
            }
            const int w = detail::wait_socket(PQsocket(n), false, std::min(deadline, next_cancel));
            if (w == 0 && detail::clock::now() < deadline) {
                send_cancel();
                next_cancel = detail::clock::now() + std::chrono::milliseconds(100);
                continue;
            }
            if (w <= 0 || PQconsumeInput(n) != 1) {
                c.mark_broken();
                err.code = make_error_code(errc::reset_failed);
                err.message = w == 0 ? "reset failed: the running query did not stop within reset_timeout"
                                     : "reset failed: " + c.error_message();
                return false;
            }
        }
    }

    std::function<conninfo()> source_;
    factory_options options_;
};

static_assert(connection_factory<factory>);
static_assert(connpool::detail::has_async_connect<factory>);
static_assert(connpool::detail::has_ping<factory>);
static_assert(connpool::detail::has_reset<factory>);
static_assert(connpool::detail::has_needs_reset<factory>);
static_assert(connpool::detail::has_is_broken<factory>);

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_FACTORY_HPP
