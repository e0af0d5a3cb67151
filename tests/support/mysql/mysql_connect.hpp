// A connection straight from a factory, for tests that drive the factory without a pool.
#ifndef CONNPOOL_TESTS_SUPPORT_MYSQL_CONNECT_HPP
#define CONNPOOL_TESTS_SUPPORT_MYSQL_CONNECT_HPP

#include "connpool_catch.hpp"

#include <connpool/mysql/factory.hpp>

#include <chrono>
#include <utility>

namespace connpool_test::mysql {

// Fails the test case, with the factory's message, when the connect fails.
inline connpool::mysql::connection connect_or_fail(connpool::mysql::factory& f) {
    connpool::error_info err;
    auto c = f.connect(connpool::connect_request{std::chrono::seconds(5), 0}, err);
    INFO(err.message);
    REQUIRE(c.has_value());
    return std::move(*c);
}

}  // namespace connpool_test::mysql

#endif  // CONNPOOL_TESTS_SUPPORT_MYSQL_CONNECT_HPP
