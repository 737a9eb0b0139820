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
    assert_int_equal(fx_snapshot_taken(f, 4, "snap", 4, 0), 0);
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
    rs.snapshot_bytes = BIG_SNAPSHOT_BYTES;
    rs.entries = e;
    rs.entry_count = 2;

    struct fx_net net;
    memset(&net, 0, sizeof(net));
    net.count = 3;
    struct raft_options o1 = fx_options(1);
    net.n[1] = fx_new_restore(&o1, 3, &rs);
    fx_set_image(net.n[1], data, BIG_SNAPSHOT_BYTES); /* the core keeps none: the node does */
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

/* The core keeps no image: a leader's chunk asks the caller for the bytes (chunk.base NULL,
 * chunk.len the most to send). The caller may send fewer (whole records, say); the follower
 * acknowledges what it got and the leader's next chunk starts there. Reference: §7 (chunks
 * "at the given offset"); core/raft.h raft_ready.msgs */
static void test_snapshot_chunks_read_by_the_caller(void **state)
{
    (void)state;
    uint8_t image[1000];
    for (uint32_t i = 0; i < sizeof(image); i++) {
        image[i] = pattern(i);
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
    rs.snapshot_bytes = sizeof(image);
    rs.entries = e;
    rs.entry_count = 2;
    struct raft_options o = fx_options(1);
    struct fx *f = fx_new_restore(&o, 3, &rs);
    fx_set_image(f, image, sizeof(image));
    fx_make_leader(f);
    const struct raft_msg *probe = fx_expect(f, RAFT_MSG_APPEND, 2);
    struct raft_msg rej = fx_append_resp(2, 1, probe->term, true, probe->append.prev_index);
    struct raft_status st = fx_status(f);
    fx_clear(f);
    fx_step(f, &rej); /* node 2 has nothing: hint 0, below the first retained index */
    struct raft_ready rd;
    raft_ready(f->r, &rd);
    const struct raft_msg *m = NULL;
    for (uint32_t i = 0; i < rd.msg_count; i++) {
        if (rd.msgs[i].type == RAFT_MSG_SNAPSHOT) {
            m = &rd.msgs[i];
        }
    }
    FX_NONNULL(m);
    assert_null(m->snapshot.chunk.base);
    assert_int_equal(m->snapshot.chunk.len, sizeof(image));
    assert_int_equal(m->snapshot.offset, 0);
    assert_int_equal(m->snapshot.total_bytes, sizeof(image));
    assert_int_equal(m->snapshot.last_index, 10);
    raft_advance(f->r, &rd);
    /* The caller sent 300 bytes; the follower says it has them. */
    struct raft_msg ack = fx_msg(RAFT_MSG_SNAPSHOT_RESP, 2, 1, st.term);
    ack.snapshot_resp.index = 10;
    ack.snapshot_resp.next_offset = 300;
    fx_clear(f);
    fx_step(f, &ack);
    fx_drain(f);
    const struct raft_msg *next = fx_expect(f, RAFT_MSG_SNAPSHOT, 2);
    assert_int_equal(next->snapshot.offset, 300);
    assert_int_equal(next->snapshot.chunk.len, sizeof(image) - 300);
    assert_memory_equal(next->snapshot.chunk.base, image + 300, sizeof(image) - 300);
    fx_free(f);
}

/* A received chunk is acknowledged only once the caller stored it (it waits for the persist,
 * which also paces the transfer to the follower's disk). */
static void test_snapshot_chunk_ack_waits_for_store(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    uint8_t data[200];
    memset(data, 7, sizeof(data));
    struct raft_msg c0 = snapshot_chunk(1, 2, 1, 20, 1, 0, sizeof(data), data, 100, false);
    fx_step(f, &c0);
    fx_drain_nopersist(f);
    assert_int_equal(fx_count(f, RAFT_MSG_SNAPSHOT_RESP, 1), 0);
    assert_int_equal(f->rx_len, 100); /* handed out and stored */
    fx_persist(f);
    const struct raft_msg *r = fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 1);
    assert_int_equal(r->snapshot_resp.next_offset, 100);
    assert_false(r->snapshot_resp.done);
    fx_free(f);
}

/* A resent chunk (the leader timed out waiting for our answer) that arrives while the first
 * copy is still being stored is answered with our position, which counts the first copy's
 * bytes: that answer vouches for them as much as the first one does, so it too waits until
 * they are stored (it leaves with the persist, not before). */
