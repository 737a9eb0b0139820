/* Observability: latency histograms published by each worker, and the Prometheus text
 * endpoint (`metrics-port`) that worker 0 serves from its own loop: GET /metrics answers the
 * node's counters, gauges and histograms in the text exposition format (version 0.0.4),
 * then closes the connection. */
#ifndef RR_IO_METRICS_H
#define RR_IO_METRICS_H

#include "core/base/histogram.h"
#include "io/node.h"

/* The `le` bounds of published histograms, in nanoseconds (100 us to 10 s). */
extern const uint64_t metric_bounds_ns[PUB_HIST_BOUNDS];
/* Bounds of the size distributions (pub_sizes): 1, 2, 3, 4, 6, 8, 12, ... 4096. */
extern const uint64_t metric_size_bounds[PUB_SIZE_BOUNDS];

/* Publishes h (values in ns) into p: cumulative bucket counts, count, sum and quantiles. */
void metrics_publish_hist(struct pub_hist *p, const struct histogram *h);
/* Publishes a size histogram (records, frames: exact below 128) into p. */
void metrics_publish_sizes(struct pub_sizes *p, const struct histogram *h);
/* The node's workers' size distributions at `offset` in worker_pub, merged: le[] cumulative
 * at metric_size_bounds, count and sum. */
void metrics_sum_sizes(const struct node *n,
                       size_t offset,
                       uint64_t le[PUB_SIZE_BOUNDS],
                       uint64_t *count,
                       uint64_t *sum);

/* Opens worker 0's metrics listener when metrics-port is set (start-up; blocking calls).
 * Returns 0 or RR_EIO. */
int metrics_setup(struct worker *w);
/* A connection accepted on the metrics listener. */
void metrics_accepted(struct worker *w, int fd);
void metrics_on_recv(struct conn *c);

/* The exposition text of the whole node into r (also used by the tests through INFO-free
 * paths: any worker may call it). */
void metrics_render(struct node *n, struct reply *r);

#endif
