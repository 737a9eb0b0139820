/* The paper's rules on terms, votes and elections (Raft §5.1, §5.2, §5.4.1, Figure 2) as
 * named tests on single core instances. */
#include "tests/unit/raft_fixture.h"

#define E 5u /* fx_options' election_ticks */

/* Ticks a twin of (o, restore) until it leaves the follower role: its election timeout. */
static uint32_t measure_timeout(const struct raft_options *o,
                                uint32_t voters,
                                const raft_term *terms,
                                uint32_t n,
                                raft_term term)
{
    struct fx *f = fx_new_log(o, voters, terms, n, term, RAFT_NODE_NONE);
    uint32_t ticks = 0;
    while (fx_role(f) == RAFT_FOLLOWER && ticks < 4 * o->election_ticks) {
        raft_tick(f->r);
        ticks++;
    }
    fx_free(f);
    return ticks;
}

/* "When servers start up, they begin as followers." Reference: §5.2 */
static void test_servers_start_as_followers(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    struct raft_status s = fx_status(f);
    assert_int_equal(s.role, RAFT_FOLLOWER);
    assert_int_equal(s.term, 0);
    assert_int_equal(s.leader, RAFT_NODE_NONE);
    fx_tick(f, E - 1);
    assert_int_equal(fx_role(f), RAFT_FOLLOWER); /* no election before the timeout */
    fx_free(f);
}

/* "Raft uses randomized election timeouts ... chosen randomly from a fixed interval."
 * Here the interval is [election_ticks, 2 * election_ticks). Reference: §5.2 */
static void test_election_timeout_randomized_in_range(void **state)
{
    (void)state;
    uint32_t lo = UINT32_MAX;
    uint32_t hi = 0;
    for (uint64_t seed = 1; seed <= 64; seed++) {
        struct raft_options o = fx_options(1);
        o.seed = seed;
        uint32_t t = measure_timeout(&o, 3, NULL, 0, 0);
        assert_in_range(t, E, 2 * E - 1);
        assert_int_equal(measure_timeout(&o, 3, NULL, 0, 0), t); /* seeded, deterministic */
        lo = t < lo ? t : lo;
        hi = t > hi ? t : hi;
    }
    assert_true(lo < hi); /* not one fixed value */
}

/* "To begin an election, a follower increments its current term and transitions to
 * candidate state. It then votes for itself and issues RequestVote RPCs in parallel to each
 * of the other servers." Reference: §5.2 */
static void test_follower_starts_election_on_timeout(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    for (uint32_t i = 0; i < 2 * E && fx_role(f) == RAFT_FOLLOWER; i++) {
        raft_tick(f->r);
    }
    fx_drain(f);
    struct raft_status s = fx_status(f);
    assert_int_equal(s.role, RAFT_CANDIDATE);
    assert_int_equal(s.term, 1);
    assert_int_equal(s.vote, 1);
    assert_int_equal(f->hs.term, 1);
    assert_int_equal(f->hs.vote, 1);
    assert_int_equal(fx_expect(f, RAFT_MSG_VOTE, 2)->term, 1);
    assert_int_equal(fx_expect(f, RAFT_MSG_VOTE, 3)->term, 1);
    assert_int_equal(fx_count(f, RAFT_MSG_VOTE, 0), 2);
    fx_free(f);
}

/* "The RPC includes information about the candidate's log" (lastLogIndex, lastLogTerm).
 * Reference: §5.4.1, Figure 2 */
static void test_vote_request_carries_last_log(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1, 2};
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_log(&o, 3, terms, 3, 2, RAFT_NODE_NONE);
    raft_campaign(f->r);
    fx_drain(f);
    const struct raft_msg *m = fx_expect(f, RAFT_MSG_VOTE, 2);
    assert_int_equal(m->term, 3);
    assert_int_equal(m->vote.last_log_index, 3);
    assert_int_equal(m->vote.last_log_term, 2);
    fx_free(f);
}

/* A candidate's own vote counts only once it is durable: it must not win on a vote it
 * could forget in a crash. Reference: Figure 2 ("updated on stable storage before
 * responding"), docs/decisions/002 */
