// Shared pieces of connpool's benchmarks: an in-memory connection and its factory, the
// allocation counter's interface, busy work, percentiles, and an io_context runner.
#ifndef CONNPOOL_BENCH_SUPPORT_HPP
#define CONNPOOL_BENCH_SUPPORT_HPP

#include <connpool/error.hpp>
#include <connpool/factory.hpp>
#include <connpool/options.hpp>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

namespace bench {

namespace asio = boost::asio;
using clock = std::chrono::steady_clock;

// ------------------------------------------------------------------ allocation counter
// Defined in alloc_counter.cpp, which replaces the global operator new. Only binaries that
// link that file may call these; the counter is per thread, so reading it costs nothing
// and counting never contends.
std::uint64_t thread_allocations() noexcept;

// ------------------------------------------------------------------ in-memory connection
// A connection with no I/O: what remains of an acquire + release is the pool's own cost.
struct mem_conn {
    std::uint64_t id = 0;
    std::uint64_t uses = 0;
};

struct mem_factory {
    using connection_type = mem_conn;
    std::optional<mem_conn> connect(const connpool::connect_request&, connpool::error_info&) {
        static std::atomic<std::uint64_t> ids{0};
        return mem_conn{ids.fetch_add(1, std::memory_order_relaxed) + 1, 0};
    }
};

// A factory whose connects take `delay` (the burst test's 150 ms), counting its connects.
// With `dirty`, every returned connection needs a reset that takes `reset_delay` (a
// rollback round trip): the burst with reset on return, issue 8's defect 15, where
// connections being reset were not counted as coming back.
struct slow_factory {
    using connection_type = mem_conn;
    std::chrono::milliseconds delay{150};
    std::atomic<std::uint64_t>* connects = nullptr;
    bool dirty = false;
    std::chrono::milliseconds reset_delay{1};
    std::optional<mem_conn> connect(const connpool::connect_request&, connpool::error_info&) {
        std::this_thread::sleep_for(delay);
        const auto n = connects->fetch_add(1, std::memory_order_relaxed) + 1;
        return mem_conn{n, 0};
    }
    bool needs_reset(const mem_conn&) const { return dirty; }
    bool reset(mem_conn&, connpool::error_info&) {
        std::this_thread::sleep_for(reset_delay);
        return true;
    }
};

// Applies set(o) only where it compiles (set is a generic lambda whose return type names
// the member): options a core may drop or rename are set where they exist, so that the
// benches build against the old core and the new one alike.
template <class Options, class Set>
void set_if_present(Options& o, Set set) {
    if constexpr (std::is_invocable_v<Set, Options&>) set(o);
}

// Strict FIFO handoff, where the core offers the choice (0.2's options::handoff): the
// benches then run it next to the default policy. False where the core has no such option.
// (A template, so that the branch the core cannot compile is discarded.)
template <class Options>
bool set_fifo_handoff(Options& o) {
    auto set = [](auto& x) -> decltype(void(x.handoff = decltype(x.handoff)::fifo)) {
        x.handoff = decltype(x.handoff)::fifo;
    };
    if constexpr (std::is_invocable_v<decltype(set), Options&>) {
        set(o);
        return true;
    } else {
        return false;
    }
}

// The barging handoff's starvation bound, where the core has it (0.3's
// options::starvation_bound).
template <class Options>
bool set_starvation_bound(Options& o, std::chrono::microseconds q) {
    auto set = [q](auto& x) -> decltype(void(x.starvation_bound = q)) { x.starvation_bound = q; };
    if constexpr (std::is_invocable_v<decltype(set), Options&>) {
        set(o);
        return true;
    } else {
        return false;
    }
}

// A pool of exactly `size` connections, all opened up front and kept: the benchmarks
// measure hand-outs, not connects. A lost connection fails an acquire after 5 s instead
// of stalling the run. Everything else keeps its default.
inline connpool::options fixed_size_options(std::size_t size) {
    connpool::options o;
    o.min_idle = size;
    o.max_size = size;
    o.max_connecting = size;
    o.acquire_timeout = std::chrono::seconds(5);
    return o;
}

// The same for the in-memory connection. Its factory has no ping or reset, so validation
// and reset cost nothing whatever their settings; they are set to the cheapest anyway to
// say so, and one worker thread is enough where the core has that option.
inline connpool::options mem_pool_options(std::size_t size) {
    auto o = fixed_size_options(size);
    o.validation = connpool::validation_mode::optimistic;
    o.reset_on_return = false;
    set_if_present(o, [](auto& x) -> decltype(void(x.worker_threads = 1)) { x.worker_threads = 1; });
    return o;
}

// Waits until the pool holds `size` idle connections; false after `limit`.
template <class Pool>
bool wait_idle(const Pool& p, std::size_t size, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    const auto until = clock::now() + limit;
    while (p.stats().idle < size) {
        if (clock::now() > until) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

// ------------------------------------------------------------------ helpers

// Counts failed acquires, so that a benchmark reports them instead of dying on an
// exception in a worker thread. A failed acquire with no error code set is a pool bug,
// counted on its own.
struct acquire_failures {
    std::atomic<std::uint64_t> with_error{0};
    std::atomic<std::uint64_t> without_error{0};

    std::uint64_t total() const noexcept { return with_error.load() + without_error.load(); }

    // For connpool: acquire(ec), counting a failure.
    template <class Pool>
    auto acquire(Pool& pool) {
        connpool::error_code ec;
        auto l = pool.acquire(ec);
        if (!l) (ec ? with_error : without_error).fetch_add(1, std::memory_order_relaxed);
        return l;
    }

    std::string describe() const {
        return "acquire failed " + std::to_string(total()) + " times (" + std::to_string(without_error.load()) +
               " empty leases with no error code: a pool bug)";
    }
};

// Burns CPU for d: a request that computes while it holds its connection. Sleeping would
// measure the timer slack (50 us by default) instead of the hold time.
inline void busy_for(std::chrono::nanoseconds d) {
    const auto until = clock::now() + d;
    while (clock::now() < until) {
    }
}

// The q-quantile of samples (sorted in place); 0 when there are none.
template <class T>
T quantile(std::vector<T>& samples, double q) {
    if (samples.empty()) return T{};
    const auto rank = static_cast<std::size_t>(q * static_cast<double>(samples.size() - 1) + 0.5);
    std::nth_element(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(rank), samples.end());
    return samples[rank];
}

// A one-shot signal that can be re-armed; set() notifies under the lock, so the waiter may
// reuse or destroy it as soon as wait() returns.
class done_signal {
public:
    void set() {
        std::lock_guard lk(m_);
        done_ = true;
        cv_.notify_one();
    }
    void wait_and_rearm() {
        std::unique_lock lk(m_);
        cv_.wait(lk, [&] { return done_; });
        done_ = false;
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    bool done_ = false;
};

inline std::string env_or(const char* name, std::string fallback = {}) {
    const char* v = std::getenv(name);
    return v ? std::string(v) : fallback;
}

// Runs an io_context on n threads until finish(). Work is guarded, because a pool's
// housekeeping timer may or may not be pending when the benchmark's own work runs out.
class io_runner {
public:
    explicit io_runner(int n) : ctx_(n), guard_(asio::make_work_guard(ctx_)) {
        for (int i = 0; i < n; ++i) {
            threads_.emplace_back([this] {
                const auto before = thread_allocations_if_linked();
                ctx_.run();
                allocations_.fetch_add(thread_allocations_if_linked() - before, std::memory_order_relaxed);
            });
        }
    }
    io_runner(const io_runner&) = delete;
    io_runner& operator=(const io_runner&) = delete;
    ~io_runner() { finish(); }

    asio::io_context& context() noexcept { return ctx_; }

    // Lets run() return once the remaining work (a closed pool's last handlers) is done,
    // and stops it after 2 s if it does not.
    void finish() {
        if (threads_.empty()) return;
        guard_.reset();
        for (int i = 0; i < 200 && !ctx_.stopped(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
        ctx_.stop();
        for (auto& t : threads_) t.join();
        threads_.clear();
    }

    // Allocations made on the io threads while they ran (valid after finish()).
    std::uint64_t allocations() const noexcept { return allocations_.load(); }

    // Set by binaries that link alloc_counter.cpp.
    static inline std::uint64_t (*counter)() noexcept = nullptr;

private:
    static std::uint64_t thread_allocations_if_linked() noexcept { return counter ? counter() : 0; }

    asio::io_context ctx_;
    asio::executor_work_guard<asio::io_context::executor_type> guard_;
    std::vector<std::thread> threads_;
    std::atomic<std::uint64_t> allocations_{0};
};

}  // namespace bench

#endif  // CONNPOOL_BENCH_SUPPORT_HPP
