/* The per-worker write-ahead log: all of one worker's Raft groups append to it, flushes are
 * driven through the worker's own io_uring and batched by a selectable strategy. */
#ifndef RR_STORAGE_WAL_H
#define RR_STORAGE_WAL_H

#include <liburing.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/base/histogram.h"
#include "core/base/types.h"

struct wal;

/* Batching strategy (DESIGN.md §4). One flush (write + data sync) is in flight at a time,
 * or two with cfg.flushes_in_flight = 2; either way persist units complete in submission
 * order, acknowledged only once every earlier flush is durable too. */
enum wal_strategy_kind {
    WAL_STRATEGY_NONE,     /* one record per write + sync: the baseline */
    WAL_STRATEGY_FIXED,    /* flush when param records are queued, or after max_delay_us */
    WAL_STRATEGY_LINGER,   /* hold the first queued record param microseconds */
    WAL_STRATEGY_ADAPTIVE, /* flush whatever is queued whenever no flush is in flight */
};

struct wal_strategy {
    enum wal_strategy_kind kind;
    uint32_t param;        /* fixed: records per flush; linger: microseconds; else 0 */
    uint32_t max_delay_us; /* fixed: bound on a record's wait (0 means 1000) */
};

/* Parses "none", "fixed:N", "linger:USEC" or "adaptive". RR_EINVAL if malformed. */
int wal_strategy_parse(const char *text, struct wal_strategy *out);
/* Writes the canonical text of s ("fixed:8") into buf; returns buf. */
const char *wal_strategy_format(const struct wal_strategy *s, char *buf, size_t len);

/* How the durable path is issued (docs/storage.md records the measurement behind the
 * default). */
enum wal_sync_method {
    WAL_SYNC_LINKED_FDATASYNC, /* write linked to IORING_OP_FSYNC + IORING_FSYNC_DATASYNC */
    WAL_SYNC_RWF_DSYNC,        /* one writev with RWF_DSYNC */
};

/* How segments are prepared ahead of use. */
enum wal_prep_method {
    WAL_PREP_ZERO,      /* write zeros over the whole file, then fsync: no unwritten extents */
    WAL_PREP_FALLOCATE, /* fallocate only: cheaper to prepare, costlier first writes on ext4 */
};

/* Flushes in flight at once, at most (cfg.flushes_in_flight chooses 1 or 2). */
#define WAL_FLUSHES_MAX 2

/* The io_uring user_data of every SQE the WAL submits has this value in its top 8 bits:
 * the caller routes CQEs whose top byte equals its configured tag to wal_handle_cqe(). */
#define WAL_USER_DATA_TAG_SHIFT 56

/* The WAL's contacts with the kernel beyond filling SQEs (docs/node.md "The kernel seam"):
 * taking an SQE, submitting when its SQEs do not fit, the monotonic clock and closing a
 * file in the loop. The owner that drives the ring passes its own (the node: io/kernel.c's,
 * a simulator: its simulated ring's); each function gets ctx back. Start-up (wal_open's
 * recovery) and wal_close use ordinary blocking calls. */
struct wal_kernel {
    void *ctx;
    struct io_uring_sqe *(*get_sqe)(void *ctx); /* a free SQE, NULL when the SQ is full */
    unsigned (*sq_space_left)(void *ctx);
    int (*submit)(void *ctx); /* hands the queued SQEs to the kernel: io_uring_submit's result */
    uint64_t (*now_ns)(void *ctx); /* monotonic, in nanoseconds */
    int (*close)(void *ctx, int fd);
};

/* The seam on ring itself (liburing, CLOCK_MONOTONIC, close(2)): for owners that drive
 * a ring directly (tests, tools, benchmarks); storage/wal_kernel.c. */
struct wal_kernel wal_kernel_ring(struct io_uring *ring);

struct wal_config {
    /* The owner's kernel seam, copied at open; NULL: wal_kernel_ring() on the ring given to
     * wal_open. */
    const struct wal_kernel *kernel;
    const char *dir;     /* data directory of this worker's WAL (created if missing) */
    uint64_t cluster_id; /* identity, checked against every segment header */
    uint32_t node_id;
    uint32_t worker_id;       /* < worker_count */
    uint32_t group_count;     /* G; groups g with g % worker_count == worker_id live here */
    uint32_t worker_count;    /* W */
    uint64_t segment_bytes;   /* 0: WAL_SEGMENT_BYTES_DEFAULT */
    uint32_t cache_bytes;     /* ring of recent records (power of two, 0: 16 MiB) */
    uint8_t user_data_tag;    /* top byte of every user_data (nonzero) */
    uint8_t iowq_max_workers; /* bound io-wq workers of the ring (0: leave the ring alone) */
    struct wal_strategy strategy;
    enum wal_sync_method sync_method;
    enum wal_prep_method prep_method;
    uint8_t flushes_in_flight; /* 1..WAL_FLUSHES_MAX (0: the default, 1); docs/storage.md */
    /* Flushes write through a second, O_DIRECT descriptor of the active segment, whole
     * 4 KiB blocks from an aligned buffer, where the filesystem allows it (docs/storage.md
     * "Direct I/O"); wal_direct_io() tells whether it is in use. */
    bool direct_io;
};

