/* Linearizable reads with ReadIndex (thesis §6.4) as named tests on a single leader. */
#include "tests/unit/raft_fixture.h"

/* The context of the newest confirmation round in `out` addressed to `to` with a context
 * above `after`; ticks once (heartbeat_ticks is 1) if the round has not left yet. */
static uint64_t round_ctx(struct fx *f, raft_node to, uint64_t after)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        for (uint32_t i = f->out_count; i > 0; i--) {
            const struct raft_msg *m = &f->out[i - 1].m;
            if (m->type == RAFT_MSG_HEARTBEAT && m->to == to && m->heartbeat.read_ctx > after) {
                return m->heartbeat.read_ctx;
            }
        }
        raft_tick(f->r);
        fx_drain(f);
    }
    fail_msg("no ReadIndex round to node %u", (unsigned)to);
    return 0;
}

static uint32_t rounds_to(const struct fx *f, raft_node to)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->out_count; i++) {
        const struct raft_msg *m = &f->out[i].m;
        n += (m->type == RAFT_MSG_HEARTBEAT && m->to == to && m->heartbeat.read_ctx != 0) ? 1u : 0u;
    }
    return n;
}

static void confirm(struct fx *f, raft_node from, uint64_t ctx)
{
    struct raft_msg resp = fx_heartbeat_resp(from, f->o.id, fx_term(f), ctx);
    fx_step(f, &resp);
    fx_drain(f);
}

/* Answers every heartbeat in `out` (echoing its context), then clears `out`. */
static void answer_heartbeats(struct fx *f)
{
    struct raft_msg resp[64];
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->out_count && n < 64; i++) {
        const struct raft_msg *m = &f->out[i].m;
        if (m->type == RAFT_MSG_HEARTBEAT) {
            resp[n++] = fx_heartbeat_resp(m->to, f->o.id, m->term, m->heartbeat.read_ctx);
        }
    }
    fx_clear(f);
    for (uint32_t i = 0; i < n; i++) {
        fx_step(f, &resp[i]);
    }
    fx_drain(f);
}

static struct fx *leader(uint32_t voters)
{
    struct raft_options o = fx_options(1);
    return fx_new_leader(&o, voters);
}

/* "If the server is not the leader, it ... rejects the request" (clients retry at the
 * leader). Reference: thesis §6.4 */
static void test_read_index_refused_when_not_leader(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    assert_int_equal(raft_read_index(f->r, 1), RR_ENOTLEADER);
    raft_campaign(f->r);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_CANDIDATE);
    assert_int_equal(raft_read_index(f->r, 1), RR_ENOTLEADER);
    fx_drain(f);
    assert_int_equal(f->read_count, 0);
    fx_free(f);
}

/* "If the leader has not yet marked an entry from its current term committed, it waits
 * until it has done so." Reference: thesis §6.4 step 1 */
static void test_read_index_waits_for_current_term_commit(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    fx_make_leader(f);
    fx_clear(f);
    assert_int_equal(raft_read_index(f->r, 5), 0);
    fx_drain(f);
    for (int i = 0; i < 3; i++) {
        answer_heartbeats(f);
        raft_tick(f->r);
        fx_drain(f);
    }
    assert_int_equal(fx_commit(f), 0);
    assert_int_equal(f->read_count, 0); /* leadership confirmed, but no current-term commit */
    struct raft_msg ack = fx_append_resp(2, 1, 1, false, 1);
    fx_step(f, &ack);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 1);
    for (int i = 0; i < 3 && f->read_count == 0; i++) {
        answer_heartbeats(f);
        raft_tick(f->r);
        fx_drain(f);
    }
    assert_int_equal(f->read_count, 1);
    assert_int_equal(f->reads[0].ctx, 5);
    assert_int_equal(f->reads[0].index, 1);
    fx_free(f);
}

/* "The leader records its current commit index in a local variable readIndex" and
 * "sends a new round of heartbeats"; reads that arrive while a round is in flight are
 * batched: the next single round serves all of them, at one index. Reference: thesis §6.4
 * steps 2-3 and its note on batching */
