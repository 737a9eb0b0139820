/* Recovery: the newest record torn at every byte offset, bit flips in old segments and in
 * the torn-tail region, corruption beyond the torn window, interrupted preparation,
 * leftovers of an interrupted deletion. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "tests/storage/wal_helpers.h"

static int fx_setup(void **state)
{
    struct th_fx *fx = th_fx_new(4);
    fx->cfg.segment_bytes = 64u << 10;
    *state = fx;
    return 0;
}

static void fx_close(struct th_fx *fx)
{
    th_fx_close(fx);
}

static int fx_teardown(void **state)
{
    th_fx_free(*state);
    return 0;
}

static int fx_try_open(struct th_fx *fx)
{
    return th_fx_try_open(fx);
}

static void fx_open(struct th_fx *fx)
{
    int rc = fx_try_open(fx);
    if (rc != 0) {
        fail_msg("wal_open: %d %s", rc, fx->err);
    }
}

/* Writes entries 1..n of group g, each unit durable before the next (one record each). */
static void fx_fill(struct th_fx *fx, raft_group g, raft_index n, uint32_t max_len)
{
    for (raft_index i = 1; i <= n; i++) {
        struct wal_entry e = {.term = 1, .index = i};
        e.len = th_payload(g, i, 0, fx->buf, max_len);
        e.data = fx->buf;
        assert_int_equal(wal_append(fx->wal, g, NULL, &e, 1, th_count_cb, &fx->acked), 0);
        assert_int_equal(th_run_until(&fx->ring, fx->wal, &fx->acked, fx->acked + 1), 0);
    }
}

static void fx_fill_from(struct th_fx *fx, raft_group g, raft_index lo, raft_index hi)
{
    for (raft_index i = lo; i <= hi; i++) {
        struct wal_entry e = {.term = 1, .index = i};
        assert_int_equal(wal_append(fx->wal, g, NULL, &e, 1, th_count_cb, &fx->acked), 0);
        assert_int_equal(th_run_until(&fx->ring, fx->wal, &fx->acked, fx->acked + 1), 0);
    }
}

static raft_index fx_last(struct th_fx *fx, raft_group g)
{
    struct wal_group_info gi;
    assert_int_equal(wal_group_info(fx->wal, g, &gi), 0);
    return gi.last_index;
}

static uint8_t *read_path(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    uint8_t *b = malloc((size_t)st.st_size);
    assert_non_null(b);
    assert_int_equal(pread(fd, b, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    *len = (size_t)st.st_size;
    return b;
}

static void write_path(const char *path, const uint8_t *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, b, len, 0), (ssize_t)len);
    close(fd);
}

/* Offset of the last record in a segment image, and its end. */
static void last_record(const uint8_t *img, size_t len, uint64_t salt, size_t *start, size_t *end)
{
    size_t off = WAL_SEGMENT_HEADER_BYTES;
    *start = *end = off;
    for (;;) {
        struct wal_record r;
        int64_t n = wal_record_decode(img + off, len - off, salt, &r);
        if (n < 0) {
            return;
        }
        *start = off;
        off += (size_t)n;
        *end = off;
    }
}

static uint64_t segment_salt(const uint8_t *img)
{
    struct wal_segment_header h;
    assert_int_equal(wal_segment_header_decode(img, &h), 0);
    return h.salt;
}

/* Cut the newest record at every byte offset (the rest zero, as a preallocated file reads
 * after a power loss, or garbage): recovery keeps exactly the records before it. */
