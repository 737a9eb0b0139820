/* One Raft group as a pure, deterministic state machine (paper §5, thesis where noted).
 *
 * No syscalls, clocks, I/O, global state or randomness except a PRNG seeded by the caller.
 * Time advances only through raft_tick(). Inputs: raft_step(), raft_tick(), raft_propose(),
 * raft_read_index(), raft_snapshot_taken(), configuration changes. Output: a ready batch
 * (raft_ready) that the caller drains in the order of core/drain.h, then raft_advance().
 *
 * Persistence is asynchronous. A ready batch's hard state, snapshot and entries must be
 * durable before its `msgs_after_persist` leave; those include a RAFT_MSG_PERSISTED (and,
 * for a candidate, its own vote) addressed to this node, which the caller feeds back with
 * raft_step() once the write is durable. Persists complete in the order they were issued. */
#ifndef RR_CORE_RAFT_H
#define RR_CORE_RAFT_H

#include "core/base/prng.h"
#include "core/msg.h"

enum raft_role {
    RAFT_FOLLOWER = 1,
    RAFT_PRE_CANDIDATE = 2,
    RAFT_CANDIDATE = 3,
    RAFT_LEADER = 4,
};

enum raft_progress_state {
    RAFT_PROGRESS_PROBE = 1,     /* one AppendEntries at a time until a match is found */
    RAFT_PROGRESS_REPLICATE = 2, /* pipelined within the in-flight window */
    RAFT_PROGRESS_SNAPSHOT = 3,  /* sending InstallSnapshot chunks */
};

struct raft_hard_state {
    raft_term term;
    raft_node vote;    /* voted for in `term`, or RAFT_NODE_NONE */
    raft_index commit; /* persisted for faster restart; may lag the true commit */
};

struct raft_options {
    raft_node id;                /* this node; must be a member of the initial config */
    raft_group group;            /* stamped on every message */
    uint32_t election_ticks;     /* election timeout is random in [e, 2e) ticks */
    uint32_t heartbeat_ticks;    /* leader heartbeat period; < election_ticks */
    bool pre_vote;               /* thesis §9.6 */
    bool check_quorum;           /* leader steps down without a quorum's contact */
    uint32_t inflight_count_max; /* per follower; <= RAFT_INFLIGHT_COUNT_MAX */
    uint32_t inflight_bytes_max; /* per follower; <= RAFT_INFLIGHT_BYTES_MAX */
    uint32_t append_entries_max; /* per message; <= RAFT_APPEND_ENTRIES_MAX */
    uint32_t append_bytes_max;   /* per message; <= RAFT_APPEND_BYTES_MAX */
    uint64_t seed;               /* PRNG seed (election timeouts) */
    bool quiesce;                /* idle groups stop ticking (see "quiescence"); default off */
    /* Frees the data of entries every replica has (applied and durable here; as leader, also
     * matched by every follower), keeping their terms: a follower that needs them later gets
     * them read back from the caller's durable log (core/drain.h, entries_read), so the
     * caller must set that op. Default off. */
    bool release_applied;
    /* Optional (NULL: none): a counter shared by several groups, to which this group adds
     * its uncommitted bytes while it leads (uncommitted_bytes below; multi.h's budget). The
     * group keeps it equal to its own count through every change, and takes its share back
     * in raft_fini. */
    uint64_t *uncommitted_total;
};

/* Fills `o` with defaults: election 10 ticks, heartbeat 1, pre_vote and check_quorum on, the
 * limits from core/limits.h. The caller sets id, group and seed. */
void raft_options_default(struct raft_options *o);

/* What a restarting node read back from its durable storage. `entries` follow the snapshot
 * (first index = snapshot index + 1), are copied by raft_init, and count as persisted. The
 * core keeps no snapshot data: the caller reads its image back when one must be sent. */
struct raft_restore {
    struct raft_hard_state hard_state;
    struct raft_snapshot_meta snapshot; /* index 0: no snapshot */
    uint64_t snapshot_bytes;            /* the size of its image */
    const struct raft_entry *entries;
    uint32_t entry_count;
};

struct raft_read_state {
    uint64_t ctx;     /* the caller's read_index() context */
    raft_index index; /* serve the read once the state machine has applied this index */
};

