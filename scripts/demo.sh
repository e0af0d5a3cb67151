#!/usr/bin/env bash
# The demo, in one command on a fresh Debian 12 machine:
#
#   scripts/demo.sh [requests] [workers] [pool_size]      (defaults: 2000 8 4)
#
#   1. installs what is missing (a compiler, CMake, Boost, libpq, PostgreSQL 15, openssl),
#   2. builds examples/pg/demo.cpp (Release) in build-demo/,
#   3. starts a throwaway PostgreSQL 15 (scram-sha-256, TCP on 127.0.0.1) with the test harness,
#   4. serves the same requests three ways: a new connection per request, a connpool pool, and a
#      dedicated connection per worker; prints requests/s, p50 and p99 latency for each, and the
#      pool's speed-up over connecting per request,
#   5. stops the server and removes its files, also when something fails or on Ctrl-C.
#
# Environment: CONNPOOL_DEMO_BUILD_DIR (default: build-demo).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

requests=${1:-2000}
workers=${2:-8}
pool_size=${3:-4}
build=${CONNPOOL_DEMO_BUILD_DIR:-$root/build-demo}
say() { printf '\n== %s\n' "$*"; }

# --- 1. dependencies: only the demo's, so that a fresh machine gets going fast --------------------
# (scripts/install-deps.sh installs everything the full test suite needs, MariaDB and clang too.)
needs_install=0
for f in /usr/bin/cmake /usr/bin/g++ /usr/include/boost/asio.hpp /usr/include/postgresql/libpq-fe.h \
    /usr/lib/postgresql/15/bin/initdb /usr/bin/openssl; do
    [[ -e $f ]] || needs_install=1
done
if (( needs_install )); then
    say "installing build tools, Boost, libpq and PostgreSQL 15"
    sudo=()
    [[ $(id -u) -ne 0 ]] && sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -q
    "${sudo[@]}" apt-get install -y -q --no-install-recommends \
        build-essential cmake libboost1.81-dev libpq-dev postgresql-15 openssl
fi

# --- 2. build --------------------------------------------------------------------------------------
say "building examples/pg/demo.cpp"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCONNPOOL_BUILD_TESTS=OFF -DCONNPOOL_BUILD_BENCH=OFF \
    -DCONNPOOL_BUILD_EXAMPLES=ON -DCONNPOOL_WITH_MYSQL=OFF -DCONNPOOL_INSTALL=OFF >"$build.cmake.log" 2>&1 \
    || { cat "$build.cmake.log" >&2; exit 1; }
rm -f "$build.cmake.log"
cmake --build "$build" --target example_pg_demo -j "$(nproc)" >/dev/null
demo=$build/examples/pg/example_pg_demo

# --- 3. server -------------------------------------------------------------------------------------
say "starting a throwaway PostgreSQL 15 (scram-sha-256, TCP on 127.0.0.1)"
env_file=$(mktemp /tmp/connpool-demo.XXXXXX.env)
rm -f "$env_file"  # start-servers.sh creates it; an existing file would mean servers to stop first
trap 'bash "$root/tests/support/pg/stop-servers.sh" "$env_file"' EXIT
bash "$root/tests/support/pg/start-servers.sh" "$env_file" --no-pgbouncer

# --- 4. the demo -----------------------------------------------------------------------------------
say "serving $requests requests three ways"
CONNPOOL_PG_CONNINFO=$(sed -n "s/^CONNPOOL_PG_CONNINFO='\(.*\)'$/\1/p" "$env_file") \
    "$demo" "$requests" "$workers" "$pool_size"

say "stopping the server"
