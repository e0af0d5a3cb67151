// A small HTTP service (Boost.Beast, one io thread) over a connpool PostgreSQL pool that drains on
// SIGTERM, as a container orchestrator expects. docs/containers.md walks through it.
//
//   GET /health               200 "ok" while serving; 503 "draining" after SIGTERM (on a connection
//                             that was already open: new connections are refused by then)
//   GET /query?n=K&sleep_ms=M 200 "2K": SELECT $1::int * 2 after pg_sleep(M ms), through the pool
//                             and the connection's statement cache
//   GET /stats                client connections open, and the pool's open, in-use and waiting counts
//
// On SIGTERM (or SIGINT):
//   1. stop accepting: connections already in the listen backlog are taken, then the listening
//      socket closes, so new connections are refused and a readiness probe fails at once;
//   2. close idle keep-alive connections; requests already read run to the end and are answered
//      with "Connection: close";
//   3. when the last request is answered, drain the pool: every server connection is closed;
//   4. exit 0. If the drain deadline (--drain-deadline-ms, default 10000) passes first, the
//      remaining requests are cut off and the exit status is 1.
//
//   example_http_service --conninfo "host=... user=... dbname=..." [--port 8080] [--address 0.0.0.0]
//                        [--pool-size 4] [--drain-deadline-ms 10000] [--app-name connpool_http_service]
//
// The conninfo may also come from CONNPOOL_PG_CONNINFO. --port 0 picks a free port; the first line
// on stdout is "listening on ADDRESS:PORT". application_name is set to --app-name, so that
// pg_stat_activity shows which server connections are this service's.
#include <connpool/pg.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <list>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace pg = connpool::pg;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

struct service_options {
    std::string address = "0.0.0.0";
    unsigned short port = 8080;
    std::string conninfo;
    std::size_t pool_size = 4;
    std::chrono::milliseconds drain_deadline{10000};
    std::string app_name = "connpool_http_service";
};

// The value of key in a query string such as "n=3&sleep_ms=20" (nullopt when absent).
std::optional<std::string> query_param(std::string_view target, std::string_view key) {
    const auto q = target.find('?');
    if (q == std::string_view::npos) return std::nullopt;
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
        const auto amp = rest.find('&');
        const std::string_view pair = rest.substr(0, amp);
        const auto eq = pair.find('=');
        if (pair.substr(0, eq) == key) return std::string(eq == std::string_view::npos ? "" : pair.substr(eq + 1));
        rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    }
    return std::nullopt;
}

// A non-negative integer no larger than limit, or nullopt.
std::optional<long> bounded_number(const std::optional<std::string>& s, long limit) {
    if (!s || s->empty() || s->size() > 9) return std::nullopt;
    for (char ch : *s) {
        if (ch < '0' || ch > '9') return std::nullopt;
    }
    const long v = std::stol(*s);
    return v <= limit ? std::optional<long>(v) : std::nullopt;
}

class service {
public:
    service(asio::io_context& io, pg::pool& pool, const service_options& o)
        : io_(io), pool_(pool), options_(o), acceptor_(io), signals_(io, SIGTERM, SIGINT), deadline_(io) {
        const tcp::endpoint at(asio::ip::make_address(o.address), o.port);
        acceptor_.open(at.protocol());
        acceptor_.set_option(tcp::acceptor::reuse_address(true));
        acceptor_.bind(at);
        acceptor_.listen();
    }

    tcp::endpoint local_endpoint() const { return acceptor_.local_endpoint(); }

    void start() {
        asio::co_spawn(io_, accept_loop(), asio::detached);
        signals_.async_wait([this](boost::system::error_code ec, int) {
            if (!ec) begin_drain();
        });
    }

    // 0 when everything drained within the deadline, 1 otherwise.
    int exit_status() const noexcept { return status_; }

private:
    // A client connection the service knows of, so that the drain can close the idle ones.
    struct session_entry {
        beast::tcp_stream* stream = nullptr;
        beast::flat_buffer* buffer = nullptr;
        bool busy = false;  // a request was read and is not yet answered
    };

    asio::awaitable<void> accept_loop() {
        for (;;) {
            auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
            if (ec) co_return;  // closed by the drain
            spawn_session(std::move(socket));
        }
    }

    // A session counts from its accept, not from its coroutine's first step, so that the drain
    // never closes the pool under a request that is about to be read.
    void spawn_session(tcp::socket socket) {
        ++starting_;
        asio::co_spawn(io_, session(std::move(socket)), asio::detached);
    }

