// connpool internals: pool_state's tenant members: admission against a quota, runtime
// add / re-weight / remove, and the tenant invariants. Included by pool_state.hpp only.
#ifndef CONNPOOL_DETAIL_POOL_STATE_TENANTS_HPP
#define CONNPOOL_DETAIL_POOL_STATE_TENANTS_HPP

#include <connpool/detail/pool_state.hpp>
#include <connpool/detail/tenants.hpp>

#include <map>
#include <string>

namespace connpool::detail {

// Resolves w's tenant. False: the tenant holds its quota and fails rather than waits.
template <class Connection>
bool pool_state<Connection>::tenant_admit(waiter_base& w) {
    tenant_rec& r = tenants_.resolve(w.tenant);
    w.tenant_ref = &r;
    if (r.at_quota() && r.opts.fail_at_quota) {
        ++r.quota_refused;
        return false;
    }
    return true;
}

// The first tenant turns the sub-queues on; waiters already queued join theirs.
template <class Connection>
void pool_state<Connection>::add_tenant(tenant_id id, const tenant_options& o, time_point now, actions& a) {
    tenants_.add(id, o);
    if (!tenants_on()) {
        waiters_.use_tenants(tenants_, [&](waiter_base& w) { w.tenant_ref = &tenants_.resolve(w.tenant); });
        tenants_on_.store(true, std::memory_order_relaxed);
    }
    serve_waiters(now, a);
}

// A raised quota or a new weight applies from the next hand-out.
template <class Connection>
void pool_state<Connection>::set_tenant(tenant_id id, const tenant_options& o, time_point now, actions& a) {
    if (!tenants_on()) return add_tenant(id, o, now, a);
    tenants_.set(id, o);
    serve_waiters(now, a);
}

template <class Connection>
void pool_state<Connection>::remove_tenant(tenant_id id, time_point now, actions& a) {
    if (!tenants_on()) throw std::invalid_argument("tenant_id = " + std::to_string(id.value) + ": no such tenant");
    tenants_.remove(id);
    serve_waiters(now, a);
}

// Each record's held count is the slots that point at it, its queued count is its
// sub-queue and the queued waiters admitted under it, and no tenant below its quota
// waits while a connection is free for it.
template <class Connection>
std::string tenant_invariants(const tenant_table& t, const slot_table<slot<Connection>>& slots,
                              const waiter_queue& q) {
    std::map<const tenant_rec*, std::size_t> held, queued;
    slots.for_each([&](const slot<Connection>& s) {
        if (s.tenant == nullptr) return;
        ++held[s.tenant];
    });
    std::string broken;
    slots.for_each([&](const slot<Connection>& s) {
        const auto st = s.load();
        if (s.tenant != nullptr && st != slot_state::leased && st != slot_state::pinging && st != slot_state::applying && st != slot_state::orphaned &&
            broken.empty())
            broken = std::string("a slot in state ") + to_string(st) + " still counts against a tenant";
    });
    q.for_each([&](const waiter_base& w) {
        if (w.tenant_ref == nullptr) {
            if (broken.empty()) broken = "a queued waiter has no tenant";
            return;
        }
        ++queued[w.tenant_ref];
    });
    t.for_each([&](const tenant_rec& r) {
        std::size_t n = 0;
        for (const waiter_base* w = r.head; w != nullptr; w = w->tnext) ++n;
        if (!broken.empty()) return;
        const std::string who = "tenant " + std::to_string(r.id);
        if (held[&r] != r.held)
            broken = who + " holds " + std::to_string(held[&r]) + " slots but counts " + std::to_string(r.held);
        else if (n != r.queued || queued[&r] != r.queued)
            broken = who + "'s sub-queue holds " + std::to_string(n) + ", counts " + std::to_string(r.queued) +
                     ", the queue has " + std::to_string(queued[&r]);
        else if (r.removed && r.queued != 0)
            broken = who + " was removed but still has waiters";
    });
    return broken;
}

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_POOL_STATE_TENANTS_HPP
