/* The deterministic simulator's shared state: virtual nodes, network, disk and clients driving
 * the real group table (core/multi.h) through the real drain order (core/drain.h). */
#ifndef RR_TESTS_SIM_SIM_H
#define RR_TESTS_SIM_SIM_H

#include "core/base/prng.h"
#include "core/codec.h"
#include "core/drain.h"
#include "core/multi.h"

/* Bounds of one run. Clusters start with 3, 5 or 7 voters (ids 1..N); with membership
 * faults a pool of N + 2 nodes lets new ids join. Workers per node 1 or 2. */
#define SIM_NODES_MAX 9
/* The default pool: N + 2 node ids, at most SIM_NODES_MAX. */
#define SIM_POOL_DEFAULT_MAX SIM_NODES_MAX
#define SIM_WORKERS_MAX      2
#define SIM_GROUPS_MAX       64
/* Membership schedules: groups per seed whose configuration changes back to back. */
#define SIM_HOT_GROUPS_MAX 2

/* Virtual time units per tick. Network and disk delays are a fraction of a tick to a few
 * ticks, so both reordering and slow disks happen relative to the election timeout. */
#define SIM_TICK 100u

/* Election ticks: the core's timeout is random in [e, 2e). Liveness must hold within
 * ten maximal election timeouts after every fault has healed. */
#define SIM_ELECTION_TICKS 10u
#define SIM_LIVENESS_TICKS (10u * 2u * SIM_ELECTION_TICKS)

/* Client proposals in flight per (node, group); a payload is an id, group and node. */
#define SIM_PENDING_MAX   8
#define SIM_PAYLOAD_BYTES 16u
/* Serialised state machine: applied index, running hash, applied count, and a checksum of
 * those 24 bytes (little-endian). The checksum is what a receiver checks before it gives its
 * verdict on a received image (raft_snapshot_received). */
#define SIM_SM_BYTES 32u

/* Exit statuses, so the mutant harness tells a checker from everything else. */
#define SIM_EXIT_VIOLATION 1 /* a named property checker fired ("VIOLATION name ...") */
#define SIM_EXIT_USAGE     2
#define SIM_EXIT_ASSERT    3 /* an RR_ASSERT fired in the core or the simulator ("ASSERT ...") */
#define SIM_EXIT_SIMFAIL   4 /* the harness itself saw an impossible result ("SIMFAIL ...") */

/* ---- small hash map: three-word keys, three-word values (tests/sim/map.c) ---- */
struct sim_key {
    uint64_t a, b, c;
};
struct sim_val {
    uint64_t x, y, z;
};
struct sim_slot {
    struct sim_key k;
    struct sim_val v;
    bool used;
};
struct sim_map {
    struct sim_slot *slots; /* cap slots, cap a power of two */
    size_t cap;
    size_t count;
};
void sim_map_init(struct sim_map *m);
void sim_map_free(struct sim_map *m);
/* Returns the value for k, or NULL. */
struct sim_val *sim_map_get(struct sim_map *m, struct sim_key k);
/* Inserts k (value zeroed) if absent; *fresh says whether it was. */
struct sim_val *sim_map_put(struct sim_map *m, struct sim_key k, bool *fresh);

/* ---- virtual disk ---- */
struct sim_dentry { /* one durable entry */
    raft_term term;
    uint8_t type;
    uint8_t *data;
    uint32_t len;
};

/* One group's durable state on one node: entries follow the snapshot contiguously. */
struct sim_dlog {
    struct raft_hard_state hs;
    struct raft_snapshot_meta snap; /* index 0: none */
    uint8_t *snap_data;
    uint64_t snap_bytes;
    struct sim_dentry *e; /* e[k] has index snap.index + 1 + k */
    uint32_t count;
    uint32_t cap;
};

enum sim_rec_kind {
    SIM_REC_SNAPSHOT = 1,
    SIM_REC_ENTRY = 2,
    SIM_REC_HARD_STATE = 3,
};

