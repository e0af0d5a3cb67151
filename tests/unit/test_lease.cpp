// Leases give their connection back exactly once, on every path.
#include "connpool_catch.hpp"
#include "fake.hpp"

#include <stdexcept>
#include <type_traits>

using namespace connpool;
using namespace connpool::test;

using lease_t = pool<fake_factory>::lease_type;

static_assert(!std::is_copy_constructible_v<lease_t>);
static_assert(!std::is_copy_assignable_v<lease_t>);
static_assert(std::is_nothrow_move_constructible_v<lease_t>);
static_assert(std::is_nothrow_move_assignable_v<lease_t>);
static_assert(sizeof(lease_t) == sizeof(void*));

TEST_CASE("a lease gives its connection back when it goes out of scope", "[lease]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    int first = 0;
    {
        auto l = p.acquire();
        first = l->id;
        CHECK(p.stats().in_use == 1);
    }
    CHECK(p.stats().in_use == 0);
    CHECK(p.stats().idle == 1);
    auto again = p.acquire();
    CHECK(again->id == first);  // reused, not reopened
    CHECK(p.factory().db->connects == 1);
}

TEST_CASE("a lease gives its connection back when an exception unwinds", "[lease]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    auto use = [&] {
        auto l = p.acquire();
        l->uses++;
        throw std::runtime_error("handler failed");
    };
    CHECK_THROWS_AS(use(), std::runtime_error);
    CHECK(p.stats().in_use == 0);
    auto l = p.acquire_for(100ms);  // would time out if the first lease leaked
    CHECK(l->uses == 1);
}

TEST_CASE("moving a lease transfers the connection and returns it once", "[lease]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 2});
    auto a = p.acquire();
    const int id = a->id;
    lease_t b = std::move(a);
    CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
    CHECK(b);
    CHECK(b->id == id);
    lease_t c = p.acquire();
    c = std::move(b);  // c's own connection goes back, b's moves in
    CHECK(c->id == id);
    CHECK(p.stats().in_use == 1);
    CHECK(p.stats().idle == 1);
    c.release();
    CHECK_FALSE(c);
    c.release();  // a second release of an empty lease is a no-op
    CHECK(p.stats().in_use == 0);
    CHECK(p.stats().acquired == 2);
}

TEST_CASE("discard closes the connection instead of reusing it", "[lease]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    auto l = p.acquire();
    const int id = l->id;
    l.discard();
    CHECK_FALSE(l);
    CHECK(p.factory().db->open == 0);
    CHECK(p.stats().closed_for(close_reason::discarded) == 1);
    auto fresh = p.acquire();
    CHECK(fresh->id != id);
}

TEST_CASE("a connection the factory calls broken is closed on return", "[lease]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    {
        auto l = p.acquire();
        l->broken = true;
    }
    CHECK(p.stats().closed_for(close_reason::broken) == 1);
    CHECK(p.factory().db->open == 0);
}

TEST_CASE("a lease that outlives its pool closes its connection safely", "[lease][lifetime]") {
    auto db = std::make_shared<fake_db>();
    lease_t survivor;
    {
        fake_factory f;
        f.db = db;
        pool<fake_factory> p(std::move(f), {.max_size = 2});
        survivor = p.acquire();
        auto other = p.acquire();
        CHECK(db->open == 2);
    }  // the pool dies with one lease out; the other lease returned first and was closed
    CHECK(db->open == 1);
    survivor->uses++;  // still usable: the connection is alive
    survivor.release();
    CHECK(db->open == 0);
}

TEST_CASE("a lease records when and where it was taken", "[lease][observability]") {
    pool<fake_factory> p(fake_factory{});
    auto l = p.acquire();
    const int line = __LINE__ - 1;
    CHECK(l.location().line() == static_cast<unsigned>(line));
    CHECK(std::string(l.location().file_name()).find("test_lease.cpp") != std::string::npos);
    CHECK(l.acquired_at().time_since_epoch().count() > 0);
}

TEST_CASE("skip_reset lets a dirty connection go back without a reset", "[lease][reset]") {
    pool<fake_factory> p(fake_factory{}, {.max_size = 1});
    {
        auto l = p.acquire();
        l->dirty = true;
        l.skip_reset();
    }
    CHECK(p.factory().db->resets == 0);
    auto l = p.acquire();
    CHECK(l->dirty);
}
