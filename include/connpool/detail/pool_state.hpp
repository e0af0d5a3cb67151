// connpool internals: the pool's decisions as one sans-I/O state machine.
//
// Events go in (an acquire arrives, a connection comes back, a connect, reset, ping or
// probe finishes, time passes, a caller gives up, close, resize, retire); actions come
// out (actions.hpp): complete these waiters, start these connects, close, reset, ping or
// probe these connections, run tick() at T. It reads no clock (every event carries
// "now"), starts no thread and calls no factory, so tests step it in virtual time.
//
// Locking: the shell serializes every member not marked lock-free with one mutex. The
// lock-free members are the fast paths; they touch only a slot's state word with one CAS
// and read waiting(), and their interplay with the queue is the one the slot table in
// slot.hpp and the comments below describe.
#ifndef CONNPOOL_DETAIL_POOL_STATE_HPP
#define CONNPOOL_DETAIL_POOL_STATE_HPP

#include <connpool/detail/actions.hpp>
#include <connpool/detail/connector.hpp>
#include <connpool/detail/handout.hpp>
#include <connpool/detail/reporting.hpp>
#include <connpool/detail/slot.hpp>
#include <connpool/detail/waiter_queue.hpp>
#include <connpool/options.hpp>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace connpool::detail {

enum class admit_result {
    served,   // w.result holds a claimed slot: check it, then deliver (nobody else will)
    queued,   // w waits; it is completed through actions later
    refused,  // w.error says why
};

// What return_to_idle() leaves to its caller.
enum class publish_result {
    done,    // the slot is idle (and hinted); nothing else to do
    serve,   // idle, but a waiter appeared meanwhile: call serve_waiters() under the lock
    locked,  // not published: call hand_over() under the lock
};


template <class Connection>
class pool_state {
public:
    using slot_type = slot<Connection>;

    pool_state(const options& o, slot_owner* owner, std::uint64_t seed, bool can_probe)
        : opts_((validate(o), o)), owner_(owner), can_probe_(can_probe), connector_(opts_, seed) {}

    pool_state(const pool_state&) = delete;
    pool_state& operator=(const pool_state&) = delete;

    // ------------------------------------------------------------ lock-free members

    std::size_t waiting() const noexcept { return waiting_.load(std::memory_order_seq_cst); }
    bool closed() const noexcept { return closed_.load(std::memory_order_acquire); }
    const options& opts() const noexcept { return opts_; }  // the immutable fields only

    pool_facts facts() const noexcept {
        return {closed(), generation_.load(std::memory_order_relaxed),
                over_capacity_.load(std::memory_order_relaxed)};
    }

    static connection_facts facts_of(const slot_type& s, time_point now) noexcept {
        return {now, s.expires_at, s.last_used.load(std::memory_order_relaxed), s.generation,
                s.acquires.load(std::memory_order_relaxed)};
    }

    // While callers wait, may an idle connection still go to whoever asks first? Under
    // handoff_policy::barging, yes, unless the oldest waiter has waited starvation_bound
    // (starvation mode: returns go to it directly) or is async (it has no thread that
    // could come looking: it is served directly, and its completion is posted).
    // hold: how long the connection will likely be held next (the last lease's length):
    // barging is refused as soon as the oldest waiter would reach the bound before that
    // connection comes back, so that several waiters reaching it together are still
    // served within about one hold time of it.
    template <class Now>
    bool barging_allowed(Now&& now, duration hold = duration::zero()) const noexcept {
        if (opts_.handoff != handoff_policy::barging || head_async_.load(std::memory_order_relaxed)) return false;
        const time_point since = oldest_since_.load(std::memory_order_relaxed);
        return since == time_point::max() || now() - since + hold < opts_.starvation_bound;
    }

