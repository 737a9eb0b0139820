/* One ringraft-bench event loop (thread.h): the schedule, the requests and their replies.
 *
 * Closed loop: a client sends a batch of P requests at once, each intended now, and the next
 * batch when every reply of the last one is in (as redis-benchmark's -P does). Open loop
 * (--rate R): client g of C is due at t_start + (k + g/C) * C/R for k = 0, 1, ... (evenly
 * spaced over all clients, like wrk2); a due request is sent at once if the client has a free
 * pipeline slot, else it waits for one, and its latency still counts from its due time, so a
 * stall of the server shows as latency instead of as requests never sent (coordinated
 * omission). How far behind schedule sends were is the lateness, measured per request.
 *
 * Clients are visited in the order they become due (index order within a loop, since their
 * phases grow with the index), so finding the due ones costs no scan of every client. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/rbench/conn.h"
#include "bench/rbench/thread.h"
#include "core/base/assert.h"

#define CQE_BATCH             256
#define HOUSEKEEPING_NS       (10u * 1000000u) /* timeouts, reconnects */
#define SPIN_NS               2000u            /* due this soon: poll instead of sleeping */
#define CONNECT_WAIT_NS       (5ull * 1000000000u)
#define RETRY_CLOSING_NS      1000000u   /* a send deferred by a closing connection */
#define RETRY_TRYAGAIN_NS     1000000u   /* after -TRYAGAIN */
#define RETRY_UNKNOWN_NODE_NS 100000000u /* -MOVED to a node not known yet: await the map */

uint64_t rb_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static bool closed_loop(const struct rb_thread *t)
{
    return t->run->interval_ns == 0.0;
}

static void client_ready(struct rb_thread *t, uint32_t index)
{
    struct rb_client *cl = &t->clients[index];
    if (!cl->ready) {
        cl->ready = true;
        t->ready[t->ready_count++] = index;
    }
}

static void request_done(struct rb_thread *t, uint32_t client, uint32_t slot)
{
    struct rb_client *cl = &t->clients[client];
    RR_ASSERT(cl->inflight > 0);
    RR_ASSERT(cl->free_count < t->run->opts->pipeline);
    cl->free_slots[cl->free_count++] = slot;
    cl->inflight--;
    t->inflight--;
    client_ready(t, client);
}

void loop_fail_request(struct rb_thread *t, uint32_t client, uint32_t slot, const char *kind)
{
    const struct rb_req *req = &t->clients[client].req[slot];
    if (req->measured) {
        errors_add(&t->stats.errors, kind, strlen(kind), 1);
    }
    t->failures++;
    request_done(t, client, slot);
}

static void retry_push(struct rb_thread *t, uint32_t client, uint32_t slot, uint64_t delay_ns)
{
    struct rb_client *cl = &t->clients[client];
    uint32_t cap = t->run->opts->pipeline;
    RR_ASSERT(cl->retry_count < cap);
    cl->retry[(cl->retry_head + cl->retry_count) % cap] = slot;
    cl->req[slot].retry_ns = t->now_ns + delay_ns;
    if (cl->retry_count++ == 0) {
        t->retry_clients++;
    }
    if (delay_ns == 0) {
        client_ready(t, client);
    }
}

/* ---- sending ------------------------------------------------------------------------------ */

static uint8_t route(struct rb_thread *t, const struct rb_client *cl, const struct rb_req *req)
{
    if (req->node_hint != RB_NODE_NONE) {
        return req->node_hint; /* where a -MOVED sent it, whatever the map says */
    }
    if (!t->run->opts->cluster) {
        return cl->home;
    }
    char name[RB_KEY_MAX];
    size_t len = workload_key_name((enum rb_op)req->op, req->key, name);
    uint8_t node = t->map.node[slots_keyslot(name, len)];
    return node < nodes_count(&t->run->cluster->nodes) ? node : cl->home;
}

