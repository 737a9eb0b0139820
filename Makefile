# ringraft build. `make` builds the release flavour; `make test` installs missing
# dependencies, builds the sanitizer flavour and runs every test stage under a timeout.
# Flavours live in separate trees: build/release (-O2, assertions on) and build/debug
# (ASan + UBSan, no recovery).

CC ?= cc
CFLAGS ?= -O2 -g
V ?= 0

WARN := -std=c11 -Wall -Wextra -Werror -Wpedantic -Wshadow -Wconversion -Wformat=2 \
	-Wimplicit-fallthrough -Wstrict-prototypes -Wmissing-prototypes -Wold-style-definition \
	-Wvla -Wundef -Wcast-align -Wcast-qual -Wwrite-strings -Wnull-dereference -Wswitch-enum
ifeq ($(shell $(CC) --version 2>/dev/null | grep -c gcc),0)
else
WARN += -Wlogical-op -Wduplicated-cond -Wduplicated-branches
endif

override CFLAGS += $(WARN) -D_GNU_SOURCE -I. -MMD -MP -fno-omit-frame-pointer
HARDEN := -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection
SAN := -fsanitize=address,undefined -fno-sanitize-recover=all

FLAVOUR ?= release
ifeq ($(FLAVOUR),debug)
FLAVOUR_CFLAGS := -O1 -g $(SAN) -DRR_SLOW_ASSERTS
FLAVOUR_LDFLAGS := $(SAN)
else
FLAVOUR_CFLAGS := $(HARDEN)
FLAVOUR_LDFLAGS :=
endif
B := build/$(FLAVOUR)

ifeq ($(V),0)
Q = @
say = @printf '  %-6s %s\n' $(1) $(2);
else
Q =
say =
endif

LIBS_URING := -luring
LIBS_XXHASH := -lxxhash
LIBS_CMOCKA := -lcmocka

CORE_SRC := $(wildcard core/*.c core/base/*.c)
STORAGE_SRC := $(wildcard storage/*.c)
IO_SRC := $(wildcard io/*.c)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
STORAGE_TEST_SRC := $(wildcard tests/storage/test_*.c)

CORE_OBJ := $(CORE_SRC:%.c=$(B)/%.o)
STORAGE_OBJ := $(STORAGE_SRC:%.c=$(B)/%.o)
IO_OBJ := $(IO_SRC:%.c=$(B)/%.o)
UNIT_BIN := $(UNIT_SRC:%.c=$(B)/%)
STORAGE_TEST_BIN := $(STORAGE_TEST_SRC:%.c=$(B)/%)

LIBCORE := $(B)/libringraft-core.a
LIBSTORAGE := $(B)/libringraft-storage.a

.PHONY: all build deps test test-stages check-layering check-seam clean sim format format-check
.DEFAULT_GOAL := all

all: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build

# Everything a flavour builds; other sections add to BUILD_TARGETS.
BUILD_TARGETS := $(LIBCORE) $(UNIT_BIN)
ifneq ($(STORAGE_SRC),)
BUILD_TARGETS += $(LIBSTORAGE) $(STORAGE_TEST_BIN)
endif

deps:
	$(Q)tools/install-deps.sh

$(B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) $(FLAVOUR_CFLAGS) -c $< -o $@

$(LIBCORE): $(CORE_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^

$(LIBSTORAGE): $(STORAGE_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^

$(B)/tests/unit/%: $(B)/tests/unit/%.o $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_CMOCKA)

$(B)/tests/storage/%: $(B)/tests/storage/%.o $(LIBSTORAGE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_CMOCKA) $(LIBS_URING) $(LIBS_XXHASH)

# Test stages run in this order by `make test`; sections below append theirs.
TEST_STAGES := test-unit

# ---- simulator (tests/sim) ------------------------------------------------------------
-include tests/sim/sim.mk

# ---- storage tools, benchmarks and soak -----------------------------------------------
-include storage/storage.mk

# ---- the node: io/ (service and wire libraries, runtime, ringraftd) -----------------------
-include io/io.mk

# ---- side by side with redis-server ------------------------------------------------------
-include bench/compare.mk

# ---- ringraft-bench: the RESP load generator (bench/rbench) -------------------------------
-include bench/rbench/rbench.mk

# ---- the batching strategy lab: make bench, make bench-full ------------------------------
-include bench/batching.mk

# ---- libFuzzer targets for every parser of untrusted bytes (tests/fuzz) ------------------
-include tests/fuzz/fuzz.mk

# ---- cluster soak: RSS, open files and p99 at 80% of peak for a bounded time ----------------
-include bench/soak.mk

# ---- the fault suite: histories checked under kills, pauses, partitions (tests/faults) ----
-include tests/faults/faults.mk

# ---- the several-hosts example of docs/operations.md on network namespaces ---------------
-include tests/multihost/multihost.mk

# ---- group table benchmark: idle groups' memory and tick cost (bench/idle_groups.c) ----
.PHONY: bench-idle
BENCH_IDLE_ARGS ?= 4096 51
BUILD_TARGETS += $(B)/bench/idle_groups
bench-idle:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/bench/idle_groups
	$(Q)build/release/bench/idle_groups $(BENCH_IDLE_ARGS)
	$(Q)build/release/bench/idle_groups $(BENCH_IDLE_ARGS) quiesce

$(B)/bench/idle_groups: $(B)/bench/idle_groups.o $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^

# ---- version, make install / uninstall, sample config, install tests (tools/dist) ---------
-include tools/dist/install.mk

build: $(BUILD_TARGETS)

check-layering:
	$(Q)tools/check-layering.sh

# Nothing in the loops reaches the kernel but through io/kernel.c (docs/node.md).
check-seam:
	$(Q)tools/check-seam.sh --self-test
	$(Q)tools/check-seam.sh

# `make test`: every stage bounded by a timeout, wall time printed (tools/stage.sh).
# Each stage adds "passed failed" counts to the tally; the last line sums them.
export RR_TEST_TALLY := $(CURDIR)/build/test-tally.txt
test: deps check-layering check-seam
	$(Q)mkdir -p build && : > $(RR_TEST_TALLY)
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug build
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug test-stages
	$(Q)tools/test-summary.sh $(RR_TEST_TALLY)

test-unit:
	$(Q)tools/stage.sh unit 600 tools/run-tests.sh $(UNIT_BIN)

test-stages: $(TEST_STAGES)
	@echo "all test stages passed:$(foreach s,$(TEST_STAGES), $(s))"

format:
	clang-format -i $$(git ls-files '*.c' '*.h')
format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
