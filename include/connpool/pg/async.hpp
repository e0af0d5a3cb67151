// connpool::pg::async_exec: run a query on a pooled connection without blocking the Asio thread.
#ifndef CONNPOOL_PG_ASYNC_HPP
#define CONNPOOL_PG_ASYNC_HPP

#include <connpool/error.hpp>
#include <connpool/pg/connection.hpp>

#include <boost/asio/async_result.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace connpool::pg {

namespace asio = boost::asio;

// Text parameters for async_exec: std::nullopt is SQL NULL.
using params = std::vector<std::optional<std::string>>;

namespace detail {

// Sends the query, then waits on libpq's socket (non-owning: released before each step and before
// completing) until every result has arrived. Keeps the first failed result, else the last one.
template <class Executor>
struct async_exec_op {
    Executor ex;
    connection* conn;
    std::string sql;
    params args;
    std::unique_ptr<asio::posix::basic_stream_descriptor<Executor>> socket;
    result kept;
    enum class state { start, reading, failed_send } st = state::start;

    template <class Self>
    void operator()(Self& self, error_code ec = {}) {
        PGconn* c = conn->native_handle();
        if (st == state::start) {
            int sent = 0;
            if (c != nullptr) {
                if (args.empty()) {
                    sent = PQsendQuery(c, sql.c_str());
                } else {
                    std::vector<const char*> values;
                    values.reserve(args.size());
                    for (auto& a : args) values.push_back(a ? a->c_str() : nullptr);
                    sent = PQsendQueryParams(c, sql.c_str(), static_cast<int>(values.size()), nullptr, values.data(),
                                             nullptr, nullptr, 0);
                }
            }
            if (sent != 1) {
                conn->report(nullptr);
                // Never complete inside the initiating call: go through the executor first.
                st = state::failed_send;
                asio::post(ex, std::move(self));
                return;
            }
            st = state::reading;
            return wait(self);
        }
        if (st == state::failed_send) return done(self, {});
        release();
        if (ec) {
            conn->mark_broken();  // the protocol state is unknown after an aborted read
            return done(self, ec);
        }
        if (PQconsumeInput(c) != 1) {
            conn->report(nullptr);
            return done(self, {});
        }
        while (PQisBusy(c) == 0) {
            result r(PQgetResult(c));
            if (!r) return done(self, {});
            conn->report(r.get());
            if (!kept || result_ok(kept.get())) kept = std::move(r);
        }
        wait(self);
    }

    template <class Self>
    void wait(Self& self) {
        if (!socket) socket = std::make_unique<asio::posix::basic_stream_descriptor<Executor>>(ex);
        error_code ec;
        socket->assign(PQsocket(conn->native_handle()), ec);
        if (ec) {
            conn->mark_broken();
            return done(self, ec);
        }
        socket->async_wait(asio::posix::descriptor_base::wait_read, std::move(self));
    }

    void release() {
        if (socket && socket->is_open()) socket->release();  // the fd belongs to libpq
    }

    template <class Self>
    void done(Self& self, error_code ec) {
        release();
        socket.reset();
        self.complete(ec, std::move(kept));
    }
};

}  // namespace detail

// Runs sql (with text parameters $1.. when args is not empty) on c without blocking: the query is
// sent, then the calling coroutine or handler waits on libpq's socket with Asio.
//
// Completion signature: void(error_code, result). The error_code is set only for an I/O failure of
// the wait itself (the connection is then marked broken); a failed SQL command completes with an
// empty error_code and its failed result: check result_ok() and sqlstate(). A null result means the
// connection was lost (c.is_broken() is then true and the pool closes it on return).
//
// With g++ 12, build args before the co_await expression (pg::params p{...}; then std::move(p)): a
// braced list inside co_await trips a compiler bug ("array used as initializer").
//
// Preconditions: c is idle (no other command in progress) and stays alive until completion.
// Fatal errors are recorded on c exactly as the blocking helpers do. Sending is blocking, which is
// immediate for queries that fit the socket buffer. No per-operation cancellation.
template <class Executor, class Token>
auto async_exec(const Executor& ex, connection& c, std::string sql, params args, Token&& token) {
    return asio::async_compose<Token, void(error_code, result)>(
        detail::async_exec_op<Executor>{ex, &c, std::move(sql), std::move(args), nullptr, nullptr},
        token, ex);
}

template <class Executor, class Token>
auto async_exec(const Executor& ex, connection& c, std::string sql, Token&& token) {
    return async_exec(ex, c, std::move(sql), params{}, std::forward<Token>(token));
}

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_ASYNC_HPP