static void dispatch(struct rb_thread *t, uint32_t client, uint32_t slot)
{
    struct rb_client *cl = &t->clients[client];
    struct rb_req *req = &cl->req[slot];
    uint8_t node = route(t, cl, req);
    if (cl->conn[node] < 0) {
        cl->conn[node] = conn_open(t, client, node); /* a node learnt from the cluster */
        if (cl->conn[node] < 0) {
            loop_fail_request(t, client, slot, "connect");
            return;
        }
    }
    struct rb_conn *c = &t->conns[cl->conn[node]];
    uint8_t *buf = conn_reserve(c, t->run->request_max);
    if (buf == NULL) {
        retry_push(t, client, slot, RETRY_CLOSING_NS);
        return;
    }
    size_t len =
        workload_encode(t->run->wl, (enum rb_op)req->op, req->key, buf, t->run->request_max);
    req->sent_ns = t->now_ns;
    conn_commit(t, c, slot, len);
}

static void new_request(struct rb_thread *t, uint32_t client, uint64_t intended_ns)
{
    struct rb_client *cl = &t->clients[client];
    const struct rb_run *run = t->run;
    RR_ASSERT(cl->free_count > 0);
    uint32_t slot = cl->free_slots[--cl->free_count];
    cl->inflight++;
    t->inflight++;
    struct rb_req *req = &cl->req[slot];
    req->op = (uint8_t)workload_pick_op(run->wl, &t->prng);
    req->key = workload_pick_key(run->wl, (enum rb_op)req->op, &t->prng);
    req->intended_ns = intended_ns;
    req->redirects = 0;
    req->node_hint = RB_NODE_NONE;
    req->measured = intended_ns >= run->t_measure_ns && intended_ns < run->t_end_ns;
    if (req->measured) {
        t->stats.sent++;
        if (cl->quota != UINT64_MAX && --cl->quota == 0) {
            t->quota_clients--;
        }
        if (!closed_loop(t)) {
            uint64_t late = t->now_ns - intended_ns;
            histogram_record(&t->stats.lateness, late);
            t->late_max_ns = late > t->late_max_ns ? late : t->late_max_ns;
        }
    }
    dispatch(t, client, slot);
}

/* May client take a new request intended at intended_ns? */
static bool may_take(const struct rb_thread *t, const struct rb_client *cl, uint64_t intended_ns)
{
    return !t->stopping && intended_ns < t->run->t_end_ns &&
           (cl->quota > 0 || intended_ns < t->run->t_measure_ns);
}

static void advance_due(const struct rb_thread *t, struct rb_client *cl)
{
    const struct rb_run *run = t->run;
    cl->due_k++;
    double phase = (double)cl->global / (double)run->opts->clients;
    cl->next_due_ns = run->t_start_ns + (uint64_t)(((double)cl->due_k + phase) * run->interval_ns);
}

static void pump_retries(struct rb_thread *t, uint32_t client)
{
    struct rb_client *cl = &t->clients[client];
    uint32_t cap = t->run->opts->pipeline;
    for (uint32_t n = cl->retry_count; n > 0; n--) {
        uint32_t slot = cl->retry[cl->retry_head];
        cl->retry_head = (cl->retry_head + 1u) % cap;
        cl->retry_count--;
        if (cl->req[slot].retry_ns <= t->now_ns) {
            dispatch(t, client, slot); /* may push it back (a closing connection) */
        } else {
            cl->retry[(cl->retry_head + cl->retry_count) % cap] = slot;
            cl->retry_count++;
        }
    }
    if (cl->retry_count == 0) {
        t->retry_clients--;
    }
}

static void pump(struct rb_thread *t, uint32_t client)
{
    struct rb_client *cl = &t->clients[client];
    uint32_t depth = t->run->opts->pipeline;
    cl->ready = false;
    if (cl->retry_count > 0) {
        pump_retries(t, client);
    }
    if (closed_loop(t)) {
        if (cl->inflight > 0 || !may_take(t, cl, t->now_ns)) {
            return;
        }
        uint64_t n = depth;
        if (t->now_ns >= t->run->t_measure_ns && cl->quota < n) {
            n = cl->quota;
        }
        cl->batch_reply_ns = 0;
        for (uint64_t i = 0; i < n; i++) {
            new_request(t, client, t->now_ns);
        }
        return;
    }
    while (cl->next_due_ns <= t->now_ns && cl->inflight < depth &&
           may_take(t, cl, cl->next_due_ns)) {
        new_request(t, client, cl->next_due_ns);
        advance_due(t, cl);
    }
}

