// connpool internals: pool_state's hand-out checks, defined out of line: the validation
// ping and the label's apply() a waiter's connection goes through before delivery, and
// what a failed check does. Included by pool_state.hpp only.
#ifndef CONNPOOL_DETAIL_POOL_STATE_CHECKS_HPP
#define CONNPOOL_DETAIL_POOL_STATE_CHECKS_HPP

#include <connpool/detail/pool_state.hpp>

#include <utility>

namespace connpool::detail {

template <class Connection>
void pool_state<Connection>::start_validation(waiter_base& w, slot_type& s, time_point now, actions& a) {
    (void)now;
    s.state.store(slot_state::pinging, std::memory_order_relaxed);
    s.validating_for = &w;
    ++checking_;
    w.phase = waiter_phase::checking;
    w.result = &s;
    a.pings.emplace_back(&s, opts_.ping_timeout);
    a.arm(w.deadline);
}

template <class Connection>
void pool_state<Connection>::start_apply(waiter_base& w, slot_type& s, const label& want, actions& a) {
    s.state.store(slot_state::applying, std::memory_order_relaxed);
    s.validating_for = &w;
    ++checking_;
    w.phase = waiter_phase::checking;
    w.result = &s;
    a.applies.emplace_back(&s, want);
    ++reports_.label_applies;
    a.arm(w.deadline);
}

template <class Connection>
void pool_state<Connection>::apply_done(slot_type& s, bool ok, bool go, error_info e, time_point now, actions& a) {
    --checking_;
    waiter_base* w = std::exchange(s.validating_for, nullptr);
    s.state.store(slot_state::leased, std::memory_order_relaxed);
    if (!go) {
        close_leased(s, close_reason::pool_closed, a);
        return w != nullptr ? readmit(*w, now, a) : quota_freed(now, a);
    }
    if (!ok) {
        ++reports_.label_apply_failures;
        if (w != nullptr) return handout_failed(*w, s, close_reason::reset_failed, std::move(e), now, a);
        close_leased(s, close_reason::reset_failed, a);
        return quota_freed(now, a);
    }
    if (w != nullptr && !closed()) {
        w->validated = true;
        w->applied = true;
        return assign(*w, s, now, a);
    }
    hand_over(s, now, a);
}

template <class Connection>
void pool_state<Connection>::handout_failed(waiter_base& w, slot_type& s, close_reason why, error_info e, time_point now, actions& a) {
    const bool fresh = s.created_at >= w.enqueued_at;
    close_leased(s, why, a);
    reports_.handout_failures++;
    if (!fresh || closed()) return readmit(w, now, a);
    connector_.handout_failed(e, now);
    if (++w.handout_failures < max_handout_failures) return readmit(w, now, a);
    w.result = nullptr;
    w.validated = false;
    w.error = std::move(e);
    reports_.fast_failed++;
    a.complete(w);
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_POOL_STATE_CHECKS_HPP
