/* Snapshots on the node: a group's state machine image written to a snapshot file through
 * the worker's ring, the log compacted behind it (the core's in memory, the WAL's on disk),
 * groups restored from their newest valid snapshot at start-up, and snapshots received from
 * a leader installed. docs/node.md ("Snapshots") and decision 006 say why it is built so.
 *
 * A local snapshot (struct snap_job, up to SNAP_JOBS_MAX per worker at once): the image is
 * serialized (sm_snap_*), framed into file records (storage/snapshot.h), and written to a
 * temporary file with IORING_OP_WRITE; then fsync, rename and a directory fsync go as one
 * linked chain. Once that is durable the core is told (raft_snapshot_taken: the image's size;
 * it compacts its log, keeping trailing entries), the WAL compaction is queued behind every
 * unit already issued, and the group's previous snapshot file is deleted. A failed write
 * leaves the old snapshot in place and the group is tried again later; a failed fsync, rename
 * or directory fsync stops the node, as a failed WAL sync does (after a failed fsync the
 * kernel may have dropped pages).
 *
 * Sending (struct snap_read): the core keeps no image and asks for chunks; they are read from
 * the group's file, cut at the last whole record, every record verified, and sent.
 *
 * Receiving (struct snap_rx): each chunk is checked record by record and the image loaded
 * into a fresh state machine as it comes; it is written to a temporary file (write, then
 * fdatasync, which its acknowledgement waits for). The verdict that lets the core install it
 * comes once the last chunk checked out and every write completed; then a barrier in the
 * persist queue holds the WAL's truncation, compaction and the entries after the snapshot
 * until the file is durable. The WAL is never compacted past a durable snapshot file, so a
 * crash at any point leaves a snapshot covering whatever the WAL dropped.
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
    8u                    /* local snapshots written at once per worker: freeing a                 \
                             WAL segment takes one of every group with entries in                  \
                             it, and each costs three syncs, so they overlap */
#define SNAP_PINS_MAX 64u /* pinning groups looked at per lookup */
/* A snapshot being written costs memory in two places, both bounded: its file buffers in
 * flight (serialization waits while a job has this much unwritten: the disk sets the pace),
 * and the keys writes serialized ahead of the walk (sm_snap_pending; past the limit the
 * snapshot is given up and tried again later, rather than hold a second copy of the state). */
#define SNAP_JOB_UNWRITTEN_MAX (8u << 20)
#define SNAP_PENDING_MAX       (64u << 20)
/* A snapshot file goes to the disk as it is written, one range at a time (sync_file_range
 * WAIT_BEFORE | WRITE | WAIT_AFTER on the next SNAP_WRITEBACK_BYTES, the next only once it
 * completed), and serialization waits while more than SNAP_JOB_UNSYNCED_MAX is not on the
 * disk yet. So the device never holds more than about one range of the snapshot ahead of the
 * WAL's write and fdatasync (they would wait behind megabytes of it otherwise), the disk sets
 * the snapshot's pace, and the final fsync has little left to do. */
#define SNAP_WRITEBACK_BYTES  (1u << 20)
#define SNAP_JOB_UNSYNCED_MAX (4u << 20)
#define SNAP_PIN_PERIOD_MS    10 /* the WAL's oldest pin is looked up at most this often */

/* One write of a snapshot file (a local one or one being installed). */
struct snap_buf {
    struct snap_op op;
    struct snap_buf *next;
    void *owner;  /* struct snap_job or struct snap_rx */
    uint64_t fop; /* a received chunk's write: its number (fop_begin), else 0 */
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
    int fd;                /* -1 until the open completes */
    uint8_t state;         /* enum job_state */
    bool serialized;       /* the end record is emitted */
    bool discard;          /* the group's state was replaced: drop the result */
    int error;             /* first failure (negative) */
    uint32_t inflight;     /* ring operations in flight */
    uint32_t chain_left;   /* completions of the fsync-rename-fsync chain to come */
    uint64_t file_bytes;   /* emitted so far; the file's size once serialized */
    uint64_t unwritten;    /* bytes emitted and not yet written (buffers held) */
    uint64_t written;      /* bytes written */
    uint64_t writeback_at; /* file offset up to which writeback was started */
    uint64_t synced;       /* file offset up to which writeback completed */
    bool writeback_busy;   /* a sync_file_range is in flight */
    struct snap_op writeback_op;
    int64_t start_ms;
    char tmp[80];  /* temporary name */
    char name[64]; /* final name */
    struct snap_op open_op, sync_op, rename_op, dirsync_op;
};

/* A snapshot being received from the leader, chunk by chunk (core/raft.h,
 * raft_ready.snapshot_chunk): each chunk is checked (record checksums, then the state
 * machine image it carries) and loaded into a fresh state machine as it comes, and written to
 * a temporary file at its offset followed by an fdatasync, which its acknowledgement waits
 * for. The verdict on the whole image is given once the last chunk checked out and every
 * write completed; the core installs only then. */