/* Bits of raft_ready.flags: which parts are set. */
enum raft_ready_flag {
    RAFT_READY_HARD_STATE = 1u << 0,
    RAFT_READY_ENTRIES = 1u << 1,
    RAFT_READY_SNAPSHOT = 1u << 2,
    RAFT_READY_MSGS = 1u << 3,
    RAFT_READY_MSGS_AFTER_PERSIST = 1u << 4,
    RAFT_READY_COMMITTED = 1u << 5,
    RAFT_READY_READS = 1u << 6,
    RAFT_READY_ROLE = 1u << 7,              /* role, term or known leader changed */
    RAFT_READY_READ_FAILURES = 1u << 8,     /* queued reads that will never be released */
    RAFT_READY_SNAPSHOT_CHUNK = 1u << 9,    /* a piece of a snapshot received from the leader */
    RAFT_READY_SNAPSHOT_DROPPED = 1u << 10, /* the transfer being received was dropped */
};

/* A piece of a snapshot received from the leader (raft_ready.snapshot_chunk). */
struct raft_snapshot_chunk {
    const struct raft_snapshot_meta *meta; /* the snapshot it belongs to */
    uint64_t transfer;    /* the transfer it belongs to (never 0, never reused by the group):
                             the verdict names it (raft_snapshot_received) */
    uint64_t offset;      /* of data within the image; 0 starts a transfer */
    uint64_t total_bytes; /* the image's size */
    const uint8_t *data;
    uint32_t len;
    bool done; /* the last piece: offset + len == total_bytes */
};

/* One output batch. Everything it points to stays valid until raft_advance(); the group
 * must not be stepped, ticked or otherwise changed in between (asserted). */
struct raft_ready {
    uint32_t flags;
    struct raft_hard_state hard_state; /* persist when RAFT_READY_HARD_STATE */
    /* RAFT_READY_SNAPSHOT_CHUNK: a piece of a snapshot the leader is sending (paper §7,
     * "write data into snapshot file at given offset"). The caller stores it (say at that
     * offset of a temporary file) before this batch's msgs_after_persist leave, as they
     * acknowledge it; offset 0 starts a new transfer and abandons any earlier partial one.
     * The caller checks what it stores; when it finds a piece bad (or cannot store it), it
     * calls raft_snapshot_received(transfer, false) and the transfer starts over. After the
     * piece with `done`, the caller checks the whole image and calls
     * raft_snapshot_received(transfer, true): only then is the snapshot installed (and handed out
     * as `snapshot` below), so an image that does not check out is never installed.
     * RAFT_READY_SNAPSHOT_DROPPED: the core dropped the transfer it was receiving without
     * installing it (the commit index reached it, the term changed, a chunk left a gap, or
     * the verdict found it overtaken); the caller drops what it stored of it (any transfer
     * it is not installing). A snapshot_chunk in the same batch belongs to a newer transfer:
     * handle the drop first. */
    const struct raft_snapshot_chunk *snapshot_chunk;
    /* RAFT_READY_SNAPSHOT: a snapshot from the leader, installed (its image is the one the
     * caller received through snapshot_chunk, snapshot_bytes long; the core keeps no copy).
     * Persist it (make that image the group's durable snapshot), and restore the state
     * machine from it before applying `committed` (the restore may run before the write is
     * durable: the reply that vouches for it waits for the persist, and a restart rebuilds the
     * state machine from durable state; a state machine that keeps its own durable state must
     * not let it run ahead of the snapshot's persist). It replaces the whole durable log: the
     * core hands out again, in `entries` of the same batch, every entry it keeps after the
     * snapshot index. */
    const struct raft_snapshot_meta *snapshot;
    uint64_t snapshot_bytes;
    /* Entries to persist, contiguous. If entries[0].index <= the last index handed out
     * before, the durable log's suffix from entries[0].index is replaced (truncated). */
    const struct raft_entry *entries;
    uint32_t entry_count;
    /* May be sent at once. A leader's RAFT_MSG_SNAPSHOT carries no data (the core keeps no
     * image): chunk.base is NULL and chunk.len the most bytes to send from `offset` of the
     * image of snapshot meta.index. The caller reads them from its copy of that image and
     * sends the message with chunk set to what it read: fewer bytes are fine (whole records,
     * say; the follower acknowledges what it got and the next piece starts there), with done
     * set to (offset + chunk.len == total_bytes). If it cannot (that image is gone), it drops
     * the message; the core sends again after an election timeout.
     * An append with `data_released` (options.release_applied) names entries whose data
     * the core no longer holds (raft_entry_released: data.base NULL, data.len its length).
     * The caller reads them from its durable log, checking each one's index and term, and
     * sends the message with them (or with only the first k entries, those it could read),
     * now or later; or drops it, and the core sends again. */
    const struct raft_msg *msgs;
    uint32_t msg_count;
    /* Send (or, when addressed to this node, raft_step) only after this batch's hard
     * state, snapshot and entries are durable. They point to nothing (no entries, no
     * chunks), so a shallow copy may be held past raft_advance. */
    const struct raft_msg *msgs_after_persist;
    uint32_t msg_after_persist_count;
    /* Committed entries to apply, in order; all are already durable locally. */
    const struct raft_entry *committed;
    uint32_t committed_count;
    /* Reads whose index is applied once `committed` is applied. */
    const struct raft_read_state *reads;
    uint32_t read_count;
    /* RAFT_READY_ROLE: the group's role, term or known leader differs from what the last
     * batch carrying this flag reported (or, for the first one, from the state right after
     * raft_init, which raft_status gives). Only the latest state is reported: a change that
     * was undone before this batch (a pre-candidate that fell back to follower of the same
     * leader in the same term) is not seen. The node answers or redirects waiting clients
     * and updates what RAFT STATUS reports from it. */
    uint8_t role;     /* enum raft_role */
    raft_term term;   /* current term */
    raft_node leader; /* known leader in `term` (this node when leading), or RAFT_NODE_NONE */
    /* RAFT_READY_READ_FAILURES: the contexts of queued raft_read_index requests that will
     * never come back in `reads`, because this node stopped leading before their
     * confirmation round was confirmed. Each read accepted by raft_read_index comes back
     * exactly once, in `reads` or here (unless the node is finalised first). Clients retry
     * at the new leader. */
    const uint64_t *read_failures;
    uint32_t read_failure_count;
};

