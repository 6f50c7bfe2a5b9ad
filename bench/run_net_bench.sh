#!/usr/bin/env bash
# run_net_bench.sh <directory of the bench binaries> [repetitions]: a Listener/Client
# send_bytes/recv_bytes round trip over TCP loopback against a raw socket ping-pong of the same
# size (the control), in one run; medians and the ratio the issue's target names (<= 1.2).
set -euo pipefail
bin=$1/net_bench
reps=${2:-5}
source "$(dirname "$0")/gbench.sh"
run_gbench "$bin" "$reps" "0.3"
python3 - "$json" <<'PY'
import json, sys
data = json.load(open(sys.argv[1]))
med = {b["run_name"].split("/real_time")[0]: b["real_time"] for b in data["benchmarks"] if b.get("aggregate_name") == "median"}
print(f"{'size':>6} {'raw TCP us':>11} {'Listener/Client us':>19} {'ratio':>6}  target")
for size in (64, 4096):
    raw, mine = med.get(f"BM_RawTcpPingPong/{size}"), med.get(f"BM_ListenerClientPingPong/{size}")
    print(f"{size:>6} {raw:11.2f} {mine:19.2f} {mine / raw:6.2f}  <= 1.2")
PY
