// connpool::pg::factory: opens, checks and resets libpq connections for a connpool pool.
#ifndef CONNPOOL_PG_FACTORY_HPP
#define CONNPOOL_PG_FACTORY_HPP

#include <connpool/credentials.hpp>
#include <connpool/error.hpp>
#include <connpool/factory.hpp>
#include <connpool/pg/connection.hpp>
#include <connpool/pg/detail/cancel.hpp>
#include <connpool/pg/detail/connect.hpp>
#include <connpool/pg/detail/round_trip.hpp>
#include <connpool/pg/labels.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace connpool::pg {

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

// What the factory does beyond connecting: the reset on return, PgBouncer, the reset timeout.
struct factory_options {
    // See reset_policy.
    reset_policy reset = reset_policy::rollback;

    // The SQL that reset_policy::custom_sql runs (may hold several statements; runs outside a
    // transaction).
    std::string reset_sql;

    // Set this when the conninfo points at PgBouncer (or another pooler) in transaction mode, where
    // session state does not belong to this connection: a full reset would reset some other
    // client's server connection, so only reset_policy::rollback is allowed (the constructor throws
    // std::invalid_argument otherwise). exec and try_exec use the unnamed statement only; the
    // statement cache (exec_cached, prepare_cached) is off in this mode and fails with
    // statement_errc::prepared_statements_unsupported, because PgBouncer before 1.21 (Debian 12
    // ships 1.18) does not carry protocol-level prepared statements between transactions.
    bool transaction_pooling = false;

    // The statement cache of each connection (connection::exec_cached, prepare_cached): how many
    // distinct SQL texts it remembers, prepared or still counting uses, before the least recently
    // used is deallocated. 0 turns the cache off. At most 65536 (each statement holds server
    // memory for as long as the session lives).
    std::size_t statement_cache_capacity = 128;

    // exec_cached prepares a text on its prepare_after-th use on a connection and runs the ones
    // before unnamed, so one-off SQL never takes a server statement (JDBC's prepareThreshold).
    // 1 (the default) prepares on first use. Must be at least 1.
    unsigned prepare_after = 1;

