# storage/: the WAL library, its test-hook variant, tools, benchmark and soak.
# Tests link libringraft-storage-test.a: the same sources built with -DRR_STORAGE_TESTING,
# which compiles in the fault-injection and power-loss hooks (storage/wal_testing.h). The
# production library never contains them.

STORAGE_TEST_OBJ := $(STORAGE_SRC:%.c=$(B)/storage-test/%.o)
LIBSTORAGE_TEST := $(B)/libringraft-storage-test.a
RINGRAFT_WAL := $(B)/tools/ringraft-wal

$(B)/storage-test/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) $(FLAVOUR_CFLAGS) -DRR_STORAGE_TESTING -c $< -o $@

$(LIBSTORAGE_TEST): $(STORAGE_TEST_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^

$(B)/tests/storage/%.o: FLAVOUR_CFLAGS += -DRR_STORAGE_TESTING

# More specific than the Makefile's rule (shorter stem), so storage tests take the hook
# library.
$(B)/tests/storage/test_%: $(B)/tests/storage/test_%.o $(LIBSTORAGE_TEST) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_CMOCKA) $(LIBS_URING) $(LIBS_XXHASH)

BUILD_TARGETS += $(LIBSTORAGE_TEST)

# ---- test stage --------------------------------------------------------------------------
TEST_STAGES += test-storage

test-storage: $(RINGRAFT_WAL)
	$(Q)RINGRAFT_WAL=$(RINGRAFT_WAL) tools/stage.sh storage 300 tools/run-tests.sh $(STORAGE_TEST_BIN)

# ---- tools/ringraft-wal -----------------------------------------------------------------
$(RINGRAFT_WAL): $(B)/tools/ringraft_wal.o $(LIBSTORAGE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_URING) $(LIBS_XXHASH)
BUILD_TARGETS += $(RINGRAFT_WAL)
# test_wal_tool runs the tool (order-only: not linked in).
$(B)/tests/storage/test_wal_tool: | $(RINGRAFT_WAL)

# ---- mutant: acknowledging before the sync must fail the power-loss test ----------------
# Builds a patched copy of the tree under /tmp and expects its power-loss test to report
# lost acknowledged data. The production sources are never patched.
STORAGE_MUTANT_DIR := /tmp/ringraft-mutant-$(shell id -u)
mutant-ack-before-sync:
	$(Q)rm -rf $(STORAGE_MUTANT_DIR) && mkdir -p $(STORAGE_MUTANT_DIR)
	$(Q)cp -r Makefile core storage tests tools $(STORAGE_MUTANT_DIR)/
	$(Q)cd $(STORAGE_MUTANT_DIR) && patch -s -p1 < tests/storage/mutants/ack-before-sync.patch
	$(Q)$(MAKE) --no-print-directory -C $(STORAGE_MUTANT_DIR) FLAVOUR=$(FLAVOUR) \
		build/$(FLAVOUR)/tests/storage/test_wal_powerloss >/dev/null
	$(Q)if RR_NO_ACK_CHECK=1 ASAN_OPTIONS=detect_leaks=0 \
		$(STORAGE_MUTANT_DIR)/build/$(FLAVOUR)/tests/storage/test_wal_powerloss >$(STORAGE_MUTANT_DIR)/out 2>&1; then \
		echo "mutant ack-before-sync SURVIVED: the power-loss test cannot see early acks"; exit 1; \
	elif grep -q "acknowledged data lost" $(STORAGE_MUTANT_DIR)/out; then \
		echo "mutant ack-before-sync killed: $$(grep -m1 -o 'acknowledged data lost.*' $(STORAGE_MUTANT_DIR)/out)"; \
		rm -rf $(STORAGE_MUTANT_DIR); \
	else cat $(STORAGE_MUTANT_DIR)/out; echo "mutant ack-before-sync failed for another reason"; exit 1; fi

TEST_STAGES += test-storage-mutant
test-storage-mutant:
	$(Q)tools/stage.sh storage-mutant 300 $(MAKE) --no-print-directory mutant-ack-before-sync

# ---- soak: more kills and power losses, bounded by SOAK_SECONDS ---------------------------
SOAK_SECONDS ?= 60
.PHONY: soak mutant-ack-before-sync test-storage test-storage-mutant bench-wal
soak:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug build
	$(Q)tools/stage.sh soak-kill $$(( $(SOAK_SECONDS) + 60 )) env RR_SOAK_SECONDS=$(SOAK_SECONDS) \
		build/debug/tests/storage/test_wal_kill
	$(Q)tools/stage.sh soak-powerloss $$(( $(SOAK_SECONDS) * 4 + 60 )) env \
		RR_POWERLOSS_LIVES=$$(( $(SOAK_SECONDS) * 60 )) RR_SEED=$$(date +%s) \
		build/debug/tests/storage/test_wal_powerloss

# ---- bench/wal-bench ---------------------------------------------------------------------
WAL_BENCH := $(B)/bench/wal-bench
$(WAL_BENCH): $(B)/bench/wal_bench.o $(LIBSTORAGE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_URING) $(LIBS_XXHASH)
BUILD_TARGETS += $(WAL_BENCH)
BENCH_DIR ?= /tmp/wal-bench-$(shell id -u)

bench-wal:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build
	$(Q)build/release/bench/wal-bench $(BENCH_DIR); rc=$$?; rm -rf $(BENCH_DIR); exit $$rc
