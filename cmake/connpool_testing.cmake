# Helpers for connpool's own tests and examples (never used by consumers of the library).
#
#   connpool_add_test_executable(NAME <target> SOURCES <src>... [LIBS <lib>...] [LABELS <label>...]
#                                [FIXTURES <fixture>...] [TIMEOUT <seconds>] [NO_CATCH_MAIN] [NO_PCH])
#       A Catch2 test program. Each TEST_CASE becomes one CTest test (catch_discover_tests),
#       with LABELS and, for tests that need a server, FIXTURES_REQUIRED set to FIXTURES.
#       Sources include "connpool_catch.hpp" (tests/support), which picks Catch2 v2 or v3.
#       NO_CATCH_MAIN: the sources define main() themselves.
#       The program reuses one precompiled header (tests/support/test_pch.hpp: Catch2 and
#       Boost.Asio), unless NO_PCH: a target with compile options of its own (e.g. -O2)
#       cannot reuse it, as the compiler rejects a header built with other options.
#       The first form's NAME keyword may be left out: connpool_add_test_executable(<target> ...).
#
#   connpool_add_example(NAME <target> SOURCES <src>... [LIBS <lib>...]
#                        [TEST] [TEST_ARGS <arg>...] [LABELS <label>...] [FIXTURES <fixture>...]
#                        [TIMEOUT <seconds>])
#       An example program; TEST also runs it as one CTest test (label "example" by default).
#
#   connpool_target_warnings(<target>) / connpool_target_sanitizers(<target>)
#       What both helpers apply, for targets made by hand (e.g. support libraries). Every
#       target linked into a sanitized program needs connpool_target_sanitizers(): under
#       TSan it also defines BOOST_ASIO_DISABLE_STD_ATOMIC, which changes Asio's types.
#
#   CONNPOOL_TEST_LAUNCHER (cache, a CMake list): runs the test and example programs, for
#       CTest and for Catch2's test discovery alike; scripts/test.sh sets it to
#       "setarch;<arch>;-R" when this kernel's address randomisation breaks TSan.
#
# Warnings and sanitizers go on these targets only, never on the global flags, so a
# consumer's build and connpool::connpool's usage requirements are never affected.

include_guard(GLOBAL)

set(CONNPOOL_TESTING_DIR "${CMAKE_CURRENT_LIST_DIR}")

# --- warnings -------------------------------------------------------------------------------
function(connpool_target_warnings target)
    if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
        target_compile_options(${target} PRIVATE -Wall -Wextra)
        if(CONNPOOL_WERROR)
            target_compile_options(${target} PRIVATE -Werror)
        endif()
    elseif(MSVC)
        target_compile_options(${target} PRIVATE /W4)
        if(CONNPOOL_WERROR)
            target_compile_options(${target} PRIVATE /WX)
        endif()
    endif()
endfunction()

# --- sanitizers -----------------------------------------------------------------------------
set(CONNPOOL_SANITIZE_FLAGS "")
if(CONNPOOL_SANITIZE)
    if(NOT CONNPOOL_SANITIZE MATCHES "^(address|undefined|address,undefined|undefined,address|thread|thread,undefined|undefined,thread)$")
        message(FATAL_ERROR "CONNPOOL_SANITIZE='${CONNPOOL_SANITIZE}': expected address,undefined or thread")
    endif()
    # -fno-sanitize-recover: a UBSan finding aborts, so the test fails instead of printing.
    set(CONNPOOL_SANITIZE_FLAGS -fsanitize=${CONNPOOL_SANITIZE} -fno-omit-frame-pointer -fno-sanitize-recover=all)
endif()

