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
    free(r->snap.store);
    r->snap = (struct raft_snap){0};
}

/* Paper §7: "Each server takes snapshots independently, covering just the committed
 * entries in its log." The log keeps `trailing` entries before index so that followers
 * lagging a little get entries rather than a whole snapshot. The core keeps only the image's
 * size: the caller holds the image and reads pieces of it back when one must be sent. */
int raft_snapshot_taken(struct raft *r, raft_index index, uint64_t bytes, raft_index trailing)
{
    RR_ASSERT(!r->handed.pending);
    if (index == 0 || index > r->applied) {
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
    RR_ASSERT(index >= r->log.prev_index);
    /* The snapshot carries the configuration in force at its index (paper §7), committed
     * since index <= applied: it replaces the compacted configuration entries. */
    (void)membership_config_at(r, index, &r->snap.store->meta.config);
    r->snap.term = log_term(&r->log, index);
    r->snap.index = index;
    r->snap.store->meta.index = index;
    r->snap.store->meta.term = r->snap.term;
    RR_ASSERT(r->snap.term > 0);
    r->snap.store->bytes = bytes;
    raft_index compact_to = index > trailing ? index - trailing : 0;
    if (compact_to > r->log.prev_index) {
        log_compact_to(&r->log, compact_to);
    }
    return 0;
}

int raft_snapshot_meta_at(const struct raft *r, raft_index index, struct raft_snapshot_meta *out)
{
    if (index == 0 || index > r->applied || index <= r->snap.index || index <= r->log.prev_index) {
        return RR_EINVAL;
    }
    memset(out, 0, sizeof(*out));
    out->index = index;
    out->term = log_term(&r->log, index);
    RR_ASSERT(out->term > 0);
    (void)membership_config_at(r, index, &out->config);
    return 0;
}

/* ---- leader -------------------------------------------------------------------------- */

/* Sends the chunk at p's offset; one chunk is in flight at a time. The message carries no
 * data: the caller reads up to chunk.len bytes of its image and may send fewer (core/raft.h,
 * raft_ready.msgs); the follower's answer says where the next chunk starts. */
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
    m.snapshot.chunk.len = len; /* the most to send; base NULL: the caller reads it; the
                                   configuration is set by raft_ready */
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
        free(rx->chunk);
        free(rx);
        r->snap.store->rx = NULL;
    }
}

/* Drops a transfer the core will not finish while the caller may hold what it stored of it:
 * the next ready reports it (RAFT_READY_SNAPSHOT_DROPPED) so that the caller drops it too. */
static void rx_drop(struct raft *r)
{
    snapshot_rx_reset(r);
    r->snap.store->rx_dropped = true; /* the store held the transfer */
}

/* A transfer is left behind once the commit index reaches it (the leader caught us up with
 * entries, or another snapshot covered it) or the term changes (its leader is gone; a new
 * one starts over at offset 0): nothing would ever finish or replace it. */
bool snapshot_rx_stale(const struct raft *r)
{
    const struct raft_snapshot_rx *rx = snapshot_rx(r);
    return rx != NULL && (rx->meta.index <= r->commit || rx->term != r->term);
}

bool snapshot_rx_dropped(const struct raft *r)
{
    return r->snap.store != NULL && r->snap.store->rx_dropped;
}

void snapshot_rx_drop_stale(struct raft *r)
{
    if (snapshot_rx_stale(r)) {
        rx_drop(r);
    }
}

/* Answers the leader about the transfer of snapshot `index` of `total` bytes. A progress
 * report waits for the chunks it counts to be stored (after_persist), which also paces the
 * transfer to the follower's disk: the report on an accepted chunk, and the one on a
 * duplicate, whose position counts every chunk accepted so far (the last may still be being
 * stored); "installed" waits for the snapshot's persist; rejections (a gap, a missed start,
 * a refused image) vouch for nothing and go at once. */
static void reply_to(struct raft *r,
                     raft_node to,
                     raft_index index,
                     uint64_t next_offset,
                     bool rejected,
                     bool done,
                     bool after_persist)
{
    struct raft_msg resp = raft_msg_new(r, RAFT_MSG_SNAPSHOT_RESP, to);
    resp.snapshot_resp.index = index;
    resp.snapshot_resp.next_offset = next_offset;
    resp.snapshot_resp.rejected = rejected;
    resp.snapshot_resp.done = done;
    raft_send(r, &resp, after_persist, false);
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
    rx->id = ++r->snap.store->rx_last_id;
    r->snap.store->rx = rx;
    return 0;
}

/* Paper §7 InstallSnapshot receiver: "6. If existing log entry has same index and term as
 * snapshot's last included entry, retain log entries following it and reply. 7. Discard the
 * entire log. 8. Reset state machine using snapshot contents". Either way the durable log is
 * rewritten: the snapshot goes out in a ready with the kept entries after it. */
