/* Internal state of the WAL shared by wal.c (append/flush/read), wal_segment.c (files,
 * preparation, deletion) and wal_recover.c (start-up scan). Not for use outside storage/. */
#ifndef RR_STORAGE_WAL_INTERNAL_H
#define RR_STORAGE_WAL_INTERNAL_H

#include <sys/uio.h>

#include "storage/wal.h"
#include "storage/wal_format.h"
#include "storage/wal_testing.h"

/* Segment files open at once (active, spare and older ones kept for lagging groups). */
#define WAL_SEGMENTS_MAX 4096
/* Persist units queued and not yet acknowledged. */
#define WAL_UNITS_MAX 16384
/* Concurrent asynchronous reads. */
#define WAL_READS_MAX 64
/* Zero-fill chunk of segment preparation: one write SQE each. */
#define WAL_PREP_CHUNK          (1u << 20)
#define WAL_CACHE_BYTES_DEFAULT (16u << 20)
/* Bytes of each segment that entries leave to maintenance records (see reserve()). */
#define WAL_MAINT_RESERVE (4u << 10)
#define WAL_ERR_LEN       256
#define WAL_NO_LSN        UINT64_MAX

/* The kind of an SQE, in bits 48..55 of its user_data. */
enum wal_op {
    WAL_OP_WRITE = 1,
    WAL_OP_SYNC = 2,
    WAL_OP_TIMER = 3,
    WAL_OP_READ = 4,
    WAL_OP_PREP = 5,
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
    uint64_t salt;      /* checksum seed of its records */
    uint64_t bytes;     /* file size */
    uint64_t lsn_start; /* lsn of the first record byte (file offset WAL_SEGMENT_HEADER_BYTES) */
    uint64_t lsn_end;   /* one past the last record (the seal once sealed) */
    uint64_t lsn_limit; /* lsn_start + bytes - header: records must end at or before */
    uint32_t reads;     /* disk reads in flight: deletion waits for them */
    bool sealed;        /* a SEAL record ends it */
};

struct wal_unit {
    uint64_t end_lsn;   /* durable once the flushed prefix reaches this */
    uint64_t queued_ns; /* when wal_append queued it */
    wal_persist_cb cb;
    void *arg;
};

struct wal_flush {
    bool active; /* a write + sync is in flight */
    bool write_done;
    bool sync_done;
    bool short_write;    /* resubmit the remainder once the (cancelled) sync completes */
    bool sync_cancelled; /* the linked sync did not run: write and sync again */
    int write_res;       /* error of the write, if any */
    uint32_t seg;        /* index in wal->segs */
    uint64_t seq;        /* that segment's sequence number (segs shift on deletion) */
    uint64_t lo, hi;     /* lsn range of the flush */
    uint64_t cur;        /* lsn the current write starts at (lo, or past a short write) */
    uint32_t records;
    uint64_t started_ns;
    struct iovec iov[2];
};

/* Segment preparation, done through the ring one SQE at a time. */
enum wal_prep_state {
    WAL_PREP_IDLE,
    WAL_PREP_RUNNING, /* an SQE is in flight */
    WAL_PREP_READY,   /* the spare is durable and may become active */
    WAL_PREP_FAILED,  /* prep_error tells why; retried after a segment is deleted */
};

struct wal_prep {
    enum wal_prep_state state;
    int error;
    int fd;
    uint64_t seq;
    uint64_t bytes;
    uint64_t done;   /* bytes zero-filled so far */
    uint32_t step;   /* 0 fill, 1 header, 2 fsync file, 3 fsync dir */
    uint8_t *header; /* encoded header, WAL_SEGMENT_HEADER_BYTES */
};

struct wal_read_slot {
    struct wal_read *rd;                 /* NULL when free */
    uint64_t seq[WAL_READ_ENTRIES_MAX];  /* segment of each entry */
    uint32_t pos[WAL_READ_ENTRIES_MAX];  /* offset of each record in rd->buf */
    uint32_t size[WAL_READ_ENTRIES_MAX]; /* record size */
};

struct wal {
    struct wal_config cfg;
    struct io_uring *ring;
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

    uint8_t *ring_buf; /* cache_bytes ring: byte at lsn L lives at L & ring_mask */
    uint64_t ring_mask;
    uint64_t ring_lo; /* oldest lsn still held by the ring */
    uint8_t *scratch; /* WAL_RECORD_MAX bytes for records that wrap the ring */
    uint8_t *zeros;   /* WAL_PREP_CHUNK zero bytes */

    uint64_t head;           /* lsn where the next record is encoded */
    uint64_t durable;        /* everything below is written and synced */
    uint64_t queued_records; /* records in [durable, head) not yet in a flush */
    uint64_t pin_change_lsn; /* segments may be deleted only once durable reaches it */
    bool collect_wanted;     /* a compaction or rotation may have freed a segment */

    struct wal_unit units[WAL_UNITS_MAX];
    uint32_t unit_head; /* oldest unacknowledged unit */
    uint32_t unit_count;
    uint32_t unit_started; /* units whose queueing delay was recorded */
    uint64_t append_ns;    /* clock read by the first unit queued since the last
                            * wal_submit or CQE (0: read it again) */

    struct wal_flush flush;
    struct wal_strategy strategy;
    bool timer_armed;
    bool timer_fired;
    uint32_t timer_gen;
    struct __kernel_timespec timer_ts;

    struct wal_read_slot reads[WAL_READS_MAX];
    uint32_t reads_active;
    uint32_t inflight; /* SQEs prepared and not yet completed */

    void *recover_gaps; /* wal_recover.c's per-group gap table while it runs */
    int error;          /* fatal error; 0 while healthy */
    char error_msg[WAL_ERR_LEN];
    struct wal_stats stats;
};

/* wal.c */
uint64_t wal_now_ns(void);
void wal_fail(struct wal *wal, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
struct io_uring_sqe *wal_sqe(struct wal *wal, enum wal_op op, uint64_t id);
struct wal_group_state *wal_group(const struct wal *wal, raft_group group);
/* Recovery replays records through these, as appends do. */
int wal_apply_record(struct wal *wal, const struct wal_record *r, uint64_t lsn, uint32_t size);
/* An entry after a gap in its group's log (wal_apply_record returned RR_EUNAVAILABLE):
 * legal in recovery only if a later compact record covers the gap, because the segment
 * holding the missing entries was deleted after that compaction was durable. Restarts the
 * group's retained entries at r->index. */
int wal_apply_gap(struct wal *wal, const struct wal_record *r, uint64_t lsn, uint32_t size);
void wal_collect(struct wal *wal);

/* wal_segment.c */
void wal_segment_name(char *buf, size_t len, uint64_t seq);
int wal_segment_create_sync(struct wal *wal, uint64_t seq, struct wal_segment *out);
void wal_prep_start(struct wal *wal);
void wal_prep_handle(struct wal *wal, int res);
/* Makes the prepared spare the active segment starting at lsn. */
void wal_segment_activate(struct wal *wal, uint64_t lsn);
int wal_segment_find(const struct wal *wal, uint64_t lsn);
void wal_segment_delete_oldest(struct wal *wal);
int wal_lock_dir(struct wal *wal, char *err, size_t err_len);

/* wal_recover.c */
int wal_recover(struct wal *wal, char *err, size_t err_len);

#endif
