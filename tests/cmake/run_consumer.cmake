# Configures, builds and runs one consumer project in a fresh directory.
#
#   cmake -DMODE=fetchcontent|find_package|add_subdirectory -DCONNPOOL_SOURCE_DIR=<tree>
#         -DWORK_DIR=<scratch dir> [-DGENERATOR=<gen>] [-DCXX_COMPILER=<c++>]
#         [-DEXPECT_PG=ON] [-DEXPECT_MYSQL=ON] -P run_consumer.cmake
#
# Any failing step stops with FATAL_ERROR, which makes cmake -P exit non-zero.

cmake_minimum_required(VERSION 3.21)

foreach(var MODE CONNPOOL_SOURCE_DIR WORK_DIR)
    if(NOT DEFINED ${var})
        message(FATAL_ERROR "run_consumer.cmake: -D${var}=... is required")
    endif()
endforeach()
if(NOT MODE MATCHES "^(fetchcontent|find_package|add_subdirectory)$")
    message(FATAL_ERROR "run_consumer.cmake: unknown MODE '${MODE}'")
endif()

set(consumer_source "${CMAKE_CURRENT_LIST_DIR}/${MODE}")
set(common_dir "${CMAKE_CURRENT_LIST_DIR}/common")

# A fresh directory each run: a stale cache would hide a broken first configure.
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")

set(generator_args "")
if(GENERATOR)
    list(APPEND generator_args -G "${GENERATOR}")
endif()
if(CXX_COMPILER)
    list(APPEND generator_args "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}")
endif()

function(run_step what)
    message(STATUS "[${MODE}] ${what}")
    execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "[${MODE}] ${what} failed (${rc})")
    endif()
endfunction()

set(consumer_args
    "-DCONNPOOL_CONSUMER_COMMON_DIR=${common_dir}"
    "-DEXPECT_PG=${EXPECT_PG}"
    "-DEXPECT_MYSQL=${EXPECT_MYSQL}")

if(MODE STREQUAL "find_package")
    # Install connpool the way a packager would, then find it in that prefix only.
    set(prefix "${WORK_DIR}/prefix")
    run_step("configure connpool"
        "${CMAKE_COMMAND}" ${generator_args} -S "${CONNPOOL_SOURCE_DIR}" -B "${WORK_DIR}/connpool-build"
        -DCONNPOOL_BUILD_TESTS=OFF -DCONNPOOL_BUILD_EXAMPLES=OFF -DCONNPOOL_BUILD_BENCH=OFF
        "-DCMAKE_INSTALL_PREFIX=${prefix}")
    run_step("install connpool"
        "${CMAKE_COMMAND}" --install "${WORK_DIR}/connpool-build")
    list(APPEND consumer_args
        "-DCMAKE_PREFIX_PATH=${prefix}"
        "-DEXPECTED_PREFIX=${prefix}"
        -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF)
elseif(MODE STREQUAL "fetchcontent")
    # FetchContent downloads an archive, as a release tarball would be; this one is made
    # from the files a release ships, so a file the build needs but forgets fails here.
    set(archive "${WORK_DIR}/connpool-src.tar.gz")
    execute_process(
        COMMAND "${CMAKE_COMMAND}" -E tar czf "${archive}" CMakeLists.txt cmake include LICENSE
        WORKING_DIRECTORY "${CONNPOOL_SOURCE_DIR}"
        RESULT_VARIABLE rc)
    if(NOT rc EQUAL 0)
        message(FATAL_ERROR "[${MODE}] making ${archive} failed (${rc})")
    endif()
    list(APPEND consumer_args "-DCONNPOOL_ARCHIVE=${archive}")
else()
    list(APPEND consumer_args "-DCONNPOOL_SOURCE_DIR=${CONNPOOL_SOURCE_DIR}")
endif()

run_step("configure consumer"
    "${CMAKE_COMMAND}" ${generator_args} -S "${consumer_source}" -B "${WORK_DIR}/consumer-build" ${consumer_args})
run_step("build consumer"
    "${CMAKE_COMMAND}" --build "${WORK_DIR}/consumer-build")

# Every executable the consumer made must exit 0.
file(STRINGS "${WORK_DIR}/consumer-build/programs.txt" programs)
if(NOT programs)
    message(FATAL_ERROR "[${MODE}] the consumer listed no programs to run")
endif()
foreach(program IN LISTS programs)
    run_step("run ${program}" "${program}")
endforeach()
message(STATUS "[${MODE}] passed")