struct raft; /* opaque */

/* Bytes of struct raft, for callers that embed groups in a table. */
size_t raft_sizeof(void);

/* Initialises `r` (raft_sizeof() bytes). `config` is the bootstrap configuration, used
 * only when `restore` is NULL or holds no snapshot and no config entry. Every node of a
 * cluster is given the same one, including servers added later: a fresh node that is not a
 * voter of its configuration is a server being added; it never campaigns and waits for the
 * leader's log (or snapshot) to tell it the configuration. Returns 0 or RR_ENOMEM /
 * RR_EINVAL. */
int raft_init(struct raft *r,
              const struct raft_options *o,
              const struct raft_config *config,
              const struct raft_restore *restore);
/* Frees what raft_init and later calls allocated; `r` itself belongs to the caller. */
void raft_fini(struct raft *r);

/* Advances logical time by one tick: election timeouts, heartbeats, CheckQuorum. */
void raft_tick(struct raft *r);

/* Handles a message from a peer (or a local RAFT_MSG_PERSISTED / self vote). Entries and
 * chunks (and a snapshot's configuration) the message points to need only live for the call.
 * Returns 0, or an error for a message that is malformed for this group (wrong group or recipient,
 * sender id out of range, bad shape); the caller may drop the connection but the group stays
 * consistent. A sender outside the configuration is not an error: configurations change, and a node
 * learns of one only from its log (a server being added hears from a leader it does not
 * know yet; a removed server may still talk). Their messages are handled by the usual
 * rules: answers from non-members are ignored, their votes are not counted. */
int raft_step(struct raft *r, const struct raft_msg *m);

