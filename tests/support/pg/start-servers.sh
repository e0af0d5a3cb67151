#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 and a PgBouncer (transaction mode) in front of it, and writes the
# connection facts to an env file (KEY=VALUE lines, also fit for `source`).
#
#   start-servers.sh ENV_FILE [--no-pgbouncer]
#
# The cluster lives in a fresh temporary directory: scram-sha-256 for every client, a Unix socket plus
# 127.0.0.1 on a free port, TLS with a CA and a server certificate made here with openssl (plus a
# second, unrelated CA for "wrong CA" tests), fsync=off because the data is thrown away.
# initdb and postgres refuse to run as root, so as root everything runs as the `postgres` user
# through runuser; as any other user it runs as that user. stop-servers.sh ENV_FILE undoes it all.
set -euo pipefail

env_file=${1:?usage: start-servers.sh ENV_FILE [--no-pgbouncer]}
# Resolved now: the servers below run with their own working directory (see the cd below).
env_file=$(realpath -m -- "$env_file")
with_bouncer=1
[[ ${2:-} == --no-pgbouncer ]] && with_bouncer=0

# A previous run that never reached its cleanup left servers behind: stop them first, so that
# overwriting the env file never orphans a running server.
if [[ -f $env_file ]]; then
    bash "$(dirname "${BASH_SOURCE[0]}")/stop-servers.sh" "$env_file"
fi

pg_bin=${CONNPOOL_PG_BIN:-/usr/lib/postgresql/15/bin}
[[ -x $pg_bin/initdb ]] || { echo "start-servers.sh: no initdb in $pg_bin (apt-get install postgresql-15)" >&2; exit 1; }
if (( with_bouncer )) && ! command -v pgbouncer >/dev/null; then
    echo "start-servers.sh: pgbouncer not found (apt-get install pgbouncer)" >&2
    exit 1
fi

# Run a command as the server's user: root cannot run initdb/postgres.
if [[ $(id -u) == 0 ]]; then
    server_user=postgres
    as_server() { runuser -u "$server_user" -- "$@"; }
else
    server_user=$(id -un)
    as_server() { "$@"; }
fi

state=$(mktemp -d /tmp/connpool-pg.XXXXXX)
chmod 755 "$state"
# Every server (started as another user when we are root) inherits this working directory: it
# must be one that user can enter, and never the checkout, which may sit in a 0700 directory.
cd "$state"
mkdir -p "$state/sock" "$state/tls" "$state/bouncer"
# On any failure before the env file is written, stop whatever did start and remove the directory:
# nobody else could find it to clean it up.
finished=0
cleanup_unless_finished() {
    (( finished )) && return
    if [[ -f $state/bouncer/pgbouncer.pid ]]; then kill "$(cat "$state/bouncer/pgbouncer.pid")" 2>/dev/null; fi
    if [[ -f $state/data/postmaster.pid ]]; then
        as_server "$pg_bin/pg_ctl" -D "$state/data" -m immediate -w -t 30 stop >/dev/null 2>&1
    fi
    rm -rf "$state"
}
trap cleanup_unless_finished EXIT
log() { echo "start-servers.sh: $*" >&2; }
fail() {
    log "$*"
    for f in "$state/postgres.log" "$state/bouncer/pgbouncer.log"; do
        [[ -f $f ]] && { log "--- $f"; tail -n 30 "$f" >&2; }
    done
    exit 1
}

# A port nobody listens on now, below Linux's ephemeral range (32768-60999), where the local ports of
# outgoing connections would make bind() fail although nothing listens. Another process may still
# take it first: the server starts below retry with a new port when bind() fails.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 12000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return 0
        fi
    done
    return 1
}

pg_port=$(free_port) || fail "no free port"
bouncer_port=$(free_port) || fail "no free port"
while [[ $bouncer_port == "$pg_port" ]]; do bouncer_port=$(free_port); done

# Passwords are random per run, so no test can pass by knowing them.
rand() { od -An -N12 -tx1 /dev/urandom | tr -d ' \n'; }
admin_password=admin-$(rand)
app_password=app-$(rand)

