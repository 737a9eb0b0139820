/* Quiescence (core/quiesce.c; CockroachDB's replica quiescence): idle groups stop ticking,
 * anything wakes them, and the node's failure detector (raft_peer_down) replaces a leader
 * that died while its group slept. Each test runs a real 3-node network. */
#include "tests/unit/raft_fixture.h"

#define IDLE_TICKS 10 /* comfortably past the half election timeout a leader waits */

static void net_init(struct fx_net *net, bool pre_vote, bool check_quorum, bool quiesce)
{
    memset(net, 0, sizeof(*net));
    net->count = 3;
    for (raft_node id = 1; id <= 3; id++) {
        struct raft_options o = fx_options(id);
        o.pre_vote = pre_vote;
        o.check_quorum = check_quorum;
        o.quiesce = quiesce;
        net->n[id] = fx_new_restore(&o, 3, NULL);
    }
}

static uint32_t delivered(const struct fx_net *net)
{
    uint32_t n = 0;
    for (uint32_t t = 0; t <= RAFT_MSG_TYPE_MAX; t++) {
        n += net->delivered[t];
    }
    return n;
}

static bool all_quiesced(const struct fx_net *net)
{
    for (raft_node id = 1; id <= net->count; id++) {
        if (!raft_quiesced(net->n[id]->r)) {
            return false;
        }
    }
    return true;
}

static void ticks(struct fx_net *net, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        fx_net_tick(net);
    }
}

/* A quiesced network: 1 leads, every node asleep. */
static void quiesced_net(struct fx_net *net, bool pre_vote, bool check_quorum)
{
    net_init(net, pre_vote, check_quorum, true);
    fx_net_elect(net, 1);
    ticks(net, IDLE_TICKS);
    assert_true(all_quiesced(net));
}

/* An idle leader whose followers hold and have committed its whole log sends a last
 * heartbeat flagged `quiesce` and stops ticking; its followers stop their election timers:
 * from then on no message at all, no election, for as long as nothing happens. */
static void test_quiesce_idle_group_goes_silent(void **state)
{
    (void)state;
    struct fx_net net;
    quiesced_net(&net, true, true);
    assert_true(net.delivered[RAFT_MSG_HEARTBEAT] > 0);
    uint32_t before = delivered(&net);
    raft_term term = fx_term(net.n[1]);
    ticks(&net, 20 * IDLE_TICKS);
    assert_int_equal(delivered(&net), before);
    assert_int_equal(fx_role(net.n[1]), RAFT_LEADER);
    for (raft_node id = 1; id <= 3; id++) {
        assert_int_equal(fx_term(net.n[id]), term);
        assert_true(fx_status(net.n[id]).quiesced);
    }
    fx_net_free(&net);
}

/* The option is off by default: heartbeats go on forever. */
static void test_quiesce_off_by_default(void **state)
{
    (void)state;
    struct raft_options o;
    raft_options_default(&o);
    assert_false(o.quiesce);
    struct fx_net net;
    net_init(&net, true, true, false);
    fx_net_elect(&net, 1);
    ticks(&net, IDLE_TICKS);
    uint32_t hb = net.delivered[RAFT_MSG_HEARTBEAT];
    ticks(&net, IDLE_TICKS);
    assert_int_equal(net.delivered[RAFT_MSG_HEARTBEAT], hb + 2 * IDLE_TICKS);
    assert_false(raft_quiesced(net.n[1]->r));
    fx_net_free(&net);
}

/* A proposal wakes the leader; its append wakes the followers; the entry commits as usual;
 * once idle again the group goes back to sleep. */
static void test_quiesce_proposal_wakes_group(void **state)
{
    (void)state;
    struct fx_net net;
    quiesced_net(&net, true, true);
    raft_index index = 0;
    assert_int_equal(raft_propose(net.n[1]->r, (const uint8_t *)"x", 1, &index), 0);
    assert_false(raft_quiesced(net.n[1]->r));
    fx_net_deliver(&net);
    assert_false(raft_quiesced(net.n[2]->r));
    assert_false(raft_quiesced(net.n[3]->r));
    ticks(&net, 2);
    for (raft_node id = 1; id <= 3; id++) {
        assert_int_equal(fx_status(net.n[id]).applied, index);
    }
    ticks(&net, IDLE_TICKS);
    assert_true(all_quiesced(&net));
    fx_net_free(&net);
}