/* ---- replies ------------------------------------------------------------------------------ */

static bool starts_with(const struct resp_reply *r, const char *word)
{
    size_t n = strlen(word);
    return r->text_len >= n && memcmp(r->text, word, n) == 0 &&
           (r->text_len == n || r->text[n] == ' ');
}

/* -MOVED (with --cluster) and -TRYAGAIN are followed; true if the request was re-queued. */
static bool follow_redirect(struct rb_thread *t,
                            const struct rb_conn *c,
                            uint32_t slot,
                            const struct resp_reply *r)
{
    struct rb_req *req = &t->clients[c->client].req[slot];
    if (req->redirects >= RB_REDIRECTS_MAX) {
        return false;
    }
    if (starts_with(r, "TRYAGAIN")) {
        req->redirects++;
        t->stats.retries++;
        retry_push(t, c->client, slot, RETRY_TRYAGAIN_NS);
        return true;
    }
    uint16_t key_slot = 0;
    char host[RB_HOST_MAX];
    size_t host_len = 0;
    uint16_t port = 0;
    if (!t->run->opts->cluster || !starts_with(r, "MOVED") ||
        !slots_parse_moved(r->text, r->text_len, &key_slot, host, sizeof(host), &host_len, &port)) {
        return false;
    }
    req->redirects++;
    t->stats.redirects++;
    __atomic_store_n(&t->run->cluster->refresh_wanted, true, __ATOMIC_RELAXED);
    int node = nodes_find(&t->run->cluster->nodes, host, host_len, port);
    if (node < 0) {
        cluster_want_node(t->run->cluster, host, host_len, port);
        retry_push(t, c->client, slot, RETRY_UNKNOWN_NODE_NS); /* the main thread adds it */
        return true;
    }
    t->map.node[key_slot] = (uint8_t)node;
    req->node_hint = (uint8_t)node;
    retry_push(t, c->client, slot, 0);
    return true;
}

void loop_on_reply(struct rb_thread *t,
                   struct rb_conn *c,
                   uint32_t slot,
                   const struct resp_reply *r)
{
    struct rb_client *cl = &t->clients[c->client];
    struct rb_req *req = &cl->req[slot];
    if (r->type == '-') {
        if (!follow_redirect(t, c, slot, r)) {
            bool redirect = starts_with(r, "MOVED") || starts_with(r, "TRYAGAIN");
            const char *kind = redirect && t->run->opts->cluster ? "redirects" : r->text;
            size_t len = kind == r->text ? r->text_len : strlen(kind);
            if (req->measured) {
                errors_add(&t->stats.errors, kind, len, 1);
            }
            t->failures++;
            request_done(t, c->client, slot);
        }
        return;
    }
    if (r->type != workload_reply_type((enum rb_op)req->op)) {
        loop_fail_request(t, c->client, slot, "unexpected");
        return;
    }
    if (cl->batch_reply_ns == 0) {
        cl->batch_reply_ns = t->now_ns;
    }
    if (req->measured) {
        /* redis-benchmark's definition (--latency first-reply): its latency is taken at the
         * first read event after the batch was written, for every reply of the batch. */
        uint64_t at = t->run->opts->first_reply ? cl->batch_reply_ns : t->now_ns;
        histogram_record(&t->stats.latency[req->op], at - req->intended_ns);
        if (closed_loop(t)) {
            histogram_record(&t->stats.first_reply, cl->batch_reply_ns - req->intended_ns);
        }
        t->stats.ok[req->op]++;
        t->stats.last_reply_ns = t->now_ns;
    }
    t->replies++;
    request_done(t, c->client, slot);
}

/* ---- the loop ----------------------------------------------------------------------------- */

/* Open loop: due requests that will never be sent (the run ended first) are counted, so a
 * generator or server that fell behind cannot hide it. */
