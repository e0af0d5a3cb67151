// The contended shapes' harness (issue 8): N plain std::threads, started together behind a
// barrier, each running one cycle (acquire + release, plus a query for the database shapes)
// in a loop for a fixed wall time. Google Benchmark's threaded loops hid the convoy that
// these shapes show (its per-thread timers start only once a thread runs), so the shapes
// run outside it and print one JSON object per line, which bench/report.py reads.
//
// Per run: aggregate ns per cycle (wall time / cycles of all threads), the per-cycle latency
// histogram (every `sample_every`-th cycle is timed, so that two clock reads do not dominate
// a 15 ns cycle), the cycles of each thread (fairness: min share / mean share), errors and,
// where the allocation counter is linked, allocations per cycle after a warm-up.
#ifndef CONNPOOL_BENCH_CONTENDED_HPP
#define CONNPOOL_BENCH_CONTENDED_HPP

#include "bench_support.hpp"

#include <array>
#include <barrier>
#include <bit>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <sys/resource.h>

namespace bench {

// A log-linear latency histogram (16 buckets per power of two, so about 6 % resolution):
// fixed size, so recording a sample never allocates and the allocation count stays clean.
class histogram {
public:
    void add(std::uint64_t ns) noexcept {
        ++buckets_[index(ns)];
        ++count_;
    }
    void merge(const histogram& o) noexcept {
        for (std::size_t i = 0; i < size; ++i) buckets_[i] += o.buckets_[i];
        count_ += o.count_;
    }
    std::uint64_t count() const noexcept { return count_; }
    // The upper edge of the bucket that holds the q-quantile; 0 when empty.
    std::uint64_t quantile(double q) const noexcept {
        if (count_ == 0) return 0;
        const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
        std::uint64_t seen = 0;
        for (std::size_t i = 0; i < size; ++i) {
            seen += buckets_[i];
            if (seen >= rank) return upper(i);
        }
        return upper(size - 1);
    }

private:
    static constexpr std::size_t exact = 32;  // below 32 ns every value has its own bucket
    static constexpr std::size_t size = exact + (48 - 5) * 16;
    static std::size_t index(std::uint64_t v) noexcept {
        if (v < exact) return static_cast<std::size_t>(v);
        const int e = std::min(47, 63 - std::countl_zero(v));  // floor(log2 v), >= 5
        const auto sub = static_cast<std::size_t>((v >> (e - 4)) & 15);
        return exact + static_cast<std::size_t>(e - 5) * 16 + sub;
    }
    static std::uint64_t upper(std::size_t i) noexcept {
        if (i < exact) return i;
        const std::size_t e = (i - exact) / 16 + 5;
        const std::size_t sub = (i - exact) % 16;
        return ((std::uint64_t{16} + sub + 1) << (e - 4)) - 1;
    }
    std::array<std::uint64_t, size> buckets_{};
    std::uint64_t count_ = 0;
};

// What one run of one contender on one shape measured.
struct shape_result {
    std::string workload;  // mem, pg, pg_pinned, async, alloc
    std::string pool;      // connpool, textbook, soci, poco, dedicated, ...
    int threads = 0;       // threads (or coroutines) doing cycles
    int conns = 0;         // connections they share
    int round = 0;
    double secs = 0;
    std::vector<std::uint64_t> cycles;  // per thread
    histogram latency;
    std::uint64_t errors = 0;
    std::optional<double> allocs_per_cycle;
    std::optional<double> cpu_ns_per_cycle;  // CPU time of the loop threads per cycle
    std::optional<double> switches_per_cycle;  // the process's context switches per cycle
    std::map<std::string, std::string> extra;  // e.g. io threads, connections left

