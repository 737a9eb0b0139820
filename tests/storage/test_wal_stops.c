/* How the WAL stops and goes on after failures: units always get their callback, no file
 * descriptor is leaked, a failed spare preparation is retried. Each test reproduces a bug a
 * review of the storage hardening found. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>
#include <time.h>

#include "storage/wal_internal.h"
#include "tests/storage/wal_helpers.h"

static int setup(void **state)
{
    struct th_fx *fx = th_fx_new(2);
    fx->cfg.segment_bytes = 64u << 10;
    wal_test_faults_clear();
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    wal_test_faults_clear();
    th_fx_free(*state);
    return 0;
}

#define MAXC 64
struct mini_cqe {
    uint64_t user_data;
    int32_t res;
    uint32_t flags;
};
static struct mini_cqe got_m[MAXC];
static struct io_uring_cqe *cqe_of(int i)
{
    static _Alignas(16) uint8_t raw[32];
    struct io_uring_cqe *c = (struct io_uring_cqe *)raw;
    memset(raw, 0, sizeof(raw));
    c->user_data = got_m[i].user_data;
    c->res = got_m[i].res;
    c->flags = got_m[i].flags;
    return c;
}
static int ngot;

/* Waits until `want` WAL CQEs have arrived (ignoring others), without handing them over. */
static void collect(struct th_fx *fx, int want)
{
    while (ngot < want) {
        struct io_uring_cqe *cqe;
        assert_int_equal(io_uring_wait_cqe(&fx->ring, &cqe), 0);
        struct io_uring_cqe *c = cqe;
        if ((c->user_data >> 56) == TEST_TAG) {
            got_m[ngot++] = (struct mini_cqe){c->user_data, c->res, c->flags};
        }
        io_uring_cqe_seen(&fx->ring, cqe);
    }
}
static int find(int op, uint64_t id)
{
    for (int i = 0; i < ngot; i++) {
        if (((got_m[i].user_data >> 48) & 0xff) == (uint64_t)op &&
            (got_m[i].user_data & ((1ull << 48) - 1)) == id) {
            return i;
        }
    }
    return -1;
}
static void fill_sq(struct th_fx *fx)
{
    struct io_uring_sqe *s;
    while ((s = io_uring_get_sqe(&fx->ring)) != NULL) {
        io_uring_prep_nop(s);
        io_uring_sqe_set_data64(s, 0);
    }
}

/* Appends entries 1..WAL_INDEX_SLOTS_MIN to group g, filling its index deque (allocated at
 * open), so that its next entry allocates: where WAL_FP_ALLOC can strike. */
static void fill_index(struct th_fx *fx, raft_group g)
{
    for (raft_index i = 1; i <= WAL_INDEX_SLOTS_MIN; i++) {
        struct wal_entry e = {.term = 1, .index = i, .len = 0};
        assert_int_equal(wal_append(fx->wal, g, NULL, &e, 1, NULL, NULL), 0);
    }
}

/* Bug: a short write whose rewrite found a full SQ (deferred), then a fatal error (index
 * allocation) before the next wal_submit: the deferred flush never completed and its units
 * never got their failure callback. */