struct snap_rx {
    struct worker *w;
    struct group_state *gs;
    struct raft_snapshot_meta meta;
    uint64_t transfer; /* the core's id of the transfer (raft_snapshot_chunk.transfer) */
    uint64_t total;    /* the file's size */
    uint64_t stored;   /* bytes taken so far: the next chunk's offset */
    struct snapshot_reader reader;
    struct sm_loader *loader; /* the received state, swapped in by snapshot_restore */
    bool bad;                 /* refused: a chunk failed its checks or a write failed */
    bool last_seen;           /* the chunk with `done` was taken */
    bool verdict_given;       /* the image checked out and the core was told */
    bool abandoned;           /* another transfer replaced it, or it was refused */
    int fd;                   /* -1 until the open completes */
    uint32_t inflight;        /* ring operations in flight */
    uint32_t writes_pending;  /* chunk writes not yet synced */
    struct snap_buf *queue;   /* writes waiting for the open */
    struct snap_buf *queue_tail;
    uint32_t chain_left;
    int error;
    struct snap_barrier *barrier; /* the persist queue waits on it (install) */
    int64_t install_ns;           /* when the install's barrier was queued (node_clock_ns) */
    char tmp[80];
    char name[64];
    struct snap_op open_op, sync_op, rename_op, dirsync_op;
};

/* A chunk read from a snapshot file, for a follower (the core keeps no image). */
struct snap_read {
    struct snap_op op;
    struct snap_read *next;
    struct group_state *gs;
    struct raft_msg m; /* the core's request; chunk set once read */
    struct snap_fd *fd;
    uint8_t *buf; /* RAFT_SNAPSHOT_CHUNK_BYTES, while the read is in flight */
};

/* An open snapshot file being sent (a small per-worker cache: a transfer reads one chunk
 * after another, and opening the file for each through the ring would add a round trip). */
struct snap_fd {
    struct snap_op op;
    raft_group g;
    raft_index index;
    int fd;        /* -1 while the open is in flight */
    uint32_t refs; /* reads in flight on it */
    int64_t used_ms;
    bool used;                 /* the slot holds a file */
    struct snap_read *waiting; /* reads waiting for the open */
    char name[64];
};

static void reads_pump(struct worker *w);

/* gs->snap_wanted, with the worker's count of wanted groups kept exact: the policy scans the
 * groups for wanted ones only while some are (pick_wanted), not on every loop iteration. */
static void set_wanted(struct worker *w, struct group_state *gs, bool wanted)
{
    if (gs->snap_wanted == wanted) {
        return;
    }
    gs->snap_wanted = wanted;
    if (wanted) {
        w->snap_wanted_count++;
    } else {
        RR_ASSERT(w->snap_wanted_count > 0);
        w->snap_wanted_count--;
    }
}

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
    if (kernel_sq_space_left(&w->ring) < 3) {
        kernel_submit(&w->ring); /* a link chain must not straddle two submissions */
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
    b->fop = 0;
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
    /* Published at once (not at the next once-a-second refresh): RAFT STATUS shows a
     * snapshot as soon as it is durable. */
    atomic_store_explicit(&w->node->pub[gs->g].snapshot_index, index, memory_order_relaxed);
}

/* ---- a local snapshot --------------------------------------------------------------------- */

static void job_advance(struct snap_job *j);

/* Writes back the next range written (one at a time; see SNAP_WRITEBACK_BYTES). Writes
 * complete in order (one file, hashed in io-wq), so [writeback_at, written) is contiguous. */
