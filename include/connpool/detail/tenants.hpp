// connpool internals: the tenants' records, their FIFO sub-queues, and the weighted fair
// queuing that picks which tenant a freed connection goes to. Guarded by the pool's lock.
//
// Stride scheduling: each tenant has a pass; serving it adds stride = big / weight, and
// the tenant with the lowest pass among those waiting and below quota goes next. While
// several tenants wait, each is therefore served in proportion to its weight. A tenant
// that starts waiting again takes the current virtual time as its pass, so it cannot
// bank credit while idle and then flood, and it is never more than one round behind:
// no tenant below its quota starves.
#ifndef CONNPOOL_DETAIL_TENANTS_HPP
#define CONNPOOL_DETAIL_TENANTS_HPP

#include <connpool/detail/histogram.hpp>
#include <connpool/detail/waiter_queue.hpp>
#include <connpool/stats.hpp>
#include <connpool/tenants.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace connpool::detail {

struct tenant_rec {
    std::uint32_t id = 0;
    tenant_options opts;
    bool removed = false;  // its waiters moved to the default tenant; leases still count here

    std::size_t held = 0;  // slots whose slot_base::tenant is this record
    waiter_base* head = nullptr;
    waiter_base* tail = nullptr;
    std::size_t queued = 0;
    std::uint64_t pass = 0;

    std::uint64_t acquired = 0, timeouts = 0, cancelled = 0, quota_refused = 0, rejected = 0;
    duration_histogram wait_time;
    std::chrono::nanoseconds wait_max{};

    static constexpr std::uint64_t big = std::uint64_t{1} << 20;
    std::uint64_t stride() const noexcept { return big / opts.weight; }
    bool at_quota() const noexcept { return opts.quota != 0 && held >= opts.quota; }
    bool queue_full() const noexcept { return opts.max_waiters != 0 && queued >= opts.max_waiters; }
};

class tenant_table {
public:
    tenant_table() { recs_.push_back(std::make_unique<tenant_rec>()); }  // the default tenant

    tenant_rec& default_rec() noexcept { return *recs_.front(); }

    tenant_rec* find(std::uint32_t id) const noexcept {
        for (const auto& r : recs_) {
            if (r->id == id) return r.get();
        }
        return nullptr;
    }

    // An unknown (or removed) tenant's callers are the default tenant's.
    tenant_rec& resolve(std::uint32_t id) noexcept {
        tenant_rec* r = find(id);
        return r != nullptr ? *r : default_rec();
    }

    // add / set / remove validate like options do: std::invalid_argument naming the field.
    void add(tenant_id id, const tenant_options& o) {
        validate(o);
        if (find(id.value) != nullptr) {
            if (id.value == 0) return set(id, o);  // the default tenant exists from the start
            throw std::invalid_argument("tenant_id = " + std::to_string(id.value) + ": already added");
        }
        auto r = std::make_unique<tenant_rec>();
        r->id = id.value;
        r->opts = o;
        r->pass = vtime_;
        recs_.push_back(std::move(r));
    }

    void set(tenant_id id, const tenant_options& o) {
        validate(o);
        tenant_rec* r = find(id.value);
        if (r == nullptr) throw std::invalid_argument("tenant_id = " + std::to_string(id.value) + ": no such tenant");
        r->opts = o;
    }

    // Its waiters join the default tenant's sub-queue, oldest first; its leases keep
    // counting against the removed record until they come back. Records are never freed
    // while the pool lives (slots and waiters point at them), but a removed one leaves the
    // list that acquires scan; a re-added id gets a new one.
    void remove(tenant_id id) {
        if (id.value == 0) throw std::invalid_argument("tenant_id = 0: the default tenant cannot be removed");
        tenant_rec* r = find(id.value);
        if (r == nullptr) throw std::invalid_argument("tenant_id = " + std::to_string(id.value) + ": no such tenant");
        std::vector<waiter_base*> moved;
        for (waiter_base* w = r->head; w != nullptr; w = w->tnext) moved.push_back(w);
        for (waiter_base* w : moved) unlink(*w);
        r->removed = true;
        const auto it = std::find_if(recs_.begin(), recs_.end(), [&](const auto& p) { return p.get() == r; });
        retired_.push_back(std::move(*it));
        recs_.erase(it);
        for (waiter_base* w : moved) {
            w->tenant_ref = &default_rec();
            push(*w, false);
        }
    }

