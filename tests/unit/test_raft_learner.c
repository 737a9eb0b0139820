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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_learner_never_campaigns),
        cmocka_unit_test(test_learner_vote_not_counted),
        cmocka_unit_test(test_learner_ack_not_counted_for_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
