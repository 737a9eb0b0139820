/* Log compaction and InstallSnapshot (paper §7): taking snapshots, sending them in chunks to
 * followers that lag behind the log, and receiving and installing them. */
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/raft_internal.h"

int snapshot_store_reserve(struct raft *r)
{
    if (r->snap.store == NULL) {
        r->snap.store = calloc(1, sizeof(*r->snap.store));
        if (r->snap.store == NULL) {
            return RR_ENOMEM;
        }
    }
    return 0;
}

uint64_t snapshot_bytes(const struct raft *r)
{
    return r->snap.store != NULL ? r->snap.store->bytes : 0;
}

struct raft_snapshot_rx *snapshot_rx(const struct raft *r)
{
    return r->snap.store != NULL ? r->snap.store->rx : NULL;
}

void snapshot_store_free(struct raft *r)
{
    snapshot_rx_reset(r);
    if (r->snap.store != NULL) {
        free(r->snap.store->data);
        free(r->snap.store);
    }
    r->snap = (struct raft_snap){0};
}

/* Paper §7: "Each server takes snapshots independently, covering just the committed
 * entries in its log." The log keeps `trailing` entries before index so that followers
 * lagging a little get entries rather than a whole snapshot. */
int raft_snapshot_taken(
    struct raft *r, raft_index index, const uint8_t *data, uint64_t bytes, raft_index trailing)
{
    RR_ASSERT(!r->handed.pending);
    if (index == 0 || index > r->applied || (data == NULL && bytes > 0)) {
        return RR_EINVAL;
    }
    if (bytes > RAFT_SNAPSHOT_BYTES_MAX) {
        return RR_ETOOBIG;
    }
    if (index <= r->snap.index) {
        return RR_ECOMPACTED;
    }
    if (snapshot_store_reserve(r) != 0) {
        return RR_ENOMEM;
    }
    struct raft_snap_store *st = r->snap.store;
    uint8_t *copy = NULL;
    if (bytes > 0) {
        copy = malloc(bytes);
        if (copy == NULL) {
            return RR_ENOMEM;
        }
        memcpy(copy, data, bytes);
    }
    RR_ASSERT(index >= r->log.prev_index);
    /* The snapshot carries the configuration in force at its index (paper §7), committed
     * since index <= applied: it replaces the compacted configuration entries. */
    (void)membership_config_at(r, index, &st->meta.config);
    r->snap.term = log_term(&r->log, index);
    r->snap.index = index;
    st->meta.index = index;
    st->meta.term = r->snap.term;
    RR_ASSERT(r->snap.term > 0);
    free(st->data);
    st->data = copy;
    st->bytes = bytes;
    raft_index compact_to = index > trailing ? index - trailing : 0;
    if (compact_to > r->log.prev_index) {
        log_compact_to(&r->log, compact_to);
    }
    return 0;
}

/* ---- leader -------------------------------------------------------------------------- */

/* Sends the chunk at p's offset; one chunk is in flight at a time. */
void snapshot_send(struct raft *r, struct raft_progress *p)
{
    RR_ASSERT(r->snap.index > 0); /* the log was compacted, so a snapshot exists */
    if (p->state != RAFT_PROGRESS_SNAPSHOT || p->pending_snapshot != r->snap.index) {
        progress_become_snapshot(p, r->snap.index); /* (re)start with the latest snapshot */
    }
    if (p->snap_chunk_inflight) {
        return;
    }
    uint64_t total = snapshot_bytes(r);
    uint64_t left = total - p->snap_offset;
    uint32_t len = left < RAFT_SNAPSHOT_CHUNK_BYTES ? (uint32_t)left : RAFT_SNAPSHOT_CHUNK_BYTES;
    struct raft_msg m = raft_msg_new(r, RAFT_MSG_SNAPSHOT, p->id);
    m.snapshot.last_index = r->snap.index;
    m.snapshot.last_term = r->snap.term;
    m.snapshot.offset = p->snap_offset;
    m.snapshot.total_bytes = total;
    m.snapshot.done = p->snap_offset + len == total;
    m.snapshot.chunk.len = len; /* base and config are resolved by raft_ready */
    if (raft_send(r, &m, false, false)) {
        p->snap_chunk_inflight = true;
        p->snap_wait_ticks = 0;
    }
}

