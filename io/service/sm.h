/* One Raft group's state machine: string keys with TTLs and streams, plus client sessions
 * that make retried writes apply once. Applied deterministically from the log: the only
 * clock is the time the leader stamped on each entry. */
#ifndef RR_SERVICE_SM_H
#define RR_SERVICE_SM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/types.h"
#include "io/service/reply.h"

struct sm_limits {
    uint32_t sessions_max;      /* client sessions remembered (default 4096); beyond it the
                                   least recently used (in log order) sixteenth is evicted,
                                   deterministically */
    uint32_t session_reply_max; /* largest reply kept per request for retries (default
                                   64 KiB; larger replies are kept as an error "-ERR reply
                                   too large to replay") */
    size_t reply_limit;         /* the limit given to reply buffers by callers; informational
                                   (sm_apply builds each reply in a buffer of this limit) */
    uint64_t pel_max;           /* pending entries per consumer group, 1 .. CG_PEL_MAX
                                   (default CG_PEL_MAX; io/service/cgroup.h) */
};

#define SM_SESSIONS_MAX_DEFAULT      4096u
#define SM_SESSION_REPLY_MAX_DEFAULT (64u * 1024u)
#define SM_REPLY_LIMIT_DEFAULT       ((size_t)512 * 1024 * 1024)
/* Replies a session keeps at most (requests its client has not acknowledged). Beyond it the
 * lowest seq is forgotten and the session's floor raised past it: a retry of it is then
 * refused ("already applied; reply not kept"), never applied twice. */
#define SM_SESSION_REPLIES_MAX 4096u

void sm_limits_default(struct sm_limits *l);

struct sm;

/* l NULL: defaults. sessions_max and session_reply_max must be >= 1. `scratch` is where
 * sm_apply builds each reply (with l's reply_limit): one buffer may serve every state
 * machine of a thread (a group's state machine is idle most of the time, and keeping a
 * buffer in each would cost every group), owned by the caller, who keeps it for as long as
 * they live; NULL: the state machine keeps one of its own. RR_ENOMEM. */
int sm_create(struct sm **out, const struct sm_limits *l, struct reply *scratch);
/* NULL is a no-op. */
void sm_destroy(struct sm *sm);

/* Log entry types: the first byte of every entry this module encodes. */
enum sm_entry_type {
    SM_ENTRY_COMMAND = 1, /* header + a command's arguments */
    SM_ENTRY_NOOP = 2,    /* u64 time_ms only: advances the clock, applies nothing */
    SM_ENTRY_NODESET = 3, /* reserved for the node (io/nodeset.c: a node's address added or
                             removed, in group 0); never given to sm_apply */
};

/* What the node puts in front of every write command in a log entry. */
struct sm_entry_header {
    uint64_t client_id;     /* node-assigned, unique in the cluster; 0: no session (no dedup) */
    uint64_t seq;           /* per client, strictly increasing; a retry reuses its seq */
    uint64_t first_unacked; /* the lowest seq of this client whose reply the client has not
                               received yet (<= seq; an entry with first_unacked > seq is
                               malformed): the session forgets the replies below it */
    int64_t time_ms;        /* the leader's wall clock when proposing (unix ms): the only clock
                               the state machine sees (TTLs, stream IDs) */
};

/* Bytes sm_entry_encode needs. */
size_t sm_entry_size(uint32_t argc, const uint32_t argl[]);

/* Encodes header + the command's arguments (argv[0] is the command name) into out; returns
 * bytes written or 0 if cap is too small. Layout (little-endian):
 *   u8 type (SM_ENTRY_COMMAND), u64 client_id, u64 seq, u64 first_unacked, i64 time_ms,
 *   u32 argc, argc * (u32 len, len bytes)
 * argc >= 1. */
size_t sm_entry_encode(const struct sm_entry_header *h,
                       uint32_t argc,
                       const uint8_t *const argv[],
                       const uint32_t argl[],
                       uint8_t *out,
                       size_t cap);

