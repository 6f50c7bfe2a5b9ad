# gbench.sh: what the run_*.sh scripts share; sourced, not run.
#
# Sets $json to a temporary file (removed at exit) and defines
#   run_gbench BINARY REPETITIONS [MIN_TIME] [more flags...]
# which runs a Google Benchmark binary, medians and all, and writes its JSON report to $json.
# MIN_TIME empty: the binary's own default.
#
# Repetitions are interleaved at random across the benchmarks (Google Benchmark's
# --benchmark_enable_random_interleaving): this machine's speed drifts for minutes at a time (a
# neighbour's load, where the hypervisor puts the two vCPUs), and run back to back the five
# repetitions of one case would all land in one such stretch while its peer's land in another.
json=$(mktemp)
trap 'rm -f "$json"' EXIT

run_gbench() {
  local binary=$1 reps=$2 min_time=${3:-}
  shift $(($# < 3 ? $# : 3))
  "$binary" --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    --benchmark_enable_random_interleaving=true \
    ${min_time:+--benchmark_min_time="$min_time"} --benchmark_format=json "$@" >"$json"
}
