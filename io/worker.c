/* One worker: a thread with its own io_uring, group table, WAL and connections, running one
 * event loop. An iteration: handle completions; take requests other workers handed over;
 * tick the groups when a tick is due; step and drain the groups (core/drain.h's order);
 * queue WAL writes (wal_submit) and sends; wake the workers we handed requests to; then one
 * io_uring_submit_and_wait_timeout until the next completion or tick. Nothing here blocks
 * except that wait. */
#include <errno.h>
#include <malloc.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "io/client.h"
#include "io/log.h"
#include "io/metrics.h"
#include "io/node.h"

#define RING_ENTRIES     4096
#define RING_CQ_ENTRIES  16384
#define DRAIN_ROUNDS_MAX 8
/* Entries a loop iteration applies at most (plus one group's ready batch): the drain stops
 * there and the sends it produced leave before the rest is applied (core/drain.h). */
#define DRAIN_APPLY_BUDGET 1024
#define SWEEP_MS           100
#define PUBLISH_MS         1000 /* RAFT STATUS indexes: O(G) raft_status calls */
/* While the node is idle, worker 0 asks the allocator to give whole free pages back to the
 * kernel (see heap_trim) when the resident set grew by this much since the last trim, else
 * every HEAP_TRIM_PERIOD_MS. */
#define HEAP_TRIM_GROWTH    (1u << 20)
#define HEAP_TRIM_PERIOD_MS 10000
/* ... but not while compactions freed more than this that new entries have not taken
 * again (worker.log_freed_bytes): malloc_trim gives pages back with one madvise per free
 * chunk, each a TLB shootdown across the process's CPUs, on worker 0's loop; after a
 * snapshot compacted a large log (tens of thousands of freed log chunks) that took 3.5 s on
 * this VM for 400 MiB, during which worker 0 served no client and no peer. Memory freed by a
 * compaction is taken again by the next log anyway. (The allocator's own count of free
 * bytes, mallinfo2, walks every free chunk: 152 ms on such a heap.) */
#define HEAP_TRIM_FREE_MAX (64u << 20)

/* The persist queue: WAL operations refused for back-pressure (RR_EBUSY), and those that
 * must wait for a snapshot file (behind a barrier), kept until they can go. They are issued
 * to the WAL in the order they were queued, so units complete in that order too. */
enum pending_kind {
    PENDING_APPEND = 1, /* hard state and entries of one group's ready */
    PENDING_TRUNCATE,   /* entries at index and above go */
    PENDING_COMPACT,    /* entries up to index go: a snapshot covers them */
    PENDING_BARRIER,    /* nothing behind it goes before the snapshot file is durable */
};

struct pending_append {
    struct pending_append *next;
    uint8_t kind; /* enum pending_kind */
    raft_group g;
    bool has_hs;
    struct wal_hard_state hs;
    uint32_t n;
    struct wal_entry *entries;
    uint8_t *data;
    raft_index index;             /* PENDING_TRUNCATE, PENDING_COMPACT */
    raft_term term;               /* PENDING_COMPACT */
    struct snap_barrier *barrier; /* PENDING_BARRIER (owned: freed once passed) */
};

/* A drain's persist unit: its held messages go out once every WAL unit issued up to and
 * including the drain is durable (the WAL acknowledges units in order). */
struct held_unit {
    struct held_unit *next;
    struct drain_held *held;
    uint64_t need;     /* WAL units issued up to the drain */
    uint64_t need_fop; /* received snapshot chunks' writes issued up to the drain */
};

struct io_uring_sqe *worker_sqe(struct worker *w)
{
    struct io_uring_sqe *sqe = kernel_get_sqe(&w->ring);
    if (sqe == NULL) {
        /* The SQ is full: hand what is queued to the kernel and take a fresh slot. */
        kernel_submit(&w->ring);
        w->st.submits++;
        sqe = kernel_get_sqe(&w->ring);
    }
    RR_ASSERT(sqe != NULL);
    return sqe;
}

struct group_state *worker_group(struct worker *w, raft_group g)
{
    if (g >= w->node->cfg.groups || g % w->node->cfg.workers != w->id) {
        return NULL;
    }
    return &w->groups[g / w->node->cfg.workers];
}

/* ---- persistence ---------------------------------------------------------------------- */

static void on_wal_unit(void *arg, int status)
{
    struct worker *w = arg;
    if (status < 0) {
        if (w->fatal == 0) {
            LOG_E("WAL write failed: %s; this worker stops accepting writes",
                  w->wal ? wal_error_message(w->wal) : rr_strerror(status));
        }
        w->fatal = status;
        return;
    }
    w->persist_durable++;
}

static int append_now(struct worker *w, const struct pending_append *a)
{
    switch (a->kind) {
    case PENDING_TRUNCATE:
        return wal_truncate(w->wal, a->g, a->index, on_wal_unit, w);
    case PENDING_COMPACT:
        return wal_compact(w->wal, a->g, a->index, a->term, on_wal_unit, w);
    case PENDING_BARRIER:
        return a->barrier->done ? 0 : RR_EBUSY;
    default:
        return wal_append(w->wal, a->g, a->has_hs ? &a->hs : NULL, a->entries, a->n, on_wal_unit,
                          w);
    }
}

static void pending_free(struct pending_append *a)
{
    if (a->kind == PENDING_BARRIER) {
        free(a->barrier);
    }
    free(a->entries);
    free(a->data);
    free(a);
}

static void flush_pending_appends(struct worker *w)
{
    while (w->append_head != NULL) {
        struct pending_append *a = w->append_head;
        int rc = append_now(w, a);
        if (rc == RR_EBUSY) {
            return;
        }
        if (rc != 0) {
            LOG_E("WAL operation for group %u failed: %s", a->g, rr_strerror(rc));
            w->fatal = rc;
        }
        w->append_head = a->next;
        if (w->append_head == NULL) {
            w->append_tail = NULL;
        }
        pending_free(a);
    }
}

static void pending_push(struct worker *w, struct pending_append *u)
{
    if (w->append_tail == NULL) {
        w->append_head = u;
    } else {
        w->append_tail->next = u;
    }
    w->append_tail = u;
}

/* Issues a small WAL operation now if nothing waits ahead of it, else queues it. */
static void persist_small(struct worker *w, const struct pending_append *a, bool unit)
{
    if (unit) {
        w->persist_issued++;
    }
    int rc = w->append_head == NULL ? append_now(w, a) : RR_EBUSY;
    if (rc == 0) {
        if (a->kind == PENDING_BARRIER) {
            free(a->barrier);
        }
        return;
    }
    if (rc != RR_EBUSY) {
        /* (A truncation is never below the WAL's compaction point: it follows a snapshot
         * newer than the commit index, and the WAL is compacted only to durable snapshots.) */
        LOG_E("WAL operation for group %u failed: %s", a->g, rr_strerror(rc));
        w->fatal = rc;
        return;
    }
    struct pending_append *u = calloc(1, sizeof(*u));
    RR_ASSERT(u != NULL);
    *u = *a;
    pending_push(w, u);
}

void worker_persist_compact(struct worker *w, raft_group g, raft_index index, raft_term term)
{
    struct pending_append a = {.kind = PENDING_COMPACT, .g = g, .index = index, .term = term};
    persist_small(w, &a, true);
}

