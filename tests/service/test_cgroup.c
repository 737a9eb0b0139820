/* Consumer groups: every command and error byte for byte against Redis 7.0.15 (the cases in
 * cgroup_cases.h, captured by tools/redis-compare.py, many of them ported from Redis's
 * tests/unit/type/stream-cgroups.tcl), time from the entries' clock, all-or-nothing limits,
 * sessions, determinism (digests), snapshots (round trip, the previous format, corrupt
 * extensions refused) and expiry. */
#include <xxhash.h>

#include "io/service/cgroup.h"
#include "io/service/stream.h"
#include "io/service/util.h"
#include "tests/service/sm_helpers.h"
/* after sm_helpers.h, which defines struct t_case */
#include "tests/service/cgroup_cases.h"

#define T_TIME 1700000000000LL /* the entries' clock in the replayed cases (unix ms) */

static void run_cases(const struct t_case *cases, size_t n)
{
    struct t_sm t;
    t_init(&t);
    t_run_cases(&t, T_TIME, cases, n);
    t_fini(&t);
}

#define RUN_CASES(cases) run_cases((cases), sizeof(cases) / sizeof((cases)[0]))

static void test_xgroup_matches_redis(void **state)
{
    (void)state;
    RUN_CASES(cases_xgroup);
}

static void test_xreadgroup_matches_redis(void **state)
{
    (void)state;
    RUN_CASES(cases_xreadgroup);
}

static void test_xack_xpending_match_redis(void **state)
{
    (void)state;
    RUN_CASES(cases_xack_xpending);
}

static void test_xclaim_matches_redis(void **state)
{
    (void)state;
    RUN_CASES(cases_xclaim);
}

static void test_xautoclaim_matches_redis(void **state)
{
    (void)state;
    RUN_CASES(cases_xautoclaim);
}

static void test_xinfo_matches_redis(void **state)
{
    (void)state;
    RUN_CASES(cases_xinfo);
}

static void test_misc_matches_redis(void **state)
{
    (void)state;
    RUN_CASES(cases_misc);
}

/* ---- time ------------------------------------------------------------------------------- */

static void expect(struct t_sm *t, int64_t time_ms, const char *cmd, const char *reply)
{
    const struct t_case c = {cmd, reply};
    t_run_cases(t, time_ms, &c, 1);
}

static void expect_contains(struct t_sm *t, int64_t now_ms, const char *cmd, const char *part)
{
    const char *got = t_read(t, now_ms, cmd);
    if (strstr(got, part) == NULL) {
        fprintf(stderr, "command: %s\n  expected to contain: ", cmd);
        t_print_escaped(part);
        fprintf(stderr, "  got: ");
        t_print_escaped(got);
    }
    assert_non_null(strstr(got, part));
}

/* Delivery and seen times are the applied entries' time (the state machine's clock, which
 * never goes back); idle times in reads are measured to that clock, whatever the reading
 * node's clock says; IDLE, TIME and MIN-IDLE-TIME work against it. */
static void test_times_come_from_the_log(void **state)
{
    (void)state;
    struct t_sm t;
    t_init(&t);
    expect(&t, 1000, "xadd s 1-0 a 1", "$3\r\n1-0\r\n");
    expect(&t, 1000, "xadd s 2-0 b 2", "$3\r\n2-0\r\n");
    expect(&t, 1000, "xadd s 3-0 c 3", "$3\r\n3-0\r\n");
    expect(&t, 1000, "xgroup create s g 0", "+OK\r\n");
    expect(&t, 5000, "xreadgroup group g alice count 1 streams s >",
           "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n");
    expect(&t, 7000, "xreadgroup group g bob count 1 streams s >",
           "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n");
    /* Reads: idle to the clock (7000), not to the reader's clock. */
    const char *pending = "*2\r\n*4\r\n$3\r\n1-0\r\n$5\r\nalice\r\n:2000\r\n:1\r\n"
                          "*4\r\n$3\r\n2-0\r\n$3\r\nbob\r\n:0\r\n:1\r\n";
    assert_string_equal(t_read(&t, 0, "xpending s g - + 10"), pending);
    assert_string_equal(t_read(&t, 99999999, "xpending s g - + 10"), pending);
    assert_string_equal(t_read(&t, 99999999, "xinfo consumers s g"),
                        "*2\r\n*6\r\n$4\r\nname\r\n$5\r\nalice\r\n$7\r\npending\r\n:1\r\n$4\r\n"
                        "idle\r\n:2000\r\n*6\r\n$4\r\nname\r\n$3\r\nbob\r\n$7\r\npending\r\n:1\r\n"
                        "$4\r\nidle\r\n:0\r\n");
    assert_string_equal(t_read(&t, 0, "xpending s g idle 2000 - + 10"),
                        "*1\r\n*4\r\n$3\r\n1-0\r\n$5\r\nalice\r\n:2000\r\n:1\r\n");
    assert_string_equal(t_read(&t, 0, "xpending s g idle 2001 - + 10"), "*0\r\n");
    /* An entry stamped before the clock: the clock stays (7000). */
    expect(&t, 6000, "xclaim s g carol 0 1-0 justid", "*1\r\n$3\r\n1-0\r\n");
    assert_string_equal(t_read(&t, 0, "xpending s g - + 10"),
                        "*2\r\n*4\r\n$3\r\n1-0\r\n$5\r\ncarol\r\n:0\r\n:1\r\n"
                        "*4\r\n$3\r\n2-0\r\n$3\r\nbob\r\n:0\r\n:1\r\n");
    /* IDLE sets the delivery time in the past of the clock. */
    expect(&t, 20000, "xclaim s g dave 0 2-0 idle 3000 justid", "*1\r\n$3\r\n2-0\r\n");
    assert_string_equal(t_read(&t, 0, "xpending s g - + 10"),
                        "*2\r\n*4\r\n$3\r\n1-0\r\n$5\r\ncarol\r\n:13000\r\n:1\r\n"
                        "*4\r\n$3\r\n2-0\r\n$4\r\ndave\r\n:3000\r\n:1\r\n");
    assert_string_equal(t_read(&t, 0, "xpending s g idle 5000 - + 10"),
                        "*1\r\n*4\r\n$3\r\n1-0\r\n$5\r\ncarol\r\n:13000\r\n:1\r\n");
    /* MIN-IDLE-TIME: exactly the idle time claims, one more does not. */
    expect(&t, 20000, "xclaim s g erin 13001 1-0 justid", "*0\r\n");
    expect(&t, 20000, "xclaim s g erin 13000 1-0 justid", "*1\r\n$3\r\n1-0\r\n");
    expect(&t, 20000, "xautoclaim s g frank 3000 0 justid",
           "*3\r\n$3\r\n0-0\r\n*1\r\n$3\r\n2-0\r\n*0\r\n");
    /* TIME: a past time is kept, a future one becomes the clock. */
    expect(&t, 25000, "xclaim s g gina 0 1-0 time 15000 justid", "*1\r\n$3\r\n1-0\r\n");
    expect(&t, 25000, "xclaim s g gina 0 2-0 time 30000 justid", "*1\r\n$3\r\n2-0\r\n");
    const char *full = "xinfo stream s full";
    expect_contains(&t, 0, full,
                    "$7\r\npending\r\n*2\r\n*4\r\n$3\r\n1-0\r\n$4\r\ngina\r\n:15000\r\n:1\r\n"
                    "*4\r\n$3\r\n2-0\r\n$4\r\ngina\r\n:25000\r\n:1\r\n");
    expect_contains(&t, 0, full, "$5\r\nalice\r\n$9\r\nseen-time\r\n:5000\r\n");
    expect_contains(&t, 0, full, "$3\r\nbob\r\n$9\r\nseen-time\r\n:7000\r\n");
    expect_contains(&t, 0, full, "$5\r\ncarol\r\n$9\r\nseen-time\r\n:7000\r\n");
    expect_contains(&t, 0, full, "$4\r\ndave\r\n$9\r\nseen-time\r\n:20000\r\n");
    expect_contains(&t, 0, full,
                    "$4\r\ngina\r\n$9\r\nseen-time\r\n:25000\r\n$9\r\npel-count\r\n:2\r\n$7\r\n"
                    "pending\r\n*2\r\n*3\r\n$3\r\n1-0\r\n:15000\r\n:1\r\n*3\r\n$3\r\n2-0\r\n"
                    ":25000\r\n:1\r\n");
    /* A consumer not served or claiming is not touched: seen time stays. */
    expect(&t, 30000, "xreadgroup group g alice streams s 3-0", "*1\r\n*2\r\n$1\r\ns\r\n*0\r\n");
    expect_contains(&t, 0, "xinfo consumers s g",
                    "$5\r\nalice\r\n$7\r\npending\r\n:0\r\n$4\r\nidle\r\n:0\r\n");
    expect(&t, 31000, "xclaim s g bob 100000 1-0", "*0\r\n");
    expect_contains(&t, 0, "xinfo consumers s g",
                    "$3\r\nbob\r\n$7\r\npending\r\n:0\r\n$4\r\nidle\r\n:24000\r\n");
    t_fini(&t);
}

