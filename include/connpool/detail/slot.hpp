// connpool internals: the node that holds one connection, its state word, and the table
// of nodes.
#ifndef CONNPOOL_DETAIL_SLOT_HPP
#define CONNPOOL_DETAIL_SLOT_HPP

#include <connpool/detail/clock.hpp>
#include <connpool/detail/histogram.hpp>
#include <connpool/detail/thread_id.hpp>
#include <connpool/label.hpp>

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <source_location>

namespace connpool::detail {

// A slot's state word. The transitions, each named once (pool_state.hpp carries them out):
//
//   from        to          name               who                            lock
//   empty       connecting  start_connect      plan_connects                  yes
//   connecting  idle        connect_done       no waiter                      yes
//   connecting  leased      connect_done       handed to the oldest waiter    yes
//   connecting  empty       connect_failed                                    yes
//   connecting  closing     connect_done       retired or closed meanwhile    yes
//   idle        leased      lease_idle         hint fast path, LIFO scan      CAS
//   idle        probing     start_probe        housekeeping                   CAS
//   idle        closing     close_idle         housekeeping, close, resize    CAS
//   leased      idle        return_to_idle     return fast path               CAS
//   leased      leased      hand_over          return with a waiter           yes
//   leased      resetting   start_reset        dirty return                   yes
//   leased      pinging     start_validation   hand-out check                 yes
//   leased      closing     close_leased       discard, broken, expired       yes
//   leased      orphaned    orphan             close() while leased           CAS
//   resetting   idle/leased reset_done         (hand_over rules)              yes
//   resetting   closing     reset_failed                                      yes
//   pinging     leased      ping_done          delivered to its waiter        yes
//   pinging     idle/leased ping_done          its waiter gave up: hand_over  yes
//   pinging     closing     ping_failed                                       yes
//   leased      applying    start_apply        hand-out needs another label   yes
//   applying    leased      apply_done         delivered to its waiter        yes
//   applying    idle/leased apply_done         its waiter gave up: hand_over  yes
//   applying    closing     apply_failed                                      yes
//   probing     idle/leased probe_done         (hand_over rules)              yes
//   probing     closing     probe_failed                                      yes
//   orphaned    closing     return             the lease came back            yes
//   closing     empty       close_done         after the connection closed    yes
//
// Every transition out of idle, and the lock-free return and close() out of leased, is a
// CAS, so that the fast paths, housekeeping and close() never both win the same slot; the
// other moves out of leased are made under the pool's lock by the slot's holder.
enum class slot_state : std::uint8_t {
    empty,       // no connection; free for a connect
    connecting,  // a connect for this slot is in flight
    idle,        // has a connection ready; acquire claims it with one CAS to leased
    leased,      // a lease holds it, or it is on its way to a waiter
    resetting,   // returned dirty; the factory's reset runs off the caller's path
    pinging,     // chosen for a waiter; the validation ping runs
    applying,    // chosen for a waiter; apply() moves it to the waiter's label, off its path
    probing,     // idle, but housekeeping probes it: counts as idle, cannot be claimed
    closing,     // its connection is being closed; becomes empty
    orphaned,    // was leased when the pool closed: its return closes it
};

constexpr const char* to_string(slot_state s) noexcept {
    switch (s) {
    case slot_state::empty: return "empty";
    case slot_state::connecting: return "connecting";
    case slot_state::idle: return "idle";
    case slot_state::leased: return "leased";
    case slot_state::resetting: return "resetting";
    case slot_state::pinging: return "pinging";
    case slot_state::applying: return "applying";
    case slot_state::probing: return "probing";
    case slot_state::closing: return "closing";
    case slot_state::orphaned: return "orphaned";
    }
    return "?";
}

// What the gauges and the creation decision call idle: a slot being probed is idle for a
// moment longer, it is only not claimable.
constexpr bool counts_as_idle(slot_state s) noexcept { return s == slot_state::idle || s == slot_state::probing; }
constexpr bool holds_connection(slot_state s) noexcept {
    return s != slot_state::empty && s != slot_state::connecting;
}

struct slot_base;
struct waiter_base;
struct tenant_rec;

// What a lease calls when it lets go. Virtual so that lease<Connection> depends on neither
// the factory nor the clock.
class slot_owner {
public:
    virtual void give_back(slot_base& s, bool discard) noexcept = 0;

protected:
    ~slot_owner() = default;
};

// Aligned to a cache line: a slot is written by whoever holds it, and two threads that
// each hold their own slot must not share a line.
struct alignas(64) slot_base {
    std::atomic<slot_state> state{slot_state::empty};
    slot_owner* owner = nullptr;

