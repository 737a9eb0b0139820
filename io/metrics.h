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

/* Publishes h (values in ns) into p: cumulative bucket counts, count, sum and quantiles. */
void metrics_publish_hist(struct pub_hist *p, const struct histogram *h);

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
