// connpool internals: calling the user's hooks, guarded so that a throwing hook cannot
// break the pool, and the default lines on std::clog for leaks and nested acquires.
#ifndef CONNPOOL_DETAIL_REPORT_HOOKS_HPP
#define CONNPOOL_DETAIL_REPORT_HOOKS_HPP

#include <connpool/detail/reporting.hpp>
#include <connpool/detail/slot.hpp>
#include <connpool/hooks.hpp>

#include <iostream>
#include <sstream>

namespace connpool::detail {

class reporter {
public:
    explicit reporter(hooks h) : hooks_(std::move(h)) {}

    void returned(const slot_base& s, time_point now) const noexcept {
        if (hooks_.on_return) [[unlikely]] {
            guarded([&] {
                hooks_.on_return(return_event{s.site.load(std::memory_order_relaxed),
                                              now - s.leased_at.load(std::memory_order_relaxed)});
            });
        }
    }

    void acquired(std::source_location loc, std::chrono::nanoseconds waited) const noexcept {
        if (hooks_.on_acquire) [[unlikely]] {
            guarded([&] { hooks_.on_acquire(acquire_event{loc, waited}); });
        }
    }

    bool wants_acquire_events() const noexcept { return static_cast<bool>(hooks_.on_acquire); }

    void connected(const error_info& e, std::chrono::nanoseconds took, unsigned attempt) const noexcept {
        if (hooks_.on_connect) guarded([&] { hooks_.on_connect(connect_event{e, took, attempt}); });
    }

    void closed(close_reason why) const noexcept {
        if (hooks_.on_close) guarded([&] { hooks_.on_close(close_event{why}); });
    }

    void leak(const lease_info& l) const noexcept {
        guarded([&] {
            if (hooks_.on_leak) return hooks_.on_leak(leak_event{l});
            std::ostringstream os;
            os << "connpool: possible leak: lease held for " << seconds_text(l.held_for) << ", taken at "
               << connpool::to_string(l.location) << " on thread " << l.thread << '\n';
            std::clog << os.str();
        });
    }

    void nested(const nested_acquire_event& n) const noexcept {
        guarded([&] {
            if (hooks_.on_nested_acquire) return hooks_.on_nested_acquire(n);
            std::ostringstream os;
            if (n.on_io_thread) {
                os << "connpool: blocking acquire at " << connpool::to_string(n.waiting_at)
                   << " on the pool's own io thread: the async connect it waits for needs this thread, so it can "
                      "only time out (use async_acquire there)\n";
            } else {
                os << "connpool: nested acquire at " << connpool::to_string(n.waiting_at)
                   << " blocks on an exhausted pool while this thread holds a lease taken at "
                   << connpool::to_string(n.already_held.location)
                   << ": this can deadlock (size the pool for threads x (leases per thread - 1) + 1)\n";
            }
            std::clog << os.str();
        });
    }

private:
    template <class F>
    static void guarded(F&& f) noexcept {
        try {
            f();
        } catch (...) {
        }
    }

    const hooks hooks_;
};

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_REPORT_HOOKS_HPP
