/* tools/ringraft-wal against a WAL written by the library: verify, summary, dump, dump
 * --json; a WAL of more than 65536 groups; records of groups outside the segment header's
 * range; stray "wal-*" files that are not segment names. The tool's path comes from $RINGRAFT_WAL
 * (storage.mk sets it), else it is derived from this binary's path (build/<flavour>/tests/storage/
 * -> build/<flavour>/tools/). */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>
#include <libgen.h>
#include <sys/wait.h>

#include "tests/storage/wal_helpers.h"

#define GROUPS    3
#define PER_GROUP 100u
#define TRUNC_AT  91u /* group 1: entries 91.. removed */
#define COMPACT   20u /* group 2: entries ..20 compacted */

static char tool_path[4096];

struct fx {
    char dir[64];
    struct wal_group_info info[GROUPS];
    uint64_t records; /* records seen by the library's reopen: entries written */
};

/* Runs the tool with args on fx->dir; captures stdout (stderr too) into out. Returns the
 * exit status, or -1. */
static int run_tool(const char *args, const char *target, char *out, size_t len)
{
    char cmd[8192];
    snprintf(cmd, sizeof(cmd), "'%s' %s '%s' 2>&1", tool_path, args, target);
    FILE *p = popen(cmd, "r");
    if (p == NULL) {
        return -1;
    }
    size_t n = fread(out, 1, len - 1, p);
    out[n] = '\0';
    assert_true(n < len - 1); /* output fits */
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_wal(struct fx *fx)
{
    struct io_uring ring;
    struct wal *wal;
    char err[256];
    assert_int_equal(io_uring_queue_init(64, &ring, 0), 0);
    struct wal_config cfg = th_config(fx->dir, GROUPS);
    cfg.segment_bytes = 64u << 10;
    assert_int_equal(wal_open(&cfg, &ring, &wal, err, sizeof(err)), 0);
    uint64_t done = 0, want = 0;
    static uint8_t buf[1000];
    for (raft_index i = 1; i <= PER_GROUP; i++) {
        for (raft_group g = 0; g < GROUPS; g++) {
            struct wal_entry e = {.term = 2 + g, .index = i, .type = (uint8_t)(i % 3), .data = buf};
            e.len = th_payload(g, i, 0, buf, sizeof(buf));
            struct wal_hard_state hs = {.term = 2 + g, .vote = g + 1, .commit = i - 1};
            bool with_hs = i % 10 == 0;
            int rc;
            while ((rc = wal_append(wal, g, with_hs ? &hs : NULL, &e, 1, th_count_cb, &done)) ==
                   RR_EBUSY) {
                assert_int_equal(th_step(&ring, wal), 0);
            }
            assert_int_equal(rc, 0);
            want++;
        }
    }
    assert_int_equal(wal_truncate(wal, 1, TRUNC_AT, th_count_cb, &done), 0);
    want++;
    assert_int_equal(wal_compact(wal, 2, COMPACT, 4, th_count_cb, &done), 0);
    want++;
    assert_int_equal(th_run_until(&ring, wal, &done, want), 0);
    for (raft_group g = 0; g < GROUPS; g++) {
        wal_group_info(wal, g, &fx->info[g]);
    }
    assert_true(wal_segment_count(wal) >= 3);
    th_quiesce(&ring, wal);
    wal_close(wal);
    io_uring_queue_exit(&ring);
    /* what was written, as the library sees it */
    assert_int_equal(fx->info[0].last_index, PER_GROUP);
    assert_int_equal(fx->info[1].last_index, TRUNC_AT - 1);
    assert_int_equal(fx->info[2].first_index, COMPACT + 1);
    assert_int_equal(fx->info[2].snap_index, COMPACT);
    assert_int_equal(fx->info[1].hs.vote, 2);
    assert_int_equal(fx->info[1].hs.commit, PER_GROUP - 1);
}

static int setup(void **state)
{
    struct fx *fx = calloc(1, sizeof(*fx));
    th_mkdtemp(fx->dir);
    write_wal(fx);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fx *fx = *state;
    th_rmrf(fx->dir);
    free(fx);
    return 0;
}

static char out[4u << 20];

/* Fails unless out holds the summary line of group g as the library sees it. */
static void expect_summary(const char *text, raft_group g, const struct wal_group_info *gi)
{
    char want[256];
    snprintf(want, sizeof(want),
             "group %-6u first %-8llu last %-8llu snap %-8llu term %-6llu vote %-4u commit %-8llu ",
             g, (unsigned long long)gi->first_index, (unsigned long long)gi->last_index,
             (unsigned long long)gi->snap_index, (unsigned long long)gi->hs.term,
             (unsigned)gi->hs.vote, (unsigned long long)gi->hs.commit);
    if (strstr(text, want) == NULL) {
        fail_msg("summary lacks \"%s\":\n%s", want, text);
    }
}

static void test_verify_good(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(run_tool("verify", fx->dir, out, sizeof(out)), 0);
    assert_non_null(strstr(out, "verify: ok"));
}

static void test_summary(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(run_tool("summary", fx->dir, out, sizeof(out)), 0);
    for (raft_group g = 0; g < GROUPS; g++) {
        expect_summary(out, g, &fx->info[g]);
    }
    /* --json summary agrees */
    assert_int_equal(run_tool("summary --json", fx->dir, out, sizeof(out)), 0);
    char want[128];
    snprintf(want, sizeof(want), "{\"group\":1,\"first\":1,\"last\":%u,", TRUNC_AT - 1);
    assert_non_null(strstr(out, want));
}

/* Minimal check that line is one flat JSON object of "key":number or "key":"string". */
static bool json_object(const char *s, const char *end)
{
    if (s >= end || *s++ != '{') {
        return false;
    }
    for (;;) {
        if (*s++ != '"') {
            return false;
        }
        while (s < end && *s != '"') {
            s++;
        }
        if (s >= end || *++s != ':') {
            return false;
        }
        s++;
        if (*s == '"') {
            s++;
            while (s < end && *s != '"' && *s != '\\') {
                s++;
            }
            if (s >= end || *s != '"') {
                return false;
            }
            s++;
        } else {
            const char *d = s;
            while (s < end && *s >= '0' && *s <= '9') {
                s++;
            }
            if (s == d) {
                return false;
            }
        }
        if (*s == '}') {
            return s + 1 == end;
        }
        if (*s++ != ',') {
            return false;
        }
    }
}

static unsigned json_u(const char *line, const char *key)
{
    char k[64];
    snprintf(k, sizeof(k), "\"%s\":", key);
    const char *p = strstr(line, k);
    assert_non_null(p);
    return (unsigned)strtoul(p + strlen(k), NULL, 10);
}

static void test_dump_json(void **state)
{
    struct fx *fx = *state;
    assert_int_equal(run_tool("dump --json", fx->dir, out, sizeof(out)), 0);
    static const char *keys[] = {"file", "offset", "size",       "type",       "group",
                                 "term", "index",  "entry_type", "payload_len"};
    unsigned entries[GROUPS] = {0}, lines = 0, truncs = 0, compacts = 0, hs = 0;
    for (char *line = out; *line != '\0';) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        if (!json_object(line, nl)) {
            fail_msg("not a JSON object: %.*s", (int)(nl - line), line);
        }
        *nl = '\0';
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            char q[64];
            snprintf(q, sizeof(q), "\"%s\":", keys[k]);
            assert_non_null(strstr(line, q));
        }
        lines++;
        unsigned g = json_u(line, "group");
        if (strstr(line, "\"type\":\"entry\"") != NULL) {
            assert_true(g < GROUPS);
            unsigned i = json_u(line, "index");
            uint8_t buf[1000];
            assert_int_equal(json_u(line, "payload_len"), th_payload(g, i, 0, buf, sizeof(buf)));
            assert_int_equal(json_u(line, "term"), 2 + g);
            assert_int_equal(json_u(line, "entry_type"), i % 3);
            entries[g]++;
        } else if (strstr(line, "\"type\":\"truncate\"") != NULL) {
            assert_int_equal(g, 1);
            assert_int_equal(json_u(line, "index"), TRUNC_AT);
            truncs++;
        } else if (strstr(line, "\"type\":\"compact\"") != NULL) {
            if (g == 2 && json_u(line, "index") == COMPACT) {
                compacts++;
            }
        } else if (strstr(line, "\"type\":\"hard_state\"") != NULL) {
            hs++;
        }
        line = nl + 1;
    }
    for (unsigned g = 0; g < GROUPS; g++) {
        assert_int_equal(entries[g], PER_GROUP);
    }
    assert_int_equal(truncs, 1);
    assert_true(compacts >= 1);
    assert_true(hs >= GROUPS * PER_GROUP / 10);
    fx->records = lines;

    /* the human-readable dump lists the same records */
    assert_int_equal(run_tool("dump", fx->dir, out, sizeof(out)), 0);
    unsigned human = 0;
    for (const char *p = out; (p = strstr(p, " @")) != NULL; p++) {
        human++;
    }
    assert_int_equal(human, lines);
    assert_non_null(strstr(out, " entry "));
    assert_non_null(strstr(out, " truncate "));
    assert_non_null(strstr(out, " compact "));
    assert_non_null(strstr(out, " hard_state "));
    char want[64];
    snprintf(want, sizeof(want), "index %-8u", TRUNC_AT);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, ": segment "));
}