static void test_torn_tail_every_offset(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    fx_fill(fx, 1, 5, 200);
    fx_close(fx);
    char path[128];
    th_segment_path(fx->dir, 1, path, sizeof(path));
    size_t len;
    uint8_t *orig = read_path(path, &len);
    size_t start, end;
    last_record(orig, len, segment_salt(orig), &start, &end);
    assert_true(end > start);
    uint8_t *img = malloc(len);
    for (size_t cut = start; cut < end; cut++) {
        for (int garbage = 0; garbage < 2; garbage++) {
            memcpy(img, orig, len);
            for (size_t k = cut; k < end; k++) {
                img[k] = garbage ? (uint8_t)(k * 131u + 7u) : 0;
            }
            write_path(path, img, len);
            fx_open(fx);
            /* Zeros over zero padding change nothing: the record is whole. */
            assert_int_equal(fx_last(fx, 1), memcmp(img, orig, len) == 0 ? 5 : 4);
            fx_close(fx);
        }
    }
    /* Untouched, all five are there; appending after a recovered tear works. */
    write_path(path, orig, len);
    fx_open(fx);
    assert_int_equal(fx_last(fx, 1), 5);
    fx_close(fx);
    memcpy(img, orig, len);
    img[end - 9] ^= 0x10;
    write_path(path, img, len);
    fx_open(fx);
    assert_int_equal(fx_last(fx, 1), 4);
    struct wal_entry e = {.term = 2, .index = 5};
    assert_int_equal(wal_append(fx->wal, 1, NULL, &e, 1, th_count_cb, &fx->acked), 0);
    assert_int_equal(th_run_until(&fx->ring, fx->wal, &fx->acked, fx->acked + 1), 0);
    fx_close(fx);
    fx_open(fx);
    assert_int_equal(fx_last(fx, 1), 5);
    free(img);
    free(orig);
}

/* A flipped bit in a sealed (older) segment is refused, naming file and offset; every bit
 * of one record is tried. */
static void test_bit_flip_older_segment(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    fx_fill(fx, 2, 600, 200); /* several 64 KiB segments */
    assert_true(wal_segment_count(fx->wal) >= 3);
    fx_close(fx);
    char path[128];
    th_segment_path(fx->dir, 1, path, sizeof(path));
    size_t len;
    uint8_t *orig = read_path(path, &len);
    size_t rec = WAL_SEGMENT_HEADER_BYTES + 3 * 8; /* inside the first record's header */
    size_t first_end = WAL_SEGMENT_HEADER_BYTES + wal_record_peek_size(orig + 4096);
    for (size_t byte = WAL_SEGMENT_HEADER_BYTES; byte < first_end; byte += 5) {
        for (int bit = 0; bit < 8; bit += 3) {
            orig[byte] ^= (uint8_t)(1u << bit);
            write_path(path, orig, len);
            assert_int_equal(fx_try_open(fx), RR_ECORRUPT);
            assert_non_null(strstr(fx->err, "wal-0000000000000001"));
            assert_non_null(strstr(fx->err, "offset 4096"));
            orig[byte] ^= (uint8_t)(1u << bit);
        }
    }
    (void)rec;
    /* A record in the middle of the old segment names its group. */
    size_t mid = 4096;
    for (int k = 0; k < 10; k++) {
        mid += wal_record_peek_size(orig + mid);
    }
    orig[mid + 44] ^= 1;
    write_path(path, orig, len);
    assert_int_equal(fx_try_open(fx), RR_ECORRUPT);
    char want[64];
    snprintf(want, sizeof(want), "offset %zu (group 2", mid);
    if (strstr(fx->err, want) == NULL) {
        fail_msg("%s: want \"%s\"", fx->err, want);
    }
    orig[mid + 44] ^= 1;
    /* A damaged header of a segment that is not the newest is refused too. */
    orig[20] ^= 4;
    write_path(path, orig, len);
    assert_int_equal(fx_try_open(fx), RR_ECORRUPT);
    assert_non_null(strstr(fx->err, "header"));
    orig[20] ^= 4;
    write_path(path, orig, len);
    fx_open(fx);
    assert_int_equal(fx_last(fx, 2), 600);
    free(orig);
}

/* In the newest segment only the last flush may be torn. A bad record followed by a valid
 * one whose flush started after it was durable is corruption; a bad record in the last
 * flush is a torn tail. */
