// sizing::budget_share and budget_claim, the pure rule behind pg::auto_budget: known answers,
// and a virtual-time run of instances joining, shrinking and leaving in which every moment's
// total (pools + own connections) is checked against the allowed total.
#include "connpool_catch.hpp"

#include <connpool/sizing/budget.hpp>

#include <algorithm>
#include <cstddef>
#include <random>
#include <vector>

using connpool::sizing::budget_claim;
using connpool::sizing::budget_share;
using connpool::sizing::share_inputs;

TEST_CASE("a lone instance leaves one joiner's own connections and floor free", "[budget][share]") {
    // 19 allowed, 1 probe + 1 heartbeat: 19 - (2 + 1) reserve - 2 own = 14.
    CHECK(budget_share({.allowed = 19, .live = 1, .others_claimed = 0, .own = 2, .floor = 1, .max_size = 50}) == 14);
    CHECK(budget_share({.allowed = 19, .live = 1, .others_claimed = 0, .own = 2, .floor = 1, .max_size = 10}) == 10);
    // 77 allowed, a plain pool's heartbeat only: 77 - 2 - 1.
    CHECK(budget_share({.allowed = 77, .live = 1, .others_claimed = 0, .own = 1, .floor = 1, .max_size = 100}) == 74);
}

TEST_CASE("a joining instance grows only into the room the others leave unclaimed", "[budget][share]") {
    // The first still claims its 14 + 2: nothing is left, the joiner stays at its floor.
    CHECK(budget_share({.allowed = 19, .live = 2, .others_claimed = 16, .own = 2, .floor = 1, .max_size = 50}) == 1);
    // The first has shrunk to its fair 6: (19 - 3 - 4) / 2 = 6, and room is 19 - 3 - 8 - 2 = 6.
    CHECK(budget_share({.allowed = 19, .live = 2, .others_claimed = 8, .own = 2, .floor = 1, .max_size = 50}) == 6);
    // Half-way: room 4 is less than the fair 6.
    CHECK(budget_share({.allowed = 19, .live = 2, .others_claimed = 10, .own = 2, .floor = 1, .max_size = 50}) == 4);
    // min_idle is the floor even with no room.
    CHECK(budget_share({.allowed = 19, .live = 2, .others_claimed = 16, .own = 2, .floor = 3, .max_size = 50}) == 3);
    CHECK(budget_claim(6, 14, 2) == 16);
    CHECK(budget_claim(6, 2, 2) == 8);
}

namespace {

// One instance of the virtual run: what it applied, what its pools hold and what the
// registry says it claims.
struct instance {
    bool live = false;        // its process runs: its own connections are open
    bool registered = false;  // its row is in the registry (after its first beat)
    std::size_t limit = 0, held = 0, claim = 0;
};

}  // namespace

TEST_CASE("instances that join, shrink and leave at random never hold more than the allowed total",
          "[budget][share][property]") {
    constexpr std::size_t own = 2, floor = 1, max_size = 40;
    for (std::uint32_t seed = 1; seed <= 300; ++seed) {
        std::minstd_rand rng(seed);
        // Enough for every instance's own connections and floor, and one joiner's: below that
        // no rule can keep the total in.
        const std::size_t allowed = 15 + rng() % 60;
        std::vector<instance> in(4);
        std::size_t worst = 0, joins = 0;
        for (int step = 0; step < 400; ++step) {
            auto& me = in[rng() % in.size()];
            const unsigned what = rng() % 10;
            // The reserve is for one joiner at a time: the next may join once the last has
            // registered and the registry shows room for another reserve again.
            std::size_t claimed = 0;
            bool settled = true;
            for (auto& o : in) {
                if (o.live && !o.registered) settled = false;
                if (o.registered) claimed += o.claim;
            }
            settled = settled && claimed + own + floor <= allowed;
            if (!me.live) {
                if (what < 2 && settled) {
                    me = {true, false, floor, 0, 0};
                    ++joins;
                }
            } else if (what == 0) {
                me = {};  // leaves cleanly: its row and connections go together
            } else if (what < 5) {
                // A beat, under the registry's lock: read the others, shrink first, claim, grow.
                std::size_t live = 1, others = 0;
                for (auto& o : in) {
                    if (!o.registered || &o == &me) continue;
                    ++live;
                    others += o.claim;
                }
                me.limit = budget_share({allowed, live, others, own, floor, max_size});
                me.claim = budget_claim(me.limit, me.held, own);
                me.registered = true;
            } else if (what < 8) {
                // Load opens connections up to the limit.
                if (me.held < me.limit) me.held = std::min(me.limit, me.held + 1 + rng() % 8);
            } else if (me.held > me.limit) {
                --me.held;  // a lease over the limit comes back and closes
            }
            std::size_t total = 0;
            for (auto& o : in) {
                if (o.live) total += o.held + own;
            }
            worst = std::max(worst, total);
            INFO("seed " << seed << " step " << step << " allowed " << allowed);
            REQUIRE(total <= allowed);
        }
        CHECK(worst > 0);
        CHECK(joins > 1);  // room for a joiner comes back
    }
}
