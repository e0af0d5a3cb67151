// connpool: the pool.
#ifndef CONNPOOL_POOL_HPP
#define CONNPOOL_POOL_HPP

#include <connpool/advisor.hpp>
#include <connpool/detail/async_face.hpp>
#include <connpool/detail/default_token.hpp>
#include <connpool/detail/pool_core.hpp>
#include <connpool/detail/sync_face.hpp>
#include <connpool/error.hpp>
#include <connpool/factory.hpp>
#include <connpool/hooks.hpp>
#include <connpool/label.hpp>
#include <connpool/lease.hpp>
#include <connpool/options.hpp>
#include <connpool/stats.hpp>
#include <connpool/tenants.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>

#include <chrono>
#include <concepts>
#include <memory>
#include <optional>
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
// Lifetime: leases may outlive the pool and its executor's context; a lease returned
// after the pool is gone closes its connection. The executor's context must outlive the
// pool object (Asio's rule for I/O objects).
template <connection_factory Factory, class Clock = std::chrono::steady_clock>
class basic_pool {
    using core_type = detail::pool_core<Factory, Clock>;
    using housekeeper_type = detail::housekeeper<Clock>;

public:
    // The factory type the pool was made with.
    using factory_type = Factory;
    // The factory's connection type.
    using connection_type = typename Factory::connection_type;
    // The clock of deadlines and timers (a manual clock in tests).
    using clock_type = Clock;
    // What acquire returns: a move-only handle that gives the connection back.
    using lease_type = lease<connection_type>;
    // The executor of the pool's timer and async completions.
    using executor_type = asio::any_io_executor;

    // Timers and async completions run on an internal io thread of the pool's own, and
    // blocking factory calls on its worker lanes. Use this constructor for blocking-only
    // programs; for async_acquire, prefer the constructor with an executor.
    explicit basic_pool(Factory factory, options opts = {}, hooks h = {})
        : basic_pool(std::nullopt, std::move(factory), std::move(opts), std::move(h)) {}

    // Timers and async connects run on ex. Lifetime rule (Asio's): ex's execution context
    // must outlive this pool object, not its leases. Leases may outlive both.
    basic_pool(executor_type ex, Factory factory, options opts = {}, hooks h = {})
        : basic_pool(std::optional<executor_type>(std::move(ex)), std::move(factory), std::move(opts), std::move(h)) {}

    // As basic_pool(ex, ...), with ex = ctx.get_executor().
    template <class ExecutionContext>
        requires std::convertible_to<ExecutionContext&, asio::execution_context&>
    basic_pool(ExecutionContext& ctx, Factory factory, options opts = {}, hooks h = {})
        : basic_pool(executor_type(ctx.get_executor()), std::move(factory), std::move(opts), std::move(h)) {}

    basic_pool(const basic_pool&) = delete;
    basic_pool& operator=(const basic_pool&) = delete;
    // Moves the pool.
    basic_pool(basic_pool&&) noexcept = default;
    // Shuts this pool down as its destructor does, then takes other's.
    basic_pool& operator=(basic_pool&& other) noexcept {
        if (this != &other) {
            shut();
            core_ = std::move(other.core_);
        }
        return *this;
    }

    // Closes the pool: waiters fail with pool_closed, idle connections close, leased ones
    // close when they come back. Waits for a factory call in progress for at most
    // connect_timeout, then lets it finish on its own. Safe on any thread, including
    // inside a completion handler or hook that the pool itself runs.
    ~basic_pool() { shut(); }

    // Blocking acquire, waiting at most options::acquire_timeout.
    // Throws connpool::error (code + message) on failure: pool_closed, acquire_timeout,
    // connect_failed / connect_timeout (the database is unreachable: fails fast, before
    // the timeout), too_many_waiters. A validation ping runs within the time left.
    // Never connects on this thread.
    lease_type acquire(std::source_location loc = std::source_location::current()) {
        return acquire_for(core_->opts().acquire_timeout, loc);
    }

    // As acquire(), with its own timeout; milliseconds::max() waits without limit.
    lease_type acquire_for(std::chrono::milliseconds timeout,
                           std::source_location loc = std::source_location::current()) {
        error_info e;
        lease_type l = detail::blocking_acquire(*core_, timeout, e, loc);
        if (!l) throw error(std::move(e));
        return l;
    }

