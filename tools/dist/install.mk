# tools/dist/install.mk: the version the programs report, `make install` and `make uninstall`,
# the sample config file and the install test stage. Included by the Makefile.
#
# The version is RINGRAFT_VERSION in core/base/version.h. ringraftd and ringraft-wal also print the
# git commit they were built from, which tools/dist/release-h.sh writes to $(B)/gen/release.h
# at every make (rewritten, and the two programs recompiled, only when it changes).
#
# `make install` installs the release build (built first if needed) under PREFIX, below DESTDIR
# when set (staging for a package):
#
#   $(BINDIR)/ringraftd, ringraft-wal, ringraft-cluster, ringraft-bench     mode 755
#   $(MANDIR)/man8/ringraftd.8, man1/ringraft-wal.1, ringraft-cluster.1, ringraft-bench.1
#   $(DOCDIR)/examples/ringraft.conf    the sample config file (tools/dist/ringraft.conf)
#   $(SYSCONFDIR)/ringraft/ringraft.conf    the same, mode 640, only if there is none yet
#   $(SYSTEMDUNITDIR)/ringraftd.service     tools/dist/ringraftd.service with the paths
#   $(SYSUSERSDIR)/ringraft.conf            the ringraft user (tools/dist/ringraft.sysusers)
#
# `make uninstall` (same PREFIX and DESTDIR) removes them, except a config file that differs
# from the sample (it has been edited: kept, and said so). Data in /var/lib/ringraft is
# never touched. docs/operations.md, "Installing".

RINGRAFT_VERSION := $(shell sed -n 's/^.define RINGRAFT_VERSION "\(.*\)"$$/\1/p' core/base/version.h)

PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/ringraft
# Debian's /etc for PREFIX=/usr (a package), $(PREFIX)/etc otherwise (GNU's sysconfdir).
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
INSTALL ?= install

# ---- version: $(B)/gen/release.h ---------------------------------------------------------
RELEASE_H := $(B)/gen/release.h
.PHONY: FORCE
FORCE:
$(RELEASE_H): FORCE
	$(Q)tools/dist/release-h.sh $(FLAVOUR) $@
# Every object that includes it: ringraftd's main, ringraft-wal, ringraft-bench's options and
# ringraftd-faults' main (tests/faults/faults.mk compiles io/ again under $(B)/faults-io).
RELEASE_H_USERS := $(B)/io/main.o $(B)/tools/ringraft_wal.o $(B)/bench/rbench/opts.o \
	$(B)/faults-io/io/main.o
$(RELEASE_H_USERS): $(RELEASE_H)
$(RELEASE_H_USERS): FLAVOUR_CFLAGS += -I$(B)/gen

# ---- sample config file ------------------------------------------------------------------
# tools/dist/ringraft.conf is checked in (readable in the tree) and generated: `make
# sample-config` rewrites it from ringraftd's table of settings (io/config.c) with the data
# directory the systemd unit uses; the install test fails when it is out of date.
SAMPLE_CONFIG := tools/dist/ringraft.conf
SAMPLE_CONFIG_ARGS := --dir /var/lib/ringraft
.PHONY: sample-config
sample-config:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release build/release/ringraftd
	$(Q)build/release/ringraftd $(SAMPLE_CONFIG_ARGS) --sample-config > $(SAMPLE_CONFIG).tmp
	$(Q)mv $(SAMPLE_CONFIG).tmp $(SAMPLE_CONFIG)

# ---- install / uninstall -----------------------------------------------------------------
INSTALL_BIN := build/release/ringraftd build/release/tools/ringraft-wal \
	build/release/bench/ringraft-bench
INSTALL_MAN := tools/man/ringraftd.8 tools/man/ringraft-wal.1 tools/man/ringraft-cluster.1 \
	tools/man/ringraft-bench.1
# Where make install puts each page: tools/man/NAME.S as $(MANDIR)/manS/NAME.S.
INSTALLED_MAN = $(foreach page,$(INSTALL_MAN),\
	$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(page)))/$(notdir $(page)))