/* One write in a persist unit; the unit's records become durable in order. */
struct sim_rec {
    uint8_t kind; /* enum sim_rec_kind */
    raft_group g;
    struct raft_hard_state hs;      /* SIM_REC_HARD_STATE */
    struct raft_snapshot_meta meta; /* SIM_REC_SNAPSHOT */
    raft_index index;               /* SIM_REC_ENTRY */
    raft_term term;
    uint8_t type;
    uint8_t *data; /* owned; entry payload or snapshot data */
    uint64_t len;
};

struct sim_unit {
    struct sim_rec *recs;
    uint32_t count;
    uint32_t cap;
    struct drain_held *held; /* NULL until submitted */
    uint64_t done_at;        /* virtual time it becomes durable */
    struct sim_unit *next;   /* FIFO of submitted units */
};

/* ---- nodes ---- */
struct sim;

/* The drain ops' context: one worker of one node. */
struct sim_wctx {
    struct sim *s;
    uint32_t node; /* index 0..N-1; id = node + 1 */
    uint32_t worker;
};

struct sim_sm { /* a state machine: enough to compare replicas exactly */
    raft_index applied;
    uint64_t hash;
    uint64_t count;
};

/* The image of a group's current snapshot on one node: what the core's snapshot index names
 * and what the node sends pieces of (the core keeps no image). Volatile: rebuilt from the
 * durable snapshot at restart. */
struct sim_image {
    raft_index index; /* 0: none */
    uint8_t data[SIM_SM_BYTES];
};

/* A snapshot being received: the chunks the core handed out, stored in order. */
struct sim_rx {
    raft_index index;  /* 0: none */
    uint64_t transfer; /* raft_snapshot_chunk.transfer, named by the verdict */
    uint64_t total;
    uint64_t received;
    bool overflow; /* more bytes than an image holds */
    bool dropped;  /* the core dropped this transfer (RAFT_READY_SNAPSHOT_DROPPED) */
    uint8_t data[SIM_SM_BYTES];
};

struct sim_pending { /* a client proposal waiting for its apply on the proposing node */
    raft_index index;
    raft_term term; /* the term the node led when it proposed */
    uint64_t payload_id;
};

struct sim_watch {         /* what the checkers remember of one (node, group) */
    raft_term leader_term; /* term this node was last seen leading; 0: never */
    raft_index leader_last;
    raft_term leader_last_term;
    raft_index handed_last;  /* last entry index handed to the disk */
    raft_term handed_leader; /* term it led when it last handed entries out; 0: not leader */
    /* The in-memory snapshot's configuration (index 0: none, the bootstrap one applies). */
    raft_index snap_index;
    struct raft_config snap_config;
    /* commit_quorum: the commit index last seen at this node while it led cq_term. */
    raft_term cq_term;
    raft_index cq_commit;
    /* role_events: the role, term and leader last reported by ops->role_changed (from
     * raft_status right after the table was created). */
    uint8_t ev_role;
    raft_term ev_term;
    raft_node ev_leader;
};

struct sim_node {
    raft_node id;
    bool up;
    bool joined;          /* started at least once (pool nodes beyond the cluster join later) */
    uint32_t incarnation; /* bumped at each crash: stale events are ignored */
    struct multi *m[SIM_WORKERS_MAX];
    struct raft *raft[SIM_GROUPS_MAX]; /* group g in m[g % W]; valid while up */
    struct sim_wctx wctx[SIM_WORKERS_MAX];
    struct sim_unit *cur[SIM_WORKERS_MAX];  /* unit being filled by a drain */
    struct sim_unit *head[SIM_WORKERS_MAX]; /* submitted, not yet durable */
    struct sim_unit *tail[SIM_WORKERS_MAX];
    uint64_t disk_free_at[SIM_WORKERS_MAX]; /* last submitted unit's completion time */
    struct sim_dlog dlog[SIM_GROUPS_MAX];   /* survives crashes */
    struct sim_sm sm[SIM_GROUPS_MAX];       /* lost at a crash */
    struct sim_pending pending[SIM_GROUPS_MAX][SIM_PENDING_MAX];
    uint32_t pending_count[SIM_GROUPS_MAX];
    struct sim_watch watch[SIM_GROUPS_MAX];
    struct sim_image img[SIM_GROUPS_MAX]; /* lost at a crash */
    struct sim_rx rx[SIM_GROUPS_MAX];     /* lost at a crash */
    raft_group verdict[SIM_GROUPS_MAX];   /* groups whose last chunk a drain handed out */
    uint32_t verdict_count;
    uint64_t restart_at;         /* while down */
    uint64_t down_at;            /* while down: when it crashed */
    uint64_t up_at;              /* while up: when it (re)started */
    uint64_t churn_at;           /* while up: crash at this time (0: not scheduled) */
    struct raft_restore restore; /* multi_create restore callback scratch */
    struct raft_entry *restore_entries;
    uint32_t restore_cap;
};

