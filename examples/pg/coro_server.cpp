// An Asio coroutine server: many concurrent requests, one io thread, a pool of 4 connections.
//
// The server answers each line "N" with the result of a query for N. The program also runs 200
// client coroutines against itself (10 requests each), checks every answer, and exits.
//
//   CONNPOOL_PG_CONNINFO="..." ./example_pg_coro_server
#include <connpool/pg.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/streambuf.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <cstdlib>
#include <iostream>
#include <istream>
#include <string>

namespace asio = boost::asio;
namespace pg = connpool::pg;
using asio::ip::tcp;

// One client connection: a line in, a query, a line out.
asio::awaitable<void> serve(tcp::socket socket, pg::pool& pool) {
    auto ex = co_await asio::this_coro::executor;
    asio::streambuf buf;
    try {
        for (;;) {
            co_await asio::async_read_until(socket, buf, '\n', asio::use_awaitable);
            std::istream in(&buf);
            std::string line;
            std::getline(in, line);

            std::string reply;
            {
                // Waits without blocking the thread while all 4 connections are busy.
                auto conn = co_await pool.async_acquire(asio::use_awaitable);
                pg::params args{line};
                // async_exec waits on libpq's socket with Asio: other coroutines run meanwhile.
                auto r = co_await pg::async_exec(ex, *conn, std::string("SELECT $1::int * 2"), std::move(args),
                                                 asio::use_awaitable);
                reply = pg::result_ok(r.get()) ? PQgetvalue(r.get(), 0, 0) : "error";
            }  // the connection goes back to the pool here, before the reply is written
            reply += '\n';
            co_await asio::async_write(socket, asio::buffer(reply), asio::use_awaitable);
        }
    } catch (const std::exception&) {
        // The client closed the connection (or the pool failed): end this session.
    }
}

asio::awaitable<void> listen(tcp::acceptor& acceptor, pg::pool& pool) {
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) co_return;  // the acceptor was closed: stop accepting
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), pool), asio::detached);
    }
}

asio::awaitable<bool> client(tcp::endpoint server, int id) {
    tcp::socket s(co_await asio::this_coro::executor);
    co_await s.async_connect(server, asio::use_awaitable);
    asio::streambuf buf;
    bool all_right = true;
    for (int i = 0; i < 10; ++i) {
        const int n = id * 100 + i;
        std::string request = std::to_string(n) + "\n";
        co_await asio::async_write(s, asio::buffer(request), asio::use_awaitable);
        co_await asio::async_read_until(s, buf, '\n', asio::use_awaitable);
        std::istream in(&buf);
        std::string line;
        std::getline(in, line);
        all_right = all_right && line == std::to_string(2 * n);
    }
    co_return all_right;
}

int main() {
    const char* conninfo = std::getenv("CONNPOOL_PG_CONNINFO");
    if (conninfo == nullptr) {
        std::cerr << "set CONNPOOL_PG_CONNINFO to a libpq conninfo string\n";
        return 2;
    }
    connpool::options opts;
    opts.max_size = 4;
    opts.min_idle = 4;
    // The pool's own thread opens and checks connections; the handlers run on io.
    pg::pool pool(pg::factory(conninfo), opts);

    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0));
    const auto endpoint = acceptor.local_endpoint();
    asio::co_spawn(io, listen(acceptor, pool), asio::detached);

    constexpr int clients = 200;
    int finished = 0, good = 0;
    for (int c = 0; c < clients; ++c) {
        asio::co_spawn(io, client(endpoint, c), [&](std::exception_ptr e, bool ok) {
            if (!e && ok) ++good;
            if (++finished == clients) acceptor.close();  // lets io.run() return once sessions end
        });
    }
    io.run();

    const auto s = pool.stats();
    std::cout << good << "/" << clients << " clients got every answer right; " << s.acquired << " requests over "
              << s.created << " connections (max " << opts.max_size << "), " << s.waited << " waited for one\n";
    return good == clients ? 0 : 1;
}
