/* One Raft group: the entry points of core/raft.h and the glue between its parts.
 *
 * Guide to the module (paper §5, §7; thesis §3, §6.4, §9.6):
 *   raft.c          init/fini, raft_step (input validation, term rules §5.1, dispatch),
 *                   raft_tick, ready/advance, status and queries.
 *   election.c      roles, randomized timeouts, PreVote, RequestVote, leader leases.
 *   replication.c   AppendEntries and heartbeats, progress, commitment, proposals,
 *                   CheckQuorum, persist notices.
 *   read_index.c    ReadIndex rounds carried by heartbeats.
 *   snapshot.c      taking snapshots, sending and receiving InstallSnapshot chunks.
 *   log.c           the in-memory log; progress.c the per-follower window and quorums.
 *
 * Rules that cut across files:
 * - Input from peers is validated in full before any state changes; bad input returns an
 *   error and never trips an assertion. Assertions guard our own invariants.
 * - Messages are queued in r->msgs / r->after and handed out by raft_ready. An
 *   AppendEntries or InstallSnapshot message does not point into the log while queued
 *   (the log may grow or be compacted); raft_ready resolves it and drops it if the log no
 *   longer holds what it needs or this node is no longer that term's leader.
 * - Between raft_ready and raft_advance the group must not be mutated: the ready points
 *   into the log and the queues. This is asserted.
 * - Persistence is acknowledged by the RAFT_MSG_PERSISTED notice the ready adds to
 *   msgs_after_persist; until then a leader does not count itself for those entries and
 *   nobody applies them. Responses that acknowledge durable state (APPEND_RESP,
 *   VOTE_RESP, a finished SNAPSHOT_RESP) also wait for the persist.
 * - A ready carrying a snapshot replaces the whole durable log: the entries kept after the
 *   snapshot index are handed out again in the same ready.
 * - A leader that steps down fails its unconfirmed ReadIndex requests (read_failures in
 *   the next ready); the caller's clients retry elsewhere. Confirmed ones are still
 *   released once applied. */
#include "core/raft.h"

#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/codec.h"
#include "core/raft_internal.h"

void raft_options_default(struct raft_options *o)
{
    memset(o, 0, sizeof(*o));
    o->election_ticks = 10;
    o->heartbeat_ticks = 1;
    o->pre_vote = true;
    o->check_quorum = true;
    o->inflight_count_max = RAFT_INFLIGHT_COUNT_MAX;
    o->inflight_bytes_max = RAFT_INFLIGHT_BYTES_MAX;
    o->append_entries_max = RAFT_APPEND_ENTRIES_MAX;
    o->append_bytes_max = RAFT_APPEND_BYTES_MAX;
}

size_t raft_sizeof(void)
{
    return sizeof(struct raft);
}

static bool options_valid(const struct raft_options *o)
{
    return o->id != RAFT_NODE_NONE && o->id <= RAFT_NODE_ID_MAX && o->heartbeat_ticks >= 1 &&
           o->election_ticks > o->heartbeat_ticks && o->election_ticks <= (1u << 30) &&
           o->inflight_count_max >= 1 && o->inflight_count_max <= RAFT_INFLIGHT_COUNT_MAX &&
           o->inflight_bytes_max >= 1 && o->inflight_bytes_max <= RAFT_INFLIGHT_BYTES_MAX &&
           o->append_entries_max >= 1 && o->append_entries_max <= RAFT_APPEND_ENTRIES_MAX &&
           o->append_bytes_max >= 1 && o->append_bytes_max <= RAFT_APPEND_BYTES_MAX;
}

int raft_config_from_entry(const struct raft_entry *e, struct raft_config *c)
{
    RR_ASSERT(e->type == RAFT_ENTRY_CONFIG);
    memset(c, 0, sizeof(*c));
    if (codec_config_decode(e->data.base, e->data.len, c) != 0 || !raft_config_valid(c)) {
        return RR_ECORRUPT;
    }
    return 0;
}

bool raft_config_refresh(struct raft *r)
{
    /* The tally's bits name slots of the configuration (struct raft, votes_granted). */
    RR_ASSERT(r->role != RAFT_CANDIDATE && r->role != RAFT_PRE_CANDIDATE);
    struct raft_config c;
    r->config_index = membership_config_at(r, log_last_index(&r->log), &c);
    return raft_config_pack(&c, &r->config);
}

struct raft_progress *raft_progress_of(struct raft *r, raft_node id)
{
    for (uint32_t i = 0; i < r->pr_count; i++) {
        if (r->prs[i].id == id) {
            return &r->prs[i];
        }
    }
    return NULL;
}

