/* Snapshots on the node: a group's state machine image written to a snapshot file through
 * the worker's ring, the log compacted behind it (the core's in memory, the WAL's on disk),
 * groups restored from their newest valid snapshot at start-up, and snapshots received from
 * a leader installed. docs/node.md ("Snapshots") and decision 006 say why it is built so.
 *
 * A local snapshot (struct snap_job, one per worker at a time): the image is serialized
 * (sm_snap_*), framed into file records (storage/snapshot.h), and written to a temporary
 * file with IORING_OP_WRITE; then fsync, rename and a directory fsync go as one linked chain.
 * Once that is durable the core is told (raft_snapshot_taken: it compacts its log, keeping
 * trailing entries), the WAL compaction is queued behind every unit already issued, and the
 * group's previous snapshot file is deleted. A failed write leaves the old snapshot in place
 * and the group is tried again later; a failed fsync, rename or directory fsync stops the
 * node, as a failed WAL sync does (after a failed fsync the kernel may have dropped pages).
 *
 * Installing (struct snap_rx): the image is checked record by record and loaded into a fresh
 * state machine as it comes; it is written to a temporary file the same way, and a barrier in
 * the persist queue holds the WAL's truncation, compaction and the entries after it until the
 * file is durable. The WAL is never compacted past a durable snapshot file, so a crash at any
 * point leaves a snapshot covering whatever the WAL dropped.
 *
 * Nothing here blocks the loop but start-up, which reads snapshot files with blocking reads
 * before the loop starts. */
#include "storage/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/codec.h"
#include "io/log.h"
#include "io/node.h"

#define SNAP_BUF_BYTES      (1u << 20) /* one write of a snapshot file */
#define SNAP_CANDIDATES     4u         /* snapshot files per slot considered at start-up */
#define SNAP_RETRY_MS       5000       /* a group whose snapshot failed waits this long */
#define SNAP_SCAN_SLOTS_MAX 1024u      /* slots the policy examines per loop iteration */
#define SNAP_ENTRY_OVERHEAD 64u        /* a log entry's bytes beyond its payload (WAL record) */
#define SNAP_JOBS_MAX                                                                              \
    8u                         /* local snapshots written at once per worker: freeing a            \
                                  WAL segment takes one of every group with entries in             \
                                  it, and each costs three syncs, so they overlap */
#define SNAP_PINS_MAX      64u /* pinning groups looked at per lookup */
#define SNAP_PIN_PERIOD_MS 10  /* the WAL's oldest pin is looked up at most this often */

/* One write of a snapshot file (a local one or one being installed). */
struct snap_buf {
    struct snap_op op;
    struct snap_buf *next;
    void *owner;  /* struct snap_job or struct snap_rx */
    uint64_t off; /* file offset of p[0] */
    size_t len;   /* bytes in p */
    size_t done;  /* bytes written so far (short writes continue) */
    uint8_t p[];  /* SNAP_BUF_BYTES, or the size of an installed image */
};

/* A fire-and-forget unlink whose path must outlive the submission. */
struct snap_unlink {
    struct snap_op op;
    char name[80];
};

enum job_state { JOB_OPENING = 1, JOB_WRITING, JOB_SYNCING };

struct snap_job {
    struct snap_job *next; /* the worker's list */
    struct worker *w;
    struct group_state *gs;
    struct raft_snapshot_meta meta;
    struct sm_snap *img;       /* the serialization; NULL once done or stopped */
    struct snapshot_writer wr; /* frames the image into file records */
    struct reply out;          /* the image's next bytes */
    struct snap_buf *fill;     /* the buffer records go to */
    struct snap_buf *queue;    /* full buffers waiting for the open */
    struct snap_buf *queue_tail;
    int fd;              /* -1 until the open completes */
    uint8_t state;       /* enum job_state */
    bool serialized;     /* the end record is emitted */
    bool discard;        /* the group's state was replaced: drop the result */
    int error;           /* first failure (negative) */
    uint32_t inflight;   /* ring operations in flight */
    uint32_t chain_left; /* completions of the fsync-rename-fsync chain to come */
    uint64_t file_bytes; /* emitted so far; the file's size once serialized */
    int64_t start_ms;
    char tmp[80];  /* temporary name */
    char name[64]; /* final name */
    struct snap_op open_op, sync_op, rename_op, dirsync_op;
    uint8_t *image; /* the whole file, for the core's copy (raft_snapshot_taken) */
    size_t image_len, image_cap;
};

struct snap_rx {
    struct worker *w;
    struct group_state *gs;
    struct raft_snapshot_meta meta;
    uint64_t total; /* the file's size */
    struct snapshot_reader reader;
    struct sm_loader *loader; /* the received state, swapped in by snapshot_restore */
    int error;
    bool loaded; /* the image checked out and is loaded */
    int fd;
    uint32_t inflight;
    uint32_t chain_left;
    struct snap_buf *data;        /* the file's bytes, written once the open completes */
    struct snap_barrier *barrier; /* the persist queue waits on it */
    char tmp[80];
    char name[64];
    struct snap_op open_op, sync_op, rename_op, dirsync_op;
};

