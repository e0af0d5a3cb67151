# Extracts every ```cpp snippet of one Markdown page (README.md or a page of docs/) into a
# translation unit of its own.
#
#   cmake -DDOC=<page.md> -DNAME=<its path from the source root> -DOUT_DIR=<dir> -P extract.cmake
#
# Writes OUT_DIR/snippet_<line>.cpp for each snippet (<line>: the line of its fence in the
# page) and OUT_DIR/snippets.txt listing them. What the snippet is, the page says in an
# HTML comment on the line just before the fence (invisible when rendered):
#
#   (none)                          a whole translation unit: declarations, functions
#   <!-- snippet: body -->          statements: wrapped in a function
#   <!-- snippet: coroutine -->     statements that may co_await: wrapped in an
#                                   asio::awaitable<void> function, with `ex`, its executor
#   <!-- snippet: skip: <why> -->   not compiled (say why, e.g. it needs prometheus-cpp)
#
# Every file starts with tests/docs/prelude.hpp; the snippet's own #include lines are
# moved in front of the wrapper so that a body may include headers too.
cmake_minimum_required(VERSION 3.21)

file(READ "${DOC}" text)
file(MAKE_DIRECTORY "${OUT_DIR}")
file(GLOB old "${OUT_DIR}/snippet_*.cpp")
if(old)
    file(REMOVE ${old})
endif()

set(fence "```cpp\n")
set(listing "")
set(offset 0)
while(TRUE)
    string(SUBSTRING "${text}" ${offset} -1 rest)
    string(FIND "${rest}" "${fence}" at)
    if(at EQUAL -1)
        break()
    endif()
    math(EXPR start "${offset} + ${at}")
    # The fence must open a line.
    if(start GREATER 0)
        math(EXPR before "${start} - 1")
        string(SUBSTRING "${text}" ${before} 1 previous_char)
        if(NOT previous_char STREQUAL "\n")
            math(EXPR offset "${start} + 1")
            continue()
        endif()
    endif()
    string(SUBSTRING "${text}" 0 ${start} head)
    string(REGEX MATCHALL "\n" newlines "${head}")
    list(LENGTH newlines line)
    math(EXPR line "${line} + 1")
    # The line before the fence: the marker, if any.
    string(FIND "${head}" "\n" last_newline REVERSE)
    set(kind "file")
    if(NOT last_newline EQUAL -1)
        string(SUBSTRING "${head}" 0 ${last_newline} head_without_last)
        string(FIND "${head_without_last}" "\n" marker_start REVERSE)
        math(EXPR marker_start "${marker_start} + 1")
        math(EXPR marker_length "${last_newline} - ${marker_start}")
        string(SUBSTRING "${head}" ${marker_start} ${marker_length} marker)
        if(marker MATCHES "^<!-- snippet: (body|coroutine|skip)")
            set(kind "${CMAKE_MATCH_1}")
        elseif(marker MATCHES "^<!-- snippet:")
            message(FATAL_ERROR "${NAME}:${line}: unknown snippet marker: ${marker}")
        endif()
        if(kind STREQUAL "skip" AND NOT marker MATCHES "^<!-- snippet: skip: [^ ].* -->$")
            message(FATAL_ERROR "${NAME}:${line}: a skipped snippet must say why: <!-- snippet: skip: <why> -->")
        endif()
    endif()
    string(LENGTH "${fence}" fence_length)
    math(EXPR body_start "${start} + ${fence_length}")
    string(SUBSTRING "${text}" ${body_start} -1 tail)
    string(FIND "${tail}" "\n```" end)
    if(end EQUAL -1)
        message(FATAL_ERROR "${NAME}:${line}: unterminated ```cpp block")
    endif()
    string(SUBSTRING "${tail}" 0 ${end} code)
    math(EXPR offset "${body_start} + ${end} + 4")

    if(kind STREQUAL "skip")
        continue()
    endif()
    # Hoist the #include lines; keep the rest in order. Line by line with FIND, never as a
    # CMake list, which would split the code at its semicolons.
    set(includes "")
    set(statements "")
    set(remaining "${code}\n")
    while(NOT remaining STREQUAL "")
        string(FIND "${remaining}" "\n" eol)
        math(EXPR next "${eol} + 1")
        string(SUBSTRING "${remaining}" 0 ${next} code_line)
        string(SUBSTRING "${remaining}" ${next} -1 remaining)
        if(code_line MATCHES "^#include ")
            string(APPEND includes "${code_line}")
        else()
            string(APPEND statements "${code_line}")
        endif()
    endwhile()
    set(source "// Extracted from ${NAME} line ${line} (${kind}); edit the page, not this file.\n")
    math(EXPR first_line "${line} + 1")
    string(APPEND source "#include \"prelude.hpp\"\n${includes}\n#line ${first_line} \"${NAME}\"\n")
    if(kind STREQUAL "body")
        string(APPEND source "[[maybe_unused]] static void docs_snippet() {\n${statements}\n}\n")
    elseif(kind STREQUAL "coroutine")
        string(APPEND source "[[maybe_unused]] static asio::awaitable<void> docs_snippet() {\n"
                             "    [[maybe_unused]] auto ex = co_await asio::this_coro::executor;\n"
                             "${statements}\n}\n")
    else()
        string(APPEND source "${statements}\n")
    endif()
    file(WRITE "${OUT_DIR}/snippet_${line}.cpp" "${source}")
    list(APPEND listing "${line}")
endwhile()
list(JOIN listing "\n" listing_text)
if(listing)
    string(APPEND listing_text "\n")
endif()
file(WRITE "${OUT_DIR}/snippets.txt" "${listing_text}")
