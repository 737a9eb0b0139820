/* A stream's consumer groups (Redis 7.0 semantics): each group has its last delivered ID and
 * read counter, its consumers, and its pending entries list (PEL) of entries delivered and
 * not yet acknowledged, each owned by one consumer. This module holds the data, its limits,
 * digest and serialization; the commands are in cgroup_cmd.c. Pure: time is passed in. */
#ifndef RR_SERVICE_CGROUP_H
#define RR_SERVICE_CGROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/service/avl.h"
#include "io/service/reply.h"
#include "io/service/stream.h"
#include "io/service/util.h"

/* Limits (Redis has none; these bound what one stream can hold beyond its entries). A
 * command that would go past one is refused with an error and changes nothing. */
#define CG_NAME_BYTES_MAX 512u   /* bytes of a group or consumer name */
#define CG_GROUPS_MAX     1024u  /* consumer groups per stream */
#define CG_CONSUMERS_MAX  16384u /* consumers per group */
/* Pending entries per group (a pending entry costs about 96 bytes: one allocation, linked
 * in two trees). Entries-added bounds a PEL too (each ID is pending at most once), but a
 * trimmed stream keeps adding while consumers that never acknowledge keep the IDs pending.
 * sm_limits.pel_max may set a lower limit; snapshots are checked against this one. */
#define CG_PEL_MAX (1u << 20)

/* A group's read counter when it is not known (Redis's SCG_INVALID_ENTRIES_READ). */
#define CG_ENTRIES_READ_UNKNOWN (-1)

/* A pending entry (Redis's NACK): delivered to a consumer, not acknowledged yet. */
struct cg_nack {
    struct avl_node in_group;     /* the group's PEL, by id */
    struct avl_node in_consumer;  /* its consumer's PEL, by id */
    struct stream_id id;          /* the entry's ID; the stream may have deleted it since */
    int64_t delivery_time;        /* ms, state machine clock: last delivery (or claim) */
    uint64_t delivery_count;      /* deliveries so far (XCLAIM RETRYCOUNT may set it) */
    struct cg_consumer *consumer; /* owner; its PEL holds this entry */
};

struct cg_consumer {
    struct avl_node in_group; /* the group's consumers, by name */
    struct avl_tree pel;      /* the pending entries it owns (cg_nack.in_consumer), by id */
    int64_t seen_time;        /* ms, state machine clock: the last time it read or claimed */
    uint32_t name_len;        /* <= CG_NAME_BYTES_MAX */
    uint8_t name[];
};

struct cg_group {
    struct avl_node in_set;    /* the stream's groups, by name */
    struct stream_id last_id;  /* last delivered ID (">" reads after it) */
    int64_t entries_read;      /* entries read up to last_id, or CG_ENTRIES_READ_UNKNOWN */
    struct avl_tree pel;       /* pending entries (cg_nack.in_group), by id */
    struct avl_tree consumers; /* cg_consumer.in_group, by name; <= CG_CONSUMERS_MAX */
    uint32_t name_len;         /* <= CG_NAME_BYTES_MAX */
    uint8_t name[];
};

/* Names sort as Redis's radix tree keeps them (XINFO lists them in this order): bytewise,
 * a prefix before the longer name. */
int cg_name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen);

/* ---- groups ----------------------------------------------------------------------------- */

uint64_t cg_group_count(const struct stream *s);
struct cg_group *cg_group_find(const struct stream *s, const uint8_t *name, size_t len);
/* In name order; NULL at the end. */
struct cg_group *cg_group_first(const struct stream *s);
struct cg_group *cg_group_next(const struct stream *s, const struct cg_group *g);

/* Creating a group takes two steps so that a failure changes nothing: cg_group_new
 * allocates it unlinked (NULL: out of memory); then cg_group_link, which cannot fail, adds
 * it (its name must not be in the stream yet). cg_group_free frees one never linked. */
struct cg_group *
cg_group_new(const uint8_t *name, size_t len, struct stream_id last_id, int64_t entries_read);
void cg_group_link(struct stream *s, struct cg_group *g);
void cg_group_free(struct cg_group *g);
/* Unlinks and frees g with its consumers and PEL. */
void cg_group_destroy(struct stream *s, struct cg_group *g);