static void test_flip_beyond_torn_window(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.segment_bytes = 8u << 20;
    fx_open(fx);
    fx_fill(fx, 0, 1300, 4000); /* one flush each */
    fx_close(fx);
    char path[128];
    th_segment_path(fx->dir, 1, path, sizeof(path));
    size_t len;
    uint8_t *img = read_path(path, &len);
    size_t start, end;
    last_record(img, len, segment_salt(img), &start, &end);
    /* the second-to-last record: one flush before the end, so the last proves it synced */
    size_t off = 4096;
    size_t prev = 4096;
    raft_index before = 0;
    while (off < start) {
        prev = off;
        off += wal_record_peek_size(img + off);
        before++;
    }
    assert_int_equal(off, start);
    size_t targets[2] = {4096, prev};
    for (int t = 0; t < 2; t++) {
        img[targets[t] + 50] ^= 0x80;
        write_path(path, img, len);
        assert_int_equal(fx_try_open(fx), RR_ECORRUPT);
        assert_non_null(strstr(fx->err, "written by a later flush"));
        char want[64];
        snprintf(want, sizeof(want), "offset %zu (group 0", targets[t]);
        if (strstr(fx->err, want) == NULL) {
            fail_msg("%s: want \"%s\"", fx->err, want);
        }
        img[targets[t] + 50] ^= 0x80;
    }
    /* The same flip in the last flush is a torn tail: that record alone goes. */
    img[start + 50] ^= 0x80;
    write_path(path, img, len);
    fx_open(fx);
    raft_index last = fx_last(fx, 0);
    assert_int_equal(last, before);
    assert_int_equal(last, 1299);
    assert_int_equal(wal_recovery_report(fx->wal)->torn_seq, 0); /* no valid record followed */
    fx_close(fx);
    fx_open(fx);
    assert_int_equal(fx_last(fx, 0), last);
    free(img);
}

/* With two flushes in flight the torn window is the last two: a flush planned while the one
 * before it was in flight carries a flush base that proves nothing about it. F1 is durable
 * alone; F2 and F3 run together, so F3's base is the end of F1. */
static void test_torn_window_two_flushes(void **state)
{
    struct th_fx *fx = *state;
    fx->cfg.flushes_in_flight = 2;
    fx->cfg.direct_io = false; /* with it F3 would wait for F2: its first block is F2's last */
    fx->cfg.segment_bytes = 1u << 20;
    fx_open(fx);
    struct wal_entry e[3];
    uint8_t payload[3][100];
    for (int k = 0; k < 3; k++) {
        e[k] = (struct wal_entry){.term = 1, .index = 1 + (raft_index)k, .len = 100};
        memset(payload[k], k + 1, sizeof(payload[k]));
        e[k].data = payload[k];
    }
    assert_int_equal(wal_append(fx->wal, 1, NULL, &e[0], 1, th_count_cb, &fx->acked), 0);
    assert_int_equal(th_run_until(&fx->ring, fx->wal, &fx->acked, 1), 0);
    assert_int_equal(wal_append(fx->wal, 1, NULL, &e[1], 1, th_count_cb, &fx->acked), 0);
    wal_submit(fx->wal); /* F2 */
    assert_int_equal(wal_append(fx->wal, 1, NULL, &e[2], 1, th_count_cb, &fx->acked), 0);
    wal_submit(fx->wal); /* F3, while F2 is in flight */
    assert_int_equal(th_run_until(&fx->ring, fx->wal, &fx->acked, 3), 0);
    assert_int_equal(wal_stats(fx->wal)->overlapped, 1);
    fx_close(fx);
    char path[128];
    th_segment_path(fx->dir, 1, path, sizeof(path));
    size_t len;
    uint8_t *img = read_path(path, &len);
    size_t size = wal_record_size(100);
    size_t r1 = 4096, r2 = r1 + size, r3 = r2 + size;
    uint32_t base3;
    memcpy(&base3, img + r3 + WAL_REC_OFF_FLUSH_BASE, sizeof(base3));
    assert_int_equal(base3, r2); /* durable when F3 was planned: the end of F1 */
    /* A flip in F1: F2's and F3's bases prove it was synced: refused. */
    img[r1 + 50] ^= 1;
    write_path(path, img, len);
    assert_int_equal(fx_try_open(fx), RR_ECORRUPT);
    img[r1 + 50] ^= 1;
    /* A flip in F2: nothing proves it synced: a torn tail, F2 and F3 dropped. */
    img[r2 + 50] ^= 1;
    write_path(path, img, len);
    fx_open(fx);
    assert_int_equal(fx_last(fx, 1), 1);
    assert_int_equal(wal_recovery_report(fx->wal)->torn_offset, r2);
    assert_int_equal(wal_recovery_report(fx->wal)->torn_bytes, r3 + size - r2);
    free(img);
}