static void test_snapshot_duplicate_ack_waits_for_store(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    uint8_t data[200];
    memset(data, 7, sizeof(data));
    struct raft_msg c0 = snapshot_chunk(1, 2, 1, 20, 1, 0, sizeof(data), data, 100, false);
    fx_step(f, &c0);
    fx_drain_nopersist(f); /* handed out; the caller's write is in flight */
    assert_int_equal(f->rx_len, 100);
    fx_step(f, &c0); /* the leader's resend */
    fx_drain_nopersist(f);
    assert_int_equal(fx_count(f, RAFT_MSG_SNAPSHOT_RESP, 1), 0);
    assert_int_equal(f->rx_len, 100); /* not stored twice */
    fx_persist(f);
    assert_int_equal(fx_count(f, RAFT_MSG_SNAPSHOT_RESP, 1), 2);
    const struct raft_msg *r = fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 1);
    assert_int_equal(r->snapshot_resp.next_offset, 100);
    assert_false(r->snapshot_resp.rejected);
    assert_false(r->snapshot_resp.done);
    fx_free(f);
}

/* "A bad chunk is refused, never installed": the caller's check of the whole image fails
 * (raft_snapshot_received(false)); the snapshot is not installed, the leader is told to start
 * over, and a good copy sent again installs. Reference: core/raft.h raft_snapshot_received */
static void test_snapshot_refused_image_never_installed(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    uint8_t data[64];
    memset(data, 3, sizeof(data));
    f->refuse_snapshots = true;
    struct raft_msg c = snapshot_chunk(1, 2, 1, 20, 1, 0, sizeof(data), data, sizeof(data), true);
    fx_step(f, &c);
    fx_drain(f);
    assert_int_equal(f->verdicts, 1);
    assert_int_equal(fx_status(f).snapshot_index, 0);
    assert_int_equal(f->snap_index, 0); /* nothing written as the group's snapshot */
    assert_int_equal(fx_commit(f), 0);
    const struct raft_msg *r = fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 1);
    assert_true(r->snapshot_resp.rejected);
    assert_false(r->snapshot_resp.done);
    /* The leader starts over; this time the image checks out. */
    f->refuse_snapshots = false;
    fx_clear(f);
    fx_step(f, &c);
    fx_drain(f);
    assert_int_equal(fx_status(f).snapshot_index, 20);
    assert_int_equal(f->snap_index, 20);
    r = fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 1);
    assert_true(r->snapshot_resp.done);
    assert_false(r->snapshot_resp.rejected);
    fx_free(f);
}

/* A chunk refused midway (it failed its record checks, or could not be stored) drops the
 * transfer: the next chunk does not continue it. */
static void test_snapshot_refused_midway_restarts(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    uint8_t data[300];
    memset(data, 9, sizeof(data));
    struct raft_msg c0 = snapshot_chunk(1, 2, 1, 20, 1, 0, sizeof(data), data, 100, false);
    fx_step(f, &c0);
    fx_drain(f);
    assert_int_equal(raft_snapshot_received(f->r, f->rx_transfer, false), 0);
    assert_int_equal(raft_snapshot_received(f->r, f->rx_transfer, false), RR_ENOTFOUND);
    fx_clear(f);
    fx_drain(f);
    assert_true(fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 1)->snapshot_resp.rejected);
    fx_clear(f);
    struct raft_msg c1 = snapshot_chunk(1, 2, 1, 20, 1, 100, sizeof(data), data + 100, 100, false);
    fx_step(f, &c1);
    fx_drain(f);
    assert_true(fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 1)->snapshot_resp.rejected);
    assert_int_equal(f->rx_len, 100); /* nothing more stored */
    assert_int_equal(fx_status(f).snapshot_index, 0);
    /* A verdict of true before the last chunk is a caller's error. */
    struct raft_msg again = snapshot_chunk(1, 2, 1, 20, 1, 0, sizeof(data), data, 100, false);
    fx_clear(f);
    fx_step(f, &again);
    fx_drain(f);
    assert_int_equal(raft_snapshot_received(f->r, f->rx_transfer, true), RR_EINVAL);
    fx_free(f);
}

/* A new transfer's first chunk that arrives after the verdict installed a snapshot, but before
 * that snapshot was handed out, must not go out in the same ready: the caller would store the
 * chunk first and so abandon the image it is about to install. It is ignored; the leader's
 * resend after the snapshot was handed out starts the transfer. */
