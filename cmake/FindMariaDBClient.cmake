# FindMariaDBClient: MariaDB Connector/C, the client library connpool::mysql links.
#
# Provides the imported target MariaDBClient::MariaDBClient and sets
#   MariaDBClient_FOUND, MariaDBClient_VERSION, MariaDBClient_INCLUDE_DIR, MariaDBClient_LIBRARY.
# The include directory is the one holding mysql.h, so sources write #include <mysql.h>.
#
# Search order: pkg-config's libmariadb (Debian's libmariadb-dev ships it), then
# mariadb_config, then the usual paths. The hints only steer find_path/find_library, so
# MariaDBClient_INCLUDE_DIR and MariaDBClient_LIBRARY can always be set by hand instead.

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
    pkg_check_modules(PC_MariaDBClient QUIET libmariadb)
endif()

set(_mariadb_include_hints ${PC_MariaDBClient_INCLUDE_DIRS})
set(_mariadb_library_hints ${PC_MariaDBClient_LIBRARY_DIRS})
set(_mariadb_version "${PC_MariaDBClient_VERSION}")

if(NOT PC_MariaDBClient_FOUND)
    find_program(MariaDBClient_CONFIG_EXECUTABLE NAMES mariadb_config)
    mark_as_advanced(MariaDBClient_CONFIG_EXECUTABLE)
    if(MariaDBClient_CONFIG_EXECUTABLE)
        execute_process(COMMAND "${MariaDBClient_CONFIG_EXECUTABLE}" --variable=pkgincludedir
            OUTPUT_VARIABLE _mariadb_inc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
        execute_process(COMMAND "${MariaDBClient_CONFIG_EXECUTABLE}" --variable=pkglibdir
            OUTPUT_VARIABLE _mariadb_lib OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
        execute_process(COMMAND "${MariaDBClient_CONFIG_EXECUTABLE}" --cc_version
            OUTPUT_VARIABLE _mariadb_version OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
        list(APPEND _mariadb_include_hints "${_mariadb_inc}")
        list(APPEND _mariadb_library_hints "${_mariadb_lib}")
    endif()
endif()

find_path(MariaDBClient_INCLUDE_DIR
    NAMES mysql.h
    HINTS ${_mariadb_include_hints}
    PATH_SUFFIXES mariadb mysql)
find_library(MariaDBClient_LIBRARY
    NAMES mariadb libmariadb mariadbclient
    HINTS ${_mariadb_library_hints}
    PATH_SUFFIXES mariadb)
mark_as_advanced(MariaDBClient_INCLUDE_DIR MariaDBClient_LIBRARY)

# Without pkg-config or mariadb_config, read the version from the header itself.
if(NOT _mariadb_version AND MariaDBClient_INCLUDE_DIR AND EXISTS "${MariaDBClient_INCLUDE_DIR}/mariadb_version.h")
    file(STRINGS "${MariaDBClient_INCLUDE_DIR}/mariadb_version.h" _mariadb_version_line
        REGEX "^#define[ \t]+MARIADB_PACKAGE_VERSION[ \t]+\"[^\"]*\"")
    string(REGEX REPLACE ".*\"([^\"]*)\".*" "\\1" _mariadb_version "${_mariadb_version_line}")
endif()
set(MariaDBClient_VERSION "${_mariadb_version}")

include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(MariaDBClient
    REQUIRED_VARS MariaDBClient_LIBRARY MariaDBClient_INCLUDE_DIR
    VERSION_VAR MariaDBClient_VERSION)

if(MariaDBClient_FOUND AND NOT TARGET MariaDBClient::MariaDBClient)
    add_library(MariaDBClient::MariaDBClient UNKNOWN IMPORTED)
    set_target_properties(MariaDBClient::MariaDBClient PROPERTIES
        IMPORTED_LOCATION "${MariaDBClient_LIBRARY}"
        INTERFACE_INCLUDE_DIRECTORIES "${MariaDBClient_INCLUDE_DIR}")
endif()

unset(_mariadb_include_hints)
unset(_mariadb_library_hints)
unset(_mariadb_version)
unset(_mariadb_version_line)
unset(_mariadb_inc)
unset(_mariadb_lib)
