/* ringraftd: a ringraft node.
 *
 *   ringraftd [CONFIG-FILE] [--SETTING VALUE ...] [--dump-config] [--check-config]
 *
 * With no arguments: a single-node cluster on 127.0.0.1:7001 with data in ./ringraft-data.
 * Settings come from the built-in default, then the file, then the flags (docs/node.md). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "io/log.h"
#include "io/ringraftd.h"

/* A failed invariant is logged (file, line, expression) before the process aborts, so the
 * log says why a node died. */
static void on_assert(const char *file, int line, const char *expr)
{
    LOG_E("assertion failed: %s:%d: %s", file, line, expr);
    abort();
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ringraftd [CONFIG-FILE] [--SETTING VALUE ...] [--dump-config] "
               "[--check-config]\n"
               "  with no arguments: a single-node cluster on 127.0.0.1:7001, data in "
               "./ringraft-data\n"
               "  --dump-config prints the effective configuration and exits; every setting "
               "is listed there\n"
               "  (see docs/node.md)\n");
}

int main(int argc, char **argv)
{
    struct node_config cfg;
    config_default(&cfg);
    char err[600];
    bool dump = false, check = false;
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
        if (strcmp(argv[i], "--dump-config") == 0) {
            dump = true;
            continue;
        }
        if (strcmp(argv[i], "--check-config") == 0) {
            check = true;
            continue;
        }
        if (strncmp(argv[i], "--", 2) != 0 || i + 1 >= argc) {
            fprintf(stderr, "ringraftd: expected --SETTING VALUE at '%s'\n", argv[i]);
            usage(stderr);
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
    if (check) {
        return 0;
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
    return node_run(&cfg);
}