static void test_snapshot_new_transfer_waits_for_installed_handout(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    uint8_t data[64];
    memset(data, 4, sizeof(data));
    struct raft_msg c = snapshot_chunk(1, 2, 1, 20, 1, 0, sizeof(data), data, sizeof(data), true);
    fx_step(f, &c);
    fx_take_ready(f); /* the chunk is stored; the verdict installs snapshot 20 */
    assert_int_equal(f->verdicts, 1);
    assert_true(raft_has_ready(f->r));
    struct raft_msg n = snapshot_chunk(1, 2, 1, 30, 1, 0, 200, data, sizeof(data), false);
    fx_step(f, &n);
    struct raft_ready rd;
    raft_ready(f->r, &rd);
    assert_true(rd.flags & RAFT_READY_SNAPSHOT);
    assert_int_equal(rd.snapshot->index, 20);
    assert_false(rd.flags & RAFT_READY_SNAPSHOT_CHUNK);
    raft_advance(f->r, &rd);
    fx_drain(f);
    assert_int_equal(fx_status(f).snapshot_index, 20);
    /* Resent once the snapshot was handed out, the chunk starts the new transfer. */
    fx_step(f, &n);
    raft_ready(f->r, &rd);
    assert_true(rd.flags & RAFT_READY_SNAPSHOT_CHUNK);
    assert_int_equal(rd.snapshot_chunk->meta->index, 30);
    assert_false(rd.flags & RAFT_READY_SNAPSHOT);
    raft_advance(f->r, &rd);
    fx_free(f);
}

/* A verdict names the transfer it is about, not just the snapshot's index: the caller may
 * give it late (its check completed just as another leader began sending its own snapshot
 * at the same index), and a verdict on the first transfer must neither install the second,
 * which the caller has not checked or stored yet, nor drop it. */
static void test_snapshot_stale_verdict_not_applied_to_newer_transfer(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    uint8_t data[64];
    memset(data, 5, sizeof(data));
    f->hold_verdicts = true;
    struct raft_msg c = snapshot_chunk(1, 2, 1, 20, 1, 0, sizeof(data), data, sizeof(data), true);
    fx_step(f, &c);
    fx_drain(f); /* the whole image is handed out; the caller checks it */
    uint64_t first = f->rx_transfer;
    assert_int_not_equal(first, 0);
    /* Node 3 leads term 2 and sends its own snapshot at the same index. */
    struct raft_msg n = snapshot_chunk(3, 2, 2, 20, 1, 0, sizeof(data), data, sizeof(data), true);
    fx_step(f, &n);
    fx_drain(f);
    uint64_t second = f->rx_transfer;
    assert_int_not_equal(second, first);
    assert_int_equal(f->rx_index, 20);
    /* The first transfer's verdicts come late: neither touches the second. */
    fx_clear(f);
    assert_int_equal(raft_snapshot_received(f->r, first, true), RR_ENOTFOUND);
    assert_int_equal(raft_snapshot_received(f->r, first, false), RR_ENOTFOUND);
    assert_false(raft_has_ready(f->r));
    assert_int_equal(fx_status(f).snapshot_index, 0);
    /* Its own verdict installs the second. */
    assert_int_equal(raft_snapshot_received(f->r, second, true), 0);
    fx_drain(f);
    assert_int_equal(fx_status(f).snapshot_index, 20);
    assert_int_equal(f->snap_index, 20);
    const struct raft_msg *r = fx_expect(f, RAFT_MSG_SNAPSHOT_RESP, 3);
    assert_true(r->snapshot_resp.done);
    assert_int_equal(fx_count(f, RAFT_MSG_SNAPSHOT_RESP, 1), 0);
    fx_free(f);
}

/* A transfer left behind is dropped and reported (RAFT_READY_SNAPSHOT_DROPPED) once, so the
 * caller frees what it stored: here its leader is gone and a new term began; the old
 * transfer can never finish, and a new leader starts any transfer over at offset 0. */
