// connpool::mysql::factory: opens, checks and cleans MySQL/MariaDB connections for a pool.
#ifndef CONNPOOL_MYSQL_FACTORY_HPP
#define CONNPOOL_MYSQL_FACTORY_HPP

#include <connpool/error.hpp>
#include <connpool/factory.hpp>
#include <connpool/mysql/connection.hpp>
#include <connpool/mysql/detail/library.hpp>
#include <connpool/mysql/detail/wait.hpp>
#include <connpool/mysql/error.hpp>
#include <connpool/mysql/options.hpp>

#include <mysql.h>
#include <poll.h>

#include <cerrno>

#if CONNPOOL_MYSQL_NONBLOCKING
#include <boost/asio/append.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#endif

#include <chrono>
#include <concepts>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace connpool::mysql {

namespace detail {

// The flag type mysql_options() takes for boolean options.
#if CONNPOOL_MYSQL_MARIADB || (defined(MYSQL_VERSION_ID) && MYSQL_VERSION_ID < 80000)
using flag_type = my_bool;
#else
using flag_type = bool;
#endif

// Whole seconds, rounded up, at least 1: the unit of the library's timeout options.
inline unsigned whole_seconds(std::chrono::milliseconds ms) {
    const auto s = (ms.count() + 999) / 1000;
    return static_cast<unsigned>(s < 1 ? 1 : s);
}

inline const char* c_str_or_null(const std::string& s) { return s.empty() ? nullptr : s.c_str(); }

// "127.0.0.1:3306" or "/run/mysqld/mysqld.sock", for messages.
inline std::string target(const connect_options& o) {
    if (!o.unix_socket.empty()) return o.unix_socket;
    return o.host + ":" + std::to_string(o.port);
}

// Applies every connect option to a fresh handle. False (err filled) when the library
// rejects one.
inline bool configure(MYSQL* h, const connect_options& o, std::chrono::milliseconds connect_timeout,
                      error_info& err) {
    bool ok = true;
    auto set = [&](mysql_option opt, const void* value) {
        if (ok && mysql_options(h, opt, value) != 0) ok = false;
    };

    if (connect_timeout.count() > 0) {
        // Covers the TCP connect and each read of the handshake.
        const unsigned s = whole_seconds(connect_timeout);
        set(MYSQL_OPT_CONNECT_TIMEOUT, &s);
    }
    // Read/write timeouts are fixed into the socket at connect time; they bound queries.
    if (o.read_timeout.count() > 0) {
        const unsigned s = whole_seconds(o.read_timeout);
        set(MYSQL_OPT_READ_TIMEOUT, &s);
    }
    if (o.write_timeout.count() > 0) {
        const unsigned s = whole_seconds(o.write_timeout);
        set(MYSQL_OPT_WRITE_TIMEOUT, &s);
    }

    // Auto-reconnect stays OFF. A silent reconnect opens a brand-new session under the
    // caller's feet: its open transaction is rolled back, temporary tables, user variables,
    // prepared statements and locks vanish, and the next statement runs outside the
    // transaction the caller believes it is in. A lost connection must surface as an error
    // (and be discarded by the pool), never be papered over.
    const flag_type no_reconnect = 0;
    set(MYSQL_OPT_RECONNECT, &no_reconnect);

    if (!o.charset.empty()) set(MYSQL_SET_CHARSET_NAME, o.charset.c_str());
    const unsigned protocol = o.unix_socket.empty() ? MYSQL_PROTOCOL_TCP : MYSQL_PROTOCOL_SOCKET;
    set(MYSQL_OPT_PROTOCOL, &protocol);
    for (const auto& cmd : o.init_commands) set(MYSQL_INIT_COMMAND, cmd.c_str());

    if (o.tls.enabled()) {
        if (!o.tls.key.empty()) set(MYSQL_OPT_SSL_KEY, o.tls.key.c_str());
        if (!o.tls.cert.empty()) set(MYSQL_OPT_SSL_CERT, o.tls.cert.c_str());
        if (!o.tls.ca.empty()) set(MYSQL_OPT_SSL_CA, o.tls.ca.c_str());
        if (!o.tls.capath.empty()) set(MYSQL_OPT_SSL_CAPATH, o.tls.capath.c_str());
        if (!o.tls.cipher.empty()) set(MYSQL_OPT_SSL_CIPHER, o.tls.cipher.c_str());
#if CONNPOOL_MYSQL_MARIADB || !defined(MYSQL_VERSION_ID) || MYSQL_VERSION_ID < 80000
        // Connector/C: ENFORCE turns TLS on and refuses a server without it; without
        // require, mysql_ssl_set's flag turns TLS on whenever any TLS file is given.
        if (ok) mysql_ssl_set(h, c_str_or_null(o.tls.key), c_str_or_null(o.tls.cert), c_str_or_null(o.tls.ca),
                              c_str_or_null(o.tls.capath), c_str_or_null(o.tls.cipher));
        const flag_type enforce = (o.tls.require || o.tls.verify_server_cert) ? 1 : 0;
        if (enforce) set(MYSQL_OPT_SSL_ENFORCE, &enforce);
        const flag_type verify = o.tls.verify_server_cert ? 1 : 0;
        set(MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
#else
        // libmysqlclient 8: one mode option replaces ENFORCE and VERIFY_SERVER_CERT.
        const unsigned mode = o.tls.verify_server_cert ? SSL_MODE_VERIFY_IDENTITY
                              : o.tls.require         ? SSL_MODE_REQUIRED
                                                      : SSL_MODE_PREFERRED;
        set(MYSQL_OPT_SSL_MODE, &mode);
#endif
    }

#if CONNPOOL_MYSQL_NONBLOCKING
    // Gives every handle the context that the *_start/*_cont calls need (async_connect, and
    // ping() on a blocking-connected handle too); blocking calls are unaffected.
    set(MYSQL_OPT_NONBLOCK, nullptr);
#endif

    if (!ok) {
        err.code = make_error_code(errc::connect_failed);
        err.message = detail::describe("connect failed: invalid option", mysql_errno(h), mysql_error(h), o.password);
    }
    return ok;
}

// The error of a failed connect on handle h: errc::connect_timeout when the time ran out,
// errc::connect_failed otherwise; the message carries the server's number and text.
inline error_info connect_error(MYSQL* h, const connect_options& o, bool timed_out) {
    error_info e;
    const unsigned n = mysql_errno(h);
    e.code = make_error_code(timed_out ? errc::connect_timeout : errc::connect_failed);
    e.message = describe(timed_out ? "connect timed out" : "connect failed", n == 0 ? 2000u : n, mysql_error(h),
                         o.password);
    return e;
}

inline bool network_level(unsigned n) { return n == 2002 || n == 2003 || n == 2013 || n == 2006; }

inline unsigned long client_flags() {
    // Multi-results so that CALL of a procedure works; multi-statements stay off (they turn
    // an SQL injection into arbitrary statements).
    return CLIENT_MULTI_RESULTS;
}

#if CONNPOOL_MYSQL_NONBLOCKING

// One non-blocking connect driven by Asio: waits on the library's socket with a fresh,
// non-owning stream_descriptor per wait (the library may close the socket and open another,
// e.g. when trying the next address), on a timer when the library asks for one, and on a
// deadline for the whole connect. Every handler runs on one strand.
class async_connect_op : public std::enable_shared_from_this<async_connect_op> {
public:
    async_connect_op(asio::any_io_executor ex, connect_options options, connect_request request,
                     connect_handler<connection> handler)
        : strand_(asio::make_strand(ex)),
          options_(std::move(options)),
          request_(request),
          handler_(std::move(handler)),
          deadline_(strand_),
          library_timer_(strand_) {}

    ~async_connect_op() {
        release_descriptor();
        if (handle_ != nullptr) mysql_close(handle_);
    }

    // Never completes inline: the work starts on the strand.
    void start() { asio::post(strand_, [self = shared_from_this()] { self->begin(); }); }

private:
    void begin() {
        handle_ = mysql_init(nullptr);
        if (handle_ == nullptr) {
            return complete({make_error_code(errc::connect_failed), "connect failed: out of memory"}, std::nullopt);
        }
        error_info err;
        if (!configure(handle_, options_, request_.timeout, err)) return complete(std::move(err), std::nullopt);

        const bool socket = !options_.unix_socket.empty();
        const int status = mysql_real_connect_start(
            &result_, handle_, socket ? "localhost" : options_.host.c_str(), c_str_or_null(options_.user),
            options_.password.c_str(), c_str_or_null(options_.database), socket ? 0 : options_.port,
            socket ? options_.unix_socket.c_str() : nullptr, client_flags());
        if (status == 0) return finish();
        if (request_.timeout.count() > 0) {
            deadline_.expires_after(request_.timeout);
            deadline_.async_wait([self = shared_from_this()](error_code ec) { self->on_deadline(ec); });
        }
        wait_for(status);
    }

    void wait_for(int status) {
        const unsigned round = ++round_;
        const int fd = static_cast<int>(mysql_get_socket(handle_));
        if ((status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE | MYSQL_WAIT_EXCEPT)) != 0 && fd >= 0) {
            descriptor_.emplace(strand_, fd);
            using d = asio::posix::stream_descriptor;
            if (status & MYSQL_WAIT_READ) {
                descriptor_->async_wait(d::wait_read, [self = shared_from_this(), round](error_code ec) {
                    self->on_event(round, MYSQL_WAIT_READ, ec);
                });
            }
            if (status & MYSQL_WAIT_WRITE) {
                descriptor_->async_wait(d::wait_write, [self = shared_from_this(), round](error_code ec) {
                    self->on_event(round, MYSQL_WAIT_WRITE, ec);
                });
            }
            if (status & MYSQL_WAIT_EXCEPT) {
                descriptor_->async_wait(d::wait_error, [self = shared_from_this(), round](error_code ec) {
                    self->on_event(round, MYSQL_WAIT_EXCEPT, ec);
                });
            }
        }
        if (status & MYSQL_WAIT_TIMEOUT) {
            library_timer_.expires_after(std::chrono::milliseconds(mysql_get_timeout_value_ms(handle_)));
            library_timer_.async_wait([self = shared_from_this(), round](error_code ec) {
                self->on_event(round, MYSQL_WAIT_TIMEOUT, ec);
            });
        } else if (!descriptor_) {
            // No socket to watch (the library lost it): let the library find out now rather
            // than wait for the deadline.
            asio::post(strand_, [self = shared_from_this(), round, status] {
                self->on_event(round, status & ~MYSQL_WAIT_TIMEOUT, {});
            });
        }
    }

    // The first event of a round wins; the others of that round are stale and ignored.
    void on_event(unsigned round, int what, error_code ec) {
        if (done_ || round != round_ || ec == asio::error::operation_aborted) return;
        ++round_;
        library_timer_.cancel();
        // Give the fd back before the library touches it: it may close it inside _cont.
        release_descriptor();
        const int status = mysql_real_connect_cont(&result_, handle_, what);
        if (status == 0) return finish();
        wait_for(status);
    }

    void on_deadline(error_code ec) {
        if (ec || done_) return;
        ++round_;
        library_timer_.cancel();
        release_descriptor();
        error_info err{make_error_code(errc::connect_timeout),
                       "connect timed out after " + std::to_string(request_.timeout.count()) + " ms (" +
                           target(options_) + ")"};
        // The handshake is abandoned half way; make the close fail fast instead of writing.
        mariadb_cancel(handle_);
        mysql_close(handle_);
        handle_ = nullptr;
        complete(std::move(err), std::nullopt);
    }

    void finish() {
        if (result_ == nullptr) {
            error_info err = connect_error(handle_, options_, false);
            mysql_close(handle_);
            handle_ = nullptr;
            return complete(std::move(err), std::nullopt);
        }
        connection c(std::exchange(handle_, nullptr));
        c.init_commands_ = std::move(options_.init_commands);
        complete({}, std::optional<connection>(std::move(c)));
    }

    void complete(error_info err, std::optional<connection> c) {
        done_ = true;
        deadline_.cancel();
        library_timer_.cancel();
        release_descriptor();
        // Post, so that the handler never runs inside this frame; it runs on its associated
        // executor (the pool's), or on ours.
        asio::post(strand_, asio::append(std::move(handler_), std::move(err), std::move(c)));
    }

    void release_descriptor() noexcept {
        if (descriptor_) {
            // Non-owning: the library owns the socket. release() deregisters it from the
            // reactor and cancels the pending waits without closing the fd.
            (void)descriptor_->release();
            descriptor_.reset();
        }
    }

    asio::any_io_executor strand_;
    connect_options options_;  // outlives the connect: the library keeps pointers into it
    connect_request request_;
    connect_handler<connection> handler_;
    asio::steady_timer deadline_;
    asio::steady_timer library_timer_;
    std::optional<asio::posix::stream_descriptor> descriptor_;
    MYSQL* handle_ = nullptr;
    MYSQL* result_ = nullptr;
    unsigned round_ = 0;
    bool done_ = false;
};

// Runs blocking connects off the caller's executor, for the connects the non-blocking API
// cannot do (TLS, see factory::async_connect). Two threads, started on first use, so that a
// factory that never connects with TLS never starts them. Shared by copies of a factory; the
// last copy joins them (after any connect in flight, at most connect_timeout).
class blocking_runner {
public:
    template <class Work>
    void post(Work&& work) {
        std::call_once(started_, [this] { threads_.emplace(2); });
        asio::post(*threads_, std::forward<Work>(work));
    }

private:
    std::once_flag started_;
    std::optional<asio::thread_pool> threads_;
};

#endif  // CONNPOOL_MYSQL_NONBLOCKING

}  // namespace detail

