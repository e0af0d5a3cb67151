# Runs Doxygen with connpool's Doxyfile and fails on any warning it prints, e.g. a public
# name without a comment (WARN_IF_UNDOCUMENTED).
#
#   cmake -DDOXYGEN=<doxygen> -DDOXYFILE=<configured Doxyfile> -DWORK_DIR=<dir> -P check_doxygen.cmake
#
# Its own output directory and no HTML, so that it neither races the docs_api target nor
# spends time on pages nobody reads.
cmake_minimum_required(VERSION 3.21)
file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
file(READ "${DOXYFILE}" config)
string(APPEND config "\nOUTPUT_DIRECTORY = \"${WORK_DIR}\"\nGENERATE_HTML = NO\nGENERATE_XML = YES\n")
file(WRITE "${WORK_DIR}/Doxyfile" "${config}")
execute_process(COMMAND "${DOXYGEN}" "${WORK_DIR}/Doxyfile"
    WORKING_DIRECTORY "${WORK_DIR}"
    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
    message(FATAL_ERROR "doxygen failed (${rc}):\n${out}${err}")
endif()
if(NOT err STREQUAL "")
    string(REGEX MATCHALL "\n" lines "\n${err}")
    list(LENGTH lines count)
    message(FATAL_ERROR "doxygen warned (about ${count} lines); every public name needs a comment:\n${err}")
endif()
message(STATUS "doxygen: no warning")
