// connpool internals: the async face: the async waiter and its completion, over the one
// acquire path (pool_core::admit, check_handout, give_up).
#ifndef CONNPOOL_DETAIL_ASYNC_FACE_HPP
#define CONNPOOL_DETAIL_ASYNC_FACE_HPP

#include <connpool/detail/clock.hpp>
#include <connpool/detail/handout.hpp>
#include <connpool/detail/pool_state.hpp>
#include <connpool/detail/sync_face.hpp>
#include <connpool/detail/waiter_queue.hpp>
#include <connpool/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/recycling_allocator.hpp>

#include <memory>
#include <source_location>
#include <thread>

namespace connpool::detail {

namespace asio = boost::asio;

template <class Core>
struct async_waiter : waiter_base {
    using lease_type = typename Core::lease_type;
    using handler_type = asio::any_completion_handler<void(error_code, lease_type)>;

    async_waiter(std::shared_ptr<Core> c, handler_type h, asio::any_io_executor w, error_info* d)
        : core(std::move(c)), handler(std::move(h)), work(std::move(w)), diag(d) {
        is_async = true;
    }

    std::shared_ptr<Core> core;
    handler_type handler;
    asio::any_io_executor work;  // the handler's executor, kept from running out of work
    error_info* diag;
    std::shared_ptr<async_waiter> self;  // set while the pool owes it a completion
    label want;                          // the settings asked for (empty: clean)
};

template <class Core>
void deliver_async(async_waiter<Core>& w, typename Core::lease_type l) noexcept;

// Delivers (or fails) w: through the hand-out check and its label, then by a post to the
// handler's executor, never inline. Runs on whichever thread completed w: a caller's
// return, the timer, a lane. A label to apply starts apply() on the maintenance lane, and
// w is completed again when it is done (or gives up meanwhile).
template <class Core>
void complete_async(async_waiter<Core>& w) noexcept {
    using slot_type = typename Core::slot_type;
    Core& core = *w.core;
    if (w.result == nullptr) return deliver_async(w, {});
    if (!core.check_handout(w)) return;  // pending again; completed later
    auto& s = *static_cast<slot_type*>(w.result);
    if (!core.settle_label(w, s, w.want)) return;  // apply() runs; completed later
    deliver_async(w, core.begin_lease(s, w.site, w.thread, w.enqueued_at));
}

// Posts w's outcome (l, or w.error) to the handler's executor.
template <class Core>
void deliver_async(async_waiter<Core>& w, typename Core::lease_type l) noexcept {
    const error_code ec = w.error.code;
    if (w.diag != nullptr) *w.diag = w.error;
    auto keep = std::move(w.self);  // may be the last reference to w: use only locals below
    auto handler = std::move(w.handler);
    auto work = std::move(w.work);
    asio::post(work, [h = std::move(handler), ec, l = std::move(l)]() mutable {
        auto cs = asio::get_associated_cancellation_slot(h);
        if (cs.is_connected()) cs.clear();
        std::move(h)(ec, std::move(l));
    });
}

// What pool_core calls for each waiter whose outcome is written.
template <class Core>
void complete_waiter(Core&, waiter_base& w) noexcept {
    if (!w.is_async) return static_cast<sync_waiter&>(w).spot.notify();
    complete_async(static_cast<async_waiter<Core>&>(w));
}

// Async acquire: the hint first (no lock), else the queue, with a timer at the deadline
// and the handler's cancellation slot connected while it waits.
// work: the handler's associated executor with outstanding work tracked, taken before
// the handler was type-erased (as an any_io_executor it costs no allocation).
template <class Core>
void async_acquire(std::shared_ptr<Core> core, typename async_waiter<Core>::handler_type handler,
                   asio::any_io_executor work, std::chrono::milliseconds timeout, error_info* diag,
                   std::source_location loc, std::uint32_t tenant = 0, label want = {}) {
    using waiter_type = async_waiter<Core>;
    // Asio's per-thread recycling allocator: steady-state async acquires do not hit malloc.
    auto w = std::allocate_shared<waiter_type>(asio::recycling_allocator<waiter_type>(), core, std::move(handler),
                                               std::move(work), diag);
    w->site = loc;
    w->tenant = tenant;
    w->want_label = want.hash();
    w->want = std::move(want);
    w->thread = std::this_thread::get_id();
    w->enqueued_at = Core::now();
    w->deadline = saturating_add(w->enqueued_at, timeout);
    auto cs = asio::get_associated_cancellation_slot(w->handler);
    if (cs.is_connected()) {
        std::weak_ptr<waiter_type> weak = w;
        // Terminal, partial and total alike: the acquire has no side effect to undo.
        cs.assign([weak](asio::cancellation_type) {
            if (auto sw = weak.lock()) sw->core->give_up(*sw, errc::cancelled);
        });
    }
    w->self = w;
    if (auto* s = core->lease_hint(w->want_label)) {
        w->result = s;
    } else if (core->admit(*w) == admit_result::queued) {
        return;  // completed through the actions
    }
    complete_async(*w);
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_ASYNC_FACE_HPP

