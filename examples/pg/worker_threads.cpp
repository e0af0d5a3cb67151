// Blocking worker threads sharing a small connpool::pg::pool.
//
//   CONNPOOL_PG_CONNINFO="host=127.0.0.1 port=5432 user=app dbname=app password=..." ./example_pg_worker_threads
#include <connpool/pg.hpp>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

int main() {
    const char* conninfo = std::getenv("CONNPOOL_PG_CONNINFO");
    if (conninfo == nullptr) {
        std::cerr << "set CONNPOOL_PG_CONNINFO to a libpq conninfo string\n";
        return 2;
    }

    connpool::options opts;
    opts.max_size = 4;  // 8 threads share 4 connections: a small pool with threads waiting
    opts.acquire_timeout = std::chrono::seconds(5);
    connpool::pg::pool pool(connpool::pg::factory(conninfo), opts);

    std::atomic<long> total{0};
    std::atomic<int> errors{0};
    std::vector<std::thread> workers;
    for (int w = 0; w < 8; ++w) {
        workers.emplace_back([&, w] {
            for (int i = 0; i < 100; ++i) {
                try {
                    // The lease gives the connection back when it goes out of scope.
                    auto conn = pool.acquire();
                    auto r = conn->exec("SELECT $1::int * $2::int", w, i);
                    total += std::stol(PQgetvalue(r.get(), 0, 0));
                } catch (const std::exception& e) {  // connpool::error or connpool::pg::sql_error
                    std::cerr << "worker " << w << ": " << e.what() << "\n";
                    ++errors;
                }
            }
        });
    }
    for (auto& t : workers) t.join();

    const auto s = pool.stats();
    std::cout << "sum " << total << " (expected " << 28L * 4950 << "), errors " << errors << ", connections opened "
              << s.created << ", leases " << s.acquired << "\n";
    return errors == 0 && total == 28L * 4950 ? 0 : 1;
}
