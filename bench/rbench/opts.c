/* Command line of ringraft-bench: defaults, parsing, range checks. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/rbench/rbench.h"
#include "core/base/version.h"
#include "release.h" /* generated: RINGRAFT_GIT_COMMIT, RINGRAFT_BUILD (tools/dist/install.mk) */

static const char usage_text[] =
    "usage: ringraft-bench [OPTIONS]\n"
    "Target (default -h 127.0.0.1 -p 7001):\n"
    "  -h HOST, -p PORT        one node (or redis-server)\n"
    "  -a PASSWORD             AUTH with it on every connection (requirepass)\n"
    "  --nodes H:P,H:P,...     spread the clients over these nodes (client i -> node i mod N)\n"
    "  --cluster               send each key to its slot's node (CLUSTER SLOTS of the first\n"
    "                          node; follows -MOVED and -TRYAGAIN, refreshes the map)\n"
    "Load:\n"
    "  -c N                    clients (connections; per node with --cluster) [50]\n"
    "  -T N, --threads N       event loops (threads) [1]\n"
    "  -P N                    pipeline: requests in flight per client [1]\n"
    "  --rate R                open loop: R req/s over all clients, latency counted from each\n"
    "                          request's intended send time; 0 = closed loop [0]\n"
    "Workload:\n"
    "  -t OP, --mix OP:W,...   set, get, incr, xadd, xrange, xread, weighted [set]\n"
    "  --keys N                keys (key:NNNNNNNNNNNN, counter:... for incr) [100000]\n"
    "  --streams N             streams (stream:NNNNNNNNNNNN) [16]\n"
    "  --dist D                uniform or zipf:S (e.g. zipf:0.99) over keys and streams\n"
    "  -d N, --value-size N    value bytes of set and xadd [3]\n"
    "  --count N               COUNT of xrange and xread [10]\n"
    "Time:\n"
    "  --warmup S              seconds before measuring [0]\n"
    "  --duration S            seconds measured [10]\n"
    "  -n N                    measured requests in all (instead of --duration)\n"
    "  --timeout S             a request without reply by then fails [10]\n"
    "  --latency MODE          per-request: each request's own reply [default]; first-reply:\n"
    "                          as redis-benchmark, a batch's first reply for all of it\n"
    "                          (closed loop only)\n"
    "  --seed N                key choice seed [1]\n"
    "Output:\n"
    "  --json, --csv           machine-readable result on stdout (default: a table)\n"
    "  --quiet                 no progress line on stderr\n"
    "  --hist-out FILE         write the latency histogram (text form) to FILE\n"
    "  --merge FILE...         merge --hist-out files of earlier runs and report them\n"
    "  --help, --version\n";

static void opts_default(struct rb_opts *o)
{
    memset(o, 0, sizeof(*o));
    snprintf(o->host, sizeof(o->host), "127.0.0.1");
    o->port = 7001;
    o->clients = 50;
    o->threads = 1;
    o->pipeline = 1;
    snprintf(o->mix, sizeof(o->mix), "set");
    o->keys = 100000;
    o->streams = 16;
    snprintf(o->dist, sizeof(o->dist), "uniform");
    o->value_size = 3;
    o->count = 10;
    o->duration_s = 10.0;
    o->timeout_s = 10.0;
    o->seed = 1;
}

static int bad(const char *name, const char *value, const char *why)
{
    fprintf(stderr, "ringraft-bench: %s '%s': %s\n", name, value, why);
    return 1;
}

/* Unsigned integer in [lo, hi]. */
static int parse_u64(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof(why), "expected an integer in [%llu, %llu]", (unsigned long long)lo,
                 (unsigned long long)hi);
        return bad(name, s, why);
    }
    *out = v;
    return 0;
}

static int parse_u32(const char *name, const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
    uint64_t v = 0;
    int rc = parse_u64(name, s, lo, hi, &v);
    *out = (uint32_t)v;
    return rc;
}

static int parse_seconds(const char *name, const char *s, double lo, double hi, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi) {
        char why[96];
        snprintf(why, sizeof(why), "expected a number in [%g, %g]", lo, hi);
        return bad(name, s, why);
    }
    *out = v;
    return 0;
}

static int copy_text(const char *name, const char *s, char *dst, size_t cap)
{
    if (strlen(s) >= cap || s[0] == '\0') {
        return bad(name, s, "empty or too long");
    }
    snprintf(dst, cap, "%s", s);
    return 0;
}

enum {
    OPT_NODES = 1000,
    OPT_CLUSTER,
    OPT_RATE,
    OPT_MIX,
    OPT_KEYS,
    OPT_STREAMS,
    OPT_DIST,
    OPT_COUNT,
    OPT_WARMUP,
    OPT_DURATION,
    OPT_TIMEOUT,
    OPT_SEED,
    OPT_JSON,
    OPT_CSV,
    OPT_QUIET,
    OPT_HIST_OUT,
    OPT_MERGE,
    OPT_HELP,
    OPT_LATENCY,
    OPT_VERSION,
};

