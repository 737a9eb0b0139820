/* Snapshots: round trip, newest valid wins, damaged files skipped, pruning, failures; the
 * on-disk magic and version; version-1 files refused. */
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

/* The file starts with the ASCII magic "RRSNAP02", then the version (2) as a little-endian
 * u32: checked against the bytes on disk, not against the code's own constant. */
static void test_snapshot_magic_on_disk(void **state)
{
    (void)state;
    char dir[64];
    th_mkdtemp(dir);
    save(dir, 7, 42, "voters 1", "state at 42");
    char path[128];
    snprintf(path, sizeof(path), "%s/snap-00000007-000000000000002a", dir);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    uint8_t head[12];
    assert_int_equal(pread(fd, head, sizeof(head), 0), (ssize_t)sizeof(head));
    close(fd);
    if (memcmp(head, "RRSNAP02", 8) != 0) {
        fail_msg("magic on disk is \"%.8s\" (%02x %02x %02x %02x %02x %02x %02x %02x), want "
                 "\"RRSNAP02\"",
                 (const char *)head, head[0], head[1], head[2], head[3], head[4], head[5], head[6],
                 head[7]);
    }
    static const uint8_t version[4] = {2, 0, 0, 0};
    assert_memory_equal(head + 8, version, 4);
    th_rmrf(dir);
}

/* Writes a version-1 snapshot file as the previous code did: magic 0x3130504153525252
 * (bytes "RRRSAP01"), version 1, otherwise the same layout and a valid checksum. */
static void
write_v1(const char *dir, raft_group g, raft_index idx, const char *cfg, const char *data)
{
    uint8_t h[64] = {0};
    uint64_t magic = 0x3130504153525252ull, term = idx / 10 + 1, data_len = strlen(data);
    uint32_t version = 1, config_len = (uint32_t)strlen(cfg);
    memcpy(h, &magic, 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &g, 4);
    memcpy(h + 16, &idx, 8);
    memcpy(h + 24, &term, 8);
    memcpy(h + 32, &config_len, 4);
    memcpy(h + 40, &data_len, 8);
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, h, 48);
    XXH3_64bits_update(st, cfg, config_len);
    XXH3_64bits_update(st, data, data_len);
    uint64_t sum = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    memcpy(h + 48, &sum, 8);
    char path[128];
    snprintf(path, sizeof(path), "%s/snap-%08x-%016llx", dir, g, (unsigned long long)idx);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
    assert_int_equal(write(fd, cfg, config_len), (ssize_t)config_len);
    assert_int_equal(write(fd, data, data_len), (ssize_t)data_len);
    close(fd);
}

/* A version-1 file is refused: RR_EBADVERSION and a message naming the file and its
 * version, neither loaded nor silently passed over for an older snapshot. */
static void test_snapshot_version1_refused(void **state)
{
    (void)state;
    char dir[64];
    th_mkdtemp(dir);
    write_v1(dir, 5, 200, "voters 1 2 3", "state at 200");
    struct snapshot out;
    char err[512];
    int rc = snapshot_load(dir, 5, &out, err, sizeof(err));
    if (rc != RR_EBADVERSION) {
        if (rc == RR_OK) {
            snapshot_free(&out);
        }
        fail_msg("loading a version-1 snapshot returned %d (%s), want RR_EBADVERSION; err \"%s\"",
                 rc, rr_strerror(rc), err);
    }
    char want[128];
    snprintf(want, sizeof(want), "%s/snap-00000005-00000000000000c8", dir);
    if (strstr(err, want) == NULL || strstr(err, "version 1") == NULL) {
        fail_msg("message does not name the file and its version: \"%s\"", err);
    }
    /* an older version-2 snapshot is not used instead of the refused newer file */
    save(dir, 5, 100, "voters 1 2 3", "state at 100");
    assert_int_equal(snapshot_load(dir, 5, &out, err, sizeof(err)), RR_EBADVERSION);
    assert_non_null(strstr(err, want));
    /* a newer version-2 snapshot is loaded; the version-1 file is never reached */
    save(dir, 5, 300, "voters 1 2 3", "state at 300");
    assert_int_equal(snapshot_load(dir, 5, &out, err, sizeof(err)), 0);
    assert_int_equal(out.index, 300);
    snapshot_free(&out);
    th_rmrf(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_snapshot_write_failures),
        cmocka_unit_test(test_snapshot_magic_on_disk),
        cmocka_unit_test(test_snapshot_version1_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
