// What every snippet of the README and docs/ may assume without saying: connpool's headers,
// Asio under the name asio, and the few application names the snippets use (conninfo, log, ...).
// tests/docs/extract.cmake puts this in front of each extracted snippet.
#ifndef CONNPOOL_TESTS_DOCS_PRELUDE_HPP
#define CONNPOOL_TESTS_DOCS_PRELUDE_HPP

#include <connpool.hpp>
#if CONNPOOL_DOCS_HAVE_PG
#include <connpool/pg.hpp>
#endif
#if CONNPOOL_DOCS_HAVE_MYSQL
#include <connpool/mysql.hpp>
#endif

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <chrono>
#include <iostream>
#include <memory>
#include <string>

namespace asio = boost::asio;

namespace docs_app {

// The application around the snippets.
inline const std::string conninfo = "host=db dbname=app user=app";
inline const std::string secret = "from-your-secret-store";
struct request {
    std::string path;
};
inline void log(const std::string&) {}
struct vault_client {
    std::string current() const { return secret; }
};
inline vault_client vault;
inline asio::io_context io;
inline std::string fetch_token() { return secret; }

// The Factory concept's example connection.
struct my_connection {};

// Anything with stats(), as the metrics examples register.
struct some_pool {
    connpool::pool_stats stats() const { return {}; }
};
inline some_pool primary_pool;
inline some_pool replica_pool;

}  // namespace docs_app

using namespace docs_app;

#endif  // CONNPOOL_TESTS_DOCS_PRELUDE_HPP