/* ReadIndex wakes the leader, which still confirms the read with a heartbeat round (thesis
 * §6.4): a quiesced leader serves nothing on its own say. */
static void test_quiesce_read_wakes_leader(void **state)
{
    (void)state;
    struct fx_net net;
    quiesced_net(&net, true, true);
    uint32_t hb = net.delivered[RAFT_MSG_HEARTBEAT_RESP];
    assert_int_equal(raft_read_index(net.n[1]->r, 42), 0);
    fx_net_deliver(&net);
    assert_true(net.delivered[RAFT_MSG_HEARTBEAT_RESP] > hb);
    assert_int_equal(net.n[1]->read_count, 1);
    assert_int_equal(net.n[1]->reads[0].ctx, 42);
    fx_net_free(&net);
}

/* A follower quiesces only if its log ends exactly at the leader's commit index: one that
 * holds an entry the leader has not committed, or lacks one, keeps its election timer. */
static void test_quiesce_follower_only_when_caught_up(void **state)
{
    (void)state;
    struct raft_options o = fx_options(2);
    o.quiesce = true;
    const raft_term terms[] = {1, 1, 1};
    struct fx *f = fx_new_log(&o, 3, terms, 3, 1, 1);
    struct raft_msg hb = fx_heartbeat(1, 2, 1, 2, 0);
    hb.heartbeat.quiesce = true;
    fx_step(f, &hb); /* commit 2, last 3: behind the leader's view */
    fx_drain(f);
    assert_false(raft_quiesced(f->r));
    hb.heartbeat.commit = 3;
    fx_step(f, &hb);
    fx_drain(f);
    assert_true(raft_quiesced(f->r));
    raft_term term = fx_term(f);
    fx_tick(f, 50);
    assert_int_equal(fx_term(f), term); /* no election timer */
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    /* Without the option, the flag is ignored. */
    struct fx *g = fx_new_log(&f->o, 3, terms, 3, 1, 1);
    fx_free(f);
    g->o.quiesce = false;
    raft_fini(g->r);
    assert_int_equal(raft_init(g->r, &g->o, &g->cfg, NULL), 0);
    struct raft_msg hb0 = fx_heartbeat(1, 2, 1, 0, 0);
    hb0.heartbeat.quiesce = true;
    fx_step(g, &hb0);
    fx_drain(g);
    assert_false(raft_quiesced(g->r));
    fx_free(g);
}

/* A quiesced follower that receives a vote request wakes (its election timer runs again).
 * With CheckQuorum it still refuses a pre-vote while it knows a live leader, and the leader,
 * woken by the same candidate, holds the group: no election, no term change (thesis §9.6). */
static void test_quiesce_vote_request_wakes_without_election(void **state)
{
    (void)state;
    struct fx_net net;
    quiesced_net(&net, true, true);
    raft_term term = fx_term(net.n[1]);
    /* Node 3 missed the quiescing heartbeat: it wakes and eventually campaigns. */
    raft_unquiesce(net.n[3]->r);
    ticks(&net, 4 * 5);
    assert_int_equal(fx_role(net.n[1]), RAFT_LEADER);
    for (raft_node id = 1; id <= 3; id++) {
        assert_int_equal(fx_term(net.n[id]), term);
    }
    ticks(&net, IDLE_TICKS);
    assert_true(all_quiesced(&net));
    fx_net_free(&net);
}

/* A leader that dies while its group is quiesced is never noticed by Raft's own timers (they
 * are stopped). The node's failure detector is: raft_peer_down wakes the followers and
 * makes them forget the leader, so that they grant pre-votes at once despite CheckQuorum,
 * and a new leader is elected within a couple of election timeouts. */
