#!/usr/bin/env bash
# Stops what start-cluster.sh ENV_FILE started and removes its temporary directory and ENV_FILE.
# Safe to run twice, and after a failed start.
set -uo pipefail

env_file=${1:?usage: stop-cluster.sh ENV_FILE}
# Resolved now: the servers below run with their own working directory (see the cd below).
env_file=$(realpath -m -- "$env_file")
# Servers run as another user need a working directory they can enter: never the checkout.
cd /
[[ -f $env_file ]] || exit 0
state=$(sed -n "s/^CONNPOOL_REPLICA_STATE_DIR='\(.*\)'$/\1/p" "$env_file")
pg_bin=$(sed -n "s/^CONNPOOL_PG_BIN='\(.*\)'$/\1/p" "$env_file")
pg_bin=${pg_bin:-/usr/lib/postgresql/15/bin}
# Only ever remove what start-cluster.sh made.
[[ $state == /tmp/connpool-replica.* && -d $state ]] || { rm -f "$env_file"; exit 0; }

if [[ $(id -u) == 0 ]]; then as_server() { runuser -u postgres -- "$@"; }; else as_server() { "$@"; }; fi
for d in "$state"/n*; do
    if [[ -f $d/postmaster.pid ]]; then
        as_server "$pg_bin/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
done
rm -rf "$state"
rm -f "$env_file"
