/* Node-set encoding tests (io/wire/nodeset.c): the FRAME_NODESET payload round trips and
 * refuses every truncation, the limits and the bad fields docs/wire-format.md lists; hosts
 * that a DIR/NODES line could not hold (a space, a newline, a NUL, a control character) are
 * refused by every decoder (and by the address parser `nodes` and RAFT ADDNODE use:
 * test_config); the node-set entry and the DIR/NODES line round trip. */
/* cmocka.h needs these four first, in this order. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdio.h>
#include <string.h>

#include "io/service/sm.h"
#include "io/wire/le.h"
#include "io/wire/nodeset.h"

static struct node_set three(void)
{
    struct node_set s = {.index = 42, .count = 3};
    for (uint32_t i = 0; i < 3; i++) {
        s.nodes[i] = (struct node_address){
            .id = i + 1, .port = (uint16_t)(7001 + i), .peer_port = (uint16_t)(17001 + i)};
        snprintf(s.nodes[i].host, sizeof(s.nodes[i].host), "node%u.example", i + 1);
    }
    return s;
}

/* A one-node payload with the given host bytes; its length. */
static size_t one_node(uint8_t *b, const char *host, size_t hl)
{
    le_put_u64(b, 7);
    le_put_u32(b + 8, 1);
    le_put_u32(b + 12, 2);
    b[16] = 0x59, b[17] = 0x1b; /* 7001 */
    b[18] = 0x69, b[19] = 0x42; /* 17001 */
    b[20] = (uint8_t)hl;
    memcpy(b + 21, host, hl);
    return 21 + hl;
}

static void test_set_round_trip(void **state)
{
    (void)state;
    struct node_set s = three(), back;
    uint8_t b[NODESET_BYTES_MAX];
    size_t len = nodeset_encode(&s, b, sizeof(b));
    assert_int_equal(len, 12 + 3 * (9 + 13));
    assert_int_equal(nodeset_decode(b, len, &back), 0);
    assert_int_equal(back.index, 42);
    assert_int_equal(back.count, 3);
    assert_null(back.older);
    for (uint32_t i = 0; i < 3; i++) {
        assert_memory_equal(&back.nodes[i], &s.nodes[i], sizeof(s.nodes[i]));
    }
    for (size_t cut = 0; cut < len; cut++) {
        assert_int_equal(nodeset_decode(b, cut, &back), -1);
    }
    b[len] = 0;
    assert_int_equal(nodeset_decode(b, len + 1, &back), -1);
    assert_int_equal(nodeset_encode(&s, b, len - 1), 0);
}

static void test_set_limits(void **state)
{
    (void)state;
    struct node_set s = {.index = 1, .count = RAFT_MEMBERS_MAX}, back;
    for (uint32_t i = 0; i < RAFT_MEMBERS_MAX; i++) {
        s.nodes[i] = (struct node_address){.id = RAFT_NODE_ID_MAX - i, .port = 1, .peer_port = 2};
        memset(s.nodes[i].host, 'h', NODE_HOST_MAX - 1);
    }
    uint8_t b[NODESET_BYTES_MAX + 1];
    size_t len = nodeset_encode(&s, b, sizeof(b));
    assert_int_equal(len, NODESET_BYTES_MAX);
    assert_int_equal(nodeset_decode(b, len, &back), 0);
    assert_int_equal(back.count, RAFT_MEMBERS_MAX);
    le_put_u32(b + 8, RAFT_MEMBERS_MAX + 1); /* a count above the maximum */
    assert_int_equal(nodeset_decode(b, len, &back), -1);

    size_t n = one_node(b, "h", 1);
    assert_int_equal(nodeset_decode(b, n, &back), 0);
    le_put_u32(b + 12, 0);
    assert_int_equal(nodeset_decode(b, n, &back), -1);
    le_put_u32(b + 12, RAFT_NODE_ID_MAX + 1);
    assert_int_equal(nodeset_decode(b, n, &back), -1);
    one_node(b, "h", 1);
    b[16] = b[17] = 0; /* client port 0 */
    assert_int_equal(nodeset_decode(b, n, &back), -1);
    one_node(b, "h", 1);
    b[18] = b[19] = 0; /* peer port 0 */
    assert_int_equal(nodeset_decode(b, n, &back), -1);
    char host[NODE_HOST_MAX];
    memset(host, 'h', sizeof(host));
    n = one_node(b, host, NODE_HOST_MAX - 1);
    assert_int_equal(nodeset_decode(b, n, &back), 0);
    n = one_node(b, host, NODE_HOST_MAX);
    assert_int_equal(nodeset_decode(b, n, &back), -1);
    n = one_node(b, "", 0);
    assert_int_equal(nodeset_decode(b, n, &back), -1);
    /* A repeated id. */
    struct node_set twice = three();
    twice.nodes[2].id = 1;
    len = nodeset_encode(&twice, b, sizeof(b));
    assert_int_equal(nodeset_decode(b, len, &back), -1);
}

