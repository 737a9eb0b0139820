/* Internal state of the WAL shared by wal.c (append, dispatch, open), wal_index.c (the
 * in-memory index), wal_flush.c (flushing), wal_read.c (reads), wal_segment.c (files,
 * preparation, deletion, lifetime) and wal_recover.c (start-up scan). Not for use outside
 * storage/. */
#ifndef RR_STORAGE_WAL_INTERNAL_H
#define RR_STORAGE_WAL_INTERNAL_H

#include <sys/uio.h>

#include "core/base/assert.h"
#include "storage/wal.h"
#include "storage/wal_format.h"
#include "storage/wal_testing.h"

/* Segment files open at once (active, spare and older ones kept for lagging groups). */
#define WAL_SEGMENTS_MAX 4096
/* Persist units queued and not yet acknowledged. */
#define WAL_UNITS_MAX 16384
/* Concurrent asynchronous reads. */
#define WAL_READS_MAX 64
/* Retired segments kept (not deleted) so that the next rotation recycles one instead of
 * creating and zero-filling a file. */
#define WAL_RECYCLE_POOL 2
/* Zero-fill chunk of segment preparation: one write SQE each. */
#define WAL_PREP_CHUNK          (1u << 18)
#define WAL_CACHE_BYTES_DEFAULT (16u << 20)
/* Bytes of each segment that entries leave to maintenance records (see wal_reserve()). */
#define WAL_MAINT_RESERVE (4u << 10)
#define WAL_ERR_LEN       256
#define WAL_NO_LSN        UINT64_MAX

/* The kind of an SQE, in bits 48..55 of its user_data. */
enum wal_op {
    WAL_OP_WRITE = 1,
    WAL_OP_SYNC = 2,
    WAL_OP_TIMER = 3,
    WAL_OP_READ = 4,
    WAL_OP_META = 5,         /* a step of segment maintenance (wal_segment.c) */
    WAL_OP_TIMER_REMOVE = 6, /* cancels the strategy's timer */
};

/* Where one retained entry lives: 24 bytes per entry (wal_index_bytes_per_entry). */
struct wal_loc {
    raft_term term; /* the entry's term */
    uint64_t lsn;   /* log position of its record (see wal.c) */
    uint32_t size;  /* record bytes on disk */
    uint8_t type;   /* entry type, opaque */
};

struct wal_group_state {
    raft_index first_index; /* index of locs[head]; snap_index + 1 when empty */
    uint32_t head;          /* deque of locations: locs[(head + i) % cap] is first + i */
    uint32_t count;         /* retained entries */
    uint32_t cap;           /* capacity of locs, a power of two or 0 */
    struct wal_loc *locs;
    raft_index snap_index; /* compacted up to here */
    raft_term snap_term;
    uint64_t snap_lsn; /* lsn of the newest COMPACT record; WAL_NO_LSN if none */
    struct wal_hard_state hs;
    uint64_t hs_lsn; /* lsn of the newest hard-state record; WAL_NO_LSN if none */
    uint64_t bytes;  /* record bytes of retained entries */
};

struct wal_segment {
    uint64_t seq; /* sequence number, in the file name */
    int fd;
    int dfd;             /* the same file opened O_DIRECT, for flushes; -1: flushes use fd */
    uint64_t salt;       /* checksum seed of its records */
    uint64_t bytes;      /* file size */
    uint64_t lsn_start;  /* lsn of the first record byte (file offset WAL_SEGMENT_HEADER_BYTES) */
    uint64_t lsn_end;    /* one past the last record (the seal once sealed) */
    uint64_t lsn_limit;  /* lsn_start + bytes - header: records must end at or before */
    uint64_t retire_lsn; /* WAL_NO_LSN while needed; else it is handed to maintenance
                          * (recycling or deletion) once durable reaches this lsn */
    uint32_t reads;      /* disk reads in flight: retirement waits for them */
    bool sealed;         /* a SEAL record ends it */
};

/* A segment no group needs any more, waiting to be recycled or deleted, oldest first. */
struct wal_retired {
    uint64_t seq;
    int fd;
    uint64_t bytes;
};

struct wal_unit {
    uint64_t end_lsn;   /* durable once the flushed prefix reaches this */
    uint64_t queued_ns; /* when wal_append queued it */
    wal_persist_cb cb;
    void *arg;
};

