/* PreVote, CheckQuorum and the leader lease (thesis §9.6, §6.2, §4.2.3) as named tests. */
#include "tests/unit/raft_fixture.h"

#define E 5u /* fx_options' election_ticks */

static struct raft_options opts(raft_node id, bool pre_vote, bool check_quorum)
{
    struct raft_options o = fx_options(id);
    o.pre_vote = pre_vote;
    o.check_quorum = check_quorum;
    return o;
}

static bool granted(const struct fx *f, uint8_t type, raft_node to)
{
    const struct fx_msg *r = fx_find_last(f, type, to);
    return r != NULL && r->m.vote_resp.granted;
}

/* Node 2 of 3, a follower that has just heard leader 1 in term 2 (its log: 5 entries of
 * term 2 or fewer), with no messages pending. */
static struct fx *follower_hearing_leader(bool pre_vote, bool check_quorum)
{
    struct raft_options o = opts(2, pre_vote, check_quorum);
    struct fx *f = fx_new_restore(&o, 3, NULL);
    fx_hear_leader(f, 1, 2);
    fx_clear(f);
    return f;
}

/* Node 3 asks f for a vote (or a PreVote) for term 3 with a log as long as f's; true if
 * f granted it. */
static bool vote_from_node_3(struct fx *f, uint8_t type, bool transfer)
{
    struct raft_msg v = fx_vote(type, 3, 2, 3, 5, 2);
    v.vote.transfer = transfer;
    fx_step(f, &v);
    fx_drain(f);
    uint8_t resp = type == RAFT_MSG_PRE_VOTE ? RAFT_MSG_PRE_VOTE_RESP : RAFT_MSG_VOTE_RESP;
    return granted(f, resp, 3);
}

/* "Pre-Vote ... a candidate would only increment its term if it first learns from a
 * majority of the cluster that they would be willing to grant the candidate their votes."
 * The PreVote carries the term it would use; its own term stays. Reference: thesis §9.6 */
static void test_prevote_does_not_bump_term(void **state)
{
    (void)state;
    struct raft_options o = opts(1, true, false);
    struct fx *f = fx_new_restore(&o, 3, NULL);
    fx_tick(f, 2 * E);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_PRE_CANDIDATE);
    assert_int_equal(fx_term(f), 0);
    assert_int_equal(f->hs.term, 0);
    assert_int_equal(fx_expect(f, RAFT_MSG_PRE_VOTE, 2)->term, 1);
    assert_int_equal(fx_expect(f, RAFT_MSG_PRE_VOTE, 3)->term, 1);
    assert_int_equal(fx_count(f, RAFT_MSG_VOTE, 0), 0);
    fx_free(f);
}

/* A partitioned node keeps retrying PreVote without inflating its term, so it cannot
 * disrupt the cluster when it rejoins. Reference: thesis §9.6 */
static void test_prevote_isolated_node_keeps_term(void **state)
{
    (void)state;
    struct raft_options o = opts(3, true, true);
    struct fx *f = fx_new_log(&o, 3, NULL, 0, 4, RAFT_NODE_NONE);
    for (uint32_t i = 0; i < 20 * E; i++) {
        raft_tick(f->r);
        fx_drain(f);
    }
    assert_int_equal(fx_term(f), 4);
    assert_int_not_equal(fx_role(f), RAFT_LEADER);
    assert_int_not_equal(fx_role(f), RAFT_CANDIDATE);
    assert_true(fx_count(f, RAFT_MSG_PRE_VOTE, 1) >= 3); /* it did keep trying */
    assert_int_equal(fx_count(f, RAFT_MSG_VOTE, 0), 0);
    fx_free(f);
}

/* After a majority of PreVote grants the node runs a real election at term + 1.
 * Reference: thesis §9.6 */
