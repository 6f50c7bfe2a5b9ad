#!/usr/bin/env bash
# run_queue_bench.sh <directory of the bench binaries> [repetitions] [more queue_bench flags]:
# Queue/Pipe against Boost.Lockfree (spsc_queue, queue) in shared memory, a raw futex round trip,
# Boost.Interprocess's message_queue and CPython's multiprocessing, in one run; medians and ratios.
# Each mproc case present in the binary is printed against its peer; the peers are printed always.
set -euo pipefail
bin=$1/queue_bench
reps=${2:-5}
shift $(($# < 2 ? $# : 2))
here=$(cd "$(dirname "$0")" && pwd)
source "$(dirname "$0")/gbench.sh"
run_gbench "$bin" "$reps" "0.2" "$@"
cpython='{}'
if command -v python3 >/dev/null; then cpython=$(python3 "$here/peers/cpython_queue.py" 3); fi
python3 - "$json" "$cpython" "$here" <<'PY'
import json, sys

sys.path.insert(0, sys.argv[3])
from queue_targets import ALSO, CPYTHON, PEERS, TARGETS  # noqa: E402

data = json.load(open(sys.argv[1]))
cpy = json.loads(sys.argv[2])
med, errors = {}, {}
for b in data["benchmarks"]:
    name = b["run_name"].removesuffix("/real_time").removesuffix("/manual_time")
    if b.get("error_occurred"):
        errors[name] = b.get("error_message", "error")
    elif b.get("aggregate_name") == "median":
        # Round trips in seconds per round trip (smaller is better); one-way latencies ("ow",
        # smaller is better) from the manual time per iteration; the rest in items per second.
        if "round_trip" in b:
            med[name] = ("rt", b["round_trip"])
        elif "items_per_second" in b:
            med[name] = ("tp", b["items_per_second"])
        else:
            scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]
            med[name] = ("ow", b["real_time"] * scale)


def fmt(kind, value):
    if kind == "ow":
        return f"{value * 1e6:9.1f} us/msg"
    return f"{value * 1e9:9.0f} ns/rt" if kind == "rt" else f"{value:10.3g} /s"


def cpython_ratio(name):
    """mproc-or-peer against CPython, as 'Nx faster' (items/s ratio or round-trip time ratio)."""
    key = CPYTHON.get(name)
    if key not in cpy or name not in med:
        return None
    kind, value = med[name]
    return cpy[key] / (value * 1e6) if kind == "rt" else value / cpy[key]


print("peers (medians):")
for name in [n for n in dict.fromkeys([*med, *errors]) if not n.startswith("BM_Mproc")]:
    if name in errors:
        print(f"  {name:34} ERROR: {errors[name]}")
    elif name in med:
        r = cpython_ratio(name)
        print(f"  {name:34} {fmt(*med[name])}" + (f"   {r:7.1f}x CPython" if r else ""))
if cpy:
    print(f"  CPython mp.Queue 1P1C {cpy['queue_1p1c_per_s']:.3g}/s   2P2C {cpy['queue_2p2c_per_s']:.3g}/s"
          f"   mp.Pipe round trip {cpy['pipe_round_trip_us']:.1f} us"
          f"   bytes 64 {cpy['queue_bytes64_per_s']:.3g}/s   bytes 4096 {cpy['queue_bytes4096_per_s']:.3g}/s")

rows = [n for n in PEERS if n in med or n in errors]
if rows:
    print("mproc against its peer (ratio: items/s mproc/peer, target >=; round trip mproc/peer, target <=):")
for name in rows:
    peer = PEERS[name]
    target, cpy_target = TARGETS[name]
    if name in errors or peer not in med:
        print(f"  {name:34} ERROR: {errors.get(name) or errors.get(peer, 'peer missing')}")
        continue
    (kind, mine), (_, theirs) = med[name], med[peer]
    ratio = mine / theirs
    lower_is_better = kind in ("rt", "ow")
    met = ratio <= target if lower_is_better else ratio >= target
    line = (f"  {name:34} {fmt(kind, mine)}   {peer} {fmt(kind, theirs)}   ratio {ratio:.2f}"
            f" (target {'<=' if lower_is_better else '>='} {target:g}: {'met' if met else 'NOT met'})")
    r = cpython_ratio(name)
    if r:
        line += f"   {r:.{0 if r >= 10 else 1}f}x CPython" + (f" (target >= {cpy_target}: {'met' if r >= cpy_target else 'NOT met'})" if cpy_target else "")
    if ALSO.get(name) in med:
        line += f"   ratio {mine / med[ALSO[name]][1]:.2f} against {ALSO[name]}"
    print(line)
if errors:
    sys.exit(1)
PY
