// connpool-sim's engine: the real detail::pool_state, one per application instance, driven
// in virtual time by a discrete-event loop that plays the shell exactly as
// detail::pool_core and the blocking face do (hint fast path, admit, the hand-out check,
// give_up at the deadline, judge_return then return_to_idle / hand_over / reset / close,
// tick at the armed time). Only the I/O is modelled: connects, pings, resets and the
// server (max_connections, an outage that kills every backend).
//
// Reusable: tests and the CLI build a config, call run(), and read a result. The browser
// simulator (web/) steps the same run, begin() then advance_to() as the frames go, and
// changes it live; run() is exactly begin(), advance_to(the end), summary().
#ifndef CONNPOOL_TOOLS_SIM_ENGINE_HPP
#define CONNPOOL_TOOLS_SIM_ENGINE_HPP

#include "model.hpp"

#include <connpool/detail/pool_state.hpp>

#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <queue>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace connpool::sim {

using detail::time_point;

// What a pooled "connection" is in the simulation: the server epoch it was opened in.
// An outage bumps the epoch, so every older connection is dead from then on.
struct sim_connection {
    std::uint64_t epoch = 0;
};

class engine {
public:
    explicit engine(config c) : cfg_(std::move(c)), rng_(cfg_.seed) {}

    result run() {
        begin();
        advance_to(t0_ + cfg_.duration);
        return summary();
    }

    // Stepping. begin() once; advance_to() plays every event at or before t, in the same
    // order whatever the steps, so a stepped run equals run() over the same span.
    void begin();
    void advance_to(time_point t);
    // The figures of the run so far (run()'s result at its end).
    result summary();

    // Live changes, as the library's setters make them. A burst lands on the first whole
    // millisecond after now, so that "--bursts T:N" with the returned T replays it exactly.
    double add_burst(std::size_t n);
    void set_max_size(std::size_t n);
    void set_min_idle(std::size_t n);
    void set_rate(double per_s);  // a constant rate from now on
    void set_hold(hold_model h) { cfg_.hold = std::move(h); }
    void set_connect_time(hold_model h) { cfg_.connect_time = std::move(h); }
    void set_tenant(std::size_t i, const tenant_mix& t);
    // Acquires from now on wait this long, as callers of pool::acquire_for(timeout) would;
    // the pool itself keeps no timeout (its state machine only sees each waiter's deadline).
    void set_acquire_timeout(std::chrono::milliseconds t);
    // The simulated server's limit: what later connects are judged against.
    void set_server(std::size_t max_connections, std::size_t reserved);

    // What a view draws: the state machines (slots, waiters, stats()) and the server.
    const config& cfg() const noexcept { return cfg_; }
    time_point now() const noexcept { return now_; }
    double now_s() const { return secs(now_); }
    time_point at(double s) const { return t0_ + std::chrono::duration_cast<detail::duration>(seconds_d(s)); }
    std::size_t instances() const noexcept { return inst_.size(); }
    const detail::pool_state<sim_connection>& state(std::size_t i) const { return *inst_.at(i).st; }
    std::size_t server_connections() const noexcept { return server_conns_; }
    std::size_t backlog() const noexcept {
        std::size_t n = 0;
        for (const auto& in : inst_) n += in.backlog.size();
        return n;
    }
    const result& counters() const noexcept { return r_; }  // the counts; figures need summary()
    // Each measured wait (µs) is also appended here, for a view's rolling percentiles.
    void tap_waits(std::vector<float>* to) noexcept { wait_tap_ = to; }
    // Keep at most n waits for the exact percentiles (a page may run for hours).
    void keep_waits(std::size_t n) noexcept { keep_waits_ = n; }

private:
    using state_t = detail::pool_state<sim_connection>;
    using slot_t = detail::slot<sim_connection>;
    struct worker;
    struct instance;

    struct waiter : detail::waiter_base {
        worker* owner = nullptr;
    };

    // An application thread: its hint (the pool's thread-local hint), the leases it holds,
    // and its one acquire under way.
    struct worker {
        slot_t* hint = nullptr;
        std::vector<slot_t*> held;
        waiter w;
        std::uint64_t round = 0;  // one per acquire: stale wake-ups and deadlines are ignored
        time_point asked_at{};
        std::uint32_t tenant = 0;  // the tenant its request is for (0: none)
        bool discard = false;  // the request hit a dead connection: its leases go back discarded
    };

