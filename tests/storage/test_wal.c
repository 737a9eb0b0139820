/* WAL round trips for every strategy, many groups interleaved, truncation, compaction with
 * segment deletion, reads from cache and disk, identity and lock refusal. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "storage/wal_internal.h"
#include "tests/storage/wal_helpers.h"

#define PAYLOAD_MAX 300

static int fx_setup(void **state)
{
    struct th_fx *fx = th_fx_new(8);
    fx->ring_entries = 256;
    *state = fx;
    return 0;
}

static int fx_teardown(void **state)
{
    th_fx_free(*state);
    return 0;
}

static void fx_close(struct th_fx *fx)
{
    th_fx_close(fx);
}

static void fx_open(struct th_fx *fx)
{
    int rc = th_fx_try_open(fx);
    if (rc != 0) {
        fail_msg("wal_open: %d %s", rc, fx->err);
    }
}

/* Appends entry (g, i) of generation gen, waiting out back-pressure. */
static void fx_append(
    struct th_fx *fx, raft_group g, raft_index i, uint32_t gen, const struct wal_hard_state *hs)
{
    struct wal_entry e = {.term = gen + 1u, .index = i, .type = (uint8_t)(i % 3)};
    e.len = th_payload(g, i, gen, fx->buf, PAYLOAD_MAX);
    e.data = fx->buf;
    for (;;) {
        int rc = wal_append(fx->wal, g, hs, &e, 1, th_count_cb, &fx->acked);
        if (rc != RR_EBUSY) {
            assert_int_equal(rc, 0);
            return;
        }
        assert_int_equal(th_step(&fx->ring, fx->wal), 0);
    }
}

static void fx_sync(struct th_fx *fx, uint64_t want)
{
    assert_int_equal(th_run_until(&fx->ring, fx->wal, &fx->acked, want), 0);
}

/* Checks entries [lo, hi] of g against generation gen(i) with a blocking read. */
static void
fx_verify(struct th_fx *fx, raft_group g, raft_index lo, raft_index hi, uint32_t (*gen)(raft_index))
{
    static uint8_t rbuf[1u << 20];
    raft_index i = lo;
    while (i <= hi) {
        struct wal_read rd = {.group = g, .lo = i, .hi = hi, .buf = rbuf, .buf_len = sizeof(rbuf)};
        int rc = wal_read_blocking(fx->wal, &rd);
        if (rc != 0) {
            fail_msg("read group %u index %llu: %d", g, (unsigned long long)i, rc);
        }
        for (uint32_t k = 0; k < rd.count; k++, i++) {
            uint32_t gn = gen == NULL ? 0 : gen(i);
            uint32_t len = th_payload(g, i, gn, fx->buf, PAYLOAD_MAX);
            assert_int_equal(rd.entries[k].index, i);
            assert_int_equal(rd.entries[k].term, gn + 1u);
            assert_int_equal(rd.entries[k].type, i % 3);
            assert_int_equal(rd.entries[k].len, len);
            assert_memory_equal(rd.entries[k].data, fx->buf, len);
        }
    }
}

static void round_trip(void **state, const char *strategy)
{
    struct th_fx *fx = *state;
    assert_int_equal(wal_strategy_parse(strategy, &fx->cfg.strategy), 0);
    fx_open(fx);
    const uint32_t groups = 8;
    const raft_index per_group = 60;
    for (raft_index i = 1; i <= per_group; i++) {
        for (raft_group g = 0; g < groups; g++) {
            struct wal_hard_state hs = {.term = 1, .vote = g + 1, .commit = i - 1};
            fx_append(fx, g, i, 0, i % 7 == 0 ? &hs : NULL);
        }
        wal_submit(fx->wal);
    }
    fx_sync(fx, groups * per_group);
    const struct wal_stats *st = wal_stats(fx->wal);
    assert_true(st->records >= groups * per_group);
    assert_int_equal(st->units, groups * per_group);
    if (strcmp(strategy, "none") == 0) {
        assert_int_equal(st->batch_records.max, 1);
    }
    for (raft_group g = 0; g < groups; g++) {
        fx_verify(fx, g, 1, per_group, NULL);
    }
    assert_true(wal_segment_count(fx->wal) >= 2);
    fx_close(fx);
    fx_open(fx); /* recovery rebuilds the same log */
    for (raft_group g = 0; g < groups; g++) {
        struct wal_group_info gi;
        assert_int_equal(wal_group_info(fx->wal, g, &gi), 0);
        assert_int_equal(gi.first_index, 1);
        assert_int_equal(gi.last_index, per_group);
        assert_int_equal(gi.hs.vote, g + 1);
        assert_int_equal(gi.hs.commit, 55);
        fx_verify(fx, g, 1, per_group, NULL);
    }
    assert_true(wal_stats(fx->wal)->disk_reads > 0);
}