/* ---- sessions ----------------------------------------------------------------------------- */

/* A retried XREADGROUP (same client and seq) gets its reply again and delivers nothing:
 * entries are delivered once even when the client never saw the first reply. */
static void test_retried_xreadgroup_delivers_once(void **state)
{
    (void)state;
    struct t_sm t;
    t_init(&t);
    t_apply(&t, T_TIME, "xadd s 1-0 a 1");
    t_apply(&t, T_TIME, "xadd s 2-0 b 2");
    t_apply(&t, T_TIME, "xgroup create s g 0");
    char first[256];
    snprintf(first, sizeof(first), "%s",
             t_apply_as(&t, 7, 1, T_TIME + 1, "xreadgroup group g c count 1 streams s >"));
    assert_string_equal(
        first, "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n");
    uint64_t digest = sm_digest(t.sm);
    assert_string_equal(
        t_apply_as(&t, 7, 1, T_TIME + 5, "xreadgroup group g c count 1 streams s >"), first);
    assert_int_equal(sm_digest(t.sm), digest);
    assert_string_equal(t_read(&t, 0, "xpending s g - + 10"),
                        "*1\r\n*4\r\n$3\r\n1-0\r\n$1\r\nc\r\n:0\r\n:1\r\n");
    /* The next seq reads the next entry. */
    assert_string_equal(
        t_apply_as(&t, 7, 2, T_TIME + 6, "xreadgroup group g c count 1 streams s >"),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nb\r\n$1\r\n2\r\n");
    /* A retried XACK acknowledges once and answers the same. */
    assert_string_equal(t_apply_as(&t, 7, 3, T_TIME + 7, "xack s g 1-0 2-0"), ":2\r\n");
    assert_string_equal(t_apply_as(&t, 7, 3, T_TIME + 8, "xack s g 1-0 2-0"), ":2\r\n");
    t_fini(&t);
}

/* ---- XREADGROUP BLOCK: the state machine's part -------------------------------------------- */

/* An XREADGROUP BLOCK that delivers nothing answers a null array, changes nothing and is not
 * kept in its session: the same (client, seq) proposed again once there are entries is
 * applied and delivers them (and from then on is answered from the session). */
static void test_blocked_xreadgroup_is_applied_again(void **state)
{
    (void)state;
    struct t_sm t;
    t_init(&t);
    t_apply(&t, T_TIME, "xgroup create s g $ mkstream");
    int64_t block_ms = -1;
    const char *cmd = "xreadgroup group g c block 2500 streams s >";
    assert_string_equal(t_apply_as(&t, 7, 1, T_TIME + 1, cmd), "*-1\r\n");
    assert_true(sm_apply_blocked(t.sm, &block_ms));
    assert_int_equal(block_ms, 2500);
    /* No consumer created, as in Redis (it creates one when it serves). */
    assert_string_equal(t_read(&t, 0, "xinfo consumers s g"), "*0\r\n");
    /* Applied again with nothing new: blocked again, still not kept. */
    assert_string_equal(t_apply_as(&t, 7, 1, T_TIME + 2, cmd), "*-1\r\n");
    assert_true(sm_apply_blocked(t.sm, &block_ms));
    /* Another write is not blocked. */
    t_apply(&t, T_TIME + 3, "xadd s 1-0 a 1");
    assert_false(sm_apply_blocked(t.sm, &block_ms));
    const char *served =
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n";
    assert_string_equal(t_apply_as(&t, 7, 1, T_TIME + 4, cmd), served);
    assert_false(sm_apply_blocked(t.sm, &block_ms));
    assert_string_equal(t_read(&t, 0, "xpending s g - + 10"),
                        "*1\r\n*4\r\n$3\r\n1-0\r\n$1\r\nc\r\n:0\r\n:1\r\n");
    /* Kept now: a retry delivers nothing more and answers the same. */
    t_apply(&t, T_TIME + 5, "xadd s 2-0 b 2");
    uint64_t digest = sm_digest(t.sm);
    assert_string_equal(t_apply_as(&t, 7, 1, T_TIME + 6, cmd), served);
    assert_false(sm_apply_blocked(t.sm, &block_ms));
    assert_int_equal(sm_digest(t.sm), digest);
    /* Without BLOCK nothing to deliver is a kept null reply; BLOCK 0 waits without timeout;
     * history reads and errors never block. */
    t_apply(&t, T_TIME + 7, "xreadgroup group g c streams s >");
    assert_string_equal(t_apply_as(&t, 8, 1, T_TIME + 8, "xreadgroup group g c streams s >"),
                        "*-1\r\n");
    assert_false(sm_apply_blocked(t.sm, &block_ms));
    assert_string_equal(
        t_apply_as(&t, 8, 2, T_TIME + 9, "xreadgroup group g c block 0 streams s >"), "*-1\r\n");
    assert_true(sm_apply_blocked(t.sm, &block_ms));
    assert_int_equal(block_ms, 0);
    t_apply(&t, T_TIME + 10, "xreadgroup group g c block 10 streams s 9-0");
    assert_false(sm_apply_blocked(t.sm, &block_ms));
    t_apply(&t, T_TIME + 11, "xreadgroup group nogroup c block 10 streams s >");
    assert_false(sm_apply_blocked(t.sm, &block_ms));
    t_fini(&t);
}

static enum sm_wake wake(struct t_sm *t, const char *line, char *out, size_t cap)
{
    struct t_cmd c;
    t_split(&c, line);
    struct reply r;
    reply_init(&r, 4096);
    enum sm_wake w = sm_xreadgroup_wake(t->sm, 0, c.argc, c.argv, c.argl, &r);
    assert_true(r.len < cap);
    if (r.len > 0) {
        memcpy(out, r.buf, r.len);
    }
    out[r.len] = '\0';
    reply_free(&r);
    return w;
}

/* What the node does with a blocked XREADGROUP after writes: wait, propose it again, or
 * answer Redis 7.0's errors for a deleted key or group (captured from redis-server 7.0.15
 * with a blocked redis-cli). */
static void test_blocked_xreadgroup_wake(void **state)
{
    (void)state;
    struct t_sm t;
    t_init(&t);
    char out[256];
    const char *cmd = "xreadgroup group g c count 5 block 100 streams s1 s2 > >";
    t_apply(&t, T_TIME, "xgroup create s1 g $ mkstream");
    t_apply(&t, T_TIME, "xgroup create s2 g $ mkstream");
    assert_int_equal(wake(&t, cmd, out, sizeof(out)), SM_WAKE_WAIT);
    assert_string_equal(out, "");
    t_apply(&t, T_TIME, "xadd s2 1-0 a 1");
    assert_int_equal(wake(&t, cmd, out, sizeof(out)), SM_WAKE_PROPOSE);
    t_apply(&t, T_TIME, "xreadgroup group g other streams s2 >");
    assert_int_equal(wake(&t, cmd, out, sizeof(out)), SM_WAKE_WAIT); /* taken by another */
    t_apply(&t, T_TIME, "xgroup destroy s2 g");
    assert_int_equal(wake(&t, cmd, out, sizeof(out)), SM_WAKE_REPLIED);
    assert_string_equal(
        out, "-NOGROUP the consumer group this client was blocked on no longer exists\r\n");
    t_apply(&t, T_TIME, "del s1");
    assert_int_equal(wake(&t, cmd, out, sizeof(out)), SM_WAKE_REPLIED);
    assert_string_equal(out, "-UNBLOCKED the stream key no longer exists\r\n");
    t_apply(&t, T_TIME, "set s1 x");
    assert_int_equal(wake(&t, cmd, out, sizeof(out)), SM_WAKE_REPLIED);
    assert_string_equal(out, "-UNBLOCKED the stream key no longer exists\r\n");
    t_fini(&t);
}

/* A group's PEL is bounded: XREADGROUP delivers no more new entries than there is room for
 * (NOACK needs none), with no room it is refused, XCLAIM FORCE past it is refused; a refused
 * command changes nothing. */
static void test_pel_limit(void **state)
{
    (void)state;
    struct sm_limits l;
    sm_limits_default(&l);
    assert_int_equal(l.pel_max, CG_PEL_MAX);
    l.pel_max = 3;
    struct t_sm t;
    t_init_limits(&t, &l);
    for (int i = 1; i <= 6; i++) {
        char line[64];
        snprintf(line, sizeof(line), "xadd s %d-0 f %d", i, i);
        t_apply(&t, T_TIME, line);
    }
    t_apply(&t, T_TIME, "xgroup create s g 0");
    const char *full = "-ERR too many pending entries in the consumer group (limit 3)\r\n";
    assert_string_equal(
        t_apply(&t, T_TIME, "xreadgroup group g c count 2 streams s >"),
        "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\n1\r\n"
        "*2\r\n$3\r\n2-0\r\n*2\r\n$1\r\nf\r\n$1\r\n2\r\n");
    /* Room for one: one delivered although more were asked for. */
    assert_string_equal(
        t_apply(&t, T_TIME, "xreadgroup group g c streams s >"),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n3-0\r\n*2\r\n$1\r\nf\r\n$1\r\n3\r\n");
    uint64_t digest = sm_digest(t.sm);
    assert_string_equal(t_apply(&t, T_TIME, "xreadgroup group g c streams s >"), full);
    assert_string_equal(t_apply(&t, T_TIME, "xreadgroup group g d block 10 streams s >"), full);
    assert_string_equal(t_apply(&t, T_TIME, "xclaim s g c 0 5-0 force"), full);
    assert_int_equal(sm_digest(t.sm), digest);
    /* Claiming what is pending needs no room; NOACK neither. */
    assert_string_equal(t_apply(&t, T_TIME, "xclaim s g d 0 1-0 justid"), "*1\r\n$3\r\n1-0\r\n");
    assert_string_equal(
        t_apply(&t, T_TIME, "xreadgroup group g c noack count 1 streams s >"),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n4-0\r\n*2\r\n$1\r\nf\r\n$1\r\n4\r\n");
    assert_string_equal(t_read(&t, 0, "xpending s g"),
                        "*4\r\n:3\r\n$3\r\n1-0\r\n$3\r\n3-0\r\n*2\r\n*2\r\n$1\r\nc\r\n$1\r\n2\r\n"
                        "*2\r\n$1\r\nd\r\n$1\r\n1\r\n");
    /* Acknowledging makes room. */
    assert_string_equal(t_apply(&t, T_TIME, "xack s g 1-0 2-0"), ":2\r\n");
    assert_string_equal(t_apply(&t, T_TIME, "xclaim s g c 0 5-0 force justid"),
                        "*1\r\n$3\r\n5-0\r\n");
    assert_string_equal(t_apply(&t, T_TIME, "xclaim s g c 0 6-0 force justid"),
                        "*1\r\n$3\r\n6-0\r\n");
    assert_string_equal(t_apply(&t, T_TIME, "xclaim s g c 0 6-0 force justid"),
                        "*1\r\n$3\r\n6-0\r\n"); /* already pending: no room needed */
    assert_string_equal(t_read(&t, 0, "xpending s g"),
                        "*4\r\n:3\r\n$3\r\n3-0\r\n$3\r\n6-0\r\n*1\r\n*2\r\n$1\r\nc\r\n$1\r\n3\r\n");
    t_fini(&t);
}

/* ---- limits (ringraft's; Redis has none) ------------------------------------------------- */

static void test_limits_refuse_and_change_nothing(void **state)
{
    (void)state;
    struct t_sm t;
    t_init(&t);
    static char line[T_LINE_MAX];
    char name[CG_NAME_BYTES_MAX + 2];
    memset(name, 'n', sizeof(name));
    name[CG_NAME_BYTES_MAX + 1] = '\0'; /* one byte over */
    t_apply(&t, T_TIME, "xadd s 1-0 a 1");
    t_apply(&t, T_TIME, "xadd s 2-0 b 2");
    snprintf(line, sizeof(line), "xgroup create s %s 0", name);
    assert_string_equal(t_apply(&t, T_TIME, line),
                        "-ERR consumer group name too long (limit 512 bytes)\r\n");
    t_apply(&t, T_TIME, "xgroup create s g 0");
    uint64_t before = sm_digest(t.sm);
    snprintf(line, sizeof(line), "xgroup createconsumer s g %s", name);
    assert_string_equal(t_apply(&t, T_TIME, line),
                        "-ERR consumer name too long (limit 512 bytes)\r\n");
    snprintf(line, sizeof(line), "xreadgroup group g %s streams s >", name);
    assert_string_equal(t_apply(&t, T_TIME, line),
                        "-ERR consumer name too long (limit 512 bytes)\r\n");
    assert_int_equal(sm_digest(t.sm), before); /* nothing delivered, last ID unchanged */
    /* A name of exactly the limit is fine. */
    name[CG_NAME_BYTES_MAX] = '\0';
    snprintf(line, sizeof(line), "xgroup createconsumer s g %s", name);
    assert_string_equal(t_apply(&t, T_TIME, line), ":1\r\n");
    /* Consumers per group. */
    for (unsigned i = 1; i < CG_CONSUMERS_MAX; i++) {
        snprintf(line, sizeof(line), "xgroup createconsumer s g c%u", i);
        assert_string_equal(t_apply(&t, T_TIME, line), ":1\r\n");
    }
    before = sm_digest(t.sm);
    const char *too_many = "-ERR too many consumers in the consumer group (limit 16384)\r\n";
    assert_string_equal(t_apply(&t, T_TIME, "xgroup createconsumer s g one-more"), too_many);
    assert_string_equal(t_apply(&t, T_TIME, "xreadgroup group g one-more streams s >"), too_many);
    assert_string_equal(t_apply(&t, T_TIME, "xclaim s g one-more 0 1-0 force"), too_many);
    assert_int_equal(sm_digest(t.sm), before);
    /* An existing consumer still works; a claim of nothing creates nobody. */
    assert_string_equal(
        t_apply(&t, T_TIME, "xreadgroup group g c7 count 1 streams s >"),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\na\r\n$1\r\n1\r\n");
    assert_string_equal(t_apply(&t, T_TIME, "xclaim s g one-more 999999 1-0"), "*0\r\n");
    assert_string_equal(t_apply(&t, T_TIME, "xautoclaim s g one-more 999999 0"),
                        "*3\r\n$3\r\n0-0\r\n*0\r\n*0\r\n");
    assert_string_equal(t_apply(&t, T_TIME, "xautoclaim s g one-more 0 0"), too_many);
    /* Groups per stream. */
    for (unsigned i = 1; i < CG_GROUPS_MAX; i++) {
        snprintf(line, sizeof(line), "xgroup create s g%u $", i);
        assert_string_equal(t_apply(&t, T_TIME, line), "+OK\r\n");
    }
    assert_string_equal(t_apply(&t, T_TIME, "xgroup create s one-more 0"),
                        "-ERR too many consumer groups for the stream (limit 1024)\r\n");
    assert_string_equal(t_apply(&t, T_TIME, "xgroup create s g 0"),
                        "-BUSYGROUP Consumer Group name already exists\r\n");
    assert_string_equal(t_apply(&t, T_TIME, "xgroup destroy s g5"), ":1\r\n");
    assert_string_equal(t_apply(&t, T_TIME, "xgroup create s one-more 0"), "+OK\r\n");
    t_fini(&t);
}

/* ---- determinism -------------------------------------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* One random consumer group command over two streams, two groups, three consumers. */
static void random_command(uint64_t *seed, uint64_t *next_id, char *line, size_t cap)
{
    const char *key = rnd(seed) % 2 ? "a{t}" : "b{t}";
    const char *group = rnd(seed) % 2 ? "g1" : "g2";
    unsigned consumer = (unsigned)(rnd(seed) % 3);
    unsigned id = (unsigned)(rnd(seed) % (*next_id + 2));
    const char *min_idle = rnd(seed) % 3 == 0 ? "5000" : "0";
    switch (rnd(seed) % 14) {
    case 0:
    case 1:
        snprintf(line, cap, "xadd %s %llu-0 f %llu", key, (unsigned long long)*next_id,
                 (unsigned long long)*next_id);
        (*next_id)++;
        return;
    case 2:
        snprintf(line, cap, "xgroup create %s %s %u mkstream", key, group, id);
        return;
    case 3:
        snprintf(line, cap, "xgroup setid %s %s %u", key, group, id);
        return;
    case 4:
    case 5:
        snprintf(line, cap, "xreadgroup group %s c%u count %u streams %s >", group, consumer,
                 1 + id % 3, key);
        return;
    case 6:
        snprintf(line, cap, "xreadgroup group %s c%u streams %s %u", group, consumer, key, id);
        return;
    case 7:
        snprintf(line, cap, "xack %s %s %u %u", key, group, id, id + 1);
        return;
    case 8:
        snprintf(line, cap, "xclaim %s %s c%u %s %u %u idle 3000", key, group, consumer, min_idle,
                 id, id + 2);
        return;
    case 9:
        snprintf(line, cap, "xclaim %s %s c%u 0 %u force justid", key, group, consumer, id);
        return;
    case 10:
        snprintf(line, cap, "xautoclaim %s %s c%u %s %u count 2", key, group, consumer, min_idle,
                 id);
        return;
    case 11:
        snprintf(line, cap, "xdel %s %u", key, id);
        return;
    case 12:
        snprintf(line, cap, "xgroup delconsumer %s %s c%u", key, group, consumer);
        return;
    default:
        snprintf(line, cap, "xtrim %s maxlen 4", key);
        return;
    }
}

static void feed_random(struct t_sm *t, uint64_t seed, int n, int64_t t0, uint64_t *next_id)
{
    char line[256];
    for (int i = 0; i < n; i++) {
        random_command(&seed, next_id, line, sizeof(line));
        t_apply(t, t0 + i * 700, line);
    }
}

/* The reads whose replies must agree between two state machines in the same state. */
static const char *const probe_reads[] = {
    "xinfo stream a{t} full",  "xinfo stream b{t} full",  "xinfo groups a{t}",
    "xinfo groups b{t}",       "xpending a{t} g1",        "xpending b{t} g2 - + 100",
    "xinfo consumers a{t} g1", "xinfo consumers b{t} g2",
};

static void assert_same_reads(struct t_sm *a, struct t_sm *b)
{
    static char ra[T_REPLY_MAX + 1];
    for (size_t i = 0; i < sizeof(probe_reads) / sizeof(probe_reads[0]); i++) {
        snprintf(ra, sizeof(ra), "%s", t_read(a, 0, probe_reads[i]));
        assert_string_equal(t_read(b, 0, probe_reads[i]), ra);
    }
}

static void test_same_entries_same_digest(void **state)
{
    (void)state;
    struct t_sm a;
    struct t_sm b;
    t_init(&a);
    t_init(&b);
    uint64_t next_a = 1;
    uint64_t next_b = 1;
    feed_random(&a, 42, 3000, T_TIME, &next_a);
    feed_random(&b, 42, 3000, T_TIME, &next_b);
    assert_int_equal(sm_digest(a.sm), sm_digest(b.sm));
    assert_same_reads(&a, &b);
    /* Any difference in group state shows in the digest: one more delivery count. */
    t_apply(&a, T_TIME + 3000 * 700, "xadd a{t} 999999-0 f v");
    t_apply(&b, T_TIME + 3000 * 700, "xadd a{t} 999999-0 f v");
    t_apply(&a, T_TIME + 3000 * 700, "xgroup create a{t} dg 0");
    t_apply(&b, T_TIME + 3000 * 700, "xgroup create a{t} dg 0");
    t_apply(&a, T_TIME + 3000 * 700, "xreadgroup group dg c count 1 streams a{t} >");
    t_apply(&b, T_TIME + 3000 * 700, "xreadgroup group dg c count 1 streams a{t} >");
    assert_int_equal(sm_digest(a.sm), sm_digest(b.sm));
    t_apply(&b, T_TIME + 3000 * 700, "xreadgroup group dg c streams a{t} 0");
    assert_int_not_equal(sm_digest(a.sm), sm_digest(b.sm));
    t_fini(&a);
    t_fini(&b);
}

/* Equal states built in different orders have equal digests. */
static void test_digest_ignores_creation_order(void **state)
{
    (void)state;
    struct t_sm a;
    struct t_sm b;
    t_init(&a);
    t_init(&b);
    static const char *const order_a[] = {
        "xgroup create s g1 0 mkstream",    "xgroup create s g2 0",
        "xgroup createconsumer s g1 alice", "xgroup createconsumer s g1 bob",
        "xgroup createconsumer s g2 carol",
    };
    static const char *const order_b[] = {
        "xgroup create s g2 0 mkstream",    "xgroup create s g1 0",
        "xgroup createconsumer s g2 carol", "xgroup createconsumer s g1 bob",
        "xgroup createconsumer s g1 alice",
    };
    for (size_t i = 0; i < 5; i++) {
        t_apply(&a, T_TIME, order_a[i]);
        t_apply(&b, T_TIME, order_b[i]);
    }
    assert_int_equal(sm_digest(a.sm), sm_digest(b.sm));
    t_fini(&a);
    t_fini(&b);
}

/* ---- snapshots ------------------------------------------------------------------------------ */

static void snapshot_into(struct t_sm *from, struct t_sm *to)
{
    struct reply snap;
    reply_init(&snap, (size_t)1 << 30);
    assert_int_equal(sm_serialize(from->sm, &snap), 0);
    assert_int_equal(sm_load(to->sm, snap.buf, snap.len), 0);
    reply_free(&snap);
}

static void test_snapshot_round_trip(void **state)
{
    (void)state;
    struct t_sm a;
    struct t_sm b;
    t_init(&a);
    t_init(&b);
    uint64_t next = 1;
    feed_random(&a, 7, 2500, T_TIME, &next);
    /* Make sure there is a lot to carry: pending entries of deleted entries, NOACK readers,
     * unknown read counters, empty consumers. */
    t_apply(&a, T_TIME + 2000000, "xgroup create a{t} big 0 mkstream");
    t_apply(&a, T_TIME + 2000000, "xreadgroup group big r1 count 5 streams a{t} >");
    t_apply(&a, T_TIME + 2000000, "xreadgroup group big r2 noack count 5 streams a{t} >");
    t_apply(&a, T_TIME + 2000000, "xgroup createconsumer a{t} big idle");
    t_apply(&a, T_TIME + 2000000, "xgroup setid a{t} big 3");
    snapshot_into(&a, &b);
    assert_int_equal(sm_digest(a.sm), sm_digest(b.sm));
    assert_same_reads(&a, &b);
    assert_string_equal(t_read(&b, 0, "xinfo groups a{t}"), t_read(&a, 0, "xinfo groups a{t}"));
    /* Both go on identically. */
    uint64_t next_a = next;
    uint64_t next_b = next;
    char line[256];
    uint64_t seed_a = 99;
    uint64_t seed_b = 99;
    static char ra[T_REPLY_MAX + 1];
    for (int i = 0; i < 500; i++) {
        random_command(&seed_a, &next_a, line, sizeof(line));
        snprintf(ra, sizeof(ra), "%s", t_apply(&a, T_TIME + 3000000 + i, line));
        random_command(&seed_b, &next_b, line, sizeof(line));
        assert_string_equal(t_apply(&b, T_TIME + 3000000 + i, line), ra);
    }
    assert_int_equal(sm_digest(a.sm), sm_digest(b.sm));
    assert_same_reads(&a, &b);
    t_fini(&a);
    t_fini(&b);
}

static void put_blob(struct reply *out, const char *s)
{
    util_put_blob(out, s, strlen(s));
}

/* An image of version 3 (streams in format 1, without groups): one stream "s" with the
 * entries 1-0 and 2-0, `added` entries ever added; `version` and `stream_version` as given
 * (3 and 1 for a valid one). */
static void v3_image(struct reply *img, uint64_t added, uint8_t version, uint8_t stream_version)
{
    reply_reset(img);
    util_put_u8(img, 1);                /* head */
    util_put_u64(img, 0x4d53525252uLL); /* magic */
    util_put_u8(img, version);
    util_put_u64(img, 7); /* applied index */
    util_put_u64(img, (uint64_t)T_TIME);
    util_put_u8(img, 2); /* a key */
    put_blob(img, "s");
    util_put_u8(img, 2); /* a stream */
    util_put_u8(img, 0);
    util_put_u64(img, 0);
    util_put_u8(img, stream_version);
    util_put_u64(img, 2); /* last ID 2-0 */
    util_put_u64(img, 0);
    util_put_u64(img, added);
    util_put_u64(img, 2); /* entries */
    for (uint64_t ms = 1; ms <= 2; ms++) {
        util_put_u64(img, ms);
        util_put_u64(img, 0);
        util_put_u32(img, 2);
        util_put_u32(img, 10); /* data: blob "f", blob "v" */
        put_blob(img, "f");
        put_blob(img, "v");
    }
    util_put_u8(img, 4);  /* end */
    util_put_u64(img, 1); /* one key */
    util_put_u32(img, 0); /* no sessions */
    util_put_u64(img, XXH3_64bits(img->buf, img->len));
}

/* The previous image version (3: streams in format 1, no groups) still loads, whole or fed
 * to a streaming loader byte by byte; a stream format that does not match the image's
 * version is corrupt, another version refused. */
static void test_previous_snapshot_format_loads(void **state)
{
    (void)state;
    struct reply img;
    reply_init(&img, 1u << 20);
    v3_image(&img, 2, 3, 1);
    struct t_sm t;
    t_init(&t);
    assert_int_equal(sm_load(t.sm, img.buf, img.len), 0);
    assert_int_equal(sm_applied_index(t.sm), 7);
    assert_string_equal(t_read(&t, 0, "xinfo groups s"), "*0\r\n");
    assert_string_equal(t_apply(&t, T_TIME, "xgroup create s g 0"), "+OK\r\n");
    assert_string_equal(
        t_apply(&t, T_TIME, "xreadgroup group g c count 1 streams s >"),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n1-0\r\n*2\r\n$1\r\nf\r\n$1\r\nv\r\n");
    uint64_t with_group = sm_digest(t.sm);
    /* Byte by byte through a loader. */
    struct sm_loader *ld;
    assert_int_equal(sm_loader_new(&ld, NULL), 0);
    for (size_t i = 0; i < img.len; i++) {
        assert_int_equal(sm_loader_feed(ld, img.buf + i, 1), 0);
    }
    assert_int_equal(sm_loader_finish(ld, t.sm), 0);
    sm_loader_free(ld);
    assert_int_equal(sm_applied_index(t.sm), 7);
    assert_string_equal(t_read(&t, 0, "xinfo groups s"), "*0\r\n");
    assert_true(sm_digest(t.sm) != with_group);
    uint64_t loaded = sm_digest(t.sm);
    /* Streams in format 2 belong to version 4 images and format 1 to version 3. */
    v3_image(&img, 2, 3, 2);
    assert_int_equal(sm_load(t.sm, img.buf, img.len), RR_ECORRUPT);
    v3_image(&img, 2, 4, 1);
    assert_int_equal(sm_load(t.sm, img.buf, img.len), RR_ECORRUPT);
    /* Version 2 (counts up front, never on disk) and 5 are refused by version. */
    v3_image(&img, 2, 2, 1);
    assert_int_equal(sm_load(t.sm, img.buf, img.len), RR_EBADVERSION);
    v3_image(&img, 2, 5, 1);
    assert_int_equal(sm_load(t.sm, img.buf, img.len), RR_EBADVERSION);
    /* Fewer entries ever added than the stream holds: corrupt. */
    v3_image(&img, 1, 3, 1);
    assert_int_equal(sm_load(t.sm, img.buf, img.len), RR_ECORRUPT);
    assert_int_equal(sm_digest(t.sm), loaded);
    reply_free(&img);
    t_fini(&t);
}

/* A stream 1-0, 2-0, 3-0 (last ID 3-0, 3 added) and its extension (stream.c): the groups as
 * the caller writes them. */
static struct stream *three_entries(void)
{
    struct stream *s = stream_create();
    assert_non_null(s);
    const uint8_t *argv[2] = {(const uint8_t *)"f", (const uint8_t *)"v"};
    uint32_t argl[2] = {1, 1};
    for (uint64_t ms = 1; ms <= 3; ms++) {
        assert_int_equal(stream_append(s, (struct stream_id){ms, 0}, 2, argv, argl, 0, NULL), 0);
    }
    return s;
}

struct ext_nack {
    uint64_t ms;
    uint64_t seq;
};

/* ext: max deleted 0-0, then groups; each group: name, last 3-0, read counter, consumers
 * with their pending IDs. */
static void put_group(struct reply *x, const char *name, int64_t entries_read)
{
    put_blob(x, name);
    util_put_u64(x, 3);
    util_put_u64(x, 0);
    util_put_u64(x, (uint64_t)entries_read);
}

static void put_consumer(struct reply *x, const char *name, const struct ext_nack *ids, uint64_t n)
{
    put_blob(x, name);
    util_put_u64(x, 1234); /* seen time */
    util_put_u64(x, n);
    for (uint64_t i = 0; i < n; i++) {
        util_put_u64(x, ids[i].ms);
        util_put_u64(x, ids[i].seq);
        util_put_u64(x, 1000); /* delivery time */
        util_put_u64(x, 1);    /* delivery count */
    }
}

static int load_ext(struct reply *x)
{
    struct stream *s = three_entries();
    int rc = stream_ext_load(s, x->buf, x->len);
    stream_destroy(s);
    reply_reset(x);
    return rc;
}

/* A valid extension loads; each broken invariant is refused (RR_ECORRUPT), and so is every
 * truncation. */
static void test_corrupt_group_data_is_refused(void **state)
{
    (void)state;
    struct reply x;
    reply_init(&x, 1u << 20);
    const struct ext_nack one[] = {{1, 0}};
    const struct ext_nack two[] = {{2, 0}, {3, 0}};
    /* Valid: two groups, the first with two consumers owning 1-0 and 2-0, 3-0. */
    util_put_u64(&x, 0);
    util_put_u64(&x, 0);
    util_put_u32(&x, 2);
    put_group(&x, "g1", -1);
    util_put_u32(&x, 2);
    put_consumer(&x, "alice", one, 1);
    put_consumer(&x, "bob", two, 2);
    put_group(&x, "g2", 3);
    util_put_u32(&x, 0);
    uint8_t valid[512];
    size_t valid_len = x.len;
    memcpy(valid, x.buf, x.len);
    assert_int_equal(load_ext(&x), 0);
    /* Every truncation, and a trailing byte. */
    for (size_t cut = 0; cut < valid_len; cut++) {
        reply_raw(&x, valid, cut);
        assert_int_equal(load_ext(&x), RR_ECORRUPT);
    }
    reply_raw(&x, valid, valid_len);
    util_put_u8(&x, 0);
    assert_int_equal(load_ext(&x), RR_ECORRUPT);

    struct {
        const char *what;
        const char *g1;
        const char *g2;
        int64_t entries_read;
        const char *c1;
        const char *c2;
        struct ext_nack a[2];
        struct ext_nack b[2];
        uint64_t md;
    } bad[] = {
        {"groups out of order", "g2", "g1", -1, "alice", "bob", {{1, 0}}, {{2, 0}}, 0},
        {"duplicate group", "g1", "g1", -1, "alice", "bob", {{1, 0}}, {{2, 0}}, 0},
        {"consumers out of order", "g1", "g2", -1, "bob", "alice", {{1, 0}}, {{2, 0}}, 0},
        {"duplicate consumer", "g1", "g2", -1, "bob", "bob", {{1, 0}}, {{2, 0}}, 0},
        {"read counter below -1", "g1", "g2", -2, "alice", "bob", {{1, 0}}, {{2, 0}}, 0},
        {"pending ID after the last ID", "g1", "g2", -1, "alice", "bob", {{1, 0}}, {{3, 1}}, 0},
        {"pending ID 0-0", "g1", "g2", -1, "alice", "bob", {{0, 0}}, {{2, 0}}, 0},
        {"pending IDs out of order", "g1", "g2", -1, "alice", "bob", {{2, 0}, {1, 0}}, {{3, 0}}, 0},
        {"an ID owned twice", "g1", "g2", -1, "alice", "bob", {{1, 0}}, {{1, 0}}, 0},
        {"max deleted after the last ID", "g1", "g2", -1, "alice", "bob", {{1, 0}}, {{2, 0}}, 4},
        {"max deleted is an entry", "g1", "g2", -1, "alice", "bob", {{1, 0}}, {{2, 0}}, 2},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        util_put_u64(&x, bad[i].md);
        util_put_u64(&x, 0);
        util_put_u32(&x, 2);
        put_group(&x, bad[i].g1, bad[i].entries_read);
        util_put_u32(&x, 2);
        put_consumer(&x, bad[i].c1, bad[i].a, bad[i].a[1].ms != 0 ? 2 : 1);
        put_consumer(&x, bad[i].c2, bad[i].b, 1);
        put_group(&x, bad[i].g2, 0);
        util_put_u32(&x, 0);
        if (load_ext(&x) != RR_ECORRUPT) {
            fail_msg("accepted: %s", bad[i].what);
        }
    }
    /* More pending entries than the stream ever had (3). */
    const struct ext_nack four[] = {{1, 0}, {2, 0}, {3, 0}, {3, 0}};
    util_put_u64(&x, 0);
    util_put_u64(&x, 0);
    util_put_u32(&x, 1);
    put_group(&x, "g", -1);
    util_put_u32(&x, 1);
    put_consumer(&x, "c", four, 4);
    assert_int_equal(load_ext(&x), RR_ECORRUPT);
    /* A name over the limit, counts over the limits. */
    char name[CG_NAME_BYTES_MAX + 2];
    memset(name, 'n', sizeof(name));
    name[CG_NAME_BYTES_MAX + 1] = '\0';
    util_put_u64(&x, 0);
    util_put_u64(&x, 0);
    util_put_u32(&x, 1);
    put_group(&x, name, -1);
    util_put_u32(&x, 0);
    assert_int_equal(load_ext(&x), RR_ECORRUPT);
    util_put_u64(&x, 0);
    util_put_u64(&x, 0);
    util_put_u32(&x, CG_GROUPS_MAX + 1);
    assert_int_equal(load_ext(&x), RR_ECORRUPT);
    util_put_u64(&x, 0);
    util_put_u64(&x, 0);
    util_put_u32(&x, 1);
    put_group(&x, "g", -1);
    util_put_u32(&x, CG_CONSUMERS_MAX + 1);
    assert_int_equal(load_ext(&x), RR_ECORRUPT);
    reply_free(&x);
}

/* Whole snapshots with groups: a flipped byte or any truncation is refused and the state
 * stays as it was. */
static void test_corrupt_snapshot_changes_nothing(void **state)
{
    (void)state;
    struct t_sm a;
    struct t_sm b;
    t_init(&a);
    t_init(&b);
    uint64_t next = 1;
    feed_random(&a, 3, 300, T_TIME, &next);
    t_apply(&b, T_TIME, "xgroup create other g 0 mkstream");
    uint64_t before = sm_digest(b.sm);
    struct reply snap;
    reply_init(&snap, (size_t)1 << 30);
    assert_int_equal(sm_serialize(a.sm, &snap), 0);
    for (size_t cut = 0; cut < snap.len; cut += 3) {
        assert_int_not_equal(sm_load(b.sm, snap.buf, cut), 0);
    }
    snap.buf[snap.len / 2] ^= 0x10;
    assert_int_equal(sm_load(b.sm, snap.buf, snap.len), RR_ECORRUPT);
    assert_int_equal(sm_digest(b.sm), before);
    reply_free(&snap);
    t_fini(&a);
    t_fini(&b);
}

/* ---- the stream's life ----------------------------------------------------------------- */

static void test_groups_go_with_their_stream(void **state)
{
    (void)state;
    struct t_sm t;
    t_init(&t);
    t_apply(&t, T_TIME, "xadd s 1-0 a 1");
    t_apply(&t, T_TIME, "xgroup create s g 0");
    t_apply(&t, T_TIME, "xreadgroup group g c streams s >");
    t_apply(&t, T_TIME, "pexpire s 100");
    assert_string_equal(t_read(&t, 0, "xinfo groups s"),
                        "*1\r\n*12\r\n$4\r\nname\r\n$1\r\ng\r\n$9\r\nconsumers\r\n:1\r\n$7\r\n"
                        "pending\r\n:1\r\n$17\r\nlast-delivered-id\r\n$3\r\n1-0\r\n$12\r\n"
                        "entries-read\r\n:1\r\n$3\r\nlag\r\n:0\r\n");
    /* Expired at the reader's clock for reads, at the entry's clock for writes. */
    assert_string_equal(t_read(&t, T_TIME + 100, "xinfo groups s"), "-ERR no such key\r\n");
    assert_string_equal(t_read(&t, T_TIME + 100, "xpending s g"),
                        "-NOGROUP No such key 's' or consumer group 'g'\r\n");
    assert_string_equal(
        t_apply(&t, T_TIME + 100, "xreadgroup group g c streams s 0"),
        "-NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option\r\n");
    assert_string_equal(t_apply(&t, T_TIME + 100, "xack s g 1-0"), ":0\r\n");
    assert_string_equal(t_apply(&t, T_TIME + 100, "xgroup create s g $ mkstream"), "+OK\r\n");
    assert_string_equal(t_read(&t, 0, "xpending s g"), "*4\r\n:0\r\n$-1\r\n$-1\r\n*-1\r\n");
    assert_string_equal(t_read(&t, 0, "ttl s"), ":-1\r\n");
    t_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xgroup_matches_redis),
        cmocka_unit_test(test_xreadgroup_matches_redis),
        cmocka_unit_test(test_xack_xpending_match_redis),
        cmocka_unit_test(test_xclaim_matches_redis),
        cmocka_unit_test(test_xautoclaim_matches_redis),
        cmocka_unit_test(test_xinfo_matches_redis),
        cmocka_unit_test(test_misc_matches_redis),
        cmocka_unit_test(test_times_come_from_the_log),
        cmocka_unit_test(test_retried_xreadgroup_delivers_once),
        cmocka_unit_test(test_limits_refuse_and_change_nothing),
        cmocka_unit_test(test_blocked_xreadgroup_is_applied_again),
        cmocka_unit_test(test_blocked_xreadgroup_wake),
        cmocka_unit_test(test_pel_limit),
        cmocka_unit_test(test_same_entries_same_digest),
        cmocka_unit_test(test_digest_ignores_creation_order),
        cmocka_unit_test(test_snapshot_round_trip),
        cmocka_unit_test(test_previous_snapshot_format_loads),
        cmocka_unit_test(test_corrupt_group_data_is_refused),
        cmocka_unit_test(test_corrupt_snapshot_changes_nothing),
        cmocka_unit_test(test_groups_go_with_their_stream),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
