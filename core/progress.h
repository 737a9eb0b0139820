/* A leader's view of one follower (match/next, replication state, in-flight window) and the
 * quorum arithmetic over a configuration. */
#ifndef RR_CORE_PROGRESS_H
#define RR_CORE_PROGRESS_H

#include "core/config.h"
#include "core/raft.h"

/* One AppendEntries in flight: the last index it carried and its payload bytes. */
struct raft_inflight {
    raft_index index;
    uint32_t bytes;
};

/* A FIFO ring of in-flight appends (etcd's tracker/inflights.go), grown on demand up to
 * count_max slots so idle groups cost nothing. Widths: count_max <= RAFT_INFLIGHT_COUNT_MAX
 * (8 bits); bytes < bytes_max + RAFT_APPEND_BYTES_MAX (an append is added while below the
 * limit), well within 32 bits. */
struct raft_inflights {
    struct raft_inflight *ring; /* malloc'd, `cap` slots */
    uint32_t bytes;             /* payload bytes in flight */
    uint32_t bytes_max;         /* options.inflight_bytes_max */
    uint8_t cap;
    uint8_t start;     /* oldest slot */
    uint8_t count;     /* appends in flight; <= count_max */
    uint8_t count_max; /* options.inflight_count_max */
};
_Static_assert(RAFT_INFLIGHT_COUNT_MAX <= UINT8_MAX, "the ring's counts fit 8 bits");
_Static_assert((uint64_t)RAFT_INFLIGHT_BYTES_MAX + RAFT_APPEND_BYTES_MAX <= UINT32_MAX,
               "in-flight bytes fit 32 bits");

/* A leader's view of one follower. (Fields are ordered to leave no padding: a leader keeps
 * one per follower in every group it leads.) */
struct raft_progress {
    raft_index match;            /* highest index known replicated; <= leader's last */
    raft_index next;             /* next index to send; > match */
    uint64_t read_ack;           /* highest ReadIndex round context echoed */
    raft_index commit_told;      /* highest commit index an append or heartbeat told it */
    raft_index pending_snapshot; /* SNAPSHOT: index of the snapshot being sent */
    uint64_t snap_offset;        /* SNAPSHOT: offset of the next (or in-flight) chunk */
    struct raft_inflights inflights;
    raft_node id;
    uint32_t snap_wait_ticks; /* SNAPSHOT: ticks since that chunk left */
    uint32_t stall_ticks;     /* REPLICATE: ticks without progress while appends are out */
    uint8_t state;            /* enum raft_progress_state */
    bool probe_sent;          /* PROBE: an append is out; paused until a response */
    bool recent_active;       /* heard from since the last CheckQuorum period */
    bool entries_sent;        /* an append carrying entries left since the last heartbeat
                                 period began (replication_tick) */
    bool snap_chunk_inflight; /* SNAPSHOT: a chunk awaits its response */
};

void progress_init(struct raft_progress *p,
                   raft_node id,
                   raft_index next,
                   uint8_t inflight_count_max,
                   uint32_t inflight_bytes_max);
void progress_free(struct raft_progress *p);

/* State changes; each resets the in-flight window. */
void progress_become_probe(struct raft_progress *p);
void progress_become_replicate(struct raft_progress *p);
void progress_become_snapshot(struct raft_progress *p, raft_index snapshot_index);

/* True if no AppendEntries may be sent now. */
bool progress_is_paused(const struct raft_progress *p);
/* An accepted response for index: raises match/next. Returns true if match advanced. */
bool progress_maybe_update(struct raft_progress *p, raft_index index);
/* A rejection of `rejected` (the probed prev_index) with the hint `match_hint`. Returns false
 * if the rejection is stale. */
bool progress_maybe_decr_to(struct raft_progress *p, raft_index rejected, raft_index match_hint);
/* An append carrying entries up to `last` (bytes of payload) was sent. */
void progress_sent_entries(struct raft_progress *p, raft_index last, uint32_t bytes);

bool inflights_full(const struct raft_inflights *in);
/* Records an append; false if the ring could not grow (treat as full). */
bool inflights_add(struct raft_inflights *in, raft_index index, uint32_t bytes);
/* Frees every append with index <= index. */
void inflights_free_le(struct raft_inflights *in, raft_index index);
void inflights_reset(struct raft_inflights *in);

/* Quorum arithmetic. value(ctx, id) gives a number per voter; the result is the largest v
 * such that a majority of the voters have value >= v; for a joint configuration the
 * smaller of the two halves' results. Learners never count. */
uint64_t quorum_value(const struct raft_config_packed *c,
                      uint64_t (*value)(void *ctx, raft_node id),
                      void *ctx);

enum quorum_result {
    QUORUM_PENDING = 0,
    QUORUM_WON = 1,
    QUORUM_LOST = 2,
};
/* vote(ctx, id): 1 granted, 0 rejected, -1 no answer yet. */
enum quorum_result quorum_vote_result(const struct raft_config_packed *c,
                                      int (*vote)(void *ctx, raft_node id),
                                      void *ctx);

#endif