static void test_candidate_counts_own_vote_only_after_persist(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    raft_campaign(f->r);
    fx_drain_nopersist(f);
    assert_int_equal(fx_count(f, RAFT_MSG_VOTE_RESP, 1), 0); /* not sent early */
    struct raft_msg grant = fx_vote_resp(RAFT_MSG_VOTE_RESP, 2, 1, 1, true);
    fx_step(f, &grant);
    fx_drain_nopersist(f);
    assert_int_equal(fx_role(f), RAFT_CANDIDATE); /* one durable vote of three */
    fx_persist(f);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_LEADER);
    fx_free(f);
}

/* "A candidate wins an election if it receives votes from a majority of the servers in
 * the full cluster for the same term." Reference: §5.2 */
static void test_candidate_wins_with_majority(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 5);
    raft_campaign(f->r);
    fx_drain(f);
    struct raft_msg g2 = fx_vote_resp(RAFT_MSG_VOTE_RESP, 2, 1, 1, true);
    struct raft_msg g3 = fx_vote_resp(RAFT_MSG_VOTE_RESP, 3, 1, 1, true);
    fx_step(f, &g2);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_CANDIDATE); /* 2 of 5 */
    fx_step(f, &g3);
    fx_drain(f);
    struct raft_status s = fx_status(f);
    assert_int_equal(s.role, RAFT_LEADER); /* 3 of 5 */
    assert_int_equal(s.leader, 1);
    assert_int_equal(s.term, 1);
    fx_free(f);
}

/* "If many followers become candidates at the same time, votes could be split so that no
 * candidate obtains a majority. When this happens, each candidate will time out and start
 * a new election by incrementing its term." Reference: §5.2 */
static void test_split_vote_starts_new_election(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    raft_campaign(f->r);
    fx_drain(f);
    struct raft_msg no = fx_vote_resp(RAFT_MSG_VOTE_RESP, 2, 1, 1, false);
    fx_step(f, &no);
    fx_drain(f);
    assert_int_not_equal(fx_role(f), RAFT_LEADER);
    fx_clear(f);
    fx_tick(f, 2 * E);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_CANDIDATE);
    assert_int_equal(fx_term(f), 2);
    assert_int_equal(fx_expect(f, RAFT_MSG_VOTE, 2)->term, 2);
    assert_int_equal(fx_expect(f, RAFT_MSG_VOTE, 3)->term, 2);
    fx_free(f);
}

/* "If the leader's term (included in its RPC) is at least as large as the candidate's
 * current term, then the candidate recognizes the leader as legitimate and returns to
 * follower state." Reference: §5.2 */
static void test_candidate_steps_down_on_append_same_term(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    raft_campaign(f->r);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_CANDIDATE);
    struct raft_msg app = fx_append(2, 1, 1, 0, 0, 0, NULL, 0);
    fx_step(f, &app);
    fx_drain(f);
    struct raft_status s = fx_status(f);
    assert_int_equal(s.role, RAFT_FOLLOWER);
    assert_int_equal(s.term, 1);
    assert_int_equal(s.leader, 2);
    fx_free(f);
}

/* "If a candidate or leader discovers that its term is out of date, it immediately reverts
 * to follower state." Reference: §5.1 */
static void test_candidate_reverts_to_follower_on_higher_term(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    raft_campaign(f->r);
    fx_drain(f);
    struct raft_msg no = fx_vote_resp(RAFT_MSG_VOTE_RESP, 2, 1, 5, false);
    fx_step(f, &no);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    assert_int_equal(fx_term(f), 5);
    assert_int_equal(f->hs.term, 5);
    fx_free(f);
}

/* Same rule for a leader. Reference: §5.1 */
static void test_leader_reverts_to_follower_on_higher_term(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_leader(&o, 3);
    struct raft_msg resp = fx_heartbeat_resp(2, 1, 3, 0);
    fx_step(f, &resp);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    assert_int_equal(fx_term(f), 3);
    assert_int_equal(raft_propose(f->r, NULL, 0, &(raft_index){0}), RR_ENOTLEADER);
    fx_free(f);
}

