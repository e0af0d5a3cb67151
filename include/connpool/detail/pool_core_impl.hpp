// connpool internals: pool_core's action runner and its factory calls. Included by
// pool_core.hpp only.
#ifndef CONNPOOL_DETAIL_POOL_CORE_IMPL_HPP
#define CONNPOOL_DETAIL_POOL_CORE_IMPL_HPP

#include <connpool/detail/connector.hpp>
#include <connpool/detail/pool_core.hpp>

namespace connpool::detail {

template <class Factory, class Clock>
void pool_core<Factory, Clock>::run(actions& a) noexcept {
    std::shared_ptr<pool_core> last_ref;  // declared first: released last, after every member use
    for (;;) {
        while (waiter_base* w = a.pop_done()) completer_(*this, *w);
        for (auto [s, why] : std::exchange(a.closes, {})) close_connection(static_cast<slot_type&>(*s), why, a);
        for (auto* s : std::exchange(a.connects, {})) launch_connect(static_cast<slot_type&>(*s));
        for (auto* s : std::exchange(a.resets, {})) {
            auto& slot = static_cast<slot_type&>(*s);
            if (!maint_lane_.post([self = this->shared_from_this(), &slot](bool go) { self->run_reset(slot, go); })) {
                run_reset(slot, false);
            }
        }
        for (auto [s, timeout] : std::exchange(a.pings, {})) {
            auto& slot = static_cast<slot_type&>(*s);
            auto t = timeout;
            if (!maint_lane_.post([self = this->shared_from_this(), &slot, t](bool go) { self->run_ping(slot, t, go); })) {
                run_ping(slot, t, false);
            }
        }
        for (auto& [s, want] : std::exchange(a.applies, {})) {
            auto& slot = static_cast<slot_type&>(*s);
            auto task = [self = this->shared_from_this(), &slot, want = std::move(want)](bool go) {
                self->run_apply(slot, want, go);
            };
            if (!maint_lane_.post(task)) task(false);
        }
        for (auto* s : std::exchange(a.probes, {})) run_probe(static_cast<slot_type&>(*s));
        for (auto& l : std::exchange(a.leaks, {})) reporter_.leak(l);
        if (std::exchange(a.drained, false)) {
            std::vector<std::function<void()>> done;
            {
                std::lock_guard lk(mutex_);
                done.swap(drain_waiters_);
                drained_cv_.notify_all();
                if (keepalive_) last_ref = std::move(keepalive_);
            }
            for (auto& d : done) d();
        }
        if (a.timer != time_point::max()) arm(std::exchange(a.timer, time_point::max()));
        if (a.empty()) break;
    }
}

template <class Factory, class Clock>
bool pool_core<Factory, Clock>::is_broken(slot_type& s) const noexcept {
    if constexpr (has_is_broken<Factory>) {
        try {
            return factory_.is_broken(*s.conn);
        } catch (...) {
            return true;
        }
    } else {
        (void)s;
        return false;
    }
}

template <class Factory, class Clock>
bool pool_core<Factory, Clock>::wants_reset(slot_type& s) const noexcept {
    if constexpr (!has_reset<Factory>) {
        (void)s;
        return false;
    } else {
        if (!opts().reset_on_return || s.skip_reset) return false;
        if constexpr (has_needs_reset<Factory>) {
            try {
                return factory_.needs_reset(*s.conn);
            } catch (...) {
                return true;
            }
        }
        return true;
    }
}

// A connect is never aborted once started: it completes and serves whoever waits then.
template <class Factory, class Clock>
void pool_core<Factory, Clock>::launch_connect(slot_type& s) noexcept {
    connect_request req;
    {
        std::lock_guard lk(mutex_);
        req = state_.request();
    }
    const auto started = now();
    auto self = this->shared_from_this();
    if constexpr (has_async_connect<Factory>) {
        // If the handler is destroyed uncalled (its io_context went away first), the
        // connect still ends, as a failure: the slot is freed and a closed pool drains.
        // Armed only once async_connect returned: if it throws instead, the catch below
        // reports the exception.
        struct once {
            std::shared_ptr<pool_core> core;
            slot_type* slot;
            time_point started;
            std::shared_ptr<std::atomic<bool>> armed;
            once(std::shared_ptr<pool_core> c, slot_type* s, time_point t, std::shared_ptr<std::atomic<bool>> a)
                : core(std::move(c)), slot(s), started(t), armed(std::move(a)) {}
            once(once&& o) noexcept = default;
            once& operator=(once&&) = delete;
            ~once() {
                if (core && armed->load()) {
                    core->connected(*slot, std::nullopt, error_info{errc::pool_closed, "connect abandoned"}, started);
                }
            }
            void operator()(error_info e, std::optional<connection_type> c) {
                auto self = std::move(core);
                self->connected(*slot, std::move(c), std::move(e), started);
            }
        };
        auto armed = std::make_shared<std::atomic<bool>>(false);
        try {
            factory_.async_connect(req, ex_, connect_handler<connection_type>(once(self, &s, started, armed)));
            armed->store(true);
        } catch (...) {
            connected(s, std::nullopt, thrown_error(), started);
        }
    } else {
        const bool posted = connect_lane_.post([self, &s, req, started](bool go) {
            if (!go) return self->connected(s, std::nullopt, error_info{errc::pool_closed, "pool closed"}, started);
            error_info e;
            std::optional<connection_type> c;
            try {
                c = self->factory_.connect(req, e);
            } catch (...) {
                c.reset();
                e = thrown_error();
            }
            self->connected(s, std::move(c), std::move(e), started);
        });
        if (!posted) connected(s, std::nullopt, error_info{errc::pool_closed, "pool closed"}, started);
    }
}

template <class Factory, class Clock>
void pool_core<Factory, Clock>::connected(slot_type& s, std::optional<connection_type> c, error_info e,
                                          time_point started) noexcept {
    const auto t = now();
    unsigned attempt = 0;
    const bool ok = c.has_value() && !e;
    actions a;
    {
        std::lock_guard lk(mutex_);
        attempt = state_.request().attempt;
        state_.connect_done(s, std::move(c), ok ? error_info{} : e, started, t, a);
    }
    reporter_.connected(ok ? error_info{} : e, t - started, attempt);
    run(a);
}

// go is false when the pool stopped before the task ran: hand_over then closes it.
template <class Factory, class Clock>
void pool_core<Factory, Clock>::run_reset(slot_type& s, bool go) noexcept {
    bool ok = true;
    if constexpr (has_reset<Factory>) {
        if (go) {
            try {
                error_info e;
                ok = factory_.reset(*s.conn, e);
            } catch (...) {
                ok = false;
            }
        }
    }
    (void)go;
    if constexpr (has_reset_clears_labels<Factory>) {
        // A full reset returns the session to the server's defaults: its label goes too.
        // Any other reset leaves the settings, and the label with them. A factory that
        // throws here leaves them unknown: the connection closes as after a failed reset.
        if (ok && go && s.label_hash.load(std::memory_order_relaxed) != 0) {
            try {
                if (factory_.reset_clears_labels(*s.conn)) {
                    s.current_label = label{};
                    s.label_hash.store(0, std::memory_order_relaxed);
                }
            } catch (...) {
                ok = false;
            }
        }
    }
    actions a;
    {
        std::lock_guard lk(mutex_);
        state_.reset_done(s, ok, now(), a);
    }
    run(a);
}

// The timeout is already capped at what the waiter has left.
template <class Factory, class Clock>
void pool_core<Factory, Clock>::run_ping(slot_type& s, std::chrono::milliseconds timeout, bool go) noexcept {
    bool ok = true;
    error_info e;
    if constexpr (has_ping<Factory>) {
        if (go) {
            try {
                ok = factory_.ping(*s.conn, std::max(timeout, std::chrono::milliseconds(1)), e);
            } catch (...) {
                ok = false;
                e = thrown_error();
            }
            if (ok) s.last_used.store(coarse_now<Clock>(), std::memory_order_relaxed);
        }
    }
    (void)timeout;
    if (!ok) {
        if (!e) e = error_info{errc::ping_failed, "validation ping failed"};
        if (e.message.rfind("validation", 0) != 0) e.message = "validation ping failed: " + e.message;
    }
    actions a;
    {
        std::lock_guard lk(mutex_);
        state_.ping_done(s, ok, now(), a, std::move(e));
    }
    run(a);
}

// On the maintenance lane. The slot is the pool's while it applies (no lease holds it), so
// its label is written here, before the state machine hands it on.
template <class Factory, class Clock>
void pool_core<Factory, Clock>::run_apply(slot_type& s, const label& want, bool go) noexcept {
    bool ok = false;
    error_info e;
    if constexpr (has_apply<Factory>) {
        if (go) {
            try {
                ok = factory_.apply(*s.conn, s.current_label, want, e);
            } catch (...) {
                ok = false;
                e = thrown_error();
            }
        }
    }
    if (ok) {
        try {
            s.current_label = want;
        } catch (...) {
            ok = false;  // out of memory copying the label: its settings are unknown to us
            e = thrown_error();
        }
    }
    if (ok) {
        s.label_hash.store(want.hash(), std::memory_order_relaxed);
    } else if (go) {
        // The caller who failed because of it hears why, in the server's words.
        if (!e) e = error_info{errc::reset_failed, "apply failed"};
        if (e.message.rfind("apply", 0) != 0) e.message = "apply failed: " + e.message;
    }
    actions a;
    {
        std::lock_guard lk(mutex_);
        state_.apply_done(s, ok, go, std::move(e), now(), a);
    }
    run(a);
}

// probe() never waits, so it runs right here.
template <class Factory, class Clock>
void pool_core<Factory, Clock>::run_probe(slot_type& s) noexcept {
    bool alive = true;
    if constexpr (has_probe<Factory>) {
        try {
            alive = factory_.probe(*s.conn);
        } catch (...) {
            alive = false;
        }
    }
    actions a;
    {
        std::lock_guard lk(mutex_);
        state_.probe_done(s, alive, now(), a);
    }
    run(a);
}

template <class Factory, class Clock>
void pool_core<Factory, Clock>::close_connection(slot_type& s, close_reason why, actions& next) noexcept {
    try {
        s.conn.reset();
    } catch (...) {
        // A connection's destructor threw; the slot is freed all the same.
    }
    reporter_.closed(why);
    std::lock_guard lk(mutex_);
    state_.close_done(s, why, now(), next);
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_POOL_CORE_IMPL_HPP
