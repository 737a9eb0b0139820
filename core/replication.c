/* Log replication (paper §5.3, §5.4): AppendEntries and heartbeats on both sides,
 * per-follower flow control, commitment, proposals, CheckQuorum and persist notices. */
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/raft_internal.h"

/* ---- appending to the local log ------------------------------------------------------ */

int replication_append_entry(struct raft *r, const struct raft_entry *e)
{
    struct raft_config c;
    if (e->type == RAFT_ENTRY_CONFIG) {
        int rv = raft_config_from_entry(e, &c);
        if (rv != 0) {
            return rv;
        }
    }
    int rv = log_append(&r->log, e->term, e->type, e->data.base, e->data.len);
    if (rv == 0 && e->type == RAFT_ENTRY_CONFIG) {
        /* Paper §6 / thesis §4.1: "a server always uses the latest configuration in its
         * log, regardless of whether the entry is committed". */
        RR_ASSERT(r->role != RAFT_CANDIDATE && r->role != RAFT_PRE_CANDIDATE); /* the tally */
        bool valid = raft_config_pack(&c, &r->config);
        RR_ASSERT(valid); /* raft_config_from_entry validated it */
        r->config_index = e->index;
    }
    return rv;
}

int replication_append_local(struct raft *r, uint8_t type, const uint8_t *data, uint32_t len)
{
    struct raft_entry e = {
        .term = r->term, .index = log_last_index(&r->log) + 1, .type = type, .data = {data, len}};
    return replication_append_entry(r, &e);
}

int raft_propose(struct raft *r, const uint8_t *data, uint32_t len, raft_index *index)
{
    RR_ASSERT(!r->handed.pending);
    if (r->role != RAFT_LEADER) {
        return RR_ENOTLEADER;
    }
    quiesce_wake(r);
    if (r->role != RAFT_LEADER) {
        return RR_ENOMEM; /* could not rebuild its progress set on waking (quiesce.c) */
    }
    if (r->transfer_target != RAFT_NODE_NONE) {
        return RR_ETRANSFER; /* thesis §3.10: "the prior leader stops accepting new requests" */
    }
    if (data == NULL && len > 0) {
        return RR_EINVAL;
    }
    if (len > RAFT_ENTRY_BYTES_MAX || r->uncommitted_bytes + len > RAFT_UNCOMMITTED_BYTES_MAX) {
        return RR_ETOOBIG;
    }
    int rv = replication_append_local(r, RAFT_ENTRY_NORMAL, data, len);
    if (rv != 0) {
        return rv;
    }
    uncommitted_set(r, r->uncommitted_bytes + len);
    /* Sent at the next raft_ready, so proposals between two drains share one message. */
    r->bcast_pending = true;
    if (index != NULL) {
        *index = log_last_index(&r->log);
    }
    return 0;
}

/* options.release_applied: the data of entries applied and durable here, and as leader
 * matched by every follower, is needed again only by a server that falls behind later (a
 * follower restarted, or one a new leader finds lagging): it is read back from the durable log
 * then. Terms stay, so the log's checks need no data. Runs as entries are applied and as
 * followers' matches advance. */
void replication_release(struct raft *r)
{
    if (!r->opt.release_applied) {
        return;
    }
    raft_index to = r->applied < r->log.persisted ? r->applied : r->log.persisted;
    if (r->role == RAFT_LEADER) {
        for (uint32_t i = 0; i < r->pr_count; i++) {
            to = r->prs[i].match < to ? r->prs[i].match : to;
        }
    }
    if (to > r->log.released) {
        (void)log_release_to(&r->log, to);
    }
}

/* ---- leader: sending ----------------------------------------------------------------- */

/* How many entries from `next` fit one message (at least one if any exist). */
static uint32_t append_batch(const struct raft *r, raft_index next, uint32_t *bytes)
{
    raft_index last = log_last_index(&r->log);
    uint32_t n = 0;
    uint64_t total = 0;
    while (next + n <= last && n < r->opt.append_entries_max) {
        uint32_t len = log_entry(&r->log, next + n)->data.len;
        if (n > 0 && total + len > r->opt.append_bytes_max) {
            break;
        }
        total += len;
        n++;
    }
    *bytes = (uint32_t)total;
    return n;
}

