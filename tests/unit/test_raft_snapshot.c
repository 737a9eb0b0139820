/* Log compaction and InstallSnapshot (Raft §7, Figure 13) as named tests. */
#include "tests/unit/raft_fixture.h"

#define BIG_SNAPSHOT_BYTES 600000u /* a little over two RAFT_SNAPSHOT_CHUNK_BYTES chunks */

static uint8_t pattern(uint64_t i)
{
    return (uint8_t)((i * 7u + 3u) & 0xffu);
}

static struct raft_msg snapshot_chunk(raft_node from,
                                      raft_node to,
                                      raft_term term,
                                      raft_index index,
                                      raft_term snap_term,
                                      uint64_t offset,
                                      uint64_t total,
                                      const uint8_t *data,
                                      uint32_t len,
                                      bool done)
{
    struct raft_msg m = fx_msg(RAFT_MSG_SNAPSHOT, from, to, term);
    static struct raft_config config; /* the message points to it */
    fx_config(&config, 3);
    m.snapshot.last_index = index;
    m.snapshot.last_term = snap_term;
    m.snapshot.config = &config;
    m.snapshot.offset = offset;
    m.snapshot.total_bytes = total;
    m.snapshot.done = done;
    m.snapshot.chunk.base = data;
    m.snapshot.chunk.len = len;
    return m;
}

/* "Each server takes snapshots independently, covering just the committed entries in its
 * log": the log up to the snapshot index is discarded, its last index and term kept.
 * Reference: §7, Figure 12 */
static void test_snapshot_taken_compacts_log(void **state)
{
    (void)state;
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_leader(&o, 3);
    for (int i = 0; i < 4; i++) {
        raft_index idx = 0;
        assert_int_equal(raft_propose(f->r, (const uint8_t *)"v", 1, &idx), 0);
        fx_drain(f);
        fx_ack_appends(f);
    }
    assert_int_equal(fx_commit(f), 5);
    assert_int_equal(f->applied_last, 5);
    assert_int_equal(raft_snapshot_taken(f->r, 4, (const uint8_t *)"snap", 4, 0), 0);
    fx_drain(f);
    struct raft_status s = fx_status(f);
    assert_int_equal(s.snapshot_index, 4);
    assert_int_equal(s.snapshot_term, 1);
    assert_int_equal(s.first_index, 5);
    assert_int_equal(s.last_index, 5);
    assert_int_equal(raft_term_at(f->r, 4), 1);
    assert_null(raft_entry_at(f->r, 3));
    assert_non_null(raft_entry_at(f->r, 5));
    fx_free(f);
}

/* "The leader uses a new RPC called InstallSnapshot to send snapshots to followers that
 * are too far behind", in chunks; the follower installs it and its log restarts after it.
 * Two real instances: the leader's log starts at 11 after a 600000-byte snapshot at 10;
 * the follower is empty. Reference: §7, Figure 13 */
static void test_snapshot_sent_to_follower_behind_first_index(void **state)
{
    (void)state;
    uint8_t *data = malloc(BIG_SNAPSHOT_BYTES);
    FX_NONNULL(data);
    for (uint64_t i = 0; i < BIG_SNAPSHOT_BYTES; i++) {
        data[i] = pattern(i);
    }
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
    rs.snapshot_data = data;
    rs.snapshot_bytes = BIG_SNAPSHOT_BYTES;
    rs.entries = e;
    rs.entry_count = 2;

    struct fx_net net;
    memset(&net, 0, sizeof(net));
    net.count = 3;
    struct raft_options o1 = fx_options(1);
    net.n[1] = fx_new_restore(&o1, 3, &rs);
    net.n[2] = fx_new(2, 3);
    net.n[3] = fx_new(3, 3);
    fx_net_cut(&net, 1, 3);
    fx_net_cut(&net, 2, 3);
    assert_int_equal(fx_status(net.n[1]).first_index, 11);
    raft_campaign(net.n[1]->r);
    fx_net_deliver(&net);

    assert_int_equal(fx_role(net.n[1]), RAFT_LEADER);
    assert_true(net.delivered[RAFT_MSG_SNAPSHOT] >= 3); /* chunked */
    assert_true(net.chunk_max <= RAFT_SNAPSHOT_CHUNK_BYTES);
    struct fx *fol = net.n[2];
    assert_int_equal(fol->snap_index, 10);
    assert_int_equal(fol->snap_bytes, BIG_SNAPSHOT_BYTES);
    assert_memory_equal(fol->snap_data, data, BIG_SNAPSHOT_BYTES);
    struct raft_status s = fx_status(fol);
    assert_int_equal(s.snapshot_index, 10);
    assert_int_equal(s.snapshot_term, 1);
    assert_int_equal(s.first_index, 11);
    assert_int_equal(s.last_index, 13); /* 11, 12 and the new leader's no-op */
    struct raft_progress_view p = fx_progress(net.n[1], 2);
    assert_int_equal(p.state, RAFT_PROGRESS_REPLICATE);
    assert_int_equal(p.match, 13);
    assert_int_equal(fx_commit(net.n[1]), 13);
    fx_net_free(&net);
    free(data);
}

/* "If the snapshot ... is not covered by the follower's log, the follower discards its
 * entire log; it is all superseded by the snapshot." Reference: §7, Figure 13 step 7-8 */
