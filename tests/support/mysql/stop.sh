#!/usr/bin/env bash
# Stops the server that start.sh started and removes its temporary directory.
# usage: stop.sh ENV_FILE    (a missing ENV_FILE is not an error: nothing to stop)
set -uo pipefail

env_file=${1:?usage: stop.sh ENV_FILE}
# Resolved now: the servers below run with their own working directory (see the cd below).
env_file=$(realpath -m -- "$env_file")
# Servers run as another user need a working directory they can enter: never the checkout.
cd /
[ -f "$env_file" ] || exit 0
dir=$(sed -n 's/^CONNPOOL_MYSQL_DIR=//p' "$env_file")

if [ -n "$dir" ] && [ -f "$dir/mariadbd.pid" ]; then
    pid=$(cat "$dir/mariadbd.pid")
    if kill -TERM "$pid" 2>/dev/null; then
        # A clean shutdown takes a moment; do not leave a server behind if it hangs.
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    fi
fi
# Only ever remove what start.sh created.
case "$dir" in
*/connpool-mysql.*) rm -rf "$dir" ;;
esac
rm -f "$env_file"
