#!/usr/bin/env bash
# Stops what start-patroni.sh ENV_FILE started (Patroni nodes, their PostgreSQL, etcd) and removes
# its temporary directory and ENV_FILE. Safe to run twice, and after a failed start.
#   stop-patroni.sh ENV_FILE | --state DIR
set -uo pipefail

if [[ ${1:-} == --state ]]; then
    state=${2:?}
    env_file=
else
    env_file=$(realpath -m -- "${1:?usage: stop-patroni.sh ENV_FILE}")
    [[ -f $env_file ]] || exit 0
    state=$(sed -n "s/^CONNPOOL_PATRONI_STATE_DIR='\(.*\)'$/\1/p" "$env_file")
fi
# Servers run as another user need a working directory they can enter: never the checkout.
cd /
# Only ever touch what start-patroni.sh made.
if [[ ! ( $state == /tmp/connpool-patroni.* && -d $state ) ]]; then
    [[ -n $env_file ]] && rm -f "$env_file"
    exit 0
fi

# Waits up to 15 s for pid to exit, then SIGKILLs it.
stop_pid() {
    local pid=$1 sig=$2
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
}
# Patroni stops its PostgreSQL on SIGTERM (fast shutdown); all three at once.
for f in "$state"/p[0-9].pid; do [[ -f $f ]] && kill -TERM "$(cat "$f")" 2>/dev/null; done
for f in "$state"/p[0-9].pid; do [[ -f $f ]] && stop_pid "$(cat "$f")" TERM; done
# A postmaster left behind (Patroni was killed) is stopped by its pid file.
for d in "$state"/p[0-9]; do
    if [[ -f $d/postmaster.pid ]]; then stop_pid "$(head -n 1 "$d/postmaster.pid")" QUIT; fi
done
[[ -f $state/etcd.pid ]] && stop_pid "$(cat "$state/etcd.pid")" TERM
rm -rf "$state"
[[ -n $env_file ]] && rm -f "$env_file"
exit 0
