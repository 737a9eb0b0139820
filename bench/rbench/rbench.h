/* ringraft-bench: limits and the settings every module of the load generator shares. One
 * place for every bound (STYLE 23): a value outside them is refused when options are read. */
#ifndef RB_RBENCH_H
#define RB_RBENCH_H

#include <stdbool.h>
#include <stdint.h>

#define RB_THREADS_MAX    64           /* -T: event loops; more than cores only adds switches */
#define RB_CONNS_MAX      10000        /* -c: logical clients (each one connection per node) */
#define RB_PIPELINE_MAX   1024         /* -P: requests in flight per client */
#define RB_NODES_MAX      64           /* --nodes, and nodes learnt from CLUSTER SLOTS / -MOVED */
#define RB_SOCKETS_MAX    20000        /* clients x nodes: one fd and RB_IN_BYTES each */
#define RB_VALUE_MAX      (1u << 20)   /* -d: value bytes (the node's bulk limit is ~1 MiB) */
#define RB_COUNT_MAX      10000u       /* --count: COUNT of XRANGE / XREAD */
#define RB_HOST_MAX       64           /* host name or address, with its NUL */
#define RB_PASSWORD_MAX   512          /* -a: bytes of the password */
#define RB_SLOTS          16384u       /* Redis Cluster key slots */
#define RB_NODE_NONE      0xffu        /* slot map: no node known */
#define RB_REDIRECTS_MAX  16u          /* -MOVED / -TRYAGAIN followed per request, then an error */
#define RB_RATE_MAX       10000000.0   /* --rate: req/s over all clients */
#define RB_OUT_BUDGET_MAX (1ull << 30) /* output buffer bytes over all sockets */

/* Buffer of one socket's replies. The reply parser streams (it never needs a whole reply in
 * memory), so any reply size works with a fixed buffer; this only sets the recv size. */
#define RB_IN_BYTES (16u << 10)

_Static_assert(RB_NODES_MAX < RB_NODE_NONE, "node indexes fit the slot map's byte");

struct rb_opts {
    char host[RB_HOST_MAX]; /* -h */
    uint16_t port;          /* -p */
    const char *nodes;      /* --nodes host:port,...; NULL: -h/-p only */
    bool cluster;           /* --cluster: each key to its slot's node (CLUSTER SLOTS) */
    uint32_t clients;       /* -c */
    uint32_t threads;       /* -T */
    uint32_t pipeline;      /* -P */
    double rate;            /* --rate req/s total; 0: closed loop */
    char mix[256];          /* --mix / -t, as given */
    uint64_t keys;          /* --keys */
    uint64_t streams;       /* --streams */
    char dist[32];          /* --dist uniform | zipf:S */
    uint32_t value_size;    /* -d */
    uint32_t count;         /* --count of XRANGE / XREAD */
    double warmup_s;        /* --warmup */
    double duration_s;      /* --duration (ignored with -n) */
    uint64_t requests;      /* -n: measured requests in all; 0: run for duration_s */
    double timeout_s;       /* --timeout: a request with no reply by then fails */
    uint64_t seed;          /* --seed */
    const char *password;   /* -a: AUTH sent first on every connection; NULL: none */
    bool json;              /* --json */
    bool csv;               /* --csv */
    bool quiet;             /* --quiet: no progress line */
    bool first_reply;       /* --latency first-reply: redis-benchmark's definition (closed loop:
                             * every request of a batch gets its first reply's latency) */
    const char *hist_out;   /* --hist-out FILE */
    char **merge_files;     /* --merge FILE...: only merge and report histograms */
    int merge_count;
};

/* Reads argv into o (defaults first). 0, or 1 after printing the reason to stderr; 2 after
 * printing the help (exit 0). */
int opts_parse(struct rb_opts *o, int argc, char **argv);

#endif
