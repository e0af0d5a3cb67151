// connpool::pg internals: what a connect needs (libpq parameters from a conninfo, with the
// secrets kept for redaction) and the two connect drivers, blocking (poll) and Asio.
#ifndef CONNPOOL_PG_DETAIL_CONNECT_HPP
#define CONNPOOL_PG_DETAIL_CONNECT_HPP

#include <connpool/detail/io/fd_wait.hpp>
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

#include <chrono>
#include <cstddef>
#include <concepts>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
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

namespace detail {

using clock = std::chrono::steady_clock;

// Waits until fd is readable (or writable) or the deadline passes: 1 ready, 0 timed out, -1 error.
inline int wait_socket(int fd, bool for_write, clock::time_point deadline) {
    const int r = connpool::detail::io::wait_fd(fd, static_cast<short>(for_write ? POLLOUT : POLLIN), deadline);
    return r > 0 ? 1 : r;
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
    // Replaces every value of k (a credential provider's password over the conninfo's).
    void replace(const std::string& k, std::string v) {
        for (std::size_t i = keys.size(); i-- > 0;) {
            if (keys[i] == k) {
                keys.erase(keys.begin() + static_cast<std::ptrdiff_t>(i));
                values.erase(values.begin() + static_cast<std::ptrdiff_t>(i));
            }
        }
        add(k, std::move(v));
        finish();
    }
    void finish() {
        key_ptrs.clear();
        value_ptrs.clear();
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
}  // namespace connpool::pg

#endif  // CONNPOOL_PG_DETAIL_CONNECT_HPP
