/* Regression tests of the storage hardening: each reproduces a way the WAL lost
 * acknowledged data, stalled or misbehaved, and checks the fix. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <sys/stat.h>

#include "storage/wal_internal.h"
#include "tests/storage/wal_helpers.h"

static int setup(void **state)
{
    struct th_fx *fx = th_fx_new(2);
    fx->cfg.segment_bytes = 64u << 10;
    *state = fx;
    return 0;
}

static int fx_try_open(struct th_fx *fx, unsigned entries)
{
    fx->ring_entries = entries;
    return th_fx_try_open(fx);
}

static void fx_open(struct th_fx *fx)
{
    if (fx_try_open(fx, 64) != 0) {
        fail_msg("open: %s", fx->err);
    }
}

static int teardown(void **state)
{
    wal_test_faults_clear();
    wal_test_observe(NULL, NULL);
    th_fx_free(*state);
    return 0;
}

/* Hands the WAL one CQE, submitting first only if asked (so a test can stop between the
 * completion of one flush and the submission of the next). */
static void step_one(struct th_fx *fx, bool submit_first)
{
    if (submit_first) {
        wal_submit(fx->wal);
        io_uring_submit(&fx->ring);
    }
    struct io_uring_cqe *cqe;
    assert_int_equal(io_uring_wait_cqe(&fx->ring, &cqe), 0);
    struct io_uring_cqe c = *cqe;
    io_uring_cqe_seen(&fx->ring, cqe);
    assert_int_equal(wal_handle_cqe(fx->wal, &c), 0);
}

static void run_until_acked(struct th_fx *fx, uint64_t want)
{
    assert_int_equal(th_run_until(&fx->ring, fx->wal, &fx->acked, want), 0);
}

static void append_one(struct th_fx *fx, raft_group g, raft_index i)
{
    static uint8_t buf[1000];
    memset(buf, (int)(i & 0xffu), sizeof(buf));
    struct wal_entry e = {.term = 1, .index = i, .len = sizeof(buf), .data = buf};
    uint64_t want = fx->acked + 1;
    int rc = wal_append(fx->wal, g, NULL, &e, 1, th_fx_cb, fx);
    while (rc == RR_EBUSY) {
        th_step(&fx->ring, fx->wal);
        rc = wal_append(fx->wal, g, NULL, &e, 1, th_fx_cb, fx);
    }
    assert_int_equal(rc, 0);
    run_until_acked(fx, want);
}

/* Group 0's entries until the first segment is sealed and everything is durable, then a few
 * more in the second: returns the next index. */
static raft_index fill_first_segment(struct th_fx *fx)
{
    raft_index i = 1;
    while (fx->wal->seg_count < 2 || !fx->wal->segs[0].sealed ||
           fx->wal->durable != fx->wal->head) {
        append_one(fx, 0, i++);
    }
    for (int k = 0; k < 5; k++) {
        append_one(fx, 0, i++);
    }
    return i;
}

/* Bug: the oldest segment went when the in-memory index (which already reflects queued
 * records) no longer pointed into it, while the record superseding group 1's acknowledged
 * hard state was still queued. A crash then brought back term 0 / vote 0: a node that could
 * vote twice in one term. */
static void test_pin_race_hard_state(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    struct wal_hard_state hs = {.term = 5, .vote = 7, .commit = 0};
    assert_int_equal(wal_append(fx->wal, 1, &hs, NULL, 0, th_fx_cb, fx), 0);
    run_until_acked(fx, 1);
    raft_index next = fill_first_segment(fx);
    char oldest[128];
    th_segment_path(fx->dir, fx->wal->segs[0].seq, oldest, sizeof(oldest));
    uint64_t before = fx->acked;
    /* Flush F1: group 0 compacts its whole log (the oldest segment now holds only group 1's
     * hard state)... */
    assert_int_equal(wal_compact(fx->wal, 0, next - 1, 1, th_fx_cb, fx), 0);
    wal_submit(fx->wal);
    io_uring_submit(&fx->ring);
    /* ...and group 1's next hard state is queued behind F1, not yet durable. */
    struct wal_hard_state hs2 = {.term = 6, .vote = 8, .commit = 0};
    assert_int_equal(wal_append(fx->wal, 1, &hs2, NULL, 0, th_fx_cb, fx), 0);
    while (fx->acked == before) {
        step_one(fx, false); /* F1 completes; F2 is prepared but never submitted */
    }
    struct stat st;
    assert_int_equal(stat(oldest, &st), 0); /* the only durable copy of term 5 is there */
    th_fx_crash(fx);
    fx_open(fx);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 1, &gi);
    assert_int_equal(gi.hs.term, 5);
    assert_int_equal(gi.hs.vote, 7);
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.snap_index, next - 1);
}

