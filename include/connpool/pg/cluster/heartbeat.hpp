// connpool::pg::auto_budget: the connection budget's automatic mode. Live instances count
// themselves through a small heartbeat table on the primary, and each sets its pools' max_size to
// its share: floor(fraction x (max_connections - reserved)) / live instances.
#ifndef CONNPOOL_PG_CLUSTER_HEARTBEAT_HPP
#define CONNPOOL_PG_CLUSTER_HEARTBEAT_HPP

#include <connpool/pg/cluster/budget.hpp>
#include <connpool/pg/cluster/probe.hpp>

#include <libpq-fe.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <iostream>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>

namespace connpool::pg {

// What pg::auto_budget writes, how often, and how it counts the live instances.
struct heartbeat_options {
    // The table, created when missing: (instance_id text PRIMARY KEY, beat_at timestamptz).
    // A plain identifier; it lives in the connecting user's search_path.
    std::string table = "connpool_instances";
    // This instance's row. Empty: "<hostname>-<pid>-<random>". Letters, digits, '.', '_', ':', '-'.
    std::string instance_id;
    // How often this instance beats, re-counts the live ones and resizes.
    std::chrono::milliseconds interval = std::chrono::seconds(5);
    // An instance whose last beat is older than this no longer counts: how long a dead
    // instance's share stays reserved. Keep it a few intervals, so that one slow beat does
    // not let the others grow.
    std::chrono::milliseconds ttl = std::chrono::seconds(20);
    // Share of (max_connections - superuser_reserved_connections) all live instances may use.
    double fraction = 0.8;
    // On destruction, delete this instance's row, so that the others may grow at their next beat
    // rather than after ttl. Off only to act out a crash in tests.
    bool deregister_on_stop = true;
    // Called on this instance's thread when the share changes (a message naming the numbers)
    // and when a beat fails (its cause); empty: standard error.
    std::function<void(const std::string&)> on_change;
};

// Runs the heartbeat on its own thread from construction to destruction. apply(limit) is called
// with each new share (never above max_size, at least 1): typically pool.set_max_size, or every
// host pool of a cluster. What happens when an instance dies: its row stops moving, and ttl
// after its last beat the others count one instance fewer and raise their share at their next
// beat. Until then they keep the smaller share, so the server is never oversubscribed. When the
// server cannot be reached the share stays as it was.
//
// Thread-safety: live_instances(), limit() and beat() may be called from any thread.
class auto_budget {
public:
    // Starts the heartbeat: beats into the table through a connection of its own made from
    // conninfo, and calls apply(limit) with each new share, never above max_size.
    // Throws std::invalid_argument naming the field when an option is out of range.
    auto_budget(std::string conninfo, std::size_t max_size, std::function<void(std::size_t)> apply,
                heartbeat_options o = {})
        : session_(std::move(conninfo)), max_size_(max_size), apply_(std::move(apply)), o_(std::move(o)) {
        check_options();
        if (o_.instance_id.empty()) o_.instance_id = default_id();
        thread_ = std::thread([this] { run(); });
    }

    // For one pool: its max_size at construction is the ceiling.
    template <class Pool>
    auto_budget(Pool& pool, std::string conninfo, heartbeat_options o = {})
        : auto_budget(std::move(conninfo), pool.stats().max_size, [&pool](std::size_t n) { pool.set_max_size(n); },
                      std::move(o)) {}

    auto_budget(const auto_budget&) = delete;
    auto_budget& operator=(const auto_budget&) = delete;

    ~auto_budget() {
        {
            std::lock_guard lk(mu_);
            stopping_ = true;
            cv_.notify_all();
        }
        thread_.join();
        if (o_.deregister_on_stop) {
            std::string error;
            session_.query("DELETE FROM " + o_.table + " WHERE instance_id = '" + o_.instance_id + "'",
                           std::chrono::milliseconds(2000), error);
        }
    }

    // Live instances at the last beat (0 before the first), and the share applied.
    std::size_t live_instances() const noexcept { return live_.load(); }
    // The share applied at the last beat.
    std::size_t limit() const noexcept { return limit_.load(); }
    // This instance's row in the table.
    const std::string& instance_id() const noexcept { return o_.instance_id; }

    // Asks for a beat now and waits up to timeout for it to finish. True if one did.
    bool beat(std::chrono::milliseconds timeout) {
        std::unique_lock lk(mu_);
        const std::uint64_t target = beats_ + (in_flight_ ? 2 : 1);
        wake_ = true;
        cv_.notify_all();
        return cv_.wait_for(lk, timeout, [&] { return beats_ >= target || stopping_; }) && !stopping_;
    }

private:
    static bool plain(const std::string& s, const char* extra) {
        return !s.empty() && std::all_of(s.begin(), s.end(), [&](char c) {
                   return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
                          std::string_view(extra).find(c) != std::string_view::npos;
               });
    }

