// connpool internals: the shared state of a pool, its fast paths and its slow paths.
//
// Layout of the work:
// - acquire fast path: this thread's hint slot, claimed with one CAS (no lock, no shared
//   write) when nobody waits;
// - return fast path: one CAS back to idle, unless somebody waits, the connection needs a
//   reset, is broken, expired or the pool closed;
// - everything else takes the lock for a few instructions (queue and counters), and does
//   I/O, hooks and completions after letting go of it (a `batch`).
#ifndef CONNPOOL_DETAIL_POOL_CORE_HPP
#define CONNPOOL_DETAIL_POOL_CORE_HPP

#include <connpool/detail/clock.hpp>
#include <connpool/detail/decisions.hpp>
#include <connpool/detail/histogram.hpp>
#include <connpool/detail/slot.hpp>
#include <connpool/detail/waiter.hpp>
#include <connpool/error.hpp>
#include <connpool/factory.hpp>
#include <connpool/hooks.hpp>
#include <connpool/lease.hpp>
#include <connpool/options.hpp>
#include <connpool/stats.hpp>

#include <boost/asio/any_completion_executor.hpp>
#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/recycling_allocator.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace connpool::detail {

namespace asio = boost::asio;

// Timers of a clock other than steady_clock (the tests' manual clock) cannot be slept
// on: the reactor wakes every millisecond to look at the clock again.
template <class Clock>
struct pool_wait_traits {
    static typename Clock::duration to_wait_duration(const typename Clock::duration& d) {
        if constexpr (std::is_same_v<Clock, std::chrono::steady_clock> ||
                      std::is_same_v<Clock, std::chrono::system_clock>) {
            return d;
        } else {
            return std::min<typename Clock::duration>(d, std::chrono::milliseconds(1));
        }
    }
    static typename Clock::duration to_wait_duration(const typename Clock::time_point& t) {
        return to_wait_duration(t - Clock::now());
    }
};

inline std::uint64_t next_pool_id() noexcept {
    static std::atomic<std::uint64_t> ids{0};
    return ids.fetch_add(1, std::memory_order_relaxed) + 1;
}

inline std::string seconds_text(std::chrono::nanoseconds d) {
    std::ostringstream os;
    os.setf(std::ios::fixed);
    os.precision(1);
    os << std::chrono::duration<double>(d).count() << " s";
    return os.str();
}

