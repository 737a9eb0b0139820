/* Per-group snapshot files (format 3): an 8-byte magic, then checksummed records — a head
 * (group, index, term, configuration), data records carrying the state machine image in
 * order, and an end record committing to the image's length, record count and hash. The
 * framing below is pure (no I/O): the node writes files through its ring with it
 * (io/snapshot.c), sends them to followers byte for byte, and the follower checks every
 * record it receives with the same reader. The blocking helpers at the end are for start-up,
 * tests and tools. Layout and rules: the comment at the top of storage/snapshot.c and
 * docs/disk-format.md. */
#ifndef RR_STORAGE_SNAPSHOT_H
#define RR_STORAGE_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/types.h"

/* Bounds what one whole-file load (snapshot_load) allocates; streamed reads have no bound
 * but the caller's. */
#define SNAPSHOT_BYTES_MAX  (1ull << 30)
#define SNAPSHOT_CONFIG_MAX (16u << 10) /* an encoded raft_config is far smaller */

/* Record framing. A record is at most SNAPSHOT_RECORD_MAX bytes, so a reader buffers at most
 * that much of a record split across reads (or chunks). */
#define SNAPSHOT_MAGIC_BYTES        8u
#define SNAPSHOT_RECORD_HEADER      16u
#define SNAPSHOT_RECORD_PAYLOAD_MAX (64u << 10)
#define SNAPSHOT_RECORD_MAX         (SNAPSHOT_RECORD_HEADER + SNAPSHOT_RECORD_PAYLOAD_MAX)
#define SNAPSHOT_HEAD_BYTES         40u /* head payload before the configuration */
#define SNAPSHOT_END_BYTES          32u /* end payload */
_Static_assert(SNAPSHOT_HEAD_BYTES + SNAPSHOT_CONFIG_MAX <= SNAPSHOT_RECORD_PAYLOAD_MAX,
               "a head record holds the largest configuration");

enum snapshot_record_type {
    SNAPSHOT_REC_HEAD = 1,
    SNAPSHOT_REC_DATA = 2,
    SNAPSHOT_REC_END = 3,
};

/* What a snapshot covers. */
struct snapshot_head {
    raft_group group;
    raft_index index; /* last entry the snapshot covers */
    raft_term term;   /* its term */
    const uint8_t *config;
    uint32_t config_len; /* <= SNAPSHOT_CONFIG_MAX */
};

/* Checksum seed of a file's data and end records: ties them to (group, index, term), so a
 * record of another snapshot does not verify in this one. */
uint64_t snapshot_seed(raft_group group, raft_index index, raft_term term);

/* The file name of group's snapshot at index ("snap-<group 8 hex>-<index 16 hex>"). */
void snapshot_name(char *buf, size_t len, raft_group group, raft_index index);

/* ---- writing ------------------------------------------------------------------------- */

/* Frames an image into a file's bytes. `emit` receives the file's bytes in order (the magic
 * and head at init, whole records later); it must copy them. */
struct snapshot_writer {
    void (*emit)(void *ctx, const uint8_t *bytes, size_t len);
    void *ctx;
    uint64_t seed;         /* of data and end records */
    uint64_t offset;       /* file bytes emitted */
    uint64_t data_bytes;   /* image bytes framed so far */
    uint64_t data_records; /* data records emitted */
    void *hash;            /* XXH3 state over the image */
    uint8_t *rec;          /* the data record being filled (SNAPSHOT_RECORD_MAX bytes) */
    uint32_t rec_len;      /* payload bytes in rec */
};

/* Emits the magic and the head record. RR_ENOMEM, RR_ETOOBIG (configuration too large). */
int snapshot_writer_init(struct snapshot_writer *w,
                         const struct snapshot_head *h,
                         void (*emit)(void *ctx, const uint8_t *bytes, size_t len),
                         void *ctx);
/* Appends image bytes; emits each data record once full. */
void snapshot_writer_put(struct snapshot_writer *w, const void *p, size_t n);
/* Emits the last data record and the end record; `offset` is then the file size. */
void snapshot_writer_finish(struct snapshot_writer *w);
void snapshot_writer_free(struct snapshot_writer *w);

/* ---- reading ------------------------------------------------------------------------- */

