// connpool internals: a fixed log-scale histogram of acquire waits, for percentiles
// without storing samples or allocating.
#ifndef CONNPOOL_DETAIL_HISTOGRAM_HPP
#define CONNPOOL_DETAIL_HISTOGRAM_HPP

#include <array>
#include <bit>
#include <chrono>
#include <cstdint>

namespace connpool::detail {

class wait_histogram {
public:
    // Bucket i holds waits in [2^(i-1), 2^i) microseconds; bucket 0 holds waits under 1 us.
    static constexpr std::size_t bucket_count = 40;

    void record(std::chrono::nanoseconds wait) noexcept {
        const auto us = static_cast<std::uint64_t>(std::max<std::int64_t>(0, wait.count() / 1000));
        ++buckets_[std::min<std::size_t>(std::bit_width(us), bucket_count - 1)];
        max_us_ = std::max(max_us_, us);
    }

    // Waits of zero that were not recorded one by one (acquires served without waiting).
    std::uint64_t recorded() const noexcept {
        std::uint64_t n = 0;
        for (auto b : buckets_) n += b;
        return n;
    }

    // The q-quantile (0..1), counting `zeros` extra waits of zero; the upper edge of the
    // bucket, so it errs on the side of a longer wait.
    std::chrono::microseconds quantile(double q, std::uint64_t zeros) const noexcept {
        const std::uint64_t total = recorded() + zeros;
        if (total == 0) return std::chrono::microseconds(0);
        auto rank = static_cast<std::uint64_t>(q * static_cast<double>(total - 1)) + 1;
        if (rank <= zeros) return std::chrono::microseconds(0);
        rank -= zeros;
        for (std::size_t i = 0; i < bucket_count; ++i) {
            if (rank <= buckets_[i]) {
                const std::uint64_t edge = i == 0 ? 1 : (std::uint64_t{1} << i);
                return std::chrono::microseconds(static_cast<std::int64_t>(std::min(edge, max_us_)));
            }
            rank -= buckets_[i];
        }
        return max();
    }

    std::chrono::microseconds max() const noexcept {
        return std::chrono::microseconds(static_cast<std::int64_t>(max_us_));
    }

private:
    std::array<std::uint64_t, bucket_count> buckets_{};
    std::uint64_t max_us_ = 0;
};

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_HISTOGRAM_HPP