void worker_persist_truncate(struct worker *w, raft_group g, raft_index index)
{
    struct pending_append a = {.kind = PENDING_TRUNCATE, .g = g, .index = index};
    persist_small(w, &a, true);
}

void worker_persist_barrier(struct worker *w, struct snap_barrier *b)
{
    struct pending_append a = {.kind = PENDING_BARRIER, .barrier = b};
    persist_small(w, &a, false);
}

static void op_persist(void *ctx, raft_group g, const struct raft_ready *rd)
{
    struct worker *w = ctx;
    struct pending_append a = {.kind = PENDING_APPEND, .g = g};
    struct group_state *gs = worker_group(w, g);
    if ((rd->flags & RAFT_READY_SNAPSHOT_DROPPED) != 0) {
        snapshot_persist_dropped(w, gs);
    }
    if ((rd->flags & RAFT_READY_SNAPSHOT_CHUNK) != 0) {
        snapshot_persist_chunk(w, gs, rd->snapshot_chunk);
    }
    if ((rd->flags & RAFT_READY_SNAPSHOT) != 0) {
        /* The file first, then the WAL's truncation and compaction behind its barrier; the
         * hard state and the entries kept after the snapshot follow in the queue. */
        snapshot_persist_install(w, gs, rd);
        if (w->fatal != 0) {
            return;
        }
    }
    if ((rd->flags & RAFT_READY_HARD_STATE) != 0 &&
        (rd->hard_state.term != gs->hs_term || rd->hard_state.vote != gs->hs_vote ||
         !w->node->cfg.lazy_commit)) {
        /* Term and vote must be durable before the messages that depend on them leave. The
         * commit index need not be (the core allows it to lag: a restarted node learns it
         * from the leader), so a change of commit alone is not written (lazy-commit): it
         * would cost every group a record in every flush. It rides along with the next
         * term or vote change. */
        a.has_hs = true;
        a.hs = (struct wal_hard_state){.term = rd->hard_state.term,
                                       .vote = rd->hard_state.vote,
                                       .commit = rd->hard_state.commit};
        gs->hs_term = rd->hard_state.term;
        gs->hs_vote = rd->hard_state.vote;
    }
    if (!a.has_hs && (rd->flags & RAFT_READY_ENTRIES) == 0) {
        return; /* nothing to write: the held messages need no new unit */
    }
    struct wal_entry stack[64];
    a.n = (rd->flags & RAFT_READY_ENTRIES) != 0 ? rd->entry_count : 0;
    a.entries = a.n <= 64 ? stack : malloc(sizeof(*a.entries) * a.n);
    RR_ASSERT(a.entries != NULL);
    for (uint32_t i = 0; i < a.n; i++) {
        const struct raft_entry *e = &rd->entries[i];
        a.entries[i] = (struct wal_entry){.term = e->term,
                                          .index = e->index,
                                          .type = e->type,
                                          .len = e->data.len,
                                          .data = e->data.base};
    }
    w->persist_issued++;
    int rc = w->append_head == NULL ? append_now(w, &a) : RR_EBUSY;
    if (rc == RR_EBUSY) {
        /* Keep a copy (the ready's memory goes at raft_advance) for when the WAL has room. */
        struct pending_append *u = calloc(1, sizeof(*u));
        size_t bytes = 0;
        for (uint32_t i = 0; i < a.n; i++) {
            bytes += a.entries[i].len;
        }
        RR_ASSERT(u != NULL);
        *u = a;
        u->entries = malloc(sizeof(*a.entries) * (a.n ? a.n : 1));
        u->data = malloc(bytes ? bytes : 1);
        RR_ASSERT(u->entries != NULL && u->data != NULL);
        size_t off = 0;
        for (uint32_t i = 0; i < a.n; i++) {
            u->entries[i] = a.entries[i];
            if (a.entries[i].len > 0) {
                /* An empty entry (a new leader's) has no data pointer: memcpy(NULL) is UB. */
                memcpy(u->data + off, a.entries[i].data, a.entries[i].len);
            }
            u->entries[i].data = u->data + off;
            off += a.entries[i].len;
        }
        pending_push(w, u);
    } else if (rc != 0) {
        LOG_E("WAL append for group %u failed: %s", g, rr_strerror(rc));
        w->fatal = rc;
    }
    if (a.entries != stack) {
        free(a.entries);
    }
}

static void op_send(void *ctx, raft_node to, const uint8_t *batch, size_t len)
{
    peer_send_raft(ctx, to, batch, len);
}

static void op_persist_submit(void *ctx, struct drain_held *held)
{
    struct worker *w = ctx;
    struct held_unit *h = malloc(sizeof(*h));
    RR_ASSERT(h != NULL);
    h->next = NULL;
    h->held = held;
    /* The unsafe test mode releases the messages at once: acknowledgements before fsync. */
    h->need = FAULTS_UNSAFE(w, UNSAFE_TEST_ACK_BEFORE_FSYNC) ? 0 : w->persist_issued;
    h->need_fop = w->fop_issued;
    if (w->held_tail == NULL) {
        w->held_head = h;
    } else {
        w->held_tail->next = h;
    }
    w->held_tail = h;
}

static void
op_restore(void *ctx, raft_group g, const struct raft_snapshot_meta *meta, uint64_t bytes)
{
    (void)bytes; /* loaded chunk by chunk as it was received and checked */
    struct worker *w = ctx;
    if (w->fatal == 0) {
        snapshot_restore(w, worker_group(w, g), meta);
    }
}

static void op_snapshot_read(void *ctx, raft_group g, const struct raft_msg *m)
{
    struct worker *w = ctx;
    snapshot_read_chunk(w, worker_group(w, g), m);
}

static void op_entries_read(void *ctx, raft_group g, const struct raft_msg *m)
{
    log_read_entries(ctx, g, m);
}

/* The end of a prefetching step that runs `ahead` entries ahead of the next apply. */
static uint32_t ahead_until(const struct worker *w, uint32_t ahead)
{
    return w->ahead.n - w->ahead.next > ahead ? w->ahead.next + ahead : w->ahead.n;
}

/* Runs the current batch's prefetching steps up to their distances from the next apply. */
static void apply_ahead_run(struct worker *w)
{
    struct sm *sm = w->ahead.gs->sm;
    if (sm == NULL) {
        return;
    }
    const struct raft_entry *entries = w->ahead.entries;
    for (uint32_t end = ahead_until(w, APPLY_AHEAD_FETCH); w->ahead.fetched < end;
         w->ahead.fetched++) {
        const struct raft_entry *e = &entries[w->ahead.fetched];
        if (e->data.len > 0) {
            __builtin_prefetch(e->data.base);
            __builtin_prefetch(e->data.base + e->data.len - 1);
        }
    }
    for (uint32_t end = ahead_until(w, APPLY_AHEAD_START); w->ahead.started < end;
         w->ahead.started++) {
        const struct raft_entry *e = &entries[w->ahead.started];
        struct sm_ahead *a = &w->ahead.ring[w->ahead.started % APPLY_AHEAD_RING];
        if (e->type == RAFT_ENTRY_NORMAL) {
            sm_ahead_start(sm, e->data.base, e->data.len, a);
        } else {
            a->entry = NULL;
        }
    }
    for (uint32_t end = ahead_until(w, APPLY_AHEAD_FINISH); w->ahead.finished < end;
         w->ahead.finished++) {
        sm_ahead_finish(sm, &w->ahead.ring[w->ahead.finished % APPLY_AHEAD_RING]);
    }
    for (uint32_t end = ahead_until(w, APPLY_AHEAD_DEEP); w->ahead.deep < end; w->ahead.deep++) {
        sm_ahead_deep(sm, &w->ahead.ring[w->ahead.deep % APPLY_AHEAD_RING]);
    }
}

