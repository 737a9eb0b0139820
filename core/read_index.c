/* Linearizable reads without log writes (thesis §6.4, ReadIndex), batched in rounds.
 *
 * Thesis §6.4: "1. If the leader has not yet marked an entry from its current term
 * committed, it waits until it has done so. 2. The leader saves its current commit index in
 * a local variable readIndex. 3. The leader needs to make sure it hasn't been superseded by
 * a newer leader ... it issues a new round of heartbeats and waits for their
 * acknowledgments from a majority of the cluster. 4. The leader waits for its state machine
 * to advance at least as far as the readIndex."
 *
 * A round serves every read queued before it starts. Round ids increase for the lifetime of
 * the node and ride on heartbeats as read_ctx; a follower echoing ctx >= id confirms the
 * round. One round is in flight at a time; reads arriving meanwhile wait for the next one,
 * which starts as soon as the current one is confirmed. A leader that steps down fails the
 * unconfirmed reads: their contexts come back in the next ready's read_failures, so the
 * clients are answered at once and retry at the new leader. Confirmed reads are still
 * released once applied: their index was confirmed while this node led, and serving it
 * later, as a follower, is as linearizable as a follower read (thesis §6.4.1). */
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/raft_internal.h"

static bool committed_in_term(const struct raft *r)
{
    return log_term(&r->log, r->commit) == r->term;
}

static uint64_t round_of(const struct raft *r)
{
    return r->reads != NULL ? r->reads->round : 0;
}

static uint64_t ack_of(void *ctx, raft_node id)
{
    struct raft *r = ctx;
    if (id == r->opt.id) {
        return round_of(r); /* the leader confirms its own round */
    }
    const struct raft_progress *p = raft_progress_of(r, id);
    return p != NULL ? p->read_ack : 0;
}

static void round_start(struct raft *r);

static void round_check(struct raft *r)
{
    struct raft_reads *q = r->reads;
    if (q == NULL || q->round == 0 || quorum_value(&r->config, ack_of, r) < q->round) {
        return;
    }
    q->confirmed = q->assigned;
    q->round = 0;
    round_start(r);
}

static void round_start(struct raft *r)
{
    struct raft_reads *q = r->reads;
    if (q == NULL || r->role != RAFT_LEADER || !committed_in_term(r) || q->round != 0 ||
        q->assigned == q->count) {
        return;
    }
    q->round = ++r->read_round_last;
    for (uint32_t i = q->assigned; i < q->count; i++) {
        q->queue[i].round = q->round;
        q->queue[i].index = r->commit;
    }
    q->assigned = q->count;
    if (r->pr_count > 0) {
        replication_bcast_heartbeat(r);
    }
    round_check(r); /* a single voter confirms at once */
}

/* Grows the queue, the ready's output array and the failure list together (allocating the
 * state with the first read), so that groups serving no reads hold none; each has room for
 * every read queued or failed. */
static int reads_reserve(struct raft *r)
{
    if (r->reads == NULL) {
        r->reads = calloc(1, sizeof(*r->reads));
        if (r->reads == NULL) {
            return RR_ENOMEM;
        }
    }
    struct raft_reads *q = r->reads;
    if (q->count + q->failed_count < q->cap) {
        return 0;
    }
    uint32_t cap = q->cap == 0 ? 16 : q->cap * 2;
    cap = cap > RAFT_READS_MAX ? RAFT_READS_MAX : cap;
    struct raft_read_state *out = realloc(q->out, cap * sizeof(*out));
    if (out == NULL) {
        return RR_ENOMEM;
    }
    q->out = out;
    uint64_t *failed = realloc(q->failed, cap * sizeof(*failed));
    if (failed == NULL) {
        return RR_ENOMEM;
    }
    q->failed = failed;
    struct raft_pending_read *queue = realloc(q->queue, cap * sizeof(*queue));
    if (queue == NULL) {
        return RR_ENOMEM;
    }
    q->queue = queue;
    q->cap = cap;
    return 0;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
    RR_ASSERT(!r->handed.pending);
    if (r->role != RAFT_LEADER) {
        return RR_ENOTLEADER;
    }
    if (r->reads != NULL && r->reads->count + r->reads->failed_count >= RAFT_READS_MAX) {
        return RR_EBUSY;
    }
    quiesce_wake(r);
    if (r->role != RAFT_LEADER) {
        return RR_ENOMEM; /* could not rebuild its progress set on waking (quiesce.c) */
    }
    int rv = reads_reserve(r);
    if (rv != 0) {
        return rv;
    }
    r->reads->queue[r->reads->count++] = (struct raft_pending_read){ctx, 0, 0};
    round_start(r);
    return 0;
}