static void test_quiesce_crashed_leader_replaced_after_peer_down(void **state)
{
    (void)state;
    struct fx_net net;
    quiesced_net(&net, true, true);
    raft_term term = fx_term(net.n[1]);
    fx_net_cut(&net, 1, 2); /* node 1 crashes: nothing goes in or out */
    fx_net_cut(&net, 1, 3);
    ticks(&net, 100);
    assert_int_equal(fx_term(net.n[2]), term); /* asleep: nobody notices */
    assert_int_equal(fx_role(net.n[2]), RAFT_FOLLOWER);
    raft_peer_down(net.n[2]->r, 1);
    raft_peer_down(net.n[3]->r, 1);
    assert_int_equal(fx_status(net.n[2]).leader, RAFT_NODE_NONE);
    assert_false(raft_quiesced(net.n[2]->r));
    ticks(&net, 4 * 5);
    bool elected = fx_role(net.n[2]) == RAFT_LEADER || fx_role(net.n[3]) == RAFT_LEADER;
    assert_true(elected);
    assert_true(fx_term(net.n[2]) > term);
    /* The role events told both survivors (node 2 and 3 learn the new leader). */
    raft_node leader = fx_role(net.n[2]) == RAFT_LEADER ? 2 : 3;
    assert_int_equal(net.n[2]->ev_leader, leader);
    assert_int_equal(net.n[3]->ev_leader, leader);
    fx_net_free(&net);
}

/* The failure detector at the leader: a quiesced leader told that followers are down wakes,
 * so CheckQuorum runs again and a leader cut off from its majority steps down (thesis §6.2)
 * instead of sleeping as leader forever. */
static void test_quiesce_peer_down_wakes_leader_for_check_quorum(void **state)
{
    (void)state;
    struct fx_net net;
    quiesced_net(&net, true, true);
    fx_net_cut(&net, 1, 2);
    fx_net_cut(&net, 1, 3);
    raft_peer_down(net.n[1]->r, 2);
    raft_peer_down(net.n[1]->r, 3);
    assert_false(raft_quiesced(net.n[1]->r));
    ticks(&net, 3 * 5);
    assert_true(fx_role(net.n[1]) != RAFT_LEADER); /* stepped down (now campaigning alone) */
    fx_net_free(&net);
}

/* A spurious failure report is harmless: the follower forgets a live leader, hears its next
 * heartbeat and follows it again; the leader keeps its term. */
static void test_quiesce_spurious_peer_down(void **state)
{
    (void)state;
    struct fx_net net;
    quiesced_net(&net, true, true);
    raft_term term = fx_term(net.n[1]);
    raft_peer_down(net.n[2]->r, 1);
    raft_peer_down(net.n[1]->r, 2);
    ticks(&net, 2);
    assert_int_equal(fx_status(net.n[2]).leader, 1);
    assert_int_equal(fx_role(net.n[1]), RAFT_LEADER);
    ticks(&net, IDLE_TICKS + 5);
    assert_int_equal(fx_term(net.n[1]), term);
    assert_true(all_quiesced(&net));
    fx_net_free(&net);
}

/* A quiescing heartbeat that is queued when the leader wakes never leaves: the leader no
 * longer claims to be idle. */
static void test_quiesce_heartbeat_dropped_when_woken(void **state)
{
    (void)state;
    struct fx_net net;
    net_init(&net, true, true, true);
    fx_net_elect(&net, 1);
    struct fx *l = net.n[1];
    for (int t = 0; t < 2 * IDLE_TICKS && !raft_quiesced(l->r); t++) {
        raft_tick(l->r);
        if (!raft_quiesced(l->r)) {
            fx_net_deliver(&net);
            fx_net_tick(&net);
        }
    }
    assert_true(raft_quiesced(l->r)); /* the quiescing heartbeats are queued, not taken */
    raft_index index = 0;
    assert_int_equal(raft_propose(l->r, (const uint8_t *)"y", 1, &index), 0);
    fx_drain(l);
    for (uint32_t i = 0; i < l->out_count; i++) {
        const struct raft_msg *m = &l->out[i].m;
        assert_false(m->type == RAFT_MSG_HEARTBEAT && m->heartbeat.quiesce);
    }
    fx_net_free(&net);
}

/* Outside input never trips an assertion: a quiesced leader that learns of a higher term
 * from any message (here a heartbeat response no correct peer would send) steps down awake,
 * with its clock running. */
static void test_quiesce_higher_term_wakes_leader(void **state)
{
    (void)state;
    struct fx_net net;
    quiesced_net(&net, true, true);
    struct fx *l = net.n[1];
    struct raft_msg resp = fx_heartbeat_resp(2, 1, fx_term(l) + 1, 0);
    fx_step(l, &resp);
    fx_drain(l);
    assert_int_equal(fx_role(l), RAFT_FOLLOWER);
    assert_false(raft_quiesced(l->r));
    fx_net_free(&net);
}