static uint64_t newest_seq(const char *dir)
{
    uint64_t newest = 0;
    for (uint64_t s = 1; s < 256; s++) {
        char p[128];
        th_segment_path(dir, s, p, sizeof(p));
        if (access(p, F_OK) == 0) {
            newest = s;
        }
    }
    return newest;
}

/* A newest file whose preparation was interrupted (no valid header, no record under the
 * salt its name implies) is removed; the log is intact. */
static void test_interrupted_prep(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    fx_fill(fx, 3, 2000, 200);
    assert_int_equal(wal_compact(fx->wal, 3, 1990, 1, th_count_cb, &fx->acked), 0);
    assert_int_equal(th_run_until(&fx->ring, fx->wal, &fx->acked, fx->acked + 1), 0);
    fx_fill_from(fx, 3, 2001, 2002);
    fx_close(fx);
    char partial[128];
    th_segment_path(fx->dir, newest_seq(fx->dir) + 1, partial, sizeof(partial));
    int fd = open(partial, O_CREAT | O_WRONLY, 0644);
    assert_int_equal(write(fd, "partial", 7), 7);
    close(fd);
    fx_open(fx);
    assert_int_equal(wal_recovery_report(fx->wal)->unfinished_spare, 1);
    struct wal_group_info gi;
    assert_int_equal(wal_group_info(fx->wal, 3, &gi), 0);
    assert_int_equal(gi.snap_index, 1990);
    assert_int_equal(gi.last_index, 2002);
    fx_close(fx);
    fx_open(fx);
    assert_int_equal(fx_last(fx, 3), 2002);
}

/* Segment names always form a contiguous run (every name change is made durable before the
 * next): a gap is damage, refused with the missing name, and nothing is deleted. */
static void test_gap_is_refused(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    fx_fill(fx, 3, 2000, 200);
    fx_close(fx);
    uint64_t newest = newest_seq(fx->dir);
    assert_true(newest >= 3);
    char path[128];
    th_segment_path(fx->dir, 2, path, sizeof(path));
    char moved[160];
    snprintf(moved, sizeof(moved), "%s.moved", path);
    assert_int_equal(rename(path, moved), 0);
    assert_int_equal(fx_try_open(fx), RR_ECORRUPT);
    assert_non_null(strstr(fx->err, "segment wal-0000000000000002 is missing"));
    th_segment_path(fx->dir, 1, path, sizeof(path));
    assert_int_equal(access(path, F_OK), 0); /* the file before the gap is still there */
    th_segment_path(fx->dir, 2, path, sizeof(path));
    assert_int_equal(rename(moved, path), 0);
    fx_open(fx);
    assert_int_equal(fx_last(fx, 3), 2000);
}

/* Files whose names are not exactly "wal-" and 16 lowercase hex digits are never segments:
 * ignored, reported, kept. */