void read_index_on_commit(struct raft *r)
{
    round_start(r);
}

void read_index_on_config(struct raft *r)
{
    round_check(r);
}

void read_index_on_ack(struct raft *r, struct raft_progress *p, uint64_t ctx)
{
    if (ctx > p->read_ack) {
        p->read_ack = ctx;
        round_check(r);
    }
}

void read_index_fail_pending(struct raft *r)
{
    struct raft_reads *q = r->reads;
    if (q == NULL) {
        return;
    }
    for (uint32_t i = q->confirmed; i < q->count; i++) {
        RR_ASSERT(q->failed_count < q->cap);
        q->failed[q->failed_count++] = q->queue[i].ctx;
    }
    q->count = q->confirmed;
    q->assigned = q->confirmed;
    q->round = 0;
}

uint64_t read_index_heartbeat_ctx(const struct raft *r)
{
    return round_of(r);
}

bool read_index_idle(const struct raft *r)
{
    return r->reads == NULL || (r->reads->count == 0 && r->reads->round == 0);
}

uint32_t read_index_ready_count(const struct raft *r, raft_index applied)
{
    const struct raft_reads *q = r->reads;
    uint32_t n = 0;
    while (q != NULL && n < q->confirmed && q->queue[n].index <= applied) {
        n++;
    }
    return n;
}

uint32_t read_index_failure_count(const struct raft *r)
{
    return r->reads != NULL ? r->reads->failed_count : 0;
}

void read_index_ready(struct raft *r, struct raft_ready *rd, raft_index applied)
{
    struct raft_reads *q = r->reads;
    uint32_t n = read_index_ready_count(r, applied);
    if (n > 0) {
        for (uint32_t i = 0; i < n; i++) {
            q->out[i] = (struct raft_read_state){q->queue[i].ctx, q->queue[i].index};
        }
        rd->flags |= RAFT_READY_READS;
        rd->reads = q->out;
        rd->read_count = n;
        r->handed.read_count = n;
    }
    if (q != NULL && q->failed_count > 0) {
        rd->flags |= RAFT_READY_READ_FAILURES;
        rd->read_failures = q->failed;
        rd->read_failure_count = q->failed_count;
        r->handed.read_failure_count = q->failed_count;
    }
}

void read_index_advance(struct raft *r)
{
    struct raft_reads *q = r->reads;
    uint32_t n = r->handed.read_count;
    RR_ASSERT(q != NULL || (n == 0 && r->handed.read_failure_count == 0));
    if (q == NULL) {
        return;
    }
    RR_ASSERT(n <= q->confirmed);
    memmove(q->queue, q->queue + n, (q->count - n) * sizeof(*q->queue));
    q->count -= n;
    q->confirmed -= n;
    q->assigned -= n;
    RR_ASSERT(r->handed.read_failure_count == q->failed_count);
    q->failed_count = 0;
    /* Nothing left to serve or report: a group that sleeps or no longer leads gives the
     * state back (a busy leader keeps it, and its arrays, between batches). */
    if (q->count == 0 && q->round == 0 && (r->quiesced || r->role != RAFT_LEADER)) {
        read_index_free(r);
    }
}

void read_index_free(struct raft *r)
{
    if (r->reads != NULL) {
        free(r->reads->queue);
        free(r->reads->out);
        free(r->reads->failed);
        free(r->reads);
        r->reads = NULL;
    }
}
