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
set -uo pipefail
cd "$(dirname "$0")/.."
budget=${MUTANT_SEEDS:-300}
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=0}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    for p in tests/mutants/*.patch; do
        [ -e "$p" ] || { echo "run-mutants: no patches in tests/mutants" >&2; exit 1; }
        names+=("$(basename "$p" .patch)")
    done
fi

# run_mutant NAME: prints one result line; returns 0 if the expected checker fired.
run_mutant() {
    local name=$1 patch="tests/mutants/$1.patch" dir="build/mutants/$1"
    local expected
    expected=$(sed -n 's/^expect:[[:space:]]*\([a-z_]*\).*/\1/p' "$patch" | head -n 1)
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
    local first=${MUTANT_START:-1} start last others="" seeds
    seeds=$(sed -n 's/^seeds:[[:space:]]*\([0-9]*\).*/\1/p' "$patch" | head -n 1)
    seeds=${MUTANT_SEEDS_OVERRIDE:-${seeds:-$budget}}
    start=$first
    last=$((first + seeds - 1))
    while [ "$start" -le "$last" ]; do
        "$dir/sim" --seeds $((last - start + 1)) --start "$start" > "$dir/run.log" 2>&1
        local rc=$?
        if [ $rc -eq 0 ]; then
            break
        fi
        local line seed checker
        line=$(grep -m 1 -E '^(VIOLATION|ASSERT|SIMFAIL) ' "$dir/run.log")
        seed=$(sed -n 's/.*seed=\([0-9]*\).*/\1/p' <<< "$line")
        if [ -z "$seed" ]; then
            echo "mutant $name: FAILED: the simulator died without naming a seed (exit $rc; see $dir/run.log)"
            return 1
        fi
        checker=$(awk '$1 == "VIOLATION" { print $2 }' <<< "$line")
        if [ "$checker" = "$expected" ]; then
            echo "mutant $name: caught by $checker after $((seed - first + 1)) seeds (seed $seed)${others:+; earlier:$others}"
            return 0
        fi
        others="$others ${checker:-$(awk '{ print $1 }' <<< "$line")}@$seed"
        cp "$dir/run.log" "$dir/seed-$seed.log"
        start=$((seed + 1))
    done
    echo "mutant $name: FAILED: $expected did not fire in $seeds seeds${others:+ (other failures:$others)}"
    return 1
}

failed=0
for name in "${names[@]}"; do
    run_mutant "$name" || failed=1
done
exit $failed