/* The same with a queued truncation of group 0's whole log: the segment holding entries
 * 1..55 went, and recovery accepted a log 56..61 with no snapshot. */
static void test_pin_race_truncate(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    raft_index next = fill_first_segment(fx);
    uint64_t before = fx->acked;
    assert_int_equal(wal_compact(fx->wal, 1, 1, 1, th_fx_cb, fx), 0); /* a flush F1 */
    wal_submit(fx->wal);
    io_uring_submit(&fx->ring);
    assert_int_equal(wal_truncate(fx->wal, 0, 1, th_fx_cb, fx), 0); /* queued behind F1 */
    while (fx->acked == before) {
        step_one(fx, false);
    }
    th_fx_crash(fx);
    fx_open(fx);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.first_index, 1);
    assert_int_equal(gi.last_index, next - 1);
    assert_int_equal(gi.snap_index, 0);
}

static void append_entries(struct th_fx *fx, raft_index lo, uint32_t n, uint8_t fill)
{
    static uint8_t buf[8][600];
    struct wal_entry e[8];
    for (uint32_t k = 0; k < n; k++) {
        memset(buf[k], fill, sizeof(buf[k]));
        e[k] = (struct wal_entry){
            .term = fill, .index = lo + k, .len = sizeof(buf[k]), .data = buf[k]};
    }
    uint64_t want = fx->acked + 1;
    int rc = wal_append(fx->wal, 0, NULL, e, n, th_fx_cb, fx);
    while (rc == RR_EBUSY) {
        th_step(&fx->ring, fx->wal);
        rc = wal_append(fx->wal, 0, NULL, e, n, th_fx_cb, fx);
    }
    assert_int_equal(rc, 0);
    run_until_acked(fx, want);
}

/* Bug (found by the power-loss model): once the segment holding a log's start is retired,
 * replay may begin with superseded entries (a suffix later rewritten from below it). The
 * rewrite truncated them but kept their first index, so entry 169 was filed as 171. */
static void test_replay_starting_with_superseded_entries(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    raft_index i = 1;
    while (fx->wal->seg_count < 2) {
        append_entries(fx, i++, 1, 1);
    }
    raft_index base = i; /* base.. in the second segment, base - 3.. in the first */
    append_entries(fx, base, 5, 1);
    append_entries(fx, base - 3, 4, 2); /* rewrites base - 3 .. base, after the stale suffix */
    uint64_t want = fx->acked + 1;
    assert_int_equal(wal_compact(fx->wal, 0, base - 4, 1, th_fx_cb, fx), 0);
    run_until_acked(fx, want);
    char first[128];
    th_segment_path(fx->dir, 1, first, sizeof(first)); /* the segment holding the start */
    raft_index next = base + 1;
    for (int k = 0; k < 2000 && access(first, F_OK) == 0; k++) {
        append_entries(fx, next++, 1, 3); /* until the first segment is recycled */
        wal_submit(fx->wal);
    }
    assert_int_not_equal(access(first, F_OK), 0);
    th_fx_close(fx);
    fx_open(fx);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.snap_index, base - 4);
    assert_int_equal(gi.first_index, base - 3);
    assert_int_equal(gi.last_index, next - 1);
    static uint8_t rbuf[1u << 16];
    struct wal_read rd = {
        .group = 0, .lo = base - 3, .hi = base + 1, .buf = rbuf, .buf_len = sizeof(rbuf)};
    assert_int_equal(wal_read_blocking(fx->wal, &rd), 0);
    assert_int_equal(rd.count, 5);
    for (uint32_t k = 0; k < 5; k++) {
        uint8_t want_fill = k < 4 ? 2 : 3;
        assert_int_equal(rd.entries[k].index, base - 3 + k);
        assert_int_equal(rd.entries[k].term, want_fill);
        assert_int_equal(((const uint8_t *)rd.entries[k].data)[0], want_fill);
    }
}

/* Bug (shown by fuzz_wal's append-and-reopen check): group 0's whole log truncated (a follower
 * whose every entry conflicts with a new leader's), after which the segment holding its start is
 * retired and recycled. Replay then begins with the superseded entries k.. of the second segment
 * (kept by group 1's entries) and the truncation at 1 emptied the log but kept first index k, so
 * recovery reported last index k - 1 for an empty log with no snapshot; an append at k was
 * accepted, and the next recovery refused the WAL ("entries are missing"). */
