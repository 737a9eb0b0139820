/* ringraft's version, set here and nowhere else: the Makefile reads it for the man pages and
 * `make install` (tools/dist/install.mk), and ringraftd and ringraft-wal print it with
 * --version together with the git commit they were built from (RINGRAFT_GIT_COMMIT and
 * RINGRAFT_BUILD, from the generated build/FLAVOUR/gen/release.h). It lives in core/base so
 * that every copy of the tree that builds a program has it (the storage mutants copy core,
 * storage, tests and tools, not io). */
#ifndef RR_BASE_VERSION_H
#define RR_BASE_VERSION_H

#define RINGRAFT_VERSION "0.1.0"

#endif
