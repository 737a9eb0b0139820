# tools/dist/install.mk: the version the programs report. Included by the Makefile.
#
# The version is RINGRAFT_VERSION in io/version.h. ringraftd and ringraft-wal also print the
# git commit they were built from, which tools/dist/release-h.sh writes to $(B)/gen/release.h
# at every make (rewritten, and the two programs recompiled, only when it changes).

# ---- version: $(B)/gen/release.h ---------------------------------------------------------
RELEASE_H := $(B)/gen/release.h
.PHONY: FORCE
FORCE:
$(RELEASE_H): FORCE
	$(Q)tools/dist/release-h.sh $(FLAVOUR) $@
$(B)/io/main.o $(B)/tools/ringraft_wal.o: $(RELEASE_H)
$(B)/io/main.o $(B)/tools/ringraft_wal.o: FLAVOUR_CFLAGS += -I$(B)/gen
