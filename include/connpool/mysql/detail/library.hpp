// connpool::mysql internals: client-library initialisation and capability detection.
#ifndef CONNPOOL_MYSQL_DETAIL_LIBRARY_HPP
#define CONNPOOL_MYSQL_DETAIL_LIBRARY_HPP

#include <mysql.h>

#include <stdexcept>

// MariaDB Connector/C (and the MariaDB server's client library) names its own options
// (MYSQL_OPT_SSL_ENFORCE, my_bool, ...) and has the non-blocking API (MYSQL_OPT_NONBLOCK,
// *_start/*_cont). Oracle's libmysqlclient has neither: there the factory has no
// async_connect, the pool runs the blocking connect on its worker threads, and ping is
// bounded by connect_options::read_timeout. Define CONNPOOL_MYSQL_DISABLE_NONBLOCKING to get
// that behaviour on MariaDB too (the tests use it to cover the fallback).
#if defined(MARIADB_BASE_VERSION) || defined(MARIADB_PACKAGE_VERSION_ID)
#define CONNPOOL_MYSQL_MARIADB 1
#else
#define CONNPOOL_MYSQL_MARIADB 0
#endif

#if CONNPOOL_MYSQL_MARIADB && !defined(CONNPOOL_MYSQL_DISABLE_NONBLOCKING)
#define CONNPOOL_MYSQL_NONBLOCKING 1
#else
#define CONNPOOL_MYSQL_NONBLOCKING 0
#endif

namespace connpool::mysql::detail {

// mysql_init() would initialise the library on first use, but that is not thread-safe, and
// the pool connects from several threads at once. A function-local static runs it exactly once.
inline void ensure_library() {
    static const bool ok = (mysql_library_init(0, nullptr, nullptr) == 0);
    if (!ok) throw std::runtime_error("connpool::mysql: mysql_library_init failed");
#if !CONNPOOL_MYSQL_MARIADB
    // Oracle's libmysqlclient keeps per-thread state that leaks unless mysql_thread_end runs
    // before the thread exits; a thread_local guard does that for pool workers too.
    struct thread_guard {
        thread_guard() { mysql_thread_init(); }
        ~thread_guard() { mysql_thread_end(); }
    };
    static thread_local thread_guard guard;
    (void)guard;
#endif
}

}  // namespace connpool::mysql::detail

#endif  // CONNPOOL_MYSQL_DETAIL_LIBRARY_HPP