    // Fixed when the connect starts or completes (under the pool's lock, before the slot
    // is published), read by whoever holds the slot.
    time_point created_at{};
    time_point expires_at = time_point::max();  // lifetime with its jitter already applied
    std::uint64_t generation = 0;               // retire_all() generation when the connect started

    // When the current lease began, precisely, stamped only while others wait (the barging
    // decision reads it as the next hold's estimate; {} otherwise, to keep the uncontended
    // path free of a clock read).
    std::atomic<time_point> busy_since{};

    // Written by the holder, read by housekeeping and stats; relaxed is enough because a
    // reader only reports them.
    std::atomic<time_point> last_used{};
    std::atomic<time_point> leased_at{};
    std::atomic<time_point> timed_since{};  // a sampled lease's precise start (use_time), else {}
    std::atomic<std::uint64_t> recency{0};  // recency_of() the last return: LIFO order
    std::atomic<std::source_location> site{};
    std::atomic<thread_id> holder{};
    std::atomic<std::uint64_t> acquires{0};  // written only by the holder

    waiter_base* validating_for = nullptr;  // while pinging: the waiter it is meant for (pool's lock)
    tenant_rec* tenant = nullptr;  // with tenants: whose quota it counts against while held (pool's lock)

    // The session settings its connection carries (label.hpp): written by the holder only,
    // before the slot is published; label_hash is read by the idle scans.
    label current_label;
    std::atomic<std::uint64_t> label_hash{0};
    single_writer_histogram use_time;  // how long each lease held it, while measured

    std::atomic<bool> in_return{false};      // a return is reading the pool (pool_core::shutdown)
    bool skip_reset = false;                 // the current lease opted out of reset on return
    std::atomic<bool> leak_reported{false};  // set by housekeeping, cleared at each acquire

    void count_acquire() noexcept {
        acquires.store(acquires.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }

    // One CAS; the name says which transition it is.
    bool cas(slot_state from, slot_state to) noexcept {
        return state.compare_exchange_strong(from, to, std::memory_order_acq_rel, std::memory_order_relaxed);
    }
    slot_state load() const noexcept { return state.load(std::memory_order_acquire); }
};

template <class Connection>
struct slot : slot_base {
    std::optional<Connection> conn;
};

// Slots live in fixed chunks that never move, so that a scan may walk them without the
// pool's lock while another thread appends a chunk under it.
template <class Slot>
class slot_table {
public:
    static constexpr std::size_t chunk_size = 16;

    slot_table() = default;
    slot_table(const slot_table&) = delete;
    slot_table& operator=(const slot_table&) = delete;

    ~slot_table() {
        chunk* c = head_.load(std::memory_order_relaxed);
        while (c != nullptr) {
            chunk* next = c->next.load(std::memory_order_relaxed);
            delete c;
            c = next;
        }
    }

    std::size_t size() const noexcept { return size_.load(std::memory_order_acquire); }

    // Calls f(slot&) for each slot until f returns true; returns that slot or nullptr.
    template <class F>
    Slot* find(F&& f) const {
        std::size_t left = size();
        for (chunk* c = head_.load(std::memory_order_acquire); c != nullptr && left > 0;
             c = c->next.load(std::memory_order_acquire)) {
            for (std::size_t i = 0; i < chunk_size && left > 0; ++i, --left) {
                if (f(c->slots[i])) return &c->slots[i];
            }
        }
        return nullptr;
    }

    template <class F>
    void for_each(F&& f) const {
        find([&](Slot& s) {
            f(s);
            return false;
        });
    }

    // Appends a slot. Callers serialize appends (the pool's lock).
    Slot& add() {
        const std::size_t n = size_.load(std::memory_order_relaxed);
        if (n % chunk_size == 0) {
            auto* c = new chunk;
            if (tail_ == nullptr) {
                head_.store(c, std::memory_order_release);
            } else {
                tail_->next.store(c, std::memory_order_release);
            }
            tail_ = c;
        }
        Slot& s = tail_->slots[n % chunk_size];
        size_.store(n + 1, std::memory_order_release);
        return s;
    }

private:
    struct chunk {
        std::array<Slot, chunk_size> slots;
        std::atomic<chunk*> next{nullptr};
    };

    std::atomic<chunk*> head_{nullptr};
    chunk* tail_ = nullptr;
    std::atomic<std::size_t> size_{0};
};

}  // namespace connpool::detail

#endif  // CONNPOOL_DETAIL_SLOT_HPP
