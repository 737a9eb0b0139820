# tests/multihost: docs/operations.md's several-hosts example (bind and advertised
# addresses, adding and replacing a host, a rolling restart, a backup from snapshots and its
# restore) run as written, one ringraftd per network namespace (tests/multihost/run.py).
# Needs root and `ip netns` (skipped otherwise, saying why).
#
#   make test-multihost                       the stage of `make test` (under a minute)
#   python3 tests/multihost/run.py --mutant advertise|bind   a hand-built mistake: must fail

.PHONY: test-multihost
MULTIHOST_TIMEOUT ?= 240
TEST_STAGES += test-multihost

test-multihost:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=debug build/debug/ringraftd
	$(Q)tools/stage.sh multihost $(MULTIHOST_TIMEOUT) python3 -B tests/multihost/run.py \
		--bin build/debug/ringraftd --out $(CURDIR)/build/multihost
