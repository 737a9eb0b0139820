/* Non-voting members (learners, thesis §4.2.1) in elections and commitment, as named tests:
 * "they do not vote and are not counted for the purpose of commitment". */
#include "tests/unit/raft_fixture.h"

#define E 5u /* fx_options' election_ticks */

/* Voters 1..3 and learners 4 and 5 (two, so that counting them would tip a majority). */
static void config_with_learner(struct raft_config *c)
{
    fx_config(c, 5);
    c->members[3].role = RAFT_LEARNER;
    c->members[4].role = RAFT_LEARNER;
}

static struct fx *node(raft_node id)
{
    struct raft_config c;
    config_with_learner(&c);
    struct raft_options o = fx_options(id);
    return fx_new_config(&o, &c, NULL);
}

/* A learner never starts an election, however long it hears nothing. Reference: thesis
 * §4.2.1 */
static void test_learner_never_campaigns(void **state)
{
    (void)state;
    struct fx *f = node(4);
    for (uint32_t i = 0; i < 10 * E; i++) {
        raft_tick(f->r);
        fx_drain(f);
    }
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    assert_int_equal(fx_term(f), 0);
    assert_int_equal(fx_count(f, RAFT_MSG_VOTE, 0) + fx_count(f, RAFT_MSG_PRE_VOTE, 0), 0);
    fx_free(f);
}

/* A candidate asks only voters, and a learner's grant does not count toward a majority.
 * Reference: thesis §4.2.1 */
static void test_learner_vote_not_counted(void **state)
{
    (void)state;
    struct fx *f = node(1);
    raft_campaign(f->r);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_VOTE, 4), 0);
    assert_int_equal(fx_count(f, RAFT_MSG_VOTE, 0), 2);
    assert_int_equal(fx_count(f, RAFT_MSG_VOTE, 5), 0);
    struct raft_msg g4 = fx_vote_resp(RAFT_MSG_VOTE_RESP, 4, 1, 1, true);
    struct raft_msg g5 = fx_vote_resp(RAFT_MSG_VOTE_RESP, 5, 1, 1, true);
    raft_step(f->r, &g4);
    raft_step(f->r, &g5);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_CANDIDATE); /* itself + two learners: no majority */
    struct raft_msg g2 = fx_vote_resp(RAFT_MSG_VOTE_RESP, 2, 1, 1, true);
    fx_step(f, &g2);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_LEADER);
    fx_free(f);
}

/* The leader replicates to a learner but does not count it for commitment.
 * Reference: thesis §4.2.1 */
static void test_learner_ack_not_counted_for_commit(void **state)
{
    (void)state;
    struct fx *f = node(1);
    fx_make_leader(f);
    const struct raft_msg *app = fx_expect(f, RAFT_MSG_APPEND, 4); /* it is replicated to */
    assert_int_equal(app->append.entry_count, 1);
    fx_clear(f);
    struct raft_msg a4 = fx_append_resp(4, 1, 1, false, 1);
    struct raft_msg a5 = fx_append_resp(5, 1, 1, false, 1);
    fx_step(f, &a4);
    fx_step(f, &a5);
    fx_drain(f);
    assert_int_equal(fx_progress(f, 4).match, 1);
    assert_int_equal(fx_commit(f), 0); /* itself + two learners: no majority of voters */
    struct raft_msg a2 = fx_append_resp(2, 1, 1, false, 1);
    fx_step(f, &a2);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 1);
    fx_free(f);
}

/* A server added as a learner catches up while the leader reports how far behind it is,
 * then is promoted by a configuration change and counts from then on: "the leader should
 * ... add the new server as a non-voting member ... once it has caught up, the
 * configuration change can proceed". Reference: thesis §4.2.1 */
static void test_learner_catches_up_lag_reported_then_promoted(void **state)
{
    (void)state;
    struct fx_net net;
    fx_net_init(&net, 4, 3, false, false); /* 4 waits with the bootstrap {1, 2, 3} */
    fx_net_elect(&net, 1);
    struct fx *l = net.n[1];
    for (uint32_t i = 0; i < 8; i++) {
        assert_int_equal(raft_propose(l->r, (const uint8_t *)"x", 1, NULL), 0);
    }
    fx_net_tick(&net);
    raft_index idx = 0;
    assert_int_equal(raft_change_member(l->r, 4, RAFT_LEARNER, &idx), 0);
    struct raft_member_progress mp[4];
    assert_int_equal(raft_members_progress(l->r, mp, 4), 3);
    const struct raft_member_progress *p4 = NULL;
    for (uint32_t i = 0; i < 3; i++) {
        p4 = mp[i].id == 4 ? &mp[i] : p4;
    }
    FX_NONNULL(p4);
    assert_int_equal(p4->role, RAFT_LEARNER);
    assert_int_equal(p4->match, 0);
    assert_int_equal(p4->lag, idx); /* the whole log */
    fx_net_tick(&net);
    fx_net_tick(&net);
    assert_int_equal(raft_members_progress(l->r, mp, 4), 3);
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(mp[i].lag, 0);
    }
    assert_int_equal(fx_last(net.n[4]), idx);
    assert_int_equal(fx_commit(net.n[4]), idx);
    assert_int_equal(fx_role(net.n[4]), RAFT_FOLLOWER);
    assert_int_equal(raft_config_role(fx_config_in_force(net.n[4]->r), 4), RAFT_LEARNER);
    /* Promotion: one voter more, the single-server path. */
    assert_int_equal(raft_change_member(l->r, 4, RAFT_VOTER, &idx), 0);
    assert_false(raft_config_is_joint(fx_config_in_force(l->r)));
    fx_net_tick(&net);
    assert_int_equal(fx_commit(l), idx);
    assert_true(raft_config_is_voter(fx_config_in_force(net.n[4]->r), 4));
    /* With 3 cut off, {1, 2, 4} is a majority of four voters only because 4 counts now. */
    fx_net_cut(&net, 1, 3);
    raft_index p = 0;
    assert_int_equal(raft_propose(l->r, (const uint8_t *)"y", 1, &p), 0);
    fx_net_tick(&net);
    assert_int_equal(fx_commit(l), p);
    fx_net_cut(&net, 1, 2);
    assert_int_equal(raft_propose(l->r, (const uint8_t *)"z", 1, &p), 0);
    fx_net_tick(&net);
    assert_true(fx_commit(l) < p); /* {1, 4}: two of four */
    fx_net_free(&net);
}

/* Only a leader reports progress. Reference: thesis §4.2.1 */
static void test_members_progress_leader_only(void **state)
{
    (void)state;
    struct fx *f = node(2);
    struct raft_member_progress mp[4];
    assert_int_equal(raft_members_progress(f->r, mp, 4), RR_ENOTLEADER);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learner_never_campaigns),
        cmocka_unit_test(test_learner_vote_not_counted),
        cmocka_unit_test(test_learner_ack_not_counted_for_commit),
        cmocka_unit_test(test_learner_catches_up_lag_reported_then_promoted),
        cmocka_unit_test(test_members_progress_leader_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