/* A flipped byte in a record of the oldest segment: verify fails and names the file and
 * the record's offset. */
static void test_verify_flipped_byte(void **state)
{
    struct fx *fx = *state;
    char seg[128];
    th_segment_path(fx->dir, 1, seg, sizeof(seg));
    assert_int_equal(run_tool("dump --json", seg, out, sizeof(out)), 0);
    /* the fifth record of segment 1 */
    const char *line = out;
    for (int k = 0; k < 4; k++) {
        line = strchr(line, '\n');
        assert_non_null(line);
        line++;
    }
    unsigned off = json_u(line, "offset");
    unsigned size = json_u(line, "size");
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    off_t at = (off_t)(off + size / 2);
    assert_int_equal(pread(fd, &b, 1, at), 1);
    b ^= 0x5a;
    assert_int_equal(pwrite(fd, &b, 1, at), 1);
    close(fd);

    assert_int_not_equal(run_tool("verify", fx->dir, out, sizeof(out)), 0);
    char want[256];
    snprintf(want, sizeof(want), "%s: first bad record at offset %u ", seg, off);
    if (strstr(out, want) == NULL) {
        fail_msg("verify output lacks \"%s\":\n%s", want, out);
    }
    assert_non_null(strstr(out, "verify: FAILED"));
    /* the segment alone: the tool cannot tell the damage from a torn tail, but names it */
    run_tool("verify", seg, out, sizeof(out));
    assert_non_null(strstr(out, want));
}

