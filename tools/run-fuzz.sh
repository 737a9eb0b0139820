#!/usr/bin/env bash
# run-fuzz.sh SECONDS WORKDIR TARGET...: runs each libFuzzer target (build/fuzz/fuzz_TARGET)
# for SECONDS, one after another, starting from its checked-in corpus
# (tests/fuzz/corpus/TARGET) and its dictionary (tests/fuzz/dict/TARGET.dict, if any). New
# inputs go to WORKDIR/corpus/TARGET, crashes to WORKDIR/crashes/. Prints one line per target
# with its executions and rate; fails if any target crashed, leaked, hung or broke a
# property. FUZZ_BIN_DIR overrides build/fuzz; FUZZ_ARGS adds libFuzzer flags.
set -uo pipefail
secs=$1
work=$2
shift 2
bin_dir=${FUZZ_BIN_DIR:-build/fuzz}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
mkdir -p "$work/crashes"
failed=0
passed=0
for t in "$@"; do
    bin=$bin_dir/fuzz_$t
    seeds=tests/fuzz/corpus/$t
    corpus=$work/corpus/$t
    mkdir -p "$corpus"
    # Per-target limits: input size that still covers the format, and a per-input timeout
    # well above the slowest legitimate input (a hang is reported as a failure). The slow
    # file-system targets may use their whole max_len at once: at tens or hundreds of inputs
    # a second, libFuzzer's gradual growth of the length would keep them small all run long.
    case $t in
    wal | snapshot) opts=(-max_len=16384 -len_control=0 -timeout=20) ;;
    *) opts=(-max_len=4096 -timeout=10) ;;
    esac
    dict=tests/fuzz/dict/$t.dict
    [ -f "$dict" ] && opts+=(-dict="$dict")
    log=$work/fuzz_$t.log
    start=$(date +%s.%N)
    # shellcheck disable=SC2086 # FUZZ_ARGS is a list of flags
    "$bin" "$corpus" "$seeds" "${opts[@]}" -max_total_time="$secs" -print_final_stats=1 \
        -rss_limit_mb=2048 -artifact_prefix="$work/crashes/$t-" ${FUZZ_ARGS:-} >"$log" 2>&1
    rc=$?
    end=$(date +%s.%N)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -n 1)
    files=$(find "$corpus" -type f | wc -l)
    wall=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.1f", b - a }')
    if [ $rc -ne 0 ]; then
        echo "fuzz_$t: FAILED (exit $rc) after ${wall}s; log $log, crash input in $work/crashes/"
        grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz property failed|RR_ASSERT failed)' "$log" | head -n 5
        tail -n 30 "$log"
        failed=$((failed + 1))
        continue
    fi
    printf 'fuzz_%s: %s executions in %ss (%s exec/s), %s, corpus of %s files\n' \
        "$t" "${execs:-?}" "$wall" "${rate:-?}" "${cov:-cov: ?}" "$files"
    passed=$((passed + 1))
done
if [ -n "${RR_TEST_TALLY:-}" ]; then
    echo "$passed $failed" >>"$RR_TEST_TALLY"
fi
[ $failed -eq 0 ]