static void count_unsent(struct rb_thread *t)
{
    const struct rb_run *run = t->run;
    if (closed_loop(t)) {
        return;
    }
    uint64_t limit = t->now_ns < run->t_end_ns ? t->now_ns : run->t_end_ns;
    for (uint32_t i = 0; i < t->client_count; i++) {
        struct rb_client *cl = &t->clients[i];
        uint64_t from = cl->next_due_ns > run->t_measure_ns ? cl->next_due_ns : run->t_measure_ns;
        if (from < limit && cl->quota > 0) {
            uint64_t n = (uint64_t)((double)(limit - from) / run->interval_ns) + 1u;
            t->stats.unsent += cl->quota != UINT64_MAX && n > cl->quota ? cl->quota : n;
        }
    }
}

static void check_stop(struct rb_thread *t)
{
    const struct rb_run *run = t->run;
    if (t->stopping) {
        return;
    }
    bool quota_done = run->opts->requests > 0 && t->quota_clients == 0;
    if (__atomic_load_n(&t->run->stop, __ATOMIC_RELAXED) || t->now_ns >= run->t_end_ns ||
        quota_done) {
        count_unsent(t);
        t->stopping = true;
        t->deadline_ns = t->now_ns + run->timeout_ns;
    }
}

/* Past the deadline: whatever is still waiting fails as a timeout. */
static void fail_leftovers(struct rb_thread *t)
{
    for (uint32_t i = 0; i < t->conn_count; i++) {
        if (t->conns[i].fifo_count > 0) {
            conn_fail(t, &t->conns[i], "timeout");
        }
    }
    uint32_t cap = t->run->opts->pipeline;
    for (uint32_t i = 0; i < t->client_count; i++) {
        struct rb_client *cl = &t->clients[i];
        while (cl->retry_count > 0) {
            uint32_t slot = cl->retry[cl->retry_head];
            cl->retry_head = (cl->retry_head + 1u) % cap;
            if (--cl->retry_count == 0) {
                t->retry_clients--;
            }
            loop_fail_request(t, i, slot, "timeout");
        }
    }
}

/* Runs what is due: clients made ready by completions, retries, the clients due next. Returns
 * the time of the next due client (UINT64_MAX: none is waiting for a time). */
static uint64_t run_due(struct rb_thread *t)
{
    for (uint32_t i = 0; i < t->ready_count; i++) {
        pump(t, t->ready[i]);
    }
    t->ready_count = 0;
    if (t->retry_clients > 0) {
        for (uint32_t i = 0; i < t->client_count; i++) {
            if (t->clients[i].retry_count > 0) {
                pump(t, i);
            }
        }
    }
    if (closed_loop(t) || t->stopping) {
        return UINT64_MAX;
    }
    for (uint32_t steps = 0; steps < t->client_count; steps++) {
        struct rb_client *cl = &t->clients[t->cursor];
        if (cl->next_due_ns > t->now_ns) {
            return cl->next_due_ns;
        }
        pump(t, t->cursor);
        t->cursor = (t->cursor + 1u) % t->client_count;
    }
    return UINT64_MAX; /* every client behind: completions will wake the loop */
}

static void publish_progress(struct rb_thread *t)
{
    struct rb_progress *p = &t->progress;
    __atomic_store_n(&p->replies, t->replies + t->failures, __ATOMIC_RELAXED);
    __atomic_store_n(&p->errors, t->failures, __ATOMIC_RELAXED);
    __atomic_store_n(&p->inflight, t->inflight, __ATOMIC_RELAXED);
    if (t->late_max_ns > __atomic_load_n(&p->late_max_ns, __ATOMIC_RELAXED)) {
        __atomic_store_n(&p->late_max_ns, t->late_max_ns, __ATOMIC_RELAXED);
    }
    t->late_max_ns = 0;
}

/* Submits, waits until a completion or wake_ns, then handles every completion (copied out of
 * the ring first, which is advanced once: handlers never run inside the ring's iteration). */