/* A chunk or its answer may be lost: resend after an election timeout of silence. */
void snapshot_tick(struct raft *r, struct raft_progress *p)
{
    if (p->state != RAFT_PROGRESS_SNAPSHOT) {
        return;
    }
    if (!p->snap_chunk_inflight || ++p->snap_wait_ticks >= r->opt.election_ticks) {
        p->snap_chunk_inflight = false;
        snapshot_send(r, p);
    }
}

void snapshot_handle_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft_progress *p = raft_progress_of(r, m->from);
    if (r->role != RAFT_LEADER || p == NULL) {
        return;
    }
    p->recent_active = true;
    const struct raft_msg_snapshot_resp *s = &m->snapshot_resp;
    if (p->state != RAFT_PROGRESS_SNAPSHOT || s->index != p->pending_snapshot) {
        return; /* about another transfer */
    }
    if (s->done) {
        /* The follower holds everything up to the snapshot: resume with appends. */
        progress_maybe_update(p, s->index);
        progress_become_probe(p);
        replication_send_append(r, p, true);
        replication_maybe_commit(r);
        return;
    }
    if (s->rejected || s->next_offset > snapshot_bytes(r) || s->index != r->snap.index) {
        p->snap_offset = 0; /* restart the transfer */
    } else {
        p->snap_offset = s->next_offset;
    }
    p->snap_chunk_inflight = false;
    snapshot_send(r, p);
}

/* ---- follower ------------------------------------------------------------------------ */

int snapshot_validate(const struct raft *r, const struct raft_msg *m)
{
    (void)r;
    const struct raft_msg_snapshot *s = &m->snapshot;
    if (s->last_index == 0 || s->last_index > RAFT_INDEX_MAX || s->last_term == 0 ||
        s->last_term > m->term || s->config == NULL || !raft_config_valid(s->config)) {
        return RR_EINVAL;
    }
    if (s->total_bytes > RAFT_SNAPSHOT_BYTES_MAX || s->chunk.len > RAFT_SNAPSHOT_CHUNK_BYTES ||
        s->offset > s->total_bytes || s->chunk.len > s->total_bytes - s->offset ||
        (s->chunk.base == NULL && s->chunk.len > 0)) {
        return RR_EINVAL;
    }
    if (s->done != (s->offset + s->chunk.len == s->total_bytes)) {
        return RR_EINVAL;
    }
    return 0;
}

void snapshot_rx_reset(struct raft *r)
{
    struct raft_snapshot_rx *rx = snapshot_rx(r);
    if (rx != NULL) {
        free(rx->data);
        free(rx);
        r->snap.store->rx = NULL;
    }
}

static void reply_snapshot(struct raft *r, const struct raft_msg *m, bool rejected, bool done)
{
    struct raft_msg resp = raft_msg_new(r, RAFT_MSG_SNAPSHOT_RESP, m->from);
    resp.snapshot_resp.index = m->snapshot.last_index;
    const struct raft_snapshot_rx *rx = snapshot_rx(r);
    resp.snapshot_resp.next_offset =
        done ? m->snapshot.total_bytes : (rx != NULL ? rx->received : 0);
    resp.snapshot_resp.rejected = rejected;
    resp.snapshot_resp.done = done;
    /* "Installed" acknowledges durable state; progress reports need not wait. */
    raft_send(r, &resp, done, false);
}

/* A transfer resumes only with the same leader in the same term: two servers' snapshots at
 * one (index, term) and of one size need not hold the same bytes (each server takes its
 * own, paper §7), so another leader's chunks must not complete this one's. */