/* ---- ring helpers ------------------------------------------------------------------------ */

static void submit_op(struct io_uring_sqe *sqe, struct snap_op *op)
{
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_SNAP, op));
}

static void unlink_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_unlink *u = (struct snap_unlink *)op;
    if (res < 0 && res != -ENOENT) {
        LOG_W("removing snapshot file %s/%s failed: %s", w->snap_dir, u->name, strerror(-res));
    }
    free(u);
}

static void unlink_later(struct worker *w, const char *name)
{
    struct snap_unlink *u = calloc(1, sizeof(*u));
    RR_ASSERT(u != NULL);
    u->op.cb = unlink_cb;
    snprintf(u->name, sizeof(u->name), "%s", name);
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_unlinkat(sqe, w->snap_dirfd, u->name, 0);
    submit_op(sqe, &u->op);
}

static void close_later(struct worker *w, int fd)
{
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_close(sqe, fd);
    io_uring_sqe_set_data64(sqe, UD_MAKE(UD_IGNORE, 0));
}

static void open_tmp(
    struct worker *w, char *tmp, size_t len, raft_group g, raft_index index, struct snap_op *op)
{
    char name[64];
    snapshot_name(name, sizeof(name), g, index);
    snprintf(tmp, len, "%s.%u.tmp", name, ++w->snap_seq);
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_openat(sqe, w->snap_dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    submit_op(sqe, op);
}

static void write_buf(struct worker *w, int fd, struct snap_buf *b)
{
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_write(sqe, fd, b->p + b->done, (unsigned)(b->len - b->done), b->off + b->done);
    submit_op(sqe, &b->op);
}

/* fsync(file) -> rename(tmp, name) -> fsync(directory), linked: each runs only if the one
 * before it succeeded, so the name appears only for a durable file, and the name is durable
 * when the last one completes. */
static void finish_chain(struct worker *w,
                         int fd,
                         const char *tmp,
                         const char *name,
                         struct snap_op *sync_op,
                         struct snap_op *rename_op,
                         struct snap_op *dirsync_op)
{
    if (io_uring_sq_space_left(&w->ring) < 3) {
        io_uring_submit(&w->ring); /* a link chain must not straddle two submissions */
    }
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_fsync(sqe, fd, 0);
    sqe->flags |= IOSQE_IO_LINK;
    submit_op(sqe, sync_op);
    sqe = worker_sqe(w);
    io_uring_prep_renameat(sqe, w->snap_dirfd, tmp, w->snap_dirfd, name, 0);
    sqe->flags |= IOSQE_IO_LINK;
    submit_op(sqe, rename_op);
    sqe = worker_sqe(w);
    io_uring_prep_fsync(sqe, w->snap_dirfd, 0);
    submit_op(sqe, dirsync_op);
}

static struct snap_buf *
buf_new(void *owner, uint64_t off, size_t cap, void (*cb)(struct worker *, struct snap_op *, int))
{
    struct snap_buf *b = malloc(sizeof(*b) + cap);
    RR_ASSERT(b != NULL);
    b->op.cb = cb;
    b->op.owner = b;
    b->next = NULL;
    b->owner = owner;
    b->off = off;
    b->len = 0;
    b->done = 0;
    return b;
}

/* A new current snapshot file for gs: the previous one goes. */
static void adopt_file(
    struct worker *w, struct group_state *gs, raft_index index, raft_term term, uint64_t bytes)
{
    if (gs->snap_index != 0 && gs->snap_index != index) {
        char old[64];
        snapshot_name(old, sizeof(old), gs->g, gs->snap_index);
        unlink_later(w, old);
    }
    gs->snap_index = index;
    gs->snap_term = term;
    gs->snap_file_bytes = bytes;
}

/* ---- a local snapshot --------------------------------------------------------------------- */

static void job_advance(struct snap_job *j);

static void job_write_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_buf *b = (struct snap_buf *)op;
    struct snap_job *j = b->owner;
    j->inflight--;
    if (res == -EINTR || res == -EAGAIN) {
        j->inflight++;
        write_buf(w, j->fd, b);
        return;
    }
    if (res <= 0 && j->error == 0) {
        j->error = res < 0 ? res : -EIO;
    }
    if (res > 0) {
        b->done += (size_t)res;
        if (b->done < b->len && j->error == 0 && !j->discard) {
            j->inflight++;
            write_buf(w, j->fd, b); /* a short write continues from where it stopped */
            return;
        }
    }
    free(b);
    job_advance(j);
}

static void job_submit(struct snap_job *j, struct snap_buf *b)
{
    if (j->fd < 0) {
        if (j->queue_tail == NULL) {
            j->queue = b;
        } else {
            j->queue_tail->next = b;
        }
        j->queue_tail = b;
        return;
    }
    j->inflight++;
    write_buf(j->w, j->fd, b);
}

