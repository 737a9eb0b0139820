/* Cluster membership changes (paper §6, thesis §4) as named tests: configurations take
 * effect on append, joint consensus for arbitrary changes and leaving it automatically, the
 * single-server path, the 2015 fix, one change at a time, reverting on truncation, a
 * removed leader stepping down, removed and new servers. */
#include "tests/unit/raft_fixture.h"

#define E 5u /* fx_options' election_ticks */

/* A leader of voters 1..3 (term 1) whose no-op is committed. */
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

static struct raft_config config_of(const raft_node *voters, uint32_t n)
{
    struct raft_config c;
    fx_config_ids(&c, voters, n, NULL, 0);
    return c;
}

/* "The new configuration takes effect on each server as soon as it is added to that
 * server's log", including for the commitment of its own entry: with voter 4 added, a
 * majority is three of four. Reference: thesis §4.1 */
static void test_config_takes_effect_on_append_not_commit(void **state)
{
    (void)state;
    struct fx *f = leader3();
    raft_index idx = 0;
    assert_int_equal(raft_change_member(f->r, 4, RAFT_VOTER, &idx), 0);
    assert_int_equal(idx, fx_last(f));
    assert_true(raft_config_is_voter(fx_config_in_force(f->r), 4)); /* before any commit */
    assert_int_equal(raft_config_index(f->r), idx);
    assert_true(raft_config_pending(f->r));
    struct raft_config committed;
    assert_int_equal(raft_config_committed(f->r, &committed), 0); /* the bootstrap one */
    assert_false(raft_config_is_member(&committed, 4));
    fx_drain(f);
    assert_non_null(fx_find(f, RAFT_MSG_APPEND, 4)); /* replicated to the new member */
    ack(f, 2, idx);
    assert_true(fx_commit(f) < idx); /* 2 of 4: the old majority is not enough */
    ack(f, 3, idx);
    assert_int_equal(fx_commit(f), idx);
    assert_false(raft_config_pending(f->r));
    assert_int_equal(raft_config_committed(f->r, &committed), idx);
    assert_true(raft_config_is_voter(&committed, 4));
    fx_free(f);
}

/* A configuration entry is not a proposal's payload: committing it with the proposals
 * around it takes back exactly what they added, so the uncommitted count (the per-group
 * limit and the node's budget) stays the payload still waiting. */
static void test_config_entry_not_counted_as_uncommitted(void **state)
{
    (void)state;
    struct fx *f = leader3();
    uint8_t data[100] = {0};
    raft_index a = 0, c = 0, b = 0;
    assert_int_equal(raft_propose(f->r, data, sizeof(data), &a), 0);
    assert_int_equal(raft_change_member(f->r, 4, RAFT_LEARNER, &c), 0);
    assert_int_equal(raft_propose(f->r, data, sizeof(data), &b), 0);
    assert_true(a < c && c < b);
    assert_int_equal(fx_status(f).uncommitted_bytes, 200);
    fx_drain(f);
    ack(f, 2, c); /* commits a and the configuration, not b */
    assert_int_equal(fx_commit(f), c);
    assert_int_equal(fx_status(f).uncommitted_bytes, 100);
    ack(f, 2, b);
    assert_int_equal(fx_commit(f), b);
    assert_int_equal(fx_status(f).uncommitted_bytes, 0);
    fx_free(f);
}

/* {1, 2, 3} -> {1, 4, 5} changes two voters: through C_old,new. */
static struct fx *leader_in_joint(raft_index *idx)
{
    struct fx *f = leader3();
    const raft_node ids[] = {1, 4, 5};
    struct raft_config target = config_of(ids, 3);
    assert_int_equal(raft_change_config(f->r, &target, idx), 0);
    struct raft_config now = fx_config_now(f->r);
    const struct raft_config *c = &now;
    assert_true(raft_config_is_joint(c));
    assert_int_equal(c->member_count, 3);
    assert_int_equal(c->old_member_count, 3);
    assert_true(raft_config_is_voter(c, 2) && raft_config_is_voter(c, 5));
    fx_drain(f);
    return f;
}