/* Bytes of a no-op entry: u8 type (SM_ENTRY_NOOP), i64 time_ms. */
#define SM_ENTRY_NOOP_BYTES 9u
/* Encodes a no-op entry; returns SM_ENTRY_NOOP_BYTES or 0 if cap is too small. */
size_t sm_entry_encode_noop(int64_t time_ms, uint8_t *out, size_t cap);

/* Applies one committed entry (the node calls this for every normal entry in log order, on
 * every replica). Writes the reply meant for the proposing client into r (the node discards
 * it on replicas that did not propose); a no-op entry writes nothing. Sessions (client_id
 * != 0; the Raft thesis, section 6.3): each keeps a floor (the highest first_unacked seen)
 * and the replies of the applied seqs at or above it. An entry first raises the floor to
 * its first_unacked (dropping the replies below); then a seq below the floor is not applied
 * and gets "-ERR request already applied; reply not kept", a seq with a kept reply is not
 * applied and gets that reply again, and any other seq is applied and its reply kept (at
 * most SM_SESSION_REPLIES_MAX per session; not that of an XREADGROUP BLOCK that delivered
 * nothing: sm_apply_blocked). A malformed entry writes an error reply and
 * changes nothing. time_ms never makes the state machine's clock go backwards: the clock is
 * max(previous, time_ms). Returns 0 or RR_ENOMEM (state unchanged: the node may retry the
 * same entry). */
int sm_apply(struct sm *sm, raft_index index, const uint8_t *entry, size_t len, struct reply *r);

/* Prefetching for a run of entries about to be applied, so that the cache misses of
 * applying one entry (its key's bucket and object in a large keyspace, its client's session
 * and the replies it keeps) overlap with those of the next ones instead of coming one after
 * another. Each step prefetches what the previous one brought into the cache leads to; give
 * each some time (a few entries' work) before the next. Per entry: sm_ahead_start (reads
 * the entry: decodes its first key and client id, hashes them, prefetches their buckets),
 * sm_ahead_finish (the buckets' first objects), sm_ahead_deep (the next objects, the
 * session's list neighbours and replies), then sm_apply_ahead. None of them changes
 * anything; the state may change in between (each uses the state as it is when called). */
struct sm_ahead {
    const uint8_t *entry; /* what sm_ahead_start saw; NULL: not a command entry */
    const uint8_t *key;   /* its first argument after the command name (in entry) */
    uint32_t key_len;
    uint64_t key_hash;     /* ks_hash of key */
    uint64_t client_id;    /* 0: none */
    uint64_t session_hash; /* of client_id */
};
void sm_ahead_start(const struct sm *sm, const uint8_t *entry, size_t len, struct sm_ahead *a);
void sm_ahead_finish(const struct sm *sm, const struct sm_ahead *a);
void sm_ahead_deep(const struct sm *sm, const struct sm_ahead *a);
/* sm_apply, reusing a's hash of the entry's first key when a is of this entry: a may be
 * NULL or of another entry (then ignored), but if a.entry is this entry's address, its
 * bytes must not have changed since sm_ahead_start (a's hash would be of other bytes). */
int sm_apply_ahead(struct sm *sm,
                   raft_index index,
                   const uint8_t *entry,
                   size_t len,
                   const struct sm_ahead *a,
                   struct reply *r);

/* Whether the last sm_apply ran an XREADGROUP with BLOCK that delivered nothing. Its reply
 * is a null array (what the BLOCK timeout gives) and, unlike every other applied command,
 * it is not kept in its session: it changed nothing (Redis creates the consumer only when it
 * serves), so the node may make the client wait and propose the same (client id, seq) again
 * once sm_xreadgroup_wake says so; that proposal is applied, not answered from the session.
 * *block_ms: its BLOCK timeout (0: none). */
bool sm_apply_blocked(const struct sm *sm, int64_t *block_ms);

enum sm_wake {
    SM_WAKE_WAIT,    /* nothing to deliver yet */
    SM_WAKE_PROPOSE, /* a stream has entries after its group's last delivered ID */
    SM_WAKE_REPLIED, /* a stream or group is gone: Redis's error for a blocked client written */
};

