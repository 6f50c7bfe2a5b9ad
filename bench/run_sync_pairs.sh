#!/usr/bin/env bash
# run_sync_pairs.sh <directory of the bench binaries> [rounds] [case ...]: issue 3's Lock targets
# as paired ratios (bench/paired.py; see run_queue_pairs.sh for why).
set -euo pipefail
bin=$1/sync_bench
rounds=${2:-9}
shift $(($# < 2 ? $# : 2))
exec python3 "$(dirname "$0")/paired.py" "$bin" "$rounds" 0.3 sync_targets "$@"