static void test_round_trip_none(void **state)
{
    round_trip(state, "none");
}

static void test_round_trip_fixed(void **state)
{
    round_trip(state, "fixed:5");
}

static void test_round_trip_linger(void **state)
{
    round_trip(state, "linger:200");
}

static void test_round_trip_adaptive(void **state)
{
    round_trip(state, "adaptive");
}

static void test_strategy_parse(void **state)
{
    (void)state;
    struct wal_strategy s;
    char buf[32];
    assert_int_equal(wal_strategy_parse("fixed:16", &s), 0);
    assert_int_equal(s.kind, WAL_STRATEGY_FIXED);
    assert_string_equal(wal_strategy_format(&s, buf, sizeof(buf)), "fixed:16");
    assert_int_equal(wal_strategy_parse("linger:250", &s), 0);
    assert_string_equal(wal_strategy_format(&s, buf, sizeof(buf)), "linger:250");
    assert_int_equal(wal_strategy_parse("adaptive", &s), 0);
    assert_string_equal(wal_strategy_format(&s, buf, sizeof(buf)), "adaptive");
    assert_int_equal(wal_strategy_parse("none", &s), 0);
    assert_string_equal(wal_strategy_format(&s, buf, sizeof(buf)), "none");
    assert_int_equal(wal_strategy_parse("fixed:", &s), RR_EINVAL);
    assert_int_equal(wal_strategy_parse("fixed:0", &s), RR_EINVAL);
    assert_int_equal(wal_strategy_parse("linger:x", &s), RR_EINVAL);
    assert_int_equal(wal_strategy_parse("bogus", &s), RR_EINVAL);
}

/* 64 groups on worker 1 of 4 (groups 1, 5, 9, ...), interleaved over many segments. */
static void test_many_groups_interleaved(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.group_count = 256;
    fx->cfg.worker_count = 4;
    fx->cfg.worker_id = 1;
    fx->cfg.segment_bytes = 64u << 10;
    fx_open(fx);
    uint64_t n = 0;
    for (raft_index i = 1; i <= 20; i++) {
        for (raft_group g = 1; g < 256; g += 4) {
            fx_append(fx, g, i, 0, NULL);
            n++;
        }
        wal_submit(fx->wal);
    }
    fx_sync(fx, n);
    assert_int_equal(wal_append(fx->wal, 2, NULL, NULL, 0, NULL, NULL), RR_EINVAL);
    fx_close(fx);
    fx_open(fx);
    for (raft_group g = 1; g < 256; g += 4) {
        fx_verify(fx, g, 1, 20, NULL);
    }
}

static uint32_t gen_rewritten(raft_index i)
{
    return i >= 6 ? 1u : 0u;
}

/* An append at or below the last index replaces the suffix; an explicit truncation drops
 * it; both survive recovery. */
