/* Error paths at the WAL's limits, reached through the test build's hooks: zeroing a torn
 * tail failing at open, running out of memory while indexing an append, the read-slot
 * limit (RR_EBUSY) and the segment-count limit at recovery. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "storage/wal_internal.h"
#include "storage/wal_testing.h"
#include "tests/storage/wal_helpers.h"

#define PAYLOAD 200u

static int setup(void **state)
{
    struct th_fx *fx = th_fx_new(2);
    fx->ring_entries = 256;
    wal_test_faults_clear();
    *state = fx;
    return 0;
}

static void fx_close(struct th_fx *fx)
{
    th_fx_close(fx);
}

static int teardown(void **state)
{
    wal_test_faults_clear();
    th_fx_free(*state);
    return 0;
}

static int fx_open(struct th_fx *fx)
{
    return th_fx_try_open(fx);
}

/* PAYLOAD bytes of (g, i): th_payload's prefix, zeros after it. */
static void payload(raft_group g, raft_index i, uint8_t *buf)
{
    memset(buf, 0, PAYLOAD);
    th_payload(g, i, 0, buf, PAYLOAD);
}

/* Entries [lo, hi] of group g in one unit, fixed-size payloads from th_payload's bytes. */
static int append_range(struct th_fx *fx, raft_group g, raft_index lo, raft_index hi)
{
    static uint8_t buf[16][PAYLOAD];
    struct wal_entry e[16];
    uint32_t n = (uint32_t)(hi - lo + 1);
    assert_true(n <= 16);
    for (uint32_t k = 0; k < n; k++) {
        payload(g, lo + k, buf[k]);
        e[k] = (struct wal_entry){.term = 1, .index = lo + k, .len = PAYLOAD, .data = buf[k]};
    }
    return wal_append(fx->wal, g, NULL, e, n, th_fx_cb, fx);
}

static void settle(struct th_fx *fx, uint64_t want)
{
    while (fx->acked + fx->failed < want) {
        assert_int_equal(th_step(&fx->ring, fx->wal), 0);
    }
}

/* Entries [lo, hi] of g are readable (blocking) with their payloads. */
static void check_entries(struct th_fx *fx, raft_group g, raft_index lo, raft_index hi)
{
    static struct wal_read rd;
    static uint8_t rbuf[1u << 16];
    uint8_t want[PAYLOAD];
    for (raft_index i = lo; i <= hi; i++) {
        rd = (struct wal_read){.group = g, .lo = i, .hi = i, .buf = rbuf, .buf_len = sizeof(rbuf)};
        assert_int_equal(wal_read_blocking(fx->wal, &rd), 0);
        assert_int_equal(rd.count, 1);
        payload(g, i, want);
        assert_int_equal(rd.entries[0].len, PAYLOAD);
        assert_memory_equal(rd.entries[0].data, want, PAYLOAD);
    }
}

static uint8_t *read_file_all(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *buf = malloc((size_t)st.st_size);
    assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return buf;
}

/* The last flush holds entries 6..10; a flipped byte in entry 6 makes it a torn flush whose
 * valid records 7..10 recovery must zero. If that zeroing cannot be made durable, open
 * fails with a clear error and changes nothing it relies on; a later open succeeds and
 * keeps exactly the records before the tear. */
static void test_zeroing_torn_tail_fails(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(fx_open(fx), 0);
    assert_int_equal(append_range(fx, 0, 1, 5), 0);
    settle(fx, 1);
    assert_int_equal(append_range(fx, 0, 6, 10), 0);
    settle(fx, 2);
    assert_int_equal(fx->acked, 2);
    fx_close(fx);

    char path[128];
    th_segment_path(fx->dir, 1, path, sizeof(path));
    size_t len;
    uint8_t *img = read_file_all(path, &len);
    struct wal_segment_header h;
    assert_int_equal(wal_segment_header_decode(img, &h), 0);
    uint64_t off = WAL_SEGMENT_HEADER_BYTES, rec6 = 0, end = 0;
    struct wal_record r;
    int64_t n;
    while ((n = wal_record_decode(img + off, len - off, h.salt, &r)) > 0) {
        if (r.type == WAL_REC_ENTRY && r.index == 6) {
            rec6 = off;
        }
        off += (uint64_t)n;
    }
    end = off;
    assert_true(rec6 > 0);
    img[rec6 + 60] ^= 0x80;
    int fd = open(path, O_WRONLY);
    assert_int_equal(pwrite(fd, img + rec6 + 60, 1, (off_t)(rec6 + 60)), 1);
    close(fd);

    uint64_t hits = wal_test_hits(WAL_FP_SEG_PREP);
    wal_test_fail_at(WAL_FP_SEG_PREP, 1, -EIO);
    assert_int_equal(fx_open(fx), RR_EIO);
    assert_null(fx->wal);
    assert_non_null(strstr(fx->err, "cannot zero the torn tail of segment 1"));
    assert_true(wal_test_hits(WAL_FP_SEG_PREP) > hits);
    wal_test_faults_clear();

    assert_int_equal(fx_open(fx), 0);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.last_index, 5);
    check_entries(fx, 0, 1, 5);
    /* the valid records past the tear are zeroed on disk */
    free(img);
    img = read_file_all(path, &len);
    for (uint64_t k = rec6 + WAL_RECORD_HEADER_BYTES; k < end; k++) {
        if (img[k] != 0 && k != rec6 + 60) {
            /* record 6's own bytes may remain; everything from record 7 on is zero */
            assert_true(k < rec6 + wal_record_size(PAYLOAD));
        }
    }
    free(img);
    /* and the log goes on from index 6 */
    assert_int_equal(append_range(fx, 0, 6, 8), 0);
    settle(fx, 3);
    fx_close(fx);
    assert_int_equal(fx_open(fx), 0);
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.last_index, 8);
    check_entries(fx, 0, 1, 8);
}