/* ---- events ---- */
enum sim_ev_type {
    SIM_EV_TICK = 1,    /* one node ticks */
    SIM_EV_DELIVER = 2, /* one batch arrives */
    SIM_EV_PERSIST = 3, /* one persist unit becomes durable */
    SIM_EV_FAULT = 4,   /* the fault scheduler's turn (once per tick) */
    /* A node's transport notices that its connection to a peer failed (the peer crashed or a
     * partition cut the link): multi_peer_down. `worker` holds the peer's node index. */
    SIM_EV_PEER_DOWN = 5,
    /* Membership schedules (tests/sim/world.c): a configuration change attempted on group
     * `worker` (after an election, or right after another change was accepted), and a
     * disruption of group `worker` while the change its leader `node` started is in flight. */
    SIM_EV_MEMBER = 6,
    SIM_EV_DISRUPT = 7,
    /* A leader just elected (`node`) tries a change of one voter in group `worker`. */
    SIM_EV_MEMBER_ELECTED = 8,
    /* A leader elected lacking a configuration entry another node holds (`node`, group
     * `worker`) is disrupted once it has truncated that entry there. */
    SIM_EV_DISRUPT_ELECTED = 9,
};

struct sim_packet {
    uint32_t from; /* node index */
    uint32_t to;
    uint32_t worker;
    uint32_t epoch; /* of the from -> to connection when sent (struct sim conn_epoch) */
    size_t len;
    uint8_t bytes[]; /* one encoded batch */
};

struct sim_event {
    uint64_t time;
    uint64_t seq; /* ties broken by scheduling order: deterministic */
    uint8_t type; /* enum sim_ev_type */
    uint32_t node;
    uint32_t worker;
    uint32_t incarnation;
    struct sim_packet *pkt; /* SIM_EV_DELIVER */
};

/* ---- configuration of one seed's run ---- */
struct sim_config {
    uint64_t seed;
    uint32_t nodes; /* initial voters */
    uint32_t pool;  /* node ids 1..pool: nodes, plus 2 that may join with membership faults */
    uint32_t groups;
    uint32_t workers;
    uint32_t ticks; /* fault phase; the liveness phase follows */
    bool verbose;
    int32_t trace;   /* group whose messages, writes and applies are printed; -1: none */
    bool membership; /* membership faults: adds, removes, replacements, promotions */
    /* The rule checkers (config_on_append, single_config_change, config_after_own_term_commit,
     * quiesce_rule) restate a rule of the core's design rather than a property of what it
     * does; off (--no-rule-checkers), a bug that breaks a rule must be found through its
     * consequence by the safety checkers (the mutant stage's second pass). */
    bool rule_checkers;
    int32_t quiesce; /* options.quiesce: 1 on, 0 off, -1 chosen per seed (2 in 3 on) */
    int32_t release; /* options.release_applied: 1 on, 0 off, -1 chosen per seed (half) */
    const char *argv0;
};

