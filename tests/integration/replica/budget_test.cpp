// The connection budget's automatic mode against the real primary of replica_set: two instances
// count themselves through a heartbeat table and share the server; when one stops, the other grows.
#include "connpool_catch.hpp"
#include "replica_env.hpp"

#include <connpool/pg.hpp>
#include <connpool/pg/cluster.hpp>

#include <mutex>
#include <string>
#include <vector>

using namespace connpool_test::replica;

namespace {

connpool::pg::heartbeat_options beats(const std::string& table, const std::string& id) {
    connpool::pg::heartbeat_options o;
    o.table = table;
    o.instance_id = id;
    o.interval = 200ms;
    o.ttl = 1000ms;
    return o;
}

connpool::options sized(std::size_t n) {
    connpool::options o;
    o.max_size = n;
    return o;
}

}  // namespace

TEST_CASE("two instances share the server's budget through the heartbeat table and the survivor grows "
          "when the other stops",
          "[replica][budget][heartbeat]") {
    const std::string table = "hb_" + std::to_string(::getpid());
    connpool::pg::pool a(connpool::pg::factory(env().conninfo(0)), sized(50));
    connpool::pg::pool b(connpool::pg::factory(env().conninfo(0)), sized(50));
    std::mutex mu;
    std::vector<std::string> said;
    auto oa = beats(table, "instance-a");
    oa.on_change = [&](const std::string& m) {
        std::lock_guard lk(mu);
        said.push_back(m);
    };
    connpool::pg::auto_budget ha(a, env().conninfo(0), oa);
    REQUIRE(ha.beat(5s));
    CHECK(ha.live_instances() == 1);
    CHECK(a.stats().max_size == 50);  // 77 - 1 own - 2 for a joiner = 74, capped by the configured 50

    SECTION("a crashed instance stops counting after ttl") {
        auto ob = beats(table, "instance-b");
        ob.deregister_on_stop = false;  // act out a crash: the row stays behind
        {
            connpool::pg::auto_budget hb(b, env().conninfo(0), ob);
            // b joins into the room a leaves: 77 - 2 for the next joiner - a's 51 - b's 1 own.
            REQUIRE(hb.beat(5s));
            CHECK(b.stats().max_size == 23);
            // a shrinks to the fair share, (77 - 2 - 2 x 1) / 2, and then b grows to it.
            REQUIRE(ha.beat(5s));
            CHECK(a.stats().max_size == 36);
            REQUIRE(hb.beat(5s));
            CHECK(ha.live_instances() == 2);
            CHECK(hb.live_instances() == 2);
            CHECK(b.stats().max_size == 36);
        }
        // Until ttl has passed the survivor keeps its smaller share.
        CHECK(a.stats().max_size == 36);
        REQUIRE(eventually(10s, [&] {
            ha.beat(5s);
            return ha.live_instances() == 1;
        }));
        CHECK(a.stats().max_size == 50);
        std::lock_guard lk(mu);
        REQUIRE(said.size() >= 2);
        CHECK(said[said.size() - 2] ==
              "connpool: 2 live instances share 80 % of (100 - 3) = 77 less 1 own each and 2 for a joiner: max_size 36");
        CHECK(said.back() == "connpool: 1 live instance share 80 % of (100 - 3) = 77 less 1 own each and 2 for a "
                             "joiner: max_size 50 (the configured maximum)");
    }
    SECTION("an instance that stops cleanly frees its share at the survivor's next beat") {
        {
            connpool::pg::auto_budget hb(b, env().conninfo(0), beats(table, "instance-b"));
            REQUIRE(hb.beat(5s));
            REQUIRE(ha.beat(5s));
            CHECK(a.stats().max_size == 36);
        }
        REQUIRE(ha.beat(5s));
        CHECK(ha.live_instances() == 1);
        CHECK(a.stats().max_size == 50);
    }
    CHECK_THROWS_WITH(connpool::pg::auto_budget(a, env().conninfo(0), beats("bad name", "x")),
                      "connpool::pg::heartbeat_options::table = bad name: must be a plain identifier");
    CHECK_THROWS_WITH(connpool::pg::auto_budget(env().conninfo(0), connpool::pg::budget_target{4, 5, 1, [](std::size_t) {}, {}},
                                                beats(table, "x")),
                      "connpool::pg::budget_target::min_idle = 5: must not exceed max_size (4)");
}