// Opens MySQL/MariaDB connections for connpool::basic_pool, from fixed connect_options or
// from a callable that returns them on every connect (for rotated credentials).
//
// Thread-safety: the pool calls connect/ping/reset from several threads at once; each call
// touches only its own connection. A callable options source must be safe to call
// concurrently.
class factory {
public:
    using connection_type = connection;

    explicit factory(connect_options options, reset_policy policy = reset_policy::reset_connection)
        : source_(std::make_shared<const source_type>([o = std::move(options)] { return o; })), policy_(policy) {
        detail::ensure_library();
    }

    // source() is called on every connect, so a rotated password takes effect on the next one.
    template <class Source>
        requires(std::invocable<Source&> &&
                 std::convertible_to<std::invoke_result_t<Source&>, connect_options> &&
                 !std::same_as<std::remove_cvref_t<Source>, connect_options>)
    explicit factory(Source source, reset_policy policy = reset_policy::reset_connection)
        : source_(std::make_shared<const source_type>(std::move(source))), policy_(policy) {
        detail::ensure_library();
    }

    reset_policy policy() const noexcept { return policy_; }

    // The options the next connect will use.
    connect_options options() const { return (*source_)(); }

    // Blocking connect, bounded by request.timeout through MYSQL_OPT_CONNECT_TIMEOUT (whole
    // seconds, rounded up; it bounds the TCP connect and each handshake read).
    std::optional<connection> connect(const connect_request& request, error_info& err) {
        return blocking_connect(options(), request, err);
    }

#if CONNPOOL_MYSQL_NONBLOCKING
    // Non-blocking connect (MYSQL_OPT_NONBLOCK, mysql_real_connect_start/_cont) driven by ex.
    // Handler: void(error_info, std::optional<connection>), called exactly once, never inline,
    // on its associated executor. request.timeout bounds the whole connect (errc::connect_timeout).
    // Only the options source and DNS resolution run on the calling thread. With TLS enabled the
    // connect is blocking, on two threads the factory starts on first use (see below), and is
    // bounded by MYSQL_OPT_CONNECT_TIMEOUT like connect().
    void async_connect(const connect_request& request, asio::any_io_executor ex,
                       connect_handler<connection> handler) {
        detail::ensure_library();
        connect_options o = options();
        if (o.tls.enabled()) {
            // Connector/C 3.3's TLS handshake does not suspend under the non-blocking API:
            // when the server's TLS reply is not in the socket yet, SSL_connect fails at once
            // ("[2026] TLS/SSL error: Connection timed out (110)") instead of yielding. So a
            // TLS connect is a blocking connect on the factory's own threads, completed on ex.
            // The work guard keeps ex's run() going until the handler has been posted to it.
            runner_->post([o = std::move(o), request, work = asio::make_work_guard(ex), ex,
                           handler = std::move(handler)]() mutable {
                error_info err;
                std::optional<connection> c;
                try {
                    c = blocking_connect(o, request, err);
                } catch (const std::exception& e) {
                    c.reset();
                    err = {make_error_code(errc::factory_exception), std::string("factory threw: ") + e.what()};
                }
                asio::post(ex, asio::append(std::move(handler), std::move(err), std::move(c)));
                work.reset();
            });
            return;
        }
        auto op = std::make_shared<detail::async_connect_op>(std::move(ex), std::move(o), request, std::move(handler));
        op->start();
    }
#endif