/* In the newest segment, where a bad record could be a torn tail, verify applies the
 * recovery's rule: a later flush's first record whose flush base lies past the bad record
 * proves it had been synced, so it is corruption. */
static void test_verify_flip_before_later_flush(void **state)
{
    (void)state;
    char dir[64];
    th_mkdtemp(dir);
    struct io_uring ring;
    assert_int_equal(io_uring_queue_init(64, &ring, 0), 0);
    struct wal_config cfg = th_config(dir, 1);
    struct wal *wal;
    char err[256];
    assert_int_equal(wal_open(&cfg, &ring, &wal, err, sizeof(err)), 0);
    uint64_t done = 0;
    static uint8_t buf[100];
    for (raft_index i = 1; i <= 3; i++) { /* one flush each */
        struct wal_entry e = {.term = 1, .index = i, .len = sizeof(buf), .data = buf};
        assert_int_equal(wal_append(wal, 0, NULL, &e, 1, th_count_cb, &done), 0);
        assert_int_equal(th_run_until(&ring, wal, &done, i), 0);
    }
    th_quiesce(&ring, wal);
    wal_close(wal);
    io_uring_queue_exit(&ring);
    char seg[128];
    th_segment_path(dir, 1, seg, sizeof(seg));
    assert_int_equal(run_tool("verify", dir, out, sizeof(out)), 0);
    int fd = open(seg, O_RDWR);
    assert_true(fd >= 0);
    uint8_t b;
    assert_int_equal(pread(fd, &b, 1, 4096 + 60), 1);
    b ^= 1;
    assert_int_equal(pwrite(fd, &b, 1, 4096 + 60), 1);
    close(fd);
    assert_int_not_equal(run_tool("verify", dir, out, sizeof(out)), 0);
    if (strstr(out, "record at offset 4096 is bad, but the record at offset") == NULL ||
        strstr(out, "written by a later flush") == NULL) {
        fail_msg("verify output:\n%s", out);
    }
    th_rmrf(dir);
}

