// connpool: tenants: who an acquire is for, and how much of the pool each may take.
//
// A pool with no tenants configured behaves as before; naming a tenant there costs
// nothing and means nothing. Once a tenant is added, every acquire belongs to one (an
// acquire that names none belongs to the default tenant, id 0), and waiting callers are
// served by stride scheduling (weighted fair queuing) across per-tenant FIFO queues.
#ifndef CONNPOOL_TENANTS_HPP
#define CONNPOOL_TENANTS_HPP

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

namespace connpool {

// A tenant's handle, chosen by the application (a customer number, say). 0 is the
// default tenant, which always exists once tenants are on.
struct tenant_id {
    // The id's number.
    std::uint32_t value = 0;

    // Ids are equal when their numbers are.
    friend constexpr bool operator==(tenant_id, tenant_id) noexcept = default;
};

inline constexpr tenant_id default_tenant{0};

// A tenant's quota, weight, behaviour at its quota and name (add_tenant, set_tenant).
struct tenant_options {
    // The most connections this tenant may hold at once; 0: no limit but the pool's.
    std::size_t quota = 0;
    // Its share when connections are scarce: a tenant of weight 3 is served three times
    // as often as one of weight 1 while both wait. 1..1000.
    std::uint32_t weight = 1;
    // At its quota an acquire waits (false) or fails at once with
    // errc::tenant_quota_exceeded (true).
    bool fail_at_quota = false;
    // The most of this tenant's callers that may wait at once; one more fails at once with
    // errc::too_many_waiters. 0: no limit but the pool's options::max_waiters. It keeps
    // one tenant's queue from filling the pool's waiter places.
    std::size_t max_waiters = 0;
    // For stats and metrics labels; empty: the id's number.
    std::string name{};
};

inline void validate(const tenant_options& t) {
    if (t.weight == 0 || t.weight > 1000)
        throw std::invalid_argument("tenant_options::weight = " + std::to_string(t.weight) + ": must be 1..1000");
    for (char c : t.name) {
        // The name becomes a metrics label value: keep it printable.
        if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\')
            throw std::invalid_argument("tenant_options::name: must not contain control characters, quotes or backslashes");
    }
}

}  // namespace connpool

#endif  // CONNPOOL_TENANTS_HPP