static void job_writeback(struct worker *w, struct snap_job *j)
{
    if (j->fd < 0 || j->writeback_busy || j->written < j->writeback_at + SNAP_WRITEBACK_BYTES) {
        return;
    }
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_sync_file_range(
        sqe, j->fd, (unsigned)(j->written - j->writeback_at), j->writeback_at,
        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
    submit_op(sqe, &j->writeback_op);
    j->writeback_at = j->written;
    j->writeback_busy = true;
    j->inflight++;
}

static void job_writeback_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_job *j = op->owner;
    j->inflight--;
    j->writeback_busy = false;
    if (res < 0 && j->error == 0) {
        j->error = res; /* an I/O error: the snapshot fails before its fsync would */
    }
    j->synced = j->writeback_at;
    if (j->error == 0 && !j->discard) {
        job_writeback(w, j);
    }
    job_advance(j);
}

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
    j->unwritten -= b->len;
    j->written += b->done;
    free(b);
    if (j->error == 0 && !j->discard) {
        job_writeback(w, j);
    }
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
    while (n > 0) {
        if (j->fill == NULL) {
            j->fill = buf_new(j, j->file_bytes, SNAP_BUF_BYTES, job_write_cb);
        }
        size_t take = SNAP_BUF_BYTES - j->fill->len < n ? SNAP_BUF_BYTES - j->fill->len : n;
        memcpy(j->fill->p + j->fill->len, p, take);
        j->fill->len += take;
        j->file_bytes += take;
        j->unwritten += take;
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
    if (j->img != NULL) {
        j->w->snap_serializing--;
    }
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
    int rc = raft_snapshot_taken(r, index, j->file_bytes, w->node->cfg.snapshot_trailing);
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

/* Whether the job may serialize more now: its image is not complete and the disk has taken
 * most of what it was given. */
static bool job_can_serialize(const struct snap_job *j)
{
    return j->img != NULL && !j->serialized && !j->discard && j->error == 0 &&
           j->unwritten < SNAP_JOB_UNWRITTEN_MAX &&
           j->file_bytes - j->synced < SNAP_JOB_UNSYNCED_MAX;
}

/* Serializes up to about `budget` image bytes into the file's buffers (one slice of the
 * walk: sm_snap_step never splits a key); returns the bytes produced. */
static uint64_t job_serialize(struct snap_job *j, uint64_t budget)
{
    uint64_t done = 0;
    while (job_can_serialize(j) && done < budget) {
        if (sm_snap_pending(j->img) > SNAP_PENDING_MAX) {
            /* Writes serialized more keys ahead of the walk than the limit allows. */
            j->error = -ENOMEM;
            break;
        }
        reply_reset(&j->out);
        uint64_t slice = budget - done;
        int rc = sm_snap_step(j->img, &j->out,
                              (size_t)(slice < SNAP_BUF_BYTES ? slice : SNAP_BUF_BYTES));
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
            j->w->snap_serializing--;
            j->serialized = true;
            if (j->fill != NULL) {
                struct snap_buf *b = j->fill;
                j->fill = NULL;
                job_submit(j, b);
            }
        }
    }
    if (j->error != 0 && j->img != NULL) {
        /* Stopped early: the state machine stops serializing for it (sm_snap_free). */
        sm_snap_free(j->img);
        j->img = NULL;
        j->w->snap_serializing--;
    }
    job_advance(j);
    return done;
}

bool snapshot_busy(const struct worker *w)
{
    for (const struct snap_job *j = w->snap_jobs; j != NULL; j = j->next) {
        if (job_can_serialize(j)) {
            return true;
        }
    }
    return false;
}

/* The heap that compacting gs's log frees, as heap_trim counts it (worker.log_freed_bytes):
 * its entries' data, unless log-release freed it already as the entries were applied. */
static void log_compacted(struct worker *w, const struct group_state *gs)
{
    if (!w->node->cfg.log_release) {
        w->log_freed_bytes += gs->log_bytes;
    }
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
        j->img = NULL;
        job_free(j);
        return rc;
    }
    w->snap_serializing++;
    j->next = w->snap_jobs;
    w->snap_jobs = j;
    w->snap_job_count++;
    gs->snap_running = true;
    j->state = JOB_OPENING;
    j->open_op = (struct snap_op){job_open_cb, j};
    j->sync_op = (struct snap_op){job_chain_cb, j};
    j->rename_op = (struct snap_op){job_chain_cb, j};
    j->dirsync_op = (struct snap_op){job_chain_cb, j};
    j->writeback_op = (struct snap_op){job_writeback_cb, j};
    snapshot_name(j->name, sizeof(j->name), gs->g, index);
    j->inflight++;
    open_tmp(w, j->tmp, sizeof(j->tmp), gs->g, index, &j->open_op);
    set_wanted(w, gs, false);
    w->snap_log_bytes -= gs->log_bytes;
    log_compacted(w, gs); /* once the file is durable */
    gs->log_bytes = 0;
    return 0;
}

void snapshot_on_apply(struct worker *w, struct group_state *gs, uint32_t bytes)
{
    uint64_t add = (uint64_t)bytes + SNAP_ENTRY_OVERHEAD;
    gs->log_bytes += add;
    w->snap_log_bytes += add;
    w->log_freed_bytes -= add < w->log_freed_bytes ? add : w->log_freed_bytes;
    uint64_t limit = w->node->cfg.snapshot_log_bytes;
    if (limit != 0 && gs->log_bytes >= limit) {
        set_wanted(w, gs, true);
    }
}

void snapshot_request(struct worker *w, struct group_state *gs, raft_index *index)
{
    raft_index applied = sm_applied_index(gs->sm);
    *index = applied > gs->snap_index ? applied : 0;
    if (*index != 0) {
        set_wanted(w, gs, true);
        gs->snap_retry_ms = 0;
    }
}

/* Picks the next group that wants a snapshot (bounded scan, round robin; none while no
 * group wants one). */
