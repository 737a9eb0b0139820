/* What one event loop measured: latency histograms per operation, send lateness, counters
 * and errors by kind. Each loop owns one; the main thread merges them after the run. */
#ifndef RB_STATS_H
#define RB_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "bench/rbench/workload.h"
#include "core/base/histogram.h"

#define RB_ERROR_KINDS_MAX 32 /* distinct kinds kept; the rest count as "other" */
#define RB_ERROR_NAME_MAX  32 /* bytes of a kind's name, with its NUL */

/* Error kinds: the first word of an error reply ("ERR", "MOVED", "TIMEOUT", "BUSY" ...), or
 * one of the generator's own, in lower case so they never collide with a server's:
 * "connect" (a request lost because its connection could not be made), "closed" (lost
 * because the server closed or reset the connection), "timeout" (no reply within
 * --timeout; the connection is closed), "protocol" (a malformed reply, or one nobody asked
 * for; the connection is closed), "unexpected" (a reply of another type than the command's,
 * e.g. an integer for SET), "redirects" (more than RB_REDIRECTS_MAX -MOVED / -TRYAGAIN). */
struct rb_errors {
    uint32_t kinds;                                   /* entries used */
    char name[RB_ERROR_KINDS_MAX][RB_ERROR_NAME_MAX]; /* NUL-terminated */
    uint64_t count[RB_ERROR_KINDS_MAX];               /* requests (or events) of each */
};

struct rb_stats {
    struct histogram latency[RB_OP_COUNT]; /* ns, intended send to reply, successful replies */
    struct histogram lateness;             /* ns, intended to actual send (open loop) */
    struct histogram first_reply;          /* ns, closed loop: every operation, latency as
                                            * redis-benchmark defines it (--latency) */
    uint64_t ok[RB_OP_COUNT];              /* successful replies */
    uint64_t sent;                         /* requests sent (first sends, not retries) */
    uint64_t redirects;                    /* -MOVED followed */
    uint64_t retries;                      /* -TRYAGAIN (and sends deferred by a closing
                                            * connection) tried again */
    uint64_t unsent;                       /* open loop: due before the end, never sent */
    uint64_t conn_failures;                /* connections that failed or were lost */
    uint64_t last_reply_ns;                /* monotonic time of the last counted reply */
    struct rb_errors errors;
};

void stats_init(struct rb_stats *s);
/* Adds src into dst. */
void stats_merge(struct rb_stats *dst, const struct rb_stats *src);
/* Counts n of the kind named by the first word of text[0, len). */
void errors_add(struct rb_errors *e, const char *text, size_t len, uint64_t n);
uint64_t errors_total(const struct rb_errors *e);
uint64_t stats_ok_total(const struct rb_stats *s);

#endif