/* ---- restore ------------------------------------------------------------------------- */

static int init_snapshot(struct raft *r, const struct raft_restore *rs)
{
    const struct raft_snapshot_meta *s = &rs->snapshot;
    if (s->index == 0) {
        return 0;
    }
    if (s->term == 0 || !raft_config_valid(&s->config) ||
        rs->snapshot_bytes > RAFT_SNAPSHOT_BYTES_MAX) {
        return RR_EINVAL;
    }
    if (snapshot_store_reserve(r) != 0) {
        return RR_ENOMEM;
    }
    r->snap.store->meta = *s;
    r->snap.store->bytes = rs->snapshot_bytes;
    r->snap.index = s->index;
    r->snap.term = s->term;
    log_init(&r->log, s->index, s->term);
    return 0;
}

static bool restored_entry_valid(const struct raft *r, const struct raft_entry *e)
{
    struct raft_config c;
    if (e->index != log_last_index(&r->log) + 1 || e->term < log_last_term(&r->log) ||
        e->term == 0 || e->data.len > RAFT_ENTRY_BYTES_MAX ||
        (e->data.base == NULL && e->data.len > 0)) {
        return false;
    }
    if (e->type == RAFT_ENTRY_CONFIG) {
        return raft_config_from_entry(e, &c) == 0;
    }
    return e->type == RAFT_ENTRY_NORMAL;
}

static int init_entries(struct raft *r, const struct raft_restore *rs)
{
    if (rs->entry_count > 0 && rs->entries == NULL) {
        return RR_EINVAL;
    }
    int rv = log_reserve(&r->log, rs->entry_count);
    for (uint32_t i = 0; rv == 0 && i < rs->entry_count; i++) {
        const struct raft_entry *e = &rs->entries[i];
        if (!restored_entry_valid(r, e)) {
            return RR_EINVAL;
        }
        rv = log_append(&r->log, e->term, e->type, e->data.base, e->data.len);
    }
    /* Restored entries are durable by definition. */
    r->log.handed = log_last_index(&r->log);
    r->log.persisted = r->log.handed;
    return rv;
}

/* A WAL writes a batch's entries before its hard state, so a write torn by a crash can
 * leave entries of a term the durable hard state never reached. Nothing of that batch was
 * acknowledged (acks wait for the whole batch), so the term is raised to the log's; no
 * vote was cast in it, since a vote leaves only once durable. A commit index past the
 * durable log (another write order, torn) may refer to entries that were lost while older
 * conflicting ones survived, so it is dropped: commit is a hint the leader gives again. */
static int init_hard_state(struct raft *r, const struct raft_restore *rs)
{
    const struct raft_hard_state *hs = &rs->hard_state;
    if (hs->vote > RAFT_NODE_ID_MAX || (hs->term == 0 && hs->vote != RAFT_NODE_NONE)) {
        return RR_EINVAL;
    }
    r->term = hs->term;
    r->vote = hs->vote;
    r->commit = hs->commit > r->snap.index ? hs->commit : r->snap.index;
    r->hs_term_handed = r->term;
    r->hs_vote_handed = r->vote;
    r->hs_commit_handed = r->commit;
    if (log_last_term(&r->log) > r->term) {
        r->term = log_last_term(&r->log);
        r->vote = RAFT_NODE_NONE;
    }
    if (r->commit > log_last_index(&r->log)) {
        r->commit = r->snap.index;
    }
    r->applied = r->snap.index;
    return 0;
}

static int init_restore(struct raft *r, const struct raft_restore *rs)
{
    int rv = init_snapshot(r, rs);
    if (rv == 0) {
        rv = init_entries(r, rs);
    }
    if (rv == 0) {
        rv = init_hard_state(r, rs);
    }
    return rv;
}