/* raft_summary counts the configuration in force (C_new's half when joint) and says whether
 * a change is open, as raft_config and raft_config_pending do; its indexes are
 * raft_status's. */
static void assert_summary_agrees(const struct raft *r)
{
    struct raft_summary sum;
    raft_summary(r, &sum);
    struct raft_status st;
    raft_status(r, &st);
    struct raft_config now;
    raft_config(r, &now);
    uint32_t voters = 0, learners = 0;
    for (uint32_t i = 0; i < now.member_count; i++) {
        voters += now.members[i].role == RAFT_VOTER;
        learners += now.members[i].role == RAFT_LEARNER;
    }
    assert_int_equal(sum.commit, st.commit);
    assert_int_equal(sum.applied, st.applied);
    assert_int_equal(sum.last_index, st.last_index);
    assert_int_equal(sum.snapshot_index, st.snapshot_index);
    assert_int_equal(sum.voters, voters);
    assert_int_equal(sum.learners, learners);
    assert_int_equal(sum.config_pending, raft_config_pending(r) || raft_config_is_joint(&now));
}

static void test_summary_follows_configuration(void **state)
{
    (void)state;
    struct fx *f = leader3();
    assert_summary_agrees(f->r);
    raft_index idx = 0;
    assert_int_equal(raft_change_member(f->r, 4, RAFT_LEARNER, &idx), 0);
    struct raft_summary sum;
    raft_summary(f->r, &sum);
    assert_true(sum.config_pending);
    assert_int_equal(sum.voters, 3);
    assert_int_equal(sum.learners, 1);
    assert_summary_agrees(f->r);
    fx_drain(f);
    ack(f, 2, idx);
    raft_summary(f->r, &sum);
    assert_false(sum.config_pending);
    assert_int_equal(sum.commit, idx);
    assert_summary_agrees(f->r);
    fx_free(f);
    f = leader_in_joint(&idx);
    raft_summary(f->r, &sum);
    assert_true(sum.config_pending);
    assert_int_equal(sum.voters, 3);
    assert_summary_agrees(f->r);
    fx_free(f);
}

/* "Agreement (for elections and entry commitment) requires separate majorities from both
 * the old and new configurations", for C_old,new itself. Reference: §6 */
static void test_joint_change_needs_both_majorities(void **state)
{
    (void)state;
    raft_index idx = 0;
    struct fx *f = leader_in_joint(&idx);
    ack(f, 2, idx);
    ack(f, 3, idx);
    assert_true(fx_commit(f) < idx); /* all of C_old, only the leader of C_new */
    ack(f, 4, idx);
    assert_true(fx_commit(f) >= idx);
    fx_free(f);

    f = leader_in_joint(&idx);
    ack(f, 4, idx);
    ack(f, 5, idx);
    assert_true(fx_commit(f) < idx); /* all of C_new, only the leader of C_old */
    ack(f, 2, idx);
    assert_true(fx_commit(f) >= idx);
    fx_free(f);
}

/* "Once C_old,new has been committed ... it is now safe for the leader to create a log
 * entry describing C_new and replicate it to the cluster." The core does it by itself, and
 * C_new alone then decides. Reference: §6 */
static void test_leaves_joint_automatically(void **state)
{
    (void)state;
    raft_index idx = 0;
    struct fx *f = leader_in_joint(&idx);
    ack(f, 2, idx);
    ack(f, 4, idx);
    assert_int_equal(fx_commit(f), idx);
    assert_int_equal(fx_last(f), idx + 1);
    assert_int_equal(raft_config_index(f->r), idx + 1);
    struct raft_config now = fx_config_now(f->r);
    const struct raft_config *c = &now;
    assert_false(raft_config_is_joint(c));
    const raft_node ids[] = {1, 4, 5};
    struct raft_config target = config_of(ids, 3);
    assert_true(raft_config_equal(c, &target));
    struct raft_progress_view pv;
    assert_true(raft_progress(f->r, 2, &pv)); /* told of its removal until C_new commits */
    ack(f, 4, idx + 1);
    assert_int_equal(fx_commit(f), idx + 1); /* {1, 4} is a majority of C_new */
    assert_false(raft_config_pending(f->r));
    assert_false(raft_progress(f->r, 2, &pv)); /* then dropped */
    assert_false(raft_progress(f->r, 3, &pv));
    assert_true(raft_progress(f->r, 5, &pv));
    fx_free(f);
}