static const struct option long_opts[] = {
    {"nodes", required_argument, NULL, OPT_NODES},
    {"cluster", no_argument, NULL, OPT_CLUSTER},
    {"threads", required_argument, NULL, 'T'},
    {"rate", required_argument, NULL, OPT_RATE},
    {"mix", required_argument, NULL, OPT_MIX},
    {"workload", required_argument, NULL, 't'},
    {"keys", required_argument, NULL, OPT_KEYS},
    {"streams", required_argument, NULL, OPT_STREAMS},
    {"dist", required_argument, NULL, OPT_DIST},
    {"value-size", required_argument, NULL, 'd'},
    {"count", required_argument, NULL, OPT_COUNT},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"seed", required_argument, NULL, OPT_SEED},
    {"json", no_argument, NULL, OPT_JSON},
    {"csv", no_argument, NULL, OPT_CSV},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"hist-out", required_argument, NULL, OPT_HIST_OUT},
    {"merge", no_argument, NULL, OPT_MERGE},
    {"help", no_argument, NULL, OPT_HELP},
    {"latency", required_argument, NULL, OPT_LATENCY},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

/* As ringraftd --version: "ringraft-bench 0.1.0 (git 39e5427abcde, release build)". */
static void version(FILE *f)
{
    const char *commit = RINGRAFT_GIT_COMMIT;
    if (commit[0] != '\0') {
        fprintf(f, "ringraft-bench %s (git %s, %s build)\n", RINGRAFT_VERSION, commit,
                RINGRAFT_BUILD);
    } else {
        fprintf(f, "ringraft-bench %s (%s build)\n", RINGRAFT_VERSION, RINGRAFT_BUILD);
    }
}

/* One option; 0, 1 on a bad value, 2 for --help and --version. */
static int opts_one(struct rb_opts *o, int c, const char *arg)
{
    uint32_t port = 0;
    switch (c) {
    case 'h':
        return copy_text("-h", arg, o->host, sizeof(o->host));
    case 'a':
        if (strlen(arg) > RB_PASSWORD_MAX) {
            return bad("-a", "...", "too long");
        }
        o->password = arg;
        return 0;
    case 'p':
        if (parse_u32("-p", arg, 1, 65535, &port) != 0) {
            return 1;
        }
        o->port = (uint16_t)port;
        return 0;
    case OPT_NODES:
        o->nodes = arg;
        return 0;
    case OPT_CLUSTER:
        o->cluster = true;
        return 0;
    case 'c':
        return parse_u32("-c", arg, 1, RB_CONNS_MAX, &o->clients);
    case 'T':
        return parse_u32("-T", arg, 1, RB_THREADS_MAX, &o->threads);
    case 'P':
        return parse_u32("-P", arg, 1, RB_PIPELINE_MAX, &o->pipeline);
    case OPT_RATE:
        return parse_seconds("--rate", arg, 0.0, RB_RATE_MAX, &o->rate);
    case 't':
    case OPT_MIX:
        return copy_text("--mix", arg, o->mix, sizeof(o->mix));
    case OPT_KEYS:
        return parse_u64("--keys", arg, 1, 1000000000000ull, &o->keys);
    case OPT_STREAMS:
        return parse_u64("--streams", arg, 1, 1000000000000ull, &o->streams);
    case OPT_DIST:
        return copy_text("--dist", arg, o->dist, sizeof(o->dist));
    case 'd':
        return parse_u32("-d", arg, 0, RB_VALUE_MAX, &o->value_size);
    case OPT_COUNT:
        return parse_u32("--count", arg, 1, RB_COUNT_MAX, &o->count);
    case OPT_WARMUP:
        return parse_seconds("--warmup", arg, 0.0, 86400.0, &o->warmup_s);
    case OPT_DURATION:
        return parse_seconds("--duration", arg, 0.001, 86400.0, &o->duration_s);
    case 'n':
        return parse_u64("-n", arg, 1, 1000000000000ull, &o->requests);
    case OPT_TIMEOUT:
        return parse_seconds("--timeout", arg, 0.001, 3600.0, &o->timeout_s);
    case OPT_SEED:
        return parse_u64("--seed", arg, 0, UINT64_MAX, &o->seed);
    case OPT_JSON:
        o->json = true;
        return 0;
    case OPT_CSV:
        o->csv = true;
        return 0;
    case OPT_QUIET:
        o->quiet = true;
        return 0;
    case OPT_LATENCY:
        if (strcmp(arg, "per-request") != 0 && strcmp(arg, "first-reply") != 0) {
            return bad("--latency", arg, "expected per-request or first-reply");
        }
        o->first_reply = strcmp(arg, "first-reply") == 0;
        return 0;
    case OPT_HIST_OUT:
        o->hist_out = arg;
        return 0;
    case OPT_HELP:
        fputs(usage_text, stdout);
        return 2;
    case OPT_VERSION:
        version(stdout);
        return 2;
    default:
        fputs(usage_text, stderr);
        return 1;
    }
}

int opts_parse(struct rb_opts *o, int argc, char **argv)
{
    opts_default(o);
    bool merge = false;
    int c;
    while ((c = getopt_long(argc, argv, "h:p:a:c:T:P:t:d:n:", long_opts, NULL)) != -1) {
        if (c == OPT_MERGE) {
            merge = true;
            continue;
        }
        int rc = opts_one(o, c, optarg);
        if (rc != 0) {
            return rc;
        }
    }
    if (merge) {
        if (optind >= argc) {
            fprintf(stderr, "ringraft-bench: --merge needs at least one file\n");
            return 1;
        }
        o->merge_files = argv + optind;
        o->merge_count = argc - optind;
        return 0;
    }
    if (optind < argc) {
        fprintf(stderr, "ringraft-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 1;
    }
    if (o->first_reply && o->rate > 0.0) {
        fprintf(stderr, "ringraft-bench: --latency first-reply is for the closed loop only\n");
        return 1;
    }
    if (o->json && o->csv) {
        fprintf(stderr, "ringraft-bench: --json and --csv exclude each other\n");
        return 1;
    }
    return 0;
}
