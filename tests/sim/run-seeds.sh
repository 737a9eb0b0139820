#!/usr/bin/env bash
# run-seeds.sh BIN N [START] [-- EXTRA ARGS]: runs seeds START..START+N-1 of the simulator,
# split over the machine's cores, prints each part's totals and the wall time, and on a
# failure the violation and the command that replays it. Exits 1 if any seed failed.
set -uo pipefail
bin=$1; count=$2; start=${3:-1}
shift $(( $# >= 3 ? 3 : $# ))
[ "${1:-}" = "--" ] && shift
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
jobs=$(nproc 2>/dev/null || echo 1)
[ "$jobs" -gt "$count" ] && jobs=$count
[ "$jobs" -lt 1 ] && jobs=1
# A private log directory: several people may run seeds at once. Kept only on failure.
logdir=$(mktemp -d "$(dirname "$bin")/seed-logs.XXXXXX")
t0=$(date +%s.%N)
per=$(( (count + jobs - 1) / jobs ))
pids=()
for ((j = 0; j < jobs; j++)); do
    s=$(( start + j * per ))
    n=$(( count - j * per < per ? count - j * per : per ))
    [ "$n" -le 0 ] && break
    "$bin" --seeds "$n" --start "$s" "$@" > "$logdir/part-$j.log" 2>&1 &
    pids+=($!)
done
failed=0
for ((j = 0; j < ${#pids[@]}; j++)); do
    if ! wait "${pids[$j]}"; then
        failed=1
        echo "simulator part $j failed:"
        grep -E '^(VIOLATION|ASSERT|SIMFAIL|replay:)' "$logdir/part-$j.log" || tail -n 30 "$logdir/part-$j.log"
    else
        grep '^total:' "$logdir/part-$j.log"
    fi
done
t1=$(date +%s.%N)
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
if [ $failed -ne 0 ]; then
    echo "simulator: FAILED ($count seeds from $start, ${wall}s; logs in $logdir)"
    exit 1
fi
rm -rf "$logdir"
echo "simulator: $count seeds from $start passed in ${wall}s (${#pids[@]} processes)"
