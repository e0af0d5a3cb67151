// connpool::mysql::factory: opens, checks and cleans MySQL/MariaDB connections for a pool.
#ifndef CONNPOOL_MYSQL_FACTORY_HPP
#define CONNPOOL_MYSQL_FACTORY_HPP

#include <connpool/credentials.hpp>
#include <connpool/error.hpp>
#include <connpool/factory.hpp>
#include <connpool/mysql/connection.hpp>
#include <connpool/mysql/detail/async_connect.hpp>
#include <connpool/mysql/detail/configure.hpp>
#include <connpool/mysql/detail/library.hpp>
#include <connpool/mysql/detail/steps.hpp>
#include <connpool/mysql/error.hpp>
#include <connpool/mysql/labels.hpp>
#include <connpool/mysql/options.hpp>

#include <mysql.h>
#include <poll.h>

#if CONNPOOL_MYSQL_NONBLOCKING
#include <boost/asio/append.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/post.hpp>
#endif

#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace connpool::mysql {


// Opens MySQL/MariaDB connections for connpool::basic_pool, from fixed connect_options or
// from a callable that returns them on every connect (for rotated credentials).
//
// Thread-safety: the pool calls connect/ping/reset from several threads at once; each call
// touches only its own connection. A callable options source must be safe to call
// concurrently.
class factory {
public:
    // The connection type the factory makes.
    using connection_type = connection;

    // A factory over fixed connect options and the reset policy for returned connections.
    explicit factory(connect_options options, reset_policy policy = reset_policy::reset_if_dirty)
        : factory(fixed(std::move(options)), nullptr, policy) {}

    // source() is called on every connect, so a rotated password takes effect on the next one.
    template <class Source>
        requires(std::invocable<Source&> &&
                 std::convertible_to<std::invoke_result_t<Source&>, connect_options> &&
                 !std::same_as<std::remove_cvref_t<Source>, connect_options>)
    explicit factory(Source source, reset_policy policy = reset_policy::reset_if_dirty)
        : factory(source_type(std::move(source)), nullptr, policy) {}

    // The password comes from credentials (options.password is ignored): the cache asks its
    // provider only when the cached password is missing or about to expire, and a failed
    // refresh fails the connect with the provider's message. A connect refused with
    // "access denied" marks the cached password stale, so the next connect fetches a new one.
    // With credential_options::retire_on_rotation, is_broken() is true for connections opened
    // with an older password, so the pool replaces them as they come back.
    factory(connect_options options, std::shared_ptr<credential_cache> credentials,
            reset_policy policy = reset_policy::reset_if_dirty)
        : factory(fixed(std::move(options)), std::move(credentials), policy) {
        if (!credentials_) throw std::invalid_argument("connpool::mysql::factory: credentials: must not be null");
    }

    // The reset policy, as given to the constructor.
    reset_policy policy() const noexcept { return policy_; }

    // The options the next connect will use (without the credential cache's password).
    connect_options options() const { return (*source_)(); }