/* A group's committed batch is about to be applied: start prefetching for its first ones. */
static void op_apply_ahead(void *ctx, raft_group g, const struct raft_entry *entries, uint32_t n)
{
    struct worker *w = ctx;
    w->ahead.entries = entries;
    w->ahead.gs = worker_group(w, g);
    w->ahead.n = n;
    w->ahead.next = 0;
    w->ahead.fetched = 0;
    w->ahead.started = 0;
    w->ahead.finished = 0;
    w->ahead.deep = 0;
    apply_ahead_run(w);
}

static void op_apply(void *ctx, raft_group g, const struct raft_entry *e)
{
    struct worker *w = ctx;
    struct group_state *gs = worker_group(w, g);
    w->st.applied++;
    snapshot_on_apply(w, gs, e->data.len);
    const struct sm_ahead *ahead = NULL;
    if (w->ahead.entries != NULL && w->ahead.gs == gs && w->ahead.next < w->ahead.n &&
        e == &w->ahead.entries[w->ahead.next]) {
        uint32_t i = w->ahead.next++;
        /* (If the state machine appeared since, entries[i] has no prefetch: started <= i.) */
        ahead = i < w->ahead.started ? &w->ahead.ring[i % APPLY_AHEAD_RING] : NULL;
        apply_ahead_run(w);
        if (w->ahead.next == w->ahead.n) {
            w->ahead.entries = NULL; /* the batch's array is the core's again */
        }
    }
    route_on_apply(w, gs, e, ahead);
}

static void op_read(void *ctx, raft_group g, const struct raft_read_state *rs)
{
    struct worker *w = ctx;
    route_on_read(w, worker_group(w, g), rs->ctx);
}

static void op_read_failed(void *ctx, raft_group g, uint64_t read_ctx)
{
    struct worker *w = ctx;
    route_on_read_failed(w, worker_group(w, g), read_ctx);
}

static void op_role_changed(void *ctx, raft_group g, uint8_t role, raft_term term, raft_node leader)
{
    struct worker *w = ctx;
    struct group_state *gs = worker_group(w, g);
    RR_ASSERT(gs != NULL);
    gs->role = role;
    gs->term = term;
    gs->leader = leader;
    if (role == RAFT_LEADER) {
        w->balance_settled = false; /* perhaps a group that prefers another node */
    }
    struct group_pub *p = &w->node->pub[g];
    atomic_store_explicit(&p->role, role, memory_order_relaxed);
    atomic_store_explicit(&p->leader, leader, memory_order_relaxed);
    atomic_store_explicit(&p->term, term, memory_order_relaxed);
    route_on_role(w, gs);
}

static const struct drain_ops worker_drain_ops = {
    .persist = op_persist,
    .send = op_send,
    .persist_submit = op_persist_submit,
    .restore = op_restore,
    .snapshot_read = op_snapshot_read,
    .entries_read = op_entries_read,
    .apply_ahead = op_apply_ahead,
    .apply = op_apply,
    .read = op_read,
    .read_failed = op_read_failed,
    .role_changed = op_role_changed,
};

static void release_durable(struct worker *w)
{
    while (w->held_head != NULL) {
        struct held_unit *h = w->held_head;
        if (h->need > w->persist_durable || h->need_fop > w->fop_done) {
            return;
        }
        w->held_head = h->next;
        if (w->held_head == NULL) {
            w->held_tail = NULL;
        }
        int rc = drain_persisted(w->multi, h->held, &worker_drain_ops, w);
        if (rc != 0) {
            LOG_W("stepping a persist acknowledgement failed: %s", rr_strerror(rc));
        }
        free(h);
    }
}

static void drain_groups(struct worker *w)
{
    uint64_t budget = DRAIN_APPLY_BUDGET;
    for (int round = 0; round < DRAIN_ROUNDS_MAX && budget > 0 && multi_has_dirty(w->multi);
         round++) {
        uint64_t applied = 0;
        int rc = drain_run_bounded(w->multi, &worker_drain_ops, w, budget, &applied);
        budget -= applied < budget ? applied : budget;
        w->st.drains++;
        snapshot_verdicts(w); /* not inside a drain (core/raft.h) */
        if (rc == RR_ENOMEM || rc == RR_ETOOBIG) {
            LOG_E("drain failed: %s", rr_strerror(rc));
            w->fatal = rc;
        }
        release_durable(w);
    }
    route_uncommitted_resume(w);
}

/* ---- time ----------------------------------------------------------------------------- */

/* Publishes each group's indexes for RAFT STATUS and INFO (role, term and leader are
 * published as soon as the drain reports a change: op_role_changed). Called every
 * PUBLISH_MS, so the indexes are at most that old and an idle table pays O(G) once a
 * second. */
static void publish_groups(struct worker *w)
{
    for (uint32_t s = 0; s < w->group_count; s++) {
        struct group_state *gs = &w->groups[s];
        struct raft_summary st;
        raft_summary(multi_group_peek(w->multi, gs->g), &st);
        struct group_pub *p = &w->node->pub[gs->g];
        atomic_store_explicit(&p->commit, st.commit, memory_order_relaxed);
        atomic_store_explicit(&p->applied, st.applied, memory_order_relaxed);
        atomic_store_explicit(&p->last_index, st.last_index, memory_order_relaxed);
        atomic_store_explicit(&p->snapshot_index, st.snapshot_index, memory_order_relaxed);
        atomic_store_explicit(&p->voters, st.voters, memory_order_relaxed);
        atomic_store_explicit(&p->learners, st.learners, memory_order_relaxed);
        atomic_store_explicit(&p->config_pending, st.config_pending, memory_order_relaxed);
    }
}

#define PUB(field, value) atomic_store_explicit(&w->pub.field, (value), memory_order_relaxed)

/* Worker 0 samples the node's totals every 100 ms; a rate is the change over the oldest
 * sample kept (up to 1.5 s back). */
