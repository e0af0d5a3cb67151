// connpool internals: threads for the factory's blocking calls. Connects get a lane of
// their own, so that a hung connect never delays a ping, a reset or a probe, and timers
// run on neither (housekeeper.hpp).
#ifndef CONNPOOL_DETAIL_LANES_HPP
#define CONNPOOL_DETAIL_LANES_HPP

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace connpool::detail {

// A task runs with true, or, if the lane stops before it starts, with false: then it
// only undoes its bookkeeping (a connect reports failure, a reset closes), so no slot is
// left in flight.
using lane_task = std::function<void(bool run)>;

// Up to max_threads threads, started on demand. The threads share the lane's state, not
// the lane object, so a thread still inside a hung factory call when the lane stops can
// be let go (detached) safely.
class worker_lane {
public:
    explicit worker_lane(std::size_t max_threads) : state_(std::make_shared<shared>()) {
        state_->max_threads = std::max<std::size_t>(1, max_threads);
    }

    worker_lane(const worker_lane&) = delete;
    worker_lane& operator=(const worker_lane&) = delete;

    ~worker_lane() { stop(std::chrono::steady_clock::now()); }

    // False once stopped: the caller then undoes the work itself.
    bool post(lane_task t) {
        std::unique_lock lk(state_->m);
        if (state_->stopped) return false;
        state_->tasks.push_back(std::move(t));
        // Idle threads that have not woken yet still count as idle: compare with the
        // queue, or a second task would wait behind a first one that hangs.
        if (state_->tasks.size() > state_->idle && state_->threads.size() < state_->max_threads) {
            auto st = state_;
            state_->threads.emplace_back([st] { run(*st); });
        } else {
            state_->cv.notify_one();
        }
        return true;
    }

    // Abandons queued tasks, waits for running ones until `until`, then lets go of the
    // threads still busy. Never joins the calling thread (the pool may be destroyed from
    // inside one of its own tasks or hooks).
    void stop(std::chrono::steady_clock::time_point until) {
        std::deque<lane_task> dropped;
        std::vector<std::thread> threads;
        {
            std::unique_lock lk(state_->m);
            if (state_->stopped && state_->threads.empty()) return;
            state_->stopped = true;
            dropped.swap(state_->tasks);
            state_->cv.notify_all();
        }
        for (auto& t : dropped) t(false);
        const auto me = std::this_thread::get_id();
        {
            std::unique_lock lk(state_->m);
            state_->cv.wait_until(lk, until, [&] { return state_->running <= (on_this_lane_locked(me) ? 1u : 0u); });
            threads.swap(state_->threads);
        }
        for (auto& t : threads) {
            // A thread that finished its task exits at once; one still inside a factory
            // call (a hung connect) finishes on its own, holding what it needs.
            if (t.get_id() == me || !done_soon(t)) {
                t.detach();
            } else {
                t.join();
            }
        }
    }

private:
    struct shared {
        std::mutex m;
        std::condition_variable cv;
        std::deque<lane_task> tasks;
        std::vector<std::thread> threads;
        std::size_t max_threads = 1;
        std::size_t idle = 0;
        std::size_t running = 0;
        bool stopped = false;
    };

    bool on_this_lane_locked(std::thread::id me) const {
        return std::any_of(state_->threads.begin(), state_->threads.end(),
                           [&](const std::thread& t) { return t.get_id() == me; });
    }

    // Under stop(): after the wait, a thread is either idle (it exits at once, joinable
    // without delay) or still running a task (let go).
    bool done_soon(const std::thread&) const {
        std::lock_guard lk(state_->m);
        return state_->running == 0;
    }

    static void run(shared& st) {
        std::unique_lock lk(st.m);
        for (;;) {
            ++st.idle;
            st.cv.wait(lk, [&] { return st.stopped || !st.tasks.empty(); });
            --st.idle;
            if (st.stopped) return;
            lane_task t = std::move(st.tasks.front());
            st.tasks.pop_front();
            ++st.running;
            lk.unlock();
            t(true);
            t = nullptr;  // its captures (the pool's core among them) go before we wait again
            lk.lock();
            --st.running;
            st.cv.notify_all();
        }
    }

    std::shared_ptr<shared> state_;
};

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_LANES_HPP
