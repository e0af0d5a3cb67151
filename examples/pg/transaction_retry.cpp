// A SERIALIZABLE transaction retried on serialization failure (SQLSTATE 40001).
//
// Four threads increment one counter row concurrently at SERIALIZABLE isolation; PostgreSQL aborts
// the losers with 40001, and each retries its whole transaction. The counter ends exact.
//
//   CONNPOOL_PG_CONNINFO="..." ./example_pg_transaction_retry
#include <connpool/pg.hpp>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

namespace pg = connpool::pg;

// Runs body(connection&) in a SERIALIZABLE transaction, retrying the whole transaction when it fails
// with serialization_failure (40001) or deadlock_detected (40P01). Other errors propagate.
template <class Body>
int with_serializable_retry(pg::pool& pool, Body body, int max_attempts = 20) {
    for (int attempt = 1;; ++attempt) {
        auto conn = pool.acquire();
        try {
            conn->exec("BEGIN ISOLATION LEVEL SERIALIZABLE");
            body(*conn);
            conn->exec("COMMIT");
            return attempt;
        } catch (const pg::sql_error& e) {
            const bool retry = e.sqlstate() == "40001" || e.sqlstate() == "40P01";
            // No explicit ROLLBACK needed: the pool's reset on return rolls back the failed transaction.
            if (!retry || attempt == max_attempts) throw;
        }
    }
}

int main() {
    const char* conninfo = std::getenv("CONNPOOL_PG_CONNINFO");
    if (conninfo == nullptr) {
        std::cerr << "set CONNPOOL_PG_CONNINFO to a libpq conninfo string\n";
        return 2;
    }
    pg::pool pool{pg::factory{conninfo}};
    {
        auto conn = pool.acquire();
        conn->exec("CREATE TABLE IF NOT EXISTS connpool_example_counter (id int PRIMARY KEY, n int NOT NULL)");
        conn->exec("INSERT INTO connpool_example_counter VALUES (1, 0) ON CONFLICT (id) DO UPDATE SET n = 0");
    }

    constexpr int threads = 4, increments = 25;
    std::atomic<int> retries{0}, failures{0};
    std::vector<std::thread> ts;
    for (int t = 0; t < threads; ++t) {
        ts.emplace_back([&] {
            for (int i = 0; i < increments; ++i) {
                try {
                    const int attempts = with_serializable_retry(pool, [](pg::connection& c) {
                        auto r = c.exec("SELECT n FROM connpool_example_counter WHERE id = 1");
                        const int n = std::stoi(PQgetvalue(r.get(), 0, 0));
                        c.exec("UPDATE connpool_example_counter SET n = $1 WHERE id = 1", n + 1);
                    });
                    retries += attempts - 1;
                } catch (const std::exception& e) {
                    std::cerr << e.what() << "\n";
                    ++failures;
                }
            }
        });
    }
    for (auto& t : ts) t.join();

    auto conn = pool.acquire();
    auto r = conn->exec("SELECT n FROM connpool_example_counter WHERE id = 1");
    const int n = std::stoi(PQgetvalue(r.get(), 0, 0));
    conn->exec("DROP TABLE connpool_example_counter");
    std::cout << "counter " << n << " (expected " << threads * increments << "), serialization retries " << retries
              << ", failures " << failures << "\n";
    return n == threads * increments && failures == 0 ? 0 : 1;
}
