/* Leader election (paper §5.2): roles, randomized timeouts, PreVote (thesis §9.6),
 * RequestVote and leader leases (thesis §4.2.3). */
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/raft_internal.h"

/* Paper §5.2: "Raft uses randomized election timeouts to ensure that split votes are rare";
 * drawn again every time the timer is reset, from [election_ticks, 2 * election_ticks). */
void election_reset_timer(struct raft *r)
{
    r->election_elapsed = 0;
    r->election_timeout =
        r->opt.election_ticks + (uint32_t)(rr_splitmix64(&r->prng) % r->opt.election_ticks);
}

static void votes_reset(struct raft *r)
{
    r->votes_granted = 0;
    r->votes_rejected = 0;
}

static void leader_teardown(struct raft *r)
{
    membership_progress_drop(r);
    r->bcast_pending = false;
    r->commit_bcast = false;
    uncommitted_set(r, 0);
    election_transfer_abort(r);
    read_index_fail_pending(r);
}

void election_become_follower(struct raft *r, raft_term term, raft_node leader)
{
    RR_ASSERT(term >= r->term);
    if (r->role == RAFT_LEADER) {
        leader_teardown(r);
    }
    if (term > r->term) {
        r->term = term;
        r->vote = RAFT_NODE_NONE;
    }
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
    votes_reset(r);
    r->quiesced = false; /* a new role or term: its clock runs (quiesce.c) */
    r->quiet_ticks = 0;
    election_reset_timer(r);
}

bool election_in_lease(const struct raft *r)
{
    return r->opt.check_quorum && r->leader != RAFT_NODE_NONE &&
           r->election_elapsed < r->opt.election_ticks;
}

/* Asks every voter of the configuration (both halves when joint) once. */
static void send_vote_requests(struct raft *r, uint8_t type, raft_term term, bool transfer)
{
    const struct raft_config_packed *c = &r->config;
    for (uint32_t i = 0; i < config_slot_count(c); i++) {
        raft_node id = config_member_id(c->members[i]);
        if (config_member_role(c->members[i]) != RAFT_VOTER || id == r->opt.id) {
            continue;
        }
        if (i >= c->member_count && config_role(c, id) == RAFT_VOTER) {
            continue; /* asked as a member of the new half */
        }
        struct raft_msg req = raft_msg_new(r, type, id);
        req.term = term;
        req.vote.last_log_index = log_last_index(&r->log);
        req.vote.last_log_term = log_last_term(&r->log);
        req.vote.transfer = transfer;
        /* A real vote request leaves only once our new term and own vote are durable.
         * Otherwise we could win term T on the others' votes alone, act as its leader, crash
         * before T is durable, restart in T - 1 and win T again (voters may grant the same
         * candidate twice) with a different log: two entries at one (index, T). A pre-vote
         * binds nothing and goes at once. */
        raft_send(r, &req, type == RAFT_MSG_VOTE, false);
    }
}

/* The slots of id in r->config.members, as a vote set (0: not a member). */
static raft_vote_set vote_slots(const struct raft *r, raft_node id)
{
    raft_vote_set slots = 0;
    for (uint32_t i = 0; i < config_slot_count(&r->config); i++) {
        if (config_member_id(r->config.members[i]) == id) {
            slots |= (raft_vote_set)1 << i;
        }
    }
    return slots;
}

/* Only members are recorded: the tally counts nothing else (a server outside its own
 * latest configuration may campaign, thesis §4.2.2, but its own vote does not count). */
static void record_vote(struct raft *r, raft_node id, bool granted)
{
    RR_ASSERT(id != RAFT_NODE_NONE && id <= RAFT_NODE_ID_MAX);
    raft_vote_set slots = vote_slots(r, id);
    if ((slots & (r->votes_granted | r->votes_rejected)) != 0) {
        return; /* the first answer counts */
    }
    if (granted) {
        r->votes_granted |= slots;
    } else {
        r->votes_rejected |= slots;
    }
}

static int vote_of(void *ctx, raft_node id)
{
    const struct raft *r = ctx;
    raft_vote_set slots = vote_slots(r, id);
    if ((slots & r->votes_granted) != 0) {
        return 1;
    }
    return (slots & r->votes_rejected) != 0 ? 0 : -1;
}

static void become_leader(struct raft *r);

static void tally(struct raft *r)
{
    enum quorum_result res = quorum_vote_result(&r->config, vote_of, r);
    if (res == QUORUM_LOST) {
        election_become_follower(r, r->term, RAFT_NODE_NONE);
    } else if (res == QUORUM_WON && r->role == RAFT_PRE_CANDIDATE) {
        election_campaign(r, false, false);
    } else if (res == QUORUM_WON) {
        become_leader(r);
    }
}

/* Thesis §9.6: "a candidate would first ask other servers whether its log was up-to-date
 * enough to get their vote"; nothing is persisted, so its own pre-vote counts at once. */
