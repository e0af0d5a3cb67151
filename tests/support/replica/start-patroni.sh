#!/usr/bin/env bash
# Starts a throwaway Patroni cluster: one etcd and three Patroni nodes (p0, p1, p2) managing
# PostgreSQL 15 on 127.0.0.1, on free ports, in a fresh temporary directory, and writes the facts
# to an env file (KEY='value' lines, fit for `source`).
#
#   start-patroni.sh ENV_FILE
#
# Waits until there is a leader and two streaming replicas, and creates the app role and
# database. The daemons are started detached (setsid, output to log files), so that no daemon
# holds the caller's pipe open. As root the Patroni nodes run as the `postgres` user.
# Writes ctl.sh into the state directory:
#   ctl.sh leader                 prints the current leader's name
#   ctl.sh switchover FROM TO     patronictl switchover --force
#   ctl.sh sync on|off            synchronous_mode in the DCS config; waits until a member is
#                                 "Sync Standby" (on) or none is (off), at most 30 s
#   ctl.sh kill-leader            SIGKILL the leader's postmaster (Patroni fails over:
#                                 primary_start_timeout is 0, so it does not restart it in place)
# stop-patroni.sh ENV_FILE stops everything and removes the directory and ENV_FILE.
set -euo pipefail

env_file=${1:?usage: start-patroni.sh ENV_FILE}
# Resolved now: the servers below run with their own working directory (see the cd below).
env_file=$(realpath -m -- "$env_file")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [[ -f $env_file ]]; then bash "$here/stop-patroni.sh" "$env_file"; fi

pg_bin=${CONNPOOL_PG_BIN:-/usr/lib/postgresql/15/bin}
for p in patroni patronictl etcd; do
    command -v $p >/dev/null || { echo "start-patroni.sh: $p not found (apt-get install patroni etcd-server)" >&2; exit 1; }
done
if [[ $(id -u) == 0 ]]; then
    server_user=postgres
    as_server() { runuser -u "$server_user" -- "$@"; }
else
    server_user=$(id -un)
    as_server() { "$@"; }
fi

