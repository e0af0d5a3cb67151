// connpool::mysql internals: the per-connection LRU of SQL text -> MYSQL_STMT* behind
// connection::query_cached. It owns the handles: evicting or clearing closes them
// (mysql_stmt_close sends COM_STMT_CLOSE, which has no reply, so it costs no round trip).
#ifndef CONNPOOL_MYSQL_DETAIL_STATEMENT_CACHE_HPP
#define CONNPOOL_MYSQL_DETAIL_STATEMENT_CACHE_HPP

#include <mysql.h>

#include <cstddef>
#include <cstdint>
#include <list>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace connpool::mysql::detail {

class statement_cache {
public:
    // What the connection has done with its cache since it opened (no I/O to read).
    struct counters {
        std::uint64_t hits = 0;       // query_cached found a prepared statement
        std::uint64_t prepares = 0;   // statements prepared on the server
        std::uint64_t evictions = 0;  // closed for the LRU bound
        std::uint64_t clears = 0;     // times every statement was closed (a full reset, say)
    };

    statement_cache() = default;
    statement_cache(statement_cache&& o) noexcept { take(o); }
    statement_cache& operator=(statement_cache&& o) noexcept {
        if (this != &o) {
            clear();
            take(o);
        }
        return *this;
    }
    statement_cache(const statement_cache&) = delete;
    statement_cache& operator=(const statement_cache&) = delete;
    ~statement_cache() { clear(); }

    std::size_t capacity = 128;  // 0 = off; set by the factory

    // The handle for sql, made the most recently used; null when absent.
    MYSQL_STMT* find(std::string_view sql) {
        auto it = index_.find(std::string(sql));
        if (it == index_.end()) return nullptr;
        lru_.splice(lru_.begin(), lru_, it->second);
        ++counters_.hits;
        return it->second->second;
    }

    // Adds a handle just prepared for sql (absent from the cache), closing the least recently
    // used one when that passes capacity.
    void insert(std::string_view sql, MYSQL_STMT* stmt) {
        if (capacity != 0 && lru_.size() >= capacity) {
            mysql_stmt_close(lru_.back().second);
            index_.erase(lru_.back().first);
            lru_.pop_back();
            ++counters_.evictions;
        }
        lru_.emplace_front(std::string(sql), stmt);
        index_.emplace(lru_.front().first, lru_.begin());
        ++counters_.prepares;
    }

    // Closes and forgets sql's handle (after an error that left it unusable).
    void erase(std::string_view sql) {
        auto it = index_.find(std::string(sql));
        if (it == index_.end()) return;
        mysql_stmt_close(it->second->second);
        lru_.erase(it->second);
        index_.erase(it);
    }

    // Closes every handle: the server dropped, or is about to drop, the statements.
    void clear() noexcept {
        if (!lru_.empty()) ++counters_.clears;
        for (auto& e : lru_) mysql_stmt_close(e.second);
        lru_.clear();
        index_.clear();
    }

    std::size_t size() const noexcept { return lru_.size(); }
    const counters& stats() const noexcept { return counters_; }

private:
    void take(statement_cache& o) noexcept {
        capacity = o.capacity;
        lru_ = std::move(o.lru_);
        index_ = std::move(o.index_);
        counters_ = o.counters_;
        o.lru_.clear();
        o.index_.clear();
    }

    std::list<std::pair<std::string, MYSQL_STMT*>> lru_;  // front = most recently used
    std::unordered_map<std::string, std::list<std::pair<std::string, MYSQL_STMT*>>::iterator> index_;
    counters counters_;
};

}  // namespace connpool::mysql::detail

#endif  // CONNPOOL_MYSQL_DETAIL_STATEMENT_CACHE_HPP
