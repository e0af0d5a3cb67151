// connpool: the pool.
#ifndef CONNPOOL_POOL_HPP
#define CONNPOOL_POOL_HPP

#include <connpool/detail/pool_core.hpp>
#include <connpool/error.hpp>
#include <connpool/factory.hpp>
#include <connpool/hooks.hpp>
#include <connpool/lease.hpp>
#include <connpool/options.hpp>
#include <connpool/stats.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/async_result.hpp>

#include <chrono>
#include <concepts>
#include <memory>
#include <source_location>
#include <type_traits>
#include <utility>
#include <vector>

namespace connpool {

// A thread-safe pool of connections made by Factory (see connpool/factory.hpp).
//
// Two faces share one FIFO queue of waiters: the blocking acquire() for thread-per-request
// code, and async_acquire() for Asio code. Idle connections are handed out most recently
// used first.
//
// Thread-safety: every member function may be called from any thread at once, except
// the destructor and move assignment.
//
// Lifetime: leases may outlive the pool. Destroying the pool closes it (waiters fail with
// pool_closed, idle connections close) and waits for its worker threads, so for up to
// connect_timeout when a blocking connect is in flight; a lease returned later closes its
// connection.
template <connection_factory Factory, class Clock = std::chrono::steady_clock>
class basic_pool {
    using core_type = detail::pool_core<Factory, Clock>;

public:
    using factory_type = Factory;
    using connection_type = typename Factory::connection_type;
    using clock_type = Clock;
    using lease_type = lease<connection_type, Clock>;
    using executor_type = asio::any_io_executor;

    // Background work (timers, async connects) runs on the pool's own worker threads. Use
    // this constructor for blocking-only programs. For async_acquire, the default
    // completion executor is then the pool's own: prefer the constructor with an executor.
    explicit basic_pool(Factory factory, options opts = {}, hooks h = {})
        : core_(std::make_shared<core_type>(std::nullopt, std::move(factory), std::move(opts), std::move(h))) {
        core_->start();
    }

    // Background work runs on ex (through a strand); blocking factory calls still run on
    // the pool's worker threads.
    basic_pool(executor_type ex, Factory factory, options opts = {}, hooks h = {})
        : core_(std::make_shared<core_type>(std::move(ex), std::move(factory), std::move(opts), std::move(h))) {
        core_->start();
    }

    template <class ExecutionContext>
        requires std::convertible_to<ExecutionContext&, asio::execution_context&>
    basic_pool(ExecutionContext& ctx, Factory factory, options opts = {}, hooks h = {})
        : basic_pool(executor_type(ctx.get_executor()), std::move(factory), std::move(opts), std::move(h)) {}

    basic_pool(const basic_pool&) = delete;
    basic_pool& operator=(const basic_pool&) = delete;
    basic_pool(basic_pool&&) noexcept = default;
    basic_pool& operator=(basic_pool&& other) noexcept {
        if (this != &other) {
            shut();
            core_ = std::move(other.core_);
        }
        return *this;
    }

    ~basic_pool() { shut(); }

    // Blocking acquire, waiting at most options::acquire_timeout.
    // Throws connpool::error (code + message) on failure: pool_closed, acquire_timeout,
    // connect_failed / connect_timeout (the database is unreachable: fails fast, before the
    // timeout), too_many_waiters. May ping the connection on this thread first
    // (options::validation). Never connects on this thread.
    lease_type acquire(std::source_location loc = std::source_location::current()) {
        return acquire_for(core_->opts().acquire_timeout, loc);
    }

    // As acquire(), with its own timeout.
    lease_type acquire_for(std::chrono::milliseconds timeout,
                           std::source_location loc = std::source_location::current()) {
        error_info e;
        lease_type l = core_->acquire(timeout, e, loc);
        if (!l) throw error(std::move(e));
        return l;
    }

    // Non-throwing forms: an empty lease and ec set on failure; diag gets the message.
    lease_type acquire(error_code& ec, std::source_location loc = std::source_location::current()) {
        error_info e;
        lease_type l = core_->acquire(core_->opts().acquire_timeout, e, loc);
        ec = e.code;
        return l;
    }

