/* Replication flow control and log back-tracking (Raft §5.3; etcd's progress states and
 * in-flight window; thesis §10.2.1) as named tests. */
#include "tests/unit/raft_fixture.h"

static void propose_n(struct fx *f, uint32_t n, uint32_t bytes)
{
    uint8_t buf[256];
    assert_true(bytes <= sizeof(buf));
    memset(buf, 0xab, sizeof(buf));
    for (uint32_t i = 0; i < n; i++) {
        raft_index idx = 0;
        assert_int_equal(raft_propose(f->r, buf, bytes, &idx), 0);
        fx_drain(f);
    }
}

/* Acknowledges the APPENDs to `from` in `out` (all of them, or only the first), as a
 * follower whose log matches would; clears `out` and drains. */
static void ack_from(struct fx *f, raft_node from, bool first_only)
{
    struct raft_msg resp[64];
    uint32_t n = 0;
    for (uint32_t i = 0; i < f->out_count && n < 64; i++) {
        const struct raft_msg *m = &f->out[i].m;
        if (m->type == RAFT_MSG_APPEND && m->to == from && m->append.entry_count > 0) {
            resp[n++] = fx_append_resp(from, f->o.id, m->term, false,
                                       m->append.prev_index + m->append.entry_count);
            if (first_only) {
                break;
            }
        }
    }
    fx_clear(f);
    for (uint32_t i = 0; i < n; i++) {
        fx_step(f, &resp[i]);
    }
    fx_drain(f);
}

/* Acknowledges node 2's appends until it matches the leader's log. */
static void ack_until_caught_up(struct fx *f)
{
    for (int i = 0; i < 64 && fx_progress(f, 2).match < fx_last(f); i++) {
        ack_from(f, 2, false);
    }
    assert_int_equal(fx_progress(f, 2).match, fx_last(f));
}

/* "When a leader first comes to power, it initializes all nextIndex values to the index
 * just after the last one in its log" and probes; a follower is probed with one
 * AppendEntries at a time until it answers. Reference: §5.3; etcd StateProbe */
static void test_probe_sends_one_append_until_response(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    fx_make_leader(f);
    assert_int_equal(fx_count_appends(f, 3), 1);
    struct raft_progress_view p = fx_progress(f, 3);
    assert_int_equal(p.state, RAFT_PROGRESS_PROBE);
    assert_in_range(p.next, 1, 2);
    ack_from(f, 2, false);
    fx_clear(f);
    propose_n(f, 3, 1);
    assert_true(fx_count_appends(f, 2) >= 1);    /* node 2 answered: replicating */
    assert_int_equal(fx_count_appends(f, 3), 0); /* node 3 did not: paused */
    assert_int_equal(fx_progress(f, 3).state, RAFT_PROGRESS_PROBE);
    struct raft_msg ack = fx_append_resp(3, 1, 1, false, 1);
    fx_clear(f);
    fx_step(f, &ack);
    fx_drain(f);
    assert_true(fx_count_appends(f, 3) >= 1); /* the answer unpauses it */
    fx_free(f);
}

/* A successful answer to a probe moves the follower to pipelined replication with
 * match and next set from it. Reference: §5.3 (nextIndex/matchIndex); etcd StateReplicate */
static void test_append_ack_moves_probe_to_replicate(void **state)
{
    (void)state;
    struct fx *f = fx_new(1, 3);
    fx_make_leader(f);
    assert_int_equal(fx_progress(f, 2).state, RAFT_PROGRESS_PROBE);
    ack_from(f, 2, false);
    struct raft_progress_view p = fx_progress(f, 2);
    assert_int_equal(p.state, RAFT_PROGRESS_REPLICATE);
    assert_int_equal(p.match, 1);
    assert_int_equal(p.next, 2);
    fx_free(f);
}