static void install(struct raft *r)
{
    struct raft_snapshot_rx *rx = snapshot_rx(r);
    if (r->role == RAFT_CANDIDATE || r->role == RAFT_PRE_CANDIDATE) {
        /* The verdict on a transfer (raft_snapshot_received) may come after this node began
         * to campaign. Its tally is kept over the slots of its configuration, which the
         * snapshot may replace: the candidacy ends here (the vote stays, as in any step down
         * within a term) and the election timer starts again. */
        election_become_follower(r, r->term, RAFT_NODE_NONE);
    }
    log_install_snapshot(&r->log, rx->meta.index, rx->meta.term);
    r->snap.store->meta = rx->meta; /* allocated by rx_start */
    r->snap.index = rx->meta.index;
    r->snap.term = rx->meta.term;
    r->snap.store->bytes = rx->total_bytes;
    r->commit = r->snap.index;
    r->applied = r->snap.index;
    r->snap_to_hand = true;
    raft_config_refresh(r);
    /* "Installed" acknowledges durable state: it waits for the snapshot's persist. */
    reply_to(r, rx->from, rx->meta.index, rx->total_bytes, false, true, true);
    snapshot_rx_reset(r);
}

/* Accepts the chunk at the transfer's position: held for the next ready, where the caller
 * stores it. */
static int rx_accept(struct raft *r, const struct raft_msg *m)
{
    struct raft_snapshot_rx *rx = snapshot_rx(r);
    const struct raft_msg_snapshot *s = &m->snapshot;
    if (rx->chunk == NULL && s->chunk.len > 0) {
        rx->chunk = malloc(RAFT_SNAPSHOT_CHUNK_BYTES);
        if (rx->chunk == NULL) {
            return RR_ENOMEM;
        }
    }
    if (s->chunk.len > 0) {
        memcpy(rx->chunk, s->chunk.base, s->chunk.len);
    }
    rx->out = (struct raft_snapshot_chunk){.meta = &rx->meta,
                                           .transfer = rx->id,
                                           .offset = s->offset,
                                           .total_bytes = s->total_bytes,
                                           .data = rx->chunk,
                                           .len = s->chunk.len,
                                           .done = s->done};
    rx->pending = true;
    rx->received += s->chunk.len;
    if (!s->done) {
        reply_to(r, m->from, s->last_index, rx->received, false, false, true);
    }
    return 0;
}

int snapshot_handle(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_snapshot *s = &m->snapshot;
    if (s->last_index <= r->commit) {
        /* Older than what we have committed: nothing to install, but tell the leader. */
        reply_to(r, m->from, s->last_index, s->total_bytes, false, true, true);
        return 0;
    }
    if (r->snap_to_hand) {
        /* A snapshot was installed and waits to be handed out: a new transfer's first chunk
         * would go out in the same ready and, stored first, abandon the image being installed.
         * Ignored: the leader resends after a timeout. */
        return 0;
    }
    if (!rx_matches(r, m)) {
        if (s->offset != 0) {
            reply_to(r, m->from, s->last_index, 0, true, false, false); /* missed the start */
            return 0;
        }
        int rv = rx_start(r, m);
        if (rv != 0) {
            return rv;
        }
    }
    struct raft_snapshot_rx *rx = snapshot_rx(r);
    RR_ASSERT(rx != NULL); /* rx_matches or rx_start made it */
    if (rx->pending || rx->complete) {
        /* A chunk is still with us, or the caller is checking the whole image: the leader
         * resends after a timeout if the answer it waits for does not come. */
        return 0;
    }
    if (s->offset > rx->received) {
        /* A gap restarts the transfer. */
        reply_to(r, m->from, s->last_index, 0, true, false, false);
        rx_drop(r);
        return 0;
    }
    if (s->offset < rx->received) {
        /* A duplicate is answered with our position once what it counts is stored: the
         * caller may still be writing the chunk accepted last (handed out in an earlier
         * ready), and an answer must not vouch for bytes that are not stored yet. */
        reply_to(r, m->from, s->last_index, rx->received, false, false, true);
        return 0;
    }
    return rx_accept(r, m);
}

void snapshot_chunk_handed(struct raft *r)
{
    struct raft_snapshot_rx *rx = snapshot_rx(r);
    RR_ASSERT(rx != NULL && rx->pending);
    rx->pending = false;
    rx->complete = rx->out.done;
}

/* The verdict is matched by the transfer's id, not by the snapshot's index: a verdict the
 * caller gives late (it checked the image while a new leader began sending its own snapshot
 * at the same index, or the leader restarted the transfer) would otherwise install a transfer
 * the caller has not checked or stored, or drop a good one. */
int raft_snapshot_received(struct raft *r, uint64_t transfer, bool valid)
{
    RR_ASSERT(!r->handed.pending);
    struct raft_snapshot_rx *rx = snapshot_rx(r);
    if (rx == NULL || transfer == 0 || rx->id != transfer) {
        return RR_ENOTFOUND;
    }
    raft_index index = rx->meta.index;
    if (!valid) {
        /* Never installed: the leader starts the transfer over (its progress restarts from
         * offset 0 on a rejection). */
        reply_to(r, rx->from, index, 0, true, false, false);
        snapshot_rx_reset(r);
        return 0;
    }
    if (!rx->complete) {
        return RR_EINVAL;
    }
    if (index <= r->commit) {
        /* Overtaken meanwhile (the commit index moved past it): nothing to install. */
        reply_to(r, rx->from, index, rx->total_bytes, false, true, true);
        rx_drop(r);
        return 0;
    }
    install(r);
    return 0;
}