static void test_truncate_suffix(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    for (raft_index i = 1; i <= 10; i++) {
        fx_append(fx, 3, i, 0, NULL);
    }
    for (raft_index i = 6; i <= 8; i++) {
        fx_append(fx, 3, i, 1, NULL);
    }
    fx_sync(fx, 13);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 3, &gi);
    assert_int_equal(gi.last_index, 8);
    fx_verify(fx, 3, 1, 8, gen_rewritten);
    for (raft_index i = 1; i <= 5; i++) {
        fx_append(fx, 4, i, 0, NULL);
    }
    assert_int_equal(wal_truncate(fx->wal, 4, 3, th_count_cb, &fx->acked), 0);
    fx_sync(fx, 19);
    struct wal_read rd = {.group = 4, .lo = 3, .hi = 3, .buf = fx->buf, .buf_len = 4096};
    assert_int_equal(wal_read(fx->wal, &rd), RR_EUNAVAILABLE);
    fx_close(fx);
    fx_open(fx);
    wal_group_info(fx->wal, 3, &gi);
    assert_int_equal(gi.last_index, 8);
    fx_verify(fx, 3, 1, 8, gen_rewritten);
    wal_group_info(fx->wal, 4, &gi);
    assert_int_equal(gi.last_index, 2);
    fx_verify(fx, 4, 1, 2, NULL);
    /* A gap is refused; appending after a truncation continues the log. */
    struct wal_entry e = {.term = 1, .index = 9, .len = 0};
    assert_int_equal(wal_append(fx->wal, 4, NULL, &e, 1, NULL, NULL), RR_EINVAL);
    fx_append(fx, 4, 3, 0, NULL);
    fx_sync(fx, 1);
}

/* Compacting every group lets old segments go; the lagging group is reported as the pin;
 * idle groups' hard state is carried forward so they do not pin anything. */
static void test_compaction_deletes_segments(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.segment_bytes = 64u << 10;
    fx_open(fx);
    struct wal_hard_state hs = {.term = 2, .vote = 1, .commit = 0};
    fx_append(fx, 7, 1, 0, &hs); /* group 7 stays idle from here on */
    uint64_t n = 1;
    for (raft_index i = 1; i <= 400; i++) {
        for (raft_group g = 0; g < 3; g++) {
            fx_append(fx, g, i, 0, NULL);
            n++;
        }
        wal_submit(fx->wal);
    }
    fx_sync(fx, n);
    uint32_t before = wal_segment_count(fx->wal);
    assert_true(before > 4);
    raft_group pin_g = 99;
    raft_index pin_i = 0;
    assert_int_equal(wal_oldest_pin(fx->wal, &pin_g, &pin_i), 0);
    assert_int_equal(pin_g, 7);
    assert_int_equal(pin_i, 1);
    assert_int_equal(wal_compact(fx->wal, 7, 1, 1, th_count_cb, &fx->acked), 0);
    for (raft_group g = 0; g < 2; g++) {
        assert_int_equal(wal_compact(fx->wal, g, 390, 1, th_count_cb, &fx->acked), 0);
        n++;
    }
    n++;
    fx_sync(fx, n);
    /* Group 2 has not compacted: it pins the oldest segment. */
    assert_int_equal(wal_oldest_pin(fx->wal, &pin_g, &pin_i), 0);
    assert_int_equal(pin_g, 2);
    assert_int_equal(wal_compact(fx->wal, 2, 395, 1, th_count_cb, &fx->acked), 0);
    n++;
    fx_sync(fx, n);
    /* Carried-forward records need one more flush to become durable. */
    fx_append(fx, 0, 401, 0, NULL);
    n++;
    fx_sync(fx, n);
    fx_append(fx, 0, 402, 0, NULL);
    n++;
    fx_sync(fx, n);
    /* active, spare, at most one still needed, and the pool of 2 retired files kept for
     * recycling (WAL_RECYCLE_POOL); the rest were recycled into spares or deleted */
    th_quiesce(&fx->ring, fx->wal); /* deletions run through the ring, one at a time */
    if (wal_segment_count(fx->wal) > 5) {
        fail_msg("%u segment files left", wal_segment_count(fx->wal));
    }
    assert_true(wal_stats(fx->wal)->segments_deleted + wal_stats(fx->wal)->segments_recycled > 0);
    /* What still pins the oldest file is a group's first retained entry, nothing older. */
    if (wal_oldest_pin(fx->wal, &pin_g, &pin_i) == 0) {
        struct wal_group_info pi;
        wal_group_info(fx->wal, pin_g, &pi);
        assert_int_equal(pin_i, pi.first_index);
        assert_true(pin_i > 390);
    }
    struct wal_read rd = {.group = 0, .lo = 10, .hi = 20, .buf = fx->buf, .buf_len = 4096};
    assert_int_equal(wal_read(fx->wal, &rd), RR_ECOMPACTED);
    struct wal_entry e = {.term = 1, .index = 5};
    assert_int_equal(wal_append(fx->wal, 0, NULL, &e, 1, NULL, NULL), RR_ECOMPACTED);
    fx_close(fx);
    fx_open(fx);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.snap_index, 390);
    assert_int_equal(gi.first_index, 391);
    assert_int_equal(gi.last_index, 402);
    fx_verify(fx, 0, 391, 402, NULL);
    wal_group_info(fx->wal, 7, &gi);
    assert_int_equal(gi.hs.term, 2);
    assert_int_equal(gi.hs.vote, 1);
    assert_int_equal(gi.snap_index, 1);
    assert_int_equal(gi.last_index, 1);
    wal_group_info(fx->wal, 2, &gi);
    assert_int_equal(gi.first_index, 396);
    fx_verify(fx, 2, 396, 400, NULL);
}

