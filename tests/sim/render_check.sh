#!/usr/bin/env bash
# Renders connpool-sim's HTML report in headless Chromium (label sim): the DOM holds each
# chart's svg, and the screenshot is a real picture, not a blank page. Exit 77 (skipped)
# only when chromium is not installed.
#   render_check.sh CONNPOOL_SIM WORK_DIR
set -euo pipefail
sim=${1:?usage: render_check.sh CONNPOOL_SIM WORK_DIR}
work=${2:?usage: render_check.sh CONNPOOL_SIM WORK_DIR}
browser=$(command -v chromium || command -v chromium-browser || true)
if [[ -z $browser ]]; then
    echo "render_check.sh: SKIPPED: chromium is not installed (apt-get install chromium)" >&2
    exit 77
fi
rm -rf "$work" && mkdir -p "$work"
fail() { echo "render_check.sh: FAIL: $*" >&2; exit 1; }

"$sim" --rate 0:300,120:1000 --hold exp:10ms --duration 5m --max-size 4 --adaptive 2:30 --instances 2 \
    --max-connections 60 --sweep 2:16 --sweep-duration 30s --target-p99 5ms --nested-demo 4:3 \
    --html "$work/report.html" --quiet

flags=(--headless --no-sandbox --disable-gpu --hide-scrollbars --user-data-dir="$work/profile")
timeout 120 "$browser" "${flags[@]}" --dump-dom "file://$work/report.html" >"$work/dom.html" 2>"$work/chromium.log" \
    || { cat "$work/chromium.log" >&2; fail "chromium --dump-dom failed"; }
for id in chart-sweep chart-connections chart-queue chart-adaptive chart-nested; do
    grep -q "<svg id=\"$id\"" "$work/dom.html" || fail "the rendered DOM has no svg#$id"
done
[[ $(grep -c '<polyline class="series"' "$work/dom.html") -ge 8 ]] || fail "the charts have too few lines"

timeout 120 "$browser" "${flags[@]}" --screenshot="$work/report.png" --window-size=1200,1600 \
    "file://$work/report.html" >>"$work/chromium.log" 2>&1 || { cat "$work/chromium.log" >&2; fail "chromium --screenshot failed"; }
[[ -f $work/report.png ]] || fail "no screenshot"
size=$(stat -c %s "$work/report.png")
# A blank 1200x1600 page compresses to a few kB; charts with text and lines are far larger.
(( size > 40000 )) || fail "the screenshot is only $size bytes: nothing rendered?"
python3 - "$work/report.png" <<'PY'
import struct, sys, zlib
data = open(sys.argv[1], "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
w, h = struct.unpack(">II", data[16:24])
assert (w, h) == (1200, 1600), (w, h)
print("render_check.sh: screenshot", w, "x", h, len(data), "bytes")
PY
echo "render_check.sh: ok"