static void test_prevote_majority_starts_real_election(void **state)
{
    (void)state;
    struct raft_options o = opts(1, true, false);
    struct fx *f = fx_new_restore(&o, 3, NULL);
    fx_tick(f, 2 * E);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_PRE_CANDIDATE);
    fx_clear(f);
    struct raft_msg g = fx_vote_resp(RAFT_MSG_PRE_VOTE_RESP, 2, 1, 1, true);
    fx_step(f, &g);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_CANDIDATE);
    assert_int_equal(fx_term(f), 1);
    assert_int_equal(f->hs.term, 1);
    assert_int_equal(f->hs.vote, 1);
    assert_int_equal(fx_expect(f, RAFT_MSG_VOTE, 2)->term, 1);
    fx_free(f);
}

/* A follower that hears from its leader refuses PreVotes: a rejoining node cannot
 * disrupt a stable leader. Reference: thesis §9.6 ("the voters have not received
 * heartbeats from a valid leader for at least a baseline election timeout") */
static void test_prevote_rejected_while_hearing_leader(void **state)
{
    (void)state;
    struct fx *f = follower_hearing_leader(true, true);
    assert_false(vote_from_node_3(f, RAFT_MSG_PRE_VOTE, false));
    struct raft_status s = fx_status(f);
    assert_int_equal(s.term, 2);
    assert_int_equal(s.leader, 1);
    assert_int_equal(s.role, RAFT_FOLLOWER);
    fx_free(f);
}

/* Once the leader has been silent for an election timeout, the same PreVote is granted,
 * still without changing the voter's term. Reference: thesis §9.6 */
static void test_prevote_granted_after_leader_silent(void **state)
{
    (void)state;
    struct fx *f = follower_hearing_leader(true, true);
    fx_tick(f, 2 * E);
    fx_drain(f);
    fx_clear(f);
    assert_true(vote_from_node_3(f, RAFT_MSG_PRE_VOTE, false));
    assert_int_equal(fx_term(f), 2);
    fx_free(f);
}

/* A stable leader refuses PreVotes and keeps its term and role. Reference: thesis §9.6 */
static void test_leader_rejects_prevote_and_stays_leader(void **state)
{
    (void)state;
    struct raft_options o = opts(1, true, true);
    struct fx *f = fx_new_leader(&o, 3);
    raft_term t = fx_term(f);
    struct raft_msg pv = fx_vote(RAFT_MSG_PRE_VOTE, 3, 1, t + 1, fx_last(f), t);
    fx_step(f, &pv);
    fx_drain(f);
    assert_false(granted(f, RAFT_MSG_PRE_VOTE_RESP, 3));
    assert_int_equal(fx_role(f), RAFT_LEADER);
    assert_int_equal(fx_term(f), t);
    fx_free(f);
}

/* A PreVote is granted only to a log at least as up-to-date as the voter's, exactly as a
 * vote would be. Reference: thesis §9.6, §5.4.1 */
static void test_prevote_rejected_for_stale_log(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 2};
    struct raft_options o = opts(2, true, true);
    struct fx *f = fx_new_log(&o, 3, terms, 2, 2, RAFT_NODE_NONE);
    struct raft_msg pv = fx_vote(RAFT_MSG_PRE_VOTE, 3, 2, 3, 5, 1);
    fx_step(f, &pv);
    fx_drain(f);
    assert_false(granted(f, RAFT_MSG_PRE_VOTE_RESP, 3));
    fx_clear(f);
    struct raft_msg ok = fx_vote(RAFT_MSG_PRE_VOTE, 3, 2, 3, 2, 2);
    fx_step(f, &ok);
    fx_drain(f);
    assert_true(granted(f, RAFT_MSG_PRE_VOTE_RESP, 3));
    assert_int_equal(fx_term(f), 2);
    fx_free(f);
}

/* A pre-candidate that hears from a leader of its term gives up its PreVote campaign.
 * Reference: thesis §9.6, §5.2 */
static void test_pre_candidate_follows_leader_of_its_term(void **state)
{
    (void)state;
    struct raft_options o = opts(1, true, false);
    struct fx *f = fx_new_log(&o, 3, NULL, 0, 2, RAFT_NODE_NONE);
    fx_tick(f, 2 * 5u);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_PRE_CANDIDATE);
    struct raft_msg app = fx_append(2, 1, 2, 0, 0, 0, NULL, 0);
    fx_step(f, &app);
    fx_drain(f);
    struct raft_status s = fx_status(f);
    assert_int_equal(s.role, RAFT_FOLLOWER);
    assert_int_equal(s.leader, 2);
    assert_int_equal(s.term, 2);
    fx_free(f);
}

