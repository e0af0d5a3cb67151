#!/usr/bin/env bash
# End to end (label sim): connpool-sim runs from its command line, writes a table, JSON and
# an HTML report, answers the sweep, and shows the nested-acquire deadlock.
#   run_e2e.sh CONNPOOL_SIM WORK_DIR
set -euo pipefail
sim=${1:?usage: run_e2e.sh CONNPOOL_SIM WORK_DIR}
work=${2:?usage: run_e2e.sh CONNPOOL_SIM WORK_DIR}
rm -rf "$work" && mkdir -p "$work"
fail() { echo "run_e2e.sh: FAIL: $*" >&2; exit 1; }

"$sim" --rate 1000 --hold exp:10ms --duration 10m --instances 4 --max-connections 100 --reserved 3 \
    --max-size 6 --sweep 2:10 --sweep-duration 60s --target-p99 5ms --nested-demo 4:3 \
    --json "$work/report.json" --html "$work/report.html" --export-hold "$work/hold.json" >"$work/table.txt"

grep -q "smallest meeting target" "$work/table.txt" || fail "the table marks no size meeting the target"
grep -q "allows max_size <= 19" "$work/table.txt" || fail "the table misses the budget rule"
grep -q "deadlocks until acquire_timeout" "$work/table.txt" || fail "the nested demo shows no deadlock"
python3 - "$work/report.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["sweep"]
assert s["smallest_meeting"] is not None, "no size meets the target"
assert s["budget_limit"] == 19, s["budget_limit"]  # 80 % of (100 - 3) = 77, / 4
rows = {r["max_size"]: r for r in d["nested"]["rows"]}
safe = d["nested"]["safe_max_size"]
assert safe == 9, safe
assert rows[safe]["result"]["timeouts"] == 0, "timeouts at the safe size"
assert any(r["result"]["nested_timeouts"] > 0 for m, r in rows.items() if m < safe), "no deadlock below the safe size"
busy = d["run"]["mean_busy"]
assert 9.5 < busy < 10.5, busy  # 1000/s x 10 ms
print("run_e2e.sh: json ok, smallest size", s["smallest_meeting"], "busy", round(busy, 2))
PY
grep -q '<svg id="chart-sweep"' "$work/report.html" || fail "no sweep chart"
! grep -q '<script' "$work/report.html" || fail "the report has a script"

# The exported use-time histogram replays as a hold model.
"$sim" --rate 500 --hold "hist:$work/hold.json" --duration 60s --max-size 12 --json - --quiet >"$work/replay.json"
python3 -c "
import json; d = json.load(open('$work/replay.json'))['run']
assert 3.5 < d['mean_busy'] < 7, d['mean_busy']  # 500/s x ~10 ms, read from log2 buckets
print('run_e2e.sh: replayed histogram, busy', round(d['mean_busy'], 2))"

# Bad input is refused with the name of what is wrong.
if "$sim" --max-sise 5 2>"$work/err.txt"; then fail "an unknown flag was accepted"; fi
grep -q "max-sise" "$work/err.txt" || fail "the error does not name the flag"
echo "run_e2e.sh: ok"