/* Counts the lines of text that start with "group ". */
static unsigned summary_lines(const char *text)
{
    unsigned n = 0;
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p ? p + 1 : p) {
        n += strncmp(p, "group ", 6) == 0;
    }
    return n;
}

/* A WAL of 70000 groups (above the tool's old fixed table of 65536), written by the library.
 * The library allows at most RAFT_GROUPS_MAX groups per worker, so the cluster has two
 * workers and this is worker 1's WAL, which holds the odd groups: 5 and 69999. */
#define BIG_GROUPS 70000u

static void test_summary_many_groups(void **state)
{
    (void)state;
    char dir[64];
    th_mkdtemp(dir);
    struct io_uring ring;
    struct wal *wal;
    char err[256];
    assert_int_equal(io_uring_queue_init(64, &ring, 0), 0);
    struct wal_config cfg = th_config(dir, BIG_GROUPS);
    cfg.worker_count = 2;
    cfg.worker_id = 1;
    cfg.segment_bytes = 64u << 10;
    assert_int_equal(wal_open(&cfg, &ring, &wal, err, sizeof(err)), 0);
    static const raft_group groups[2] = {BIG_GROUPS - 1, 5};
    static const raft_index last[2] = {40, 25};
    uint64_t done = 0, want = 0;
    static uint8_t buf[1000];
    for (raft_index i = 1; i <= 40; i++) {
        for (int k = 0; k < 2; k++) {
            raft_group g = groups[k];
            if (i > last[k]) {
                continue;
            }
            struct wal_entry e = {.term = 3 + (raft_term)k, .index = i, .type = 0, .data = buf};
            e.len = th_payload(g, i, 0, buf, sizeof(buf));
            struct wal_hard_state hs = {.term = 3 + (raft_term)k, .vote = 1, .commit = i - 1};
            int rc;
            while ((rc = wal_append(wal, g, i % 10 == 0 ? &hs : NULL, &e, 1, th_count_cb, &done)) ==
                   RR_EBUSY) {
                assert_int_equal(th_step(&ring, wal), 0);
            }
            assert_int_equal(rc, 0);
            want++;
        }
    }
    assert_int_equal(wal_compact(wal, BIG_GROUPS - 1, 10, 3, th_count_cb, &done), 0);
    want++;
    assert_int_equal(th_run_until(&ring, wal, &done, want), 0);
    struct wal_group_info info[2];
    for (int k = 0; k < 2; k++) {
        wal_group_info(wal, groups[k], &info[k]);
    }
    th_quiesce(&ring, wal);
    wal_close(wal);
    io_uring_queue_exit(&ring);
    assert_int_equal(info[0].last_index, 40);
    assert_int_equal(info[0].snap_index, 10);
    assert_int_equal(info[1].last_index, 25);

    assert_int_equal(run_tool("verify", dir, out, sizeof(out)), 0);
    if (strstr(out, "verify: ok") == NULL) {
        fail_msg("verify of a %u-group WAL:\n%s", BIG_GROUPS, out);
    }
    assert_int_equal(run_tool("summary", dir, out, sizeof(out)), 0);
    for (int k = 0; k < 2; k++) {
        expect_summary(out, groups[k], &info[k]);
    }
    assert_int_equal(summary_lines(out), 2);
    assert_int_equal(run_tool("summary --json", dir, out, sizeof(out)), 0);
    char line[128];
    snprintf(line, sizeof(line), "{\"group\":%u,\"first\":11,\"last\":40,\"snap\":10,",
             BIG_GROUPS - 1);
    if (strstr(out, line) == NULL) {
        fail_msg("summary --json lacks \"%s\":\n%s", line, out);
    }
    th_rmrf(dir);
}