/* Sends one AppendEntries to p if its state allows; returns true if one was queued. */
static bool send_append_once(struct raft *r, struct raft_progress *p, bool allow_empty)
{
    if (progress_is_paused(p)) {
        return false;
    }
    raft_index prev = p->next - 1;
    raft_term prev_term = log_term(&r->log, prev);
    if (prev < r->log.prev_index || (prev > 0 && prev_term == 0)) {
        /* Paper §7: "the leader must occasionally send snapshots to followers that lag
         * behind" — the entries p needs were compacted away. */
        snapshot_send(r, p);
        return false;
    }
    if (released_in_snapshot(r, p->next)) {
        snapshot_send(r, p);
        return false;
    }
    uint32_t bytes = 0;
    uint32_t n = append_batch(r, p->next, &bytes);
    if (n == 0 && !allow_empty) {
        return false;
    }
    struct raft_msg m = raft_msg_new(r, RAFT_MSG_APPEND, p->id);
    m.append.prev_index = prev;
    m.append.prev_term = prev_term;
    m.append.commit = r->commit;
    m.append.entry_count = n; /* entries are resolved by raft_ready */
    if (!raft_send(r, &m, false, false)) {
        return false;
    }
    /* The follower commits up to min(commit, its last new entry) (paper Figure 2). */
    raft_index told = prev + n < r->commit ? prev + n : r->commit;
    p->commit_told = told > p->commit_told ? told : p->commit_told;
    p->entries_sent = p->entries_sent || n > 0;
    if (n > 0 || p->state == RAFT_PROGRESS_PROBE) {
        progress_sent_entries(p, prev + n, bytes);
    }
    return n > 0;
}

void replication_send_append(struct raft *r, struct raft_progress *p, bool allow_empty)
{
    /* Pipelining (thesis §10.2.2): in REPLICATE keep sending until the window is full. */
    bool sent = send_append_once(r, p, allow_empty);
    while (sent && p->state == RAFT_PROGRESS_REPLICATE && p->next <= log_last_index(&r->log)) {
        sent = send_append_once(r, p, false);
    }
}

void replication_bcast_append(struct raft *r, bool allow_empty)
{
    RR_ASSERT(r->role == RAFT_LEADER);
    for (uint32_t i = 0; i < r->pr_count; i++) {
        replication_send_append(r, &r->prs[i], allow_empty);
    }
}

/* Heartbeats carry the commit index only up to what the follower is known to hold, so a
 * follower never commits an entry it may not have (etcd sends min(commit, match) too). */
static void send_heartbeat(struct raft *r, struct raft_progress *p, uint64_t ctx)
{
    struct raft_msg m = raft_msg_new(r, RAFT_MSG_HEARTBEAT, p->id);
    m.heartbeat.commit = r->commit < p->match ? r->commit : p->match;
    m.heartbeat.read_ctx = ctx;
    if (raft_send(r, &m, false, false) && m.heartbeat.commit > p->commit_told) {
        p->commit_told = m.heartbeat.commit;
    }
}

void replication_bcast_heartbeat(struct raft *r)
{
    uint64_t ctx = read_index_heartbeat_ctx(r);
    for (uint32_t i = 0; i < r->pr_count; i++) {
        send_heartbeat(r, &r->prs[i], ctx);
    }
}

/* The heartbeat period's heartbeats: only to the followers that were sent no entries during
 * the period that ends. An append from the leader resets a follower's election timer as a
 * heartbeat does (step_accept_leader), carries the commit index, and is answered (so
 * CheckQuorum hears the follower), so a follower receiving entries needs no heartbeat as
 * well; with hundreds of busy groups the heartbeats and their responses had been a third or
 * more of the messages between nodes. A heartbeat still goes to every follower while a
 * ReadIndex round waits for its acknowledgements (they ride on heartbeats only), and to a
 * follower not in REPLICATE (a probe is retried on its heartbeat response) or whose window
 * is full (no append can carry a new commit index to it). */