static void test_truncate_whole_log_after_retired_start(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    raft_index next = fill_first_segment(fx); /* group 0: 1..next-1, the last 5 in segment 2 */
    for (raft_index i = 1; i <= 3; i++) {
        append_one(fx, 1, i); /* group 1's entries pin segment 2 */
    }
    char first[128];
    th_segment_path(fx->dir, fx->wal->segs[0].seq, first, sizeof(first));
    uint64_t want = fx->acked + 1;
    assert_int_equal(wal_truncate(fx->wal, 0, 1, th_fx_cb, fx), 0);
    run_until_acked(fx, want);
    raft_index i = 4;
    for (int k = 0; k < 2000 && access(first, F_OK) == 0; k++) {
        append_one(fx, 1, i++); /* until the first segment is recycled */
    }
    assert_int_not_equal(access(first, F_OK), 0);
    th_fx_close(fx);
    fx_open(fx);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.first_index, 1);
    assert_int_equal(gi.last_index, 0);
    assert_int_equal(gi.snap_index, 0);
    append_one(fx, 0, 1); /* the log starts again at 1 */
    th_fx_close(fx);
    fx_open(fx);
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.first_index, 1);
    assert_int_equal(gi.last_index, 1);
    (void)next;
}

/* Recovery refuses a group whose retained log does not start right after its snapshot: the
 * file holding entries 1..k is gone (here removed by hand, keeping the run contiguous). */
static void test_log_must_start_after_snapshot(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    raft_index next = fill_first_segment(fx);
    uint64_t first = fx->wal->segs[0].seq;
    th_fx_close(fx);
    char path[128];
    th_segment_path(fx->dir, first, path, sizeof(path));
    assert_int_equal(unlink(path), 0);
    assert_int_equal(fx_try_open(fx, 64), RR_ECORRUPT);
    assert_non_null(strstr(fx->err, "group 0"));
    assert_non_null(strstr(fx->err, "snapshot ends at 0"));
    (void)next;
}

/* A newest segment whose header was damaged but which holds records is refused, never
 * deleted: its records are valid under the salt its name implies. */
static void test_bad_header_over_records_refused(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.segment_bytes = 1u << 20;
    fx_open(fx);
    for (raft_index i = 1; i <= 100; i++) {
        append_one(fx, 0, i);
    }
    uint64_t active = fx->wal->segs[fx->wal->seg_count - 1].seq;
    uint64_t spare = fx->wal->prep.seq;
    th_fx_close(fx);
    char path[128];
    th_segment_path(fx->dir, spare, path, sizeof(path));
    assert_int_equal(unlink(path), 0); /* the active segment is now the newest file */
    th_segment_path(fx->dir, active, path, sizeof(path));
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, 20), 1);
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, 20), 1);
    close(fd);
    assert_int_equal(fx_try_open(fx, 64), RR_ECORRUPT);
    assert_non_null(strstr(fx->err, "bad segment header (offset 0) on a segment holding records"));
    struct stat st;
    assert_int_equal(stat(path, &st), 0); /* nothing removed */
}

/* What the SQEs the WAL issues show: metadata operations go through the ring. */
struct ops_seen {
    uint32_t renames, unlinks, opens, timeouts, timeout_removes, fsyncs;
};

static void count_ops(void *arg, const struct io_uring_sqe *sqe)
{
    struct ops_seen *o = arg;
    if (sqe == NULL) {
        return; /* the end of a submission */
    }
    switch (sqe->opcode) {
    case IORING_OP_RENAMEAT:
        o->renames++;
        break;
    case IORING_OP_UNLINKAT:
        o->unlinks++;
        break;
    case IORING_OP_OPENAT:
        o->opens++;
        break;
    case IORING_OP_TIMEOUT:
        o->timeouts++;
        break;
    case IORING_OP_TIMEOUT_REMOVE:
        o->timeout_removes++;
        break;
    case IORING_OP_FSYNC:
        o->fsyncs++;
        break;
    default:
        break;
    }
}

