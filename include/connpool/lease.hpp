// connpool: the lease, a move-only handle that gives its connection back exactly once.
#ifndef CONNPOOL_LEASE_HPP
#define CONNPOOL_LEASE_HPP

#include <connpool/detail/slot.hpp>

#include <cassert>
#include <chrono>
#include <source_location>
#include <utility>

namespace connpool {

namespace detail {
struct lease_access;
}

// A lease holds one pooled connection. Its destructor gives the connection back, on
// every path: normal scope exit, an exception, a coroutine destroyed while suspended, or
// a lease that outlives its pool (the connection is then closed). It is move-only and
// one pointer in size.
//
// Thread-safety: a lease is used by one thread at a time, like the connection it holds;
// it may be moved to, and destroyed on, any thread.
template <class Connection>
class lease {
public:
    // The connection type the lease gives access to.
    using connection_type = Connection;

    // An empty lease, as a failed acquire returns.
    lease() noexcept = default;

    // Moves the lease; other is empty afterwards.
    lease(lease&& other) noexcept : slot_(std::exchange(other.slot_, nullptr)) {}

    // Gives back the connection held, if any, then takes other's; other is empty afterwards.
    lease& operator=(lease&& other) noexcept {
        if (this != &other) {
            release();
            slot_ = std::exchange(other.slot_, nullptr);
        }
        return *this;
    }

    lease(const lease&) = delete;
    lease& operator=(const lease&) = delete;

    ~lease() { release(); }

    // Precondition for the accessors: the lease is not empty.
    Connection* operator->() const noexcept { return &get(); }
    // The connection.
    Connection& operator*() const noexcept { return get(); }
    // The connection.
    Connection& get() const noexcept {
        assert(slot_ != nullptr && "connpool::lease: access through an empty lease");
        return *slot_->conn;
    }

    // True when the lease holds a connection.
    explicit operator bool() const noexcept { return slot_ != nullptr; }

    // Gives the connection back now; the lease becomes empty. No-op on an empty lease.
    void release() noexcept {
        if (auto* s = std::exchange(slot_, nullptr)) s->owner->give_back(*s, false);
    }

    // Closes the connection instead of reusing it, e.g. after a fatal error, and frees its
    // place in the pool for a new one. The lease becomes empty.
    void discard() noexcept {
        if (auto* s = std::exchange(slot_, nullptr)) s->owner->give_back(*s, true);
    }

    // This lease's return skips the pool's reset on return (options::reset_on_return), for a
    // caller that knows it left the connection clean.
    void skip_reset() noexcept {
        if (slot_ != nullptr) slot_->skip_reset = true;
    }

    // When and where the connection was acquired. Preconditions: the lease is not empty.
    // (On the coarse steady clock: within a few milliseconds.)
    std::chrono::steady_clock::time_point acquired_at() const noexcept {
        return slot_->leased_at.load(std::memory_order_relaxed);
    }
    // Where the lease was taken (the acquire's call site).
    std::source_location location() const noexcept { return slot_->site.load(std::memory_order_relaxed); }

private:
    friend struct detail::lease_access;
    explicit lease(detail::slot<Connection>* s) noexcept : slot_(s) {}

    detail::slot<Connection>* slot_ = nullptr;
};

namespace detail {
// The pool makes and unmakes leases through this, so that users cannot.
struct lease_access {
    template <class C>
    static lease<C> make(slot<C>* s) noexcept {
        return lease<C>(s);
    }
    template <class C>
    static slot<C>* take(lease<C>& l) noexcept {
        return std::exchange(l.slot_, nullptr);
    }
};
}  // namespace detail

}  // namespace connpool

#endif  // CONNPOOL_LEASE_HPP
