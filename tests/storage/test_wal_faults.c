/* Error paths through the test build's fault hooks, and a full disk (a small tmpfs). */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <sys/mount.h>

#include "storage/wal_testing.h"
#include "tests/storage/wal_helpers.h"

static int setup(void **state)
{
    struct th_fx *fx = th_fx_new(4);
    fx->cfg.segment_bytes = 64u << 10;
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
    struct th_fx *fx = *state;
    wal_test_faults_clear();
    fx_close(fx);
    umount2(fx->dir, MNT_DETACH);
    th_fx_free(fx);
    return 0;
}

static int fx_open(struct th_fx *fx)
{
    return th_fx_try_open(fx);
}

static int append(struct th_fx *fx, raft_group g, raft_index i)
{
    uint8_t buf[200];
    struct wal_entry e = {.term = 1, .index = i, .data = buf};
    e.len = th_payload(g, i, 0, buf, sizeof(buf));
    return wal_append(fx->wal, g, NULL, &e, 1, th_fx_cb, fx);
}

/* Runs the loop until every queued unit completed one way or the other. */
static void settle(struct th_fx *fx, uint64_t units)
{
    while (fx->acked + (uint64_t)fx->failed < units) {
        th_step(&fx->ring, fx->wal);
    }
}

static void test_short_write_resumes(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(fx_open(fx), 0);
    wal_test_fail_at(WAL_FP_WRITE_CQE, 1, 8); /* the kernel wrote only 8 bytes */
    for (raft_index i = 1; i <= 5; i++) {
        assert_int_equal(append(fx, 0, i), 0);
    }
    settle(fx, 5);
    assert_int_equal(fx->acked, 5);
    assert_int_equal(wal_stats(fx->wal)->short_writes, 1);
    fx_close(fx);
    assert_int_equal(fx_open(fx), 0);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.last_index, 5);
}

static void test_write_error_is_fatal(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(fx_open(fx), 0);
    wal_test_fail_at(WAL_FP_WRITE_CQE, 1, -EIO);
    assert_int_equal(append(fx, 1, 1), 0);
    assert_int_equal(append(fx, 1, 2), 0);
    settle(fx, 2);
    assert_int_equal(fx->acked, 0);
    assert_int_equal(fx->failed, 2);
    assert_int_equal(wal_error(fx->wal), RR_EIO);
    assert_non_null(strstr(wal_error_message(fx->wal), "write at offset 4096 failed"));
    assert_int_equal(append(fx, 1, 3), RR_EIO);
}

static void test_sync_error_is_fatal_never_retried(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(fx_open(fx), 0);
    assert_int_equal(append(fx, 2, 1), 0);
    settle(fx, 1);
    wal_test_fail_at(WAL_FP_SYNC_CQE, 1, -EIO);
    assert_int_equal(append(fx, 2, 2), 0);
    settle(fx, 2);
    assert_int_equal(fx->acked, 1);
    assert_int_equal(fx->last_status, RR_EIO);
    assert_non_null(strstr(wal_error_message(fx->wal), "never retried"));
    uint64_t hits = wal_test_hits(WAL_FP_SYNC_CQE);
    assert_int_equal(append(fx, 2, 3), RR_EIO);
    wal_submit(fx->wal);
    assert_int_equal(wal_test_hits(WAL_FP_SYNC_CQE), hits); /* nothing was resubmitted */
}

static void test_prep_failure_then_recovery_of_space(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(fx_open(fx), 0);
    th_quiesce(&fx->ring, fx->wal); /* the first spare is ready */
    uint64_t n = 0;
    /* Fill two segments; the second spare's preparation fails. */
    wal_test_fail_at(WAL_FP_PREP_CQE, 1, -ENOSPC);
    int rc = 0;
    raft_index i = 1;
    for (; i < 2000 && rc == 0; i++) {
        rc = append(fx, 3, i);
        if (rc == 0) {
            n++;
        }
        if (rc == RR_EBUSY) {
            th_step(&fx->ring, fx->wal);
            rc = 0;
            i--;
        }
    }
    assert_int_equal(rc, RR_ENOSPACE);
    settle(fx, n);
    assert_int_equal(fx->acked, n);
    assert_int_equal(wal_error(fx->wal), 0); /* not fatal: reads and compaction go on */
    /* Compaction frees segments; preparation is retried and appends resume. */
    assert_int_equal(wal_compact(fx->wal, 3, i - 2, 1, th_fx_cb, fx), 0);
    n++;
    settle(fx, n);
    th_quiesce(&fx->ring, fx->wal);
    rc = append(fx, 3, i - 1);
    for (int k = 0; k < 1000 && rc == RR_EBUSY; k++) {
        th_step(&fx->ring, fx->wal);
        rc = append(fx, 3, i - 1);
    }
    assert_int_equal(rc, 0);
}

/* A segment whose file cannot be deleted stops the WAL: going on would leave a gap in the
 * run of segment names once a later one is deleted, and recovery refuses gaps. Nothing
 * acknowledged is lost, and a reopen (which replays the undeleted file) is intact. */
static void test_unlink_failure_stops_the_wal(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(fx_open(fx), 0);
    uint64_t n = 0;
    for (raft_index i = 1; i <= 2400; i++) {
        int rc = append(fx, 0, i);
        while (rc == RR_EBUSY) {
            th_step(&fx->ring, fx->wal);
            rc = append(fx, 0, i);
        }
        assert_int_equal(rc, 0);
        n++;
    }
    settle(fx, n);
    assert_true(wal_segment_count(fx->wal) >= 6);
    wal_test_fail_at(WAL_FP_UNLINK, 1, -EIO);
    assert_int_equal(wal_compact(fx->wal, 0, 2390, 1, th_fx_cb, fx), 0);
    n++;
    settle(fx, n);
    for (int k = 0; k < 1000 && wal_error(fx->wal) == 0; k++) {
        th_step(&fx->ring, fx->wal);
    }
    assert_int_equal(wal_error(fx->wal), RR_EIO);
    assert_non_null(strstr(wal_error_message(fx->wal), "cannot delete segment wal-"));
    assert_int_equal(wal_test_hits(WAL_FP_UNLINK) > 0, 1);
    fx_close(fx);
    assert_int_equal(fx_open(fx), 0);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.snap_index, 2390);
    assert_int_equal(gi.last_index, 2400);
}

