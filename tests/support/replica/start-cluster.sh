#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 streaming-replication set: one primary (node 0) and two standbys
# (nodes 1 and 2; STANDBYS of them when given, 1 or 2) made with pg_basebackup -R, each on 127.0.0.1 on a free port, in a fresh temporary
# directory, and writes the connection facts to an env file (KEY='value' lines, fit for `source`).
#
#   start-cluster.sh ENV_FILE [STANDBYS]
#
# As root everything runs as the `postgres` user (initdb and postgres refuse root), as any other
# user as that user. Writes ctl.sh into the state directory for tests that change the topology:
#   ctl.sh kill N       immediate stop of node N (a crash, as far as clients can tell)
#   ctl.sh start N      start node N again
#   ctl.sh promote N    pg_ctl promote node N (waits until it accepts writes)
#   ctl.sh rejoin N M   rebuild node N as a standby of node M (fresh pg_basebackup) and start it
# stop-cluster.sh ENV_FILE stops every node and removes the directory and ENV_FILE.
set -euo pipefail

env_file=${1:?usage: start-cluster.sh ENV_FILE [STANDBYS]}
standbys=${2:-2}
[[ $standbys == [12] ]] || { echo "start-cluster.sh: STANDBYS must be 1 or 2, not $standbys" >&2; exit 2; }
nodes=$(seq 0 "$standbys")
# Resolved now: the servers below run with their own working directory (see the cd below).
env_file=$(realpath -m -- "$env_file")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# A run that never reached its cleanup left servers behind: stop them before overwriting the file.
if [[ -f $env_file ]]; then bash "$here/stop-cluster.sh" "$env_file"; fi

pg_bin=${CONNPOOL_PG_BIN:-/usr/lib/postgresql/15/bin}
[[ -x $pg_bin/initdb ]] || { echo "start-cluster.sh: no initdb in $pg_bin (apt-get install postgresql-15)" >&2; exit 1; }

if [[ $(id -u) == 0 ]]; then
    server_user=postgres
    as_server() { runuser -u "$server_user" -- "$@"; }
else
    server_user=$(id -un)
    as_server() { "$@"; }
fi

state=$(mktemp -d /tmp/connpool-replica.XXXXXX)
chmod 755 "$state"
# Every server (started as another user when we are root) inherits this working directory: it
# must be one that user can enter, and never the checkout, which may sit in a 0700 directory.
cd "$state"
# Name the directory in ENV_FILE at once: if this script is killed (a fixture timeout), the
# stop script still finds what to stop. The full facts replace it at the end.
printf "%s='%s'\n" CONNPOOL_REPLICA_STATE_DIR "$state" > "$env_file"
finished=0
cleanup_unless_finished() {
    (( finished )) && return
    for n in 0 1 2; do
        if [[ -f $state/n$n/postmaster.pid ]]; then
            as_server "$pg_bin/pg_ctl" -D "$state/n$n" -m immediate -w -t 30 stop >/dev/null 2>&1
        fi
    done
    rm -rf "$state"
}
trap cleanup_unless_finished EXIT
log() { echo "start-cluster.sh: $*" >&2; }
fail() {
    log "$*"
    for f in "$state"/n*.log; do [[ -f $f ]] && { log "--- $f"; tail -n 20 "$f" >&2; }; done
    exit 1
}

# Below Linux's ephemeral range, so that outgoing connections' local ports never hold it; another
# process may still take it first, and start_node retries with a new port then.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 12000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}

rand() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
admin_password=admin-$(rand)
app_password=app-$(rand)
repl_password=repl-$(rand)
printf '%s\n' "$admin_password" > "$state/pwfile"
chmod 600 "$state/pwfile"
if [[ $(id -u) == 0 ]]; then chown -R "$server_user:" "$state"; fi

# start_node N: starts node N on a free port (port.conf), retrying when it lost the race for it.
declare -a ports
start_node() {
    local n=$1 p
    for _ in 1 2 3 4 5; do
        p=$(free_port) || return 1
        printf "port = %s\n" "$p" > "$state/n$n/port.conf"
        if [[ $(id -u) == 0 ]]; then chown "$server_user:" "$state/n$n/port.conf"; fi
        if as_server "$pg_bin/pg_ctl" -D "$state/n$n" -l "$state/n$n.log" -w -t 60 start >/dev/null; then
            ports[$n]=$p
            return 0
        fi
        grep -q "could not bind\|Address already in use" "$state/n$n.log" || return 1
        log "port $p was taken, trying another"
    done
    return 1
}

# --- the primary ---------------------------------------------------------------------------------
as_server "$pg_bin/initdb" -D "$state/n0" -U postgres --auth=scram-sha-256 --pwfile="$state/pwfile" \
    -E UTF8 --no-locale >"$state/initdb.log" 2>&1 || { cat "$state/initdb.log" >&2; fail "initdb failed"; }
rm -f "$state/pwfile"
# include_if_exists with a relative path resolves against the node's own data directory, so each
# standby's copy of this file reads its own port.conf.
cat >>"$state/n0/postgresql.conf" <<CONF
# connpool replica test set: throwaway, so durability is off.
listen_addresses = '127.0.0.1'
include_if_exists = 'port.conf'
unix_socket_directories = ''
fsync = off
full_page_writes = off
max_connections = 100
superuser_reserved_connections = 3
shared_buffers = 16MB
wal_level = replica
max_wal_senders = 10
wal_keep_size = 64MB
hot_standby = on
wal_receiver_status_interval = 1s
log_min_messages = warning
CONF
cat >"$state/n0/pg_hba.conf" <<CONF
host all all 127.0.0.1/32 scram-sha-256
host replication replicator 127.0.0.1/32 scram-sha-256
CONF
start_node 0 || fail "the primary did not start"

