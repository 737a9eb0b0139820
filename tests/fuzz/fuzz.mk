# libFuzzer targets for everything that reads untrusted bytes (tests/fuzz, docs/fuzzing.md).
# Included by the Makefile after TEST_STAGES is declared.
#
# The targets build with clang whatever CC is (libFuzzer is clang's), with AddressSanitizer
# and UndefinedBehaviorSanitizer, into build/fuzz/ (their own tree: every source they link is
# compiled there with coverage instrumentation, never mixed with a flavour's objects).
#   make fuzz FUZZ_SECONDS=N   every target N seconds (default 60), one after another;
#                              corpora grow in build/fuzz/run/corpus/, crashes land in
#                              build/fuzz/run/crashes/; prints executions per target
#   make fuzz-build            the targets only
#   make fuzz-corpus           regenerates the seed corpora (tests/fuzz/corpus/*/gen-*)
#   test-fuzz (make test)      each target FUZZ_TEST_SECONDS (default 3) from its seeds

FUZZ_CC := clang
FUZZ_B := build/fuzz
FUZZ_TARGETS := resp frame forward codec nodeset wal snapshot sm_snapshot
FUZZ_SECONDS ?= 60
FUZZ_TEST_SECONDS ?= 3

# The project's warnings, less the GCC-only ones clang refuses under -Werror.
FUZZ_WARN := $(filter-out -Wlogical-op -Wduplicated-cond -Wduplicated-branches,$(WARN))
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -O1 -g $(FUZZ_WARN) -D_GNU_SOURCE -I. -MMD -MP -fno-omit-frame-pointer \
	$(FUZZ_SAN) -DRR_SLOW_ASSERTS -fsanitize=fuzzer-no-link

FUZZ_LIB_SRC := $(CORE_SRC) $(SERVICE_SRC) $(STORAGE_SRC)
FUZZ_LIB_OBJ := $(FUZZ_LIB_SRC:%.c=$(FUZZ_B)/%.o)
FUZZ_LIB := $(FUZZ_B)/libringraft-fuzz.a
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_B)/fuzz_%)

$(FUZZ_B)/%.o: %.c
	@mkdir -p $(dir $@)
	$(call say,FUZZCC,$<)$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	$(call say,AR,$@)$(AR) rcs $@ $^

$(FUZZ_B)/fuzz_%: $(FUZZ_B)/tests/fuzz/fuzz_%.o $(FUZZ_LIB)
	$(call say,LD,$@)$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LIBS_URING) \
		$(LIBS_XXHASH)

# The seed generator is an ordinary program built with the flavour's compiler.
GEN_CORPUS := $(B)/tests/fuzz/gen_corpus
$(GEN_CORPUS): $(B)/tests/fuzz/gen_corpus.o $(LIBSERVICE) $(LIBSTORAGE) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^ $(LIBS_URING) $(LIBS_XXHASH)
BUILD_TARGETS += $(GEN_CORPUS)

.PHONY: fuzz fuzz-build fuzz-corpus test-fuzz
# Kept: make would delete them as intermediates of the pattern rule.
.SECONDARY: $(FUZZ_TARGETS:%=$(FUZZ_B)/tests/fuzz/fuzz_%.o)

fuzz-build: $(FUZZ_BINS)

fuzz: deps
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)tools/run-fuzz.sh $(FUZZ_SECONDS) $(FUZZ_B)/run $(FUZZ_TARGETS)

fuzz-corpus:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/tests/fuzz/gen_corpus
	$(Q)build/release/tests/fuzz/gen_corpus tests/fuzz/corpus

# Each target for a few seconds, starting from its checked-in corpus (seeds and every
# input that once crashed it): a regression run, and a short search. New inputs go to a
# temporary directory, never into tests/fuzz/corpus.
TEST_STAGES += test-fuzz
test-fuzz:
	$(Q)$(MAKE) --no-print-directory fuzz-build
	$(Q)dir=$$(mktemp -d /tmp/ringraft-fuzz.XXXXXX) && \
	tools/stage.sh fuzz 120 tools/run-fuzz.sh $(FUZZ_TEST_SECONDS) $$dir $(FUZZ_TARGETS); \
	rc=$$?; rm -rf $$dir; exit $$rc