/* The in-flight window bounds unacknowledged AppendEntries per follower by count; an
 * acknowledgement frees a slot and sending resumes. Reference: etcd MaxInflightMsgs,
 * core/limits.h RAFT_INFLIGHT_COUNT_MAX */
static void test_inflight_count_limit_pauses_and_frees(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    o.inflight_count_max = 2;
    struct fx *f = fx_new_leader(&o, 3);
    propose_n(f, 5, 1);
    assert_int_equal(fx_last(f), 6);
    assert_int_equal(fx_count_appends(f, 2), 2);
    assert_int_equal(fx_progress(f, 2).inflight_count, 2);
    ack_from(f, 2, true);
    assert_int_equal(fx_count_appends(f, 2), 1); /* one slot freed, one message */
    assert_int_equal(fx_progress(f, 2).inflight_count, 2);
    ack_until_caught_up(f);
    assert_int_equal(fx_progress(f, 2).inflight_count, 0);
    fx_free(f);
}

/* The window also bounds in-flight payload bytes. Reference: etcd MaxInflightBytes,
 * core/limits.h RAFT_INFLIGHT_BYTES_MAX */
static void test_inflight_bytes_limit_pauses_sending(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    o.inflight_bytes_max = 100;
    struct fx *f = fx_new_leader(&o, 3);
    propose_n(f, 4, 60);
    uint32_t sent = fx_count_appends(f, 2);
    assert_in_range(sent, 1, 2); /* 4 x 60 bytes would be 240 */
    struct raft_progress_view p = fx_progress(f, 2);
    assert_true(p.inflight_bytes <= 100 + 60);
    assert_int_equal(p.inflight_count, sent);
    ack_until_caught_up(f);
    assert_int_equal(fx_progress(f, 2).inflight_bytes, 0);
    fx_free(f);
}

/* On rejection the follower reports where its log ends so the leader can skip back:
 * "the follower can include the term of the conflicting entry and the first index it
 * stores for that term". Reference: §5.3 (optimization), etcd findConflictByTerm */
static void test_follower_rejection_carries_hint(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1, 1};
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, terms, 3, 1, RAFT_NODE_NONE);
    struct raft_entry e[1];
    const raft_term t[] = {2};
    fx_entries(e, 11, t, 1);
    struct raft_msg app = fx_append(1, 2, 2, 10, 2, 0, e, 1);
    fx_step(f, &app);
    fx_drain(f);
    const struct raft_msg *r = fx_expect(f, RAFT_MSG_APPEND_RESP, 1);
    assert_true(r->append_resp.rejected);
    assert_int_equal(r->append_resp.index, 10);
    assert_int_equal(r->append_resp.hint_index, 3);
    assert_int_equal(r->append_resp.hint_term, 1);
    fx_free(f);
}

/* Leader restored with the given log at `term`, elected, its probe to node 2 rejected with
 * (hint_index, hint_term); returns the prev_index of the next probe to node 2. */
static raft_index next_probe_after_hint(
    const raft_term *terms, uint32_t n, raft_term term, raft_index hint_index, raft_term hint_term)
{
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_log(&o, 3, terms, n, term, RAFT_NODE_NONE);
    fx_make_leader(f);
    const struct raft_msg *probe = fx_expect(f, RAFT_MSG_APPEND, 2);
    raft_index probed = probe->append.prev_index;
    assert_true(probed >= n); /* n, or n + 1 if the no-op counts in nextIndex */
    struct raft_msg rej = fx_append_resp(2, 1, probe->term, true, probed);
    rej.append_resp.hint_index = hint_index;
    rej.append_resp.hint_term = hint_term;
    fx_clear(f);
    fx_step(f, &rej);
    fx_drain(f);
    raft_index prev = fx_expect(f, RAFT_MSG_APPEND, 2)->append.prev_index;
    fx_free(f);
    return prev;
}

/* The leader jumps straight to the follower's hint instead of decrementing nextIndex one
 * entry per round trip. Reference: §5.3 ("the leader can decrement nextIndex to bypass all
 * of the conflicting entries") */