    // Upper bound on each reset step (cancel and drain, ROLLBACK, full reset), and on a label's
    // apply(). A reset or apply that runs out of time fails and the pool closes the connection.
    std::chrono::milliseconds reset_timeout{5000};
};


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
    // The connection type the factory makes.
    using connection_type = connection;

    // A factory over a fixed conninfo string (key=value or a postgresql:// URI).
    explicit factory(std::string conninfo_string, factory_options o = {})
        : factory(constant_source(conninfo{std::move(conninfo_string)}), std::move(o)) {}

    // As factory(std::string, o).
    explicit factory(const char* conninfo_string, factory_options o = {})
        : factory(std::string(conninfo_string), std::move(o)) {}

    // A factory over libpq keywords, e.g. {{"host", "db"}, {"dbname", "app"}}.
    explicit factory(keywords kw, factory_options o = {})
        : factory(constant_source(conninfo{std::move(kw)}), std::move(o)) {}

    // source() -> std::string or keywords, called on every connect.
    template <detail::conninfo_source F>
        requires(!std::convertible_to<F, std::string> && !std::convertible_to<F, keywords>)
    explicit factory(F source, factory_options o = {})
        : source_([s = std::move(source)]() mutable -> conninfo { return conninfo(s()); }), options_(std::move(o)) {
        validate();
    }

    // The password comes from credentials, over any in the conninfo: the cache asks its provider
    // only when the cached password is missing or about to expire, and a failed refresh fails the
    // connect with the provider's message. A connect refused for the password (libpq's message
    // says "password authentication failed"; with a server whose lc_messages is not English it
    // is not recognised) marks the cached one stale, so the next connect fetches a new one. With
    // credential_options::retire_on_rotation, is_broken() is true for connections opened with an
    // older password, so the pool replaces them as they come back.
    factory(conninfo info, std::shared_ptr<credential_cache> credentials, factory_options o = {})
        : factory(constant_source(std::move(info)), std::move(o)) {
        if (!credentials) throw std::invalid_argument("connpool::pg::factory: credentials: must not be null");
        credentials_ = std::move(credentials);
    }

    // The options, as given to the constructor.
    const factory_options& options() const noexcept { return options_; }

    // Blocking connect: PQconnectStartParams + PQconnectPoll under one deadline of r.timeout for the
    // whole attempt (libpq's own connect_timeout counts whole seconds, at least 2, per host).
    std::optional<connection> connect(const connect_request& r, error_info& err) {
        detail::connect_params p;
        if (!resolve(p, err)) return std::nullopt;
        std::uint64_t generation = 0;
        if (credentials_) {
            credential cred;
            if (!credentials_->get(cred, generation, err)) return std::nullopt;
            p.replace("password", std::move(cred.password));
        }
        auto c = detail::blocking_connect(p, effective(r.timeout), err);
        after_connect(c, generation, err);
        return c;
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
        if (!credentials_) {
            // Stamped like a blocking connect: the new connection's statement cache follows the options.
            connect_handler<connection> stamped(
                [config = cache_config_, handler = std::move(handler)](error_info e, std::optional<connection> c) mutable {
                    if (c) c->statements_.configure(config);
                    std::move(handler)(std::move(e), std::move(c));
                });
            std::make_shared<detail::async_connect_op>(ex, std::move(p), effective(r.timeout), std::move(stamped))
                ->start();
            return;
        }
        // The password first; a refresh in flight is shared with every connect that waits.
        credentials_->async_get(ex, [self = *this, p = std::move(p), timeout = effective(r.timeout), ex,
                                     handler = std::move(handler)](error_info e, credential cred,
                                                                   std::uint64_t generation) mutable {
            if (e) {
                asio::post(ex, asio::append(std::move(handler), std::move(e), std::optional<connection>{}));
                return;
            }
            p.replace("password", std::move(cred.password));
            connect_handler<connection> stamped(
                [self, generation, handler = std::move(handler)](error_info e2, std::optional<connection> c) mutable {
                    self.after_connect(c, generation, e2);
                    std::move(handler)(std::move(e2), std::move(c));
                });
            std::make_shared<detail::async_connect_op>(ex, std::move(p), timeout, std::move(stamped))->start();
        });
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
        // The server dropped every prepared statement: so does the cache, which must never name
        // one the server lost. A rollback-only reset (and a clean return, which runs no reset)
        // keeps them for the next user.
        if (reset_clears_statements_) c.forget_statements();
        if (PQtransactionStatus(n) != PQTRANS_IDLE) return fail("connection is not idle after reset");
        return true;
    }

    // No I/O: PQstatus, or a fatal error seen by the connection's helpers or report(); with
    // credentials and retire_on_rotation, also a connection opened with a replaced password.
    bool is_broken(const connection& c) const {
        if (c.is_broken()) return true;
        return credentials_ && credentials_->options().retire_on_rotation &&
               c.credential_generation_ != credentials_->generation();
    }

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

    // Labels (pg/labels.hpp): one round trip that sends only the settings that differ.
    bool apply(connection& c, const label& from, const label& to, error_info& err) {
        return apply_label(c, from, to, err, options_.reset_timeout);
    }

    // DISCARD ALL (or a reset_sql that says RESET ALL or DISCARD ALL) returns every setting
    // to its default, so the pool forgets the label; a rollback-only reset keeps both. The
    // statement cache follows the same reset (see reset()): DISCARD ALL clears it along with the
    // label, RESET ALL keeps it, and a label change (apply) never touches it, since SET and
    // RESET leave prepared statements alone (the server re-plans one whose search_path changed).
    bool reset_clears_labels(const connection&) const noexcept { return reset_clears_settings_; }

