// connpool internals: the pool's counters and histograms, stats(), leases(), and the
// messages a person reads. Part of the state machine's data, under its lock, except the
// per-slot figures that each lease's holder writes.
#ifndef CONNPOOL_DETAIL_REPORTING_HPP
#define CONNPOOL_DETAIL_REPORTING_HPP

#include <connpool/detail/clock.hpp>
#include <connpool/detail/connector.hpp>
#include <connpool/detail/histogram.hpp>
#include <connpool/detail/slot.hpp>
#include <connpool/stats.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace connpool::detail {

inline std::string seconds_text(std::chrono::nanoseconds d) {
    std::ostringstream os;
    os.setf(std::ios::fixed);
    os.precision(1);
    os << std::chrono::duration<double>(d).count() << " s";
    return os.str();
}

inline std::string ms_count(std::chrono::nanoseconds d) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(d).count());
}

class reporting {
public:
    std::uint64_t rejected = 0;
    std::uint64_t fast_failed = 0;
    std::uint64_t cancelled = 0;
    std::uint64_t timeouts = 0;
    std::uint64_t connect_failures = 0;
    std::uint64_t leaks_reported = 0;

    void created(std::chrono::nanoseconds took) noexcept {
        ++created_;
        record(create_time_, took);
    }

    // Waiters the timer's ticks looked at, in all: a tick costs what it expires or
    // serves, not the queue's length (tests check it; not in stats()).
    std::uint64_t tick_visits = 0;
    // Connections that failed a step of their hand-out for a caller (apply, validation).
    std::uint64_t handout_failures = 0;
    // Labels: apply() runs started and failed (under the lock), and labelled acquires
    // that found their settings already on the connection (counted where they are found,
    // without the lock).
    std::uint64_t label_applies = 0;
    std::uint64_t label_apply_failures = 0;
    std::atomic<std::uint64_t> label_hits{0};

    // An acquire that waited in the queue was served.
    void waited(std::chrono::nanoseconds wait) noexcept {
        ++waited_;
        record(wait_time_, wait);
        longest_wait_ = std::max(longest_wait_, wait);
    }

    void closed(slot_base& s, close_reason why) noexcept {
        acquired_closed_ += s.acquires.exchange(0, std::memory_order_relaxed);
        ++closed_by_[static_cast<std::size_t>(why)];
    }

    // Use time needs two precise clock reads per lease (60 ns each on a VM, more than the
    // rest of the fast path), so it is measured only once somebody looked at stats(), and
    // then on one lease in use_time_sample_every per connection, each counted that many
    // times. A pool nobody watches pays one relaxed load per lease.
    static constexpr std::uint64_t use_time_sample_every = 16;
    bool measuring_use_time() const noexcept { return measure_use_.load(std::memory_order_relaxed); }
    void start_measuring_use_time() noexcept { measure_use_.store(true, std::memory_order_relaxed); }

    template <class Slots>
    pool_stats snapshot(const Slots& slots, time_point) const {
        pool_stats st;
        std::uint64_t live_acquires = 0;
        slots.for_each([&](const slot_base& s) {
            const auto state = s.load();
            if (counts_as_idle(state)) ++st.idle;
            if (state == slot_state::leased || state == slot_state::orphaned) ++st.in_use;
            live_acquires += s.acquires.load(std::memory_order_relaxed);
            s.use_time.add_to(st.use_time);
        });
        st.acquired = acquired_closed_ + live_acquires;
        st.waited = waited_;
        st.created = created_;
        st.connect_failures = connect_failures;
        st.timeouts = timeouts;
        st.cancelled = cancelled;
        st.rejected = rejected;
        st.fast_failed = fast_failed;
        st.leaks_reported = leaks_reported;
        st.label_hits = label_hits.load(std::memory_order_relaxed);
        st.label_applies = label_applies;
        st.label_apply_failures = label_apply_failures;
        st.closed = closed_by_;
        // Acquires served at once waited 0: they count in the first bucket.
        st.wait_time = wait_time_;
        const std::uint64_t zeros = st.acquired > waited_ ? st.acquired - waited_ : 0;
        st.wait_time.buckets[0] += zeros;
        st.wait_time.count += zeros;
        const auto longest = std::chrono::duration_cast<std::chrono::microseconds>(longest_wait_);
        st.wait_p50 = quantile(st.wait_time, 0.50, longest);
        st.wait_p99 = quantile(st.wait_time, 0.99, longest);
        st.wait_max = longest;
        st.create_time = create_time_;
        return st;
    }

    static lease_info info_of(const slot_base& s, time_point now) {
        return lease_info{s.site.load(std::memory_order_relaxed), now - s.leased_at.load(std::memory_order_relaxed),
                          s.holder.load(std::memory_order_relaxed)};
    }

    template <class Slots>
    std::vector<lease_info> leases(const Slots& slots, time_point now) const {
        std::vector<lease_info> out;
        slots.for_each([&](const slot_base& s) {
            const auto st = s.load();
            if (st == slot_state::leased || st == slot_state::orphaned) out.push_back(info_of(s, now));
        });
        return out;
    }

    // Tells "waiting on a connect" from "exhausted", and says for how long it really waited.
    template <class Slots>
    std::string timeout_message(const Slots& slots, time_point now, std::chrono::nanoseconds waited, std::size_t max_size,
                                std::size_t waiting, bool connecting, const connector& c) const {
        std::size_t idle = 0, in_use = 0, open = 0, busy = 0;
        const slot_base* oldest = nullptr;
        slots.for_each([&](const slot_base& s) {
            const auto st = s.load();
            if (holds_connection(st)) ++open;
            if (counts_as_idle(st)) ++idle;
            if (st == slot_state::resetting || st == slot_state::pinging || st == slot_state::applying ||
                st == slot_state::closing)
                ++busy;
            if (st == slot_state::leased || st == slot_state::orphaned) {
                ++in_use;
                if (oldest == nullptr || s.leased_at.load() < oldest->leased_at.load()) oldest = &s;
            }
        });
        std::string m = "acquire timed out after " + ms_count(waited) + " ms: ";
        if (connecting || open < max_size) {
            m += "waiting on a connect (" + std::to_string(c.in_flight()) + " in flight, " + std::to_string(open) +
                 "/" + std::to_string(max_size) + " open, ";
        } else {
            m += "pool exhausted (";
        }
        m += std::to_string(in_use) + "/" + std::to_string(max_size) + " in use, ";
        if (busy > 0) m += std::to_string(busy) + " being reset, validated or closed, ";
        m += std::to_string(idle) + " idle, " + std::to_string(waiting) + " waiting)";
        if (oldest != nullptr) {
            m += "; oldest lease held " + seconds_text(now - oldest->leased_at.load()) +
                 ", taken at " + connpool::to_string(oldest->site.load(std::memory_order_relaxed));
        }
        if (c.last_error()) m += "; last connect error: " + c.last_error().message;
        return m;
    }

private:
    std::uint64_t created_ = 0;
    std::uint64_t waited_ = 0;
    std::uint64_t acquired_closed_ = 0;
    std::array<std::uint64_t, close_reason_count> closed_by_{};
    duration_histogram wait_time_;
    duration_histogram create_time_;
    std::chrono::nanoseconds longest_wait_{};
    std::atomic<bool> measure_use_{false};
};

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_REPORTING_HPP
