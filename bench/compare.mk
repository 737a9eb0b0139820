# ---- side by side with redis-server (bench/compare.py, docs/benchmarks.md) ---------------
# `make bench-compare`: redis-server with appendfsync always and everysec, and a local
# 3-node ringraft cluster, on the same redis-benchmark workloads (SET, GET, XADD; -c 1/50,
# -P 1/16), one table. COMPARE_SECONDS, COMPARE_ROUNDS: see the script's header.
# The test stage is a smoke run (SET and XADD at -c 50 -P 16, half-second runs, the debug
# build): it checks the tool works end to end, not the figures.
.PHONY: bench-compare test-bench-compare
bench-compare: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd
	$(Q)python3 -B bench/compare.py

TEST_STAGES += test-bench-compare
test-bench-compare:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug build/debug/ringraftd
	$(Q)COMPARE_QUICK=1 COMPARE_SECONDS=0.5 COMPARE_OUT=build/bench-compare-smoke \
		COMPARE_BIN=build/debug/ringraftd tools/stage.sh bench-compare 300 \
		python3 -B bench/compare.py
