/* libFuzzer target: the node set's encodings (io/wire/nodeset.c): the FRAME_NODESET payload
 * a peer sends and worker 0 adopts (docs/wire-format.md "Node sets"), group 0's node-set
 * log entry, and the DIR/NODES line a node writes for each member and reads back at start.
 *
 * Input: the bytes, copied to an exact-size buffer so a read past the end is caught; every
 * input goes to all three decoders (the line decoder gets the bytes up to the first NUL, as
 * a string). Properties checked:
 *   - nodeset_decode accepts exactly what an independent reading of docs/wire-format.md
 *     accepts (count at most RAFT_MEMBERS_MAX, every node inside the payload, ids 1 ..
 *     RAFT_NODE_ID_MAX and distinct, ports not 0, hosts of 1..63 printable non-space ASCII
 *     bytes, no byte after the last node), with the same fields;
 *   - a decoded set re-encodes to exactly the payload; no strict prefix of it decodes, nor
 *     the payload with a byte appended; a too small buffer makes the encoder write nothing;
 *   - every decoded node's DIR/NODES line reads back to the same address (a host a peer
 *     sends must not make the node refuse its own file at the next start);
 *   - nodeset_entry_decode accepts exactly what the entry's layout allows (an addition with
 *     a valid host and ports, a removal with a valid host or none), and an entry it accepts
 *     re-encodes to exactly its bytes; an added address's line reads back the same;
 *   - a line nodeset_line_decode accepts holds a valid address, whose line reads back the
 *     same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "io/service/sm.h"
#include "io/wire/nodeset.h"
#include "tests/fuzz/fuzz.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    fuzz_setup();
    return 0;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

static bool ref_host(const uint8_t *h, size_t len)
{
    if (len < 1 || len > 63) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (h[i] <= ' ' || h[i] >= 0x7f) {
            return false;
        }
    }
    return true;
}

static bool same_address(const struct node_address *a, const struct node_address *b)
{
    return a->id == b->id && a->port == b->port && a->peer_port == b->peer_port &&
           memcmp(a->host, b->host, sizeof(a->host)) == 0;
}

/* A node's DIR/NODES line reads back as the same address. */
static void check_line_round_trip(const struct node_address *a)
{
    char line[NODE_HOST_MAX + 48];
    size_t n = nodeset_line_encode(a, line, sizeof(line));
    FUZZ_CHECK(n > 0 && n == strlen(line) && line[n - 1] == '\n', "line of node %u", a->id);
    struct node_address back;
    FUZZ_CHECK(nodeset_line_decode(line, &back) == 0, "node %u's line does not read back: %s",
               a->id, line);
    FUZZ_CHECK(same_address(a, &back), "node %u's line reads back another address", a->id);
}

