// connpool: a cluster of pools, one per host (a primary and its standbys), that routes each
// acquire by intent: writes to the primary, reads to a standby within max_replica_lag,
// read_fresh(token) to a host that has replayed the token. Any factory can be used; the
// database adapter supplies the probe that says what each host is (connpool/pg/cluster.hpp).
#ifndef CONNPOOL_CLUSTER_HPP
#define CONNPOOL_CLUSTER_HPP

#include <connpool/cluster/cluster_lease.hpp>
#include <connpool/cluster/error.hpp>
#include <connpool/cluster/host_status.hpp>
#include <connpool/cluster/intent.hpp>
#include <connpool/cluster/options.hpp>
#include <connpool/cluster/routing.hpp>
#include <connpool/pool.hpp>

#include <boost/asio/associated_cancellation_slot.hpp>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/post.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <source_location>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace connpool {

// One host of a cluster: a name for leases and messages, the factory its pool uses, its
// weight in read balancing, and the probe the cluster calls on its own thread. The probe
// must return within the timeout it is given and must not throw (a throw counts as down).
template <connection_factory Factory>
struct cluster_host {
    // The host's name, as leases and host_status report it.
    std::string name;
    // The factory of the host's pool.
    Factory factory;
    // Its share of the reads (2.0: twice the reads of a host of weight 1.0).
    double weight = 1.0;
    // Asks the host for its role and position within the timeout (see above).
    std::function<probe_result(std::chrono::milliseconds timeout)> probe;
};

// Thread-safety: every member function may be called from any thread at once, except the
// destructor. Lifetime: leases may outlive the cluster (their pools then close them on return).
template <connection_factory Factory>
class basic_cluster {
public:
    // The pool each host has.
    using pool_type = connpool::pool<Factory>;
    // The lease of one host's pool.
    using pool_lease_type = typename pool_type::lease_type;
    // What acquire returns: a pool lease with the host it came from.
    using lease_type = cluster_lease<pool_lease_type>;
    // The factory's connection type.
    using connection_type = typename Factory::connection_type;
    // The executor of the cluster's pools and async operations.
    using executor_type = asio::any_io_executor;
    // For read_fresh: reads the position a standby connection has replayed (none: unknown),
    // so that a standby the last probe saw behind can still serve a fresh read. It must
    // return within the timeout (what the acquire has left): a frozen standby must not hold
    // the caller past its deadline.
    using position_check = std::function<std::optional<std::uint64_t>(connection_type&, std::chrono::milliseconds)>;

    // Pools run their background work on their own threads (see pool's constructors).
    basic_cluster(std::vector<cluster_host<Factory>> hosts, cluster_options copts = {}, options pool_opts = {},
                  position_check check = {})
        : basic_cluster(std::nullopt, std::move(hosts), std::move(copts), std::move(pool_opts), std::move(check)) {}

    // Pools run their background work on ex; async_acquire completes on ex by default.
    basic_cluster(executor_type ex, std::vector<cluster_host<Factory>> hosts, cluster_options copts = {},
                  options pool_opts = {}, position_check check = {})
        : basic_cluster(std::optional<executor_type>(std::move(ex)), std::move(hosts), std::move(copts),
                        std::move(pool_opts), std::move(check)) {}

    basic_cluster(const basic_cluster&) = delete;
    basic_cluster& operator=(const basic_cluster&) = delete;

    ~basic_cluster() {
        stop_probers();
        close();
    }

    // Blocking acquire for r, waiting at most options::acquire_timeout (the pools' options).
    // Throws connpool::error. Routing failures fail at once: cluster_errc::no_primary ("no
    // primary: host a is down: ..., host b is in recovery"), cluster_errc::no_host. A host
    // that cannot connect fails a write at once with the pool's code and the primary named;
    // a read then tries another host. Other pool errors (acquire_timeout, ...) name the host.
    lease_type acquire(route r, std::source_location loc = std::source_location::current()) {
        return acquire_for(r, pool_opts_.acquire_timeout, loc);
    }

    // As acquire(r), with a timeout of its own instead of the pools' acquire_timeout.
    lease_type acquire_for(route r, std::chrono::milliseconds timeout,
                           std::source_location loc = std::source_location::current()) {
        error_info e;
        lease_type l = acquire_impl(r, timeout, e, loc);
        if (!l) throw error(std::move(e));
        return l;
    }

    // Non-throwing forms: an empty lease and ec set on failure; diag gets the message.
    lease_type acquire(route r, error_code& ec, std::source_location loc = std::source_location::current()) {
        error_info e;
        return acquire(r, ec, e, loc);
    }