/* The harness's own loop shows the observer what it submits. */
static void observed_step(struct th_fx *fx)
{
    wal_submit(fx->wal);
    wal_test_before_submit(&fx->ring);
    assert_true(io_uring_submit_and_wait(&fx->ring, 1) >= 0);
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&fx->ring, &cqe) == 0) {
        struct io_uring_cqe c = *cqe;
        io_uring_cqe_seen(&fx->ring, cqe);
        assert_int_equal(wal_handle_cqe(fx->wal, &c), 0);
    }
}

/* Bug: a compaction queued during every flush kept deletion from ever running (each moved
 * the point deletion waited for), then one completion deleted dozens of files on the loop
 * thread. Now a free segment waits only for what was queued when it was found free, and
 * leaves through the ring: recycled by renameat into the next spare, or unlinked. */
static void test_compaction_every_flush_retires(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.segment_bytes = 256u << 10;
    fx_open(fx);
    static struct ops_seen ops;
    memset(&ops, 0, sizeof(ops));
    wal_test_observe(count_ops, &ops);
    static uint8_t buf[4096];
    raft_index next[2] = {1, 1};
    uint32_t max_segments = 0;
    uint64_t bytes = 0;
    while (bytes < (16u << 20)) {
        for (raft_group g = 0; g < 2; g++) {
            struct wal_entry e[4];
            for (int j = 0; j < 4; j++) {
                e[j] = (struct wal_entry){
                    .term = 1, .index = next[g] + (raft_index)j, .len = sizeof(buf), .data = buf};
            }
            if (wal_append(fx->wal, g, NULL, e, 4, th_fx_cb, fx) != 0) {
                break;
            }
            next[g] += 4;
            bytes += 4 * sizeof(buf);
            assert_int_equal(wal_compact(fx->wal, g, next[g] - 1, 1, th_fx_cb, fx), 0);
        }
        observed_step(fx);
        uint32_t n = wal_segment_count(fx->wal);
        max_segments = n > max_segments ? n : max_segments;
    }
    th_quiesce(&fx->ring, fx->wal);
    const struct wal_stats *st = wal_stats(fx->wal);
    /* 64 segments' worth of appends, yet the files stay a handful: active, spare, the one
     * waiting for its superseding records, and the recycling pool. */
    if (max_segments > 3 + WAL_RECYCLE_POOL + 1) {
        fail_msg("up to %u segment files under continuous compaction", max_segments);
    }
    assert_true(st->segments_recycled > 40);
    assert_true(ops.renames >= st->segments_recycled);
    assert_true(st->segments_created <= 4); /* no zero-fill once the pool is warm */
    wal_test_observe(NULL, NULL);
}

/* Deleting retired files beyond the recycling pool: through IORING_OP_UNLINKAT, each
 * followed by a directory fsync, after the file was closed (so the kernel's worker, not the
 * loop thread, frees its blocks). */
static void test_deletion_through_the_ring(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    static struct ops_seen ops;
    memset(&ops, 0, sizeof(ops));
    wal_test_observe(count_ops, &ops);
    raft_index i = 1;
    while (wal_segment_count(fx->wal) < 10) {
        append_one(fx, 0, i++);
    }
    uint64_t before = fx->acked;
    assert_int_equal(wal_compact(fx->wal, 0, i - 1, 1, th_fx_cb, fx), 0);
    while (fx->acked == before || wal_busy(fx->wal)) {
        observed_step(fx);
    }
    const struct wal_stats *st = wal_stats(fx->wal);
    assert_true(st->segments_deleted >= 5);
    assert_int_equal(ops.unlinks, st->segments_deleted);
    assert_true(ops.fsyncs >= ops.unlinks); /* every unlink made durable before the next */
    assert_true(wal_segment_count(fx->wal) <= 2 + WAL_RECYCLE_POOL);
    th_fx_close(fx);
    fx_open(fx); /* the remaining files form a contiguous run */
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.snap_index, i - 1);
    wal_test_observe(NULL, NULL);
}

/* The index gives memory back after a compaction: a group's deque halves while it is a
 * quarter full or less, and reads still find every retained entry. */
static void test_index_shrinks_after_compaction(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.segment_bytes = 1u << 20;
    fx_open(fx);
    for (raft_index i = 1; i <= 1000; i++) {
        append_one(fx, 0, i);
    }
    uint32_t before = fx->wal->groups[0].cap;
    assert_true(before >= 1024);
    uint64_t want = fx->acked + 1;
    assert_int_equal(wal_compact(fx->wal, 0, 990, 1, th_fx_cb, fx), 0);
    run_until_acked(fx, want);
    assert_int_equal(fx->wal->groups[0].cap, 32); /* 10 entries: 16 would be full */
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.first_index, 991);
    static uint8_t rbuf[1u << 16];
    struct wal_read rd = {.group = 0, .lo = 991, .hi = 1000, .buf = rbuf, .buf_len = sizeof(rbuf)};
    assert_true(wal_read_blocking(fx->wal, &rd) >= 0);
    assert_int_equal(rd.count, 10);
    for (uint32_t k = 0; k < 10; k++) {
        assert_int_equal(((const uint8_t *)rd.entries[k].data)[0], (uint8_t)(991 + k));
    }
    append_one(fx, 0, 1001); /* and the log goes on */
}