    struct instance {
        std::size_t id = 0;
        std::unique_ptr<state_t> st;
        std::vector<std::unique_ptr<worker>> workers;
        std::vector<worker*> free;
        std::deque<std::uint32_t> backlog;  // requests waiting for a thread: their tenants
        time_point next_tick = time_point::max();
        std::unique_ptr<connpool::advisor> adv;
        std::unique_ptr<connpool::sizing::adaptive_size> sizer;
    };

    enum class ev : std::uint8_t { arrival, burst, wake, deadline, starving, hold_done, connected, ping_done, reset_done,
                                   timer, sample, advise, outage_start, outage_end };
    struct event {
        time_point t;
        std::uint64_t seq;
        ev type;
        std::uint32_t inst;
        void* p;
        std::uint64_t x;
        bool operator>(const event& o) const { return t != o.t ? t > o.t : seq > o.seq; }
    };

    void push(time_point t, ev type, std::size_t inst = 0, void* p = nullptr, std::uint64_t x = 0) {
        events_.push(event{t, seq_++, type, static_cast<std::uint32_t>(inst), p, x});
    }
    double secs(time_point t) const { return seconds_d(t - t0_).count(); }
    bool measuring() const { return now_ >= t0_ + cfg_.warmup; }

    void dispatch(const event& e);
    void on_arrival();
    void start_request(instance& in, worker& wk, std::uint32_t tenant);
    void acquire_next(instance& in, worker& wk);
    void handle_result(instance& in, worker& wk);
    bool check_handout(instance& in, waiter& w);
    void got(instance& in, worker& wk, slot_t& s);
    void failed(instance& in, worker& wk);
    void finish_request(instance& in, worker& wk);
    void give_back(instance& in, worker& wk, slot_t& s, bool discard);
    void carry_out(instance& in, detail::actions& a);
    void launch_connect(instance& in, slot_t& s);
    void arm(instance& in, time_point t);
    void on_advise(instance& in);
    void sample();
    void server_change(long delta);
    void pick_tenants_by_share();

    std::chrono::nanoseconds wake_delay() {
        return cfg_.wake_latency ? cfg_.wake_latency->sample(rng_) : std::chrono::nanoseconds(0);
    }
    bool dead(const slot_t& s) const { return s.conn && s.conn->epoch != server_epoch_; }

    config cfg_;
    std::mt19937_64 rng_;
    std::priority_queue<event, std::vector<event>, std::greater<>> events_;
    std::uint64_t seq_ = 0;
    const time_point t0_ = time_point{} + std::chrono::hours(1);  // away from the epoch, as the tests do
    time_point now_ = t0_;
    std::vector<instance> inst_;
    std::uint64_t recency_ = 0;

    // The server.
    std::uint64_t server_epoch_ = 1;
    bool server_down_ = false;
    std::size_t server_conns_ = 0;
    double server_integral_ = 0;  // connection-seconds, for the mean
    time_point server_changed_ = t0_;

    result r_;
    std::vector<float> waits_us_;
    double busy_integral_ = 0;  // lease-seconds, measured part only

    // Stepping and live changes.
    std::uint64_t burst_seq_ = 0;     // bursts' seq numbers: as if all were pushed at begin()
    std::uint64_t arrival_gen_ = 0;   // set_rate() redraws the next arrival; older ones lapse
    std::discrete_distribution<std::size_t> tenant_pick_;
    std::vector<float>* wait_tap_ = nullptr;
    std::size_t keep_waits_ = static_cast<std::size_t>(-1);
    std::chrono::steady_clock::time_point wall0_{};
};

// ------------------------------------------------------------------ the run