static void test_snapshot_install_resets_log(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1, 1, 1, 1};
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, terms, 5, 1, RAFT_NODE_NONE);
    uint8_t data[100];
    for (uint32_t i = 0; i < sizeof(data); i++) {
        data[i] = pattern(i);
    }
    struct raft_msg m = snapshot_chunk(1, 2, 2, 10, 2, 0, sizeof(data), data, sizeof(data), true);
    fx_step(f, &m);
    fx_drain(f);
    struct raft_status s = fx_status(f);
    assert_int_equal(s.snapshot_index, 10);
    assert_int_equal(s.snapshot_term, 2);
    assert_int_equal(s.first_index, 11);
    assert_int_equal(s.last_index, 10);
    assert_int_equal(s.commit, 10);
    assert_int_equal(raft_term_at(f->r, 10), 2);
    assert_null(raft_entry_at(f->r, 5));
    assert_int_equal(f->snap_index, 10);
    assert_int_equal(f->snap_bytes, sizeof(data));
    assert_memory_equal(f->snap_data, data, sizeof(data));
    assert_int_equal(f->applied_count, 0); /* the old entries are never applied */
    const struct raft_msg *r = fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 1);
    assert_true(r->snapshot_resp.done);
    assert_false(r->snapshot_resp.rejected);
    assert_int_equal(r->snapshot_resp.index, 10);
    fx_free(f);
}

/* A snapshot that does not go past the follower's commit index carries nothing new and is
 * ignored (installing it would move the state machine backwards). Reference: §7 ("If
 * instead the follower receives a snapshot that describes a prefix of its log..."),
 * etcd restore() */
static void test_snapshot_older_than_commit_ignored(void **state)
{
    (void)state;
    const raft_term terms[] = {1, 1, 1, 1, 1};
    struct raft_options o = fx_options(2);
    struct fx *f = fx_new_log(&o, 3, terms, 5, 1, RAFT_NODE_NONE);
    struct raft_msg hb = fx_append(1, 2, 1, 5, 1, 5, NULL, 0);
    fx_step(f, &hb);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 5);
    const uint8_t data[4] = {1, 2, 3, 4};
    struct raft_msg m = snapshot_chunk(1, 2, 1, 3, 1, 0, sizeof(data), data, sizeof(data), true);
    fx_step(f, &m);
    fx_drain(f);
    struct raft_status s = fx_status(f);
    assert_int_equal(s.snapshot_index, 0);
    assert_int_equal(s.first_index, 1);
    assert_int_equal(s.last_index, 5);
    assert_int_equal(s.commit, 5);
    assert_int_equal(f->snap_index, 0); /* nothing written */
    assert_int_equal(f->applied_last, 5);
    fx_free(f);
}

/* Chunks are written "at the given offset" and acknowledged with the bytes received so
 * far; the snapshot is installed when the last chunk arrives. Reference: Figure 13 */
static void test_snapshot_chunks_reassembled(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    uint8_t data[300];
    for (uint32_t i = 0; i < sizeof(data); i++) {
        data[i] = pattern(i);
    }
    for (uint32_t c = 0; c < 3; c++) {
        struct raft_msg m =
            snapshot_chunk(1, 2, 1, 20, 1, c * 100u, sizeof(data), data + c * 100u, 100, c == 2);
        fx_clear(f);
        fx_step(f, &m);
        fx_drain(f);
        const struct raft_msg *r = fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 1);
        assert_false(r->snapshot_resp.rejected);
        assert_int_equal(r->snapshot_resp.next_offset, (c + 1u) * 100u);
        assert_int_equal(r->snapshot_resp.done, c == 2);
        assert_int_equal(f->snap_index, c == 2 ? 20 : 0);
    }
    assert_int_equal(f->snap_bytes, sizeof(data));
    assert_memory_equal(f->snap_data, data, sizeof(data));
    assert_int_equal(fx_status(f).snapshot_index, 20);
    fx_free(f);
}

/* "Create new snapshot file if first chunk (offset is 0)"; a chunk that does not continue
 * the transfer is refused and the transfer restarts from offset 0. Reference: Figure 13 */
static void test_snapshot_chunk_gap_rejected(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    uint8_t data[100];
    memset(data, 0x5a, sizeof(data));
    struct raft_msg m = snapshot_chunk(1, 2, 1, 20, 1, 100, 300, data, sizeof(data), false);
    fx_step(f, &m);
    fx_drain(f);
    const struct raft_msg *r = fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 1);
    assert_false(r->snapshot_resp.done);
    assert_true(r->snapshot_resp.rejected || r->snapshot_resp.next_offset == 0);
    assert_int_equal(f->snap_index, 0);
    assert_int_equal(fx_status(f).snapshot_index, 0);

    /* Mid-transfer: chunk 0 arrives, then the last chunk skipping 100..200. */
    struct raft_msg c0 = snapshot_chunk(1, 2, 1, 20, 1, 0, 300, data, sizeof(data), false);
    fx_clear(f);
    fx_step(f, &c0);
    fx_drain(f);
    assert_int_equal(fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 1)->snapshot_resp.next_offset, 100);
    struct raft_msg c2 = snapshot_chunk(1, 2, 1, 20, 1, 200, 300, data, sizeof(data), true);
    fx_clear(f);
    fx_step(f, &c2);
    fx_drain(f);
    r = fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 1);
    assert_false(r->snapshot_resp.done);
    assert_true(r->snapshot_resp.rejected || r->snapshot_resp.next_offset == 100);
    assert_int_equal(f->snap_index, 0); /* never installed with a hole */
    assert_int_equal(fx_status(f).snapshot_index, 0);
    fx_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_taken_compacts_log),
        cmocka_unit_test(test_snapshot_sent_to_follower_behind_first_index),
        cmocka_unit_test(test_snapshot_install_resets_log),
        cmocka_unit_test(test_snapshot_older_than_commit_ignored),
        cmocka_unit_test(test_snapshot_chunks_reassembled),
        cmocka_unit_test(test_snapshot_chunk_gap_rejected),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