/* "Current terms are exchanged whenever servers communicate; if one server's current term
 * is smaller than the other's, then it updates its current term to the larger value."
 * Reference: §5.1 */
static void test_follower_updates_term_on_higher_term(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    struct raft_msg hb = fx_heartbeat(1, 2, 4, 0, 0);
    fx_step(f, &hb);
    fx_drain(f);
    struct raft_status s = fx_status(f);
    assert_int_equal(s.term, 4);
    assert_int_equal(s.leader, 1);
    assert_int_equal(f->hs.term, 4); /* persisted */
    fx_free(f);
}

/* "If a server receives a request with a stale term number, it rejects the request."
 * (AppendEntries: "Reply false if term < currentTerm".) Reference: §5.1, Figure 2 */
static void test_follower_rejects_stale_term_append(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1};
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, terms, 2, 3, RAFT_NODE_NONE);
    struct raft_entry e[1];
    const raft_term t2[] = {2};
    fx_entries(e, 3, t2, 1);
    struct raft_msg app = fx_append(1, 2, 2, 2, 1, 0, e, 1);
    fx_step(f, &app);
    fx_drain(f);
    struct raft_status s = fx_status(f);
    assert_int_equal(s.term, 3);
    assert_int_equal(s.last_index, 2);
    assert_int_not_equal(s.leader, 1);
    assert_int_equal(f->entry_writes, 0);
    const struct fx_msg *r = fx_find(f, RAFT_MSG_APPEND_RESP, 1);
    if (r != NULL) { /* a reply, if any, tells the stale leader the newer term */
        assert_int_equal(r->m.term, 3);
        assert_false(!r->m.append_resp.rejected && r->m.append_resp.index >= 3);
    }
    fx_free(f);
}

/* RequestVote: "Reply false if term < currentTerm." Reference: §5.1, Figure 2 */
static void test_follower_rejects_stale_term_vote(void **state)
{
    (void)state;
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, NULL, 0, 3, RAFT_NODE_NONE);
    struct raft_msg v = fx_vote(RAFT_MSG_VOTE, 3, 2, 2, 0, 0);
    fx_step(f, &v);
    fx_drain(f);
    assert_int_equal(fx_term(f), 3);
    assert_int_equal(fx_status(f).vote, RAFT_NODE_NONE);
    const struct fx_msg *r = fx_find(f, RAFT_MSG_VOTE_RESP, 3);
    assert_true(r == NULL || !r->m.vote_resp.granted);
    fx_free(f);
}

static bool vote_granted(const struct fx *f, raft_node to)
{
    const struct fx_msg *r = fx_find_last(f, RAFT_MSG_VOTE_RESP, to);
    return r != NULL && r->m.vote_resp.granted;
}

/* "Each server will vote for at most one candidate in a given term, on a first-come-
 * first-served basis." Reference: §5.2 */
static void test_vote_at_most_one_per_term(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    struct raft_msg v2 = fx_vote(RAFT_MSG_VOTE, 2, 1, 1, 0, 0);
    struct raft_msg v3 = fx_vote(RAFT_MSG_VOTE, 3, 1, 1, 0, 0);
    fx_step(f, &v2);
    fx_drain(f);
    assert_true(vote_granted(f, 2));
    fx_step(f, &v3);
    fx_drain(f);
    assert_false(vote_granted(f, 3));
    assert_int_equal(fx_status(f).vote, 2);
    assert_int_equal(f->hs.vote, 2);
    fx_free(f);
}

/* "If votedFor is null or candidateId, and candidate's log is at least as up-to-date as
 * receiver's log, grant vote": a repeated request (lost reply) is granted again.
 * Reference: Figure 2 */
static void test_vote_granted_again_to_same_candidate(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    struct raft_msg v2 = fx_vote(RAFT_MSG_VOTE, 2, 1, 1, 0, 0);
    fx_step(f, &v2);
    fx_drain(f);
    fx_clear(f);
    fx_step(f, &v2);
    fx_drain(f);
    assert_true(vote_granted(f, 2));
    fx_free(f);
}

