/* Quiescence: idle groups stop ticking (core/raft.h, "quiescence").
 *
 * A leader whose followers all hold its whole log, committed, with nothing pending (no
 * proposal, read, transfer or configuration change in flight, nothing unsent or unpersisted)
 * for half an election timeout sends each follower a last heartbeat flagged `quiesce` and
 * stops ticking: no heartbeats, no CheckQuorum. A follower quiesces on that heartbeat only
 * if it comes from the leader it follows in its term and its own log ends exactly at the
 * commit index the heartbeat carries (so it holds and has committed everything the leader
 * has); then it stops its election timer. This is CockroachDB's scheme (replica quiescence).
 * What the leader does not wait for: the followers' agreement. A follower that did not
 * quiesce (the heartbeat was lost, or it was behind) times out as usual and its (pre-)vote
 * requests wake everyone, the leader included, which resumes heartbeats and may quiesce
 * again later; the cost is one election timeout, never safety.
 *
 * Waking: every message from a peer wakes the receiver, except a heartbeat response at a
 * leader (the answers to its own quiescing heartbeats) — a quiescing heartbeat wakes a
 * follower and may quiesce it again at once. Proposals, reads, transfers, configuration
 * changes and campaigns wake too. Nothing else can: a quiesced group has no clock, so a
 * crashed leader would never be replaced. The node supplies the failure detection Raft's
 * timers no longer give (CockroachDB uses node liveness): when its connection to a peer
 * fails it calls raft_peer_down (multi_peer_down for a table), which wakes every group led by
 * that peer and makes it forget that leader, like etcd's ForgetLeader: a leaderless follower
 * grants pre-votes at once even with CheckQuorum, so a quorum that lost its leader elects a
 * new one within an election timeout instead of waiting out a lease that no longer runs.
 * Groups this node leads with the peer as a member wake too, so that CheckQuorum runs again.
 *
 * A stale quiescing heartbeat must not put a group back to sleep under a leader reported
 * down. Two guards: a follower quiesces only on a heartbeat from the leader it already
 * followed before that message (one that forgot its leader must hear an ordinary message
 * first), and the caller reports a peer down only once its connection is torn down, so no
 * message the peer sent before the failure arrives after the report (TCP gives this; the
 * simulator drops in-flight batches of a failed connection the same way).
 *
 * Why safety is untouched: quiescence only stops time (ticks) and heartbeats, and forgetting
 * a leader only drops the lease check that refuses votes while a leader is heard. Raft's
 * safety never depends on timing, and a vote is still one per term (the vote is hard
 * state), so forgetting a leader cannot elect a second one in its term. ReadIndex wakes the
 * leader and still confirms with a heartbeat round; there are no lease reads to break. */
#include "core/base/assert.h"
#include "core/raft_internal.h"

/* Idle ticks before a leader quiesces: half an election timeout, so that a group with
 * sporadic traffic does not flap between quiescing and waking. */
static uint32_t quiesce_idle_ticks(const struct raft *r)
{
    uint32_t n = r->opt.election_ticks / 2;
    return n > 1 ? n : 1;
}

/* Every follower holds the whole log and answered since the last CheckQuorum period. */
static bool followers_caught_up(const struct raft *r)
{
    raft_index last = log_last_index(&r->log);
    for (uint32_t i = 0; i < r->pr_count; i++) {
        const struct raft_progress *p = &r->prs[i];
        if (p->match != last || p->inflights.count > 0 || !p->recent_active ||
            p->state == RAFT_PROGRESS_SNAPSHOT) {
            return false;
        }
    }
    return true;
}

static bool leader_idle(const struct raft *r)
{
    raft_index last = log_last_index(&r->log);
    return r->commit == last && log_term(&r->log, last) == r->term && r->log.persisted == last &&
           r->log.handed == last && read_index_idle(r) && r->transfer_target == RAFT_NODE_NONE &&
           !r->bcast_pending && !r->commit_bcast && !r->prs_departing && followers_caught_up(r);
}

bool quiesce_tick(struct raft *r)
{
    RR_ASSERT(r->role == RAFT_LEADER);
    RR_ASSERT(!r->quiesced);
    if (!r->opt.quiesce || !leader_idle(r)) {
        r->quiet_ticks = 0;
        return false;
    }
    if (++r->quiet_ticks < quiesce_idle_ticks(r)) {
        return false;
    }
    for (uint32_t i = 0; i < r->pr_count; i++) {
        struct raft_msg m = raft_msg_new(r, RAFT_MSG_HEARTBEAT, r->prs[i].id);
        m.heartbeat.commit = r->commit; /* == match: every follower holds it */
        m.heartbeat.quiesce = true;
        raft_send(r, &m, false, false);
    }
    /* The progress set is dropped until the group wakes: it says only that every follower
     * holds the whole log (leader_idle), which stays true while quiesced, since whatever
     * could change the leader's log or a follower's (a proposal, a configuration change,
     * another leader's message) wakes the group first; quiesce_wake rebuilds it so. */
    membership_progress_drop(r);
    r->quiesced = true;
    r->quiet_ticks = 0;
    return true;
}

void quiesce_on_heartbeat(struct raft *r, const struct raft_msg *m)
{
    if (!m->heartbeat.quiesce || !r->opt.quiesce || r->role != RAFT_FOLLOWER) {
        return;
    }
    raft_index commit = m->heartbeat.commit;
    if (r->leader == m->from && m->term == r->term && r->commit == commit &&
        log_last_index(&r->log) == commit && snapshot_rx(r) == NULL) {
        r->quiesced = true;
    }
}

