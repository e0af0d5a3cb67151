#!/usr/bin/env bash
# Runs a command with the facts of start-servers.sh's ENV_FILE exported as environment variables.
#   with-env.sh ENV_FILE COMMAND [ARG...]
set -euo pipefail
env_file=${1:?usage: with-env.sh ENV_FILE COMMAND [ARG...]}
shift
[[ -f $env_file ]] || { echo "with-env.sh: $env_file not found (did the server fixture run?)" >&2; exit 1; }
set -a
# shellcheck disable=SC1090
source "$env_file"
set +a
exec "$@"
