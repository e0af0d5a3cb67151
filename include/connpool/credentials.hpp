// connpool: passwords that expire (cloud IAM tokens and the like), fetched by a provider and
// cached by a credential_cache that both adapters' factories can use. Adapter-neutral.
#ifndef CONNPOOL_CREDENTIALS_HPP
#define CONNPOOL_CREDENTIALS_HPP

#include <connpool/error.hpp>

#include <boost/asio/any_completion_handler.hpp>
#include <boost/asio/append.hpp>
#include <boost/asio/execution/outstanding_work.hpp>
#include <boost/asio/prefer.hpp>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>

#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace connpool {

namespace asio = boost::asio;

// A secret and the moment it stops working. Never put into a message, log or statistic.
struct credential {
    // The secret itself.
    std::string password;
    // Wall-clock expiry, as token services state it; max() = never expires.
    std::chrono::system_clock::time_point expires_at = std::chrono::system_clock::time_point::max();
};

// What an asynchronous provider calls when it is done: an error (empty on success) and the
// credential.
using credential_handler = asio::any_completion_handler<void(error_info, credential)>;

// A provider is either
//   - synchronous: credential operator()(), which may throw (the message of what() becomes
//     the connect error), or
//   - asynchronous: void operator()(credential_handler), which calls the handler exactly
//     once, from any thread.
// It is called only when the cached credential is missing or within refresh_margin of
// expiring, and never twice at once: concurrent connects wait for the one refresh.
template <class P>
concept sync_credential_provider = std::invocable<P&> && std::convertible_to<std::invoke_result_t<P&>, credential>;

template <class P>
concept async_credential_provider = std::invocable<P&, credential_handler>;

template <class P>
concept credential_provider = sync_credential_provider<P> || async_credential_provider<P>;

// How a credential_cache refreshes and what it does on rotation.
struct credential_options {
    // Refresh when the cached credential expires within this margin: long enough for a
    // connect to finish with it.
    std::chrono::milliseconds refresh_margin = std::chrono::seconds(60);
    // Ask the factory to report connections opened with an older credential as broken, so
    // that the pool replaces them on their next return (is_broken is checked there).
    bool retire_on_rotation = false;
};

// Caches one provider's credential; thread-safe. Create it with std::make_shared (an
// asynchronous provider's completion keeps it alive) and hand it to a factory; copies of the
// factory share it.
class credential_cache : public std::enable_shared_from_this<credential_cache> {
public:
    // The credential and the generation it belongs to (1 for the first one fetched, +1 on
    // every refresh that changed the password).
    using ready_handler = asio::any_completion_handler<void(error_info, credential, std::uint64_t)>;

    // A cache over provider, synchronous or asynchronous (see credential_provider).
    // Throws std::invalid_argument naming the field when an option is out of range.
    template <credential_provider P>
    explicit credential_cache(P provider, credential_options o = {}) : options_(o) {
        if (options_.refresh_margin.count() < 0) {
            throw std::invalid_argument("connpool::credential_options::refresh_margin: must not be negative");
        }
        if constexpr (async_credential_provider<P>) {
            fetch_ = [p = std::move(provider)](credential_handler h) mutable { p(std::move(h)); };
        } else {
            fetch_ = [p = std::move(provider)](credential_handler h) mutable {
                error_info err;
                credential c;
                try {
                    c = p();
                } catch (const std::exception& e) {
                    err = {make_error_code(errc::connect_failed), std::string("credential refresh failed: ") + e.what()};
                }
                std::move(h)(std::move(err), std::move(c));
            };
        }
    }

    credential_cache(const credential_cache&) = delete;
    credential_cache& operator=(const credential_cache&) = delete;

    // The options, as given to the constructor.
    const credential_options& options() const noexcept { return options_; }

