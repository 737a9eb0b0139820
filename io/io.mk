# io/: the node. Two layers:
#   io/service/, io/wire/  pure code (no syscalls, no clocks): the RESP parser and reply
#                          writer, the command table, the state machines, the peer frame
#                          and handshake codec. Built into libringraft-service.a and tested
#                          by tests/service/ without any process or socket.
#   io/*.c                 the runtime: the kernel seam, worker event loops, peer and client
#                          connections, ringraftd itself.

SERVICE_SRC := $(wildcard io/service/*.c io/wire/*.c)
SERVICE_OBJ := $(SERVICE_SRC:%.c=$(B)/%.o)
LIBSERVICE := $(B)/libringraft-service.a
SERVICE_TEST_SRC := $(wildcard tests/service/test_*.c)
SERVICE_TEST_BIN := $(SERVICE_TEST_SRC:%.c=$(B)/%)

$(LIBSERVICE): $(SERVICE_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^

$(B)/tests/service/%: $(B)/tests/service/%.o $(LIBSERVICE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_CMOCKA) $(LIBS_XXHASH)

ifneq ($(SERVICE_SRC),)
BUILD_TARGETS += $(LIBSERVICE) $(SERVICE_TEST_BIN)
TEST_STAGES += test-service test-redis-compare
endif

test-service:
	$(Q)tools/stage.sh service 300 tools/run-tests.sh $(SERVICE_TEST_BIN)

# sm-replay: one state machine fed commands on stdin, raw replies on stdout; with
# tools/redis-compare.py it compares replies with redis-server's byte for byte.
SM_REPLAY := $(B)/tools/sm-replay
$(SM_REPLAY): $(B)/tools/sm_replay.o $(LIBSERVICE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_XXHASH)
BUILD_TARGETS += $(SM_REPLAY)

# The state machine's replies against a throwaway redis-server 7 (the compare scripts and a
# few random sequences); skipped when redis-server is not installed.
.PHONY: test-redis-compare
test-redis-compare:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug build/debug/tools/sm-replay
	$(Q)tools/stage.sh redis-compare 600 python3 tools/redis-compare.py \
		--replay build/debug/tools/sm-replay --random 10 --tolerance-ms 2000 --skip-missing

# ---- the runtime and ringraftd ---------------------------------------------------------
NODE_SRC := $(filter-out io/main.c,$(wildcard io/*.c))
NODE_OBJ := $(NODE_SRC:%.c=$(B)/%.o)
LIBNODE := $(B)/libringraft-node.a
RINGRAFTD := $(B)/ringraftd

$(LIBNODE): $(NODE_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^

$(RINGRAFTD): $(B)/io/main.o $(LIBNODE) $(LIBSERVICE) $(LIBSTORAGE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_URING) $(LIBS_XXHASH) -lpthread

BUILD_TARGETS += $(RINGRAFTD)

# The one service test of runtime code: tests/service/test_config.c includes io/config.c (the
# table of settings) and links what it calls (log levels, WAL strategies) from the node and
# storage libraries. It reads tools/dist/ringraft.conf and tools/man/ringraftd.8 from the
# working directory, the top of the tree.
$(B)/tests/service/test_config: $(B)/tests/service/test_config.o $(LIBNODE) $(LIBSERVICE) \
		$(LIBSTORAGE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_CMOCKA) $(LIBS_URING) \
		$(LIBS_XXHASH) -lpthread

# tests/service/test_resolver.c: the resolver thread (io/resolver.c) and the seam's
# kernel_resolve_numeric, linked from the node library; it resolves `localhost`.
$(B)/tests/service/test_resolver: $(B)/tests/service/test_resolver.o $(LIBNODE) $(LIBSERVICE) \
		$(LIBSTORAGE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_CMOCKA) $(LIBS_URING) \
		$(LIBS_XXHASH) -lpthread

# ---- running a local cluster, and the process tests (tests/node) -----------------------
# `make run`: the release build as a local 3-node cluster in the foreground (data and logs
# in build/run-cluster; Ctrl-C stops it). docs/operations.md.
.PHONY: run test-node
RUN_DIR ?= $(CURDIR)/build/run-cluster
run: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd
	$(Q)tools/run-local-cluster.sh $(RUN_DIR)

# The node tests start real ringraftd processes (build/debug/ringraftd, always: they are
# sanitizer tests) on 127.0.0.1 and talk RESP to them; each test has its own timeout
# (NODE_TEST_TIMEOUT seconds), the stage NODE_STAGE_TIMEOUT. NODE_TESTS=pattern picks tests.
# build/debug/ringraftd-faults too: test_resolver delays lookups with its test-resolve-delay-ms.
NODE_STAGE_TIMEOUT ?= 900
NODE_TEST_TIMEOUT ?= 180
TEST_STAGES += test-node test-node-uring-off
test-node:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug build/debug/ringraftd build/debug/tools/ringraft-wal \
		build/debug/ringraftd-faults
	$(Q)tools/stage.sh node $(NODE_STAGE_TIMEOUT) python3 tests/node/run.py \
		--bin build/debug/ringraftd --timeout $(NODE_TEST_TIMEOUT) $(NODE_TESTS)

# The same tests once more with every optional io_uring feature off (the plain paths), and
# the WAL's direct I/O off (buffered flushes).
NODE_URING_OFF := --uring-defer-taskrun no --uring-multishot-accept no --uring-msg-ring no \
	--uring-multishot-recv no --wal-direct-io no
test-node-uring-off:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug build/debug/ringraftd build/debug/tools/ringraft-wal \
		build/debug/ringraftd-faults
	$(Q)RR_NODE_EXTRA="$(NODE_URING_OFF)" tools/stage.sh node-uring-off $(NODE_STAGE_TIMEOUT) \
		python3 tests/node/run.py --bin build/debug/ringraftd --timeout $(NODE_TEST_TIMEOUT) \
		$(NODE_TESTS)

# The disk-bound test at length: 5 minutes of skewed writes over 64 groups (tests/node/
# test_disk_bound.py), after the check that without the pin policy the bound is exceeded.
.PHONY: test-disk-bound
DISK_BOUND_SECONDS ?= 300
test-disk-bound:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug build/debug/ringraftd
	$(Q)RR_DISK_BOUND_NEGATIVE=1 RR_DISK_BOUND_SECONDS=$(DISK_BOUND_SECONDS) python3 \
		tests/node/run.py --bin build/debug/ringraftd --timeout $$(( $(DISK_BOUND_SECONDS) + 300 )) \
		test_disk_bound

# ---- writes during a large snapshot (bench/snapshot-p99.py, docs/benchmarks.md) ------------
# SNAP_BENCH_BYTES (default 1 GiB), SNAP_BENCH_ROUNDS, SNAP_BENCH_IDLE: see the script.
.PHONY: bench-snapshot
bench-snapshot: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd
	$(Q)python3 -B bench/snapshot-p99.py

# ---- node targets benchmark (bench/node-targets.py, docs/benchmarks.md) -----------------
# `make bench-node`: ringraftd (release) against redis-server 7 with appendfsync always,
# CPU per write, -c 1 latency against the loopback-RTT + fdatasync floor (bench/node_floor),
# throughput over G and W, 4096 idle groups; one markdown table on stdout and in
# build/bench-node/results.md, CSV beside it. BENCH_QUICK=1: a smoke run of a few seconds
# per part; BENCH_ROUNDS, BENCH_REQUESTS, ...: see the script's header.
.PHONY: bench-node
BUILD_TARGETS += $(B)/bench/node_floor
$(B)/bench/node_floor: $(B)/bench/node_floor.o
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ -lpthread

bench-node: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd \
		build/release/bench/node_floor
	$(Q)python3 -B bench/node-targets.py

# ---- CPU per acknowledged write, quick (bench/cpu-per-write.py) ----------------------------
# Part 2 of bench-node alone: redis-server (appendfsync always) and a fresh 3-node cluster,
# SET -r 1000000 -d 16 -c 50 -P 16 through node 1 and with --cluster, rounds interleaved,
# CPU (utime+stime, all threads) and page faults per write; about 40 s per round.
# CPU_ARGS: e.g. "-n 300000 --rounds 5", "--bin old=PATH --bin new=PATH" (before/after in one
# run), "--perf DIR" (perf record of every server in the last round), "--rbench" (the same
# load from ringraft-bench too, whose --cluster keeps the keys uniform: forwarding alone).
.PHONY: bench-cpu
CPU_ARGS ?=
bench-cpu: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd \
		build/release/bench/ringraft-bench
	$(Q)python3 -B bench/cpu-per-write.py $(CPU_ARGS)

# ---- where an idle node's memory goes (bench/node-memory.py) ------------------------------
# Live heap bytes per allocation site, big blocks' resident bytes, mallinfo2 and smaps of a
# 3-node cluster at G=64 and G=4096, and their difference per extra group.
.PHONY: bench-memory
BENCH_MEMORY_ARGS ?= --workers 1
build/release/bench/live_bytes.so: bench/live_bytes.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) -O2 -g -Wall -Wextra -shared -fPIC -o $@ $< -ldl -lpthread
bench-memory: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd \
		build/release/bench/live_bytes.so
	$(Q)python3 -B bench/node-memory.py $(BENCH_MEMORY_ARGS)

# ---- heap allocations per acknowledged write (bench/node-allocs.sh) ---------------------
.PHONY: bench-allocs
build/release/bench/alloc_count.so: bench/alloc_count.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)$(CC) -O2 -shared -fPIC -o $@ $< -ldl
bench-allocs: deps
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd \
		build/release/bench/alloc_count.so
	$(Q)bench/node-allocs.sh $(BENCH_ALLOC_WRITES)
