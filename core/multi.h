/* The group table: the G Raft groups one worker owns, ticked together, with every group's
 * messages to a peer gathered into one batch per drain and heartbeats coalesced into one
 * record per peer. Group g lives on worker g % worker_count; its slot is g / worker_count. */
#ifndef RR_CORE_MULTI_H
#define RR_CORE_MULTI_H

#include "core/raft.h"

struct multi_options {
    raft_node id;              /* this node */
    uint32_t worker;           /* this worker's index, < worker_count */
    uint32_t worker_count;     /* W, same on every node */
    uint32_t group_count;      /* G in the cluster, same on every node */
    struct raft_options group; /* per-group options; id/group/seed are set per group */
    uint64_t seed;             /* each group's PRNG seed is derived from this and its id */
};

struct multi;

/* Creates the table with the groups g < group_count, g % worker_count == worker.
 * `restore` is called for each group; it returns NULL (fresh) or that group's durable
 * state, which must stay valid until it returns for the next group. */
int multi_create(struct multi **out, const struct multi_options *o,
                 const struct raft_config *config,
                 const struct raft_restore *(*restore)(void *ctx, raft_group g), void *ctx);
void multi_destroy(struct multi *m);

uint32_t multi_group_count(const struct multi *m);   /* groups in this table */
raft_group multi_group_id(const struct multi *m, uint32_t slot);
/* The group, or NULL if g is not owned by this table. */
struct raft *multi_group(struct multi *m, raft_group g);

/* Ticks every group. */
void multi_tick(struct multi *m);
/* Decodes a batch from a peer and steps each message into its group. Returns 0, or an error
 * for a malformed batch or a message for a group this table does not own (the caller closes
 * the connection; groups stepped before the error keep their state, which is safe). */
int multi_receive(struct multi *m, const uint8_t *batch, size_t len);

int multi_propose(struct multi *m, raft_group g, const uint8_t *data, uint32_t len,
                  raft_index *index);
int multi_read_index(struct multi *m, raft_group g, uint64_t ctx);

/* Groups whose state may have changed since the last drain (a hint for drain_run). */
void multi_mark_dirty(struct multi *m, raft_group g);

#endif
