#!/usr/bin/env bash
# run-tests.sh BIN...: runs cmocka test binaries one after another, each under its own
# timeout, and fails if any fails. cmocka prints its own summary lines per binary; the
# passed/failed counts are added to $RR_TEST_TALLY (if set) for the closing summary.
set -uo pipefail
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
passed_tests=0
failed_tests=0
for bin in "$@"; do
    # A glob such as build/debug/tests/unit/test_* also matches object and dependency files.
    case "$bin" in *.o | *.d) continue ;; esac
    out=$(mktemp)
    timeout --kill-after=5 "${TEST_TIMEOUT:-300}" "$bin" 2>&1 | tee "$out"
    rc=${PIPESTATUS[0]}
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$out" | tail -1)
    rm -f "$out"
    passed_tests=$((passed_tests + ${p:-0}))
    failed_tests=$((failed_tests + ${f:-0}))
    if [ "$rc" -ne 0 ]; then
        echo "FAILED: $bin (exit $rc)"
        failed=1
        [ -z "$f" ] && failed_tests=$((failed_tests + 1))
    fi
done
if [ -n "${RR_TEST_TALLY:-}" ]; then
    echo "$passed_tests $failed_tests" >> "$RR_TEST_TALLY"
fi
exit $failed
