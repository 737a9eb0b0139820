/* Shared helpers of the storage tests: temporary directories, a ring driver, deterministic
 * payloads. Header-only so every test binary stays one translation unit. */
#ifndef RR_TESTS_STORAGE_WAL_HELPERS_H
#define RR_TESTS_STORAGE_WAL_HELPERS_H

#include "core/base/errors.h"
#include "storage/wal.h"
#include "storage/wal_format.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#define TEST_TAG 0x5a

static inline int th_rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Creates a fresh directory under /tmp; path must hold 64 bytes. */
static inline void th_mkdtemp(char *path)
{
    snprintf(path, 64, "/tmp/rr-wal-test-XXXXXX");
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        abort();
    }
}

static inline void th_rmrf(const char *path)
{
    nftw(path, th_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static inline struct wal_config th_config(const char *dir, uint32_t groups)
{
    struct wal_config c;
    memset(&c, 0, sizeof(c));
    c.dir = dir;
    c.cluster_id = 0xc1u;
    c.node_id = 1;
    c.worker_id = 0;
    c.group_count = groups;
    c.worker_count = 1;
    c.segment_bytes = 256u << 10;
    c.cache_bytes = 8u << 20;
    c.user_data_tag = TEST_TAG;
    c.iowq_max_workers = 2;
    c.strategy.kind = WAL_STRATEGY_ADAPTIVE;
    return c;
}

/* Payload of (group, index, generation): length and bytes derived from the triple. */
static inline uint32_t th_payload(raft_group g, raft_index i, uint32_t gen, uint8_t *buf,
                                  uint32_t max_len)
{
    uint64_t key[3] = {g, i, gen};
    uint64_t h = XXH3_64bits(key, sizeof(key));
    uint32_t len = max_len == 0 ? 0 : (uint32_t)(h % max_len);
    for (uint32_t k = 0; k < len; k++) {
        buf[k] = (uint8_t)((h >> (k % 8 * 8)) ^ k);
    }
    return len;
}

/* One loop iteration: let the WAL flush, submit, wait for one CQE, handle all that came. */
static inline int th_step(struct io_uring *ring, struct wal *wal)
{
    wal_submit(wal);
    int rc = io_uring_submit_and_wait(ring, 1);
    if (rc < 0 && rc != -EINTR) {
        return rc;
    }
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(ring, &cqe) == 0) {
        struct io_uring_cqe copy = *cqe;
        io_uring_cqe_seen(ring, cqe);
        rc = wal_handle_cqe(wal, &copy);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Runs the loop until *done reaches want (or the WAL fails). */
static inline int th_run_until(struct io_uring *ring, struct wal *wal, const uint64_t *done,
                               uint64_t want)
{
    while (*done < want) {
        int rc = th_step(ring, wal);
        if (rc != 0) {
            return rc;
        }
    }
    return 0;
}

/* Reaps until the WAL has nothing in flight (timers included), so it may be closed. */
static inline void th_quiesce(struct io_uring *ring, struct wal *wal)
{
    while (wal_busy(wal)) {
        io_uring_submit_and_wait(ring, 1);
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(ring, &cqe) == 0) {
            struct io_uring_cqe copy = *cqe;
            io_uring_cqe_seen(ring, cqe);
            wal_handle_cqe(wal, &copy);
        }
    }
}

static inline void th_count_cb(void *arg, int status)
{
    uint64_t *n = arg;
    if (status == 0) {
        (*n)++;
    }
}

static inline int th_segment_path(const char *dir, uint64_t seq, char *out, size_t len)
{
    return snprintf(out, len, "%s/wal-%016llx", dir, (unsigned long long)seq);
}

#endif
