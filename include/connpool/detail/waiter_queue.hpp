// connpool internals: a caller waiting for a connection, and the queue of them. Blocking
// and async waiters share one queue; the queue owns none of them (a blocking waiter lives
// on its caller's stack, an async one on the heap, kept alive by its own reference).
#ifndef CONNPOOL_DETAIL_WAITER_QUEUE_HPP
#define CONNPOOL_DETAIL_WAITER_QUEUE_HPP

#include <connpool/detail/clock.hpp>
#include <connpool/error.hpp>

#include <cstddef>
#include <cstdint>
#include <source_location>
#include <thread>

namespace connpool::detail {

struct slot_base;

// Where a waiter is in its life. Only the pool's lock changes it, and exactly one party
// moves it to `done`: the delivery, the timeout, the cancellation or close().
enum class waiter_phase : std::uint8_t {
    fresh,    // not yet admitted
    queued,   // in the queue
    pinging,  // a connection is chosen for it and its validation ping runs
    done,     // its outcome (result or error) is written; its completion is under way
};

struct waiter_base {
    // Queue links, and after `done` the link of the completion chain (actions::complete).
    waiter_base* prev = nullptr;
    waiter_base* next = nullptr;
    waiter_phase phase = waiter_phase::fresh;
    bool is_async = false;
    bool validated = false;  // its result passed a validation ping just now

    time_point deadline = time_point::max();
    time_point enqueued_at{};
    std::source_location site{};
    std::thread::id thread{};  // the caller's thread: the lease's holder, whoever completes it

    // The outcome.
    slot_base* result = nullptr;
    error_info error;

    bool pending() const noexcept { return phase == waiter_phase::queued || phase == waiter_phase::pinging; }
};

// The waiters, served oldest first. Guarded by the pool's lock. next_to_serve() is the
// one place that picks whom a freed connection goes to: per-tenant sub-queues with
// weighted fair queuing slot in here without touching the state machine around it.
class waiter_queue {
public:
    bool empty() const noexcept { return head_ == nullptr; }
    std::size_t size() const noexcept { return size_; }
    waiter_base* front() const noexcept { return head_; }

    void push_back(waiter_base& w) noexcept {
        w.prev = tail_;
        w.next = nullptr;
        (tail_ ? tail_->next : head_) = &w;
        tail_ = &w;
        w.phase = waiter_phase::queued;
        ++size_;
    }

    // A waiter whose chosen connection failed its hand-out check keeps its place: first.
    void push_front(waiter_base& w) noexcept {
        w.prev = nullptr;
        w.next = head_;
        (head_ ? head_->prev : tail_) = &w;
        head_ = &w;
        w.phase = waiter_phase::queued;
        ++size_;
    }

    // Precondition: w is queued. Leaves its phase to the caller.
    void remove(waiter_base& w) noexcept {
        (w.prev ? w.prev->next : head_) = w.next;
        (w.next ? w.next->prev : tail_) = w.prev;
        w.prev = w.next = nullptr;
        --size_;
    }

    waiter_base* next_to_serve() noexcept {
        waiter_base* w = head_;
        if (w != nullptr) remove(*w);
        return w;
    }

    template <class F>
    void for_each(F&& f) const {
        for (waiter_base* w = head_; w != nullptr;) {
            waiter_base* next = w->next;  // f may remove w
            f(*w);
            w = next;
        }
    }

private:
    waiter_base* head_ = nullptr;
    waiter_base* tail_ = nullptr;
    std::size_t size_ = 0;
};

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_WAITER_QUEUE_HPP
