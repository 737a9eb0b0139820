/* The node set's encodings (docs/wire-format.md "Node sets", docs/decisions/008): the
 * FRAME_NODESET payload peers exchange, group 0's node-set log entry, and the line a node
 * gets in DIR/NODES. Pure encoding and decoding; io/nodeset.c keeps the set, writes the
 * file and applies the entries.
 *
 * A host is 1 .. NODE_HOST_MAX - 1 bytes, each a printable ASCII character other than the
 * space (0x21 .. 0x7e): what a DIR/NODES line holds as one word and reads back whole. */
#ifndef RR_IO_WIRE_NODESET_H
#define RR_IO_WIRE_NODESET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/types.h"
#include "core/limits.h"

#define NODE_HOST_MAX 64
/* u64 index, u32 count */
#define NODESET_HEADER_BYTES 12u
/* per node: u32 id, u16 client port, u16 peer port, u8 host length, then the host */
#define NODESET_NODE_BYTES 9u
#define NODESET_BYTES_MAX                                                                          \
    (NODESET_HEADER_BYTES + RAFT_MEMBERS_MAX * (NODESET_NODE_BYTES + NODE_HOST_MAX - 1))
/* u8 SM_ENTRY_NODESET, u8 op, u32 id, u16 client port, u16 peer port, u8 host length */
#define NODESET_ENTRY_HEADER_BYTES 11u

struct node_address {
    raft_node id;
    char host[NODE_HOST_MAX]; /* where clients and peers reach it */
    uint16_t port;            /* client (RESP) port */
    uint16_t peer_port;       /* worker w listens for peers on peer_port + w */
};

/* Every node this node may talk to: a superset of the members of every group's
 * configuration (docs/decisions/008-dynamic-node-set.md). */
struct node_set {
    uint64_t index; /* group 0's node-set entry this set reflects; 0: from `nodes` */
    uint32_t count;
    struct node_address nodes[RAFT_MEMBERS_MAX];
    struct node_set *older; /* the node's: the set this one replaced (the codec leaves NULL) */
};

enum { NODESET_ADD = 1, NODESET_REMOVE = 2 };

const struct node_address *nodeset_find(const struct node_set *s, raft_node id);
/* len bytes form a host as above. */
bool nodeset_host_valid(const char *host, size_t len);

/* A whole set as FRAME_NODESET carries it: bytes written, 0 if cap is too small. */
size_t nodeset_encode(const struct node_set *s, uint8_t *out, size_t cap);
/* 0, or -1 for malformed bytes (a peer's: the caller closes the connection): a count above
 * RAFT_MEMBERS_MAX, a node that does not fit, an id 0, above RAFT_NODE_ID_MAX or repeated,
 * a port 0, a host that is not valid, bytes after the last node. */
int nodeset_decode(const uint8_t *p, size_t len, struct node_set *s);

/* Group 0's node-set entry; bytes written, 0 if cap is too small or the host too long. */
size_t nodeset_entry_encode(uint8_t op, const struct node_address *a, uint8_t *out, size_t cap);
/* 0, or -1: another type or op, a length other than the header's plus the host's, an id 0
 * or above RAFT_NODE_ID_MAX; an addition also needs a valid host and ports other than 0. */
int nodeset_entry_decode(const uint8_t *p, size_t len, uint8_t *op, struct node_address *a);
bool nodeset_entry_is(const uint8_t *p, size_t len);

/* One node's DIR/NODES line, "node ID HOST PORT PEER_PORT\n" (NUL-terminated); the length
 * written, or 0 if cap is too small. */
size_t nodeset_line_encode(const struct node_address *a, char *out, size_t cap);
/* 0 and *a from such a line (the newline optional), or -1. */
int nodeset_line_decode(const char *line, struct node_address *a);

#endif
