// connpool-sim's engine, the shell half: what pool_core and the blocking face do around the
// state machine, step by step, with virtual time. Included by engine.hpp only.
#ifndef CONNPOOL_TOOLS_SIM_ENGINE_SHELL_HPP
#define CONNPOOL_TOOLS_SIM_ENGINE_SHELL_HPP

#include "engine.hpp"

namespace connpool::sim {

// ------------------------------------------------------------------ requests

inline void engine::on_arrival() {
    ++r_.requests;
    instance& in = inst_[inst_.size() == 1 ? 0 : std::uniform_int_distribution<std::size_t>(0, inst_.size() - 1)(rng_)];
    // Without tenants nothing is drawn, so such a run's numbers are those of before tenants.
    const auto tenant = cfg_.tenants.empty() ? std::uint32_t{0} : static_cast<std::uint32_t>(tenant_pick_(rng_) + 1);
    if (cfg_.threads == 0) {
        // A thread per request: a fresh thread has no hint.
        if (in.free.empty()) {
            in.workers.push_back(std::make_unique<worker>());
            in.free.push_back(in.workers.back().get());
        }
        worker* wk = in.free.back();
        in.free.pop_back();
        wk->hint = nullptr;
        return start_request(in, *wk, tenant);
    }
    if (in.free.empty()) {
        in.backlog.push_back(tenant);
        r_.peak_backlog = std::max(r_.peak_backlog, in.backlog.size());
        return;
    }
    worker* wk = in.free.back();
    in.free.pop_back();
    start_request(in, *wk, tenant);
}

inline void engine::start_request(instance& in, worker& wk, std::uint32_t tenant) {
    wk.discard = false;
    wk.tenant = tenant;
    acquire_next(in, wk);
}

// blocking_acquire(): the hint first, else one waiter through admit.
inline void engine::acquire_next(instance& in, worker& wk) {
    ++wk.round;
    wk.asked_at = now_;
    state_t& st = *in.st;
    slot_t* pre = st.lease_hint(wk.hint, [&] { return now_; });
    if (pre != nullptr) {
        const auto v = detail::judge_handout(state_t::facts_of(*pre, now_), st.facts(), st.opts(), true);
        if (v.kind == detail::handout_kind::deliver) return got(in, wk, *pre);
    }
    wk.w = waiter{};
    wk.w.owner = &wk;
    wk.w.tenant = wk.tenant;
    wk.w.deadline = detail::saturating_add(now_, cfg_.pool.acquire_timeout);
    if (pre != nullptr) {
        wk.w.result = pre;
        return handle_result(in, wk);
    }
    detail::actions a;
    const auto r = st.admit(wk.w, now_, a);
    if (r == detail::admit_result::queued) {
        push(wk.w.deadline, ev::deadline, in.id, &wk, wk.round);
        if (st.opts().handoff == connpool::handoff_policy::barging) {
            push(st.look_at(wk.w.enqueued_at), ev::starving, in.id, &wk, wk.round);
        }
    }
    carry_out(in, a);
    if (r == detail::admit_result::refused) return failed(in, wk);
    if (r == detail::admit_result::served) handle_result(in, wk);
}

// One pass of blocking_acquire's loop: deliver, fail, or keep waiting (a wake follows).
inline void engine::handle_result(instance& in, worker& wk) {
    waiter& w = wk.w;
    if (!w.pending() && w.result != nullptr) {
        if (check_handout(in, w)) got(in, wk, *static_cast<slot_t*>(w.result));
        return;  // else pending again, or completed: its completion wakes us
    }
    if (w.phase == detail::waiter_phase::done) failed(in, wk);
}

// pool_core::check_handout.
inline bool engine::check_handout(instance& in, waiter& w) {
    if (w.validated) return true;
    auto& s = *static_cast<slot_t*>(w.result);
    state_t& st = *in.st;
    const auto v = detail::judge_handout(state_t::facts_of(s, now_), st.facts(), st.opts(), true);
    if (v.kind == detail::handout_kind::deliver) return true;
    detail::actions a;
    const bool deliver = st.settle_handout(w, s, v, now_, a);
    carry_out(in, a);
    return deliver;
}

// pool_core::begin_lease, then the request's work.
inline void engine::got(instance& in, worker& wk, slot_t& s) {
    in.st->lease_started(s, [&] { return now_; });
    s.leased_at.store(now_, std::memory_order_relaxed);
    s.leak_reported.store(false, std::memory_order_relaxed);
    s.skip_reset = false;
    s.count_acquire();
    wk.hint = &s;
    if (measuring()) {
        const auto us = static_cast<float>(std::chrono::duration<double, std::micro>(now_ - wk.asked_at).count());
        ++r_.served;
        if (waits_us_.size() < keep_waits_) waits_us_.push_back(us);
        if (wait_tap_ != nullptr) wait_tap_->push_back(us);
    }
    if (dead(s)) {
        wk.discard = true;  // its query fails: the application discards the connection
        ++r_.query_failures;
    }
    wk.held.push_back(&s);
    // Each connection is used for a hold before the next is asked for, while the earlier
    // ones stay held: a request's Cm connections are held at once for the last step.
    push(now_ + cfg_.hold.sample(rng_) + wake_delay(), ev::hold_done, in.id, &wk);  // a sleep wakes late too
}

inline void engine::failed(instance& in, worker& wk) {
    if (wk.w.error.code == make_error_code(errc::acquire_timeout)) {
        ++r_.timeouts;
        if (!wk.held.empty()) ++r_.nested_timeouts;  // it waited while holding: the nested-acquire deadlock
    } else {
        ++r_.other_errors;
    }
    for (auto it = wk.held.rbegin(); it != wk.held.rend(); ++it) give_back(in, wk, **it, wk.discard);
    wk.held.clear();
    finish_request(in, wk);
}

inline void engine::finish_request(instance& in, worker& wk) {
    if (cfg_.threads != 0 && !in.backlog.empty()) {
        const std::uint32_t tenant = in.backlog.front();
        in.backlog.pop_front();
        return start_request(in, wk, tenant);
    }
    in.free.push_back(&wk);
}

// pool_core::give_back.
inline void engine::give_back(instance& in, worker& wk, slot_t& s, bool discard) {
    state_t& st = *in.st;
    const auto held = now_ - s.leased_at.load(std::memory_order_relaxed);
    s.use_time.record(held);
    if (measuring()) busy_integral_ += seconds_d(held).count();
    const bool dirty = cfg_.reset_time.count() > 0 && st.opts().reset_on_return;
    const auto v = detail::judge_return(detail::return_facts{discard, dead(s), dirty}, state_t::facts_of(s, now_), st.facts());
    s.last_used.store(now_, std::memory_order_relaxed);
    s.recency.store(++recency_, std::memory_order_relaxed);
    detail::actions a;
    if (v.kind == detail::return_kind::keep) {
        switch (st.return_to_idle(s, [&] { return now_; })) {
        case detail::publish_result::done:
            wk.hint = &s;
            return;
        case detail::publish_result::serve:
            wk.hint = &s;
            st.serve_waiters(now_, a);
            return carry_out(in, a);
        case detail::publish_result::locked: break;
        }
        st.hand_over(s, now_, a);
        return carry_out(in, a);
    }
    st.return_unfit(s, v, now_, a);
    carry_out(in, a);
}

// ------------------------------------------------------------------ live changes

inline double engine::add_burst(std::size_t n) {
    // The first whole millisecond after now: "--bursts T:N" names the same instant.
    auto ms = static_cast<std::int64_t>(std::floor(secs(now_) * 1000)) + 1;
    while (at(static_cast<double>(ms) / 1000) <= now_) ++ms;
    const double t = static_cast<double>(ms) / 1000;
    cfg_.arrivals.bursts.push_back({t, n});
    events_.push(event{at(t), burst_seq_++, ev::burst, 0, nullptr, n});
    return t;
}

inline void engine::set_max_size(std::size_t n) {
    for (auto& in : inst_) {
        detail::actions a;
        in.st->set_max_size(n, now_, a);
        carry_out(in, a);
    }
    cfg_.pool.max_size = n;
}

inline void engine::set_min_idle(std::size_t n) {
    for (auto& in : inst_) {
        detail::actions a;
        in.st->set_min_idle(n, now_, a);
        carry_out(in, a);
    }
    cfg_.pool.min_idle = n;
}

inline void engine::set_rate(double per_s) {
    cfg_.arrivals.steps = {{0.0, per_s}};
    ++arrival_gen_;  // the arrival already drawn lapses: the next is drawn at the new rate
    push(at(cfg_.arrivals.next(secs(now_), rng_)), ev::arrival, 0, nullptr, arrival_gen_);
}

inline void engine::set_tenant(std::size_t i, const tenant_mix& t) {
    validate(t.opts);
    if (i >= cfg_.tenants.size()) throw std::invalid_argument("no tenant " + std::to_string(i + 1) + " in this run");
    cfg_.tenants[i] = t;
    for (auto& in : inst_) {
        detail::actions a;
        in.st->set_tenant(tenant_id{static_cast<std::uint32_t>(i + 1)}, t.opts, now_, a);
        carry_out(in, a);
    }
    pick_tenants_by_share();
}

inline void engine::set_acquire_timeout(std::chrono::milliseconds t) {
    options o = cfg_.pool;
    o.acquire_timeout = t;
    validate(o);
    cfg_.pool.acquire_timeout = t;
}

inline void engine::set_server(std::size_t max_connections, std::size_t reserved) {
    cfg_.max_connections = max_connections;
    cfg_.reserved = reserved;
    cfg_.advice.max_connections = max_connections;
    cfg_.advice.reserved = reserved;
}

inline void engine::pick_tenants_by_share() {
    std::vector<double> shares;
    for (const auto& t : cfg_.tenants) shares.push_back(std::max(t.share, 0.0));
    tenant_pick_ = std::discrete_distribution<std::size_t>(shares.begin(), shares.end());
}

// ------------------------------------------------------------------ actions (pool_core::run)

inline void engine::carry_out(instance& in, detail::actions& a) {
    for (int guard = 0; guard < 100000; ++guard) {
        // A completed waiter's thread wakes up after this step, as a parked thread does.
        while (detail::waiter_base* w = a.pop_done()) {
            worker* wk = static_cast<waiter*>(w)->owner;
            push(now_ + wake_delay(), ev::wake, in.id, wk, wk->round);
        }
        for (auto [b, why] : std::exchange(a.closes, {})) {
            auto& s = static_cast<slot_t&>(*b);
            if (s.conn && s.conn->epoch == server_epoch_) server_change(-1);
            s.conn.reset();
            in.st->close_done(s, why, now_, a);
        }
        for (auto* b : std::exchange(a.connects, {})) launch_connect(in, static_cast<slot_t&>(*b));
        for (auto* b : std::exchange(a.resets, {})) push(now_ + cfg_.reset_time, ev::reset_done, in.id, b);
        for (auto [b, timeout] : std::exchange(a.pings, {})) {
            // A dead connection's ping fails when its timeout runs out, a live one after a round trip.
            const auto& s = static_cast<slot_t&>(*b);
            const detail::duration took = dead(s) ? detail::duration(timeout) : detail::duration(cfg_.ping_time);
            push(now_ + took, ev::ping_done, in.id, b);
        }
        for (auto* b : std::exchange(a.probes, {})) {
            auto& s = static_cast<slot_t&>(*b);
            in.st->probe_done(s, !dead(s), now_, a);  // probe() never waits
        }
        r_.leaks += std::exchange(a.leaks, {}).size();
        a.drained = false;
        if (a.timer != time_point::max()) arm(in, std::exchange(a.timer, time_point::max()));
        if (a.empty()) return;
    }
}

inline void engine::launch_connect(instance& in, slot_t& s) {
    // The outcome is drawn now, the server's answer is judged when the connect completes.
    detail::duration took = cfg_.connect_time.sample(rng_);
    if (server_down_) took = std::min<detail::duration>(took, std::chrono::milliseconds(1));  // refused at once
    took = std::min<detail::duration>(took, cfg_.pool.connect_timeout);
    const bool ok = std::uniform_real_distribution<double>(0, 1)(rng_) >= cfg_.connect_failure;
    const auto ns = static_cast<std::uint64_t>(std::chrono::nanoseconds(took).count());
    push(now_ + took, ev::connected, in.id, &s, (ns << 1) | (ok ? 1 : 0));
}

// The housekeeper: one pending wake-up, the earliest asked for. With a deep queue each
// waiter's deadline asks for a tick, and each tick walks the whole queue (O(waiters^2) per
// second, in the real pool too); the simulator then rounds ticks up to 1, 10 or 100 ms. Each
// waiter still times out exactly at its deadline (ev::deadline), and in such a queue a
// late sweep of a reserved connection is lost in the wait.
inline void engine::arm(instance& in, time_point t) {
    if (const std::size_t q = in.st->waiting(); q > 100 && t != time_point::max()) {
        const detail::duration grain = q > 10000 ? std::chrono::milliseconds(100)
                                       : q > 1000  ? std::chrono::milliseconds(10)
                                                   : std::chrono::milliseconds(1);
        t = t0_ + ((t - t0_ + grain - detail::duration(1)) / grain) * grain;
    }
    if (t >= in.next_tick) return;
    in.next_tick = t;
    push(t, ev::timer, in.id);
}

}  // namespace connpool::sim

#endif  // CONNPOOL_TOOLS_SIM_ENGINE_SHELL_HPP