/* Appends a command at the leader. On success *index is its log index. Returns
 * RR_ENOTLEADER, RR_ETRANSFER (transfer in progress), RR_ETOOBIG (entry or uncommitted
 * bytes over the limit) or RR_ENOMEM. The data is copied.
 *
 * Outcome of a proposal. The core does not report outcomes; they follow from what this
 * node applies. Let the proposal be (i, t): *index and the term this node led when it
 * proposed (raft_status before the call). Whenever this node applies a committed entry
 * (j, u) — `committed` of a later ready:
 *   - j == i and u == t: the proposal has committed (it is that entry);
 *   - j == i and u != t: it has failed (another entry holds i for good; then u > t);
 *   - j <  i and u >  t: it has failed too, already: committed entries' terms never
 *     decrease with the index, so whatever commits at i has a term >= u > t. This case
 *     matters: a new leader whose log ends before i commits its no-op at j < i, and in an
 *     idle group nothing may reach i for a long time.
 * Otherwise it is still undecided. If this node restores a snapshot (s, v) instead — one
 * received from a leader, as a follower — then a proposal with i <= s has an unknown
 * outcome (the snapshot does not say which entries it holds; retry through client
 * sessions, thesis §6.3), and one with i > s and v > t has failed. A proposal is never
 * decided any other way: a truncation of this node's log, a step-down or a role event does
 * not settle it (a deposed leader's entry may still be committed by its successor). Why
 * this holds: State Machine Safety (paper §5.4.3) makes the entry applied at i the one
 * committed at i everywhere, and Election Safety with Leader Append-Only make (i, t) name
 * one entry — the one this node appended while leading t. tests/unit/test_raft_outcome.c
 * pins the rule; the simulator checks it (proposal_outcome). */
int raft_propose(struct raft *r, const uint8_t *data, uint32_t len, raft_index *index);

/* Queues a linearizable read (thesis §6.4) at the leader. One confirmation round serves
 * every read queued before it starts. Returns RR_ENOTLEADER, RR_EBUSY (RAFT_READS_MAX
 * queued or failed and not yet handed out) or 0. After 0, `ctx` comes back exactly once in
 * a later ready: in `reads` once the read may be served (its index is applied), or in
 * `read_failures` if this node stops leading (steps down for any reason: a higher term, a
 * leadership transfer completing, CheckQuorum, removal from the configuration) before the
 * read's round is confirmed; the client then retries at the new leader. A read whose round
 * was confirmed is still released after a step-down, once its index is applied. Only
 * raft_fini loses queued reads (the node's clients are gone with it). */
int raft_read_index(struct raft *r, uint64_t ctx);

/* The caller took a snapshot of its state machine covering the log up to `index`
 * (<= applied), whose image is `bytes` long. The core keeps no data: to send it to a lagging
 * follower it asks the caller for pieces of it (see raft_ready.msgs), so the caller keeps the
 * image readable until it reports a newer one. The log is compacted up to index, keeping
 * `trailing` entries before it for followers that lag a little. The caller must have the
 * snapshot durable before it drops its own log prefix. RR_EINVAL, RR_ETOOBIG, RR_ECOMPACTED
 * (not newer than the snapshot the group has), RR_ENOMEM. */
int raft_snapshot_taken(struct raft *r, raft_index index, uint64_t bytes, raft_index trailing);

/* The caller's verdict on the transfer being received (raft_ready.snapshot_chunk, named by
 * its `transfer`), called outside ready/advance. valid false: a piece did not check out or
 * could not be stored; the transfer is dropped and the leader told to start over (at any
 * point of the transfer). valid true, once the piece with `done` was handed out: the whole
 * image checked out; the snapshot is installed (paper §7 steps 6-8) and handed out in the
 * next ready. RR_ENOTFOUND if that transfer is no longer in progress (another one replaced
 * it, even one of a snapshot at the same index: nothing to do, the verdict is not about it),
 * and RR_EINVAL for valid true before the last piece was handed out. */
int raft_snapshot_received(struct raft *r, uint64_t transfer, bool valid);

/* The metadata a snapshot covering the log up to `index` carries, for the caller to store
 * with its image before it calls raft_snapshot_taken: the index, its term and the
 * configuration in force at it (paper §7). `index` must be applied and above the current
 * snapshot index; RR_EINVAL otherwise. */
int raft_snapshot_meta_at(const struct raft *r, raft_index index, struct raft_snapshot_meta *out);

/* Campaigns now (tests and leadership transfer). */
void raft_campaign(struct raft *r);