/* A ReadIndex round is confirmed by a majority of the configuration in force. Echoed during
 * the joint phase by C_new's majority but not C_old's (2 acknowledged the joint entry, then
 * stopped answering), it must complete once the leader leaves the joint configuration: the
 * echoes already received count under C_new, and the followers only ever echo the same
 * round again. Reference: thesis §6.4, §4.3 */
static void test_read_round_confirmed_on_leaving_joint(void **state)
{
    (void)state;
    raft_index idx = 0;
    struct fx *f = leader_in_joint(&idx); /* {1, 4, 5} / {1, 2, 3} */
    assert_int_equal(raft_read_index(f->r, 77), 0);
    fx_drain(f);
    const struct fx_msg *hb = fx_find_last(f, RAFT_MSG_HEARTBEAT, 4);
    if (hb == NULL) {
        fail_msg("no heartbeat to node 4");
        return;
    }
    uint64_t ctx = hb->m.heartbeat.read_ctx;
    assert_true(ctx != 0);
    for (raft_node id = 4; id <= 5; id++) {
        struct raft_msg resp = fx_heartbeat_resp(id, f->o.id, fx_term(f), ctx);
        fx_step(f, &resp);
        fx_drain(f);
    }
    assert_int_equal(f->read_count, 0); /* C_old has only the leader */
    ack(f, 2, idx);
    ack(f, 4, idx); /* the joint entry commits; the leader moves to C_new alone */
    struct raft_config now = fx_config_now(f->r);
    assert_false(raft_config_is_joint(&now));
    assert_int_equal(f->read_count, 1);
    assert_int_equal(f->reads[0].ctx, 77);
    fx_free(f);
}

/* Replacing several servers at once (paper §6 "arbitrary changes"), end to end: servers 4
 * and 5 join with only the bootstrap configuration, 2 and 3 leave; the cluster ends on
 * {1, 4, 5} everywhere, keeps committing without 2 and 3, and they stay quiet.
 * Reference: §6 */
static void test_arbitrary_change_replaces_several_at_once(void **state)
{
    (void)state;
    struct fx_net net;
    fx_net_init(&net, 5, 3, false, false);
    fx_net_elect(&net, 1);
    const raft_node ids[] = {1, 4, 5};
    struct raft_config target = config_of(ids, 3);
    raft_index idx = 0;
    assert_int_equal(raft_change_config(net.n[1]->r, &target, &idx), 0);
    for (uint32_t i = 0; i < 3; i++) {
        fx_net_tick(&net);
    }
    for (raft_node id = 1; id <= 5; id++) {
        struct raft_config now = fx_config_now(net.n[id]->r);
        const struct raft_config *c = &now;
        assert_true(raft_config_equal(c, &target));
        assert_int_equal(raft_config_index(net.n[id]->r), idx + 1);
    }
    assert_int_equal(fx_commit(net.n[1]), idx + 1);
    assert_int_equal(fx_commit(net.n[4]), idx + 1);
    /* C_new commits on its own: with 2 and 3 cut off, as with them. */
    fx_net_cut(&net, 1, 2);
    fx_net_cut(&net, 1, 3);
    raft_index p = 0;
    assert_int_equal(raft_propose(net.n[1]->r, (const uint8_t *)"x", 1, &p), 0);
    fx_net_tick(&net);
    assert_int_equal(fx_commit(net.n[1]), p);
    /* The removed servers never campaign. */
    raft_term t = fx_term(net.n[2]);
    for (uint32_t i = 0; i < 10 * E; i++) {
        fx_net_tick(&net);
    }
    assert_int_equal(fx_term(net.n[2]), t);
    assert_int_equal(fx_role(net.n[2]), RAFT_FOLLOWER);
    assert_int_equal(fx_role(net.n[1]), RAFT_LEADER);
    fx_net_free(&net);
}