static void wait_and_handle(struct rb_thread *t, uint64_t wake_ns)
{
    uint64_t wait_ns = wake_ns > t->now_ns ? wake_ns - t->now_ns : 0;
    struct __kernel_timespec ts = {.tv_sec = (long long)(wait_ns / 1000000000u),
                                   .tv_nsec = (long long)(wait_ns % 1000000000u)};
    struct io_uring_cqe *cqe = NULL;
    int rc = io_uring_submit_and_wait_timeout(&t->ring, &cqe, wait_ns > SPIN_NS ? 1 : 0, &ts, NULL);
    RR_ASSERT(rc >= 0 || rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY);
    t->now_ns = rb_clock_ns(); /* the time every reply in this batch arrived */
    for (;;) {
        struct io_uring_cqe *batch[CQE_BATCH];
        uint64_t ud[CQE_BATCH];
        int32_t res[CQE_BATCH];
        unsigned n = io_uring_peek_batch_cqe(&t->ring, batch, CQE_BATCH);
        for (unsigned i = 0; i < n; i++) {
            ud[i] = batch[i]->user_data;
            res[i] = batch[i]->res;
        }
        io_uring_cq_advance(&t->ring, n);
        for (unsigned i = 0; i < n; i++) {
            conn_handle_cqe(t, ud[i], res[i]);
        }
        if (n < CQE_BATCH) {
            break;
        }
    }
}

static void loop_iteration(struct rb_thread *t)
{
    /* Again after handling the last completions: what is sent now is stamped now. */
    t->now_ns = rb_clock_ns();
    if (t->run->opts->cluster) {
        cluster_adopt(t->run->cluster, &t->map, &t->map_gen);
    }
    check_stop(t);
    uint64_t wake_ns = run_due(t);
    if (t->now_ns >= t->housekeeping_ns) {
        conn_housekeeping(t);
        t->housekeeping_ns = t->now_ns + HOUSEKEEPING_NS;
    }
    if (t->stopping && t->now_ns >= t->deadline_ns) {
        fail_leftovers(t);
    }
    conn_flush(t);
    publish_progress(t);
    if (t->ready_count > 0) {
        wake_ns = t->now_ns; /* a retry or a failure freed a slot: no sleeping */
    }
    if (t->retry_clients > 0) {
        uint64_t soon = t->now_ns + RETRY_TRYAGAIN_NS;
        wake_ns = soon < wake_ns ? soon : wake_ns;
    }
    wake_ns = t->housekeeping_ns < wake_ns ? t->housekeeping_ns : wake_ns;
    wait_and_handle(t, wake_ns);
}

/* ---- set-up ------------------------------------------------------------------------------- */

static int ring_setup(struct rb_thread *t, uint32_t sockets)
{
    unsigned entries = 64;
    while (entries < sockets * 3u && entries < 32768u) {
        entries *= 2u;
    }
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    int rc = io_uring_queue_init_params(entries, &t->ring, &p);
    if (rc == -EINVAL) {
        memset(&p, 0, sizeof(p)); /* a kernel before 6.1 */
        rc = io_uring_queue_init_params(entries, &t->ring, &p);
    }
    if (rc < 0) {
        snprintf(t->err, sizeof(t->err), "io_uring_queue_init: %s", strerror(-rc));
        return 1;
    }
    t->ring_ok = true;
    return 0;
}

static int clients_setup(struct rb_thread *t)
{
    const struct rb_run *run = t->run;
    const struct rb_opts *o = run->opts;
    uint32_t nodes = o->cluster ? nodes_count(&run->cluster->nodes) : run->home_nodes;
    uint32_t per_client = o->cluster ? nodes : 1u;
    t->conn_cap = t->client_count * (o->cluster ? RB_NODES_MAX : 1u);
    t->clients = calloc(t->client_count, sizeof(*t->clients));
    t->conns = calloc(t->conn_cap, sizeof(*t->conns));
    t->dirty = calloc(t->conn_cap, sizeof(*t->dirty));
    t->ready = calloc(t->client_count, sizeof(*t->ready));
    if (t->clients == NULL || t->conns == NULL || t->dirty == NULL || t->ready == NULL ||
        ring_setup(t, t->client_count * per_client) != 0) {
        snprintf(t->err + strlen(t->err), sizeof(t->err) - strlen(t->err), " (set-up)");
        return 1;
    }
    uint64_t share = o->requests / o->clients;
    uint64_t extra = o->requests % o->clients;
    for (uint32_t i = 0; i < t->client_count; i++) {
        struct rb_client *cl = &t->clients[i];
        cl->global = t->id + i * o->threads;
        cl->home = (uint8_t)(cl->global % run->home_nodes);
        cl->quota = o->requests == 0 ? UINT64_MAX : share + (cl->global < extra ? 1u : 0u);
        t->quota_clients += cl->quota > 0 ? 1u : 0u;
        cl->req = calloc(o->pipeline, sizeof(*cl->req));
        cl->free_slots = calloc(o->pipeline, sizeof(*cl->free_slots));
        cl->retry = calloc(o->pipeline, sizeof(*cl->retry));
        if (cl->req == NULL || cl->free_slots == NULL || cl->retry == NULL) {
            snprintf(t->err, sizeof(t->err), "out of memory");
            return 1;
        }
        for (uint32_t s = 0; s < o->pipeline; s++) {
            cl->free_slots[cl->free_count++] = o->pipeline - 1u - s;
        }
        for (uint32_t n = 0; n < RB_NODES_MAX; n++) {
            cl->conn[n] = -1;
        }
        for (uint32_t n = 0; n < nodes; n++) {
            if (o->cluster || n == cl->home) {
                cl->conn[n] = conn_open(t, i, (uint8_t)n);
                if (cl->conn[n] < 0) {
                    snprintf(t->err, sizeof(t->err), "out of memory for connections");
                    return 1;
                }
            }
        }
    }
    return 0;
}