/* Receiver log [1:1, 2:2] at term 2; a VOTE at term 3 with the given last entry. */
static bool vote_on_log_12(raft_index last_index, raft_term last_term, raft_term cand_term)
{
    const raft_term terms[] = {1, 2};
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_log(&o, 3, terms, 2, 2, RAFT_NODE_NONE);
    struct raft_msg v = fx_vote(RAFT_MSG_VOTE, 2, 1, cand_term, last_index, last_term);
    fx_step(f, &v);
    fx_drain(f);
    bool granted = vote_granted(f, 2);
    assert_int_equal(fx_term(f), cand_term); /* the higher term is adopted either way */
    assert_int_equal(fx_status(f).vote, granted ? 2 : RAFT_NODE_NONE);
    fx_free(f);
    return granted;
}

/* "If the logs have last entries with different terms, then the log with the later term
 * is more up-to-date." A longer log ending in an older term loses. Reference: §5.4.1 */
static void test_vote_rejected_for_lower_last_term(void **state)
{
    (void)state;
    assert_false(vote_on_log_12(3, 1, 3));
}

/* "If the logs end with the same term, then whichever log is longer is more up-to-date."
 * Reference: §5.4.1 */
static void test_vote_rejected_for_shorter_log_same_term(void **state)
{
    (void)state;
    assert_false(vote_on_log_12(1, 2, 3));
}

/* A later last term wins even with a shorter log. Reference: §5.4.1 */
static void test_vote_granted_for_higher_last_term_shorter_log(void **state)
{
    (void)state;
    assert_true(vote_on_log_12(1, 3, 4));
}

/* "At least as up-to-date": an equal log is granted. Reference: §5.4.1, Figure 2 */
static void test_vote_granted_for_equal_log(void **state)
{
    (void)state;
    assert_true(vote_on_log_12(2, 2, 3));
}

/* The vote is persistent state, "updated on stable storage before responding to RPCs":
 * the granted VOTE_RESP leaves only in msgs_after_persist, in the batch that writes the
 * vote. Reference: Figure 2 */
static void test_vote_response_only_after_persist(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    struct raft_msg v2 = fx_vote(RAFT_MSG_VOTE, 2, 1, 1, 0, 0);
    fx_step(f, &v2);
    fx_drain_nopersist(f);
    assert_int_equal(fx_count(f, RAFT_MSG_VOTE_RESP, 0), 0);
    assert_int_equal(f->hs.term, 1);
    assert_int_equal(f->hs.vote, 2);
    fx_persist(f);
    const struct fx_msg *r = fx_find(f, RAFT_MSG_VOTE_RESP, 2);
    FX_NONNULL(r);
    assert_true(r->after_persist);
    assert_true(r->m.vote_resp.granted);
    fx_free(f);
}

/* votedFor is persistent state: a node restarted in the same term keeps its vote and does
 * not grant a second one. Reference: Figure 2 ("Persistent state on all servers") */
static void test_restored_vote_prevents_second_vote(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_log(&o, 3, NULL, 0, 1, 2);
    assert_int_equal(fx_status(f).vote, 2);
    struct raft_msg v3 = fx_vote(RAFT_MSG_VOTE, 3, 1, 1, 0, 0);
    fx_step(f, &v3);
    fx_drain(f);
    assert_false(vote_granted(f, 3));
    assert_int_equal(fx_status(f).vote, 2);
    fx_free(f);
}

/* A candidate has voted for itself in its term, so it refuses a rival of the same term.
 * Reference: §5.2 ("It then votes for itself"; at most one vote per term) */
static void test_candidate_rejects_rival_same_term(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    raft_campaign(f->r);
    fx_drain(f);
    fx_clear(f);
    struct raft_msg v2 = fx_vote(RAFT_MSG_VOTE, 2, 1, 1, 0, 0);
    fx_step(f, &v2);
    fx_drain(f);
    assert_false(vote_granted(f, 2));
    assert_int_equal(fx_status(f).vote, 1);
    assert_int_equal(fx_term(f), 1);
    fx_free(f);
}

