// connpool::pg::async_exec and async_exec_cached: run a query on a pooled connection without
// blocking the Asio thread.
#ifndef CONNPOOL_PG_ASYNC_HPP
#define CONNPOOL_PG_ASYNC_HPP

#include <connpool/error.hpp>
#include <connpool/pg/connection.hpp>
#include <connpool/pg/detail/statement_cache.hpp>
#include <connpool/pg/error.hpp>

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


// async_exec_cached's steps, each one command sent and read to the end on libpq's socket:
// DEALLOCATE what the LRU evicted (outside a transaction block only), then either the unnamed
// statement (below prepare_after), or Parse under a new name, then Bind/Execute of the named
// statement; a statement the server lost (26000) outside a transaction block is prepared again
// and run once more, as exec_cached does.
template <class Executor>
struct async_exec_cached_op {
    Executor ex;
    connection* conn;
    std::string sql;
    params args;
    std::unique_ptr<asio::posix::basic_stream_descriptor<Executor>> socket;
    result kept;
    std::string name;  // the name being prepared
    bool retried = false;
    error_code early;  // why the op completes without I/O
    enum class step { start, complete_early, deallocate, unnamed, prepare, exec } st = step::start;

    async_exec_cached_op(Executor e, connection* c, std::string s, params a)
        : ex(std::move(e)), conn(c), sql(std::move(s)), args(std::move(a)) {}

    // Pointers into args, made right before each send: the op moves between steps, and a moved
    // short string's characters move with it.
    std::vector<const char*> values() const {
        std::vector<const char*> v;
        v.reserve(args.size());
        for (const auto& a : args) v.push_back(a ? a->c_str() : nullptr);
        return v;
    }

    template <class Self>
    void operator()(Self& self, error_code ec = {}) {
        if (st == step::start) return start(self);
        if (st == step::complete_early) return done(self, early);
        release();
        if (ec) {
            conn->mark_broken();  // the protocol state is unknown after an aborted read
            return done(self, ec);
        }
        PGconn* c = conn->native_handle();
        if (PQconsumeInput(c) != 1) {
            conn->report(nullptr);
            return done(self, {});
        }
        while (PQisBusy(c) == 0) {
            result r(PQgetResult(c));
            if (!r) return step_done(self);
            conn->report(r.get());
            if (!kept || result_ok(kept.get())) kept = std::move(r);
        }
        wait(self);
    }

    template <class Self>
    void start(Self& self) {
        error_info err;
        if (!conn->cache_usable(err)) return complete_soon(self, err.code);
        if (conn->native_handle() == nullptr) {
            conn->report(nullptr);
            return complete_soon(self, {});
        }
        const std::string dealloc = conn->take_deallocations();
        if (!dealloc.empty()) {
            st = step::deallocate;
            return sent(self, PQsendQuery(conn->native_handle(), dealloc.c_str()));
        }
        run(self);
    }

    // After any DEALLOCATE: find or add the entry and send what it needs next.
    template <class Self>
    void run(Self& self) {
        kept.reset();
        auto& cache = conn->statements_;
        statement_cache::entry* e = cache.find(sql);
        if (e == nullptr) e = &conn->insert_entry(sql);
        if (!e->name.empty()) {
            cache.count_hit();
            return execute(self, e->name);
        }
        if (++e->uses < cache.config().prepare_after) {
            st = step::unnamed;
            const auto v = values();
            return sent(self, PQsendQueryParams(conn->native_handle(), sql.c_str(), static_cast<int>(v.size()), nullptr,
                                                v.data(), nullptr, nullptr, 0));
        }
        prepare(self);
    }

    template <class Self>
    void prepare(Self& self) {
        st = step::prepare;
        name = conn->statements_.next_name();
        sent(self, PQsendPrepare(conn->native_handle(), name.c_str(), sql.c_str(), 0, nullptr));
    }

    template <class Self>
    void execute(Self& self, const std::string& statement) {
        st = step::exec;
        const auto v = values();
        sent(self, PQsendQueryPrepared(conn->native_handle(), statement.c_str(), static_cast<int>(v.size()), v.data(),
                                       nullptr, nullptr, 0));
    }

    // Every result of the current step has been read.
    template <class Self>
    void step_done(Self& self) {
        auto& cache = conn->statements_;
        switch (st) {
        case step::deallocate:
            return run(self);  // a failed DEALLOCATE means the statement is gone already
        case step::prepare:
            if (!result_ok(kept.get())) {
                cache.erase(sql);
                return done(self, {});
            }
            kept.reset();
            if (auto* e = cache.find(sql)) {
                cache.mark_prepared(*e, std::move(name));
                return execute(self, e->name);
            }
            return done(self, {});  // unreachable: nothing else uses c meanwhile
        case step::exec:
            if (result_ok(kept.get()) || sqlstate(kept.get()) != "26000" || retried) return done(self, {});
            // Lost behind the cache's back; outside a transaction block the call changed nothing.
            cache.erase(sql);
            if (PQtransactionStatus(conn->native_handle()) != PQTRANS_IDLE) return done(self, {});
            retried = true;
            kept.reset();
            conn->insert_entry(sql);
            return prepare(self);
        default:
            return done(self, {});
        }
    }

    template <class Self>
    void sent(Self& self, int ok) {
        if (ok != 1) {
            conn->report(nullptr);
            if (st == step::prepare) conn->statements_.erase(sql);
            kept.reset();
            return complete_soon(self, {});
        }
        wait(self);
    }

    // Never complete inside the initiating call: go through the executor first.
    template <class Self>
    void complete_soon(Self& self, error_code ec) {
        early = ec;
        st = step::complete_early;
        asio::post(ex, std::move(self));
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

// As async_exec, through c's statement cache (connection::exec_cached): sql runs as a named
// prepared statement of c, prepared on its factory_options::prepare_after-th use, with the same
// LRU bound, and the same rules for what keeps and what drops the statements.
//
// Completion signature: void(error_code, result). The error_code is set for an I/O failure of a
// wait (c is then marked broken), and when the cache is off: statement_errc::
// prepared_statements_unsupported under factory_options::transaction_pooling,
// statement_errc::statement_cache_disabled with a capacity of 0. A failed command completes with
// an empty error_code and its failed result, as async_exec does. Preconditions, executor and
// cancellation: as async_exec. It may take more than one round trip: a DEALLOCATE of evicted
// statements, then the prepare, on first use.
template <class Executor, class Token>
auto async_exec_cached(const Executor& ex, connection& c, std::string sql, params args, Token&& token) {
    return asio::async_compose<Token, void(error_code, result)>(
        detail::async_exec_cached_op<Executor>{ex, &c, std::move(sql), std::move(args)}, token, ex);
}

}  // namespace connpool::pg

#endif  // CONNPOOL_PG_ASYNC_HPP