static void sample_rates(struct worker *w)
{
    struct node *n = w->node;
    uint64_t totals[RATE_COUNT] = {0};
    for (uint32_t i = 0; i < n->cfg.workers; i++) {
        const struct worker_pub *p = &n->workers[i]->pub;
        totals[RATE_COMMANDS] += atomic_load_explicit(&p->commands, memory_order_relaxed);
        totals[RATE_WAL_FLUSHES] += atomic_load_explicit(&p->wal_flushes, memory_order_relaxed);
        totals[RATE_WAL_BYTES] += atomic_load_explicit(&p->wal_bytes, memory_order_relaxed);
        totals[RATE_PEER_FRAMES] += atomic_load_explicit(&p->frames_sent, memory_order_relaxed);
        totals[RATE_APPLIED] += atomic_load_explicit(&p->applied, memory_order_relaxed);
    }
    for (int k = 0; k < RATE_COUNT; k++) {
        struct rate_meter *m = &n->meters[k];
        m->value[m->next] = totals[k];
        m->at_ms[m->next] = w->now_ms;
        m->next = (m->next + 1) % 16;
        if (m->count < 16) {
            m->count++;
        }
        uint32_t oldest = (m->next + 16 - m->count) % 16;
        uint32_t newest = (m->next + 15) % 16;
        int64_t dt = m->at_ms[newest] - m->at_ms[oldest];
        double rate =
            dt > 0 ? (double)(m->value[newest] - m->value[oldest]) * 1000.0 / (double)dt : 0.0;
        atomic_store_explicit(&n->rate[k], rate, memory_order_relaxed);
    }
}

static void publish_stats(struct worker *w)
{
    const struct worker_stats *st = &w->st;
    PUB(proposals, st->proposals);
    PUB(applied, st->applied);
    PUB(reads, st->reads);
    PUB(forwards_out, st->forwards_out);
    PUB(forwards_in, st->forwards_in);
    PUB(reforwards, st->reforwards);
    PUB(redirects, st->redirects);
    PUB(timeouts, st->timeouts);
    PUB(busy_rejects, st->busy_rejects);
    PUB(uncommitted_waits, st->uncommitted_waits);
    PUB(uncommitted_bytes, multi_uncommitted_bytes(w->multi));
    PUB(clients_accepted, st->clients_accepted);
    PUB(client_errors, st->client_errors);
    PUB(commands, st->commands);
    PUB(blocked, w->blocked);
    PUB(frames_sent, st->frames_sent);
    PUB(frame_bytes_sent, st->frame_bytes_sent);
    PUB(peer_sends, st->peer_sends);
    const struct multi_msg_counts *mc = multi_received(w->multi);
    for (uint32_t t = 0; t <= RAFT_MSG_TYPE_MAX; t++) {
        PUB(msgs_received[t], mc->by_type[t]);
    }
    PUB(appends_empty_received, mc->append_empty);
    const struct wal_stats *ws = wal_stats(w->wal);
    PUB(wal_flushes, ws->flushes);
    PUB(wal_records, ws->records);
    PUB(wal_bytes, ws->bytes);
    PUB(snapshots_taken, st->snapshots_taken);
    PUB(snapshots_installed, st->snapshots_installed);
    PUB(snapshot_failures, st->snapshot_failures);
    PUB(snapshot_bytes, st->snapshot_bytes);
    PUB(snapshot_last_ms, st->snapshot_last_ms);
    PUB(snapshot_last_bytes, st->snapshot_last_bytes);
    PUB(wal_disk_bytes, wal_disk_bytes(w->wal));
    PUB(snapshot_chunks_sent, st->snapshot_chunks_sent);
    PUB(snapshot_chunks_dropped, st->snapshot_chunks_dropped);
    PUB(snapshots_refused, st->snapshots_refused);
    PUB(log_reads, st->log_reads);
    PUB(log_read_entries, st->log_read_entries);
    PUB(log_reads_dropped, st->log_reads_dropped);
    PUB(snapshots_dropped, st->snapshots_dropped);
    PUB(snapshot_chunks_received, st->snapshot_chunks_received);
    PUB(snapshot_bytes_received, st->snapshot_bytes_received);
    PUB(install_last_us, st->install_last_us);
    PUB(install_last_bytes, st->install_last_bytes);
    PUB(install_max_us, st->install_max_us);
    PUB(wal_segments, wal_segment_count(w->wal));
    PUB(log_freed_bytes, w->log_freed_bytes);
    metrics_publish_hist(&w->pub.write_latency, &w->write_latency);
    metrics_publish_hist(&w->pub.read_latency, &w->read_latency);
    metrics_publish_hist(&w->pub.wal_flush, &ws->flush_ns);
    metrics_publish_hist(&w->pub.wal_queue, &ws->queue_ns);
    metrics_publish_sizes(&w->pub.wal_batch_records, &ws->batch_records);
    metrics_publish_sizes(&w->pub.peer_send_frames, &w->peer_send_frames);
    if (w->id == 0) {
        sample_rates(w);
    }
}

#undef PUB

/* The node group g prefers as its leader: the (g mod V)-th of its V voters by id, so that
 * with the same configuration in every group each node is preferred by G/V groups (within
 * one). NONE while the configuration is joint. */
raft_node worker_preferred_leader(const struct raft *r, raft_group g)
{
    struct raft_config now;
    raft_config(r, &now);
    const struct raft_config *c = &now;
    if (raft_config_is_joint(c)) {
        return RAFT_NODE_NONE;
    }
    raft_node voters[RAFT_MEMBERS_MAX];
    uint32_t v = 0;
    for (uint32_t i = 0; i < c->member_count; i++) {
        if (c->members[i].role == RAFT_VOTER) {
            uint32_t k = v++;
            while (k > 0 && voters[k - 1] > c->members[i].id) {
                voters[k] = voters[k - 1];
                k--;
            }
            voters[k] = c->members[i].id;
        }
    }
    return v == 0 ? RAFT_NODE_NONE : voters[g % v];
}

/* Leaders spread over the nodes: group g prefers worker_preferred_leader. Once a second, a leader
 * whose group prefers another node that is connected and nearly caught up hands leadership
 * to it (thesis §3.10), a few groups at a time. This also moves leadership back to a node
 * that returns after a failure. */
#define BALANCE_PERIOD_MS      1000
#define BALANCE_TRANSFERS_MAX  32
#define BALANCE_CATCH_UP_SLACK 64

static void balance_leaders(struct worker *w)
{
    if (w->balance_settled) {
        return; /* a sweep of every group, each a cache miss, for nothing */
    }
    struct node *n = w->node;
    uint32_t started_now = 0;
    bool all_home = true;
    for (uint32_t s = 0; s < w->group_count && started_now < BALANCE_TRANSFERS_MAX; s++) {
        struct group_state *gs = &w->groups[s];
        if (gs->role != RAFT_LEADER) {
            continue;
        }
        const struct raft *ro = multi_group_peek(w->multi, gs->g);
        raft_node pref = worker_preferred_leader(ro, gs->g);
        if (pref == RAFT_NODE_NONE || pref == n->cfg.node_id) {
            continue;
        }
        all_home = false;
        struct peer *p = peer_find(w, pref);
        if (p == NULL || p->state != PEER_UP) {
            continue;
        }
        struct raft_status st;
        struct raft_progress_view pv;
        raft_status(ro, &st);
        if (st.transfer_target != RAFT_NODE_NONE || !raft_progress(ro, pref, &pv) ||
            pv.match + BALANCE_CATCH_UP_SLACK < st.last_index) {
            continue;
        }
        if (raft_transfer_leader(multi_group(w->multi, gs->g), pref) == 0) {
            started_now++;
            w->st.transfers++;
        }
    }
    w->balance_settled = all_home;
}

