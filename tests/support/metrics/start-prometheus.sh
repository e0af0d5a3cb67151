#!/usr/bin/env bash
# Starts metrics examples and a throwaway Prometheus that scrapes them, for tests/integration/metrics.
#
#   start-prometheus.sh ENV_FILE JOB=PROGRAM [JOB=PROGRAM...] -- [EXAMPLE ARGS...]
#
# Each PROGRAM runs with --port 0 --seconds 180 and the EXAMPLE ARGS; it prints the port it
# listens on. Prometheus (/usr/bin/prometheus, or $CONNPOOL_PROMETHEUS) listens on 127.0.0.1 at
# a free port, keeps its TSDB in a temporary directory and scrapes every second, one job per
# PROGRAM. ENV_FILE receives the facts the tests read; stop-prometheus.sh ENV_FILE undoes it all.
# Every process started here also ends on its own (the examples after 180 s, Prometheus under
# timeout 300), so a run that never reaches the stop script leaves nothing behind for long.
set -uo pipefail

env_file=${1:?usage: start-prometheus.sh ENV_FILE JOB=PROGRAM... -- [ARGS...]}
# Resolved now: the servers below run with their own working directory (see the cd below).
env_file=$(realpath -m -- "$env_file")
shift
jobs=()
while [[ $# -gt 0 && $1 != -- ]]; do jobs+=("$1"); shift; done
[[ ${1:-} == -- ]] && shift
example_args=("$@")
[[ ${#jobs[@]} -gt 0 ]] || { echo "start-prometheus.sh: no JOB=PROGRAM given" >&2; exit 2; }

prometheus=${CONNPOOL_PROMETHEUS:-/usr/bin/prometheus}
[[ -x $prometheus ]] || { echo "start-prometheus.sh: $prometheus not found (Debian: apt-get install prometheus)" >&2; exit 1; }
command -v curl >/dev/null || { echo "start-prometheus.sh: curl not found (it asks Prometheus whether it is ready)" >&2; exit 1; }

state=$(mktemp -d /tmp/connpool-prometheus.XXXXXX)
# Every server (started as another user when we are root) inherits this working directory: it
# must be one that user can enter, and never the checkout, which may sit in a 0700 directory.
cd "$state"
pids=()

log() { echo "start-prometheus.sh: $*" >&2; }
fail() {
    log "$*"
    for f in "$state"/*.log; do [[ -f $f ]] && { log "--- $f"; tail -n 20 "$f" >&2; }; done
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null; done
    rm -rf "$state"
    exit 1
}

# A port nobody listens on now, below Linux's ephemeral range, so that the local ports of
# outgoing connections do not collide with it. Prometheus cannot report a port it chose itself.
free_port() {
    local p
    for _ in $(seq 1 200); do
        p=$(( 20000 + RANDOM % 12000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}

{
    echo "global:"
    echo "  scrape_interval: 1s"
    echo "  scrape_timeout: 1s"
    echo "scrape_configs:"
} > "$state/prometheus.yml"

for job in "${jobs[@]}"; do
    name=${job%%=*}
    program=${job#*=}
    [[ -x $program ]] || fail "$program is not an executable"
    "$program" --port 0 --seconds 180 "${example_args[@]}" > "$state/$name.log" 2>&1 &
    pids+=($!)
    port=""
    for _ in $(seq 1 100); do  # 10 s
        port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$state/$name.log")
        [[ -n $port ]] && break
        kill -0 "${pids[-1]}" 2>/dev/null || fail "$name exited before listening"
        sleep 0.1
    done
    [[ -n $port ]] || fail "$name did not report its port within 10 s"
    {
        echo "  - job_name: $name"
        echo "    static_configs:"
        echo "      - targets: ['127.0.0.1:$port']"
    } >> "$state/prometheus.yml"
done

started=0
for _ in 1 2 3; do  # another process may take the port between the check and the bind
    prom_port=$(free_port) || fail "no free port"
    timeout 300 "$prometheus" \
        --config.file="$state/prometheus.yml" \
        --storage.tsdb.path="$state/tsdb" \
        --web.listen-address="127.0.0.1:$prom_port" \
        --log.level=warn > "$state/prometheus.log" 2>&1 &
    prom_pid=$!
    for _ in $(seq 1 200); do  # 20 s
        if ! kill -0 "$prom_pid" 2>/dev/null; then break; fi
        if curl -sf "http://127.0.0.1:$prom_port/-/ready" >/dev/null 2>&1; then started=1; break; fi
        sleep 0.1
    done
    [[ $started == 1 ]] && break
    kill "$prom_pid" 2>/dev/null
    grep -q "address already in use" "$state/prometheus.log" || break
done
[[ $started == 1 ]] || { pids+=("${prom_pid:-}"); fail "Prometheus did not become ready"; }
pids+=("$prom_pid")

{
    echo "CONNPOOL_PROMETHEUS_STATE_DIR='$state'"
    echo "CONNPOOL_PROMETHEUS_URL='http://127.0.0.1:$prom_port'"
    echo "CONNPOOL_PROMETHEUS_PORT='$prom_port'"
    echo "CONNPOOL_PROMETHEUS_PIDS='${pids[*]}'"
} > "$env_file"
log "Prometheus on 127.0.0.1:$prom_port scraping ${jobs[*]}"