/* "If election timeout elapses without receiving AppendEntries RPC from current leader or
 * granting vote to candidate: convert to candidate": granting a vote restarts the timer.
 * Reference: Figure 2, §5.2 */
static void test_granting_vote_resets_election_timer(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    uint32_t t = measure_timeout(&o, 3, NULL, 0, 1);
    struct fx *f = fx_new_log(&o, 3, NULL, 0, 1, RAFT_NODE_NONE);
    fx_tick(f, t - 1);
    struct raft_msg v2 = fx_vote(RAFT_MSG_VOTE, 2, 1, 1, 0, 0);
    fx_step(f, &v2);
    fx_drain(f);
    assert_true(vote_granted(f, 2));
    fx_tick(f, E - 1);
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    assert_int_equal(fx_term(f), 1);
    fx_tick(f, 2 * E);
    assert_int_not_equal(fx_role(f), RAFT_FOLLOWER); /* the timer still runs */
    fx_free(f);
}

/* The same rule, read the other way: a vote request that is refused restarts nothing, even
 * when it carries a later term (the follower adopts the term and stays a follower). A
 * candidate whose log is behind cannot win this vote, and would otherwise postpone the
 * candidacy of a server that can, round after round. Reference: Figure 2, §5.2 */
static void test_refused_vote_keeps_election_timer(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1};
    struct raft_options o = fx_options(1);
    uint32_t t = measure_timeout(&o, 3, terms, 2, 1);
    struct fx *f = fx_new_log(&o, 3, terms, 2, 1, RAFT_NODE_NONE);
    fx_tick(f, t - 1);
    struct raft_msg v2 = fx_vote(RAFT_MSG_VOTE, 2, 1, 2, 1, 1); /* one entry behind */
    fx_step(f, &v2);
    fx_drain(f);
    assert_false(vote_granted(f, 2));
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    assert_int_equal(fx_term(f), 2);
    fx_tick(f, 1);
    assert_int_not_equal(fx_role(f), RAFT_FOLLOWER); /* its own timeout, not a new one */
    assert_int_equal(fx_term(f), 3);
    fx_free(f);
}

/* "A server remains in follower state as long as it receives valid RPCs from a leader."
 * Reference: §5.2 */
static void test_leader_heartbeat_resets_election_timer(void **state)
{
    (void)state;
    struct raft_options o = fx_options(2);
    uint32_t t = measure_timeout(&o, 3, NULL, 0, 1);
    struct fx *f = fx_new_log(&o, 3, NULL, 0, 1, RAFT_NODE_NONE);
    fx_tick(f, t - 1);
    fx_hear_leader(f, 1, 1);
    fx_tick(f, E - 1);
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    assert_int_equal(fx_status(f).leader, 1);
    fx_tick(f, 2 * E);
    assert_int_not_equal(fx_role(f), RAFT_FOLLOWER); /* silence does start an election */
    fx_free(f);
}

/* Leadership transfer: "the target server starts an election" at once on TimeoutNow, without
 * waiting for its timeout or a PreVote round, and marks its requests so voters set their
 * lease aside. Reference: thesis §3.10 */
static void test_timeout_now_starts_election_at_once(void **state)
{
    (void)state;
    struct raft_options o = fx_options(2);
    o.pre_vote = true;
    o.check_quorum = true;
    struct fx *f = fx_new_restore(&o, 3, NULL);
    fx_hear_leader(f, 1, 1);
    fx_clear(f);
    struct raft_msg tn = fx_msg(RAFT_MSG_TIMEOUT_NOW, 1, 2, 1);
    fx_step(f, &tn);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_CANDIDATE);
    assert_int_equal(fx_term(f), 2);
    assert_int_equal(fx_count(f, RAFT_MSG_PRE_VOTE, 0), 0);
    const struct raft_msg *v = fx_expect(f, RAFT_MSG_VOTE, 3);
    assert_int_equal(v->term, 2);
    assert_true(v->vote.transfer);
    fx_free(f);
}

