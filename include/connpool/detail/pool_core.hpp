// connpool internals: the shell around the state machine. It owns the lock, the factory
// and the worker lanes, carries out the state machine's actions, and holds the one
// acquire path that the blocking and the async faces share.
//
// Lifetime: async waiters and lane tasks hold the core; a lease holds only its slot. The
// pool object's destructor (shutdown) waits for a return in progress (slot::in_return),
// and while connections are still out keepalive_ keeps the core, which frees itself when
// the last one closes. The core shares the housekeeper with the pool object, but shutdown
// stops its timer, so nothing bound to the user's io_context runs after the pool object is
// gone, and any destruction order is safe.
#ifndef CONNPOOL_DETAIL_POOL_CORE_HPP
#define CONNPOOL_DETAIL_POOL_CORE_HPP

#include <connpool/detail/actions.hpp>
#include <connpool/detail/handout.hpp>
#include <connpool/detail/housekeeper.hpp>
#include <connpool/detail/lanes.hpp>
#include <connpool/detail/pool_state.hpp>
#include <connpool/detail/report_hooks.hpp>
#include <connpool/error.hpp>
#include <connpool/factory.hpp>
#include <connpool/hooks.hpp>
#include <connpool/lease.hpp>
#include <connpool/options.hpp>

#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace connpool::detail {

inline std::uint64_t next_pool_id() noexcept {
    static std::atomic<std::uint64_t> ids{0};
    return ids.fetch_add(1, std::memory_order_relaxed) + 1;
}

template <class Factory, class Clock>
class pool_core final : public slot_owner, public std::enable_shared_from_this<pool_core<Factory, Clock>> {
public:
    using connection_type = typename Factory::connection_type;
    using slot_type = slot<connection_type>;
    using state_type = pool_state<connection_type>;
    using lease_type = lease<connection_type>;
    using housekeeper_type = housekeeper<Clock>;
    using clock_type = Clock;
    static constexpr bool can_ping = has_ping<Factory>;

    pool_core(Factory f, const options& o, hooks h, std::shared_ptr<housekeeper_type> hk)
        : factory_(std::move(f)),
          reporter_(std::move(h)),
          state_(o, this, std::random_device{}(), has_probe<Factory>),
          hk_(std::move(hk)),
          ex_(hk_->get_executor()),
          connect_lane_(o.worker_threads),
          maint_lane_(o.worker_threads) {}

    pool_core(const pool_core&) = delete;
    pool_core& operator=(const pool_core&) = delete;

    // Opens min_idle connections in the background and starts housekeeping.
    void start() {
        std::weak_ptr<pool_core> weak = this->shared_from_this();
        hk_->start([weak] {
            if (auto self = weak.lock()) self->on_timer();
        });
        // The first tick (min_idle's connects) runs on the executor, not inside the
        // constructor.
        asio::post(ex_, [weak] {
            if (auto self = weak.lock()) self->on_timer();
        });
    }

    static time_point now() noexcept { return internal_now<Clock>(); }
    const options& opts() const noexcept { return state_.opts(); }
    state_type& state() noexcept { return state_; }
    const Factory& factory() const noexcept { return factory_; }
    asio::any_io_executor get_executor() const noexcept { return ex_; }
    bool on_io_thread() const noexcept { return hk_ && hk_->on_io_thread(); }

    // ------------------------------------------------------------ the acquire path

    // This thread's hint: checked against the pool's id before it is followed, so a hint
    // left by a destroyed pool is never dereferenced.
    struct hint_entry {
        std::uint64_t pool_id = 0;
        slot_type* slot = nullptr;
    };
    static hint_entry& hint() noexcept {
        static thread_local hint_entry h;
        return h;
    }

    slot_type* lease_hint(std::uint64_t want_label = 0) noexcept {
        const hint_entry h = hint();
        if (h.pool_id != id_) return nullptr;
        return state_.lease_hint(h.slot, [] { return now(); }, want_label);
    }