# Paths and the version filled into the man pages and the unit.
INSTALL_SUBST := sed -e 's|@VERSION@|$(RINGRAFT_VERSION)|g' -e 's|@BINDIR@|$(BINDIR)|g' \
	-e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g'
CONF_DIR := $(DESTDIR)$(SYSCONFDIR)/ringraft

.PHONY: install uninstall test-install
install:
	$(Q)$(MAKE) --no-print-directory FLAVOUR=release $(INSTALL_BIN)
	$(call say,INSTALL,$(DESTDIR)$(PREFIX))$(INSTALL) -d $(DESTDIR)$(BINDIR) \
		$(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(DOCDIR)/examples \
		$(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(CONF_DIR)
	$(Q)$(INSTALL) -m 0755 $(INSTALL_BIN) tools/ringraft-cluster $(DESTDIR)$(BINDIR)/
	$(Q)for page in $(INSTALL_MAN); do \
		section=$${page##*.}; \
		$(INSTALL_SUBST) $$page > $(DESTDIR)$(MANDIR)/man$$section/$${page##*/}.tmp && \
		chmod 0644 $(DESTDIR)$(MANDIR)/man$$section/$${page##*/}.tmp && \
		mv $(DESTDIR)$(MANDIR)/man$$section/$${page##*/}.tmp \
			$(DESTDIR)$(MANDIR)/man$$section/$${page##*/} || exit 1; \
	done
	$(Q)$(INSTALL) -m 0644 $(SAMPLE_CONFIG) $(DESTDIR)$(DOCDIR)/examples/ringraft.conf
	$(Q)$(INSTALL_SUBST) tools/dist/ringraftd.service > $(DESTDIR)$(SYSTEMDUNITDIR)/ringraftd.service.tmp
	$(Q)chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/ringraftd.service.tmp
	$(Q)mv $(DESTDIR)$(SYSTEMDUNITDIR)/ringraftd.service.tmp $(DESTDIR)$(SYSTEMDUNITDIR)/ringraftd.service
	$(Q)$(INSTALL) -m 0644 tools/dist/ringraft.sysusers $(DESTDIR)$(SYSUSERSDIR)/ringraft.conf
	$(Q)if [ -e $(CONF_DIR)/ringraft.conf ]; then \
		echo "  kept   $(CONF_DIR)/ringraft.conf (an existing config file is never replaced;" \
			"the new sample is $(DESTDIR)$(DOCDIR)/examples/ringraft.conf)"; \
	else \
		$(INSTALL) -m 0640 $(SAMPLE_CONFIG) $(CONF_DIR)/ringraft.conf; \
	fi

uninstall:
	$(call say,RM,$(DESTDIR)$(PREFIX))rm -f \
		$(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(INSTALL_BIN)) ringraft-cluster) \
		$(INSTALLED_MAN) \
		$(DESTDIR)$(DOCDIR)/examples/ringraft.conf \
		$(DESTDIR)$(SYSTEMDUNITDIR)/ringraftd.service $(DESTDIR)$(SYSUSERSDIR)/ringraft.conf
	$(Q)if [ -e $(CONF_DIR)/ringraft.conf ]; then \
		if cmp -s $(CONF_DIR)/ringraft.conf $(SAMPLE_CONFIG); then \
			rm -f $(CONF_DIR)/ringraft.conf; \
		else \
			echo "  kept   $(CONF_DIR)/ringraft.conf (edited; remove it by hand)"; \
		fi; \
	fi
	$(Q)for d in $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) $(CONF_DIR); do \
		if [ -d $$d ]; then rmdir --ignore-fail-on-non-empty $$d; fi; \
	done

# ---- test stage: tests/install -----------------------------------------------------------
# Installs into a temporary DESTDIR (the release build, built if needed) and checks the files,
# modes, --version and --help, the sample config, the unit, the man pages and uninstall.
TEST_STAGES += test-install
test-install:
	$(Q)tools/stage.sh install 600 python3 tests/install/test_install.py
