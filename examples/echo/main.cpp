// connpool example: a pool of TCP connections that is not about databases.
//
// The program starts an echo server on 127.0.0.1 (a free port) in a thread of its own.
// Several worker threads share a small pool of connections to it: each acquires a
// connection, sends a line, reads the echo and gives the connection back. At the end it
// prints what the pool did, and exits 0 only if every echo came back intact.

#include <connpool.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
using asio::ip::tcp;

// --- the server: echoes every line back, one coroutine per client -------------------------

class echo_server {
public:
    echo_server() : acceptor_(io_, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {
        asio::co_spawn(io_, accept_loop(), asio::detached);
        thread_ = std::thread([this] { io_.run(); });
    }

    // Stopping the io_context destroys the sessions still suspended, closing their sockets.
    ~echo_server() {
        io_.stop();
        thread_.join();
    }

    tcp::endpoint endpoint() const { return acceptor_.local_endpoint(); }

private:
    asio::awaitable<void> accept_loop() {
        for (;;) {
            tcp::socket client = co_await acceptor_.async_accept(asio::use_awaitable);
            asio::co_spawn(io_, session(std::move(client)), asio::detached);
        }
    }

    static asio::awaitable<void> session(tcp::socket client) {
        std::string buffer;
        try {
            for (;;) {
                std::size_t n = co_await asio::async_read_until(client, asio::dynamic_buffer(buffer), '\n',
                                                                asio::use_awaitable);
                co_await asio::async_write(client, asio::buffer(buffer, n), asio::use_awaitable);
                buffer.erase(0, n);
            }
        } catch (const boost::system::system_error&) {
            // The client closed its connection: the session ends.
        }
    }

    asio::io_context io_;
    tcp::acceptor acceptor_;
    std::thread thread_;
};

// --- the pooled connection and its factory --------------------------------------------------

struct echo_connection {
    // The socket's io_context, kept alive by every connection (declared first, so it is
    // destroyed last) because the pool may close a connection after the factory is gone.
    std::shared_ptr<asio::io_context> io;
    tcp::socket socket;
    std::string pending;  // bytes read past the last newline
    bool broken = false;  // set after an I/O error: the pool closes it instead of reusing it

    // One request/response round trip; false on an I/O error or a wrong echo.
    bool round_trip(const std::string& line) {
        boost::system::error_code ec;
        asio::write(socket, asio::buffer(line), ec);
        std::size_t n = ec ? 0 : asio::read_until(socket, asio::dynamic_buffer(pending), '\n', ec);
        if (ec) {
            broken = true;
            return false;
        }
        bool same = pending.compare(0, n, line) == 0;
        pending.erase(0, n);
        return same;
    }
};

class echo_factory {
public:
    using connection_type = echo_connection;

    explicit echo_factory(tcp::endpoint server) : server_(server) {}

    // Required. Blocking: the pool calls it on its own worker threads. A loopback connect
    // succeeds or is refused at once; a factory for a remote host must honour
    // request.timeout (for example with async_connect and a timer).
    std::optional<echo_connection> connect(const connpool::connect_request& request, connpool::error_info& error) {
        (void)request;
        tcp::socket socket(*io_);
        boost::system::error_code ec;
        socket.connect(server_, ec);
        if (!ec) socket.set_option(tcp::no_delay(true), ec);
        if (ec) {
            error.code = connpool::errc::connect_failed;
            error.message = "echo server " + server_.address().to_string() + ":" + std::to_string(server_.port()) +
                            ": " + ec.message();
            return std::nullopt;
        }
        ++*opened_;
        return echo_connection{io_, std::move(socket), {}, false};
    }

    // Optional: the validation ping for a connection that sat idle (options::validation).
    bool ping(echo_connection& c, std::chrono::milliseconds, connpool::error_info& error) {
        if (c.round_trip("ping\n")) return true;
        error.code = connpool::errc::ping_failed;
        error.message = "echo server did not answer the ping";
        return false;
    }

    // Optional: seen on return, without I/O.
    bool is_broken(const echo_connection& c) const { return c.broken || !c.socket.is_open(); }

    int opened() const { return opened_->load(); }

private:
    tcp::endpoint server_;
    // Blocking socket calls need an io_context to belong to, but never run it. Shared, so
    // that the factory stays movable.
    std::shared_ptr<asio::io_context> io_ = std::make_shared<asio::io_context>();
    std::shared_ptr<std::atomic<int>> opened_ = std::make_shared<std::atomic<int>>(0);
};

// --- the program ----------------------------------------------------------------------------

int main() {
    constexpr int workers = 6;
    constexpr int requests_per_worker = 50;

    echo_server server;  // declared first: it outlives the pool and its connections

    connpool::options options;
    options.max_size = 3;  // fewer connections than workers: they take turns
    options.acquire_timeout = std::chrono::seconds(10);
    connpool::pool<echo_factory> pool(echo_factory(server.endpoint()), options);

    std::atomic<int> echoed{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> threads;
    for (int w = 0; w < workers; ++w) {
        threads.emplace_back([&, w] {
            for (int i = 0; i < requests_per_worker; ++i) {
                connpool::error_code ec;
                connpool::error_info diag;
                auto conn = pool.acquire(ec, diag);
                if (ec) {
                    std::fprintf(stderr, "worker %d: acquire failed: %s\n", w, diag.what().c_str());
                    ++failed;
                    continue;
                }
                std::string line = "worker " + std::to_string(w) + " request " + std::to_string(i) + "\n";
                if (conn->round_trip(line)) {
                    ++echoed;
                } else {
                    ++failed;  // is_broken() now says so: the pool closes it on return
                }
            }  // the lease goes out of scope: the connection goes back to the pool
        });
    }
    for (auto& t : threads) t.join();

    connpool::pool_stats stats = pool.stats();
    std::printf("requests:            %d\n", workers * requests_per_worker);
    std::printf("echoed intact:       %d\n", echoed.load());
    std::printf("failed:              %d\n", failed.load());
    std::printf("connections opened:  %d (max_size %zu)\n", pool.factory().opened(), options.max_size);
    std::printf("leases handed out:   %llu, of which waited: %llu\n",
                static_cast<unsigned long long>(stats.acquired), static_cast<unsigned long long>(stats.waited));

    return failed.load() == 0 && echoed.load() == workers * requests_per_worker ? 0 : 1;
}