static bool rx_matches(const struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_snapshot *s = &m->snapshot;
    const struct raft_snapshot_rx *rx = snapshot_rx(r);
    return rx != NULL && rx->from == m->from && rx->term == m->term &&
           rx->meta.index == s->last_index && rx->meta.term == s->last_term &&
           rx->total_bytes == s->total_bytes;
}

static int rx_start(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_snapshot *s = &m->snapshot;
    snapshot_rx_reset(r);
    struct raft_snapshot_rx *rx = calloc(1, sizeof(*rx));
    if (rx == NULL || snapshot_store_reserve(r) != 0) {
        free(rx);
        return RR_ENOMEM;
    }
    rx->meta.index = s->last_index;
    rx->meta.term = s->last_term;
    rx->meta.config = *s->config;
    rx->from = m->from;
    rx->term = m->term;
    rx->total_bytes = s->total_bytes;
    r->snap.store->rx = rx;
    return 0;
}

/* Makes room for `need` bytes. The buffer grows with the bytes received rather than being
 * sized by the first chunk's total_bytes: a peer claiming a term and a 1 GiB snapshot in one
 * empty chunk must not make every group of the node reserve that much. */
static int rx_reserve(struct raft_snapshot_rx *rx, uint64_t need)
{
    if (need <= rx->cap) {
        return 0;
    }
    uint64_t cap = rx->cap > 0 ? rx->cap : RAFT_SNAPSHOT_CHUNK_BYTES;
    while (cap < need) {
        cap *= 2;
    }
    cap = cap < rx->total_bytes ? cap : rx->total_bytes;
    uint8_t *data = realloc(rx->data, cap);
    if (data == NULL) {
        return RR_ENOMEM;
    }
    rx->data = data;
    rx->cap = cap;
    return 0;
}

/* Paper §7 InstallSnapshot receiver: "6. If existing log entry has same index and term as
 * snapshot's last included entry, retain log entries following it and reply. 7. Discard the
 * entire log. 8. Reset state machine using snapshot contents". Either way the durable log is
 * rewritten: the snapshot goes out in a ready with the kept entries after it. */
static void install(struct raft *r)
{
    struct raft_snap_store *st = r->snap.store; /* allocated by rx_start */
    struct raft_snapshot_rx *rx = st->rx;
    log_install_snapshot(&r->log, rx->meta.index, rx->meta.term);
    free(st->data);
    st->meta = rx->meta;
    r->snap.index = rx->meta.index;
    r->snap.term = rx->meta.term;
    st->data = rx->data;
    st->bytes = rx->total_bytes;
    rx->data = NULL;
    snapshot_rx_reset(r);
    r->commit = r->snap.index;
    r->applied = r->snap.index;
    r->snap_to_hand = true;
    raft_config_refresh(r);
}

int snapshot_handle(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_snapshot *s = &m->snapshot;
    if (s->last_index <= r->commit) {
        /* Older than what we have committed: nothing to install, but tell the leader. */
        reply_snapshot(r, m, false, true);
        return 0;
    }
    if (!rx_matches(r, m)) {
        if (s->offset != 0) {
            reply_snapshot(r, m, true, false); /* missed the start: restart */
            return 0;
        }
        int rv = rx_start(r, m);
        if (rv != 0) {
            return rv;
        }
    }
    struct raft_snapshot_rx *rx = snapshot_rx(r);
    RR_ASSERT(rx != NULL); /* it matched, or was just started */
    if (s->offset != rx->received) {
        /* A duplicate is answered with our position; a gap restarts the transfer. */
        bool gap = s->offset > rx->received;
        reply_snapshot(r, m, gap, false);
        if (gap) {
            snapshot_rx_reset(r);
        }
        return 0;
    }
    if (s->chunk.len > 0) {
        int rv = rx_reserve(rx, s->offset + s->chunk.len);
        if (rv != 0) {
            return rv;
        }
        memcpy(rx->data + s->offset, s->chunk.base, s->chunk.len);
    }
    rx->received += s->chunk.len;
    if (s->done) {
        install(r);
    }
    reply_snapshot(r, m, false, s->done);
    return 0;
}