    asio::awaitable<void> session(tcp::socket socket) {
        beast::tcp_stream stream(std::move(socket));
        beast::flat_buffer buffer;
        auto me = sessions_.insert(sessions_.end(), session_entry{&stream, &buffer, false});
        --starting_;
        for (;;) {
            http::request<http::string_body> req;
            // A client that opens a connection and sends nothing must not hold the drain open:
            // once draining, a connection gets a second to send its request.
            stream.expires_after(draining_ ? std::chrono::seconds(1) : std::chrono::seconds(30));
            auto [ec, n] = co_await http::async_read(stream, buffer, req, asio::as_tuple(asio::use_awaitable));
            (void)n;
            if (ec) break;
            me->busy = true;
            http::response<http::string_body> res = co_await handle(req);
            // Once draining, every answer ends its connection: the client reconnects elsewhere.
            res.keep_alive(req.keep_alive() && !draining_);
            res.prepare_payload();
            stream.expires_after(std::chrono::seconds(30));
            auto [wec, wn] = co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
            (void)wn;
            me->busy = false;
            if (wec || !res.keep_alive()) break;
        }
        boost::system::error_code ignored;
        stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
        stream.socket().close(ignored);
        sessions_.erase(me);
        if (draining_) maybe_finish();
    }

    static http::response<http::string_body> reply(const http::request<http::string_body>& req, http::status s,
                                                   std::string body) {
        http::response<http::string_body> res(s, req.version());
        res.set(http::field::content_type, "text/plain");
        res.body() = std::move(body);
        return res;
    }

    asio::awaitable<http::response<http::string_body>> handle(const http::request<http::string_body>& req) {
        const std::string_view target(req.target().data(), req.target().size());
        const std::string_view path = target.substr(0, target.find('?'));
        if (req.method() != http::verb::get) co_return reply(req, http::status::method_not_allowed, "GET only\n");
        if (path == "/health") {
            if (draining_) co_return reply(req, http::status::service_unavailable, "draining\n");
            co_return reply(req, http::status::ok, "ok\n");
        }
        if (path == "/stats") {
            const auto s = pool_.stats();
            co_return reply(req, http::status::ok,
                            "connections=" + std::to_string(sessions_.size()) + " pool_open=" + std::to_string(s.open) +
                                " pool_in_use=" + std::to_string(s.in_use) + " pool_waiting=" + std::to_string(s.waiting) +
                                "\n");
        }
        if (path != "/query") co_return reply(req, http::status::not_found, "no such endpoint\n");
        const auto n = bounded_number(query_param(target, "n").value_or("1"), 1000000);
        const auto sleep_ms = bounded_number(query_param(target, "sleep_ms").value_or("0"), 60000);
        if (!n || !sleep_ms) co_return reply(req, http::status::bad_request, "n and sleep_ms: small non-negative integers\n");
        std::string body;
        bool ok = false;
        try {
            auto conn = co_await pool_.async_acquire(asio::use_awaitable);
            pg::params args{std::to_string(*n), std::to_string(*sleep_ms)};
            // Through the connection's statement cache: parsed and planned once per server
            // connection, which outlives this request (docs/prepared-statements.md).
            auto r = co_await pg::async_exec_cached(io_.get_executor(), *conn,
                                                    std::string("SELECT $1::int * 2 FROM pg_sleep($2::float8 / 1000)"),
                                                    std::move(args), asio::use_awaitable);
            if (pg::result_ok(r.get()) && PQntuples(r.get()) == 1) {
                body = std::string(PQgetvalue(r.get(), 0, 0)) + "\n";
                ok = true;
            } else {
                body = "query failed: " + (r ? std::string(PQresultErrorMessage(r.get())) : conn->error_message() + "\n");
            }
        } catch (const std::exception& e) {
            // The pool's messages name the cause and never carry a password.
            body = std::string("query failed: ") + e.what() + "\n";
        }
        co_return reply(req, ok ? http::status::ok : http::status::internal_server_error, std::move(body));
    }

    void begin_drain() {
        if (draining_) return;
        draining_ = true;
        boost::system::error_code ignored;
        // Connections the kernel has already completed wait in the listen backlog; closing the
        // socket would reset them, and their clients may have sent a request already. Take them
        // first (without blocking), then close: from here on connects are refused.
        acceptor_.non_blocking(true, ignored);
        for (;;) {
            tcp::socket s(io_);
            boost::system::error_code ec;
            acceptor_.accept(s, ec);
            if (ec) break;
            spawn_session(std::move(s));
        }
        acceptor_.close(ignored);
        std::cout << "draining: " << sessions_.size() + starting_ << " connections open, deadline "
                  << options_.drain_deadline.count() << " ms" << std::endl;
        // An idle keep-alive connection has nothing in flight: close it. One whose next request
        // has started to arrive is left to finish it.
        for (auto& s : sessions_) {
            auto& sock = s.stream->socket();
            if (!s.busy && s.buffer->size() == 0 && sock.available(ignored) == 0) s.stream->cancel();
        }
        deadline_.expires_after(options_.drain_deadline);
        deadline_.async_wait([this](boost::system::error_code ec) {
            if (ec) return;  // cancelled: the drain finished in time
            deadline_passed();
        });
        maybe_finish();
    }