/* ---- membership changes (paper §6, thesis §4) ----------------------------------------
 *
 * A configuration lives in the log (RAFT_ENTRY_CONFIG) and takes effect on every server as
 * soon as its entry is appended, committed or not; a truncated entry reverts to the one
 * before. Only the leader proposes changes, one at a time:
 * - a change of at most one voter (adding, removing, promoting or demoting one server;
 *   learners may change freely alongside) is appended as the new configuration (thesis
 *   §4.1);
 * - any larger change goes through the joint configuration C_old,new (paper §6), where
 *   elections and commitment need majorities of both halves; once C_old,new is committed
 *   the leader appends C_new by itself (no call needed).
 * The leader refuses (RR_ECONFIG) until an entry of its own term is committed (the 2015
 * fix for single-server changes) and while a configuration entry is uncommitted or the
 * configuration is joint. A leader that is not a voter of C_new keeps leading, without
 * counting itself in C_new, until C_new is committed, then steps down. */

/* Proposes `target` (not joint: old_member_count 0; at least one voter) at the leader. On
 * success *index (may be NULL) is the index of the configuration entry appended (C_new, or
 * C_old,new for a joint change). Returns RR_ENOTLEADER, RR_ETRANSFER, RR_ECONFIG (see
 * above), RR_EINVAL (invalid target, or the same as the configuration in force) or
 * RR_ENOMEM. */
int raft_change_config(struct raft *r, const struct raft_config *target, raft_index *index);
/* Single-server helper on top of raft_change_config: gives `id` the role `role`
 * (RAFT_VOTER or RAFT_LEARNER; adds it if needed: promoting a learner is
 * raft_change_member(r, id, RAFT_VOTER, ...)) or removes it (role 0). RR_EINVAL if that
 * changes nothing. */
int raft_change_member(struct raft *r, raft_node id, uint8_t role, raft_index *index);

/* Leadership transfer (thesis §3.10) to the voter `target` (a voter of C_new when joint).
 * The leader stops accepting proposals and configuration changes (RR_ETRANSFER), brings
 * the target's log up to date, then sends it TIMEOUT_NOW so that it campaigns at once. The
 * transfer ends when this node steps down or, failing that, after an election timeout
 * (election_ticks), when proposals resume. Returns RR_ENOTLEADER, RR_ETRANSFER (a transfer
 * is already in progress), RR_EINVAL (target is this node or not a voter) or 0. */
int raft_transfer_leader(struct raft *r, raft_node target);
/* The transfer in progress at this leader, or RAFT_NODE_NONE. */
raft_node raft_transfer_target(const struct raft *r);

/* ---- quiescence ----------------------------------------------------------------------
 *
 * With options.quiesce (same on every node), an idle group stops doing per-tick work. A
 * leader quiesces after half an election timeout in which every follower held its whole log
 * committed and had answered, with no proposal, read, transfer or configuration change in
 * flight: it sends each follower a last heartbeat flagged `quiesce` and stops heartbeats and
 * CheckQuorum. A follower quiesces on that heartbeat if it follows that leader in that term
 * and its log ends at the heartbeat's commit index; it then stops its election timer.
 * raft_tick does nothing while quiesced. Any message from a peer wakes the group (except
 * heartbeat responses at a quiesced leader), as do raft_propose, raft_read_index,
 * raft_change_config / raft_change_member, raft_transfer_leader, raft_campaign and the two
 * calls below. A quiesced group has no timers, so the caller must supply failure detection:
 * call raft_peer_down when the connection to a peer fails. Core/quiesce.c says why safety is
 * untouched. */

/* True while the group is quiesced (raft_tick is then a no-op and may be skipped). */
bool raft_quiesced(const struct raft *r);
/* Wakes the group: timers run again (a leader heartbeats at once). */
void raft_unquiesce(struct raft *r);
/* The node lost its connection to peer `id` (it crashed, or the link failed). A follower
 * whose leader is `id` wakes and forgets that leader, so that it grants pre-votes at once
 * (with CheckQuorum a follower refuses them while it knows a leader) and campaigns after
 * its election timeout. A leader with `id` as a follower wakes so CheckQuorum runs again,
 * and counts `id` as silent (for CheckQuorum and for quiescing) until it answers again.
 * Safe to call spuriously (a leader that is alive is heard again at its next heartbeat).
 * Works with quiescence off too (faster failover). Call it once the connection is torn
 * down: no message `id` sent before the failure may be stepped after the call (a late
 * quiescing heartbeat could otherwise put the group back to sleep under a dead leader). */
void raft_peer_down(struct raft *r, raft_node id);

