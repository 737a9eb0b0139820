/* Streams: an append-only sequence of entries with strictly increasing IDs, and the stream
 * commands' argument parsing and replies (Redis 7.0 semantics). Key lookup, types and
 * expiry are the caller's (sm.c); this module owns one stream's contents. */
#ifndef RR_SERVICE_STREAM_H
#define RR_SERVICE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "io/service/reply.h"
#include "io/service/util.h"

struct stream_id {
    uint64_t ms;  /* milliseconds part */
    uint64_t seq; /* sequence within the millisecond */
};

struct stream;
struct avl_tree;

/* Version byte at the start of a serialized stream (stream_serialize): 1, entries only
 * (still loaded); 2, the entries, then a length-prefixed extension (stream_ext_load). */
#define STREAM_SERIAL_VERSION 2u

/* NULL when out of memory. */
struct stream *stream_create(void);
void stream_destroy(struct stream *s);

uint64_t stream_length(const struct stream *s);
/* The largest ID ever added (0-0 for a new stream): never decreases, even when entries are
 * deleted. */
struct stream_id stream_last_id(const struct stream *s);
/* Entries ever added (Redis 7's entries-added): never decreases. At most
 * STREAM_ENTRIES_ADDED_MAX, Redis's range (a long long); the consumer groups' counters and
 * lags are signed and computed from it. An image holding more is refused; an append at the
 * maximum leaves it there (2^63 appends do not happen; an image from elsewhere may hold it). */
#define STREAM_ENTRIES_ADDED_MAX ((uint64_t)INT64_MAX)
uint64_t stream_entries_added(const struct stream *s);
/* Redis 7's recorded-first-entry-id: the first entry's ID, 0-0 when the stream is empty. */
struct stream_id stream_first_id(const struct stream *s);
/* Redis 7's max-deleted-entry-id: the largest ID XDEL removed, 0-0 if none. */
struct stream_id stream_max_deleted_id(const struct stream *s);
/* The stream's consumer groups: a tree by name that cgroup.c manages. The stream owns
 * them: they are freed with it (stream_destroy calls cg_free_groups). */
struct avl_tree *stream_cgroups(struct stream *s);
const struct avl_tree *stream_cgroups_const(const struct stream *s);

/* -1, 0, 1 like memcmp. */
int stream_id_cmp(struct stream_id a, struct stream_id b);

/* Redis's streamIncrID / streamDecrID: the next / previous ID; false (and the ID wrapped)
 * at the ends of the ID space. */
bool stream_id_incr(struct stream_id *id);
bool stream_id_decr(struct stream_id *id);

/* Parses "<ms>-<seq>", "<ms>" (seq = missing_seq), and unless strict "-" and "+". 0 or, after
 * writing Redis's error into r (if r is not NULL), RR_EINVAL. */
int stream_id_parse(const uint8_t *p,
                    size_t len,
                    uint64_t missing_seq,
                    bool strict,
                    struct stream_id *id,
                    struct reply *r);

/* XADD / XTRIM options. */
struct stream_trim_args {
    uint8_t strategy;       /* STREAM_TRIM_NONE / _MAXLEN / _MINID */
    bool approx;            /* "~" given */
    bool no_mkstream;       /* XADD NOMKSTREAM */
    bool id_given;          /* XADD: an explicit ID (not "*") */
    bool seq_given;         /* XADD: ID's seq given (not "<ms>-*") */
    int64_t maxlen;         /* MAXLEN value, >= 0 */
    struct stream_id minid; /* MINID value */
    int64_t limit;          /* most entries to trim (0: no limit) */
    struct stream_id id;    /* XADD: the explicit ID */
    uint32_t field_pos;     /* XADD: index of the first field */
};

enum { STREAM_TRIM_NONE = 0, STREAM_TRIM_MAXLEN = 1, STREAM_TRIM_MINID = 2 };

/* Parses XADD's (xadd true) or XTRIM's arguments, including XADD's field/value count check.
 * 0 or RR_EINVAL after writing the error into r. */
int stream_parse_add_or_trim(uint32_t argc,
                             const uint8_t *const argv[],
                             const uint32_t argl[],
                             bool xadd,
                             struct stream_trim_args *a,
                             struct reply *r);

/* The ID XADD would give its entry, or RR_EINVAL after writing the error into r (nothing
 * changed). clock_ms: the state machine's clock. */
int stream_next_id(const struct stream *s,
                   const struct stream_trim_args *a,
                   int64_t clock_ms,
                   struct stream_id *id,
                   struct reply *r);