    // A lease of s begins (the shell's begin_lease): while others wait, stamp it for the
    // hold estimate of return_to_idle().
    template <class Now>
    void lease_started(slot_type& s, Now&& now) noexcept {
        s.busy_since.store(waiting() != 0 ? now() : time_point{}, std::memory_order_relaxed);
    }

    // Whether the oldest waiter has waited starvation_bound (under the lock).
    bool starving(time_point now) const noexcept {
        return !waiters_.empty() && now - waiters_.front()->enqueued_at >= opts_.starvation_bound;
    }

    // lease_idle through the caller's hint: with nobody waiting, or while barging is
    // allowed (now() is read only then). want: the label hash the caller asks for; a hint
    // carrying other settings is passed over, so that the scan can find one that does.
    template <class Now>
    slot_type* lease_hint(slot_type* h, Now&& now, std::uint64_t want = 0) noexcept {
        // With tenants every hand-out moves a quota, so it goes through the lock: one branch.
        if (h == nullptr || closed() || tenants_on()) return nullptr;
        if (h->label_hash.load(std::memory_order_relaxed) != want) return nullptr;
        if (waiting() != 0 && !barging_allowed(now)) return nullptr;
        return h->cas(slot_state::idle, slot_state::leased) ? h : nullptr;
    }

    // return_to_idle for a connection judged fit for reuse: the decision of who gets it.
    // Nobody waits, or barging is allowed: publish it idle, for whoever asks first (the
    // returning thread coming straight back, a newcomer; a blocking waiter looks for it
    // when it reaches the starvation bound). Otherwise the caller hands it over to the
    // next waiter under the lock.
    template <class Now>
    publish_result return_to_idle(slot_type& s, Now&& now) noexcept {
        if (tenants_on()) return publish_result::locked;  // the quota frees under the lock
        if (waiting() != 0) {
            // A connection carrying settings goes through the label-aware choice of who is
            // next (next_waiter): handing it to a waiter that wants those settings saves an
            // apply(), a round trip, where barging saves a wake-up (issue 16's label bench:
            // hit rate 0.22 -> 0.55 at 16 threads on 8 connections).
            if (s.label_hash.load(std::memory_order_relaxed) != 0) return publish_result::locked;
            const time_point t = now();
            const time_point since = s.busy_since.load(std::memory_order_relaxed);
            const duration hold = since == time_point{} || since > t ? duration::zero() : t - since;
            if (!barging_allowed([t] { return t; }, hold)) return publish_result::locked;
        }
        if (!s.cas(slot_state::leased, slot_state::idle)) return publish_result::locked;  // orphaned
        // A waiter that counted itself in after our first look must not sleep next to an
        // idle slot: it counts itself in before it scans, we publish before we look again.
        // One that barging may keep waiting (it is not starving, and it is blocking) looks
        // for idle slots itself at its bound.
        return waiting() != 0 && !barging_allowed(now) ? publish_result::serve : publish_result::done;
    }

    // ------------------------------------------------------------ acquire

    admit_result admit(waiter_base& w, time_point now, actions& a);

    // Idle slots whose reservation ended go to the oldest waiters.
    void serve_waiters(time_point now, actions& a) {
        while (waiters_.servable()) {
            slot_type* s = lease_lifo();
            if (s == nullptr) break;
            waiter_base& w = next_waiter(now);
            if (s->label_hash.load(std::memory_order_relaxed) != w.want_label) s = rematch(*s, w.want_label);
            assign(w, *s, now, a);
        }
    }

    // When a blocking waiter enqueued at `since` looks for idle slots itself (sync_face),
    // under barging: half a bound after the bound, as under load the returns hand it its
    // connection at the bound (the starvation mode), and a look of its own then would only
    // cost a wake-up per acquire. Never, under fifo: every return hands over.
    time_point look_at(time_point since) const noexcept {
        if (opts_.handoff != handoff_policy::barging) return time_point::max();
        return saturating_add(since, opts_.starvation_bound + opts_.starvation_bound / 2);
    }

