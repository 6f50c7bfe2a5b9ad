#!/usr/bin/env bash
# run_manager_bench.sh <directory of the bench binaries> [repetitions]: a Manager proxy call in a
# loop against CPython's manager in the same run; medians and the ratio the issue's target names
# (CPython's time / mproc's, at least 5).
set -euo pipefail
bin=$1/manager_bench
reps=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
source "$(dirname "$0")/gbench.sh"
run_gbench "$bin" "$reps" "0.3"
cpython='{}'
if command -v python3 >/dev/null; then cpython=$(python3 "$here/peers/cpython_manager.py" "$reps"); fi
python3 - "$json" "$cpython" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
cpy = json.loads(sys.argv[2])
med = {b["run_name"].split("/real_time")[0]: b["real_time"] for b in data["benchmarks"] if b.get("aggregate_name") == "median"}
nan = float("nan")
rows = [("list.append (us/call)", med.get("BM_ManagerListAppend", nan), cpy.get("list_append_us", nan)),
        ("dict set + get (us/pair)", med.get("BM_ManagerDictSetGet", nan), cpy.get("dict_set_get_us", nan)),
        ("registered method (us/call)", med.get("BM_RegisteredMethodCall", nan), cpy.get("method_call_us", nan)),
        ("queue put + get (us/pair)", med.get("BM_ServerQueuePutGet", nan), cpy.get("queue_put_get_us", nan))]
print(f"{'measure':<28} {'mproc':>8} {'CPython':>9} {'ratio':>7}  target")
for name, mine, theirs in rows:
    print(f"{name:<28} {mine:8.2f} {theirs:9.2f} {theirs / mine:6.1f}x  >= 5x")
PY
