// The precompiled header of connpool's test programs (cmake/connpool_testing.cmake): the
// two heavy third-party headers every test parses, Catch2 and Boost.Asio. Nothing of
// connpool's own is in it, so a test that configures connpool with a macro (a test build
// of a header) still sees its own definition.
#ifndef CONNPOOL_TESTS_SUPPORT_TEST_PCH_HPP
#define CONNPOOL_TESTS_SUPPORT_TEST_PCH_HPP

#include "connpool_catch.hpp"

#include <boost/asio.hpp>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#endif  // CONNPOOL_TESTS_SUPPORT_TEST_PCH_HPP