    // A blocking waiter reached look_at(): idle slots that barging left to whoever came
    // first go to the oldest waiters now.
    void waiter_starving(time_point now, actions& a) {
        if (!closed()) serve_waiters(now, a);
    }

    // The hand-out check chose to ping w's connection: it stays w's while the ping runs,
    // and w can still time out or be cancelled. The ping has its own ping_timeout, not
    // what w has left: a ping cut short by its caller's deadline would close a healthy
    // connection whose round trip is merely longer than that. One that outlives its caller
    // completes on its own, and its connection goes back (ping_done).
    void start_validation(waiter_base& w, slot_type& s, time_point now, actions& a);

    // w's connection s carries other settings than the label w asks for: apply() moves
    // it, on the maintenance lane, while w can still time out or be cancelled (as during a
    // ping), so that the step is bounded by w's deadline. A copy of the label goes with
    // the action: w may be gone by the time the lane runs it.
    void start_apply(waiter_base& w, slot_type& s, const label& want, actions& a);

    // apply() finished (the shell wrote the slot's new label when it succeeded; go is
    // false when the pool stopped before it ran). The waiter still there gets s; a waiter
    // that gave up meanwhile leaves it to the next (with its new settings), as after a
    // ping. A failed apply leaves the settings unknown: s closes (handout_failed).
    void apply_done(slot_type& s, bool ok, bool go, error_info e, time_point now, actions& a);

    // The slot remembers its waiter only while the waiter still wants it: a waiter that
    // timed out, was cancelled or saw the pool close is gone, and so is the pointer.
    void ping_done(slot_type& s, bool ok, time_point now, actions& a,
                   error_info why = error_info{errc::ping_failed, "validation ping failed"});

    // A delivered slot failed the hand-out check and was closed: w keeps its place.
    void readmit(waiter_base& w, time_point now, actions& a);

    // After this many new connections failed their hand-out for one acquire (apply, ping),
    // it fails with the last one's error instead of trying more until its deadline.
    static constexpr std::uint8_t max_handout_failures = 3;

    // w's connection s failed a step of its hand-out (apply(), or the validation ping): s
    // closes, as its state is unknown. A new connection's failure counts against the
    // backoff like a failed connect, so that a step a new connection cannot fix (a role the
    // server lacks, a server that fails every query) does not open one after another. w
    // tries another connection, or, after max_handout_failures new ones failed for it,
    // fails with e at once. New means opened while w waited: older ones that fail (idle
    // ones dead after a server restart) do not count, as a new connection is exactly what
    // fixes them.
    void handout_failed(waiter_base& w, slot_type& s, close_reason why, error_info e, time_point now, actions& a);

    // The caller stops waiting (errc::cancelled, or errc::acquire_timeout at its own
    // deadline). A waiter already done is left alone: its completion is under way.
    void give_up(waiter_base& w, errc why, time_point now, actions& a) {
        if (!w.pending()) return;
        if (why == errc::acquire_timeout) return expire(w, now, a);
        unqueue(w);
        reports_.cancelled++;
        if (w.tenant_ref != nullptr) w.tenant_ref->cancelled++;
        w.error = error_info{why, "acquire cancelled"};
        a.complete(w);
    }

    // ------------------------------------------------------------ return

    // The connection is fit for reuse: to the oldest waiter, else idle (hinted by caller).
    void hand_over(slot_type& s, time_point now, actions& a) {
        tenant_table::release(s.tenant);
        if (closed() || s.load() == slot_state::orphaned) return close_leased(s, close_reason::pool_closed, a);
        s.state.store(slot_state::leased, std::memory_order_relaxed);
        if (waiters_.servable()) return assign(next_waiter(s, now), s, now, a);
        s.state.store(slot_state::idle, std::memory_order_release);
    }