/* A host with a byte a DIR/NODES line cannot hold as one word decoded before: the node
 * adopted the set, wrote "node 2 a b 7001 17001" to DIR/NODES and refused the file at its
 * next start (found by fuzz_nodeset). */
static void test_hosts_a_line_cannot_hold_are_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {"a b", "a\nb", "a\tb", "a\rb", "\x7f", "a\x80", "\x01"};
    uint8_t b[NODESET_BYTES_MAX];
    struct node_set back;
    struct node_address a;
    uint8_t op;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        size_t n = one_node(b, bad[i], strlen(bad[i]));
        assert_int_equal(nodeset_decode(b, n, &back), -1);
        assert_false(nodeset_host_valid(bad[i], strlen(bad[i])));
        struct node_address entry = {.id = 2, .port = 7001, .peer_port = 17001};
        snprintf(entry.host, sizeof(entry.host), "%s", bad[i]);
        n = nodeset_entry_encode(NODESET_ADD, &entry, b, sizeof(b));
        assert_int_equal(nodeset_entry_decode(b, n, &op, &a), -1);
    }
    size_t n = one_node(b, "a\0b", 3); /* would decode as "a" and re-encode shorter */
    assert_int_equal(nodeset_decode(b, n, &back), -1);
    n = one_node(b, "[fe80::1%eth0]", 14);
    assert_int_equal(nodeset_decode(b, n, &back), 0);
    assert_string_equal(back.nodes[0].host, "[fe80::1%eth0]");
}

static void test_entry_round_trip(void **state)
{
    (void)state;
    struct node_set s = three();
    uint8_t b[NODESET_ENTRY_HEADER_BYTES + NODE_HOST_MAX];
    struct node_address a;
    uint8_t op = 0;
    size_t n = nodeset_entry_encode(NODESET_ADD, &s.nodes[1], b, sizeof(b));
    assert_int_equal(n, 11 + 13);
    assert_true(nodeset_entry_is(b, n));
    assert_int_equal(nodeset_entry_decode(b, n, &op, &a), 0);
    assert_int_equal(op, NODESET_ADD);
    assert_memory_equal(&a, &s.nodes[1], sizeof(a));
    assert_int_equal(nodeset_entry_decode(b, n - 1, &op, &a), -1);
    b[1] = 3;
    assert_int_equal(nodeset_entry_decode(b, n, &op, &a), -1);
    /* A removal of a node the proposer did not know: no address. */
    struct node_address id_only = {.id = 9};
    n = nodeset_entry_encode(NODESET_REMOVE, &id_only, b, sizeof(b));
    assert_int_equal(nodeset_entry_decode(b, n, &op, &a), 0);
    assert_int_equal(op, NODESET_REMOVE);
    assert_int_equal(a.id, 9);
    /* ... which an addition may not be. */
    n = nodeset_entry_encode(NODESET_ADD, &id_only, b, sizeof(b));
    assert_int_equal(nodeset_entry_decode(b, n, &op, &a), -1);
    b[0] = SM_ENTRY_NODESET + 1;
    assert_false(nodeset_entry_is(b, n));
}

static void test_line_round_trip(void **state)
{
    (void)state;
    struct node_set s = three();
    char line[128];
    size_t n = nodeset_line_encode(&s.nodes[2], line, sizeof(line));
    assert_string_equal(line, "node 3 node3.example 7003 17003\n");
    assert_int_equal(n, strlen(line));
    struct node_address a;
    assert_int_equal(nodeset_line_decode(line, &a), 0);
    assert_memory_equal(&a, &s.nodes[2], sizeof(a));
    assert_int_equal(nodeset_line_decode("node 3 node3.example 7003 17003", &a), 0);
    assert_int_equal(nodeset_line_decode("node 3 a b 7003 17003\n", &a), -1);
    assert_int_equal(nodeset_line_decode("node 3 h 7003 17003 x\n", &a), -1);
    assert_int_equal(nodeset_line_decode("node 0 h 7003 17003\n", &a), -1);
    assert_int_equal(nodeset_line_decode("node 3 h 0 17003\n", &a), -1);
    assert_int_equal(nodeset_line_decode("node 3 h 7003 65536\n", &a), -1);
    assert_int_equal(nodeset_line_encode(&s.nodes[2], line, 10), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_round_trip),
        cmocka_unit_test(test_set_limits),
        cmocka_unit_test(test_hosts_a_line_cannot_hold_are_refused),
        cmocka_unit_test(test_entry_round_trip),
        cmocka_unit_test(test_line_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
