# The API reference: target docs_api runs Doxygen over the public headers (docs/api.md).
# It exists only when Doxygen and Python 3 (for the comment filter) are found; nothing else
# in the build depends on it.
find_package(Doxygen QUIET)
find_package(Python3 QUIET COMPONENTS Interpreter)
if(NOT DOXYGEN_FOUND OR NOT Python3_FOUND)
    message(STATUS "connpool: Doxygen or Python 3 not found, no docs_api target")
    return()
endif()

set(CONNPOOL_DOXYGEN_OUT "${PROJECT_BINARY_DIR}/docs/api")
set(CONNPOOL_DOXYFILE "${PROJECT_BINARY_DIR}/docs/Doxyfile" CACHE INTERNAL "connpool's configured Doxyfile")
configure_file("${PROJECT_SOURCE_DIR}/docs/api/Doxyfile.in" "${CONNPOOL_DOXYFILE}" @ONLY)
add_custom_target(docs_api
    COMMAND "${DOXYGEN_EXECUTABLE}" "${CONNPOOL_DOXYFILE}"
    WORKING_DIRECTORY "${PROJECT_BINARY_DIR}/docs"
    COMMENT "Doxygen: the API reference in ${CONNPOOL_DOXYGEN_OUT}/html/index.html"
    VERBATIM)
