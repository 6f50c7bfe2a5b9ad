#!/usr/bin/env bash
# check_examples.sh <example-binary-dir> <start-method>: runs the seeds' example programs under
# one start method and checks what they print (exact lines, counts and order where the seed
# fixes them). Exits non-zero with the output on the first mismatch.
set -euo pipefail
dir=$1
export MPROC_START_METHOD=$2
fail() { printf 'FAIL: %s\n--- output ---\n%s\n' "$1" "$out" >&2; exit 1; }
count() { grep -c -- "$1" <<<"$out" || true; }

out=$(timeout 60 "$dir/seed001_process_basics" 2>&1)
expected=$'Worker process\nMain process\nWorker process: Process-2\nArgument: hello'
[[ $out == "$expected" ]] || fail "seed001 output"

out=$(timeout 60 "$dir/seed001_lock" 2>&1)
[[ $out == "Result: 400000" ]] || fail "seed001 Lock: exactly 400000 with the lock"

out=$(timeout 60 "$dir/seed001_value" 2>&1)
[[ $out == "Result: 4" ]] || fail "seed001 Value"

out=$(timeout 60 "$dir/seed001_queue" 2>&1)
expected=$'Consumed: 0\nConsumed: 1\nConsumed: 2\nConsumed: 3\nConsumed: 4'
[[ $out == "$expected" ]] || fail "seed001 Queue: the consumer gets 0..4 in order, then None ends it"

out=$(timeout 60 "$dir/seed000_multicore" 2>&1)
[[ $out == "multicore: 499999666667166666000000" ]] || fail "seed000 multicore: the two results collected"

# The efficiency comparison at the seed's n only (milliseconds), without the Python rows: every
# method, the pool's included, must equal the closed form, which is the seed's answer.
out=$(timeout 60 "$dir/efficiency_comparison" --quick --no-python 2>&1) || fail "efficiency_comparison --quick: exit status $?"
[[ $out == *$'\nclosed form: 499999666667166666000000\n'* ]] || fail "efficiency_comparison: the seed's answer"
[[ $(count ' OK$') == 4 && $(count 'WRONG') == 0 ]] || fail "efficiency_comparison: normal, multithread, multicore and pool.map all OK"

out=$(timeout 60 "$dir/seed001_pool" 2>&1)
[[ $out == "[1, 4, 9, 16, 25]" ]] || fail "seed001 Pool.map"

out=$(timeout 60 "$dir/seed002_pool" 2>&1)
expected=$'[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n4\n[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]'
[[ $out == "$expected" ]] || fail "seed002 pool: map, apply_async().get(), a list of apply_async results"

out=$(timeout 60 "$dir/seed003_pool_methods" 2>&1)
for line in 'apply: 3' 'callback: 42' 'apply_async: 42' 'successful: false' 'map: 1 4 9 16' 'map_async: 25 36' \
  'starmap: 3 7' 'starmap_async: 11' 'closed and joined' 'terminate: the pool was terminated before this task finished'; do
  grep -qxF -- "$line" <<<"$out" || fail "seed003 pool methods: '$line'"
done
grep -q '^error_callback: std::invalid_argument: negative: -1 (raised in .*PoolWorker-' <<<"$out" || fail "seed003 pool methods: error_callback"
[[ $(grep -n 'callback: 42' <<<"$out" | cut -d: -f1) -lt $(grep -n 'apply_async: 42' <<<"$out" | cut -d: -f1) ]] ||
  fail "seed003 pool methods: the callback runs before get() returns"

out=$(timeout 60 "$dir/seed001_manager" 2>&1)
[[ $out =~ ^Result:\ \[\'Process-[0-9]+\'(,\ \'Process-[0-9]+\'){3}\]$ ]] || fail "seed001 Manager: four names in the shared list"

out=$(timeout 60 "$dir/remote_manager" 2>&1) || fail "remote_manager: exit status $?"
expected=$'got: hello\na wrong key: digest sent was rejected'
[[ $out == "$expected" ]] || fail "remote_manager: the getter gets what the putter put; a wrong key is refused"

out=$(timeout 60 "$dir/seed003_process_list" 2>&1)
[[ $(count 'finished task') == 5 ]] || fail "seed003: five tasks finish"
[[ $(count 'stopped exitcode=0>') == 5 ]] || fail "seed003: five joined processes"
[[ $(grep 'finished task' <<<"$out" | head -n1) == 'Process-5 finished task 4' ]] || fail "seed003: shortest task ends first"

for variant in "" --subclass; do
  out=$(timeout 60 "$dir/seed004_four_tasks" --scale 0.01 $variant 2>&1)
  [[ $(count ' runing$') == 4 ]] || fail "seed004 $variant: four tasks start"
  [[ $(count ' \(run \)\?end$') == 4 ]] || fail "seed004 $variant: four tasks end (the parent waits at exit)"
  [[ $(count '^主$') == 1 ]] || fail "seed004 $variant: 主 printed once"
  for name in p1 p2 p3 p4; do
    grep -q "^$name runing$" <<<"$out" || fail "seed004 $variant: $name started"
  done
done
# Seed 000's running light on a simulated board of its own (parallel runs must not share lines):
# two cycles, then all LEDs off; --watch draws the row from a second process.
out=$(timeout 60 "$dir/waterlight" --cycles 2 --delay 0.01 --gpio "sim:check-$$-$MPROC_START_METHOD" 2>&1) ||
  fail "waterlight: exit status $?"
[[ $out == "流水灯任务启动" ]] || fail "waterlight: the seed's start message, and nothing else"
out=$(timeout 60 "$dir/waterlight" --cycles 1 --delay 0.03 --lang en --watch --gpio "sim:check-$$-w-$MPROC_START_METHOD" 2>&1) ||
  fail "waterlight --watch: exit status $?"
grep -qx 'running light task started' <<<"$out" || fail "waterlight --watch: the English start message"
# The watcher replays the board's latch log, so it draws every step: each LED alone, in order.
lit=$(grep -x '[○●]\( [○●]\)\{7\}' <<<"$out" | awk '{ n = 0; for (i = 1; i <= NF; i++) if ($i == "●") { n++; at = i - 1 } if (n == 1) printf "%d ", at }')
[[ $lit == "0 1 2 3 4 5 6 7 " ]] || fail "waterlight --watch: each LED drawn alone, 0 to 7 (saw: $lit)"

echo "examples OK under $MPROC_START_METHOD"
