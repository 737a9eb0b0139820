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

/* Version byte at the start of a serialized stream (stream_serialize). */
#define STREAM_SERIAL_VERSION 1u

/* NULL when out of memory. */
struct stream *stream_create(void);
void stream_destroy(struct stream *s);

uint64_t stream_length(const struct stream *s);
/* The largest ID ever added (0-0 for a new stream): never decreases, even when entries are
 * deleted. */
struct stream_id stream_last_id(const struct stream *s);
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

/* Deletes the entry with this ID; true if there was one. */
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

/* Writes an ID as a bulk string "ms-seq". */
void stream_reply_id(struct reply *r, struct stream_id id);

/* Digest of the stream's contents (entries and last id). */
uint64_t stream_digest(const struct stream *s);

/* Serialization: appends the stream to out (0 or RR_ENOMEM); stream_load reads one from the
 * cursor (NULL on bad input, with the cursor marked bad, or out of memory: *err says which:
 * RR_ECORRUPT or RR_ENOMEM). */
int stream_serialize(const struct stream *s, struct reply *out);
struct stream *stream_load(struct util_cursor *c, int *err);

/* Building a stream from a serialization one entry at a time (a streamed load): appends an
 * entry (data: field_count * (u32 length, bytes)); RR_ECORRUPT if its framing is bad, its
 * ID is 0-0 or not above the last entry's, RR_ENOMEM. Then stream_load_finish sets the last
 * ID ever added and the count of entries added (RR_ECORRUPT if last is below an entry). */
int stream_load_entry(
    struct stream *s, struct stream_id id, uint32_t field_count, const uint8_t *data, uint32_t len);
int stream_load_finish(struct stream *s, struct stream_id last, uint64_t added);

#endif