inline void engine::begin() {
    validate(cfg_.pool);
    for (const auto& t : cfg_.tenants) validate(t.opts);
    wall0_ = std::chrono::steady_clock::now();
    inst_.resize(cfg_.instances);
    for (std::size_t i = 0; i < inst_.size(); ++i) {
        auto& in = inst_[i];
        in.id = i;
        in.st = std::make_unique<state_t>(cfg_.pool, nullptr, cfg_.seed * 7919 + i, true);
        for (std::size_t k = 0; k < cfg_.threads; ++k) {
            in.workers.push_back(std::make_unique<worker>());
            in.free.push_back(in.workers.back().get());
        }
        if (cfg_.advise_every.count() > 0) {
            in.adv = std::make_unique<connpool::advisor>(cfg_.advice);
            if (cfg_.adaptive) in.sizer = std::make_unique<connpool::sizing::adaptive_size>(*cfg_.adaptive, cfg_.pool.max_size);
            push(t0_ + cfg_.advise_every, ev::advise, i);
        }
        push(t0_, ev::timer, i);  // the first tick (min_idle) runs at start, as the pool's does
        in.next_tick = t0_;
        for (std::size_t k = 0; k < cfg_.tenants.size(); ++k) {
            detail::actions a;
            in.st->add_tenant(tenant_id{static_cast<std::uint32_t>(k + 1)}, cfg_.tenants[k].opts, now_, a);
            carry_out(in, a);
        }
    }
    pick_tenants_by_share();
    push(at(cfg_.arrivals.next(0.0, rng_)), ev::arrival);
    // Bursts take their order from a range of seq numbers kept here, so that one added
    // live sorts among events of the same instant as it would have from the command line.
    burst_seq_ = seq_;
    seq_ += std::uint64_t{1} << 40;
    for (const auto& b : cfg_.arrivals.bursts) {
        events_.push(event{at(b.at_s), burst_seq_++, ev::burst, 0, nullptr, b.count});
    }
    if (cfg_.outage_length.count() > 0) {
        push(t0_ + cfg_.outage_start, ev::outage_start);
        push(t0_ + cfg_.outage_start + cfg_.outage_length, ev::outage_end);
    }
    const auto every = cfg_.sample_every.count() > 0 ? cfg_.sample_every : cfg_.duration / 400;
    r_.sample_every_s = seconds_d(every).count();
    push(t0_, ev::sample, 0, nullptr, static_cast<std::uint64_t>(every.count()));
}

inline void engine::advance_to(time_point end) {
    // Bounded: every event is at or after now_, and the loop stops at end.
    while (!events_.empty() && events_.top().t <= end) {
        const event e = events_.top();
        events_.pop();
        now_ = e.t;
        dispatch(e);
        ++r_.events;
    }
    now_ = std::max(now_, end);
}

inline result engine::summary() {
    server_change(0);
    const auto ran = now_ - t0_;
    r_.duration_s = seconds_d(ran - std::min<std::chrono::nanoseconds>(cfg_.warmup, ran)).count();
    if (!waits_us_.empty()) {
        auto q = [&](double p) {
            auto k = static_cast<std::size_t>(p * static_cast<double>(waits_us_.size() - 1));
            std::nth_element(waits_us_.begin(), waits_us_.begin() + static_cast<std::ptrdiff_t>(k), waits_us_.end());
            return waits_us_[k] / 1000.0;
        };
        double sum = 0;
        for (float w : waits_us_) sum += w;
        r_.wait_mean_ms = sum / static_cast<double>(waits_us_.size()) / 1000.0;
        r_.wait_p50_ms = q(0.50);
        r_.wait_p99_ms = q(0.99);
        r_.wait_max_ms = *std::max_element(waits_us_.begin(), waits_us_.end()) / 1000.0;
    }
    r_.mean_busy = r_.duration_s > 0 ? busy_integral_ / r_.duration_s : 0;
    r_.mean_server_connections = ran.count() > 0 ? server_integral_ / seconds_d(ran).count() : 0;
    r_.utilization = r_.mean_server_connections > 0 ? r_.mean_busy / r_.mean_server_connections : 0;
    r_.final_stats = inst_.front().st->snapshot(now_);
    r_.wall_s = seconds_d(std::chrono::steady_clock::now() - wall0_).count();
    return r_;
}