static void heartbeat_period(struct raft *r)
{
    uint64_t ctx = read_index_heartbeat_ctx(r);
    for (uint32_t i = 0; i < r->pr_count; i++) {
        struct raft_progress *p = &r->prs[i];
        bool fed = p->entries_sent && p->state == RAFT_PROGRESS_REPLICATE && !progress_is_paused(p);
        p->entries_sent = false;
        if (ctx != 0 || !fed) {
            send_heartbeat(r, p, ctx);
        }
    }
}

/* ---- leader: commitment -------------------------------------------------------------- */

static uint64_t match_of(void *ctx, raft_node id)
{
    struct raft *r = ctx;
    if (id == r->opt.id) {
        /* Thesis §10.2.1: the leader counts itself only for entries durable on its disk. */
        return r->log.persisted;
    }
    const struct raft_progress *p = raft_progress_of(r, id);
    return p != NULL ? p->match : 0;
}

static void uncommitted_release(struct raft *r, raft_index from, raft_index to)
{
    for (raft_index i = from; i <= to; i++) {
        const struct raft_entry *e = log_entry(&r->log, i);
        /* Only raft_propose's entries were counted: not configurations. */
        if (e != NULL && e->term == r->term && e->type == RAFT_ENTRY_NORMAL) {
            uint32_t len = e->data.len;
            uncommitted_set(r, r->uncommitted_bytes > len ? r->uncommitted_bytes - len : 0);
        }
    }
}

/* Paper §5.4.2 / Figure 8: "Raft never commits log entries from previous terms by counting
 * replicas. Only log entries from the leader's current term are committed by counting
 * replicas; once an entry from the current term has been committed in this way, then all
 * prior entries are committed indirectly because of the Log Matching Property." */
void replication_maybe_commit(struct raft *r)
{
    if (r->role != RAFT_LEADER) {
        return;
    }
    raft_index index = (raft_index)quorum_value(&r->config, match_of, r);
    if (index <= r->commit || index > log_last_index(&r->log)) {
        return;
    }
    if (log_term(&r->log, index) != r->term) {
        return;
    }
    uncommitted_release(r, r->commit + 1, index);
    r->commit = index;
    read_index_on_commit(r);
    /* Followers learn it from the next append; one not sent an append by the next tick gets
     * an empty one then (commit_tick). */
    r->commit_bcast = true;
}

void replication_flush(struct raft *r)
{
    if (r->role == RAFT_LEADER && r->bcast_pending) {
        replication_bcast_append(r, false);
    }
    r->bcast_pending = false;
}

/* ---- leader: responses --------------------------------------------------------------- */

static void
handle_append_reject(struct raft *r, struct raft_progress *p, const struct raft_msg_append_resp *a)
{
    /* Fast back-tracking (paper §5.3 end; etcd's findConflictByTerm): skip every entry of
     * the leader's log whose term is above the follower's term at the hint. */
    raft_index probe = a->hint_index;
    if (a->hint_term > 0) {
        probe = log_find_conflict_by_term(&r->log, a->hint_index, a->hint_term);
    }
    if (!progress_maybe_decr_to(p, a->index, probe)) {
        return; /* stale rejection */
    }
    if (p->state == RAFT_PROGRESS_REPLICATE) {
        progress_become_probe(p);
    }
    replication_send_append(r, p, true);
}

