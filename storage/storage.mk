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
	$(Q)RINGRAFT_WAL=$(RINGRAFT_WAL) tools/stage.sh storage 900 tools/run-tests.sh $(STORAGE_TEST_BIN)

# The same WAL tests with two flushes in flight (cfg.flushes_in_flight = 2, not the default).
TEST_STAGES += test-storage-2flight
STORAGE_2FLIGHT_BIN := $(addprefix $(B)/tests/storage/,test_wal test_wal_hardening \
	test_wal_recovery test_wal_faults test_wal_kill test_wal_powerloss)
test-storage-2flight:
	$(Q)RR_WAL_FLUSHES=2 tools/stage.sh storage-2flight 900 tools/run-tests.sh $(STORAGE_2FLIGHT_BIN)

# And with direct I/O (cfg.direct_io, ringraftd's default), two flushes allowed in flight: a
# flush that starts inside the block the one in flight ends in waits for it.
TEST_STAGES += test-storage-direct
test-storage-direct:
	$(Q)RR_WAL_DIRECT=1 RR_WAL_FLUSHES=2 tools/stage.sh storage-direct 900 tools/run-tests.sh \
		$(STORAGE_2FLIGHT_BIN)

# ---- tools/ringraft-wal -----------------------------------------------------------------
$(RINGRAFT_WAL): $(B)/tools/ringraft_wal.o $(LIBSTORAGE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_URING) $(LIBS_XXHASH)
BUILD_TARGETS += $(RINGRAFT_WAL)
# test_wal_tool runs the tool (order-only: not linked in).
$(B)/tests/storage/test_wal_tool: | $(RINGRAFT_WAL)

# ---- mutants: each tests/storage/mutants/NAME.patch must fail a named storage test -------
# `make mutant-NAME` copies the tree under /tmp, applies the patch there (patch -p1; the
# production sources are never patched), builds that copy's test named by the patch's
# "# test: NAME" line (default test_wal_powerloss) and runs it with its defaults. The mutant
# is killed when the test fails with the message given by the patch's first
# "# expect: TEXT" line (a fixed string); it survives if the test passes, and the target
# also fails if the test fails for another reason. The stage runs every patch. A kill only
# means something while the unpatched test passes (the test-storage stage).
STORAGE_MUTANTS := $(patsubst tests/storage/mutants/%.patch,%,$(wildcard tests/storage/mutants/*.patch))
# Each mutant builds in its own fresh directory (mktemp), so concurrent runs never collide;
# a surviving or misbehaving mutant's directory is kept and named.

mutant-%: tests/storage/mutants/%.patch
	$(Q)expect=$$(sed -n 's/^# expect: //p' $< | head -n 1); \
	if [ -z "$$expect" ]; then echo "$<: no '# expect: ' line"; exit 1; fi; \
	test=$$(sed -n 's/^# test: //p' $< | head -n 1); test=$${test:-test_wal_powerloss}; \
	dir=$$(mktemp -d /tmp/ringraft-mutant-$*.XXXXXX) && \
	cp -r Makefile core storage tests tools $$dir/ && \
	(cd $$dir && patch -s -p1 < tests/storage/mutants/$*.patch) && \
	$(MAKE) --no-print-directory -C $$dir FLAVOUR=$(FLAVOUR) \
		build/$(FLAVOUR)/tests/storage/$$test >/dev/null || exit 1; \
	start=$$(date +%s); \
	if ASAN_OPTIONS=detect_leaks=0 $$dir/build/$(FLAVOUR)/tests/storage/$$test \
		>$$dir/out 2>&1; then \
		echo "mutant $* SURVIVED ($$dir): $$(grep 'power loss:' $$dir/out | tail -n 1)"; exit 1; \
	elif grep -qF "$$expect" $$dir/out; then \
		echo "mutant $* killed by $$test in $$(( $$(date +%s) - start ))s: $$(grep -m1 -oE 'seed [0-9]+ life [0-9]+: .{0,160}' $$dir/out || grep -m1 -F "$$expect" $$dir/out)"; \
		rm -rf $$dir; \
	else cat $$dir/out; echo "mutant $* failed the test for another reason than '$$expect' ($$dir)"; exit 1; fi

TEST_STAGES += test-storage-mutant
test-storage-mutant:
	$(Q)tools/stage.sh storage-mutant 900 $(MAKE) --no-print-directory \
		$(addprefix mutant-,$(STORAGE_MUTANTS))

# ---- soak: more kills and power losses, bounded by SOAK_SECONDS ---------------------------
SOAK_SECONDS ?= 60
.PHONY: soak test-storage test-storage-2flight test-storage-direct test-storage-mutant bench-wal
soak:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug build
	$(Q)tools/stage.sh soak-kill $$(( $(SOAK_SECONDS) + 60 )) env RR_SOAK_SECONDS=$(SOAK_SECONDS) \
		build/debug/tests/storage/test_wal_kill
	$(Q)tools/stage.sh soak-powerloss $$(( $(SOAK_SECONDS) + 120 )) env \
		RR_POWERLOSS_SECONDS=$(SOAK_SECONDS) RR_SEED=$$(date +%s) \
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