    // Blocking connect, bounded by request.timeout through MYSQL_OPT_CONNECT_TIMEOUT (whole
    // seconds, rounded up; it bounds the TCP connect and each handshake read).
    std::optional<connection> connect(const connect_request& request, error_info& err) {
        connect_options o = prepared_options();
        std::uint64_t generation = 0;
        if (credentials_) {
            credential cred;
            if (!credentials_->get(cred, generation, err)) return std::nullopt;
            o.password = std::move(cred.password);
        }
        auto c = blocking_connect(o, request, err);
        after_connect(c, generation, err);
        return c;
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
        connect_options o = prepared_options();
        if (!credentials_) return start_async(std::move(o), 0, request, std::move(ex), std::move(handler));
        // The password first; a refresh in flight is shared with every connect that waits.
        credentials_->async_get(ex, [self = *this, o = std::move(o), request, ex,
                                     handler = std::move(handler)](error_info e, credential cred,
                                                                   std::uint64_t generation) mutable {
            if (e) {
                asio::post(ex, asio::append(std::move(handler), std::move(e), std::optional<connection>{}));
                return;
            }
            o.password = std::move(cred.password);
            self.start_async(std::move(o), generation, request, std::move(ex), std::move(handler));
        });
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
        // Our own deadline: the socket's read timeout was fixed at connect and may be long
        // (without the non-blocking API it is that read timeout that bounds the ping).
        const auto outcome = detail::ping_step(c.handle_, std::chrono::steady_clock::now() + timeout);
        if (outcome == detail::step_result::timed_out) {
            // The ping is left half done: the session cannot be used again.
            c.mark_broken();
            err = {make_error_code(errc::ping_failed),
                   "ping failed: no answer within " + std::to_string(timeout.count()) + " ms"};
            return false;
        }
        if (outcome != detail::step_result::ok) {
            error_info e = c.record_error("ping failed");
            c.mark_broken();
            err = {make_error_code(errc::ping_failed), std::move(e.message)};
            return false;
        }
        return true;
    }

    // No I/O: whether a returned connection needs reset() before the next user. With the
    // default policy a lease that left neither a transaction nor a session change costs
    // nothing on return.
    bool needs_reset(const connection& c) const noexcept {
        switch (policy_) {
        case reset_policy::reset_if_dirty: return c.session_changed() || c.in_transaction();
        case reset_policy::reset_connection: return c.used();
        case reset_policy::rollback_only: return c.used() && c.in_transaction();
        case reset_policy::none: return false;
        }
        return true;
    }

    // Blocking; makes the session clean per the policy, each round trip bounded by
    // connect_options::reset_timeout. False (err filled) means close it.
    bool reset(connection& c, error_info& err) {
        if (c.broken()) {
            err = {make_error_code(errc::reset_failed), "reset failed: connection is broken"};
            return false;
        }
        bool full = false;
        bool rollback = false;
        switch (policy_) {
        case reset_policy::reset_if_dirty:
            full = c.session_changed();
            rollback = !full && c.in_transaction();
            break;
        case reset_policy::reset_connection: full = true; break;
        case reset_policy::rollback_only: rollback = c.in_transaction(); break;
        case reset_policy::none: break;
        }
        if (full && !full_reset(c, err)) return false;
        if (rollback && !step(c, detail::rollback_step(c.handle_, deadline(c)), "ROLLBACK", err)) return false;
        c.mark_clean();
        c.settings_reset_ = full;
        return true;
    }

    // Labels (mysql/labels.hpp): only the settings that differ, each round trip bounded by
    // connect_options::reset_timeout. Not session dirt: the pool knows the label, so a
    // return does not pay a reset for it. False (err names the step, and the setting when
    // it cannot be sent): the pool closes the connection, as its settings are unknown.
    bool apply(connection& c, const label& from, const label& to, error_info& err) {
        if (c.broken()) {
            err = {make_error_code(errc::reset_failed), "apply label failed: connection is broken"};
            return false;
        }
        const auto plan = detail::statements_for(c.handle_, from, to, c.database_);
        if (!plan.bad_setting.empty()) {
            err = {make_error_code(errc::reset_failed),
                   "apply label failed: setting " + plan.bad_setting +
                       (detail::is_schema_setting(plan.bad_setting)
                            ? ": no way back to no default schema (set connect_options::database)"
                            : ": cannot be sent")};
            return false;
        }
        constexpr const char* what = "apply label failed";
        if (plan.schema) {
            if (!step(c, detail::select_db_step(c.handle_, plan.schema->c_str(), deadline(c)), "select schema", err,
                      what))
                return false;
            c.label_schema_ = *plan.schema != c.database_;
            // A prepared statement keeps the schema it was prepared in.
            c.forget_statements();
        }
        if (!plan.role.empty()) {
            if (!step(c, detail::statement_step(c.handle_, plan.role, deadline(c)), "SET ROLE", err, what)) return false;
            c.role_set_ = to.find("role") != nullptr;
        }
        if (!plan.variables.empty() &&
            !step(c, detail::statement_step(c.handle_, plan.variables, deadline(c)), "SET", err, what))
            return false;
        return true;
    }

