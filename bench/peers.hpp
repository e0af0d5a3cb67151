// The C++ peers measured next to connpool in the contended shapes, each used the way its
// documentation shows: SOCI's `soci::connection_pool` (lease / give_back: a mutex, a
// condition variable and a scan for the first free session) and Poco's
// `Poco::Data::SessionPool` (get() throws SessionPoolExhaustedException when every session
// is out; its users retry, here with std::this_thread::yield, as measured in issue 8).
// Built only when CMake found them (CONNPOOL_BENCH_HAVE_SOCI, CONNPOOL_BENCH_HAVE_POCO).
#ifndef CONNPOOL_BENCH_PEERS_HPP
#define CONNPOOL_BENCH_PEERS_HPP

#include "bench_support.hpp"

#include <optional>
#include <thread>
#include <utility>

#if CONNPOOL_BENCH_HAVE_SOCI
#include <soci/connection-pool.h>
#include <soci/session.h>
#endif

#if CONNPOOL_BENCH_HAVE_POCO
#include <Poco/Data/DataException.h>
#include <Poco/Data/PooledSessionImpl.h>
#include <Poco/Data/Session.h>
#include <Poco/Data/SessionPool.h>
#endif

namespace bench {

#if CONNPOOL_BENCH_HAVE_SOCI
// RAII over SOCI's lease / give_back (its soci::session(pool) constructor does the same
// plus session bookkeeping that is not the pool's cost).
class soci_lease {
public:
    explicit soci_lease(soci::connection_pool& p) : pool_(&p), pos_(p.lease()) {}
    soci_lease(const soci_lease&) = delete;
    soci_lease& operator=(const soci_lease&) = delete;
    ~soci_lease() { pool_->give_back(pos_); }
    soci::session& session() { return pool_->at(pos_); }

private:
    soci::connection_pool* pool_;
    std::size_t pos_;
};
#endif

#if CONNPOOL_BENCH_HAVE_POCO
// Poco's get() never waits: it throws when the pool is exhausted. Retries until `limit`
// (a bench loop must stay bounded even if a session is lost).
inline std::optional<Poco::Data::Session> poco_get(Poco::Data::SessionPool& p,
                                                   std::chrono::milliseconds limit = std::chrono::seconds(5)) {
    const auto until = clock::now() + limit;
    for (;;) {
        try {
            return p.get();
        } catch (const Poco::Data::SessionPoolExhaustedException&) {
            if (clock::now() > until) return std::nullopt;
            std::this_thread::yield();
        }
    }
}

// The session a pooled Poco session wraps (PooledSessionImpl::impl() is protected): the
// database shapes run the same libpq call on every pool's connection, so that the figures
// compare pools and not SQL layers. Taking a protected member's address through a derived
// class is allowed; no object of this type is ever made.
struct poco_pooled_peek : Poco::Data::PooledSessionImpl {
    static Poco::Data::SessionImpl* inner(Poco::Data::Session& s) {
        auto* pooled = static_cast<Poco::Data::PooledSessionImpl*>(s.impl());
        return (pooled->*(&poco_pooled_peek::impl))();
    }
};
#endif

}  // namespace bench

#endif  // CONNPOOL_BENCH_PEERS_HPP