    // One round trip (COM_PING) under timeout. False (err filled, connection marked broken)
    // when the server does not answer in time or the connection is gone. Auto-reconnect is
    // off, so a failed ping never opens a new session behind the pool's back.
    bool ping(connection& c, std::chrono::milliseconds timeout, error_info& err) {
        if (c.handle_ == nullptr) {
            err = {make_error_code(errc::ping_failed), "ping failed: no connection"};
            return false;
        }
#if CONNPOOL_MYSQL_NONBLOCKING
        // Our own deadline: the socket's read timeout was fixed at connect and may be long.
        const auto deadline = std::chrono::steady_clock::now() + timeout;
        int ret = 0;
        int status = mysql_ping_start(&ret, c.handle_);
        while (status != 0) {
            const int ready = detail::wait_for_status(c.handle_, status, deadline);
            if (ready < 0) {
                // The ping is left half done: the session cannot be used again.
                c.mark_broken();
                err = {make_error_code(errc::ping_failed),
                       "ping failed: no answer within " + std::to_string(timeout.count()) + " ms"};
                return false;
            }
            status = mysql_ping_cont(&ret, c.handle_, ready);
        }
#else
        // libmysqlclient has no non-blocking ping: the read timeout given at connect bounds it.
        (void)timeout;
        const int ret = mysql_ping(c.handle_);
#endif
        if (ret != 0) {
            error_info e = c.record_error("ping failed");
            c.mark_broken();
            err = {make_error_code(errc::ping_failed), std::move(e.message)};
            return false;
        }
        return true;
    }

