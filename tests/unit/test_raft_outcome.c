/* The outcome of a proposal, decided from what the proposing node applies (core/raft.h,
 * raft_propose): (i, t) has committed iff the entry applied at i has term t; it has failed
 * once an entry (j <= i, u > t) is applied; a snapshot (s, v) restored instead leaves i <= s
 * unknown and fails i > s when v > t. These tests drive real clusters into each case and
 * compare the rule's verdict with what the cluster actually committed. */
#include "tests/unit/raft_fixture.h"

enum outcome {
    OUTCOME_PENDING = 0,
    OUTCOME_COMMITTED = 1,
    OUTCOME_FAILED = 2,
    OUTCOME_UNKNOWN = 3,
};

/* The rule, exactly as a node applies it, over what node `f` has applied (in order) and the
 * snapshot it restored, if any. */
static enum outcome outcome_of(const struct fx *f, raft_index i, raft_term t)
{
    for (uint32_t k = 0; k < f->applied_count; k++) {
        raft_index j = f->applied[k];
        raft_term u = f->applied_term[k];
        if (j == i) {
            return u == t ? OUTCOME_COMMITTED : OUTCOME_FAILED;
        }
        if (j < i && u > t) {
            return OUTCOME_FAILED;
        }
    }
    if (f->snap_index >= i) {
        return OUTCOME_UNKNOWN;
    }
    if (f->snap_index > 0 && f->snap_term > t) {
        return OUTCOME_FAILED;
    }
    return OUTCOME_PENDING;
}

static raft_index propose(struct fx *f)
{
    raft_index index = 0;
    uint8_t data[4] = {1, 2, 3, 4};
    assert_int_equal(raft_propose(f->r, data, sizeof(data), &index), 0);
    return index;
}

/* An entry a majority stores commits, and the proposer applies it with its own term.
 * Reference: paper §5.3 */
static void test_outcome_committed_when_applied_with_same_term(void **state)
{
    (void)state;
    struct fx_net net;
    fx_net_init(&net, 3, 3, false, false);
    fx_net_elect(&net, 1);
    raft_term t = fx_term(net.n[1]);
    raft_index i = propose(net.n[1]);
    assert_int_equal(outcome_of(net.n[1], i, t), OUTCOME_PENDING);
    fx_net_deliver(&net);
    assert_int_equal(outcome_of(net.n[1], i, t), OUTCOME_COMMITTED);
    fx_net_free(&net);
}

/* A deposed leader's proposals that the new leader never held are replaced: the one at
 * the index of the new leader's no-op fails by the first case, and those after it fail at
 * once by the second (terms of committed entries never decrease), although nothing is
 * applied at their indexes yet — in an idle group nothing may be for a long time. Nothing
 * else decided them: not the truncation, not the step-down. Reference: paper §5.3, §5.4 */
static void test_outcome_failed_when_replaced(void **state)
{
    (void)state;
    struct fx_net net;
    fx_net_init(&net, 3, 3, false, false);
    fx_net_elect(&net, 1);
    struct fx *old = net.n[1];
    raft_term t = fx_term(old);
    fx_net_cut(&net, 1, 2);
    fx_net_cut(&net, 1, 3);
    raft_index i = propose(old);
    propose(old);
    propose(old);
    fx_net_deliver(&net);
    /* 2 and 3 elect 2 in a later term; its no-op lands at i. */
    fx_net_elect(&net, 2);
    assert_true(fx_term(net.n[2]) > t);
    /* The old leader hears the new term: its suffix is truncated, it applies (i, t + 1). */
    net.cut[1][2] = net.cut[2][1] = false;
    net.cut[1][3] = net.cut[3][1] = false;
    for (int k = 0; k < 3; k++) {
        fx_net_tick(&net);
    }
    assert_int_equal(fx_role(old), RAFT_FOLLOWER);
    assert_true(old->truncations > 0);
    assert_int_equal(raft_term_at(net.n[2]->r, i), fx_term(net.n[2]));
    assert_int_equal(outcome_of(old, i, t), OUTCOME_FAILED);
    assert_int_equal(outcome_of(old, i + 1, t), OUTCOME_FAILED);
    assert_int_equal(outcome_of(old, i + 2, t), OUTCOME_FAILED);
    assert_true(old->applied_last < i + 1); /* decided without anything applied there */
    /* What the cluster committed agrees: no entry of term t at those indexes anywhere. */
    for (raft_node id = 1; id <= 3; id++) {
        for (raft_index k = i; k <= i + 2; k++) {
            assert_true(raft_term_at(net.n[id]->r, k) != t);
        }
    }
    fx_net_free(&net);
}

