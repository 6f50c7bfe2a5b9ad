#!/usr/bin/env bash
# run_event_bench.sh <directory of the bench binaries> [repetitions]: Event wake-ups against a
# raw shared cache line (spinning) and a raw futex wake (sleeping), pinned to two cores.
set -euo pipefail
bin=$1/event_bench
reps=${2:-5}
source "$(dirname "$0")/gbench.sh"
run_gbench "$bin" "$reps" "0.2"
python3 - "$json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
med = {}
for b in data["benchmarks"]:
    if b.get("aggregate_name") != "median":
        continue
    name = b["run_name"].split("/")[0]
    med[name] = b["round_trip"] * 1e9 if "round_trip" in b else b["real_time"] * 1e3  # ns
raw, ev = med["BM_RawCacheLineRoundTrip"], med["BM_EventRoundTripSpinning"]
print(f"spinning round trip (ns): Event {ev:.1f}   raw cache line {raw:.1f}   ratio {ev / raw:.2f} (target <= 2)")
raw, ev = med["BM_RawFutexWakeLatency"], med["BM_EventWakeLatencySleeping"]
print(f"set() to a sleeping waiter (us): Event {ev / 1e3:.1f}   raw futex wake {raw / 1e3:.1f}   ratio {ev / raw:.2f} (target <= 1.2)")
PY
