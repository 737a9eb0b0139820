/* ringraft's version, set here and nowhere else: the Makefile reads it for the man pages and
 * `make install` (tools/dist/install.mk), and the programs print it with --version together
 * with the git commit they were built from (RINGRAFT_GIT_COMMIT and RINGRAFT_BUILD, from the
 * generated build/FLAVOUR/gen/release.h). */
#ifndef RR_IO_VERSION_H
#define RR_IO_VERSION_H

#include <stdio.h>

#define RINGRAFT_VERSION "0.1.0"

/* Writes "PROGRAM 0.1.0 (git 39e5427abcde, release build)"; without "git ..." when commit is
 * "" (not built from a git work tree). A commit ending in "-dirty" was built with changes to
 * tracked files. */
static inline void
version_print(FILE *f, const char *program, const char *commit, const char *build)
{
    if (commit[0] != '\0') {
        fprintf(f, "%s %s (git %s, %s build)\n", program, RINGRAFT_VERSION, commit, build);
    } else {
        fprintf(f, "%s %s (%s build)\n", program, RINGRAFT_VERSION, build);
    }
}

#endif
