// connpool::mysql internals: the non-blocking connect driven by Asio (async_connect_op), and
// the threads that run the connects the non-blocking API cannot do (blocking_runner).
#ifndef CONNPOOL_MYSQL_DETAIL_ASYNC_CONNECT_HPP
#define CONNPOOL_MYSQL_DETAIL_ASYNC_CONNECT_HPP

#include <connpool/error.hpp>
#include <connpool/factory.hpp>
#include <connpool/mysql/connection.hpp>
#include <connpool/mysql/detail/configure.hpp>
#include <connpool/mysql/detail/library.hpp>
#include <connpool/mysql/options.hpp>

#include <mysql.h>

#if CONNPOOL_MYSQL_NONBLOCKING
#include <boost/asio/append.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/thread_pool.hpp>
#endif

#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>

namespace connpool::mysql::detail {

#if CONNPOOL_MYSQL_NONBLOCKING

// One non-blocking connect driven by Asio: waits on the library's socket with a fresh,
// non-owning stream_descriptor per wait (the library may close the socket and open another,
// e.g. when trying the next address), on a timer when the library asks for one, and on a
// deadline for the whole connect. Every handler runs on one strand.
class async_connect_op : public std::enable_shared_from_this<async_connect_op> {
public:
    async_connect_op(asio::any_io_executor ex, connect_options options, connect_request request,
                     connect_handler<connection> handler)
        : strand_(asio::make_strand(ex)),
          options_(std::move(options)),
          request_(request),
          handler_(std::move(handler)),
          deadline_(strand_),
          library_timer_(strand_) {}

    ~async_connect_op() {
        release_descriptor();
        if (handle_ != nullptr) mysql_close(handle_);
    }

    // Never completes inline: the work starts on the strand.
    void start() { asio::post(strand_, [self = shared_from_this()] { self->begin(); }); }

private:
    void begin() {
        handle_ = mysql_init(nullptr);
        if (handle_ == nullptr) {
            return complete({make_error_code(errc::connect_failed), "connect failed: out of memory"}, std::nullopt);
        }
        error_info err;
        if (!configure(handle_, options_, request_.timeout, err)) return complete(std::move(err), std::nullopt);

        const bool socket = !options_.unix_socket.empty();
        const int status = mysql_real_connect_start(
            &result_, handle_, socket ? "localhost" : options_.host.c_str(), c_str_or_null(options_.user),
            options_.password.c_str(), c_str_or_null(options_.database), socket ? 0 : options_.port,
            socket ? options_.unix_socket.c_str() : nullptr, client_flags());
        if (status == 0) return finish();
        if (request_.timeout.count() > 0) {
            deadline_.expires_after(request_.timeout);
            deadline_.async_wait([self = shared_from_this()](error_code ec) { self->on_deadline(ec); });
        }
        wait_for(status);
    }

    void wait_for(int status) {
        const unsigned round = ++round_;
        const int fd = static_cast<int>(mysql_get_socket(handle_));
        if ((status & (MYSQL_WAIT_READ | MYSQL_WAIT_WRITE | MYSQL_WAIT_EXCEPT)) != 0 && fd >= 0) {
            descriptor_.emplace(strand_, fd);
            using d = asio::posix::stream_descriptor;
            if (status & MYSQL_WAIT_READ) {
                descriptor_->async_wait(d::wait_read, [self = shared_from_this(), round](error_code ec) {
                    self->on_event(round, MYSQL_WAIT_READ, ec);
                });
            }
            if (status & MYSQL_WAIT_WRITE) {
                descriptor_->async_wait(d::wait_write, [self = shared_from_this(), round](error_code ec) {
                    self->on_event(round, MYSQL_WAIT_WRITE, ec);
                });
            }
            if (status & MYSQL_WAIT_EXCEPT) {
                descriptor_->async_wait(d::wait_error, [self = shared_from_this(), round](error_code ec) {
                    self->on_event(round, MYSQL_WAIT_EXCEPT, ec);
                });
            }
        }
        if (status & MYSQL_WAIT_TIMEOUT) {
            library_timer_.expires_after(std::chrono::milliseconds(mysql_get_timeout_value_ms(handle_)));
            library_timer_.async_wait([self = shared_from_this(), round](error_code ec) {
                self->on_event(round, MYSQL_WAIT_TIMEOUT, ec);
            });
        } else if (!descriptor_) {
            // No socket to watch (the library lost it): let the library find out now rather
            // than wait for the deadline.
            asio::post(strand_, [self = shared_from_this(), round, status] {
                self->on_event(round, status & ~MYSQL_WAIT_TIMEOUT, {});
            });
        }
    }

