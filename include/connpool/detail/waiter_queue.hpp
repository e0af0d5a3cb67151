// connpool internals: a caller waiting for a connection, and the queue of them. Blocking
// and async waiters share one queue; the queue owns none of them (a blocking waiter lives
// on its caller's stack, an async one on the heap, kept alive by its own reference).
#ifndef CONNPOOL_DETAIL_WAITER_QUEUE_HPP
#define CONNPOOL_DETAIL_WAITER_QUEUE_HPP

#include <connpool/detail/clock.hpp>
#include <connpool/detail/thread_id.hpp>
#include <connpool/error.hpp>

#include <cstddef>
#include <cstdint>
#include <source_location>

namespace connpool::detail {

struct slot_base;
struct waiter_base;
struct tenant_rec;
class tenant_table;

// The per-tenant sub-queues (tenants.hpp); declared here so the queue can call them.
void tenant_push(tenant_table& t, waiter_base& w, bool front) noexcept;
void tenant_unlink(tenant_table& t, waiter_base& w) noexcept;
waiter_base* tenant_pick(tenant_table& t) noexcept;
bool tenant_servable(const tenant_table& t) noexcept;

// Where a waiter is in its life. Only the pool's lock changes it, and exactly one party
// moves it to `done`: the delivery, the timeout, the cancellation or close().
enum class waiter_phase : std::uint8_t {
    fresh,    // not yet admitted
    queued,   // in the queue
    checking,  // a connection is chosen for it, and its validation ping or apply() runs
    done,     // its outcome (result or error) is written; its completion is under way
};

struct waiter_base {
    // Queue links, and after `done` the link of the completion chain (actions::complete).
    waiter_base* prev = nullptr;
    waiter_base* next = nullptr;
    waiter_phase phase = waiter_phase::fresh;
    bool is_async = false;
    bool validated = false;     // its result passed a validation ping (or an apply()) just now
    bool applied = false;       // its result was just moved to its label by apply()
    bool queued_once = false;   // it entered the queue at least once: it waited
    bool wait_counted = false;  // its wait is in stats().waited already (once per acquire)
    std::uint8_t handout_failures = 0;  // new connections that failed their hand-out for it

    time_point deadline = time_point::max();
    time_point enqueued_at{};
    std::source_location site{};
    thread_id thread{};  // the caller's thread: the lease's holder, whoever completes it

    // Tenants (only while the pool has some): the id the caller named, the record it was
    // admitted under, and its links in that tenant's FIFO sub-queue.
    std::uint32_t tenant = 0;
    tenant_rec* tenant_ref = nullptr;
    waiter_base* tprev = nullptr;
    waiter_base* tnext = nullptr;

    std::uint64_t want_label = 0;  // label::hash() of the settings it asks for (0: clean)

    // The outcome.
    slot_base* result = nullptr;
    error_info error;

    bool pending() const noexcept { return phase == waiter_phase::queued || phase == waiter_phase::checking; }
};

// The waiters, served oldest first. Guarded by the pool's lock. next_to_serve() is the
// one place that picks whom a freed connection goes to: with tenants configured, the
// per-tenant sub-queues with weighted fair queuing (tenants.hpp) decide it there.
class waiter_queue {
public:
    bool empty() const noexcept { return head_ == nullptr; }
    std::size_t size() const noexcept { return size_; }
    waiter_base* front() const noexcept { return head_; }

    void push_back(waiter_base& w) noexcept {
        if (tail_ != nullptr && w.deadline < tail_->deadline) by_deadline_ = false;
        w.prev = tail_;
        w.next = nullptr;
        (tail_ ? tail_->next : head_) = &w;
        tail_ = &w;
        w.phase = waiter_phase::queued;
        w.queued_once = true;
        ++size_;
        if (tenants_ != nullptr) tenant_push(*tenants_, w, false);
    }

    // A waiter whose chosen connection failed its hand-out check keeps its place: first.
    void push_front(waiter_base& w) noexcept {
        if (head_ != nullptr && w.deadline > head_->deadline) by_deadline_ = false;
        w.prev = nullptr;
        w.next = head_;
        (head_ ? head_->prev : tail_) = &w;
        head_ = &w;
        w.phase = waiter_phase::queued;
        w.queued_once = true;
        ++size_;
        if (tenants_ != nullptr) tenant_push(*tenants_, w, true);
    }

    // Precondition: w is queued. Leaves its phase to the caller.
    void remove(waiter_base& w) noexcept {
        (w.prev ? w.prev->next : head_) = w.next;
        (w.next ? w.next->prev : tail_) = w.prev;
        w.prev = w.next = nullptr;
        --size_;
        if (size_ == 0) by_deadline_ = true;
        if (tenants_ != nullptr) tenant_unlink(*tenants_, w);
    }

    // Whether the queue is in deadline order, as it is while every caller uses the same
    // timeout: then the expired waiters are a prefix, and a tick stops at the first that
    // is not (its cost is what it expires, not the queue's length). Removing waiters
    // keeps the order; one that arrives with an earlier deadline than the tail's, or is
    // put back at the head with a later one than the head's, clears it until the queue
    // empties.
    bool in_deadline_order() const noexcept { return by_deadline_; }

    // Whether next_to_serve() would find someone: without tenants, anyone waiting; with
    // them, a waiter whose tenant is below its quota.
    bool servable() const noexcept { return tenants_ == nullptr ? head_ != nullptr : tenant_servable(*tenants_); }

    // Without tenants the oldest waiter (newest: the newest, waiter_order::lifo); with
    // them, the oldest of the tenant that weighted fair queuing picks among those below
    // quota (nullptr: every waiting tenant is at quota).
    waiter_base* next_to_serve(bool newest = false) noexcept {
        waiter_base* w = tenants_ != nullptr ? tenant_pick(*tenants_) : newest ? tail_ : head_;
        if (w != nullptr) remove(*w);
        return w;
    }

    // For a returned connection that carries settings `label`: without tenants, the first
    // of the `window` oldest waiters that asks for exactly those (it is spared an apply(),
    // a round trip), else whom next_to_serve() picks. With no labels in use every waiter
    // asks for 0, so the head matches at once.
    waiter_base* next_to_serve(std::uint64_t label, std::size_t window) noexcept {
        if (tenants_ == nullptr) {
            std::size_t seen = 0;
            for (waiter_base* w = head_; w != nullptr && seen < window; w = w->next, ++seen) {
                if (w->want_label == label) {
                    remove(*w);
                    return w;
                }
            }
        }
        return next_to_serve(false);
    }

    // Turns the sub-queues on (once, under the lock): the waiters already queued join
    // their tenant's sub-queue in their order. resolve(w) sets w.tenant_ref.
    template <class Resolve>
    void use_tenants(tenant_table& t, Resolve&& resolve) {
        tenants_ = &t;
        for (waiter_base* w = head_; w != nullptr; w = w->next) {
            resolve(*w);
            tenant_push(t, *w, false);
        }
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
    bool by_deadline_ = true;
    tenant_table* tenants_ = nullptr;  // set once tenants are configured
};

}  // namespace connpool::detail

#include <connpool/detail/tenants.hpp>

#endif  // CONNPOOL_DETAIL_WAITER_QUEUE_HPP