static void test_leader_uses_hint_index_to_skip(void **state)
{
    (void)state;
    raft_term terms[20];
    for (int i = 0; i < 20; i++) {
        terms[i] = 1;
    }
    assert_int_equal(next_probe_after_hint(terms, 20, 1, 5, 1), 5);
}

/* With a hint term, the leader skips a whole conflicting term at once: the follower's
 * entries up to 8 are from term 2, which the leader's log lacks, so the next probe is at
 * the leader's last entry with term <= 2. Reference: §5.3, etcd findConflictByTerm */
static void test_leader_uses_hint_term_to_skip_term(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1, 1, 3, 3, 3, 3, 3};
    assert_int_equal(next_probe_after_hint(terms, 8, 3, 8, 2), 3);
}

/* End to end on two real instances: a follower holding 15 uncommitted entries of a
 * deposed leader's term converges on the new leader's log in far fewer round trips than
 * one-by-one back-tracking (10 here), and the conflicting suffix is replaced.
 * Reference: §5.3, Figure 7 */
static void test_fast_backtracking_fewer_round_trips(void **state)
{
    (void)state;
    raft_term lt[20];
    raft_term ft[25];
    for (int i = 0; i < 25; i++) {
        if (i < 20) {
            lt[i] = i < 10 ? 1 : 3;
        }
        ft[i] = i < 10 ? 1 : 2;
    }
    struct fx_net net;
    memset(&net, 0, sizeof(net));
    net.count = 3;
    struct raft_options o1 = fx_options(1);
    struct raft_options o2 = fx_options(2);
    struct raft_options o3 = fx_options(3);
    net.n[1] = fx_new_log(&o1, 3, lt, 20, 3, RAFT_NODE_NONE);
    net.n[2] = fx_new_log(&o2, 3, ft, 25, 3, RAFT_NODE_NONE);
    net.n[3] = fx_new_restore(&o3, 3, NULL);
    fx_net_cut(&net, 1, 3);
    fx_net_cut(&net, 2, 3);
    raft_campaign(net.n[1]->r);
    fx_net_deliver(&net);
    assert_int_equal(fx_role(net.n[1]), RAFT_LEADER);
    assert_int_equal(fx_last(net.n[1]), 21);
    assert_true(net.rejected_appends >= 1);
    assert_true(net.rejected_appends <= 2);
    assert_int_equal(fx_last(net.n[2]), 21);
    for (raft_index i = 1; i <= 21; i++) {
        assert_int_equal(raft_term_at(net.n[2]->r, i), raft_term_at(net.n[1]->r, i));
    }
    assert_true(net.n[2]->truncations >= 1);
    assert_int_equal(fx_commit(net.n[1]), 21);
    fx_net_free(&net);
}

/* Ticks the leader up to `ticks` times, answering node 2's heartbeats (it is alive) but
 * dropping everything else; returns the first message of `type` to node 2 that `want`
 * accepts, copied into *out, or false. */
static bool tick_until_resent(struct fx *f,
                              uint32_t ticks,
                              uint8_t type,
                              bool (*want)(const struct raft_msg *),
                              struct raft_msg *out)
{
    for (uint32_t i = 0; i < ticks; i++) {
        raft_tick(f->r);
        fx_drain(f);
        const struct fx_msg *m = fx_find(f, type, 2);
        if (m != NULL && want(&m->m)) {
            *out = m->m;
            fx_msg_forget_data(out); /* the copies die with fx_clear */
            return true;
        }
        const struct fx_msg *hb = fx_find_last(f, RAFT_MSG_HEARTBEAT, 2);
        struct raft_msg resp =
            fx_heartbeat_resp(2, 1, fx_term(f), hb != NULL ? hb->m.heartbeat.read_ctx : 0);
        fx_clear(f);
        fx_step(f, &resp);
        fx_drain(f);
        m = fx_find(f, type, 2);
        if (m != NULL && want(&m->m)) {
            *out = m->m;
            fx_msg_forget_data(out);
            return true;
        }
        fx_clear(f);
    }
    return false;
}