inline void engine::dispatch(const event& e) {
    instance& in = inst_[e.inst];
    auto* wk = static_cast<worker*>(e.p);
    switch (e.type) {
    case ev::arrival:
        if (e.x != arrival_gen_) break;  // drawn before a set_rate()
        push(at(cfg_.arrivals.next(secs(now_), rng_)), ev::arrival, 0, nullptr, arrival_gen_);
        on_arrival();
        break;
    case ev::burst:
        for (std::uint64_t i = 0; i < e.x; ++i) on_arrival();
        break;
    case ev::wake:  // a completed waiter's thread wakes up
        if (wk->round == e.x) handle_result(in, *wk);
        break;
    case ev::deadline:  // the blocking face gives up at its deadline
        if (wk->round == e.x && wk->w.pending()) {
            detail::actions a;
            in.st->give_up(wk->w, errc::acquire_timeout, now_, a);
            carry_out(in, a);
        }
        break;
    case ev::starving:  // the blocking face looks for idle connections at its starvation bound
        if (wk->round == e.x && wk->w.phase == detail::waiter_phase::queued) {
            detail::actions a;
            in.st->waiter_starving(now_, a);
            carry_out(in, a);
        }
        break;
    case ev::hold_done: {
        if (wk->held.size() < std::max<std::size_t>(cfg_.nested, 1)) {
            acquire_next(in, *wk);
            break;
        }
        const bool discard = wk->discard;
        for (auto it = wk->held.rbegin(); it != wk->held.rend(); ++it) give_back(in, *wk, **it, discard);
        wk->held.clear();
        ++r_.completed;
        finish_request(in, *wk);
        break;
    }
    case ev::connected: {
        auto& s = *static_cast<slot_t*>(e.p);
        const time_point started = now_ - std::chrono::nanoseconds(static_cast<std::int64_t>(e.x >> 1));
        std::optional<sim_connection> c;
        error_info err;
        const std::size_t limit = cfg_.max_connections > cfg_.reserved ? cfg_.max_connections - cfg_.reserved : 0;
        if ((e.x & 1) == 0) {
            err = error_info{errc::connect_failed, "connect failed (modelled failure rate)"};
        } else if (server_down_) {
            err = error_info{errc::connect_failed, "connection refused (server outage)"};
        } else if (cfg_.max_connections != 0 && server_conns_ >= limit) {
            err = error_info{errc::connect_failed, "FATAL: sorry, too many clients already"};
            ++r_.refused_by_server;
        } else {
            c = sim_connection{server_epoch_};
            server_change(+1);
            ++r_.connections_opened;
        }
        if (!c) ++r_.connect_failures;
        detail::actions a;
        in.st->connect_done(s, std::move(c), std::move(err), started, now_, a);
        carry_out(in, a);
        break;
    }
    case ev::ping_done: {
        auto& s = *static_cast<slot_t*>(e.p);
        detail::actions a;
        const bool ok = !dead(s);
        if (ok) s.last_used.store(now_, std::memory_order_relaxed);
        in.st->ping_done(s, ok, now_, a);
        carry_out(in, a);
        break;
    }
    case ev::reset_done: {
        auto& s = *static_cast<slot_t*>(e.p);
        detail::actions a;
        in.st->reset_done(s, !dead(s), now_, a);
        carry_out(in, a);
        break;
    }
    case ev::timer:
        if (e.t == in.next_tick) {
            in.next_tick = time_point::max();
            detail::actions a;
            in.st->tick(now_, a);
            carry_out(in, a);
        }
        break;
    case ev::sample:
        sample();
        push(now_ + std::chrono::nanoseconds(static_cast<std::int64_t>(e.x)), ev::sample, 0, nullptr, e.x);
        break;
    case ev::advise:
        on_advise(in);
        push(now_ + cfg_.advise_every, ev::advise, e.inst);
        break;
    case ev::outage_start:
        server_down_ = true;
        ++server_epoch_;  // every backend dies with the server
        server_change(-static_cast<long>(server_conns_));
        break;
    case ev::outage_end: server_down_ = false; break;
    }
}

inline void engine::server_change(long delta) {
    server_integral_ += static_cast<double>(server_conns_) * seconds_d(now_ - server_changed_).count();
    server_changed_ = now_;
    server_conns_ = static_cast<std::size_t>(static_cast<long>(server_conns_) + delta);
    r_.peak_server_connections = std::max(r_.peak_server_connections, server_conns_);
}

inline void engine::sample() {
    series_point p;
    p.t_s = secs(now_);
    p.server_connections = server_conns_;
    for (auto& in : inst_) {
        const auto s = in.st->snapshot(now_);
        p.open += s.open;
        p.busy += s.in_use;
        p.waiting += s.waiting;
        r_.peak_waiting = std::max(r_.peak_waiting, p.waiting);
    }
    p.max_size = inst_.front().st->current().max_size;
    r_.series.push_back(p);
}

// The advisor reads the pool's own stats, as pool::advise() does; the adaptive size, when
// on, moves max_size through set_max_size() as the pool's would.
inline void engine::on_advise(instance& in) {
    const pool_stats s = in.st->snapshot(now_);
    const advice adv = in.adv->observe(s, now_);
    std::optional<std::size_t> n;
    if (in.sizer) n = in.sizer->step(adv, s.max_size);
    if (in.id == 0) r_.advice.push_back(advice_point{secs(now_), adv.max_size, n.value_or(s.max_size), adv.arrival_rate});
    if (!n) return;
    detail::actions a;
    in.st->set_max_size(*n, now_, a);
    carry_out(in, a);
}

}  // namespace connpool::sim

#include "engine_shell.hpp"

#endif  // CONNPOOL_TOOLS_SIM_ENGINE_HPP
