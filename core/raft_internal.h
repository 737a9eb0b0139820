/* struct raft and the functions the core/ files implementing core/raft.h share. */
#ifndef RR_CORE_RAFT_INTERNAL_H
#define RR_CORE_RAFT_INTERNAL_H

#include "core/log.h"
#include "core/progress.h"
#include "core/raft.h"

/* Outgoing messages gathered for the next ready batch. Grown on demand (most groups are
 * idle), bounded by RAFT_READY_MSGS_MAX plus a reserve for the messages that must not be
 * dropped (persist notice, own vote). */
struct raft_msg_queue {
    struct raft_msg *msgs; /* malloc'd, `cap` slots */
    uint32_t count;
    uint32_t cap;
    uint32_t spare; /* batches in a row that did not need the capacity (queue_clear) */
};
#define RAFT_MSG_RESERVE 2

/* Largest term and log index accepted from a peer. Real clusters never come near either;
 * the bound leaves room for the core's own + 1 (a campaign's next term, the entry after the
 * last, a pre-vote's term) without wrapping, so a peer's extreme value cannot wrap a term to
 * 0 or the log's index arithmetic. A node whose term reaches RAFT_TERM_MAX no longer
 * campaigns. */
#define RAFT_TERM_MAX          (UINT64_MAX >> 1)
#define RAFT_INDEX_MAX         (UINT64_MAX >> 1)
#define RAFT_MSG_QUEUE_KEEP    4  /* slots a queue keeps across raft_advance (a 5-node heartbeat) */
#define RAFT_MSG_QUEUE_SPARE   16 /* batches a queue keeps capacity it did not need */
#define RAFT_LOG_SLOTS_INITIAL 4  /* log slots raft_init reserves (a few leaders' no-ops) */

/* A (pre-)candidate's tally: one bit per slot of r->config.members. */
typedef uint32_t raft_vote_set;
_Static_assert(2 * RAFT_MEMBERS_MAX <= 32, "a vote set has a bit per member slot");
/* A queued ReadIndex request. Reads are FIFO: the confirmed ones form a prefix, then those
 * assigned to the round in flight, then unassigned ones. */
struct raft_pending_read {
    uint64_t ctx;     /* the caller's context */
    uint64_t round;   /* round serving it; 0: not assigned yet */
    raft_index index; /* commit index at the start of its round */
};

/* ReadIndex requests (read_index.c): queued, released or failed. Allocated with the first
 * read and freed once nothing is queued or left to report and the group quiesces or no
 * longer leads: most groups serve no reads. */
struct raft_reads {
    struct raft_pending_read *queue; /* malloc'd FIFO, `cap` slots */
    struct raft_read_state *out;     /* the ready's reads, `cap` slots */
    /* Contexts of reads that will never be confirmed (this node stopped leading), to report
     * in the next ready: `cap` slots; count + failed_count <= cap <= RAFT_READS_MAX. */
    uint64_t *failed;
    uint32_t failed_count;
    uint32_t count;
    uint32_t cap;
    uint32_t confirmed; /* queue[0, confirmed) have their index */
    uint32_t assigned;  /* queue[0, assigned) have a round */
    uint64_t round;     /* round in flight (0: none) */
};

/* A snapshot being received from the leader, chunk by chunk. The core holds one chunk at
 * most: each is handed out to the caller, who stores it (raft_ready.snapshot_chunk). */
struct raft_snapshot_rx {
    struct raft_snapshot_meta meta; /* the snapshot being received */
    uint64_t id;                    /* this transfer (raft_snapshot_chunk.transfer) */
    raft_node from;                 /* from this leader ... */
    raft_term term;                 /* ... in this term: another one starts over */
    uint64_t total_bytes;
    uint64_t received;              /* bytes accepted so far (chunks arrive in order) */
    uint8_t *chunk;                 /* the accepted chunk not handed out yet (malloc'd,
                                       RAFT_SNAPSHOT_CHUNK_BYTES, while a transfer runs) */
    struct raft_snapshot_chunk out; /* what the ready hands out (points at meta and chunk) */
    bool pending;                   /* `out` holds a chunk not handed out yet */
    bool complete;                  /* the last chunk was handed out: waiting for the verdict
                                       (raft_snapshot_received) */
};