template <class Factory, class Clock>
class pool_core final : public slot_owner<typename Factory::connection_type, Clock>,
                        public std::enable_shared_from_this<pool_core<Factory, Clock>> {
public:
    using connection_type = typename Factory::connection_type;
    using slot_type = slot<connection_type, Clock>;
    using lease_type = lease<connection_type, Clock>;
    using time_point = typename Clock::time_point;
    using executor_type = asio::any_io_executor;
    using acquire_signature = void(error_code, lease_type);
    using acquire_handler = asio::any_completion_handler<acquire_signature>;

    pool_core(std::optional<executor_type> ex, Factory f, options o, hooks h)
        : factory_(std::move(f)),
          opts_((validate(o), o)),
          hooks_(std::move(h)),
          workers_(o.worker_threads),
          ex_(ex ? *ex : executor_type(workers_.get_executor())),
          strand_(asio::make_strand(ex_)),
          timer_(strand_),
          max_size_(o.max_size),
          min_idle_(o.min_idle),
          rng_(std::random_device{}()) {}

    pool_core(const pool_core&) = delete;
    pool_core& operator=(const pool_core&) = delete;

    ~pool_core() = default;

    // Opens min_idle connections in the background and starts housekeeping.
    void start() {
        batch b;
        {
            std::lock_guard lk(mutex_);
            plan_connects(b, Clock::now());
        }
        finish(b);
        post_internal([self = this->shared_from_this()] { self->on_timer({}); });
    }

    // ------------------------------------------------------------------ acquire

    lease_type acquire(std::chrono::milliseconds timeout, error_info& err, std::source_location loc) {
        err.clear();
        std::optional<time_point> deadline;  // read the precise clock only off the fast path
        bool front = false;
        for (;;) {
            std::chrono::nanoseconds waited{};
            slot_type* s = claim_hint();
            if (s == nullptr) {
                if (!deadline) deadline = Clock::now() + timeout;
                s = acquire_slow(*deadline, timeout, err, loc, front, waited);
                if (s == nullptr) return {};
            }
            const auto now = coarse_now<Clock>();
            if (auto why = unusable(*s, now)) {
                close_claimed(*s, *why);
                continue;
            }
            if (needs_ping(*s, now) && !ping(*s)) {
                close_claimed(*s, close_reason::validation_failed);
                front = true;  // the caller keeps its place in line
                continue;
            }
            return begin_lease(*s, now, loc, waited);
        }
    }

    // work: the handler's associated executor with outstanding work tracked, taken before
    // the handler was type-erased (as an any_io_executor it costs no allocation).
    void async_acquire(acquire_handler handler, executor_type work, error_info* diag, std::source_location loc) {
        // Asio's per-thread recycling allocator: steady-state async acquires do not hit malloc
        // for their waiter.
        auto w = std::allocate_shared<async_waiter>(asio::recycling_allocator<async_waiter>(),
                                                    this->shared_from_this(), std::move(handler), std::move(work),
                                                    diag);
        w->site = loc;
        auto slot = asio::get_associated_cancellation_slot(w->handler);
        if (slot.is_connected()) {
            std::weak_ptr<async_waiter> weak = w;
            slot.assign([weak](asio::cancellation_type) {
                if (auto sw = weak.lock()) sw->core->cancel(*sw);
            });
        }
        const auto now = Clock::now();
        w->deadline = now + opts_.acquire_timeout;
        w->enqueued_at = now;
        enqueue_async(std::move(w), false);
    }

    // ------------------------------------------------------------------ return

    void give_back(slot_type& s, bool discard) noexcept override {
        const auto now = coarse_now<Clock>();
        if (hooks_.on_return) [[unlikely]] {
            report([&] {
                hooks_.on_return(return_event{s.site.load(std::memory_order_relaxed), now - s.leased_since()});
            });
        }
        // A slot handed straight to a waiter belongs to nobody until the waiter's
        // begin_lease(); nested-acquire detection must not blame this thread for it.
        s.holder.store(std::thread::id{}, std::memory_order_relaxed);
        if (discard) return close_claimed(s, close_reason::discarded);
        if (auto why = unusable(s, now)) return close_claimed(s, *why);
        if (is_broken(s)) return close_claimed(s, close_reason::broken);
        s.last_used.store(now.time_since_epoch(), std::memory_order_relaxed);
        s.recency.store(recency_stamp(), std::memory_order_relaxed);
        if (wants_reset(s)) return start_reset(s);
        if (waiting_.load(std::memory_order_relaxed) != 0) return hand_over(s);
        slot_state expected = slot_state::leased;
        if (!s.state.compare_exchange_strong(expected, slot_state::idle, std::memory_order_seq_cst)) {
            return close_claimed(s, close_reason::pool_closed);  // close() orphaned it
        }
        hint() = {id_, &s};
        // A waiter that enqueued after our first look must not sleep next to an idle slot:
        // it counts itself in before it scans, we publish idle before we look again.
        if (waiting_.load(std::memory_order_seq_cst) != 0) serve_waiters();
    }

    // ------------------------------------------------------------------ lifecycle

    void close() {
        batch b;
        {
            std::lock_guard lk(mutex_);
            close_locked(b);
        }
        finish(b);
    }

    // The pool object is going away: close, stop background work, and keep the shared
    // state alive only while leases are still out.
    void shutdown() {
        close();
        {
            std::lock_guard lk(post_mutex_);
            posts_open_ = false;
        }
        workers_.join();
        std::lock_guard lk(mutex_);
        if (open_ + connecting_ > 0) keepalive_ = this->shared_from_this();
    }

    bool drain(std::chrono::milliseconds timeout) {
        close();
        std::unique_lock lk(mutex_);
        return drained_cv_.wait_for(lk, timeout, [&] { return open_ + connecting_ == 0; });
    }

    void async_drain(asio::any_completion_handler<void(error_code)> handler) {
        close();
        std::unique_lock lk(mutex_);
        if (open_ + connecting_ == 0) {
            lk.unlock();
            complete_drain(std::move(handler));
            return;
        }
        drain_handlers_.push_back(std::move(handler));
    }

    void retire_all() {
        batch b;
        {
            std::lock_guard lk(mutex_);
            generation_.fetch_add(1, std::memory_order_relaxed);
            slots_.for_each([&](slot_type& s) { claim_idle_for_close(s, close_reason::retired, b); });
            plan_connects(b, Clock::now());
        }
        finish(b);
    }

    void set_max_size(std::size_t n) {
        if (n == 0) invalid_option("max_size", "0", "must be at least 1");
        batch b;
        {
            std::lock_guard lk(mutex_);
            if (n < min_idle_) invalid_option("max_size", std::to_string(n), "must be at least min_idle");
            max_size_ = n;
            shrink_to_fit(b);
            plan_connects(b, Clock::now());
        }
        finish(b);
    }

    void set_min_idle(std::size_t n) {
        batch b;
        {
            std::lock_guard lk(mutex_);
            if (n > max_size_) invalid_option("min_idle", std::to_string(n), "must not exceed max_size");
            min_idle_ = n;
            plan_connects(b, Clock::now());
        }
        finish(b);
    }

    // ------------------------------------------------------------------ observability

    pool_stats stats() const {
        std::lock_guard lk(mutex_);
        pool_stats st;
        std::uint64_t live_acquires = 0;
        slots_.for_each([&](slot_type& s) {
            const auto state = s.state.load(std::memory_order_relaxed);
            if (counts_as_idle(state)) ++st.idle;
            if (state == slot_state::leased || state == slot_state::orphaned) ++st.in_use;
            live_acquires += s.acquires.load(std::memory_order_relaxed);
        });
        st.open = open_;
        st.creating = connecting_;
        st.waiting = waiters_.size();
        st.max_size = max_size_;
        st.min_idle = min_idle_;
        st.acquired = acquired_closed_ + live_acquires;
        st.waited = waited_;
        st.created = created_;
        st.connect_failures = connect_failures_;
        st.timeouts = timeouts_;
        st.cancelled = cancelled_;
        st.rejected = rejected_;
        st.fast_failed = fast_failed_;
        st.leaks_reported = leaks_reported_;
        st.closed = closed_by_;
        const std::uint64_t zeros = st.acquired > waited_ ? st.acquired - waited_ : 0;
        st.wait_p50 = waits_.quantile(0.50, zeros);
        st.wait_p99 = waits_.quantile(0.99, zeros);
        st.wait_max = waits_.max();
        st.last_connect_error = last_error_.message;
        return st;
    }

    std::vector<lease_info> leases() const {
        std::lock_guard lk(mutex_);
        std::vector<lease_info> out;
        const auto now = coarse_now<Clock>();
        slots_.for_each([&](slot_type& s) {
            auto st = s.state.load(std::memory_order_relaxed);
            if (st == slot_state::leased || st == slot_state::orphaned) out.push_back(info_of(s, now));
        });
        return out;
    }

    const Factory& factory() const noexcept { return factory_; }
    executor_type get_executor() const noexcept { return ex_; }
    const options& opts() const noexcept { return opts_; }

private:
    using sync_waiter_base = waiter<slot_type, time_point>;

    struct sync_waiter : sync_waiter_base {
        parking_spot spot;
    };

    struct async_waiter : sync_waiter_base {
        async_waiter(std::shared_ptr<pool_core> c, acquire_handler h, executor_type w, error_info* d)
            : core(std::move(c)), handler(std::move(h)), diag(d), work(std::move(w)) {
            this->is_async = true;
        }
        std::shared_ptr<pool_core> core;
        acquire_handler handler;
        error_info* diag;
        executor_type work;  // the handler's executor, kept from running out of work
        std::shared_ptr<async_waiter> self;  // set while the pool owes it a completion
    };

    // What a locked section leaves to do after the lock is released.
    struct batch {
        sync_waiter_base* done_head = nullptr;
        sync_waiter_base* done_tail = nullptr;
        std::vector<std::pair<slot_type*, close_reason>> closes;
        std::vector<slot_type*> connects;
        std::vector<slot_type*> probes;  // idle slots claimed (busy) for a probe
        std::vector<lease_info> leaks;
        std::vector<nested_acquire_event> nested;
        std::vector<asio::any_completion_handler<void(error_code)>> drained;

        // Chains w through its (now unused) queue links: no allocation.
        void complete(sync_waiter_base* w) noexcept {
            w->next = nullptr;
            (done_tail ? done_tail->next : done_head) = w;
            done_tail = w;
        }
        bool empty() const noexcept {
            return done_head == nullptr && closes.empty() && connects.empty() && probes.empty() &&
                   leaks.empty() && nested.empty() && drained.empty();
        }
    };

    struct hint_entry {
        std::uint64_t pool_id = 0;
        slot_type* slot = nullptr;
    };

    // One entry per thread and pool type: a hint, checked against the pool's id before
    // it is dereferenced, so a hint left by a destroyed pool is never followed.
    static hint_entry& hint() noexcept {
        static thread_local hint_entry h;
        return h;
    }

    // ------------------------------------------------------------------ acquire internals

    slot_type* claim_hint() noexcept {
        if (waiting_.load(std::memory_order_relaxed) != 0 || closed_.load(std::memory_order_relaxed)) {
            return nullptr;
        }
        const hint_entry h = hint();
        if (h.pool_id != id_) return nullptr;
        slot_state expected = slot_state::idle;
        if (!h.slot->state.compare_exchange_strong(expected, slot_state::leased, std::memory_order_acquire,
                                                   std::memory_order_relaxed)) {
            return nullptr;
        }
        return h.slot;
    }

    // Takes the most recently used idle slot (LIFO keeps backends warm and lets the
    // surplus reach its idle timeout). The hint path can race us; the CAS decides.
    slot_type* claim_idle() noexcept {
        for (;;) {
            slot_type* best = nullptr;
            std::uint64_t best_used = 0;
            slots_.for_each([&](slot_type& s) {
                if (s.state.load(std::memory_order_seq_cst) != slot_state::idle) return;
                const auto used = s.recency.load(std::memory_order_relaxed);
                if (best == nullptr || used > best_used) {
                    best = &s;
                    best_used = used;
                }
            });
            if (best == nullptr) return nullptr;
            slot_state expected = slot_state::idle;
            if (best->state.compare_exchange_strong(expected, slot_state::leased, std::memory_order_acquire,
                                                    std::memory_order_relaxed)) {
                return best;
            }
        }
    }

    // Under the lock. Returns a claimed slot when w can be served without queueing.
    // Otherwise w is queued, or refused (w.error set), or queued and served at once by
    // serve_locked() (w.result set, w already in b).
    slot_type* enter_queue(sync_waiter_base& w, time_point now, bool front, batch& b) {
        if (closed_.load(std::memory_order_relaxed)) {
            fail(w, errc::pool_closed, "pool closed");
            return nullptr;
        }
        // Nobody waits, so taking an idle slot jumps no queue.
        if (waiters_.empty()) {
            if (slot_type* s = claim_idle()) return s;
        }
        if (opts_.max_waiters != 0 && waiters_.size() >= opts_.max_waiters) {
            ++rejected_;
            fail(w, errc::too_many_waiters,
                 "too many waiters: " + std::to_string(waiters_.size()) + " callers already waiting (max_waiters = " +
                     std::to_string(opts_.max_waiters) + ")");
            return nullptr;
        }
        if (fail_fast(now)) {
            ++fast_failed_;
            fail(w, last_error_.code, last_error_.message + " (the pool retries in " +
                                          std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                                             backoff_until_ - now)
                                                             .count()) +
                                          " ms)");
            return nullptr;
        }
        front ? waiters_.push_front(w) : waiters_.push_back(w);
        waiting_.store(waiters_.size(), std::memory_order_seq_cst);
        // An idle slot published by a return that saw no waiter yet.
        serve_locked(b, now);
        plan_connects(b, now);
        return nullptr;
    }

    // While no connection exists or is being made, and the last connect failed recently,
    // waiting could only end in a timeout: say why now instead.
    bool fail_fast(time_point now) const noexcept {
        return last_error_ && open_ == 0 && connecting_ == 0 && now < backoff_until_;
    }

    slot_type* acquire_slow(time_point deadline, std::chrono::milliseconds timeout, error_info& err,
                            std::source_location loc, bool front, std::chrono::nanoseconds& waited) {
        sync_waiter w;
        const auto now = Clock::now();
        w.deadline = deadline;
        w.enqueued_at = now;
        w.site = loc;
        batch b;
        slot_type* claimed = nullptr;
        bool queued = false;  // w.queued may only be read under the lock
        {
            std::lock_guard lk(mutex_);
            claimed = enter_queue(w, now, front, b);
            queued = w.queued;
            if (queued) {
                if constexpr (!std::is_same_v<Clock, std::chrono::steady_clock>) request_timer(deadline);
                // Only an exhausted pool can deadlock: a growing one will serve us.
                if (opts_.detect_nested_acquire && open_ + connecting_ >= max_size_ &&
                    waiters_.size() > connecting_) {
                    find_nested(w, b);
                }
            }
        }
        finish(b);
        if (claimed != nullptr) return claimed;
        // Not queued and not served by enter_queue's own serve_locked(): refused at once
        // (closed, too many waiters, or failing fast). w.result was written by this thread.
        if (!queued && w.result == nullptr) {
            err = std::move(w.error);
            return nullptr;
        }
        bool notified;
        if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
            notified = w.spot.wait_until(deadline);
        } else {
            w.spot.wait();
            notified = true;
        }
        if (!notified) {
            std::unique_lock lk(mutex_);
            if (w.queued) {
                expire(w, timeout);
                lk.unlock();
                err = std::move(w.error);
                return nullptr;
            }
            lk.unlock();
            w.spot.wait();  // somebody dequeued us and is completing us right now
        }
        if (w.result == nullptr) {
            err = std::move(w.error);
            return nullptr;
        }
        waited = Clock::now() - w.enqueued_at;
        return w.result;
    }

    lease_type begin_lease(slot_type& s, time_point now, std::source_location loc, std::chrono::nanoseconds waited) {
        s.leased_at.store(now.time_since_epoch(), std::memory_order_relaxed);
        s.site.store(loc, std::memory_order_relaxed);
        s.holder.store(std::this_thread::get_id(), std::memory_order_relaxed);
        s.leak_reported.store(false, std::memory_order_relaxed);
        s.skip_reset = false;
        s.count_acquire();
        if (hooks_.on_acquire) [[unlikely]] {
            report([&] { hooks_.on_acquire(acquire_event{loc, waited}); });
        }
        return lease_access::make(&s);
    }

    // ------------------------------------------------------------------ checks on a held slot

    std::optional<close_reason> unusable(const slot_type& s, time_point now) const noexcept {
        if (closed_.load(std::memory_order_relaxed)) return close_reason::pool_closed;
        if (now >= s.expires_at) return close_reason::lifetime;
        if (s.generation != generation_.load(std::memory_order_relaxed)) return close_reason::retired;
        if (over_capacity_.load(std::memory_order_relaxed)) [[unlikely]] {
            std::lock_guard lk(mutex_);
            if (open_ > max_size_) return close_reason::resized;
        }
        return std::nullopt;
    }

    bool needs_ping(const slot_type& s, time_point now) const noexcept {
        if constexpr (!has_ping<Factory>) {
            return false;
        } else {
            const auto idle_for = now - s.last_used_at();
            // A connection that was just opened and never leased proved itself by connecting.
            if (s.acquires.load(std::memory_order_relaxed) == 0 && idle_for < opts_.validation_idle_threshold) {
                return false;
            }
            return needs_validation(opts_.validation, idle_for, opts_.validation_idle_threshold);
        }
    }

    bool ping(slot_type& s) noexcept {
        if constexpr (has_ping<Factory>) {
            try {
                error_info e;
                return factory_.ping(*s.conn, opts_.ping_timeout, e);
            } catch (...) {
                return false;
            }
        } else {
            return true;
        }
    }

    bool is_broken(const slot_type& s) const noexcept {
        if constexpr (has_is_broken<Factory>) {
            try {
                return factory_.is_broken(*s.conn);
            } catch (...) {
                return true;
            }
        } else {
            return false;
        }
    }

    bool wants_reset(const slot_type& s) const noexcept {
        if constexpr (!has_reset<Factory>) {
            return false;
        } else {
            if (!opts_.reset_on_return || s.skip_reset) return false;
            if constexpr (has_needs_reset<Factory>) {
                try {
                    return factory_.needs_reset(*s.conn);
                } catch (...) {
                    return true;
                }
            }
            return true;
        }
    }

    // ------------------------------------------------------------------ return internals

    // The connection is good: give it to the oldest waiter, or make it idle.
    void hand_over(slot_type& s) noexcept {
        batch b;
        {
            std::lock_guard lk(mutex_);
            if (closed_.load(std::memory_order_relaxed)) {
                s.state.store(slot_state::busy, std::memory_order_relaxed);
                b.closes.emplace_back(&s, close_reason::pool_closed);
            } else if (auto* w = waiters_.pop_front()) {
                s.state.store(slot_state::leased, std::memory_order_relaxed);
                serve(*w, s, Clock::now(), b);
            } else {
                s.state.store(slot_state::idle, std::memory_order_seq_cst);
            }
        }
        finish(b);
    }

    void serve_waiters() noexcept {
        batch b;
        {
            std::lock_guard lk(mutex_);
            serve_locked(b, Clock::now());
        }
        finish(b);
    }

    // Under the lock: idle slots go to the oldest waiters.
    void serve_locked(batch& b, time_point now) {
        while (!waiters_.empty()) {
            slot_type* s = claim_idle();
            if (s == nullptr) break;
            serve(*waiters_.pop_front(), *s, now, b);
        }
    }

    // Under the lock, w already dequeued.
    void serve(sync_waiter_base& w, slot_type& s, time_point now, batch& b) {
        waiting_.store(waiters_.size(), std::memory_order_relaxed);
        w.result = &s;
        ++waited_;
        waits_.record(now - w.enqueued_at);
        b.complete(&w);
    }

    void fail(sync_waiter_base& w, error_code code, std::string message) {
        w.result = nullptr;
        w.error = error_info{code, std::move(message)};
    }

    // Under the lock: w's deadline passed while it was queued.
    void expire(sync_waiter_base& w, std::chrono::nanoseconds timeout) {
        waiters_.remove(w);
        waiting_.store(waiters_.size(), std::memory_order_relaxed);
        ++timeouts_;
        fail(w, errc::acquire_timeout, timeout_message(timeout));
    }

    std::string timeout_message(std::chrono::nanoseconds timeout) const {
        std::size_t idle = 0, in_use = 0;
        const slot_type* oldest = nullptr;
        slots_.for_each([&](slot_type& s) {
            auto st = s.state.load(std::memory_order_relaxed);
            if (counts_as_idle(st)) ++idle;
            if (st == slot_state::leased || st == slot_state::orphaned) {
                ++in_use;
                if (oldest == nullptr || s.leased_since() < oldest->leased_since()) oldest = &s;
            }
        });
        std::string m = "acquire timed out after " +
                        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                        " ms: pool exhausted (" + std::to_string(in_use) + "/" + std::to_string(max_size_) +
                        " in use, " + std::to_string(idle) + " idle, " + std::to_string(waiters_.size() + 1) +
                        " waiting, " + std::to_string(connecting_) + " connecting)";
        if (oldest != nullptr) {
            m += "; oldest lease held " + seconds_text(coarse_now<Clock>() - oldest->leased_since()) +
                 ", taken at " + to_string(oldest->site.load(std::memory_order_relaxed));
        }
        if (last_error_) m += "; last connect error: " + last_error_.message;
        return m;
    }

    void start_reset(slot_type& s) noexcept {
        s.state.store(slot_state::busy, std::memory_order_relaxed);
        bool posted = post_worker([self = this->shared_from_this(), &s] { self->run_reset(s); });
        if (!posted) close_claimed(s, close_reason::pool_closed);
    }

    void run_reset(slot_type& s) noexcept {
        if constexpr (has_reset<Factory>) {
            bool ok = false;
            try {
                error_info e;
                ok = factory_.reset(*s.conn, e);
            } catch (...) {
                ok = false;
            }
            if (!ok) return close_claimed(s, close_reason::reset_failed);
        }
        hand_over(s);
    }

    // ------------------------------------------------------------------ closing

    // s is held by the caller (leased, orphaned or busy): close its connection.
    void close_claimed(slot_type& s, close_reason why) noexcept {
        s.state.store(slot_state::busy, std::memory_order_relaxed);
        batch b;
        b.closes.emplace_back(&s, why);
        finish(b);
    }

    // Under the lock: an idle slot is claimed for closing, or left alone if someone won it.
    bool claim_idle_for_close(slot_type& s, close_reason why, batch& b) {
        slot_state expected = slot_state::idle;
        if (!s.state.compare_exchange_strong(expected, slot_state::busy, std::memory_order_acquire,
                                             std::memory_order_relaxed)) {
            return false;
        }
        b.closes.emplace_back(&s, why);
        return true;
    }

    void close_locked(batch& b) {
        if (closed_.exchange(true, std::memory_order_seq_cst)) return;
        while (auto* w = waiters_.pop_front()) {
            fail(*w, errc::pool_closed, "pool closed");
            b.complete(w);
        }
        waiting_.store(0, std::memory_order_relaxed);
        slots_.for_each([&](slot_type& s) {
            for (;;) {
                if (claim_idle_for_close(s, close_reason::pool_closed, b)) return;
                slot_state expected = slot_state::leased;
                if (s.state.compare_exchange_strong(expected, slot_state::orphaned)) return;
                // empty, connecting, busy, probing: whoever holds it sees closed_ and closes it
                if (expected != slot_state::idle) return;
            }
        });
        post_internal([self = this->shared_from_this()] { self->timer_.cancel(); });
        notify_if_drained(b);
    }

    void shrink_to_fit(batch& b) {
        std::size_t excess = open_ > max_size_ ? open_ - max_size_ : 0;
        slots_.for_each([&](slot_type& s) {
            if (excess > 0 && claim_idle_for_close(s, close_reason::resized, b)) --excess;
        });
        // Leased connections over the new size close when they come back.
        over_capacity_.store(open_ > max_size_, std::memory_order_relaxed);
    }

    // Under the lock, when a slot finished closing.
    void closed_one(slot_type& s, close_reason why, batch& b) {
        acquired_closed_ += s.acquires.exchange(0, std::memory_order_relaxed);
        s.generation = 0;
        s.expires_at = time_point::max();
        s.state.store(slot_state::empty, std::memory_order_release);
        --open_;
        ++closed_by_[static_cast<std::size_t>(why)];
        over_capacity_.store(open_ > max_size_, std::memory_order_relaxed);
        plan_connects(b, Clock::now());
        serve_locked(b, Clock::now());
        notify_if_drained(b);
    }

    void notify_if_drained(batch& b) {
        if (!closed_.load(std::memory_order_relaxed) || open_ + connecting_ != 0) return;
        drained_cv_.notify_all();
        for (auto& h : drain_handlers_) b.drained.push_back(std::move(h));
        drain_handlers_.clear();
    }

    void complete_drain(asio::any_completion_handler<void(error_code)> h) {
        auto ex = asio::get_associated_executor(h, ex_);
        post_completion(ex, [h = std::move(h)]() mutable { std::move(h)(error_code{}); });
    }

    // ------------------------------------------------------------------ connecting

    // Under the lock: start what connects_to_start() asks for.
    void plan_connects(batch& b, time_point now) {
        pool_counts c;
        c.open = open_;
        c.connecting = connecting_;
        c.waiting = waiters_.size();
        slots_.for_each([&](slot_type& s) {
            auto st = s.state.load(std::memory_order_relaxed);
            if (counts_as_idle(st)) ++c.idle;
        });
        c.in_use = open_ - std::min(open_, c.idle);
        creation_policy p;
        p.max_size = max_size_;
        p.min_idle = min_idle_;
        p.max_connecting = opts_.max_connecting;
        p.in_backoff = now < backoff_until_;
        p.closed = closed_.load(std::memory_order_relaxed);
        for (std::size_t n = connects_to_start(c, p); n > 0; --n) {
            slot_type* s = slots_.find([](slot_type& x) {
                return x.state.load(std::memory_order_relaxed) == slot_state::empty;
            });
            if (s == nullptr) {
                s = &slots_.add();
                s->owner = this;
            }
            s->state.store(slot_state::connecting, std::memory_order_relaxed);
            ++connecting_;
            b.connects.push_back(s);
        }
        if (p.in_backoff && (c.waiting > 0 || c.idle < min_idle_)) request_timer(backoff_until_);
    }

    void launch_connect(slot_type& s) {
        const connect_request req{opts_.connect_timeout, consecutive_failures_snapshot_.load()};
        auto self = this->shared_from_this();
        const auto started = Clock::now();
        bool posted = false;
        if constexpr (has_async_connect<Factory>) {
            posted = post_internal([self, &s, req, started] {
                try {
                    self->factory_.async_connect(
                        req, self->ex_,
                        connect_handler<connection_type>(
                            [self, &s, started](error_info e, std::optional<connection_type> c) {
                                self->connected(s, std::move(c), std::move(e), started);
                            }));
                } catch (...) {
                    self->connected(s, std::nullopt, thrown(), started);
                }
            });
        } else {
            posted = post_worker([self, &s, req, started] {
                error_info e;
                std::optional<connection_type> c;
                try {
                    c = self->factory_.connect(req, e);
                } catch (...) {
                    c.reset();
                    e = thrown();
                }
                self->connected(s, std::move(c), std::move(e), started);
            });
        }
        if (!posted) connected(s, std::nullopt, error_info{errc::pool_closed, "pool closed"}, started);
    }

    // Inside a catch block: the exception in flight, as the error a failed connect reports.
    static error_info thrown() {
        try {
            throw;
        } catch (const std::exception& ex) {
            return error_info{errc::factory_exception, std::string("factory threw: ") + ex.what()};
        } catch (...) {
            return error_info{errc::factory_exception, "factory threw: unknown exception"};
        }
    }

    void connected(slot_type& s, std::optional<connection_type> c, error_info e, time_point started) noexcept {
        const auto now = Clock::now();
        const unsigned attempt = consecutive_failures_snapshot_.load();
        if (c && e) c.reset();  // a factory that says both: trust the error
        if (!c && !e) e = error_info{errc::connect_failed, "factory returned no connection and no error"};
        batch b;
        {
            std::lock_guard lk(mutex_);
            --connecting_;
            if (c) {
                s.conn = std::move(c);
                s.created_at = now;
                const auto life = jittered_lifetime(opts_.max_lifetime, opts_.lifetime_jitter, unit_random());
                s.expires_at = life.count() == 0 ? time_point::max() : now + life;
                s.generation = generation_.load(std::memory_order_relaxed);
                s.last_used.store(coarse_now<Clock>().time_since_epoch(), std::memory_order_relaxed);
                s.recency.store(recency_stamp(), std::memory_order_relaxed);
                ++open_;
                ++created_;
                consecutive_failures_ = 0;
                consecutive_failures_snapshot_.store(0);
                last_error_.clear();
                backoff_until_ = time_point{};
                over_capacity_.store(open_ > max_size_, std::memory_order_relaxed);
                if (closed_.load(std::memory_order_relaxed)) {
                    s.state.store(slot_state::busy, std::memory_order_relaxed);
                    b.closes.emplace_back(&s, close_reason::pool_closed);
                } else if (auto* w = waiters_.pop_front()) {
                    s.state.store(slot_state::leased, std::memory_order_relaxed);
                    serve(*w, s, now, b);
                } else {
                    s.state.store(slot_state::idle, std::memory_order_seq_cst);
                }
            } else {
                s.state.store(slot_state::empty, std::memory_order_relaxed);
                ++connect_failures_;
                ++consecutive_failures_;
                consecutive_failures_snapshot_.store(consecutive_failures_);
                const bool timed_out = e.code == errc::connect_timeout;
                // Adapters may already say "connect failed: ..."; say it once.
                const std::string prefix = timed_out ? "connect timed out" : "connect failed";
                std::string message = e.what();
                if (message.rfind(prefix, 0) != 0) message = prefix + ": " + message;
                last_error_ = error_info{make_error_code(timed_out ? errc::connect_timeout : errc::connect_failed),
                                         std::move(message)};
                backoff_until_ = now + backoff_delay(consecutive_failures_, opts_.backoff_initial, opts_.backoff_max,
                                                     unit_random());
                // Nothing open and nothing on its way: nobody will hand these waiters a
                // connection before the backoff ends, so tell them why now.
                if (open_ == 0 && connecting_ == 0) {
                    while (auto* w = waiters_.pop_front()) {
                        ++fast_failed_;
                        fail(*w, last_error_.code, last_error_.message);
                        b.complete(w);
                    }
                    waiting_.store(0, std::memory_order_relaxed);
                }
            }
            plan_connects(b, now);
            notify_if_drained(b);
        }
        if (hooks_.on_connect) {
            report([&] { hooks_.on_connect(connect_event{c ? error_info{} : e, now - started, attempt}); });
        }
        finish(b);
    }

    double unit_random() {
        return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    }

    // ------------------------------------------------------------------ after the lock

    void finish(batch& b) noexcept {
        std::shared_ptr<pool_core> last_ref;  // declared first: released last, after every member use
        while (!b.empty()) {
            while (auto* w = b.done_head) {
                b.done_head = w->next;
                if (b.done_head == nullptr) b.done_tail = nullptr;
                deliver(*w);
            }
            auto closes = std::move(b.closes);
            b.closes.clear();
            for (auto [s, why] : closes) {
                try {
                    s->conn.reset();
                } catch (...) {
                    // A connection's destructor threw; the slot is freed all the same.
                }
                if (hooks_.on_close) report([&] { hooks_.on_close(close_event{why}); });
                std::lock_guard lk(mutex_);
                closed_one(*s, why, b);
                if (keepalive_ && open_ + connecting_ == 0) last_ref = std::move(keepalive_);
            }
            auto connects = std::move(b.connects);
            b.connects.clear();
            for (auto* s : connects) launch_connect(*s);
            auto probes = std::move(b.probes);
            b.probes.clear();
            for (auto* s : probes) run_probe(*s);
            for (auto& leak : b.leaks) report_leak(leak);
            b.leaks.clear();
            for (auto& n : b.nested) report_nested(n);
            b.nested.clear();
            for (auto& h : b.drained) complete_drain(std::move(h));
            b.drained.clear();
        }
    }

    void deliver(sync_waiter_base& w) noexcept {
        if (!w.is_async) {
            static_cast<sync_waiter&>(w).spot.notify();
            return;
        }
        auto& aw = static_cast<async_waiter&>(w);
        std::shared_ptr<async_waiter> keep = std::move(aw.self);
        if (aw.result != nullptr) {
            const auto now = coarse_now<Clock>();
            slot_type& s = *aw.result;
            if (auto why = unusable(s, now)) {
                aw.result = nullptr;
                close_claimed(s, *why);
                return retry(std::move(keep));
            }
            if (needs_ping(s, now)) {
                bool posted = post_worker([self = this->shared_from_this(), keep, &s]() mutable {
                    if (self->ping(s)) return self->complete_async(std::move(keep));
                    keep->result = nullptr;
                    self->close_claimed(s, close_reason::validation_failed);
                    self->retry(std::move(keep));
                });
                if (posted) return;
                aw.result = nullptr;
                close_claimed(s, close_reason::pool_closed);
                fail(aw, errc::pool_closed, "pool closed");
            }
        }
        complete_async(std::move(keep));
    }

    // An async waiter's connection turned out unusable: it goes back first in line.
    void retry(std::shared_ptr<async_waiter> w) noexcept { enqueue_async(std::move(w), true); }

    // The pool owes w a completion from here on: now if it could be served or failed at
    // once, else when a connection frees up, its deadline passes or it is cancelled.
    void enqueue_async(std::shared_ptr<async_waiter> w, bool front) noexcept {
        async_waiter* raw = w.get();
        batch b;
        {
            std::lock_guard lk(mutex_);
            raw->result = nullptr;
            slot_type* claimed = enter_queue(*raw, Clock::now(), front, b);
            raw->self = std::move(w);
            if (claimed != nullptr) {
                raw->result = claimed;
                b.complete(raw);
            } else if (raw->queued) {
                request_timer(raw->deadline);
            } else if (raw->result == nullptr) {
                b.complete(raw);  // refused at once; the error is set
            }
            // else: enter_queue served it from the queue, and it is in b already
        }
        finish(b);
    }

    void complete_async(std::shared_ptr<async_waiter> w) noexcept {
        error_code ec = w->error.code;
        if (w->diag != nullptr) *w->diag = w->error;
        lease_type l;
        if (w->result != nullptr) {
            l = begin_lease(*w->result, coarse_now<Clock>(), w->site, Clock::now() - w->enqueued_at);
        }
        auto handler = std::move(w->handler);
        auto work = std::move(w->work);  // the handler's executor, with work counted
        w.reset();
        post_completion(work, [h = std::move(handler), ec, l = std::move(l)]() mutable {
            auto cs = asio::get_associated_cancellation_slot(h);
            if (cs.is_connected()) cs.clear();
            std::move(h)(ec, std::move(l));
        });
    }

    void cancel(async_waiter& w) {
        batch b;
        {
            std::lock_guard lk(mutex_);
            if (!w.queued) return;
            waiters_.remove(w);
            waiting_.store(waiters_.size(), std::memory_order_relaxed);
                ++cancelled_;
            fail(w, errc::cancelled, "acquire cancelled");
            b.complete(&w);
        }
        finish(b);
    }

    // ------------------------------------------------------------------ housekeeping

    // Under the lock: make sure the timer fires no later than t.
    void request_timer(time_point t) {
        if (t >= timer_expiry_) return;
        timer_expiry_ = t;
        post_internal([self = this->shared_from_this()] { self->arm(); });
    }

    // On the strand: (re)arms the timer for the earliest time anyone asked for. Arms posted
    // out of order cannot push the expiry later, because they all read timer_expiry_.
    void arm() {
        time_point t;
        {
            std::lock_guard lk(mutex_);
            if (closed_.load()) return;
            t = timer_expiry_;
        }
        timer_.expires_at(t);
        timer_.async_wait(asio::bind_executor(strand_, [self = this->shared_from_this()](error_code ec) {
            if (ec != asio::error::operation_aborted) self->on_timer(ec);
        }));
    }

    // On the strand: expire waiters, close what idled or aged out, report leaks, top up
    // min_idle, and decide when to look again.
    void on_timer(error_code) {
        const auto now = Clock::now();
        const auto coarse = coarse_now<Clock>();
        batch b;
        time_point next = now + opts_.housekeeping_interval;
        {
            std::lock_guard lk(mutex_);
            if (closed_.load()) return;
            waiters_.for_each([&](sync_waiter_base& w) {
                if (w.deadline <= now) {
                    expire(w, w.deadline - w.enqueued_at);
                    b.complete(&w);
                } else {
                    next = std::min(next, w.deadline);
                }
            });
            evict_idle(coarse, b);
            find_leaks(coarse, b);
            plan_connects(b, now);
            claim_for_probe(b);
            if (now < backoff_until_) next = std::min(next, backoff_until_);
            timer_expiry_ = next;
        }
        arm();
        finish(b);
    }

    void evict_idle(time_point now, batch& b) {
        std::vector<slot_type*> idle;
        slots_.for_each([&](slot_type& s) {
            if (s.state.load(std::memory_order_relaxed) == slot_state::idle) idle.push_back(&s);
        });
        std::sort(idle.begin(), idle.end(), [](slot_type* a, slot_type* c) {
            return a->recency.load(std::memory_order_relaxed) > c->recency.load(std::memory_order_relaxed);
        });
        const idle_policy p{min_idle_, opts_.max_idle, opts_.idle_timeout};
        const auto gen = generation_.load(std::memory_order_relaxed);
        std::size_t rank = 0;
        for (slot_type* s : idle) {
            idle_facts f;
            f.expired = now >= s->expires_at || s->generation != gen;
            f.idle_for = now - s->last_used_at();
            f.idle_rank = rank;
            f.idle_count = idle.size();
            const auto verdict = judge_idle(f, p);
            if (verdict == idle_verdict::keep) {
                ++rank;
                continue;
            }
            const close_reason why = verdict == idle_verdict::lifetime
                                         ? (s->generation != gen ? close_reason::retired : close_reason::lifetime)
                                     : verdict == idle_verdict::max_idle ? close_reason::max_idle
                                                                         : close_reason::idle_timeout;
            if (!claim_idle_for_close(*s, why, b)) ++rank;  // someone took it: it is in use, not idle
        }
    }

    // Under the lock: idle slots go busy for a moment, to be probed after the lock.
    void claim_for_probe(batch& b) {
        if constexpr (has_probe<Factory>) {
            slots_.for_each([&](slot_type& s) {
                slot_state expected = slot_state::idle;
                if (s.state.compare_exchange_strong(expected, slot_state::probing, std::memory_order_acquire,
                                                    std::memory_order_relaxed)) {
                    b.probes.push_back(&s);
                }
            });
        } else {
            (void)b;
        }
    }

    // After the lock: a dead idle connection closes (and is replaced); a live one goes back
    // to idle, or to a waiter, with its recency unchanged.
    void run_probe(slot_type& s) noexcept {
        if constexpr (has_probe<Factory>) {
            bool alive = false;
            try {
                alive = factory_.probe(*s.conn);
            } catch (...) {
                alive = false;
            }
            if (!alive) return close_claimed(s, close_reason::broken);
            hand_over(s);
        } else {
            (void)s;
        }
    }

    void find_leaks(time_point now, batch& b) {
        if (opts_.leak_threshold.count() == 0) return;
        slots_.for_each([&](slot_type& s) {
            if (s.state.load(std::memory_order_relaxed) != slot_state::leased ||
                s.leak_reported.load(std::memory_order_relaxed)) {
                return;
            }
            if (now - s.leased_since() < opts_.leak_threshold) return;
            s.leak_reported.store(true, std::memory_order_relaxed);
            ++leaks_reported_;
            b.leaks.push_back(info_of(s, now));
        });
    }

    void find_nested(const sync_waiter_base& w, batch& b) {
        const auto me = std::this_thread::get_id();
        const auto now = coarse_now<Clock>();
        slots_.for_each([&](slot_type& s) {
            if (s.state.load(std::memory_order_relaxed) == slot_state::leased &&
                s.holder.load(std::memory_order_relaxed) == me) {
                b.nested.push_back(nested_acquire_event{w.site, info_of(s, now)});
            }
        });
    }

    static lease_info info_of(const slot_type& s, time_point now) {
        return lease_info{s.site.load(std::memory_order_relaxed), now - s.leased_since(),
                          s.holder.load(std::memory_order_relaxed)};
    }

    void report_leak(const lease_info& l) noexcept {
        report([&] {
            if (hooks_.on_leak) {
                hooks_.on_leak(leak_event{l});
            } else {
                std::ostringstream os;
                os << "connpool: possible leak: lease held for " << seconds_text(l.held_for) << ", taken at "
                   << to_string(l.location) << " on thread " << l.thread << '\n';
                std::clog << os.str();
            }
        });
    }

    void report_nested(const nested_acquire_event& n) noexcept {
        report([&] {
            if (hooks_.on_nested_acquire) {
                hooks_.on_nested_acquire(n);
            } else {
                std::ostringstream os;
                os << "connpool: nested acquire at " << to_string(n.waiting_at)
                   << " blocks on an exhausted pool while this thread holds a lease taken at "
                   << to_string(n.already_held.location)
                   << ": this can deadlock (size the pool for threads x (leases per thread - 1) + 1)\n";
                std::clog << os.str();
            }
        });
    }

    // A throwing hook must not break the pool's invariants.
    template <class F>
    static void report(F&& f) noexcept {
        try {
            f();
        } catch (...) {
        }
    }

    // ------------------------------------------------------------------ posting

    // Pool-internal work on the strand. Refused once the pool object is gone, because
    // the internal executor dies with it.
    template <class F>
    bool post_internal(F&& f) {
        std::lock_guard lk(post_mutex_);
        if (!posts_open_) return false;
        asio::post(strand_, std::forward<F>(f));
        return true;
    }

    // A completion goes to the handler's executor as if by post: never inline in the
    // initiating call, nor inside another thread's release. A handler's associated
    // executor may not support blocking.never, so the hop goes through the pool's own.
    template <class Executor, class F>
    void post_completion(Executor handler_ex, F&& f) {
        std::unique_lock lk(post_mutex_);
        if (posts_open_) {
            asio::post(ex_, [handler_ex = std::move(handler_ex), f = std::forward<F>(f)]() mutable {
                asio::dispatch(handler_ex, std::move(f));
            });
            return;
        }
        lk.unlock();
        asio::dispatch(handler_ex, std::forward<F>(f));  // the pool's own executor is gone
    }

    // Blocking factory calls, on the worker threads.
    template <class F>
    bool post_worker(F&& f) {
        std::lock_guard lk(post_mutex_);
        if (!posts_open_) return false;
        asio::post(workers_, std::forward<F>(f));
        return true;
    }

    // ------------------------------------------------------------------ data

    Factory factory_;
    const options opts_;
    const hooks hooks_;
    asio::thread_pool workers_;
    executor_type ex_;
    asio::strand<executor_type> strand_;
    asio::basic_waitable_timer<Clock, pool_wait_traits<Clock>, executor_type> timer_;
    const std::uint64_t id_ = next_pool_id();

    // Read on every acquire and return, written rarely: a line of their own.
    alignas(64) std::atomic<std::size_t> waiting_{0};
    std::atomic<bool> closed_{false};
    std::atomic<std::uint64_t> generation_{1};
    std::atomic<bool> over_capacity_{false};
    std::atomic<unsigned> consecutive_failures_snapshot_{0};

    alignas(64) mutable std::mutex mutex_;
    slot_table<slot_type> slots_;
    waiter_list<sync_waiter_base> waiters_;
    std::size_t max_size_;
    std::size_t min_idle_;
    std::size_t open_ = 0;
    std::size_t connecting_ = 0;
    unsigned consecutive_failures_ = 0;
    error_info last_error_;
    time_point backoff_until_{};
    time_point timer_expiry_ = time_point::max();
    std::condition_variable drained_cv_;
    std::vector<asio::any_completion_handler<void(error_code)>> drain_handlers_;
    std::shared_ptr<pool_core> keepalive_;
    std::mt19937_64 rng_;

    std::uint64_t acquired_closed_ = 0;
    std::uint64_t waited_ = 0;
    std::uint64_t created_ = 0;
    std::uint64_t connect_failures_ = 0;
    std::uint64_t timeouts_ = 0;
    std::uint64_t cancelled_ = 0;
    std::uint64_t rejected_ = 0;
    std::uint64_t fast_failed_ = 0;
    std::uint64_t leaks_reported_ = 0;
    std::array<std::uint64_t, close_reason_count> closed_by_{};
    wait_histogram waits_;

    std::mutex post_mutex_;
    bool posts_open_ = true;
};

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_POOL_CORE_HPP