    // After a return that did not come back idle (reset, close): with tenants, its quota
    // freed, so a waiter that was at quota may take a connection that is idle now.
    void quota_freed(time_point now, actions& a) {
        if (tenants_on()) serve_waiters(now, a);
    }

    // Over capacity after set_max_size(): true for as many returns as there are
    // connections too many, because the caller closes each at once (close_leased counts
    // it in closing_). Returns that overlap therefore close exactly the excess.
    bool take_excess() const noexcept { return open_ - closing_ + connector_.in_flight() > max_size_; }

    // The hand-out and return verdicts say "resized" from a lock-free look; under the lock,
    // true when other returns already closed the excess, so this connection may stay.
    bool excess_closed(close_reason why) const noexcept { return why == close_reason::resized && !take_excess(); }

    // The hand-out check (judge_handout) did not say deliver for w's connection s: ping
    // it for w, or close it and put w back at the head of the queue. True: deliver after
    // all, as other returns already closed a resize's excess.
    bool settle_handout(waiter_base& w, slot_type& s, const handout_verdict& v, time_point now, actions& a);

    // A return judged unfit for reuse as it is (judge_return): reset it or close it.
    void return_unfit(slot_type& s, const return_verdict& v, time_point now, actions& a);

    void start_reset(slot_type& s, actions& a) {
        tenant_table::release(s.tenant);
        if (closed() || s.load() == slot_state::orphaned) return close_leased(s, close_reason::pool_closed, a);
        s.state.store(slot_state::resetting, std::memory_order_relaxed);
        ++resetting_;
        a.resets.push_back(&s);
    }

    void reset_done(slot_type& s, bool ok, time_point now, actions& a) {
        --resetting_;
        s.state.store(slot_state::leased, std::memory_order_relaxed);
        if (!ok) return close_leased(s, close_reason::reset_failed, a);
        hand_over(s, now, a);
    }

    // ------------------------------------------------------------ closing

    // s is held (leased, orphaned, or just taken from another state): close its connection.
    void close_leased(slot_type& s, close_reason why, actions& a) {
        tenant_table::release(s.tenant);
        s.state.store(slot_state::closing, std::memory_order_relaxed);
        ++closing_;
        update_capacity();
        a.closes.emplace_back(&s, why);
    }

    // The shell closed s's connection.
    void close_done(slot_type& s, close_reason why, time_point now, actions& a);

    void close(actions& a);

    bool drained() const noexcept { return closed() && open_ + connector_.in_flight() == 0; }

    // Every connection exists or is on its way, and waiters outnumber the connects: only
    // a return can serve them.
    bool exhausted() const noexcept {
        return open_ - closing_ + connector_.in_flight() >= max_size_ && waiters_.size() > connector_.in_flight();
    }

    // ------------------------------------------------------------ connecting

    const connect_request& request() const noexcept { return connector_.request(); }

    void connect_done(slot_type& s, std::optional<Connection> c, error_info e, time_point started, time_point now, actions& a);

    // ------------------------------------------------------------ housekeeping

    // Expire waiters (each first takes an idle slot if one is free), close what idled or
    // aged out, report leaks, probe, top up min_idle, and say when to look again.
    void tick(time_point now, actions& a);

    void probe_done(slot_type& s, bool alive, time_point now, actions& a) {
        s.state.store(slot_state::leased, std::memory_order_relaxed);
        if (!alive) return close_leased(s, close_reason::broken, a);
        hand_over(s, now, a);
    }

    // ------------------------------------------------------------ control

    // Each setter validates the whole options as the constructor does.
    void set_max_size(std::size_t n, time_point now, actions& a);

    void set_min_idle(std::size_t n, time_point now, actions& a);

    void retire_all(time_point now, actions& a);

    // The options as they are now, runtime changes included.
    options current() const {
        options o = opts_;
        o.max_size = max_size_;
        o.min_idle = min_idle_;
        return o;
    }

    // ------------------------------------------------------------ observability

