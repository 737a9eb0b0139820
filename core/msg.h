/* Raft's vocabulary: log entries, configurations, snapshot metadata and messages. Plain data
 * shared by the core, its codec, the drain module and whoever drives them. */
#ifndef RR_CORE_MSG_H
#define RR_CORE_MSG_H

#include "core/base/types.h"
#include "core/limits.h"

/* Bytes owned elsewhere; see each use for the lifetime. */
struct raft_buf {
    const uint8_t *base;
    uint32_t len;
};

enum raft_entry_type {
    RAFT_ENTRY_NORMAL = 1, /* a client command (may be empty: the leader's no-op) */
    RAFT_ENTRY_CONFIG = 2, /* a configuration (struct raft_config, encoded by codec) */
};

struct raft_entry {
    raft_term term;
    raft_index index;
    uint8_t type;         /* enum raft_entry_type */
    struct raft_buf data; /* payload; lifetime set by whoever hands the entry out */
};

/* Whether the core released e's data (raft_options.release_applied): data.base is NULL and
 * data.len its length; the caller reads it back from its durable log. */
static inline bool raft_entry_released(const struct raft_entry *e)
{
    return e->data.base == NULL && e->data.len > 0;
}

enum raft_member_role {
    RAFT_VOTER = 1,
    RAFT_LEARNER = 2,
};

struct raft_member {
    raft_node id;
    uint8_t role; /* enum raft_member_role */
};

/* A configuration. When joint (paper §6), `members` is C_new and `old_members` is C_old:
 * elections and commitment need a majority of the voters of each. */
struct raft_config {
    uint32_t member_count;
    uint32_t old_member_count; /* 0: not joint */
    struct raft_member members[RAFT_MEMBERS_MAX];
    struct raft_member old_members[RAFT_MEMBERS_MAX];
};

/* What a snapshot covers: the log up to (index, term) and the configuration at index. */
struct raft_snapshot_meta {
    raft_index index;
    raft_term term;
    struct raft_config config;
};

enum raft_msg_type {
    RAFT_MSG_VOTE = 1, /* RequestVote (paper §5.2) */
    RAFT_MSG_VOTE_RESP = 2,
    RAFT_MSG_PRE_VOTE = 3, /* thesis §9.6; term is the term the sender would use */
    RAFT_MSG_PRE_VOTE_RESP = 4,
    RAFT_MSG_APPEND = 5, /* AppendEntries with entries (paper §5.3) */
    RAFT_MSG_APPEND_RESP = 6,
    RAFT_MSG_HEARTBEAT = 7, /* empty AppendEntries carrying commit and a read context */
    RAFT_MSG_HEARTBEAT_RESP = 8,
    RAFT_MSG_SNAPSHOT = 9, /* one InstallSnapshot chunk (paper §7) */
    RAFT_MSG_SNAPSHOT_RESP = 10,
    RAFT_MSG_TIMEOUT_NOW = 11, /* leadership transfer (thesis §3.10) */
    /* Local only, never on the wire: the caller's notice that a ready batch's writes are
     * durable. The core emits it addressed to itself, held until the persist completes. */
    RAFT_MSG_PERSISTED = 12,
};
#define RAFT_MSG_TYPE_MAX RAFT_MSG_PERSISTED

struct raft_msg_vote { /* VOTE and PRE_VOTE */
    raft_index last_log_index;
    raft_term last_log_term;
    bool transfer; /* campaign after TIMEOUT_NOW: ignore the leader lease */
};

struct raft_msg_vote_resp { /* VOTE_RESP and PRE_VOTE_RESP */
    bool granted;
};

struct raft_msg_append {
    raft_index prev_index;
    raft_term prev_term;
    raft_index commit;
    uint32_t entry_count;
    /* Set by raft_ready, never on the wire: entries from the first on were released
     * (raft_options.release_applied), so some hold no data (raft_entry_released). */
    bool data_released;
    const struct raft_entry *entries; /* lifetime: see raft_step / raft_ready */
};

struct raft_msg_append_resp {
    bool rejected;
    raft_index index;      /* accepted: last index now matching; rejected: prev_index probed */
    raft_index hint_index; /* rejected: follower's hint for the next probe (fast back-track) */
    raft_term hint_term;   /* rejected: term at hint_index in the follower's log, or 0 */
};

struct raft_msg_heartbeat {
    raft_index commit; /* min(leader commit, follower match) */
    uint64_t read_ctx; /* ReadIndex round the leader is confirming; 0: none */
    bool quiesce;      /* the leader's last heartbeat before it quiesces (core/raft.h) */
};

struct raft_msg_heartbeat_resp {
    uint64_t read_ctx; /* echoed */
};

/* The snapshot's metadata travels as its parts, the configuration by pointer: a
 * configuration is 264 bytes, and every message (queued in every group, copied by the
 * drain) would otherwise carry one. */
struct raft_msg_snapshot {
    raft_index last_index;            /* the snapshot covers the log up to this entry */
    raft_term last_term;              /* that entry's term */
    const struct raft_config *config; /* the configuration at last_index; never NULL on the
                                         wire; lifetime: see raft_step / raft_ready */
    uint64_t offset;                  /* of this chunk within the snapshot data */
    uint64_t total_bytes;             /* size of the whole snapshot data */
    bool done;                        /* last chunk */
    struct raft_buf chunk;            /* lifetime: see raft_step / raft_ready */
};

struct raft_msg_snapshot_resp {
    raft_index index;     /* snapshot index being transferred */
    uint64_t next_offset; /* bytes received so far; == total when installed */
    bool rejected;        /* restart the transfer from offset 0 */
    bool done;            /* installed */
};

struct raft_msg_persisted {
    raft_index index;          /* last entry index made durable by the batch (0 if none) */
    raft_term term;            /* term of that entry */
    raft_index snapshot_index; /* snapshot made durable by the batch (0 if none) */
    uint64_t seq; /* the core's number for the batch; 0 (hand-made notice): trust the term */
};

struct raft_msg {
    uint8_t type; /* enum raft_msg_type */
    raft_group group;
    raft_node from;
    raft_node to;
    raft_term term; /* sender's current term (PRE_VOTE: the term it would campaign in) */
    union {
        struct raft_msg_vote vote;
        struct raft_msg_vote_resp vote_resp;
        struct raft_msg_append append;
        struct raft_msg_append_resp append_resp;
        struct raft_msg_heartbeat heartbeat;
        struct raft_msg_heartbeat_resp heartbeat_resp;
        struct raft_msg_snapshot snapshot;
        struct raft_msg_snapshot_resp snapshot_resp;
        struct raft_msg_persisted persisted;
    };
};

const char *raft_msg_type_name(uint8_t type);

/* Configuration queries (pure helpers). */
bool raft_config_is_voter(const struct raft_config *c, raft_node id);  /* in either half */
bool raft_config_is_member(const struct raft_config *c, raft_node id); /* in either half */
bool raft_config_is_joint(const struct raft_config *c);
/* Well formed: a non-empty C_new, each half within RAFT_MEMBERS_MAX with valid, distinct ids,
 * known roles and at least one voter. The codec refuses, and the core never adopts, anything
 * else. */
bool raft_config_valid(const struct raft_config *c);
/* Same members with the same roles in each half, in any order. */
bool raft_config_equal(const struct raft_config *a, const struct raft_config *b);
/* Role of id in the new half (members), or 0 if it is not there. */
uint8_t raft_config_role(const struct raft_config *c, raft_node id);

#endif
