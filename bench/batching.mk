# ---- the batching strategy lab (bench/batching.py, docs/benchmarks.md) -------------------
# `make bench`: the default comparison (disk none, fixed:8, linger:500, adaptive x net none,
# adaptive; 5 load points; 3 interleaved rounds) on a fresh local 3-node cluster per
# strategy and round, about 7 minutes on 2 cores; prints where its table, CSV and plots
# (gnuplot, SVG and PNG) are: build/bench-batching. `make bench-full`: the whole matrix
# (9 disk x 2 net strategies, 9 load points, 3 rounds; about 37 minutes: 24.5 with 2).
# BENCH_BATCHING_ARGS: more options (--rounds N, --seconds S, --out DIR).
# There was no `make bench` before this target; the other benchmarks keep their names
# (bench-node, bench-compare, bench-agreement, bench-wal, bench-idle, bench-allocs).
.PHONY: bench bench-full test-bench-batching
BENCH_BATCHING_ARGS ?=
bench: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd \
		build/release/bench/ringraft-bench
	$(Q)python3 -B bench/batching.py $(BENCH_BATCHING_ARGS)

bench-full: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd \
		build/release/bench/ringraft-bench
	$(Q)python3 -B bench/batching.py --full $(BENCH_BATCHING_ARGS)

# `make test` stage: the lab's smoke profile (two disk strategies, two load points, runs of
# under a second, the debug build), then tests/bench/batching_check.py checks the CSV, the
# table and the plots it produced. Leak detection is off as in the node tests (ringraftd
# does not free everything at exit); any other sanitizer report fails the node (its exit
# status, which the lab reports as a problem, and the check fails on it).
TEST_STAGES += test-bench-batching
test-bench-batching:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug build/debug/ringraftd \
		build/debug/bench/ringraft-bench
	$(Q)ASAN_OPTIONS=abort_on_error=1:detect_leaks=0 tools/stage.sh bench-batching 300 sh -c 'python3 -B bench/batching.py --smoke \
		--bin build/debug/ringraftd --bench build/debug/bench/ringraft-bench \
		--out build/bench-batching-smoke >/dev/null && \
		python3 -B tests/bench/batching_check.py build/bench-batching-smoke'