    pool_stats snapshot(time_point now) const;

    std::vector<lease_info> leases(time_point now) const { return reports_.leases(slots_, now); }
    reporting& reports() noexcept { return reports_; }
    const slot_table<slot_type>& slots() const noexcept { return slots_; }

    // Empty when every invariant holds, else what broke. For the tests, after each event.
    std::string check_invariants(time_point now) const;

private:
    admit_result refuse(waiter_base& w, error_code code, std::string message) {
        w.result = nullptr;
        w.error = error_info{code, std::move(message)};
        return admit_result::refused;
    }

    admit_result refuse_waiter(waiter_base& w, std::string message) {
        reports_.rejected++;
        if (tenants_on()) ++w.tenant_ref->rejected;
        return refuse(w, errc::too_many_waiters, std::move(message));
    }

    admit_result serve_now(waiter_base& w, slot_type& s, time_point now) {
        if (w.phase == waiter_phase::fresh) w.enqueued_at = now;  // a ping or readmit() measures from here
        w.result = &s;
        if (tenants_on()) tenants_.attach(s.tenant, w.tenant_ref, now - w.enqueued_at);
        return admit_result::served;
    }

    // The most recently used idle slot (LIFO keeps backends warm and lets the surplus
    // reach its idle timeout). The CAS decides races with the lock-free paths.
    // With want (a label hash), one that carries that label first, then a clean one, then
    // any: LIFO within each. Without labels in use every slot ranks the same: plain LIFO.
    slot_type* lease_lifo(std::uint64_t want = 0) noexcept;

    static int label_rank(const slot_type& s, std::uint64_t want) noexcept {
        const auto h = s.label_hash.load(std::memory_order_relaxed);
        return h == want ? 2 : h == 0 ? 1 : 0;
    }

    // s (claimed) carries other settings than the waiter wants: trade it for an idle one
    // that ranks higher, if there is one, and publish s idle again.
    slot_type* rematch(slot_type& s, std::uint64_t want) noexcept;

    // The waiter a handed-over connection goes to: the oldest, or under waiter_order::lifo
    // the newest unless the oldest is starving. Dequeued.
    waiter_base& next_waiter(time_point now) noexcept {
        return *waiters_.next_to_serve(opts_.queue_order == waiter_order::lifo && !starving(now));
    }

    // Who gets returned connection s. Under FIFO, while nobody starves, a waiter near the
    // head that asks for the settings s carries goes first: a saturated pool would hand
    // each connection to whoever is oldest, whatever label it carries, and every hand-out
    // would pay an apply(). The starvation bound still caps how long the head waits.
    waiter_base& next_waiter(const slot_type& s, time_point now) noexcept {
        constexpr std::size_t label_window = 16;
        if (opts_.queue_order == waiter_order::fifo && !starving(now)) {
            return *waiters_.next_to_serve(s.label_hash.load(std::memory_order_relaxed), label_window);
        }
        return next_waiter(now);
    }

    // w dequeued (or its ping done): s (leased) becomes its. An acquire that queued counts
    // as waited once, however many rounds (pings, readmits) it took.
    void assign(waiter_base& w, slot_type& s, time_point now, actions& a) {
        sync_waiting();
        w.result = &s;
        if (w.queued_once && !w.wait_counted) {
            w.wait_counted = true;
            reports_.waited(now - w.enqueued_at);
        }
        if (tenants_on()) tenants_.attach(s.tenant, w.tenant_ref, now - w.enqueued_at);
        a.complete(w);
    }

    void fail(waiter_base& w, errc code, const std::string& message, actions& a) {
        fail(w, make_error_code(code), message, a);
    }

    void fail(waiter_base& w, error_code code, const std::string& message, actions& a) {
        unqueue(w);
        w.result = nullptr;
        w.error = error_info{code, message};
        a.complete(w);
    }

    void expire(waiter_base& w, time_point now, actions& a);