struct wal_entry {
    raft_term term;
    raft_index index;
    uint8_t type;     /* opaque to the WAL */
    uint32_t len;     /* payload bytes, <= WAL_PAYLOAD_MAX */
    const void *data; /* payload; copied by wal_append */
};

struct wal_hard_state {
    raft_term term;
    raft_node vote;
    raft_index commit;
};

/* What recovery (and later appends) know of one group. */
struct wal_group_info {
    raft_index first_index;   /* first retained entry (snap_index + 1 if none) */
    raft_index last_index;    /* last entry; first_index - 1 when the log is empty */
    raft_index snap_index;    /* entries up to here were compacted away (0: none) */
    raft_term snap_term;      /* term of entry snap_index */
    struct wal_hard_state hs; /* latest hard state; all zero if none */
    uint64_t bytes;           /* record bytes of retained entries */
};

/* Called once the persist unit is durable (status 0) or has failed (negative code: the unit
 * is not durable and never will be; a fatal error also fails every later unit). */
typedef void (*wal_persist_cb)(void *arg, int status);

struct wal_stats {
    uint64_t records;           /* records made durable */
    uint64_t bytes;             /* record bytes made durable */
    uint64_t flushes;           /* completed write + sync pairs */
    uint64_t overlapped;        /* flushes started while an earlier one was in flight */
    uint64_t units;             /* persist units acknowledged */
    uint64_t cache_hits;        /* entries read from the in-memory ring */
    uint64_t disk_reads;        /* entries read from segment files */
    uint64_t segments_created;  /* new files, zero-filled or fallocated */
    uint64_t segments_recycled; /* retired files renamed into spares (no zero-fill) */
    uint64_t segments_deleted;
    uint64_t short_writes;          /* writes the kernel completed partially, then resumed */
    uint64_t deferred;              /* times the SQ had no room and work waited a submit */
    struct histogram batch_records; /* records per flush */
    struct histogram batch_bytes;   /* bytes per flush */
    struct histogram flush_ns;      /* submission of a flush to its sync completing */
    struct histogram queue_ns;      /* a unit's wait from wal_append to its flush starting */
};

/* What recovery found and did, for the operator's log (wal_recovery_report). */
struct wal_recovery {
    uint32_t segments;         /* segment files replayed */
    uint32_t stray_files;      /* "wal-*" names that are not segment names: ignored, kept */
    char first_stray[64];      /* one of them, for the log */
    uint64_t torn_bytes;       /* bytes of a torn last flush dropped from the newest segment */
    uint64_t torn_offset;      /* where the tear began (0: no tear) */
    uint64_t torn_seq;         /* in which segment */
    uint32_t unfinished_spare; /* 1 when a spare whose preparation a crash interrupted, holding
                                * no record, was removed */
};
const struct wal_recovery *wal_recovery_report(const struct wal *wal);

/* Opens (recovering) or creates the WAL in cfg->dir and prepares its first segment; blocks
 * (start-up only). Takes an exclusive lock on the directory. On error returns a negative
 * code and writes a message naming the file, offset and group into err. */
int wal_open(const struct wal_config *cfg,
             struct io_uring *ring,
             struct wal **out,
             char *err,
             size_t err_len);

/* Closes files and frees memory. Units not yet durable are dropped without callback. The
 * kernel must no longer touch the WAL's buffers: either wal_busy() is false, or the caller
 * has reaped (or torn down the ring and waited for) every SQE the WAL submitted. */
void wal_close(struct wal *wal);

/* True while SQEs of the WAL are in flight (the caller keeps reaping before wal_close). */
bool wal_busy(const struct wal *wal);

/* Queues one persist unit for group: the optional hard state, then n entries with
 * consecutive indexes. entries[0].index may be at or below the group's last index: the log
 * from that index on is replaced (truncate then append). Returns 0, RR_EBUSY (ring, unit
 * table or spare segment full: retry after completions), RR_EINVAL, RR_ECOMPACTED,
 * RR_ENOSPACE (no segment could be prepared), or the WAL's fatal error. cb may be NULL. */
int wal_append(struct wal *wal,
               raft_group group,
               const struct wal_hard_state *hs,
               const struct wal_entry *entries,
               uint32_t n,
               wal_persist_cb cb,
               void *arg);

