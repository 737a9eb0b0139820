# ---- cluster soak (bench/soak_cluster.py, docs/benchmarks.md "Soak") -----------------------
# `make soak-cluster SOAK_SECONDS=N`: a local 3-node cluster (release build) at 80% of its
# measured peak for N seconds in SOAK_INTERVAL-second slices; fails if RSS grows by more than
# 10% after the warm-up, p99 doubles, open files grow, or any request fails.
.PHONY: soak-cluster
SOAK_SECONDS ?= 600
SOAK_INTERVAL ?= 30
soak-cluster: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd \
		build/release/bench/ringraft-bench
	$(Q)SOAK_SECONDS=$(SOAK_SECONDS) SOAK_INTERVAL=$(SOAK_INTERVAL) python3 -B bench/soak_cluster.py
