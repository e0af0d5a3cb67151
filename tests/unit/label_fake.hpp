// A fake factory with labels (label.hpp): the "server" keeps each connection's session
// settings, so every lease can be checked for the label it was asked for. Shared by the
// label tests and the mixed stress test.
#ifndef CONNPOOL_TESTS_UNIT_LABEL_FAKE_HPP
#define CONNPOOL_TESTS_UNIT_LABEL_FAKE_HPP

#include "fake.hpp"

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace connpool::test {

// What the fake server knows: each connection's session settings, and the apply calls.
struct sessions {
    std::mutex m;
    std::map<int, label> by_id;
    std::atomic<int> applies{0};
    std::atomic<int> fail_next{0};  // that many apply() calls fail
    std::atomic<int> wrong_from{0};  // apply() told a from-label the session did not have
    std::atomic<std::thread::id> apply_thread{};  // where the last apply() ran
    std::atomic<int> apply_sleep_ms{0};           // each apply() takes this long (a slow server)
    std::atomic<bool> clears_throws{false};       // reset_clears_labels() throws

    label of(int id) {
        std::lock_guard lk(m);
        return by_id[id];
    }
};

struct label_factory : fake_factory {
    std::shared_ptr<sessions> srv = std::make_shared<sessions>();

    bool apply(fake_connection& c, const label& from, const label& to, error_info& e) {
        ++srv->applies;
        srv->apply_thread = std::this_thread::get_id();
        if (const int ms = srv->apply_sleep_ms; ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
        std::lock_guard lk(srv->m);
        if (!(srv->by_id[c.id] == from)) ++srv->wrong_from;
        if (srv->fail_next > 0) {
            --srv->fail_next;
            srv->by_id[c.id] = label{{"half", "applied"}};  // a failed SET leaves it unknown
            e = error_info{errc::reset_failed, "SET failed"};
            return false;
        }
        srv->by_id[c.id] = to;
        return true;
    }

    bool reset_clears_labels(const fake_connection&) const {
        if (srv->clears_throws) throw std::runtime_error("reset_clears_labels failed");
        return true;
    }

    bool reset(fake_connection& c, error_info&) {
        std::lock_guard lk(srv->m);
        srv->by_id[c.id] = label{};  // a full reset: the server's defaults
        return true;
    }
};

}  // namespace connpool::test

#endif  // CONNPOOL_TESTS_UNIT_LABEL_FAKE_HPP