int raft_init(struct raft *r,
              const struct raft_options *o,
              const struct raft_config *config,
              const struct raft_restore *restore)
{
    if (o == NULL || !options_valid(o)) {
        return RR_EINVAL;
    }
    memset(r, 0, sizeof(*r));
    r->opt = (struct raft_opts){
        .group = o->group,
        .election_ticks = o->election_ticks,
        .heartbeat_ticks = o->heartbeat_ticks,
        .inflight_bytes_max = o->inflight_bytes_max,
        .append_bytes_max = o->append_bytes_max,
        .id = (uint16_t)o->id,
        .append_entries_max = (uint16_t)o->append_entries_max,
        .inflight_count_max = (uint8_t)o->inflight_count_max,
        .pre_vote = o->pre_vote,
        .check_quorum = o->check_quorum,
        .quiesce = o->quiesce,
        .release_applied = o->release_applied,
        .uncommitted_total = o->uncommitted_total,
    };
    r->prng = o->seed;
    log_init(&r->log, 0, 0);
    if (config != NULL) {
        (void)raft_config_pack(config, &r->bootstrap); /* an invalid one is refused below if
                                                          it is the one in force */
    }
    int rv = restore != NULL ? init_restore(r, restore) : 0;
    if (rv == 0 && !raft_config_refresh(r)) {
        rv = RR_EINVAL;
    }
    /* The log's first slots are allocated now, with the group, rather than by its first
     * appends: a node creates its groups one after the other, so their arrays lie together,
     * whereas the first appends come as its groups all elect at once, among thousands of
     * short-lived messages, and long-lived arrays allocated then pin the heap's pages after
     * the messages are freed (docs/multi.md). An idle group holds its leaders' no-ops. */
    if (rv == 0 && r->log.count < RAFT_LOG_SLOTS_INITIAL) {
        rv = log_reserve(&r->log, RAFT_LOG_SLOTS_INITIAL - r->log.count);
    }
    /* A fresh node outside its bootstrap configuration is a server being added (thesis
     * §4.2.1): it learns the configuration from the leader and never campaigns before a
     * configuration in its log makes it a voter. */
    if (rv != 0) {
        raft_fini(r);
        return rv;
    }
    r->role = RAFT_FOLLOWER;
    election_reset_timer(r);
    /* Role events report changes from here on; the caller reads the start with raft_status. */
    r->role_handed = r->role;
    r->role_term_handed = r->term;
    r->leader_handed = r->leader;
    return 0;
}

void raft_fini(struct raft *r)
{
    uncommitted_set(r, 0); /* the shared total no longer counts this group */
    log_free(&r->log);
    membership_progress_drop(r);
    snapshot_store_free(r);
    read_index_free(r);
    free(r->msgs.msgs);
    free(r->after.msgs);
    r->msgs = (struct raft_msg_queue){0};
    r->after = (struct raft_msg_queue){0};
}

/* ---- messages out -------------------------------------------------------------------- */

struct raft_msg raft_msg_new(const struct raft *r, uint8_t type, raft_node to)
{
    struct raft_msg m;
    memset(&m, 0, sizeof(m));
    m.type = type;
    m.group = r->opt.group;
    m.from = r->opt.id;
    m.to = to;
    m.term = r->term;
    return m;
}

bool raft_send(struct raft *r, const struct raft_msg *m, bool after_persist, bool reserved)
{
    struct raft_msg_queue *q = after_persist ? &r->after : &r->msgs;
    uint32_t limit = RAFT_READY_MSGS_MAX + (reserved ? RAFT_MSG_RESERVE : 0);
    if (q->count >= limit) {
        return false; /* the network may drop messages; Raft retries */
    }
    if (q->count == q->cap) {
        uint32_t cap = q->cap == 0 ? RAFT_MSG_QUEUE_KEEP : q->cap * 2;
        if (cap > RAFT_READY_MSGS_MAX + RAFT_MSG_RESERVE) {
            cap = RAFT_READY_MSGS_MAX + RAFT_MSG_RESERVE;
        }
        struct raft_msg *msgs = realloc(q->msgs, cap * sizeof(*msgs));
        if (msgs == NULL) {
            return false;
        }
        q->msgs = msgs;
        q->cap = cap;
    }
    q->msgs[q->count++] = *m;
    return true;
}

/* ---- step ---------------------------------------------------------------------------- */

static int validate_vote(const struct raft_msg *m)
{
    const struct raft_msg_vote *v = &m->vote;
    if (v->last_log_term > m->term || (v->last_log_index == 0) != (v->last_log_term == 0) ||
        v->last_log_index > RAFT_INDEX_MAX) {
        return RR_EINVAL;
    }
    return 0;
}

static int validate_by_type(const struct raft *r, const struct raft_msg *m)
{
    switch ((enum raft_msg_type)m->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        return validate_vote(m);
    case RAFT_MSG_APPEND:
        return replication_validate_append(r, m);
    case RAFT_MSG_SNAPSHOT:
        return snapshot_validate(r, m);
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
    case RAFT_MSG_APPEND_RESP:
    case RAFT_MSG_HEARTBEAT:
    case RAFT_MSG_HEARTBEAT_RESP:
    case RAFT_MSG_SNAPSHOT_RESP:
    case RAFT_MSG_TIMEOUT_NOW:
    case RAFT_MSG_PERSISTED:
        return 0;
    }
    return RR_EINVAL;
}