    // No I/O: whether a returned connection needs reset() before the next user.
    bool needs_reset(const connection& c) const noexcept {
        switch (policy_) {
        case reset_policy::reset_connection: return c.used();
        case reset_policy::rollback_only: return c.used() && c.in_transaction();
        case reset_policy::none: return false;
        }
        return true;
    }

    // Blocking; makes the session clean per the policy. False (err filled) means close it.
    bool reset(connection& c, error_info& err) {
        if (c.broken()) {
            err = {make_error_code(errc::reset_failed), "reset failed: connection is broken"};
            return false;
        }
        switch (policy_) {
        case reset_policy::reset_connection:
            if (mysql_reset_connection(c.handle_) != 0) return reset_error(c, err);
            // COM_RESET_CONNECTION reset session variables to the global defaults: apply the
            // init commands again so every lease starts from the same session.
            for (const auto& cmd : c.init_commands_) {
                if (mysql_real_query(c.handle_, cmd.data(), static_cast<unsigned long>(cmd.size())) != 0)
                    return reset_error(c, err);
                if (MYSQL_RES* r = mysql_store_result(c.handle_)) mysql_free_result(r);
            }
            break;
        case reset_policy::rollback_only:
            if (c.in_transaction() && mysql_rollback(c.handle_) != 0) return reset_error(c, err);
            break;
        case reset_policy::none: break;
        }
        c.used_ = false;
        return true;
    }

