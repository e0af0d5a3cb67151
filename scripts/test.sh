#!/usr/bin/env bash
# connpool's test command, the one the README and CI (.ci/run) use:
#
#   1. installs missing Debian packages (scripts/install-deps.sh),
#   2. the plain build (preset dev): builds everything, runs every test (all labels),
#   3. an AddressSanitizer + UndefinedBehaviorSanitizer build (preset asan): labels unit and
#      example (the echo example drives the pool from real threads over real sockets), but
#      not the tests that need a database server (labels pg, mysql),
#   4. a ThreadSanitizer build (preset tsan): the same tests,
#   5. clang 16 with libstdc++ (preset clang16): the whole tree built with -Werror (the
#      adapters' tests too, so that they compile with clang), labels unit and example run,
#   6. clang 16 with libc++ (preset clang16-libcxx): labels unit and example,
#   each in its own build directory, build/<preset>. The sanitizer and libc++ builds leave
#   the adapters out (CONNPOOL_WITH_PG/MYSQL=OFF): they would only build tests that do not
#   run there. The summary gives each section's time and the total.
#
# With ccache installed (install-deps.sh installs it) every compile goes through it, keyed
# on paths relative to the checkout, so a second clone or a rerun compiles only what changed.
#   clang 19 has a preset too (clang19); CI leaves it out to stay within its time budget.
#
# Usage: scripts/test.sh [--quick] [--no-deps]
#   --quick    only the plain build (skips the sanitizer and clang builds)
#   --no-deps  do not run install-deps.sh
# Environment: CONNPOOL_JOBS (default: the number of cores).
#
# Every section runs even when an earlier one failed; the exit status is non-zero if any did.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

quick=0
deps=1
for arg in "$@"; do
    case "$arg" in
        --quick) quick=1 ;;
        --no-deps) deps=0 ;;
        -h | --help)
            sed -n '2,/^set /p' "${BASH_SOURCE[0]}" | grep '^#' | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "test.sh: unknown argument '$arg' (try --help)" >&2
            exit 2
            ;;
    esac
done

jobs="${CONNPOOL_JOBS:-$(nproc)}"
started=$SECONDS

if command -v ccache >/dev/null && [[ -z ${CMAKE_CXX_COMPILER_LAUNCHER:-} ]]; then
    export CMAKE_CXX_COMPILER_LAUNCHER=ccache
    # Hits across clones: the checkout's own paths are hashed relative to it. The precompiled
    # header needs the two sloppiness settings (ccache's manual, "Precompiled headers").
    export CCACHE_BASEDIR="$PWD"
    export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
fi
results=()
failures=0

section() {
    printf '\n==================== %s ====================\n\n' "$*"
}

# run_section "title" command...: runs the command, records PASS/FAIL and its duration.
run_section() {
    local title="$1"
    shift
    section "$title"
    local start=$SECONDS
    if "$@"; then
        results+=("PASS  $title ($((SECONDS - start)) s)")
    else
        results+=("FAIL  $title ($((SECONDS - start)) s)")
        failures=$((failures + 1))
    fi
}

# configure, build and test one preset; extra arguments go to the configure step.
preset() {
    local name="$1"
    shift
    cmake --preset "$name" "$@" &&
        cmake --build --preset "$name" -j "$jobs" &&
        ctest --preset "$name" -j "$jobs"
}

# ThreadSanitizer's runtime cannot map its shadow memory on kernels with a high
# vm.mmap_rnd_bits ("unexpected memory mapping"). Then test programs (and Catch2's test
# discovery, which runs them at build time) run with address randomisation off.
tsan_launcher() {
    local dir probe launcher=""
    dir=$(mktemp -d)
    probe="$dir/probe"
    printf 'int main() { return 0; }\n' >"$dir/probe.cpp"
    if "${CXX:-c++}" -fsanitize=thread "$dir/probe.cpp" -o "$probe" 2>/dev/null && ! "$probe" >/dev/null 2>&1; then
        if setarch "$(uname -m)" -R "$probe" >/dev/null 2>&1; then
            launcher="setarch;$(uname -m);-R"
        fi
    fi
    rm -rf "$dir"
    printf '%s' "$launcher"
}

tsan() {
    local launcher
    launcher=$(tsan_launcher)
    if [[ -n "$launcher" ]]; then
        echo "test.sh: TSan needs address randomisation off here; running tests under ${launcher//;/ }"
    fi
    preset tsan "-DCONNPOOL_TEST_LAUNCHER=$launcher"
}

if ((deps)); then
    run_section "dependencies" bash scripts/install-deps.sh
fi

section "toolchain"
"${CXX:-c++}" --version | head -n 1
cmake --version | head -n 1
echo "jobs: $jobs"
echo "compiler launcher: ${CMAKE_CXX_COMPILER_LAUNCHER:-none}"

run_section "plain build: every test (preset dev)" preset dev
if ((!quick)); then
    run_section "ASan + UBSan build: labels unit, example (preset asan)" preset asan
    run_section "TSan build: labels unit, example (preset tsan)" tsan
    run_section "clang 16 + libstdc++: labels unit, example (preset clang16)" preset clang16
    run_section "clang 16 + libc++: labels unit, example, core only (preset clang16-libcxx)" preset clang16-libcxx
fi

section "summary"
printf '%s\n' "${results[@]}"
passed=$((${#results[@]} - failures))
echo "total: $((SECONDS - started)) s"
echo
echo "sections: $passed passed, $failures failed"
((failures == 0))