static struct group_state *pick_wanted(struct worker *w)
{
    if (w->snap_wanted_count == 0) {
        return NULL;
    }
    uint32_t n = w->group_count < SNAP_SCAN_SLOTS_MAX ? w->group_count : SNAP_SCAN_SLOTS_MAX;
    for (uint32_t k = 0; k < n; k++) {
        struct group_state *gs = &w->groups[w->snap_scan];
        w->snap_scan = (w->snap_scan + 1) % w->group_count;
        if (gs->snap_wanted && gs->rx == NULL && !gs->snap_running &&
            w->now_ms >= gs->snap_retry_ms) {
            if (sm_applied_index(gs->sm) <= gs->snap_index) {
                set_wanted(w, gs, false);
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
    /* One slice per loop iteration, shared by the jobs that may go on: the loop serves
     * requests and drains groups between slices, so a large image never stalls it. */
    uint64_t budget = w->node->cfg.snapshot_slice_bytes;
    for (struct snap_job *j = w->snap_jobs, *next; j != NULL && budget > 0; j = next) {
        next = j->next; /* job_serialize may finish and free j */
        uint64_t done = job_serialize(j, budget);
        budget = done < budget ? budget - done : 0;
    }
    reads_pump(w);
}

void snapshot_handle_cqe(struct worker *w, struct snap_op *op, int res)
{
    op->cb(w, op, res);
}

/* ---- acknowledgements that wait for file writes ------------------------------------------- */

/* A received chunk's acknowledgement must not leave before the chunk is stored. Such writes
 * are numbered as they are issued; the drain's persist unit remembers the last number issued
 * (held_unit.need_fop) and is released once every write up to it completed. They complete in
 * any order: done[] marks them, and fop_done moves over the contiguous prefix. */
#define FOP_RING 65536u

static uint64_t fop_begin(struct worker *w)
{
    RR_ASSERT(w->fop_issued - w->fop_done < FOP_RING - 1);
    return ++w->fop_issued;
}

static void fop_end(struct worker *w, uint64_t seq)
{
    RR_ASSERT(seq > w->fop_done && seq <= w->fop_issued);
    w->fop_ring[seq % FOP_RING] = 1;
    while (w->fop_done < w->fop_issued && w->fop_ring[(w->fop_done + 1) % FOP_RING] != 0) {
        w->fop_ring[(w->fop_done + 1) % FOP_RING] = 0;
        w->fop_done++;
    }
}

/* ---- receiving a snapshot from the leader -------------------------------------------------- */

/* Verdicts are given outside drains (core/raft.h): queued here, given by snapshot_verdicts.
 * Each names its transfer: by the time it is given the core may be receiving another one,
 * even of a snapshot at the same index (a new leader's, or the same leader's restart), which
 * the verdict must not install or drop (the core answers RR_ENOTFOUND). */
static void
verdict_later(struct worker *w, raft_group g, raft_index index, uint64_t transfer, bool ok)
{
    if (w->verdict_count == w->verdict_cap) {
        uint32_t cap = w->verdict_cap ? w->verdict_cap * 2 : 16;
        struct snap_verdict *v = realloc(w->verdicts, cap * sizeof(*v));
        RR_ASSERT(v != NULL);
        w->verdicts = v;
        w->verdict_cap = cap;
    }
    w->verdicts[w->verdict_count++] =
        (struct snap_verdict){.g = g, .index = index, .transfer = transfer, .ok = ok};
}

void snapshot_verdicts(struct worker *w)
{
    for (uint32_t i = 0; i < w->verdict_count; i++) {
        const struct snap_verdict *v = &w->verdicts[i];
        int rc = raft_snapshot_received(multi_group(w->multi, v->g), v->transfer, v->ok);
        if (rc != 0 && rc != RR_ENOTFOUND) {
            LOG_W("group %u: verdict on snapshot %llu: %s", v->g, (unsigned long long)v->index,
                  rr_strerror(rc));
        }
        if (!v->ok) {
            w->st.snapshots_refused++;
        }
    }
    w->verdict_count = 0;
}

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
    struct snap_buf *b = rx->queue;
    while (b != NULL) {
        struct snap_buf *next = b->next;
        free(b);
        b = next;
    }
    free(rx->barrier);
    if (rx->gs->rx == rx) {
        rx->gs->rx = NULL;
    }
    free(rx);
}

/* Frees an abandoned transfer once nothing of it is in flight (its file goes too). */
static void rx_settle(struct worker *w, struct snap_rx *rx)
{
    if (!rx->abandoned || rx->inflight > 0) {
        return;
    }
    if (rx->fd >= 0) {
        close_later(w, rx->fd);
        unlink_later(w, rx->tmp);
    }
    rx_free(rx);
}

static void rx_abandon(struct worker *w, struct snap_rx *rx)
{
    rx->abandoned = true;
    if (rx->gs->rx == rx) {
        rx->gs->rx = NULL;
    }
    rx_settle(w, rx);
}

/* Refuses the transfer: the core drops it and the leader starts over; never installed. */
static void rx_refuse(struct worker *w, struct snap_rx *rx, const char *why)
{
    if (!rx->bad) {
        LOG_W("group %u: snapshot %llu from node %u refused: %s", rx->gs->g,
              (unsigned long long)rx->meta.index, rx->gs->leader, why);
        rx->bad = true;
        verdict_later(w, rx->gs->g, rx->meta.index, rx->transfer, false);
    }
    rx_abandon(w, rx);
}

/* Every chunk stored and the image checked out: the verdict that lets the core install it. */
static void rx_maybe_verdict(struct worker *w, struct snap_rx *rx)
{
    if (rx->last_seen && !rx->bad && !rx->abandoned && !rx->verdict_given &&
        rx->writes_pending == 0) {
        rx->verdict_given = true;
        verdict_later(w, rx->gs->g, rx->meta.index, rx->transfer, true);
    }
}

static void rx_sync_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_buf *b = op->owner;
    struct snap_rx *rx = b->owner;
    rx->inflight--;
    rx->writes_pending--;
    fop_end(w, b->fop);
    if (res < 0 && !rx->bad) {
        char why[96];
        snprintf(why, sizeof(why), "syncing %s: %s", rx->tmp, strerror(-res));
        free(b);
        rx_refuse(w, rx, why);
        return;
    }
    w->st.snapshot_chunks_received++;
    w->st.snapshot_bytes_received += b->len;
    free(b);
    rx_maybe_verdict(w, rx);
    rx_settle(w, rx);
}

static void rx_write_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_buf *b = op->owner;
    struct snap_rx *rx = b->owner;
    rx->inflight--;
    if (res == -EINTR || res == -EAGAIN) {
        res = 0;
    }
    if (res < 0 || rx->abandoned) {
        rx->writes_pending--;
        fop_end(w, b->fop);
        free(b);
        if (res < 0) {
            char why[96];
            snprintf(why, sizeof(why), "writing %s: %s", rx->tmp, strerror(-res));
            rx_refuse(w, rx, why);
        } else {
            rx_settle(w, rx);
        }
        return;
    }
    b->done += (size_t)res;
    rx->inflight++;
    if (b->done < b->len) {
        write_buf(w, rx->fd, b);
        return;
    }
    /* Durable before it is acknowledged: an fdatasync of the temporary file (which also keeps
     * the final fsync of the install short). */
    b->op.cb = rx_sync_cb;
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_fsync(sqe, rx->fd, IORING_FSYNC_DATASYNC);
    submit_op(sqe, &b->op);
}