/* Bug: recovery adopted a spare (and removed files) without fsyncing the directory, and a
 * new WAL directory was never fsynced in its parent. Both fsyncs are made, and a failure of
 * either stops the open. */
static void test_directory_fsyncs(void **state)
{
    struct th_fx *fx = *state;
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/w0", fx->dir);
    fx->cfg.dir = sub;
    uint64_t hits = wal_test_hits(WAL_FP_DIR_SYNC);
    wal_test_fail_at(WAL_FP_DIR_SYNC, 1, -EIO); /* the parent's, after creating w0 */
    assert_int_equal(fx_try_open(fx, 64), RR_EIO);
    assert_non_null(strstr(fx->err, "cannot fsync"));
    assert_non_null(strstr(fx->err, "after creating"));
    assert_int_equal(wal_test_hits(WAL_FP_DIR_SYNC), hits + 1);
    th_rmrf(sub);
    fx_open(fx); /* creates w0: the parent's fsync, then recovery's of w0 */
    assert_int_equal(wal_test_hits(WAL_FP_DIR_SYNC), hits + 3);
    append_one(fx, 0, 1);
    th_fx_close(fx);
    wal_test_fail_at(WAL_FP_DIR_SYNC, 1, -EIO); /* recovery's, of w0 */
    assert_int_equal(fx_try_open(fx, 64), RR_EIO);
    assert_non_null(strstr(fx->err, "cannot fsync"));
    fx_open(fx);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.last_index, 1);
}

/* Bug: a unit larger than the record ring got RR_EBUSY forever although the API accepted
 * it; now it is refused with RR_ETOOBIG and nothing is queued. */
static void test_unit_larger_than_ring(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.cache_bytes = 4u << 20;
    fx->cfg.segment_bytes = 16u << 20;
    fx_open(fx);
    static uint8_t big[1u << 20];
    struct wal_entry e[5];
    for (int k = 0; k < 5; k++) {
        e[k] = (struct wal_entry){
            .term = 1, .index = 1 + (raft_index)k, .len = sizeof(big) - 64, .data = big};
    }
    assert_int_equal(wal_append(fx->wal, 0, NULL, e, 5, th_fx_cb, fx), RR_ETOOBIG);
    assert_int_equal(wal_append(fx->wal, 0, NULL, e, 3, th_fx_cb, fx), 0); /* 3 MiB fits */
    run_until_acked(fx, 1);
}

/* Bug: after a fatal error, units queued but not in the failed flush never got their
 * callback. */
static void test_fatal_error_fails_queued_units(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    append_one(fx, 0, 1);
    /* The next index allocation fails: the WAL stops while the unit is only queued. */
    uint32_t cap = fx->wal->groups[0].cap;
    for (raft_index i = 2; i <= cap; i++) {
        append_one(fx, 0, i);
    }
    wal_test_fail_at(WAL_FP_ALLOC, 1, 1);
    struct wal_entry e = {.term = 1, .index = cap + 1, .len = 0};
    struct wal_hard_state hs = {.term = 2, .vote = 1, .commit = 1};
    assert_int_equal(wal_append(fx->wal, 1, &hs, NULL, 0, th_fx_cb, fx), 0); /* queued */
    assert_int_equal(wal_append(fx->wal, 0, NULL, &e, 1, th_fx_cb, fx), RR_ENOMEM);
    assert_int_equal(wal_error(fx->wal), RR_ENOMEM);
    uint64_t acked = fx->acked;
    wal_submit(fx->wal);
    assert_int_equal(fx->failed, 1);
    assert_int_equal(fx->last_status, RR_ENOMEM);
    assert_int_equal(fx->acked, acked);
}

/* Bug: fixed:N left its timer armed after a count-triggered flush, so the next records'
 * flush fired on the old timer's remainder. The timer is now removed when a count starts
 * the flush, and the next records arm a timer of their own. */