    // The first event of a round wins; the others of that round are stale and ignored.
    void on_event(unsigned round, int what, error_code ec) {
        if (done_ || round != round_ || ec == asio::error::operation_aborted) return;
        ++round_;
        library_timer_.cancel();
        // Give the fd back before the library touches it: it may close it inside _cont.
        release_descriptor();
        const int status = mysql_real_connect_cont(&result_, handle_, what);
        if (status == 0) return finish();
        wait_for(status);
    }

    void on_deadline(error_code ec) {
        if (ec || done_) return;
        ++round_;
        library_timer_.cancel();
        release_descriptor();
        error_info err{make_error_code(errc::connect_timeout),
                       "connect timed out after " + std::to_string(request_.timeout.count()) + " ms (" +
                           target(options_) + ")"};
        // The handshake is abandoned half way; make the close fail fast instead of writing.
        mariadb_cancel(handle_);
        mysql_close(handle_);
        handle_ = nullptr;
        complete(std::move(err), std::nullopt);
    }

    void finish() {
        if (result_ == nullptr) {
            error_info err = connect_error(handle_, options_, false);
            mysql_close(handle_);
            handle_ = nullptr;
            return complete(std::move(err), std::nullopt);
        }
        connection c(std::exchange(handle_, nullptr));
        c.init_commands_ = std::move(options_.init_commands);
        c.database_ = options_.database;
        c.reset_timeout_ = options_.reset_timeout;
        c.statements_.capacity = options_.statement_cache_capacity;
        complete({}, std::optional<connection>(std::move(c)));
    }

    void complete(error_info err, std::optional<connection> c) {
        done_ = true;
        deadline_.cancel();
        library_timer_.cancel();
        release_descriptor();
        // Post, so that the handler never runs inside this frame; it runs on its associated
        // executor (the pool's), or on ours.
        asio::post(strand_, asio::append(std::move(handler_), std::move(err), std::move(c)));
    }

    void release_descriptor() noexcept {
        if (descriptor_) {
            // Non-owning: the library owns the socket. release() deregisters it from the
            // reactor and cancels the pending waits without closing the fd.
            (void)descriptor_->release();
            descriptor_.reset();
        }
    }

    asio::any_io_executor strand_;
    connect_options options_;  // outlives the connect: the library keeps pointers into it
    connect_request request_;
    connect_handler<connection> handler_;
    asio::steady_timer deadline_;
    asio::steady_timer library_timer_;
    std::optional<asio::posix::stream_descriptor> descriptor_;
    MYSQL* handle_ = nullptr;
    MYSQL* result_ = nullptr;
    unsigned round_ = 0;
    bool done_ = false;
};

// Runs blocking connects off the caller's executor, for the connects the non-blocking API
// cannot do (TLS, see factory::async_connect). Two threads, started on first use, so that a
// factory that never connects with TLS never starts them. Shared by copies of a factory; the
// last copy joins them (after any connect in flight, at most connect_timeout).
class blocking_runner {
public:
    template <class Work>
    void post(Work&& work) {
        std::call_once(started_, [this] { threads_.emplace(2); });
        asio::post(*threads_, std::forward<Work>(work));
    }

private:
    std::once_flag started_;
    std::optional<asio::thread_pool> threads_;
};

#endif  // CONNPOOL_MYSQL_NONBLOCKING

}  // namespace connpool::mysql::detail

#endif  // CONNPOOL_MYSQL_DETAIL_ASYNC_CONNECT_HPP
