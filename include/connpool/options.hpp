// connpool: the pool's options, their defaults, and their validation.
#ifndef CONNPOOL_OPTIONS_HPP
#define CONNPOOL_OPTIONS_HPP

#include <chrono>
#include <cstddef>
#include <stdexcept>
#include <string>

namespace connpool {

// When a connection is checked before it is handed out.
enum class validation_mode {
    // Never ping on acquire. The user reports a failure with lease::discard(), and the
    // factory's is_broken() catches what it can see without I/O.
    optimistic,
    // Ping before every hand-out. Safest, and costs a round trip per acquire.
    always,
    // Ping only a connection that sat idle longer than validation_idle_threshold:
    // the window in which a server restart or a firewall can kill it unnoticed.
    when_idle,
};

// Whom a returned connection goes to while callers wait for one.
enum class handoff_policy {
    // Barging, bounded by a starvation mode (the rule of Go's sync.Mutex). A returned
    // connection goes back to the idle set, and whoever asks first takes it: usually the
    // thread that returned it, coming straight back without a wake-up (tens of
    // microseconds on a VM) or a lock. Once the oldest waiter has waited starvation_bound,
    // every return hands its connection straight to the oldest waiter, until none has
    // waited that long. A blocking waiter looks for an idle connection itself when it
    // reaches the bound, and an async waiter at the head of the queue is served directly,
    // so no waiter's wait depends on another caller coming back or on a timer.
    barging,
    // Every returned connection goes straight to the next waiter (waiter_order): one
    // wake-up per use once callers outnumber connections.
    fifo,
    // 0.2's name for the default; its quantum is now the starvation bound.
    sticky = barging,
};

// Which waiter a connection goes to when it is handed over and nobody is starving.
enum class waiter_order {
    fifo,  // the oldest first
    // The newest first: it is the most likely to be still spinning, and older ones are
    // served once they reach options::starvation_bound (handoff_policy::barging), so the
    // bound still holds. Under handoff_policy::fifo nothing bounds the oldest's wait but
    // its deadline. Tenants keep FIFO order within each tenant.
    lifo,
};

// Pool policies. An aggregate: set what you need with designated initializers,
//   connpool::options{.max_size = 20, .acquire_timeout = std::chrono::seconds(5)}
// The pool validates it at construction and throws std::invalid_argument naming the field.
struct options {
    // Idle connections the pool keeps open, and opens at start-up, in the background.
    std::size_t min_idle = 0;
    // Connections open or being opened, at most. Leased ones count.
    std::size_t max_size = 10;
    // Idle connections kept at most; the surplus closes at housekeeping. 0 means max_size.
    std::size_t max_idle = 0;
    // An idle connection above min_idle closes after this long unused. 0 disables.
    std::chrono::milliseconds idle_timeout = std::chrono::minutes(10);
    // A connection retires this long after it was opened, at its next return or while idle.
    // 0 disables.
    std::chrono::milliseconds max_lifetime = std::chrono::minutes(30);
    // Each connection's lifetime is shortened by a random part of this fraction of
    // max_lifetime, fixed when it opens, so that connections opened together do not all
    // retire together.
    double lifetime_jitter = 0.025;
    // How long acquire() waits for a connection before it fails with acquire_timeout.
    // std::chrono::milliseconds::max() means no timeout.
    std::chrono::milliseconds acquire_timeout = std::chrono::seconds(30);
    // Passed to the factory with each connect (connect_request::timeout).
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(10);
    // Whether and when a connection is pinged before a hand-out (see validation_mode).
    validation_mode validation = validation_mode::when_idle;
    // With validation_mode::when_idle: ping connections idle at least this long.
    std::chrono::milliseconds validation_idle_threshold = std::chrono::seconds(1);
    // Passed to the factory's ping().
    std::chrono::milliseconds ping_timeout = std::chrono::seconds(5);
    // Run the factory's reset() on return, off the returning caller's path. A lease can
    // opt out with lease::skip_reset().
    bool reset_on_return = true;
    // A lease held longer than this is reported once (hooks::on_leak). 0 disables.
    std::chrono::milliseconds leak_threshold = std::chrono::milliseconds(0);
    // See handoff_policy. Only matters while callers wait: an uncontended thread keeps
    // its connection as long as nobody else asks.
    handoff_policy handoff = handoff_policy::barging;
    // With handoff_policy::barging: how long the oldest waiter may wait before returns
    // are handed to it directly. Bounds every wait at about this plus one hold time.
    std::chrono::microseconds starvation_bound = std::chrono::milliseconds(1);
    // Which waiter a handed-over connection goes to while none is starving.
    waiter_order queue_order = waiter_order::fifo;
    // Callers allowed to wait at once; beyond it acquire fails at once with
    // too_many_waiters. 0 means unlimited.
    std::size_t max_waiters = 0;
    // Connects in flight at most. While connections are leased (they will come back) the
    // pool opens one at a time, so that a burst does not leave a storm of connections.
    std::size_t max_connecting = 2;
    // Backoff after a failed connect: doubles from backoff_initial up to backoff_max,
    // with random jitter of up to half the delay.
    std::chrono::milliseconds backoff_initial = std::chrono::milliseconds(100);
    // The delay after consecutive failed connects doubles up to this.
    std::chrono::milliseconds backoff_max = std::chrono::seconds(10);
    // How often housekeeping (idle timeout, lifetime, max_idle, probes, leaks) runs; the
    // timer also fires at waiters' deadlines and at the end of a connect's backoff, where
    // it only expires (an expiring waiter first takes a connection that is idle), serves
    // and connects.
    std::chrono::milliseconds housekeeping_interval = std::chrono::seconds(1);
    // Threads for blocking connects, and as many again for pings, resets and labels'
    // apply(), so that a hung connect never delays a validation or a
    // reset. Timers never run on them (probes, which never wait, run on the timer).
    std::size_t worker_threads = 2;
#ifdef NDEBUG
    bool detect_nested_acquire = false;
#else
    // Report a blocking acquire that waits while its own thread already holds a lease
    // from the same pool: the deadlock the Tn x (Cm - 1) + 1 sizing rule exists for.
    bool detect_nested_acquire = true;
#endif
};

namespace detail {

[[noreturn]] inline void invalid_option(const char* field, const std::string& value, const char* why) {
    throw std::invalid_argument(std::string("connpool::options::") + field + " = " + value + ": " + why);
}

inline std::string ms_text(std::chrono::milliseconds d) { return std::to_string(d.count()) + "ms"; }

}  // namespace detail

// Throws std::invalid_argument naming the first invalid field and its value.
inline void validate(const options& o) {
    using detail::invalid_option;
    using detail::ms_text;
    using std::to_string;
    if (o.max_size == 0) invalid_option("max_size", "0", "must be at least 1");
    if (o.min_idle > o.max_size)
        invalid_option("min_idle", to_string(o.min_idle), "must not exceed max_size");
    if (o.max_idle != 0 && o.max_idle < o.min_idle)
        invalid_option("max_idle", to_string(o.max_idle), "must be 0 or at least min_idle");
    if (o.max_idle > o.max_size) invalid_option("max_idle", to_string(o.max_idle), "must not exceed max_size");
    if (o.idle_timeout.count() < 0) invalid_option("idle_timeout", ms_text(o.idle_timeout), "must not be negative");
    if (o.max_lifetime.count() < 0) invalid_option("max_lifetime", ms_text(o.max_lifetime), "must not be negative");
    if (!(o.lifetime_jitter >= 0.0 && o.lifetime_jitter <= 0.5))
        invalid_option("lifetime_jitter", to_string(o.lifetime_jitter), "must be within [0, 0.5]");
    if (o.acquire_timeout.count() <= 0)
        invalid_option("acquire_timeout", ms_text(o.acquire_timeout), "must be positive");
    if (o.connect_timeout.count() <= 0)
        invalid_option("connect_timeout", ms_text(o.connect_timeout), "must be positive");
    if (o.validation_idle_threshold.count() < 0)
        invalid_option("validation_idle_threshold", ms_text(o.validation_idle_threshold), "must not be negative");
    if (o.ping_timeout.count() <= 0) invalid_option("ping_timeout", ms_text(o.ping_timeout), "must be positive");
    if (o.leak_threshold.count() < 0)
        invalid_option("leak_threshold", ms_text(o.leak_threshold), "must not be negative");
    if (o.starvation_bound.count() <= 0)
        invalid_option("starvation_bound", std::to_string(o.starvation_bound.count()) + "us", "must be positive");
    if (o.handoff != handoff_policy::barging && o.handoff != handoff_policy::fifo)
        invalid_option("handoff", std::to_string(static_cast<int>(o.handoff)), "is not a handoff_policy");
    if (o.queue_order != waiter_order::fifo && o.queue_order != waiter_order::lifo)
        invalid_option("queue_order", std::to_string(static_cast<int>(o.queue_order)), "is not a waiter_order");
    if (o.validation != validation_mode::optimistic && o.validation != validation_mode::always &&
        o.validation != validation_mode::when_idle)
        invalid_option("validation", std::to_string(static_cast<int>(o.validation)), "is not a validation_mode");
    if (o.max_connecting == 0) invalid_option("max_connecting", "0", "must be at least 1");
    if (o.backoff_initial.count() <= 0)
        invalid_option("backoff_initial", ms_text(o.backoff_initial), "must be positive");
    if (o.backoff_max < o.backoff_initial)
        invalid_option("backoff_max", ms_text(o.backoff_max), "must be at least backoff_initial");
    if (o.housekeeping_interval.count() <= 0)
        invalid_option("housekeeping_interval", ms_text(o.housekeeping_interval), "must be positive");
    if (o.worker_threads == 0) invalid_option("worker_threads", "0", "must be at least 1");
}

}  // namespace connpool

#endif  // CONNPOOL_OPTIONS_HPP