static void test_deferred_rewrite_then_fatal(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.flushes_in_flight = 1;
    assert_int_equal(th_fx_try_open(fx), 0);
    fill_index(fx, 1);
    wal_submit(fx->wal);
    th_quiesce(&fx->ring, fx->wal); /* the spare is ready, nothing in flight */
    static uint8_t buf[200];
    struct wal_entry e = {.term = 1, .index = 1, .len = sizeof(buf), .data = buf};
    assert_int_equal(wal_append(fx->wal, 0, NULL, &e, 1, th_fx_cb, fx), 0);
    wal_submit(fx->wal);
    assert_int_equal(fx->wal->flush_count, 1);
    io_uring_submit(&fx->ring);
    ngot = 0;
    collect(fx, 2);
    uint64_t slot = fx->wal->flush_head;
    wal_test_fail_at(WAL_FP_WRITE_CQE, 1, 8); /* the write completes only 8 bytes */
    assert_int_equal(wal_handle_cqe(fx->wal, cqe_of(find(WAL_OP_WRITE, slot))), 0);
    fill_sq(fx);
    wal_test_fail_at(WAL_FP_SUBMIT, 1, -EBUSY);
    assert_int_equal(wal_handle_cqe(fx->wal, cqe_of(find(WAL_OP_SYNC, slot))), 0);
    assert_true(fx->wal->flushes[slot].resubmit); /* deferred to the next wal_submit */
    /* a fatal error before that wal_submit */
    wal_test_fail_at(WAL_FP_ALLOC, 1, 1);
    struct wal_entry e2 = {.term = 1, .index = WAL_INDEX_SLOTS_MIN + 1, .len = 0};
    assert_int_equal(wal_append(fx->wal, 1, NULL, &e2, 1, th_fx_cb, fx), RR_ENOMEM);
    for (int k = 0; k < 5; k++) {
        wal_submit(fx->wal);
        io_uring_submit(&fx->ring);
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&fx->ring, &cqe) == 0) {
            io_uring_cqe_seen(&fx->ring, cqe); /* the NOPs */
        }
    }
    assert_int_equal(fx->failed, 1); /* the unit of index 1 must fail */
}

/* The same with two flushes in flight: B's rewrite deferred, A's fdatasync fails. */
static void test_two_flights_deferred_then_sync_error(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.flushes_in_flight = 2;
    fx->cfg.direct_io = false; /* direct I/O would keep B waiting behind A's block */
    assert_int_equal(th_fx_try_open(fx), 0);
    th_quiesce(&fx->ring, fx->wal);
    static uint8_t buf[200];
    struct wal_entry e = {.term = 1, .index = 1, .len = sizeof(buf), .data = buf};
    assert_int_equal(wal_append(fx->wal, 0, NULL, &e, 1, th_fx_cb, fx), 0);
    wal_submit(fx->wal);
    e.index = 2;
    assert_int_equal(wal_append(fx->wal, 0, NULL, &e, 1, th_fx_cb, fx), 0);
    wal_submit(fx->wal);
    assert_int_equal(fx->wal->flush_count, 2);
    uint64_t a = fx->wal->flush_head, b = (a + 1) % WAL_FLUSHES_MAX;
    io_uring_submit(&fx->ring);
    ngot = 0;
    collect(fx, 4);
    wal_test_fail_at(WAL_FP_WRITE_CQE, 1, 8);
    assert_int_equal(wal_handle_cqe(fx->wal, cqe_of(find(WAL_OP_WRITE, b))), 0);
    fill_sq(fx);
    wal_test_fail_at(WAL_FP_SUBMIT, 1, -EBUSY);
    assert_int_equal(wal_handle_cqe(fx->wal, cqe_of(find(WAL_OP_SYNC, b))), 0);
    assert_true(fx->wal->flushes[b].resubmit);
    assert_int_equal(wal_handle_cqe(fx->wal, cqe_of(find(WAL_OP_WRITE, a))), 0);
    wal_test_fail_at(WAL_FP_SYNC_CQE, 1, -EIO);
    assert_int_not_equal(wal_handle_cqe(fx->wal, cqe_of(find(WAL_OP_SYNC, a))), 0);
    for (int k = 0; k < 5; k++) {
        wal_submit(fx->wal);
        io_uring_submit(&fx->ring);
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&fx->ring, &cqe) == 0) {
            io_uring_cqe_seen(&fx->ring, cqe);
        }
    }
    assert_int_equal(fx->failed, 2);
}

static int open_fds_named(const char *dir, const char *suffix)
{
    int n = 0;
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char p[300], t[512];
        snprintf(p, sizeof(p), "/proc/self/fd/%s", de->d_name);
        ssize_t l = readlink(p, t, sizeof(t) - 1);
        if (l > 0) {
            t[l] = 0;
            if (strstr(t, dir) && strstr(t, suffix)) {
                n++;
            }
        }
    }
    closedir(d);
    return n;
}

