// connpool internals: recording into the public duration_histogram, and its quantiles,
// without storing samples or allocating.
#ifndef CONNPOOL_DETAIL_HISTOGRAM_HPP
#define CONNPOOL_DETAIL_HISTOGRAM_HPP

#include <connpool/stats.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>

namespace connpool::detail {

inline std::size_t bucket_of(std::chrono::nanoseconds d) noexcept {
    const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count() / 1000));
    return std::min<std::size_t>(std::bit_width(us), duration_histogram::bucket_count - 1);
}

// Under the pool's lock.
inline void record(duration_histogram& h, std::chrono::nanoseconds d) noexcept {
    ++h.buckets[bucket_of(d)];
    ++h.count;
    h.sum += std::max(d, std::chrono::nanoseconds(0));
}

// The q-quantile (0..1): the upper edge of its bucket, capped at the longest sample, so
// it errs on the side of a longer wait.
inline std::chrono::microseconds quantile(const duration_histogram& h, double q,
                                          std::chrono::microseconds longest) noexcept {
    if (h.count == 0) return std::chrono::microseconds(0);
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(h.count - 1)) + 1;
    for (std::size_t i = 0; i < duration_histogram::bucket_count; ++i) {
        if (rank <= h.buckets[i]) {
            if (i == 0) return std::chrono::microseconds(0);
            const auto edge = static_cast<std::int64_t>(duration_histogram::upper_bound_us(i));
            return std::min(std::chrono::microseconds(edge), longest);
        }
        rank -= h.buckets[i];
    }
    return longest;
}

// A histogram one writer fills without a lock and any thread reads: each slot keeps one
// for its leases' use time, written only by the lease's holder, so recording touches no
// shared cache line. Readers sum them into a duration_histogram.
class single_writer_histogram {
public:
    // weight: how many samples this one stands for.
    void record(std::chrono::nanoseconds d, std::uint64_t weight = 1) noexcept {
        auto& b = buckets_[bucket_of(d)];
        b.store(b.load(std::memory_order_relaxed) + weight, std::memory_order_relaxed);
        const auto ns = static_cast<std::uint64_t>(std::max<std::int64_t>(0, d.count()));
        sum_ns_.store(sum_ns_.load(std::memory_order_relaxed) + weight * ns, std::memory_order_relaxed);
    }

    void add_to(duration_histogram& h) const noexcept {
        for (std::size_t i = 0; i < duration_histogram::bucket_count; ++i) {
            const auto n = buckets_[i].load(std::memory_order_relaxed);
            h.buckets[i] += n;
            h.count += n;
        }
        h.sum += std::chrono::nanoseconds(static_cast<std::int64_t>(sum_ns_.load(std::memory_order_relaxed)));
    }

private:
    std::atomic<std::uint64_t> buckets_[duration_histogram::bucket_count]{};
    std::atomic<std::uint64_t> sum_ns_{0};
};

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_HISTOGRAM_HPP
