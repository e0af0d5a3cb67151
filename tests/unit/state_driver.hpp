// A test driver that plays the shell around detail::pool_state in virtual time: it keeps
// the connects, closes, resets, pings and probes the state machine asked for until a test
// completes them, simulates callers with their own hint slot and lease, fires the timer
// when virtual time passes it, and checks its own invariants next to check_invariants().
// No threads, no sleeps, no clock reads.
#ifndef CONNPOOL_TESTS_UNIT_STATE_DRIVER_HPP
#define CONNPOOL_TESTS_UNIT_STATE_DRIVER_HPP

#include <connpool/detail/pool_state.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace state_test {

using namespace connpool;
using namespace connpool::detail;
using namespace std::chrono_literals;

using conn_t = int;
using state_t = pool_state<conn_t>;
using slot_t = slot<conn_t>;

// Virtual time starts well away from the epoch, so that a wait measured from a zero
// enqueued_at would show.
inline const time_point T0 = time_point{} + std::chrono::hours(1);

inline std::int64_t ms_of(duration d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); }

struct test_waiter : waiter_base {
    std::size_t caller = 0;
    int outcomes = 0;        // final outcomes the caller saw: a lease or an error
    time_point asked_at{};   // when the caller called acquire
    bool looked = false;     // reached the starvation bound and looked for idle slots (sync_face)
};

enum class ret { clean, dirty, discard, broken };

struct caller_state {
    slot_t* hint = nullptr;
    slot_t* lease = nullptr;
    test_waiter* waiting = nullptr;  // an acquire under way
    std::uint64_t acquires = 0;
    std::uint64_t errors = 0;
    error_info last_error;
    time_point last_served{};
    std::uint32_t tenant = 0;  // the tenant its acquires name
};

struct pending_connect {
    slot_t* s;
    time_point started;
};
struct pending_close {
    slot_t* s;
    close_reason why;
};
struct pending_ping {
    slot_t* s;
    std::chrono::milliseconds timeout;
};

class driver {
public:
    driver(const options& o, std::size_t callers, std::uint64_t seed = 1, bool can_probe = false)
        : opts(o), st(o, nullptr, seed, can_probe), callers(callers) {}

    options opts;
    state_t st;
    time_point now = T0;
    std::vector<caller_state> callers;

    std::vector<pending_connect> connects;
    std::vector<pending_close> closes;
    std::vector<slot_t*> resets;
    std::vector<pending_ping> pings;
    std::vector<slot_t*> probes;
    std::vector<lease_info> leaks;
    std::size_t drained_seen = 0;
    time_point timer = time_point::max();

    // What the state machine asked for, in all.
    std::size_t connects_started = 0;
    std::map<close_reason, std::size_t> closes_asked;
    std::vector<std::chrono::milliseconds> ping_timeouts;
    std::size_t ticks = 0;

    // The driver's own invariants; the first broken one is kept.
    std::string violation;

    std::deque<std::unique_ptr<test_waiter>> waiters;  // every waiter of the run, alive to the end
    std::map<const slot_base*, std::size_t> ledger;    // slot -> caller that holds its lease

    // ------------------------------------------------------------ callers

    // The caller asks for a connection: its hint first (the lock-free fast path), else
    // admit(). Returns true when the caller holds a lease at the end of the call.
    // async: the waiter is an async one (async_acquire's), which never looks for idle
    // slots at its starvation bound itself.
    bool acquire(std::size_t c, std::chrono::milliseconds timeout, bool async = false) {
        caller_state& k = callers.at(c);
        if (k.lease != nullptr || k.waiting != nullptr) {
            note("caller " + std::to_string(c) + " acquires while it holds or waits");
            return false;
        }
        test_waiter& w = new_waiter(c, timeout);
        w.is_async = async;
        k.waiting = &w;
        if (slot_t* s = st.lease_hint(k.hint, [&] { return now; })) {
            // The state machine never saw this waiter: a hand-out check that pings or
            // closes needs its place in time.
            w.enqueued_at = now;
            handout(w, *s, true);
        } else {
            switch (st.admit(w, now, a_)) {
            case admit_result::served: handout(w, *static_cast<slot_t*>(w.result), false); break;
            case admit_result::queued: break;
            case admit_result::refused: outcome_error(w); break;
            }
        }
        process();
        return k.lease != nullptr;
    }

    bool acquire(std::size_t c) { return acquire(c, opts.acquire_timeout); }