void replication_handle_append_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft_progress *p = raft_progress_of(r, m->from);
    if (r->role != RAFT_LEADER || p == NULL) {
        return;
    }
    const struct raft_msg_append_resp *a = &m->append_resp;
    p->recent_active = true;
    if (a->rejected) {
        handle_append_reject(r, p, a);
        return;
    }
    if (a->index > log_last_index(&r->log)) {
        return; /* acknowledges entries we never sent: a faulty peer */
    }
    if (!progress_maybe_update(p, a->index)) {
        return; /* stale or duplicate */
    }
    switch ((enum raft_progress_state)p->state) {
    case RAFT_PROGRESS_PROBE:
        progress_become_replicate(p);
        break;
    case RAFT_PROGRESS_REPLICATE:
        inflights_free_le(&p->inflights, a->index);
        break;
    case RAFT_PROGRESS_SNAPSHOT:
        if (p->match >= p->pending_snapshot) {
            progress_become_probe(p);
        }
        break;
    }
    replication_maybe_commit(r);
    replication_send_append(r, p, false);
    election_transfer_progress(r, p);
    replication_release(r);
}

void replication_handle_heartbeat_resp(struct raft *r, const struct raft_msg *m)
{
    struct raft_progress *p = raft_progress_of(r, m->from);
    if (r->role != RAFT_LEADER || p == NULL) {
        return;
    }
    p->recent_active = true;
    /* A live follower: let a paused probe retry (its append or the answer may be lost). */
    p->probe_sent = false;
    if (p->match < log_last_index(&r->log)) {
        replication_send_append(r, p, p->state == RAFT_PROGRESS_PROBE);
    }
    read_index_on_ack(r, p, m->heartbeat_resp.read_ctx);
}

/* ---- leader: time -------------------------------------------------------------------- */

static uint64_t active_of(void *ctx, raft_node id)
{
    struct raft *r = ctx;
    const struct raft_progress *p = raft_progress_of(r, id);
    return id == r->opt.id || (p != NULL && p->recent_active) ? 1 : 0;
}

/* Thesis §6.2: "a leader steps down if an election timeout elapses without a successful
 * round of heartbeats to a majority of its cluster". Returns false if it stepped down. */
static bool check_quorum(struct raft *r)
{
    bool active = quorum_value(&r->config, active_of, r) >= 1;
    for (uint32_t i = 0; i < r->pr_count; i++) {
        r->prs[i].recent_active = false;
    }
    if (r->opt.check_quorum && !active) {
        election_become_follower(r, r->term, RAFT_NODE_NONE);
        return false;
    }
    return true;
}

/* Appends lost in REPLICATE are not retransmitted by the window; if nothing is
 * acknowledged for an election timeout, fall back to probing (which heartbeats retry). */
static void stall_tick(struct raft *r, struct raft_progress *p)
{
    if (p->state != RAFT_PROGRESS_REPLICATE || p->inflights.count == 0) {
        p->stall_ticks = 0;
        return;
    }
    if (++p->stall_ticks >= r->opt.election_ticks) {
        progress_become_probe(p);
        replication_send_append(r, p, true);
    }
}

/* Tells the commit index to each follower that no append or heartbeat told it since it
 * advanced, with an empty append. Waiting for the tick instead of sending one at once saves,
 * under load, a message and its answer per follower and per commit: the next append, one
 * loop iteration later, carries the commit anyway. The leader's own replies do not wait
 * (it applies at commit); a follower applies at most a tick later. A follower whose append
 * is paused is told when it is sent the next one; until then commit_bcast stays set. */
static void commit_tick(struct raft *r)
{
    if (!r->commit_bcast) {
        return;
    }
    bool untold = false;
    for (uint32_t i = 0; i < r->pr_count; i++) {
        struct raft_progress *p = &r->prs[i];
        if (p->commit_told < r->commit) {
            replication_send_append(r, p, true);
            untold = untold || p->commit_told < r->commit;
        }
    }
    r->commit_bcast = untold;
}

