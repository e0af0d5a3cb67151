// connpool internals: what one step of the state machine asks its shell to do, once the
// lock is released. The state machine decides; the shell performs I/O, calls the
// factory, wakes threads and posts handlers.
#ifndef CONNPOOL_DETAIL_ACTIONS_HPP
#define CONNPOOL_DETAIL_ACTIONS_HPP

#include <connpool/detail/clock.hpp>
#include <connpool/detail/waiter_queue.hpp>
#include <connpool/label.hpp>
#include <connpool/stats.hpp>

#include <chrono>
#include <utility>
#include <vector>

namespace connpool::detail {

struct slot_base;

struct actions {
    // Waiters whose outcome is written (a slot, or an error): wake or complete them. A
    // chain through their queue links, so that the hot handoff allocates nothing.
    waiter_base* done_head = nullptr;
    waiter_base* done_tail = nullptr;

    std::vector<slot_base*> connects;                         // start a connect for each
    std::vector<std::pair<slot_base*, close_reason>> closes;  // close each connection
    std::vector<slot_base*> resets;                           // run the factory's reset
    std::vector<std::pair<slot_base*, std::chrono::milliseconds>> pings;  // validate, within that time
    std::vector<std::pair<slot_base*, label>> applies;        // move each to that label (apply())
    std::vector<slot_base*> probes;                           // probe each idle connection
    std::vector<lease_info> leaks;                            // report each
    bool drained = false;                  // closed, and the last connection is gone
    time_point timer = time_point::max();  // run tick() no later than this

    void complete(waiter_base& w) noexcept {
        w.phase = waiter_phase::done;
        w.next = nullptr;
        (done_tail ? done_tail->next : done_head) = &w;
        done_tail = &w;
    }

    waiter_base* pop_done() noexcept {
        waiter_base* w = done_head;
        if (w != nullptr) {
            done_head = w->next;
            if (done_head == nullptr) done_tail = nullptr;
            w->next = nullptr;
        }
        return w;
    }

    void arm(time_point t) noexcept {
        if (t < timer) timer = t;
    }

    bool empty() const noexcept {
        return done_head == nullptr && connects.empty() && closes.empty() && resets.empty() && pings.empty() &&
               applies.empty() && probes.empty() && leaks.empty() && !drained;
    }
};

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_ACTIONS_HPP