/* Checks what can be checked without state: type, addressing, membership, shape. */
static int step_validate(const struct raft *r, const struct raft_msg *m)
{
    if (m == NULL || m->type < RAFT_MSG_VOTE || m->type > RAFT_MSG_TYPE_MAX) {
        return RR_EINVAL;
    }
    if (m->group != r->opt.group || m->to != r->opt.id) {
        return RR_EINVAL;
    }
    if (m->type == RAFT_MSG_PERSISTED) {
        return m->from == r->opt.id ? 0 : RR_EINVAL;
    }
    bool self_vote = m->type == RAFT_MSG_VOTE_RESP && m->from == r->opt.id;
    if (m->term == 0 || m->term > RAFT_TERM_MAX || (m->from == r->opt.id && !self_vote)) {
        return RR_EINVAL;
    }
    /* Membership is not checked: a server being added hears from a leader its own
     * configuration does not list yet, and a removed one may still talk. Each handler
     * ignores what a non-member has no say in (votes, acknowledgements). */
    if (m->from == RAFT_NODE_NONE || m->from > RAFT_NODE_ID_MAX) {
        return RR_EINVAL;
    }
    return validate_by_type(r, m);
}

static bool msg_from_leader(uint8_t type)
{
    return type == RAFT_MSG_APPEND || type == RAFT_MSG_HEARTBEAT || type == RAFT_MSG_SNAPSHOT;
}

/* A message from a term behind ours. Paper §5.1: "If a server receives a request with a
 * stale term number, it rejects the request." A stale leader is answered so that it learns
 * the newer term and steps down (it may be cut off from everyone else, etcd #5451); a stale
 * pre-candidate is answered so that it stops waiting. A stale candidate is answered too
 * (Figure 2 RequestVote: "Reply false if term < currentTerm", with currentTerm): once
 * configurations differ, the servers raising our term may be ones the candidate never
 * hears from (a server with a stale configuration campaigning among its own voters), and
 * a candidate that never learns the term would campaign below it forever. Everything else
 * is dropped. */
static void step_stale_term(struct raft *r, const struct raft_msg *m)
{
    if (msg_from_leader(m->type)) {
        struct raft_msg resp = raft_msg_new(r, RAFT_MSG_APPEND_RESP, m->from);
        resp.append_resp.rejected = true;
        resp.append_resp.index = m->type == RAFT_MSG_APPEND ? m->append.prev_index : 0;
        raft_send(r, &resp, false, false);
    } else if (m->type == RAFT_MSG_PRE_VOTE || m->type == RAFT_MSG_VOTE) {
        uint8_t type = m->type == RAFT_MSG_VOTE ? RAFT_MSG_VOTE_RESP : RAFT_MSG_PRE_VOTE_RESP;
        struct raft_msg resp = raft_msg_new(r, type, m->from);
        resp.vote_resp.granted = false; /* carries our term: nothing durable is vouched for */
        raft_send(r, &resp, false, false);
    }
}

/* Term rules (paper §5.1): "If RPC request or response contains term T > currentTerm: set
 * currentTerm = T, convert to follower." Returns false if the message is fully handled.
 * PreVote (thesis §9.6) changes nothing until a real election: a pre-vote request carries
 * the term the sender would campaign in and must not raise ours, nor may a granted
 * pre-vote response. Leader lease (thesis §4.2.3): a node that heard from a leader within
 * the minimum election timeout disregards (and does not adopt the term of) vote requests,
 * unless the candidate was told to campaign by the leader itself. */
static bool step_term(struct raft *r, const struct raft_msg *m)
{
    if (m->term < r->term) {
        step_stale_term(r, m);
        return false;
    }
    if (m->term == r->term) {
        return true;
    }
    bool vote_req = m->type == RAFT_MSG_VOTE || m->type == RAFT_MSG_PRE_VOTE;
    if (vote_req && !m->vote.transfer && election_in_lease(r)) {
        return false;
    }
    if (m->type == RAFT_MSG_PRE_VOTE ||
        (m->type == RAFT_MSG_PRE_VOTE_RESP && m->vote_resp.granted)) {
        return true;
    }
    /* Figure 2 restarts a follower's election timer only when it hears from the current
     * leader or grants a vote. A vote request for a later term that will be refused (the
     * candidate's log is behind ours) leaves the timer running: restarting it would let
     * candidates that cannot win (a stale voter, a server demoted by a pending change) keep
     * postponing the candidacy of the servers that can (etcd-io/raft#167). */
    bool refused = m->type == RAFT_MSG_VOTE && r->role != RAFT_LEADER &&
                   !log_is_up_to_date(&r->log, m->vote.last_log_index, m->vote.last_log_term);
    uint32_t elapsed = r->election_elapsed;
    uint32_t timeout = r->election_timeout;
    election_become_follower(r, m->term, msg_from_leader(m->type) ? m->from : RAFT_NODE_NONE);
    if (refused) {
        r->election_elapsed = elapsed;
        r->election_timeout = timeout;
    }
    return true;
}