/* "Raft ... restricts the types of changes that are allowed: only one server can be added
 * or removed from the cluster at a time", and such a change needs no joint phase; learners
 * may change alongside, since they never count. Reference: thesis §4.1 */
static void test_single_server_change_skips_joint(void **state)
{
    (void)state;
    struct fx *f = leader3();
    raft_index idx = 0;
    const raft_node voters[] = {1, 2, 3, 4};
    const raft_node learners[] = {5};
    struct raft_config target;
    fx_config_ids(&target, voters, 4, learners, 1);
    assert_int_equal(raft_change_config(f->r, &target, &idx), 0);
    assert_false(raft_config_is_joint(fx_config_in_force(f->r)));
    assert_true(raft_config_equal(fx_config_in_force(f->r), &target));
    fx_drain(f);
    ack(f, 2, idx);
    ack(f, 3, idx);
    assert_int_equal(fx_commit(f), idx);
    /* Removing one voter is direct too. */
    assert_int_equal(raft_change_member(f->r, 2, 0, &idx), 0);
    assert_false(raft_config_is_joint(fx_config_in_force(f->r)));
    assert_false(raft_config_is_member(fx_config_in_force(f->r), 2));
    fx_free(f);
}

/* The 2015 correction to single-server changes: "a leader may not append a new
 * configuration entry until it has committed an entry from its current term". Reference:
 * thesis §4.1 (raft-dev, July 2015) */
static void test_change_refused_before_own_term_commit(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    fx_make_leader(f); /* its no-op is not acknowledged yet */
    assert_int_equal(raft_change_member(f->r, 4, RAFT_VOTER, NULL), RR_ECONFIG);
    const raft_node ids[] = {1, 4, 5};
    struct raft_config target = config_of(ids, 3);
    assert_int_equal(raft_change_config(f->r, &target, NULL), RR_ECONFIG);
    assert_int_equal(raft_config_index(f->r), 0);
    fx_ack_appends(f);
    assert_int_equal(fx_commit(f), fx_last(f));
    assert_int_equal(raft_change_member(f->r, 4, RAFT_VOTER, NULL), 0);
    fx_free(f);
}

/* "The leader will not begin a new configuration change until the previous one has
 * committed" (one change in flight; a joint change is in flight until C_new commits).
 * Reference: thesis §4.1, paper §6 */
static void test_one_change_in_flight(void **state)
{
    (void)state;
    struct fx *f = leader3();
    raft_index idx = 0;
    assert_int_equal(raft_change_member(f->r, 4, RAFT_LEARNER, &idx), 0);
    assert_int_equal(raft_change_member(f->r, 5, RAFT_LEARNER, NULL), RR_ECONFIG);
    fx_drain(f);
    ack(f, 2, idx);
    assert_int_equal(fx_commit(f), idx);
    assert_int_equal(raft_change_member(f->r, 5, RAFT_LEARNER, NULL), 0);
    fx_free(f);

    f = leader_in_joint(&idx);
    assert_int_equal(raft_change_member(f->r, 2, 0, NULL), RR_ECONFIG); /* joint pending */
    ack(f, 2, idx);
    ack(f, 4, idx);
    assert_int_equal(fx_commit(f), idx); /* C_old,new committed, C_new appended */
    assert_int_equal(raft_change_member(f->r, 2, 0, NULL), RR_ECONFIG);
    ack(f, 4, idx + 1);
    assert_int_equal(fx_commit(f), idx + 1);
    assert_int_equal(raft_change_member(f->r, 2, RAFT_LEARNER, NULL), 0);
    fx_free(f);
}

/* A deposed leader's uncommitted configuration entry is truncated by the next leader: "a
 * log entry for a configuration change can be removed (if leadership changes); in this
 * case, a server must be prepared to fall back to the previous configuration in its log".
 * Reference: thesis §4.1 */