private:
    static std::function<conninfo()> constant_source(conninfo info) {
        return [info = std::move(info)] { return info; };
    }

    factory(std::function<conninfo()> source, factory_options o) : source_(std::move(source)), options_(std::move(o)) {
        validate();
    }

    // Also works out, once, whether a reset returns every setting to its default.
    void validate() {
        if (options_.transaction_pooling && options_.reset != reset_policy::rollback) {
            throw std::invalid_argument(
                "connpool::pg::factory_options::reset: only reset_policy::rollback works with transaction_pooling");
        }
        if (options_.reset == reset_policy::custom_sql && options_.reset_sql.empty()) {
            throw std::invalid_argument("connpool::pg::factory_options::reset_sql: empty with reset_policy::custom_sql");
        }
        if (options_.statement_cache_capacity > 65536) {
            throw std::invalid_argument("connpool::pg::factory_options::statement_cache_capacity: " +
                                        std::to_string(options_.statement_cache_capacity) + " is above 65536");
        }
        if (options_.prepare_after == 0) {
            throw std::invalid_argument("connpool::pg::factory_options::prepare_after: 0, must be at least 1");
        }
        if (options_.reset_timeout <= std::chrono::milliseconds::zero()) {
            throw std::invalid_argument("connpool::pg::factory_options::reset_timeout: must be positive");
        }
        std::string sql = options_.reset_sql;
        for (auto& ch : sql) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        reset_clears_settings_ = options_.reset == reset_policy::discard_all ||
                                 (options_.reset == reset_policy::custom_sql &&
                                  (sql.find("RESET ALL") != std::string::npos || sql.find("DISCARD ALL") != std::string::npos));
        // Which resets drop every prepared statement: DISCARD ALL (which includes DEALLOCATE ALL)
        // and DEALLOCATE [PREPARE] ALL. RESET ALL keeps them.
        reset_clears_statements_ =
            options_.reset == reset_policy::discard_all ||
            (options_.reset == reset_policy::custom_sql &&
             (sql.find("DISCARD ALL") != std::string::npos || sql.find("DEALLOCATE ALL") != std::string::npos ||
              sql.find("DEALLOCATE PREPARE ALL") != std::string::npos));
        cache_config_.capacity = options_.statement_cache_capacity;
        cache_config_.prepare_after = options_.prepare_after;
        cache_config_.unsupported = options_.transaction_pooling;
    }

    // A zero timeout from the pool would fail every connect at once; treat it as "no bound" like libpq.
    static std::chrono::milliseconds effective(std::chrono::milliseconds t) {
        return t > std::chrono::milliseconds::zero() ? t : std::chrono::hours(24 * 365);
    }

    void after_connect(std::optional<connection>& c, std::uint64_t generation, const error_info& err) const {
        if (c) {
            c->credential_generation_ = generation;
            c->statements_.configure(cache_config_);
        } else if (credentials_ && err.message.find("password authentication failed") != std::string::npos) {
            // The password was rotated before its stated expiry.
            credentials_->invalidate(generation);
        }
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
        // results are still to come. Each cancel is bounded by the reset's deadline (PQcancel is
        // not: see detail/cancel.hpp), and a failed one only means a longer drain.
        const detail::cancel_target target = detail::cancel_target_of(n);
        auto send_cancel = [&] { (void)detail::send_cancel(target, deadline); };
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
    bool reset_clears_settings_ = false;    // see validate()
    bool reset_clears_statements_ = false;  // see validate()
    detail::statement_cache_config cache_config_;  // what each new connection's cache does
    std::shared_ptr<credential_cache> credentials_;
};

static_assert(connection_factory<factory>);
static_assert(connpool::detail::has_async_connect<factory>);
static_assert(connpool::detail::has_ping<factory>);
static_assert(connpool::detail::has_reset<factory>);
static_assert(connpool::detail::has_needs_reset<factory>);
static_assert(connpool::detail::has_is_broken<factory>);

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_FACTORY_HPP
