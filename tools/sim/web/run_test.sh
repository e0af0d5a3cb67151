#!/usr/bin/env bash
# The browser simulator's test (label web): installs puppeteer-core (the lock file's
# versions, no browser download) under WORK_DIR and runs test_page.js against Debian's
# Chromium. Exit 77 (CTest's SKIP_RETURN_CODE) when Chromium or npm is missing or the npm
# registry cannot be reached.
#
#   run_test.sh CONNPOOL_SIM WORK_DIR [SCREENSHOT]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
sim=${1:?usage: run_test.sh CONNPOOL_SIM WORK_DIR [SCREENSHOT]}
work=${2:?usage: run_test.sh CONNPOOL_SIM WORK_DIR [SCREENSHOT]}
shot=${3:-$work/screenshot.png}

chromium=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$chromium" ]; then echo "SKIP: no chromium (apt-get install chromium)"; exit 77; fi
if ! command -v npm >/dev/null; then echo "SKIP: no npm"; exit 77; fi

mkdir -p "$work"
work=$(cd "$work" && pwd)  # npm runs in it
# npm ci only when the lock file changed: a warm build tree runs in seconds.
if ! cmp -s "$here/package-lock.json" "$work/package-lock.json" || [ ! -d "$work/node_modules/puppeteer-core" ]; then
    cp "$here/package.json" "$here/package-lock.json" "$work/"
    if ! (cd "$work" && npm ci --no-audit --no-fund --ignore-scripts >"$work/npm.log" 2>&1); then
        cat "$work/npm.log"
        echo "SKIP: npm ci failed (is the npm registry reachable?)"
        exit 77
    fi
fi
# A fresh profile each run (the test's --user-data-dir).
rm -rf "$work/profile"
cp "$here/test_page.js" "$work/"
exec node "$work/test_page.js" --chromium "$chromium" --sim "$sim" --page "$root/docs/simulator/index.html" \
    --work "$work" --screenshot "$shot"
