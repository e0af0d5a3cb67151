// connpool example: a service that exports its pools' metrics for Prometheus to scrape.
//
// Two pools of in-memory connections ("primary" and "replica", nothing to install) do a
// fixed amount of work at start-up; then the program keeps --hold leases of "primary" and
// serves GET /metrics on 127.0.0.1 for --seconds, so that a scraper sees stable numbers:
//   primary: max 4, idle.min 1, connpool_acquired_total = --requests + --hold, used >= --hold
//   replica: max 2, connpool_acquired_total = 10
//
// Built with prometheus-cpp (target connpool::prometheus), the pools are a Collectable
// registered with prometheus-cpp's Exposer; built without it (or as example_metrics_beast),
// a small Boost.Beast server renders connpool/metrics.hpp's text on each request.
//
//   example_metrics [--port N] [--seconds S] [--requests N] [--hold N] [--print]
//     --port 0 (the default) picks a free port; the program prints "listening on
//     127.0.0.1:<port>" once it accepts scrapes. --print writes one scrape to stdout and exits.

#include <connpool.hpp>
#include <connpool/metrics.hpp>

#if defined(CONNPOOL_EXAMPLE_PROMETHEUS_CPP)
#include <connpool/prometheus.hpp>
#include <prometheus/exposer.h>
#include <prometheus/text_serializer.h>
#else
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#endif

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

// --- the pooled "connection": an id, and a connect that takes a little time -----------------

struct memory_connection {
    int id = 0;
};

class memory_factory {
public:
    using connection_type = memory_connection;

    // Blocking, on the pool's worker threads: 2 ms stands in for a TCP and auth handshake.
    std::optional<memory_connection> connect(const connpool::connect_request&, connpool::error_info&) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        return memory_connection{++*next_id_};
    }

private:
    std::shared_ptr<std::atomic<int>> next_id_ = std::make_shared<std::atomic<int>>(0);
};

using memory_pool = connpool::pool<memory_factory>;
using memory_lease = typename memory_pool::lease_type;

// --- command line -----------------------------------------------------------------------------

struct settings {
    unsigned short port = 0;
    int seconds = 10;
    int requests = 200;
    int hold = 2;
    bool print = false;
};

std::optional<settings> parse(int argc, char** argv) {
    settings s;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        const bool has_value = i + 1 < argc;
        if (arg == "--print") {
            s.print = true;
        } else if (arg == "--port" && has_value) {
            s.port = static_cast<unsigned short>(std::atoi(argv[++i]));
        } else if (arg == "--seconds" && has_value) {
            s.seconds = std::atoi(argv[++i]);
        } else if (arg == "--requests" && has_value) {
            s.requests = std::atoi(argv[++i]);
        } else if (arg == "--hold" && has_value) {
            s.hold = std::atoi(argv[++i]);
        } else {
            std::fprintf(stderr, "usage: %s [--port N] [--seconds S] [--requests N] [--hold N] [--print]\n", argv[0]);
            return std::nullopt;
        }
    }
    if (s.hold < 0 || s.hold > 4 || s.requests < 0 || s.seconds < 0) {
        std::fprintf(stderr, "--hold must be 0..4 (primary's max_size), --requests and --seconds >= 0\n");
        return std::nullopt;
    }
    return s;
}

// --- the work: a fixed number of acquires, so a scrape can check the counters exactly --------

bool run_requests(memory_pool& pool, int requests, int threads) {
    std::atomic<int> next{0};
    std::atomic<bool> ok{true};
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
        workers.emplace_back([&] {
            while (next.fetch_add(1) < requests) {
                connpool::error_code ec;
                memory_lease lease = pool.acquire(ec);
                if (ec) {
                    ok = false;
                    continue;
                }
                std::this_thread::sleep_for(std::chrono::microseconds(300));  // the "query"
            }
        });
    }
    for (auto& w : workers) w.join();
    return ok;
}

// --- the exporters -----------------------------------------------------------------------------

#if defined(CONNPOOL_EXAMPLE_PROMETHEUS_CPP)

// The Exposer holds collectables by weak_ptr: the program keeps the shared_ptr.
using exported_pools = std::shared_ptr<connpool::metrics::prometheus_collectable>;

exported_pools register_pools(memory_pool& primary, memory_pool& replica) {
    auto pools = std::make_shared<connpool::metrics::prometheus_collectable>();
    pools->add("primary", primary);
    pools->add("replica", replica);
    return pools;
}