    std::uint64_t total() const {
        std::uint64_t n = 0;
        for (auto c : cycles) n += c;
        return n;
    }
    double fairness() const {
        if (cycles.empty() || total() == 0) return 0;
        const double mean = static_cast<double>(total()) / static_cast<double>(cycles.size());
        return static_cast<double>(*std::min_element(cycles.begin(), cycles.end())) / mean;
    }
};

inline long env_long(const char* name, long fallback) {
    const std::string v = env_or(name);
    return v.empty() ? fallback : std::stol(v);
}

// The fixed wall time of one run, and how many rounds each binary makes (contenders are
// interleaved within a round, so a quiet or a busy minute hits them all).
// Defaults: the outside harness's shape (issue 20): 0.2 s of warm-up, then 1 s measured.
inline std::chrono::milliseconds run_duration() {
    return std::chrono::milliseconds(env_long("CONNPOOL_BENCH_RUN_MS", 1000));
}
inline std::chrono::milliseconds warmup_duration() {
    return std::chrono::milliseconds(env_long("CONNPOOL_BENCH_WARMUP_MS", 200));
}
inline int rounds() { return static_cast<int>(env_long("CONNPOOL_BENCH_ROUNDS", 3)); }
// The first round's number: bench/run.sh runs one process per round (and shape), so that a
// crashing core loses one run, not the rest; the number keeps the rotation going.
inline int first_round() { return static_cast<int>(env_long("CONNPOOL_BENCH_FIRST_ROUND", 0)); }

// One JSON line on stdout (flushed, so that a crash later still leaves the earlier lines).
inline void print_result(const shape_result& r) {
    const double total = static_cast<double>(r.total());
    std::ostringstream os;
    os << "{\"workload\":\"" << r.workload << "\",\"pool\":\"" << r.pool << "\",\"threads\":" << r.threads
       << ",\"conns\":" << r.conns << ",\"round\":" << r.round << ",\"secs\":" << r.secs
       << ",\"cycles\":" << r.total() << ",\"per_s\":" << (r.secs > 0 ? total / r.secs : 0)
       << ",\"ns_per_cycle\":" << (total > 0 ? r.secs * 1e9 / total : 0)
       << ",\"p50_ns\":" << r.latency.quantile(0.50) << ",\"p99_ns\":" << r.latency.quantile(0.99)
       << ",\"max_ns\":" << r.latency.quantile(1.0) << ",\"samples\":" << r.latency.count()
       << ",\"fairness\":" << r.fairness() << ",\"errors\":" << r.errors;
    if (r.allocs_per_cycle) os << ",\"allocs_per_cycle\":" << *r.allocs_per_cycle;
    if (r.cpu_ns_per_cycle) os << ",\"cpu_ns_per_cycle\":" << *r.cpu_ns_per_cycle;
    if (r.switches_per_cycle) os << ",\"switches_per_cycle\":" << *r.switches_per_cycle;
    for (const auto& [k, v] : r.extra) os << ",\"" << k << "\":\"" << v << "\"";
    os << "}\n";
    std::fputs(os.str().c_str(), stdout);
    std::fflush(stdout);
}

// The calling thread's CPU time: unlike the wall clock, it does not count the time other
// jobs on this shared machine hold the CPU, so it shows the pool's own cost per cycle.
inline std::uint64_t thread_cpu_ns() noexcept {
    timespec ts{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// The watchdog of a run: a pool whose acquire never returns (its timeout is 5 s) would
// stall the whole suite. After `limit`, the run is reported as a hang on stdout and the
// process ends at once (exit status 3), leaving the stuck threads to the debugger's last
// look, which bench/run.sh does not take.
inline void await_exit(const std::atomic<int>& exited, int threads, std::chrono::milliseconds limit) {
    const auto until = clock::now() + limit;
    while (exited.load(std::memory_order_acquire) < threads) {
        if (clock::now() > until) {
            std::printf("{\"workload\":\"hang\",\"pool\":\"run_threads\",\"stuck_threads\":%d}\n",
                        threads - exited.load());
            std::fflush(stdout);
            std::_Exit(3);
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

// The process's context switches so far, voluntary (a wait: futex, socket) and not.
inline std::uint64_t context_switches() noexcept {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<std::uint64_t>(u.ru_nvcsw) + static_cast<std::uint64_t>(u.ru_nivcsw);
}

struct thread_opts {
    int threads = 1;
    std::chrono::milliseconds duration{1000};
    std::chrono::milliseconds warmup_time = warmup_duration();  // run, but not counted, first
    std::uint64_t sample_every = 1;  // a power of two
    std::uint64_t (*allocations)() noexcept = nullptr;  // the counter, where linked
    std::uint64_t warmup = 1024;     // cycles before allocations are counted
};

// Runs cycle(thread_index) -> bool (false: the cycle failed) on `threads` threads for the
// warm-up and then the fixed duration. Threads are created first and released together by
// the barrier; only what runs after the warm-up counts, and the clock runs from its end to
// the last thread's exit, so a thread stuck in a slow cycle at the stop is counted against
// its pool.
template <class Cycle>
shape_result run_threads(const thread_opts& o, Cycle&& cycle) {
    struct alignas(64) per_thread {
        std::uint64_t cycles = 0;
        std::uint64_t errors = 0;
        std::uint64_t allocs = 0;
        std::uint64_t counted = 0;  // cycles over which allocs were counted
        std::uint64_t cpu_ns = 0;   // this thread's CPU time in the loop
        histogram latency;
    };
    std::vector<per_thread> state(static_cast<std::size_t>(o.threads));
    std::barrier start(o.threads + 1);
    std::atomic<bool> measuring{o.warmup_time.count() <= 0};
    std::atomic<bool> stop{false};
    std::atomic<int> exited{0};
    const std::uint64_t mask = o.sample_every - 1;
    std::vector<std::thread> ts;
    ts.reserve(state.size());
    for (int i = 0; i < o.threads; ++i) {
        ts.emplace_back([&, i] {
            per_thread& me = state[static_cast<std::size_t>(i)];
            std::uint64_t a0 = 0;
            start.arrive_and_wait();
            while (!measuring.load(std::memory_order_relaxed)) (void)cycle(i);  // warm-up
            const auto cpu0 = thread_cpu_ns();
            std::uint64_t n = 0;
            while (!stop.load(std::memory_order_relaxed)) {
                if (n == o.warmup && o.allocations) a0 = o.allocations();
                bool ok;
                if ((n & mask) == 0) {
                    const auto t0 = clock::now();
                    ok = cycle(i);
                    me.latency.add(static_cast<std::uint64_t>((clock::now() - t0).count()));
                } else {
                    ok = cycle(i);
                }
                me.errors += ok ? 0 : 1;
                ++n;
            }
            me.cycles = n;
            me.cpu_ns = thread_cpu_ns() - cpu0;
            exited.fetch_add(1, std::memory_order_release);
            if (o.allocations && n > o.warmup) {
                me.allocs = o.allocations() - a0;
                me.counted = n - o.warmup;
            }
        });
    }
    start.arrive_and_wait();
    if (o.warmup_time.count() > 0) {
        std::this_thread::sleep_for(o.warmup_time);
        measuring.store(true);
    }
    const auto t0 = clock::now();
    const auto switches0 = context_switches();
    std::this_thread::sleep_for(o.duration);
    stop.store(true);
    await_exit(exited, o.threads, o.duration + std::chrono::seconds(30));
    for (auto& t : ts) t.join();
    shape_result r;
    r.threads = o.threads;
    r.secs = std::chrono::duration<double>(clock::now() - t0).count();
    std::uint64_t allocs = 0, counted = 0, cpu = 0;
    for (const auto& s : state) {
        cpu += s.cpu_ns;
        r.cycles.push_back(s.cycles);
        r.errors += s.errors;
        r.latency.merge(s.latency);
        allocs += s.allocs;
        counted += s.counted;
    }
    if (r.total() > 0) {
        r.cpu_ns_per_cycle = static_cast<double>(cpu) / static_cast<double>(r.total());
        r.switches_per_cycle = static_cast<double>(context_switches() - switches0) / static_cast<double>(r.total());
    }
    if (o.allocations && counted > 0) r.allocs_per_cycle = static_cast<double>(allocs) / static_cast<double>(counted);
    return r;
}

// A contender: runs one shape (threads on conns) and returns its result, or nothing when
// the shape does not apply to it (e.g. dedicated connections with more threads than
// connections) or it could not be set up (reported on stderr).
struct shape {
    int threads;
    int conns;
};
struct contender {
    std::string name;
    std::function<std::optional<shape_result>(const shape&)> run;
};

// rounds() rounds; in each, every shape runs every contender, in an order rotated by the
// round, so that no contender always runs first (on a warm or a cold machine).
inline void run_rounds(const std::string& workload, const std::vector<shape>& shapes,
                       const std::vector<contender>& contenders) {
    for (int round = first_round(); round < first_round() + rounds(); ++round) {
        for (const auto& s : shapes) {
            for (std::size_t k = 0; k < contenders.size(); ++k) {
                const auto& c = contenders[(k + static_cast<std::size_t>(round)) % contenders.size()];
                // On stderr, so that a crash or a hang names the contender it happened in.
                std::fprintf(stderr, "contended: %s %s %d/%d round %d\n", workload.c_str(), c.name.c_str(), s.threads,
                             s.conns, round);
                auto r = c.run(s);
                if (!r) continue;
                r->workload = workload;
                r->pool = c.name;
                r->conns = s.conns;
                r->round = round;
                print_result(*r);
            }
        }
    }
}

// Keeps the contenders named in `names` ("connpool,soci"; empty keeps all): the binaries'
// --pools argument, to rerun one contender alone (e.g. to reproduce a crash).
inline void keep_only(std::vector<contender>& cs, const std::string& names) {
    if (names.empty()) return;
    const std::string list = "," + names + ",";
    std::erase_if(cs, [&](const contender& c) { return list.find("," + c.name + ",") == std::string::npos; });
}

// "1/4,8/4" -> shapes; the binaries' --shapes argument.
inline std::vector<shape> parse_shapes(const std::string& text) {
    std::vector<shape> out;
    std::istringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
        const auto slash = item.find('/');
        if (slash == std::string::npos) continue;
        out.push_back({std::stoi(item.substr(0, slash)), std::stoi(item.substr(slash + 1))});
    }
    return out;
}

}  // namespace bench

#endif  // CONNPOOL_BENCH_CONTENDED_HPP