/* The node's resident set (/proc/self/statm, opened at start): used_memory for INFO and
 * maxmemory. Not the allocator's statistics: mallinfo2 walks every free chunk of every arena
 * under its lock, which on a large fragmented heap takes tens to hundreds of milliseconds
 * (152 ms with 670 000 free chunks measured here): far too long for a loop. 0 if unknown. */
static uint64_t resident_bytes(struct worker *w)
{
    return kernel_resident_bytes(w->statm_fd);
}

/* Start-up and bursts leave holes in the heap (every group's elections and first messages
 * allocate queues and batches at once, freed again between the long-lived per-group state),
 * and glibc returns only the top of a heap to the kernel by itself. malloc_trim releases the
 * whole free pages inside (madvise); the allocator is process-wide, so worker 0 does it for
 * everyone. It walks the free chunks of every arena with the arena locked, so it runs only
 * while the node serves no commands, when the resident set grew by HEAP_TRIM_GROWTH since the
 * last trim, or every HEAP_TRIM_PERIOD_MS. A trim of a settled 4096-group node takes about
 * 0.4 ms (the first after start-up, 5-20 ms). Checked once a second, with used_memory. */
static void heap_trim(struct worker *w)
{
    if (w->id != 0) {
        return;
    }
    struct node *n = w->node;
    uint64_t rss = resident_bytes(w);
    atomic_store_explicit(&n->used_memory, rss, memory_order_relaxed);
#ifdef __GLIBC__
    bool idle = atomic_load_explicit(&n->rate[RATE_COMMANDS], memory_order_relaxed) == 0 &&
                atomic_load_explicit(&n->rate[RATE_APPLIED], memory_order_relaxed) == 0;
    bool grew = rss >= w->heap_trim_rss + HEAP_TRIM_GROWTH;
    if (!idle || (!grew && w->now_ms < w->heap_trim_ms + HEAP_TRIM_PERIOD_MS)) {
        return;
    }
    uint64_t log_freed = 0;
    for (uint32_t i = 0; i < n->cfg.workers; i++) {
        log_freed +=
            atomic_load_explicit(&n->workers[i]->pub.log_freed_bytes, memory_order_relaxed);
    }
    if (log_freed > HEAP_TRIM_FREE_MAX) {
        LOG_D("heap trim skipped: %llu bytes of compacted logs not taken again",
              (unsigned long long)log_freed);
        return;
    }
    int64_t t0 = node_clock_ns();
    int released = malloc_trim(0);
    int64_t took_us = (node_clock_ns() - t0) / 1000;
    w->heap_trim_rss = resident_bytes(w);
    w->heap_trim_ms = w->now_ms;
    LOG_D("heap trim: resident %llu -> %llu bytes, released %d, %lld us", (unsigned long long)rss,
          (unsigned long long)w->heap_trim_rss, released, (long long)took_us);
#endif
}

static void run_ticks(struct worker *w)
{
    uint32_t due = 0;
    if (w->ticks_parked) {
        /* The ticks the loop slept through had no group to tick; replaying them would age
         * a group a message has just woken. One tick now, and the cadence goes on from
         * here. */
        w->ticks_parked = false;
        w->next_tick_ms = w->now_ms;
    }
    while (w->now_ms >= w->next_tick_ms && due < 10) {
        w->next_tick_ms += w->node->cfg.tick_ms;
        due++;
    }
    if (w->now_ms >= w->next_tick_ms) {
        /* Far behind (the process was stopped): do not replay every missed tick. */
        w->next_tick_ms = w->now_ms + w->node->cfg.tick_ms;
    }
    for (uint32_t i = 0; i < due; i++) {
        multi_tick(w->multi);
        w->st.ticks++;
    }
    if (due > 0) {
        peer_sync(w);
        peer_tick(w);
    }
    if (w->now_ms >= w->next_sweep_ms) {
        w->next_sweep_ms = w->now_ms + SWEEP_MS;
        route_sweep(w);
        snapshot_sweep(w);
        log_read_sweep(w);
        publish_stats(w);
        conn_linger_expire(w);
    }
    if (w->now_ms >= w->next_publish_ms) {
        w->next_publish_ms = w->now_ms + PUBLISH_MS;
        publish_groups(w);
        for (uint32_t i = 0; i < w->peer_count; i++) {
            if (w->peers[i].conn != NULL) {
                conn_trim(w->peers[i].conn); /* idle connections give back a burst's buffers */
            }
        }
        conn_release_buffers(w);   /* so do an idle worker's receive buffers */
        wal_release_cache(w->wal); /* and an idle WAL's cache */
        heap_trim(w);
    }
    if (w->node->cfg.leader_balance && w->now_ms >= w->next_balance_ms) {
        w->next_balance_ms = w->now_ms + BALANCE_PERIOD_MS;
        balance_leaders(w);
    }
}

/* ---- hand-off wake-ups ---------------------------------------------------------------- */

void worker_wake(struct worker *w, uint32_t to)
{
    w->wake_pending[to] = true;
}

static void send_wakes(struct worker *w)
{
    struct node *n = w->node;
    for (uint32_t j = 0; j < n->cfg.workers; j++) {
        if (!w->wake_pending[j]) {
            continue;
        }
        w->wake_pending[j] = false;
        struct worker *t = n->workers[j];
        if (w->use_msg_ring) {
            struct io_uring_sqe *sqe = worker_sqe(w);
            io_uring_prep_msg_ring(sqe, t->ring.ring_fd, 0, UD_MAKE(UD_WAKE, 0), 0);
            io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0));
        } else {
            /* The eventfd is non-blocking, so the ring writes it inline (a blocking one would
             * go to an io-wq thread). It fails only on counter overflow: awake anyway. */
            static const uint64_t one = 1;
            struct io_uring_sqe *sqe = worker_sqe(w);
            io_uring_prep_write(sqe, t->wake_fd, &one, sizeof(one), 0);
            io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0));
        }
    }
}

static void arm_wake_fd(struct worker *w)
{
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_read(sqe, w->wake_fd, &w->wake_buf, sizeof(w->wake_buf), 0);
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_WAKE, 1));
}

/* ---- accept ----------------------------------------------------------------------------- */

static void arm_accept(struct worker *w, int fd, uint8_t tag)
{
    struct io_uring_sqe *sqe = worker_sqe(w);
    if (w->use_multishot_accept) {
        io_uring_prep_multishot_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
    } else {
        io_uring_prep_accept(sqe, fd, NULL, NULL, SOCK_CLOEXEC);
    }
    io_uring_sqe_set_data64(sqe, UD_MAKE(tag, 0));
}