    // As acquire(r), without throwing: on failure an empty lease, ec set and diag.message naming the cause.
    lease_type acquire(route r, error_code& ec, error_info& diag,
                       std::source_location loc = std::source_location::current()) {
        diag.clear();
        lease_type l = acquire_impl(r, pool_opts_.acquire_timeout, diag, loc);
        ec = diag.code;
        return l;
    }

    // Asynchronous acquire. Completion signature: void(error_code, lease_type).
    // Routing is decided at once from the last probes and never blocks; the chosen host's
    // pool then serves it with its own rules: completes on the handler's associated executor
    // (default: the cluster's) through a post, waits at most acquire_timeout, and honours
    // terminal, partial and total cancellation while waiting. Unlike the blocking face it
    // makes one attempt: a read whose host cannot connect fails with that host named, and
    // read_fresh uses only the positions the probes saw (a behind standby sends it to the
    // primary). diag, when given, must outlive the operation.
    template <class Token = detail::default_token_t<executor_type>>
        requires(!std::same_as<std::remove_cvref_t<Token>, error_info>)
    auto async_acquire(route r, Token&& token = detail::default_token_t<executor_type>{}) {
        return initiate(r, nullptr, std::forward<Token>(token));
    }

    // As async_acquire(r, token), and on failure diag.message names the cause.
    template <class Token = detail::default_token_t<executor_type>>
    auto async_acquire(route r, error_info& diag, Token&& token = detail::default_token_t<executor_type>{}) {
        return initiate(r, &diag, std::forward<Token>(token));
    }

    // What the cluster knows about every host now, in the order the hosts were given.
    std::vector<host_status> hosts() const {
        std::lock_guard lk(mu_);
        std::vector<host_status> out = status_;
        for (std::size_t i = 0; i < out.size(); ++i) out[i].outstanding = tags_[i]->outstanding.load();
        return out;
    }

    // Asks every prober to probe now, without waiting.
    void request_refresh() {
        std::lock_guard lk(mu_);
        for (std::size_t i = 0; i < wake_.size(); ++i) wake_[i] = true;
        cv_.notify_all();
    }

    // Probes every host now and waits until each has finished a probe that started after
    // this call, or until timeout. Returns true if all did. For tools and tests: callers of
    // acquire never need it.
    bool refresh(std::chrono::milliseconds timeout) {
        std::unique_lock lk(mu_);
        std::vector<std::uint64_t> target(status_.size());
        for (std::size_t i = 0; i < status_.size(); ++i) {
            target[i] = status_[i].probes + (in_flight_[i] ? 2 : 1);
            wake_[i] = true;
        }
        cv_.notify_all();
        return cv_.wait_for(lk, timeout, [&] {
            if (stopping_) return true;
            for (std::size_t i = 0; i < status_.size(); ++i) {
                if (status_[i].probes < target[i]) return false;
            }
            return true;
        }) && !stopping_;
    }

    // The pool of host i, e.g. for stats() or set_max_size(). Precondition: i < size().
    pool_type& host_pool(std::size_t i) { return *pools_.at(i); }
    // The pool of host i (const). Precondition: i < size().
    const pool_type& host_pool(std::size_t i) const { return *pools_.at(i); }
    // The number of hosts.
    std::size_t size() const noexcept { return pools_.size(); }
    // The cluster's options, as given to the constructor.
    const cluster_options& get_options() const noexcept { return copts_; }

    // Closes every pool (see pool::close()); later acquires fail with cluster_closed.
    // Probing stops with the destructor. Idempotent.
    void close() {
        closed_.store(true);
        for (auto& p : pools_) p->close();
    }

private:
    basic_cluster(std::optional<executor_type> ex, std::vector<cluster_host<Factory>> hosts, cluster_options copts,
                  options pool_opts, position_check check)
        : copts_(std::move(copts)), pool_opts_(std::move(pool_opts)), check_(std::move(check)), ex_(ex) {
        validate(copts_);
        if (hosts.empty()) throw std::invalid_argument("connpool::basic_cluster: hosts must not be empty");
        for (std::size_t i = 0; i < hosts.size(); ++i) {
            auto& h = hosts[i];
            if (h.name.empty())
                throw std::invalid_argument("connpool::cluster_host::name of host " + std::to_string(i) + " is empty");
            if (!(h.weight > 0))
                throw std::invalid_argument("connpool::cluster_host::weight = " + std::to_string(h.weight) +
                                            " for host " + h.name + ": must be positive");
            if (!h.probe) throw std::invalid_argument("connpool::cluster_host::probe for host " + h.name + " is empty");
        }
        for (std::size_t i = 0; i < hosts.size(); ++i) {
            auto& h = hosts[i];
            pools_.push_back(ex ? std::make_unique<pool_type>(*ex, std::move(h.factory), pool_opts_)
                                : std::make_unique<pool_type>(std::move(h.factory), pool_opts_));
            auto tag = std::make_shared<detail::host_tag>();
            tag->name = h.name;
            tag->index = i;
            tags_.push_back(std::move(tag));
            host_status s;
            s.name = h.name;
            s.weight = h.weight;
            s.note = "is not probed yet";
            status_.push_back(std::move(s));
            probes_.push_back(std::move(h.probe));
        }
        wake_.assign(pools_.size(), false);
        in_flight_.assign(pools_.size(), false);
        for (std::size_t i = 0; i < pools_.size(); ++i) probers_.emplace_back([this, i] { prober(i); });
        if (copts_.probe_at_start) refresh(copts_.probe_timeout * 2 + std::chrono::milliseconds(500));
    }