static void rx_submit(struct worker *w, struct snap_rx *rx, struct snap_buf *b)
{
    if (rx->fd < 0) {
        if (rx->queue_tail == NULL) {
            rx->queue = b;
        } else {
            rx->queue_tail->next = b;
        }
        rx->queue_tail = b;
        return;
    }
    rx->inflight++;
    write_buf(w, rx->fd, b);
}

static void rx_open_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_rx *rx = op->owner;
    rx->inflight--;
    struct snap_buf *b = rx->queue;
    rx->queue = rx->queue_tail = NULL;
    if (res < 0) {
        while (b != NULL) { /* never written: their acknowledgements may go, it is refused */
            struct snap_buf *next = b->next;
            rx->writes_pending--;
            fop_end(w, b->fop);
            free(b);
            b = next;
        }
        char why[96];
        snprintf(why, sizeof(why), "cannot create %s: %s", rx->tmp, strerror(-res));
        rx_refuse(w, rx, why);
        return;
    }
    rx->fd = res;
    while (b != NULL) {
        struct snap_buf *next = b->next;
        b->next = NULL;
        rx_submit(w, rx, b);
        b = next;
    }
    rx_settle(w, rx);
}

static struct snap_rx *
rx_new(struct worker *w, struct group_state *gs, const struct raft_snapshot_chunk *ch)
{
    struct snap_rx *rx = calloc(1, sizeof(*rx));
    RR_ASSERT(rx != NULL);
    rx->w = w;
    rx->gs = gs;
    rx->meta = *ch->meta;
    rx->transfer = ch->transfer;
    rx->total = ch->total_bytes;
    rx->fd = -1;
    rx->open_op = (struct snap_op){rx_open_cb, rx};
    struct sm_limits sl;
    sm_limits_default(&sl);
    if (sm_loader_new(&rx->loader, &sl) != 0 ||
        snapshot_reader_init(&rx->reader, rx_head, rx_data, rx) != 0) {
        sm_loader_free(rx->loader);
        free(rx);
        return NULL;
    }
    snapshot_name(rx->name, sizeof(rx->name), gs->g, ch->meta->index);
    rx->inflight++;
    open_tmp(w, rx->tmp, sizeof(rx->tmp), gs->g, ch->meta->index, &rx->open_op);
    gs->rx = rx;
    return rx;
}