/* The writer's output: the file's bytes in order. */
static void job_emit(void *ctx, const uint8_t *p, size_t n)
{
    struct snap_job *j = ctx;
    if (j->image_len + n > j->image_cap) {
        size_t cap = j->image_cap > 0 ? j->image_cap * 2 : (1u << 16);
        while (cap < j->image_len + n) {
            cap *= 2;
        }
        j->image = realloc(j->image, cap);
        RR_ASSERT(j->image != NULL);
        j->image_cap = cap;
    }
    memcpy(j->image + j->image_len, p, n);
    j->image_len += n;
    while (n > 0) {
        if (j->fill == NULL) {
            j->fill = buf_new(j, j->file_bytes, SNAP_BUF_BYTES, job_write_cb);
        }
        size_t take = SNAP_BUF_BYTES - j->fill->len < n ? SNAP_BUF_BYTES - j->fill->len : n;
        memcpy(j->fill->p + j->fill->len, p, take);
        j->fill->len += take;
        j->file_bytes += take;
        p += take;
        n -= take;
        if (j->fill->len == SNAP_BUF_BYTES) {
            struct snap_buf *b = j->fill;
            j->fill = NULL;
            job_submit(j, b);
        }
    }
}

static void job_open_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_job *j = op->owner;
    j->inflight--;
    if (res < 0) {
        if (j->error == 0) {
            j->error = res;
        }
        LOG_W("group %u: cannot create %s/%s: %s", j->gs->g, w->snap_dir, j->tmp, strerror(-res));
    } else {
        j->fd = res;
        j->state = JOB_WRITING;
        struct snap_buf *b = j->queue;
        j->queue = j->queue_tail = NULL;
        while (b != NULL) {
            struct snap_buf *next = b->next;
            b->next = NULL;
            job_submit(j, b);
            b = next;
        }
    }
    job_advance(j);
}

static void job_free(struct snap_job *j)
{
    sm_snap_free(j->img);
    snapshot_writer_free(&j->wr);
    reply_free(&j->out);
    free(j->fill);
    struct snap_buf *b = j->queue;
    while (b != NULL) {
        struct snap_buf *next = b->next;
        free(b);
        b = next;
    }
    free(j->image);
    struct snap_job **pp = &j->w->snap_jobs;
    while (*pp != NULL && *pp != j) {
        pp = &(*pp)->next;
    }
    if (*pp == j) {
        *pp = j->next;
        j->w->snap_job_count--;
        j->gs->snap_running = false;
    }
    free(j);
}

/* The file is durable under its name: the core compacts, then the WAL, then the old file goes. */
static void job_done(struct snap_job *j)
{
    struct worker *w = j->w;
    struct group_state *gs = j->gs;
    raft_index index = j->meta.index;
    if (j->discard) {
        unlink_later(w, j->name); /* the state was replaced meanwhile by a newer snapshot */
        return;
    }
    struct raft *r = multi_group(w->multi, gs->g);
    int rc = raft_snapshot_taken(r, index, j->image, j->image_len, w->node->cfg.snapshot_trailing);
    if (rc != 0) {
        /* RR_ECOMPACTED: a snapshot from the leader overtook this one. */
        LOG_I("group %u: snapshot at %llu not used: %s", gs->g, (unsigned long long)index,
              rr_strerror(rc));
        unlink_later(w, j->name);
        return;
    }
    adopt_file(w, gs, index, j->meta.term, j->file_bytes);
    worker_persist_compact(w, gs->g, index, j->meta.term);
    int64_t ms = node_clock_ms() - j->start_ms;
    w->st.snapshots_taken++;
    w->st.snapshot_bytes += j->file_bytes;
    w->st.snapshot_last_ms = (uint64_t)ms;
    w->st.snapshot_last_bytes = j->file_bytes;
    LOG_I("group %u: snapshot at %llu: %llu bytes in %lld ms", gs->g, (unsigned long long)index,
          (unsigned long long)j->file_bytes, (long long)ms);
}

static void job_chain_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_job *j = op->owner;
    j->inflight--;
    if (res < 0 && j->error == 0) {
        j->error = res;
    }
    if (--j->chain_left > 0) {
        return;
    }
    close_later(w, j->fd);
    j->fd = -1;
    if (j->error != 0) {
        /* After a failed fsync the kernel may have dropped the pages: going on could make the
         * WAL rely on a snapshot that is not on disk. Stop, as a failed WAL sync does. */
        LOG_E("group %u: making snapshot %s durable failed: %s", j->gs->g, j->name,
              strerror(-j->error));
        w->fatal = RR_EIO;
    } else {
        job_done(j);
    }
    job_free(j);
}

/* Moves the job on after any event: finishes a failed or dropped job once nothing is in
 * flight, and starts the durable chain once every byte is written. */