    // The caller returns its lease. The verdict is taken from the lock-free facts; a close
    // for resizing is confirmed under the lock with take_excess(), as overlapping returns
    // must close no more than the excess.
    void give_back(std::size_t c, ret how = ret::clean) {
        caller_state& k = callers.at(c);
        slot_t* s = k.lease;
        if (s == nullptr) {
            note("caller " + std::to_string(c) + " returns without a lease");
            return;
        }
        auto it = ledger.find(s);
        if (it == ledger.end() || it->second != c) note("a lease returned that the ledger does not hold");
        if (it != ledger.end()) ledger.erase(it);
        k.lease = nullptr;
        s->last_used.store(now, std::memory_order_relaxed);
        s->recency.store(++recency_, std::memory_order_relaxed);
        return_facts rf;
        rf.discard = how == ret::discard;
        rf.broken = how == ret::broken;
        rf.dirty = how == ret::dirty && opts.reset_on_return;
        auto v = judge_return(rf, state_t::facts_of(*s, now), st.facts());
        if (v.kind == return_kind::close && v.reason == close_reason::resized && !st.take_excess())
            v = judge_return(rf, state_t::facts_of(*s, now), pool_facts{st.closed(), st.facts().generation, false});
        switch (v.kind) {
        case return_kind::close:
            st.close_leased(*s, v.reason, a_);
            st.quota_freed(now, a_);
            break;
        case return_kind::reset:
            st.start_reset(*s, a_);
            st.quota_freed(now, a_);
            break;
        case return_kind::keep:
            switch (st.return_to_idle(*s, [&] { return now; })) {
            case publish_result::done: break;
            case publish_result::serve: st.serve_waiters(now, a_); break;
            case publish_result::locked: st.hand_over(*s, now, a_); break;
            }
            break;
        }
        process();
    }

    void cancel(std::size_t c) {
        caller_state& k = callers.at(c);
        if (k.waiting == nullptr) return;
        st.give_up(*k.waiting, errc::cancelled, now, a_);
        process();
    }

    bool holds(std::size_t c) const { return callers.at(c).lease != nullptr; }
    bool waits(std::size_t c) const { return callers.at(c).waiting != nullptr; }
    slot_t* lease_of(std::size_t c) const { return callers.at(c).lease; }

    // ------------------------------------------------------------ completions

    void connect_ok(std::size_t i = 0) {
        auto p = take(connects, i);
        st.connect_done(*p.s, std::optional<conn_t>(next_conn_++), error_info{}, p.started, now, a_);
        process();
    }

    void connect_fail(std::size_t i = 0, std::string why = "connection refused") {
        auto p = take(connects, i);
        st.connect_done(*p.s, std::nullopt, error_info{errc::connect_failed, std::move(why)}, p.started, now, a_);
        process();
    }

    void close_done(std::size_t i = 0) {
        auto p = take(closes, i);
        p.s->conn.reset();
        st.close_done(*p.s, p.why, now, a_);
        process();
    }

    void reset_done(std::size_t i = 0, bool ok = true) {
        auto s = take(resets, i);
        st.reset_done(*s, ok, now, a_);
        process();
    }

    void ping_done(std::size_t i = 0, bool ok = true) {
        auto p = take(pings, i);
        just_pinged_ = p.s;
        st.ping_done(*p.s, ok, now, a_);
        process();
        just_pinged_ = nullptr;
    }

    void probe_done(std::size_t i = 0, bool alive = true) {
        auto s = take(probes, i);
        st.probe_done(*s, alive, now, a_);
        process();
    }

    void close_all_pending() {
        while (!closes.empty()) close_done();
    }

    bool work_pending() const {
        return !connects.empty() || !closes.empty() || !resets.empty() || !pings.empty() || !probes.empty();
    }

    // ------------------------------------------------------------ control

    void close() {
        st.close(a_);
        process();
    }
    void set_max_size(std::size_t n) {
        st.set_max_size(n, now, a_);
        process();
    }
    void set_min_idle(std::size_t n) {
        st.set_min_idle(n, now, a_);
        process();
    }
    void retire_all() {
        st.retire_all(now, a_);
        process();
    }

    // ------------------------------------------------------------ time

    // Virtual time passes; the timer fires on time at every point it was armed for, and
    // each waiting caller looks for idle slots at its starvation bound, as blocking_acquire
    // does under handoff_policy::barging.
    void advance(duration d) {
        const time_point target = now + d;
        for (;;) {
            const time_point look = next_look();
            const time_point t = std::min(timer, look);
            if (t > target) break;
            if (t > now) now = t;
            if (t == timer) {
                tick();
            } else {
                look_when_starving();
            }
        }
        now = target;
    }

    // Over the callers' current waiters only (the run keeps every waiter it ever made).
    time_point next_look() const {
        time_point t = time_point::max();
        if (opts.handoff != handoff_policy::barging) return t;
        for (const auto& k : callers) {
            const test_waiter* w = k.waiting;
            if (w != nullptr && w->phase == waiter_phase::queued && !w->looked && !w->is_async)
                t = std::min(t, st.look_at(w->enqueued_at));
        }
        return t;
    }

