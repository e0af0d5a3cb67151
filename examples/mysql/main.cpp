// Blocking workers and a coroutine handler sharing one MariaDB/MySQL pool.
//
// Connection facts come from the environment:
//   CONNPOOL_MYSQL_HOST (127.0.0.1)  CONNPOOL_MYSQL_PORT (3306)  CONNPOOL_MYSQL_SOCKET
//   CONNPOOL_MYSQL_USER  CONNPOOL_MYSQL_PASSWORD  CONNPOOL_MYSQL_DATABASE  CONNPOOL_MYSQL_SSL_CA
// or from a KEY=VALUE file named by CONNPOOL_MYSQL_ENV_FILE (what the test harness writes).
// Without a user the program prints a note and exits 0, so CI can build and run it anywhere.
#include <connpool/mysql.hpp>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/use_future.hpp>

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace asio = boost::asio;
namespace mysql = connpool::mysql;

namespace {

// CONNPOOL_MYSQL_* from the environment, falling back to the file in CONNPOOL_MYSQL_ENV_FILE.
std::map<std::string, std::string> load_settings() {
    std::map<std::string, std::string> s;
    if (const char* file = std::getenv("CONNPOOL_MYSQL_ENV_FILE")) {
        std::ifstream in(file);
        for (std::string line; std::getline(in, line);) {
            if (auto eq = line.find('='); eq != std::string::npos) s[line.substr(0, eq)] = line.substr(eq + 1);
        }
    }
    for (const char* key : {"CONNPOOL_MYSQL_HOST", "CONNPOOL_MYSQL_PORT", "CONNPOOL_MYSQL_SOCKET",
                            "CONNPOOL_MYSQL_USER", "CONNPOOL_MYSQL_PASSWORD", "CONNPOOL_MYSQL_DATABASE",
                            "CONNPOOL_MYSQL_SSL_CA"}) {
        if (const char* v = std::getenv(key)) s[key] = v;
    }
    return s;
}

// A request handler written as a coroutine: it waits for a connection without blocking
// the io_context, then runs its query. (The MySQL C API call itself is blocking; keep such
// queries short, or hand long ones to a thread pool.)
asio::awaitable<bool> handle_request(mysql::pool& pool, int request) {
    // With error_info& the failure keeps its message ("connect failed: [1045] Access denied
    // ..."); as_tuple turns the error into a value instead of an exception.
    connpool::error_info diag;
    auto [ec, lease] = co_await pool.async_acquire(diag, asio::as_tuple(asio::use_awaitable));
    if (ec) {
        std::cerr << "coroutine request " << request << ": " << diag.what() << '\n';
        co_return false;
    }
    auto session = lease->query_value("SELECT CONNECTION_ID()");
    std::cout << "coroutine request " << request << " ran on session " << session.value_or("?") << '\n';
    co_return true;
}

}  // namespace

int main() {
    auto settings = load_settings();
    if (settings["CONNPOOL_MYSQL_USER"].empty()) {
        std::cout << "CONNPOOL_MYSQL_USER is not set: no MySQL/MariaDB server to talk to, nothing to do.\n";
        return 0;
    }

    mysql::connect_options conn;
    if (!settings["CONNPOOL_MYSQL_HOST"].empty()) conn.host = settings["CONNPOOL_MYSQL_HOST"];
    if (!settings["CONNPOOL_MYSQL_PORT"].empty()) conn.port = std::stoul(settings["CONNPOOL_MYSQL_PORT"]);
    conn.unix_socket = settings["CONNPOOL_MYSQL_SOCKET"];
    conn.user = settings["CONNPOOL_MYSQL_USER"];
    conn.password = settings["CONNPOOL_MYSQL_PASSWORD"];
    conn.database = settings["CONNPOOL_MYSQL_DATABASE"];
    conn.tls.ca = settings["CONNPOOL_MYSQL_SSL_CA"];

    connpool::options opts;
    opts.max_size = 4;
    opts.min_idle = 1;
    opts.acquire_timeout = std::chrono::seconds(10);

    // The pool's background work (async connects, timers) runs on this io_context, and so do
    // the coroutine handlers; one thread runs it.
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread io_thread([&io] { io.run(); });

    // One pool for both faces. reset_connection (the default) cleans each returned session.
    mysql::pool pool(io.get_executor(), mysql::factory(conn, mysql::reset_policy::reset_connection), opts);

    int status = 0;
    try {
        // Coroutine handlers on the io_context...
        std::vector<std::future<bool>> handled;
        for (int r = 0; r < 5; ++r) handled.push_back(asio::co_spawn(io, handle_request(pool, r), asio::use_future));

        // ...next to blocking workers: acquire() waits on the calling thread, and the lease
        // gives the connection back when it goes out of scope.
        std::vector<std::thread> workers;
        std::atomic<bool> worker_failed{false};
        for (int w = 0; w < 3; ++w) {
            workers.emplace_back([&pool, &worker_failed, w] {
                try {
                    for (int i = 0; i < 3; ++i) {
                        auto lease = pool.acquire();
                        lease->execute("SET @worker = " + std::to_string(w));  // cleared by the reset
                        auto sum = lease->query_value("SELECT " + std::to_string(w) + " + " + std::to_string(i));
                        std::cout << "worker " << w << ": " << w << " + " << i << " = " << sum.value_or("NULL") << '\n';
                    }
                } catch (const connpool::error& e) {
                    // e.what() has the server's message and error number, never the password.
                    std::cerr << "worker " << w << ": " << e.what() << '\n';
                    worker_failed = true;
                }
            });
        }
        for (auto& w : workers) w.join();
        bool handlers_ok = true;
        for (auto& h : handled) handlers_ok = h.get() && handlers_ok;  // get() rethrows a handler's exception
        if (worker_failed || !handlers_ok) status = 1;
    } catch (const std::exception& e) {
        std::cerr << "error: " << e.what() << '\n';
        status = 1;
    }

    const auto st = pool.stats();
    std::cout << "leases: " << st.acquired << ", connections opened: " << st.created << '\n';
    pool.close();
    work.reset();
    io_thread.join();
    return status;
}