# --- TLS: a CA, a server certificate for localhost / 127.0.0.1, and an unrelated CA ----------------
# EC keys: generating them takes milliseconds, unlike RSA.
(
    cd "$state/tls"
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout ca.key -out ca.crt \
        -days 2 -subj "/CN=connpool test CA" 2>/dev/null
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout wrong-ca.key \
        -out wrong-ca.crt -days 2 -subj "/CN=connpool unrelated CA" 2>/dev/null
    openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout server.key -out server.csr \
        -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
    openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 \
        -extfile san.ext 2>/dev/null
    chmod 600 server.key ca.key wrong-ca.key
) || fail "openssl failed"

printf '%s\n' "$admin_password" > "$state/pwfile"
chmod 600 "$state/pwfile"
if [[ $(id -u) == 0 ]]; then
    chown -R "$server_user:" "$state"
fi

# --- PostgreSQL ----------------------------------------------------------------------------------
as_server "$pg_bin/initdb" -D "$state/data" -U postgres --auth=scram-sha-256 --pwfile="$state/pwfile" \
    -E UTF8 --no-locale >"$state/initdb.log" 2>&1 || { cat "$state/initdb.log" >&2; fail "initdb failed"; }
rm -f "$state/pwfile"

cat >>"$state/data/postgresql.conf" <<EOF
# connpool test cluster: throwaway, so durability is off.
listen_addresses = '127.0.0.1'
include_if_exists = '$state/data/port.conf'
unix_socket_directories = '$state/sock'
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 200
shared_buffers = 32MB
ssl = on
ssl_cert_file = '$state/tls/server.crt'
ssl_key_file = '$state/tls/server.key'
password_encryption = 'scram-sha-256'
log_min_messages = warning
EOF
cat >"$state/data/pg_hba.conf" <<EOF
local all all scram-sha-256
host  all all 127.0.0.1/32 scram-sha-256
EOF

# port.conf holds only the port, so that a retry after a lost race for it changes nothing else.
started=0
for _ in 1 2 3 4 5; do
    printf "port = %s\n" "$pg_port" > "$state/data/port.conf"
    [[ $(id -u) == 0 ]] && chown "$server_user:" "$state/data/port.conf"
    if as_server "$pg_bin/pg_ctl" -D "$state/data" -l "$state/postgres.log" -w -t 60 start >/dev/null; then
        started=1
        break
    fi
    grep -q "could not bind\|Address already in use" "$state/postgres.log" || break
    log "port $pg_port was taken, trying another"
    pg_port=$(free_port) || break
done
(( started )) || fail "postgres did not start"

admin_conninfo="host=$state/sock port=$pg_port user=postgres dbname=postgres password=$admin_password"
PGPASSWORD=$admin_password "$pg_bin/psql" -X -q -v ON_ERROR_STOP=1 \
    "host=$state/sock port=$pg_port user=postgres dbname=postgres" <<EOF || fail "creating the app role failed"
CREATE ROLE app LOGIN PASSWORD '$app_password';
CREATE DATABASE connpool_test OWNER app;
EOF

# --- PgBouncer, transaction mode -----------------------------------------------------------------
if (( with_bouncer )); then
    # A plain-text password in the auth file lets PgBouncer do scram with the client and the server.
    printf '"app" "%s"\n' "$app_password" > "$state/bouncer/userlist.txt"
    cat >"$state/bouncer/pgbouncer.ini" <<EOF
