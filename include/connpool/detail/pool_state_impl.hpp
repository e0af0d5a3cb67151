// connpool internals: pool_state's housekeeping decisions and its invariants. Included
// by pool_state.hpp only.
#ifndef CONNPOOL_DETAIL_POOL_STATE_IMPL_HPP
#define CONNPOOL_DETAIL_POOL_STATE_IMPL_HPP

#include <connpool/detail/decisions.hpp>
#include <connpool/detail/pool_state.hpp>

#include <algorithm>
#include <string>
#include <vector>

namespace connpool::detail {

// Start what connects_to_start() asks for. The connect's generation is stamped now, at
// its start, so that a retire_all() while it is in flight retires it too.
template <class Connection>
void pool_state<Connection>::plan_connects(time_point now, actions& a) {
    pool_counts c;
    c.open = open_;  // closing ones too: the server still counts them
    c.connecting = connector_.in_flight();
    c.waiting = waiters_.size();
    slots_.for_each([&](slot_type& s) {
        if (counts_as_idle(s.load())) ++c.idle;
    });
    c.in_use = open_ - closing_ - std::min(open_ - closing_, c.idle);
    c.coming_back = resetting_ + c.idle;  // idle while others wait: barging's, it reaches a waiter within the bound
    creation_policy p;
    p.max_size = max_size_;
    p.min_idle = min_idle_;
    p.max_connecting = opts_.max_connecting;
    p.in_backoff = connector_.in_backoff(now);
    p.closed = closed();
    for (std::size_t n = connects_to_start(c, p); n > 0; --n) {
        slot_type* s = slots_.find([](slot_type& x) { return x.load() == slot_state::empty; });
        if (s == nullptr) {
            s = &slots_.add();
            s->owner = owner_;
        }
        s->generation = generation_.load(std::memory_order_relaxed);
        s->state.store(slot_state::connecting, std::memory_order_relaxed);
        connector_.started();
        a.connects.push_back(s);
    }
    if (p.in_backoff && (c.waiting > 0 || c.idle < min_idle_)) a.arm(connector_.backoff_until());
}

// Idle connections are judged most recently used first, so the ones that close are the
// coldest, and min_idle keeps the warmest.
template <class Connection>
void pool_state<Connection>::evict_idle(time_point now, actions& a) {
    // Recency is read once per slot: lock-free returns rewrite it while we sort, and a
    // comparator whose answers change breaks std::sort (it ran past the vector's end).
    std::vector<std::pair<std::uint64_t, slot_type*>> ranked;
    slots_.for_each([&](slot_type& s) {
        if (s.load() == slot_state::idle) ranked.emplace_back(s.recency.load(std::memory_order_relaxed), &s);
    });
    std::sort(ranked.begin(), ranked.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
    std::vector<slot_type*> idle;
    idle.reserve(ranked.size());
    for (const auto& r : ranked) idle.push_back(r.second);
    const idle_policy p{min_idle_, opts_.max_idle, opts_.idle_timeout};
    const auto gen = generation_.load(std::memory_order_relaxed);
    std::size_t rank = 0;
    for (slot_type* s : idle) {
        idle_facts f;
        f.expired = now >= s->expires_at || s->generation != gen;
        f.idle_for = now - s->last_used.load(std::memory_order_relaxed);
        f.idle_rank = rank;
        f.idle_count = idle.size();
        const auto verdict = judge_idle(f, p);
        if (verdict == idle_verdict::keep) {
            ++rank;
            continue;
        }
        const close_reason why = verdict == idle_verdict::lifetime
                                     ? (s->generation != gen ? close_reason::retired : close_reason::lifetime)
                                 : verdict == idle_verdict::max_idle ? close_reason::max_idle
                                                                     : close_reason::idle_timeout;
        if (close_idle(*s, why, a)) {
            update_capacity();
        } else {
            ++rank;  // someone took it: it is in use, not idle
        }
    }
}

template <class Connection>
typename pool_state<Connection>::slot_type* pool_state<Connection>::lease_lifo(std::uint64_t want) noexcept {
    for (;;) {
        slot_type* best = nullptr;
        std::uint64_t best_used = 0;
        int best_rank = -1;
        slots_.for_each([&](slot_type& s) {
            if (s.load() != slot_state::idle) return;
            const auto used = s.recency.load(std::memory_order_relaxed);
            const int rank = label_rank(s, want);
            if (best == nullptr || rank > best_rank || (rank == best_rank && used > best_used)) {
                best = &s;
                best_used = used;
                best_rank = rank;
            }
        });
        if (best == nullptr || best->cas(slot_state::idle, slot_state::leased)) return best;
    }
}

template <class Connection>
typename pool_state<Connection>::slot_type* pool_state<Connection>::rematch(slot_type& s, std::uint64_t want) noexcept {
    slot_type* b = lease_lifo(want);
    if (b == nullptr) return &s;
    slot_type& keep = label_rank(*b, want) > label_rank(s, want) ? *b : s;
    slot_type& back = &keep == b ? s : *b;
    back.state.store(slot_state::idle, std::memory_order_release);
    return &keep;
}

template <class Connection>
void pool_state<Connection>::find_leaks(time_point now, actions& a) {
    if (opts_.leak_threshold.count() == 0) return;
    slots_.for_each([&](slot_type& s) {
        if (s.load() != slot_state::leased || s.leak_reported.load(std::memory_order_relaxed)) return;
        if (now - s.leased_at.load(std::memory_order_relaxed) < opts_.leak_threshold) return;
        s.leak_reported.store(true, std::memory_order_relaxed);
        ++reports_.leaks_reported;
        a.leaks.push_back(reporting::info_of(s, now));
    });
}

template <class Connection>
void pool_state<Connection>::claim_for_probe(actions& a) {
    slots_.for_each([&](slot_type& s) {
        if (s.cas(slot_state::idle, slot_state::probing)) a.probes.push_back(&s);
    });
}

template <class Connection>
std::vector<waiter_base*> pool_state<Connection>::checking_waiters() const {
    std::vector<waiter_base*> out;
    if (checking_ == 0) return out;
    slots_.for_each([&](const slot_type& s) {
        const auto st = s.load();
        if ((st == slot_state::pinging || st == slot_state::applying) && s.validating_for != nullptr)
            out.push_back(s.validating_for);
    });
    return out;
}

template <class Connection>
std::string pool_state<Connection>::check_invariants(time_point now) const {
    std::size_t connecting = 0, holding = 0, closing = 0, resetting = 0, pinging = 0, servable_idle = 0;
    std::string broken;
    auto fail = [&](const std::string& what) {
        if (broken.empty()) broken = what;
    };
    slots_.for_each([&](const slot_type& s) {
        const auto st = s.load();
        if (st == slot_state::connecting) ++connecting;
        if (holds_connection(st)) {
            ++holding;
            if (!s.conn) fail(std::string("a slot in state ") + to_string(st) + " has no connection");
        } else if (s.conn) {
            fail(std::string("a slot in state ") + to_string(st) + " still has a connection");
        }
        if (st == slot_state::closing) ++closing;
        if (st == slot_state::resetting) ++resetting;
        if (st == slot_state::pinging || st == slot_state::applying) ++pinging;
        if (st == slot_state::idle) ++servable_idle;
    });
    if (connecting != connector_.in_flight())
        fail("connecting slots " + std::to_string(connecting) + " != counter " + std::to_string(connector_.in_flight()));
    if (holding != open_) fail("slots with a connection " + std::to_string(holding) + " != open " + std::to_string(open_));
    if (closing != closing_) fail("closing slots " + std::to_string(closing) + " != counter " + std::to_string(closing_));
    if (resetting != resetting_) fail("resetting slots != counter");
    if (pinging != checking_) fail("pinging and applying slots != counter");
    if (open_ - closing_ + connecting > max_size_ && !over_capacity_.load())
        fail("open " + std::to_string(open_ - closing_) + " + connecting " + std::to_string(connecting) +
             " > max_size " + std::to_string(max_size_));
    if (waiters_.size() != waiting_.load()) fail("waiting counter disagrees with the queue");
    // Barging may leave a blocking waiter next to an idle slot, but never past the time it
    // looks for one itself (look_at), and never an async one at the head.
    if (waiters_.servable() && servable_idle > 0) {
        const waiter_base* head = waiters_.front();
        const bool excused = !tenants_on() && !head->is_async && now < look_at(head->enqueued_at);
        if (!excused) fail("a waiter waits while an idle connection is free for it");
    }
    if (oldest_since_.load() != (waiters_.empty() ? time_point::max() : waiters_.front()->enqueued_at))
        fail("the head's enqueued_at that barging reads is stale");
    if (tenants_on()) fail(tenant_invariants(tenants_, slots_, waiters_));
    if (closed() && !waiters_.empty()) fail("waiters queued on a closed pool");
    waiters_.for_each([&](const waiter_base& w) {
        if (w.phase != waiter_phase::queued) fail("a queued waiter is not in phase queued");
    });
    return broken;
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_POOL_STATE_IMPL_HPP