bool quiesce_wakes(const struct raft *r, const struct raft_msg *m)
{
    bool own_answer = r->role == RAFT_LEADER && m->type == RAFT_MSG_HEARTBEAT_RESP &&
                      m->term == r->term; /* to its own (quiescing) heartbeats */
    return r->quiesced && m->type != RAFT_MSG_PERSISTED && !own_answer;
}

/* Quiescing heartbeats still queued (woken before the ready that would send them) must not
 * leave: the leader is no longer idle, and they would say it is. Followers cope with one
 * that does leave late (a later append wakes them, an earlier one keeps them awake), but a
 * leader that has woken should not ask anyone to sleep. */
static void drop_quiescing_heartbeats(struct raft *r)
{
    struct raft_msg_queue *q = &r->msgs;
    uint32_t k = 0;
    for (uint32_t i = 0; i < q->count; i++) {
        const struct raft_msg *m = &q->msgs[i];
        if (m->type != RAFT_MSG_HEARTBEAT || !m->heartbeat.quiesce) {
            q->msgs[k++] = *m;
        }
    }
    q->count = k;
}

/* Time runs again. A leader heartbeats at once, so quiesced followers wake too, and starts
 * a fresh CheckQuorum period (activity from before it quiesced does not count). A follower
 * restarts its election timer: a leader that is really gone is replaced one election
 * timeout later, or sooner through raft_peer_down. */
void quiesce_wake(struct raft *r)
{
    if (!r->quiesced) {
        return;
    }
    r->quiesced = false;
    r->quiet_ticks = 0;
    r->election_elapsed = 0;
    if (r->role == RAFT_LEADER && !membership_progress_rebuild(r)) {
        /* Out of memory: giving the office up is always safe; the followers elect. */
        election_become_follower(r, r->term, RAFT_NODE_NONE);
        return;
    }
    if (r->role == RAFT_LEADER) {
        drop_quiescing_heartbeats(r);
        r->heartbeat_elapsed = 0;
        for (uint32_t i = 0; i < r->pr_count; i++) {
            r->prs[i].recent_active = false;
        }
        replication_bcast_heartbeat(r);
    }
}

bool raft_quiesced(const struct raft *r)
{
    return r->quiesced;
}

void raft_unquiesce(struct raft *r)
{
    RR_ASSERT(!r->handed.pending);
    quiesce_wake(r);
}

void raft_peer_down(struct raft *r, raft_node id)
{
    RR_ASSERT(!r->handed.pending);
    if (id == RAFT_NODE_NONE || id == r->opt.id) {
        return;
    }
    if (r->role == RAFT_LEADER) {
        /* A quiesced leader has no progress set: its followers are its configuration's
         * members (it does not quiesce while replicating to departing ones). */
        if (r->quiesced && config_is_member(&r->config, id)) {
            quiesce_wake(r);
        }
        struct raft_progress *p = raft_progress_of(r, id);
        if (p != NULL) {
            quiesce_wake(r);
            /* Not heard from since: the leader neither quiesces (every follower must answer
             * first) nor counts it toward CheckQuorum until it answers again. */
            p->recent_active = false;
        }
        return;
    }
    if (r->leader == id) {
        quiesce_wake(r);
        r->leader = RAFT_NODE_NONE;
    }
}

/* ---- what a quiesced leader reports of its followers --------------------------------- */

/* Its followers are the configuration's members but itself (leader_idle: none departing),
 * each holding the whole log, and each heard from before it quiesced. */
static bool quiesced_follower(const struct raft *r, uint32_t slot)
{
    raft_node id = config_member_id(r->config.members[slot]);
    for (uint32_t i = 0; i < slot; i++) {
        if (config_member_id(r->config.members[i]) == id) {
            return false; /* in both halves: counted once */
        }
    }
    return id != r->opt.id;
}

bool quiesce_follower_view(const struct raft *r, raft_node id, struct raft_progress_view *p)
{
    RR_ASSERT(r->quiesced && r->role == RAFT_LEADER);
    if (id == r->opt.id || !config_is_member(&r->config, id)) {
        return false;
    }
    raft_index last = log_last_index(&r->log);
    *p = (struct raft_progress_view){RAFT_PROGRESS_REPLICATE, last, last + 1, 0, 0, true};
    return true;
}

int quiesce_members_progress(const struct raft *r, struct raft_member_progress *out, uint32_t cap)
{
    RR_ASSERT(r->quiesced && r->role == RAFT_LEADER);
    raft_index last = log_last_index(&r->log);
    uint32_t n = 0;
    for (uint32_t i = 0; i < config_slot_count(&r->config); i++) {
        if (!quiesced_follower(r, i)) {
            continue;
        }
        raft_node id = config_member_id(r->config.members[i]);
        if (n < cap) {
            out[n] = (struct raft_member_progress){
                .id = id,
                .role = config_is_voter(&r->config, id) ? RAFT_VOTER : RAFT_LEARNER,
                .state = RAFT_PROGRESS_REPLICATE,
                .match = last,
                .lag = 0,
                .recent_active = true,
            };
        }
        n++;
    }
    return (int)n;
}
