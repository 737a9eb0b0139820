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
    uint64_t seed;             /* each group's PRNG seed is mixed from this, g and id */
    /* The table's budget of uncommitted bytes: the payload its groups proposed as leaders
     * and have not committed (raft_status.uncommitted_bytes, summed). multi_propose refuses
     * (RR_EBUSY) a proposal that would go past it while anything is uncommitted, so one
     * entry larger than the budget still goes through alone. 0: no budget. */
    uint64_t uncommitted_bytes_max;
};

struct multi;

/* Creates the table with the groups g < group_count, g % worker_count == worker, all in
 * one array of raft_sizeof()-byte slots allocated here (no per-group table allocation later).
 * Group g's options are o->group with id = o->id, group = g and a seed mixed from o->seed, g
 * and o->id (so equal seeds on different nodes still give different election timeouts).
 * `restore` (may be NULL: all fresh) is called for each group; it returns NULL (fresh) or
 * that group's durable state, which must stay valid until it returns for the next group.
 * Every group starts dirty. Returns 0, RR_EINVAL (worker >= worker_count, id out of range,
 * or this worker would own no group or more than RAFT_GROUPS_MAX), RR_ENOMEM, or the first
 * raft_init error (groups initialised before it are finalised). */
int multi_create(struct multi **out,
                 const struct multi_options *o,
                 const struct raft_config *config,
                 const struct raft_restore *(*restore)(void *ctx, raft_group g),
                 void *ctx);
void multi_destroy(struct multi *m);

uint32_t multi_group_count(const struct multi *m); /* groups in this table */
raft_group multi_group_id(const struct multi *m, uint32_t slot);
/* The group, or NULL if g is not owned by this table. The group is marked dirty, since the
 * caller may change it directly (raft_campaign, raft_snapshot_taken, raft_step). */
struct raft *multi_group(struct multi *m, raft_group g);

/* The group for reading only (raft_status and other const calls), or NULL; marks nothing
 * and does not wake a quiesced group. */
const struct raft *multi_group_peek(const struct multi *m, raft_group g);

/* Ticks every group that is not quiesced (raft_quiesced), marking dirty those that then
 * have a ready batch. Quiesced groups are not visited at all: an idle table costs nothing
 * per tick. A group woken by an input (a message, proposal, read, multi_group access,
 * multi_peer_down) is ticked again from the drain that follows that input. */
void multi_tick(struct multi *m);
/* Groups multi_tick currently ticks (not quiesced), for statistics and tests. */
uint32_t multi_awake_count(const struct multi *m);
/* The node lost its connection to peer `node` (transport failure, crash): raft_peer_down on
 * every group that follows `node` as its leader (each wakes and forgets that leader, so a
 * new leader is elected within an election timeout even if the group was quiesced) and on
 * every group this table leads with `node` as a member (they wake; CheckQuorum runs again).
 * O(groups); the node calls it once per failed peer connection. */
void multi_peer_down(struct multi *m, raft_node node);
/* Decodes a batch from a peer and steps each message into its group. Returns 0, or an error
 * for a malformed batch (codec errors), a batch or message not from a peer to this node
 * (RR_EMISMATCH), a local-only message type (RR_EBADTYPE), a message for a group this table
 * does not own (RR_ENOTFOUND), or the first raft_step error. The caller closes the
 * connection; groups stepped before the error keep their state, which is safe. Entries
 * point into `batch` only for the call. */
int multi_receive(struct multi *m, const uint8_t *batch, size_t len);

/* Messages multi_receive has stepped since the table was made, by type (index: enum
 * raft_msg_type), and how many of the APPENDs carried no entries (commit or probe only). */
struct multi_msg_counts {
    uint64_t by_type[RAFT_MSG_TYPE_MAX + 1];
    uint64_t append_empty;
};
const struct multi_msg_counts *multi_received(const struct multi *m);

/* The payload the table's groups proposed as leaders and have not committed, in bytes
 * (the figure multi_options.uncommitted_bytes_max bounds). */
uint64_t multi_uncommitted_bytes(const struct multi *m);

/* raft_propose / raft_read_index on group g; RR_ENOTFOUND if this table does not own g,
 * RR_EBUSY (propose) past the table's uncommitted budget (multi_options). */
int multi_propose(
    struct multi *m, raft_group g, const uint8_t *data, uint32_t len, raft_index *index);
int multi_read_index(struct multi *m, raft_group g, uint64_t ctx);

/* ---- membership: one change for every group of the table ----------------------------
 *
 * The node's groups share one set of servers, so adding, removing or replacing a server is
 * the same change in every group. Each group runs it on its own (raft_change_config: joint
 * consensus or the single-server path, one change in flight, the 2015 rule), only where
 * this node leads; the other groups' leaders are on other nodes, which run the same call. */

struct multi_config_result {
    raft_group group;
    int result;       /* raft_change_config's: 0, RR_ENOTLEADER (led elsewhere), RR_ECONFIG
                         (a change in flight or no own-term commit yet: retry), ... */
    raft_index index; /* result 0: the index of the configuration entry appended */
};

/* Proposes `target` in every group of this table. out[slot] (cap >= multi_group_count(),
 * else RR_EINVAL and nothing is proposed) receives each group's result, in slot order.
 * Returns the number of groups where the change started. */
int multi_change_config(struct multi *m,
                        const struct raft_config *target,
                        struct multi_config_result *out,
                        uint32_t cap);

/* Where a group stands relative to a target configuration. */
enum multi_config_phase {
    MULTI_CONFIG_OTHER = 0,   /* some other configuration (not started here, or superseded) */
    MULTI_CONFIG_JOINT = 1,   /* in C_old,new on the way to the target */
    MULTI_CONFIG_PENDING = 2, /* the target is in force but not committed */
    MULTI_CONFIG_DONE = 3,    /* the target is in force and committed */
};

struct multi_config_progress {
    uint32_t groups; /* in this table */
    uint32_t done;
    uint32_t pending;
    uint32_t joint;
    uint32_t other;
};

/* Counts the groups of this table in each phase towards `target`, and writes each group's
 * phase (enum multi_config_phase) to phases[slot] for slot < cap (phases may be NULL). Every
 * node reports its own view; a change is complete when its leaders report it done. */
void multi_config_progress(struct multi *m,
                           const struct raft_config *target,
                           struct multi_config_progress *p,
                           uint8_t *phases,
                           uint32_t cap);

/* Marks g (owned by this table: asserted) as possibly having a ready batch, for callers that
 * changed it through a pointer obtained earlier. Everything in this header marks on its own. */
void multi_mark_dirty(struct multi *m, raft_group g);
/* True if some group may have a ready batch: call drain_run. After drain_run or
 * drain_persisted this says whether another drain is due (local steps, apply backlog). */
bool multi_has_dirty(const struct multi *m);

#endif
