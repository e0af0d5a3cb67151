// Label identity never rests on the hash (issue 16, defect 1). This program is built with
// CONNPOOL_LABEL_HASH_BITS=4, so that most labels share a hash with another: a pool that
// decided "carries" by hash would hand callers connections with another label's settings.
#include "connpool_catch.hpp"
#include "fake.hpp"
#include "label_fake.hpp"

#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace connpool;
using namespace connpool::test;

static_assert(CONNPOOL_LABEL_HASH_BITS == 4, "this program is built with a 4-bit label hash");

namespace {

std::vector<label> random_labels(std::size_t n, std::mt19937& rng) {
    std::vector<label> out;
    for (std::size_t i = 0; i < n; ++i) {
        label l;
        l.set("search_path", "tenant_" + std::to_string(i));
        if (rng() % 2) l.set("role", "r" + std::to_string(rng() % 3));
        out.push_back(std::move(l));
    }
    return out;
}

}  // namespace

TEST_CASE("labels that share a hash are still told apart: no caller ever gets another label's settings",
          "[unit][labels][identity]") {
    std::mt19937 rng(42);
    const auto labels = random_labels(24, rng);
    bool collision = false;
    for (std::size_t i = 0; i < labels.size() && !collision; ++i)
        for (std::size_t j = i + 1; j < labels.size(); ++j)
            if (labels[i].hash() == labels[j].hash()) collision = true;
    REQUIRE(collision);  // the premise: with 4 bits, 24 labels must collide

    label_factory f;
    auto srv = f.srv;
    options o;
    o.max_size = 3;
    o.reset_on_return = false;
    o.acquire_timeout = std::chrono::seconds(10);
    pool<label_factory> p(f, o);
    std::atomic<int> wrong{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) {
        threads.emplace_back([&, t] {
            std::mt19937 r(static_cast<unsigned>(t));
            for (int i = 0; i < 1500; ++i) {
                const label& want = labels[r() % labels.size()];
                auto l = p.acquire(want);
                if (!(srv->of(l->id) == want)) ++wrong;
            }
        });
    }
    for (auto& th : threads) th.join();
    CHECK(wrong == 0);
    CHECK(srv->wrong_from == 0);
}

TEST_CASE("a value that contains the old separator byte hashes apart from the settings it imitates",
          "[unit][labels][identity]") {
    const label two{{"a", "b"}, {"c", "d"}};
    const label one{{"a", std::string("b\xff" "c\xff" "d")}};
    CHECK_FALSE(two == one);
    // With the full 64-bit hash these differ; here only the exact comparison tells them apart.
    label_factory f;
    auto srv = f.srv;
    options o;
    o.max_size = 1;
    o.reset_on_return = false;
    pool<label_factory> p(f, o);
    { auto l = p.acquire(two); }
    auto l = p.acquire(one);
    CHECK(srv->of(l->id) == one);
}
