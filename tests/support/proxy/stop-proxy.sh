#!/usr/bin/env bash
# Stops what start-haproxy.sh or start-pgpool.sh ENV_FILE started (every NAME.pid of its state
# directory) and removes that directory and ENV_FILE. Safe to run twice, and after a failed start.
#   stop-proxy.sh ENV_FILE
set -uo pipefail

env_file=$(realpath -m -- "${1:?usage: stop-proxy.sh ENV_FILE}")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd /
[[ -f $env_file ]] || exit 0
state=$(sed -n "s/^CONNPOOL_PROXY_STATE_DIR='\(.*\)'$/\1/p" "$env_file")
# Only ever touch what the start scripts made.
if [[ $state == /tmp/connpool-proxy.* && -d $state ]]; then
    source "$here/proxy-lib.sh"
    for f in "$state"/*.pid; do stop_pidfile "$f" TERM; done
    rm -rf "$state"
fi
rm -f "$env_file"
exit 0