    // Every request answered: close the pool's server connections, then let io.run() return.
    void maybe_finish() {
        if (!sessions_.empty() || starting_ != 0 || pool_draining_) return;
        pool_draining_ = true;
        std::cout << "all requests answered; draining the pool" << std::endl;
        pool_.async_drain(asio::bind_executor(io_, [this](boost::system::error_code) {
            if (finished_) return;
            finished_ = true;
            deadline_.cancel();
            signals_.cancel();
            const auto s = pool_.stats();
            std::cout << "drained: " << s.open << " server connections open" << std::endl;
            status_ = s.open == 0 ? 0 : 1;
        }));
    }

    void deadline_passed() {
        if (finished_) return;
        finished_ = true;
        status_ = 1;
        std::cout << "drain deadline passed with " << sessions_.size() << " connections still open" << std::endl;
        boost::system::error_code ignored;
        for (auto& s : sessions_) s.stream->socket().close(ignored);
        signals_.cancel();
        pool_.close();
        io_.stop();
    }

    asio::io_context& io_;
    pg::pool& pool_;
    service_options options_;
    tcp::acceptor acceptor_;
    asio::signal_set signals_;
    asio::steady_timer deadline_;
    std::list<session_entry> sessions_;  // touched on the io thread only
    std::size_t starting_ = 0;           // accepted, coroutine not yet started
    bool draining_ = false;
    bool pool_draining_ = false;
    bool finished_ = false;
    int status_ = 1;
};

service_options parse(int argc, char** argv) {
    service_options o;
    if (const char* c = std::getenv("CONNPOOL_PG_CONNINFO")) o.conninfo = c;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) throw std::invalid_argument(arg + ": missing value");
            return argv[++i];
        };
        auto number = [&](long limit) {
            const std::string v = value();
            const auto n = bounded_number(v, limit);
            if (!n) throw std::invalid_argument(arg + ": " + v + " is not a number from 0 to " + std::to_string(limit));
            return *n;
        };
        if (arg == "--conninfo") {
            o.conninfo = value();
        } else if (arg == "--address") {
            o.address = value();
        } else if (arg == "--port") {
            o.port = static_cast<unsigned short>(number(65535));
        } else if (arg == "--pool-size") {
            o.pool_size = static_cast<std::size_t>(number(1000));
        } else if (arg == "--drain-deadline-ms") {
            o.drain_deadline = std::chrono::milliseconds(number(3600000));
        } else if (arg == "--app-name") {
            o.app_name = value();
        } else {
            throw std::invalid_argument("unknown option " + arg + " (see the top of main.cpp)");
        }
    }
    if (o.conninfo.empty()) throw std::invalid_argument("--conninfo (or CONNPOOL_PG_CONNINFO) is required");
    if (o.pool_size == 0) throw std::invalid_argument("--pool-size: must be at least 1");
    return o;
}

}  // namespace

int main(int argc, char** argv) {
    service_options o;
    try {
        o = parse(argc, argv);
    } catch (const std::exception& e) {
        std::cerr << "example_http_service: " << e.what() << "\n";
        return 2;
    }
    connpool::options opts;
    opts.max_size = o.pool_size;
    opts.min_idle = 1;
    opts.acquire_timeout = 5s;
    // application_name last: later keywords win in libpq. Quoted for the conninfo syntax.
    std::string app;
    for (char ch : o.app_name) {
        if (ch == '\\' || ch == '\'') app += '\\';
        app += ch;
    }
    pg::pool pool(pg::factory(o.conninfo + " application_name='" + app + "'"), opts);
    asio::io_context io;
    try {
        service svc(io, pool, o);
        svc.start();
        std::cout << "listening on " << svc.local_endpoint().address().to_string() << ":"
                  << svc.local_endpoint().port() << std::endl;
        io.run();
        return svc.exit_status();
    } catch (const std::exception& e) {
        std::cerr << "example_http_service: " << e.what() << "\n";
        return 1;
    }
}