    // Blocking: the current credential, refreshed first when needed. False (err filled,
    // errc::connect_failed) when the refresh failed.
    bool get(credential& out, std::uint64_t& generation, error_info& err) {
        std::unique_lock lock(mutex_);
        if (!fresh_locked()) {
            const std::uint64_t attempt = attempts_;
            if (!refreshing_) start_refresh_locked(lock);
            // Wait for the refresh in flight, or for the one we started, to finish.
            done_.wait(lock, [&] { return attempts_ != attempt && !refreshing_; });
            if (last_error_) {
                err = last_error_;
                return false;
            }
        }
        out = current_;
        generation = generation_;
        return true;
    }

    // Asynchronous: handler(error, credential, generation), posted to its associated
    // executor (ex when it has none); never called inside this call.
    void async_get(asio::any_io_executor ex, ready_handler handler) {
        std::unique_lock lock(mutex_);
        if (fresh_locked()) {
            credential c = current_;
            const auto g = generation_;
            lock.unlock();
            post_to(ex, std::move(handler), {}, std::move(c), g);
            return;
        }
        // Counted as outstanding work, so that ex's run() waits for the refresh to finish.
        waiters_.push_back({asio::prefer(ex, asio::execution::outstanding_work.tracked), std::move(handler)});
        if (!refreshing_) start_refresh_locked(lock);
    }

    // Says that the credential of `generation` was refused (the server's password was
    // rotated before the credential's stated expiry): the next get() refreshes it.
    void invalidate(std::uint64_t generation) {
        std::lock_guard lock(mutex_);
        if (generation == generation_) stale_ = true;
    }

    // The generation of the newest credential (0 before the first fetch).
    std::uint64_t generation() const {
        std::lock_guard lock(mutex_);
        return generation_;
    }

    // How many times the provider was called.
    std::uint64_t refreshes() const {
        std::lock_guard lock(mutex_);
        return attempts_;
    }

private:
    struct waiter {
        asio::any_io_executor ex;  // tracks outstanding work until the handler is posted
        ready_handler handler;
    };

    static void post_to(const asio::any_io_executor& ex, ready_handler h, error_info e, credential c,
                        std::uint64_t g) {
        // post on ex, then the handler runs on its associated executor (Asio's post semantics).
        asio::post(ex, asio::append(std::move(h), std::move(e), std::move(c), g));
    }

    bool fresh_locked() const {
        if (generation_ == 0 || stale_) return false;
        if (current_.expires_at == std::chrono::system_clock::time_point::max()) return true;
        return std::chrono::system_clock::now() + options_.refresh_margin < current_.expires_at;
    }

    // Called with the lock held; the provider runs without it (a synchronous one finishes
    // before this returns, an asynchronous one whenever it likes).
    void start_refresh_locked(std::unique_lock<std::mutex>& lock) {
        refreshing_ = true;
        lock.unlock();
        fetch_([self = shared_from_this()](error_info e, credential c) { self->finish(std::move(e), std::move(c)); });
        lock.lock();
    }

    void finish(error_info e, credential c) {
        std::vector<waiter> waiters;
        std::uint64_t g = 0;
        credential copy;
        {
            std::lock_guard lock(mutex_);
            ++attempts_;
            refreshing_ = false;
            last_error_ = e;
            if (!e) {
                stale_ = false;
                if (generation_ == 0 || c.password != current_.password) ++generation_;
                current_ = std::move(c);
            }
            waiters.swap(waiters_);
            g = generation_;
            copy = current_;
        }
        done_.notify_all();
        for (auto& w : waiters) post_to(w.ex, std::move(w.handler), e, e ? credential{} : copy, g);
    }

    credential_options options_;
    std::function<void(credential_handler)> fetch_;
    mutable std::mutex mutex_;
    std::condition_variable done_;
    credential current_;
    std::uint64_t generation_ = 0;
    std::uint64_t attempts_ = 0;
    bool refreshing_ = false;
    bool stale_ = false;
    error_info last_error_;
    std::vector<waiter> waiters_;
};

}  // namespace connpool

#endif  // CONNPOOL_CREDENTIALS_HPP