/* Growing a group's index fails inside wal_append: the call returns RR_ENOMEM, the WAL
 * stops with a message, units queued but not durable fail rather than being acknowledged,
 * and after a reopen every acknowledged entry is there. */
static void test_oom_in_append(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(fx_open(fx), 0);
    /* 16 entries fill group 0's index deque (grown to capacity 16) */
    assert_int_equal(append_range(fx, 0, 1, 16), 0);
    settle(fx, 1);
    assert_int_equal(fx->acked, 1);
    /* a unit queued, not yet flushed */
    assert_int_equal(append_range(fx, 1, 1, 3), 0);
    wal_test_fail_at(WAL_FP_ALLOC, 1, -ENOMEM);
    assert_int_equal(append_range(fx, 0, 17, 18), RR_ENOMEM);
    assert_int_equal(wal_test_hits(WAL_FP_ALLOC) > 0, 1);
    assert_int_equal(wal_error(fx->wal), RR_ENOMEM);
    assert_non_null(strstr(wal_error_message(fx->wal), "out of memory indexing group 0 index 17"));
    wal_test_faults_clear();
    /* the queued unit is never acknowledged; the stopped WAL refuses further work */
    for (int k = 0; k < 8 && wal_busy(fx->wal); k++) {
        th_step(&fx->ring, fx->wal);
    }
    assert_int_equal(fx->acked, 1);
    assert_int_not_equal(append_range(fx, 1, 4, 4), 0);
    fx_close(fx);

    assert_int_equal(fx_open(fx), 0);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_true(gi.last_index >= 16);
    check_entries(fx, 0, 1, 16);
    wal_group_info(fx->wal, 1, &gi);
    if (gi.last_index > 0) {
        check_entries(fx, 1, 1, gi.last_index);
    }
}

static uint64_t reads_done;
static void read_cb(struct wal_read *rd)
{
    assert_int_equal(rd->status, 0);
    reads_done++;
}

/* WAL_READS_MAX disk reads in flight: the next wal_read returns RR_EBUSY and changes
 * nothing; once they complete, each delivered its entry and the refused read succeeds. */
static void test_read_slots_exhausted(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(fx_open(fx), 0);
    uint64_t units = 0;
    for (raft_index i = 1; i <= WAL_READS_MAX + 1; i += 16) {
        raft_index hi = i + 15 <= WAL_READS_MAX + 1 ? i + 15 : WAL_READS_MAX + 1;
        assert_int_equal(append_range(fx, 0, i, hi), 0);
        units++;
    }
    settle(fx, units);
    fx_close(fx);
    /* after a reopen nothing is cached: every read goes to the disk */
    assert_int_equal(fx_open(fx), 0);
    struct wal_read *rd = calloc(WAL_READS_MAX + 1, sizeof(*rd));
    uint8_t(*buf)[1024] = calloc(WAL_READS_MAX + 1, 1024);
    reads_done = 0;
    for (uint32_t k = 0; k <= WAL_READS_MAX; k++) {
        rd[k] = (struct wal_read){
            .group = 0, .lo = k + 1, .hi = k + 1, .buf = buf[k], .buf_len = 1024, .cb = read_cb};
    }
    for (uint32_t k = 0; k < WAL_READS_MAX; k++) {
        assert_int_equal(wal_read(fx->wal, &rd[k]), 1);
    }
    assert_int_equal(wal_read(fx->wal, &rd[WAL_READS_MAX]), RR_EBUSY);
    assert_int_equal(reads_done, 0);
    while (reads_done < WAL_READS_MAX) {
        assert_int_equal(th_step(&fx->ring, fx->wal), 0);
    }
    uint8_t want[PAYLOAD];
    for (uint32_t k = 0; k < WAL_READS_MAX; k++) {
        assert_int_equal(rd[k].count, 1);
        payload(0, k + 1, want);
        assert_memory_equal(rd[k].entries[0].data, want, PAYLOAD);
    }
    int rc = wal_read(fx->wal, &rd[WAL_READS_MAX]);
    assert_true(rc == 0 || rc == 1);
    while (rc == 1 && reads_done < WAL_READS_MAX + 1) {
        assert_int_equal(th_step(&fx->ring, fx->wal), 0);
    }
    payload(0, WAL_READS_MAX + 1, want);
    assert_memory_equal(rd[WAL_READS_MAX].entries[0].data, want, PAYLOAD);
    assert_int_equal(wal_error(fx->wal), 0);
    free(rd);
    free(buf);
}