function(connpool_target_sanitizers target)
    if(CONNPOOL_SANITIZE_FLAGS)
        target_compile_options(${target} PRIVATE ${CONNPOOL_SANITIZE_FLAGS})
        target_link_options(${target} PRIVATE ${CONNPOOL_SANITIZE_FLAGS})
        if(CONNPOOL_SANITIZE MATCHES "thread")
            # TSan does not model std::atomic_thread_fence. Boost.Asio's reference counts
            # (executors, ops) use a release decrement plus an acquire fence, which TSan
            # reports as a race on the delete. Without std::atomic, Asio falls back to
            # boost::detail::atomic_count, an acq_rel decrement that is at least as strong
            # and that TSan understands.
            target_compile_definitions(${target} PRIVATE BOOST_ASIO_DISABLE_STD_ATOMIC=1)
            # g++ 12 also warns (-Wtsan) about the fences that remain (Asio's fenced blocks),
            # which -Werror would turn into a build failure.
            if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU" AND CMAKE_CXX_COMPILER_VERSION VERSION_GREATER_EQUAL 12)
                target_compile_options(${target} PRIVATE -Wno-tsan)
            endif()
            # Known false positives in uninstrumented libstdc++ (see the file).
            get_target_property(type ${target} TYPE)
            if(type STREQUAL "EXECUTABLE")
                target_sources(${target} PRIVATE "${CONNPOOL_TESTING_DIR}/tsan_suppressions.cpp")
            endif()
        endif()
    endif()
endfunction()

# --- Catch2 ---------------------------------------------------------------------------------
# Debian 12 ships Catch2 2.13; v3 (Catch2::Catch2WithMain, catch2/catch_all.hpp) works too.
find_package(Catch2 CONFIG QUIET)
if(Catch2_FOUND)
    list(APPEND CMAKE_MODULE_PATH "${Catch2_DIR}")
    include(Catch)
    if(Catch2_VERSION VERSION_GREATER_EQUAL 3)
        set(CONNPOOL_CATCH2_V3 ON)
    else()
        set(CONNPOOL_CATCH2_V3 OFF)
    endif()
    message(STATUS "connpool: Catch2 ${Catch2_VERSION} for tests")
endif()

# The include wrapper and the v2 main live in tests/support.
cmake_path(SET CONNPOOL_TEST_SUPPORT_DIR NORMALIZE "${CMAKE_CURRENT_LIST_DIR}/../tests/support")

function(_connpool_catch_main_target out)
    if(CONNPOOL_CATCH2_V3)
        set(${out} Catch2::Catch2WithMain PARENT_SCOPE)
        return()
    endif()
    # Catch2 v2's main is a big TU: compile it once, shared by every test program.
    if(NOT TARGET connpool_catch_main)
        add_library(connpool_catch_main OBJECT "${CONNPOOL_TEST_SUPPORT_DIR}/catch_main.cpp")
        target_link_libraries(connpool_catch_main PUBLIC Catch2::Catch2)
        target_include_directories(connpool_catch_main PUBLIC "${CONNPOOL_TEST_SUPPORT_DIR}")
        target_compile_features(connpool_catch_main PUBLIC cxx_std_20)
        set_target_properties(connpool_catch_main PROPERTIES CXX_EXTENSIONS OFF)
        connpool_target_sanitizers(connpool_catch_main)
    endif()
    set(${out} connpool_catch_main PARENT_SCOPE)
endfunction()