/* What a group keeps of snapshots beyond the latest one's position: its metadata with the
 * configuration (280 bytes), its image's size, and a transfer being received. */
struct raft_snap_store {
    struct raft_snapshot_meta meta; /* the latest snapshot (valid while snap.index > 0) */
    uint64_t bytes;                 /* its image's size (the caller holds the image) */
    struct raft_snapshot_rx *rx;    /* malloc'd while a transfer is in progress, else NULL */
    bool rx_dropped;                /* a transfer was dropped, not yet reported (snapshot.c) */
    uint64_t rx_last_id;            /* the last transfer's id: ids are never reused */
};

/* The latest snapshot's position, inline (read on many paths), and the rest out of line:
 * allocated the first time the group takes or receives a snapshot (snapshot_store_reserve),
 * so that groups without one do not carry it. While index > 0, store is set and its meta
 * holds the same index and term. */
struct raft_snap {
    raft_index index; /* 0: no snapshot */
    raft_term term;
    struct raft_snap_store *store; /* malloc'd, or NULL while the group never needed one */
};

/* The options a group keeps: struct raft_options less the seed (it only seeds the PRNG),
 * each in the width raft_init's checks bound (options_valid). */
struct raft_opts {
    uint64_t *uncommitted_total; /* raft_options' (NULL: none) */
    raft_group group;            /* stamped on every message */
    uint32_t election_ticks;     /* <= 1 << 30 */
    uint32_t heartbeat_ticks;    /* < election_ticks */
    uint32_t inflight_bytes_max; /* <= RAFT_INFLIGHT_BYTES_MAX */
    uint32_t append_bytes_max;   /* <= RAFT_APPEND_BYTES_MAX */
    uint16_t id;                 /* this node, <= RAFT_NODE_ID_MAX */
    uint16_t append_entries_max; /* <= RAFT_APPEND_ENTRIES_MAX */
    uint8_t inflight_count_max;  /* <= RAFT_INFLIGHT_COUNT_MAX */
    bool pre_vote;
    bool check_quorum;
    bool quiesce;
    bool release_applied;
};
_Static_assert(RAFT_NODE_ID_MAX <= UINT16_MAX && RAFT_APPEND_ENTRIES_MAX <= UINT16_MAX &&
                   RAFT_INFLIGHT_COUNT_MAX <= UINT8_MAX,
               "struct raft_opts' widths");

/* What the last raft_ready handed out, applied by raft_advance. */
struct raft_handed {
    raft_index entries_to;       /* last entry index handed out for persistence */
    raft_index applied_to;       /* last committed entry handed out */
    uint32_t read_count;         /* reads released */
    uint32_t read_failure_count; /* read failures reported */
    bool pending;                /* a ready is out: no mutation until raft_advance */
    bool hard_state;
    bool snapshot;
    bool chunk;      /* a received snapshot chunk */
    bool rx_dropped; /* RAFT_READY_SNAPSHOT_DROPPED reported */
    bool role;       /* role, term and leader reported */
};

/* Fields are ordered to leave little padding: a node holds thousands of groups. */
struct raft {
    struct raft_opts opt;
    raft_node vote; /* persistent (Figure 2), with term and commit below */
    /* The election timeouts' randomness: a splitmix64 state (core/base/prng.h), seeded from
     * options.seed. Eight bytes instead of xoshiro256**'s 32, and plenty for drawing a
     * timeout in [e, 2e). */
    uint64_t prng;
    raft_term term;
    raft_index commit; /* persisted too, for faster restarts */

    /* Volatile state. */
    raft_index applied;         /* last index handed out in `committed`; <= commit */
    raft_node leader;           /* RAFT_NODE_NONE if unknown */
    uint32_t election_elapsed;  /* ticks since the timer was reset */
    uint32_t heartbeat_elapsed; /* leader: ticks since the last heartbeat */
    uint32_t election_timeout;  /* randomized, in [election_ticks, 2 * election_ticks) */
    uint32_t quiet_ticks;       /* leader: consecutive ticks it could have quiesced */
    uint8_t role;               /* enum raft_role */
    bool quiesced;              /* no ticks until woken (quiesce.c); only with opt.quiesce */
    bool snap_to_hand;          /* installed from the leader (snap), not yet handed out */
    uint8_t role_handed;        /* role last reported (RAFT_READY_ROLE; see leader_handed) */
    struct raft_log log;