    // After a reset of c: true when it was a full one (COM_RESET_CONNECTION), which returns
    // every session setting to the server's default; a ROLLBACK keeps them.
    bool reset_clears_labels(const connection& c) const noexcept { return c.settings_reset_; }

    // No I/O: true when the connection saw a connection-level error and must be closed.
    // With credentials and retire_on_rotation: also when the connection was opened with a
    // password that has since been replaced.
    bool is_broken(const connection& c) const noexcept {
        if (c.broken()) return true;
        return credentials_ && credentials_->options().retire_on_rotation &&
               c.credential_generation_ != credentials_->generation();
    }

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

    static void validate(const connect_options& o) {
        if (o.statement_cache_capacity > 65536) {
            throw std::invalid_argument("connpool::mysql::connect_options::statement_cache_capacity: " +
                                        std::to_string(o.statement_cache_capacity) + " is above 65536");
        }
        if (o.reset_timeout <= std::chrono::milliseconds::zero()) {
            throw std::invalid_argument("connpool::mysql::connect_options::reset_timeout: must be positive, is " +
                                        std::to_string(o.reset_timeout.count()) + " ms");
        }
    }

    static source_type fixed(connect_options o) {
        validate(o);
        return [o = std::move(o)] { return o; };
    }

    factory(source_type source, std::shared_ptr<credential_cache> credentials, reset_policy policy)
        : source_(std::make_shared<const source_type>(std::move(source))),
          credentials_(std::move(credentials)),
          policy_(policy) {
        detail::ensure_library();
    }

    // The options of one connect, with what the reset policy needs from the server: the
    // state-change flag is off by default, and without it reset_if_dirty would see nothing.
    // It is an init command, so a full reset turns it on again with the others.
    connect_options prepared_options() const {
        connect_options o = options();
        validate(o);
        if (policy_ == reset_policy::reset_if_dirty) {
            o.init_commands.insert(o.init_commands.begin(), "SET SESSION session_track_state_change = ON");
        }
        return o;
    }