/* A group's index deque grows while compaction has moved its head, wrapped or not: every
 * entry is still found where it was written (gs_resize's in-place growth moves the wrapped
 * part), before and after a reopen. The deque starts at 4 slots (WAL_INDEX_SLOTS_MIN) and
 * doubles; compaction shrinks it only when a quarter of it or less is left. */
static void test_index_grows_after_compaction(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    uint64_t n = 0;
    raft_index last = 0;
    raft_index snap = 0;
    /* Each round: append `more` entries, then compact `drop` of them from the front. */
    static const struct {
        uint32_t more, drop;
    } rounds[] = {{8, 3}, {4, 0}, {28, 9}, {5, 30}, {70, 17}, {3, 1}, {200, 0}};
    for (size_t k = 0; k < sizeof(rounds) / sizeof(rounds[0]); k++) {
        for (uint32_t j = 0; j < rounds[k].more; j++) {
            fx_append(fx, 0, ++last, 0, NULL);
            n++;
            wal_submit(fx->wal);
            struct wal_group_info gi;
            wal_group_info(fx->wal, 0, &gi);
            assert_int_equal(gi.first_index, snap + 1);
            assert_int_equal(gi.last_index, last);
        }
        fx_sync(fx, n);
        fx_verify(fx, 0, snap + 1, last, NULL);
        if (rounds[k].drop > 0) {
            snap += rounds[k].drop;
            assert_int_equal(wal_compact(fx->wal, 0, snap, 1, th_count_cb, &fx->acked), 0);
            n++;
            fx_sync(fx, n);
            fx_verify(fx, 0, snap + 1, last, NULL);
        }
    }
    fx_close(fx);
    fx_open(fx);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.first_index, snap + 1);
    assert_int_equal(gi.last_index, last);
    fx_verify(fx, 0, snap + 1, last, NULL);
}

static int read_done;

static void read_cb(struct wal_read *rd)
{
    (void)rd;
    read_done++;
}

/* Entries that left the cache are read through the ring without blocking. */
static void test_async_disk_read(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.cache_bytes = 4u << 20;
    fx->cfg.segment_bytes = 1u << 20;
    fx_open(fx);
    uint64_t n = 0;
    for (raft_index i = 1; i <= 40000; i++) {
        fx_append(fx, (raft_group)(i % 2), (i + 1) / 2, 0, NULL);
        n++;
        if (i % 64 == 0) {
            wal_submit(fx->wal);
        }
    }
    fx_sync(fx, n);
    static uint8_t rbuf[1u << 16];
    struct wal_read rd = {
        .group = 1, .lo = 1, .hi = 100, .buf = rbuf, .buf_len = sizeof(rbuf), .cb = read_cb};
    read_done = 0;
    int rc = wal_read(fx->wal, &rd);
    assert_int_equal(rc, 1);
    while (read_done == 0) {
        assert_int_equal(th_step(&fx->ring, fx->wal), 0);
    }
    assert_int_equal(rd.status, 0);
    assert_true(rd.count > 10);
    for (uint32_t k = 0; k < rd.count; k++) {
        uint32_t len = th_payload(1, k + 1, 0, fx->buf, PAYLOAD_MAX);
        assert_int_equal(rd.entries[k].len, len);
        assert_memory_equal(rd.entries[k].data, fx->buf, len);
    }
    /* Recent entries come from the cache, synchronously. */
    struct wal_read rc2 = {
        .group = 0, .lo = 19990, .hi = 20000, .buf = rbuf, .buf_len = sizeof(rbuf)};
    assert_int_equal(wal_read(fx->wal, &rc2), 0);
    assert_int_equal(rc2.count, 11);
    rc2.buf_len = 10;
    assert_int_equal(wal_read(fx->wal, &rc2), RR_ETOOBIG);
}