static void on_accept(struct worker *w, uint8_t tag, const struct io_uring_cqe *cqe)
{
    int fd = tag == UD_ACCEPT_CLIENT ? w->client_lfd
             : tag == UD_ACCEPT_PEER ? w->peer_lfd
                                     : w->metrics_lfd;
    bool more = w->use_multishot_accept && (cqe->flags & IORING_CQE_F_MORE) != 0;
    if (cqe->res == -EINVAL && w->use_multishot_accept) {
        /* A kernel without multishot accept: fall back to one accept per connection. */
        LOG_W("multishot accept refused by the kernel; using one-shot accept");
        w->use_multishot_accept = false;
        arm_accept(w, fd, tag);
        return;
    }
    if (cqe->res >= 0) {
        if (w->stopping) {
            conn_close_fd(w, cqe->res);
        } else if (tag == UD_ACCEPT_CLIENT) {
            client_accepted(w, cqe->res);
        } else if (tag == UD_ACCEPT_PEER) {
            peer_accepted(w, cqe->res);
        } else {
            metrics_accepted(w, cqe->res);
        }
    } else if (cqe->res != -ECANCELED) {
        LOG_W("accept failed: %s", strerror(-cqe->res));
    }
    if (!more && !w->stopping) {
        arm_accept(w, fd, tag);
    }
}

/* ---- the loop ----------------------------------------------------------------------------- */

static void handle_cqe(struct worker *w, const struct io_uring_cqe *cqe)
{
    uint64_t ud = io_uring_cqe_get_data64(cqe);
    uint8_t tag = UD_TAG(ud);
    w->st.cqes++;
    switch (tag) {
    case UD_WAL: {
        int rc = wal_handle_cqe(w->wal, cqe);
        if (rc != 0 && w->fatal == 0) {
            LOG_E("WAL stopped: %s", wal_error_message(w->wal));
            w->fatal = rc;
        }
        break;
    }
    case UD_RECV:
    case UD_SEND:
    case UD_SHUTDOWN:
    case UD_CLOSE:
        conn_handle_cqe(w, tag, UD_PTR(ud), cqe->res, cqe->flags);
        break;
    case UD_CONNECT:
        peer_on_connected(w, UD_PTR(ud), cqe->res);
        break;
    case UD_SNAP:
        snapshot_handle_cqe(w, UD_PTR(ud), cqe->res);
        break;
    case UD_ACCEPT_CLIENT:
    case UD_ACCEPT_PEER:
    case UD_ACCEPT_METRICS:
        on_accept(w, tag, cqe);
        break;
    case UD_WAKE:
        if (UD_PTR(ud) != NULL) {
            if (atomic_load(&w->node->stop)) {
                w->stopping = true;
            } else {
                arm_wake_fd(w);
            }
        }
        break;
    case UD_IGNORE:
        break;
    default:
        LOG_E("completion with unknown tag 0x%x", tag);
        RR_ASSERT(false);
    }
}

static void handle_cqe_cb(void *arg, const struct io_uring_cqe *cqe)
{
    handle_cqe(arg, cqe);
}

/* When the loop must wake without a completion: at the next tick while a group is awake or
 * a peer waits to be dialled. With every group quiesced a tick has nothing to do, so an
 * idle worker sleeps to its next sweep instead (10 wake-ups a second, not 1000 / tick-ms):
 * what wakes a group (a client request, a peer's message, a peer lost) arrives as a
 * completion anyway. */
static int64_t next_wake_ms(struct worker *w)
{
    if (multi_awake_count(w->multi) > 0 || peer_dial_waiting(w)) {
        return w->next_tick_ms;
    }
    int64_t at = w->next_sweep_ms;
    if (w->node->cfg.leader_balance && w->next_balance_ms < at) {
        at = w->next_balance_ms;
    }
    if (at <= w->next_tick_ms) {
        return w->next_tick_ms; /* the sweep runs with the tick (run_ticks) */
    }
    w->ticks_parked = true;
    return at;
}

static void loop_iteration(struct worker *w)
{
    w->now_ms = node_clock_ms();
    if (w->now_ms >= w->next_tick_ms) {
        run_ticks(w);
    }
    route_handoffs(w);
    client_resume_pending(w);
    flush_pending_appends(w);
    release_durable(w);
    snapshot_verdicts(w);
    drain_groups(w);
    route_wake_blocked(w);
    snapshot_pump(w);
    if (w->fatal == 0) {
        wal_submit(w->wal);
    } else if (!w->fatal_reported) {
        /* A worker that cannot persist must not keep leading (its heartbeats would hold
         * leadership while no write commits): the node stops and its peers take over. */
        w->fatal_reported = true;
        node_fail(w->node, rr_strerror(w->fatal));
    }
    conn_flush_all(w);
    send_wakes(w);

    int64_t wait_ms = next_wake_ms(w) - node_clock_ms();
    if (multi_has_dirty(w->multi) || snapshot_busy(w) || w->retry.head != NULL) {
        wait_ms = 0; /* work is waiting (requests to place again too): only collect what
                      * completed */
    }
    if (wait_ms < 0) {
        wait_ms = 0;
    }
    int rc = kernel_submit_and_wait(&w->ring, wait_ms);
    w->st.submits++;
    w->st.loops++;
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN) {
        LOG_E("io_uring_submit_and_wait failed: %s", strerror(-rc));
    }
    kernel_reap(&w->ring, handle_cqe_cb, w);
}

static int ring_setup(struct worker *w)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_CQSIZE;
    p.cq_entries = RING_CQ_ENTRIES;
    if (w->node->cfg.uring_defer_taskrun) {
        p.flags |= IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
    }
    int rc = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
    if (rc == -EINVAL && w->node->cfg.uring_defer_taskrun) {
        LOG_W("io_uring: SINGLE_ISSUER/DEFER_TASKRUN not supported; using the plain ring");
        memset(&p, 0, sizeof(p));
        p.flags = IORING_SETUP_CQSIZE;
        p.cq_entries = RING_CQ_ENTRIES;
        rc = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
    }
    if (rc < 0) {
        LOG_E("io_uring_queue_init: %s", strerror(-rc));
        return rc;
    }
    w->ring_ready = true;
    w->use_multishot_accept = w->node->cfg.uring_multishot_accept;
    w->use_msg_ring = w->node->cfg.uring_msg_ring;
    w->use_recv_multishot = w->node->cfg.uring_multishot_recv && conn_setup_buffers(w);
    /* The opcode probe below cannot tell whether a multishot flag is taken: try each once. */
    if (w->use_multishot_accept) {
        int got =
            kernel_probe_multishot_accept(&w->ring, UD_MAKE(UD_IGNORE, 1), UD_MAKE(UD_IGNORE, 2));
        if (got != 1) {
            LOG_W("io_uring: multishot accept %s; using one-shot accept",
                  got == 0 ? "not supported" : "could not be probed");
            w->use_multishot_accept = false;
        }
    }
    if (w->use_recv_multishot) {
        int got = conn_probe_recv_multishot(w);
        if (got != 1) {
            LOG_W("io_uring: multishot recv %s; one recv per connection",
                  got == 0 ? "not supported" : "could not be probed");
            w->use_recv_multishot = false;
        }
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&w->ring);
    if (w->use_msg_ring &&
        (probe == NULL || !io_uring_opcode_supported(probe, IORING_OP_MSG_RING))) {
        LOG_W("io_uring: IORING_OP_MSG_RING not supported; waking workers through eventfd");
        w->use_msg_ring = false;
    }
    if (probe != NULL) {
        io_uring_free_probe(probe);
    }
    if (w->id == 0) {
        LOG_N("io_uring: defer_taskrun=%s multishot_accept=%s msg_ring=%s multishot_recv=%s",
              (p.flags & IORING_SETUP_DEFER_TASKRUN) ? "on" : "off",
              w->use_multishot_accept ? "on" : "off", w->use_msg_ring ? "on" : "off",
              w->use_recv_multishot ? "on" : "off");
    }
    return 0;
}