/* Fault rates fixed per seed (per million unless named otherwise). */
struct sim_rates {
    uint32_t loss;
    uint32_t dup;
    uint64_t delay_max; /* network delay in [1, delay_max] time units */
    uint64_t disk_max;  /* persist delay in [1, disk_max] */
    uint32_t crash;     /* per tick */
    uint32_t tear;      /* per crash: tear the first incomplete unit */
    uint32_t partition; /* per tick, when none is active */
    uint32_t churn;     /* per new leader: crash it within two ticks (Figure 8 patterns) */
    uint32_t campaign;  /* per tick: a random node campaigns now in a random group */
    uint32_t transfer;  /* per tick: a random group's leader transfers leadership */
    uint32_t member;    /* per tick (membership faults): a leader starts a configuration change */
    /* Membership schedules biased toward leader changes while changes are in flight: */
    uint32_t member_hot;     /* per tick per hot group: a change is attempted there */
    uint32_t member_elect;   /* per election in a hot group: a change attempted at once */
    uint32_t member_follow;  /* per change accepted: another attempted within a tick */
    uint32_t member_disrupt; /* per change accepted, and per election lacking an entry
                                another node holds (hot groups): its leader disrupted */
    uint32_t propose;        /* per leader group per node tick */
    uint32_t read;
    uint32_t snapshot; /* per group per node tick, once applied is far enough ahead */
    uint32_t shorten;  /* per snapshot chunk sent: fewer bytes than the core allowed */
    uint32_t corrupt;  /* per snapshot chunk sent: one byte flipped (the receiver must refuse) */
};

struct sim_counts {
    uint64_t steps, ticks, deliveries, batches, dropped, duplicated, persists;
    uint64_t elections, churns, campaigns, transfers, member_changes, crashes, restarts, torn,
        truncations, partitions, one_way;
    uint64_t snapshots_taken, snapshots_installed, proposals, acks, reads, reads_served,
        reads_failed;
    /* Snapshot transfers: chunks sent, chunks corrupted on purpose, images refused by the
     * receiver's check, chunk requests dropped (the image named is not the node's any more). */
    uint64_t chunks_sent, chunks_corrupted, snapshots_refused, chunks_dropped;
    uint64_t entries_reads, entries_reads_dropped; /* released entries read back, or not */
    /* Proposal outcomes decided by core/raft.h's rule on the proposing node. */
    uint64_t outcome_failed, outcome_unknown;
    /* Quiescence: quiescing heartbeats sent, peer-down signals delivered, and group-ticks
     * skipped because the group was quiesced (summed over node ticks). */
    uint64_t quiesce_hbs, peer_downs, quiesced_ticks;
    uint64_t applied;
    /* Membership: changes started (accepted by a leader), completed (entry committed), aborted
     * (entry truncated or lost, never committed); learners promoted; removals of the leader;
     * joint changes started; new node ids started empty. */
    uint64_t config_started, config_completed, config_aborted, promotions, leader_removals,
        joint_changes, joins;
    /* Membership schedules: disruptions of a hot group's leader (a crash, a cut-off, a
     * partition splitting two configurations' majorities, a campaign elsewhere), and of those
     * the partitions that found such a split. */
    uint64_t disruptions, config_splits;
    uint64_t config_refused; /* changes a leader refused with RR_ECONFIG (one in flight, or
                                no entry of its term committed yet) */
};

/* Committed (= applied somewhere) entry at (group, index). */
struct sim_committed {
    raft_term term;
    uint64_t entry_hash;
    uint64_t state_hash; /* state machine hash right after applying it */
    /* Term of the node that first applied it, then: it learned the commit from a leader of
     * a term no later than its own, so every leader of a later term must hold the entry. */
    raft_term commit_term_max;
    bool set;
};

struct sim_read {
    uint32_t node;
    raft_group g;
    raft_index min_index; /* highest acked write index when the read began */
    uint32_t incarnation; /* of `node` when the read was accepted */
    bool accepted;        /* multi_read_index returned 0 */
    bool served;          /* released through ops->read */
    bool failed;          /* failed through ops->read_failed */
};