    // For a tenant (tenants.hpp): counts against its quota and waits in its own FIFO
    // queue, served in proportion to its weight. Also fails with tenant_quota_exceeded
    // where its tenant_options::fail_at_quota says so. On a pool without tenants the
    // tenant is ignored; an unknown tenant is the default tenant.
    lease_type acquire(tenant_id t, std::source_location loc = std::source_location::current()) {
        return acquire_for(t, core_->opts().acquire_timeout, loc);
    }

    // As acquire(t), with a timeout of its own instead of options::acquire_timeout.
    lease_type acquire_for(tenant_id t, std::chrono::milliseconds timeout,
                           std::source_location loc = std::source_location::current()) {
        error_info e;
        lease_type l = detail::blocking_acquire(*core_, timeout, e, loc, t.value);
        if (!l) throw error(std::move(e));
        return l;
    }

    // As acquire_for(t, timeout), without throwing: on failure an empty lease and ec set.
    lease_type acquire_for(tenant_id t, std::chrono::milliseconds timeout, error_code& ec,
                           std::source_location loc = std::source_location::current()) {
        error_info e;
        lease_type l = detail::blocking_acquire(*core_, timeout, e, loc, t.value);
        ec = e.code;
        return l;
    }

    // With session settings (label.hpp): the connection handed out carries exactly want.
    // The pool prefers an idle connection that already carries it (no round trip), then a
    // clean one, then one with other settings, and has the factory's apply() move it. A
    // failing apply() closes that connection and the acquire goes on, within its timeout.
    // Needs a factory with apply(). The other acquires ask for the empty label: clean.
    lease_type acquire(const label& want, std::source_location loc = std::source_location::current())
        requires detail::has_apply<Factory>
    {
        return acquire_for(want, core_->opts().acquire_timeout, loc);
    }

    // As acquire(want), with a timeout of its own instead of options::acquire_timeout.
    lease_type acquire_for(const label& want, std::chrono::milliseconds timeout,
                           std::source_location loc = std::source_location::current())
        requires detail::has_apply<Factory>
    {
        error_info e;
        lease_type l = detail::blocking_acquire(*core_, timeout, e, loc, 0, want);
        if (!l) throw error(std::move(e));
        return l;
    }

    // As acquire_for(want, timeout), without throwing: on failure an empty lease and ec set.
    lease_type acquire_for(const label& want, std::chrono::milliseconds timeout, error_code& ec,
                           std::source_location loc = std::source_location::current())
        requires detail::has_apply<Factory>
    {
        return acquire_for(default_tenant, want, timeout, ec, loc);
    }

    // For tenant t and label want, with a timeout of its own, without throwing: on failure an
    // empty lease and ec set.
    lease_type acquire_for(tenant_id t, const label& want, std::chrono::milliseconds timeout, error_code& ec,
                           std::source_location loc = std::source_location::current())
        requires detail::has_apply<Factory>
    {
        error_info e;
        lease_type l = detail::blocking_acquire(*core_, timeout, e, loc, t.value, want);
        ec = e.code;
        return l;
    }

    // Non-throwing forms: an empty lease and ec set on failure; diag gets the message.
    lease_type acquire(error_code& ec, std::source_location loc = std::source_location::current()) {
        return acquire_for(core_->opts().acquire_timeout, ec, loc);
    }

    // As acquire(ec), and on failure diag.message names the cause.
    lease_type acquire(error_code& ec, error_info& diag, std::source_location loc = std::source_location::current()) {
        lease_type l = detail::blocking_acquire(*core_, core_->opts().acquire_timeout, diag, loc);
        ec = diag.code;
        return l;
    }

    // As acquire(ec), with a timeout of its own instead of options::acquire_timeout.
    lease_type acquire_for(std::chrono::milliseconds timeout, error_code& ec,
                           std::source_location loc = std::source_location::current()) {
        error_info e;
        lease_type l = detail::blocking_acquire(*core_, timeout, e, loc);
        ec = e.code;
        return l;
    }