/* The core dropped the transfer it was receiving (core/raft.h RAFT_READY_SNAPSHOT_DROPPED): its
 * temporary file, fd and loaded state go (once nothing of it is in flight). A transfer being
 * installed is the core's snapshot now, not a dropped one. */
void snapshot_persist_dropped(struct worker *w, struct group_state *gs)
{
    if (gs->rx != NULL && gs->rx->barrier == NULL) {
        LOG_I("group %u: snapshot %llu being received was dropped (caught up or a new term)", gs->g,
              (unsigned long long)gs->rx->meta.index);
        w->st.snapshots_dropped++;
        rx_abandon(w, gs->rx);
    }
}

/* The drain's persist of a received chunk: check it, load it, write it (asynchronously). */
void snapshot_persist_chunk(struct worker *w,
                            struct group_state *gs,
                            const struct raft_snapshot_chunk *ch)
{
    struct snap_rx *rx = gs->rx;
    RR_ASSERT(ch->transfer != 0); /* the core numbers transfers from 1 */
    if (ch->offset == 0) {
        if (rx != NULL) {
            rx_abandon(w, rx); /* another transfer starts: the partial one is of no use */
        }
        rx = rx_new(w, gs, ch);
        if (rx == NULL) {
            verdict_later(w, gs->g, ch->meta->index, ch->transfer, false);
            return;
        }
    }
    if (rx == NULL || rx->transfer != ch->transfer || ch->offset != rx->stored) {
        /* Not the transfer we store (ours was refused): the core must drop it too. */
        verdict_later(w, gs->g, ch->meta->index, ch->transfer, false);
        return;
    }
    if (rx->bad) {
        return;
    }
    int rc = snapshot_reader_feed(&rx->reader, ch->data, ch->len);
    if (rc == 0 && ch->done &&
        (!snapshot_reader_done(&rx->reader) || !sm_loader_done(rx->loader))) {
        rc = RR_ECORRUPT;
    }
    if (rc != 0) {
        char why[200];
        snprintf(why, sizeof(why), "%s%s%s", rr_strerror(rc), rx->reader.why[0] ? ": " : "",
                 rx->reader.why);
        rx_refuse(w, rx, why);
        return;
    }
    rx->stored += ch->len;
    struct snap_buf *b = buf_new(rx, ch->offset, ch->len, rx_write_cb);
    memcpy(b->p, ch->data, ch->len);
    b->len = ch->len;
    b->fop = fop_begin(w);
    rx->writes_pending++;
    rx_submit(w, rx, b);
    if (ch->done) {
        rx->last_seen = true;
    }
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
        LOG_E("group %u: making the snapshot received at %llu durable failed: %s", rx->gs->g,
              (unsigned long long)rx->meta.index, strerror(-rx->error));
        w->fatal = RR_EIO;
        rx->barrier = NULL; /* the queue keeps waiting on it: the node stops */
    } else {
        adopt_file(w, rx->gs, rx->meta.index, rx->meta.term, rx->total);
        rx->barrier->done = true;
        rx->barrier = NULL; /* the queue frees it once passed */
        w->st.snapshots_installed++;
        /* Every WAL operation of this worker queued meanwhile waited this long (docs/node.md,
         * "The install barrier holds every group of the worker"). */
        uint64_t us = (uint64_t)(node_clock_ns() - rx->install_ns) / 1000u;
        w->st.install_last_us = us;
        w->st.install_last_bytes = rx->total;
        if (us > w->st.install_max_us) {
            w->st.install_max_us = us;
        }
        LOG_I("group %u: snapshot received at %llu installed (%llu bytes); the worker's WAL "
              "operations waited %llu us for its fsync, rename and directory fsync",
              rx->gs->g, (unsigned long long)rx->meta.index, (unsigned long long)rx->total,
              (unsigned long long)us);
    }
    rx_free(rx);
}