/* Role events: every change of role, term or known leader reaches the caller in the next
 * ready (RAFT_READY_ROLE), and raft_has_ready says so even when nothing else changed, so a
 * node answers, redirects and reports status without polling. Reference: core/raft.h */
static void test_role_change_in_ready(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    assert_false(raft_has_ready(f->r));
    /* A follower learns its leader from a heartbeat of its own term: nothing to persist or
     * send but the answer... */
    struct raft_msg hb = fx_heartbeat(2, 1, 1, 0, 0);
    fx_step(f, &hb);
    assert_true(raft_has_ready(f->r));
    fx_drain(f);
    assert_int_equal(f->ev_role, RAFT_FOLLOWER);
    assert_int_equal(f->ev_term, 1);
    assert_int_equal(f->ev_leader, 2);
    uint32_t events = f->role_events;
    /* ... and a heartbeat of the same leader changes nothing: no event. */
    fx_step(f, &hb);
    fx_drain(f);
    assert_int_equal(f->role_events, events);
    /* Candidate, then leader: each reported once, with the term. */
    raft_campaign(f->r);
    fx_drain(f);
    assert_int_equal(f->ev_role, RAFT_CANDIDATE);
    assert_int_equal(f->ev_term, 2);
    assert_int_equal(f->ev_leader, RAFT_NODE_NONE);
    fx_grant_votes(f);
    fx_drain(f);
    assert_int_equal(f->ev_role, RAFT_LEADER);
    assert_int_equal(f->ev_term, 2);
    assert_int_equal(f->ev_leader, 1);
    assert_int_equal(f->role_events, events + 2);
    /* Deposed by a higher term from a candidate: follower, leader unknown. */
    struct raft_msg vote = fx_vote(RAFT_MSG_VOTE, 3, 1, 5, 100, 5);
    fx_step(f, &vote);
    fx_drain(f);
    assert_int_equal(f->ev_role, RAFT_FOLLOWER);
    assert_int_equal(f->ev_term, 5);
    assert_int_equal(f->ev_leader, RAFT_NODE_NONE);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_role_change_in_ready),
        cmocka_unit_test(test_servers_start_as_followers),
        cmocka_unit_test(test_election_timeout_randomized_in_range),
        cmocka_unit_test(test_follower_starts_election_on_timeout),
        cmocka_unit_test(test_vote_request_carries_last_log),
        cmocka_unit_test(test_candidate_counts_own_vote_only_after_persist),
        cmocka_unit_test(test_candidate_wins_with_majority),
        cmocka_unit_test(test_split_vote_starts_new_election),
        cmocka_unit_test(test_candidate_steps_down_on_append_same_term),
        cmocka_unit_test(test_candidate_reverts_to_follower_on_higher_term),
        cmocka_unit_test(test_leader_reverts_to_follower_on_higher_term),
        cmocka_unit_test(test_follower_updates_term_on_higher_term),
        cmocka_unit_test(test_follower_rejects_stale_term_append),
        cmocka_unit_test(test_follower_rejects_stale_term_vote),
        cmocka_unit_test(test_vote_at_most_one_per_term),
        cmocka_unit_test(test_vote_granted_again_to_same_candidate),
        cmocka_unit_test(test_vote_rejected_for_lower_last_term),
        cmocka_unit_test(test_vote_rejected_for_shorter_log_same_term),
        cmocka_unit_test(test_vote_granted_for_higher_last_term_shorter_log),
        cmocka_unit_test(test_vote_granted_for_equal_log),
        cmocka_unit_test(test_vote_response_only_after_persist),
        cmocka_unit_test(test_restored_vote_prevents_second_vote),
        cmocka_unit_test(test_candidate_rejects_rival_same_term),
        cmocka_unit_test(test_granting_vote_resets_election_timer),
        cmocka_unit_test(test_refused_vote_keeps_election_timer),
        cmocka_unit_test(test_leader_heartbeat_resets_election_timer),
        cmocka_unit_test(test_timeout_now_starts_election_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