static void job_advance(struct snap_job *j)
{
    struct worker *w = j->w;
    if (j->state == JOB_SYNCING) {
        return;
    }
    if (j->error != 0 || j->discard) {
        if (j->inflight > 0) {
            return;
        }
        if (j->error != 0) {
            LOG_W("group %u: snapshot at %llu failed: %s; the previous one stays", j->gs->g,
                  (unsigned long long)j->meta.index, strerror(-j->error));
            w->st.snapshot_failures++;
            j->gs->snap_retry_ms = w->now_ms + SNAP_RETRY_MS;
        }
        if (j->fd >= 0) {
            close_later(w, j->fd);
            unlink_later(w, j->tmp);
        }
        job_free(j);
        return;
    }
    if (!j->serialized || j->fill != NULL || j->queue != NULL || j->inflight > 0 || j->fd < 0) {
        return;
    }
    j->state = JOB_SYNCING;
    j->chain_left = 3;
    j->inflight += 3;
    finish_chain(w, j->fd, j->tmp, j->name, &j->sync_op, &j->rename_op, &j->dirsync_op);
}

/* Serializes up to `budget` image bytes into the file's buffers. */
static void job_serialize(struct snap_job *j, uint64_t budget)
{
    uint64_t done = 0;
    while (!j->serialized && j->error == 0 && done < budget) {
        reply_reset(&j->out);
        int rc = sm_snap_step(j->img, &j->out, (size_t)j->w->node->cfg.snapshot_slice_bytes);
        if (rc < 0) {
            j->error = -ENOMEM;
            break;
        }
        snapshot_writer_put(&j->wr, j->out.buf, j->out.len);
        done += j->out.len;
        if (rc == 1) {
            snapshot_writer_finish(&j->wr);
            sm_snap_free(j->img);
            j->img = NULL;
            j->serialized = true;
            if (j->fill != NULL) {
                struct snap_buf *b = j->fill;
                j->fill = NULL;
                job_submit(j, b);
            }
        }
    }
    job_advance(j);
}

static int job_start(struct worker *w, struct group_state *gs)
{
    const struct raft *r = multi_group_peek(w->multi, gs->g);
    raft_index index = sm_applied_index(gs->sm);
    struct snap_job *j = calloc(1, sizeof(*j));
    if (j == NULL) {
        return RR_ENOMEM;
    }
    j->w = w;
    j->gs = gs;
    j->fd = -1;
    j->start_ms = node_clock_ms();
    int rc = raft_snapshot_meta_at(r, index, &j->meta);
    struct rr_bytes config;
    rr_bytes_init(&config);
    if (rc == 0) {
        rc = codec_config_encode(&config, &j->meta.config);
    }
    if (rc != 0) {
        rr_bytes_free(&config);
        free(j);
        return rc;
    }
    reply_init(&j->out, (size_t)1 << 40);
    struct snapshot_head h = {.group = gs->g,
                              .index = index,
                              .term = j->meta.term,
                              .config = config.base,
                              .config_len = (uint32_t)config.len};
    rc = snapshot_writer_init(&j->wr, &h, job_emit, j);
    rr_bytes_free(&config);
    if (rc == 0) {
        rc = sm_snap_begin(gs->sm, &j->img);
    }
    if (rc != 0) {
        job_free(j);
        return rc;
    }
    j->next = w->snap_jobs;
    w->snap_jobs = j;
    w->snap_job_count++;
    gs->snap_running = true;
    j->state = JOB_OPENING;
    j->open_op = (struct snap_op){job_open_cb, j};
    j->sync_op = (struct snap_op){job_chain_cb, j};
    j->rename_op = (struct snap_op){job_chain_cb, j};
    j->dirsync_op = (struct snap_op){job_chain_cb, j};
    snapshot_name(j->name, sizeof(j->name), gs->g, index);
    j->inflight++;
    open_tmp(w, j->tmp, sizeof(j->tmp), gs->g, index, &j->open_op);
    gs->snap_wanted = false;
    w->snap_log_bytes -= gs->log_bytes;
    gs->log_bytes = 0;
    return 0;
}

void snapshot_on_apply(struct worker *w, struct group_state *gs, uint32_t bytes)
{
    uint64_t add = (uint64_t)bytes + SNAP_ENTRY_OVERHEAD;
    gs->log_bytes += add;
    w->snap_log_bytes += add;
    uint64_t limit = w->node->cfg.snapshot_log_bytes;
    if (limit != 0 && gs->log_bytes >= limit) {
        gs->snap_wanted = true;
    }
}

void snapshot_request(struct worker *w, struct group_state *gs, raft_index *index)
{
    (void)w;
    raft_index applied = sm_applied_index(gs->sm);
    *index = applied > gs->snap_index ? applied : 0;
    if (*index != 0) {
        gs->snap_wanted = true;
        gs->snap_retry_ms = 0;
    }
}