struct sim {
    struct sim_config cfg;
    struct sim_rates rates;
    struct rr_prng prng;
    uint64_t now;
    uint64_t digest;
    struct sim_counts n;
    struct sim_node node[SIM_NODES_MAX];
    struct raft_config config;
    struct multi_options mo;
    uint64_t drain_budget; /* 0: drain_run; else drain_run_bounded's apply budget (per seed) */
    bool blocked[SIM_NODES_MAX][SIM_NODES_MAX]; /* from -> to */
    uint64_t partition_at;                      /* when the current partition started */
    /* Connections: a peer-down report tears down the connection between the two nodes, so
     * batches still in flight on it are never delivered (TCP: nothing arrives after the
     * failure is seen). Bumped at each report; a batch carries the epoch it was sent in. */
    uint32_t conn_epoch[SIM_NODES_MAX][SIM_NODES_MAX];
    uint64_t heard_at[SIM_NODES_MAX][SIM_NODES_MAX]; /* last batch delivered from -> to */
    /* Last peer-down report delivered: observer -> peer (multi_peer_down). */
    uint64_t reported_at[SIM_NODES_MAX][SIM_NODES_MAX];
    uint64_t partition_until; /* 0: no partition */
    /* Membership schedules: the hot groups of the seed (changes on them every few ticks). */
    raft_group hot[SIM_HOT_GROUPS_MAX];
    uint32_t hot_count;
    raft_group partition_group; /* the hot group whose disruption started the partition, or
                                   UINT32_MAX */
    bool healed;                /* fault phase over */
    uint64_t heal_tick;
    uint64_t tick_no; /* global ticks so far (fault events) */
    /* Event queue: a binary heap on (time, seq). */
    struct sim_event *ev;
    size_t ev_count;
    size_t ev_cap;
    uint64_t ev_seq;
    /* Checkers' memory. */
    struct sim_committed *committed[SIM_GROUPS_MAX];
    raft_index committed_cap[SIM_GROUPS_MAX];
    raft_index committed_max[SIM_GROUPS_MAX];
    struct sim_map leaders;  /* (group, term) -> leader id */
    struct sim_map entries;  /* (group, index, term) -> entry hash, prev term */
    struct sim_map payloads; /* payload id -> (group, index) applied */
    struct sim_map failed;   /* payload ids whose proposals the outcome rule declared failed */
    struct sim_map changes;  /* (group, index, term) of a started change -> completed */
    raft_index acked_max[SIM_GROUPS_MAX];
    struct sim_read *reads; /* indexed by ctx - 1 */
    size_t read_count;
    size_t read_cap;
    size_t read_resolved; /* reads [0, read_resolved) are all served, failed or lost */
    uint64_t payload_next;
    struct codec_scratch *scratch; /* decoding outgoing batches for the checkers */
    /* Liveness after heal: a proposal per group must be acked. */
    uint64_t heal_payload;               /* payload ids above it were proposed after heal */
    uint32_t live_node[SIM_GROUPS_MAX];  /* where the last liveness proposal went, + 1 */
    raft_term live_term[SIM_GROUPS_MAX]; /* in which term */
    bool live_done[SIM_GROUPS_MAX];
    uint32_t live_left;
    bool live_over; /* every group acked and no change left joint or pending */
};

/* tests/sim/world.c */
int sim_run(const struct sim_config *cfg, struct sim_counts *out, uint64_t *digest);
struct raft *sim_group(struct sim *s, uint32_t node, raft_group g);
/* The configuration in force in r (raft_config's copy), in one of a few rotating buffers so
 * that it can be used inside an expression. */
const struct raft_config *sim_config_in_force(const struct raft *r);
/* A node was first seen leading group g in a term: the fault scheduler may plan its crash
 * (leader churn), or a configuration change and a disruption (membership schedules). */
void sim_on_election(struct sim *s, uint32_t node, raft_group g);

/* tests/sim/disk.c */
raft_index sim_dlog_last(const struct sim_dlog *d);
raft_term sim_dlog_term(const struct sim_dlog *d, raft_index i);
void sim_dlog_free(struct sim_dlog *d);
void sim_dlog_install_snapshot(struct sim_dlog *d,
                               const struct raft_snapshot_meta *meta,
                               const uint8_t *data,
                               uint64_t bytes);
struct sim_rec *sim_unit_add(struct sim_unit *u);
void sim_rec_set_data(struct sim_rec *r, const uint8_t *data, uint64_t len);
void sim_unit_free(struct sim_unit *u);
void sim_unit_apply(struct sim *s, uint32_t node, const struct sim_unit *u, uint32_t count);

