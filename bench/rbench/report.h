/* ringraft-bench's output: the result as a table, JSON or CSV, and the progress line. */
#ifndef RB_REPORT_H
#define RB_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "bench/rbench/rbench.h"
#include "bench/rbench/stats.h"

enum rb_format { RB_FORMAT_TABLE, RB_FORMAT_JSON, RB_FORMAT_CSV };

struct rb_result {
    const struct rb_opts *opts;
    const char *target; /* "127.0.0.1:7001", "3 nodes", "cluster of 3 nodes" */
    const struct rb_stats *stats;
    const struct histogram *all; /* latency of every operation together */
    double elapsed_s;            /* measured window: its start to the last counted reply */
    double cpu_user_s;           /* the generator's own CPU over the window (getrusage) */
    double cpu_sys_s;
    double cpu_wall_s;  /* wall time of that CPU measurement */
    uint32_t nodes;     /* nodes known at the end */
    uint32_t refreshes; /* CLUSTER SLOTS fetched */
};

void report_result(FILE *f, const struct rb_result *r, enum rb_format format);
/* One histogram's summary (--merge). */
void report_histogram(FILE *f, const struct histogram *h, uint32_t files, enum rb_format format);
void report_progress(FILE *f,
                     double at_s,
                     const char *phase,
                     double rps,
                     uint64_t total,
                     uint64_t errors,
                     uint64_t inflight,
                     uint64_t late_max_ns,
                     double cpu_cores);

#endif