/* A quiesced leader keeps no progress set (an idle group should cost little) yet reports
 * its followers as holding its whole log, which they do; waking rebuilds the set so, and
 * replication resumes at once, without probing. */
static void test_quiesce_leader_drops_progress(void **state)
{
    (void)state;
    struct fx_net net;
    quiesced_net(&net, true, true);
    struct raft *r = net.n[1]->r;
    raft_index last = fx_status(net.n[1]).last_index;
    struct raft_progress_view pv;
    for (raft_node id = 2; id <= 3; id++) {
        assert_true(raft_progress(r, id, &pv));
        assert_int_equal(pv.state, RAFT_PROGRESS_REPLICATE);
        assert_int_equal(pv.match, last);
        assert_int_equal(pv.next, last + 1);
    }
    assert_false(raft_progress(r, 1, &pv));
    assert_false(raft_progress(r, 4, &pv));
    struct raft_member_progress mp[4];
    assert_int_equal(raft_members_progress(r, mp, 4), 2);
    assert_int_equal(mp[0].id, 2);
    assert_int_equal(mp[1].id, 3);
    assert_int_equal(mp[0].lag, 0);
    assert_int_equal(mp[0].role, RAFT_VOTER);
    /* Woken by a proposal: the followers are sent the entry straight away, in REPLICATE. */
    uint32_t rejected = net.rejected_appends;
    raft_index index = 0;
    assert_int_equal(raft_propose(r, (const uint8_t *)"x", 1, &index), 0);
    assert_int_equal(index, last + 1);
    assert_true(raft_progress(r, 2, &pv));
    assert_int_equal(pv.state, RAFT_PROGRESS_REPLICATE);
    assert_int_equal(pv.match, last);
    ticks(&net, 2);
    assert_int_equal(net.rejected_appends, rejected);
    for (raft_node id = 1; id <= 3; id++) {
        assert_int_equal(fx_status(net.n[id]).applied, index);
    }
    assert_true(raft_progress(r, 3, &pv));
    assert_int_equal(pv.match, index);
    fx_net_free(&net);
}

/* Leader balance moves the leadership of idle groups: a transfer wakes the quiesced leader,
 * whose target holds the whole log, so TIMEOUT_NOW leaves at once and the target wins. */
static void test_quiesce_transfer_from_quiesced_leader(void **state)
{
    (void)state;
    struct fx_net net;
    quiesced_net(&net, true, true);
    raft_term term = fx_term(net.n[1]);
    assert_int_equal(raft_transfer_leader(net.n[1]->r, 1), RR_EINVAL); /* itself */
    assert_true(raft_quiesced(net.n[1]->r));                           /* left asleep */
    assert_int_equal(raft_transfer_leader(net.n[1]->r, 3), 0);
    assert_false(raft_quiesced(net.n[1]->r));
    uint32_t timeout_now = net.delivered[RAFT_MSG_TIMEOUT_NOW];
    fx_net_deliver(&net);
    assert_int_equal(net.delivered[RAFT_MSG_TIMEOUT_NOW], timeout_now + 1);
    ticks(&net, 2);
    assert_int_equal(fx_role(net.n[3]), RAFT_LEADER);
    assert_int_equal(fx_term(net.n[3]), term + 1);
    assert_int_equal(fx_role(net.n[1]), RAFT_FOLLOWER);
    fx_net_free(&net);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiesce_idle_group_goes_silent),
        cmocka_unit_test(test_quiesce_off_by_default),
        cmocka_unit_test(test_quiesce_proposal_wakes_group),
        cmocka_unit_test(test_quiesce_read_wakes_leader),
        cmocka_unit_test(test_quiesce_follower_only_when_caught_up),
        cmocka_unit_test(test_quiesce_vote_request_wakes_without_election),
        cmocka_unit_test(test_quiesce_crashed_leader_replaced_after_peer_down),
        cmocka_unit_test(test_quiesce_peer_down_wakes_leader_for_check_quorum),
        cmocka_unit_test(test_quiesce_spurious_peer_down),
        cmocka_unit_test(test_quiesce_heartbeat_dropped_when_woken),
        cmocka_unit_test(test_quiesce_higher_term_wakes_leader),
        cmocka_unit_test(test_quiesce_leader_drops_progress),
        cmocka_unit_test(test_quiesce_transfer_from_quiesced_leader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
