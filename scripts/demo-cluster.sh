#!/usr/bin/env bash
# The scale-out demo, in one command:
#
#   scripts/demo-cluster.sh [threads]      (default: 8)
#
#   1. builds examples/pg/cluster_demo.cpp (Release) in build-demo/,
#   2. starts a throwaway primary and two streaming standbys with the test harness
#      (tests/support/replica/start-cluster.sh: initdb, pg_basebackup -R, 127.0.0.1),
#   3. runs the demo for 14 s and changes the topology under it, so that you can watch:
#        t=0-3 s   reads spread over both standbys, writes on the primary
#        t=3 s     replay paused on n1: once it lags past max_replica_lag (1 s) it leaves read routing
#        t=7 s     replay resumed: n1 catches up and serves reads again
#        t=9 s     the primary n0 is killed: writes fail at once ("no primary: ..."), reads go on
#        t=10.5 s  n1 is promoted: the cluster finds it and writes resume there
#   4. stops the servers and removes their files, also when something fails or on Ctrl-C.
#
# Needs what scripts/demo.sh needs (a compiler, CMake, Boost, libpq, PostgreSQL 15).
# Environment: CONNPOOL_DEMO_BUILD_DIR (default: build-demo); CONNPOOL_DEMO_BINARY runs that
# cluster_demo binary instead of building one.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
threads=${1:-8}
build=${CONNPOOL_DEMO_BUILD_DIR:-$root/build-demo}
say() { printf '\n== %s\n' "$*"; }

if [[ -n ${CONNPOOL_DEMO_BINARY:-} ]]; then
    demo=$CONNPOOL_DEMO_BINARY
else
    say "building examples/pg/cluster_demo.cpp (Release) in $build"
    cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DCONNPOOL_BUILD_TESTS=OFF -DCONNPOOL_BUILD_BENCH=OFF \
        -DCONNPOOL_BUILD_EXAMPLES=ON >/dev/null
    cmake --build "$build" --target example_pg_cluster_demo -j "$(nproc)" >/dev/null
    demo=$(find "$build" -name example_pg_cluster_demo -type f -perm -u+x | head -n 1)
fi

env_file=$(mktemp /tmp/connpool-demo-cluster.XXXXXX.env)
rm -f "$env_file"
cleanup() { bash tests/support/replica/stop-cluster.sh "$env_file"; }
trap cleanup EXIT

say "starting a primary and two standbys"
bash tests/support/replica/start-cluster.sh "$env_file"
set -a
# shellcheck disable=SC1090
source "$env_file"
set +a
admin() { psql -X -q -tA "$1" -c "$2" >/dev/null; }

say "running the service for 14 s ($threads threads, 9 reads per write)"
"$demo" 14 "$threads" &
demo_pid=$!
sleep 3
echo "-- pausing replay on n1"
admin "$CONNPOOL_REPLICA_ADMIN_CONNINFO_1" "SELECT pg_wal_replay_pause()"
sleep 4
echo "-- resuming replay on n1"
admin "$CONNPOOL_REPLICA_ADMIN_CONNINFO_1" "SELECT pg_wal_replay_resume()"
sleep 2
echo "-- killing the primary n0"
bash "$CONNPOOL_REPLICA_CTL" kill 0
sleep 1.5
echo "-- promoting n1"
bash "$CONNPOOL_REPLICA_CTL" promote 1
wait "$demo_pid"
