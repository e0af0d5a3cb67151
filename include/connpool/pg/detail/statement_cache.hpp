// connpool::pg internals: the per-connection LRU of SQL text -> server-side statement name that
// connection::exec_cached and prepare_cached use. No I/O here: the connection prepares and
// deallocates, this only remembers what the server holds.
#ifndef CONNPOOL_PG_DETAIL_STATEMENT_CACHE_HPP
#define CONNPOOL_PG_DETAIL_STATEMENT_CACHE_HPP

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>

namespace connpool::pg::detail {

// How a connection's cache behaves; the factory copies these from factory_options on connect.
struct statement_cache_config {
    // Distinct SQL texts remembered, prepared or still counting uses; 0 = off.
    std::size_t capacity = 128;
    // exec_cached prepares a text on its prepare_after-th use (1 = the first).
    unsigned prepare_after = 1;
    // Set when the connection goes through a transaction-mode pooler (see statement_errc).
    bool unsupported = false;
};

class statement_cache {
public:
    struct entry {
        std::string sql;
        std::string name;   // empty until prepared
        unsigned uses = 0;  // counted while not yet prepared
    };

    // What the connection has done with its cache since it opened (no I/O to read).
    struct counters {
        std::uint64_t hits = 0;       // exec_cached / prepare_cached found a prepared statement
        std::uint64_t prepares = 0;   // statements prepared on the server
        std::uint64_t evictions = 0;  // prepared statements dropped for the LRU bound
        std::uint64_t clears = 0;     // times every statement was forgotten (a DISCARD ALL reset, say)
    };

    statement_cache() = default;
    explicit statement_cache(statement_cache_config c) : config_(c) {}

    const statement_cache_config& config() const noexcept { return config_; }
    void configure(statement_cache_config c) {
        config_ = c;
        clear_entries();
    }

    // The entry for sql, moved to the front; null when absent.
    entry* find(const std::string& sql) {
        auto it = index_.find(sql);
        if (it == index_.end()) return nullptr;
        lru_.splice(lru_.begin(), lru_, it->second);
        return &*it->second;
    }

    // Inserts sql at the front (it must be absent). If that passes capacity, the least recently
    // used entry leaves; its statement name (empty if it was never prepared) goes to evicted, for
    // the connection to DEALLOCATE.
    entry& insert(const std::string& sql, std::string& evicted) {
        evicted.clear();
        if (config_.capacity != 0 && lru_.size() >= config_.capacity) {
            entry& last = lru_.back();
            if (!last.name.empty()) {
                evicted = std::move(last.name);
                --prepared_;
                ++counters_.evictions;
            }
            index_.erase(last.sql);
            lru_.pop_back();
        }
        lru_.push_front(entry{sql, {}, 0});
        index_.emplace(sql, lru_.begin());
        return lru_.front();
    }

    // A name never used before on this connection, so a stale name can never run another
    // statement's SQL.
    std::string next_name() { return "connpool_s" + std::to_string(next_id_++); }

    // e is now prepared on the server under name.
    void mark_prepared(entry& e, std::string name) {
        e.name = std::move(name);
        ++prepared_;
        ++counters_.prepares;
    }

    void count_hit() noexcept { ++counters_.hits; }

    // Removes sql's entry (after a failed prepare, say).
    void erase(const std::string& sql) {
        auto it = index_.find(sql);
        if (it == index_.end()) return;
        if (!it->second->name.empty()) --prepared_;
        lru_.erase(it->second);
        index_.erase(it);
    }

    // The server dropped every statement (DISCARD ALL, DEALLOCATE ALL): forget them all.
    void clear() {
        if (!lru_.empty()) ++counters_.clears;
        clear_entries();
    }

    std::size_t prepared() const noexcept { return prepared_; }
    std::size_t size() const noexcept { return lru_.size(); }
    const counters& stats() const noexcept { return counters_; }

private:
    void clear_entries() {
        index_.clear();
        lru_.clear();
        prepared_ = 0;
    }

    statement_cache_config config_;
    std::list<entry> lru_;  // front = most recently used
    std::unordered_map<std::string, std::list<entry>::iterator> index_;
    std::size_t prepared_ = 0;
    std::uint64_t next_id_ = 1;
    counters counters_;
};

}  // namespace connpool::pg::detail

#endif  // CONNPOOL_PG_DETAIL_STATEMENT_CACHE_HPP