/* A leader's message in our term: there is one leader per term (Election Safety), so a
 * candidate yields to it; a second leader in our term means a faulty peer. */
static int step_accept_leader(struct raft *r, const struct raft_msg *m)
{
    if (r->role == RAFT_LEADER || (r->leader != RAFT_NODE_NONE && r->leader != m->from)) {
        return RR_ECORRUPT;
    }
    if (r->role != RAFT_FOLLOWER) {
        election_become_follower(r, m->term, m->from);
    }
    r->leader = m->from;
    r->election_elapsed = 0;
    return 0;
}

static int step_dispatch(struct raft *r, const struct raft_msg *m)
{
    int rv = msg_from_leader(m->type) ? step_accept_leader(r, m) : 0;
    if (rv != 0) {
        return rv;
    }
    switch ((enum raft_msg_type)m->type) {
    case RAFT_MSG_VOTE:
    case RAFT_MSG_PRE_VOTE:
        election_handle_vote(r, m);
        return 0;
    case RAFT_MSG_VOTE_RESP:
    case RAFT_MSG_PRE_VOTE_RESP:
        election_handle_vote_resp(r, m);
        return 0;
    case RAFT_MSG_APPEND:
        return replication_handle_append(r, m);
    case RAFT_MSG_APPEND_RESP:
        replication_handle_append_resp(r, m);
        return 0;
    case RAFT_MSG_HEARTBEAT:
        replication_handle_heartbeat(r, m);
        return 0;
    case RAFT_MSG_HEARTBEAT_RESP:
        replication_handle_heartbeat_resp(r, m);
        return 0;
    case RAFT_MSG_SNAPSHOT:
        return snapshot_handle(r, m);
    case RAFT_MSG_SNAPSHOT_RESP:
        snapshot_handle_resp(r, m);
        return 0;
    case RAFT_MSG_TIMEOUT_NOW:
        election_handle_timeout_now(r, m);
        return 0;
    case RAFT_MSG_PERSISTED:
        break;
    }
    RR_ASSERT(false); /* validated */
    return RR_EINVAL;
}

static void assert_invariants(const struct raft *r)
{
    RR_ASSERT(r->commit <= log_last_index(&r->log));
    RR_ASSERT(r->applied <= r->commit);
    RR_ASSERT(r->applied >= r->log.prev_index);
    RR_ASSERT(r->log.persisted <= r->log.handed);
    RR_ASSERT(r->log.handed <= log_last_index(&r->log));
    RR_ASSERT(r->snap.index >= r->log.prev_index);
    if (r->role == RAFT_LEADER) {
        RR_ASSERT(r->vote == r->opt.id);
        RR_ASSERT(r->leader == r->opt.id);
    } else {
        RR_ASSERT(r->transfer_target == RAFT_NODE_NONE);
    }
    if (r->role == RAFT_CANDIDATE) {
        RR_ASSERT(r->vote == r->opt.id);
    }
    if (r->quiesced) {
        RR_ASSERT(r->opt.quiesce);
        RR_ASSERT(r->role == RAFT_LEADER || r->role == RAFT_FOLLOWER);
        RR_ASSERT(r->role != RAFT_FOLLOWER || r->leader != RAFT_NODE_NONE);
    }
}

int raft_step(struct raft *r, const struct raft_msg *m)
{
    RR_ASSERT(!r->handed.pending);
    int rv = step_validate(r, m);
    if (rv != 0) {
        return rv;
    }
    if (quiesce_wakes(r, m)) {
        quiesce_wake(r);
    }
    /* Only a leader already followed may put this node to sleep (quiesce.c). */
    bool followed = r->role == RAFT_FOLLOWER && r->leader == m->from && r->term == m->term;
    if (m->type == RAFT_MSG_PERSISTED) {
        replication_handle_persisted(r, m);
    } else if (step_term(r, m)) {
        rv = step_dispatch(r, m);
    }
    if (rv == 0 && followed && m->type == RAFT_MSG_HEARTBEAT) {
        quiesce_on_heartbeat(r, m);
    }
    membership_check(r);
    assert_invariants(r);
    return rv;
}

void raft_tick(struct raft *r)
{
    RR_ASSERT(!r->handed.pending);
    if (r->quiesced) {
        return; /* no clock while quiesced (quiesce.c) */
    }
    if (r->role == RAFT_LEADER) {
        replication_tick(r);
    } else {
        election_tick(r);
    }
    assert_invariants(r);
}