int export_metrics(const settings& s, const exported_pools& pools) {
    if (s.print) {
        prometheus::TextSerializer().Serialize(std::cout, pools->Collect());
        return 0;
    }
    prometheus::Exposer exposer("127.0.0.1:" + std::to_string(s.port));
    exposer.RegisterCollectable(pools);
    std::cout << "listening on 127.0.0.1:" << exposer.GetListeningPorts().at(0) << " (prometheus-cpp)" << std::endl;
    std::this_thread::sleep_for(std::chrono::seconds(s.seconds));
    // The Exposer holds the collectable by weak_ptr, and is destroyed before the pools.
    exposer.RemoveCollectable(pools);
    return 0;
}

#else

namespace asio = boost::asio;
namespace http = boost::beast::http;
using asio::ip::tcp;

// One scraper connection: answers GET /metrics with the text, anything else with 404,
// and keeps the connection open as long as the scraper does.
asio::awaitable<void> serve(tcp::socket socket, const connpool::metrics::pool_registry& pools) {
    boost::beast::flat_buffer buffer;
    for (;;) {
        http::request<http::string_body> request;
        auto [ec, n] = co_await http::async_read(socket, buffer, request, asio::as_tuple(asio::use_awaitable));
        (void)n;
        if (ec) co_return;  // closed by the scraper, or not HTTP
        http::response<http::string_body> response;
        response.version(request.version());
        response.keep_alive(request.keep_alive());
        if (request.method() == http::verb::get && request.target() == "/metrics") {
            response.result(http::status::ok);
            response.set(http::field::content_type, connpool::metrics::prometheus_text_content_type);
            response.body() = connpool::metrics::to_prometheus_text(pools.collect());
        } else {
            response.result(http::status::not_found);
            response.set(http::field::content_type, "text/plain");
            response.body() = "not found: try /metrics\n";
        }
        response.prepare_payload();
        auto [wec, wn] = co_await http::async_write(socket, response, asio::as_tuple(asio::use_awaitable));
        (void)wn;
        if (wec || !response.keep_alive()) co_return;
    }
}

asio::awaitable<void> accept_loop(tcp::acceptor& acceptor, const connpool::metrics::pool_registry& pools) {
    for (;;) {
        tcp::socket socket = co_await acceptor.async_accept(asio::use_awaitable);
        asio::co_spawn(acceptor.get_executor(), serve(std::move(socket), pools), asio::detached);
    }
}

using exported_pools = std::unique_ptr<connpool::metrics::pool_registry>;

exported_pools register_pools(memory_pool& primary, memory_pool& replica) {
    auto pools = std::make_unique<connpool::metrics::pool_registry>();
    pools->add("primary", primary);
    pools->add("replica", replica);
    return pools;
}

int export_metrics(const settings& s, const exported_pools& registry) {
    const connpool::metrics::pool_registry& pools = *registry;
    if (s.print) {
        std::cout << connpool::metrics::to_prometheus_text(pools.collect());
        return 0;
    }
    asio::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(asio::ip::make_address("127.0.0.1"), s.port));
    std::cout << "listening on 127.0.0.1:" << acceptor.local_endpoint().port() << " (Boost.Beast)" << std::endl;
    asio::co_spawn(io, accept_loop(acceptor, pools), asio::detached);
    // run_for returns after --seconds; the sessions still open are destroyed with io.
    io.run_for(std::chrono::seconds(s.seconds));
    return 0;
}

#endif

int main(int argc, char** argv) {
    const std::optional<settings> s = parse(argc, argv);
    if (!s) return 2;

    connpool::options primary_options;
    primary_options.max_size = 4;
    primary_options.min_idle = 1;
    memory_pool primary(memory_factory{}, primary_options);

    connpool::options replica_options;
    replica_options.max_size = 2;
    memory_pool replica(memory_factory{}, replica_options);

    // Registered before the work, so the pools measure it all (use_time is measured once
    // somebody has read a pool's stats(), which registering does). Declared after the
    // pools: it is destroyed first and never reads a destroyed pool.
    const exported_pools pools = register_pools(primary, replica);

    if (!run_requests(primary, s->requests, 4) || !run_requests(replica, 10, 2)) {
        std::fprintf(stderr, "an acquire failed\n");
        return 1;
    }
    // Leases held while the metrics are served: "used" connections a scrape can see.
    std::vector<memory_lease> held;
    for (int i = 0; i < s->hold; ++i) held.push_back(primary.acquire());

    try {
        return export_metrics(*s, pools);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "metrics endpoint: %s\n", e.what());
        return 1;
    }
}
