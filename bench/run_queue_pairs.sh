#!/usr/bin/env bash
# run_queue_pairs.sh <directory of the bench binaries> [rounds] [case ...]: issue 4's queue and
# pipe targets as paired ratios (bench/paired.py): each mproc case and its peer run back to back,
# round after round, and the report is the median of the per-round ratios. The figure to quote on
# this noisy machine; run_queue_bench.sh gives the absolute numbers and CPython's.
set -euo pipefail
bin=$1/queue_bench
rounds=${2:-9}
shift $(($# < 2 ? $# : 2))
exec python3 "$(dirname "$0")/paired.py" "$bin" "$rounds" 0.2 queue_targets "$@"