static void become_pre_candidate(struct raft *r)
{
    r->role = RAFT_PRE_CANDIDATE;
    r->leader = RAFT_NODE_NONE;
    votes_reset(r);
    election_reset_timer(r);
    send_vote_requests(r, RAFT_MSG_PRE_VOTE, r->term + 1, false);
    record_vote(r, r->opt.id, true);
    tally(r);
}

/* Paper §5.2: "a follower increments its current term and transitions to candidate state.
 * It then votes for itself and issues RequestVote RPCs". The own vote counts only once the
 * new term and vote are durable: it comes back as a VOTE_RESP after the persist. */
static void become_candidate(struct raft *r, bool transfer)
{
    r->term++;
    r->vote = r->opt.id;
    r->role = RAFT_CANDIDATE;
    r->leader = RAFT_NODE_NONE;
    votes_reset(r);
    election_reset_timer(r);
    send_vote_requests(r, RAFT_MSG_VOTE, r->term, transfer);
    struct raft_msg self = raft_msg_new(r, RAFT_MSG_VOTE_RESP, r->opt.id);
    self.vote_resp.granted = true;
    raft_send(r, &self, true, true);
}

/* Learners and servers waiting to be added never campaign. Thesis §4.2.2: "a server that
 * is not part of its own latest configuration should still start new elections, as it
 * might still be needed until the C_new entry is committed ... It does not count its own
 * vote in elections unless it is part of its latest configuration" (the tally counts only
 * the configuration's voters). Without this, a leader that removed itself and lost its
 * quorum may hold the only copy of C_new, which the remaining voters need to elect anyone:
 * they would wait for it forever. */
static bool may_campaign(const struct raft *r)
{
    if (config_is_voter(&r->config, r->opt.id)) {
        return true;
    }
    if (r->config_index <= r->commit) {
        return false;
    }
    struct raft_config committed;
    (void)raft_config_committed(r, &committed);
    return raft_config_is_voter(&committed, r->opt.id);
}

void election_campaign(struct raft *r, bool pre, bool transfer)
{
    RR_ASSERT(r->role != RAFT_LEADER);
    if (!may_campaign(r) || r->term >= RAFT_TERM_MAX) {
        return; /* at RAFT_TERM_MAX there is no next term that peers would accept */
    }
    if (pre && r->opt.pre_vote) {
        become_pre_candidate(r);
    } else {
        become_candidate(r, transfer);
    }
}

static bool leader_alloc_progress(struct raft *r)
{
    RR_ASSERT(r->prs == NULL && r->pr_count == 0);
    struct raft_progress *prs = membership_progress_alloc(r->opt.id, &r->config, NULL);
    if (prs == NULL) {
        return false;
    }
    membership_progress_install(r, prs, log_last_index(&r->log) + 1, NULL);
    return true;
}

/* Paper §5.2: "Once a candidate wins an election, it becomes leader. It then sends
 * heartbeat messages to all of the other servers". Thesis §6.4: it commits a blank no-op
 * entry at the start of its term, so that it learns which entries are committed (and can
 * serve ReadIndex). */
static void become_leader(struct raft *r)
{
    RR_ASSERT(r->role == RAFT_CANDIDATE);
    RR_ASSERT(r->vote == r->opt.id);
    if (!leader_alloc_progress(r) || replication_append_local(r, RAFT_ENTRY_NORMAL, NULL, 0) != 0) {
        /* Out of memory: give the office up rather than lead half-built. */
        free(r->prs);
        r->prs = NULL;
        r->pr_count = 0;
        election_become_follower(r, r->term, RAFT_NODE_NONE);
        return;
    }
    r->role = RAFT_LEADER;
    r->leader = r->opt.id;
    r->heartbeat_elapsed = 0;
    uncommitted_set(r, 0);
    if (r->reads != NULL) {
        r->reads->round = 0;
    }
    election_transfer_abort(r);
    election_reset_timer(r);
    replication_bcast_append(r, true);
    replication_maybe_commit(r);
}

static void reply_vote(struct raft *r, const struct raft_msg *m, bool granted)
{
    bool pre = m->type == RAFT_MSG_PRE_VOTE;
    struct raft_msg resp =
        raft_msg_new(r, pre ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP, m->from);
    /* A grant answers in the requested term (a pre-vote's future term); a rejection carries
     * ours so that a candidate behind us catches up. */
    resp.term = granted ? m->term : r->term;
    resp.vote_resp.granted = granted;
    /* A real vote must be durable before it leaves; a pre-vote changes nothing. */
    raft_send(r, &resp, !pre, false);
}

/* Paper §5.2/§5.4.1, Figure 2 RequestVote: "If votedFor is null or candidateId, and
 * candidate's log is at least as up-to-date as receiver's log, grant vote"; "each server
 * will vote for at most one candidate in a given term". A pre-vote for a later term is
 * granted on the log check alone (it binds nothing); once a leader is known, a node does not
 * vote for a rival in the same term. */
