/* Test-build hooks of the storage layer: fault injection at I/O submission and completion,
 * and the observer of every SQE the WAL issues (the power-loss model's input). Compiled only when
 * RR_STORAGE_TESTING is defined (storage.mk's test library); in the production build the
 * macros below expand to their plain argument and add no code. */
#ifndef RR_STORAGE_WAL_TESTING_H
#define RR_STORAGE_WAL_TESTING_H

#include <stdint.h>

/* Points where a test can replace a result with an error. */
enum wal_fault_point {
    WAL_FP_LOCK,      /* opening or locking the data directory */
    WAL_FP_SEG_OPEN,  /* creating or opening a segment file */
    WAL_FP_SEG_PREP,  /* a synchronous preparation write, fallocate or fsync */
    WAL_FP_PREP_CQE,  /* an asynchronous preparation step's completion */
    WAL_FP_WRITE_CQE, /* a flush write's completion (a short count or an error) */
    WAL_FP_SYNC_CQE,  /* a flush sync's completion */
    WAL_FP_READ_CQE,  /* an asynchronous read's completion */
    WAL_FP_PREAD,     /* a blocking read (recovery, wal_read_blocking) */
    WAL_FP_UNLINK,    /* deleting a segment */
    WAL_FP_ALLOC,     /* a memory allocation */
    WAL_FP_SNAP_IO,   /* a snapshot file operation */
    WAL_FP_SUBMIT,    /* an io_uring_submit the WAL makes itself (a full SQ) */
    WAL_FP_DIR_SYNC,  /* open's fsync of a new WAL directory's parent, recovery's of the WAL's */
    WAL_FP_COUNT
};

#ifdef RR_STORAGE_TESTING

/* The nth (1-based) call at point fp from now returns err instead of its result; err > 0
 * with WAL_FP_WRITE_CQE means "complete only err bytes" (a short write). */
void wal_test_fail_at(enum wal_fault_point fp, uint32_t nth, int err);
void wal_test_faults_clear(void);
/* Hits of each point so far (tests assert a path was reached). */
uint64_t wal_test_hits(enum wal_fault_point fp);
int64_t wal_test_fault(enum wal_fault_point fp, int64_t res);

/* Lowers the budget of segment files a running WAL may hold (WAL_SEGMENTS_MAX) to n, so
 * that its limit is reached with a few small segments; 0 (and wal_test_faults_clear)
 * restores it. */
void wal_test_segments_max(uint32_t n);
uint32_t wal_test_segment_limit(uint32_t limit);

/* I/O observation for the power-loss model: the WAL calls WAL_BEFORE_SUBMIT(ring) before
 * each io_uring_submit it makes itself (a full SQ); a test harness that drives the ring calls
 * wal_test_before_submit() before its own submissions. The registered observer then sees
 * every SQE exactly as the kernel will (op, fd, offset, length, buffers), in ring order, and
 * then once more with sqe == NULL: the end of one submission (a link chain never spans
 * two). */
struct io_uring;
struct io_uring_sqe;
typedef void (*wal_test_sqe_observer)(void *arg, const struct io_uring_sqe *sqe);
void wal_test_observe(wal_test_sqe_observer fn, void *arg);
void wal_test_before_submit(struct io_uring *ring);

/* Power loss of a whole process (tests/faults, ringraftd's test-power-loss switch). At the
 * moment of the loss the caller stops handing the WAL's CQEs to wal_handle_cqe: it reaps
 * them and passes each to wal_test_forget_cqe, which only counts it, until wal_busy() is
 * false (every write the kernel had been given has landed; a sync that completes now counts
 * for nothing, since the WAL never learns of it). wal_test_power_cut then zeroes every
 * record byte at or past the durable lsn the WAL had reached (what it had not seen synced),
 * in every segment, and syncs the files: the WAL's next recovery sees exactly what a power
 * loss that reverted every unsynced byte would leave (zeros rather than a recycled file's
 * old bytes; both fail the checksum). Name operations in flight are left as they landed.
 * Returns 0 or a negative errno; *reverted_bytes says how many bytes were zeroed. The WAL
 * must not be used afterwards except by wal_close. */
struct wal;
struct io_uring_cqe;
void wal_test_forget_cqe(struct wal *wal, const struct io_uring_cqe *cqe);
int wal_test_power_cut(struct wal *wal, uint64_t *reverted_bytes);

#define WAL_FAULT(fp, res)      ((__typeof__(res))wal_test_fault((fp), (int64_t)(res)))
#define WAL_BEFORE_SUBMIT(ring) wal_test_before_submit(ring)
#define WAL_SEGMENT_LIMIT(n)    wal_test_segment_limit(n)

#else

#define WAL_FAULT(fp, res)      (res)
#define WAL_BEFORE_SUBMIT(ring) ((void)(ring))
#define WAL_SEGMENT_LIMIT(n)    (n)

#endif

#endif
