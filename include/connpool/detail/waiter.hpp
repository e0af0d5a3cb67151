// connpool internals: waiters (blocking and async share one FIFO queue) and the list.
#ifndef CONNPOOL_DETAIL_WAITER_HPP
#define CONNPOOL_DETAIL_WAITER_HPP

#include <connpool/error.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <source_location>
#include <thread>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace connpool::detail {

// A caller waiting for a connection. The queue owns no waiter: a blocking waiter lives on
// its caller's stack, an async one on the heap (kept alive by its own reference).
template <class Slot, class TimePoint>
struct waiter {
    waiter* prev = nullptr;
    waiter* next = nullptr;
    bool queued = false;    // guarded by the pool's lock
    bool promoted = false;  // guarded by the pool's lock: was told it is first in line
    bool is_async = false;

    TimePoint deadline{};
    TimePoint enqueued_at{};
    std::source_location site{};

    // The outcome, written by whoever removes the waiter from the queue.
    Slot* result = nullptr;
    error_info error;
};

// Intrusive FIFO: push at the back, serve from the front. Guarded by the pool's lock.
template <class Waiter>
class waiter_list {
public:
    bool empty() const noexcept { return head_ == nullptr; }
    std::size_t size() const noexcept { return size_; }
    Waiter* front() const noexcept { return head_; }

    void push_back(Waiter& w) noexcept {
        w.prev = tail_;
        w.next = nullptr;
        (tail_ ? tail_->next : head_) = &w;
        tail_ = &w;
        w.queued = true;
        ++size_;
    }

    // A waiter whose handed-out connection failed validation goes back first in line.
    void push_front(Waiter& w) noexcept {
        w.prev = nullptr;
        w.next = head_;
        (head_ ? head_->prev : tail_) = &w;
        head_ = &w;
        w.queued = true;
        ++size_;
    }

    void remove(Waiter& w) noexcept {
        (w.prev ? w.prev->next : head_) = w.next;
        (w.next ? w.next->prev : tail_) = w.prev;
        w.prev = w.next = nullptr;
        w.queued = false;
        --size_;
    }

    Waiter* pop_front() noexcept {
        Waiter* w = head_;
        if (w != nullptr) remove(*w);
        return w;
    }

    template <class F>
    void for_each(F&& f) const {
        for (Waiter* w = head_; w != nullptr;) {
            Waiter* next = w->next;  // f may remove w
            f(*w);
            w = next;
        }
    }

private:
    Waiter* head_ = nullptr;
    Waiter* tail_ = nullptr;
    std::size_t size_ = 0;
};

// How a blocking waiter waits. On this kind of machine a parked thread costs tens of
// microseconds to wake (an idle vCPU halts), longer than a query. So:
// - every waiter spins a little, then yields a little, then parks;
// - the waiter at the head of the queue is woken ahead of time ("promoted") and stays
//   awake, yielding, so that the next returned connection finds it running: the wake-up
//   cost moves off the critical path, while the other waiters sleep.
class parking_spot {
public:
    static constexpr int spin_rounds = 64;
    static constexpr int yield_rounds = 16;

    // Called by the completer, exactly once, after it wrote the outcome.
    void notify() noexcept {
        std::lock_guard lk(m_);
        done_.store(true, std::memory_order_release);
        if (parked_) cv_.notify_one();
    }

    // The waiter is now first in line: stop sleeping. Called under the pool's lock, at
    // most once per waiter, before notify().
    void promote() noexcept {
        std::lock_guard lk(m_);
        head_.store(true, std::memory_order_release);
        if (parked_) cv_.notify_one();
    }

    bool done() const noexcept { return done_.load(std::memory_order_acquire); }

    // Waits until notify() or the deadline; true if notified. After it returns true the
    // completer no longer touches this object.
    template <class Deadline>
    bool wait_until(const Deadline& deadline) {
        return wait_impl([&](std::unique_lock<std::mutex>& lk, auto pred) { return cv_.wait_until(lk, deadline, pred); },
                         [&] { return Deadline::clock::now() >= deadline; });
    }

    void wait() {
        wait_impl([&](std::unique_lock<std::mutex>& lk, auto pred) { cv_.wait(lk, pred); return pred(); },
                  [] { return false; });
    }

private:
    template <class Park, class Expired>
    bool wait_impl(Park park, Expired expired) {
        if (spin()) return true;
        for (;;) {
            if (head_.load(std::memory_order_acquire)) {
                // First in line: stay on the CPU, but let others run.
                for (int i = 0; !done(); ++i) {
                    std::this_thread::yield();
                    if ((i & 63) == 63 && expired()) return done() ? settle() : false;
                }
                return settle();
            }
            std::unique_lock lk(m_);
            parked_ = true;
            const bool woke = park(lk, [&] { return done() || head_.load(std::memory_order_relaxed); });
            parked_ = false;
            if (done()) return true;  // we hold m_: the completer has let go
            if (!woke) return false;  // deadline
            // promoted: loop back to the yielding wait
        }
    }

    bool spin() noexcept {
        for (int i = 0; i < spin_rounds; ++i) {
            if (done()) return settle();
#if defined(__x86_64__) || defined(__i386__)
            _mm_pause();
#endif
        }
        for (int i = 0; i < yield_rounds; ++i) {
            if (done()) return settle();
            std::this_thread::yield();
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
    std::atomic<bool> head_{false};
    bool parked_ = false;  // guarded by m_
};

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_WAITER_HPP