/* An idle WAL gives its cache back; the entries are then read from the files, and appends
 * fill the cache again. */
static void test_release_cache_when_idle(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    for (raft_index i = 1; i <= 200; i++) {
        fx_append(fx, (raft_group)(i % 2), (i + 1) / 2, 0, NULL);
    }
    wal_submit(fx->wal);
    assert_int_equal(wal_release_cache(fx->wal), 0); /* appended since the last call */
    fx_sync(fx, 200);
    assert_true(wal_release_cache(fx->wal) > 0);     /* idle and durable */
    assert_int_equal(wal_release_cache(fx->wal), 0); /* nothing written since */
    uint64_t disk_reads = wal_stats(fx->wal)->disk_reads;
    fx_verify(fx, 0, 1, 100, NULL);
    fx_verify(fx, 1, 1, 100, NULL);
    assert_true(wal_stats(fx->wal)->disk_reads > disk_reads);
    /* New records go through the cache as before and are read back from it. */
    fx_append(fx, 0, 101, 0, NULL);
    wal_submit(fx->wal);
    assert_int_equal(wal_release_cache(fx->wal), 0); /* not durable yet, and appended */
    fx_sync(fx, 201);
    uint64_t hits = wal_stats(fx->wal)->cache_hits;
    fx_verify(fx, 0, 101, 101, NULL);
    assert_int_equal(wal_stats(fx->wal)->cache_hits, hits + 1);
    fx_close(fx);
    fx_open(fx); /* and recovery finds everything */
    fx_verify(fx, 0, 1, 101, NULL);
    fx_verify(fx, 1, 1, 100, NULL);
}

/* ---- direct I/O -------------------------------------------------------------------------- */

struct dio_seen {
    uint32_t writes, direct, aligned;
    uint64_t offs[64];
};

static void dio_observe(void *arg, const struct io_uring_sqe *sqe)
{
    struct dio_seen *seen = arg;
    if (sqe == NULL || ((sqe->user_data >> 48) & 0xffu) != WAL_OP_WRITE) {
        return; /* not a flush's write */
    }
    int flags = fcntl(sqe->fd, F_GETFL);
    uint64_t len = sqe->len;
    uint64_t addr = sqe->addr;
    if (sqe->opcode == IORING_OP_WRITEV) {
        const struct iovec *iov = (const struct iovec *)(uintptr_t)sqe->addr;
        len = sqe->len == 1 ? iov[0].iov_len : 0;
        addr = (uint64_t)(uintptr_t)iov[0].iov_base;
    }
    if (seen->writes < 64) {
        seen->offs[seen->writes] = sqe->off;
    }
    seen->writes++;
    seen->direct += (flags & O_DIRECT) != 0 ? 1u : 0u;
    seen->aligned += sqe->off % 4096 == 0 && len > 0 && len % 4096 == 0 && addr % 4096 == 0;
}

/* Runs the ring once, the observer seeing every SQE. */
static void dio_step(struct th_fx *fx)
{
    wal_submit(fx->wal);
    wal_test_before_submit(&fx->ring);
    assert_true(io_uring_submit_and_wait(&fx->ring, 1) >= 0);
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&fx->ring, &cqe) == 0) {
        struct io_uring_cqe copy = *cqe;
        io_uring_cqe_seen(&fx->ring, cqe);
        assert_int_equal(wal_handle_cqe(fx->wal, &copy), 0);
    }
}

/* With direct I/O every flush is an O_DIRECT write of whole, aligned blocks; a flush that
 * starts inside the block the flush in flight ends in waits for it (two writes of one block
 * in flight may land in either order), and rewrites that block whole, with the records it
 * already held: recovery, after a restart with direct I/O and without, finds them all. */