admin() { PGCONNECT_TIMEOUT=3 PGPASSWORD=$admin_password timeout 10 "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d postgres "${@:2}"; }
admin "${ports[0]}" <<SQL || fail "creating roles failed"
CREATE ROLE app LOGIN PASSWORD '$app_password';
CREATE ROLE replicator LOGIN REPLICATION PASSWORD '$repl_password';
CREATE DATABASE connpool_test OWNER app;
SQL

# --- the standbys ----------------------------------------------------------------------------------
# -c fast: without it pg_basebackup waits for the next scheduled checkpoint.
for n in $(seq 1 "$standbys"); do
    as_server "$pg_bin/pg_basebackup" -D "$state/n$n" -R -X stream -c fast \
        -d "host=127.0.0.1 port=${ports[0]} user=replicator password=$repl_password application_name=n$n" \
        >"$state/basebackup-n$n.log" 2>&1 || { cat "$state/basebackup-n$n.log" >&2; fail "pg_basebackup for node $n failed"; }
    start_node "$n" || fail "standby $n did not start"
done

# Both standbys streaming, bounded.
streaming=0
for _ in $(seq 1 200); do
    s=$(admin "${ports[0]}" -tA -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'" 2>/dev/null || echo 0)
    if [[ $s == "$standbys" ]]; then streaming=1; break; fi
    sleep 0.1
done
(( streaming )) || fail "the standbys are not streaming"

# --- ctl.sh ----------------------------------------------------------------------------------------
# The ports are fixed from here on: a restarted or rebuilt node keeps its port.
{
    printf '#!/usr/bin/env bash\n'
    printf '# Changes the topology of the test set in %s (see start-cluster.sh).\n' "$state"
    printf 'set -euo pipefail\n'
    printf 'state=%q\npg_bin=%q\nserver_user=%q\nrepl_password=%q\n' "$state" "$pg_bin" "$server_user" "$repl_password"
    printf 'ports=(%s)\n' "${ports[*]}"
    cat <<'CTL'
if [[ $(id -u) == 0 ]]; then as_server() { runuser -u "$server_user" -- "$@"; }; else as_server() { "$@"; }; fi
cmd=${1:?usage: ctl.sh kill|start|promote|rejoin N [M]}
n=${2:?node number}
case $cmd in
    kill) as_server "$pg_bin/pg_ctl" -D "$state/n$n" -m immediate -w -t 30 stop >/dev/null ;;
    start) as_server "$pg_bin/pg_ctl" -D "$state/n$n" -l "$state/n$n.log" -w -t 60 start >/dev/null ;;
    promote) as_server "$pg_bin/pg_ctl" -D "$state/n$n" -w -t 60 promote >/dev/null ;;
    rejoin)
        m=${3:?source node}
        if [[ -f $state/n$n/postmaster.pid ]]; then
            as_server "$pg_bin/pg_ctl" -D "$state/n$n" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
        fi
        rm -rf "${state:?}/n$n"
        as_server "$pg_bin/pg_basebackup" -D "$state/n$n" -R -X stream -c fast \
            -d "host=127.0.0.1 port=${ports[$m]} user=replicator password=$repl_password application_name=n$n" \
            >"$state/basebackup-n$n.log" 2>&1
        printf "port = %s\n" "${ports[$n]}" > "$state/n$n/port.conf"
        if [[ $(id -u) == 0 ]]; then chown "$server_user:" "$state/n$n/port.conf"; fi
        as_server "$pg_bin/pg_ctl" -D "$state/n$n" -l "$state/n$n.log" -w -t 60 start >/dev/null
        ;;
    *) echo "ctl.sh: unknown command $cmd" >&2; exit 2 ;;
esac
CTL
} >"$state/ctl.sh"
chmod 755 "$state/ctl.sh"

tmp_env=$(mktemp "$env_file.XXXXXX")
fact() { printf "%s='%s'\n" "$1" "$2" >>"$tmp_env"; }
fact CONNPOOL_REPLICA_STATE_DIR "$state"
fact CONNPOOL_PG_BIN "$pg_bin"
fact CONNPOOL_REPLICA_CTL "$state/ctl.sh"
fact CONNPOOL_REPLICA_PASSWORD "$app_password"
for n in $nodes; do
    fact "CONNPOOL_REPLICA_PORT_$n" "${ports[$n]}"
    fact "CONNPOOL_REPLICA_CONNINFO_$n" "host=127.0.0.1 port=${ports[$n]} user=app dbname=connpool_test password=$app_password sslmode=disable"
    fact "CONNPOOL_REPLICA_ADMIN_CONNINFO_$n" "host=127.0.0.1 port=${ports[$n]} user=postgres dbname=postgres password=$admin_password sslmode=disable"
done
chmod 600 "$tmp_env"
mv "$tmp_env" "$env_file"
finished=1
log "primary on 127.0.0.1:${ports[0]}, standbys on ${ports[*]:1}; facts in $env_file"
