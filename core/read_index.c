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

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/raft_internal.h"

static bool committed_in_term(const struct raft *r)
{
    return log_term(&r->log, r->commit) == r->term;
}

static uint64_t ack_of(void *ctx, raft_node id)
{
    struct raft *r = ctx;
    if (id == r->opt.id) {
        return r->read_round; /* the leader confirms its own round */
    }
    const struct raft_progress *p = raft_progress_of(r, id);
    return p != NULL ? p->read_ack : 0;
}

static void round_start(struct raft *r);

static void round_check(struct raft *r)
{
    if (r->read_round == 0 || quorum_value(&r->config, ack_of, r) < r->read_round) {
        return;
    }
    r->read_confirmed = r->read_assigned;
    r->read_round = 0;
    round_start(r);
}

static void round_start(struct raft *r)
{
    if (r->role != RAFT_LEADER || !committed_in_term(r) || r->read_round != 0 ||
        r->read_assigned == r->read_count) {
        return;
    }
    r->read_round = ++r->read_round_last;
    for (uint32_t i = r->read_assigned; i < r->read_count; i++) {
        r->reads[i].round = r->read_round;
        r->reads[i].index = r->commit;
    }
    r->read_assigned = r->read_count;
    if (r->pr_count > 0) {
        replication_bcast_heartbeat(r);
    }
    round_check(r); /* a single voter confirms at once */
}

/* Grows the queue, the ready's output array and the failure list together, so that idle
 * groups hold none; each has room for every read queued or failed. */
static int reads_reserve(struct raft *r)
{
    if (r->read_count + r->read_failed_count < r->read_cap) {
        return 0;
    }
    uint32_t cap = r->read_cap == 0 ? 16 : r->read_cap * 2;
    cap = cap > RAFT_READS_MAX ? RAFT_READS_MAX : cap;
    struct raft_read_state *out = realloc(r->read_out, cap * sizeof(*out));
    if (out == NULL) {
        return RR_ENOMEM;
    }
    r->read_out = out;
    uint64_t *failed = realloc(r->read_failed, cap * sizeof(*failed));
    if (failed == NULL) {
        return RR_ENOMEM;
    }
    r->read_failed = failed;
    struct raft_pending_read *reads = realloc(r->reads, cap * sizeof(*reads));
    if (reads == NULL) {
        return RR_ENOMEM;
    }
    r->reads = reads;
    r->read_cap = cap;
    return 0;
}

int raft_read_index(struct raft *r, uint64_t ctx)
{
    RR_ASSERT(!r->handed.pending);
    if (r->role != RAFT_LEADER) {
        return RR_ENOTLEADER;
    }
    if (r->read_count + r->read_failed_count >= RAFT_READS_MAX) {
        return RR_EBUSY;
    }
    int rv = reads_reserve(r);
    if (rv != 0) {
        return rv;
    }
    quiesce_wake(r);
    r->reads[r->read_count++] = (struct raft_pending_read){ctx, 0, 0};
    round_start(r);
    return 0;
}

void read_index_on_commit(struct raft *r)
{
    round_start(r);
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
    for (uint32_t i = r->read_confirmed; i < r->read_count; i++) {
        RR_ASSERT(r->read_failed_count < r->read_cap);
        r->read_failed[r->read_failed_count++] = r->reads[i].ctx;
    }
    r->read_count = r->read_confirmed;
    r->read_assigned = r->read_confirmed;
    r->read_round = 0;
}

uint64_t read_index_heartbeat_ctx(const struct raft *r)
{
    return r->read_round;
}

uint32_t read_index_ready_count(const struct raft *r, raft_index applied)
{
    uint32_t n = 0;
    while (n < r->read_confirmed && r->reads[n].index <= applied) {
        n++;
    }
    return n;
}

void read_index_free(struct raft *r)
{
    free(r->reads);
    free(r->read_out);
    free(r->read_failed);
    r->reads = NULL;
    r->read_out = NULL;
    r->read_failed = NULL;
    r->read_failed_count = 0;
    r->read_count = 0;
    r->read_cap = 0;
    r->read_confirmed = 0;
    r->read_assigned = 0;
}