/* Checks a file's bytes as they come, split anywhere: the magic, then every record's framing
 * and checksum, their order (head, data..., end), and the end record's totals. Passes the
 * head and then each data payload to the callbacks, which may refuse (a nonzero return is
 * returned by snapshot_reader_feed). After an error the reader accepts nothing more. */
struct snapshot_reader {
    int (*on_head)(void *ctx, const struct snapshot_head *h);
    int (*on_data)(void *ctx, const uint8_t *p, size_t n);
    void *ctx;
    uint64_t offset; /* file bytes consumed */
    uint8_t state;   /* private */
    int error;       /* the first error (sticky) */
    uint64_t seed;   /* of data and end records (once the head is read) */
    struct snapshot_head head;
    uint8_t *config;       /* the head's configuration (owned) */
    uint64_t data_bytes;   /* image bytes passed to on_data */
    uint64_t data_records; /* data records read */
    void *hash;            /* XXH3 state over the image */
    uint8_t *rec;          /* a record split across feeds (SNAPSHOT_RECORD_MAX bytes) */
    uint32_t rec_have;     /* bytes of it held */
    char why[160];         /* what was wrong, at which file offset */
};

int snapshot_reader_init(struct snapshot_reader *r,
                         int (*on_head)(void *ctx, const struct snapshot_head *h),
                         int (*on_data)(void *ctx, const uint8_t *p, size_t n),
                         void *ctx);
/* Consumes n bytes. 0, or RR_ECORRUPT / RR_EBADVERSION (r->why says what and where), or the
 * callbacks' error. Bytes after the end record are corrupt. */
int snapshot_reader_feed(struct snapshot_reader *r, const uint8_t *p, size_t n);
/* True once the end record was read and matched everything before it. */
bool snapshot_reader_done(const struct snapshot_reader *r);
void snapshot_reader_free(struct snapshot_reader *r);

/* For a sender: the longest prefix of buf (len bytes of the file at `offset`, offset being
 * the start of a record or 0) made of whole records that verify, magic included at offset 0.
 * `seed` is snapshot_seed() of the file. Returns that length (0 if the first record does not
 * fit), or RR_ECORRUPT if a whole record in buf fails its check. */
int64_t snapshot_whole_records(const uint8_t *buf, size_t len, uint64_t offset, uint64_t seed);

/* ---- blocking helpers (start-up, tests, tools) ----------------------------------------- */

struct snapshot {
    raft_group group;
    raft_index index; /* last entry the snapshot covers */
    raft_term term;   /* its term */
    uint8_t *config;  /* the group's configuration, opaque; malloc'ed by load */
    uint32_t config_len;
    uint8_t *data; /* the state machine image; malloc'ed by load */
    uint64_t data_len;
};

/* Writes dir/snap-<group>-<index> atomically and durably (temporary file, fsync, rename,
 * directory fsync). */
int snapshot_save(const char *dir, const struct snapshot *s, char *err, size_t err_len);

/* Loads the newest valid snapshot of group whole (damaged or unfinished files are skipped
 * and named in err). RR_ENOTFOUND if there is none; RR_EBADVERSION, naming the file and its
 * version in err, if the newest file that is not damaged has another format version: older
 * snapshots are then not tried. The caller frees with snapshot_free. */
int snapshot_load(
    const char *dir, raft_group group, struct snapshot *out, char *err, size_t err_len);
void snapshot_free(struct snapshot *s);

/* Indexes of group's snapshot files in dir, newest first (at most cap; returns the count, or
 * RR_EIO if the directory cannot be read). */
int snapshot_list(const char *dir, raft_group group, raft_index *indexes, uint32_t cap);

/* Streams the file of group's snapshot at index through a reader (blocking reads of 1 MiB).
 * 0 once the end record is read; RR_ENOTFOUND, RR_EIO, or the reader's error, with a
 * message naming the file in err. *file_bytes: the file's size. */
int snapshot_read_file(const char *dir,
                       raft_group group,
                       raft_index index,
                       struct snapshot_reader *r,
                       uint64_t *file_bytes,
                       char *err,
                       size_t err_len);

/* Deletes group's snapshots older than index, and leftover temporary files of group. */
int snapshot_prune(const char *dir, raft_group group, raft_index index);

#endif