static void test_direct_io_whole_blocks(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.direct_io = true;
    fx->cfg.flushes_in_flight = 2;
    fx_open(fx);
    if (!wal_direct_io(fx->wal)) {
        skip(); /* a filesystem without O_DIRECT under the test directory */
    }
    struct dio_seen seen = {0};
    wal_test_observe(dio_observe, &seen);
    th_quiesce(&fx->ring, fx->wal);
    raft_index n = 0;
    for (int round = 0; round < 40; round++) {
        fx_append(fx, 0, ++n, 0, NULL);
        wal_submit(fx->wal);
        fx_append(fx, 1, n, 0, NULL);
        wal_submit(fx->wal);
        assert_int_equal(fx->wal->flush_count, 1); /* the second waits for the first */
        while (fx->acked < 2u * n) {
            dio_step(fx);
        }
    }
    wal_test_observe(NULL, NULL);
    assert_true(seen.writes >= 80);
    assert_int_equal(seen.direct, seen.writes);
    assert_int_equal(seen.aligned, seen.writes);
    assert_int_equal(seen.offs[0], seen.offs[1]); /* the same block, written again */
    fx_verify(fx, 0, 1, n, NULL);
    fx_verify(fx, 1, 1, n, NULL);
    fx_close(fx);
    fx->cfg.direct_io = false;
    fx_open(fx);
    fx_verify(fx, 0, 1, n, NULL);
    fx_verify(fx, 1, 1, n, NULL);
    uint64_t acked = fx->acked;
    fx_append(fx, 0, ++n, 0, NULL); /* buffered, after the direct writes */
    fx_sync(fx, acked + 1);
    fx_close(fx);
    fx->cfg.direct_io = true;
    fx_open(fx);
    fx_verify(fx, 0, 1, n, NULL);
    fx_verify(fx, 1, 1, n - 1, NULL);
}

static void test_identity_and_lock(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    fx_append(fx, 1, 1, 0, NULL);
    fx_sync(fx, 1);
    char err[256];
    struct wal *other = NULL;
    struct io_uring r2;
    assert_int_equal(io_uring_queue_init(8, &r2, 0), 0);
    assert_int_equal(wal_open(&fx->cfg, &r2, &other, err, sizeof(err)), RR_EBUSY);
    assert_non_null(strstr(err, "locked"));
    fx_close(fx);
    struct wal_config c = fx->cfg;
    c.group_count = 16;
    assert_int_equal(wal_open(&c, &r2, &other, err, sizeof(err)), RR_EMISMATCH);
    assert_non_null(strstr(err, "G=8"));
    c = fx->cfg;
    c.node_id = 2;
    assert_int_equal(wal_open(&c, &r2, &other, err, sizeof(err)), RR_EMISMATCH);
    c = fx->cfg;
    c.cluster_id = 99;
    assert_int_equal(wal_open(&c, &r2, &other, err, sizeof(err)), RR_EMISMATCH);
    c = fx->cfg;
    c.worker_id = 1;
    assert_int_equal(wal_open(&c, &r2, &other, err, sizeof(err)), RR_EINVAL);
    c.worker_count = 2;
    assert_int_equal(wal_open(&c, &r2, &other, err, sizeof(err)), RR_EMISMATCH);
    c = fx->cfg;
    c.segment_bytes = 1000;
    assert_int_equal(wal_open(&c, &r2, &other, err, sizeof(err)), RR_EINVAL);
    c = fx->cfg;
    c.cache_bytes = 3u << 20;
    assert_int_equal(wal_open(&c, &r2, &other, err, sizeof(err)), RR_EINVAL);
    io_uring_queue_exit(&r2);
    assert_int_equal(wal_index_bytes_per_entry(), 24);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strategy_parse),
        cmocka_unit_test_setup_teardown(test_round_trip_none, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_fixed, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_linger, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_round_trip_adaptive, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_many_groups_interleaved, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_truncate_suffix, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_compaction_deletes_segments, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_index_grows_after_compaction, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_async_disk_read, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_release_cache_when_idle, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_identity_and_lock, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_direct_io_whole_blocks, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
