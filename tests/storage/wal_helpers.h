/* Shared helpers of the storage tests: temporary directories, a ring driver, deterministic
 * payloads. Header-only so every test binary stays one translation unit. */
#ifndef RR_TESTS_STORAGE_WAL_HELPERS_H
#define RR_TESTS_STORAGE_WAL_HELPERS_H

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

#include "core/base/errors.h"
#include "core/base/prng.h"
#include "storage/wal.h"
#include "storage/wal_format.h"

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
    /* RR_WAL_FLUSHES=1|2 runs a test with that many flushes in flight. */
    const char *flushes = getenv("RR_WAL_FLUSHES");
    c.flushes_in_flight = flushes != NULL ? (uint8_t)atoi(flushes) : 0;
    /* RR_WAL_DIRECT=1 runs it with direct I/O (cfg.direct_io). */
    const char *direct = getenv("RR_WAL_DIRECT");
    c.direct_io = direct != NULL && atoi(direct) != 0;
    return c;
}

/* Payload of (group, index, generation): length and bytes derived from the triple. */
static inline uint32_t
th_payload(raft_group g, raft_index i, uint32_t gen, uint8_t *buf, uint32_t max_len)
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
static inline int
th_run_until(struct io_uring *ring, struct wal *wal, const uint64_t *done, uint64_t want)
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

/* The fixture the storage tests share: a temporary directory, a WAL configuration, and per
 * open a ring and the WAL, with counters of its units' outcomes (th_fx_cb). */
struct th_fx {
    char dir[64];
    struct wal_config cfg;
    unsigned ring_entries; /* SQ size of each open's ring (0: 64) */
    struct io_uring ring;
    struct wal *wal;
    char err[512];   /* wal_open's message */
    uint64_t acked;  /* units acknowledged */
    uint64_t failed; /* units that failed */
    int last_status; /* the last failure's code */
    uint8_t buf[WAL_PAYLOAD_MAX];
};

static inline struct th_fx *th_fx_new(uint32_t groups)
{
    struct th_fx *fx = calloc(1, sizeof(*fx));
    if (fx == NULL) {
        perror("calloc");
        abort();
    }
    th_mkdtemp(fx->dir);
    fx->cfg = th_config(fx->dir, groups);
    return fx;
}

/* Persist callback counting into the fixture passed as arg. */
static inline void th_fx_cb(void *arg, int status)
{
    struct th_fx *fx = arg;
    if (status == 0) {
        fx->acked++;
    } else {
        fx->failed++;
        fx->last_status = status;
    }
}

/* Opens (recovering) the WAL on a new ring; on failure returns the code, fx->err says why. */
static inline int th_fx_try_open(struct th_fx *fx)
{
    fx->err[0] = '\0';
    if (io_uring_queue_init(fx->ring_entries != 0 ? fx->ring_entries : 64, &fx->ring, 0) != 0) {
        perror("io_uring_queue_init");
        abort();
    }
    int rc = wal_open(&fx->cfg, &fx->ring, &fx->wal, fx->err, sizeof(fx->err));
    if (rc != 0) {
        io_uring_queue_exit(&fx->ring);
        fx->wal = NULL;
    }
    return rc;
}

/* A clean close: reaps everything in flight first. */
static inline void th_fx_close(struct th_fx *fx)
{
    if (fx->wal != NULL) {
        th_quiesce(&fx->ring, fx->wal);
        wal_close(fx->wal);
        io_uring_queue_exit(&fx->ring);
        fx->wal = NULL;
    }
}

/* A process crash: what was queued never reaches the file, what the kernel already has
 * stays (the ring's teardown waits for its requests). */
static inline void th_fx_crash(struct th_fx *fx)
{
    io_uring_queue_exit(&fx->ring);
    wal_close(fx->wal);
    fx->wal = NULL;
}

static inline void th_fx_free(struct th_fx *fx)
{
    th_fx_close(fx);
    th_rmrf(fx->dir);
    free(fx);
}

/* A crash-test workload: appends consecutive entries (payload generation 0) to random
 * groups, sometimes with a hard state whose commit grows, sometimes compacting; units are
 * numbered, and acknowledgements must come back in that order. */
#define TH_GROUPS_MAX  64
#define TH_PAYLOAD_MAX 700

struct th_unit {
    raft_group group;
    raft_index last;      /* last index of the unit's entries (0: none) */
    raft_index commit;    /* hard-state commit it carried, or 0 */
    raft_index compacted; /* compaction point, or 0 */
};

struct th_work {
    struct wal *wal;
    uint32_t groups;
    raft_index next[TH_GROUPS_MAX];   /* next index to append per group */
    raft_index commit[TH_GROUPS_MAX]; /* last commit written per group */
    struct rr_prng prng;
    uint64_t submitted;        /* units queued */
    uint64_t acked;            /* units acknowledged */
    struct th_unit ring[1024]; /* units in flight, by number % 1024 */
    void (*on_ack)(struct th_work *w, const struct th_unit *u);
    int failed; /* a unit completed with an error */
    uint8_t buf[3][TH_PAYLOAD_MAX];
};