void snapshot_persist_install(struct worker *w, struct group_state *gs, const struct raft_ready *rd)
{
    const struct raft_snapshot_meta *m = rd->snapshot;
    struct snap_rx *rx = gs->rx;
    if (rx == NULL || !rx->verdict_given || rx->meta.index != m->index ||
        rx->total != rd->snapshot_bytes) {
        LOG_E("group %u: the core installed snapshot %llu, which was not received here", gs->g,
              (unsigned long long)m->index);
        w->fatal = RR_EINVAL;
        return;
    }
    /* Every chunk is written and synced (the verdict waited for it): fsync, rename and the
     * directory's fsync make it the group's snapshot. */
    rx->sync_op = (struct snap_op){rx_chain_cb, rx};
    rx->rename_op = (struct snap_op){rx_chain_cb, rx};
    rx->dirsync_op = (struct snap_op){rx_chain_cb, rx};
    rx->barrier = calloc(1, sizeof(*rx->barrier));
    RR_ASSERT(rx->barrier != NULL);
    rx->install_ns = node_clock_ns();
    rx->chain_left = 3;
    rx->inflight += 3;
    finish_chain(w, rx->fd, rx->tmp, rx->name, &rx->sync_op, &rx->rename_op, &rx->dirsync_op);
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
        if (j->img != NULL) {
            sm_snap_free(j->img);
            j->img = NULL;
            w->snap_serializing--;
        }
        j->discard = true;
        job_advance(j);
    }
    struct snap_rx *rx = gs->rx;
    if (rx == NULL || !rx->verdict_given || rx->meta.index != m->index || rx->loader == NULL) {
        LOG_E("group %u: asked to restore snapshot %llu that was not received", gs->g,
              (unsigned long long)m->index);
        w->fatal = RR_EINVAL;
        return;
    }
    int rc = sm_loader_finish(rx->loader, gs->sm);
    RR_ASSERT(rc == 0); /* sm_loader_done was checked before the verdict */
    sm_loader_free(rx->loader);
    rx->loader = NULL;
    w->snap_log_bytes -= gs->log_bytes;
    log_compacted(w, gs); /* the log before the snapshot is dropped */
    gs->log_bytes = 0;
    route_on_restore(w, gs, m->index, m->term);
    LOG_I("group %u: restored the leader's snapshot at %llu (term %llu)", gs->g,
          (unsigned long long)m->index, (unsigned long long)m->term);
}

/* ---- sending a snapshot: chunks read from the file ------------------------------------------ */

#define SNAP_FDS_MAX    32u   /* snapshot files open for sending, per worker */
#define SNAP_READS_MAX  8u    /* chunk reads in flight per worker (a chunk buffer each) */
#define SNAP_QUEUED_MAX 1024u /* chunk requests waiting for a read slot */
#define SNAP_FD_IDLE_MS 10000 /* an unused open file is closed after this */

static struct snap_fd *fd_find(struct worker *w, raft_group g, raft_index index)
{
    for (uint32_t i = 0; i < SNAP_FDS_MAX; i++) {
        struct snap_fd *f = &w->snap_fds[i];
        if (f->used && f->g == g && f->index == index) {
            return f;
        }
    }
    return NULL;
}

static void fd_release(struct worker *w, struct snap_fd *f)
{
    if (f->fd >= 0) {
        close_later(w, f->fd);
    }
    f->used = false;
    f->fd = -1;
}

static void read_issue(struct worker *w, struct snap_read *rd);

static void read_done(struct worker *w, struct snap_read *rd)
{
    free(rd->buf);
    if (rd->fd != NULL) {
        rd->fd->refs--;
        rd->fd->used_ms = w->now_ms;
    }
    w->snap_reads_inflight--;
    free(rd);
}

/* A chunk came off the disk: sent as it lies, cut to whole records, each verified. */
static void read_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_read *rd = op->owner;
    struct raft_msg *m = &rd->m;
    struct raft_msg_snapshot *sn = &m->snapshot;
    if (res <= 0) {
        LOG_W("group %u: reading snapshot %llu at %llu: %s", rd->gs->g,
              (unsigned long long)sn->last_index, (unsigned long long)sn->offset,
              res < 0 ? strerror(-res) : "end of file");
        read_done(w, rd);
        return;
    }
    int64_t whole = snapshot_whole_records(rd->buf, (size_t)res, sn->offset,
                                           snapshot_seed(rd->gs->g, sn->last_index, sn->last_term));
    if (whole < 0) {
        /* Our own file is damaged: never send it; a new snapshot will replace it. */
        LOG_E("group %u: snapshot file %llu is damaged near offset %llu: not sent; taking a new "
              "one",
              rd->gs->g, (unsigned long long)sn->last_index, (unsigned long long)sn->offset);
        set_wanted(w, rd->gs, true);
        read_done(w, rd);
        return;
    }
    if (whole > 0) {
        sn->chunk.base = rd->buf;
        sn->chunk.len = (uint32_t)whole;
        sn->done = sn->offset + (uint64_t)whole == sn->total_bytes;
        if (peer_send_msg(w, m)) {
            w->st.snapshot_chunks_sent++;
        }
    }
    read_done(w, rd);
}

static void fd_open_cb(struct worker *w, struct snap_op *op, int res)
{
    struct snap_fd *f = op->owner;
    struct snap_read *rd = f->waiting;
    f->waiting = NULL;
    if (res < 0) {
        LOG_W("group %u: cannot open snapshot file %s: %s", f->g, f->name, strerror(-res));
        f->used = false;
    } else {
        f->fd = res;
    }
    while (rd != NULL) {
        struct snap_read *next = rd->next;
        rd->next = NULL;
        if (res < 0) {
            rd->fd = NULL;
            read_done(w, rd);
        } else {
            read_issue(w, rd);
        }
        rd = next;
    }
}

