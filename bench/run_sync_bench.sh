#!/usr/bin/env bash
# run_sync_bench.sh <directory of the bench binaries> [repetitions]: mproc's Lock against the
# process-shared pthread mutex, the POSIX semaphore and CPython, in one run; medians and ratios.
set -euo pipefail
bin=$1/sync_bench
reps=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
source "$(dirname "$0")/gbench.sh"
run_gbench "$bin" "$reps" "0.3"
cpython='{}'
if command -v python3 >/dev/null; then cpython=$(python3 "$here/peers/cpython_lock.py" 3); fi
python3 - "$json" "$cpython" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
cpy = json.loads(sys.argv[2])
med = {}
for b in data["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    name = b["run_name"].removesuffix("/real_time").removesuffix("/manual_time")
    med[name] = b.get("items_per_second") or b["real_time"]
lock, mutex, sem = med["BM_LockUncontended"], med["BM_PthreadMutexUncontended"], med["BM_PosixSemaphoreUncontended"]
print("uncontended acquire+release (ns):")
print(f"  mproc Lock {lock:7.1f}   pthread mutex {mutex:7.1f} ({mutex / lock:.2f}x mproc)   POSIX sem {sem:7.1f} ({sem / lock:.2f}x)"
      + (f"   CPython {cpy['uncontended_ns']:7.1f} ({cpy['uncontended_ns'] / lock:.1f}x)" if cpy else ""))
four = {k: med[f"BM_{k}FourProcesses"] for k in ("Lock", "ValueGetLock", "PthreadMutex", "PosixSemaphore")}
print("4 processes x 100,000 locked increments (increments/s):")
print(f"  mproc Lock {four['Lock']:.3g}   pthread mutex {four['PthreadMutex']:.3g} (mproc {four['Lock'] / four['PthreadMutex']:.2f}x)"
      f"   POSIX sem {four['PosixSemaphore']:.3g} (mproc {four['Lock'] / four['PosixSemaphore']:.1f}x)"
      + (f"   CPython {cpy['four_processes_per_s']:.3g} (mproc {four['Lock'] / cpy['four_processes_per_s']:.0f}x)" if cpy else ""))
print(f"  with the Value's own RLock (get_lock): {four['ValueGetLock']:.3g} ({four['ValueGetLock'] / four['PthreadMutex']:.2f}x pthread,"
      f" {four['ValueGetLock'] / four['PosixSemaphore']:.1f}x sem)")
PY