/* Picks the next group that wants a snapshot (bounded scan, round robin). */
static struct group_state *pick_wanted(struct worker *w)
{
    uint32_t n = w->group_count < SNAP_SCAN_SLOTS_MAX ? w->group_count : SNAP_SCAN_SLOTS_MAX;
    for (uint32_t k = 0; k < n; k++) {
        struct group_state *gs = &w->groups[w->snap_scan];
        w->snap_scan = (w->snap_scan + 1) % w->group_count;
        if (gs->snap_wanted && gs->rx == NULL && !gs->snap_running &&
            w->now_ms >= gs->snap_retry_ms) {
            if (sm_applied_index(gs->sm) <= gs->snap_index) {
                gs->snap_wanted = false;
                continue;
            }
            return gs;
        }
    }
    return NULL;
}

/* Whether a snapshot of gs now would let its WAL records and log entries go. */
static bool worth_it(const struct worker *w, const struct group_state *gs)
{
    return gs->rx == NULL && !gs->snap_running && w->now_ms >= gs->snap_retry_ms &&
           sm_applied_index(gs->sm) > gs->snap_index;
}

/* A group whose first retained entry holds the WAL's oldest segment, while the WAL has more
 * segment files than snapshot-wal-segments: snapshotting every such group lets the segment
 * go, which is what bounds disk use however idle those groups are (decision 004: only
 * entries pin a segment). A compaction drops all of a group's entries up to its snapshot, in
 * every segment, so one round over the pinning groups usually frees many segments. */
static struct group_state *pick_pinning(struct worker *w)
{
    uint32_t limit = w->node->cfg.snapshot_wal_segments;
    if (limit == 0 || wal_segment_count(w->wal) <= limit ||
        w->now_ms < w->snap_pin_ms + SNAP_PIN_PERIOD_MS) {
        return NULL;
    }
    raft_group groups[SNAP_PINS_MAX];
    raft_index firsts[SNAP_PINS_MAX];
    uint32_t n = wal_oldest_pins(w->wal, groups, firsts, SNAP_PINS_MAX);
    for (uint32_t i = 0; i < n; i++) {
        struct group_state *gs = worker_group(w, groups[i]);
        /* A snapshot covers the applied entries only: if the pinning entry is not applied
         * yet (not committed: a leader cut off from its quorum), nothing can be done here. */
        if (gs != NULL && worth_it(w, gs) && sm_applied_index(gs->sm) >= firsts[i]) {
            return gs;
        }
    }
    w->snap_pin_ms = w->now_ms; /* all taken care of: look again a little later */
    return NULL;
}

/* When the worker's groups together hold more than snapshot-worker-log-bytes of log since
 * their snapshots: the group holding the most (O(groups), at most once per tick). */
static struct group_state *pick_largest(struct worker *w)
{
    uint64_t limit = w->node->cfg.snapshot_worker_log_bytes;
    if (limit == 0 || w->snap_log_bytes < limit ||
        w->now_ms < w->snap_pin_ms + SNAP_PIN_PERIOD_MS) {
        return NULL;
    }
    w->snap_pin_ms = w->now_ms;
    struct group_state *best = NULL;
    for (uint32_t s = 0; s < w->group_count; s++) {
        struct group_state *gs = &w->groups[s];
        if (worth_it(w, gs) && (best == NULL || gs->log_bytes > best->log_bytes)) {
            best = gs;
        }
    }
    return best;
}

/* The next group to snapshot: disk first (the WAL's oldest segment), then groups asked for
 * (RAFT SNAPSHOT, or snapshot-log-bytes reached), then the worker's memory total. */
static struct group_state *pick_next(struct worker *w, const char **why)
{
    *why = "pins the oldest WAL segment";
    struct group_state *gs = pick_pinning(w);
    if (gs == NULL) {
        *why = "asked for";
        gs = pick_wanted(w);
    }
    if (gs == NULL) {
        *why = "holds the most log";
        gs = pick_largest(w);
    }
    return gs;
}

void snapshot_pump(struct worker *w)
{
    if (w->fatal != 0) {
        return;
    }
    while (w->snap_job_count < SNAP_JOBS_MAX) {
        const char *why;
        struct group_state *gs = pick_next(w, &why);
        if (gs == NULL) {
            break;
        }
        LOG_D("group %u: snapshot at %llu (%s)", gs->g,
              (unsigned long long)sm_applied_index(gs->sm), why);
        int rc = job_start(w, gs);
        if (rc != 0) {
            LOG_W("group %u: cannot start a snapshot: %s", gs->g, rr_strerror(rc));
            gs->snap_retry_ms = w->now_ms + SNAP_RETRY_MS;
        }
    }
    for (struct snap_job *j = w->snap_jobs, *next; j != NULL; j = next) {
        next = j->next; /* job_serialize may finish and free j */
        if (!j->serialized && !j->discard && j->error == 0) {
            job_serialize(j, UINT64_MAX);
        }
    }
}

void snapshot_handle_cqe(struct worker *w, struct snap_op *op, int res)
{
    op->cb(w, op, res);
}

