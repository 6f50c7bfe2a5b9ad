"""Paired ratios: each mproc case against its peer, run back to back in rounds.

    paired.py BINARY ROUNDS MIN_TIME TARGETS_MODULE [CASE ...]

This machine's speed drifts for minutes at a time (a neighbour's load, where the hypervisor puts
the two vCPUs): a ratio of two medians can compare a fast stretch with a slow one even when the
repetitions are interleaved. Here every round runs a case and its peer one right after the other
(in a random order), each for MIN_TIME seconds, and takes the ratio of that pair; the report is the
median of the per-round ratios, their range, and in how many rounds the target was met. A pair
takes a second or so, shorter than the drifts, so a ratio compares like with like.

TARGETS_MODULE names a module beside this script with either PAIRS, a list of (mproc case, peer,
target), or PEERS and TARGETS as in queue_targets. CASE limits the run to those mproc cases. Exit
status 1 if a run failed.
"""
import importlib
import json
import random
import re
import statistics
import subprocess
import sys
from pathlib import Path


def measure(binary, name, min_time):
    """(kind, value) of one run of one benchmark: kind rt/ow (seconds, smaller is better) or tp
    (items per second)."""
    pattern = "^" + re.escape(name) + "(/manual_time|/real_time)?$"
    out = subprocess.run([binary, f"--benchmark_filter={pattern}", f"--benchmark_min_time={min_time}",
                          "--benchmark_format=json"], check=True, capture_output=True, text=True).stdout
    runs = [b for b in json.loads(out)["benchmarks"] if b.get("run_type") == "iteration"]
    if len(runs) != 1:
        raise RuntimeError(f"{name}: expected one run, got {len(runs)}")
    b = runs[0]
    if b.get("error_occurred"):
        raise RuntimeError(f"{name}: {b.get('error_message', 'error')}")
    if "round_trip" in b:
        return "rt", b["round_trip"]
    if "items_per_second" in b:
        return "tp", b["items_per_second"]
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[b.get("time_unit", "ns")]
    return "ow", b["real_time"] * scale


def main():
    binary, rounds, min_time, module = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    sys.path.insert(0, str(Path(__file__).parent))
    table = importlib.import_module(module)
    pairs = getattr(table, "PAIRS", None) or [(c, table.PEERS[c], table.TARGETS[c][0]) for c in table.PEERS]
    listed = subprocess.run([binary, "--benchmark_list_tests"], check=True, capture_output=True,
                            text=True).stdout.split()
    present = {re.sub(r"/(manual|real)_time$", "", n) for n in listed}
    unknown = [c for c in sys.argv[5:] if c not in {p[0] for p in pairs}]
    if unknown:
        sys.exit(f"paired.py: no such case in {module}: {', '.join(unknown)}")
    pairs = [p for p in pairs if (not sys.argv[5:] or p[0] in sys.argv[5:]) and p[0] in present and p[1] in present]
    ratios = {p: [] for p in pairs}
    kinds, failed = {}, False
    for r in range(rounds):
        for pair in pairs:
            case, peer, _ = pair
            order = [case, peer]
            random.shuffle(order)
            try:
                got = {name: measure(binary, name, min_time) for name in order}
            except (RuntimeError, subprocess.CalledProcessError) as e:
                print(f"round {r + 1}: {case}: {e}", file=sys.stderr)
                failed = True
                continue
            (kind, mine), (peer_kind, theirs) = got[case], got[peer]
            if kind != peer_kind:
                print(f"round {r + 1}: {case} reports {kind} but {peer} {peer_kind}: not comparable",
                      file=sys.stderr)
                failed = True
                continue
            kinds[pair] = kind
            ratios[pair].append(mine / theirs)
    print(f"paired ratios over {rounds} rounds (mproc / peer per round: items/s, target >=; "
          "time, target <=):")
    for pair in pairs:
        case, peer, target = pair
        values = sorted(ratios[pair])
        if not values:
            print(f"  {case:42} vs {peer:40} no successful round")
            continue
        lower_is_better = kinds[pair] in ("rt", "ow")
        met = sum(1 for v in values if (v <= target if lower_is_better else v >= target))
        median = statistics.median(values)
        verdict = "met" if (median <= target if lower_is_better else median >= target) else "NOT met"
        print(f"  {case:42} vs {peer:40} median {median:5.2f}  [{values[0]:.2f} .. {values[-1]:.2f}]"
              f"  target {'<=' if lower_is_better else '>='} {target:g}: {verdict}"
              f" ({met}/{len(values)} rounds)")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
