/* Test-build hooks (see wal_testing.h). The production build compiles this file to nothing
 * but one unused declaration, which keeps the translation unit non-empty. */
#include "storage/wal_testing.h"

#ifdef RR_STORAGE_TESTING

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "storage/wal_internal.h"

struct wal_test_fault_slot {
    uint32_t countdown; /* 0: inactive; 1: the next hit fails */
    int err;
};

static struct wal_test_fault_slot faults[WAL_FP_COUNT];
static uint64_t hits[WAL_FP_COUNT];

void wal_test_fail_at(enum wal_fault_point fp, uint32_t nth, int err)
{
    faults[fp].countdown = nth;
    faults[fp].err = err;
}

static uint32_t segment_limit; /* 0: the WAL's own */

void wal_test_faults_clear(void)
{
    memset(faults, 0, sizeof(faults));
    segment_limit = 0;
}

void wal_test_segments_max(uint32_t n)
{
    segment_limit = n;
}

uint32_t wal_test_segment_limit(uint32_t limit)
{
    return segment_limit != 0 && segment_limit < limit ? segment_limit : limit;
}

uint64_t wal_test_hits(enum wal_fault_point fp)
{
    return hits[fp];
}

int64_t wal_test_fault(enum wal_fault_point fp, int64_t res)
{
    hits[fp]++;
    struct wal_test_fault_slot *f = &faults[fp];
    if (f->countdown == 0) {
        return res;
    }
    if (--f->countdown > 0) {
        return res;
    }
    if (f->err < 0) {
        errno = -f->err; /* syscall-style callers read errno after a negative result */
    }
    return f->err;
}

static wal_test_sqe_observer observer;
static void *observer_arg;

void wal_test_observe(wal_test_sqe_observer fn, void *arg)
{
    observer = fn;
    observer_arg = arg;
}

void wal_test_before_submit(struct io_uring *ring)
{
    if (observer == NULL) {
        return;
    }
    /* SQEs prepared since the last submission lie between sqe_head and sqe_tail. */
    for (unsigned i = ring->sq.sqe_head; i != ring->sq.sqe_tail; i++) {
        observer(observer_arg, &ring->sq.sqes[i & ring->sq.ring_mask]);
    }
    observer(observer_arg, NULL);
}

void wal_test_forget_cqe(struct wal *wal, const struct io_uring_cqe *cqe)
{
    RR_ASSERT((io_uring_cqe_get_data64(cqe) & (0xffull << WAL_USER_DATA_TAG_SHIFT)) ==
              wal->user_tag);
    RR_ASSERT(wal->inflight > 0);
    wal->inflight--;
}

/* Zeroes file bytes [off, off + len) of fd with WAL_PREP_CHUNK-sized writes. */
static int zero_range(const struct wal *wal, int fd, uint64_t off, uint64_t len)
{
    while (len > 0) {
        size_t n = len < WAL_PREP_CHUNK ? (size_t)len : WAL_PREP_CHUNK;
        ssize_t w = pwrite(fd, wal->zeros, n, (off_t)off);
        if (w <= 0) {
            return w < 0 ? -errno : -EIO;
        }
        off += (uint64_t)w;
        len -= (uint64_t)w;
    }
    return 0;
}

int wal_test_power_cut(struct wal *wal, uint64_t *reverted_bytes)
{
    RR_ASSERT(!wal_busy(wal));
    *reverted_bytes = 0;
    for (uint32_t i = 0; i < wal->seg_count; i++) {
        const struct wal_segment *s = &wal->segs[i];
        /* A sealed segment's records end at its seal; the active one's at head. */
        uint64_t hi = s->sealed ? s->lsn_end : wal->head;
        uint64_t lo = wal->durable > s->lsn_start ? wal->durable : s->lsn_start;
        if (lo >= hi) {
            continue;
        }
        uint64_t off = WAL_SEGMENT_HEADER_BYTES + (lo - s->lsn_start);
        int rc = zero_range(wal, s->fd, off, hi - lo);
        if (rc == 0 && fdatasync(s->fd) != 0) {
            rc = -errno;
        }
        if (rc != 0) {
            return rc;
        }
        *reverted_bytes += hi - lo;
    }
    return 0;
}

#else

extern int wal_testing_compiled_out;

#endif