static void test_config_reverts_on_truncation(void **state)
{
    (void)state;
    struct fx *f = leader3();
    raft_index idx = 0;
    const raft_node ids[] = {1, 4, 5};
    struct raft_config target = config_of(ids, 3);
    assert_int_equal(raft_change_config(f->r, &target, &idx), 0);
    fx_drain(f);
    assert_true(raft_config_is_joint(fx_config_in_force(f->r)));
    /* Leader 2 of term 2 holds the no-op (index 1) but not the change. */
    struct raft_entry e[1];
    const raft_term t[] = {2};
    fx_entries(e, idx, t, 1);
    struct raft_msg m = fx_append(2, 1, 2, idx - 1, 1, idx - 1, e, 1);
    fx_step(f, &m);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    assert_int_equal(raft_term_at(f->r, idx), 2);
    struct raft_config boot;
    fx_config(&boot, 3);
    assert_true(raft_config_equal(fx_config_in_force(f->r), &boot));
    assert_int_equal(raft_config_index(f->r), 0);
    assert_false(raft_config_pending(f->r));
    fx_free(f);
}

/* "The leader ... steps down (returns to follower state) once it has committed the C_new
 * log entry"; until then "it manages a cluster that does not include itself", not counting
 * itself in majorities. Reference: §6 */
static void test_removed_leader_steps_down_after_commit(void **state)
{
    (void)state;
    struct fx *f = leader3();
    raft_index idx = 0;
    assert_int_equal(raft_change_member(f->r, 1, 0, &idx), 0);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_LEADER); /* still manages the cluster */
    assert_non_null(fx_find(f, RAFT_MSG_APPEND, 2));
    ack(f, 2, idx);
    assert_true(fx_commit(f) < idx); /* it does not count itself: {2, 3} needs both */
    assert_int_equal(fx_role(f), RAFT_LEADER);
    ack(f, 3, idx);
    assert_int_equal(fx_commit(f), idx);
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    fx_clear(f);
    fx_tick(f, 10 * E);
    fx_drain(f);
    assert_int_equal(fx_count(f, RAFT_MSG_VOTE, 0) + fx_count(f, RAFT_MSG_PRE_VOTE, 0), 0);
    assert_int_equal(fx_term(f), 1);
    fx_free(f);
}

/* "Removed servers (those not in C_new) can disrupt the cluster": one cut off before it
 * learns of its removal times out and campaigns. With PreVote and CheckQuorum the others
 * disregard it while their leader is alive: no term change, no lost leader.
 * Reference: §6, thesis §4.2.3, §9.6 */
static void test_removed_server_does_not_disrupt(void **state)
{
    (void)state;
    struct fx_net net;
    fx_net_init(&net, 3, 3, true, true);
    fx_net_elect(&net, 1);
    raft_term term = fx_term(net.n[1]);
    fx_net_cut(&net, 1, 3);
    fx_net_cut(&net, 2, 3);
    raft_index idx = 0;
    assert_int_equal(raft_change_member(net.n[1]->r, 3, 0, &idx), 0);
    fx_net_tick(&net);
    assert_int_equal(fx_commit(net.n[1]), idx);
    assert_true(raft_config_is_voter(fx_config_in_force(net.n[3]->r), 3)); /* never heard */
    net.cut[1][3] = net.cut[3][1] = net.cut[2][3] = net.cut[3][2] = false;
    uint32_t asked = net.delivered[RAFT_MSG_PRE_VOTE];
    for (uint32_t i = 0; i < 20 * E; i++) {
        fx_net_tick(&net);
    }
    assert_true(net.delivered[RAFT_MSG_PRE_VOTE] > asked); /* it did try */
    assert_int_equal(fx_role(net.n[1]), RAFT_LEADER);
    assert_int_equal(fx_term(net.n[1]), term);
    assert_int_equal(fx_term(net.n[2]), term);
    raft_index p = 0;
    assert_int_equal(raft_propose(net.n[1]->r, (const uint8_t *)"x", 1, &p), 0);
    fx_net_tick(&net);
    assert_int_equal(fx_commit(net.n[1]), p);
    fx_net_free(&net);
}

