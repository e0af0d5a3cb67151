// connpool::pg::auto_budget: the connection budget's automatic mode. Live instances count
// themselves through a small heartbeat table on the primary (the registry), each writing there
// what it claims, and each sets its pools' max_size to its share (sizing::budget_share): a fair
// part of floor(fraction x (max_connections - reserved)) once every instance's own connections
// (heartbeat, probes) and one joiner's reserve are set aside, and never more than the room the
// others leave unclaimed.
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

// What auto_budget sizes: the pools of one instance, all set to the same limit.
struct budget_target {
    // The configured max_size: the share never goes above it.
    std::size_t max_size = 1;
    // The pools' min_idle: the share never goes below max(1, min_idle), and a joining instance
    // starts there.
    std::size_t min_idle = 0;
    // Connections this instance opens to each server outside its pools: the heartbeat's (1),
    // plus a cluster's prober per host. They count against the budget like any other.
    std::size_t own_connections = 1;
    // Sets every pool's max_size (called on the heartbeat's thread, and once in the constructor).
    std::function<void(std::size_t)> apply;
    // The most connections any of the pools holds now (open and connecting): a pool shrinks
    // only as its leases come back, and the registry must not promise that room before.
    // Empty: the limit is taken as what they hold.
    std::function<std::size_t()> held;
};

// Runs the heartbeat on its own thread from construction to destruction. The constructor sets
// the pools to their floor (max(1, min_idle)): an instance that has not read the registry yet
// cannot know what the others hold. Each beat then, under a lock on the table, reads what the
// other live instances claim, shrinks this instance's pools first, writes its own claim
// (sizing::budget_claim) and only then grows into the room left (sizing::budget_share). So two
// instances never grow into the same room, and while one joins the others' connections and
// the joiner's floor, probes and heartbeat still fit: room for one joiner is always kept.
// An instance below its fair share beats four times as often until it gets there.
// What happens when an instance dies: its row stops moving, and ttl after its last beat the
// others count one instance fewer and raise their share at their next beat. Until then they
// keep the smaller share and its claim, so the server is never oversubscribed. When the server
// cannot be reached the share stays as it was (the floor until a first beat succeeds).
//
// Thread-safety: live_instances(), limit() and beat() may be called from any thread.
class auto_budget {
public:
    // Starts the heartbeat: beats into the table through a connection of its own made from
    // conninfo, and sizes t's pools. Throws std::invalid_argument naming the field when an
    // option is out of range.
    auto_budget(std::string conninfo, budget_target t, heartbeat_options o = {})
        : session_(std::move(conninfo)), t_(std::move(t)), o_(std::move(o)) {
        check_options();
        if (o_.instance_id.empty()) o_.instance_id = default_id();
        // Nothing beyond the floor until the registry has been read.
        limit_ = floor();
        t_.apply(limit_);
        thread_ = std::thread([this] { run(); });
    }

    // As above for pools that apply(limit) sizes, never above max_size, with no min_idle and
    // the heartbeat as the only connection of this instance's own.
    auto_budget(std::string conninfo, std::size_t max_size, std::function<void(std::size_t)> apply,
                heartbeat_options o = {})
        : auto_budget(std::move(conninfo), budget_target{max_size, 0, 1, std::move(apply), {}}, std::move(o)) {}

    // For one pool: its max_size at construction is the ceiling, its min_idle the floor.
    template <class Pool>
        requires requires(Pool& p) { p.set_max_size(std::size_t{1}); }
    auto_budget(Pool& pool, std::string conninfo, heartbeat_options o = {})
        : auto_budget(std::move(conninfo),
                      budget_target{pool.stats().max_size, pool.stats().min_idle, 1,
                                    [&pool](std::size_t n) { pool.set_max_size(n); },
                                    [&pool] {
                                        const auto st = pool.stats();
                                        return st.open + st.creating;
                                    }},
                      std::move(o)) {}