    void look_when_starving() {
        for (auto& k : callers) {
            test_waiter* w = k.waiting;
            if (w == nullptr || w->phase != waiter_phase::queued || w->looked || w->is_async) continue;
            if (now < st.look_at(w->enqueued_at)) continue;
            w->looked = true;
            st.waiter_starving(now, a_);
            process();
        }
    }

    void tick() {
        timer = time_point::max();
        ++ticks;
        st.tick(now, a_);
        process();
    }

    // ------------------------------------------------------------ checks

    // Empty when the state machine's and the driver's invariants hold.
    std::string check() const {
        if (!violation.empty()) return "driver: " + violation;
        if (auto s = st.check_invariants(now); !s.empty()) return "check_invariants: " + s;
        // Over capacity exactly while the connections kept and those on their way exceed
        // max_size: a stale flag closes connections nobody asked to close.
        std::size_t open = 0, closing = 0, connecting = 0;
        st.slots().for_each([&](const slot_t& s) {
            const auto state = s.load();
            if (holds_connection(state)) ++open;
            if (state == slot_state::closing) ++closing;
            if (state == slot_state::connecting) ++connecting;
        });
        if (st.facts().over_capacity != (open - closing + connecting > st.current().max_size))
            return "over_capacity says " + std::string(st.facts().over_capacity ? "true" : "false") + " with " +
                   std::to_string(open - closing) + " open and not closing, " + std::to_string(connecting) +
                   " connecting, max_size " + std::to_string(st.current().max_size);
        for (std::size_t c = 0; c < callers.size(); ++c) {
            const caller_state& k = callers[c];
            if (k.lease != nullptr) {
                const auto state = k.lease->load();
                if (state != slot_state::leased && state != slot_state::orphaned)
                    return "caller " + std::to_string(c) + " holds a lease on a slot in state " + to_string(state);
                if (!k.lease->conn) return "caller " + std::to_string(c) + " holds a lease without a connection";
            }
            if (k.waiting != nullptr && k.waiting->pending() && k.waiting->deadline <= now)
                return "caller " + std::to_string(c) + " still waits " +
                       std::to_string(ms_of(now - k.waiting->deadline)) + " ms past its deadline";
            if (k.waiting != nullptr && k.waiting->phase == waiter_phase::fresh)
                return "caller " + std::to_string(c) + " waits on a waiter the pool never took";
        }
        return {};
    }

    // The slots' states and the pool's counts, for failure messages.
    std::string describe() const {
        std::string out = "slots:";
        st.slots().for_each([&](const slot_t& s) { out += std::string(" ") + to_string(s.load()); });
        const auto ps = st.snapshot(now);
        out += "; open " + std::to_string(ps.open) + ", creating " + std::to_string(ps.creating) + ", waiting " +
               std::to_string(ps.waiting) + ", max_size " + std::to_string(ps.max_size) + "; pending: " +
               std::to_string(connects.size()) + " connects, " + std::to_string(closes.size()) + " closes, " +
               std::to_string(resets.size()) + " resets, " + std::to_string(pings.size()) + " pings, " +
               std::to_string(probes.size()) + " probes";
        return out;
    }

    std::size_t open_count() const {
        std::size_t n = 0;
        st.slots().for_each([&](const slot_t& s) {
            if (holds_connection(s.load()) && s.load() != slot_state::closing) ++n;
        });
        return n;
    }

    std::size_t count_in(slot_state want) const {
        std::size_t n = 0;
        st.slots().for_each([&](const slot_t& s) {
            if (s.load() == want) ++n;
        });
        return n;
    }

    std::size_t waiting_callers() const {
        std::size_t n = 0;
        for (const auto& k : callers) n += k.waiting != nullptr ? 1 : 0;
        return n;
    }

    // The waiter of c's latest acquire.
    test_waiter& last_waiter_of(std::size_t c) {
        for (auto it = waiters.rbegin(); it != waiters.rend(); ++it) {
            if ((*it)->caller == c) return **it;
        }
        throw std::logic_error("no waiter for that caller");
    }

    actions& raw_actions() { return a_; }

