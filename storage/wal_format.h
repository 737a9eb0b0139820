/* The WAL's on-disk format: segment header and record encoding, checksums, limits. Shared by
 * the WAL, recovery and tools/ringraft-wal. This comment is the format's one description;
 * docs/disk-format.md renders it as tables and explains the choices.
 *
 * DIRECTORY. A LOCK file (flock'ed by the owning process), snapshot files (snapshot.c) and
 * segment files named exactly "wal-" and 16 lowercase hex digits, the sequence number
 * ("wal-000000000000002a"). Any other name is not a segment: never read, never deleted.
 * Segment names change (create, rename, unlink) only in issue order, each made durable with
 * a directory fsync before the next, so the segment files always form one contiguous run of
 * sequence numbers: a gap is damage.
 *
 * SEGMENT. A file of segment_bytes (zero-filled or fallocated when new, or a recycled
 * segment with stale records that fail their checksum under the new salt). All integers are
 * little-endian. Bytes 0..4095 are the header:
 *   0  u64 magic "RRALWSEG"      8 u32 format version (2)   12 u32 header bytes (4096)
 *   16 u64 cluster id           24 u32 node id             28 u32 worker id
 *   32 u32 group count (G)      36 u32 worker count (W)    40 u64 sequence number
 *   48 u64 segment bytes        56 u64 salt                64 u64 xxh3-64 of bytes 0..63
 * then zeros. salt = XXH3_64bits of the 40 bytes: u64 cluster id, u32 node id, u32 worker id,
 * u32 G, u32 W, u64 sequence number, u64 0x5a17. Since the salt follows from the identity and
 * the file name, records of a file whose header is damaged can still be verified.
 *
 * RECORD. From offset 4096, back to back, each 8-byte aligned:
 *   0  u64 checksum    8 u32 flush base   12 u32 payload_len   16 u16 magic 0x5257
 *   18 u8 type         19 u8 entry type   20 u32 group         24 u64 term   32 u64 index
 *   40 payload, then zero padding to a multiple of 8.
 * checksum = XXH3_64bits_withSeed(bytes 12 .. end of padding, salt) XOR m, where m is 0 for a
 * flush base of 0 and XXH3_64bits_withSeed(u32 flush base, salt) otherwise. The flush base is
 * set in the first record of each flush: the segment offset below which everything was
 * durable when that flush was submitted (>= 4096, <= the record's own offset); other records
 * carry 0. Types: 1 entry; 2 hard state (term, commit in index, vote as a u32 payload);
 * 3 truncate (the group's entries at index and above are gone); 4 compact (entries at index
 * and below are gone, term is the term at index); 5 seal (the segment ends here, the log
 * continues at the next sequence number). A record is valid when its magic, type and length
 * are plausible, it fits the file, and the checksum matches under this segment's salt.
 *
 * REPLAY (recovery rebuilds the index, appends update it the same way): records apply in
 * log order. An entry at index i of group g drops g's entries at i and above (the core may
 * rewrite a suffix), then appends. A truncation at i that empties g's log leaves it ending
 * at i - 1 (not below the snapshot), even if replay began above i with entries the truncation
 * superseded. The newest hard-state and compact records win. At the end every group's log,
 * empty or not, starts at snap_index + 1: entries go only by a durable compaction (a segment
 * is retired only once every record in it is superseded by a durable record), so anything
 * else means records are missing.
 *
 * RECOVERY. Segments are replayed in sequence order. Every segment but the newest holding
 * records ends with a seal. In the newest, the first invalid record at offset X ends the
 * data; that is a torn tail only if no valid record after X has a flush base above X (one
 * that has proves X was synced before a later flush began: corruption, refused). The valid
 * records of the torn flush after X are zeroed before appending resumes at X. The newest
 * file may be an unfinished spare: no usable header and no record valid under the salt its
 * name implies; it is removed. Anything else damaged is refused, naming file, offset and
 * group. A flush is proven synced only by a later flush's first record, so the torn window
 * is the last flush on disk, synced or not (at most WAL_FLUSH_BYTES_MAX), and with two
 * flushes in flight the one before it: a bit flip inside it is indistinguishable from a tear.
 */
#ifndef RR_STORAGE_WAL_FORMAT_H
#define RR_STORAGE_WAL_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/types.h"
#include "core/limits.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the format is little-endian and encoded with memcpy on a little-endian host");

#define WAL_SEGMENT_MAGIC  0x474553574c415252ULL /* "RRALWSEG" read as little-endian */
#define WAL_FORMAT_VERSION 2u                    /* 2: flush base in records; see wal.c */
#define WAL_RECORD_MAGIC   0x5257u /* "WR": a cheap first filter before the checksum */

/* The header occupies the first 4 KiB of a segment so records start page-aligned. */
#define WAL_SEGMENT_HEADER_BYTES 4096u
#define WAL_SEGMENT_HEADER_USED  72u /* bytes of the header covered by its checksum + 8 */

/* Record header: 40 bytes, then the payload, then zero padding to a multiple of 8. Field
 * offsets (the comment at the top of this file explains them): */
#define WAL_REC_OFF_CHECKSUM   0u
#define WAL_REC_OFF_FLUSH_BASE 8u
#define WAL_REC_OFF_LEN        12u
#define WAL_REC_OFF_MAGIC      16u
#define WAL_REC_OFF_TYPE       18u
#define WAL_REC_OFF_ENTRY_TYPE 19u
#define WAL_REC_OFF_GROUP      20u
#define WAL_REC_OFF_TERM       24u
#define WAL_REC_OFF_INDEX      32u
/* The checksum covers bytes 12..end; the flush base is folded into it separately so that it
 * can be set when the flush is planned, without hashing the record again. */