/* A server being added starts with the cluster's bootstrap configuration, which does not
 * list it: it never campaigns, accepts the log from a leader it does not know either, and
 * answers a non-member's vote request by the usual rules rather than refusing it.
 * Reference: thesis §4.2.1 ("new servers ... join the cluster as non-voting members") */
static void test_new_node_accepts_appends_and_does_not_campaign(void **state)
{
    (void)state;
    struct fx *f = fx_new(4, 3);
    fx_tick(f, 10 * E);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    assert_int_equal(fx_term(f), 0);
    assert_int_equal(fx_count(f, RAFT_MSG_VOTE, 0) + fx_count(f, RAFT_MSG_PRE_VOTE, 0), 0);
    /* Leader 5 (after a replacement the bootstrap servers may all be gone). */
    struct raft_entry e[2];
    const raft_term t[] = {3, 3};
    fx_entries(e, 1, t, 2);
    struct raft_msg m = fx_append(5, 4, 3, 0, 0, 2, e, 2);
    fx_step(f, &m);
    fx_drain(f);
    const struct raft_msg *resp = fx_expect(f, RAFT_MSG_APPEND_RESP, 5);
    assert_false(resp->append_resp.rejected);
    assert_int_equal(resp->append_resp.index, 2);
    assert_int_equal(fx_status(f).leader, 5);
    assert_int_equal(fx_commit(f), 2);
    fx_clear(f);
    struct raft_msg v = fx_vote(RAFT_MSG_VOTE, 6, 4, 4, 2, 3);
    fx_step(f, &v);
    fx_drain(f);
    assert_true(fx_expect(f, RAFT_MSG_VOTE_RESP, 6)->vote_resp.granted);
    fx_free(f);
}

/* RequestVote: "Reply false if term < currentTerm" and return currentTerm "for candidate to
 * update itself". Once configurations differ, the servers raising a voter's term may be
 * ones a candidate never hears from; without the answer it would campaign below their term
 * forever. Reference: Figure 2, §6 */
static void test_stale_candidate_learns_term(void **state)
{
    (void)state;
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, NULL, 0, 5, RAFT_NODE_NONE);
    struct raft_msg v = fx_vote(RAFT_MSG_VOTE, 3, 2, 3, 0, 0);
    fx_step(f, &v);
    fx_drain(f);
    const struct raft_msg *resp = fx_expect(f, RAFT_MSG_VOTE_RESP, 3);
    assert_false(resp->vote_resp.granted);
    assert_int_equal(resp->term, 5);
    assert_int_equal(fx_term(f), 5);
    fx_free(f);
}

/* Paper §7: the snapshot metadata "includes the latest configuration as of the last
 * included index", so a server that receives the snapshot instead of the compacted
 * configuration entries still ends up with it. Reference: §7, thesis §5.4 */
static void test_snapshot_carries_configuration(void **state)
{
    (void)state;
    struct fx_net net;
    fx_net_init(&net, 4, 3, false, false);
    fx_net_elect(&net, 1);
    struct fx *l = net.n[1];
    fx_net_cut(&net, 1, 4);
    raft_index idx = 0;
    assert_int_equal(raft_change_member(l->r, 4, RAFT_LEARNER, &idx), 0);
    raft_index p = 0;
    assert_int_equal(raft_propose(l->r, (const uint8_t *)"x", 1, &p), 0);
    fx_net_tick(&net);
    fx_net_tick(&net);
    assert_int_equal(fx_status(l).applied, p);
    assert_int_equal(fx_snapshot_taken(l, p, "S", 1, 0), 0);
    assert_int_equal(fx_status(l).first_index, p + 1); /* the config entry is compacted */
    assert_int_equal(raft_config_index(l->r), idx);
    net.cut[1][4] = net.cut[4][1] = false;
    for (uint32_t i = 0; i < 4; i++) {
        fx_net_tick(&net);
    }
    assert_true(net.delivered[RAFT_MSG_SNAPSHOT] > 0);
    struct fx *n4 = net.n[4];
    assert_int_equal(fx_status(n4).snapshot_index, p);
    assert_int_equal(raft_config_index(n4->r), p); /* from the snapshot */
    assert_int_equal(raft_config_role(fx_config_in_force(n4->r), 4), RAFT_LEARNER);
    struct raft_config c;
    assert_int_equal(raft_config_committed(n4->r, &c), p);
    assert_true(raft_config_equal(&c, fx_config_in_force(l->r)));
    fx_net_free(&net);
}