    void push(waiter_base& w, bool front) noexcept {
        // A waiter admitted before tenants were on, or whose tenant was removed, while
        // its connection was checked (readmit) joins its tenant now, or the default one.
        if (w.tenant_ref == nullptr || w.tenant_ref->removed) w.tenant_ref = &resolve(w.tenant);
        tenant_rec& r = *w.tenant_ref;
        if (r.queued == 0) r.pass = std::max(r.pass, vtime_);  // no credit banked while idle
        if (front) {
            w.tprev = nullptr;
            w.tnext = r.head;
            (r.head ? r.head->tprev : r.tail) = &w;
            r.head = &w;
        } else {
            w.tprev = r.tail;
            w.tnext = nullptr;
            (r.tail ? r.tail->tnext : r.head) = &w;
            r.tail = &w;
        }
        ++r.queued;
    }

    void unlink(waiter_base& w) noexcept {
        tenant_rec& r = *w.tenant_ref;
        (w.tprev ? w.tprev->tnext : r.head) = w.tnext;
        (w.tnext ? w.tnext->tprev : r.tail) = w.tprev;
        w.tprev = w.tnext = nullptr;
        --r.queued;
    }

    // The head of the lowest-pass tenant that waits and is below quota; charges it.
    waiter_base* pick() noexcept {
        tenant_rec* best = eligible_min();
        if (best == nullptr) return nullptr;
        vtime_ = best->pass;
        best->pass += best->stride();
        return best->head;
    }

    bool servable() const noexcept { return eligible_min() != nullptr; }

    // ------------------------------------------------------------ leases

    // s goes to w's tenant (idempotent: a ping and its delivery are one hand-out).
    void attach(tenant_rec*& held_by, tenant_rec* r, std::chrono::nanoseconds waited) noexcept {
        if (held_by != nullptr || r == nullptr) return;
        held_by = r;
        ++r->held;
        ++r->acquired;
        record(r->wait_time, waited);
        r->wait_max = std::max(r->wait_max, waited);
    }

    // The lease came back (or its slot closes): the quota frees.
    static void release(tenant_rec*& held_by) noexcept {
        if (held_by == nullptr) return;
        --held_by->held;
        held_by = nullptr;
    }

    template <class F>
    void for_each(F&& f) const {
        for (const auto& r : recs_) f(*r);
        for (const auto& r : retired_) f(*r);
    }

    std::vector<tenant_stats> snapshot() const {
        std::vector<tenant_stats> out;
        for (const auto& r : recs_) {
            tenant_stats t;
            t.id = r->id;
            t.name = r->opts.name.empty() ? std::to_string(r->id) : r->opts.name;
            t.quota = r->opts.quota;
            t.weight = r->opts.weight;
            t.held = r->held;
            t.waiting = r->queued;
            t.acquired = r->acquired;
            t.timeouts = r->timeouts;
            t.cancelled = r->cancelled;
            t.quota_refused = r->quota_refused;
            t.rejected = r->rejected;
            t.wait_time = r->wait_time;
            const auto longest = std::chrono::duration_cast<std::chrono::microseconds>(r->wait_max);
            t.wait_p50 = quantile(r->wait_time, 0.50, longest);
            t.wait_p99 = quantile(r->wait_time, 0.99, longest);
            t.wait_max = longest;
            out.push_back(std::move(t));
        }
        return out;
    }

private:
    tenant_rec* eligible_min() const noexcept {
        tenant_rec* best = nullptr;
        for (const auto& r : recs_) {
            if (r->queued == 0 || r->at_quota()) continue;
            if (best == nullptr || r->pass < best->pass) best = r.get();
        }
        return best;
    }

    std::vector<std::unique_ptr<tenant_rec>> recs_;     // the default tenant first, then the live ones
    std::vector<std::unique_ptr<tenant_rec>> retired_;  // removed, kept while anything may point at them
    std::uint64_t vtime_ = 0;                        // the pass of the tenant served last
};

inline void tenant_push(tenant_table& t, waiter_base& w, bool front) noexcept { t.push(w, front); }
inline void tenant_unlink(tenant_table& t, waiter_base& w) noexcept { t.unlink(w); }
inline waiter_base* tenant_pick(tenant_table& t) noexcept { return t.pick(); }
inline bool tenant_servable(const tenant_table& t) noexcept { return t.servable(); }

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_TENANTS_HPP