/* The payload read by hand from docs/wire-format.md: true if valid, and then *s. */
static bool ref_set(const uint8_t *p, size_t len, struct node_set *s)
{
    memset(s, 0, sizeof(*s));
    if (len < 12) {
        return false;
    }
    s->index = (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
    uint32_t count = get32(p + 8);
    if (count > RAFT_MEMBERS_MAX) {
        return false;
    }
    size_t off = 12;
    for (uint32_t i = 0; i < count; i++) {
        if (off + 9 > len || off + 9 + p[off + 8] > len || !ref_host(p + off + 9, p[off + 8])) {
            return false;
        }
        struct node_address *a = &s->nodes[i];
        a->id = get32(p + off);
        a->port = get16(p + off + 4);
        a->peer_port = get16(p + off + 6);
        memcpy(a->host, p + off + 9, p[off + 8]);
        if (a->id < 1 || a->id > RAFT_NODE_ID_MAX || a->port == 0 || a->peer_port == 0) {
            return false;
        }
        for (uint32_t j = 0; j < i; j++) {
            if (s->nodes[j].id == a->id) {
                return false;
            }
        }
        s->count = i + 1;
        off += 9u + p[off + 8];
    }
    return off == len;
}

static void check_set(const uint8_t *p, size_t len)
{
    struct node_set s, want;
    memset(&s, 0xa5, sizeof(s)); /* the decoder must not leave any of this behind */
    int rc = nodeset_decode(p, len, &s);
    FUZZ_CHECK(rc == 0 || rc == -1, "nodeset_decode returned %d", rc);
    bool valid = ref_set(p, len, &want);
    FUZZ_CHECK((rc == 0) == valid, "nodeset_decode says %d, the format says %s", rc,
               valid ? "valid" : "malformed");
    if (!valid) {
        return;
    }
    FUZZ_CHECK(s.index == want.index && s.count == want.count && s.older == NULL,
               "index %llu count %u", (unsigned long long)s.index, s.count);
    for (uint32_t i = 0; i < s.count; i++) {
        FUZZ_CHECK(same_address(&s.nodes[i], &want.nodes[i]), "node %u decodes differently", i);
        FUZZ_CHECK(nodeset_find(&s, s.nodes[i].id) == &s.nodes[i], "node %u not found", i);
        check_line_round_trip(&s.nodes[i]);
    }
    uint8_t *enc = malloc(len + 1);
    FUZZ_CHECK(enc != NULL, "out of memory");
    FUZZ_CHECK(nodeset_encode(&s, enc, len) == len, "re-encodes to another length");
    FUZZ_CHECK(memcmp(enc, p, len) == 0, "does not re-encode to the same bytes");
    FUZZ_CHECK(nodeset_encode(&s, enc, len - 1) == 0, "encoded into a too small buffer");
    FUZZ_CHECK(len <= NODESET_BYTES_MAX, "%zu bytes, above NODESET_BYTES_MAX", len);
    struct node_set t;
    for (size_t cut = 0; cut < len; cut++) {
        uint8_t *prefix = fuzz_dup(p, cut);
        FUZZ_CHECK(nodeset_decode(prefix, cut, &t) == -1, "a prefix of %zu bytes decodes", cut);
        free(prefix);
    }
    memcpy(enc, p, len);
    enc[len] = 0;
    FUZZ_CHECK(nodeset_decode(enc, len + 1, &t) == -1, "decodes with a byte appended");
    free(enc);
}

static void check_entry(const uint8_t *p, size_t len)
{
    uint8_t op = 0;
    struct node_address a;
    int rc = nodeset_entry_decode(p, len, &op, &a);
    FUZZ_CHECK(rc == 0 || rc == -1, "nodeset_entry_decode returned %d", rc);
    bool valid = len >= 11 && p[0] == SM_ENTRY_NODESET && (p[1] == 1 || p[1] == 2) &&
                 len == 11u + p[10] && get32(p + 2) >= 1 && get32(p + 2) <= RAFT_NODE_ID_MAX &&
                 (p[1] == 1 ? ref_host(p + 11, p[10]) && get16(p + 6) != 0 && get16(p + 8) != 0
                            : p[10] == 0 || ref_host(p + 11, p[10]));
    FUZZ_CHECK((rc == 0) == valid, "nodeset_entry_decode says %d, the layout says %s", rc,
               valid ? "valid" : "malformed");
    FUZZ_CHECK(nodeset_entry_is(p, len) == (len > 0 && p[0] == SM_ENTRY_NODESET),
               "nodeset_entry_is");
    if (!valid) {
        return;
    }
    FUZZ_CHECK(op == p[1] && a.id == get32(p + 2) && a.port == get16(p + 6) &&
                   a.peer_port == get16(p + 8) && strlen(a.host) == p[10],
               "entry fields");
    uint8_t *enc = malloc(len);
    FUZZ_CHECK(enc != NULL, "out of memory");
    FUZZ_CHECK(nodeset_entry_encode(op, &a, enc, len) == len, "entry re-encodes to another length");
    FUZZ_CHECK(memcmp(enc, p, len) == 0, "entry does not re-encode to the same bytes");
    FUZZ_CHECK(nodeset_entry_encode(op, &a, enc, len - 1) == 0, "entry encoded into too little");
    free(enc);
    if (op == NODESET_ADD) {
        check_line_round_trip(&a);
    }
}

static void check_line(const uint8_t *p, size_t len)
{
    size_t n = strnlen((const char *)p, len);
    char *line = malloc(n + 1);
    FUZZ_CHECK(line != NULL, "out of memory");
    memcpy(line, p, n);
    line[n] = '\0';
    struct node_address a;
    if (nodeset_line_decode(line, &a) == 0) {
        FUZZ_CHECK(a.id >= 1 && a.id <= RAFT_NODE_ID_MAX && a.port != 0 && a.peer_port != 0 &&
                       ref_host((const uint8_t *)a.host, strlen(a.host)),
                   "line '%s' gives an invalid address", line);
        check_line_round_trip(&a);
    }
    free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *p = fuzz_dup(data, size);
    check_set(p, size);
    check_entry(p, size);
    check_line(p, size);
    free(p);
    return 0;
}
