# bench/rbench: ringraft-bench, the RESP load generator (docs/benchmarks.md, "ringraft-bench").
# Built in both flavours with the project's flags; linked with the service library for the
# key slot function (io/service/cmd.c) and the core library for the histogram.
RBENCH_SRC := $(wildcard bench/rbench/*.c)
RBENCH_OBJ := $(RBENCH_SRC:%.c=$(B)/%.o)
RBENCH_LIB_OBJ := $(filter-out $(B)/bench/rbench/main.o,$(RBENCH_OBJ))
RBENCH := $(B)/bench/ringraft-bench
RBENCH_TEST_SRC := $(wildcard tests/bench/test_*.c)
RBENCH_TEST_BIN := $(RBENCH_TEST_SRC:%.c=$(B)/%)

$(RBENCH): $(RBENCH_OBJ) $(LIBSERVICE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_URING) -lpthread -lm

$(B)/tests/bench/%: $(B)/tests/bench/%.o $(RBENCH_LIB_OBJ) $(LIBSERVICE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_CMOCKA) $(LIBS_URING) -lpthread -lm

BUILD_TARGETS += $(RBENCH) $(RBENCH_TEST_BIN)

# `make test` stage: the unit tests above, then tests/bench/smoke.py (each workload ~1 s
# closed and ~1 s open loop against a 3-node debug cluster, fake servers for -MOVED and bad
# replies), then bench/agreement.py once at 5% of its request counts (the tool end to end,
# not its verdict). About a minute and a half.
.PHONY: test-bench
TEST_STAGES += test-bench
BENCH_STAGE_TIMEOUT ?= 300
test-bench:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug build/debug/ringraftd \
		build/debug/bench/ringraft-bench $(RBENCH_TEST_BIN)
	$(Q)tools/stage.sh bench-unit 120 tools/run-tests.sh $(RBENCH_TEST_BIN)
	$(Q)tools/stage.sh soak-verdict 60 python3 -B tests/bench/test_soak_verdict.py
	$(Q)tools/stage.sh bench-smoke $(BENCH_STAGE_TIMEOUT) python3 tests/bench/smoke.py \
		--bench build/debug/bench/ringraft-bench --bin build/debug/ringraftd
	$(Q)RINGRAFTD=build/debug/ringraftd AGREEMENT_OUT=build/bench-agreement-smoke \
		tools/stage.sh agreement-smoke 180 python3 -B bench/agreement.py --smoke \
		--rounds 1 --scale 0.05 --no-pin --bench build/debug/bench/ringraft-bench

# `make bench-agreement`: ringraft-bench against redis-benchmark on the same workloads, a
# fresh 3-node cluster and a redis-server (bench/agreement.py; about 6 minutes with the
# default 7 rounds). BENCH_AGREEMENT_ARGS: e.g. --rounds 5 --targets redis --scale 0.5.
.PHONY: bench-agreement
BENCH_AGREEMENT_ARGS ?= --rounds 7
bench-agreement: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd \
		build/release/bench/ringraft-bench
	$(Q)python3 -B bench/agreement.py $(BENCH_AGREEMENT_ARGS)