/* A slot for group g's file at index: the one open, a free one, or an idle one reused. */
static struct snap_fd *fd_get(struct worker *w, raft_group g, raft_index index)
{
    struct snap_fd *f = fd_find(w, g, index);
    if (f != NULL) {
        return f;
    }
    struct snap_fd *idle = NULL;
    for (uint32_t i = 0; i < SNAP_FDS_MAX && f == NULL; i++) {
        struct snap_fd *c = &w->snap_fds[i];
        if (!c->used) {
            f = c;
        } else if (c->refs == 0 && c->waiting == NULL && c->fd >= 0 &&
                   (idle == NULL || c->used_ms < idle->used_ms)) {
            idle = c;
        }
    }
    if (f == NULL && idle != NULL) {
        fd_release(w, idle);
        f = idle;
    }
    if (f == NULL) {
        return NULL;
    }
    *f = (struct snap_fd){.op = {fd_open_cb, f},
                          .g = g,
                          .index = index,
                          .fd = -1,
                          .used = true,
                          .used_ms = w->now_ms};
    snapshot_name(f->name, sizeof(f->name), g, index);
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_openat(sqe, w->snap_dirfd, f->name, O_RDONLY | O_CLOEXEC, 0);
    submit_op(sqe, &f->op);
    return f;
}

static void read_issue(struct worker *w, struct snap_read *rd)
{
    struct snap_fd *f = rd->fd;
    if (f->fd < 0) {
        rd->next = f->waiting; /* the open is in flight */
        f->waiting = rd;
        return;
    }
    rd->buf = malloc(RAFT_SNAPSHOT_CHUNK_BYTES);
    RR_ASSERT(rd->buf != NULL);
    struct io_uring_sqe *sqe = worker_sqe(w);
    io_uring_prep_read(sqe, f->fd, rd->buf, rd->m.snapshot.chunk.len, rd->m.snapshot.offset);
    submit_op(sqe, &rd->op);
}

/* Starts queued chunk reads while slots are free. */
static void reads_pump(struct worker *w)
{
    while (w->snap_read_head != NULL && w->snap_reads_inflight < SNAP_READS_MAX) {
        struct snap_read *rd = w->snap_read_head;
        w->snap_read_head = rd->next;
        if (w->snap_read_head == NULL) {
            w->snap_read_tail = NULL;
        }
        w->snap_read_queued--;
        rd->next = NULL;
        const struct raft_msg_snapshot *sn = &rd->m.snapshot;
        if (rd->gs->snap_index != sn->last_index) {
            free(rd); /* replaced meanwhile: the core asks again for the new one */
            continue;
        }
        rd->fd = fd_get(w, rd->gs->g, sn->last_index);
        if (rd->fd == NULL) {
            free(rd); /* every slot busy: the core sends again after a timeout */
            continue;
        }
        rd->fd->refs++;
        w->snap_reads_inflight++;
        read_issue(w, rd);
    }
}

void snapshot_read_chunk(struct worker *w, struct group_state *gs, const struct raft_msg *m)
{
    /* Only the durable file of the snapshot the core names can be sent; a snapshot installed
     * but not yet durable, or one just replaced, is asked for again after a timeout. */
    if (gs->snap_index != m->snapshot.last_index || w->snap_read_queued >= SNAP_QUEUED_MAX ||
        m->snapshot.offset + m->snapshot.chunk.len > gs->snap_file_bytes) {
        w->st.snapshot_chunks_dropped++;
        return;
    }
    struct snap_read *rd = calloc(1, sizeof(*rd));
    RR_ASSERT(rd != NULL);
    rd->op = (struct snap_op){read_cb, rd};
    rd->gs = gs;
    rd->m = *m;
    if (w->snap_read_tail == NULL) {
        w->snap_read_head = rd;
    } else {
        w->snap_read_tail->next = rd;
    }
    w->snap_read_tail = rd;
    w->snap_read_queued++;
}

/* Closes open snapshot files that are idle or no longer the group's snapshot. */
void snapshot_sweep(struct worker *w)
{
    for (uint32_t i = 0; i < SNAP_FDS_MAX; i++) {
        struct snap_fd *f = &w->snap_fds[i];
        if (!f->used || f->refs > 0 || f->waiting != NULL || f->fd < 0) {
            continue;
        }
        struct group_state *gs = worker_group(w, f->g);
        if (gs == NULL || gs->snap_index != f->index || w->now_ms > f->used_ms + SNAP_FD_IDLE_MS) {
            fd_release(w, f);
        }
    }
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
    w->fop_ring = calloc(FOP_RING, 1);
    w->snap_fds = calloc(SNAP_FDS_MAX, sizeof(*w->snap_fds));
    DIR *d = opendir(dir);
    if (w->snap_candidates == NULL || w->fop_ring == NULL || w->snap_fds == NULL || d == NULL) {
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
    if (rc == 0 && (rc = sm_create(&sm, &sl, &w->sm_scratch)) == 0) {
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
