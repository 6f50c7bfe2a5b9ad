#!/usr/bin/env bash
# run_pool_bench.sh <directory of the bench binaries> [repetitions] [more pool_bench flags]: mproc's
# Pool and CPython's (bench/peers/cpython_pool.py, 2 workers, fork) in one run; medians, ratios and
# the issue's targets. The sum of powers is also timed on 2 raw fork()ed processes (the control:
# what 2 processes can do on this machine), and the skewed workload against its balanced optimum
# (half the serial time) under work stealing and under the pool's central-queue mode.
set -euo pipefail
bin=$1/pool_bench
reps=${2:-5}
shift $(($# < 2 ? $# : 2))
here=$(cd "$(dirname "$0")" && pwd)
source "$(dirname "$0")/gbench.sh"
run_gbench "$bin" "$reps" "" "$@"
cpython='{}'
if command -v python3 >/dev/null; then cpython=$(python3 "$here/peers/cpython_pool.py" 3); fi
python3 - "$json" "$cpython" <<'PY'
import json, sys

data = json.load(open(sys.argv[1]))
cpy = json.loads(sys.argv[2])
med = {}
for b in data["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    name = b["run_name"].split("/")[0] + ("/" + b["run_name"].split("/")[1] if b["run_name"].split("/")[1:2] and not b["run_name"].split("/")[1].startswith(("iterations", "real_time", "manual_time")) and not b["run_name"].split("/")[1].isdigit() else "")
    unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b["time_unit"]]
    med[name] = b["real_time"] * unit  # seconds
    if "speedup" in b:
        med[name + ":speedup"] = b["speedup"]
nan = float("nan")
def m(name): return med.get(name, nan)
def c(key): return cpy.get(key, nan)

tasks = 100_000
apply_async_us = m("BM_ApplyAsyncPipelined") / tasks * 1e6
apply_us = m("BM_ApplyRoundTrip") * 1e6
map_per_s = 1e6 / m("BM_MapTrivial")
create_ms = m("BM_CreateToFirstResult") * 1e3
serial, pool, raw = m("BM_SumOfPowersSerial"), m("BM_SumOfPowersPool"), m("BM_SumOfPowersRawFork")
print(f"{'measure':<34} {'mproc':>12} {'CPython':>12} {'ratio':>9}  target")
print(f"{'apply_async pipelined (us/task)':<34} {apply_async_us:12.2f} {c('apply_async_pipelined_us'):12.1f} "
      f"{c('apply_async_pipelined_us') / apply_async_us:8.1f}x  <= 2 us/task")
print(f"{'apply round trip (us)':<34} {apply_us:12.2f} {c('apply_roundtrip_us'):12.1f} "
      f"{c('apply_roundtrip_us') / apply_us:8.1f}x  (reported)")
print(f"{'map 10^6 trivial (items/s)':<34} {map_per_s:12.3g} {c('map_trivial_per_s'):12.3g} "
      f"{map_per_s / c('map_trivial_per_s'):8.1f}x  >= 10x CPython")
print(f"{'creation to first result (ms)':<34} {create_ms:12.2f} {c('create_to_first_result_ms'):12.2f} "
      f"{create_ms / c('create_to_first_result_ms'):9.3f}  <= 0.1 of CPython")
print()
print(f"sum of powers, n = heavy: one process {serial * 1e3:.0f} ms; pool(2) {pool * 1e3:.0f} ms, speed-up "
      f"{serial / pool:.2f}x (target >= 1.9x); 2 raw fork()s {raw * 1e3:.0f} ms, speed-up {serial / raw:.2f}x "
      f"(the control); pool / control {pool / raw:.2f}")
print(f"  paired (one process, then at once the pool; median of the repetitions' ratios): pool "
      f"{m('BM_SumOfPowersSpeedupPool:speedup'):.2f}x (target >= 1.9x), 2 raw fork()s "
      f"{m('BM_SumOfPowersSpeedupRawFork:speedup'):.2f}x")
if "sum_of_powers_serial_s" in cpy:
    print(f"CPython, n = 10^6: one process {c('sum_of_powers_serial_s') * 1e3:.0f} ms, its Pool(2) "
          f"{c('sum_of_powers_pool_s') * 1e3:.0f} ms")
opt = m("BM_SkewedSerial") / 2
print(f"skewed (512 tasks, costs 1 or 100 units): balanced optimum {opt * 1e3:.1f} ms (serial / 2)")
for label, key in (("default chunks, work stealing", "BM_Skewed/stealing"), ("default chunks, central queue", "BM_Skewed/central"),
                   ("chunksize 4, work stealing", "BM_SkewedChunk4/stealing"), ("chunksize 4, central queue", "BM_SkewedChunk4/central")):
    print(f"  {label:<32} {m(key) * 1e3:8.1f} ms  {m(key) / opt:5.2f}x the optimum")
PY