void raft_campaign(struct raft *r)
{
    RR_ASSERT(!r->handed.pending);
    quiesce_wake(r);
    if (r->role != RAFT_LEADER) {
        election_campaign(r, true, false);
    }
    assert_invariants(r);
}

/* ---- ready / advance ----------------------------------------------------------------- */

/* Last committed index that may be handed out to apply: durable locally, bounded per ready. */
static raft_index apply_limit(const struct raft *r)
{
    raft_index to = r->commit < r->log.persisted ? r->commit : r->log.persisted;
    if (to > r->applied + RAFT_APPLY_ENTRIES_MAX) {
        to = r->applied + RAFT_APPLY_ENTRIES_MAX;
    }
    return to > r->applied ? to : r->applied;
}

static bool hard_state_changed(const struct raft *r)
{
    return r->term != r->hs_term_handed || r->vote != r->hs_vote_handed ||
           r->commit != r->hs_commit_handed;
}

static bool role_changed(const struct raft *r)
{
    return r->role != r->role_handed || r->term != r->role_term_handed ||
           r->leader != r->leader_handed;
}

bool raft_has_ready(const struct raft *r)
{
    return hard_state_changed(r) || role_changed(r) || r->snap_to_hand || snapshot_rx_dropped(r) ||
           snapshot_rx_stale(r) || (snapshot_rx(r) != NULL && snapshot_rx(r)->pending) ||
           r->log.handed < log_last_index(&r->log) || r->msgs.count > 0 || r->after.count > 0 ||
           (r->bcast_pending && r->pr_count > 0) || apply_limit(r) > r->applied ||
           read_index_ready_count(r, apply_limit(r)) > 0 || read_index_failure_count(r) > 0;
}

/* Points a queued AppendEntries / InstallSnapshot at the data it carries; false if it is
 * stale (we are no longer that term's leader, or the data is gone). */
static bool resolve_msg(const struct raft *r, struct raft_msg *m)
{
    if (m->type != RAFT_MSG_APPEND && m->type != RAFT_MSG_SNAPSHOT) {
        return true;
    }
    if (r->role != RAFT_LEADER || m->term != r->term) {
        return false;
    }
    if (m->type == RAFT_MSG_SNAPSHOT) {
        struct raft_msg_snapshot *s = &m->snapshot;
        /* The caller fills the chunk from its image (core/raft.h, raft_ready.msgs); the
         * configuration is the snapshot's. */
        if (s->last_index != r->snap.index || s->last_term != r->snap.term ||
            s->offset + s->chunk.len > snapshot_bytes(r)) {
            return false;
        }
        s->config = &r->snap.store->meta.config;
        return true;
    }
    struct raft_msg_append *a = &m->append;
    a->commit = r->commit; /* the latest: it may have advanced since the append was queued */
    if (log_term(&r->log, a->prev_index) != a->prev_term ||
        (a->prev_index != 0 && a->prev_term == 0)) {
        return false;
    }
    if (a->entry_count > 0) {
        a->entries = log_entry(&r->log, a->prev_index + 1);
        if (a->entries == NULL || a->prev_index + a->entry_count > log_last_index(&r->log)) {
            return false;
        }
        a->data_released = a->prev_index + 1 <= r->log.released;
        if (released_in_snapshot(r, a->prev_index + 1)) {
            /* Released since it was queued, and covered by a snapshot taken since. Dropped;
             * the next attempt sends the snapshot (send_append_once). */
            return false;
        }
    }
    return true;
}

static void ready_msgs(struct raft *r, struct raft_ready *rd)
{
    uint32_t k = 0;
    for (uint32_t i = 0; i < r->msgs.count; i++) {
        if (resolve_msg(r, &r->msgs.msgs[i])) {
            r->msgs.msgs[k++] = r->msgs.msgs[i];
        }
    }
    r->msgs.count = k;
    if (k > 0) {
        rd->flags |= RAFT_READY_MSGS;
        rd->msgs = r->msgs.msgs;
        rd->msg_count = k;
    }
}

/* The persist notice for this ready's writes, which the caller steps back once durable. */
static void ready_persist_notice(struct raft *r, const struct raft_ready *rd)
{
    struct raft_msg m = raft_msg_new(r, RAFT_MSG_PERSISTED, r->opt.id);
    if (rd->entry_count > 0) {
        m.persisted.index = rd->entries[rd->entry_count - 1].index;
        m.persisted.term = rd->entries[rd->entry_count - 1].term;
    }
    if (rd->snapshot != NULL) {
        m.persisted.snapshot_index = rd->snapshot->index;
    }
    m.persisted.seq = r->log.seq_next++;
    /* The reserve keeps room for it; only a failed allocation drops it, and then the next
     * batch's notice covers these entries too. */
    (void)raft_send(r, &m, true, true);
}