static void test_open_failures(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(fx_open(fx), 0);
    assert_int_equal(append(fx, 0, 1), 0);
    settle(fx, 1);
    fx_close(fx);
    wal_test_fail_at(WAL_FP_LOCK, 1, -EACCES);
    assert_int_equal(fx_open(fx), RR_EIO);
    assert_non_null(strstr(fx->err, "cannot open"));
    wal_test_fail_at(WAL_FP_SEG_OPEN, 1, -EMFILE);
    assert_int_equal(fx_open(fx), RR_EIO);
    wal_test_fail_at(WAL_FP_PREAD, 2, -EIO); /* the spare's header */
    assert_int_equal(fx_open(fx), RR_EIO);
    assert_non_null(strstr(fx->err, "header read failed"));
    wal_test_fail_at(WAL_FP_PREAD, 3, -EIO); /* the active segment's records */
    assert_int_equal(fx_open(fx), RR_EIO);
    assert_non_null(strstr(fx->err, "read failed"));
    wal_test_fail_at(WAL_FP_ALLOC, 1, -ENOMEM);
    assert_int_equal(fx_open(fx), RR_ENOMEM);
    wal_test_faults_clear();
    assert_int_equal(fx_open(fx), 0);
    struct wal_group_info gi;
    wal_group_info(fx->wal, 0, &gi);
    assert_int_equal(gi.last_index, 1);
}

static int read_cb_done;

static void read_cb(struct wal_read *rd)
{
    (void)rd;
    read_cb_done = 1;
}

static void test_read_failures(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(fx_open(fx), 0);
    for (raft_index i = 1; i <= 3; i++) {
        assert_int_equal(append(fx, 1, i), 0);
    }
    settle(fx, 3);
    fx_close(fx);
    assert_int_equal(fx_open(fx), 0); /* the cache is empty after recovery */
    static uint8_t buf[4096];
    struct wal_read rd = {
        .group = 1, .lo = 1, .hi = 3, .buf = buf, .buf_len = sizeof(buf), .cb = read_cb};
    /* the three adjacent records come back in one read, whose completion fails */
    wal_test_fail_at(WAL_FP_READ_CQE, 1, -EIO);
    assert_int_equal(wal_read(fx->wal, &rd), 1);
    while (!read_cb_done) {
        th_step(&fx->ring, fx->wal);
    }
    assert_int_equal(rd.status, -EIO);
    wal_test_fail_at(WAL_FP_PREAD, 1, -EIO);
    assert_int_equal(wal_read_blocking(fx->wal, &rd), RR_EIO);
    assert_int_equal(wal_read_blocking(fx->wal, &rd), 0);
    assert_int_equal(rd.count, 3);
}

/* A real full file system: a 1 MiB tmpfs. Skipped where mounting is not permitted. */
static void test_disk_full(void **state)
{
    struct th_fx *fx = *state;
    if (mount("tmpfs", fx->dir, "tmpfs", 0, "size=400k") != 0) {
        skip();
    }
    fx->cfg.segment_bytes = 128u << 10;
    assert_int_equal(fx_open(fx), 0);
    uint64_t n = 0;
    int rc = 0;
    raft_index i = 1;
    for (; i < 100000 && rc != RR_ENOSPACE; i++) {
        rc = append(fx, (raft_group)(i % 4), (i + 3) / 4);
        if (rc == 0) {
            n++;
        } else if (rc == RR_EBUSY) {
            th_step(&fx->ring, fx->wal);
            i--;
        } else {
            assert_int_equal(rc, RR_ENOSPACE);
        }
    }
    assert_int_equal(rc, RR_ENOSPACE);
    settle(fx, n);
    assert_int_equal(fx->failed, 0);
    raft_index acked_last[4];
    for (raft_group g = 0; g < 4; g++) {
        struct wal_group_info gi;
        wal_group_info(fx->wal, g, &gi);
        acked_last[g] = gi.last_index;
    }
    fx_close(fx);
    /* Readable afterwards, every acknowledged entry intact. */
    assert_int_equal(fx_open(fx), 0);
    raft_index zero[4] = {0};
    char msg[256];
    for (raft_group g = 0; g < 4; g++) {
        struct wal_group_info gi;
        wal_group_info(fx->wal, g, &gi);
        assert_int_equal(gi.last_index, acked_last[g]);
        (void)zero;
    }
    static uint8_t rbuf[1u << 16];
    for (raft_group g = 0; g < 4; g++) {
        struct wal_read rd = {.group = g, .lo = 1, .hi = 10, .buf = rbuf, .buf_len = sizeof(rbuf)};
        assert_int_equal(wal_read_blocking(fx->wal, &rd), 0);
        for (uint32_t k = 0; k < rd.count; k++) {
            uint8_t want[200];
            uint32_t len = th_payload(g, k + 1, 0, want, sizeof(want));
            assert_int_equal(rd.entries[k].len, len);
            assert_memory_equal(rd.entries[k].data, want, len);
        }
    }
    (void)msg;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_short_write_resumes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_error_is_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sync_error_is_fatal_never_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prep_failure_then_recovery_of_space, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlink_failure_stops_the_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