    // For every host pool of a pg::cluster: host 0's max_size and min_idle at construction
    // are the ceiling and the floor, and the cluster's probers count as its own connections.
    template <class Cluster>
        requires requires(Cluster& c) {
            c.host_pool(0);
            Cluster::own_connections_per_host;
        }
    auto_budget(Cluster& c, std::string conninfo, heartbeat_options o = {})
        : auto_budget(std::move(conninfo),
                      budget_target{c.host_pool(0).stats().max_size, c.host_pool(0).stats().min_idle,
                                    1 + Cluster::own_connections_per_host,
                                    [&c](std::size_t n) {
                                        for (std::size_t i = 0; i < c.size(); ++i) c.host_pool(i).set_max_size(n);
                                    },
                                    [&c] {
                                        std::size_t most = 0;
                                        for (std::size_t i = 0; i < c.size(); ++i) {
                                            const auto st = c.host_pool(i).stats();
                                            most = std::max(most, st.open + st.creating);
                                        }
                                        return most;
                                    }},
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
        if (t_.max_size == 0)
            throw std::invalid_argument("connpool::pg::budget_target::max_size = 0: must be at least 1");
        if (t_.min_idle > t_.max_size)
            throw std::invalid_argument("connpool::pg::budget_target::min_idle = " + std::to_string(t_.min_idle) +
                                        ": must not exceed max_size (" + std::to_string(t_.max_size) + ")");
        if (!t_.apply) throw std::invalid_argument("connpool::pg::budget_target::apply is empty");
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
            // Below its fair share an instance waits only for the others to free room.
            cv_.wait_for(lk, growing_ ? o_.interval / 4 : o_.interval, [&] { return stopping_ || wake_; });
            if (stopping_) return;
        }
    }

    std::size_t floor() const noexcept { return std::max<std::size_t>(1, t_.min_idle); }

    // Ends the beat's transaction after a failure; on a broken session there is none left.
    void rollback(std::chrono::milliseconds timeout) {
        std::string ignored;
        session_.query("ROLLBACK", timeout, ignored);
    }

    // One beat, in one transaction under the table's lock, so that beats of all instances take
    // turns: read what the others claim, shrink, write our claim, commit, grow.
    void once(bool& created) {
        // Not tied to a short interval: a loaded server may take a second to answer, and a
        // beat that gives up early only delays the count.
        const auto timeout = std::clamp(o_.interval, std::chrono::milliseconds(2000), std::chrono::milliseconds(5000));
        std::string error;
        if (!created) {
            // claimed was added in 0.3: a table of an older connpool gets the column.
            created = static_cast<bool>(session_.query(
                "CREATE TABLE IF NOT EXISTS " + o_.table +
                    " (instance_id text PRIMARY KEY, beat_at timestamptz NOT NULL, claimed int NOT NULL DEFAULT 0);"
                    " ALTER TABLE " + o_.table + " ADD COLUMN IF NOT EXISTS claimed int NOT NULL DEFAULT 0",
                timeout, error));
            if (!created) return report("connpool: heartbeat table " + o_.table + " not created: " + error);
        }
        const std::string ttl = std::to_string(o_.ttl.count()) + " milliseconds";
        const std::string me = "'" + o_.instance_id + "'";
        // Several statements in one round trip; the result is the last one's. Rows dead for
        // ten ttls are deleted, so crashed instances do not pile up. The lock waits for another
        // instance's beat, which holds it for two round trips, never for readers.
        result r = session_.query(
            "BEGIN; SET LOCAL lock_timeout = '" + std::to_string(timeout.count() / 2) + "ms';"
                " LOCK TABLE " + o_.table + " IN SHARE ROW EXCLUSIVE MODE;"
                " DELETE FROM " + o_.table + " WHERE beat_at < now() - 10 * interval '" + ttl + "';"
                " SELECT count(*)::int, coalesce(sum(claimed), 0)::int,"
                " current_setting('max_connections')::int, current_setting('superuser_reserved_connections')::int"
                " FROM " + o_.table + " WHERE beat_at > now() - interval '" + ttl + "' AND instance_id <> " + me,
            timeout, error);
        if (!r || PQntuples(r.get()) != 1) {
            rollback(timeout);
            return report("connpool: heartbeat failed: " + error);
        }
        const auto others = static_cast<std::size_t>(std::max(0, std::atoi(PQgetvalue(r.get(), 0, 0))));
        const auto claimed = static_cast<std::size_t>(std::max(0, std::atoi(PQgetvalue(r.get(), 0, 1))));
        const budget_report b = evaluate_budget(std::atoi(PQgetvalue(r.get(), 0, 2)), std::atoi(PQgetvalue(r.get(), 0, 3)),
                                                0, others + 1, t_.max_size, o_.fraction);
        sizing::share_inputs in{b.allowed_total, others + 1, claimed, t_.own_connections, floor(), t_.max_size};
        const std::size_t share = sizing::budget_share(in);
        in.others_claimed = 0;
        const std::size_t fair = sizing::budget_share(in);
        const std::size_t before = limit_.load();
        // Shrink before counting what we hold, so that the claim covers every connection we
        // may still open; grow only after the claim is committed.
        if (share < before) set_limit(share);
        const std::size_t held = t_.held ? t_.held() : share;
        r = session_.query("INSERT INTO " + o_.table + " VALUES (" + me + ", now(), " +
                               std::to_string(sizing::budget_claim(share, held, t_.own_connections)) +
                               ") ON CONFLICT (instance_id) DO UPDATE SET beat_at = now(), claimed = excluded.claimed;"
                               " COMMIT",
                           timeout, error);
        if (!r) {
            rollback(timeout);
            return report("connpool: heartbeat failed: " + error);
        }
        live_ = others + 1;
        growing_ = share < fair;
        if (share > before) set_limit(share);
        if (share != before) {
            char pct[16];
            std::snprintf(pct, sizeof pct, "%g", o_.fraction * 100);
            const std::size_t live = others + 1;
            report("connpool: " + std::to_string(live) + (live == 1 ? " live instance" : " live instances") +
                   " share " + pct + " % of (" + std::to_string(b.max_connections) + " - " +
                   std::to_string(b.reserved) + ") = " + std::to_string(b.allowed_total) + " less " +
                   std::to_string(t_.own_connections) + " own each and " +
                   std::to_string(sizing::joiner_reserve(in)) + " for a joiner: max_size " + std::to_string(share) +
                   (share == t_.max_size ? " (the configured maximum)"
                    : share < fair       ? " (" + std::to_string(fair) + " once the others free room)"
                                         : std::string()));
        }
    }

    void set_limit(std::size_t n) {
        limit_ = n;
        t_.apply(n);
    }

    void report(const std::string& m) {
        if (o_.on_change) o_.on_change(m);
        else std::cerr << m << '\n';
    }

    probe_session session_;  // used by the thread, and by the destructor after the join
    budget_target t_;
    heartbeat_options o_;
    std::atomic<std::size_t> live_{0};
    std::atomic<std::size_t> limit_{0};

    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    bool wake_ = false;
    bool in_flight_ = false;
    std::atomic<bool> growing_{false};  // below the fair share at the last beat: beat sooner
    std::uint64_t beats_ = 0;
    std::thread thread_;  // last: started once everything it reads exists
};

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_CLUSTER_HEARTBEAT_HPP
