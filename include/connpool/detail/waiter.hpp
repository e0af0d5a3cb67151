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
    bool queued = false;  // guarded by the pool's lock
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

// How a blocking waiter waits: spin briefly, then park. Measured with PostgreSQL on 2
// vCPUs (bench/README.md), yielding or keeping the head of the queue awake cost more than
// it saved: the database server needs those CPUs, and sched_yield took 60 % of the
// client's time. A short spin catches a hand-over that is already under way.
class parking_spot {
public:
    static constexpr int spin_rounds = 64;

    // Called by the completer, exactly once, after it wrote the outcome.
    void notify() noexcept {
        std::lock_guard lk(m_);
        done_.store(true, std::memory_order_release);
        if (parked_) cv_.notify_one();
    }

    bool done() const noexcept { return done_.load(std::memory_order_acquire); }

    // Waits until notify() or the deadline; true if notified. After it returns true the
    // completer no longer touches this object.
    template <class Deadline>
    bool wait_until(const Deadline& deadline) {
        if (spin()) return true;
        std::unique_lock lk(m_);
        parked_ = true;
        const bool notified = cv_.wait_until(lk, deadline, [&] { return done(); });
        parked_ = false;
        return notified;
    }

    void wait() {
        if (spin()) return;
        std::unique_lock lk(m_);
        parked_ = true;
        cv_.wait(lk, [&] { return done(); });
        parked_ = false;
    }

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

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_WAITER_HPP
