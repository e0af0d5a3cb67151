// Catch2 v2's main(), compiled once and linked into every test program
// (cmake/connpool_testing.cmake). With Catch2 v3, Catch2::Catch2WithMain replaces it.
#define CATCH_CONFIG_MAIN
#include "connpool_catch.hpp"
