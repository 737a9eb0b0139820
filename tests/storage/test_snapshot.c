/* Snapshots: round trip, newest valid wins, damaged files skipped, pruning, failures. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "storage/snapshot.h"
#include "storage/wal_testing.h"
#include "tests/storage/wal_helpers.h"

static void save(const char *dir, raft_group g, raft_index idx, const char *cfg, const char *data)
{
    struct snapshot s = {.group = g,
                         .index = idx,
                         .term = idx / 10 + 1,
                         .config = (uint8_t *)(uintptr_t)cfg,
                         .config_len = (uint32_t)strlen(cfg),
                         .data = (uint8_t *)(uintptr_t)data,
                         .data_len = strlen(data)};
    char err[256];
    assert_int_equal(snapshot_save(dir, &s, err, sizeof(err)), 0);
}

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    char dir[64];
    th_mkdtemp(dir);
    struct snapshot out;
    char err[512];
    assert_int_equal(snapshot_load(dir, 3, &out, err, sizeof(err)), RR_ENOTFOUND);
    save(dir, 3, 100, "voters 1 2 3", "state at 100");
    save(dir, 3, 250, "voters 1 2 3 4", "state at 250");
    save(dir, 4, 999, "voters 1", "other group");
    assert_int_equal(snapshot_load(dir, 3, &out, err, sizeof(err)), 0);
    assert_int_equal(out.index, 250);
    assert_int_equal(out.term, 26);
    assert_int_equal(out.config_len, 14);
    assert_memory_equal(out.config, "voters 1 2 3 4", 14);
    assert_memory_equal(out.data, "state at 250", 12);
    snapshot_free(&out);
    /* A damaged newest file is skipped, and named. */
    char path[128];
    snprintf(path, sizeof(path), "%s/snap-00000003-00000000000000fa", dir);
    int fd = open(path, O_WRONLY);
    assert_int_equal(pwrite(fd, "X", 1, 70), 1);
    close(fd);
    assert_int_equal(snapshot_load(dir, 3, &out, err, sizeof(err)), 0);
    assert_int_equal(out.index, 100);
    assert_non_null(strstr(err, "damaged"));
    snapshot_free(&out);
    /* Pruning deletes older ones only. */
    save(dir, 3, 300, "c", "d");
    assert_int_equal(snapshot_prune(dir, 3, 300), 0);
    assert_int_equal(snapshot_load(dir, 3, &out, err, sizeof(err)), 0);
    assert_int_equal(out.index, 300);
    snapshot_free(&out);
    snprintf(path, sizeof(path), "%s/snap-00000003-0000000000000064", dir);
    assert_int_equal(access(path, F_OK), -1);
    assert_int_equal(snapshot_load(dir, 4, &out, err, sizeof(err)), 0);
    snapshot_free(&out);
    th_rmrf(dir);
}

static void test_snapshot_write_failures(void **state)
{
    (void)state;
    char dir[64];
    th_mkdtemp(dir);
    save(dir, 1, 10, "a", "b");
    char err[512];
    uint8_t c[1] = {'c'};
    uint8_t dd[1] = {'d'};
    struct snapshot s = {.group = 1,
                         .index = 20,
                         .term = 2,
                         .config = c,
                         .config_len = 1,
                         .data = dd,
                         .data_len = 1};
    for (uint32_t nth = 1; nth <= 5; nth++) {
        wal_test_fail_at(WAL_FP_SNAP_IO, nth, nth == 3 ? -ENOSPC : -EIO);
        int rc = snapshot_save(dir, &s, err, sizeof(err));
        assert_true(rc == RR_EIO || rc == RR_ENOSPACE);
        wal_test_faults_clear();
        struct snapshot out;
        assert_int_equal(snapshot_load(dir, 1, &out, err, sizeof(err)), 0);
        assert_int_equal(out.index, 10); /* the failed save left the old one intact */
        snapshot_free(&out);
    }
    struct snapshot big = s;
    big.config_len = SNAPSHOT_CONFIG_MAX + 1;
    assert_int_equal(snapshot_save(dir, &big, err, sizeof(err)), RR_ETOOBIG);
    th_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_snapshot_write_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