/* Bug: the spare's openat was in flight when the WAL stopped, and its fd was never closed. */
static void test_open_cqe_after_error_leaks_fd(void **state)
{
    struct th_fx *fx = *state;
    assert_int_equal(th_fx_try_open(fx), 0);
    assert_int_equal(fx->wal->meta.job, WAL_JOB_CREATE);
    fill_index(fx, 0); /* queued only: the job is still in flight */
    assert_int_equal(fx->wal->meta.job, WAL_JOB_CREATE);
    wal_test_fail_at(WAL_FP_ALLOC, 1, 1);
    struct wal_entry e = {.term = 1, .index = WAL_INDEX_SLOTS_MIN + 1, .len = 0};
    assert_int_equal(wal_append(fx->wal, 0, NULL, &e, 1, th_fx_cb, fx), RR_ENOMEM);
    th_quiesce(&fx->ring, fx->wal); /* the openat completes: fd ignored */
    wal_close(fx->wal);
    io_uring_queue_exit(&fx->ring);
    fx->wal = NULL;
    int n = open_fds_named(fx->dir, "wal-0000000000000002");
    assert_int_equal(n, 0);
}

/* Bug: the spare's creation failed once (ENOSPC, space freed right after) with one segment
 * on disk: nothing could ever be retired, so the preparation was never retried and appends
 * got RR_ENOSPACE until a restart. */
static void test_prep_failed_never_retried(void **state)
{
    struct th_fx *fx = *state;
    wal_test_fail_at(WAL_FP_PREP_CQE, 1, -ENOSPC); /* the spare's openat */
    assert_int_equal(th_fx_try_open(fx), 0);
    th_quiesce(&fx->ring, fx->wal);
    assert_int_equal(fx->wal->prep.state, WAL_PREP_FAILED);
    static uint8_t buf[1000];
    raft_index i = 1;
    int rc = 0;
    for (int busy = 0;;) {
        /* The disk stays full while the segment fills: on a slow machine filling it takes
         * longer than WAL_PREP_RETRY_NS, and the retries must fail too. */
        wal_test_fail_at(WAL_FP_PREP_CQE, 1, -ENOSPC);
        struct wal_entry e = {.term = 1, .index = i, .len = sizeof(buf), .data = buf};
        rc = wal_append(fx->wal, 0, NULL, &e, 1, th_fx_cb, fx);
        if (rc == RR_EBUSY) {
            assert_true(++busy < 1000); /* a retry in flight: it fails, then ENOSPACE */
            th_step(&fx->ring, fx->wal);
            continue;
        }
        if (rc != 0) {
            break;
        }
        th_run_until(&fx->ring, fx->wal, &fx->acked, i);
        i++;
    }
    assert_int_equal(rc, RR_ENOSPACE);
    wal_test_faults_clear(); /* the disk has room again */
    /* compact everything, let the loop run a while */
    assert_int_equal(wal_compact(fx->wal, 0, i - 1, 1, th_fx_cb, fx), 0);
    th_run_until(&fx->ring, fx->wal, &fx->acked, i);
    /* The failed preparation is retried after WAL_PREP_RETRY_NS even though no segment
     * could be retired (only one exists). */
    for (int k = 0; k < 50 && fx->wal->prep.state != WAL_PREP_READY; k++) {
        struct timespec ts = {.tv_sec = 0, .tv_nsec = 10 * 1000 * 1000};
        nanosleep(&ts, NULL); /* the test waits, not the WAL */
        wal_submit(fx->wal);
        io_uring_submit(&fx->ring);
        th_quiesce(&fx->ring, fx->wal);
    }
    struct wal_entry e = {.term = 1, .index = i, .len = sizeof(buf), .data = buf};
    rc = wal_append(fx->wal, 0, NULL, &e, 1, th_fx_cb, fx);
    assert_int_equal(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_deferred_rewrite_then_fatal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_cqe_after_error_leaks_fd, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prep_failed_never_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_flights_deferred_then_sync_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
