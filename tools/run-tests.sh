#!/usr/bin/env bash
# run-tests.sh BIN...: runs cmocka test binaries one after another, each under its own
# timeout, and fails if any fails. cmocka prints its own summary lines per binary.
set -uo pipefail
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=0
for bin in "$@"; do
    if ! timeout --kill-after=5 "${TEST_TIMEOUT:-300}" "$bin"; then
        echo "FAILED: $bin"
        failed=1
    fi
done
exit $failed