    struct raft_config_packed config;    /* in force: the latest in the log or snapshot */
    struct raft_config_packed bootstrap; /* used when neither log nor snapshot has one */
    /* Candidate and pre-candidate: the answers received, a bit per slot of config.members
     * (a server in both halves of a joint configuration has two slots; both are set). The
     * configuration cannot change during an election: only a leader's entries or snapshot
     * change it, and a (pre-)candidate that hears from a leader becomes a follower first
     * (asserted where the configuration changes). */
    raft_vote_set votes_granted;
    raft_vote_set votes_rejected;
    raft_node transfer_target; /* leader: transfer in progress (thesis §3.10), or NONE */
    /* The entry `config` came from: 0 for the bootstrap configuration, the snapshot index for
     * the snapshot's. Above `commit` it is the pending configuration; the committed one is
     * found by scanning back from `commit` (membership_config_at), so that idle groups do
     * not carry a second copy. */
    raft_index config_index;

    /* The latest snapshot (taken locally or installed); index 0: none. The log's
     * prev_index may be below snap.index: trailing entries are kept after compaction. */
    struct raft_snap snap;

    /* Leader. */
    struct raft_progress *prs; /* malloc'd, one per member other than self */
    uint32_t pr_count;
    /* Payload proposed this term, not yet committed: <= RAFT_UNCOMMITTED_BYTES_MAX plus one
     * entry, as raft_propose refuses what would go past the limit. */
    uint32_t uncommitted_bytes; /* changed only through uncommitted_set */
    bool prs_departing;         /* prs also holds servers the pending configuration removes */
    bool bcast_pending;         /* new entries to send at the next raft_ready */
    bool commit_bcast;          /* a follower was not told the commit: tell it at the next tick */
    bool transfer_sent;         /* leadership transfer: TIMEOUT_NOW is out */
    uint32_t transfer_elapsed;  /* ticks since it started; aborts at an election timeout */

    /* ReadIndex (leader; read_index.c). Round ids increase for as long as this struct
     * lives, across leaderships and across freeing `reads`: a follower's echo of an old
     * round must never confirm a new one. */
    struct raft_reads *reads; /* malloc'd with the first read; NULL when none is pending */
    uint64_t read_round_last; /* last round id used */

    /* Ready/advance. */
    raft_term role_term_handed; /* role, term and leader last reported (RAFT_READY_ROLE) */
    raft_node leader_handed;
    raft_node hs_vote_handed; /* hard state last handed out: vote, term and commit */
    raft_term hs_term_handed;
    raft_index hs_commit_handed;
    struct raft_msg_queue msgs;  /* sent at once */
    struct raft_msg_queue after; /* sent after the batch is durable */
    struct raft_handed handed;
};
_Static_assert(RAFT_UNCOMMITTED_BYTES_MAX + (uint64_t)RAFT_ENTRY_BYTES_MAX <= UINT32_MAX,
               "uncommitted_bytes fits 32 bits");

/* raft.c */
struct raft_msg raft_msg_new(const struct raft *r, uint8_t type, raft_node to);
/* Queues m in msgs (after_persist false) or msgs_after_persist. `reserved` may use the
 * reserve slots. Returns false if the message was dropped (queue full or no memory). */
bool raft_send(struct raft *r, const struct raft_msg *m, bool after_persist, bool reserved);
/* Recomputes r->config from the log, the snapshot or the bootstrap configuration; false if
 * that one is not valid (then r->config is empty). Only the bootstrap configuration can be
 * invalid: entries and snapshots are validated before they are taken in. */
bool raft_config_refresh(struct raft *r);
/* Validates and decodes a config entry's payload. */
int raft_config_from_entry(const struct raft_entry *e, struct raft_config *c);
struct raft_progress *raft_progress_of(struct raft *r, raft_node id);