void replication_tick(struct raft *r)
{
    RR_ASSERT(r->role == RAFT_LEADER);
    r->heartbeat_elapsed++;
    r->election_elapsed++;
    if (r->election_elapsed >= r->opt.election_ticks) {
        r->election_elapsed = 0;
        if (!check_quorum(r)) {
            return;
        }
    }
    election_transfer_tick(r);
    if (quiesce_tick(r)) {
        return; /* the quiescing heartbeats are out; nothing else is in progress */
    }
    if (r->heartbeat_elapsed >= r->opt.heartbeat_ticks) {
        r->heartbeat_elapsed = 0;
        heartbeat_period(r);
    }
    commit_tick(r);
    for (uint32_t i = 0; i < r->pr_count; i++) {
        snapshot_tick(r, &r->prs[i]);
        stall_tick(r, &r->prs[i]);
    }
}

/* ---- follower ------------------------------------------------------------------------ */

static bool
entry_valid(const struct raft_entry *e, raft_index index, raft_term term_min, raft_term term_max)
{
    if (e->index != index || e->term < term_min || e->term > term_max || e->term == 0) {
        return false;
    }
    if (e->data.len > RAFT_ENTRY_BYTES_MAX || (e->data.base == NULL && e->data.len > 0)) {
        return false;
    }
    return e->type == RAFT_ENTRY_NORMAL || e->type == RAFT_ENTRY_CONFIG;
}

/* A leader of our term or later holds every entry we know committed (Leader Completeness,
 * paper §5.4): one that contradicts them is faulty. A stale leader may, and is merely
 * rejected for its term. Checked before anything changes. */
static bool append_contradicts_commit(const struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_append *a = &m->append;
    if (m->term < r->term) {
        return false;
    }
    if (a->prev_index <= r->commit && a->prev_index >= r->log.prev_index &&
        log_term(&r->log, a->prev_index) != a->prev_term) {
        return true;
    }
    for (uint32_t i = 0; i < a->entry_count; i++) {
        const struct raft_entry *e = &a->entries[i];
        if (e->index > r->commit) {
            break;
        }
        if (e->index > r->log.prev_index && log_term(&r->log, e->index) != e->term) {
            return true;
        }
    }
    return false;
}

int replication_validate_append(const struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_append *a = &m->append;
    if (a->prev_term > m->term || (a->prev_index == 0) != (a->prev_term == 0)) {
        return RR_EINVAL;
    }
    if (a->entry_count > RAFT_APPEND_ENTRIES_MAX || (a->entry_count > 0 && a->entries == NULL)) {
        return RR_EINVAL;
    }
    if (a->prev_index > RAFT_INDEX_MAX - a->entry_count) {
        return RR_EINVAL; /* the entries' indexes would run past the range (or wrap) */
    }
    raft_term term = a->prev_term;
    for (uint32_t i = 0; i < a->entry_count; i++) {
        const struct raft_entry *e = &a->entries[i];
        if (!entry_valid(e, a->prev_index + 1 + i, term, m->term)) {
            return RR_EINVAL;
        }
        struct raft_config c;
        if (e->type == RAFT_ENTRY_CONFIG && raft_config_from_entry(e, &c) != 0) {
            return RR_ECORRUPT;
        }
        term = e->term;
    }
    return append_contradicts_commit(r, m) ? RR_ECORRUPT : 0;
}

static void reply_append(struct raft *r, const struct raft_msg *m, raft_index index)
{
    struct raft_msg resp = raft_msg_new(r, RAFT_MSG_APPEND_RESP, m->from);
    resp.append_resp.index = index;
    /* It acknowledges entries: it leaves once they (and our term) are durable. */
    raft_send(r, &resp, true, false);
}

static void reject_append(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_append *a = &m->append;
    raft_index last = log_last_index(&r->log);
    raft_index hint = log_find_conflict_by_term(
        &r->log, a->prev_index < last ? a->prev_index : last, a->prev_term);
    struct raft_msg resp = raft_msg_new(r, RAFT_MSG_APPEND_RESP, m->from);
    resp.append_resp.rejected = true;
    resp.append_resp.index = a->prev_index;
    resp.append_resp.hint_index = hint;
    resp.append_resp.hint_term = log_term(&r->log, hint);
    raft_send(r, &resp, true, false);
}

