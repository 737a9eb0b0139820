# tests/faults: the Jepsen-style fault suite (docs/faults.md). Clients record a history of
# operations against real ringraftd processes while a nemesis injects faults; checkers then
# decide whether the history is linearizable (registers), loses or duplicates stream
# entries, or miscounts (counters).
#
# The suite runs ringraftd-faults: io/*.c built again with -DRR_FAULT_TESTING (the
# unsafe-test-mode, test-power-loss, test-wal-segment-bytes and test-resolve-delay-ms
# switches; every other build refuses them; the node test tests/node/test_resolver.py uses
# the last) and linked with the storage test library (wal_test_power_cut).
#
#   make faults                      the checkers' own tests, then a bounded slice of the
#                                    schedules (< 5 minutes on 2 cores), then the unsafe modes
#                                    the checkers must catch; part of `make test`
#   make faults-long FAULT_SECONDS=N every schedule for N seconds of faults, FAULT_SEEDS seeds
#   make faults-check                only the checkers' own tests (no processes)
# Failing runs keep their history and node logs under build/faults/.

FAULTS_IO_OBJ := $(IO_SRC:%.c=$(B)/faults-io/%.o)
RINGRAFTD_FAULTS := $(B)/ringraftd-faults

$(B)/faults-io/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) $(CFLAGS) $(FLAVOUR_CFLAGS) -DRR_FAULT_TESTING -DRR_STORAGE_TESTING \
		-c $< -o $@

$(RINGRAFTD_FAULTS): $(FAULTS_IO_OBJ) $(LIBSERVICE) $(LIBSTORAGE_TEST) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_URING) $(LIBS_XXHASH) -lpthread

BUILD_TARGETS += $(RINGRAFTD_FAULTS)

.PHONY: faults faults-long faults-check test-faults-check test-faults
FAULT_FLAVOUR ?= debug
FAULT_SECONDS ?= 60
FAULT_SEEDS ?= 3
FAULT_OUT ?= $(CURDIR)/build/faults
FAULT_BIN := build/$(FAULT_FLAVOUR)/ringraftd-faults

TEST_STAGES += test-faults-check test-faults

faults-check test-faults-check:
	$(Q)tools/stage.sh faults-check 300 python3 -B tests/faults/test_checkers.py

test-faults:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=$(FAULT_FLAVOUR) $(FAULT_BIN) \
		build/$(FAULT_FLAVOUR)/ringraftd
	$(Q)tools/stage.sh faults 420 python3 -B tests/faults/run.py --bin $(FAULT_BIN) \
		--out $(FAULT_OUT) --slice quick

faults: deps
	$(Q)$(MAKE) --no-print-directory test-faults-check
	$(Q)$(MAKE) --no-print-directory test-faults

faults-long: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=$(FAULT_FLAVOUR) $(FAULT_BIN) \
		build/$(FAULT_FLAVOUR)/ringraftd
	$(Q)python3 -B tests/faults/run.py --bin $(FAULT_BIN) --out $(FAULT_OUT) --slice long \
		--seconds $(FAULT_SECONDS) --seeds $(FAULT_SEEDS)
