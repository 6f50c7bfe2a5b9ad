#!/usr/bin/env bash
# run_process_bench.sh <directory of the bench binaries> [repetitions]: start + join per start method, the
# raw controls and CPython in one run; prints medians and the ratios the issue's targets name.
set -euo pipefail
bin=$1/process_bench
reps=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
source "$(dirname "$0")/gbench.sh"
run_gbench "$bin" "$reps" "0.5"
py=$(command -v python3 || true)
cpython='{}'
if [[ -n $py ]]; then cpython=$("$py" "$here/peers/cpython_process.py" 30); fi
python3 - "$json" "$cpython" <<'PY' 2>/dev/null || { echo "python3 is needed to print the table"; cat "$json"; }
import json, sys
data = json.load(open(sys.argv[1]))
cpy = json.loads(sys.argv[2])
med = {b["run_name"].removesuffix("/real_time"): b["real_time"] for b in data["benchmarks"] if b.get("aggregate_name") == "median"}
def us(name): return med.get(name, float("nan"))
raw_fork, raw_spawn = us("BM_RawForkWaitpid"), us("BM_RawPosixSpawnSelf")
rows = [("fork", us("BM_ProcessStartJoin/fork"), raw_fork),
        ("spawn", us("BM_ProcessStartJoin/spawn"), raw_spawn),
        ("forkserver", us("BM_ProcessStartJoin/forkserver"), us("BM_ProcessStartJoin/spawn"))]
print(f"{'method':<11} {'mproc us':>9} {'control':<22} {'control us':>10} {'ratio':>6} {'CPython us':>10} {'CPython/mproc':>13}")
controls = {"fork": "raw fork+waitpid", "spawn": "raw posix_spawn+exec", "forkserver": "mproc spawn"}
for method, mine, control in rows:
    c = cpy.get(method)
    cus = c * 1e6 if c else float("nan")
    print(f"{method:<11} {mine:9.1f} {controls[method]:<22} {control:10.1f} {mine / control:6.2f} {cus:10.1f} {cus / mine:13.1f}")
PY
