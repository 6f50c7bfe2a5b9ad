# gbench.sh: what the run_*.sh scripts share; sourced, not run.
#
# Sets $json to a temporary file (removed at exit) and defines
#   run_gbench BINARY REPETITIONS [MIN_TIME] [more flags...]
# which runs a Google Benchmark binary, medians and all, and writes its JSON report to $json.
# MIN_TIME empty: the binary's own default.
json=$(mktemp)
trap 'rm -f "$json"' EXIT

run_gbench() {
  local binary=$1 reps=$2 min_time=${3:-}
  shift $(($# < 3 ? $# : 3))
  "$binary" --benchmark_repetitions="$reps" --benchmark_report_aggregates_only=true \
    ${min_time:+--benchmark_min_time="$min_time"} --benchmark_format=json "$@" >"$json"
}