# One precompiled header for every test program (CONNPOOL_TEST_PCH, on by default): each test
# translation unit otherwise parses Catch2 and Boost.Asio again, about two thirds of its
# compile time. Built once, by an object library with the same flags as the programs.
option(CONNPOOL_TEST_PCH "Precompile Catch2 and Boost.Asio once for connpool's test programs" ON)
function(_connpool_test_pch_target out)
    if(NOT TARGET connpool_test_pch)
        add_library(connpool_test_pch OBJECT "${CONNPOOL_TEST_SUPPORT_DIR}/test_pch.cpp")
        target_link_libraries(connpool_test_pch PUBLIC Boost::headers)
        if(CONNPOOL_CATCH2_V3)
            target_link_libraries(connpool_test_pch PUBLIC Catch2::Catch2)
            target_compile_definitions(connpool_test_pch PRIVATE CONNPOOL_CATCH2_V3=1)
        else()
            target_link_libraries(connpool_test_pch PUBLIC Catch2::Catch2)
        endif()
        target_include_directories(connpool_test_pch PRIVATE "${CONNPOOL_TEST_SUPPORT_DIR}")
        target_compile_features(connpool_test_pch PRIVATE cxx_std_20)
        set_target_properties(connpool_test_pch PROPERTIES CXX_EXTENSIONS OFF)
        target_precompile_headers(connpool_test_pch PRIVATE "${CONNPOOL_TEST_SUPPORT_DIR}/test_pch.hpp")
        connpool_target_warnings(connpool_test_pch)
        connpool_target_sanitizers(connpool_test_pch)
    endif()
    set(${out} connpool_test_pch PARENT_SCOPE)
endfunction()

# NAME may be given as the first positional argument instead of with the keyword.
macro(_connpool_parse_name fn)
    if(NOT ARG_NAME)
        list(LENGTH ARG_UNPARSED_ARGUMENTS _connpool_n)
        if(_connpool_n EQUAL 1)
            set(ARG_NAME "${ARG_UNPARSED_ARGUMENTS}")
            set(ARG_UNPARSED_ARGUMENTS "")
        endif()
    endif()
    if(NOT ARG_NAME)
        message(FATAL_ERROR "${fn}: NAME is required")
    endif()
    if(ARG_UNPARSED_ARGUMENTS)
        message(FATAL_ERROR "${fn}(${ARG_NAME}): unexpected arguments: ${ARG_UNPARSED_ARGUMENTS}")
    endif()
    if(NOT ARG_SOURCES)
        message(FATAL_ERROR "${fn}(${ARG_NAME}): SOURCES is required")
    endif()
endmacro()

# When a test program runs under a launcher (CONNPOOL_TEST_LAUNCHER, e.g. "setarch;x86_64;-R"
# for TSan on a kernel with high mmap randomisation), CTest and test discovery both use it.
set(CONNPOOL_TEST_LAUNCHER "" CACHE STRING "Command that runs connpool's test programs (a CMake list)")

