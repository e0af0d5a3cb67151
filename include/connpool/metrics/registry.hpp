// connpool metrics: the pools a service exports, by name.
//
// Each pool is registered with a function that returns its pool_stats, so any factory's
// pool (or a pool behind a wrapper) fits, and the registry holds no reference to a pool
// type. The Prometheus Collectable (connpool/prometheus.hpp) and a hand-written /metrics
// endpoint both read pools through it.
#ifndef CONNPOOL_METRICS_REGISTRY_HPP
#define CONNPOOL_METRICS_REGISTRY_HPP

#include <connpool/metrics/instruments.hpp>
#include <connpool/stats.hpp>

#include <concepts>
#include <cstddef>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace connpool::metrics {

// Thread-safety: every member may be called from any thread at once.
//
// Lifetimes: once remove() has returned, the removed function is not running and is never
// called again, so a pool may be destroyed right after its remove(). collect() calls the
// functions with the registry's lock held, which is what makes that true: a function must
// therefore not call back into the same registry.
class pool_registry {
public:
    // What a pool is registered with: a function that returns its stats().
    using source = std::function<pool_stats()>;

    // Throws std::invalid_argument when name is already registered or source is empty.
    //
    // add() calls the function once, outside the lock: a pool measures some things only
    // once somebody has looked at its stats() (use_time costs a clock read per return), so
    // a pool registered for export is measured from its registration, not its first scrape.
    void add(std::string name, source s) {
        if (!s) throw std::invalid_argument("connpool::metrics::pool_registry::add: empty source for pool '" + name + "'");
        try {
            (void)s();
        } catch (...) {
            // A source that fails now may work by the first scrape; collect() skips it until then.
        }
        std::lock_guard lock(mutex_);
        for (const auto& e : entries_) {
            if (e.name == name) {
                throw std::invalid_argument("connpool::metrics::pool_registry::add: pool name '" + name +
                                            "' is already registered");
            }
        }
        entries_.push_back({std::move(name), std::move(s)});
    }

    // Any object with a stats() returning pool_stats, e.g. connpool::pool<F>. The registry
    // keeps a reference: remove() the name before the pool is destroyed.
    template <class Pool>
        requires requires(const Pool& p) {
            { p.stats() } -> std::convertible_to<pool_stats>;
        }
    void add(std::string name, const Pool& pool) {
        add(std::move(name), source([&pool] { return pool_stats(pool.stats()); }));
    }

    // Returns false when no pool has that name.
    bool remove(std::string_view name) {
        std::lock_guard lock(mutex_);
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if (it->name == name) {
                entries_.erase(it);
                return true;
            }
        }
        return false;
    }

    // True when a pool is registered under name.
    bool contains(std::string_view name) const {
        std::lock_guard lock(mutex_);
        for (const auto& e : entries_)
            if (e.name == name) return true;
        return false;
    }

    // The number of pools registered.
    std::size_t size() const {
        std::lock_guard lock(mutex_);
        return entries_.size();
    }

    // Every pool's stats, in the order they were added. A function that throws leaves its
    // pool out of this snapshot instead of failing the whole scrape.
    std::vector<named_stats> collect() const {
        std::lock_guard lock(mutex_);
        std::vector<named_stats> out;
        out.reserve(entries_.size());
        for (const auto& e : entries_) {
            try {
                out.push_back({e.name, e.fn()});
            } catch (...) {
                // Left out: one broken source must not hide the other pools.
            }
        }
        return out;
    }

private:
    struct entry {
        std::string name;
        source fn;
    };

    mutable std::mutex mutex_;
    std::vector<entry> entries_;
};

}  // namespace connpool::metrics

#endif  // CONNPOOL_METRICS_REGISTRY_HPP