    void after_connect(std::optional<connection>& c, std::uint64_t generation, const error_info& err) const {
        if (c) {
            c->credential_generation_ = generation;
        } else if (credentials_ && err.message.find("[1045]") != std::string::npos) {
            // Access denied: the password was rotated before its stated expiry.
            credentials_->invalidate(generation);
        }
    }

#if CONNPOOL_MYSQL_NONBLOCKING
    void start_async(connect_options o, std::uint64_t generation, const connect_request& request,
                     asio::any_io_executor ex, connect_handler<connection> handler) {
        // Stamp the credential generation on the way out, whichever path connects.
        connect_handler<connection> stamped(
            [self = *this, generation, handler = std::move(handler)](error_info e,
                                                                     std::optional<connection> c) mutable {
                self.after_connect(c, generation, e);
                std::move(handler)(std::move(e), std::move(c));
            });
        if (o.tls.enabled()) {
            // Connector/C 3.3 cannot finish a TLS handshake under the non-blocking API: when
            // the server's TLS reply is not in the socket yet, SSL_connect fails at once
            // ("[2026] TLS/SSL error: Connection timed out (110)") instead of yielding (its
            // TLS layer reads with a blocking wait that the async context does not suspend).
            // So a TLS connect is a blocking connect on the factory's own threads, bounded by
            // MYSQL_OPT_CONNECT_TIMEOUT, completed on ex. The work guard keeps ex's run()
            // going until the handler has been posted to it.
            runner_->post([o = std::move(o), request, work = asio::make_work_guard(ex), ex,
                           handler = std::move(stamped)]() mutable {
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
        std::make_shared<detail::async_connect_op>(std::move(ex), std::move(o), request, std::move(stamped))->start();
    }
#endif

    static std::chrono::steady_clock::time_point deadline(const connection& c) {
        return std::chrono::steady_clock::now() + c.reset_timeout_;
    }

    // COM_RESET_CONNECTION, then SET ROLE NONE when a role may be set (COM_RESET_CONNECTION
    // keeps it), then the init commands again (it reset session variables, the state-change
    // flag among them), then the configured schema when a lease changed it (it keeps the
    // current one too) or a label selected another.
    bool full_reset(connection& c, error_info& err) {
        const bool schema_changed = c.schema_changed_ || c.label_schema_;
        // COM_RESET_CONNECTION drops every prepared statement, and a handle used after it fails
        // with 2013, which reads as a lost connection: close them all first (no round trip).
        c.forget_statements();
        if (!step(c, detail::reset_connection_step(c.handle_, deadline(c)), "COM_RESET_CONNECTION", err)) return false;
        // native_handle() may have set one too; Oracle's 5.7 has no roles to reset.
        if (c.role_set_ || (c.raw_used_ && CONNPOOL_MYSQL_MARIADB)) {
            if (!step(c, detail::statement_step(c.handle_, "SET ROLE NONE", deadline(c)), "SET ROLE NONE", err))
                return false;
            c.role_set_ = false;
        }
        for (const auto& cmd : c.init_commands_) {
            if (!step(c, detail::statement_step(c.handle_, cmd, deadline(c)), "init command", err)) return false;
        }
        if (schema_changed) {
            if (c.database_.empty()) {
                // There is no way back to "no schema selected" short of a new session.
                c.mark_broken();
                err = {make_error_code(errc::reset_failed), "reset failed: the lease selected a schema"};
                return false;
            }
            if (!step(c, detail::select_db_step(c.handle_, c.database_.c_str(), deadline(c)), "select schema", err))
                return false;
            c.label_schema_ = false;
        }
        return true;
    }

    // name names the step in the message; an init command's text stays out of it.
    static bool step(connection& c, detail::step_result r, const char* name, error_info& err,
                     const char* what = "reset failed") {
        if (r == detail::step_result::ok) return true;
        c.mark_broken();
        if (r == detail::step_result::timed_out) {
            err = {make_error_code(errc::reset_failed),
                   std::string(what) + ": " + name + ": no answer within reset_timeout"};
            return false;
        }
        error_info e = c.record_error(std::string(what) + ": " + name);
        err = {make_error_code(errc::reset_failed), std::move(e.message)};
        return false;
    }

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
            // A TLS handshake that waited out the timeout fails as [2026] "TLS/SSL error:
            // Connection timed out", not as a network error.
            const unsigned n = mysql_errno(h);
            const bool timed_out = request.timeout.count() > 0 && (detail::network_level(n) || n == 2026) &&
                                   std::chrono::steady_clock::now() - started >= request.timeout;
            err = detail::connect_error(h, o, timed_out);
            mysql_close(h);
            return std::nullopt;
        }
        connection c(h);
        c.init_commands_ = o.init_commands;
        c.database_ = o.database;
        c.reset_timeout_ = o.reset_timeout;
        c.statements_.capacity = o.statement_cache_capacity;
        return std::optional<connection>(std::move(c));
    }


    std::shared_ptr<const source_type> source_;
    std::shared_ptr<credential_cache> credentials_;
    reset_policy policy_;
#if CONNPOOL_MYSQL_NONBLOCKING
    std::shared_ptr<detail::blocking_runner> runner_ = std::make_shared<detail::blocking_runner>();
#endif
};

}  // namespace connpool::mysql

#endif  // CONNPOOL_MYSQL_FACTORY_HPP
