#!/usr/bin/env bash
# stage.sh NAME TIMEOUT_SECONDS CMD...: runs one test stage under a timeout and prints its
# wall time. Fails (exit 1) if the command fails or times out.
set -uo pipefail
name=$1; limit=$2; shift 2
start=$(date +%s.%N)
echo "=== stage $name (timeout ${limit}s)"
timeout --kill-after=10 "$limit" "$@"
rc=$?
end=$(date +%s.%N)
wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
if [ $rc -eq 124 ]; then
    echo "=== stage $name TIMED OUT after ${wall}s"
    exit 1
fi
if [ $rc -ne 0 ]; then
    echo "=== stage $name FAILED (exit $rc) after ${wall}s"
    exit 1
fi
echo "=== stage $name passed in ${wall}s"