/* CheckQuorum: "a leader steps down if an election timeout elapses without a successful
 * round of heartbeats to a majority of its cluster." Reference: thesis §6.2 */
static void test_check_quorum_leader_steps_down(void **state)
{
    (void)state;
    struct raft_options o = opts(1, false, true);
    struct fx *f = fx_new_leader(&o, 3);
    for (uint32_t i = 0; i < 3 * E; i++) {
        raft_tick(f->r);
        fx_drain(f);
    }
    struct raft_status s = fx_status(f);
    assert_int_equal(s.role, RAFT_FOLLOWER);
    assert_int_equal(s.leader, RAFT_NODE_NONE);
    fx_free(f);
}

/* The counterpart: with one follower answering (a majority with itself), the leader stays.
 * Reference: thesis §6.2 */
static void test_check_quorum_leader_stays_with_quorum(void **state)
{
    (void)state;
    struct raft_options o = opts(1, false, true);
    struct fx *f = fx_new_leader(&o, 3);
    raft_term t = fx_term(f);
    for (uint32_t i = 0; i < 6 * E; i++) {
        raft_tick(f->r);
        fx_drain(f);
        const struct fx_msg *hb = fx_find_last(f, RAFT_MSG_HEARTBEAT, 2);
        struct raft_msg resp = fx_heartbeat_resp(2, 1, t, hb ? hb->m.heartbeat.read_ctx : 0);
        fx_clear(f);
        fx_step(f, &resp);
        fx_drain(f);
        fx_clear(f);
    }
    assert_int_equal(fx_role(f), RAFT_LEADER);
    assert_int_equal(fx_term(f), t);
    fx_free(f);
}

/* "If a server receives a RequestVote request within the minimum election timeout of
 * hearing from a current leader, it does not update its term or grant its vote."
 * Reference: thesis §4.2.3 */
static void test_lease_follower_ignores_higher_term_vote(void **state)
{
    (void)state;
    struct fx *f = follower_hearing_leader(false, true);
    assert_false(vote_from_node_3(f, RAFT_MSG_VOTE, false));
    struct raft_status s = fx_status(f);
    assert_int_equal(s.term, 2);
    assert_int_equal(s.leader, 1);
    assert_int_equal(s.vote, RAFT_NODE_NONE);
    fx_free(f);
}

/* A leadership transfer's election must be able to disrupt the current leader: a vote
 * request marked as a transfer ignores the lease. Reference: thesis §3.10, §4.2.3 */
static void test_lease_bypassed_by_transfer_vote(void **state)
{
    (void)state;
    struct fx *f = follower_hearing_leader(false, true);
    assert_true(vote_from_node_3(f, RAFT_MSG_VOTE, true));
    assert_int_equal(fx_term(f), 3);
    assert_int_equal(fx_status(f).vote, 3);
    fx_free(f);
}

/* A leader with CheckQuorum holds the lease too: a higher-term vote request from a
 * partitioned node neither deposes it nor changes its term. Reference: thesis §4.2.3 */
static void test_lease_leader_ignores_higher_term_vote(void **state)
{
    (void)state;
    struct raft_options o = opts(1, false, true);
    struct fx *f = fx_new_leader(&o, 3);
    raft_term t = fx_term(f);
    struct raft_msg v = fx_vote(RAFT_MSG_VOTE, 3, 1, t + 5, fx_last(f) + 5, t);
    fx_step(f, &v);
    fx_drain(f);
    assert_false(granted(f, RAFT_MSG_VOTE_RESP, 3));
    assert_int_equal(fx_role(f), RAFT_LEADER);
    assert_int_equal(fx_term(f), t);
    fx_free(f);
}

/* PreVote + CheckQuorum under a partial partition: node 3 cannot reach the leader but can
 * reach node 2, which still hears the leader; node 3 cannot win and the leader's term does
 * not move. Reference: thesis §9.6, §6.2; etcd's TestPreVoteWithCheckQuorum */