/* ---- installing a snapshot from the leader ------------------------------------------------ */

static int rx_head(void *ctx, const struct snapshot_head *h)
{
    struct snap_rx *rx = ctx;
    if (h->group != rx->gs->g || h->index != rx->meta.index || h->term != rx->meta.term) {
        return RR_EMISMATCH;
    }
    return 0;
}

static int rx_data(void *ctx, const uint8_t *p, size_t n)
{
    struct snap_rx *rx = ctx;
    return sm_loader_feed(rx->loader, p, n);
}

static void rx_free(struct snap_rx *rx)
{
    snapshot_reader_free(&rx->reader);
    sm_loader_free(rx->loader);
    free(rx->data);
    if (rx->gs->rx == rx) {
        rx->gs->rx = NULL;
    }
    free(rx);
}

/* The installed snapshot's file is durable: the WAL operations behind the barrier may go. */
static void rx_chain_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_rx *rx = op->owner;
    rx->inflight--;
    if (res < 0 && rx->error == 0) {
        rx->error = res;
    }
    if (--rx->chain_left > 0) {
        return;
    }
    close_later(w, rx->fd);
    if (rx->error != 0) {
        /* The core already installed it and the WAL must not be compacted without it. */
        LOG_E("group %u: writing the snapshot received at %llu failed: %s", rx->gs->g,
              (unsigned long long)rx->meta.index, strerror(-rx->error));
        w->fatal = RR_EIO;
    } else {
        adopt_file(w, rx->gs, rx->meta.index, rx->meta.term, rx->total);
        rx->barrier->done = true;
        w->st.snapshots_installed++;
    }
    rx_free(rx);
}

static void rx_write_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_buf *b = op->owner;
    struct snap_rx *rx = b->owner;
    rx->inflight--;
    if (res < 0 && res != -EINTR && res != -EAGAIN) {
        LOG_E("group %u: writing the snapshot received at %llu failed: %s", rx->gs->g,
              (unsigned long long)rx->meta.index, strerror(-res));
        w->fatal = RR_EIO;
        close_later(w, rx->fd);
        rx_free(rx);
        return;
    }
    b->done += res > 0 ? (size_t)res : 0;
    if (b->done < b->len) {
        rx->inflight++;
        write_buf(w, rx->fd, b);
        return;
    }
    rx->chain_left = 3;
    rx->inflight += 3;
    finish_chain(w, rx->fd, rx->tmp, rx->name, &rx->sync_op, &rx->rename_op, &rx->dirsync_op);
}

static void rx_open_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_rx *rx = op->owner;
    rx->inflight--;
    if (res < 0) {
        LOG_E("group %u: cannot create %s/%s: %s", rx->gs->g, w->snap_dir, rx->tmp, strerror(-res));
        w->fatal = RR_EIO;
        rx_free(rx);
        return;
    }
    rx->fd = res;
    rx->inflight++;
    write_buf(w, rx->fd, rx->data);
}

void snapshot_persist_install(struct worker *w, struct group_state *gs, const struct raft_ready *rd)
{
    const struct raft_snapshot_meta *m = rd->snapshot;
    if (gs->rx != NULL) {
        /* An earlier install of this group is still being written: its barrier holds the
         * queue, so this one simply follows it. */
        gs->rx = NULL;
    }
    struct snap_rx *rx = calloc(1, sizeof(*rx));
    RR_ASSERT(rx != NULL);
    rx->w = w;
    rx->gs = gs;
    rx->meta = *m;
    rx->total = rd->snapshot_bytes;
    rx->fd = -1;
    rx->open_op = (struct snap_op){rx_open_cb, rx};
    rx->sync_op = (struct snap_op){rx_chain_cb, rx};
    rx->rename_op = (struct snap_op){rx_chain_cb, rx};
    rx->dirsync_op = (struct snap_op){rx_chain_cb, rx};
    struct sm_limits sl;
    sm_limits_default(&sl);
    int rc = sm_loader_new(&rx->loader, &sl);
    if (rc == 0) {
        rc = snapshot_reader_init(&rx->reader, rx_head, rx_data, rx);
    }
    if (rc == 0) {
        rc = snapshot_reader_feed(&rx->reader, rd->snapshot_data, (size_t)rd->snapshot_bytes);
    }
    if (rc == 0 && !snapshot_reader_done(&rx->reader)) {
        rc = RR_ECORRUPT;
    }
    if (rc != 0) {
        LOG_E("group %u: the snapshot received at %llu is not valid (%s%s%s); stopping", gs->g,
              (unsigned long long)m->index, rr_strerror(rc), rx->reader.why[0] ? ": " : "",
              rx->reader.why);
        w->fatal = rc;
        rx_free(rx);
        return;
    }
    rx->loaded = true;
    rx->data = buf_new(rx, 0, (size_t)rd->snapshot_bytes, rx_write_cb);
    memcpy(rx->data->p, rd->snapshot_data, (size_t)rd->snapshot_bytes);
    rx->data->len = (size_t)rd->snapshot_bytes;
    rx->barrier = calloc(1, sizeof(*rx->barrier));
    RR_ASSERT(rx->barrier != NULL);
    snapshot_name(rx->name, sizeof(rx->name), gs->g, m->index);
    rx->inflight++;
    open_tmp(w, rx->tmp, sizeof(rx->tmp), gs->g, m->index, &rx->open_op);
    gs->rx = rx;
    /* The WAL forgets everything up to the snapshot, and any suffix after it (the entries the
     * core keeps follow in this same ready), only once the file is durable. */
    worker_persist_barrier(w, rx->barrier);
    worker_persist_truncate(w, gs->g, m->index + 1);
    worker_persist_compact(w, gs->g, m->index, m->term);
}

