// connpool internals: the node that holds one connection, and the table of nodes.
#ifndef CONNPOOL_DETAIL_SLOT_HPP
#define CONNPOOL_DETAIL_SLOT_HPP

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <source_location>
#include <thread>

namespace connpool::detail {

// A slot's state word. Every transition out of idle or leased is a CAS, so that the
// acquire fast path, the return fast path, housekeeping and close() never both win.
enum class slot_state : std::uint8_t {
    empty,       // no connection; free for a connect
    connecting,  // a connect for this slot is in flight
    idle,        // has a connection ready; acquire claims it with one CAS to leased
    leased,      // a lease holds it
    busy,        // the pool works on it (reset, ping, close) and nobody else may touch it
    probing,     // idle, but housekeeping is probing it: counts as idle, cannot be claimed
    orphaned,    // was leased when the pool closed: its return closes it
};

// What the gauges and the creation decision call idle: a slot being probed is idle for a
// moment longer, it is only not claimable.
constexpr bool counts_as_idle(slot_state s) noexcept { return s == slot_state::idle || s == slot_state::probing; }

template <class Connection, class Clock>
struct slot;

// What a lease calls when it lets go. Virtual so that lease<Connection> does not depend
// on the factory type.
template <class Connection, class Clock>
class slot_owner {
public:
    virtual void give_back(slot<Connection, Clock>& s, bool discard) noexcept = 0;

protected:
    ~slot_owner() = default;
};

// Aligned to a cache line: a slot is written by whoever holds it, and two threads that
// each hold their own slot must not share a line.
template <class Connection, class Clock>
struct alignas(64) slot {
    using time_point = typename Clock::time_point;
    using duration = typename Clock::duration;

    std::atomic<slot_state> state{slot_state::empty};
    slot_owner<Connection, Clock>* owner = nullptr;
    std::optional<Connection> conn;

    // Fixed when the connection opens (under the pool's lock, before it is published).
    time_point created_at{};
    time_point expires_at = time_point::max();  // lifetime with its jitter already applied
    std::uint64_t generation = 0;               // retire_all() generation at open

    // Written by the holder, read by housekeeping and stats; relaxed is enough because a
    // reader only reports them.
    std::atomic<duration> last_used{};  // since the clock's epoch
    std::atomic<duration> leased_at{};
    std::atomic<std::uint64_t> recency{0};  // recency_stamp() at the last return: LIFO order
    std::atomic<std::source_location> site{};
    std::atomic<std::thread::id> holder{};
    std::atomic<std::uint64_t> acquires{0};  // written only by the holder

    bool skip_reset = false;     // the current lease opted out of reset on return
    std::atomic<bool> leak_reported{false};  // set by housekeeping, cleared at each acquire

    time_point last_used_at() const noexcept { return time_point(last_used.load(std::memory_order_relaxed)); }
    time_point leased_since() const noexcept { return time_point(leased_at.load(std::memory_order_relaxed)); }

    void count_acquire() noexcept {
        acquires.store(acquires.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    }
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
