#!/usr/bin/env bash
# Starts HAProxy (TCP mode) in front of the Patroni set that start-patroni.sh described in
# PATRONI_ENV, in a fresh temporary directory, on two free ports of 127.0.0.1:
#   primary   the node whose Patroni REST API answers 200 to GET /primary
#   replicas  the nodes that answer 200 to GET /replica, round robin
# Writes ENV_FILE: PATRONI_ENV's facts, then CONNPOOL_PROXY_STATE_DIR, CONNPOOL_HAPROXY_PRIMARY_PORT,
# CONNPOOL_HAPROXY_REPLICAS_PORT and CONNPOOL_HAPROXY_{PRIMARY,REPLICAS}_CONNINFO (the app role).
#
#   start-haproxy.sh ENV_FILE PATRONI_ENV
#
# Waits until the primary port serves a writable session and the replicas port a standby.
# stop-proxy.sh ENV_FILE stops it and removes the directory and ENV_FILE.
set -euo pipefail

env_file=$(realpath -m -- "${1:?usage: start-haproxy.sh ENV_FILE PATRONI_ENV}")
patroni_env=$(realpath -m -- "${2:?usage: start-haproxy.sh ENV_FILE PATRONI_ENV}")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/proxy-lib.sh"
proxy_setup start-haproxy.sh haproxy haproxy "$patroni_env"

primary_port=$(free_port)
replicas_port=$(free_port)
servers() {
    for n in 0 1 2; do
        local pg=CONNPOOL_REPLICA_PORT_$n api=CONNPOOL_PATRONI_API_PORT_$n
        printf '    server p%s 127.0.0.1:%s check port %s\n' "$n" "${!pg}" "${!api}"
    done
}
# inter 500ms, fall 2, rise 1: a node that stops answering 200 is out after about 1 s, and one
# that starts answering is in after one check. on-marked-down shutdown-sessions closes the
# client sessions still on a node that is out: a demoted primary's clients see a closed
# connection at once instead of read-only errors, or a wait on a dead server.
cat >"$state/haproxy.cfg" <<CFG
global
    maxconn 200

defaults
    mode tcp
    timeout connect 1s
    timeout check 1s
    timeout client 30m
    timeout server 30m
    default-server inter 500ms fall 2 rise 1 on-marked-down shutdown-sessions

listen primary
    bind 127.0.0.1:$primary_port
    option httpchk GET /primary
    http-check expect status 200
$(servers)

listen replicas
    bind 127.0.0.1:$replicas_port
    balance roundrobin
    option httpchk GET /replica
    http-check expect status 200
$(servers)
CFG
haproxy -c -q -f "$state/haproxy.cfg" || fail "haproxy rejects its configuration"
if [[ $(id -u) == 0 ]]; then chown -R postgres: "$state"; fi
start_detached haproxy haproxy -db -f "$state/haproxy.cfg"

# Through the proxy, as the app role (the password in the environment, never in argv or a log).
through() { PGCONNECT_TIMEOUT=2 PGPASSWORD=$CONNPOOL_REPLICA_PASSWORD timeout 5 "$pg_bin/psql" -X -q -tA \
    -h 127.0.0.1 -p "$1" -U app -d connpool_test -c "$2" 2>/dev/null; }
primary_ready() { [[ $(through "$primary_port" "SELECT NOT pg_is_in_recovery()") == t ]]; }
replicas_ready() { [[ $(through "$replicas_port" "SELECT pg_is_in_recovery()") == t ]]; }
eventually 150 primary_ready || fail "the primary port does not serve the leader"
eventually 150 replicas_ready || fail "the replicas port does not serve a standby"

tmp_env=$(mktemp "$env_file.XXXXXX")
{
    grep -v '^CONNPOOL_PROXY_STATE_DIR=' "$patroni_env"
    fact CONNPOOL_PROXY_STATE_DIR "$state"
    fact CONNPOOL_HAPROXY_PRIMARY_PORT "$primary_port"
    fact CONNPOOL_HAPROXY_REPLICAS_PORT "$replicas_port"
    for role in primary replicas; do
        port=${role}_port
        fact "CONNPOOL_HAPROXY_${role^^}_CONNINFO" \
            "host=127.0.0.1 port=${!port} user=app dbname=connpool_test password=$CONNPOOL_REPLICA_PASSWORD sslmode=disable"
    done
} >"$tmp_env"
chmod 600 "$tmp_env"
mv "$tmp_env" "$env_file"
finished=1
echo "start-haproxy.sh: HAProxy primary on 127.0.0.1:$primary_port, replicas on $replicas_port; facts in $env_file" >&2
