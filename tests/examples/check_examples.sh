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
echo "examples OK under $MPROC_START_METHOD"
