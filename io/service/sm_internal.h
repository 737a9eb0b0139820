/* The state machine's private types, shared by sm.c (commands, sessions, digest) and
 * sm_snapshot.c (serialization and loading). Internal to io/service/. */
#ifndef RR_SERVICE_SM_INTERNAL_H
#define RR_SERVICE_SM_INTERNAL_H

#include <stdlib.h>
#include <string.h>

#include "core/base/errors.h"
#include "io/service/keyspace.h"
#include "io/service/sm.h"

#define SM_STRING_MAX  ((size_t)512 * 1024 * 1024) /* Redis's proto-max-bulk-len */
#define SM_KEPT_MIN    4u                          /* first allocation of a session's reply array */
#define SM_KEPT_INLINE 24u /* replies up to this size are kept without an allocation */

struct sm_snap;

/* The reply of one applied request, kept for its retries. Most replies (+OK, integers, nil,
 * short bulk strings, stream IDs) fit inline, so keeping them allocates nothing. */
struct kept_reply {
    uint64_t seq;
    uint32_t len;   /* bytes of the reply */
    bool too_large; /* the reply was over session_reply_max (or overflowed): not kept */
    union {
        uint8_t *heap;                 /* owned, when len > SM_KEPT_INLINE */
        uint8_t bytes[SM_KEPT_INLINE]; /* when len <= SM_KEPT_INLINE */
    } data;
};

static inline const uint8_t *kept_bytes(const struct kept_reply *k)
{
    return k->len > SM_KEPT_INLINE ? k->data.heap : k->data.bytes;
}

/* Stores a copy of reply[0, len) in k (len set). 0 or RR_ENOMEM (k unchanged). */
static inline int kept_store(struct kept_reply *k, const uint8_t *reply, uint32_t len)
{
    if (len > SM_KEPT_INLINE) {
        uint8_t *p = malloc(len);
        if (p == NULL) {
            return RR_ENOMEM;
        }
        memcpy(p, reply, len);
        k->data.heap = p;
    } else if (len > 0) {
        memcpy(k->data.bytes, reply, len);
    }
    k->len = len;
    return 0;
}

static inline void kept_release(struct kept_reply *k)
{
    if (k->len > SM_KEPT_INLINE) {
        free(k->data.heap);
    }
    k->len = 0;
}

struct session {
    struct session *hnext;   /* hash chain by client_id */
    uint64_t used;           /* sm->use_clock at its last use: unique, higher is newer */
    uint64_t client_id;      /* != 0 */
    uint64_t floor;          /* highest first_unacked seen: seqs below it are refused */
    struct kept_reply *kept; /* kept[lo .. lo + n): strictly increasing seqs, all >= floor */
    uint32_t lo;
    uint32_t n;   /* <= SM_SESSION_REPLIES_MAX between applies */
    uint32_t cap; /* entries allocated at kept */
};

struct sm {
    struct sm_limits limits;
    struct keyspace ks;
    /* Chains by client_id: &session0 (mask 0) until the second session, so that a group
     * without clients allocates nothing; then SM_SESSION_BUCKETS, doubling at load 1. */
    struct session **sessions;
    uint64_t session_mask; /* bucket count - 1 */
    struct session *session0;
    uint32_t session_count;
    /* Recency is a stamp per session rather than a linked list: a use writes only the
     * session itself, where moving it to the head of a list wrote two cold neighbours.
     * Eviction sorts the sessions by stamp (session_evict), which is rare and batched. */
    uint64_t use_clock;         /* the last stamp given */
    struct session **evict_buf; /* room for sessions_max + 1 once the table is full */
    int64_t clock;              /* max time_ms applied (0 initially) */
    raft_index applied;         /* last entry index applied */
    struct reply *scratch;      /* where sm_apply builds each reply (sm_create) */
    struct sm_snap *snap;       /* the serialization in progress (sm_snapshot.c), or NULL */
    bool own_scratch;           /* scratch is the sm's (malloc'd), not the caller's */
    /* The last sm_apply was an XREADGROUP BLOCK that delivered nothing (sm_apply_blocked),
     * and its BLOCK timeout. */
    bool blocked;
    int64_t blocked_ms;
};

/* sm.c */
struct session *session_find(const struct sm *sm, uint64_t client_id);
/* Inserts a new session as the most recently used one. */
void session_insert(struct sm *sm, struct session *s);
void session_free_kept(struct session *s);
/* Unlinks and frees a session. */
void session_remove(struct sm *sm, struct session *s);
/* Makes sure session_evict can run without allocating. 0 or RR_ENOMEM. */
int session_evict_reserve(struct sm *sm);
/* Over sessions_max: forgets the least recently used sessions down to sessions_max less a
 * sixteenth (a batch, so that the sort is paid once per many new clients). Needs
 * session_evict_reserve first. */
void session_evict(struct sm *sm);
/* The sessions, least recently used first, into out (session_count entries): the order
 * that decides future evictions, which snapshots and the digest carry. */
void sessions_by_age(const struct sm *sm, struct session **out);
/* The same into a new array (the caller frees it); NULL when out of memory. */
struct session **sessions_by_age_new(const struct sm *sm);

/* sm_snapshot.c: FLUSHDB while a serialization runs hands the whole keyspace to it (it
 * frees the objects once serialized) and leaves the state machine's keyspace empty. */
void sm_snap_detach_keys(struct sm *sm);

#endif
