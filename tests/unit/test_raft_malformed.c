/* raft_step's contract for malformed input: an error, and no change of state (core/raft.h;
 * STYLE: outside input is an operating error, never an assertion). */
#include "tests/unit/raft_fixture.h"

/* A follower of node 1 at term 1 holding [1:1, 2:1], drained. */
static struct fx *follower(void)
{
    const raft_term terms[] = {1, 1};
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, terms, 2, 1, RAFT_NODE_NONE);
    fx_hear_leader(f, 1, 1);
    fx_clear(f);
    return f;
}

/* Steps m, expects an error, and checks nothing observable changed. */
static void expect_refused(struct fx *f, const struct raft_msg *m)
{
    struct raft_status before = fx_status(f);
    assert_true(raft_step(f->r, m) < 0);
    struct raft_status after = fx_status(f);
    assert_int_equal(after.term, before.term);
    assert_int_equal(after.vote, before.vote);
    assert_int_equal(after.role, before.role);
    assert_int_equal(after.leader, before.leader);
    assert_int_equal(after.commit, before.commit);
    assert_int_equal(after.last_index, before.last_index);
    assert_int_equal(after.last_term, before.last_term);
    assert_false(raft_has_ready(f->r));
}

/* A sender id that no node can have is refused, even with a higher term. (A sender merely
 * outside this node's configuration is not malformed: see test_raft_membership.c.)
 * Reference: core/raft.h raft_step ("sender id out of range") */
static void test_step_rejects_invalid_sender(void **state)
{
    (void)state;
    struct fx *f = follower();
    struct raft_msg v = fx_vote(RAFT_MSG_VOTE, RAFT_NODE_ID_MAX + 1, 2, 5, 10, 5);
    expect_refused(f, &v);
    struct raft_msg hb = fx_heartbeat(RAFT_NODE_ID_MAX + 1, 2, 5, 2, 0);
    expect_refused(f, &hb);
    struct raft_msg none = fx_heartbeat(RAFT_NODE_NONE, 2, 5, 2, 0);
    expect_refused(f, &none);
    fx_free(f);
}

/* A message stamped with another group's id is refused, not applied to this group.
 * Reference: core/raft.h raft_step ("wrong group") */
static void test_step_rejects_wrong_group(void **state)
{
    (void)state;
    struct fx *f = follower();
    struct raft_msg hb = fx_heartbeat(1, 2, 5, 2, 0);
    hb.group = FX_GROUP + 1;
    expect_refused(f, &hb);
    fx_free(f);
}

/* Unknown message types are refused. Reference: core/msg.h RAFT_MSG_TYPE_MAX */
static void test_step_rejects_unknown_type(void **state)
{
    (void)state;
    struct fx *f = follower();
    struct raft_msg zero = fx_msg(0, 1, 2, 1);
    expect_refused(f, &zero);
    struct raft_msg high = fx_msg(RAFT_MSG_TYPE_MAX + 1, 1, 2, 1);
    expect_refused(f, &high);
    fx_free(f);
}

/* AppendEntries entries must be prevLogIndex+1, +2, ...: a gap would break the Log
 * Matching Property's induction. Reference: §5.3, Figure 2 */
static void test_step_rejects_noncontiguous_entry_indexes(void **state)
{
    (void)state;
    struct fx *f = follower();
    struct raft_entry e[2];
    const raft_term t[] = {1, 1};
    fx_entries(e, 3, t, 2);
    e[1].index = 5; /* 3, 5 */
    struct raft_msg app = fx_append(1, 2, 1, 2, 1, 0, e, 2);
    expect_refused(f, &app);
    fx_free(f);
}

/* The first entry must follow prevLogIndex. Reference: §5.3, Figure 2 */
static void test_step_rejects_entries_not_following_prev(void **state)
{
    (void)state;
    struct fx *f = follower();
    struct raft_entry e[1];
    const raft_term t[] = {1};
    fx_entries(e, 4, t, 1); /* prev is 2: index 4 skips 3 */
    struct raft_msg app = fx_append(1, 2, 1, 2, 1, 0, e, 1);
    expect_refused(f, &app);
    fx_entries(e, 2, t, 1); /* index 2 repeats prev */
    app = fx_append(1, 2, 1, 2, 1, 0, e, 1);
    expect_refused(f, &app);
    fx_free(f);
}

/* An AppendEntries over RAFT_APPEND_ENTRIES_MAX entries is refused (limits are enforced
 * on input). Reference: core/limits.h */
static void test_step_rejects_too_many_entries(void **state)
{
    (void)state;
    struct fx *f = follower();
    uint32_t n = RAFT_APPEND_ENTRIES_MAX + 1;
    struct raft_entry *e = calloc(n, sizeof(*e));
    FX_NONNULL(e);
    for (uint32_t i = 0; i < n; i++) {
        e[i].index = 3 + i;
        e[i].term = 1;
        e[i].type = RAFT_ENTRY_NORMAL;
    }
    struct raft_msg app = fx_append(1, 2, 1, 2, 1, 0, e, n);
    expect_refused(f, &app);
    free(e);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_rejects_invalid_sender),
        cmocka_unit_test(test_step_rejects_wrong_group),
        cmocka_unit_test(test_step_rejects_unknown_type),
        cmocka_unit_test(test_step_rejects_noncontiguous_entry_indexes),
        cmocka_unit_test(test_step_rejects_entries_not_following_prev),
        cmocka_unit_test(test_step_rejects_too_many_entries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