void snapshot_restore(struct worker *w, struct group_state *gs, const struct raft_snapshot_meta *m)
{
    struct snap_job *j = w->snap_jobs;
    while (j != NULL && j->gs != gs) {
        j = j->next;
    }
    if (j != NULL) {
        /* The local snapshot in progress describes the state being replaced. */
        sm_snap_free(j->img);
        j->img = NULL;
        j->discard = true;
        job_advance(j);
    }
    struct snap_rx *rx = gs->rx;
    if (rx == NULL || !rx->loaded || rx->meta.index != m->index) {
        LOG_E("group %u: asked to restore snapshot %llu that was not received", gs->g,
              (unsigned long long)m->index);
        w->fatal = RR_EINVAL;
        return;
    }
    int rc = sm_loader_finish(rx->loader, gs->sm);
    RR_ASSERT(rc == 0);
    sm_loader_free(rx->loader);
    rx->loader = NULL;
    w->snap_log_bytes -= gs->log_bytes;
    gs->log_bytes = 0;
    route_on_restore(w, gs, m->index, m->term);
    LOG_I("group %u: restored the leader's snapshot at %llu (term %llu)", gs->g,
          (unsigned long long)m->index, (unsigned long long)m->term);
}

/* ---- start-up ------------------------------------------------------------------------------- */

/* Lists the directory once: removes temporary files, and keeps the newest snapshot indexes
 * of each slot (a readdir per group would cost O(G x files)). */
int snapshot_worker_open(struct worker *w, const char *dir)
{
    snprintf(w->snap_dir, sizeof(w->snap_dir), "%s", dir);
    w->snap_dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (w->snap_dirfd < 0) {
        LOG_E("cannot open %s: %s", dir, strerror(errno));
        return RR_EIO;
    }
    uint32_t slots = (w->node->cfg.groups + w->node->cfg.workers - 1) / w->node->cfg.workers;
    w->snap_candidates = calloc((size_t)slots * SNAP_CANDIDATES, sizeof(raft_index));
    DIR *d = opendir(dir);
    if (w->snap_candidates == NULL || d == NULL) {
        if (d != NULL) {
            closedir(d);
        }
        return RR_ENOMEM;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        unsigned g;
        unsigned long long idx;
        char tail;
        int n = sscanf(e->d_name, "snap-%8x-%16llx%c", &g, &idx, &tail);
        if (n < 2 || g >= w->node->cfg.groups || g % w->node->cfg.workers != w->id) {
            continue;
        }
        if (strstr(e->d_name, ".tmp") != NULL) {
            /* An unfinished write: never renamed, so nothing relies on it. */
            if (unlinkat(w->snap_dirfd, e->d_name, 0) != 0) {
                LOG_W("cannot remove %s/%s: %s", dir, e->d_name, strerror(errno));
            }
            continue;
        }
        if (n != 2 || strlen(e->d_name) != 30 || idx == 0) {
            continue;
        }
        raft_index *c = &w->snap_candidates[(size_t)(g / w->node->cfg.workers) * SNAP_CANDIDATES];
        uint32_t at = SNAP_CANDIDATES;
        while (at > 0 && c[at - 1] < idx) {
            at--;
        }
        if (at < SNAP_CANDIDATES) {
            memmove(c + at + 1, c + at, (SNAP_CANDIDATES - 1 - at) * sizeof(*c));
            c[at] = idx;
        }
    }
    closedir(d);
    return 0;
}

void snapshot_worker_close(struct worker *w)
{
    free(w->snap_candidates);
    w->snap_candidates = NULL;
    if (w->snap_dirfd >= 0) {
        close(w->snap_dirfd);
        w->snap_dirfd = -1;
    }
}

struct startup_ctx {
    raft_group g;
    raft_index index;
    struct sm_loader *loader;
    struct snapshot_head head;
    uint8_t config[SNAPSHOT_CONFIG_MAX];
};

static int startup_head(void *arg, const struct snapshot_head *h)
{
    struct startup_ctx *c = arg;
    if (h->group != c->g || h->index != c->index) {
        return RR_EMISMATCH;
    }
    c->head = *h;
    memcpy(c->config, h->config, h->config_len);
    c->head.config = c->config;
    return 0;
}

