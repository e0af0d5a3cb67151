// connpool: optional event hooks. An unset hook costs one predictable branch.
#ifndef CONNPOOL_HOOKS_HPP
#define CONNPOOL_HOOKS_HPP

#include <connpool/error.hpp>
#include <connpool/stats.hpp>

#include <chrono>
#include <functional>
#include <source_location>
#include <thread>

namespace connpool {

// Passed to hooks::on_connect after every connect attempt.
struct connect_event {
    error_info error;                    // empty on success
    std::chrono::nanoseconds duration{};  // how long the connect took
    unsigned attempt = 0;                // consecutive failures before it
};

// Passed to hooks::on_acquire when a lease is handed out.
struct acquire_event {
    // Where the lease was taken.
    std::source_location location;
    std::chrono::nanoseconds waited{};  // 0 for an acquire served at once
};

// Passed to hooks::on_return when a lease is given back.
struct return_event {
    std::source_location location;       // where the lease was taken
    std::chrono::nanoseconds held_for{};  // coarse clock
};

// Passed to hooks::on_close when the pool closes a connection.
struct close_event {
    // Why the pool closed it.
    close_reason reason;
};

// Passed to hooks::on_leak when a lease is held longer than options::leak_threshold.
struct leak_event {
    lease_info lease;  // who took it, where, how long ago
};

// Passed to hooks::on_nested_acquire (see options::detect_nested_acquire).
struct nested_acquire_event {
    std::source_location waiting_at;  // the acquire that is about to block
    lease_info already_held;          // a lease the same thread holds from the same pool
    // Instead: the blocking acquire runs on the pool's own io thread, which the async
    // connect it waits for needs (already_held is then empty).
    bool on_io_thread = false;
};

// Each hook may be called from any thread, including the pool's workers, and must not
// block or call back into the pool in a way that waits on it. The hooks on the acquire
// and return paths run on the caller's thread, so keep them short.
struct hooks {
    // After every connect attempt, successful or not.
    std::function<void(const connect_event&)> on_connect;
    // When a lease is handed out, on the acquiring thread.
    std::function<void(const acquire_event&)> on_acquire;
    // When a lease is given back, on the returning thread.
    std::function<void(const return_event&)> on_return;
    // When the pool closes a connection, with the reason.
    std::function<void(const close_event&)> on_close;
    // Unset: one line on std::clog.
    std::function<void(const leak_event&)> on_leak;
    // Unset: one line on std::clog (only with options::detect_nested_acquire).
    std::function<void(const nested_acquire_event&)> on_nested_acquire;
};

}  // namespace connpool

#endif  // CONNPOOL_HOOKS_HPP