/* For a blocked XREADGROUP (argv as proposed), after writes were applied: what the node
 * does with it now, decided on the applied state (expiry at max(clock, now_ms)). Redis
 * 7.0 unblocks such a client with "-UNBLOCKED the stream key no longer exists" when a key
 * is deleted or no longer a stream, and "-NOGROUP the consumer group this client was
 * blocked on no longer exists" when its group is. */
enum sm_wake sm_xreadgroup_wake(const struct sm *sm,
                                int64_t now_ms,
                                uint32_t argc,
                                const uint8_t *const argv[],
                                const uint32_t argl[],
                                struct reply *r);

/* Serves a CMD_READ command (argv[0] is the name, arity already checked). now_ms: the
 * reading node's clock; the state machine uses max(its clock, now_ms) to decide expiry
 * (reads at the leader; keys are never deleted by a read). An XREAD with BLOCK that finds
 * nothing to return is answered "ERR XREAD BLOCK is not supported" (SM_XREAD_BLOCK_ERROR):
 * callers that can wait use sm_read_wait. */
void sm_read(struct sm *sm,
             int64_t now_ms,
             uint32_t argc,
             const uint8_t *const argv[],
             const uint32_t argl[],
             struct reply *r);

#define SM_XREAD_BLOCK_ERROR "ERR XREAD BLOCK is not supported"

/* A blocked XREAD: its BLOCK timeout, COUNT, where its keys start in argv, and each
 * stream's ID to read after, resolved when it first ran ('$' became that stream's last ID
 * then, so entries added while it waits are what it returns). */
struct sm_xread_wait {
    int64_t block_ms; /* 0: no timeout */
    int64_t count;    /* 0: no limit */
    uint32_t first;   /* argv index of the first key */
    uint32_t streams; /* keys; their IDs follow them in argv */
    struct stream_id *ids;
};

/* sm_read, except that an XREAD with BLOCK that finds nothing returns true with *wait
 * filled (free with sm_xread_wait_free) and writes no reply; the caller waits for writes
 * to its keys and calls sm_xread_retry, or answers a null array at the timeout. Returns
 * false when a reply was written. */
bool sm_read_wait(struct sm *sm,
                  int64_t now_ms,
                  uint32_t argc,
                  const uint8_t *const argv[],
                  const uint32_t argl[],
                  struct sm_xread_wait *wait,
                  struct reply *r);
/* Serves a blocked XREAD again: true (reply written) if any of its streams now has entries
 * after its ID; false (nothing written) otherwise. */
bool sm_xread_retry(const struct sm *sm,
                    int64_t now_ms,
                    uint32_t argc,
                    const uint8_t *const argv[],
                    const uint32_t argl[],
                    const struct sm_xread_wait *wait,
                    struct reply *r);
void sm_xread_wait_free(struct sm_xread_wait *wait);

/* Live (unexpired at max(the sm's clock, now_ms)) key count, for DBSIZE. */
uint64_t sm_key_count(const struct sm *sm, int64_t now_ms);

/* The state machine's clock: the largest time_ms applied so far (0 initially). */
int64_t sm_clock(const struct sm *sm);

/* Index of the last entry applied (0 initially; sm_load sets it from the snapshot). */
raft_index sm_applied_index(const struct sm *sm);
/* The log entry at index carried no command (a new leader's empty entry, a configuration
 * change) and was applied all the same: only the applied index moves. A snapshot can then
 * cover it, so that such an entry at the end of an idle group's log does not stay in the
 * WAL for good. */
void sm_apply_empty(struct sm *sm, raft_index index);

/* KEYS / SCAN support: calls fn for each live key matching the glob pattern (Redis
 * stringmatchlen semantics, NULL: all) starting at *cursor, at most `count` visits (keys
 * examined; a bucket is never split, so a visit may slightly exceed count), updates *cursor
 * (0 when the iteration is complete). The cursor is Redis's reverse-binary bucket cursor,
 * so it survives inserts, deletes and table resizes between calls: every key present for the
 * whole scan is returned at least once. type_filter NULL or "string"/"stream" (any other
 * name matches nothing). fn must not modify the sm. */