/* tests/sim/check.c: every checker reports through sim_violation (never returns). */
_Noreturn void sim_violation(struct sim *s, const char *checker, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
_Noreturn void sim_fail(struct sim *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t sim_hash_bytes(uint64_t h, const void *p, size_t len);
uint64_t sim_entry_hash(const struct raft_entry *e);

void check_init(struct sim *s);
void check_free(struct sim *s);
/* After every step, on the node the step touched. */
void check_node(struct sim *s, uint32_t node);
/* Hooks the drain ops call. */
void check_persist_entries(struct sim *s, uint32_t node, raft_group g, const struct raft_ready *rd);
void check_durable_hard_state(struct sim *s,
                              uint32_t node,
                              raft_group g,
                              const struct raft_hard_state *old,
                              const struct raft_hard_state *new_hs);
void check_outgoing(struct sim *s, uint32_t node, const uint8_t *batch, size_t len);
void check_apply(struct sim *s, uint32_t node, raft_group g, const struct raft_entry *e);
void check_restore(struct sim *s, uint32_t node, raft_group g, raft_index index);
/* A snapshot from the leader replaced the proposing node's state: proposals it covers have
 * an unknown outcome, later ones of an older term have failed. */
void check_proposals_snapshot(struct sim *s,
                              uint32_t node,
                              raft_group g,
                              const struct raft_snapshot_meta *meta);
uint64_t check_read_begin(struct sim *s, uint32_t node, raft_group g);
void check_read_served(struct sim *s, uint32_t node, raft_group g, uint64_t ctx, raft_index index);
void check_read_accepted(struct sim *s, uint64_t ctx);
void check_read_failed(struct sim *s, uint32_t node, raft_group g, uint64_t ctx);
void check_role_event(
    struct sim *s, uint32_t node, raft_group g, uint8_t role, raft_term term, raft_node leader);
/* The first accepted read neither served nor failed whose node has not crashed since, or
 * NULL. */
const struct sim_read *sim_read_outstanding(struct sim *s);

/* Named checkers (also called by the hooks above). */
void sim_print_replay(const struct sim_config *cfg);

void election_safety(struct sim *s, uint32_t node, raft_group g, const struct raft_status *st);
void leader_append_only(struct sim *s, uint32_t node, raft_group g, const struct raft_status *st);
void log_matching(struct sim *s,
                  raft_group g,
                  raft_index index,
                  raft_term term,
                  uint64_t hash,
                  raft_term prev_term);
void leader_completeness(struct sim *s, uint32_t node, raft_group g);
void state_machine_safety(struct sim *s,
                          uint32_t node,
                          raft_group g,
                          raft_index index,
                          raft_term term,
                          uint64_t entry_hash,
                          uint64_t state_hash);
void persisted_hard_state(struct sim *s,
                          uint32_t node,
                          raft_group g,
                          const struct raft_hard_state *old,
                          const struct raft_hard_state *new_hs);
void persisted_before_send(struct sim *s, uint32_t node, const struct raft_msg *m);
void persisted_before_apply(struct sim *s, uint32_t node, raft_group g, const struct raft_entry *e);
void config_on_append(struct sim *s, uint32_t node, raft_group g, struct raft_config *out);
void commit_quorum(struct sim *s,
                   uint32_t node,
                   raft_group g,
                   const struct raft_status *st,
                   const struct raft_config *c);
void config_change_rules(struct sim *s, uint32_t node, raft_group g, const struct raft_entry *e);
void check_config_started(struct sim *s, raft_group g, raft_index index, raft_term term);
void check_config_finish(struct sim *s);
/* The configuration at `index` in the node's own log (false if unknown). */
bool sim_config_at(
    struct sim *s, uint32_t node, raft_group g, raft_index index, struct raft_config *c);
void read_linearizable(struct sim *s, uint32_t node, raft_group g, uint64_t ctx, raft_index index);
void read_outcome(struct sim *s);
void role_events(struct sim *s, uint32_t node, raft_group g, const struct raft_status *st);
void quiesce_failover(struct sim *s, uint32_t node, raft_group g, const struct raft_status *st);

#endif
