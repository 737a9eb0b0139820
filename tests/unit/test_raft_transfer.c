/* Leadership transfer (thesis §3.10) as named tests: "1. The prior leader stops accepting
 * new client requests. 2. The prior leader fully updates the target server's log to match
 * its own ... 3. The prior leader sends a TimeoutNow request to the target server ... If
 * the transfer does not complete within an election timeout, the prior leader aborts the
 * transfer and resumes accepting client requests." */
#include "tests/unit/raft_fixture.h"

#define E 5u /* fx_options' election_ticks */

static struct fx *leader3(void)
{
    struct raft_options o = fx_options(1);
    return fx_new_leader(&o, 3);
}

static void ack(struct fx *f, raft_node from, raft_index index)
{
    struct raft_msg m = fx_append_resp(from, f->o.id, fx_term(f), false, index);
    fx_step(f, &m);
    fx_drain(f);
}

/* Step 1: no proposals (nor configuration changes) while the transfer runs. Reference:
 * thesis §3.10 */
static void test_transfer_refuses_proposals(void **state)
{
    (void)state;
    struct fx *f = leader3();
    assert_int_equal(raft_transfer_leader(f->r, 2), 0);
    assert_int_equal(raft_transfer_target(f->r), 2);
    assert_int_equal(fx_status(f).transfer_target, 2);
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"x", 1, NULL), RR_ETRANSFER);
    assert_int_equal(raft_change_member(f->r, 4, RAFT_LEARNER, NULL), RR_ETRANSFER);
    assert_int_equal(raft_transfer_leader(f->r, 3), RR_ETRANSFER);
    fx_free(f);
}

/* Steps 2 and 3: TimeoutNow goes only once the target holds the leader's whole log.
 * Reference: thesis §3.10 */
static void test_transfer_updates_target_then_sends_timeout_now(void **state)
{
    (void)state;
    struct fx *f = leader3();
    raft_index idx = 0;
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"x", 1, &idx), 0);
    fx_drain(f);
    ack(f, 3, idx); /* committed; 2 lags */
    assert_int_equal(fx_commit(f), idx);
    fx_clear(f);
    assert_int_equal(raft_transfer_leader(f->r, 2), 0);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_TIMEOUT_NOW, 0), 0);
    ack(f, 2, idx - 1); /* not there yet */
    assert_int_equal(fx_count(f, RAFT_MSG_TIMEOUT_NOW, 0), 0);
    ack(f, 2, idx);
    assert_int_equal(fx_count(f, RAFT_MSG_TIMEOUT_NOW, 2), 1);
    assert_int_equal(fx_count(f, RAFT_MSG_TIMEOUT_NOW, 0), 1);
    fx_free(f);

    /* An up-to-date target is told at once. */
    f = leader3();
    assert_int_equal(raft_transfer_leader(f->r, 3), 0);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_TIMEOUT_NOW, 3), 1);
    fx_free(f);
}

/* End to end, with PreVote and CheckQuorum on: the target campaigns at once, the voters
 * disregard their leader lease for it, and it wins in the next term with the whole log.
 * Reference: thesis §3.10, §4.2.3 */
static void test_transfer_target_wins(void **state)
{
    (void)state;
    struct fx_net net;
    fx_net_init(&net, 3, 3, true, true);
    fx_net_elect(&net, 1);
    raft_term term = fx_term(net.n[1]);
    raft_index idx = 0;
    assert_int_equal(raft_propose(net.n[1]->r, (const uint8_t *)"x", 1, &idx), 0);
    assert_int_equal(raft_transfer_leader(net.n[1]->r, 3), 0);
    fx_net_deliver(&net);
    assert_int_equal(net.delivered[RAFT_MSG_TIMEOUT_NOW], 1);
    assert_int_equal(fx_role(net.n[3]), RAFT_LEADER);
    assert_int_equal(fx_role(net.n[1]), RAFT_FOLLOWER);
    assert_int_equal(fx_term(net.n[3]), term + 1);
    assert_int_equal(raft_transfer_target(net.n[1]->r), RAFT_NODE_NONE);
    fx_net_tick(&net);
    assert_true(fx_commit(net.n[3]) > idx); /* the transferred entry and the new no-op */
    assert_int_equal(fx_status(net.n[1]).leader, 3);
    assert_int_equal(raft_propose(net.n[3]->r, (const uint8_t *)"y", 1, NULL), 0);
    fx_net_free(&net);
}

