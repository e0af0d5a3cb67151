#!/usr/bin/env bash
# Restarts the server of ENV_FILE on the same port, socket and data: a clean shutdown
# (clients see their connections close), then the same command line again.
# usage: restart.sh ENV_FILE [SECONDS_DOWN]
set -euo pipefail

env_file=${1:?usage: restart.sh ENV_FILE [SECONDS_DOWN]}
# Resolved now: the servers below run with their own working directory (see the cd below).
env_file=$(realpath -m -- "$env_file")
# Servers run as another user need a working directory they can enter: never the checkout.
cd /
down=${2:-0}
dir=$(sed -n 's/^CONNPOOL_MYSQL_DIR=//p' "$env_file")
[ -x "$dir/run-server.sh" ] || { echo "restart.sh: no server in $env_file" >&2; exit 1; }

pid=$(cat "$dir/mariadbd.pid")
kill -TERM "$pid"
for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$pid" 2>/dev/null; then echo "restart.sh: server $pid did not stop" >&2; exit 1; fi
sleep "$down"

setsid "$dir/run-server.sh" </dev/null >>"$dir/mariadbd.out" 2>&1 &
client=$(command -v mariadb || command -v mysql)
for _ in $(seq 1 300); do
    if "$client" --no-defaults -uroot --socket="$dir/mysql.sock" -e 'SELECT 1' >/dev/null 2>&1; then
        sed -i "s/^CONNPOOL_MYSQL_PID=.*/CONNPOOL_MYSQL_PID=$(cat "$dir/mariadbd.pid")/" "$env_file"
        exit 0
    fi
    sleep 0.1
done
echo "restart.sh: server did not come back; error log:" >&2
tail -n 30 "$dir/error.log" >&2
exit 1