static void clients_free(struct rb_thread *t)
{
    for (uint32_t i = 0; t->clients != NULL && i < t->client_count; i++) {
        free(t->clients[i].req);
        free(t->clients[i].free_slots);
        free(t->clients[i].retry);
    }
    free(t->clients);
    free(t->conns);
    free(t->dirty);
    free(t->ready);
}

/* Until every connection is up or has failed once (bounded): connection set-up is not part
 * of the measurement. */
static void connect_wait(struct rb_thread *t)
{
    uint64_t until = rb_clock_ns() + CONNECT_WAIT_NS;
    t->now_ns = rb_clock_ns();
    while (!conn_all_settled(t) && t->now_ns < until) {
        conn_flush(t);
        wait_and_handle(t, t->now_ns + HOUSEKEEPING_NS);
        t->ready_count = 0; /* nothing is in flight yet: no client has anything to do */
    }
}

static void schedule_start(struct rb_thread *t)
{
    for (uint32_t i = 0; i < t->client_count; i++) {
        struct rb_client *cl = &t->clients[i];
        cl->due_k = 0;
        cl->next_due_ns = t->run->t_start_ns;
        if (!closed_loop(t)) {
            cl->due_k = UINT64_MAX; /* advance_due wraps it to 0 */
            advance_due(t, cl);
        }
        client_ready(t, i);
    }
}

void *loop_thread_main(void *arg)
{
    struct rb_thread *t = arg;
    stats_init(&t->stats);
    rr_prng_seed(&t->prng, t->run->opts->seed * 1000003u + t->id);
    memset(t->map.node, RB_NODE_NONE, sizeof(t->map.node));
    t->rc = clients_setup(t);
    if (t->rc == 0) {
        if (t->run->opts->cluster) {
            cluster_adopt(t->run->cluster, &t->map, &t->map_gen);
        }
        connect_wait(t);
    }
    pthread_barrier_wait(&t->run->ready);
    pthread_barrier_wait(&t->run->go); /* t_start_ns and the rest of run are set */
    if (t->rc == 0) {
        /* The schedule starts at t_start: nothing is sent before the measured window opens
         * (with no warm-up, a batch sent early would be left out of -n and of the latency). */
        struct timespec start = {.tv_sec = (time_t)(t->run->t_start_ns / 1000000000u),
                                 .tv_nsec = (long)(t->run->t_start_ns % 1000000000u)};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &start, NULL) == EINTR) {
        }
        t->now_ns = rb_clock_ns();
        t->housekeeping_ns = t->now_ns;
        schedule_start(t);
        /* The event loop: runs until stopped and drained (a deadline bounds the drain). */
        while (!(t->stopping && t->inflight == 0)) {
            loop_iteration(t);
        }
        publish_progress(t);
    }
    conn_close_all(t);
    if (t->ring_ok) {
        io_uring_queue_exit(&t->ring);
    }
    clients_free(t);
    __atomic_store_n(&t->progress.done, true, __ATOMIC_RELEASE);
    return NULL;
}
