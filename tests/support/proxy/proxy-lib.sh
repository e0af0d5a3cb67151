# Shell helpers shared by the proxy launchers (start-haproxy.sh, start-pgpool.sh); sourced, never run.
# The caller has `cd`-ed into its state directory and set `state` and `env_file`.

# Distinct free ports below the ephemeral range. A lost race shows up as a start that never
# becomes ready, and fails the fixture loudly rather than hanging.
declare -A proxy_taken_ports
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 12000 ))
        [[ -n ${proxy_taken_ports[$p]:-} ]] && continue
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then proxy_taken_ports[$p]=1; echo "$p"; return 0; fi
    done
    return 1
}

# start_detached NAME CMD...: runs CMD in its own session, as `postgres` when we are root, with
# its output in $state/NAME.log and its pid in $state/NAME.pid. setsid and setpriv both exec, so
# the pid is the server's own, which the stop scripts signal.
start_detached() {
    local name=$1
    shift
    if [[ $(id -u) == 0 ]]; then
        HOME=$state setsid setpriv --reuid=postgres --regid=postgres --init-groups "$@" \
            </dev/null >"$state/$name.log" 2>&1 &
    else
        setsid "$@" </dev/null >"$state/$name.log" 2>&1 &
    fi
    echo $! >"$state/$name.pid"
}

# stop_pidfile FILE SIGNAL: signals the pid in FILE, waits up to 15 s for it to exit, then SIGKILLs it.
stop_pidfile() {
    local pid
    [[ -f $1 ]] || return 0
    pid=$(tr -d '\0' <"$1" | head -n 1)
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$2" "$pid" 2>/dev/null
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null
}

# eventually TRIES CMD...: runs CMD every 0.1 s until it succeeds, at most TRIES times.
eventually() {
    local tries=$1
    shift
    for _ in $(seq 1 "$tries"); do
        "$@" && return 0
        sleep 0.1
    done
    return 1
}

# A fact line for the env file: KEY='value'.
fact() { printf "%s='%s'\n" "$1" "$2"; }

# proxy_setup NAME PROGRAM PACKAGE DEPENDENCY_ENV: what every launcher does first. Stops a
# previous instance of ENV_FILE, checks for PROGRAM, sources the fixture it stands in front of,
# makes the state directory and cds into it (the server inherits this working directory: one
# its user can enter, never the checkout), names it in ENV_FILE at once (a killed launcher is
# still cleaned up), and arms the cleanup. Needs `here` and `env_file`.
proxy_setup() {
    local program=$2 package=$3 dependency=$4
    proxy_name=$1
    if [[ -f $env_file ]]; then bash "$here/stop-proxy.sh" "$env_file"; fi
    command -v "$program" >/dev/null || { echo "$proxy_name: $program not found (apt-get install $package)" >&2; exit 1; }
    [[ -f $dependency ]] || { echo "$proxy_name: no $dependency (did its fixture run?)" >&2; exit 1; }
    # shellcheck disable=SC1090
    source "$dependency"
    pg_bin=${CONNPOOL_PG_BIN:-/usr/lib/postgresql/15/bin}
    state=$(mktemp -d /tmp/connpool-proxy.XXXXXX)
    chmod 755 "$state"
    cd "$state"
    proxy_log=$state/$program.log
    fact CONNPOOL_PROXY_STATE_DIR "$state" >"$env_file"
    finished=0
    trap '(( finished )) || bash "$here/stop-proxy.sh" "$env_file"' EXIT
}

fail() {
    echo "$proxy_name: $*" >&2
    [[ -f $proxy_log ]] && tail -n 20 "$proxy_log" >&2
    exit 1
}
