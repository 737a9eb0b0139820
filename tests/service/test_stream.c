/* Stream commands byte for byte against Redis 7.0.15, automatic IDs from the entries' clock,
 * and stream snapshots. */
#include "tests/service/sm_helpers.h"

/* Verified against redis-server 7.0.15 (tools: a raw RESP client over a unix socket). */
static const struct t_case stream_cases[] = {
    {"xadd s 0-0 a b", "-ERR The ID specified in XADD must be greater than 0-0\r\n"},
    {"xadd s 0-* a b", "$3\r\n0-1\r\n"},
    {"xadd s 5-* a b", "$3\r\n5-0\r\n"},
    {"xadd s 5-* c d", "$3\r\n5-1\r\n"},
    {"xadd s 4 a b",
     "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n"},
    {"xadd s 5 a b",
     "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n"},
    {"xadd s 6-3 f1 v1 f2 v2", "$3\r\n6-3\r\n"},
    {"xadd s maxlen 1 limit 5 * a b",
     "-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n"},
    {"xadd s limit 5 * a b",
     "-ERR syntax error, LIMIT cannot be used without specifying a trimming strategy\r\n"},
    {"xadd s maxlen -1 * a b", "-ERR The MAXLEN argument must be >= 0.\r\n"},
    {"xadd s maxlen 1 minid 1 * a b",
     "-ERR syntax error, MAXLEN and MINID options at the same time are not compatible\r\n"},
    {"xadd s foo a b", "-ERR Invalid stream ID specified as stream command argument\r\n"},
    {"xadd s maxlen x * a b", "-ERR value is not an integer or out of range\r\n"},
    {"xadd s minid - * a b", "-ERR Invalid stream ID specified as stream command argument\r\n"},
    {"xadd s nomkstream * a", "-ERR wrong number of arguments for 'xadd' command\r\n"},
    {"xadd s2 nomkstream * a b", "$-1\r\n"},
    {"exists s2", ":0\r\n"},
    {"xlen s", ":4\r\n"},
    {"xrange s - +", "*4\r\n*2\r\n$3\r\n0-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$3\r\n5-0\r\n*"
                     "2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nc\r\n$1\r\nd\r\n*"
                     "2\r\n$3\r\n6-3\r\n*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n"},
    {"xrange s - + count 2", "*2\r\n*2\r\n$3\r\n0-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$3\r\n5-"
                             "0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"},
    {"xrange s - + count 0", "*-1\r\n"},
    {"xrange s - + count -1", "*-1\r\n"},
    {"xrange s 5 5", "*2\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$3\r\n5-1\r\n*"
                     "2\r\n$1\r\nc\r\n$1\r\nd\r\n"},
    {"xrange s (5-0 +", "*2\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nc\r\n$1\r\nd\r\n*2\r\n$3\r\n6-3\r\n*"
                        "4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n"},
    {"xrange s - (5-1", "*2\r\n*2\r\n$3\r\n0-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$3\r\n5-0\r\n*"
                        "2\r\n$1\r\na\r\n$1\r\nb\r\n"},
    {"xrange s (- +", "-ERR Invalid stream ID specified as stream command argument\r\n"},
    {"xrange s - (0-0", "-ERR invalid end ID for the interval\r\n"},
    {"xrange s (18446744073709551615-18446744073709551615 +",
     "-ERR invalid start ID for the interval\r\n"},
    {"xrange s - + foo 1", "-ERR syntax error\r\n"},
    {"xrange s - + count x", "-ERR value is not an integer or out of range\r\n"},
    {"xrange s 6 1", "*0\r\n"},
    {"xrange nokey - +", "*0\r\n"},
    {"xrevrange s + -",
     "*4\r\n*2\r\n$3\r\n6-3\r\n*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n*2\r\n$3\r\n5-"
     "1\r\n*2\r\n$1\r\nc\r\n$1\r\nd\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$"
     "3\r\n0-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"},
    {"xrevrange s + - count 1",
     "*1\r\n*2\r\n$3\r\n6-3\r\n*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n"},
    {"xrevrange s 5 -",
     "*3\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\nc\r\n$1\r\nd\r\n*2\r\n$3\r\n5-0\r\n*2\r\n$1\r\na\r\n$"
     "1\r\nb\r\n*2\r\n$3\r\n0-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"},
    {"xread count 1 streams s nokey 0 0",
     "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n0-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"},
    {"xread streams s 5-1", "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n6-3\r\n*4\r\n$2\r\nf1\r\n$"
                            "2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n"},
    {"xread streams s $", "*-1\r\n"},
    {"xread streams s 6-3", "*-1\r\n"},
    {"xread count 2 streams s 0",
     "*1\r\n*2\r\n$1\r\ns\r\n*2\r\n*2\r\n$3\r\n0-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$3\r\n5-"
     "0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"},
    {"xread count 0 streams s 6-2", "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n6-3\r\n*4\r\n$"
                                    "2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n"},
    {"xread count -5 streams s 6-2", "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n6-3\r\n*4\r\n$"
                                     "2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n"},
    {"xread streams s s2 0", "-ERR Unbalanced XREAD list of streams: for each stream key an ID or "
                             "'$' must be specified.\r\n"},
    {"xread foo bar streams s 0", "-ERR syntax error\r\n"},
    {"xread count x streams s 0", "-ERR value is not an integer or out of range\r\n"},
    {"xread streams s -", "-ERR Invalid stream ID specified as stream command argument\r\n"},
    {"xread streams s 1-", "-ERR Invalid stream ID specified as stream command argument\r\n"},
    {"xread streams s >", "-ERR The > ID can be specified only when calling XREADGROUP using the "
                          "GROUP <group> <consumer> option.\r\n"},
    {"xread group g c streams s 0",
     "-ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.\r\n"},
    {"xread noack streams s 0",
     "-ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.\r\n"},
    {"xread block x streams s 0", "-ERR timeout is not an integer or out of range\r\n"},
    {"xread block -1 streams s 0", "-ERR timeout is negative\r\n"},
    {"xdel s 5-1 7-0 x", "-ERR Invalid stream ID specified as stream command argument\r\n"},
    {"xdel s 5-1 7-0", ":1\r\n"},
    {"xdel nokey x", ":0\r\n"},
    {"xlen s", ":3\r\n"},
    {"xtrim s", "-ERR wrong number of arguments for 'xtrim' command\r\n"},
    {"xtrim s foo 1", "-ERR syntax error\r\n"},
    {"xtrim s maxlen x", "-ERR value is not an integer or out of range\r\n"},
    {"xtrim nokey foo 1", "-ERR syntax error\r\n"},
    {"xtrim nokey maxlen 1", ":0\r\n"},
    {"xtrim s maxlen = -1", "-ERR The MAXLEN argument must be >= 0.\r\n"},
    {"xtrim s maxlen 10 limit 1",
     "-ERR syntax error, LIMIT cannot be used without the special ~ option\r\n"},
    {"xtrim s minid 6", ":2\r\n"},
    {"xrange s - +",
     "*1\r\n*2\r\n$3\r\n6-3\r\n*4\r\n$2\r\nf1\r\n$2\r\nv1\r\n$2\r\nf2\r\n$2\r\nv2\r\n"},
    {"xtrim s maxlen 0", ":1\r\n"},
    {"xlen s", ":0\r\n"},
    {"exists s", ":1\r\n"},
    {"type s", "+stream\r\n"},
    {"xadd s 6-3 a b",
     "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n"},
    {"xadd s 18446744073709551615-18446744073709551615 a b",
     "$41\r\n18446744073709551615-18446744073709551615\r\n"},
    {"xadd s * a b",
     "-ERR The stream has exhausted the last possible ID, unable to add more items\r\n"},
    {"xadd s 18446744073709551615-* a b",
     "-ERR The stream has exhausted the last possible ID, unable to add more items\r\n"},
    {"set k v", "+OK\r\n"},
    {"xadd k * a b", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
    {"xrange k - +", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
    {"xread streams k 0", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
    {"xlen k", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
    {"xtrim k maxlen 0", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
    {"xdel k 1", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
    {"get s", "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"},
    {"xadd e 1-1 \"\" \"\"", "$3\r\n1-1\r\n"},
    {"xrange e - +", "*1\r\n*2\r\n$3\r\n1-1\r\n*2\r\n$0\r\n\r\n$0\r\n\r\n"},
    {"xadd w \" 5-+1\" a b", "$3\r\n5-1\r\n"},
    {"xrange w - +", "*1\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n"},
    {"xadd w 7-0 a b", "$3\r\n7-0\r\n"},
    {"xadd w 7-* a b", "$3\r\n7-1\r\n"},
    {"xadd w 8 a b", "$3\r\n8-0\r\n"},
    {"xrange w - + COUNT 10",
     "*4\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$3\r\n7-0\r\n*2\r\n$1\r\na\r\n$"
     "1\r\nb\r\n*2\r\n$3\r\n7-1\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$3\r\n8-0\r\n*2\r\n$"
     "1\r\na\r\n$1\r\nb\r\n"},
    {"xadd w MAXLEN = 2 9-0 a b", "$3\r\n9-0\r\n"},
    {"xlen w", ":2\r\n"},
    {"xadd w MINID 9 10-0 a b", "$4\r\n10-0\r\n"},
    {"xrange w - +", "*2\r\n*2\r\n$3\r\n9-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n*2\r\n$4\r\n10-0\r\n*"
                     "2\r\n$1\r\na\r\n$1\r\nb\r\n"},
    {"xadd w NOMKSTREAM 11-0 a b", "$4\r\n11-0\r\n"},
};

static void test_stream_commands_match_redis(void **state)
{
    (void)state;
    struct t_sm t;
    t_init(&t);
    T_RUN(&t, 1000, stream_cases);
    t_fini(&t);
}

/* "*": ms = max(clock, last.ms); seq = last.seq + 1 within the same ms, else 0. */
static void test_auto_ids_follow_entry_clock(void **state)
{
    (void)state;
    struct t_sm t;
    t_init(&t);
    assert_string_equal(t_apply(&t, 1000, "xadd s * a b"), "$6\r\n1000-0\r\n");
    assert_string_equal(t_apply(&t, 1000, "xadd s * a b"), "$6\r\n1000-1\r\n");
    assert_string_equal(t_apply(&t, 999, "xadd s * a b"), "$6\r\n1000-2\r\n"); /* clock kept */
    assert_string_equal(t_apply(&t, 1001, "xadd s * a b"), "$6\r\n1001-0\r\n");
    assert_string_equal(t_apply(&t, 1001, "xadd s 5000-7 a b"), "$6\r\n5000-7\r\n");
    assert_string_equal(t_apply(&t, 1002, "xadd s * a b"), "$6\r\n5000-8\r\n"); /* last.ms wins */
    assert_string_equal(t_apply(&t, 1002, "xadd s 5000-18446744073709551615 a b"),
                        "$25\r\n5000-18446744073709551615\r\n");
    assert_string_equal(
        t_apply(&t, 1002, "xadd s 5000-* a b"),
        "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n");
    assert_string_equal(t_apply(&t, 1002, "xadd s * a b"), "$6\r\n5001-0\r\n");
    /* XREAD with $ sees nothing; BLOCK with nothing to return is refused (for now). */
    assert_string_equal(t_read(&t, 0, "xread streams s $"), "*-1\r\n");
    assert_string_equal(t_read(&t, 0, "xread block 0 streams s $"),
                        "-" SM_XREAD_BLOCK_ERROR "\r\n");
    assert_string_equal(
        t_read(&t, 0, "xread block 0 count 1 streams s 5000-18446744073709551615"),
        "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$6\r\n5001-0\r\n*2\r\n$1\r\na\r\n$1\r\nb\r\n");
    /* Approximate trimming trims exactly here, at most LIMIT entries. */
    assert_string_equal(t_apply(&t, 1003, "xtrim s maxlen ~ 0 limit 2"), ":2\r\n");
    assert_string_equal(t_read(&t, 0, "xlen s"), ":6\r\n");
    assert_string_equal(t_apply(&t, 1003, "xtrim s maxlen ~ 0"), ":6\r\n");
    /* An expired stream is gone for XADD too: a new one starts from the clock. */
    assert_string_equal(t_apply(&t, 1003, "pexpire s 10"), ":1\r\n");
    assert_string_equal(t_apply(&t, 1013, "xadd s * a b"), "$6\r\n1013-0\r\n");
    t_fini(&t);
}

static void test_stream_snapshot_round_trip(void **state)
{
    (void)state;
    struct t_sm a;
    struct t_sm b;
    t_init(&a);
    t_init(&b);
    char line[64];
    for (int i = 0; i < 300; i++) {
        snprintf(line, sizeof(line), "xadd s%d * f%d v%d", i % 3, i, i);
        t_apply(&a, 1000 + i / 7, line);
    }
    t_apply(&a, 2000, "xdel s0 1000-0 1001-1");
    t_apply(&a, 2000, "xtrim s1 maxlen 10");
    struct reply snap;
    reply_init(&snap, (size_t)1 << 30);
    assert_int_equal(sm_serialize(a.sm, &snap), 0);
    assert_int_equal(sm_load(b.sm, snap.buf, snap.len), 0);
    assert_int_equal(sm_digest(a.sm), sm_digest(b.sm));
    static char got[T_REPLY_MAX + 1];
    strcpy(got, t_read(&a, 0, "xrange s1 - +"));
    assert_true(strlen(got) > 100);
    assert_string_equal(t_read(&b, 0, "xrange s1 - +"), got);
    /* The last ID survives even after trimming everything. */
    t_apply(&a, 2000, "xtrim s2 maxlen 0");
    reply_reset(&snap);
    assert_int_equal(sm_serialize(a.sm, &snap), 0);
    assert_int_equal(sm_load(b.sm, snap.buf, snap.len), 0);
    assert_string_equal(
        t_apply(&b, 0, "xadd s2 1-1 a b"),
        "-ERR The ID specified in XADD is equal or smaller than the target stream top item\r\n");
    reply_free(&snap);
    t_fini(&a);
    t_fini(&b);
}

/* XREAD BLOCK through sm_read_wait: entries already there answer at once; otherwise '$' is
 * resolved when the read first runs, so a retry returns what was added after it, and nothing
 * while nothing was; a plain sm_read refuses to block. */
static void test_xread_wait_and_retry(void **state)
{
    (void)state;
    struct t_sm t;
    t_init(&t);
    assert_string_equal(t_apply(&t, 5, "xadd s 5-1 a 1"), "$3\r\n5-1\r\n");
    struct t_cmd c;
    struct sm_xread_wait wait;
    t_split(&c, "xread block 0 streams s 0");
    assert_false(sm_read_wait(t.sm, 0, c.argc, c.argv, c.argl, &wait, &t.r));
    assert_string_equal(t_take(&t), "*1\r\n*2\r\n$1\r\ns\r\n*1\r\n*2\r\n$3\r\n5-1\r\n*2\r\n$1\r\n"
                                    "a\r\n$1\r\n1\r\n");
    t_split(&c, "xread count 1 block 100 streams s nokey $ $");
    assert_true(sm_read_wait(t.sm, 0, c.argc, c.argv, c.argl, &wait, &t.r));
    assert_int_equal(t.r.len, 0);
    assert_int_equal(wait.block_ms, 100);
    assert_int_equal(wait.streams, 2);
    assert_int_equal(wait.count, 1);
    assert_false(sm_xread_retry(t.sm, 0, c.argc, c.argv, c.argl, &wait, &t.r));
    assert_int_equal(t.r.len, 0);
    assert_string_equal(t_apply(&t, 6, "xadd nokey 6-1 b 2"), "$3\r\n6-1\r\n");
    assert_string_equal(t_apply(&t, 6, "xadd nokey 6-2 b 3"), "$3\r\n6-2\r\n");
    assert_true(sm_xread_retry(t.sm, 0, c.argc, c.argv, c.argl, &wait, &t.r));
    /* Only the stream that got entries, COUNT honoured, after the resolved '$' (0-0 for a
     * stream that did not exist). */
    assert_string_equal(t_take(&t), "*1\r\n*2\r\n$5\r\nnokey\r\n*1\r\n*2\r\n$3\r\n6-1\r\n*2\r\n$"
                                    "1\r\nb\r\n$1\r\n2\r\n");
    sm_xread_wait_free(&wait);
    /* Without a wait structure (sm_read), a read that would block is refused. */
    assert_string_equal(t_read(&t, 0, "xread block 10 streams s $"),
                        "-" SM_XREAD_BLOCK_ERROR "\r\n");
    t_fini(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_commands_match_redis),
        cmocka_unit_test(test_auto_ids_follow_entry_clock),
        cmocka_unit_test(test_stream_snapshot_round_trip),
        cmocka_unit_test(test_xread_wait_and_retry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
