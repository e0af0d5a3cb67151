// connpool: a lease from a cluster: a pool lease that also says which host and role it came from.
#ifndef CONNPOOL_CLUSTER_CLUSTER_LEASE_HPP
#define CONNPOOL_CLUSTER_CLUSTER_LEASE_HPP

#include <connpool/cluster/intent.hpp>

#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>

namespace connpool {

namespace detail {
// What a lease needs to know about its host after the cluster has moved on: its name, and the
// count of outstanding leases the balancer reads. Shared, so a lease may outlive its cluster.
struct host_tag {
    std::string name;
    std::size_t index = 0;
    std::atomic<std::size_t> outstanding{0};
};
}  // namespace detail

// Move-only, like the pool lease it wraps (PoolLease is pool<F>::lease_type). Returning it
// (destructor, release(), discard()) gives the connection back to its host's pool and lowers
// that host's outstanding count, which the balancer uses.
//
// Thread-safety: as the pool's lease: one thread at a time, movable across threads.
template <class PoolLease>
class cluster_lease {
public:
    // The wrapped pool lease's type.
    using pool_lease_type = PoolLease;
    // The connection type the lease gives access to.
    using connection_type = typename PoolLease::connection_type;

    cluster_lease() noexcept = default;

    // A lease of host's pool, in the given role; the cluster makes these.
    cluster_lease(PoolLease inner, std::shared_ptr<detail::host_tag> host, host_role role) noexcept
        : inner_(std::move(inner)), host_(std::move(host)), role_(role) {
        if (inner_ && host_) host_->outstanding.fetch_add(1, std::memory_order_relaxed);
        else host_.reset();
    }

    // Moves the lease; other is empty afterwards.
    cluster_lease(cluster_lease&& other) noexcept
        : inner_(std::move(other.inner_)), host_(std::move(other.host_)), role_(other.role_) {}

    // Gives back the lease held, if any, then takes other's; other is empty afterwards.
    cluster_lease& operator=(cluster_lease&& other) noexcept {
        if (this != &other) {
            release();
            inner_ = std::move(other.inner_);
            host_ = std::move(other.host_);
            role_ = other.role_;
        }
        return *this;
    }

    cluster_lease(const cluster_lease&) = delete;
    cluster_lease& operator=(const cluster_lease&) = delete;

    ~cluster_lease() { release(); }

    // Preconditions for the accessors: the lease is not empty.
    connection_type* operator->() const noexcept { return &inner_.get(); }
    // The connection.
    connection_type& operator*() const noexcept { return inner_.get(); }
    // The connection.
    connection_type& get() const noexcept { return inner_.get(); }

    // True when the lease holds a connection.
    explicit operator bool() const noexcept { return static_cast<bool>(inner_); }

    // The host's name as given to the cluster, and its index in the host list.
    // Preconditions: the lease is not empty.
    const std::string& host() const noexcept { return host_->name; }
    // The host's index in the cluster's host list.
    std::size_t host_index() const noexcept { return host_->index; }
    // The host's role when the lease was handed out. A primary's lease stays one even if the
    // host is demoted while it is held: its writes then fail on the server.
    host_role role() const noexcept { return role_; }

    // The wrapped pool lease, e.g. for skip_reset() or acquired_at().
    PoolLease& pool_lease() noexcept { return inner_; }
    // The wrapped pool lease (const).
    const PoolLease& pool_lease() const noexcept { return inner_; }

    // Gives the connection back now; the lease becomes empty. No-op when empty.
    void release() noexcept {
        inner_.release();
        done();
    }

    // Closes the connection instead of reusing it (after a fatal error). The lease becomes empty.
    void discard() noexcept {
        inner_.discard();
        done();
    }

private:
    void done() noexcept {
        if (auto h = std::exchange(host_, nullptr)) h->outstanding.fetch_sub(1, std::memory_order_relaxed);
    }

    PoolLease inner_;
    std::shared_ptr<detail::host_tag> host_;
    host_role role_ = host_role::unknown;
};

}  // namespace connpool

#endif  // CONNPOOL_CLUSTER_CLUSTER_LEASE_HPP
