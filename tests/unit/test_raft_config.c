/* Configurations in elections and commitment (paper §6, thesis §4.1, §4.3) as named tests:
 * joint consensus needs both majorities; a server uses the latest configuration in its log,
 * committed or not, and reverts when that entry is truncated. */
#include "core/codec.h"
#include "tests/unit/raft_fixture.h"

/* Joint configuration: C_old = {1, 2, 3}, C_new = {1, 4, 5}. */
static struct fx *joint_node(raft_node id)
{
    struct raft_config c;
    memset(&c, 0, sizeof(c));
    const raft_node new_ids[] = {1, 4, 5};
    for (uint32_t i = 0; i < 3; i++) {
        c.members[i].id = new_ids[i];
        c.members[i].role = RAFT_VOTER;
        c.old_members[i].id = i + 1;
        c.old_members[i].role = RAFT_VOTER;
    }
    c.member_count = 3;
    c.old_member_count = 3;
    struct raft_options o = fx_options(id);
    return fx_new_config(&o, &c, NULL);
}

/* "Agreement (for elections and entry commitment) requires separate majorities from both
 * the old and new configurations." Reference: §6 */
static void test_joint_election_needs_both_majorities(void **state)
{
    (void)state;
    struct fx *f = joint_node(1);
    raft_campaign(f->r);
    fx_drain(f);
    for (raft_node id = 2; id <= 5; id++) {
        assert_int_equal(fx_count(f, RAFT_MSG_VOTE, id), 1); /* asks both halves */
    }
    struct raft_msg g4 = fx_vote_resp(RAFT_MSG_VOTE_RESP, 4, 1, 1, true);
    struct raft_msg g5 = fx_vote_resp(RAFT_MSG_VOTE_RESP, 5, 1, 1, true);
    struct raft_msg g2 = fx_vote_resp(RAFT_MSG_VOTE_RESP, 2, 1, 1, true);
    fx_step(f, &g4);
    fx_step(f, &g5);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_CANDIDATE); /* all of C_new, 1 of 3 in C_old */
    fx_step(f, &g2);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_LEADER);
    fx_free(f);
}

/* Same rule for commitment, both ways round. (Once the joint entry commits the leader
 * moves on to C_new by itself: test_raft_membership.c.) Reference: §6 */
static void test_joint_commit_needs_both_majorities(void **state)
{
    (void)state;
    struct fx *f = joint_node(1);
    fx_make_leader(f);
    fx_clear(f);
    struct raft_msg a2 = fx_append_resp(2, 1, 1, false, 1);
    fx_step(f, &a2);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 0); /* a majority of C_old, but of C_new only the leader */
    struct raft_msg a4 = fx_append_resp(4, 1, 1, false, 1);
    fx_step(f, &a4);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 1);
    fx_free(f);

    f = joint_node(1);
    fx_make_leader(f);
    fx_clear(f);
    struct raft_msg b5 = fx_append_resp(5, 1, 1, false, 1);
    fx_step(f, &b5);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 0); /* a majority of C_new, but of C_old only the leader */
    struct raft_msg b3 = fx_append_resp(3, 1, 1, false, 1);
    fx_step(f, &b3);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 1);
    fx_free(f);
}

/* A CONFIG entry at `index` (term 1) holding voters 1..voters. `buf` owns its bytes. */
static struct raft_entry config_entry(struct rr_bytes *buf, raft_index index, uint32_t voters)
{
    struct raft_config c;
    fx_config(&c, voters);
    rr_bytes_init(buf);
    assert_int_equal(codec_config_encode(buf, &c), 0);
    struct raft_entry e;
    memset(&e, 0, sizeof(e));
    e.index = index;
    e.term = 1;
    e.type = RAFT_ENTRY_CONFIG;
    e.data.base = buf->base;
    e.data.len = (uint32_t)buf->len;
    return e;
}

/* "A server always uses the latest configuration in its log, regardless of whether the
 * entry is committed." Reference: thesis §4.1 */
static void test_follower_uses_latest_config_uncommitted(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    struct rr_bytes buf;
    struct raft_entry e = config_entry(&buf, 1, 4);
    struct raft_msg app = fx_append(1, 2, 1, 0, 0, 0, &e, 1);
    fx_step(f, &app);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 0);
    struct raft_config now = fx_config_now(f->r);
    const struct raft_config *c = &now;
    assert_int_equal(c->member_count, 4);
    assert_true(raft_config_is_voter(c, 4));
    rr_bytes_free(&buf);
    fx_free(f);
}

/* "If the log entry is truncated ... the server reverts to the previous configuration in its
 * log" (here, the bootstrap one). Reference: thesis §4.1 */
static void test_config_reverts_when_entry_truncated(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    struct rr_bytes buf;
    struct raft_entry e = config_entry(&buf, 1, 4);
    struct raft_msg app = fx_append(1, 2, 1, 0, 0, 0, &e, 1);
    fx_step(f, &app);
    fx_drain(f);
    struct raft_config before = fx_config_now(f->r);
    assert_true(raft_config_is_member(&before, 4));
    struct raft_entry n[1];
    const raft_term t[] = {2};
    fx_entries(n, 1, t, 1);
    struct raft_msg newer = fx_append(3, 2, 2, 0, 0, 0, n, 1);
    fx_step(f, &newer);
    fx_drain(f);
    assert_int_equal(raft_term_at(f->r, 1), 2);
    struct raft_config now = fx_config_now(f->r);
    const struct raft_config *c = &now;
    assert_int_equal(c->member_count, 3);
    assert_false(raft_config_is_member(c, 4));
    rr_bytes_free(&buf);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_joint_election_needs_both_majorities),
        cmocka_unit_test(test_joint_commit_needs_both_majorities),
        cmocka_unit_test(test_follower_uses_latest_config_uncommitted),
        cmocka_unit_test(test_config_reverts_when_entry_truncated),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