struct wal_flush {
    bool active; /* a write + sync is in flight */
    bool done;   /* synced, waiting for an earlier flush to be durable too */
    bool write_done;
    bool sync_done;
    bool short_write;    /* resubmit the remainder once the (cancelled) sync completes */
    bool sync_cancelled; /* the linked sync did not run: write and sync again */
    bool resubmit;       /* the ring had no room for the write: wal_submit retries */
    int write_res;       /* error of the write, if any */
    uint64_t seq;        /* sequence number of the segment it writes */
    uint64_t lo, hi;     /* lsn range of the flush */
    uint64_t cur;        /* lsn the current write starts at (lo, or past a short write) */
    uint32_t records;
    uint64_t started_ns;
    struct iovec iov[2];
    /* Direct I/O (dio_len > 0): the write covers the file's whole blocks [dio_off, dio_off +
     * dio_len) from the flush's aligned buffer, built once when the flush is planned and
     * written whole again after a short write. */
    uint64_t dio_off;
    uint32_t dio_len;
};

/* Direct I/O writes whole blocks of this size from buffers aligned to it. */
#define WAL_DIO_ALIGN 4096u
/* One flush's aligned buffer: its records, the block before them and the padding after. */
#define WAL_DIO_BUF_BYTES (WAL_FLUSH_BYTES_MAX + 2u * WAL_DIO_ALIGN)
_Static_assert(WAL_SEGMENT_HEADER_BYTES % WAL_DIO_ALIGN == 0, "records start on a block");

/* The spare: the segment that becomes active when the active one fills. */
enum wal_prep_state {
    WAL_PREP_IDLE,    /* none, and no job prepares one */
    WAL_PREP_RUNNING, /* a maintenance job creates or recycles it */
    WAL_PREP_READY,   /* durable (file, header and name) and may become active */
    WAL_PREP_FAILED,  /* error tells why; retried once a segment is retired or deleted */
};

/* A spare whose preparation failed is tried again after this long even when no segment
 * is retired meanwhile (space may have been freed by someone else). */
#define WAL_PREP_RETRY_NS 100000000ull

struct wal_prep {
    enum wal_prep_state state;
    int error;
    uint64_t failed_ns; /* when it failed (wal_now_ns) */
    int fd;
    int dfd; /* O_DIRECT descriptor when direct I/O is in use; else -1 */
    uint64_t seq;
    uint64_t bytes;
    uint8_t *header; /* encoded header, WAL_SEGMENT_HEADER_BYTES */
};

/* Segment maintenance: one job at a time, one SQE at a time, every metadata operation
 * (create, rename, unlink) followed by a directory fsync before the next one starts, so the
 * segment names on disk always form a contiguous run of sequence numbers (wal_segment.c). */
enum wal_meta_job {
    WAL_JOB_NONE,
    WAL_JOB_CREATE,  /* open, zero-fill or fallocate, header, fsync file, fsync directory */
    WAL_JOB_RECYCLE, /* rename the oldest retired file, fsync directory, header, fsync file */
    WAL_JOB_DELETE,  /* unlink the oldest retired file (closed first), fsync directory */
    WAL_JOB_DISCARD, /* unlink a file whose creation failed, fsync directory */
};

struct wal_meta {
    enum wal_meta_job job;
    uint8_t step;      /* index into the job's list of steps */
    bool deferred;     /* no SQE could be had: wal_submit retries */
    int fd;            /* the file the job works on */
    int dfd;           /* its O_DIRECT descriptor, once opened (direct I/O); else -1 */
    int discard_error; /* WAL_JOB_DISCARD: the error the spare fails with */
    uint64_t seq;      /* its sequence number once the job is done */
    uint64_t bytes;
    uint64_t done;     /* bytes zero-filled so far */
    uint64_t pushed;   /* of those, bytes written back (sync_file_range) */
    char old_name[32]; /* paths are read by the kernel at submission: they live here */
    char new_name[32];
};

struct wal_read_slot {
    struct wal_read *rd;                 /* NULL when free */
    uint64_t seq[WAL_READ_ENTRIES_MAX];  /* segment of each entry */
    uint32_t pos[WAL_READ_ENTRIES_MAX];  /* offset of each record in rd->buf */
    uint32_t size[WAL_READ_ENTRIES_MAX]; /* record size */
    uint32_t run[WAL_READ_ENTRIES_MAX];  /* at a disk read's first entry: its bytes (adjacent
                                          * records of one segment share one read) */
};

struct wal {
    struct wal_config cfg;
    struct io_uring *ring;
    struct wal_kernel kernel; /* every kernel contact of the loop's WAL code goes here */
    char *dir;
    int dir_fd;
    int lock_fd;
    uint64_t user_tag; /* cfg.user_data_tag << 56 */

    uint32_t local_groups; /* groups of this worker */
    struct wal_group_state *groups;

