# The deterministic simulator (tests/sim) and the mutant harness (tools/run-mutants.sh).
# Included by the Makefile after TEST_STAGES is declared.

SIM_SRC := $(wildcard tests/sim/*.c)
SIM_OBJ := $(SIM_SRC:%.c=$(B)/%.o)
SIM_BIN := $(B)/tests/sim/sim
SIM_SEEDS_DEBUG ?= 300
SEEDS ?= 1000

BUILD_TARGETS += $(SIM_BIN)

$(SIM_BIN): $(SIM_OBJ) $(LIBCORE)
	$(call say,LD,$@)$(CC) $(FLAVOUR_LDFLAGS) -o $@ $^

# `make sim SEEDS=N`: N seeds on the release build, split over the machine's cores.
sim:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/tests/sim/sim
	$(Q)tests/sim/run-seeds.sh build/release/tests/sim/sim $(SEEDS)

# A simulator linked against a mutated copy of core/ in MUTANT_DIR (tools/run-mutants.sh).
# -iquote makes "core/..." resolve to the copy before the tree's own core/.
MUTANT_DIR ?=
mutant-sim:
	@test -n "$(MUTANT_DIR)" -a -d "$(MUTANT_DIR)/core" || { echo "MUTANT_DIR=<dir with core/>"; exit 1; }
	$(call say,LD,$(MUTANT_DIR)/sim)$(CC) $(filter-out -MMD -MP,$(CFLAGS)) $(FLAVOUR_CFLAGS) \
		-iquote $(MUTANT_DIR) -o $(MUTANT_DIR)/sim \
		$(wildcard $(MUTANT_DIR)/core/*.c $(MUTANT_DIR)/core/base/*.c) $(SIM_SRC) $(FLAVOUR_LDFLAGS)

test-sim:
	$(Q)tools/stage.sh sim 1500 tests/sim/run-seeds.sh $(SIM_BIN) $(SIM_SEEDS_DEBUG)

# Every mutant must be caught by its checker; those with a "safety: N" header line must also
# be caught, with the rule checkers off, by election_safety, state_machine_safety or
# commit_quorum within N seeds, on a seed the
# real core (REAL_SIM, this flavour's simulator) passes with every checker on.
test-mutants: $(SIM_BIN)
	$(Q)REAL_SIM=$(SIM_BIN) tools/stage.sh mutants 1800 tools/run-mutants.sh

# `make mutants-safety`: only the mutants with a safety pass (release build).
mutants-safety:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/tests/sim/sim
	$(Q)REAL_SIM=build/release/tests/sim/sim tools/run-mutants.sh \
		$$(grep -l '^safety:' tests/mutants/*.patch | xargs -n 1 basename | sed 's/\.patch$$//')

TEST_STAGES += test-sim test-mutants
.PHONY: mutant-sim test-sim test-mutants mutants-safety