#define WAL_REC_HASHED_FROM     12u
#define WAL_RECORD_HEADER_BYTES 40u
#define WAL_RECORD_ALIGN        8u

/* Largest payload of one record: one Raft entry at its limit. */
#define WAL_PAYLOAD_MAX RAFT_ENTRY_BYTES_MAX
#define WAL_RECORD_MAX  (WAL_RECORD_HEADER_BYTES + WAL_PAYLOAD_MAX + WAL_RECORD_ALIGN)

/* Bytes of one flush (one write + one data sync). Also the width of the torn-tail window
 * recovery accepts at the end of the newest segment (the last flush: see above). */
#define WAL_FLUSH_BYTES_MAX (2u << 20)

/* Segment size bounds: large enough for a maximal record plus a seal, small enough that
 * record offsets fit 32 bits. */
#define WAL_SEGMENT_BYTES_MIN     (64u << 10)
#define WAL_SEGMENT_BYTES_MAX     (1ull << 32)
#define WAL_SEGMENT_BYTES_DEFAULT (64ull << 20)

_Static_assert(WAL_RECORD_MAX < WAL_FLUSH_BYTES_MAX, "a record must fit one flush");
_Static_assert(WAL_SEGMENT_HEADER_USED <= WAL_SEGMENT_HEADER_BYTES, "header fits its page");

enum wal_record_type {
    WAL_REC_ENTRY = 1,      /* a Raft entry: term, index, entry type, payload */
    WAL_REC_HARD_STATE = 2, /* term in term, commit in index, vote in a 4-byte payload */
    WAL_REC_TRUNCATE = 3,   /* entries at index and above are removed */
    WAL_REC_COMPACT = 4,    /* entries at index and below are removed; term = term at index */
    WAL_REC_SEAL = 5,       /* end of this segment: the log continues in the next one */
};

struct wal_segment_header {
    uint32_t version;       /* WAL_FORMAT_VERSION */
    uint64_t cluster_id;    /* chosen at cluster creation */
    uint32_t node_id;       /* this node */
    uint32_t worker_id;     /* worker owning the WAL, < worker_count */
    uint32_t group_count;   /* G of the cluster */
    uint32_t worker_count;  /* W of the cluster */
    uint64_t seq;           /* segment sequence number, from 1, increasing */
    uint64_t segment_bytes; /* file size, header included */
    uint64_t salt;          /* seeds every record checksum of this segment */
};

/* A decoded record header; payload points into the caller's buffer. */
struct wal_record {
    uint8_t type;         /* enum wal_record_type */
    uint8_t entry_type;   /* opaque to the WAL (the core's entry type) */
    uint32_t group;       /* Raft group id */
    uint32_t payload_len; /* bytes of payload */
    raft_term term;
    raft_index index;
    uint32_t flush_base; /* 0, or the segment offset durable when its flush was submitted */
    const uint8_t *payload;
};

/* Salt of a segment: mixes identity and sequence so a record copied from another node,
 * worker or segment (or left over in a reused file) fails its checksum. */
uint64_t wal_segment_salt(const struct wal_segment_header *h);

/* Encodes h into buf[WAL_SEGMENT_HEADER_BYTES] (unused bytes zero). */
void wal_segment_header_encode(const struct wal_segment_header *h, uint8_t *buf);
/* Decodes buf[WAL_SEGMENT_HEADER_BYTES]: RR_ECORRUPT on bad magic or checksum,
 * RR_EBADVERSION on an unknown version. */
int wal_segment_header_decode(const uint8_t *buf, struct wal_segment_header *h);

/* Total on-disk bytes of a record with payload_len bytes of payload (8-aligned). */
static inline uint32_t wal_record_size(uint32_t payload_len)
{
    uint32_t raw = WAL_RECORD_HEADER_BYTES + payload_len;
    return (raw + WAL_RECORD_ALIGN - 1u) & ~(WAL_RECORD_ALIGN - 1u);
}

/* Encodes r (with r->payload_len bytes at r->payload) into buf[wal_record_size(len)]. */
void wal_record_encode(const struct wal_record *r, uint64_t salt, uint8_t *buf);

/* Decodes the record at buf, of which avail bytes are readable. Returns its total size, or
 * RR_ETRUNCATED if it claims more than avail, RR_ECORRUPT if the header is implausible or the
 * checksum does not match. */
int64_t
wal_record_decode(const uint8_t *buf, uint64_t avail, uint64_t salt, struct wal_record *out);

/* Fields of an encoded record header, unverified (for walking records already known to be
 * valid, and for naming the group a damaged record claims). */
uint32_t wal_record_peek_size(const uint8_t *hdr);
uint8_t wal_record_peek_type(const uint8_t *hdr);
uint32_t wal_record_peek_group(const uint8_t *hdr);
bool wal_record_peek_magic(const uint8_t *hdr);

/* The first record at or after offset from (in 8-byte steps) of buf[0, len) that is valid
 * under salt: its offset (decoded into r), or 0 if there is none. */
uint64_t wal_record_find_valid(
    const uint8_t *buf, uint64_t from, uint64_t len, uint64_t salt, struct wal_record *r);

/* Sets the flush base of the encoded record whose first 16 header bytes are hdr, keeping
 * its checksum valid (the rest of the record is not read). */
void wal_record_set_flush_base(uint8_t *hdr, uint32_t flush_base, uint64_t salt);

const char *wal_record_type_name(uint8_t type);

/* Segment file names are exactly "wal-" and 16 lowercase hex digits. Returns true and the
 * sequence number for such a name, false for anything else (which is never a segment). */
bool wal_segment_name_parse(const char *name, uint64_t *seq);

#endif