function(connpool_add_test_executable)
    cmake_parse_arguments(PARSE_ARGV 0 ARG "NO_CATCH_MAIN;NO_PCH" "NAME;TIMEOUT" "SOURCES;LIBS;LABELS;FIXTURES")
    _connpool_parse_name(connpool_add_test_executable)
    if(NOT Catch2_FOUND)
        message(FATAL_ERROR "connpool_add_test_executable(${ARG_NAME}): Catch2 was not found. "
            "Install it (Debian: apt-get install catch2) or configure with -DCONNPOOL_BUILD_TESTS=OFF.")
    endif()

    add_executable(${ARG_NAME} ${ARG_SOURCES})
    target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBS})
    target_include_directories(${ARG_NAME} PRIVATE "${CONNPOOL_TEST_SUPPORT_DIR}")
    target_compile_features(${ARG_NAME} PRIVATE cxx_std_20)
    # -std=c++20, not gnu++20: the library must not lean on GNU extensions.
    set_target_properties(${ARG_NAME} PROPERTIES CXX_EXTENSIONS OFF)
    if(CONNPOOL_CATCH2_V3)
        target_compile_definitions(${ARG_NAME} PRIVATE CONNPOOL_CATCH2_V3=1)
        if(ARG_NO_CATCH_MAIN)
            target_link_libraries(${ARG_NAME} PRIVATE Catch2::Catch2)
        else()
            target_link_libraries(${ARG_NAME} PRIVATE Catch2::Catch2WithMain)
        endif()
    else()
        target_link_libraries(${ARG_NAME} PRIVATE Catch2::Catch2)
        if(NOT ARG_NO_CATCH_MAIN)
            _connpool_catch_main_target(catch_main)
            target_link_libraries(${ARG_NAME} PRIVATE ${catch_main})
        endif()
    endif()
    connpool_target_warnings(${ARG_NAME})
    connpool_target_sanitizers(${ARG_NAME})
    if(CONNPOOL_TEST_PCH AND NOT ARG_NO_PCH)
        _connpool_test_pch_target(pch)
        target_precompile_headers(${ARG_NAME} REUSE_FROM ${pch})
    endif()
    if(CONNPOOL_TEST_LAUNCHER)
        set_target_properties(${ARG_NAME} PROPERTIES CROSSCOMPILING_EMULATOR "${CONNPOOL_TEST_LAUNCHER}")
    endif()

    # TEST_PREFIX keeps case names unique across programs: "unit_pool/acquire times out ...".
    # (No trailing space: cmake -D drops it.)
    catch_discover_tests(${ARG_NAME} TEST_PREFIX "${ARG_NAME}/" TEST_LIST ${ARG_NAME}_TESTS)

    # Labels and fixtures are set by a CTest include file of our own, run after the one
    # catch_discover_tests writes: its PROPERTIES argument flattens lists, so a second
    # label or fixture would be read as a property name.
    set(properties "")
    if(ARG_LABELS)
        string(APPEND properties " LABELS [==[${ARG_LABELS}]==]")
    endif()
    if(ARG_FIXTURES)
        string(APPEND properties " FIXTURES_REQUIRED [==[${ARG_FIXTURES}]==]")
    endif()
    if(ARG_TIMEOUT)
        string(APPEND properties " TIMEOUT ${ARG_TIMEOUT}")
    endif()
    if(properties)
        set(file "${CMAKE_CURRENT_BINARY_DIR}/${ARG_NAME}_properties.cmake")
        file(WRITE "${file}"
            "# Generated by connpool_add_test_executable(${ARG_NAME}).\n"
            "foreach(test IN LISTS ${ARG_NAME}_TESTS)\n"
            "    set_tests_properties(\"\${test}\" PROPERTIES${properties})\n"
            "endforeach()\n")
        set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${file}")
    endif()
endfunction()

function(connpool_add_example)
    cmake_parse_arguments(PARSE_ARGV 0 ARG "TEST" "NAME;TIMEOUT" "SOURCES;LIBS;TEST_ARGS;LABELS;FIXTURES")
    _connpool_parse_name(connpool_add_example)

    add_executable(${ARG_NAME} ${ARG_SOURCES})
    target_link_libraries(${ARG_NAME} PRIVATE ${ARG_LIBS})
    target_compile_features(${ARG_NAME} PRIVATE cxx_std_20)
    set_target_properties(${ARG_NAME} PROPERTIES CXX_EXTENSIONS OFF)
    connpool_target_warnings(${ARG_NAME})
    connpool_target_sanitizers(${ARG_NAME})
    if(CONNPOOL_TEST_LAUNCHER)
        set_target_properties(${ARG_NAME} PROPERTIES CROSSCOMPILING_EMULATOR "${CONNPOOL_TEST_LAUNCHER}")
    endif()

    if(ARG_TEST)
        if(NOT ARG_LABELS)
            set(ARG_LABELS example)
        endif()
        if(NOT ARG_TIMEOUT)
            set(ARG_TIMEOUT 60)
        endif()
        add_test(NAME "example/${ARG_NAME}" COMMAND ${ARG_NAME} ${ARG_TEST_ARGS})
        set_tests_properties("example/${ARG_NAME}" PROPERTIES LABELS "${ARG_LABELS}" TIMEOUT ${ARG_TIMEOUT})
        if(ARG_FIXTURES)
            set_tests_properties("example/${ARG_NAME}" PROPERTIES FIXTURES_REQUIRED "${ARG_FIXTURES}")
        endif()
    endif()
endfunction()