/* A target that never answers: after an election timeout the transfer is abandoned and
 * proposals are accepted again. Reference: thesis §3.10 */
static void test_transfer_aborts_after_election_timeout(void **state)
{
    (void)state;
    struct fx *f = leader3();
    raft_index idx = 0;
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"x", 1, &idx), 0);
    fx_drain(f);
    ack(f, 3, idx);
    assert_int_equal(raft_transfer_leader(f->r, 2), 0); /* 2 lags and stays silent */
    fx_tick(f, E - 1);
    fx_drain(f);
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"y", 1, NULL), RR_ETRANSFER);
    fx_tick(f, 1);
    fx_drain(f);
    assert_int_equal(raft_transfer_target(f->r), RAFT_NODE_NONE);
    assert_int_equal(fx_role(f), RAFT_LEADER);
    assert_int_equal(fx_count(f, RAFT_MSG_TIMEOUT_NOW, 0), 0);
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"y", 1, NULL), 0);
    assert_int_equal(raft_transfer_leader(f->r, 3), 0); /* and a new transfer may start */
    fx_free(f);
}

/* Only a voter can take the office: a learner, an unknown server and the leader itself are
 * refused, and only a leader transfers. Reference: thesis §3.10, §4.2.1 */
static void test_transfer_to_non_voter_refused(void **state)
{
    (void)state;
    const raft_node voters[] = {1, 2, 3};
    const raft_node learners[] = {4};
    struct raft_config c;
    fx_config_ids(&c, voters, 3, learners, 1);
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_config(&o, &c, NULL);
    assert_int_equal(raft_transfer_leader(f->r, 2), RR_ENOTLEADER);
    fx_make_leader(f);
    fx_ack_appends(f);
    assert_int_equal(raft_transfer_leader(f->r, 4), RR_EINVAL);
    assert_int_equal(raft_transfer_leader(f->r, 9), RR_EINVAL);
    assert_int_equal(raft_transfer_leader(f->r, 1), RR_EINVAL);
    assert_int_equal(raft_transfer_target(f->r), RAFT_NODE_NONE);
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"x", 1, NULL), 0);
    fx_free(f);
}

/* Only the leader this node follows may tell it to campaign at once: a TimeoutNow from any
 * other peer (a removed server, an aborted transfer's late message, a node that never led)
 * is ignored, so it cannot bypass PreVote and the voters' leases. The same message from
 * the leader starts an election. Reference: thesis §3.10, §4.2.3 */
static void test_timeout_now_only_from_current_leader(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    fx_hear_leader(f, 1, 3);
    struct raft_msg tn = fx_msg(RAFT_MSG_TIMEOUT_NOW, 3, 2, 3);
    fx_step(f, &tn);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    assert_int_equal(fx_term(f), 3);

    /* No leader known in this term: still ignored. */
    struct fx *g = fx_new(2, 3);
    tn = fx_msg(RAFT_MSG_TIMEOUT_NOW, 1, 2, 1);
    fx_step(g, &tn);
    fx_drain(g);
    assert_int_equal(fx_role(g), RAFT_FOLLOWER);
    fx_free(g);

    tn = fx_msg(RAFT_MSG_TIMEOUT_NOW, 1, 2, 3);
    fx_step(f, &tn);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_CANDIDATE);
    assert_int_equal(fx_term(f), 4);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transfer_refuses_proposals),
        cmocka_unit_test(test_transfer_updates_target_then_sends_timeout_now),
        cmocka_unit_test(test_transfer_target_wins),
        cmocka_unit_test(test_transfer_aborts_after_election_timeout),
        cmocka_unit_test(test_transfer_to_non_voter_refused),
        cmocka_unit_test(test_timeout_now_only_from_current_leader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