    lease_type acquire(error_code& ec, error_info& diag, std::source_location loc = std::source_location::current()) {
        lease_type l = core_->acquire(core_->opts().acquire_timeout, diag, loc);
        ec = diag.code;
        return l;
    }

    // Asynchronous acquire. Completion signature: void(error_code, lease_type).
    //
    // Executor: completes on the handler's associated executor (default: the pool's),
    // always through a post, never inline inside this call or inside another thread's
    // release. Waits at most options::acquire_timeout.
    // Cancellation: terminal, partial and total are honoured while the operation waits
    // in the queue, and complete it with errc::cancelled; a connect the operation caused
    // is never aborted and serves the next waiter instead. Once a connection has been
    // assigned, cancellation is ignored and the lease is delivered.
    // Errors: as acquire(). Use the overload with error_info& for the message.
    template <class Token = asio::default_completion_token_t<executor_type>>
        requires(!std::same_as<std::remove_cvref_t<Token>, error_info>)
    auto async_acquire(Token&& token = asio::default_completion_token_t<executor_type>{},
                       std::source_location loc = std::source_location::current()) {
        return initiate(std::forward<Token>(token), nullptr, loc);
    }

    // As above; diag receives the error's message. diag must outlive the operation.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_acquire(error_info& diag, Token&& token = asio::default_completion_token_t<executor_type>{},
                       std::source_location loc = std::source_location::current()) {
        return initiate(std::forward<Token>(token), &diag, loc);
    }

    // New acquires fail with pool_closed, waiters wake with pool_closed, idle connections
    // close now and leased ones when they come back. Idempotent.
    void close() { core_->close(); }

    // close(), then wait up to timeout for every lease to come back and every connection
    // to close. Returns true if all did.
    bool drain(std::chrono::milliseconds timeout) { return core_->drain(timeout); }

    // close(), then complete with an empty error_code when every connection is closed.
    // Signature void(error_code). Not cancellable.
    template <class Token = asio::default_completion_token_t<executor_type>>
    auto async_drain(Token&& token = asio::default_completion_token_t<executor_type>{}) {
        return asio::async_initiate<Token, void(error_code)>(
            [core = core_](auto handler) {
                core->async_drain(asio::any_completion_handler<void(error_code)>(std::move(handler)));
            },
            token);
    }

    // Every open connection is replaced: idle ones close now, leased ones on return, and
    // min_idle is topped up. For credential rotation and failover.
    void retire_all() { core_->retire_all(); }

    // Runtime resize. Throws std::invalid_argument naming the field when the value breaks
    // min_idle <= max_size, or max_size >= 1.
    void set_max_size(std::size_t n) { core_->set_max_size(n); }
    void set_min_idle(std::size_t n) { core_->set_min_idle(n); }

    pool_stats stats() const { return core_->stats(); }

    // The outstanding leases: where and when they were taken, and by which thread.
    std::vector<lease_info> leases() const { return core_->leases(); }

    const Factory& factory() const noexcept { return core_->factory(); }
    const options& get_options() const noexcept { return core_->opts(); }
    executor_type get_executor() const noexcept { return core_->get_executor(); }

private:
    template <class Token>
    auto initiate(Token&& token, error_info* diag, std::source_location loc) {
        return asio::async_initiate<Token, void(error_code, lease_type)>(
            [core = core_, diag, loc](auto handler) {
                // The handler's executor, with work counted, taken while its type is still
                // known: converting it after type erasure would allocate.
                executor_type work = asio::prefer(asio::get_associated_executor(handler, core->get_executor()),
                                                  asio::execution::outstanding_work.tracked);
                core->async_acquire(typename core_type::acquire_handler(std::move(handler)), std::move(work), diag,
                                    loc);
            },
            token);
    }

    void shut() noexcept {
        if (core_) {
            core_->shutdown();
            core_.reset();
        }
    }

    std::shared_ptr<core_type> core_;
};

template <connection_factory Factory>
using pool = basic_pool<Factory>;

}  // namespace connpool

#endif  // CONNPOOL_POOL_HPP