/* Appends an entry with id (> last id) and the fields argv[first..argc) (an even count),
 * then trims per a. RR_ENOMEM leaves the stream unchanged. */
int stream_append(struct stream *s,
                  struct stream_id id,
                  uint32_t argc,
                  const uint8_t *const argv[],
                  const uint32_t argl[],
                  uint32_t first,
                  const struct stream_trim_args *a);

/* Trims per a; returns the number of entries removed. */
uint64_t stream_trim(struct stream *s, const struct stream_trim_args *a);

/* Deletes the entry with this ID; true if there was one (then max-deleted-entry-id is raised
 * to it if it is larger, as XDEL does). */
bool stream_delete(struct stream *s, struct stream_id id);

/* Writes the entries in [start, end] (rev: from end down to start), at most count of them
 * (0: all) as a RESP array of [id, [field, value, ...]]; returns how many. */
uint64_t stream_reply_range(const struct stream *s,
                            struct stream_id start,
                            struct stream_id end,
                            uint64_t count,
                            bool rev,
                            struct reply *r);

/* True if the stream holds an entry with an ID > after. */
bool stream_has_after(const struct stream *s, struct stream_id after);

/* Index-based access, for walking entries while changing other state (entries are at
 * positions [0, stream_length)): the position of the first entry with an ID > after (the
 * length if none), and the ID or the reply [id, [field, value, ...]] of the entry at pos. */
uint64_t stream_pos_after(const struct stream *s, struct stream_id after);
struct stream_id stream_id_at(const struct stream *s, uint64_t pos);
void stream_reply_entry_at(const struct stream *s, uint64_t pos, struct reply *r);
/* True if an entry has this ID. */
bool stream_contains(const struct stream *s, struct stream_id id);
/* Writes [id, [field, value, ...]] for the entry with this ID; false (nothing written) if
 * there is none. */
bool stream_reply_entry(const struct stream *s, struct stream_id id, struct reply *r);

/* Parses a range bound as XRANGE, XPENDING and XAUTOCLAIM do (streamParseIntervalIDOrReply):
 * "-", "+", "<ms>" (seq 0 for a start, UINT64_MAX for an end), "<ms>-<seq>", and with a "("
 * prefix an exclusive bound (strict ID), returned already moved to the next (start) or
 * previous (end) ID. 0, or RR_EINVAL after writing Redis's error into r. */
int stream_parse_range_bound(
    const uint8_t *p, size_t len, bool end, struct stream_id *id, struct reply *r);

/* Writes an ID as a bulk string "ms-seq". */
void stream_reply_id(struct reply *r, struct stream_id id);

/* Digest of the stream's contents (entries and last id). */
uint64_t stream_digest(const struct stream *s);

/* Serialization: appends the stream to out (0 or RR_ENOMEM); stream_load reads one from the
 * cursor (NULL on bad input, with the cursor marked bad, or out of memory: *err says which:
 * RR_ECORRUPT or RR_ENOMEM). Format version 2 (version 1 is still read); layout in stream.c. */
int stream_serialize(const struct stream *s, struct reply *out);
struct stream *stream_load(struct util_cursor *c, int *err);

/* Building a stream from a serialization one entry at a time (a streamed load): appends an
 * entry (data: field_count * (u32 length, bytes)); RR_ECORRUPT if its framing is bad, its
 * ID is 0-0 or not above the last entry's, RR_ENOMEM. Then stream_load_finish sets the last
 * ID ever added and the count of entries added (RR_ECORRUPT if last is below an entry or
 * added below the entries' count). */
int stream_load_entry(
    struct stream *s, struct stream_id id, uint32_t field_count, const uint8_t *data, uint32_t len);
int stream_load_finish(struct stream *s, struct stream_id last, uint64_t added);

/* The version-2 extension on its own (what follows the entries: u64 length, then XDEL's
 * record and the consumer groups), for loaders that build a stream piece by piece:
 * stream_ext_serialize appends it to out (overflow set when out cannot hold it);
 * stream_ext_load reads the ext_len bytes that follow the length into s, whose entries, last
 * ID and entries-added must be loaded already and which has no groups yet. 0, RR_ECORRUPT
 * (s unchanged) or RR_ENOMEM. */
void stream_ext_serialize(const struct stream *s, struct reply *out);
int stream_ext_load(struct stream *s, const uint8_t *p, size_t len);

#endif
