// Real MariaDB: SELECT 1 over TCP and over the Unix socket with connpool::mysql, the same
// three ways as the PostgreSQL bench (db_bench.hpp), with 1, 2 and 8 threads, plus the
// textbook pool, and what the reset policies cost on clean returns (SELECT 1 leaves the session
// clean): the default reset_if_dirty, which sends nothing for a clean session, and the full
// reset_connection (COM_RESET_CONNECTION and the init commands on every used return), each
// against no reset at all.
//
// Connection facts come from the environment that tests/support/mysql/start.sh writes
// (bench/run.sh sources it): CONNPOOL_MYSQL_HOST, _PORT, _SOCKET, _USER, _PASSWORD, _DATABASE.
#include "db_bench.hpp"

#include <connpool/mysql.hpp>

#include <iostream>

namespace {

namespace cm = connpool::mysql;

struct mysql_db {
    using factory = cm::factory;
    static bool query(cm::connection& c) {
        connpool::error_info e;
        return c.execute("SELECT 1", e);
    }
};

using blocking = bench::db_bench<mysql_db>;

std::function<cm::factory()> maker(cm::connect_options o, cm::reset_policy p = cm::reset_policy::reset_if_dirty) {
    return [o = std::move(o), p] { return cm::factory(o, p); };
}

void register_all() {
    const std::string host = bench::env_or("CONNPOOL_MYSQL_HOST");
    const std::string socket = bench::env_or("CONNPOOL_MYSQL_SOCKET");
    const double min_time = std::stod(bench::env_or("CONNPOOL_BENCH_MIN_TIME", "0.3"));
    if (host.empty() || socket.empty()) {
        std::cerr << "mysql_bench: CONNPOOL_MYSQL_HOST, _PORT, _SOCKET, _USER, _PASSWORD, _DATABASE must be set "
                     "(bench/run.sh starts a server and sets them)\n";
        std::exit(2);
    }
    cm::connect_options tcp;
    tcp.host = host;
    tcp.port = static_cast<unsigned>(std::stoul(bench::env_or("CONNPOOL_MYSQL_PORT", "3306")));
    tcp.user = bench::env_or("CONNPOOL_MYSQL_USER");
    tcp.password = bench::env_or("CONNPOOL_MYSQL_PASSWORD");
    tcp.database = bench::env_or("CONNPOOL_MYSQL_DATABASE");
    cm::connect_options unix_socket = tcp;
    unix_socket.unix_socket = socket;

    for (const auto& [name, o] : {std::pair{std::string("tcp"), tcp}, std::pair{std::string("unix"), unix_socket}}) {
        const std::string prefix = "mysql/" + name;
        blocking::register_family(prefix, maker(o), {1, 2, 8}, {2, 4}, {4}, {8}, min_time);
        // No reset at all: the like-for-like comparison with a dedicated connection, which is
        // never reset either; and the full reset that was the default before 0.2.
        for (const auto& [label, policy] : {std::pair{"none", cm::reset_policy::none},
                                            std::pair{"connection", cm::reset_policy::reset_connection}}) {
            for (int t : {1, 2, 4, 8}) {
                benchmark::RegisterBenchmark((prefix + "/reset:" + label + "/size:4").c_str(),
                                             blocking::connpool_blocking, blocking::config{maker(o, policy), 4, true})
                    ->Threads(t)
                    ->UseRealTime()
                    ->MinTime(min_time)
                    ->Unit(benchmark::kMicrosecond);
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    return bench::run_benchmarks(argc, argv);
}