static void test_fixed_timer_removed_after_count_flush(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(wal_strategy_parse("fixed:4", &fx->cfg.strategy), 0);
    fx->cfg.strategy.max_delay_us = 2000000; /* long: only the count can start a flush */
    fx_open(fx);
    static struct ops_seen ops;
    memset(&ops, 0, sizeof(ops));
    wal_test_observe(count_ops, &ops);
    static uint8_t buf[64];
    for (raft_index i = 1; i <= 4; i++) {
        struct wal_entry e = {.term = 1, .index = i, .len = sizeof(buf), .data = buf};
        assert_int_equal(wal_append(fx->wal, 0, NULL, &e, 1, th_fx_cb, fx), 0);
        wal_submit(fx->wal); /* arms the timer with the first record */
    }
    while (fx->acked < 4) {
        observed_step(fx);
    }
    assert_int_equal(ops.timeouts, 1);
    assert_int_equal(ops.timeout_removes, 1);
    assert_false(fx->wal->timer_armed);
    struct wal_entry e = {.term = 1, .index = 5, .len = sizeof(buf), .data = buf};
    assert_int_equal(wal_append(fx->wal, 0, NULL, &e, 1, th_fx_cb, fx), 0);
    wal_submit(fx->wal);
    assert_int_equal(ops.timeouts, 1); /* counted at submission: not yet */
    wal_test_before_submit(&fx->ring);
    io_uring_submit(&fx->ring);
    assert_int_equal(ops.timeouts, 2); /* its own timer */
    assert_true(fx->wal->timer_armed);
    wal_test_observe(NULL, NULL);
    /* Let it run out (a second would be long for a test: shorten with a strategy change). */
    struct wal_strategy now = {.kind = WAL_STRATEGY_ADAPTIVE};
    wal_set_strategy(fx->wal, &now);
    run_until_acked(fx, 5);
}

static uint32_t reads_done;

static void read_done(struct wal_read *rd)
{
    assert_int_equal(rd->status, 0);
    reads_done++;
}

/* Bug: a full SQ was asserted away and a failed io_uring_submit ignored. With an SQ of 4
 * entries and a submit that fails, flushes and reads wait instead, then complete. */
static void test_full_sq_defers(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(fx_try_open(fx, 4), 0);
    th_quiesce(&fx->ring, fx->wal);
    for (raft_index i = 1; i <= 40; i++) {
        append_one(fx, 0, i);
    }
    th_fx_close(fx);
    assert_int_equal(fx_try_open(fx, 4), 0); /* cold cache: reads go to disk */
    static struct wal_read rd[8];
    static uint8_t bufs[8][2048];
    uint32_t started = 0;
    uint64_t deferred = wal_stats(fx->wal)->deferred;
    wal_test_fail_at(WAL_FP_SUBMIT, 1, -EBUSY);
    for (int k = 0; k < 8; k++) {
        rd[k] = (struct wal_read){.group = 0,
                                  .lo = 1 + (raft_index)k * 5,
                                  .hi = 1 + (raft_index)k * 5,
                                  .buf = bufs[k],
                                  .buf_len = sizeof(bufs[k]),
                                  .cb = read_done};
        int rc = wal_read(fx->wal, &rd[k]);
        if (rc == RR_EBUSY) {
            break;
        }
        assert_int_equal(rc, 1);
        started++;
    }
    assert_true(started < 8);
    assert_true(wal_stats(fx->wal)->deferred > deferred);
    assert_int_equal(wal_test_hits(WAL_FP_SUBMIT) > 0, 1);
    wal_test_faults_clear();
    while (reads_done < started) {
        th_step(&fx->ring, fx->wal);
    }
    /* the refused read goes through once the ring has room, and appends still flush */
    int rc = wal_read(fx->wal, &rd[started]);
    assert_true(rc == 0 || rc == 1);
    while (rc == 1 && reads_done < started + 1) {
        th_step(&fx->ring, fx->wal);
    }
    assert_int_equal(rd[started].count, 1);
    append_one(fx, 0, 41);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_pin_race_hard_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pin_race_truncate, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_must_start_after_snapshot, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replay_starting_with_superseded_entries, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_truncate_whole_log_after_retired_start, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_header_over_records_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_compaction_every_flush_retires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deletion_through_the_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_index_shrinks_after_compaction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_directory_fsyncs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unit_larger_than_ring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fatal_error_fails_queued_units, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fixed_timer_removed_after_count_flush, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_full_sq_defers, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