    // Takes everything st wrote into the actions so far: call after driving st directly.
    void process() {
        for (;;) {
            for (auto* s : a_.connects) {
                connects.push_back({static_cast<slot_t*>(s), now});
                ++connects_started;
            }
            a_.connects.clear();
            for (auto& [s, why] : a_.closes) {
                closes.push_back({static_cast<slot_t*>(s), why});
                ++closes_asked[why];
            }
            a_.closes.clear();
            for (auto* s : a_.resets) resets.push_back(static_cast<slot_t*>(s));
            a_.resets.clear();
            for (auto& [s, t] : a_.pings) {
                pings.push_back({static_cast<slot_t*>(s), t});
                ping_timeouts.push_back(t);
            }
            a_.pings.clear();
            for (auto* s : a_.probes) probes.push_back(static_cast<slot_t*>(s));
            a_.probes.clear();
            for (auto& l : a_.leaks) leaks.push_back(l);
            a_.leaks.clear();
            if (a_.drained) ++drained_seen;
            a_.drained = false;
            arm(a_.timer);
            a_.timer = time_point::max();
            waiter_base* w = a_.pop_done();
            if (w == nullptr) break;
            auto& tw = static_cast<test_waiter&>(*w);
            if (w->result != nullptr) {
                handout(tw, *static_cast<slot_t*>(w->result), false);
            } else {
                outcome_error(tw);
            }
        }
    }

private:
    test_waiter& new_waiter(std::size_t c, std::chrono::milliseconds timeout) {
        waiters.push_back(std::make_unique<test_waiter>());
        test_waiter& w = *waiters.back();
        w.caller = c;
        w.tenant = callers.at(c).tenant;
        w.asked_at = now;
        // As the shell does: milliseconds::max() saturates to "never" (defect 10).
        w.deadline = saturating_add(now, timeout);
        return w;
    }

    // The shell's hand-out check for a slot chosen for w.
    void handout(test_waiter& w, slot_t& s, bool from_hint) {
        if (s.load() != slot_state::leased) note(std::string("a slot handed out in state ") + to_string(s.load()));
        // ping_done() completes the waiter with the slot it just validated (w.validated):
        // deliver it, do not judge (and ping) it again.
        if (w.validated) {
            if (&s != just_pinged_) note("a waiter marked validated outside the ping_done() of its slot");
            return deliver(w, s);
        }
        const auto v = judge_handout(state_t::facts_of(s, now), st.facts(), opts, true);
        switch (v.kind) {
        case handout_kind::deliver: deliver(w, s); break;
        case handout_kind::ping: st.start_validation(w, s, now, a_); break;
        case handout_kind::close:
            st.close_leased(s, v.reason, a_);
            if (from_hint) {
                switch (st.admit(w, now, a_)) {
                case admit_result::served: handout(w, *static_cast<slot_t*>(w.result), false); break;
                case admit_result::queued: break;
                case admit_result::refused: outcome_error(w); break;
                }
            } else {
                st.readmit(w, now, a_);
            }
            break;
        }
    }

    void deliver(test_waiter& w, slot_t& s) {
        caller_state& k = callers.at(w.caller);
        if (++w.outcomes > 1) note("a waiter got a lease after its outcome");
        if (k.waiting != &w) note("a lease delivered to a waiter its caller no longer waits on");
        if (ledger.count(&s) != 0) note("a slot delivered while another caller holds its lease");
        ledger[&s] = w.caller;
        k.waiting = nullptr;
        k.lease = &s;
        k.hint = &s;
        ++k.acquires;
        k.last_served = now;
        st.lease_started(s, [&] { return now; });
        s.leased_at.store(now, std::memory_order_relaxed);
        s.leak_reported.store(false, std::memory_order_relaxed);
        s.count_acquire();
    }

    void outcome_error(test_waiter& w) {
        caller_state& k = callers.at(w.caller);
        if (++w.outcomes > 1) note("a waiter got an error after its outcome");
        if (!w.error) note("a waiter completed with neither a slot nor an error");
        if (w.error.code == errc::acquire_timeout) {
            // "after N ms" is the real wait: since the caller asked.
            const std::string said = "after " + std::to_string(ms_of(now - w.asked_at)) + " ms";
            if (w.error.message.find(said) == std::string::npos)
                note("a timeout message without \"" + said + "\": " + w.error.message);
        }
        if (k.waiting == &w) k.waiting = nullptr;
        ++k.errors;
        k.last_error = w.error;
    }

    void arm(time_point t) {
        if (t < timer) timer = t;
    }

    void note(const std::string& what) {
        if (violation.empty()) violation = what;
    }

    template <class T>
    static T take(std::vector<T>& v, std::size_t i) {
        if (i >= v.size()) throw std::out_of_range("no such pending operation");
        T x = v[i];
        v.erase(v.begin() + static_cast<std::ptrdiff_t>(i));
        return x;
    }

    actions a_;
    const slot_base* just_pinged_ = nullptr;  // during ping_done(): the slot whose ping finished
    int next_conn_ = 1;
    std::uint64_t recency_ = 0;
};

}  // namespace state_test

#endif  // CONNPOOL_TESTS_UNIT_STATE_DRIVER_HPP