static int startup_data(void *arg, const uint8_t *p, size_t n)
{
    struct startup_ctx *c = arg;
    return sm_loader_feed(c->loader, p, n);
}

/* Reads one file into a fresh state machine. 0, RR_EBADVERSION, RR_ENOMEM, or another code
 * for a damaged file (err says why). */
static int startup_try(struct worker *w,
                       raft_group g,
                       raft_index index,
                       struct snapshot_restored *out,
                       char *err,
                       size_t err_len)
{
    struct startup_ctx *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return RR_ENOMEM;
    }
    c->g = g;
    c->index = index;
    struct sm_limits sl;
    sm_limits_default(&sl);
    struct snapshot_reader rd;
    int rc = sm_loader_new(&c->loader, &sl);
    if (rc == 0) {
        rc = snapshot_reader_init(&rd, startup_head, startup_data, c);
        if (rc != 0) {
            sm_loader_free(c->loader);
            free(c);
            return rc;
        }
    } else {
        free(c);
        return rc;
    }
    rc = snapshot_read_file(w->snap_dir, g, index, &rd, &out->file_bytes, err, err_len);
    struct sm *sm = NULL;
    if (rc == 0) {
        rc = codec_config_decode(c->head.config, c->head.config_len, &out->meta.config);
        if (rc != 0) {
            snprintf(err, err_len, "snapshot %s/snap-%08x-%016llx: bad configuration", w->snap_dir,
                     g, (unsigned long long)index);
        }
    }
    if (rc == 0 && (rc = sm_create(&sm, &sl)) == 0) {
        rc = sm_loader_finish(c->loader, sm);
        if (rc != 0) {
            snprintf(err, err_len, "snapshot %s/snap-%08x-%016llx: bad state machine image",
                     w->snap_dir, g, (unsigned long long)index);
        }
    }
    if (rc == 0 && sm_applied_index(sm) != index) {
        snprintf(err, err_len, "snapshot %s/snap-%08x-%016llx: image of index %llu", w->snap_dir, g,
                 (unsigned long long)index, (unsigned long long)sm_applied_index(sm));
        rc = RR_ECORRUPT;
    }
    if (rc == 0) {
        out->meta.index = index;
        out->meta.term = c->head.term;
        out->sm = sm;
    } else {
        sm_destroy(sm);
    }
    snapshot_reader_free(&rd);
    sm_loader_free(c->loader);
    free(c);
    return rc;
}

/* The whole file in memory, for the core's copy. */
static int
startup_image(struct worker *w, raft_group g, raft_index index, struct snapshot_restored *out)
{
    char name[64], path[NODE_PATH_MAX + 128];
    snapshot_name(name, sizeof(name), g, index);
    snprintf(path, sizeof(path), "%s/%s", w->snap_dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return RR_EIO;
    }
    out->image = malloc(out->file_bytes + 1);
    size_t got = 0;
    while (out->image != NULL && got < out->file_bytes) {
        ssize_t k = read(fd, out->image + got, (size_t)out->file_bytes - got);
        if (k <= 0) {
            break;
        }
        got += (size_t)k;
    }
    close(fd);
    return out->image != NULL && got == out->file_bytes ? 0 : RR_EIO;
}

int snapshot_startup_load(struct worker *w, raft_group g, struct snapshot_restored *out)
{
    memset(out, 0, sizeof(*out));
    uint32_t slot = g / w->node->cfg.workers;
    const raft_index *c = &w->snap_candidates[(size_t)slot * SNAP_CANDIDATES];
    for (uint32_t i = 0; i < SNAP_CANDIDATES && c[i] != 0; i++) {
        char err[768] = "";
        int rc = startup_try(w, g, c[i], out, err, sizeof(err));
        if (rc == RR_EBADVERSION) {
            LOG_E("%s; this build reads snapshot format 3 only: refusing to start", err);
            return rc;
        }
        if (rc == RR_ENOMEM) {
            LOG_E("group %u: out of memory loading its snapshot", g);
            return rc;
        }
        if (rc != 0) {
            LOG_W("%s; trying an older snapshot", err);
            continue;
        }
        rc = startup_image(w, g, c[i], out);
        if (rc != 0) {
            sm_destroy(out->sm);
            memset(out, 0, sizeof(*out));
            LOG_E("group %u: cannot read snapshot %llu back", g, (unsigned long long)c[i]);
            return rc;
        }
        /* Older files are of no use any more. */
        for (uint32_t k = i + 1; k < SNAP_CANDIDATES && c[k] != 0; k++) {
            char name[64];
            snapshot_name(name, sizeof(name), g, c[k]);
            if (unlinkat(w->snap_dirfd, name, 0) != 0) {
                LOG_W("cannot remove %s/%s: %s", w->snap_dir, name, strerror(errno));
            }
        }
        return 0;
    }
    return 0;
}