state=$(mktemp -d /tmp/connpool-patroni.XXXXXX)
chmod 755 "$state"
# Every server (started as another user when we are root) inherits this working directory: it
# must be one that user can enter, and never the checkout, which may sit in a 0700 directory.
cd "$state"
# Name the directory in ENV_FILE at once: if this script is killed (a fixture timeout), the
# stop script still finds what to stop. The full facts replace it at the end.
printf "%s='%s'\n" CONNPOOL_PATRONI_STATE_DIR "$state" > "$env_file"
finished=0
cleanup_unless_finished() {
    (( finished )) && return
    bash "$here/stop-patroni.sh" --state "$state"
}
trap cleanup_unless_finished EXIT
log() { echo "start-patroni.sh: $*" >&2; }
fail() {
    log "$*"
    for f in "$state"/*.log; do [[ -f $f ]] && { log "--- $f"; tail -n 15 "$f" >&2; }; done
    exit 1
}

# Distinct free ports below the ephemeral range. A lost race shows up as a start that never
# becomes ready, and fails the fixture loudly rather than hanging.
declare -A taken
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 12000 ))
        [[ -n ${taken[$p]:-} ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then taken[$p]=1; echo "$p"; return 0; fi
    done
    return 1
}
etcd_client=$(free_port); etcd_peer=$(free_port)
declare -a pg_ports api_ports
for n in 0 1 2; do pg_ports[$n]=$(free_port); api_ports[$n]=$(free_port); done

rand() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
admin_password=admin-$(rand)
repl_password=repl-$(rand)
app_password=app-$(rand)

# --- etcd ----------------------------------------------------------------------------------------
mkdir -p "$state/etcd"
setsid etcd --name etcd0 --data-dir "$state/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_client" --advertise-client-urls "http://127.0.0.1:$etcd_client" \
    --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
    --initial-cluster "etcd0=http://127.0.0.1:$etcd_peer" --enable-v2=true \
    </dev/null >"$state/etcd.log" 2>&1 &
echo $! > "$state/etcd.pid"
up=0
for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$etcd_client") 2>/dev/null; then up=1; break; fi
    sleep 0.1
done
(( up )) || fail "etcd did not start"

# --- Patroni nodes -------------------------------------------------------------------------------
for n in 0 1 2; do
    cat >"$state/p$n.yml" <<YML
scope: connpool-test
name: p$n
log:
  level: WARNING
restapi:
  listen: 127.0.0.1:${api_ports[$n]}
  connect_address: 127.0.0.1:${api_ports[$n]}
etcd3:
  hosts: 127.0.0.1:$etcd_client
bootstrap:
  dcs:
    ttl: 10
    loop_wait: 1
    retry_timeout: 4
    maximum_lag_on_failover: 16777216
    primary_start_timeout: 0
    postgresql:
      # A killed leader may have WAL its replicas never got: rewind it (or, failing that,
      # rebuild it) so that it can come back as a replica of the new leader.
      use_pg_rewind: true
      remove_data_directory_on_rewind_failure: true
      remove_data_directory_on_diverged_timelines: true
      parameters:
        max_connections: 100
        superuser_reserved_connections: 3
        wal_level: replica
        hot_standby: "on"
        max_wal_senders: 10
        max_replication_slots: 10
        wal_keep_size: 64MB
        fsync: "off"
        full_page_writes: "off"
        shared_buffers: 16MB
  initdb:
    - encoding: UTF8
    - no-locale
    - auth: scram-sha-256
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 scram-sha-256
    - host all all 127.0.0.1/32 scram-sha-256
postgresql:
  listen: 127.0.0.1:${pg_ports[$n]}
  connect_address: 127.0.0.1:${pg_ports[$n]}
  data_dir: $state/p$n
  bin_dir: $pg_bin
  pgpass: $state/pgpass$n
  authentication:
    superuser:
      username: postgres
      password: $admin_password
    replication:
      username: replicator
      password: $repl_password
  parameters:
    unix_socket_directories: '$state'
  basebackup:
    - checkpoint: fast
YML
done
chmod 600 "$state"/p*.yml
if [[ $(id -u) == 0 ]]; then chown -R "$server_user:" "$state"; fi
# The bootstrap leader first, so that it does not wait for the others' races for the key.
# setsid and setpriv both exec (neither forks here), so $! is Patroni's own pid, which
# stop-patroni.sh signals; runuser would fork and keep Patroni out of reach of that signal.
start_node() {
    if [[ $(id -u) == 0 ]]; then
        HOME=$state setsid setpriv --reuid="$server_user" --regid="$server_user" --init-groups \
            patroni "$state/p$1.yml" </dev/null >"$state/p$1.log" 2>&1 &
    else
        setsid patroni "$state/p$1.yml" </dev/null >"$state/p$1.log" 2>&1 &
    fi
    echo $! > "$state/p$1.pid"
}
start_node 0
admin() { PGCONNECT_TIMEOUT=3 PGPASSWORD=$admin_password timeout 10 "$pg_bin/psql" -X -q -tA -h 127.0.0.1 -p "$1" -U postgres -d postgres "${@:2}"; }
ready=0
for _ in $(seq 1 300); do
    if [[ $(admin "${pg_ports[0]}" -c "SELECT NOT pg_is_in_recovery()" 2>/dev/null) == t ]]; then ready=1; break; fi
    sleep 0.1
done
(( ready )) || fail "the first Patroni node did not become leader"
start_node 1
start_node 2
admin "${pg_ports[0]}" -v ON_ERROR_STOP=1 <<SQL >/dev/null || fail "creating the app role failed"
CREATE ROLE app LOGIN PASSWORD '$app_password';
CREATE DATABASE connpool_test OWNER app;
SQL
streaming=0
for _ in $(seq 1 600); do
    if [[ $(admin "${pg_ports[0]}" -c "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND application_name IN ('p1', 'p2')" 2>/dev/null) == 2 ]]; then
        streaming=1
        break
    fi
    sleep 0.1
done
(( streaming )) || fail "the replicas are not streaming"

{
    printf '#!/usr/bin/env bash\n# Acts on the Patroni cluster in %s (see start-patroni.sh).\nset -euo pipefail\n' "$state"
    printf 'state=%q\n' "$state"
    printf 'cd "$state"\n'
    cat <<'CTL'
leader() { patronictl -c "$state/p0.yml" list -f json | /usr/bin/python3 -c 'import json,sys; print(next(m["Member"] for m in json.load(sys.stdin) if m["Role"] == "Leader"))'; }
sync_standbys() { patronictl -c "$state/p0.yml" list -f json | /usr/bin/python3 -c 'import json,sys; print(sum(m["Role"] == "Sync Standby" for m in json.load(sys.stdin)))'; }
case ${1:?usage: ctl.sh leader|switchover FROM TO|sync on|off|kill-leader} in
    leader) leader ;;
    sync)
        case ${2:?usage: ctl.sh sync on|off} in on) v=true ;; off) v=false ;; *) echo "ctl.sh: sync on|off" >&2; exit 2 ;; esac
        timeout 30 patronictl -c "$state/p0.yml" edit-config --force -s "synchronous_mode=$v" >/dev/null
        for _ in $(seq 1 300); do
            n=$(sync_standbys)
            if [[ $v == true && $n -ge 1 ]] || [[ $v == false && $n == 0 ]]; then exit 0; fi
            sleep 0.1
        done
        echo "ctl.sh: synchronous_mode=$v not in effect after 30 s" >&2
        exit 1
        ;;
    switchover) timeout 60 patronictl -c "$state/p0.yml" switchover --leader "$2" --candidate "$3" --force >/dev/null ;;
    kill-leader)
        l=$(leader)
        kill -9 "$(head -n 1 "$state/$l/postmaster.pid")"
        echo "$l"
        ;;
    *) echo "ctl.sh: unknown command $1" >&2; exit 2 ;;
esac
CTL
} >"$state/ctl.sh"
chmod 755 "$state/ctl.sh"

tmp_env=$(mktemp "$env_file.XXXXXX")
fact() { printf "%s='%s'\n" "$1" "$2" >>"$tmp_env"; }
fact CONNPOOL_PATRONI_STATE_DIR "$state"
fact CONNPOOL_REPLICA_CTL "$state/ctl.sh"
fact CONNPOOL_REPLICA_PASSWORD "$app_password"
for n in 0 1 2; do
    # The proxies in front of the set (tests/support/proxy) check each node's REST API.
    fact "CONNPOOL_REPLICA_PORT_$n" "${pg_ports[$n]}"
    fact "CONNPOOL_PATRONI_API_PORT_$n" "${api_ports[$n]}"
    fact "CONNPOOL_REPLICA_CONNINFO_$n" "host=127.0.0.1 port=${pg_ports[$n]} user=app dbname=connpool_test password=$app_password sslmode=disable"
    fact "CONNPOOL_REPLICA_ADMIN_CONNINFO_$n" "host=127.0.0.1 port=${pg_ports[$n]} user=postgres dbname=postgres password=$admin_password sslmode=disable"
done
chmod 600 "$tmp_env"
mv "$tmp_env" "$env_file"
finished=1
log "Patroni p0 (leader), p1, p2 on ${pg_ports[*]}; etcd on $etcd_client; facts in $env_file"