static void test_read_index_batched_one_round(void **state)
{
    (void)state;
    struct fx *f = leader(3);
    assert_int_equal(raft_read_index(f->r, 10), 0);
    fx_drain(f);
    uint64_t first = round_ctx(f, 2, 0);
    assert_int_equal(raft_read_index(f->r, 11), 0);
    assert_int_equal(raft_read_index(f->r, 12), 0);
    assert_int_equal(raft_read_index(f->r, 13), 0);
    fx_drain(f);
    confirm(f, 2, first);
    assert_int_equal(f->read_count, 1);
    uint64_t second = round_ctx(f, 2, first);
    fx_drain(f);
    assert_int_equal(rounds_to(f, 2), 2); /* one for the first read, one for the other three */
    confirm(f, 2, second);
    assert_int_equal(f->read_count, 4);
    for (uint32_t i = 1; i < 4; i++) {
        assert_int_equal(f->reads[i].ctx, 10 + i);
        assert_int_equal(f->reads[i].index, 1);
    }
    fx_free(f);
}

/* "Upon receiving acknowledgments from a majority of the cluster, the leader knows that
 * there could not have existed a leader for a greater term." Reference: thesis §6.4 step 3 */
static void test_read_index_needs_majority_confirmation(void **state)
{
    (void)state;
    struct fx *f = leader(5);
    assert_int_equal(raft_read_index(f->r, 7), 0);
    fx_drain(f);
    uint64_t ctx = round_ctx(f, 2, 0);
    confirm(f, 2, ctx);
    assert_int_equal(f->read_count, 0); /* itself and node 2: 2 of 5 */
    confirm(f, 3, ctx);
    assert_int_equal(f->read_count, 1); /* 3 of 5 */
    assert_int_equal(f->reads[0].ctx, 7);
    fx_free(f);
}

/* The read's index is the commit index when its round started, even if the commit moves
 * while the round is in flight. Reference: thesis §6.4 step 2 */
static void test_read_index_is_commit_at_round_start(void **state)
{
    (void)state;
    struct fx *f = leader(3);
    assert_int_equal(raft_read_index(f->r, 7), 0);
    fx_drain(f);
    uint64_t ctx = round_ctx(f, 2, 0);
    raft_index start_commit = fx_commit(f);
    raft_index idx = 0;
    assert_int_equal(raft_propose(f->r, (const uint8_t *)"a", 1, &idx), 0);
    fx_drain(f);
    const struct raft_msg *app = fx_expect(f, RAFT_MSG_APPEND, 2);
    struct raft_msg ack =
        fx_append_resp(2, 1, app->term, false, app->append.prev_index + app->append.entry_count);
    fx_step(f, &ack);
    fx_drain(f);
    assert_int_equal(fx_commit(f), idx); /* moved during the round */
    confirm(f, 2, ctx);
    assert_int_equal(f->read_count, 1);
    assert_int_equal(f->reads[0].index, start_commit);
    fx_free(f);
}

/* A read queued after a round left is not served by that round (its leadership proof
 * predates the read); it waits for the next one. Reference: thesis §6.4 */
static void test_read_index_later_read_waits_for_next_round(void **state)
{
    (void)state;
    struct fx *f = leader(3);
    assert_int_equal(raft_read_index(f->r, 1), 0);
    fx_drain(f);
    uint64_t first = round_ctx(f, 2, 0);
    assert_int_equal(raft_read_index(f->r, 2), 0);
    fx_drain(f);
    confirm(f, 2, first);
    assert_int_equal(f->read_count, 1);
    assert_int_equal(f->reads[0].ctx, 1);
    uint64_t second = round_ctx(f, 2, first);
    confirm(f, 2, second);
    assert_int_equal(f->read_count, 2);
    assert_int_equal(f->reads[1].ctx, 2);
    fx_free(f);
}

/* A leader deposed before its round is confirmed must not serve the reads queued at it:
 * a newer leader may already have committed writes they would miss. They fail instead, in
 * the next ready, so that the clients retry at once (core/raft.h: each read comes back
 * exactly once). Reference: thesis §6.4 */
static void test_read_index_not_served_after_step_down(void **state)
{
    (void)state;
    struct fx *f = leader(3);
    assert_int_equal(raft_read_index(f->r, 9), 0);
    fx_drain(f);
    uint64_t ctx = round_ctx(f, 2, 0);
    assert_int_equal(raft_read_index(f->r, 10), 0); /* waits for the next round */
    fx_drain(f);
    struct raft_msg newer = fx_heartbeat_resp(3, 1, fx_term(f) + 1, 0);
    fx_step(f, &newer);
    assert_true(raft_has_ready(f->r));
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    assert_int_equal(f->read_failure_count, 2);
    assert_int_equal(f->read_failures[0], 9);
    assert_int_equal(f->read_failures[1], 10);
    struct raft_msg late = fx_heartbeat_resp(2, 1, fx_term(f) - 1, ctx);
    raft_step(f->r, &late); /* a stale-term echo of the old round */
    fx_drain(f);
    assert_int_equal(f->read_count, 0);
    assert_int_equal(f->read_failure_count, 2); /* failed once, never released */
    fx_free(f);
}

