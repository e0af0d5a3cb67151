// The baselines connpool is measured against, in the same binaries and runs: the textbook
// pool (one std::mutex, one std::condition_variable, a std::deque of idle connections),
// and the same design growing on demand (for the burst test).
//
// They are written as a competent programmer would write them from the textbook, not
// handicapped: the idle list is LIFO (warm connections first), the lease is RAII, and
// notify_one() runs after the lock is released so that the woken thread does not block on it.
#ifndef CONNPOOL_BENCH_TEXTBOOK_POOL_HPP
#define CONNPOOL_BENCH_TEXTBOOK_POOL_HPP

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <utility>

namespace bench {

template <class Connection>
class textbook_pool {
public:
    class lease {
    public:
        lease() = default;
        lease(textbook_pool* p, Connection* c) noexcept : pool_(p), conn_(c) {}
        lease(lease&& o) noexcept : pool_(o.pool_), conn_(std::exchange(o.conn_, nullptr)) {}
        lease& operator=(lease&& o) noexcept {
            if (this != &o) {
                reset();
                pool_ = o.pool_;
                conn_ = std::exchange(o.conn_, nullptr);
            }
            return *this;
        }
        ~lease() { reset(); }
        Connection* operator->() const noexcept { return conn_; }
        Connection& operator*() const noexcept { return *conn_; }
        explicit operator bool() const noexcept { return conn_ != nullptr; }
        void reset() noexcept {
            if (conn_ != nullptr) pool_->put(std::exchange(conn_, nullptr));
        }

    private:
        textbook_pool* pool_ = nullptr;
        Connection* conn_ = nullptr;
    };

    // Opens all `size` connections up front with make().
    textbook_pool(std::size_t size, const std::function<Connection()>& make) {
        for (std::size_t i = 0; i < size; ++i) {
            owned_.push_back(std::make_unique<Connection>(make()));
            idle_.push_back(owned_.back().get());
        }
    }

    lease acquire() {
        std::unique_lock lk(mutex_);
        cv_.wait(lk, [&] { return !idle_.empty(); });
        Connection* c = idle_.back();
        idle_.pop_back();
        return lease(this, c);
    }

private:
    void put(Connection* c) {
        {
            std::lock_guard lk(mutex_);
            idle_.push_back(c);
        }
        cv_.notify_one();
    }

    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<Connection*> idle_;
    std::deque<std::unique_ptr<Connection>> owned_;
};

// The textbook pool that grows on demand: an acquire that finds nothing idle opens a new
// connection (outside the lock) while the pool is below max_size. It has no notion of a
// connection that will come back soon, so a burst opens a connection per waiter.
template <class Connection>
class growing_pool {
public:
    growing_pool(std::size_t min_idle, std::size_t max_size, std::function<Connection()> make)
        : max_size_(max_size), make_(std::move(make)) {
        for (std::size_t i = 0; i < min_idle; ++i) {
            owned_.push_back(std::make_unique<Connection>(make_()));
            idle_.push_back(owned_.back().get());
        }
        open_ = min_idle;
    }

    class lease_type {
    public:
        lease_type(growing_pool* p, Connection* c) noexcept : pool_(p), conn_(c) {}
        lease_type(lease_type&& o) noexcept : pool_(o.pool_), conn_(std::exchange(o.conn_, nullptr)) {}
        lease_type& operator=(lease_type&&) = delete;
        ~lease_type() {
            if (conn_ != nullptr) pool_->put(conn_);
        }
        Connection* operator->() const noexcept { return conn_; }
        explicit operator bool() const noexcept { return conn_ != nullptr; }

    private:
        growing_pool* pool_;
        Connection* conn_;
    };

    lease_type acquire() {
        std::unique_lock lk(mutex_);
        for (;;) {
            if (!idle_.empty()) {
                Connection* c = idle_.back();
                idle_.pop_back();
                return lease_type(this, c);
            }
            if (open_ < max_size_) {
                ++open_;
                lk.unlock();
                auto owned = std::make_unique<Connection>(make_());
                Connection* c = owned.get();
                lk.lock();
                owned_.push_back(std::move(owned));
                return lease_type(this, c);
            }
            cv_.wait(lk);
        }
    }

    std::size_t open() {
        std::lock_guard lk(mutex_);
        return open_;
    }

private:
    void put(Connection* c) {
        {
            std::lock_guard lk(mutex_);
            idle_.push_back(c);
        }
        cv_.notify_one();
    }

    std::size_t max_size_;
    std::function<Connection()> make_;
    std::mutex mutex_;
    std::condition_variable cv_;
    std::deque<Connection*> idle_;
    std::deque<std::unique_ptr<Connection>> owned_;
    std::size_t open_ = 0;
};

}  // namespace bench

#endif  // CONNPOOL_BENCH_TEXTBOOK_POOL_HPP