    // Exact: the hash only found the candidate. The caller holds s, so its label (written
    // by its previous holder before the slot was published) is stable.
    bool carries(const slot_type& s, const label& want) const noexcept {
        return s.label_hash.load(std::memory_order_relaxed) == want.hash() && s.current_label == want;
    }

    // A labelled acquire found its settings on the connection (stats().label_hits).
    void note_label_hit(const label& want) noexcept {
        if (!want.empty()) state_.reports().label_hits.fetch_add(1, std::memory_order_relaxed);
    }

    // Before delivery: w's connection s gets the settings asked for (the empty label:
    // clean). True: it carries them (one load and a compare), deliver it. False: apply()
    // was started for w on the maintenance lane, where it is bounded by w's deadline and
    // w stays cancellable (pool_state::start_apply); w's completion comes with its result.
    bool settle_label(waiter_base& w, slot_type& s, const label& want) {
        if (carries(s, want)) {
            if (!w.applied) note_label_hit(want);
            return true;
        }
        if constexpr (has_apply<Factory>) {
            control([&](state_type& st, time_point, actions& a) { st.start_apply(w, s, want, a); });
            return false;
        } else {
            (void)w;
            return true;  // without apply() no connection ever carries a label
        }
    }

    // Step one for both faces, after the hint missed: served (w.result), queued, refused.
    admit_result admit(waiter_base& w) {
        actions a;
        admit_result r;
        {
            std::lock_guard lk(mutex_);
            r = state_.admit(w, now(), a);
        }
        run(a);
        return r;
    }

    // Step two for both faces: w holds a slot; judge it. True: deliver it now. False: w
    // is pending again (a ping runs, or the slot was closed and w queued anew), or done
    // with an error.
    bool check_handout(waiter_base& w) {
        if (w.validated) return true;  // just pinged for this waiter
        auto& s = *static_cast<slot_type*>(w.result);
        const auto t = now();
        handout_verdict v = judge_handout(state_type::facts_of(s, t), state_.facts(), opts(), has_ping<Factory>);
        if (v.kind == handout_kind::deliver) return true;
        actions a;
        bool deliver = false;
        {
            std::lock_guard lk(mutex_);
            deliver = state_.settle_handout(w, s, v, t, a);
        }
        run(a);
        return deliver;
    }

    // Before a blocking acquire parks: report the two waits that can only end in a
    // timeout, on an exhausted pool while this thread holds a lease of its own, and on
    // the pool's own io thread while an async connect needs that thread.
    void report_nested(const waiter_base& w) {
        std::vector<nested_acquire_event> found;
        if constexpr (has_async_connect<Factory>) {
            if (on_io_thread()) found.push_back(nested_acquire_event{w.site, {}, true});
        }
        if (opts().detect_nested_acquire) {
            std::lock_guard lk(mutex_);
            if (state_.exhausted()) {
                const auto t = coarse_now<Clock>();
                state_.slots().for_each([&](const slot_type& s) {
                    if (s.load() == slot_state::leased && s.holder.load(std::memory_order_relaxed) == w.thread) {
                        found.push_back(nested_acquire_event{w.site, reporting::info_of(s, t), false});
                    }
                });
            }
        }
        for (auto& n : found) reporter_.nested(n);
    }

    // A blocking waiter reached the starvation bound: it looks for the idle connections
    // that barging left, on its own thread, whatever any executor is doing.
    void waiter_starving() {
        control([](state_type& st, time_point t, actions& a) { st.waiter_starving(t, a); });
    }

    // The caller stops waiting: errc::cancelled or errc::acquire_timeout.
    void give_up(waiter_base& w, errc why) {
        actions a;
        {
            std::lock_guard lk(mutex_);
            state_.give_up(w, why, now(), a);
        }
        run(a);
    }

