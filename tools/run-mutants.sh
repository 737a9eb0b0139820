#!/usr/bin/env bash
# run-mutants.sh [NAME...]: proves the simulator's checkers can fail. For each mutant
# tests/mutants/NAME.patch (all of them by default) it copies core/ to build/mutants/NAME/,
# applies the patch there (a patch that no longer applies fails), builds a simulator against
# the mutated copy (`make mutant-sim`), and runs seeds until a checker fires. A mutant passes
# only if the checker named on its "expect: CHECKER" header line fires within the budget
# (a "seeds: N" header line, else MUTANT_SEEDS, default 300; MUTANT_SEEDS_OVERRIDE wins;
# seeds from MUTANT_START, default 1); another checker, an assertion, a crash or the liveness
# check does not count, and the harness goes on to the next seed. Runs are deterministic, so
# a given core and simulator always give the same result.
#
# Safety pass: a mutant whose header has a line "safety: N" (a bug a rule checker restates)
# is run a second time with the rule checkers off (sim --no-rule-checkers), and must then be
# caught within N seeds by one of the safety checkers in SAFETY_CHECKERS — the bug's real
# consequence, not its rule. By default these are election_safety (two leaders in a term),
# state_machine_safety (two nodes apply different entries at an index) and commit_quorum (a
# leader commits an entry that is not durable on a majority of its log's configuration). A seed on which leader_completeness or log_matching fires first (a
# leader elected without a committed entry: the same bug caught one step earlier, before it
# plays out) is listed as "earlier" and the hunt goes on. If
# REAL_SIM names a simulator built on the real core, the seed that caught it must pass there
# with every checker on (the unmutated core survives the same schedule).
#
# Mutants run MUTANT_JOBS at a time (default: the number of cores); their result lines are
# printed in name order once all are done.
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${MUTANT_SEEDS:-300}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=0}
SAFETY_CHECKERS=${SAFETY_CHECKERS:-"election_safety state_machine_safety commit_quorum"}
jobs=${MUTANT_JOBS:-$(nproc 2>/dev/null || echo 1)}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for p in tests/mutants/*.patch; do
        [ -e "$p" ] || { echo "run-mutants: no patches in tests/mutants" >&2; exit 1; }
        names+=("$(basename "$p" .patch)")
    done
fi

# header NAME KEY: the value of the first "KEY: value" header line of the patch.
header() {
    sed -n "s/^$2:[[:space:]]*\([a-z_0-9]*\).*/\1/p" "tests/mutants/$1.patch" | head -n 1
}

# hunt NAME DIR WHAT EXPECTED FIRST SEEDS [SIM ARGS...]: runs seeds FIRST.. until a checker in
# EXPECTED (space separated) fires; prints one result line; returns 0 if one did.
hunt() {
    local name=$1 dir=$2 what=$3 expected=$4 first=$5 seeds=$6
    shift 6
    local tag=${what:+-safety} # log file names: run.log or run-safety.log, and so on
    local start=$first last=$((first + seeds - 1)) others="" log="$dir/run${tag}.log"
    while [ "$start" -le "$last" ]; do
        "$dir/sim" --seeds $((last - start + 1)) --start "$start" "$@" > "$log" 2>&1
        local rc=$?
        if [ $rc -eq 0 ]; then
            break
        fi
        local line seed checker steps
        line=$(grep -m 1 -E '^(VIOLATION|ASSERT|SIMFAIL) ' "$log")
        seed=$(sed -n 's/.*seed=\([0-9]*\).*/\1/p' <<< "$line")
        if [ -z "$seed" ]; then
            echo "mutant $name$what: FAILED: the simulator died without naming a seed (exit $rc; see $log)"
            return 1
        fi
        checker=$(awk '$1 == "VIOLATION" { print $2 }' <<< "$line")
        if [ -n "$checker" ] && [[ " $expected " == *" $checker "* ]]; then
            steps=$(sed -n 's/.* step=\([0-9]*\).*/\1/p' <<< "$line")
            echo "mutant $name$what: caught by $checker after $((seed - first + 1)) seeds (seed $seed, step ${steps:-?})${others:+; earlier:$others}"
            cp "$log" "$dir/caught${tag}.log"
            CAUGHT_SEED=$seed
            return 0
        fi
        others="$others ${checker:-$(awk '{ print $1 }' <<< "$line")}@$seed"
        cp "$log" "$dir/seed-$seed${tag}.log"
        start=$((seed + 1))
    done
    echo "mutant $name$what: FAILED: ${expected// /|} did not fire in $seeds seeds${others:+ (other failures:$others)}"
    return 1
}

# run_mutant NAME: prints its result lines; returns 0 if every pass caught it.
run_mutant() {
    local name=$1 patch="tests/mutants/$1.patch" dir="build/mutants/$1"
    local expected safety
    expected=$(header "$name" expect)
    safety=$(header "$name" safety)
    if [ -z "$expected" ]; then
        echo "mutant $name: FAILED: no 'expect: CHECKER' line in $patch"
        return 1
    fi
    rm -rf "$dir" && mkdir -p "$dir" && cp -r core "$dir/"
    if ! patch -s -p1 -d "$dir" --dry-run < "$patch" > "$dir/patch.log" 2>&1 ||
        ! patch -s -p1 -d "$dir" --no-backup-if-mismatch < "$patch" >> "$dir/patch.log" 2>&1; then
        echo "mutant $name: FAILED: the patch no longer applies to core/ (see $dir/patch.log)"
        return 1
    fi
    if ! make --no-print-directory FLAVOUR=release mutant-sim MUTANT_DIR="$dir" > "$dir/build.log" 2>&1; then
        echo "mutant $name: FAILED: the mutated core does not build (see $dir/build.log)"
        return 1
    fi
    # A mutant whose bug needs a long fault sequence (Figure 8) may carry its own budget.
    local first=${MUTANT_START:-1} seeds
    seeds=$(header "$name" seeds)
    seeds=${MUTANT_SEEDS_OVERRIDE:-${seeds:-$budget}}
    hunt "$name" "$dir" "" "$expected" "$first" "$seeds" || return 1
    if [ -z "$safety" ]; then
        return 0
    fi
    CAUGHT_SEED=
    hunt "$name" "$dir" " (rule checkers off)" "$SAFETY_CHECKERS" "$first" \
        "${MUTANT_SEEDS_OVERRIDE:-$safety}" --no-rule-checkers || return 1
    if [ -n "${REAL_SIM:-}" ]; then
        if ! "$REAL_SIM" --seed "$CAUGHT_SEED" > "$dir/real-$CAUGHT_SEED.log" 2>&1; then
            echo "mutant $name: FAILED: the real core fails seed $CAUGHT_SEED too (see $dir/real-$CAUGHT_SEED.log)"
            return 1
        fi
        echo "mutant $name: the real core passes seed $CAUGHT_SEED with every checker on"
    fi
    return 0
}

results=$(mktemp -d "${TMPDIR:-/tmp}/run-mutants.XXXXXX")
running=0
for name in "${names[@]}"; do
    if [ "$running" -ge "$jobs" ]; then
        wait -n
        running=$((running - 1))
    fi
    (
        if run_mutant "$name" > "$results/$name.out"; then
            : > "$results/$name.ok"
        fi
    ) &
    running=$((running + 1))
done
wait
failed=0
for name in "${names[@]}"; do
    cat "$results/$name.out"
    [ -e "$results/$name.ok" ] || failed=1
done
rm -rf "$results"
exit $failed