/* ---- randomized: changes, transfers and partitions together ---------------------------- */

static uint64_t rnd_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static raft_node current_leader(const struct fx_net *net)
{
    raft_node best = RAFT_NODE_NONE;
    for (raft_node id = 1; id <= net->count; id++) {
        if (fx_role(net->n[id]) == RAFT_LEADER &&
            (best == RAFT_NODE_NONE || fx_term(net->n[id]) > fx_term(net->n[best]))) {
            best = id;
        }
    }
    return best;
}

/* One random operation at the leader; refusals (RR_ECONFIG, RR_ETRANSFER, ...) are fine. */
static void random_op(struct fx_net *net, uint64_t *x, uint32_t *changes)
{
    raft_node l = current_leader(net);
    if (l == RAFT_NODE_NONE) {
        return;
    }
    struct raft *r = net->n[l]->r;
    raft_node id = (raft_node)(rnd_next(x) % net->count + 1);
    static const uint8_t roles[] = {RAFT_VOTER, RAFT_LEARNER, 0};
    struct raft_config target;
    switch (rnd_next(x) % 4) {
    case 0:
        *changes += raft_change_member(r, id, roles[rnd_next(x) % 3], NULL) == 0;
        break;
    case 1:
        memset(&target, 0, sizeof(target));
        for (raft_node v = 1; v <= net->count; v++) {
            if (rnd_next(x) % 2 == 0) {
                target.members[target.member_count++] = (struct raft_member){v, RAFT_VOTER};
            }
        }
        *changes += target.member_count > 0 && raft_change_config(r, &target, NULL) == 0;
        break;
    case 2:
        (void)raft_transfer_leader(r, id);
        break;
    default:
        (void)raft_propose(r, (const uint8_t *)"x", 1, NULL);
        break;
    }
}

/* Election Safety and State Machine Safety (paper Figure 3) across every node: one leader
 * per term; one entry term per applied index (nodes that installed a snapshot skip some). */
static void check_safety(const struct fx_net *net, raft_node *leader_of_term, uint32_t terms)
{
    raft_term applied_term[FX_LOG_MAX] = {0};
    for (raft_node id = 1; id <= net->count; id++) {
        const struct fx *f = net->n[id];
        raft_term t = fx_term(f);
        if (fx_role(f) == RAFT_LEADER && t < terms) {
            assert_true(leader_of_term[t] == RAFT_NODE_NONE || leader_of_term[t] == id);
            leader_of_term[t] = id;
        }
        for (uint32_t k = 0; k < f->applied_count; k++) {
            raft_index i = f->applied[k];
            assert_true(i < FX_LOG_MAX);
            assert_true(applied_term[i] == 0 || applied_term[i] == f->applied_term[k]);
            applied_term[i] = f->applied_term[k];
        }
    }
}

/* A random node compacts its log up to what it applied, keeping 0..2 trailing entries:
 * configurations then come from snapshots, and lagging servers get InstallSnapshot. */
static void random_snapshot(struct fx_net *net, uint64_t *x)
{
    struct fx *f = net->n[rnd_next(x) % net->count + 1];
    struct raft_status st = fx_status(f);
    if (st.applied > st.snapshot_index) {
        int rv = fx_snapshot_taken(f, st.applied, "s", 1, rnd_next(x) % 3);
        assert_int_equal(rv, 0);
    }
}