/* Start-up (blocking, before the loop): WAL recovery, each group's newest valid snapshot
 * and the WAL's entries after it. */
struct restore_ctx {
    struct worker *w;
    struct raft_restore r;
    struct raft_entry *entries;
    uint8_t *data;
    struct wal_read *rd;
    struct snapshot_restored *snap; /* by slot: what each group's snapshot restored */
};

/* Reads the WAL's entries first..last of g into rc. false after a fatal error. */
static bool restore_entries(struct restore_ctx *rc,
                            raft_group g,
                            raft_index first,
                            const struct wal_group_info *info)
{
    uint64_t count = info->last_index >= first ? info->last_index - first + 1 : 0;
    rc->entries = calloc(count ? count : 1, sizeof(*rc->entries));
    size_t cap = (size_t)info->bytes + 1, used = 0;
    rc->data = malloc(cap);
    RR_ASSERT(rc->entries != NULL && rc->data != NULL);
    raft_index next = first;
    while (next <= info->last_index) {
        struct wal_read *rd = rc->rd;
        memset(rd, 0, offsetof(struct wal_read, entries));
        rd->group = g;
        rd->lo = next;
        rd->hi = info->last_index;
        rd->buf = rc->data + used;
        rd->buf_len = cap - used;
        int err = wal_read_blocking(rc->w->wal, rd);
        if (err < 0 || rd->count == 0) {
            LOG_E("group %u: reading entries from %llu failed: %s", g, (unsigned long long)next,
                  rr_strerror(err));
            rc->w->fatal = err < 0 ? err : RR_EIO;
            return false;
        }
        for (uint32_t i = 0; i < rd->count; i++) {
            const struct wal_entry *e = &rd->entries[i];
            struct raft_entry *re = &rc->entries[next - first];
            *re = (struct raft_entry){.term = e->term,
                                      .index = e->index,
                                      .type = e->type,
                                      .data = {.base = e->data, .len = e->len}};
            used = (size_t)((const uint8_t *)e->data + e->len - rc->data);
            next++;
        }
    }
    rc->r.entries = rc->entries;
    rc->r.entry_count = (uint32_t)count;
    return true;
}

static const struct raft_restore *restore_group(void *arg, raft_group g)
{
    struct restore_ctx *rc = arg;
    free(rc->entries);
    free(rc->data);
    rc->entries = NULL;
    rc->data = NULL;
    struct worker *w = rc->w;
    struct wal_group_info info;
    if (w->fatal != 0 || wal_group_info(w->wal, g, &info) != 0) {
        return NULL;
    }
    struct snapshot_restored *sr = &rc->snap[g / w->node->cfg.workers];
    int err = snapshot_startup_load(w, g, sr);
    if (err != 0) {
        w->fatal = err;
        return NULL;
    }
    raft_index snap = sr->meta.index;
    if (info.snap_index > snap) {
        /* The WAL is compacted only behind a durable snapshot: one went missing or bad. */
        LOG_E("group %u: the WAL was compacted up to %llu but the newest valid snapshot in %s "
              "covers %llu; refusing to start",
              g, (unsigned long long)info.snap_index, w->snap_dir, (unsigned long long)snap);
        w->fatal = RR_ECORRUPT;
        return NULL;
    }
    memset(&rc->r, 0, sizeof(rc->r));
    rc->r.hard_state = (struct raft_hard_state){
        .term = info.hs.term, .vote = info.hs.vote, .commit = info.hs.commit};
    /* Entries the snapshot covers are skipped; those after it are the log. The WAL's entry
     * at the snapshot index is read too, to check its term (below). */
    raft_index first = info.first_index > snap + 1 ? info.first_index : snap + 1;
    bool check_at_snap = snap != 0 && info.last_index > snap && info.first_index <= snap;
    if (check_at_snap) {
        first = snap;
    }
    /* A crash between a received snapshot's rename and the WAL's truncation behind it leaves
     * the WAL a suffix of the history the snapshot replaced (paper §7 step 7, "discard the
     * entire log"): its entry at the snapshot index has another term, or the WAL holds entries
     * past the index without it. That suffix is dropped here and its truncation queued, as
     * the install would have. */
    sr->wal_stale = snap != 0 && info.last_index > snap && !check_at_snap &&
                    (info.snap_index != snap || info.snap_term != sr->meta.term);
    if (info.last_index < first && info.hs.term == 0 && snap == 0) {
        return NULL;
    }
    if (!sr->wal_stale && !restore_entries(rc, g, first, &info)) {
        return NULL;
    }
    if (check_at_snap) {
        RR_ASSERT(rc->r.entry_count > 0 && rc->entries[0].index == snap);
        sr->wal_stale = rc->entries[0].term != sr->meta.term;
        rc->r.entries = rc->entries + 1;
        rc->r.entry_count--;
    }
    if (sr->wal_stale) {
        LOG_W("group %u: the WAL holds entries after snapshot %llu (term %llu) of another "
              "history (a crash came before the install's truncation); dropping them",
              g, (unsigned long long)snap, (unsigned long long)sr->meta.term);
        rc->r.entries = NULL;
        rc->r.entry_count = 0;
    }
    if (snap != 0) {
        rc->r.snapshot = sr->meta;
        rc->r.snapshot_bytes = sr->file_bytes; /* the core asks for chunks of the file */
    }
    return &rc->r;
}

