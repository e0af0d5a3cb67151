// connpool internals: the pool's one timer, for every deadline (async waiters' timeouts,
// idle timeout, lifetime, probes, leaks, backoff).
//
// The pool object owns it, not the shared core that leases keep alive: nothing bound to
// the user's io_context outlives the pool object, so a lease returned after the pool and
// its io_context are gone touches no freed timer. A pool made without an executor gets an
// internal io_context on a thread of its own that runs this timer and the pool's
// completions; it never runs a factory call, so a hung connect or reset cannot delay a
// deadline.
#ifndef CONNPOOL_DETAIL_HOUSEKEEPER_HPP
#define CONNPOOL_DETAIL_HOUSEKEEPER_HPP

#include <connpool/detail/clock.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/strand.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <type_traits>

namespace connpool::detail {

namespace asio = boost::asio;

// Timers of a clock other than steady_clock (the tests' manual clock) cannot be slept
// on: the reactor wakes every millisecond to look at the clock again.
template <class Clock>
struct pool_wait_traits {
    static typename Clock::duration to_wait_duration(const typename Clock::duration& d) {
        if constexpr (std::is_same_v<Clock, std::chrono::steady_clock>) {
            return d;
        } else {
            return std::min<typename Clock::duration>(d, std::chrono::milliseconds(1));
        }
    }
    static typename Clock::duration to_wait_duration(const typename Clock::time_point& t) {
        return to_wait_duration(t - Clock::now());
    }
};

template <class Clock>
class housekeeper : public std::enable_shared_from_this<housekeeper<Clock>> {
public:
    using executor_type = asio::any_io_executor;

    // ex empty: make the internal io_context and its thread.
    explicit housekeeper(std::optional<executor_type> ex) {
        if (ex) {
            ex_ = *ex;
        } else {
            internal_ = std::make_shared<internal>();
            ex_ = internal_->ctx.get_executor();
        }
        timer_.emplace(ex_);
    }

    housekeeper(const housekeeper&) = delete;
    housekeeper& operator=(const housekeeper&) = delete;

    // fire runs on the executor each time the timer expires; it must not keep the pool
    // alive (capture a weak pointer).
    void start(std::function<void()> fire) {
        fire_ = std::move(fire);
        if (internal_) {
            auto in = internal_;
            internal_->thread = std::thread([in] {
                in->ctx.run();
                std::lock_guard lk(in->m);
                in->exited = true;
                in->cv.notify_all();
            });
        }
    }

    executor_type get_executor() const noexcept { return ex_; }

    // Fire no later than t. Any thread.
    void request(time_point t) {
        std::lock_guard lk(m_);
        if (stopped_ || t >= armed_for_) return;
        armed_for_ = t;
        timer_->expires_at(typename Clock::time_point(
            std::chrono::duration_cast<typename Clock::duration>(t.time_since_epoch())));
        timer_->async_wait([self = this->shared_from_this()](const boost::system::error_code& ec) {
            if (ec != asio::error::operation_aborted) self->on_fire();
        });
    }

    // Whether the calling thread runs the pool's executor: a blocking acquire there that
    // waits on an async connect can only time out.
    bool on_io_thread() const noexcept {
        if (internal_) return std::this_thread::get_id() == internal_->thread.get_id();
        if (auto* e = ex_.target<asio::io_context::executor_type>()) return e->running_in_this_thread();
        if (auto* s = ex_.target<asio::strand<asio::io_context::executor_type>>()) return s->running_in_this_thread();
        return false;
    }

    // From close(): the timer goes, so that a closed pool keeps no io_context busy (and
    // ctx.run() can return once the pool's own work is done). No fire after this returns.
    void cancel() {
        std::lock_guard lk(m_);
        stopped_ = true;
        timer_.reset();
    }

    // From the pool's destructor: no fire after this returns (except one already running
    // on another thread, which finds the core closed). The internal thread finishes the
    // completions already posted to it first, until `until`; it is let go, not joined, when
    // stop() runs on it (the pool destroyed inside one of its own completions) or when
    // work outlives the pool (an async_drain() whose handler keeps the context busy until
    // a lease still out comes back). It owns its context, so letting it go is safe.
    void stop(std::chrono::steady_clock::time_point until = std::chrono::steady_clock::time_point::max()) {
        cancel();
        if (internal_) {
            internal_->guard.reset();
            if (internal_->thread.joinable()) {
                bool exited = false;
                if (internal_->thread.get_id() != std::this_thread::get_id()) {
                    std::unique_lock lk(internal_->m);
                    exited = internal_->cv.wait_until(lk, until, [&] { return internal_->exited; });
                }
                if (exited) {
                    internal_->thread.join();
                } else {
                    internal_->thread.detach();
                }
            }
        }
    }

    ~housekeeper() { stop(); }

private:
    struct internal {
        asio::io_context ctx{1};
        asio::executor_work_guard<asio::io_context::executor_type> guard{ctx.get_executor()};
        std::thread thread;
        std::mutex m;
        std::condition_variable cv;
        bool exited = false;  // ctx.run() returned (guarded by m)
    };

    void on_fire() {
        {
            std::lock_guard lk(m_);
            if (stopped_) return;
            armed_for_ = time_point::max();
        }
        if (fire_) fire_();
    }

    using timer_type = asio::basic_waitable_timer<Clock, pool_wait_traits<Clock>, executor_type>;

    std::shared_ptr<internal> internal_;
    executor_type ex_;
    std::function<void()> fire_;
    std::mutex m_;
    std::optional<timer_type> timer_;
    time_point armed_for_ = time_point::max();
    bool stopped_ = false;
};

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_HOUSEKEEPER_HPP
