/* tools/ringraft-wal against a WAL written by the library: verify, summary, dump, dump
 * --json. The tool's path comes from $RINGRAFT_WAL (storage.mk sets it), else it is derived
 * from this binary's path (build/<flavour>/tests/storage/ -> build/<flavour>/tools/). */
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
        const struct wal_group_info *gi = &fx->info[g];
        char want[256];
        snprintf(
            want, sizeof(want),
            "group %-6u first %-8llu last %-8llu snap %-8llu term %-6llu vote %-4u commit %-8llu ",
            g, (unsigned long long)gi->first_index, (unsigned long long)gi->last_index,
            (unsigned long long)gi->snap_index, (unsigned long long)gi->hs.term,
            (unsigned)gi->hs.vote, (unsigned long long)gi->hs.commit);
        if (strstr(out, want) == NULL) {
            fail_msg("summary lacks \"%s\":\n%s", want, out);
        }
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