    struct wal_segment segs[WAL_SEGMENTS_MAX];
    uint32_t seg_count; /* segs[seg_count - 1] is the active segment */
    uint64_t next_seq;  /* sequence number of the next segment to prepare */
    struct wal_prep prep;
    struct wal_meta meta;
    struct wal_retired retired[WAL_SEGMENTS_MAX]; /* FIFO: retired[(retired_head + i) % max] */
    uint32_t retired_head;
    uint32_t retired_count;

    uint8_t *ring_buf; /* cache_bytes ring: byte at lsn L lives at L & ring_mask */
    uint64_t ring_mask;
    uint64_t ring_lo;           /* oldest lsn still held by the ring */
    uint64_t release_seen_head; /* wal_release_cache: head at its previous call */
    uint64_t release_done_head; /* head when the ring's pages were last given back */
    uint8_t *scratch;           /* WAL_RECORD_MAX bytes for records that wrap the ring */
    uint8_t *zeros;             /* WAL_PREP_CHUNK zero bytes */

    /* Direct I/O (docs/storage.md): in use, each flush slot's aligned buffer, and the file
     * bytes of the block that the last planned flush ended in, up to its end: the next
     * flush rewrites that block whole. */
    bool direct;
    uint8_t *dio_bufs; /* WAL_FLUSHES_MAX * WAL_DIO_BUF_BYTES, WAL_DIO_ALIGN-aligned */
    uint8_t dio_tail[WAL_DIO_ALIGN];
    uint64_t dio_tail_seq; /* segment of the block */
    uint64_t dio_tail_off; /* file offset of the block */
    uint32_t dio_tail_len; /* bytes of it held */

    uint64_t head;           /* lsn where the next record is encoded */
    uint64_t durable;        /* everything below is written and synced */
    uint64_t queued_records; /* records in [durable, head) not yet in a flush */
    bool collect_wanted;     /* a record that moves pins was queued, or a retirement waits */

    struct wal_unit units[WAL_UNITS_MAX];
    uint32_t unit_head; /* oldest unacknowledged unit */
    uint32_t unit_count;
    uint32_t unit_started; /* units whose queueing delay was recorded */
    uint64_t append_ns;    /* clock read by the first unit queued since the last
                            * wal_submit or CQE (0: read it again) */

    struct wal_flush flushes[WAL_FLUSHES_MAX]; /* FIFO: flushes[(flush_head + i) % MAX] */
    uint32_t flush_head;
    uint32_t flush_count; /* flushes in flight (planned and not yet durable) */
    uint32_t flush_max;   /* cfg.flushes_in_flight, 1 or 2 */
    struct wal_strategy strategy;
    bool timer_armed;
    bool timer_fired;
    uint32_t timer_gen;
    struct __kernel_timespec timer_ts;

    struct wal_read_slot reads[WAL_READS_MAX];
    uint32_t reads_active;
    uint32_t inflight; /* SQEs prepared and not yet completed */

    struct wal_recovery recovery;
    int error; /* fatal error; 0 while healthy */
    char error_msg[WAL_ERR_LEN];
    struct wal_stats stats;
};

/* The index's deque of locations (wal_index.c), read elsewhere too. */

/* Index of the newest retained entry (first_index - 1 when none is retained). */
static inline raft_index gs_last(const struct wal_group_state *gs)
{
    return gs->first_index + gs->count - 1;
}

/* The location of a retained entry. */
static inline struct wal_loc *gs_loc(const struct wal_group_state *gs, raft_index index)
{
    RR_ASSERT(index >= gs->first_index);
    RR_ASSERT(index - gs->first_index < gs->count);
    uint32_t i = (uint32_t)(index - gs->first_index);
    return &gs->locs[(gs->head + i) & (gs->cap - 1u)];
}