    // Asynchronous acquire. Completion signature: void(error_code, lease_type).
    //
    // Executor: completes on the handler's associated executor (default: the pool's),
    // always through a post, never inline inside this call or inside another thread's
    // return. Waits at most options::acquire_timeout (async_acquire_for: its own).
    // Cancellation: terminal, partial and total are honoured until the lease is
    // delivered, also while a validation ping runs for it, and complete it with
    // errc::cancelled; a connect the operation caused is never aborted and serves the
    // next waiter instead. asio::cancel_after (Boost 1.86+) works through the same slot.
    // Errors: as acquire(). Use the overload with error_info& for the message.
    // Lifetime: the handler's executor must outlive the operation (Asio's rule).
    template <class Token = detail::default_token_t<executor_type>>
        requires(!std::same_as<std::remove_cvref_t<Token>, error_info> &&
                 !std::same_as<std::remove_cvref_t<Token>, tenant_id> &&
                 !std::same_as<std::remove_cvref_t<Token>, label>)
    auto async_acquire(Token&& token = detail::default_token_t<executor_type>{},
                       std::source_location loc = std::source_location::current()) {
        return initiate(std::forward<Token>(token), core_->opts().acquire_timeout, nullptr, loc);
    }

    // As async_acquire(), with session settings (see acquire(const label&)).
    template <class Token = detail::default_token_t<executor_type>>
        requires detail::has_apply<Factory>
    auto async_acquire(label want, Token&& token = detail::default_token_t<executor_type>{},
                       std::source_location loc = std::source_location::current()) {
        return initiate(std::forward<Token>(token), core_->opts().acquire_timeout, nullptr, loc, 0, std::move(want));
    }

    // As async_acquire(), for a tenant (see acquire(tenant_id)).
    template <class Token = detail::default_token_t<executor_type>>
    auto async_acquire(tenant_id t, Token&& token = detail::default_token_t<executor_type>{},
                       std::source_location loc = std::source_location::current()) {
        return initiate(std::forward<Token>(token), core_->opts().acquire_timeout, nullptr, loc, t.value);
    }

    // As async_acquire(t, token), with a timeout of its own instead of options::acquire_timeout.
    template <class Token = detail::default_token_t<executor_type>>
    auto async_acquire_for(tenant_id t, std::chrono::milliseconds timeout,
                           Token&& token = detail::default_token_t<executor_type>{},
                           std::source_location loc = std::source_location::current()) {
        return initiate(std::forward<Token>(token), timeout, nullptr, loc, t.value);
    }

    // As above; diag receives the error's message. diag must outlive the operation.
    template <class Token = detail::default_token_t<executor_type>>
    auto async_acquire(error_info& diag, Token&& token = detail::default_token_t<executor_type>{},
                       std::source_location loc = std::source_location::current()) {
        return initiate(std::forward<Token>(token), core_->opts().acquire_timeout, &diag, loc);
    }

    // As async_acquire(), with its own timeout (works on Boost 1.81, which has no
    // cancel_after); milliseconds::max() waits without limit.
    template <class Token = detail::default_token_t<executor_type>>
    auto async_acquire_for(std::chrono::milliseconds timeout,
                           Token&& token = detail::default_token_t<executor_type>{},
                           std::source_location loc = std::source_location::current()) {
        return initiate(std::forward<Token>(token), timeout, nullptr, loc);
    }

    // New acquires fail with pool_closed, waiters wake with pool_closed, idle connections
    // close now and leased ones when they come back. Idempotent.
    void close() { core_->close(); }

    // close(), then wait up to timeout for every lease to come back and every connection
    // to close. Returns true if all did.
    bool drain(std::chrono::milliseconds timeout) { return core_->drain(timeout); }

    // close(), then complete with an empty error_code when every connection is closed.
    // Signature void(error_code). Not cancellable. Keeps the handler's executor busy
    // until then, so ctx.run() does not return early.
    template <class Token = detail::default_token_t<executor_type>>
    auto async_drain(Token&& token = detail::default_token_t<executor_type>{}) {
        return asio::async_initiate<Token, void(error_code)>(
            [core = core_](auto handler) {
                auto work = asio::prefer(asio::get_associated_executor(handler, core->get_executor()),
                                         asio::execution::outstanding_work.tracked);
                auto h = std::make_shared<decltype(handler)>(std::move(handler));
                core->async_drain([h, work]() mutable {
                    asio::post(work, [h]() mutable { std::move(*h)(error_code{}); });
                });
            },
            token);
    }

