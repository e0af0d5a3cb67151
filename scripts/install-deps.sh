#!/usr/bin/env bash
# Installs what connpool's build, tests, examples and benches need on Debian 12, and only
# what is missing: a machine that has everything runs no apt-get at all.
#
# Usage: scripts/install-deps.sh   (as root, or with sudo available)
set -euo pipefail

packages=(
    build-essential cmake ninja-build pkg-config   # toolchain (g++ 12, CMake 3.25)
    libboost1.81-dev                               # Boost.Asio, Boost.System
    libpq-dev postgresql pgbouncer                 # connpool::pg and its test servers
    libmariadb-dev mariadb-server                  # connpool::mysql and its test server
    catch2                                         # tests
    libbenchmark-dev gnuplot-nox                   # benches and their charts
    openssl                                        # TLS certificates for the servers in tests
    clang libclang-rt-14-dev                       # second compiler, its sanitizer runtimes
    clang-16 clang-19 libclang-rt-16-dev           # clang presets (C++20 source_location)
    libc++-16-dev libc++abi-16-dev                 # the libc++ preset
    libsoci-dev libpoco-dev                        # bench peers
    prometheus prometheus-cpp-dev                  # metrics: promtool, a real server, connpool::prometheus
    chromium                                       # headless check of connpool-sim's HTML report
    patroni python3-etcd etcd-server etcd-client   # HA tests (label patroni); patroni's etcd backend
    curl python3                                   # test scripts: Prometheus readiness, JSON checks, free ports
    ccache                                         # test.sh compiles through it when present
    haproxy pgpool2                                # proxy tests: HAProxy + Patroni, pgpool-II (label proxy)
    doxygen                                        # the API reference (target docs_api, label docs)
    lld-19 libc++-19-dev-wasm32 libc++abi-19-dev-wasm32 libclang-rt-19-dev-wasm32 wasi-libc
                                                   # the browser simulator's wasm build (sim_web)
)
# The browser test drives Chromium with puppeteer-core from npm. A machine whose Node.js came
# from elsewhere keeps it; Debian's nodejs and npm only where there is none.
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    packages+=(nodejs npm)
fi

missing=()
for package in "${packages[@]}"; do
    # dpkg -s also succeeds for a removed package whose config files remain: check the state.
    status=$(dpkg-query -W -f='${Status}' "$package" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$package")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "install-deps: all ${#packages[@]} packages are installed"
    exit 0
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    sudo=(sudo)
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update
"${sudo[@]}" apt-get install -y --no-install-recommends "${missing[@]}"
