/* The node set's encodings: the FRAME_NODESET payload, group 0's node-set entry and a
 * DIR/NODES line (io/wire/nodeset.h; docs/wire-format.md "Node sets").
 *
 * FRAME_NODESET (little-endian): u64 index, u32 count (at most RAFT_MEMBERS_MAX), then count
 * times: u32 node id, u16 client port, u16 peer port, u8 host length, host bytes.
 *
 * Node-set entry (little-endian): u8 SM_ENTRY_NODESET, u8 op (1 add or replace, 2 remove),
 * u32 node id, u16 client port, u16 peer port, u8 host length, host bytes.
 *
 * Every host that decodes is one the node can write to DIR/NODES and read back: the file
 * holds it as one whitespace-separated word, so a host with a space, a newline or a NUL
 * would make the node refuse its own file at the next start. */
#include "io/wire/nodeset.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "io/service/sm.h"
#include "io/wire/le.h"

const struct node_address *nodeset_find(const struct node_set *s, raft_node id)
{
    for (uint32_t i = 0; i < s->count; i++) {
        if (s->nodes[i].id == id) {
            return &s->nodes[i];
        }
    }
    return NULL;
}

bool nodeset_host_valid(const char *host, size_t len)
{
    if (len == 0 || len >= NODE_HOST_MAX) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)host[i] < 0x21 || (unsigned char)host[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static uint16_t get_u16(const uint8_t *p)
{
    return (uint16_t)(p[0] | p[1] << 8);
}

size_t nodeset_encode(const struct node_set *s, uint8_t *out, size_t cap)
{
    size_t need = NODESET_HEADER_BYTES;
    for (uint32_t i = 0; i < s->count; i++) {
        need += NODESET_NODE_BYTES + strlen(s->nodes[i].host);
    }
    if (need > cap) {
        return 0;
    }
    le_put_u64(out, s->index);
    le_put_u32(out + 8, s->count);
    size_t off = NODESET_HEADER_BYTES;
    for (uint32_t i = 0; i < s->count; i++) {
        const struct node_address *a = &s->nodes[i];
        size_t hl = strlen(a->host);
        le_put_u32(out + off, a->id);
        put_u16(out + off + 4, a->port);
        put_u16(out + off + 6, a->peer_port);
        out[off + 8] = (uint8_t)hl;
        memcpy(out + off + NODESET_NODE_BYTES, a->host, hl);
        off += NODESET_NODE_BYTES + hl;
    }
    return off;
}

int nodeset_decode(const uint8_t *p, size_t len, struct node_set *s)
{
    memset(s, 0, sizeof(*s));
    if (len < NODESET_HEADER_BYTES) {
        return -1;
    }
    s->index = le_get_u64(p);
    uint32_t count = le_get_u32(p + 8);
    if (count > RAFT_MEMBERS_MAX) {
        return -1;
    }
    size_t off = NODESET_HEADER_BYTES;
    for (uint32_t i = 0; i < count; i++) {
        struct node_address *a = &s->nodes[i];
        if (len - off < NODESET_NODE_BYTES) {
            return -1;
        }
        size_t hl = p[off + 8];
        if (len - off - NODESET_NODE_BYTES < hl ||
            !nodeset_host_valid((const char *)p + off + NODESET_NODE_BYTES, hl)) {
            return -1;
        }
        a->id = le_get_u32(p + off);
        a->port = get_u16(p + off + 4);
        a->peer_port = get_u16(p + off + 6);
        memcpy(a->host, p + off + NODESET_NODE_BYTES, hl);
        if (a->id == 0 || a->id > RAFT_NODE_ID_MAX || a->port == 0 || a->peer_port == 0 ||
            nodeset_find(s, a->id) != NULL) {
            return -1;
        }
        off += NODESET_NODE_BYTES + hl;
        s->count = i + 1;
    }
    return off == len ? 0 : -1;
}

size_t nodeset_entry_encode(uint8_t op, const struct node_address *a, uint8_t *out, size_t cap)
{
    size_t hl = strlen(a->host);
    size_t need = NODESET_ENTRY_HEADER_BYTES + hl;
    if (cap < need || hl >= NODE_HOST_MAX) {
        return 0;
    }
    out[0] = SM_ENTRY_NODESET;
    out[1] = op;
    le_put_u32(out + 2, a->id);
    put_u16(out + 6, a->port);
    put_u16(out + 8, a->peer_port);
    out[10] = (uint8_t)hl;
    memcpy(out + NODESET_ENTRY_HEADER_BYTES, a->host, hl);
    return need;
}

int nodeset_entry_decode(const uint8_t *p, size_t len, uint8_t *op, struct node_address *a)
{
    if (len < NODESET_ENTRY_HEADER_BYTES || p[0] != SM_ENTRY_NODESET ||
        (p[1] != NODESET_ADD && p[1] != NODESET_REMOVE) ||
        len != NODESET_ENTRY_HEADER_BYTES + p[10]) {
        return -1;
    }
    const char *host = (const char *)p + NODESET_ENTRY_HEADER_BYTES;
    size_t hl = p[10];
    /* A removal names the address it removes when the node knew it, else none. */
    if (!nodeset_host_valid(host, hl) && !(p[1] == NODESET_REMOVE && hl == 0)) {
        return -1;
    }
    memset(a, 0, sizeof(*a));
    *op = p[1];
    a->id = le_get_u32(p + 2);
    a->port = get_u16(p + 6);
    a->peer_port = get_u16(p + 8);
    memcpy(a->host, host, hl);
    if (a->id == 0 || a->id > RAFT_NODE_ID_MAX ||
        (*op == NODESET_ADD && (a->port == 0 || a->peer_port == 0))) {
        return -1;
    }
    return 0;
}

bool nodeset_entry_is(const uint8_t *p, size_t len)
{
    return len > 0 && p[0] == SM_ENTRY_NODESET;
}

size_t nodeset_line_encode(const struct node_address *a, char *out, size_t cap)
{
    int n = snprintf(out, cap, "node %" PRIu32 " %s %u %u\n", (uint32_t)a->id, a->host,
                     (unsigned)a->port, (unsigned)a->peer_port);
    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int nodeset_line_decode(const char *line, struct node_address *a)
{
    unsigned id = 0, port = 0, peer = 0;
    char host[NODE_HOST_MAX];
    int end = 0;
    if (sscanf(line, "node %u %63s %u %u%n", &id, host, &port, &peer, &end) != 4 ||
        (line[end] != '\0' && strcmp(line + end, "\n") != 0) || id == 0 || id > RAFT_NODE_ID_MAX ||
        port == 0 || port > 65535 || peer == 0 || peer > 65535 ||
        !nodeset_host_valid(host, strlen(host))) {
        return -1;
    }
    memset(a, 0, sizeof(*a));
    a->id = id;
    memcpy(a->host, host, strlen(host));
    a->port = (uint16_t)port;
    a->peer_port = (uint16_t)peer;
    return 0;
}