    // Every open connection is replaced: idle ones close now, leased ones on return,
    // connects in flight when they complete, and min_idle is topped up. For credential
    // rotation and failover.
    void retire_all() {
        core_->control([](auto& st, auto now, auto& a) { st.retire_all(now, a); });
    }

    // Runtime resize. Validated exactly as the constructor validates options: throws
    // std::invalid_argument naming the field. Shrinking closes idle connections now and
    // leased ones as they come back, exactly as many as are too many.
    void set_max_size(std::size_t n) {
        core_->control([n](auto& st, auto now, auto& a) { st.set_max_size(n, now, a); });
    }
    // As set_max_size(n), for min_idle: validated as the constructor validates it.
    void set_min_idle(std::size_t n) {
        core_->control([n](auto& st, auto now, auto& a) { st.set_min_idle(n, now, a); });
    }

    // Tenants at runtime. The first add_tenant() turns tenants on for good (acquires then
    // take the lock: see docs/tenants.md); id 0 is the default tenant, which exists from
    // then on and can be re-configured but not removed. Invalid options, a duplicate add,
    // or a set/remove of an unknown id throw std::invalid_argument naming the field.
    // remove_tenant(): its waiters move to the default tenant; its leases count against
    // it until they come back.
    void add_tenant(tenant_id t, tenant_options o) {
        core_->control([&](auto& st, auto now, auto& a) { st.add_tenant(t, o, now, a); });
    }
    // Re-configures tenant t (see above).
    void set_tenant(tenant_id t, tenant_options o) {
        core_->control([&](auto& st, auto now, auto& a) { st.set_tenant(t, o, now, a); });
    }
    // Removes tenant t (see above).
    void remove_tenant(tenant_id t) {
        core_->control([&](auto& st, auto now, auto& a) { st.remove_tenant(t, now, a); });
    }

    // A snapshot. The first call also turns on use-time measuring (pool_stats::use_time).
    pool_stats stats() const { return core_->stats(); }

    // Sizing advice from this pool's own stats: a recommended max_size with its reason and the
    // budget headroom (advisor.hpp). The advisor keeps the recent window; call this periodically.
    advice advise(advisor& a) const { return a.observe(stats(), detail::internal_now<Clock>()); }

    // The outstanding leases: where and when they were taken, and by which thread.
    std::vector<lease_info> leases() const { return core_->leases(); }

    // The factory, as given to the constructor.
    const Factory& factory() const noexcept { return core_->factory(); }
    // The options in force (set_max_size() and set_min_idle() change them).
    const options& get_options() const noexcept { return core_->opts(); }
    // The executor of the pool's timer and async completions (the internal io thread's when none was given).
    executor_type get_executor() const noexcept { return core_->get_executor(); }

private:
    basic_pool(std::optional<executor_type> ex, Factory factory, options opts, hooks h) {
        validate(opts);
        hk_ = std::make_shared<housekeeper_type>(std::move(ex));
        core_ = std::make_shared<core_type>(std::move(factory), opts, std::move(h), hk_);
        core_->set_completer(&detail::complete_waiter<core_type>);
        core_->start();
    }

    template <class Token>
    auto initiate(Token&& token, std::chrono::milliseconds timeout, error_info* diag, std::source_location loc,
                  std::uint32_t tenant = 0, label want = {}) {
        return asio::async_initiate<Token, void(error_code, lease_type)>(
            [core = core_, timeout, diag, loc, tenant, want = std::move(want)](auto handler) mutable {
                // The handler's executor, with work counted, taken while its type is still
                // known: converting it after type erasure would allocate.
                executor_type work = asio::prefer(asio::get_associated_executor(handler, core->get_executor()),
                                                  asio::execution::outstanding_work.tracked);
                detail::async_acquire<core_type>(
                    core, typename detail::async_waiter<core_type>::handler_type(std::move(handler)),
                    std::move(work), timeout, diag, loc, tenant, std::move(want));
            },
            token);
    }

    void shut() noexcept {
        if (core_) {
            core_->shutdown();
            core_.reset();
            hk_.reset();
        }
    }

    std::shared_ptr<housekeeper_type> hk_;
    std::shared_ptr<core_type> core_;
};

template <connection_factory Factory>
using pool = basic_pool<Factory>;

}  // namespace connpool

#endif  // CONNPOOL_POOL_HPP