/* A read whose round was confirmed while this node led is still released after it steps
 * down, once its index is applied: the index was confirmed while it led. Reference: thesis
 * §6.4 */
static void test_read_index_confirmed_released_after_step_down(void **state)
{
    (void)state;
    struct fx *f = leader(3);
    /* Hold the no-op's apply back: the leader's log is durable, but a read at its commit
     * index is released only once applied, so confirm first, then step down. */
    assert_int_equal(raft_read_index(f->r, 5), 0);
    uint64_t ctx = round_ctx(f, 2, 0);
    struct raft_msg ack = fx_heartbeat_resp(2, 1, fx_term(f), ctx);
    fx_step(f, &ack);
    assert_int_equal(raft_read_index(f->r, 6), 0); /* next round, never confirmed */
    struct raft_msg newer = fx_heartbeat_resp(3, 1, fx_term(f) + 1, 0);
    fx_step(f, &newer);
    fx_drain(f);
    assert_int_equal(fx_role(f), RAFT_FOLLOWER);
    assert_int_equal(f->read_count, 1);
    assert_int_equal(f->reads[0].ctx, 5);
    assert_int_equal(f->read_failure_count, 1);
    assert_int_equal(f->read_failures[0], 6);
    fx_free(f);
}

/* A leadership transfer that completes (the target wins) fails the reads the old leader
 * could no longer confirm. Reference: thesis §3.10, §6.4 */
static void test_read_index_fails_on_transfer(void **state)
{
    (void)state;
    struct fx_net net;
    fx_net_init(&net, 3, 3, false, false);
    fx_net_elect(&net, 1);
    fx_net_cut(&net, 1, 3); /* the round needs 2; 3 cannot answer */
    net.cut[2][1] = true;   /* and 2's echoes are lost */
    assert_int_equal(raft_read_index(net.n[1]->r, 77), 0);
    fx_net_deliver(&net);
    assert_int_equal(raft_transfer_leader(net.n[1]->r, 2), 0);
    for (int t = 0; t < 5 && fx_role(net.n[2]) != RAFT_LEADER; t++) {
        fx_net_tick(&net);
    }
    assert_int_equal(fx_role(net.n[2]), RAFT_LEADER);
    net.cut[2][1] = false; /* node 1 hears the new term */
    fx_net_tick(&net);
    assert_int_equal(fx_role(net.n[1]), RAFT_FOLLOWER);
    struct fx *old = net.n[1];
    assert_int_equal(old->read_count, 0);
    assert_int_equal(old->read_failure_count, 1);
    assert_int_equal(old->read_failures[0], 77);
    /* The role events told node 1 who leads now, without polling. */
    assert_int_equal(old->ev_role, RAFT_FOLLOWER);
    assert_int_equal(old->ev_leader, 2);
    assert_int_equal(net.n[2]->ev_role, RAFT_LEADER);
    fx_net_free(&net);
}

/* The read queue is bounded: past RAFT_READS_MAX queued reads the leader refuses with
 * RR_EBUSY instead of growing without limit. Reference: core/limits.h */
static void test_read_index_busy_when_queue_full(void **state)
{
    (void)state;
    struct fx *f = leader(3);
    for (uint64_t i = 1; i <= RAFT_READS_MAX; i++) {
        assert_int_equal(raft_read_index(f->r, i), 0);
    }
    assert_int_equal(raft_read_index(f->r, RAFT_READS_MAX + 1), RR_EBUSY);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_index_refused_when_not_leader),
        cmocka_unit_test(test_read_index_waits_for_current_term_commit),
        cmocka_unit_test(test_read_index_batched_one_round),
        cmocka_unit_test(test_read_index_needs_majority_confirmation),
        cmocka_unit_test(test_read_index_is_commit_at_round_start),
        cmocka_unit_test(test_read_index_later_read_waits_for_next_round),
        cmocka_unit_test(test_read_index_not_served_after_step_down),
        cmocka_unit_test(test_read_index_confirmed_released_after_step_down),
        cmocka_unit_test(test_read_index_fails_on_transfer),
        cmocka_unit_test(test_read_index_busy_when_queue_full),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