[databases]
connpool_test = host=127.0.0.1 port=$pg_port dbname=connpool_test

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $bouncer_port
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $state/bouncer/userlist.txt
pool_mode = transaction
max_client_conn = 500
default_pool_size = 20
server_tls_sslmode = disable
logfile = $state/bouncer/pgbouncer.log
pidfile = $state/bouncer/pgbouncer.pid
ignore_startup_parameters = extra_float_digits
EOF
    if [[ $(id -u) == 0 ]]; then chown -R "$server_user:" "$state/bouncer"; chmod 600 "$state/bouncer/userlist.txt"; fi
    listening=0
    for _ in 1 2 3 4 5; do
        sed -i "s/^listen_port = .*/listen_port = $bouncer_port/" "$state/bouncer/pgbouncer.ini"
        as_server pgbouncer -d -q "$state/bouncer/pgbouncer.ini" || fail "pgbouncer did not start"
        # -d returns before the listener is up (or before it gives up): wait for it, bounded.
        for _ in $(seq 1 100); do
            if (exec 3<>"/dev/tcp/127.0.0.1/$bouncer_port") 2>/dev/null; then listening=1; break; fi
            grep -q "nowhere to listen" "$state/bouncer/pgbouncer.log" 2>/dev/null && break
            sleep 0.05
        done
        (( listening )) && break
        grep -q "nowhere to listen" "$state/bouncer/pgbouncer.log" 2>/dev/null || break
        log "port $bouncer_port was taken, trying another"
        : > "$state/bouncer/pgbouncer.log"
        while bouncer_port=$(free_port) && [[ $bouncer_port == "$pg_port" ]]; do :; done
    done
    (( listening )) || fail "pgbouncer is not listening"
fi

# A restart helper for tests (pg_ctl must run as the server's user).
cat >"$state/restart.sh" <<EOF
#!/usr/bin/env bash
# Restarts the test PostgreSQL with fast shutdown (every session is cut).
set -e
cd "$state"
if [[ \$(id -u) == 0 ]]; then
    exec runuser -u $server_user -- "$pg_bin/pg_ctl" -D "$state/data" -l "$state/postgres.log" -w -t 60 -m fast restart
fi
exec "$pg_bin/pg_ctl" -D "$state/data" -l "$state/postgres.log" -w -t 60 -m fast restart
EOF
chmod 755 "$state/restart.sh"

tmp_env=$(mktemp "$env_file.XXXXXX")
bouncer_conninfo=
(( with_bouncer )) && bouncer_conninfo="host=127.0.0.1 port=$bouncer_port user=app dbname=connpool_test password=$app_password sslmode=disable"
# Values are single-quoted so that `source ENV_FILE` works; none of them contains a quote.
fact() { printf "%s='%s'\n" "$1" "$2" >>"$tmp_env"; }
fact CONNPOOL_PG_STATE_DIR "$state"
fact CONNPOOL_PG_BIN "$pg_bin"
fact CONNPOOL_PG_HOST 127.0.0.1
fact CONNPOOL_PG_PORT "$pg_port"
fact CONNPOOL_PG_SOCKET_DIR "$state/sock"
fact CONNPOOL_PG_USER app
fact CONNPOOL_PG_PASSWORD "$app_password"
fact CONNPOOL_PG_DBNAME connpool_test
fact CONNPOOL_PG_CONNINFO "host=127.0.0.1 port=$pg_port user=app dbname=connpool_test password=$app_password sslmode=disable"
fact CONNPOOL_PG_SOCKET_CONNINFO "host=$state/sock port=$pg_port user=app dbname=connpool_test password=$app_password"
fact CONNPOOL_PG_ADMIN_CONNINFO "$admin_conninfo"
fact CONNPOOL_PG_CA "$state/tls/ca.crt"
fact CONNPOOL_PG_WRONG_CA "$state/tls/wrong-ca.crt"
fact CONNPOOL_PG_RESTART "$state/restart.sh"
fact CONNPOOL_PG_BOUNCER_PORT "$( (( with_bouncer )) && echo "$bouncer_port" || true)"
fact CONNPOOL_PG_BOUNCER_CONNINFO "$bouncer_conninfo"
chmod 600 "$tmp_env"
mv "$tmp_env" "$env_file"
finished=1
log "PostgreSQL on 127.0.0.1:$pg_port$( (( with_bouncer )) && echo ", PgBouncer on 127.0.0.1:$bouncer_port"); facts in $env_file"