    // The lease's bookkeeping, on delivery. holder: the thread that asked; enqueued_at:
    // when it started waiting (default: it did not wait).
    lease_type begin_lease(slot_type& s, std::source_location loc, std::thread::id holder,
                           time_point enqueued_at = {}, time_point coarse = {}) noexcept {
        if (reporter_.wants_acquire_events()) [[unlikely]] {
            reporter_.acquired(loc, enqueued_at == time_point{} ? std::chrono::nanoseconds(0) : now() - enqueued_at);
        }
        s.leased_at.store(coarse == time_point{} ? coarse_now<Clock>() : coarse, std::memory_order_relaxed);
        if (state_.reports().measuring_use_time() &&
            s.acquires.load(std::memory_order_relaxed) % reporting::use_time_sample_every == 0) [[unlikely]] {
            s.timed_since.store(now(), std::memory_order_relaxed);
        }
        state_.lease_started(s, [] { return now(); });
        s.site.store(loc, std::memory_order_relaxed);
        s.holder.store(holder, std::memory_order_relaxed);
        s.leak_reported.store(false, std::memory_order_relaxed);
        s.skip_reset = false;
        s.count_acquire();
        if (holder == std::this_thread::get_id()) hint() = {id_, &s};
        return lease_access::make(&s);
    }

    // ------------------------------------------------------------ the return path

    void give_back(slot_base& base, bool discard) noexcept override {
        auto& s = static_cast<slot_type&>(base);
        const auto t = coarse_now<Clock>();
        // The hook runs before in_return is set: it may destroy the pool, whose shutdown
        // waits for in_return to clear, which it could not on this very stack. The slot
        // is still leased then, so the pool cannot drain and keeps the core alive.
        reporter_.returned(s, t);
        s.in_return.store(true, std::memory_order_relaxed);
        if (const auto since = s.timed_since.load(std::memory_order_relaxed); since != time_point{}) [[unlikely]] {
            s.use_time.record(now() - since, reporting::use_time_sample_every);
            s.timed_since.store(time_point{}, std::memory_order_relaxed);
        }
        s.holder.store(std::thread::id{}, std::memory_order_relaxed);
        const return_verdict v = judge_return(return_facts{discard, is_broken(s), wants_reset(s)},
                                              state_type::facts_of(s, t), state_.facts());
        s.last_used.store(t, std::memory_order_relaxed);
        s.recency.store(recency_of(t), std::memory_order_relaxed);
        if (v.kind == return_kind::keep) {
            switch (state_.return_to_idle(s, [] { return now(); })) {
            case publish_result::done:
                hint() = {id_, &s};
                return s.in_return.store(false, std::memory_order_release);
            case publish_result::serve:
                hint() = {id_, &s};
                return locked_step(s, [&](actions& a) { state_.serve_waiters(now(), a); });
            case publish_result::locked: break;
            }
            return locked_step(s, [&](actions& a) { state_.hand_over(s, now(), a); });
        }
        locked_step(s, [&](actions& a) { state_.return_unfit(s, v, now(), a); });
    }

    // ------------------------------------------------------------ control

    template <class F>
    void control(F&& f) {
        actions a;
        {
            std::lock_guard lk(mutex_);
            f(state_, now(), a);
        }
        run(a);
    }

    void close() {
        control([](state_type& st, time_point, actions& a) { st.close(a); });
        hk_->cancel();
    }

    // The pool object is going away. Close, stop the timer and the lanes (waiting at most
    // connect_timeout in all for factory calls in progress), and stay alive only while
    // connections are still out.
    void shutdown() {
        close();
        const auto until = std::chrono::steady_clock::now() + opts().connect_timeout;
        bool drain_pending = false;
        {
            std::lock_guard lk(mutex_);
            drain_pending = !drain_waiters_.empty();
        }
        // A pending async_drain() keeps the pool's own io thread busy until the last lease
        // comes back, which may be long after this: let that thread go at once then.
        hk_->stop(drain_pending ? std::chrono::steady_clock::now() : until);
        connect_lane_.stop(until);
        maint_lane_.stop(until);
        // A return that published its slot idle before close() claimed it may still be
        // reading the core: wait for it to let go (a handful of instructions).
        state_.slots().for_each([](const slot_type& s) {
            while (s.in_return.load(std::memory_order_acquire)) std::this_thread::yield();
        });
        std::lock_guard lk(mutex_);
        if (!state_.drained()) keepalive_ = this->shared_from_this();
    }