static void test_partial_partition_cannot_disrupt_leader(void **state)
{
    (void)state;
    struct fx_net net;
    memset(&net, 0, sizeof(net));
    net.count = 3;
    for (raft_node id = 1; id <= 3; id++) {
        struct raft_options o = opts(id, true, true);
        net.n[id] = fx_new_restore(&o, 3, NULL);
    }
    raft_campaign(net.n[1]->r);
    fx_net_deliver(&net);
    assert_int_equal(fx_role(net.n[1]), RAFT_LEADER);
    raft_term t = fx_term(net.n[1]);
    fx_net_cut(&net, 1, 3);
    uint32_t prevotes_before = net.delivered[RAFT_MSG_PRE_VOTE];
    for (uint32_t i = 0; i < 12 * E; i++) {
        fx_net_tick(&net);
        assert_int_equal(fx_role(net.n[1]), RAFT_LEADER);
        assert_int_equal(fx_term(net.n[1]), t);
        assert_int_equal(fx_term(net.n[2]), t);
        assert_int_equal(fx_status(net.n[2]).leader, 1);
        assert_int_not_equal(fx_role(net.n[3]), RAFT_LEADER);
    }
    assert_true(net.delivered[RAFT_MSG_PRE_VOTE] > prevotes_before); /* node 3 did try */
    fx_net_free(&net);
}

/* The case PreVote exists for: a node isolated for many election timeouts rejoins, and the
 * stable leader keeps its term and role; the node simply follows it again.
 * Reference: thesis §9.6 */
static void test_rejoining_node_does_not_disrupt_leader(void **state)
{
    (void)state;
    struct fx_net net;
    memset(&net, 0, sizeof(net));
    net.count = 3;
    for (raft_node id = 1; id <= 3; id++) {
        struct raft_options o = opts(id, true, true);
        net.n[id] = fx_new_restore(&o, 3, NULL);
    }
    raft_campaign(net.n[1]->r);
    fx_net_deliver(&net);
    assert_int_equal(fx_role(net.n[1]), RAFT_LEADER);
    raft_term t = fx_term(net.n[1]);
    fx_net_cut(&net, 1, 3);
    fx_net_cut(&net, 2, 3);
    for (uint32_t i = 0; i < 20 * E; i++) {
        fx_net_tick(&net);
    }
    memset(net.cut, 0, sizeof(net.cut));
    for (uint32_t i = 0; i < 4 * E; i++) {
        fx_net_tick(&net);
        assert_int_equal(fx_role(net.n[1]), RAFT_LEADER);
        assert_int_equal(fx_term(net.n[1]), t);
    }
    struct raft_status s3 = fx_status(net.n[3]);
    assert_int_equal(s3.term, t);
    assert_int_equal(s3.leader, 1);
    assert_int_equal(s3.last_index, fx_last(net.n[1]));
    fx_net_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_prevote_does_not_bump_term),
        cmocka_unit_test(test_prevote_isolated_node_keeps_term),
        cmocka_unit_test(test_prevote_majority_starts_real_election),
        cmocka_unit_test(test_prevote_rejected_while_hearing_leader),
        cmocka_unit_test(test_prevote_granted_after_leader_silent),
        cmocka_unit_test(test_leader_rejects_prevote_and_stays_leader),
        cmocka_unit_test(test_prevote_rejected_for_stale_log),
        cmocka_unit_test(test_pre_candidate_follows_leader_of_its_term),
        cmocka_unit_test(test_check_quorum_leader_steps_down),
        cmocka_unit_test(test_check_quorum_leader_stays_with_quorum),
        cmocka_unit_test(test_lease_follower_ignores_higher_term_vote),
        cmocka_unit_test(test_lease_bypassed_by_transfer_vote),
        cmocka_unit_test(test_lease_leader_ignores_higher_term_vote),
        cmocka_unit_test(test_partial_partition_cannot_disrupt_leader),
        cmocka_unit_test(test_rejoining_node_does_not_disrupt_leader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