void election_handle_vote(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PRE_VOTE;
    bool can_vote = r->vote == m->from ||
                    (r->vote == RAFT_NODE_NONE && r->leader == RAFT_NODE_NONE) ||
                    (pre && m->term > r->term);
    bool grant =
        can_vote && log_is_up_to_date(&r->log, m->vote.last_log_index, m->vote.last_log_term);
    if (grant && !pre) {
        r->vote = m->from;
        r->election_elapsed = 0; /* a granted vote defers our own candidacy */
    }
    reply_vote(r, m, grant);
}

void election_handle_vote_resp(struct raft *r, const struct raft_msg *m)
{
    bool pre = m->type == RAFT_MSG_PRE_VOTE_RESP;
    if (r->role != (pre ? RAFT_PRE_CANDIDATE : RAFT_CANDIDATE)) {
        return; /* a late answer to an election already decided */
    }
    if (pre && m->vote_resp.granted && m->term != r->term + 1) {
        return; /* granted for another round */
    }
    if (!config_is_voter(&r->config, m->from)) {
        return;
    }
    record_vote(r, m->from, m->vote_resp.granted);
    tally(r);
}

/* Thesis §3.10: the leader tells the transfer target to start an election at once; the
 * target campaigns with the transfer flag so voters disregard their leader lease. Only the
 * leader we follow in this term may do that: a late TIMEOUT_NOW from an aborted transfer, a
 * removed server or any other peer would otherwise skip PreVote and every voter's lease.
 * The leader brings the target up to date first, so the target knows it by then. */
void election_handle_timeout_now(struct raft *r, const struct raft_msg *m)
{
    if (r->role == RAFT_FOLLOWER && r->leader != RAFT_NODE_NONE && m->from == r->leader &&
        m->term == r->term) {
        election_campaign(r, false, true);
    }
}

/* ---- leadership transfer (thesis §3.10) ------------------------------------------------ */

int raft_transfer_leader(struct raft *r, raft_node target)
{
    RR_ASSERT(!r->handed.pending);
    if (r->role != RAFT_LEADER) {
        return RR_ENOTLEADER;
    }
    if (r->transfer_target != RAFT_NODE_NONE) {
        return RR_ETRANSFER;
    }
    /* Only a voter of the configuration being moved to can win and keep the office. */
    if (target == r->opt.id || config_role(&r->config, target) != RAFT_VOTER) {
        return RR_EINVAL;
    }
    quiesce_wake(r); /* before the progress: a quiesced leader keeps none */
    if (r->role != RAFT_LEADER) {
        return RR_ENOMEM; /* could not rebuild its progress set on waking */
    }
    struct raft_progress *p = raft_progress_of(r, target);
    RR_ASSERT(p != NULL); /* every member of the configuration has one */
    /* "1. The prior leader stops accepting new client requests." */
    r->transfer_target = target;
    r->transfer_elapsed = 0;
    r->transfer_sent = false;
    /* "2. The prior leader fully updates the target server's log to match its own". */
    if (p->match < log_last_index(&r->log)) {
        replication_send_append(r, p, true);
    }
    election_transfer_progress(r, p);
    return 0;
}

raft_node raft_transfer_target(const struct raft *r)
{
    return r->transfer_target;
}

void election_transfer_abort(struct raft *r)
{
    r->transfer_target = RAFT_NODE_NONE;
    r->transfer_elapsed = 0;
    r->transfer_sent = false;
}

/* "3. The prior leader sends a TimeoutNow request to the target server", once the target
 * holds every entry of the leader's log (so it wins the election on log comparison). */
void election_transfer_progress(struct raft *r, const struct raft_progress *p)
{
    if (r->transfer_target != p->id || r->transfer_sent || p->match < log_last_index(&r->log)) {
        return;
    }
    struct raft_msg m = raft_msg_new(r, RAFT_MSG_TIMEOUT_NOW, p->id);
    r->transfer_sent = raft_send(r, &m, false, false);
}

/* "If the transfer does not complete within an election timeout, the prior leader aborts
 * the transfer and resumes accepting client requests." */
void election_transfer_tick(struct raft *r)
{
    if (r->transfer_target != RAFT_NODE_NONE && ++r->transfer_elapsed >= r->opt.election_ticks) {
        election_transfer_abort(r);
    }
}

/* Paper §5.2: "If a follower receives no communication over a period of time called the
 * election timeout, then it assumes there is no viable leader and begins an election". */
void election_tick(struct raft *r)
{
    RR_ASSERT(r->role != RAFT_LEADER);
    r->election_elapsed++;
    if (r->election_elapsed >= r->election_timeout) {
        /* No word from the leader for a whole timeout: it is no longer known, so its lease
         * ends, even here if this node may not campaign. Otherwise a non-voter (by its own
         * log) would keep disregarding vote requests for a leader that is gone, and a voter
         * of the cluster's newer configuration could never be elected with its vote. */
        r->leader = RAFT_NODE_NONE;
        election_reset_timer(r);
        election_campaign(r, true, false);
    }
}