    void check_options() const {
        // Both are spliced into SQL, so only characters that need no quoting are allowed.
        if (!plain(o_.table, "") || (o_.table[0] >= '0' && o_.table[0] <= '9'))
            throw std::invalid_argument("connpool::pg::heartbeat_options::table = " + o_.table +
                                        ": must be a plain identifier");
        if (!o_.instance_id.empty() && !plain(o_.instance_id, ".:-"))
            throw std::invalid_argument("connpool::pg::heartbeat_options::instance_id = " + o_.instance_id +
                                        ": only letters, digits, '.', '_', ':' and '-'");
        if (o_.interval.count() <= 0)
            throw std::invalid_argument("connpool::pg::heartbeat_options::interval = " +
                                        std::to_string(o_.interval.count()) + "ms: must be positive");
        if (o_.ttl <= o_.interval)
            throw std::invalid_argument("connpool::pg::heartbeat_options::ttl = " + std::to_string(o_.ttl.count()) +
                                        "ms: must exceed interval");
        if (max_size_ == 0) throw std::invalid_argument("connpool::pg::auto_budget: max_size must be at least 1");
        evaluate_budget(100, 0, 0, 1, 1, o_.fraction);  // throws for a fraction out of range
    }

    static std::string default_id() {
        char host[64] = {};
        ::gethostname(host, sizeof host - 1);
        std::string h;
        for (char c : std::string(host)) h += plain(std::string(1, c), ".-") ? c : '_';
        return (h.empty() ? std::string("host") : h) + "-" + std::to_string(::getpid()) + "-" +
               std::to_string(std::random_device{}() % 1000000);
    }

    void run() {
        bool created = false;
        for (;;) {
            {
                std::lock_guard lk(mu_);
                if (stopping_) return;
                in_flight_ = true;
                wake_ = false;
            }
            once(created);
            std::unique_lock lk(mu_);
            in_flight_ = false;
            ++beats_;
            cv_.notify_all();
            cv_.wait_for(lk, o_.interval, [&] { return stopping_ || wake_; });
            if (stopping_) return;
        }
    }

    // One beat: upsert our row, count the live rows, read the server's numbers, resize.
    void once(bool& created) {
        // Not tied to a short interval: a loaded server may take a second to answer, and a
        // beat that gives up early only delays the count.
        const auto timeout = std::clamp(o_.interval, std::chrono::milliseconds(2000), std::chrono::milliseconds(5000));
        std::string error;
        if (!created) {
            created = static_cast<bool>(session_.query("CREATE TABLE IF NOT EXISTS " + o_.table +
                                                           " (instance_id text PRIMARY KEY, beat_at timestamptz NOT NULL)",
                                                       timeout, error));
            if (!created) return report("connpool: heartbeat table " + o_.table + " not created: " + error);
        }
        const std::string ttl = std::to_string(o_.ttl.count()) + " milliseconds";
        // Several statements in one round trip; the result is the last one's. Rows dead for
        // ten ttls are deleted, so crashed instances do not pile up.
        result r = session_.query(
            "INSERT INTO " + o_.table + " VALUES ('" + o_.instance_id +
                "', now()) ON CONFLICT (instance_id) DO UPDATE SET beat_at = now();"
                " DELETE FROM " + o_.table + " WHERE beat_at < now() - 10 * interval '" + ttl + "';"
                " SELECT (SELECT count(*) FROM " + o_.table + " WHERE beat_at > now() - interval '" + ttl + "')::int,"
                " current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int",
            timeout, error);
        if (!r || PQntuples(r.get()) != 1) return report("connpool: heartbeat failed: " + error);
        const auto live = static_cast<std::size_t>(std::max(1, std::atoi(PQgetvalue(r.get(), 0, 0))));
        const budget_report b = evaluate_budget(std::atoi(PQgetvalue(r.get(), 0, 1)), std::atoi(PQgetvalue(r.get(), 0, 2)),
                                                0, live, max_size_, o_.fraction);
        const std::size_t share = std::clamp<std::size_t>(b.per_instance, 1, max_size_);
        live_ = live;
        if (share != limit_.load()) {
            limit_ = share;
            apply_(share);
            char pct[16];
            std::snprintf(pct, sizeof pct, "%g", o_.fraction * 100);
            report("connpool: " + std::to_string(live) + (live == 1 ? " live instance" : " live instances") +
                   " share " + pct + " % of (" + std::to_string(b.max_connections) + " - " +
                   std::to_string(b.reserved) + ") = " + std::to_string(b.allowed_total) + ": max_size " +
                   std::to_string(share) + (share == max_size_ ? " (the configured maximum)" : ""));
        }
    }

    void report(const std::string& m) {
        if (o_.on_change) o_.on_change(m);
        else std::cerr << m << '\n';
    }

    probe_session session_;  // used by the thread, and by the destructor after the join
    std::size_t max_size_;
    std::function<void(std::size_t)> apply_;
    heartbeat_options o_;
    std::atomic<std::size_t> live_{0};
    std::atomic<std::size_t> limit_{0};

    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool wake_ = false;
    bool in_flight_ = false;
    std::uint64_t beats_ = 0;
    std::thread thread_;  // last: started once everything it reads exists
};

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_CLUSTER_HEARTBEAT_HPP