/* The first entry of m that is not already in our log, as an offset into m's entries
 * (entry_count if none). Sets *conflict if our log holds a different entry at that index,
 * which is never a committed one (validated). */
static void find_new_entries(const struct raft *r,
                             const struct raft_msg_append *a,
                             uint32_t *first,
                             bool *conflict)
{
    raft_index last = log_last_index(&r->log);
    *conflict = false;
    for (uint32_t i = 0; i < a->entry_count; i++) {
        const struct raft_entry *e = &a->entries[i];
        if (e->index > last) {
            *first = i;
            return;
        }
        if (log_term(&r->log, e->index) != e->term) {
            RR_ASSERT(e->index > r->commit);
            *first = i;
            *conflict = true;
            return;
        }
    }
    *first = a->entry_count;
}

static bool log_has_config_from(const struct raft *r, raft_index from)
{
    for (raft_index i = from; i <= log_last_index(&r->log); i++) {
        if (log_entry(&r->log, i)->type == RAFT_ENTRY_CONFIG) {
            return true;
        }
    }
    return false;
}

/* Paper Figure 2 AppendEntries, receiver: "3. If an existing entry conflicts with a new one
 * (same index but different terms), delete the existing entry and all that follow it.
 * 4. Append any new entries not already in the log." Only an actual conflict truncates: a
 * duplicate or reordered message must never remove entries we acknowledged. */
static int append_new_entries(struct raft *r, const struct raft_msg_append *a)
{
    uint32_t first;
    bool conflict;
    find_new_entries(r, a, &first, &conflict);
    if (conflict) {
        raft_index from = a->entries[first].index;
        bool config_removed = log_has_config_from(r, from);
        log_truncate_from(&r->log, from);
        if (config_removed) {
            raft_config_refresh(r); /* back to the configuration before the removed entry */
        }
    }
    int rv = log_reserve(&r->log, a->entry_count - first);
    for (uint32_t i = first; rv == 0 && i < a->entry_count; i++) {
        rv = replication_append_entry(r, &a->entries[i]);
    }
    return rv;
}

int replication_handle_append(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_append *a = &m->append;
    if (a->prev_index < r->commit) {
        /* Everything up to our commit index matches any legitimate leader's log. */
        reply_append(r, m, r->commit);
        return 0;
    }
    /* Paper Figure 2: "2. Reply false if log doesn't contain an entry at prevLogIndex
     * whose term matches prevLogTerm". */
    if (a->prev_index > log_last_index(&r->log) ||
        log_term(&r->log, a->prev_index) != a->prev_term) {
        reject_append(r, m);
        return 0;
    }
    int rv = append_new_entries(r, a);
    if (rv != 0) {
        return rv;
    }
    /* Figure 2: "5. If leaderCommit > commitIndex, set commitIndex = min(leaderCommit,
     * index of last new entry)". */
    raft_index last_new = a->prev_index + a->entry_count;
    raft_index commit = a->commit < last_new ? a->commit : last_new;
    if (commit > r->commit) {
        r->commit = commit;
    }
    reply_append(r, m, last_new);
    return 0;
}

void replication_handle_heartbeat(struct raft *r, const struct raft_msg *m)
{
    raft_index last = log_last_index(&r->log);
    raft_index commit = m->heartbeat.commit < last ? m->heartbeat.commit : last;
    if (commit > r->commit) {
        r->commit = commit;
    }
    struct raft_msg resp = raft_msg_new(r, RAFT_MSG_HEARTBEAT_RESP, m->from);
    resp.heartbeat_resp.read_ctx = m->heartbeat.read_ctx;
    raft_send(r, &resp, false, false); /* acknowledges nothing durable */
}

/* ---- persistence --------------------------------------------------------------------- */

void replication_handle_persisted(struct raft *r, const struct raft_msg *m)
{
    const struct raft_msg_persisted *p = &m->persisted;
    if (log_persisted_to(&r->log, p->index, p->term, p->seq)) {
        replication_maybe_commit(r);
    }
}