static void test_stray_names_ignored(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    fx_fill(fx, 1, 300, 200);
    fx_close(fx);
    char src[128];
    th_segment_path(fx->dir, 1, src, sizeof(src));
    size_t len;
    uint8_t *img = read_path(src, &len);
    const char *strays[] = {"wal-0x00000000000002", "wal-000000000000000A", "wal-1",
                            "wal-0000000000000001.tmp"};
    for (int i = 0; i < 4; i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s/%s", fx->dir, strays[i]);
        write_path(p, img, len);
    }
    fx_open(fx);
    assert_int_equal(wal_recovery_report(fx->wal)->stray_files, 4);
    assert_int_equal(fx_last(fx, 1), 300);
    fx_close(fx);
    for (int i = 0; i < 4; i++) {
        char p[160];
        snprintf(p, sizeof(p), "%s/%s", fx->dir, strays[i]);
        assert_int_equal(access(p, F_OK), 0);
    }
    free(img);
}

/* A segment of format version 1 (before the flush base) is refused by name, not taken for
 * an unfinished spare or damage. */
static void test_refuses_version_1(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    fx_fill(fx, 0, 20, 100);
    fx_close(fx);
    char path[128];
    th_segment_path(fx->dir, 1, path, sizeof(path));
    size_t len;
    uint8_t *img = read_path(path, &len);
    uint32_t v1 = 1;
    memcpy(img + 8, &v1, sizeof(v1));
    uint64_t sum = XXH3_64bits(img, 64);
    memcpy(img + 64, &sum, sizeof(sum));
    write_path(path, img, len);
    assert_int_equal(fx_try_open(fx), RR_EBADVERSION);
    assert_non_null(strstr(fx->err, "wal-0000000000000001: segment format version 1"));
    assert_non_null(strstr(fx->err, "reads version 2 only"));
    assert_int_equal(access(path, F_OK), 0);
    free(img);
}

/* Wrong identity inside a segment: refused with both identities in the message. */
static void test_refuses_foreign_segment(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    fx_fill(fx, 0, 2, 10);
    fx_close(fx);
    fx->cfg.worker_count = 2;
    assert_int_equal(fx_try_open(fx), RR_EMISMATCH);
    assert_non_null(strstr(fx->err, "W=1"));
    assert_non_null(strstr(fx->err, "W=2"));
}

/* An empty log must end at its snapshot, as a non-empty one must start after it: records
 * that leave group 0 empty but ending at 4 with no snapshot (entry 5, then a truncation at
 * 5) are refused. Shown by fuzz_wal: recovery accepted them, the WAL then accepted an append
 * at 5, and the next recovery refused the WAL ("entries are missing"). */
static void test_empty_log_must_end_at_snapshot(void **state)
{
    struct th_fx *fx = *state;
    fx_open(fx);
    fx_close(fx);
    char path[128];
    th_segment_path(fx->dir, 1, path, sizeof(path));
    size_t len;
    uint8_t *img = read_path(path, &len);
    uint64_t salt = segment_salt(img);
    struct wal_record entry = {.type = WAL_REC_ENTRY,
                               .entry_type = 1,
                               .group = 0,
                               .term = 1,
                               .index = 5,
                               .payload_len = 4,
                               .payload = (const uint8_t *)"five"};
    struct wal_record truncate = {.type = WAL_REC_TRUNCATE, .group = 0, .index = 5};
    size_t off = WAL_SEGMENT_HEADER_BYTES;
    wal_record_encode(&entry, salt, img + off);
    off += wal_record_size(entry.payload_len);
    wal_record_encode(&truncate, salt, img + off);
    write_path(path, img, len);
    assert_int_equal(fx_try_open(fx), RR_ECORRUPT);
    assert_non_null(strstr(fx->err, "group 0: the log is empty and ends at index 4"));
    free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_torn_tail_every_offset, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_bit_flip_older_segment, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_flip_beyond_torn_window, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_torn_window_two_flushes, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_interrupted_prep, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_gap_is_refused, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_stray_names_ignored, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_refuses_foreign_segment, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_refuses_version_1, fx_setup, fx_teardown),
        cmocka_unit_test_setup_teardown(test_empty_log_must_end_at_snapshot, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
