/* Test-build hooks (see wal_testing.h). The production build compiles this file to nothing
 * but one unused declaration, which keeps the translation unit non-empty. */
#include "storage/wal_testing.h"

#ifdef RR_STORAGE_TESTING

#include <errno.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

#else

extern int wal_testing_compiled_out;

#endif
