// Includes Catch2 whichever major version the build found: tests include this, never
// Catch2 directly. cmake/connpool_testing.cmake defines CONNPOOL_CATCH2_V3 for v3.
#ifndef CONNPOOL_TESTS_SUPPORT_CONNPOOL_CATCH_HPP
#define CONNPOOL_TESTS_SUPPORT_CONNPOOL_CATCH_HPP

#if defined(CONNPOOL_CATCH2_V3)
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif

#endif  // CONNPOOL_TESTS_SUPPORT_CONNPOOL_CATCH_HPP