/* A deposed leader's proposal that the new leader did hold commits under the new leader,
 * with the old term: a step-down alone settles nothing. Reference: paper §5.4.2 */
static void test_outcome_committed_by_successor(void **state)
{
    (void)state;
    struct fx_net net;
    fx_net_init(&net, 3, 3, false, false);
    fx_net_elect(&net, 1);
    struct fx *old = net.n[1];
    raft_term t = fx_term(old);
    net.cut[2][1] = true; /* 2 stores the entry, its ack is lost */
    fx_net_cut(&net, 1, 3);
    raft_index i = propose(old);
    fx_net_deliver(&net);
    assert_int_equal(raft_term_at(net.n[2]->r, i), t);
    assert_int_equal(outcome_of(old, i, t), OUTCOME_PENDING);
    fx_net_cut(&net, 1, 2);
    fx_net_elect(&net, 2); /* 2 wins with 3's vote (its log is longer) */
    net.cut[1][2] = net.cut[2][1] = false;
    net.cut[1][3] = net.cut[3][1] = false;
    for (int k = 0; k < 3; k++) {
        fx_net_tick(&net);
    }
    assert_int_equal(fx_role(old), RAFT_FOLLOWER);
    assert_int_equal(outcome_of(old, i, t), OUTCOME_COMMITTED);
    fx_net_free(&net);
}

/* A proposer that catches up through a snapshot covering its proposal cannot tell: the
 * outcome is unknown, and the client retries through its session (thesis §6.3).
 * Reference: paper §7 */
static void test_outcome_unknown_under_snapshot(void **state)
{
    (void)state;
    struct fx_net net;
    fx_net_init(&net, 3, 3, false, false);
    fx_net_elect(&net, 1);
    struct fx *old = net.n[1];
    raft_term t = fx_term(old);
    fx_net_cut(&net, 1, 2);
    fx_net_cut(&net, 1, 3);
    raft_index i = propose(old);
    raft_index last = propose(old);
    fx_net_deliver(&net);
    fx_net_elect(&net, 2);
    struct fx *nl = net.n[2];
    for (int k = 0; k < 5; k++) {
        propose(nl);
    }
    fx_net_deliver(&net);
    fx_net_tick(&net);
    raft_index applied = fx_status(nl).applied;
    assert_true(applied > last);
    assert_int_equal(fx_snapshot_taken(nl, applied, "sm", 2, 0), 0);
    net.cut[1][2] = net.cut[2][1] = false;
    net.cut[1][3] = net.cut[3][1] = false;
    for (int k = 0; k < 4; k++) {
        fx_net_tick(&net);
    }
    assert_true(old->snap_index >= last);
    assert_true(old->applied_last >= applied);
    assert_int_equal(outcome_of(old, i, t), OUTCOME_UNKNOWN);
    assert_int_equal(outcome_of(old, last, t), OUTCOME_UNKNOWN);
    /* A later index past the snapshot, had it been proposed in term t, would have failed. */
    assert_int_equal(outcome_of(old, old->snap_index + 1, t), OUTCOME_FAILED);
    fx_net_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_outcome_committed_when_applied_with_same_term),
        cmocka_unit_test(test_outcome_failed_when_replaced),
        cmocka_unit_test(test_outcome_committed_by_successor),
        cmocka_unit_test(test_outcome_unknown_under_snapshot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