/* Writes one segment by hand (the library never writes a record of a group it does not
 * own, nor a header it could not open): header G=70000, W=workers, worker workers - 1; entry
 * records of the given groups, index 1; no seal, zeros after the records. */
static void write_segment(const char *dir, uint32_t workers, const raft_group *groups, unsigned n)
{
    static uint8_t seg[64u << 10];
    memset(seg, 0, sizeof(seg));
    struct wal_segment_header h = {.version = WAL_FORMAT_VERSION,
                                   .cluster_id = 0xc1u,
                                   .node_id = 1,
                                   .worker_id = workers - 1,
                                   .group_count = BIG_GROUPS,
                                   .worker_count = workers,
                                   .seq = 1,
                                   .segment_bytes = sizeof(seg)};
    h.salt = wal_segment_salt(&h);
    wal_segment_header_encode(&h, seg);
    uint32_t off = WAL_SEGMENT_HEADER_BYTES;
    static const uint8_t payload[16] = "payload";
    for (unsigned k = 0; k < n; k++) {
        struct wal_record r = {.type = WAL_REC_ENTRY,
                               .group = groups[k],
                               .payload_len = sizeof(payload),
                               .term = 1,
                               .index = 1,
                               .payload = payload};
        wal_record_encode(&r, h.salt, seg + off);
        off += wal_record_size(r.payload_len);
    }
    char path[128];
    th_segment_path(dir, 1, path, sizeof(path));
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, seg, sizeof(seg)), (ssize_t)sizeof(seg));
    close(fd);
}

/* Records of a group at or above the header's group count, or of a group another worker
 * owns, are corruption (recovery refuses them): verify names each and fails. */
static void test_verify_group_out_of_range(void **state)
{
    (void)state;
    char dir[64];
    th_mkdtemp(dir);
    static const raft_group groups[4] = {5, BIG_GROUPS + 1, 6, BIG_GROUPS - 1};
    write_segment(dir, 2, groups, 4);
    char seg[128];
    th_segment_path(dir, 1, seg, sizeof(seg));
    uint32_t rec = wal_record_size(16);

    int rc = run_tool("verify", dir, out, sizeof(out));
    if (rc != 1) {
        fail_msg("verify of records out of range exited %d, want 1:\n%s", rc, out);
    }
    char want[256];
    snprintf(want, sizeof(want), "%s: record at offset %u: group %u out of range", seg,
             WAL_SEGMENT_HEADER_BYTES + rec, BIG_GROUPS + 1);
    if (strstr(out, want) == NULL) {
        fail_msg("verify output lacks \"%s\":\n%s", want, out);
    }
    snprintf(want, sizeof(want), "%s: record at offset %u: group 6 out of range", seg,
             WAL_SEGMENT_HEADER_BYTES + 2 * rec);
    if (strstr(out, want) == NULL) {
        fail_msg("verify output lacks \"%s\":\n%s", want, out);
    }
    assert_non_null(strstr(out, "corruption"));
    assert_non_null(strstr(out, "verify: FAILED"));
    /* the summary lists the groups in range only, and still says what is wrong */
    assert_int_equal(run_tool("summary", dir, out, sizeof(out)), 1);
    assert_int_equal(summary_lines(out), 2);
    assert_non_null(strstr(out, "group 5      first 1 "));
    assert_non_null(strstr(out, "group 69999  first 1 "));
    /* only in-range records: clean */
    write_segment(dir, 2, groups, 1);
    assert_int_equal(run_tool("verify", dir, out, sizeof(out)), 0);
    /* a header the library cannot open: 70000 groups on one worker, above RAFT_GROUPS_MAX */
    write_segment(dir, 1, groups, 1);
    rc = run_tool("verify", dir, out, sizeof(out));
    snprintf(want, sizeof(want), "%s: segment header out of range: G=%u W=1 worker 0 ", seg,
             BIG_GROUPS);
    if (rc != 1 || strstr(out, want) == NULL) {
        fail_msg("verify exited %d; want 1 and \"%s\":\n%s", rc, want, out);
    }
    th_rmrf(dir);
}