static void ready_log(struct raft *r, struct raft_ready *rd)
{
    if (r->snap_to_hand) {
        rd->flags |= RAFT_READY_SNAPSHOT;
        rd->snapshot = &r->snap.store->meta;
        rd->snapshot_bytes = r->snap.store->bytes;
        r->handed.snapshot = true;
    }
    snapshot_rx_drop_stale(r);
    if (snapshot_rx_dropped(r)) {
        rd->flags |= RAFT_READY_SNAPSHOT_DROPPED;
        r->handed.rx_dropped = true;
    }
    if (snapshot_rx(r) != NULL && snapshot_rx(r)->pending) {
        rd->flags |= RAFT_READY_SNAPSHOT_CHUNK;
        rd->snapshot_chunk = &snapshot_rx(r)->out;
        r->handed.chunk = true;
    }
    raft_index last = log_last_index(&r->log);
    if (r->log.handed < last) {
        rd->flags |= RAFT_READY_ENTRIES;
        rd->entries = log_entry(&r->log, r->log.handed + 1);
        rd->entry_count = (uint32_t)(last - r->log.handed);
        r->handed.entries_to = last;
    }
    if (rd->entry_count > 0 || rd->snapshot != NULL) {
        ready_persist_notice(r, rd);
    }
}

static void ready_apply(struct raft *r, struct raft_ready *rd)
{
    raft_index to = apply_limit(r);
    r->handed.applied_to = to;
    if (to > r->applied) {
        rd->flags |= RAFT_READY_COMMITTED;
        rd->committed = log_entry(&r->log, r->applied + 1);
        rd->committed_count = (uint32_t)(to - r->applied);
        RR_ASSERT(rd->committed != NULL);
    }
    read_index_ready(r, rd, to);
}

void raft_ready(struct raft *r, struct raft_ready *rd)
{
    RR_ASSERT(!r->handed.pending);
    memset(rd, 0, sizeof(*rd));
    memset(&r->handed, 0, sizeof(r->handed));
    replication_flush(r);
    if (hard_state_changed(r)) {
        rd->flags |= RAFT_READY_HARD_STATE;
        r->handed.hard_state = true;
    }
    rd->hard_state = (struct raft_hard_state){r->term, r->vote, r->commit};
    if (role_changed(r)) {
        rd->flags |= RAFT_READY_ROLE;
        r->handed.role = true;
    }
    rd->role = r->role;
    rd->term = r->term;
    rd->leader = r->leader;
    ready_log(r, rd);
    ready_apply(r, rd);
    ready_msgs(r, rd);
    if (r->after.count > 0) {
        rd->flags |= RAFT_READY_MSGS_AFTER_PERSIST;
        rd->msgs_after_persist = r->after.msgs;
        rd->msg_after_persist_count = r->after.count;
    }
    r->handed.pending = true;
}

/* Empties a queue. Most groups are idle (a heartbeat and its answer per tick), and a burst
 * must not pin memory in every group: capacity above RAFT_MSG_QUEUE_KEEP that no batch
 * needed for RAFT_MSG_QUEUE_SPARE batches in a row is released, and so is a queue that no
 * batch used for as long (idle groups send nothing after a persist, so their `after` queue
 * would only hold memory). Waiting that long keeps a busy group from freeing its queue
 * after one quiet batch and allocating it again in the next. Every queue of a quiesced group
 * is released at once (`release`): it sends nothing until woken, and its batch's messages
 * (the quiescing heartbeats and their answers) have left. */
static void queue_clear(struct raft_msg_queue *q, bool release)
{
    uint32_t kept = q->cap > RAFT_MSG_QUEUE_KEEP ? RAFT_MSG_QUEUE_KEEP : 0;
    q->spare = q->count > kept ? 0 : q->spare + 1;
    q->count = 0;
    if (release || q->spare >= RAFT_MSG_QUEUE_SPARE) {
        free(q->msgs);
        *q = (struct raft_msg_queue){0};
    }
}