void sm_scan(const struct sm *sm,
             int64_t now_ms,
             uint64_t *cursor,
             uint32_t count,
             const uint8_t *pattern,
             size_t pattern_len,
             const char *type_filter,
             void (*fn)(void *ctx, const uint8_t *key, size_t len),
             void *ctx);

/* Deterministic digest of the whole state (live keys, values, TTLs, streams, sessions, the
 * clock) for tests: equal states give equal digests regardless of insertion order. Keys
 * already expired at the clock are not part of the state. */
uint64_t sm_digest(const struct sm *sm);

/* ---- snapshots (sm_snapshot.c) -------------------------------------------------------
 *
 * The image of a state machine (layout at the top of sm_snapshot.c) is written while writes
 * go on, without a copy of the state and without fork: sm_snap_begin serializes the head
 * and the sessions at once and marks the state's point; sm_snap_step then walks the keys a
 * slice at a time, and before any write changes or deletes a key the walk has not reached,
 * that key is serialized as it was (into the snap's pending bytes, handed out by the next
 * step). Keys created after the point are not part of the image. So the image is exactly
 * the state at sm_snap_begin, whatever was applied meanwhile (Dragonfly's scheme, per key
 * rather than per bucket, so that table resizes need no care). */
struct sm_snap;

/* Starts an image of the current state. RR_EBUSY if one is running, RR_ENOMEM. */
int sm_snap_begin(struct sm *sm, struct sm_snap **out);
/* Appends the next bytes of the image to out: what writes serialized, then keys until about
 * `budget` bytes were added (a key is never split), then, once every key is in, the end.
 * Returns 1 when the image is complete, 0 if more remains, or the error that stopped the
 * serialization (RR_ENOMEM: out or the pending bytes could not grow). */
int sm_snap_step(struct sm_snap *s, struct reply *out, size_t budget);
/* Bytes writes serialized that sm_snap_step has not handed out yet (the memory a running
 * image costs beyond its output buffer). */
size_t sm_snap_pending(const struct sm_snap *s);
/* The applied index the image stands for. */
raft_index sm_snap_index(const struct sm_snap *s);
/* Ends a serialization, finished or not (NULL: no-op). Stopping one early costs one walk
 * over the keys not reached yet (setting their marks back; no serialization). */
void sm_snap_free(struct sm_snap *s);

/* Loading an image streamed in pieces split anywhere: objects are built as their bytes
 * arrive, memory grows only with the bytes received (a length that lies allocates nothing
 * up front), and the state is swapped in only once the whole image checked out. */
struct sm_loader;
/* l NULL: defaults. RR_ENOMEM. */
int sm_loader_new(struct sm_loader **out, const struct sm_limits *l);
/* 0, or RR_ECORRUPT / RR_EBADVERSION / RR_ENOMEM (sticky: the loader takes nothing more). */
int sm_loader_feed(struct sm_loader *ld, const uint8_t *p, size_t n);
/* True once the image's end was read and checked out (nothing wrong so far). */
bool sm_loader_done(const struct sm_loader *ld);
/* If the image was complete (its end read, nothing after it), replaces sm's state with it
 * (a serialization running on sm is stopped first) and returns 0; else RR_ECORRUPT (or the
 * feed's error) and sm is unchanged. The loader is spent either way. */
int sm_loader_finish(struct sm_loader *ld, struct sm *sm);
void sm_loader_free(struct sm_loader *ld);

/* The whole image in one buffer, both ways: sm_serialize appends it to out (0, RR_EBUSY if
 * a serialization is running, RR_ENOMEM also when out's limit is reached); sm_load replaces
 * the state only on success, RR_ECORRUPT / RR_EBADVERSION / RR_ENOMEM otherwise (the state
 * is then unchanged; never crashes on bad input). */
int sm_serialize(struct sm *sm, struct reply *out);
int sm_load(struct sm *sm, const uint8_t *data, size_t len);

/* Redis's stringmatchlen: glob match of str against pattern (*, ?, [a-z], [^x], \x).
 * nocase: ASCII case-insensitive. */
bool sm_glob_match(
    const uint8_t *pattern, size_t pattern_len, const uint8_t *str, size_t str_len, bool nocase);

#endif