/* wal.c */
uint64_t wal_now_ns(struct wal *wal);
/* Closes fd through the kernel seam (loop code). */
void wal_close_fd(struct wal *wal, int fd);
void wal_fail(struct wal *wal, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* True when n SQEs can be had now (submitting what is queued if the SQ is full); false if
 * the ring cannot take them, and the caller defers its work to a later wal_submit. */
bool wal_sq_room(struct wal *wal, unsigned n);
/* An SQE tagged with op and id; the caller made sure of room with wal_sq_room. */
struct io_uring_sqe *wal_sqe(struct wal *wal, enum wal_op op, uint64_t id);
struct wal_group_state *wal_group(const struct wal *wal, raft_group group);
/* Copies len bytes at lsn out of the ring (the caller checked they are held). */
void wal_ring_read(const struct wal *wal, uint64_t lsn, uint8_t *dst, uint32_t len);
/* Room for bytes of records in the active segment (sealing it if need be); 0 or an error. */
int wal_reserve(struct wal *wal, uint64_t bytes, bool maint);
/* Queues a hard-state record of group and indexes it; room was reserved. */
int wal_put_hard_state(struct wal *wal, raft_group group, const struct wal_hard_state *hs);
/* Queues a truncate or compact record of group and indexes it; room was reserved. */
int wal_put_marker(
    struct wal *wal, raft_group group, uint8_t type, raft_index index, raft_term term);

/* wal_index.c */
/* First capacity of a group's deque, and the floor shrinking stops at. Small: an idle group
 * retains a few entries (its leaders' no-ops), and every group of the node has a deque. */
#define WAL_INDEX_SLOTS_MIN 4u
/* Allocates a group's first deque. wal_open does it for every group, one after the other:
 * their first appends come as the node's groups all elect at once, among thousands of
 * short-lived allocations, and long-lived arrays allocated then pin the heap's pages after
 * those are freed. */
int wal_index_init(struct wal_group_state *gs);
/* Recovery replays records through these, as appends do. */
int wal_apply_record(struct wal *wal, const struct wal_record *r, uint64_t lsn, uint32_t size);
/* An entry after a gap in its group's log (wal_apply_record returned RR_EUNAVAILABLE):
 * legal in recovery only if a later compact record covers the gap, because the segment
 * holding the missing entries was deleted after that compaction was durable. Restarts the
 * group's retained entries at r->index. */
int wal_apply_gap(struct wal *wal, const struct wal_record *r, uint64_t lsn, uint32_t size);
/* Gives a group's deque memory back once compaction left it mostly empty. */
void wal_index_shrink(struct wal_group_state *gs);
/* Lowest lsn any group still needs; *entries_pin: whether entries pin below limit. */
uint64_t wal_index_lowest_pin(const struct wal *wal, uint64_t limit, bool *entries_pin);

/* wal_flush.c */
/* Starts a flush if none is in flight and the strategy wants one (or resubmits a write). */
void wal_flush_maybe(struct wal *wal);
/* After a fatal error, fails every queued unit once no flush is in flight. */
void wal_fail_units(struct wal *wal);
/* Completion handlers of the flush's write, its sync and the strategy's timer. */
void wal_flush_handle_write(struct wal *wal, uint64_t id, int res);
void wal_flush_handle_sync(struct wal *wal, uint64_t id, int res);
void wal_flush_handle_timer(struct wal *wal, uint64_t gen);

/* wal_read.c */
/* Completion handler of one disk read of an asynchronous wal_read. */
void wal_read_handle(struct wal *wal, uint64_t id, int res);
/* Reads len bytes at off with blocking preads (start-up, tools): 0, RR_ETRUNCATED at end of
 * file, RR_EIO. */
int wal_pread_full(int fd, uint8_t *buf, size_t len, off_t off);

/* wal_segment.c */
void wal_segment_name(char *buf, size_t len, uint64_t seq);
/* The header (and so the salt) segment seq of this WAL has or will have. */
void wal_segment_fill_header(const struct wal *wal, uint64_t seq, struct wal_segment_header *h);
int wal_segment_create_sync(struct wal *wal, uint64_t seq, struct wal_segment *out);
/* Before recovery: turns direct I/O on when cfg.direct_io asks for it and the filesystem
 * accepts O_DIRECT. After it: opens the active segment's and the ready spare's O_DIRECT
 * descriptors (start-up, blocking). */
int wal_direct_probe(struct wal *wal, char *err, size_t err_len);
int wal_direct_start(struct wal *wal, char *err, size_t err_len);
/* Starts the next maintenance job if none runs: prepares a spare (recycling a retired file
 * when there is one) or deletes retired files beyond WAL_RECYCLE_POOL. */
void wal_meta_kick(struct wal *wal);
void wal_meta_handle(struct wal *wal, int res);
/* Makes the prepared spare the active segment starting at lsn. */
void wal_segment_activate(struct wal *wal, uint64_t lsn);
int wal_segment_find(const struct wal *wal, uint64_t lsn);
/* Moves the oldest segment (no longer needed, durable, no reads) to the retired queue. */
void wal_segment_retire_oldest(struct wal *wal);
int wal_lock_dir(struct wal *wal, char *err, size_t err_len);
/* Retires segments no group needs once what superseded them is durable. */
void wal_collect(struct wal *wal);

/* wal_recover.c */
int wal_recover(struct wal *wal, char *err, size_t err_len);

#endif