/* Removes group's entries at index and above (log conflict). Durable like a unit. */
int wal_truncate(struct wal *wal, raft_group group, raft_index index, wal_persist_cb cb, void *arg);

/* Forgets group's entries up to index (covered by a durable snapshot whose last entry has
 * term). Segments nobody needs any more are deleted once this is durable. */
int wal_compact(struct wal *wal,
                raft_group group,
                raft_index index,
                raft_term term,
                wal_persist_cb cb,
                void *arg);

/* Ends a loop iteration: applies the strategy and prepares SQEs; the caller then submits. */
void wal_submit(struct wal *wal);

/* Gives the cache's pages back to the kernel when the WAL has been idle: nothing was
 * appended since the previous call and everything written is durable. The cache then holds
 * nothing (later reads of those entries go to the segment files) and fills again from the
 * next append; the persist units' table, empty then, gives its pages back too. Meant to be
 * called about once a second: a node whose groups are quiesced writes nothing for long
 * stretches, and the pages touched by an earlier burst (up to cache_bytes, and the units
 * it queued) would otherwise stay resident. Returns the bytes released (0: not idle, or
 * nothing written since the last release). */
size_t wal_release_cache(struct wal *wal);

/* Handles a CQE whose user_data carries the WAL's tag; may run callbacks and prepare SQEs.
 * Returns 0, or the fatal error that stopped the WAL. */
int wal_handle_cqe(struct wal *wal, const struct io_uring_cqe *cqe);

/* Fatal error (negative) once one happened, else 0; wal_error_message() explains it. */
int wal_error(const struct wal *wal);
const char *wal_error_message(const struct wal *wal);

int wal_group_info(const struct wal *wal, raft_group group, struct wal_group_info *out);

/* Reading a group's index range. The caller owns the request and its buffer until the
 * callback (or a synchronous return). */
#define WAL_READ_ENTRIES_MAX 256

struct wal_read;
typedef void (*wal_read_cb)(struct wal_read *rd);

struct wal_read {
    raft_group group; /* in */
    raft_index lo;    /* in: first index wanted */
    raft_index hi;    /* in: last index wanted (inclusive) */
    uint8_t *buf;     /* in: receives the records */
    size_t buf_len;   /* in: at least one record's size, else RR_ETOOBIG */
    wal_read_cb cb;   /* in: called when a pending read completes */
    void *arg;        /* in: for the callback */
    int status;       /* out: 0 or a negative code */
    uint32_t count;   /* out: entries delivered from lo (stops early when buf is full) */
    struct wal_entry entries[WAL_READ_ENTRIES_MAX]; /* out: payloads point into buf */
    uint32_t pending;                               /* private: disk reads in flight */
    uint32_t slot;                                  /* private */
};

/* Starts reading [lo, hi] of rd->group. Returns 0 if the read completed synchronously
 * (every entry was cached; no callback), 1 if disk reads are in flight (callback later), or
 * a negative code (RR_ECOMPACTED, RR_EUNAVAILABLE past the last index, RR_EBUSY). */
int wal_read(struct wal *wal, struct wal_read *rd);
/* Same, but reads the disk with blocking preads (start-up, tools, tests). */
int wal_read_blocking(struct wal *wal, struct wal_read *rd);

/* The group whose first retained entry lies in the oldest segment, and that entry's
 * index: snapshotting and compacting that group lets the segment go. RR_ENOTFOUND when no
 * group's entries pin a segment other than the active one. */
int wal_oldest_pin(const struct wal *wal, raft_group *group, raft_index *index);
/* Every group whose first retained entry lies in that oldest segment (up to cap, in group
 * order), with that entry's index: all of them must be compacted for the segment to go.
 * Returns the count (0 as wal_oldest_pin's RR_ENOTFOUND). O(groups of the worker). */
uint32_t
wal_oldest_pins(const struct wal *wal, raft_group *groups, raft_index *indexes, uint32_t cap);

/* Number of segment files, active and spare included, and bytes they occupy on disk. */
uint32_t wal_segment_count(const struct wal *wal);
uint64_t wal_disk_bytes(const struct wal *wal);

/* Changes the strategy at run time (takes effect at the next wal_submit). */
void wal_set_strategy(struct wal *wal, const struct wal_strategy *s);
/* Whether flushes use direct I/O: cfg.direct_io and a filesystem that accepts O_DIRECT. */
bool wal_direct_io(const struct wal *wal);

const struct wal_stats *wal_stats(const struct wal *wal);
void wal_stats_reset(struct wal *wal);

/* Bytes of memory the in-memory index uses per retained entry (documented bound). */
size_t wal_index_bytes_per_entry(void);

#endif
