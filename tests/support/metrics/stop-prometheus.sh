#!/usr/bin/env bash
# Stops what start-prometheus.sh ENV_FILE started and removes its temporary directory and ENV_FILE.
# Safe to run twice, and after a failed start.
set -uo pipefail

env_file=${1:?usage: stop-prometheus.sh ENV_FILE}
# Resolved now: the servers below run with their own working directory (see the cd below).
env_file=$(realpath -m -- "$env_file")
# Servers run as another user need a working directory they can enter: never the checkout.
cd /
[[ -f $env_file ]] || exit 0
state=$(sed -n "s/^CONNPOOL_PROMETHEUS_STATE_DIR='\(.*\)'$/\1/p" "$env_file")
pids=$(sed -n "s/^CONNPOOL_PROMETHEUS_PIDS='\(.*\)'$/\1/p" "$env_file")

for pid in $pids; do kill "$pid" 2>/dev/null; done
for pid in $pids; do
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
    kill -KILL "$pid" 2>/dev/null
done
# Only ever remove what start-prometheus.sh made.
[[ $state == /tmp/connpool-prometheus.* && -d $state ]] && rm -rf "$state"
rm -f "$env_file"