/* election.c */
void election_reset_timer(struct raft *r);
void election_become_follower(struct raft *r, raft_term term, raft_node leader);
/* pre: try PreVote first (if enabled); transfer: ignore leader leases (TIMEOUT_NOW). */
void election_campaign(struct raft *r, bool pre, bool transfer);
bool election_in_lease(const struct raft *r);
void election_tick(struct raft *r);
void election_handle_vote(struct raft *r, const struct raft_msg *m);
void election_handle_vote_resp(struct raft *r, const struct raft_msg *m);
void election_handle_timeout_now(struct raft *r, const struct raft_msg *m);
/* Leadership transfer: ends it (proposals resume); counts a tick; p (the target's
 * progress) advanced. */
void election_transfer_abort(struct raft *r);
void election_transfer_tick(struct raft *r);
void election_transfer_progress(struct raft *r, const struct raft_progress *p);

/* replication.c */
void replication_tick(struct raft *r);
int replication_validate_append(const struct raft *r, const struct raft_msg *m);
int replication_handle_append(struct raft *r, const struct raft_msg *m);
void replication_handle_append_resp(struct raft *r, const struct raft_msg *m);
void replication_handle_heartbeat(struct raft *r, const struct raft_msg *m);
void replication_handle_heartbeat_resp(struct raft *r, const struct raft_msg *m);
void replication_handle_persisted(struct raft *r, const struct raft_msg *m);
/* Sends what p lacks if it is not paused; allow_empty also sends an empty append (to carry
 * the commit index or probe). */
void replication_send_append(struct raft *r, struct raft_progress *p, bool allow_empty);
void replication_bcast_append(struct raft *r, bool allow_empty);
void replication_bcast_heartbeat(struct raft *r);
/* At raft_ready: sends new entries (proposals) and the commit index to followers. */
void replication_flush(struct raft *r);
void replication_maybe_commit(struct raft *r);
/* options.release_applied: frees the data of entries every replica has (core/raft.h). */
void replication_release(struct raft *r);
/* The leader's no-op, appended when it takes office. */
int replication_append_local(struct raft *r, uint8_t type, const uint8_t *data, uint32_t len);
/* Entry payload appended to the log: config entries take effect at once. */
int replication_append_entry(struct raft *r, const struct raft_entry *e);

/* read_index.c */
void read_index_on_commit(struct raft *r);
void read_index_on_ack(struct raft *r, struct raft_progress *p, uint64_t ctx);
/* The leader's configuration changed: the acknowledgements already received may make a
 * majority of the new one (leaving a joint configuration whose old half cannot answer). A
 * round is otherwise checked only when an acknowledgement raises a follower's, and the
 * followers keep echoing the same round. */
void read_index_on_config(struct raft *r);
/* This node stops leading: unconfirmed reads become failures for the next ready. */
void read_index_fail_pending(struct raft *r);
uint64_t read_index_heartbeat_ctx(const struct raft *r);
/* No read queued and no round in flight (reads to report may remain). */
bool read_index_idle(const struct raft *r);
/* Reads releasable once entries up to `applied` are applied; failures to report. */
uint32_t read_index_ready_count(const struct raft *r, raft_index applied);
uint32_t read_index_failure_count(const struct raft *r);
/* raft_ready's reads and read failures; raft_advance's: drops what was handed out. */
void read_index_ready(struct raft *r, struct raft_ready *rd, raft_index applied);
void read_index_advance(struct raft *r);
void read_index_free(struct raft *r);

/* quiesce.c */
/* Leader, each tick while awake: counts idle ticks; once idle long enough sends the
 * quiescing heartbeats and quiesces. Returns true if it just quiesced. */
bool quiesce_tick(struct raft *r);
/* Follower, after handling a heartbeat from the leader it already followed in this term
 * before the message: quiesces if it is a quiescing one and we are caught up. */
void quiesce_on_heartbeat(struct raft *r, const struct raft_msg *m);
/* Whether a validated message from a peer wakes a quiesced group. */
bool quiesce_wakes(const struct raft *r, const struct raft_msg *m);
/* Time runs again. A leader that cannot rebuild its progress set (out of memory) steps
 * down instead: callers that go on as leader check the role again. */