void raft_advance(struct raft *r, const struct raft_ready *rd)
{
    RR_ASSERT(r->handed.pending);
    if (r->handed.hard_state) {
        r->hs_term_handed = rd->hard_state.term;
        r->hs_vote_handed = rd->hard_state.vote;
        r->hs_commit_handed = rd->hard_state.commit;
    }
    if (r->handed.role) {
        r->role_handed = rd->role;
        r->role_term_handed = rd->term;
        r->leader_handed = rd->leader;
    }
    if (r->handed.entries_to > 0) {
        r->log.handed = r->handed.entries_to;
    }
    r->snap_to_hand = r->snap_to_hand && !r->handed.snapshot;
    if (r->handed.chunk) {
        snapshot_chunk_handed(r);
    }
    if (r->handed.rx_dropped) {
        r->snap.store->rx_dropped = false;
    }
    RR_ASSERT(r->handed.applied_to >= r->applied);
    r->applied = r->handed.applied_to;
    replication_release(r);
    read_index_advance(r);
    queue_clear(&r->msgs, r->quiesced);
    queue_clear(&r->after, r->quiesced);
    r->handed.pending = false;
    assert_invariants(r);
}

/* ---- queries ------------------------------------------------------------------------- */

void raft_status(const struct raft *r, struct raft_status *s)
{
    memset(s, 0, sizeof(*s));
    s->id = r->opt.id;
    s->group = r->opt.group;
    s->role = r->role;
    s->term = r->term;
    s->vote = r->vote;
    s->leader = r->leader;
    s->commit = r->commit;
    s->applied = r->applied;
    s->first_index = log_first_index(&r->log);
    s->last_index = log_last_index(&r->log);
    s->last_term = log_last_term(&r->log);
    s->persisted_index = r->log.persisted;
    s->snapshot_index = r->snap.index;
    s->snapshot_term = r->snap.term;
    s->config_index = r->config_index;
    s->transfer_target = r->transfer_target;
    s->quiesced = r->quiesced;
    s->uncommitted_bytes = r->uncommitted_bytes;
}

void raft_summary(const struct raft *r, struct raft_summary *s)
{
    s->commit = r->commit;
    s->applied = r->applied;
    s->last_index = log_last_index(&r->log);
    s->snapshot_index = r->snap.index;
    s->voters = 0;
    s->learners = 0;
    for (uint32_t i = 0; i < r->config.member_count; i++) {
        uint8_t role = config_member_role(r->config.members[i]);
        s->voters += role == RAFT_VOTER;
        s->learners += role == RAFT_LEARNER;
    }
    s->config_pending = raft_config_pending(r) || config_is_joint(&r->config);
}

raft_term raft_term_at(const struct raft *r, raft_index index)
{
    if (index == r->snap.index) {
        return r->snap.term;
    }
    return log_term(&r->log, index);
}

const struct raft_entry *raft_entry_at(const struct raft *r, raft_index index)
{
    return log_entry(&r->log, index);
}

void raft_config(const struct raft *r, struct raft_config *c)
{
    raft_config_unpack(&r->config, c);
}

bool raft_progress(const struct raft *r, raft_node id, struct raft_progress_view *p)
{
    if (r->role != RAFT_LEADER) {
        return false;
    }
    if (r->quiesced) {
        return quiesce_follower_view(r, id, p);
    }
    for (uint32_t i = 0; i < r->pr_count; i++) {
        const struct raft_progress *pr = &r->prs[i];
        if (pr->id == id) {
            *p = (struct raft_progress_view){
                pr->state,           pr->match,           pr->next,
                pr->inflights.count, pr->inflights.bytes, pr->recent_active};
            return true;
        }
    }
    return false;
}

const char *raft_msg_type_name(uint8_t type)
{
    static const char *const names[] = {
        [RAFT_MSG_VOTE] = "VOTE",
        [RAFT_MSG_VOTE_RESP] = "VOTE_RESP",
        [RAFT_MSG_PRE_VOTE] = "PRE_VOTE",
        [RAFT_MSG_PRE_VOTE_RESP] = "PRE_VOTE_RESP",
        [RAFT_MSG_APPEND] = "APPEND",
        [RAFT_MSG_APPEND_RESP] = "APPEND_RESP",
        [RAFT_MSG_HEARTBEAT] = "HEARTBEAT",
        [RAFT_MSG_HEARTBEAT_RESP] = "HEARTBEAT_RESP",
        [RAFT_MSG_SNAPSHOT] = "SNAPSHOT",
        [RAFT_MSG_SNAPSHOT_RESP] = "SNAPSHOT_RESP",
        [RAFT_MSG_TIMEOUT_NOW] = "TIMEOUT_NOW",
        [RAFT_MSG_PERSISTED] = "PERSISTED",
    };
    if (type < RAFT_MSG_VOTE || type > RAFT_MSG_TYPE_MAX) {
        return "UNKNOWN";
    }
    return names[type];
}
