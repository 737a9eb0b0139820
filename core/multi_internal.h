/* The group table's layout and the drain's per-peer outboxes, shared by core/multi.c and
 * core/drain.c only. Nothing else may include this header, except their white-box tests. */
#ifndef RR_CORE_MULTI_INTERNAL_H
#define RR_CORE_MULTI_INTERNAL_H

#include "core/codec.h"
#include "core/drain.h"
#include "core/multi.h"

/* Held units kept for reuse after drain_persisted, so a steady stream of persists reuses the
 * same few buffers instead of allocating one unit per drain. A node has few units in flight
 * (one per fsync in progress plus the one being filled). */
#define MULTI_HELD_POOL_MAX 4

/* Upper bounds of what the codec writes: per coalesced heartbeat, and per record beyond its
 * message (record header). Used only to decide when to start a new batch before a peer's
 * batch would exceed RAFT_BATCH_BYTES_MAX. */
#define DRAIN_HEARTBEAT_BYTES_MAX 64u
#define DRAIN_RECORD_SLACK_BYTES  64u

/* A peer's batch buffer keeps its capacity across drains up to this many bytes, so a steady
 * stream of drains does not allocate. A buffer grown past it (a burst of appends or snapshot
 * chunks) is freed once sent: otherwise one burst would pin up to RAFT_BATCH_BYTES_MAX per
 * peer in the table and in every pooled held unit. */
#define DRAIN_RETAIN_BYTES_MAX (1u << 20)

/* Below DRAIN_RETAIN_BYTES_MAX, a scratch buffer or array (a peer's batch, its heartbeat
 * sets, the local messages) larger than this is given back once a drain used a quarter of
 * it or less: a burst (the start-up elections of thousands of groups, a catch-up) must not
 * pin its high-water mark once the groups go idle, while steady traffic, which fills what it
 * grew, keeps its buffers. */
#define DRAIN_SCRATCH_KEEP_BYTES (16u << 10)

/* Everything one drain sends to one peer. The buffers keep their capacity across drains. */
struct drain_peer {
    raft_node to;
    struct rr_bytes bytes;       /* the batch being built; len 0 when idle */
    struct codec_batch_writer w; /* valid while `open` */
    bool open;                   /* codec_batch_begin done in this drain */
    /* Coalesced heartbeats ([0]) and heartbeat responses ([1]) of every group to this peer;
     * written as one record each when the batch is finished. */
    struct codec_heartbeat *hb[2];
    uint32_t hb_count[2];
    uint32_t hb_cap[2];
};

/* A batch that was full (RAFT_BATCH_BYTES_MAX) and was closed so a new one could start. */
struct drain_sealed {
    raft_node to;
    struct rr_bytes bytes; /* one complete batch */
};

/* One batch (or a few, past the size limit) per peer. */
struct drain_outbox {
    raft_node self;
    struct drain_peer *peers; /* peer_count used, peer_cap allocated; order of first use */
    uint32_t peer_count;
    uint32_t peer_cap;
    uint16_t peer_of[RAFT_NODE_ID_MAX + 1]; /* node id -> index in peers + 1; 0: none */
    struct drain_sealed *sealed;            /* closed batches, in the order they filled */
    uint32_t sealed_count;
    uint32_t sealed_cap;
};

/* The messages waiting for one persist unit (opaque in core/drain.h). */
struct drain_held {
    struct drain_outbox out; /* msgs_after_persist for peers, batches finished */
    struct raft_msg *local;  /* msgs_after_persist to this node; carry no pointed data */
    uint32_t local_count;
    uint32_t local_cap;
    uint64_t seq;            /* submission number within its multi: units complete in order */
    struct drain_held *next; /* free list link while pooled in a multi */
};

struct multi {
    struct multi_options o;
    uint64_t uncommitted_total; /* the groups' uncommitted bytes (raft_options) */
    uint32_t count;             /* groups in this table */
    size_t stride;              /* bytes per group: raft_sizeof() rounded up to max alignment */
    unsigned char *groups;      /* count * stride: group at slot s is groups + s * stride */
    uint8_t *dirty_bit;         /* per slot: 1 while the slot is in dirty_list */
    uint32_t *dirty_list;       /* slots that may have a ready, each at most once */
    uint32_t dirty_count;
    uint32_t *drain_list; /* the dirty list drain_run is walking (swapped with dirty_list) */
    /* Groups that are not quiesced: the only ones multi_tick ticks. awake_pos[slot] is the
     * slot's position in awake_list + 1, or 0 while the group is quiesced. Synced with
     * raft_quiesced() by multi_tick and whenever drain_run visits a dirty slot (every input
     * that may wake a group marks it dirty). */
    uint32_t *awake_list;
    uint32_t *awake_pos;
    uint32_t awake_count;
    bool draining;                 /* inside drain_run or drain_persisted: no re-entry */
    struct codec_scratch *scratch; /* decode storage for multi_receive */
    struct drain_outbox out;       /* immediate messages of the current drain */
    struct raft_msg *local;        /* immediate messages to this node (stepped after) */
    uint32_t local_count;
    uint32_t local_cap;
    struct drain_held *held_pool; /* recycled held units, at most MULTI_HELD_POOL_MAX */
    uint32_t held_pool_count;
    uint64_t held_submitted; /* units passed to persist_submit */
    uint64_t held_done;      /* units released (drain_persisted); <= held_submitted */
    struct multi_msg_counts received;
};

static inline struct raft *multi_at(struct multi *m, uint32_t slot)
{
    return (struct raft *)(void *)(m->groups + (size_t)slot * m->stride);
}

/* Marks a slot as possibly having a ready. */
void multi_mark_slot(struct multi *m, uint32_t slot);
/* Puts the slot on the awake list or takes it off, as raft_quiesced() says. */
void multi_awake_sync(struct multi *m, uint32_t slot);
/* Slot of group g, or -1 if this table does not own g. */
int64_t multi_slot_of(const struct multi *m, raft_group g);

/* Outbox helpers (core/drain.c). */
void drain_outbox_init(struct drain_outbox *out, raft_node self);
void drain_outbox_fini(struct drain_outbox *out);

#endif