    bool drain(std::chrono::milliseconds timeout) {
        close();
        std::unique_lock lk(mutex_);
        const auto until = saturating_add(std::chrono::steady_clock::now(), timeout);
        if (until == time_point::max()) {
            drained_cv_.wait(lk, [&] { return state_.drained(); });
            return true;
        }
        return drained_cv_.wait_until(lk, until, [&] { return state_.drained(); });
    }

    // handler: completes on its own executor once every connection is closed.
    void async_drain(std::function<void()> done) {
        close();
        {
            std::lock_guard lk(mutex_);
            if (!state_.drained()) return drain_waiters_.push_back(std::move(done));
        }
        done();
    }

    pool_stats stats() {
        state_.reports().start_measuring_use_time();
        std::lock_guard lk(mutex_);
        return state_.snapshot(now());
    }

    std::vector<lease_info> leases() const {
        std::lock_guard lk(mutex_);
        return state_.leases(coarse_now<Clock>());
    }

    // ------------------------------------------------------------ carrying out actions

    // Completes a waiter whose outcome is written; the faces define it.
    using complete_fn = void (*)(pool_core&, waiter_base&) noexcept;
    void set_completer(complete_fn f) noexcept { completer_ = f; }

    void run(actions& a) noexcept;

    void arm(time_point t) {
        if (t != time_point::max()) hk_->request(t);
    }

private:
    // A lease holds no reference to the core: while s.in_return is set, the pool object's
    // destructor waits (shutdown). Carrying out the actions reads the core after the lock
    // is released, and they may close the last connection, after which the destructor no
    // longer keeps the core alive; so take a reference before letting the destructor go.
    // Not in_return through run(a): a completion or hook it runs may destroy the pool on
    // this thread, and shutdown would wait for us.
    template <class F>
    void locked_step(slot_type& s, F&& f) noexcept {
        actions a;
        {
            std::lock_guard lk(mutex_);
            f(a);
        }
        if (a.empty() && a.timer == time_point::max()) return s.in_return.store(false, std::memory_order_release);
        const auto hold = this->shared_from_this();
        s.in_return.store(false, std::memory_order_release);
        run(a);
    }

    void on_timer() noexcept {
        actions a;
        {
            std::lock_guard lk(mutex_);
            state_.tick(now(), a);
        }
        run(a);
    }

    bool is_broken(slot_type& s) const noexcept;
    bool wants_reset(slot_type& s) const noexcept;
    void launch_connect(slot_type& s) noexcept;
    void connected(slot_type& s, std::optional<connection_type> c, error_info e, time_point started) noexcept;
    void run_reset(slot_type& s, bool run) noexcept;
    void run_ping(slot_type& s, std::chrono::milliseconds timeout, bool run) noexcept;
    void run_apply(slot_type& s, const label& want, bool run) noexcept;
    void run_probe(slot_type& s) noexcept;
    void close_connection(slot_type& s, close_reason why, actions& next) noexcept;

    Factory factory_;
    reporter reporter_;
    state_type state_;
    std::shared_ptr<housekeeper_type> hk_;
    asio::any_io_executor ex_;
    worker_lane connect_lane_;
    worker_lane maint_lane_;
    const std::uint64_t id_ = next_pool_id();
    complete_fn completer_ = nullptr;

    mutable std::mutex mutex_;
    std::condition_variable drained_cv_;
    std::vector<std::function<void()>> drain_waiters_;
    std::shared_ptr<pool_core> keepalive_;
};

}  // namespace connpool::detail

#include <connpool/detail/pool_core_impl.hpp>

#endif  // CONNPOOL_DETAIL_POOL_CORE_HPP
