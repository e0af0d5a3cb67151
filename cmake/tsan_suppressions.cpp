// Linked into connpool's test and example programs when CONNPOOL_SANITIZE=thread
// (cmake/connpool_testing.cmake). ThreadSanitizer reads these suppressions at start-up, so
// CTest, Catch2's test discovery and a developer running a program by hand all get them,
// with no TSAN_OPTIONS to set.
//
// Each entry is a known false positive, never a race in connpool:
//   std::__exception_ptr::exception_ptr::_M_release
//       libstdc++ counts exception_ptr references with atomics inside libstdc++.so, which is
//       not instrumented, so TSan misses the synchronisation and reports the free that
//       follows the last release (e.g. a std::future holding an exception).
extern "C" const char* __tsan_default_suppressions();

extern "C" const char* __tsan_default_suppressions() {
    return "race:std::__exception_ptr::exception_ptr::_M_release\n";
}