static void copy_file(const char *from, const char *to)
{
    uint64_t len = 0;
    int in = open(from, O_RDONLY);
    assert_true(in >= 0);
    struct stat st;
    assert_int_equal(fstat(in, &st), 0);
    len = (uint64_t)st.st_size;
    uint8_t *buf = malloc(len);
    assert_non_null(buf);
    assert_int_equal(pread(in, buf, len, 0), (ssize_t)len);
    close(in);
    int o = open(to, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    assert_true(o >= 0);
    assert_int_equal(write(o, buf, len), (ssize_t)len);
    close(o);
    free(buf);
}

/* Files named like segments but not exactly "wal-" + 16 lowercase hex digits are not
 * segments: reported as ignored, not read (each is a copy of segment 2 here, which would
 * count its records twice and put records after the unsealed newest segment). */
static void test_stray_names_ignored(void **state)
{
    struct fx *fx = *state;
    static const char *strays[] = {"wal-0x0000000000000002", "wal-000000000000000A",
                                   "wal-0000000000000002.old"};
    char seg2[128];
    th_segment_path(fx->dir, 2, seg2, sizeof(seg2));
    for (size_t k = 0; k < sizeof(strays) / sizeof(strays[0]); k++) {
        char path[128];
        snprintf(path, sizeof(path), "%s/%s", fx->dir, strays[k]);
        copy_file(seg2, path);
    }
    int rc = run_tool("verify", fx->dir, out, sizeof(out));
    if (rc != 0 || strstr(out, "verify: ok") == NULL) {
        fail_msg("verify with stray files exited %d:\n%s", rc, out);
    }
    for (size_t k = 0; k < sizeof(strays) / sizeof(strays[0]); k++) {
        char want[256];
        snprintf(want, sizeof(want), "%s/%s: not a segment name", fx->dir, strays[k]);
        const char *p = strstr(out, want);
        if (p == NULL || strstr(p, "ignored") == NULL) {
            fail_msg("verify does not report %s as ignored:\n%s", strays[k], out);
        }
    }
    assert_int_equal(run_tool("summary", fx->dir, out, sizeof(out)), 0);
    for (raft_group g = 0; g < GROUPS; g++) {
        expect_summary(out, g, &fx->info[g]);
    }
    char want[256];
    snprintf(want, sizeof(want), "%s/%s: not a segment name", fx->dir, strays[0]);
    assert_non_null(strstr(out, want));
}

int main(int argc, char **argv)
{
    (void)argc;
    const char *env = getenv("RINGRAFT_WAL");
    if (env != NULL && env[0] != '\0') {
        snprintf(tool_path, sizeof(tool_path), "%s", env);
    } else {
        char self[4096];
        snprintf(self, sizeof(self), "%s", argv[0]);
        snprintf(tool_path, sizeof(tool_path), "%s/../../tools/ringraft-wal", dirname(self));
    }
    if (access(tool_path, X_OK) != 0) {
        fprintf(stderr, "test_wal_tool: %s not found (build the tool or set RINGRAFT_WAL)\n",
                tool_path);
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_verify_good, setup, teardown),
        cmocka_unit_test_setup_teardown(test_summary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dump_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_verify_flipped_byte, setup, teardown),
        cmocka_unit_test(test_verify_flip_before_later_flush),
        cmocka_unit_test(test_summary_many_groups),
        cmocka_unit_test(test_verify_group_out_of_range),
        cmocka_unit_test_setup_teardown(test_stray_names_ignored, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