static struct th_work *th_cur_work;

static inline void th_work_ack(void *arg, int status)
{
    struct th_work *w = th_cur_work;
    uint64_t n = (uint64_t)(uintptr_t)arg;
    if (status != 0 || n != w->acked) {
        w->failed = status != 0 ? status : -1; /* out-of-order completion is a failure */
        return;
    }
    w->acked++;
    if (w->on_ack != NULL) {
        w->on_ack(w, &w->ring[n % 1024]);
    }
}

static inline void th_work_init(struct th_work *w, struct wal *wal, uint32_t groups, uint64_t seed)
{
    memset(w, 0, sizeof(*w));
    w->wal = wal;
    w->groups = groups;
    rr_prng_seed(&w->prng, seed);
    for (raft_group g = 0; g < groups; g++) {
        struct wal_group_info gi;
        wal_group_info(wal, g, &gi);
        w->next[g] = gi.last_index + 1;
        w->commit[g] = gi.hs.commit;
    }
    th_cur_work = w;
}

/* Queues one unit if fewer than 512 are in flight; returns the wal_append result. */
static inline int th_work_unit(struct th_work *w)
{
    if (w->submitted - w->acked >= 512) {
        return RR_EBUSY;
    }
    raft_group g = (raft_group)rr_prng_range(&w->prng, 0, w->groups);
    struct th_unit u = {.group = g};
    int rc;
    if (rr_prng_chance(&w->prng, 20000) && w->next[g] > 60) {
        u.compacted = w->next[g] - 50;
        rc = wal_compact(w->wal, g, u.compacted, 1, th_work_ack, (void *)(uintptr_t)w->submitted);
    } else {
        uint32_t n = (uint32_t)rr_prng_range(&w->prng, 1, 4);
        struct wal_entry e[3];
        for (uint32_t k = 0; k < n; k++) {
            raft_index i = w->next[g] + k;
            e[k] = (struct wal_entry){.term = 1, .index = i, .type = 0};
            e[k].len = th_payload(g, i, 0, w->buf[k], TH_PAYLOAD_MAX);
            e[k].data = w->buf[k];
        }
        struct wal_hard_state hs = {.term = 1, .vote = 1, .commit = w->next[g] - 1};
        bool with_hs = rr_prng_chance(&w->prng, 300000) && hs.commit > w->commit[g];
        rc = wal_append(w->wal, g, with_hs ? &hs : NULL, e, n, th_work_ack,
                        (void *)(uintptr_t)w->submitted);
        if (rc == 0) {
            u.last = w->next[g] + n - 1;
            u.commit = with_hs ? hs.commit : 0;
            w->next[g] += n;
            if (with_hs) {
                w->commit[g] = hs.commit;
            }
        }
    }
    if (rc == 0) {
        w->ring[w->submitted % 1024] = u;
        w->submitted++;
    }
    return rc;
}

/* Checks every retained entry of every group against its deterministic payload; returns a
 * description of the first mismatch, or NULL. acked_last/acked_commit: what must be there. */
static inline const char *th_verify(struct wal *wal,
                                    uint32_t groups,
                                    const raft_index *acked_last,
                                    const raft_index *acked_commit,
                                    char *msg,
                                    size_t len)
{
    static uint8_t rbuf[1u << 20];
    static uint8_t want[TH_PAYLOAD_MAX];
    for (raft_group g = 0; g < groups; g++) {
        struct wal_group_info gi;
        wal_group_info(wal, g, &gi);
        if (gi.last_index < acked_last[g]) {
            snprintf(msg, len, "group %u: last index %llu < acknowledged %llu", g,
                     (unsigned long long)gi.last_index, (unsigned long long)acked_last[g]);
            return msg;
        }
        if (gi.hs.commit < acked_commit[g]) {
            snprintf(msg, len, "group %u: commit %llu < acknowledged %llu", g,
                     (unsigned long long)gi.hs.commit, (unsigned long long)acked_commit[g]);
            return msg;
        }
        raft_index i = gi.first_index;
        while (i <= gi.last_index) {
            struct wal_read rd = {
                .group = g, .lo = i, .hi = gi.last_index, .buf = rbuf, .buf_len = sizeof(rbuf)};
            int rc = wal_read_blocking(wal, &rd);
            if (rc != 0) {
                snprintf(msg, len, "group %u index %llu: read %d", g, (unsigned long long)i, rc);
                return msg;
            }
            for (uint32_t k = 0; k < rd.count; k++, i++) {
                uint32_t n = th_payload(g, i, 0, want, TH_PAYLOAD_MAX);
                if (rd.entries[k].len != n || memcmp(rd.entries[k].data, want, n) != 0) {
                    snprintf(msg, len, "group %u index %llu: wrong payload", g,
                             (unsigned long long)i);
                    return msg;
                }
            }
        }
    }
    return NULL;
}

#endif