static bool carries_index_2(const struct raft_msg *m)
{
    return m->append.prev_index < 2 && m->append.prev_index + m->append.entry_count >= 2;
}

/* "If followers crash or run slowly, or if network packets are lost, the leader retries
 * AppendEntries RPCs indefinitely until all followers eventually store all log entries."
 * A lost append to a live follower is sent again. Reference: §5.3 */
static void test_leader_retries_lost_append(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_leader(&o, 3);
    propose_n(f, 1, 1);
    assert_int_equal(fx_count_appends(f, 2), 1);
    fx_clear(f); /* the append to node 2 is lost */
    struct raft_msg again;
    assert_true(tick_until_resent(f, 3 * 5u, RAFT_MSG_APPEND, carries_index_2, &again));
    struct raft_msg ack =
        fx_append_resp(2, 1, again.term, false, again.append.prev_index + again.append.entry_count);
    fx_step(f, &ack);
    fx_drain(f);
    assert_int_equal(fx_progress(f, 2).match, 2);
    fx_free(f);
}

static bool is_first_chunk(const struct raft_msg *m)
{
    return m->snapshot.offset == 0 && m->snapshot.last_index == 10;
}

/* The same for InstallSnapshot: a lost chunk is sent again. Reference: §5.3, §7 */
static void test_leader_retries_lost_snapshot_chunk(void **state)
{
    (void)state;
    static const uint8_t data[64] = {1, 2, 3};
    struct raft_entry e[2];
    const raft_term t[] = {1, 1};
    fx_entries(e, 11, t, 2);
    struct raft_restore rs;
    memset(&rs, 0, sizeof(rs));
    rs.hard_state.term = 1;
    rs.hard_state.commit = 10;
    rs.snapshot.index = 10;
    rs.snapshot.term = 1;
    fx_config(&rs.snapshot.config, 3);
    rs.snapshot_bytes = sizeof(data);
    rs.entries = e;
    rs.entry_count = 2;
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_restore(&o, 3, &rs);
    fx_set_image(f, data, sizeof(data));
    fx_make_leader(f);
    const struct raft_msg *probe = fx_expect(f, RAFT_MSG_APPEND, 2);
    struct raft_msg rej = fx_append_resp(2, 1, probe->term, true, probe->append.prev_index);
    fx_clear(f);
    fx_step(f, &rej); /* node 2 has nothing: hint 0 */
    fx_drain(f);
    const struct raft_msg *chunk = fx_expect(f, RAFT_MSG_SNAPSHOT, 2);
    assert_true(is_first_chunk(chunk));
    assert_int_equal(fx_progress(f, 2).state, RAFT_PROGRESS_SNAPSHOT);
    fx_clear(f); /* the chunk is lost */
    struct raft_msg again;
    assert_true(tick_until_resent(f, 3 * 5u, RAFT_MSG_SNAPSHOT, is_first_chunk, &again));
    assert_int_equal(again.snapshot.total_bytes, sizeof(data));
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_probe_sends_one_append_until_response),
        cmocka_unit_test(test_append_ack_moves_probe_to_replicate),
        cmocka_unit_test(test_inflight_count_limit_pauses_and_frees),
        cmocka_unit_test(test_inflight_bytes_limit_pauses_sending),
        cmocka_unit_test(test_follower_rejection_carries_hint),
        cmocka_unit_test(test_leader_uses_hint_index_to_skip),
        cmocka_unit_test(test_leader_uses_hint_term_to_skip_term),
        cmocka_unit_test(test_fast_backtracking_fewer_round_trips),
        cmocka_unit_test(test_leader_retries_lost_append),
        cmocka_unit_test(test_leader_retries_lost_snapshot_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