    // No I/O: true when the connection saw a connection-level error and must be closed.
    bool is_broken(const connection& c) const noexcept { return c.broken(); }

#if CONNPOOL_MYSQL_MARIADB
    // Never waits. The server sends nothing to an idle session unless it is going away (KILL,
    // wait_timeout, shutdown: an error packet, then EOF), so a readable socket means dead.
    // Housekeeping calls this on idle connections, so that the pool replaces dead ones before
    // anyone acquires them.
    bool probe(connection& c) noexcept {
        if (c.broken()) return false;
        const int fd = c.socket();
        if (fd < 0) return false;
        pollfd p{};
        p.fd = fd;
        p.events = POLLIN;
        const int ready = ::poll(&p, 1, 0);
        if (ready == 0 || (ready < 0 && errno == EINTR)) return true;
        c.mark_broken();
        return false;
    }
#endif

private:
    using source_type = std::function<connect_options()>;

    static std::optional<connection> blocking_connect(const connect_options& o, const connect_request& request,
                                                      error_info& err) {
        detail::ensure_library();
        MYSQL* h = mysql_init(nullptr);
        if (h == nullptr) {
            err = {make_error_code(errc::connect_failed), "connect failed: out of memory"};
            return std::nullopt;
        }
        if (!detail::configure(h, o, request.timeout, err)) {
            mysql_close(h);
            return std::nullopt;
        }
        const bool socket = !o.unix_socket.empty();
        const auto started = std::chrono::steady_clock::now();
        if (mysql_real_connect(h, socket ? "localhost" : o.host.c_str(), detail::c_str_or_null(o.user),
                               o.password.c_str(), detail::c_str_or_null(o.database), socket ? 0 : o.port,
                               socket ? o.unix_socket.c_str() : nullptr, detail::client_flags()) == nullptr) {
            const bool timed_out = request.timeout.count() > 0 && detail::network_level(mysql_errno(h)) &&
                                   std::chrono::steady_clock::now() - started >= request.timeout;
            err = detail::connect_error(h, o, timed_out);
            mysql_close(h);
            return std::nullopt;
        }
        connection c(h);
        c.init_commands_ = o.init_commands;
        return std::optional<connection>(std::move(c));
    }


    static bool reset_error(connection& c, error_info& err) {
        error_info e = c.record_error("reset failed");
        c.mark_broken();
        err = {make_error_code(errc::reset_failed), std::move(e.message)};
        return false;
    }

    std::shared_ptr<const source_type> source_;
    reset_policy policy_;
#if CONNPOOL_MYSQL_NONBLOCKING
    std::shared_ptr<detail::blocking_runner> runner_ = std::make_shared<detail::blocking_runner>();
#endif
};

}  // namespace connpool::mysql

#endif  // CONNPOOL_MYSQL_FACTORY_HPP