void quiesce_wake(struct raft *r);
/* A quiesced leader keeps no progress set: what raft_progress and raft_members_progress
 * report for its followers instead. */
bool quiesce_follower_view(const struct raft *r, raft_node id, struct raft_progress_view *p);
int quiesce_members_progress(const struct raft *r, struct raft_member_progress *out, uint32_t cap);

/* membership.c */
/* The configuration in force at `index` (the latest at or before it); returns the index of
 * the entry it came from (0: bootstrap; the snapshot index: the snapshot's). */
raft_index membership_config_at(const struct raft *r, raft_index index, struct raft_config *c);
/* A progress array sized for the members of c and `departing` (may be NULL) other than
 * `self`, or NULL on allocation failure; and its installation as the leader's progress set
 * for the members of r->config and of `departing` (servers a pending configuration removes,
 * replicated to until it commits; r->config must be the c of the allocation): followers
 * already known keep their progress, new ones start in probe at `next`, the others are
 * dropped. */
struct raft_progress *membership_progress_alloc(raft_node self,
                                                const struct raft_config_packed *c,
                                                const struct raft_config_packed *departing);
void membership_progress_install(struct raft *r,
                                 struct raft_progress *prs,
                                 raft_index next,
                                 const struct raft_config_packed *departing);
/* Frees the leader's progress set (stepping down, quiescing, raft_fini). */
void membership_progress_drop(struct raft *r);
/* A quiesced leader waking: the progress set again, every follower holding the whole log
 * and replicating from its end (true while quiesced: quiesce.c). False on allocation
 * failure (nothing changed). */
bool membership_progress_rebuild(struct raft *r);
/* After each step: a leader leaves a committed joint configuration, and steps down once a
 * committed configuration no longer counts it as a voter. */
void membership_check(struct raft *r);

/* snapshot.c */
int snapshot_validate(const struct raft *r, const struct raft_msg *m);
int snapshot_handle(struct raft *r, const struct raft_msg *m);
void snapshot_handle_resp(struct raft *r, const struct raft_msg *m);
void snapshot_send(struct raft *r, struct raft_progress *p);
void snapshot_tick(struct raft *r, struct raft_progress *p);
void snapshot_rx_reset(struct raft *r);
/* raft_has_ready / raft_ready: the transfer being received is of no use any more. */
bool snapshot_rx_stale(const struct raft *r);
bool snapshot_rx_dropped(const struct raft *r); /* not yet reported */
void snapshot_rx_drop_stale(struct raft *r);
/* Allocates r->snap.store if it is not yet: 0 or RR_ENOMEM (nothing changed). */
int snapshot_store_reserve(struct raft *r);
/* The latest snapshot's data size (0 without one); the transfer being received, or NULL. */
uint64_t snapshot_bytes(const struct raft *r);
struct raft_snapshot_rx *snapshot_rx(const struct raft *r);
/* Frees the store (raft_fini). */
void snapshot_store_free(struct raft *r);
/* raft_advance: the pending received chunk was handed out. */
void snapshot_chunk_handed(struct raft *r);

/* Whether the entry at index had its data released and the latest snapshot covers it: the
 * durable log is compacted to the snapshot, so the caller may no longer be able to read that
 * entry back; a follower that needs it gets the snapshot instead. */
static inline bool released_in_snapshot(const struct raft *r, raft_index index)
{
    return index <= r->log.released && index <= r->snap.index;
}

/* Sets the payload proposed this term and not committed, keeping the shared total
 * (raft_options.uncommitted_total) equal to the sum of its groups' counts. */
static inline void uncommitted_set(struct raft *r, uint32_t bytes)
{
    if (r->opt.uncommitted_total != NULL) {
        RR_ASSERT(*r->opt.uncommitted_total >= r->uncommitted_bytes);
        *r->opt.uncommitted_total = *r->opt.uncommitted_total - r->uncommitted_bytes + bytes;
    }
    r->uncommitted_bytes = bytes;
}

#endif