/* More segment files than WAL_SEGMENTS_MAX - 1 in a contiguous run: open refuses with a
 * message naming the limit, before reading any of them, and touches none. */
static void test_segment_count_limit(void **state)
{
    struct th_fx *fx = *state;
    char path[128];
    for (uint64_t s = 1; s <= WAL_SEGMENTS_MAX; s++) {
        th_segment_path(fx->dir, s, path, sizeof(path));
        int fd = open(path, O_CREAT | O_WRONLY, 0644);
        assert_true(fd >= 0);
        close(fd);
    }
    assert_int_equal(fx_open(fx), RR_ETOOBIG);
    assert_null(fx->wal);
    char want[128];
    snprintf(want, sizeof(want), "%u segments exceed the limit %u", WAL_SEGMENTS_MAX,
             WAL_SEGMENTS_MAX);
    assert_non_null(strstr(fx->err, want));
    struct stat st;
    th_segment_path(fx->dir, 1, path, sizeof(path));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 0);
}

/* The budget of segment files spent at run time (lowered to 3 by the test hook): appends of
 * entries return RR_ENOSPACE and change nothing, everything acknowledged stays readable,
 * a hard state alone and a compaction still go through, and once the compaction let the
 * oldest segment go, appends resume. */
static void test_segment_limit_at_runtime(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.segment_bytes = 64u << 10;
    assert_int_equal(fx_open(fx), 0);
    wal_test_segments_max(3);
    raft_index next = 1;
    uint64_t units = 0;
    int rc = 0;
    while (next < 100000) {
        rc = append_range(fx, 0, next, next + 7);
        if (rc == RR_EBUSY) {
            assert_int_equal(th_step(&fx->ring, fx->wal), 0);
            continue;
        }
        if (rc != 0) {
            break;
        }
        next += 8;
        units++;
    }
    assert_int_equal(rc, RR_ENOSPACE);
    settle(fx, units);
    assert_int_equal(fx->failed, 0);
    assert_int_equal(wal_error(fx->wal), 0);
    assert_true(wal_segment_count(fx->wal) <= 4);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.last_index, next - 1);
    assert_true(next > 500); /* three segments of about 250 entries each were filled */
    check_entries(fx, 0, 1, next - 1);
    /* refused again, nothing changed */
    assert_int_equal(append_range(fx, 0, next, next + 7), RR_ENOSPACE);
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.last_index, next - 1);
    /* the maintenance reserve still takes a hard state alone and a compaction */
    struct wal_hard_state hs = {.term = 1, .vote = 1, .commit = next - 1};
    assert_int_equal(wal_append(fx->wal, 0, &hs, NULL, 0, th_fx_cb, fx), 0);
    units++;
    raft_index upto = (next - 1) / 2;
    assert_int_equal(wal_compact(fx->wal, 0, upto, 1, th_fx_cb, fx), 0);
    units++;
    settle(fx, units);
    assert_int_equal(fx->failed, 0);
    for (int k = 0; k < 1000; k++) {
        rc = append_range(fx, 0, next, next + 7);
        if (rc != RR_ENOSPACE && rc != RR_EBUSY) {
            break;
        }
        assert_int_equal(th_step(&fx->ring, fx->wal), 0);
    }
    assert_int_equal(rc, 0);
    units++;
    settle(fx, units);
    assert_int_equal(fx->failed, 0);
    fx_close(fx);
    wal_test_faults_clear();
    assert_int_equal(fx_open(fx), 0);
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.last_index, next + 7);
    assert_int_equal(gi.snap_index, upto);
    assert_int_equal(gi.hs.commit, next - 1);
    check_entries(fx, 0, upto + 1, next + 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_zeroing_torn_tail_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_oom_in_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_slots_exhausted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_count_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_limit_at_runtime, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
