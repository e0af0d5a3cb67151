#!/usr/bin/env bash
# Starts a throwaway MariaDB for the connpool MySQL tests and writes what clients need to
# ENV_FILE (KEY=VALUE lines, sourceable by bash):
#   CONNPOOL_MYSQL_HOST/PORT/SOCKET/USER/PASSWORD/DATABASE  a password user and its database
#   CONNPOOL_MYSQL_TLS_USER     same password, but the server refuses it without TLS
#   CONNPOOL_MYSQL_SSL_CA       the harness CA that signed the server certificate
#   CONNPOOL_MYSQL_DIR/PID      the temporary directory and the server's pid (for stop/restart)
#
# usage: start.sh ENV_FILE
# The data lives in a fresh directory under ${TMPDIR:-/tmp}, not next to ENV_FILE, because the
# server runs as the unprivileged `mysql` user (when started by root, as in CI) and must be
# able to reach it; a build tree under /root is not reachable by that user.
set -euo pipefail

env_file=${1:?usage: start.sh ENV_FILE}
# Resolved now: the servers below run with their own working directory (see the cd below).
env_file=$(realpath -m -- "$env_file")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

find_tool() {
    local name
    for name in "$@"; do
        if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
        for d in /usr/sbin /usr/local/sbin /usr/libexec; do
            if [ -x "$d/$name" ]; then echo "$d/$name"; return 0; fi
        done
    done
    echo "start.sh: none of $* found" >&2
    return 1
}
mariadbd=$(find_tool mariadbd mysqld)
install_db=$(find_tool mariadb-install-db mysql_install_db)
client=$(find_tool mariadb mysql)

# A stale server from an aborted run would keep the socket and port; stop it first.
if [ -f "$env_file" ]; then "$here/stop.sh" "$env_file" || true; fi

dir=$(mktemp -d "${TMPDIR:-/tmp}/connpool-mysql.XXXXXX")
chmod 755 "$dir"
# Every server (started as another user when we are root) inherits this working directory: it
# must be one that user can enter, and never the checkout, which may sit in a 0700 directory.
cd "$dir"
server_pid=
# On any failure, leave no server and no directory behind: nobody would ever stop them.
cleanup_on_error() {
    local pid=$server_pid
    [ -f "$dir/mariadbd.pid" ] && pid=$(cat "$dir/mariadbd.pid")
    [ -n "$pid" ] && kill -KILL "$pid" 2>/dev/null
    rm -rf "$dir"
}
trap cleanup_on_error ERR
mkdir -p "$dir/data" "$dir/tls" "$dir/tmp"

if [ "$(id -u)" = 0 ]; then run_as=mysql; else run_as=$(id -un); fi

# --- TLS: a CA of our own and a server certificate for 127.0.0.1 / localhost -------------
(
    cd "$dir/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=connpool test CA" \
        -keyout ca-key.pem -out ca.pem >/dev/null 2>&1
    openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
        -keyout server-key.pem -out server.csr >/dev/null 2>&1
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n' >server.ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial -days 7 \
        -extfile server.ext -out server-cert.pem >/dev/null 2>&1
    rm -f server.csr server.ext ca.srl
)

# --- data directory ----------------------------------------------------------------------
if [ "$run_as" = mysql ]; then chown -R mysql:mysql "$dir"; fi
"$install_db" --no-defaults --user="$run_as" --datadir="$dir/data" \
    --auth-root-authentication-method=normal --skip-test-db >"$dir/install.log" 2>&1 || {
    cat "$dir/install.log" >&2
    cleanup_on_error
    exit 1
}

# --- a free TCP port: ask the kernel for one ---------------------------------------------
free_port() {
    if command -v python3 >/dev/null 2>&1; then
        python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
    else
        local p
        while :; do
            p=$((20000 + RANDOM % 20000))
            if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return; fi
        done
    fi
}
port=$(free_port)

# The server command line lives in a script so that restart.sh starts the same server again.
# Small buffers and no binary log: this server starts in a second or two and holds test data only.
cat >"$dir/run-server.sh" <<RUN
#!/usr/bin/env bash
exec "$mariadbd" --no-defaults --user="$run_as" --datadir="$dir/data" \\
    --socket="$dir/mysql.sock" --port="$port" --bind-address=127.0.0.1 \\
    --pid-file="$dir/mariadbd.pid" --log-error="$dir/error.log" --tmpdir="$dir/tmp" \\
    --skip-log-bin --skip-name-resolve --performance-schema=OFF \\
    --innodb-buffer-pool-size=16M --innodb-log-file-size=16M --innodb-use-native-aio=0 \\
    --max-connections=300 \\
    --ssl-ca="$dir/tls/ca.pem" --ssl-cert="$dir/tls/server-cert.pem" --ssl-key="$dir/tls/server-key.pem"
RUN
chmod 755 "$dir/run-server.sh"

# Detached, with every standard stream redirected: CTest waits for the pipes of a fixture
# test to close, and must not wait for the server.
setsid "$dir/run-server.sh" </dev/null >"$dir/mariadbd.out" 2>&1 &
server_pid=$!

wait_ready() {
    for _ in $(seq 1 300); do
        if "$client" --no-defaults -uroot --socket="$dir/mysql.sock" -e 'SELECT 1' >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.2
    done
    echo "start.sh: MariaDB did not come up; error log:" >&2
    cat "$dir/error.log" >&2 || true
    return 1
}
wait_ready

password="cp-$(openssl rand -hex 12)"
database=connpool_test
"$client" --no-defaults -uroot --socket="$dir/mysql.sock" <<SQL
CREATE DATABASE $database;
CREATE USER 'connpool'@'%' IDENTIFIED BY '$password';
CREATE USER 'connpool'@'localhost' IDENTIFIED BY '$password';
GRANT ALL ON $database.* TO 'connpool'@'%';
GRANT ALL ON $database.* TO 'connpool'@'localhost';
CREATE USER 'connpool_tls'@'%' IDENTIFIED BY '$password' REQUIRE SSL;
GRANT ALL ON $database.* TO 'connpool_tls'@'%';
SQL

cat >"$env_file" <<ENV
CONNPOOL_MYSQL_HOST=127.0.0.1
CONNPOOL_MYSQL_PORT=$port
CONNPOOL_MYSQL_SOCKET=$dir/mysql.sock
CONNPOOL_MYSQL_USER=connpool
CONNPOOL_MYSQL_PASSWORD=$password
CONNPOOL_MYSQL_DATABASE=$database
CONNPOOL_MYSQL_TLS_USER=connpool_tls
CONNPOOL_MYSQL_SSL_CA=$dir/tls/ca.pem
CONNPOOL_MYSQL_DIR=$dir
CONNPOOL_MYSQL_PID=$(cat "$dir/mariadbd.pid")
ENV
trap - ERR
echo "MariaDB $("$mariadbd" --version | awk '{print $3}') on 127.0.0.1:$port and $dir/mysql.sock; facts in $env_file"
