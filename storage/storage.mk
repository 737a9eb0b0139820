# storage/: the WAL library, its test-hook variant, tools, benchmark and soak.
# Tests link libringraft-storage-test.a: the same sources built with -DRR_STORAGE_TESTING,
# which compiles in the fault-injection and power-loss hooks (storage/wal_testing.h). The
# production library never contains them.

STORAGE_TEST_OBJ := $(STORAGE_SRC:%.c=$(B)/storage-test/%.o)
LIBSTORAGE_TEST := $(B)/libringraft-storage-test.a

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

test-storage:
	$(Q)tools/stage.sh storage 300 tools/run-tests.sh $(STORAGE_TEST_BIN)

# ---- tools/ringraft-wal -----------------------------------------------------------------
RINGRAFT_WAL := $(B)/tools/ringraft-wal
$(RINGRAFT_WAL): $(B)/tools/ringraft_wal.o $(LIBSTORAGE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_URING) $(LIBS_XXHASH)
BUILD_TARGETS += $(RINGRAFT_WAL)
