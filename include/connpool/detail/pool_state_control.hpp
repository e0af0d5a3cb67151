// connpool internals: pool_state's larger events, defined out of line to keep the class
// readable: a connect finishing, the housekeeping tick, close, and the runtime controls.
// Included by pool_state.hpp only.
#ifndef CONNPOOL_DETAIL_POOL_STATE_CONTROL_HPP
#define CONNPOOL_DETAIL_POOL_STATE_CONTROL_HPP

#include <connpool/detail/pool_state.hpp>

#include <algorithm>
#include <optional>
#include <string>

namespace connpool::detail {

template <class Connection>
void pool_state<Connection>::connect_done(slot_type& s, std::optional<Connection> c, error_info e, time_point started, time_point now, actions& a) {
    if (c && e) c.reset();  // a factory that says both: trust the error
    if (!c && !e) e = error_info{errc::connect_failed, "factory returned no connection and no error"};
    if (!c) {
        s.state.store(slot_state::empty, std::memory_order_relaxed);
        connector_.failed(std::move(e), now);
        update_capacity();
        reports_.connect_failures++;
        // Nothing open and nothing on its way: nobody will hand these waiters a
        // connection before the backoff ends, so tell them why now.
        if (open_ == 0 && connector_.in_flight() == 0) {
            waiters_.for_each([&](waiter_base& w) {
                reports_.fast_failed++;
                fail(w, connector_.last_error().code, connector_.last_error().message, a);
            });
            sync_waiting();
        }
    } else {
        connector_.succeeded();
        reports_.created(now - started);
        s.conn = std::move(c);
        s.created_at = now;
        s.expires_at = connector_.expiry(now);
        s.last_used.store(now, std::memory_order_relaxed);
        s.recency.store(recency_of(now), std::memory_order_relaxed);
        ++open_;
        update_capacity();
        s.state.store(slot_state::leased, std::memory_order_relaxed);
        if (s.generation != generation_.load(std::memory_order_relaxed)) {
            close_leased(s, close_reason::retired, a);  // retire_all() ran while it connected
        } else {
            hand_over(s, now, a);
        }
    }
    plan_connects(now, a);
    check_drained(a);
}

template <class Connection>
void pool_state<Connection>::tick(time_point now, actions& a) {
    const bool full = now >= housekeeping_due_;
    if (full) housekeeping_due_ = saturating_add(now, opts_.housekeeping_interval);
    time_point next = housekeeping_due_;
    const bool ordered = waiters_.in_deadline_order();
    for (waiter_base* w = waiters_.front(); w != nullptr;) {
        waiter_base* after = w->next;  // expire() unlinks w
        ++reports_.tick_visits;
        if (w->deadline <= now) {
            expire(*w, now, a);
        } else {
            next = std::min(next, w->deadline);
            if (ordered) break;  // the rest expire later still
        }
        w = after;
    }
    for (waiter_base* w : checking_waiters()) {
        if (w->deadline <= now) expire(*w, now, a);
        else next = std::min(next, w->deadline);
    }
    if (!closed()) {
        if (full) {
            evict_idle(now, a);
            find_leaks(now, a);
        }
        serve_waiters(now, a);
        plan_connects(now, a);
        if (full && can_probe_ && waiters_.empty()) claim_for_probe(a);
        if (connector_.in_backoff(now)) next = std::min(next, connector_.backoff_until());
        a.arm(next);  // a closed pool needs no timer: its waiters are all failed
    }
}

template <class Connection>
void pool_state<Connection>::close(actions& a) {
    if (closed_.exchange(true, std::memory_order_seq_cst)) return;
    waiters_.for_each([&](waiter_base& w) { fail(w, errc::pool_closed, "pool closed", a); });
    for (waiter_base* w : checking_waiters()) fail(*w, errc::pool_closed, "pool closed", a);
    sync_waiting();
    slots_.for_each([&](slot_type& s) {
        for (;;) {
            if (close_idle(s, close_reason::pool_closed, a)) return;
            if (s.cas(slot_state::leased, slot_state::orphaned)) return;
            // connecting, resetting, pinging, probing, closing: whoever holds it sees
            // closed() and closes it. A slot that went idle meanwhile: look again.
            if (s.load() != slot_state::idle) return;
        }
    });
    update_capacity();
    check_drained(a);
}

template <class Connection>
void pool_state<Connection>::set_max_size(std::size_t n, time_point now, actions& a) {
    options o = current();
    o.max_size = n;
    if (n != 0 && n < min_idle_)
        invalid_option("max_size", std::to_string(n), ("must be at least min_idle (" + std::to_string(min_idle_) + ")").c_str());
    if (o.max_idle > n) invalid_option("max_size", std::to_string(n), "must be at least max_idle");
    validate(o);
    max_size_ = n;
    update_capacity();
    std::size_t excess = open_ - closing_ > max_size_ ? open_ - closing_ - max_size_ : 0;
    slots_.for_each([&](slot_type& s) {
        if (excess > 0 && close_idle(s, close_reason::resized, a)) --excess;
    });
    update_capacity();  // the leased excess closes as it comes back (take_excess)
    plan_connects(now, a);
}

template <class Connection>
void pool_state<Connection>::set_min_idle(std::size_t n, time_point now, actions& a) {
    options o = current();
    o.min_idle = n;
    if (o.max_idle != 0 && n > o.max_idle)
        invalid_option("min_idle", std::to_string(n), ("must not exceed max_idle (" + std::to_string(o.max_idle) + ")").c_str());
    validate(o);
    min_idle_ = n;
    plan_connects(now, a);
}

template <class Connection>
void pool_state<Connection>::retire_all(time_point now, actions& a) {
    generation_.fetch_add(1, std::memory_order_relaxed);
    slots_.for_each([&](slot_type& s) {
        close_idle(s, close_reason::retired, a);
    });
    update_capacity();
    plan_connects(now, a);
}

template <class Connection>
pool_stats pool_state<Connection>::snapshot(time_point now) const {
    pool_stats st = reports_.snapshot(slots_, now);
    st.open = open_;
    st.creating = connector_.in_flight();
    st.waiting = waiters_.size();
    st.max_size = max_size_;
    st.min_idle = min_idle_;
    st.max_idle = opts_.max_idle == 0 ? max_size_ : opts_.max_idle;
    st.last_connect_error = connector_.last_error().message;
    if (tenants_on()) st.tenants = tenants_.snapshot();
    return st;
}

template <class Connection>
admit_result pool_state<Connection>::admit(waiter_base& w, time_point now, actions& a) {
    if (closed()) return refuse(w, errc::pool_closed, "pool closed");
    if (tenants_on() && !tenant_admit(w)) {
        return refuse(w, errc::tenant_quota_exceeded,
                      "tenant " + std::to_string(w.tenant) + " holds its quota of " +
                          std::to_string(w.tenant_ref->opts.quota) + " connections");
    }
    // Nobody waits, so taking an idle slot jumps no queue; or barging allows a newcomer
    // to take one before the waiters (handoff_policy::barging). With tenants: nobody who
    // could take it waits (only tenants at their quota), and this tenant is below its own
    // (issue 16: a tenant at quota held the only waiter place while connections sat idle).
    const bool may_take = tenants_on() ? !waiters_.servable() && !w.tenant_ref->at_quota()
                                       : waiters_.empty() || barging_allowed([now] { return now; });
    if (may_take) {
        if (slot_type* s = lease_lifo(w.want_label)) return serve_now(w, *s, now);
    } else {
        serve_waiters(now, a);  // idle slots belong to the waiters first
    }
    if (opts_.max_waiters != 0 && waiters_.size() >= opts_.max_waiters) {
        return refuse_waiter(w, "too many waiters: " + std::to_string(waiters_.size()) +
                                    " callers already waiting (max_waiters = " + std::to_string(opts_.max_waiters) +
                                    ")");
    }
    if (tenants_on() && w.tenant_ref->queue_full()) {
        return refuse_waiter(w, "too many waiters: " + std::to_string(w.tenant_ref->queued) + " callers of tenant " +
                                    std::to_string(w.tenant) + " already waiting (tenant_options::max_waiters = " +
                                    std::to_string(w.tenant_ref->opts.max_waiters) + ")");
    }
    if (connector_.failing_fast(open_, now)) {
        reports_.fast_failed++;
        return refuse(w, connector_.last_error().code, connector_.fast_fail_message(now));
    }
    if (w.phase == waiter_phase::fresh) w.enqueued_at = now;
    waiters_.push_back(w);
    sync_waiting();
    a.arm(w.deadline);
    serve_waiters(now, a);  // a slot published idle by a return that saw no waiter yet
    plan_connects(now, a);
    return admit_result::queued;  // possibly served already by serve_waiters(): then it is in a
}

template <class Connection>
void pool_state<Connection>::ping_done(slot_type& s, bool ok, time_point now, actions& a, error_info why) {
    --checking_;
    waiter_base* w = std::exchange(s.validating_for, nullptr);
    s.state.store(slot_state::leased, std::memory_order_relaxed);
    if (!ok) {
        if (w != nullptr) return handout_failed(*w, s, close_reason::validation_failed, std::move(why), now, a);
        close_leased(s, close_reason::validation_failed, a);
        return quota_freed(now, a);
    }
    if (w != nullptr && !closed()) {
        w->validated = true;
        assign(*w, s, now, a);
    } else {
        hand_over(s, now, a);
    }
}

template <class Connection>
bool pool_state<Connection>::settle_handout(waiter_base& w, slot_type& s, const handout_verdict& v, time_point now,
                                            actions& a) {
    if (v.kind == handout_kind::close && excess_closed(v.reason)) return true;
    if (v.kind == handout_kind::ping) {
        start_validation(w, s, now, a);
    } else {
        close_leased(s, v.reason, a);
        readmit(w, now, a);
    }
    return false;
}

template <class Connection>
void pool_state<Connection>::return_unfit(slot_type& s, const return_verdict& v, time_point now, actions& a) {
    if (v.kind == return_kind::reset) {
        start_reset(s, a);
    } else if (excess_closed(v.reason)) {
        return hand_over(s, now, a);
    } else {
        close_leased(s, v.reason, a);
    }
    quota_freed(now, a);
}

template <class Connection>
void pool_state<Connection>::readmit(waiter_base& w, time_point now, actions& a) {
    w.result = nullptr;
    w.validated = false;
    w.applied = false;
    if (closed()) return fail(w, errc::pool_closed, "pool closed", a);  // close() failed the queue already
    if (now >= w.deadline) return expire(w, now, a);
    w.phase = waiter_phase::queued;  // not fresh: keeps its enqueued_at
    waiters_.push_front(w);
    sync_waiting();
    a.arm(w.deadline);
    serve_waiters(now, a);
    plan_connects(now, a);
}

template <class Connection>
void pool_state<Connection>::close_done(slot_type& s, close_reason why, time_point now, actions& a) {
    reports_.closed(s, why);
    s.generation = 0;
    s.expires_at = time_point::max();
    // The next connection in this slot starts clean: a label left from the closed one
    // would make the pool skip apply() for a session that never had those settings.
    s.current_label = label{};
    s.label_hash.store(0, std::memory_order_relaxed);
    s.state.store(slot_state::empty, std::memory_order_release);
    --open_;
    --closing_;
    update_capacity();
    plan_connects(now, a);
    serve_waiters(now, a);
    check_drained(a);
}

template <class Connection>
void pool_state<Connection>::expire(waiter_base& w, time_point now, actions& a) {
    // A queued waiter whose deadline fires takes an idle slot if one is free (barging left
    // it there, or nobody came by to hand it over): a timeout next to an idle connection
    // would be the pool's fault, not the load's.
    if (w.phase == waiter_phase::queued && !closed() && !(tenants_on() && w.tenant_ref->at_quota())) {
        if (slot_type* s = lease_lifo(w.want_label)) {
            waiters_.remove(w);
            return assign(w, *s, now, a);
        }
    }
    const bool connecting = connector_.in_flight() > 0;
    unqueue(w);
    reports_.timeouts++;
    if (w.tenant_ref != nullptr) w.tenant_ref->timeouts++;
    w.result = nullptr;
    w.error = error_info{errc::acquire_timeout,
                         reports_.timeout_message(slots_, now, now - w.enqueued_at, max_size_, waiters_.size() + 1,
                                                  connecting, connector_)};
    a.complete(w);
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_POOL_STATE_CONTROL_HPP
