/* ringraftd: a ringraft node.
 *
 *   ringraftd [CONFIG-FILE] [--SETTING VALUE ...] [--check-config | --dump-config |
 *             --sample-config]
 *   ringraftd --help | --version
 *
 * With no arguments: a single-node cluster on 127.0.0.1:7001 with data in ./ringraft-data.
 * Settings come from the built-in default, then the file, then the flags (docs/node.md,
 * ringraftd(8)). Exit status: 0 after a clean shutdown or a command, 1 when the node fails
 * (start-up or later), 2 for a bad command line or configuration. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "core/base/version.h"
#include "io/log.h"
#include "io/ringraftd.h"
#include "release.h" /* generated: RINGRAFT_GIT_COMMIT, RINGRAFT_BUILD (tools/dist/install.mk) */

/* A failed invariant is logged (file, line, expression) before the process aborts, so the
 * log says why a node died. */
static void on_assert(const char *file, int line, const char *expr)
{
    LOG_E("assertion failed: %s:%d: %s", file, line, expr);
    abort();
}

static void usage(FILE *f)
{
    static const char *const head[] = {
        "usage: ringraftd [CONFIG-FILE] [--SETTING VALUE ...]",
        "                 [--check-config | --dump-config | --sample-config]",
        "       ringraftd --help | --version",
        "",
        "Runs one ringraft node. With no arguments: a single-node cluster on 127.0.0.1:7001,",
        "data in ./ringraft-data. Settings come from the built-in default, then CONFIG-FILE",
        "(\"setting value\" lines), then the --SETTING VALUE flags; ringraftd(8) describes them.",
        "",
        "Commands:",
    };
    static const char *const commands[][2] = {
        {"--check-config", "check the configuration and exit (status 0: valid)"},
        {"--dump-config", "print the effective configuration and exit"},
        {"--sample-config", "print a commented config file and exit"},
        {"--help, -h", "print this help and exit"},
        {"--version", "print the version and exit"},
    };
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
        fprintf(f, "%s\n", head[i]);
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        fprintf(f, "  %-37s %s\n", commands[i][0], commands[i][1]);
    }
    fprintf(f, "\nSettings (in CONFIG-FILE without the leading --):\n");
    config_write_help(f);
}

/* glibc malloc reads its tunables only at start, so with malloc-hugepages (the default) the
 * node starts itself again with them in the environment, before it opens anything: one
 * arena for every thread (glibc.malloc.arena_max=1: the heap is then the one brk heap, not a
 * 64 MiB mmap'd heap per thread grown a few pages at a time) and that heap grown in 2 MiB
 * steps advised MADV_HUGEPAGE (glibc.malloc.hugetlb=1), so that transparent huge pages back
 * it when the kernel allows them (enabled = always or madvise). Under a SET load that cut
 * page faults per write fivefold and CPU per write by 12-31% (docs/benchmarks.md, "CPU per
 * write"). Two more keep the growing log and key tables in that heap: every block below 32
 * MiB comes from it (glibc.malloc.mmap_threshold, glibc's maximum; by default blocks from
 * 128 KiB on, such as a group's entry array once it grows past that, are mapped on their
 * own in 4 KiB pages, each first touch a fault), and free() never gives the heap's top back
 * (glibc.malloc.trim_threshold of 1 GiB: it would shrink and grow again under load, each
 * regrowth a fresh fault; the node trims its heap itself while idle, heap_trim in
 * io/worker.c). Under the same load these two cut CPU per write by a further 18-19%
 * (docs/benchmarks.md, "malloc thresholds"). An operator's own glibc.malloc tunables are
 * left alone, and so is a start where re-executing fails (no /proc): the node then runs
 * with the defaults. */
