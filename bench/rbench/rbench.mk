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
