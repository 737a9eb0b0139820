/* One ringraft-bench event loop (a thread with its own io_uring): its clients, their
 * connections and requests, and the run settings all loops share.
 *
 * A client is one logical user of the service: it has P request slots (the pipeline), a
 * schedule (open loop) or a batch (closed loop), and one connection per node it sends to
 * (one in all unless --cluster). A request slot lives from the moment the request is taken
 * from the schedule until its final reply or failure, across redirects and retries, so its
 * latency always counts from its intended send time. */
#ifndef RB_THREAD_H
#define RB_THREAD_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "bench/rbench/rbench.h"
#include "bench/rbench/resp_reply.h"
#include "bench/rbench/slots.h"
#include "bench/rbench/stats.h"
#include "bench/rbench/workload.h"
#include "core/base/prng.h"

/* Shared by every loop: written by the main thread before the start barrier, read-only
 * after it, except the atomics. */
struct rb_run {
    const struct rb_opts *opts;
    const struct rb_workload *wl;
    struct rb_cluster *cluster;
    uint32_t home_nodes;     /* nodes given on the command line: client i's home is i % it */
    uint64_t t_start_ns;     /* monotonic: the schedule's origin */
    uint64_t t_measure_ns;   /* t_start + warm-up: requests intended from here on count */
    uint64_t t_end_ns;       /* no request intended from here on; UINT64_MAX with -n */
    uint64_t timeout_ns;     /* --timeout */
    double interval_ns;      /* open loop: time between two sends of one client; 0: closed */
    size_t request_max;      /* bytes of the longest request */
    bool stop;               /* SIGINT: finish now (__atomic) */
    pthread_barrier_t ready; /* loops connected */
    pthread_barrier_t go;    /* t_start set */
};

struct rb_req {
    uint64_t intended_ns; /* when it was meant to leave: latency counts from here */
    uint64_t sent_ns;     /* when its bytes were last queued: timeouts count from here */
    uint64_t retry_ns;    /* in the retry ring: not before this */
    uint64_t key;         /* key or stream index */
    uint8_t op;           /* enum rb_op */
    uint8_t redirects;    /* -MOVED / -TRYAGAIN followed so far */
    uint8_t node_hint;    /* RB_NODE_NONE, or the node a -MOVED named: sent there next */
    bool measured;        /* intended within the measured window */
};

enum rb_conn_state {
    CONN_DOWN,       /* no socket; reconnect at reconnect_ns */
    CONN_CONNECTING, /* connect in flight */
    CONN_UP,         /* recv armed, sends allowed */
    CONN_CLOSING,    /* failed: waiting for its operations to finish before closing */
};

#define RB_SLOT_AUTH UINT32_MAX /* fifo entry of a connection's own AUTH */

struct rb_conn {
    int fd;                /* -1 when down */
    uint32_t gen;          /* bumped per socket: catches stale completions (24 bits used) */
    uint32_t client;       /* owner, index in the thread's clients */
    uint8_t node;          /* index in the cluster's nodes */
    uint8_t state;         /* enum rb_conn_state */
    bool recv_pending;     /* a recv SQE is in flight */
    bool send_pending;     /* a send SQE is in flight, over out[0, out_sent) */
    bool connect_pending;  /* a connect SQE is in flight */
    bool dirty;            /* on the thread's flush list */
    bool ever_up;          /* connected at least once */
    uint32_t out_len;      /* bytes queued in out; <= out_cap */
    uint32_t out_sent;     /* bytes of the send in flight */
    uint32_t out_cap;      /* pipeline x request_max + AUTH: the fifo's bytes fit */
    uint8_t *out;          /* queued requests, oldest first */
    uint8_t *in;           /* RB_IN_BYTES: one recv's bytes (the parser streams) */
    uint32_t *fifo;        /* request slots sent here, awaiting replies in order
                            * (RB_SLOT_AUTH: the connection's AUTH); pipeline + 1 entries */
    uint32_t fifo_head;    /* index of the oldest */
    uint32_t fifo_count;   /* <= pipeline + 1 */
    uint64_t reconnect_ns; /* CONN_DOWN: when to dial again; CONN_UP: when it came up */
    uint32_t backoff_ms;   /* next reconnect delay: 100 ms doubling to 1 s */
    struct resp_reply_parser parser;
};

struct rb_client {
    uint32_t global;            /* index among all clients: sets its home node and schedule phase */
    uint32_t inflight;          /* slots in use; <= pipeline */
    uint32_t free_count;        /* entries in free_slots */
    uint32_t *free_slots;       /* unused slot indexes */
    struct rb_req *req;         /* pipeline slots */
    uint32_t *retry;            /* ring of slots waiting to be sent again */
    uint32_t retry_head;        /* oldest */
    uint32_t retry_count;       /* <= pipeline */
    uint64_t quota;             /* -n: measured requests still to take; UINT64_MAX without -n */
    uint64_t batch_reply_ns;    /* closed loop, --latency first-reply: first reply of the batch */
    uint64_t due_k;             /* open loop: schedule slots taken so far */
    uint64_t next_due_ns;       /* open loop: intended time of schedule slot due_k */
    bool ready;                 /* on the thread's ready list */
    uint8_t home;               /* node index when not routing by slot */
    int32_t conn[RB_NODES_MAX]; /* connection to each node, or -1 */
};

/* What the main thread reads while the loop runs (relaxed atomics, one store per loop). */
struct rb_progress {
    uint64_t replies;     /* replies and failures, measured or not */
    uint64_t errors;      /* failures */
    uint64_t late_max_ns; /* largest lateness since the main thread last took it (exchange) */
    uint64_t inflight;    /* requests in flight */
    bool done;            /* the loop has finished */
};

struct rb_thread {
    uint32_t id;
    struct rb_run *run;
    pthread_t pthread;
    struct io_uring ring;
    bool ring_ok;
    struct rr_prng prng;
    struct rb_client *clients;
    uint32_t client_count;
    struct rb_conn *conns;
    uint32_t conn_count;
    uint32_t conn_cap;
    uint32_t *dirty; /* connections with output to send */
    uint32_t dirty_count;
    uint32_t *ready; /* clients to pump (a completion, a retry) */
    uint32_t ready_count;
    uint32_t cursor;        /* open loop: the client due next */
    uint32_t retry_clients; /* clients with a non-empty retry ring */
    uint64_t inflight;      /* over all clients */
    uint64_t quota_clients; /* -n: clients with quota left */
    struct rb_slot_map map; /* --cluster: this loop's copy */
    uint64_t map_gen;
    uint64_t now_ns;          /* read once per loop iteration */
    uint64_t housekeeping_ns; /* next timeout and reconnect scan */
    bool stopping;            /* no new requests */
    uint64_t deadline_ns;     /* stopping: fail what is left at this time */
    uint64_t replies;         /* progress counters, published to progress */
    uint64_t failures;
    uint64_t late_max_ns;
    struct rb_progress progress;
    struct rb_stats stats;
    char err[256]; /* set-up failure */
    int rc;        /* 0, or 1 when set-up failed */
};

uint64_t rb_clock_ns(void);

/* loop.c: called by conn.c. */
void loop_on_reply(struct rb_thread *t,
                   struct rb_conn *c,
                   uint32_t slot,
                   const struct resp_reply *r);
/* A request lost with its connection: counted as kind, its slot freed. */
void loop_fail_request(struct rb_thread *t, uint32_t client, uint32_t slot, const char *kind);

/* The thread's body (pthread start routine): set-up, connect, barriers, the loop. */
void *loop_thread_main(void *arg);

#endif