/* ---- consumers -------------------------------------------------------------------------- */

uint64_t cg_consumer_count(const struct cg_group *g);
struct cg_consumer *cg_consumer_find(const struct cg_group *g, const uint8_t *name, size_t len);
struct cg_consumer *cg_consumer_first(const struct cg_group *g);
struct cg_consumer *cg_consumer_next(const struct cg_group *g, const struct cg_consumer *c);
/* As for groups: allocate (NULL: out of memory), then link (name not in g; cannot fail). */
struct cg_consumer *cg_consumer_new(const uint8_t *name, size_t len, int64_t seen_time);
void cg_consumer_link(struct cg_group *g, struct cg_consumer *c);
/* Removes c and its pending entries (from the group's PEL too); returns how many it had. */
uint64_t cg_consumer_delete(struct cg_group *g, struct cg_consumer *c);

/* ---- pending entries -------------------------------------------------------------------- */

uint64_t cg_pel_count(const struct cg_group *g);
struct cg_nack *cg_nack_find(const struct cg_group *g, struct stream_id id);
/* The group's PEL in ID order from the first ID >= id; NULL at the end. */
struct cg_nack *cg_nack_ceil(const struct cg_group *g, struct stream_id id);
struct cg_nack *cg_nack_first(const struct cg_group *g);
struct cg_nack *cg_nack_last(const struct cg_group *g);
struct cg_nack *cg_nack_next(const struct cg_group *g, const struct cg_nack *n);
/* A consumer's PEL, the same way. */
uint64_t cg_consumer_pel_count(const struct cg_consumer *c);
struct cg_nack *cg_consumer_nack_ceil(const struct cg_consumer *c, struct stream_id id);
struct cg_nack *cg_consumer_nack_next(const struct cg_consumer *c, const struct cg_nack *n);

/* A new pending entry, unlinked (NULL: out of memory). */
struct cg_nack *cg_nack_new(void);
/* Links n (its id set, not in g's PEL) to g's PEL and to c's (c in g). */
void cg_nack_link(struct cg_group *g, struct cg_nack *n, struct cg_consumer *c);
/* Gives n to another consumer of its group (nothing if it already owns it). */
void cg_nack_move(struct cg_nack *n, struct cg_consumer *to);
/* Unlinks n from both PELs and frees it. */
void cg_nack_delete(struct cg_group *g, struct cg_nack *n);

/* ---- Redis 7's read counter and lag (t_stream.c, same names) ---------------------------- */

/* streamRangeHasTombstones(s, start, NULL): an XDEL'd ID at or after start may lie among the
 * stream's entries. */
bool cg_range_has_tombstones(const struct stream *s, struct stream_id start);
/* streamEstimateDistanceFromFirstEverEntry: entries read up to id, or
 * CG_ENTRIES_READ_UNKNOWN. */
int64_t cg_estimate_entries_read(const struct stream *s, struct stream_id id);
/* What delivering the entry `id` (> g->last_id) does to g: last_id and entries_read move
 * as in streamReplyWithRange. */
void cg_group_advance(const struct stream *s, struct cg_group *g, struct stream_id id);
/* streamReplyWithCGLag: false when the lag is not known (a null reply). */
bool cg_group_lag(const struct stream *s, const struct cg_group *g, int64_t *lag);

/* ---- a stream's groups (stream_cgroups): freeing, digest, serialization ----------------- */

/* Frees every group of the tree and empties it. */
void cg_free_groups(struct avl_tree *groups);
/* Digest of every group, consumer and pending entry. */
uint64_t cg_digest(const struct avl_tree *groups);
/* Appends the groups (layout in cgroup.c). */
void cg_serialize(const struct avl_tree *groups, struct reply *out);
/* Reads groups from c into the empty tree *out, for stream s (its entries, last ID and
 * entries-added loaded), checking every limit and invariant: names sorted and unique,
 * pending IDs increasing, owned once, at most the stream's last ID and entries-added of
 * them. 0, RR_ECORRUPT (c marked bad) or RR_ENOMEM; on failure *out may hold groups that the
 * caller frees with cg_free_groups. */
int cg_load(const struct stream *s, struct util_cursor *c, struct avl_tree *out);

#endif
