// connpool internals: what the pool knows about connecting: connects in flight, the run
// of failures, the last error and the backoff. Part of the state machine (pool_state
// owns one, under the same lock); it starts nothing itself.
#ifndef CONNPOOL_DETAIL_CONNECTOR_HPP
#define CONNPOOL_DETAIL_CONNECTOR_HPP

#include <connpool/detail/clock.hpp>
#include <connpool/detail/decisions.hpp>
#include <connpool/error.hpp>
#include <connpool/connect_request.hpp>
#include <connpool/options.hpp>

#include <chrono>
#include <cstdint>
#include <exception>
#include <random>
#include <string>

namespace connpool::detail {

class connector {
public:
    connector(const options& o, std::uint64_t seed) : opts_(o), rng_(seed) { request_.timeout = o.connect_timeout; }

    std::size_t in_flight() const noexcept { return in_flight_; }
    void started() noexcept { ++in_flight_; }

    // What the next connect is told: its timeout and the failures before it.
    const connect_request& request() const noexcept { return request_; }

    void succeeded() noexcept {
        --in_flight_;
        request_.attempt = 0;
        last_error_.clear();
        last_was_handout_ = false;
        backoff_until_ = time_point{};
    }

    void failed(error_info e, time_point now) {
        --in_flight_;
        ++request_.attempt;
        const bool timed_out = e.code == errc::connect_timeout;
        // Adapters may already say "connect failed: ..."; say it once.
        const std::string prefix = timed_out ? "connect timed out" : "connect failed";
        std::string message = e.what();
        if (message.rfind(prefix, 0) != 0) message = prefix + ": " + message;
        last_error_ =
            error_info{make_error_code(timed_out ? errc::connect_timeout : errc::connect_failed), std::move(message)};
        last_was_handout_ = false;
        backoff_until_ = now + backoff_delay(request_.attempt, opts_.backoff_initial, opts_.backoff_max, unit());
    }

    // A new connection connected but failed its first hand-out (apply, validation): a new
    // connection will not fix that, so it counts as a failed connect for the backoff, and
    // its error (which names the step) is the one callers are told.
    // Connects themselves succeed then, so it never makes other callers fail fast: they
    // wait for the backoff and a new connection (an unlabelled one may well work).
    void handout_failed(error_info e, time_point now) {
        ++request_.attempt;
        last_error_ = std::move(e);
        last_was_handout_ = true;
        backoff_until_ = now + backoff_delay(request_.attempt, opts_.backoff_initial, opts_.backoff_max, unit());
    }

    bool in_backoff(time_point now) const noexcept { return now < backoff_until_; }
    time_point backoff_until() const noexcept { return backoff_until_; }
    const error_info& last_error() const noexcept { return last_error_; }

    // While no connection exists or is being made, and the last connect failed recently,
    // waiting could only end in a timeout: say why at once instead.
    bool failing_fast(std::size_t open, time_point now) const noexcept {
        return last_error_ && !last_was_handout_ && open == 0 && in_flight_ == 0 && now < backoff_until_;
    }

    std::string fast_fail_message(time_point now) const {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(backoff_until_ - now).count();
        return last_error_.message + " (the pool retries in " + std::to_string(left) + " ms)";
    }

    // A new connection's deadline, its jitter drawn once, now.
    time_point expiry(time_point now) {
        const auto life = jittered_lifetime(opts_.max_lifetime, opts_.lifetime_jitter, unit());
        return life.count() == 0 ? time_point::max() : now + life;
    }

    double unit() { return std::uniform_real_distribution<double>(0.0, 1.0)(rng_); }

private:
    const options& opts_;
    std::mt19937_64 rng_;
    connect_request request_;
    std::size_t in_flight_ = 0;
    error_info last_error_;
    bool last_was_handout_ = false;  // last_error_ is a hand-out step's, not a connect's
    time_point backoff_until_{};
};

// Inside a catch block: the exception in flight, as the error a failed factory call
// reports. The one place that turns a factory's exception into an error.
inline error_info thrown_error() {
    try {
        throw;
    } catch (const std::exception& ex) {
        return error_info{errc::factory_exception, std::string("factory threw: ") + ex.what()};
    } catch (...) {
        return error_info{errc::factory_exception, "factory threw: unknown exception"};
    }
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_CONNECTOR_HPP
