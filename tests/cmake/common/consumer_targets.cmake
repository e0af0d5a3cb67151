# Shared by the three consumer projects once connpool's targets exist: builds the programs
# and lists them in programs.txt for run_consumer.cmake to run.
#
# Inputs: CONNPOOL_CONSUMER_COMMON_DIR (this directory), EXPECT_PG, EXPECT_MYSQL.

if(NOT TARGET connpool::connpool)
    message(FATAL_ERROR "connpool::connpool is not defined")
endif()

add_executable(consumer "${CMAKE_CURRENT_LIST_DIR}/consumer.cpp")
target_link_libraries(consumer PRIVATE connpool::connpool)
set(programs "$<TARGET_FILE:consumer>")

# The adapter targets must carry their client library's include path and link line.
if(EXPECT_PG)
    if(NOT TARGET connpool::pg)
        message(FATAL_ERROR "connpool::pg is not defined, but the build under test has it")
    endif()
    add_executable(consumer_pg "${CMAKE_CURRENT_LIST_DIR}/consumer_pg.cpp")
    target_link_libraries(consumer_pg PRIVATE connpool::pg)
    list(APPEND programs "$<TARGET_FILE:consumer_pg>")
endif()
if(EXPECT_MYSQL)
    if(NOT TARGET connpool::mysql)
        message(FATAL_ERROR "connpool::mysql is not defined, but the build under test has it")
    endif()
    add_executable(consumer_mysql "${CMAKE_CURRENT_LIST_DIR}/consumer_mysql.cpp")
    target_link_libraries(consumer_mysql PRIVATE connpool::mysql)
    list(APPEND programs "$<TARGET_FILE:consumer_mysql>")
endif()

list(JOIN programs "\n" programs)
file(GENERATE OUTPUT "${CMAKE_BINARY_DIR}/programs.txt" CONTENT "${programs}\n")