static int worker_open(struct worker *w)
{
    struct node *n = w->node;
    const struct node_config *cfg = &n->cfg;
    char dir[NODE_PATH_MAX + 32];
    snprintf(dir, sizeof(dir), "%s/wal-%u", cfg->dir, w->id);
    struct wal_kernel wk = kernel_wal(&w->ring);
    struct wal_config wc = {
        .kernel = &wk,
        .dir = dir,
        .cluster_id = cfg->cluster_id,
        .node_id = cfg->node_id,
        .worker_id = w->id,
        .group_count = cfg->groups,
        .worker_count = cfg->workers,
        .user_data_tag = UD_WAL,
        .iowq_max_workers = 4, /* the WAL's, and snapshot files' writes and syncs */
        .strategy = cfg->disk_batching,
        /* The fault-test build's switch allows smaller segments than wal-segment-bytes. */
        .segment_bytes =
            cfg->test_wal_segment_bytes != 0 ? cfg->test_wal_segment_bytes : cfg->wal_segment_bytes,
        .flushes_in_flight = (uint8_t)cfg->disk_flushes_in_flight,
        .sync_method = cfg->wal_sync,
        .prep_method = cfg->wal_prepare,
        .direct_io = cfg->wal_direct_io,
    };
    char err[512];
    int rc = wal_open(&wc, &w->ring, &w->wal, err, sizeof(err));
    if (rc != 0) {
        LOG_E("cannot open the WAL in %s: %s", dir, err);
        return rc;
    }
    atomic_store_explicit(&w->pub.wal_direct, wal_direct_io(w->wal), memory_order_relaxed);
    if (cfg->wal_direct_io && !wal_direct_io(w->wal)) {
        LOG_W("the filesystem of %s refuses O_DIRECT: WAL writes go through the page cache", dir);
    }
    struct multi_options mo = {
        .id = cfg->node_id,
        .worker = w->id,
        .worker_count = cfg->workers,
        .group_count = cfg->groups,
        .seed = (uint64_t)node_wall_ms() ^ ((uint64_t)cfg->node_id << 32),
    };
    raft_options_default(&mo.group);
    mo.group.election_ticks = cfg->election_ticks;
    mo.group.heartbeat_ticks = cfg->heartbeat_ticks;
    mo.group.quiesce = cfg->quiesce;
    mo.group.release_applied = cfg->log_release;
    mo.uncommitted_bytes_max = cfg->worker_uncommitted_max;
    if (snapshot_worker_open(w, dir) != 0) {
        return RR_EIO;
    }
    uint32_t slots = (cfg->groups + cfg->workers - 1) / cfg->workers;
    struct restore_ctx rctx = {.w = w,
                               .rd = malloc(sizeof(struct wal_read)),
                               .snap = calloc(slots, sizeof(struct snapshot_restored))};
    RR_ASSERT(rctx.rd != NULL && rctx.snap != NULL);
    rc = multi_create(&w->multi, &mo, &n->initial, restore_group, &rctx);
    free(rctx.entries);
    free(rctx.data);
    free(rctx.rd);
    free(w->snap_candidates);
    w->snap_candidates = NULL;
    if (rc != 0 || w->fatal != 0) {
        LOG_E("cannot create the group table: %s", rr_strerror(rc ? rc : w->fatal));
        return rc ? rc : w->fatal;
    }
    w->group_count = multi_group_count(w->multi);
    w->groups = calloc(w->group_count, sizeof(*w->groups));
    RR_ASSERT(w->groups != NULL);
    sm_limits_default(&w->sm_limits);
    reply_init(&w->sm_scratch, w->sm_limits.reply_limit);
    for (uint32_t s = 0; s < w->group_count; s++) {
        struct group_state *gs = &w->groups[s];
        gs->g = multi_group_id(w->multi, s);
        /* Role events report changes from this state on (core/raft.h RAFT_READY_ROLE). */
        struct raft_status st;
        raft_status(multi_group_peek(w->multi, gs->g), &st);
        gs->role = st.role;
        gs->term = st.term;
        gs->leader = st.leader;
        atomic_store(&n->pub[gs->g].role, st.role);
        atomic_store(&n->pub[gs->g].term, st.term);
        atomic_store(&n->pub[gs->g].leader, st.leader);
        struct snapshot_restored *sr = &rctx.snap[gs->g / cfg->workers];
        if (sr->sm != NULL) {
            gs->sm = sr->sm;
            gs->snap_index = sr->meta.index;
            gs->snap_term = sr->meta.term;
            gs->snap_file_bytes = sr->file_bytes;
            atomic_store(&n->pub[gs->g].snapshot_index, sr->meta.index);
            if (sr->wal_stale) {
                /* Queued before anything else this run writes, like the compaction below. */
                worker_persist_truncate(w, gs->g, sr->meta.index + 1);
            }
            struct wal_group_info info;
            if (wal_group_info(w->wal, gs->g, &info) == 0 && info.snap_index < sr->meta.index) {
                /* A crash came between the snapshot's rename and the WAL's compaction: the
                 * WAL catches up now (queued before anything else this run writes). */
                worker_persist_compact(w, gs->g, sr->meta.index, sr->meta.term);
            }
        } else if (sm_create(&gs->sm, &w->sm_limits, &w->sm_scratch) != 0) {
            free(rctx.snap);
            return RR_ENOMEM;
        }
    }
    free(rctx.snap);
    return 0;
}

static void pin_cpu(struct worker *w)
{
    const char *spec = w->node->cfg.cpus;
    if (strcmp(spec, "off") == 0 || spec[0] == '\0') {
        return;
    }
    /* The w-th CPU of the list ("0-3" or "2,3,5"). */
    int cpus[256], n = 0;
    const char *p = spec;
    while (*p != '\0' && n < 256) {
        char *end;
        long a = strtol(p, &end, 10), b = a;
        if (end == p) {
            break;
        }
        if (*end == '-') {
            p = end + 1;
            b = strtol(p, &end, 10);
        }
        for (long c = a; c <= b && n < 256; c++) {
            cpus[n++] = (int)c;
        }
        p = *end == ',' ? end + 1 : end;
    }
    if (n == 0) {
        return;
    }
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)cpus[w->id % (uint32_t)n], &set);
    int rc = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (rc != 0) {
        LOG_W("pinning to CPU %d failed: %s", cpus[w->id % (uint32_t)n], strerror(rc));
    } else {
        LOG_N("pinned to CPU %d", cpus[w->id % (uint32_t)n]);
    }
}

/* Set by worker_main once start-up finished (0) or failed (negative). */
int worker_start_status(struct worker *w);

/* Shutting down: only the WAL's completions still matter. */
static void drain_wal_cqe_cb(void *arg, const struct io_uring_cqe *cqe)
{
    struct worker *w = arg;
    if (UD_TAG(io_uring_cqe_get_data64(cqe)) == UD_WAL) {
        wal_handle_cqe(w->wal, cqe);
    }
}

void *worker_main(void *arg)
{
    struct worker *w = arg;
    log_set_worker((int)w->id);
    char name[16]; /* the kernel's limit, NUL included: top -H and /proc/PID/task/TID/comm */
    snprintf(name, sizeof(name), "ringraft-w%u", w->id);
    (void)pthread_setname_np(pthread_self(), name);
    pin_cpu(w);
    int rc = ring_setup(w);
    if (rc == 0) {
        rc = worker_open(w);
    }
    if (rc == 0) {
        rc = peer_setup(w);
    }
    if (rc == 0) {
        rc = metrics_setup(w);
    }
    extern void node_worker_started(struct worker * w, int status);
    node_worker_started(w, rc);
    if (rc != 0) {
        return NULL;
    }
    reply_init(&w->scratch, 64u << 20);
    arm_wake_fd(w);
    arm_accept(w, w->client_lfd, UD_ACCEPT_CLIENT);
    arm_accept(w, w->peer_lfd, UD_ACCEPT_PEER);
    if (w->metrics_lfd >= 0) {
        arm_accept(w, w->metrics_lfd, UD_ACCEPT_METRICS);
    }
    w->now_ms = node_clock_ms();
    w->next_tick_ms = w->now_ms;
    w->next_sweep_ms = w->now_ms + SWEEP_MS;
    w->next_balance_ms = w->now_ms + 2 * BALANCE_PERIOD_MS;
    while (!w->stopping) {
        loop_iteration(w);
    }
    if (faults_power_loss(w)) {
        return NULL;
    }
    /* Shut down: no new input; let the WAL finish what is in flight (bounded). */
    LOG_I("stopping");
    int64_t deadline = node_clock_ms() + 5000;
    while (wal_busy(w->wal) && node_clock_ms() < deadline) {
        kernel_submit_and_wait(&w->ring, 50);
        kernel_reap(&w->ring, drain_wal_cqe_cb, w);
    }
    return NULL;
}