static void test_snapshot_transfer_dropped_on_new_term(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    uint8_t data[200];
    memset(data, 6, sizeof(data));
    struct raft_msg c0 = snapshot_chunk(1, 2, 1, 20, 1, 0, sizeof(data), data, 100, false);
    fx_step(f, &c0);
    fx_drain(f);
    assert_int_equal(f->rx_len, 100);
    assert_int_equal(f->rx_drops, 0);
    struct raft_msg hb = fx_heartbeat(3, 2, 2, 0, 0); /* node 3 leads term 2 */
    fx_step(f, &hb);
    fx_drain(f);
    assert_int_equal(f->rx_drops, 1);
    assert_int_equal(raft_snapshot_received(f->r, f->rx_transfer, true), RR_ENOTFOUND);
    fx_step(f, &hb);
    fx_drain(f);
    assert_int_equal(f->rx_drops, 1); /* reported once */
    assert_int_equal(fx_status(f).snapshot_index, 0);
    fx_free(f);
}

/* The leader caught the follower up with entries past the snapshot being sent (say it took
 * a newer snapshot, or the follower's log was enough after all): the commit index reaches
 * the transfer's index and it is dropped. */
static void test_snapshot_transfer_dropped_when_commit_reaches_it(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    uint8_t data[200];
    memset(data, 6, sizeof(data));
    struct raft_msg c0 = snapshot_chunk(1, 2, 1, 3, 1, 0, sizeof(data), data, 100, false);
    fx_step(f, &c0);
    fx_drain(f);
    assert_int_equal(f->rx_len, 100);
    struct raft_entry e[5];
    const raft_term t[] = {1, 1, 1, 1, 1};
    fx_entries(e, 1, t, 5);
    struct raft_msg a = fx_append(1, 2, 1, 0, 0, 5, e, 5);
    fx_step(f, &a);
    fx_drain(f);
    assert_int_equal(fx_commit(f), 5);
    assert_int_equal(f->rx_drops, 1);
    assert_int_equal(raft_snapshot_received(f->r, f->rx_transfer, true), RR_ENOTFOUND);
    assert_int_equal(fx_status(f).snapshot_index, 0);
    assert_int_equal(f->applied_last, 5);
    fx_free(f);
}

/* The verdict finds the image overtaken (the commit index passed it while it was checked):
 * nothing is installed, and the drop is reported so the caller frees the image it holds. */
static void test_snapshot_overtaken_verdict_reports_drop(void **state)
{
    (void)state;
    struct fx *f = fx_new(2, 3);
    uint8_t data[64];
    memset(data, 2, sizeof(data));
    struct raft_msg c = snapshot_chunk(1, 2, 1, 3, 1, 0, sizeof(data), data, sizeof(data), true);
    fx_step(f, &c);
    struct raft_ready rd;
    raft_ready(f->r, &rd); /* the last chunk is handed out; the caller checks the image */
    assert_true(rd.flags & RAFT_READY_SNAPSHOT_CHUNK);
    uint64_t transfer = rd.snapshot_chunk->transfer;
    raft_advance(f->r, &rd);
    struct raft_entry e[5];
    const raft_term t[] = {1, 1, 1, 1, 1};
    fx_entries(e, 1, t, 5);
    struct raft_msg a = fx_append(1, 2, 1, 0, 0, 5, e, 5);
    fx_step(f, &a);
    assert_int_equal(raft_snapshot_received(f->r, transfer, true), 0);
    raft_ready(f->r, &rd);
    assert_true(rd.flags & RAFT_READY_SNAPSHOT_DROPPED);
    assert_false(rd.flags & RAFT_READY_SNAPSHOT);
    raft_advance(f->r, &rd);
    fx_drain(f);
    assert_int_equal(fx_status(f).snapshot_index, 0);
    assert_int_equal(fx_commit(f), 5);
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
        cmocka_unit_test(test_snapshot_chunks_read_by_the_caller),
        cmocka_unit_test(test_snapshot_chunk_ack_waits_for_store),
        cmocka_unit_test(test_snapshot_duplicate_ack_waits_for_store),
        cmocka_unit_test(test_snapshot_refused_image_never_installed),
        cmocka_unit_test(test_snapshot_refused_midway_restarts),
        cmocka_unit_test(test_snapshot_new_transfer_waits_for_installed_handout),
        cmocka_unit_test(test_snapshot_stale_verdict_not_applied_to_newer_transfer),
        cmocka_unit_test(test_snapshot_transfer_dropped_on_new_term),
        cmocka_unit_test(test_snapshot_transfer_dropped_when_commit_reaches_it),
        cmocka_unit_test(test_snapshot_overtaken_verdict_reports_drop),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