bool raft_has_ready(const struct raft *r);
/* Fills `rd`. Call only when raft_has_ready(). */
void raft_ready(struct raft *r, struct raft_ready *rd);
/* The caller has handed `rd` to storage, sent what could be sent, applied `committed` and
 * released `reads`. Frees what `rd` pointed to. */
void raft_advance(struct raft *r, const struct raft_ready *rd);

/* Read-only state. */
struct raft_status {
    raft_node id;
    raft_group group;
    uint8_t role; /* enum raft_role */
    raft_term term;
    raft_node vote;
    raft_node leader; /* RAFT_NODE_NONE if unknown */
    raft_index commit;
    raft_index applied;     /* last index handed out in `committed` */
    raft_index first_index; /* first entry kept in memory (snapshot index + 1) */
    raft_index last_index;
    raft_term last_term;
    raft_index persisted_index; /* last entry known durable locally */
    raft_index snapshot_index;
    raft_term snapshot_term;
    raft_index config_index;    /* entry of the configuration in force (raft_config_index) */
    raft_node transfer_target;  /* leader: leadership transfer in progress, or NONE */
    bool quiesced;              /* no ticks until woken (raft_quiesced) */
    uint32_t uncommitted_bytes; /* leader: payload proposed this term, not committed yet */
};
void raft_status(const struct raft *r, struct raft_status *s);

/* The few figures a node publishes for every group once a second (RAFT STATUS, CLUSTER
 * commands, INFO), read from the group's own struct only: no entry of the log is touched
 * and no configuration unpacked, so a sweep over thousands of idle groups stays cheap. */
struct raft_summary {
    raft_index commit;
    raft_index applied;
    raft_index last_index;
    raft_index snapshot_index;
    uint32_t voters; /* in the configuration in force (C_new's half when joint) */
    uint32_t learners;
    bool config_pending; /* a change not yet committed, or a joint configuration */
};
void raft_summary(const struct raft *r, struct raft_summary *s);

/* Term of the entry at index, or 0 if unknown (compacted or beyond the log; the snapshot
 * index's term is known). */
raft_term raft_term_at(const struct raft *r, raft_index index);
/* Entry at index from the in-memory log, or NULL. Valid until the next call that mutates r.
 * With options.release_applied its data may have been released (raft_entry_released). */
const struct raft_entry *raft_entry_at(const struct raft *r, raft_index index);
/* Copies the configuration in force (the latest in the log, committed or not) to *c. */
void raft_config(const struct raft *r, struct raft_config *c);
/* Index of the entry that configuration came from: 0 for the bootstrap configuration, the
 * snapshot index for the snapshot's. It is pending while above the commit index. */
raft_index raft_config_index(const struct raft *r);
/* True if the configuration in force is not committed yet. */
bool raft_config_pending(const struct raft *r);
/* The latest committed configuration (the one in force at the commit index) into *c;
 * returns the index of its entry as raft_config_index does. */
raft_index raft_config_committed(const struct raft *r, struct raft_config *c);

/* Leader-only view of a follower, for tests and status. Returns false if not leader or
 * `id` is not a follower. */
struct raft_progress_view {
    uint8_t state; /* enum raft_progress_state */
    raft_index match;
    raft_index next;
    uint32_t inflight_count;
    uint64_t inflight_bytes;
    bool recent_active;
};
bool raft_progress(const struct raft *r, raft_node id, struct raft_progress_view *p);

/* Leader-only report on every follower it replicates to (members of both halves when
 * joint, and servers leaving with the pending configuration): how far
 * behind each one is, so that the caller promotes a learner once it has caught up (thesis
 * §4.2.1). */
struct raft_member_progress {
    raft_node id;
    uint8_t role;  /* enum raft_member_role in the configuration in force (voter if either
                      half of a joint configuration has it as one); 0: a server the pending
                      configuration removes, still replicated to until it commits */
    uint8_t state; /* enum raft_progress_state */
    raft_index match;
    raft_index lag; /* leader's last index - match: entries it still lacks */
    bool recent_active;
};
/* Writes up to `cap` records; returns the number of members other than this node (which
 * may exceed cap), or RR_ENOTLEADER. */
int raft_members_progress(const struct raft *r, struct raft_member_progress *out, uint32_t cap);

#endif