static void malloc_restart(char **argv)
{
    static const char want[] = "glibc.malloc.hugetlb=1:glibc.malloc.arena_max=1:"
                               "glibc.malloc.mmap_threshold=33554432:"
                               "glibc.malloc.trim_threshold=1073741824";
    const char *have = getenv("GLIBC_TUNABLES");
    if (have != NULL && strstr(have, "glibc.malloc.") != NULL) {
        return; /* set by the operator, or by this function before the exec */
    }
    char *old = have != NULL ? strdup(have) : NULL;
    if (have != NULL && old == NULL) {
        return;
    }
    size_t len = (old != NULL ? strlen(old) + 1 : 0) + sizeof(want);
    char *v = malloc(len);
    if (v == NULL) {
        free(old);
        return;
    }
    snprintf(v, len, "%s%s%s", old != NULL ? old : "", old != NULL && old[0] != '\0' ? ":" : "",
             want);
    if (setenv("GLIBC_TUNABLES", v, 1) == 0) {
        execv("/proc/self/exe", argv);
        /* Still here: run as started, with the environment as it was. */
        if (old != NULL) {
            setenv("GLIBC_TUNABLES", old, 1);
        } else {
            unsetenv("GLIBC_TUNABLES");
        }
    }
    free(v);
    free(old);
}

/* "ringraftd 0.1.0 (git 39e5427abcde, release build)"; without "git ..." when the build was
 * not made from a git work tree; "-dirty" after the commit when tracked files had changes. */
static void version(FILE *f)
{
    const char *commit = RINGRAFT_GIT_COMMIT;
    if (commit[0] != '\0') {
        fprintf(f, "ringraftd %s (git %s, %s build)\n", RINGRAFT_VERSION, commit, RINGRAFT_BUILD);
    } else {
        fprintf(f, "ringraftd %s (%s build)\n", RINGRAFT_VERSION, RINGRAFT_BUILD);
    }
}

int main(int argc, char **argv)
{
    struct node_config cfg;
    config_default(&cfg);
    char err[600];
    bool dump = false, check = false, sample = false;
    int i = 1;
    if (i < argc && argv[i][0] != '-') {
        if (config_load_file(&cfg, argv[i], err, sizeof(err)) != 0) {
            fprintf(stderr, "ringraftd: %s\n", err);
            return 2;
        }
        i++;
    }
    for (; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--version") == 0) {
            version(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--sample-config") == 0) {
            sample = true;
            continue;
        }
        if (strcmp(argv[i], "--dump-config") == 0) {
            dump = true;
            continue;
        }
        if (strcmp(argv[i], "--check-config") == 0) {
            check = true;
            continue;
        }
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr,
                    "ringraftd: expected --SETTING VALUE at '%s' (ringraftd --help lists them)\n",
                    argv[i]);
            return 2;
        }
        if (config_set(&cfg, argv[i] + 2, argv[i + 1], err, sizeof(err)) != 0) {
            fprintf(stderr, "ringraftd: %s\n", err);
            return 2;
        }
        i++;
    }
    if (config_validate(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "ringraftd: bad configuration: %s\n", err);
        return 2;
    }
    if (dump) {
        config_write(&cfg, stdout);
        return 0;
    }
    if (sample) {
        config_write_sample(&cfg, stdout);
        return 0;
    }
    if (check) {
        return 0;
    }
    if (cfg.malloc_hugepages) {
        malloc_restart(argv);
    }
    int fd = 2;
    if (cfg.logfile[0] != '\0') {
        fd = open(cfg.logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0) {
            fprintf(stderr, "ringraftd: cannot open logfile %s: %s\n", cfg.logfile,
                    strerror(errno));
            return 2;
        }
    }
    log_setup((enum log_level)cfg.log_level, fd);
    rr_assert_set_handler(on_assert);
    if (cfg.malloc_hugepages) {
        /* getenv: glibc cuts the copy in /proc/PID/environ short at the first tunable. */
        const char *t = getenv("GLIBC_TUNABLES");
        LOG_N("malloc: GLIBC_TUNABLES=%s",
              t != NULL ? t : "(unset: running with glibc's defaults)");
    }
    return node_run(&cfg);
}
