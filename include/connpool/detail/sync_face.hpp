// connpool internals: the blocking face: how a thread waits, and blocking acquire over
// the one acquire path (pool_core::admit, check_handout, give_up).
#ifndef CONNPOOL_DETAIL_SYNC_FACE_HPP
#define CONNPOOL_DETAIL_SYNC_FACE_HPP

#include <connpool/detail/clock.hpp>
#include <connpool/detail/handout.hpp>
#include <connpool/detail/pool_state.hpp>
#include <connpool/detail/waiter_queue.hpp>
#include <connpool/error.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <source_location>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace connpool::detail {

// Spin briefly, then park. Measured with PostgreSQL on 2 vCPUs (bench/README.md),
// yielding or keeping the head of the queue awake cost more than it saved: the database
// server needs those CPUs. A short spin catches a hand-over that is already under way.
class parking_spot {
public:
    static constexpr int spin_rounds = 64;

    // Called by the completer, exactly once per round, after it wrote the outcome.
    void notify() noexcept {
        std::lock_guard lk(m_);
        done_.store(true, std::memory_order_release);
        if (parked_) cv_.notify_one();
    }

    // For the next round; only by the waiter, after the last notify() of this round.
    void reset() noexcept { done_.store(false, std::memory_order_relaxed); }

    bool done() const noexcept { return done_.load(std::memory_order_acquire); }

    // Waits until notify() or the deadline; true if notified. After it returns true the
    // completer no longer touches this object.
    bool wait_until(std::chrono::steady_clock::time_point deadline) {
        if (spin()) return true;
        std::unique_lock lk(m_);
        parked_ = true;
        const bool notified = deadline == std::chrono::steady_clock::time_point::max()
                                  ? (cv_.wait(lk, [&] { return done(); }), true)
                                  : cv_.wait_until(lk, deadline, [&] { return done(); });
        parked_ = false;
        return notified;
    }

    void wait() { wait_until(std::chrono::steady_clock::time_point::max()); }

private:
    bool spin() noexcept {
        for (int i = 0; i < spin_rounds; ++i) {
            if (done()) return settle();
#if defined(__x86_64__) || defined(__i386__)
            _mm_pause();
#endif
        }
        return false;
    }

    // The completer sets done_ while holding m_; taking m_ once makes sure it has let go
    // before our stack frame, and this object with it, can disappear.
    bool settle() noexcept {
        std::lock_guard lk(m_);
        return true;
    }

    std::mutex m_;
    std::condition_variable cv_;
    std::atomic<bool> done_{false};
    bool parked_ = false;  // guarded by m_: notify only a parked waiter (saves a futex call)
};

struct sync_waiter : waiter_base {
    parking_spot spot;
};

// The real deadline of a blocking wait: a virtual clock's deadline is waited for on the
// steady clock, in steps, so that tests that advance it see the timeout.
template <class Clock>
std::chrono::steady_clock::time_point park_deadline(time_point deadline) noexcept {
    if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
        return deadline;
    } else {
        return deadline == time_point::max() ? deadline
                                             : std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
    }
}

// Blocking acquire. Fast path: this thread's hint, no waiter, no lock. Otherwise one
// waiter on this stack goes through admit -> (wait) -> check_handout until it has a
// connection or an error; the caller's deadline bounds every wait, pings included.
template <class Core>
typename Core::lease_type blocking_acquire(Core& core, std::chrono::milliseconds timeout, error_info& err,
                                           std::source_location loc, std::uint32_t tenant = 0,
                                           const label& want = {}) {
    using slot_type = typename Core::slot_type;
    err.clear();
    const auto me = std::this_thread::get_id();
    slot_type* pre = core.lease_hint(want.hash());  // only a hint that carries want
    if (pre != nullptr) {
        const auto t = coarse_now<typename Core::clock_type>();
        const auto v = judge_handout(Core::state_type::facts_of(*pre, t), core.state().facts(), core.opts(),
                                     Core::can_ping);
        // The hint matched want's hash; only an exact match is delivered as it is.
        if (v.kind == handout_kind::deliver && core.carries(*pre, want)) {
            core.note_label_hit(want);
            return core.begin_lease(*pre, loc, me, {}, t);
        }
    }
    sync_waiter w;
    w.site = loc;
    w.thread = me;
    w.tenant = tenant;
    w.want_label = want.hash();
    w.enqueued_at = Core::now();
    w.deadline = saturating_add(w.enqueued_at, timeout);
    // Whether w holds a slot and no completion is owed to it: the waiter reads its own
    // outcome only then, or after the completer's notify(). Reading it earlier (the
    // phase is written under the lock, notify() comes after) would let this frame end
    // while the completer still has to touch w.spot.
    bool holds = pre != nullptr;
    if (holds) {
        w.result = pre;
    } else {
        const admit_result r = core.admit(w);
        if (r == admit_result::refused) {
            err = std::move(w.error);
            return {};
        }
        holds = r == admit_result::served;
    }
    bool reported = false;
    time_point starving_at = core.state().look_at(w.enqueued_at);
    for (;;) {
        if (holds) {
            if (core.check_handout(w)) {
                auto& s = *static_cast<slot_type*>(w.result);
                if (core.settle_label(w, s, want)) return core.begin_lease(s, loc, me, w.enqueued_at);
            }
            // check_handout or settle_label queued w again, or started its ping or apply: a
            // completion is owed.
        }
        if (!reported) {
            reported = true;
            core.report_nested(w);
        }
        // Under barging, a return may leave its connection idle for whoever asks first
        // while w waits; at the starvation bound w looks for one itself (once: from then
        // on every return hands over to the starving), so its wait never depends on a
        // timer or on the returning thread coming back.
        bool notified = false;
        for (;;) {
            const auto wake = starving_at < w.deadline ? starving_at : w.deadline;
            if ((notified = w.spot.wait_until(park_deadline<typename Core::clock_type>(wake)))) break;
            const auto t = Core::now();
            if (t >= w.deadline) break;
            if (t >= starving_at) {
                starving_at = time_point::max();
                core.waiter_starving();
            }
        }
        if (!notified) {
            core.give_up(w, errc::acquire_timeout);
            w.spot.wait();  // our own give_up, or a concurrent delivery, completes it
        }
        // Notified: the outcome of this round is final. Reset before anything can start
        // the next round (check_handout).
        w.spot.reset();
        if (w.result == nullptr) {
            err = std::move(w.error);
            return {};
        }
        holds = true;
    }
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_SYNC_FACE_HPP