/* Liveness once healed: some leader gets a proposal of its own term committed (a leader may
 * step down first, having removed itself; a transfer may be running). The bound is loose
 * because without PreVote a server with a stale configuration keeps campaigning among its
 * own voters, raising their terms, and the server that can win only learns each new term
 * when it is refused: it wins when its timeout falls first, a race of random timeouts
 * (paper §6, "removed servers ... can disrupt the cluster"). */
static bool heal_and_commit(struct fx_net *net)
{
    raft_node by = RAFT_NODE_NONE;
    raft_term at = 0;
    raft_index want = 0;
    for (uint32_t tick = 0; tick < 200 * E; tick++) {
        raft_node l = current_leader(net);
        raft_index p = 0;
        if (l != RAFT_NODE_NONE && (l != by || fx_term(net->n[l]) != at) &&
            raft_propose(net->n[l]->r, (const uint8_t *)"y", 1, &p) == 0) {
            by = l;
            at = fx_term(net->n[l]);
            want = p;
        }
        fx_net_tick(net);
        if (want > 0 && fx_commit(net->n[by]) >= want && raft_term_at(net->n[by]->r, want) == at) {
            return true;
        }
    }
    return false;
}

/* Random adds, removes, replacements (joint), promotions, demotions, transfers and
 * snapshots while links are cut and healed, with and without PreVote and CheckQuorum: no two
 * leaders in a term, no two different entries applied at one index, and once healed the cluster
 * elects a leader that commits. Reference: §6, Figure 3, thesis §3.10, §4 */
static void test_random_changes_keep_safety(void **state)
{
    (void)state;
    uint32_t changes = 0;
    for (uint64_t seed = 1; seed <= 300; seed++) {
        uint64_t x = 0x9e3779b97f4a7c15ull * seed;
        struct fx_net net;
        fx_net_init(&net, 5, 3, (seed & 1) != 0, (seed & 2) != 0);
        fx_net_elect(&net, 1);
        raft_node leader_of_term[256] = {0};
        for (uint32_t tick = 0; tick < 300; tick++) {
            if (rnd_next(&x) % 4 == 0) {
                random_op(&net, &x, &changes);
            }
            if (rnd_next(&x) % 32 == 0) {
                random_snapshot(&net, &x);
            }
            if (rnd_next(&x) % 16 == 0) {
                raft_node a = (raft_node)(rnd_next(&x) % 5 + 1);
                raft_node b = (raft_node)(rnd_next(&x) % 5 + 1);
                if (a != b) {
                    net.cut[a][b] = net.cut[b][a] = !net.cut[a][b];
                }
            }
            if (tick % 60 == 59) {
                memset(net.cut, 0, sizeof(net.cut));
            }
            fx_net_tick(&net);
            check_safety(&net, leader_of_term, 256);
        }
        memset(net.cut, 0, sizeof(net.cut));
        assert_true(heal_and_commit(&net));
        check_safety(&net, leader_of_term, 256);
        fx_net_free(&net);
    }
    assert_true(changes > 1000); /* the runs did change configurations (about 20 each) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_takes_effect_on_append_not_commit),
        cmocka_unit_test(test_config_entry_not_counted_as_uncommitted),
        cmocka_unit_test(test_summary_follows_configuration),
        cmocka_unit_test(test_joint_change_needs_both_majorities),
        cmocka_unit_test(test_leaves_joint_automatically),
        cmocka_unit_test(test_read_round_confirmed_on_leaving_joint),
        cmocka_unit_test(test_arbitrary_change_replaces_several_at_once),
        cmocka_unit_test(test_single_server_change_skips_joint),
        cmocka_unit_test(test_change_refused_before_own_term_commit),
        cmocka_unit_test(test_one_change_in_flight),
        cmocka_unit_test(test_config_reverts_on_truncation),
        cmocka_unit_test(test_removed_leader_steps_down_after_commit),
        cmocka_unit_test(test_removed_server_does_not_disrupt),
        cmocka_unit_test(test_new_node_accepts_appends_and_does_not_campaign),
        cmocka_unit_test(test_stale_candidate_learns_term),
        cmocka_unit_test(test_snapshot_carries_configuration),
        cmocka_unit_test(test_random_changes_keep_safety),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