    static bool is_connect_failure(const error_code& ec) {
        return ec == errc::connect_failed || ec == errc::connect_timeout || ec == errc::ping_failed ||
               ec == errc::factory_exception;
    }

    // Under mu_: routing with the balancer's current view of outstanding leases.
    detail::routing_choice choose_locked(const route& r, const std::vector<bool>& excluded, bool can_verify) {
        thread_local std::minstd_rand rng{std::random_device{}()};
        for (std::size_t i = 0; i < status_.size(); ++i) {
            status_[i].outstanding = tags_[i]->outstanding.load(std::memory_order_relaxed);
        }
        return detail::choose_host(status_, r, copts_, excluded, can_verify, rng);
    }

    lease_type acquire_impl(route r, std::chrono::milliseconds timeout, error_info& err, std::source_location loc) {
        using clock = std::chrono::steady_clock;
        const auto deadline = clock::now() + timeout;
        if (closed_.load()) {
            err.code = make_error_code(cluster_errc::cluster_closed);
            err.message = "cluster closed";
            return {};
        }
        std::vector<bool> excluded(pools_.size(), false);
        std::string failures;  // hosts that failed this acquire, appended to a routing failure
        for (std::size_t attempt = 0; attempt <= pools_.size(); ++attempt) {
            detail::routing_choice c;
            host_role role;
            {
                std::lock_guard lk(mu_);
                c = choose_locked(r, excluded, static_cast<bool>(check_));
                role = c.host ? status_[*c.host].role : host_role::unknown;
            }
            if (!c.host) {
                err.code = c.code;
                err.message = c.message + failures;
                return {};
            }
            const std::size_t i = *c.host;
            const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now());
            error_info e;
            pool_lease_type l;
            if (left.count() <= 0) {
                e.code = make_error_code(errc::acquire_timeout);
                e.message = "acquire timed out";
            } else {
                try {
                    l = pools_[i]->acquire_for(left, loc);
                } catch (const error& ex) {
                    e = ex.info();
                }
            }
            if (l && c.verify) {
                // read_fresh on a standby the probes saw behind: ask the connection itself.
                const auto check_left = std::chrono::ceil<std::chrono::milliseconds>(deadline - clock::now());
                const auto pos = check_left.count() > 0 ? check_(*l, check_left) : std::nullopt;
                if (pos && *pos >= r.token.position) {
                    note_position(i, *pos);
                    return lease_type(std::move(l), tags_[i], role);
                }
                // No answer may be a result cut off by the deadline, which leaves the connection
                // unusable, and a factory need not be able to tell: close it.
                if (pos) l.release();
                else l.discard();
                excluded[i] = true;
                continue;
            }
            if (l) return lease_type(std::move(l), tags_[i], role);
            const std::string who = detail::host_label(role, tags_[i]->name);
            if (!is_connect_failure(e.code) || r.kind == intent_kind::write) {
                // Another host cannot serve a write, and an exhausted pool is not the host's fault.
                if (is_connect_failure(e.code)) wake(i);
                err.code = e.code;
                err.message = who + ": " + e.what() + failures;
                return {};
            }
            wake(i);
            excluded[i] = true;
            failures += "; " + who + " failed: " + e.what();
        }
        err.code = make_error_code(cluster_errc::no_host);
        err.message = "no host for a read" + failures;
        return {};
    }

    template <class Token>
    auto initiate(route r, error_info* diag, Token&& token) {
        return asio::async_initiate<Token, void(error_code, lease_type)>(
            [this, r, diag](auto handler) {
                auto ex = asio::get_associated_executor(handler, default_executor());
                detail::routing_choice c;
                host_role role = host_role::unknown;
                if (closed_.load()) {
                    c.code = make_error_code(cluster_errc::cluster_closed);
                    c.message = "cluster closed";
                } else {
                    std::lock_guard lk(mu_);
                    c = choose_locked(r, std::vector<bool>(pools_.size(), false), false);
                    if (c.host) role = status_[*c.host].role;
                }
                if (!c.host) {
                    if (diag) *diag = error_info{c.code, c.message};
                    asio::post(ex, [h = std::move(handler), code = c.code]() mutable { std::move(h)(code, lease_type{}); });
                    return;
                }
                auto info = std::make_shared<error_info>();
                auto slot = asio::get_associated_cancellation_slot(handler);
                auto tag = tags_[*c.host];
                pools_[*c.host]->async_acquire(
                    *info, asio::bind_cancellation_slot(
                               slot, asio::bind_executor(ex, [h = std::move(handler), info, tag, role, diag](
                                                                 error_code ec, pool_lease_type l) mutable {
                                   if (ec && diag) {
                                       *diag = error_info{ec, detail::host_label(role, tag->name) + ": " + info->what()};
                                   }
                                   std::move(h)(ec, lease_type(std::move(l), std::move(tag), role));
                               })));
            },
            token);
    }

    executor_type default_executor() const { return ex_ ? *ex_ : pools_.front()->get_executor(); }

    void wake(std::size_t i) {
        std::lock_guard lk(mu_);
        wake_[i] = true;
        cv_.notify_all();
    }

    // A fresh read saw a standby further than its last probe: routing may use that at once.
    void note_position(std::size_t i, std::uint64_t pos) {
        std::lock_guard lk(mu_);
        if (status_[i].role == host_role::standby && pos > status_[i].position) status_[i].position = pos;
    }

    // Host i's prober: probe, fold the result in, act on a role change, sleep until the
    // next interval or a wake-up.
    void prober(std::size_t i) {
        for (;;) {
            {
                std::lock_guard lk(mu_);
                if (stopping_) return;
                in_flight_[i] = true;
                wake_[i] = false;
            }
            probe_result p;
            const auto t0 = std::chrono::steady_clock::now();
            try {
                p = probes_[i](copts_.probe_timeout);
            } catch (const std::exception& ex) {
                p = probe_result{};
                p.error = std::string("probe threw: ") + ex.what();
            } catch (...) {
                p = probe_result{};
                p.error = "probe threw";
            }
            const auto rtt = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0);
            bool retire = false;
            {
                std::unique_lock lk(mu_);
                const host_role before = status_[i].role;
                std::optional<std::uint64_t> primary_position;
                for (std::size_t j = 0; j < status_.size(); ++j) {
                    if (j != i && status_[j].role == host_role::primary) primary_position = status_[j].position;
                }
                const auto now = std::chrono::steady_clock::now();
                std::optional<std::chrono::milliseconds> behind_for;
                if (p.role == host_role::primary) {
                    history_.note(i, p.position, now);
                } else if (p.role == host_role::standby && primary_position) {
                    behind_for = history_.behind_for(p.position, now);
                }
                detail::apply_probe(status_[i], p, rtt, primary_position, copts_, behind_for);
                in_flight_[i] = false;
                // A demoted or lost primary's connections must not serve writes again, and a
                // lost host's connections are dead: replace them all.
                retire = before != status_[i].role && (before == host_role::primary || status_[i].role == host_role::down);
                cv_.notify_all();
            }
            if (retire) pools_[i]->retire_all();
            std::unique_lock lk(mu_);
            cv_.wait_for(lk, copts_.refresh_interval, [&] { return stopping_ || wake_[i]; });
            if (stopping_) return;
        }
    }

    void stop_probers() {
        {
            std::lock_guard lk(mu_);
            stopping_ = true;
            cv_.notify_all();
        }
        for (auto& t : probers_) {
            if (t.joinable()) t.join();
        }
    }

    cluster_options copts_;
    options pool_opts_;
    position_check check_;
    std::optional<executor_type> ex_;
    std::vector<std::unique_ptr<pool_type>> pools_;
    std::vector<std::shared_ptr<detail::host_tag>> tags_;
    std::vector<std::function<probe_result(std::chrono::milliseconds)>> probes_;
    std::atomic<bool> closed_{false};

    mutable std::mutex mu_;
    std::condition_variable cv_;
    // Guarded by mu_.
    std::vector<host_status> status_;
    std::vector<bool> wake_;
    std::vector<bool> in_flight_;
    detail::primary_history history_;
    bool stopping_ = false;

    // Last: started after everything they read, joined in the destructor before it goes.
    std::vector<std::thread> probers_;
};

}  // namespace connpool

#endif  // CONNPOOL_CLUSTER_HPP