    // Takes w out of the queue, or out of the pinging set, whichever it is in.
    void unqueue(waiter_base& w) noexcept {
        if (w.phase == waiter_phase::queued) {
            waiters_.remove(w);
            sync_waiting();
        } else if (w.phase == waiter_phase::checking && w.result != nullptr) {
            // The slot stays pinging or applying; ping_done() or apply_done() hands it
            // over to someone else.
            static_cast<slot_type*>(w.result)->validating_for = nullptr;
            w.result = nullptr;
        }
    }

    std::vector<waiter_base*> checking_waiters() const;  // from the pinging and applying slots

    // After every queue change: the counter the lock-free paths read, and what
    // barging_allowed() reads of the head.
    void sync_waiting() noexcept {
        const waiter_base* head = waiters_.front();
        oldest_since_.store(head != nullptr ? head->enqueued_at : time_point::max(), std::memory_order_relaxed);
        head_async_.store(head != nullptr && head->is_async, std::memory_order_relaxed);
        waiting_.store(waiters_.size(), std::memory_order_seq_cst);
    }

    // s, if idle, starts closing (the caller updates the capacity flag).
    bool close_idle(slot_type& s, close_reason why, actions& a) {
        if (!s.cas(slot_state::idle, slot_state::closing)) return false;
        ++closing_;
        a.closes.emplace_back(&s, why);
        return true;
    }

    void update_capacity() noexcept {
        over_capacity_.store(open_ - closing_ + connector_.in_flight() > max_size_, std::memory_order_relaxed);
    }

    void check_drained(actions& a) noexcept {
        if (drained()) a.drained = true;
    }

    void plan_connects(time_point now, actions& a);
    void evict_idle(time_point now, actions& a);
    void find_leaks(time_point now, actions& a);
    void claim_for_probe(actions& a);

    // Tenants (pool_state_tenants.hpp): on from the first add_tenant(), for good.
    bool tenants_on() const noexcept { return tenants_on_.load(std::memory_order_relaxed); }
    bool tenant_admit(waiter_base& w);

public:
    void add_tenant(tenant_id id, const tenant_options& o, time_point now, actions& a);
    void set_tenant(tenant_id id, const tenant_options& o, time_point now, actions& a);
    void remove_tenant(tenant_id id, time_point now, actions& a);

private:
    const options opts_;
    slot_owner* const owner_;
    const bool can_probe_;

    alignas(64) std::atomic<std::size_t> waiting_{0};
    std::atomic<bool> closed_{false};
    std::atomic<std::uint64_t> generation_{1};
    std::atomic<bool> over_capacity_{false};
    std::atomic<time_point> oldest_since_{time_point::max()};  // the head waiter's enqueued_at
    std::atomic<bool> head_async_{false};
    std::atomic<bool> tenants_on_{false};
    tenant_table tenants_;

    alignas(64) slot_table<slot_type> slots_;
    waiter_queue waiters_;
    connector connector_;
    reporting reports_;
    std::size_t max_size_ = opts_.max_size;
    std::size_t min_idle_ = opts_.min_idle;
    std::size_t open_ = 0;       // slots holding a connection (any state but empty, connecting)
    std::size_t closing_ = 0;    // of those, being closed
    std::size_t resetting_ = 0;  // of those, being reset
    std::size_t checking_ = 0;   // of those, being pinged or applied for a waiter
    // The next full housekeeping pass (eviction, leaks, probes): ticks for a deadline or a
    // reservation's end in between only expire waiters, serve and connect.
    time_point housekeeping_due_{};
};

}  // namespace connpool::detail

#include <connpool/detail/pool_state_checks.hpp>
#include <connpool/detail/pool_state_control.hpp>
#include <connpool/detail/pool_state_impl.hpp>
#include <connpool/detail/pool_state_tenants.hpp>

#endif  // CONNPOOL_DETAIL_POOL_STATE_HPP
