#!/usr/bin/env bash
# Starts pgpool-II (4.3) in streaming-replication mode with load balancing in front of the set
# that start-cluster.sh described in CLUSTER_ENV (node 0 the primary, node 1 a standby), in a
# fresh temporary directory, on a free port of 127.0.0.1. Clients authenticate to pgpool with
# scram-sha-256 (pool_hba.conf); pgpool authenticates to the servers with the passwords of
# pool_passwd, which it needs in clear text ("TEXT" entries) to run SCRAM itself.
# Writes ENV_FILE: CLUSTER_ENV's facts, then CONNPOOL_PROXY_STATE_DIR, CONNPOOL_PGPOOL_PORT and
# CONNPOOL_PGPOOL_CONNINFO (the app role).
#
#   start-pgpool.sh ENV_FILE CLUSTER_ENV
#
# Load balancing: backend_weight 0 for the primary and 1 for the standby, so that every read
# pgpool may balance goes to the standby and the tests can tell where a statement ran.
# stop-proxy.sh ENV_FILE stops it and removes the directory and ENV_FILE.
set -euo pipefail

env_file=$(realpath -m -- "${1:?usage: start-pgpool.sh ENV_FILE CLUSTER_ENV}")
cluster_env=$(realpath -m -- "${2:?usage: start-pgpool.sh ENV_FILE CLUSTER_ENV}")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$here/proxy-lib.sh"
proxy_setup start-pgpool.sh pgpool pgpool2 "$cluster_env"

port=$(free_port)
pcp_port=$(free_port)
cat >"$state/pgpool.conf" <<CONF
backend_clustering_mode = 'streaming_replication'
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$state'
pcp_listen_addresses = ''
pcp_port = $pcp_port
pcp_socket_dir = '$state'
pid_file_name = '$state/pgpool-own.pid'
logdir = '$state'
use_watchdog = off

backend_hostname0 = '127.0.0.1'
backend_port0 = $CONNPOOL_REPLICA_PORT_0
backend_weight0 = 0
backend_flag0 = 'DISALLOW_TO_FAILOVER'
backend_hostname1 = '127.0.0.1'
backend_port1 = $CONNPOOL_REPLICA_PORT_1
backend_weight1 = 1
backend_flag1 = 'DISALLOW_TO_FAILOVER'
backend_application_name1 = 'n1'

enable_pool_hba = on
pool_passwd = 'pool_passwd'
allow_clear_text_frontend_auth = off

num_init_children = 32
max_pool = 1
connection_cache = on
reset_query_list = 'ABORT; DISCARD ALL'

load_balance_mode = on
disable_load_balance_on_write = 'transaction'
statement_level_load_balance = off

sr_check_period = 1
sr_check_user = 'app'
sr_check_database = 'connpool_test'
health_check_period = 0
failover_on_backend_error = off

log_destination = 'stderr'
log_min_messages = warning
CONF
printf 'host all all 127.0.0.1/32 scram-sha-256\nlocal all all scram-sha-256\n' >"$state/pool_hba.conf"
# Clear text, 0600 in a directory only this run uses: pgpool runs SCRAM to the servers itself.
printf 'app:TEXT%s\n' "$CONNPOOL_REPLICA_PASSWORD" >"$state/pool_passwd"
printf 'pcp:%s\n' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n' | md5sum | cut -d' ' -f1)" >"$state/pcp.conf"
chmod 600 "$state/pool_passwd" "$state/pcp.conf" "$state/pgpool.conf"
if [[ $(id -u) == 0 ]]; then chown -R postgres: "$state"; fi
# -n: stay in the foreground (start_detached keeps its pid); -D: forget any earlier node status.
start_detached pgpool pgpool -n -D -f "$state/pgpool.conf" -a "$state/pool_hba.conf" -F "$state/pcp.conf"

through() { PGCONNECT_TIMEOUT=2 PGPASSWORD=$CONNPOOL_REPLICA_PASSWORD timeout 5 "$pg_bin/psql" -X -q -tA \
    -h 127.0.0.1 -p "$port" -U app -d connpool_test -c "$1" 2>/dev/null; }
# Both nodes up in pgpool's view, node 0 the primary (SHOW pool_nodes: node_id, ..., status, ..., role).
nodes_ready() { [[ $(through "SHOW pool_nodes" | awk -F'|' '{print $1 $4 $7}' | tr -d ' \n') == 0upprimary1upstandby ]]; }
eventually 150 nodes_ready || fail "pgpool does not see a primary and a standby: $(through "SHOW pool_nodes" || true)"

# ctl.sh set NAME VALUE: changes a reloadable parameter of pgpool.conf and reloads pgpool
# (SIGHUP); returns once a new session sees the value (PGPOOL SHOW), bounded. Sessions already
# open keep the value they started with.
{
    printf '#!/usr/bin/env bash\n# Changes the pgpool-II in %s (see start-pgpool.sh).\nset -euo pipefail\n' "$state"
    printf 'state=%q\nport=%q\npg_bin=%q\n' "$state" "$port" "$pg_bin"
    printf 'export PGPASSWORD=%q\n' "$CONNPOOL_REPLICA_PASSWORD"
    cat <<'CTL'
cd "$state"
[[ ${1:-} == set && $# == 3 ]] || { echo "usage: ctl.sh set NAME VALUE" >&2; exit 2; }
name=$2 value=$3
grep -q "^$name = " pgpool.conf || { echo "ctl.sh: $name is not in pgpool.conf" >&2; exit 2; }
# Rewritten in place (cat >), so that the file keeps its owner and mode.
conf=$(sed "s|^$name = .*|$name = '$value'|" pgpool.conf)
printf '%s\n' "$conf" >pgpool.conf
kill -HUP "$(cat pgpool.pid)"
for _ in $(seq 1 100); do
    seen=$(PGCONNECT_TIMEOUT=2 timeout 5 "$pg_bin/psql" -X -q -tA -h 127.0.0.1 -p "$port" -U app -d connpool_test \
        -c "PGPOOL SHOW $name" 2>/dev/null || true)
    [[ $seen == "$value" ]] && exit 0
    sleep 0.1
done
echo "ctl.sh: pgpool does not show $name = $value after the reload" >&2
exit 1
CTL
} >"$state/ctl.sh"
chmod 700 "$state/ctl.sh"

tmp_env=$(mktemp "$env_file.XXXXXX")
{
    grep -v '^CONNPOOL_PROXY_STATE_DIR=' "$cluster_env"
    fact CONNPOOL_PROXY_STATE_DIR "$state"
    fact CONNPOOL_PGPOOL_PORT "$port"
    fact CONNPOOL_PGPOOL_CTL "$state/ctl.sh"
    fact CONNPOOL_PGPOOL_CONNINFO \
        "host=127.0.0.1 port=$port user=app dbname=connpool_test password=$CONNPOOL_REPLICA_PASSWORD sslmode=disable"
} >"$tmp_env"
chmod 600 "$tmp_env"
mv "$tmp_env" "$env_file"
finished=1
echo "start-pgpool.sh: pgpool-II on 127.0.0.1:$port over nodes on $CONNPOOL_REPLICA_PORT_0 (primary) and $CONNPOOL_REPLICA_PORT_1; facts in $env_file" >&2
