/* Segment files: naming, the directory lock, preparation (synchronous at start-up, through
 * the ring afterwards), activation and deletion, and their lifetime: which segments no
 * group needs any more. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "storage/wal_internal.h"

void wal_segment_name(char *buf, size_t len, uint64_t seq)
{
    snprintf(buf, len, "wal-%016llx", (unsigned long long)seq);
}

int wal_lock_dir(struct wal *wal, char *err, size_t err_len)
{
    if (mkdir(wal->dir, 0755) == 0) {
        /* A new directory's name lives in its parent: make it durable before any segment
         * in it counts as durable. */
        char parent[4096];
        snprintf(parent, sizeof(parent), "%s", wal->dir);
        char *slash = strrchr(parent, '/');
        if (slash == parent) {
            slash[1] = '\0';
        } else if (slash != NULL) {
            *slash = '\0';
        } else {
            snprintf(parent, sizeof(parent), ".");
        }
        int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int rc = pfd >= 0 ? WAL_FAULT(WAL_FP_DIR_SYNC, fsync(pfd)) : -1;
        int saved = errno;
        if (pfd >= 0) {
            close(pfd);
        }
        if (rc != 0) {
            snprintf(err, err_len, "wal: cannot fsync %s after creating %s: %s", parent, wal->dir,
                     strerror(saved));
            return RR_EIO;
        }
    } else if (errno != EEXIST) {
        snprintf(err, err_len, "wal: cannot create %s: %s", wal->dir, strerror(errno));
        return -errno;
    }
    wal->dir_fd = WAL_FAULT(WAL_FP_LOCK, open(wal->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (wal->dir_fd < 0) {
        snprintf(err, err_len, "wal: cannot open %s: %s", wal->dir, strerror(errno));
        return RR_EIO;
    }
    wal->lock_fd = openat(wal->dir_fd, "LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (wal->lock_fd < 0) {
        snprintf(err, err_len, "wal: cannot open %s/LOCK: %s", wal->dir, strerror(errno));
        return RR_EIO;
    }
    if (flock(wal->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        snprintf(err, err_len, "wal: %s is locked by another process (%s)", wal->dir,
                 strerror(errno));
        return RR_EBUSY;
    }
    return RR_OK;
}

void wal_segment_fill_header(const struct wal *wal, uint64_t seq, struct wal_segment_header *h)
{
    memset(h, 0, sizeof(*h));
    h->version = WAL_FORMAT_VERSION;
    h->cluster_id = wal->cfg.cluster_id;
    h->node_id = wal->cfg.node_id;
    h->worker_id = wal->cfg.worker_id;
    h->group_count = wal->cfg.group_count;
    h->worker_count = wal->cfg.worker_count;
    h->seq = seq;
    h->segment_bytes = wal->cfg.segment_bytes;
    h->salt = wal_segment_salt(h);
}

static int write_full(int fd, const uint8_t *buf, size_t len, off_t off)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n =
            WAL_FAULT(WAL_FP_SEG_PREP, pwrite(fd, buf + done, len - done, off + (off_t)done));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        done += (size_t)n;
    }
    return RR_OK;
}

/* Zero-fill (or fallocate) the whole file, write the header, fsync file and directory. */
static int prepare_sync(struct wal *wal, int fd, uint64_t seq)
{
    uint64_t bytes = wal->cfg.segment_bytes;
    int rc = RR_OK;
    if (wal->cfg.prep_method == WAL_PREP_FALLOCATE) {
        rc = WAL_FAULT(WAL_FP_SEG_PREP, fallocate(fd, 0, 0, (off_t)bytes)) == 0 ? RR_OK : -errno;
    }
    for (uint64_t off = 0; rc == RR_OK && wal->cfg.prep_method == WAL_PREP_ZERO && off < bytes;
         off += WAL_PREP_CHUNK) {
        size_t n = bytes - off < WAL_PREP_CHUNK ? (size_t)(bytes - off) : WAL_PREP_CHUNK;
        rc = write_full(fd, wal->zeros, n, (off_t)off);
    }
    struct wal_segment_header h;
    wal_segment_fill_header(wal, seq, &h);
    wal_segment_header_encode(&h, wal->prep.header);
    if (rc == RR_OK) {
        rc = write_full(fd, wal->prep.header, WAL_SEGMENT_HEADER_BYTES, 0);
    }
    if (rc == RR_OK && WAL_FAULT(WAL_FP_SEG_PREP, fsync(fd)) != 0) {
        rc = -errno;
    }
    if (rc == RR_OK && WAL_FAULT(WAL_FP_SEG_PREP, fsync(wal->dir_fd)) != 0) {
        rc = -errno;
    }
    return rc;
}

static int open_segment_file(struct wal *wal, uint64_t seq)
{
    char name[32];
    wal_segment_name(name, sizeof(name), seq);
    int fd = openat(wal->dir_fd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    return WAL_FAULT(WAL_FP_SEG_OPEN, fd);
}

int wal_segment_create_sync(struct wal *wal, uint64_t seq, struct wal_segment *out)
{
    int fd = open_segment_file(wal, seq);
    if (fd < 0) {
        return errno != 0 ? -errno : RR_EIO;
    }
    int rc = prepare_sync(wal, fd, seq);
    if (rc != RR_OK) {
        char name[32];
        wal_segment_name(name, sizeof(name), seq);
        close(fd);
        unlinkat(wal->dir_fd, name, 0);
        return rc;
    }
    struct wal_segment_header h;
    wal_segment_fill_header(wal, seq, &h);
    memset(out, 0, sizeof(*out));
    out->seq = seq;
    out->fd = fd;
    out->dfd = -1; /* wal_direct_start opens it once recovery is done */
    out->salt = h.salt;
    out->bytes = h.segment_bytes;
    wal->stats.segments_created++;
    return RR_OK;
}

/* ---- direct I/O ----------------------------------------------------------------------- */

static int open_direct_sync(struct wal *wal, uint64_t seq)
{
    char name[32];
    wal_segment_name(name, sizeof(name), seq);
    return openat(wal->dir_fd, name, O_RDWR | O_DIRECT | O_CLOEXEC);
}

int wal_direct_probe(struct wal *wal, char *err, size_t err_len)
{
    if (!wal->cfg.direct_io) {
        return RR_OK;
    }
    /* A filesystem without O_DIRECT (tmpfs before Linux 6.6, some FUSE ones) refuses it
     * with EINVAL: the WAL then writes through the page cache, as with direct_io off. */
    int probe = openat(wal->dir_fd, "LOCK", O_RDONLY | O_DIRECT | O_CLOEXEC);
    if (probe < 0) {
        if (errno == EINVAL) {
            return RR_OK;
        }
        snprintf(err, err_len, "wal: cannot open %s/LOCK with O_DIRECT: %s", wal->dir,
                 strerror(errno));
        return RR_EIO;
    }
    close(probe);
    void *bufs = NULL;
    if (posix_memalign(&bufs, WAL_DIO_ALIGN, (size_t)WAL_FLUSHES_MAX * WAL_DIO_BUF_BYTES) != 0) {
        snprintf(err, err_len, "wal: out of memory");
        return RR_ENOMEM;
    }
    wal->dio_bufs = bufs;
    wal->direct = true;
    return RR_OK;
}

/* Opens segment seq's direct descriptor into *dfd at start-up; RR_EIO with a message. */
static int open_direct_start(struct wal *wal, uint64_t seq, int *dfd, char *err, size_t err_len)
{
    *dfd = open_direct_sync(wal, seq);
    if (*dfd < 0) {
        snprintf(err, err_len, "wal: cannot open segment %" PRIu64 " for direct I/O: %s", seq,
                 strerror(errno));
        return RR_EIO;
    }
    return RR_OK;
}

int wal_direct_start(struct wal *wal, char *err, size_t err_len)
{
    if (!wal->direct) {
        return RR_OK;
    }
    RR_ASSERT(wal->seg_count > 0);
    struct wal_segment *active = &wal->segs[wal->seg_count - 1];
    if (!active->sealed) {
        if (open_direct_start(wal, active->seq, &active->dfd, err, err_len) != RR_OK) {
            return RR_EIO;
        }
        /* The first flush rewrites the block its records start in: read what it holds. */
        RR_ASSERT(wal->durable >= active->lsn_start);
        uint64_t off = WAL_SEGMENT_HEADER_BYTES + wal->durable - active->lsn_start;
        wal->dio_tail_seq = active->seq;
        wal->dio_tail_off = off & ~(uint64_t)(WAL_DIO_ALIGN - 1u);
        wal->dio_tail_len = (uint32_t)(off - wal->dio_tail_off);
        if (wal->dio_tail_len > 0 &&
            pread(active->fd, wal->dio_tail, wal->dio_tail_len, (off_t)wal->dio_tail_off) !=
                (ssize_t)wal->dio_tail_len) {
            snprintf(err, err_len, "wal: cannot read the tail of segment %" PRIu64 ": %s",
                     active->seq, strerror(errno));
            return RR_EIO;
        }
    }
    if (wal->prep.state == WAL_PREP_READY) {
        return open_direct_start(wal, wal->prep.seq, &wal->prep.dfd, err, err_len);
    }
    return RR_OK; /* a spare being prepared now opens its own (STEP_OPEN_DIRECT) */
}

/* ---- maintenance: spares and retired files, through the ring -------------------------- */

/* The steps of each job, in order. Every metadata operation (open with O_CREAT, rename,
 * unlink) is followed by a directory fsync before anything else touches a name: the names
 * on disk then change in the order they were issued, so after any crash they form one
 * contiguous run of sequence numbers and recovery can take a gap for what it is, damage. A
 * recycled file's new header is written only once its new name is durable, so a header
 * never names a sequence number its file name does not carry. */
enum wal_step {
    STEP_OPEN,        /* IORING_OP_OPENAT, O_CREAT | O_TRUNC */
    STEP_FILL,        /* zero-fill (repeated, each chunk written back) or fallocate */
    STEP_HEADER,      /* write the new header */
    STEP_SYNC_FILE,   /* fsync the file: data, size and extents */
    STEP_SYNC_DIR,    /* fsync the directory: the name changes before it are durable */
    STEP_RENAME,      /* IORING_OP_RENAMEAT old -> new name */
    STEP_UNLINK,      /* IORING_OP_UNLINKAT */
    STEP_OPEN_DIRECT, /* IORING_OP_OPENAT of the ready file with O_DIRECT (skipped without) */
    STEP_END,
};

static const uint8_t job_steps[][7] = {
    [WAL_JOB_NONE] = {STEP_END},
    [WAL_JOB_CREATE] = {STEP_OPEN, STEP_FILL, STEP_HEADER, STEP_SYNC_FILE, STEP_SYNC_DIR,
                        STEP_OPEN_DIRECT, STEP_END},
    [WAL_JOB_RECYCLE] = {STEP_RENAME, STEP_SYNC_DIR, STEP_HEADER, STEP_SYNC_FILE, STEP_OPEN_DIRECT,
                         STEP_END},
    [WAL_JOB_DELETE] = {STEP_UNLINK, STEP_SYNC_DIR, STEP_END},
    [WAL_JOB_DISCARD] = {STEP_UNLINK, STEP_SYNC_DIR, STEP_END},
};

static enum wal_step meta_step(const struct wal_meta *m)
{
    return (enum wal_step)job_steps[m->job][m->step];
}

/* Prepares the SQE of the current step; false if the ring had no room (deferred). */
static bool meta_submit(struct wal *wal)
{
    struct wal_meta *m = &wal->meta;
    if (!wal_sq_room(wal, 1)) {
        m->deferred = true;
        wal->stats.deferred++;
        return false;
    }
    m->deferred = false;
    struct io_uring_sqe *sqe = wal_sqe(wal, WAL_OP_META, m->step);
    switch (meta_step(m)) {
    case STEP_OPEN:
        io_uring_prep_openat(sqe, wal->dir_fd, m->new_name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
                             0644);
        break;
    case STEP_FILL:
        if (wal->cfg.prep_method == WAL_PREP_FALLOCATE) {
            io_uring_prep_fallocate(sqe, m->fd, 0, 0, (off_t)m->bytes);
        } else if (m->pushed < m->done) {
            /* Each chunk goes to the device before the next is written: the appends'
             * fdatasyncs flush the device's cache, and must not wait behind a whole
             * segment of zeros (a 64 MiB fill left to the final fsync put 100-150 ms
             * stalls into every rotation of a loaded node). */
            io_uring_prep_sync_file_range(sqe, m->fd, (unsigned)(m->done - m->pushed), m->pushed,
                                          SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                              SYNC_FILE_RANGE_WAIT_AFTER);
        } else {
            uint64_t n = m->bytes - m->done < WAL_PREP_CHUNK ? m->bytes - m->done : WAL_PREP_CHUNK;
            io_uring_prep_write(sqe, m->fd, wal->zeros, (unsigned)n, m->done);
        }
        break;
    case STEP_HEADER:
        io_uring_prep_write(sqe, m->fd, wal->prep.header, WAL_SEGMENT_HEADER_BYTES, 0);
        break;
    case STEP_SYNC_FILE:
        io_uring_prep_fsync(sqe, m->fd, 0); /* a full fsync: size and extents are metadata */
        break;
    case STEP_SYNC_DIR:
        io_uring_prep_fsync(sqe, wal->dir_fd, 0);
        break;
    case STEP_RENAME:
        io_uring_prep_renameat(sqe, wal->dir_fd, m->old_name, wal->dir_fd, m->new_name, 0);
        break;
    case STEP_UNLINK:
        io_uring_prep_unlinkat(sqe, wal->dir_fd, m->old_name, 0);
        break;
    case STEP_OPEN_DIRECT:
        io_uring_prep_openat(sqe, wal->dir_fd, m->new_name, O_RDWR | O_DIRECT | O_CLOEXEC, 0);
        break;
    case STEP_END:
        RR_ASSERT(false && "a finished job has no step to submit");
        break;
    }
    return true;
}

static void meta_start(struct wal *wal, enum wal_meta_job job)
{
    struct wal_meta *m = &wal->meta;
    RR_ASSERT(m->job == WAL_JOB_NONE);
    m->job = job;
    m->step = 0;
    m->done = 0;
    m->pushed = 0;
    if (job == WAL_JOB_CREATE || job == WAL_JOB_RECYCLE) {
        m->seq = wal->next_seq;
        m->bytes = wal->cfg.segment_bytes;
        wal_segment_name(m->new_name, sizeof(m->new_name), m->seq);
        struct wal_segment_header h;
        wal_segment_fill_header(wal, m->seq, &h);
        wal_segment_header_encode(&h, wal->prep.header);
        wal->prep.state = WAL_PREP_RUNNING;
    }
    if (job == WAL_JOB_CREATE) {
        m->fd = -1;
    }
    if (job == WAL_JOB_RECYCLE || job == WAL_JOB_DELETE) {
        struct wal_retired *r = &wal->retired[wal->retired_head];
        wal_segment_name(m->old_name, sizeof(m->old_name), r->seq);
        m->fd = r->fd;
        if (job == WAL_JOB_DELETE) {
            m->bytes = r->bytes;
        }
        wal->retired_head = (wal->retired_head + 1u) % WAL_SEGMENTS_MAX;
        wal->retired_count--;
        if (job == WAL_JOB_RECYCLE && r->bytes != m->bytes) {
            /* Segments change size only across restarts with a new configuration: such a
             * file cannot be recycled, so it is deleted and a new one created. */
            job = m->job = WAL_JOB_DELETE;
            m->bytes = r->bytes;
            wal->prep.state = WAL_PREP_IDLE;
        }
        if (job == WAL_JOB_DELETE) {
            /* Closed here, while it still has its name: the close only drops a reference.
             * The unlink then frees the blocks in the kernel's worker, off this thread. */
            wal_close_fd(wal, m->fd);
            m->fd = -1;
        }
    }
    meta_submit(wal);
}

void wal_meta_kick(struct wal *wal)
{
    struct wal_meta *m = &wal->meta;
    if (wal->error != 0) {
        return;
    }
    if (m->job != WAL_JOB_NONE) {
        if (m->deferred) {
            meta_submit(wal);
        }
        return;
    }
    struct wal_prep *p = &wal->prep;
    bool need_spare = p->state == WAL_PREP_IDLE;
    bool retry = p->state == WAL_PREP_FAILED &&
                 (wal->retired_count > 0 || wal_now_ns(wal) - p->failed_ns >= WAL_PREP_RETRY_NS);
    if (need_spare || retry) {
        meta_start(wal, wal->retired_count > 0 ? WAL_JOB_RECYCLE : WAL_JOB_CREATE);
    } else if (wal->retired_count > WAL_RECYCLE_POOL) {
        meta_start(wal, WAL_JOB_DELETE);
    }
}

static void meta_done(struct wal *wal)
{
    struct wal_meta *m = &wal->meta;
    struct wal_prep *p = &wal->prep;
    switch (m->job) {
    case WAL_JOB_CREATE:
    case WAL_JOB_RECYCLE:
        p->state = WAL_PREP_READY;
        p->fd = m->fd;
        p->dfd = m->dfd;
        m->dfd = -1;
        p->seq = m->seq;
        p->bytes = m->bytes;
        p->error = 0;
        wal->next_seq = m->seq + 1;
        if (m->job == WAL_JOB_CREATE) {
            wal->stats.segments_created++;
        } else {
            wal->stats.segments_recycled++;
        }
        break;
    case WAL_JOB_DELETE:
        wal->stats.segments_deleted++;
        if (p->state == WAL_PREP_FAILED) {
            p->state = WAL_PREP_IDLE; /* space was freed: try preparing again */
        }
        break;
    case WAL_JOB_DISCARD:
        p->state = WAL_PREP_FAILED;
        p->error = m->discard_error;
        p->failed_ns = wal_now_ns(wal);
        break;
    case WAL_JOB_NONE:
        RR_ASSERT(false && "no job to finish");
        break;
    }
    m->job = WAL_JOB_NONE;
    m->fd = -1;
    wal_meta_kick(wal);
}

/* A spare could not be created (typically ENOSPC): give back what the file took, then fail
 * the spare until a segment is retired or deleted. */
static void meta_create_failed(struct wal *wal, int res)
{
    struct wal_meta *m = &wal->meta;
    bool created = m->fd >= 0;
    if (created) {
        wal_close_fd(wal, m->fd);
        m->fd = -1;
    }
    if (m->dfd >= 0) {
        wal_close_fd(wal, m->dfd);
        m->dfd = -1;
    }
    m->job = WAL_JOB_NONE;
    if (!created) {
        wal->prep.state = WAL_PREP_FAILED;
        wal->prep.error = res;
        wal->prep.failed_ns = wal_now_ns(wal);
        return;
    }
    memcpy(m->old_name, m->new_name, sizeof(m->old_name));
    m->job = WAL_JOB_DISCARD;
    m->step = 0;
    m->discard_error = res;
    meta_submit(wal);
}

void wal_meta_handle(struct wal *wal, int res)
{
    struct wal_meta *m = &wal->meta;
    RR_ASSERT(m->job != WAL_JOB_NONE);
    enum wal_step step = meta_step(m);
    res = WAL_FAULT(step == STEP_UNLINK ? WAL_FP_UNLINK : WAL_FP_PREP_CQE, res);
    if (wal->error != 0) {
        if ((step == STEP_OPEN || step == STEP_OPEN_DIRECT) && res >= 0) {
            wal_close_fd(wal,
                         res); /* stopped: nothing more is issued, but the new file is not leaked */
        }
        return;
    }
    if (res < 0 && m->job == WAL_JOB_CREATE && step != STEP_SYNC_DIR) {
        meta_create_failed(wal, res);
        return;
    }
    if (res < 0) {
        /* A name change that failed or could not be made durable breaks the contiguous run
         * recovery relies on, and a failed fsync is never retried: stop. */
        static const char *const what[] = {
            "create", "prepare", "write the header of", "fsync", "fsync the directory for",
            "rename", "delete",  "open for direct I/O"};
        wal_fail(wal, RR_EIO, "wal: cannot %s segment %s: %s", what[step],
                 m->job == WAL_JOB_DELETE || m->job == WAL_JOB_DISCARD ? m->old_name : m->new_name,
                 strerror(-res));
        return;
    }
    if (step == STEP_OPEN) {
        m->fd = res;
    } else if (step == STEP_OPEN_DIRECT) {
        m->dfd = res;
    } else if (step == STEP_FILL && wal->cfg.prep_method == WAL_PREP_ZERO) {
        if (m->pushed < m->done) {
            m->pushed = m->done; /* the write-back of the last chunk completed */
        } else if (res == 0) {
            meta_create_failed(wal, RR_EIO);
            return;
        } else {
            m->done += (uint64_t)res; /* a short write continues from where it ended */
        }
        if (m->pushed < m->done || m->done < m->bytes) {
            meta_submit(wal);
            return;
        }
    } else if (step == STEP_HEADER && (uint32_t)res != WAL_SEGMENT_HEADER_BYTES) {
        wal_fail(wal, RR_EIO, "wal: short header write on segment %s", m->new_name);
        return;
    }
    m->step++;
    if (meta_step(m) == STEP_OPEN_DIRECT && !wal->direct) {
        m->step++;
    }
    if (meta_step(m) == STEP_END) {
        meta_done(wal);
        return;
    }
    meta_submit(wal);
}

void wal_segment_activate(struct wal *wal, uint64_t lsn)
{
    struct wal_prep *p = &wal->prep;
    RR_ASSERT(p->state == WAL_PREP_READY);
    RR_ASSERT(wal->seg_count < WAL_SEGMENTS_MAX);
    struct wal_segment_header h;
    wal_segment_fill_header(wal, p->seq, &h);
    struct wal_segment *s = &wal->segs[wal->seg_count++];
    memset(s, 0, sizeof(*s));
    s->seq = p->seq;
    s->fd = p->fd;
    s->dfd = p->dfd;
    s->salt = h.salt;
    s->bytes = p->bytes;
    s->lsn_start = lsn;
    s->lsn_end = lsn;
    s->lsn_limit = lsn + p->bytes - WAL_SEGMENT_HEADER_BYTES;
    s->retire_lsn = WAL_NO_LSN;
    p->fd = -1;
    p->dfd = -1;
    p->state = WAL_PREP_IDLE;
    wal_meta_kick(wal);
}

int wal_segment_find(const struct wal *wal, uint64_t lsn)
{
    int lo = 0;
    int hi = (int)wal->seg_count - 1;
    int found = -1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        if (wal->segs[mid].lsn_start <= lsn) {
            found = mid;
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return found;
}

void wal_segment_retire_oldest(struct wal *wal)
{
    RR_ASSERT(wal->seg_count > 1);
    struct wal_segment *seg = &wal->segs[0];
    RR_ASSERT(seg->reads == 0 && seg->sealed);
    RR_ASSERT(seg->retire_lsn != WAL_NO_LSN && wal->durable >= seg->retire_lsn);
    RR_ASSERT(wal->retired_count < WAL_SEGMENTS_MAX);
    struct wal_retired *r =
        &wal->retired[(wal->retired_head + wal->retired_count) % WAL_SEGMENTS_MAX];
    r->seq = seg->seq;
    r->fd = seg->fd;
    r->bytes = seg->bytes;
    if (seg->dfd >= 0) {
        wal_close_fd(wal, seg->dfd); /* a recycled file is opened again for direct I/O */
    }
    wal->retired_count++;
    memmove(&wal->segs[0], &wal->segs[1], (wal->seg_count - 1u) * sizeof(wal->segs[0]));
    wal->seg_count--;
    wal_meta_kick(wal);
}

/* ---- segment lifetime ------------------------------------------------------------------ */

/* Rewrites the hard-state and compact records that alone pin segment seg into the active
 * segment, so an idle group cannot hold the oldest file forever. */
static void carry_forward(struct wal *wal, const struct wal_segment *seg)
{
    uint32_t per_group = 2u * wal_record_size(sizeof(uint32_t));
    uint64_t total = 0;
    for (uint32_t g = 0; g < wal->local_groups; g++) {
        const struct wal_group_state *gs = &wal->groups[g];
        total += gs->hs_lsn < seg->lsn_end || gs->snap_lsn < seg->lsn_end ? per_group : 0u;
    }
    /* All at once, so that the segment can go: outside the maintenance reserve if there is
     * room (or a spare), else inside it, but only if everything fits, since a half-done carry
     * would spend the reserve without freeing anything. More than a segment holds goes group
     * by group, outside the reserve, over several rotations. */
    bool whole = wal_reserve(wal, total, false) == RR_OK || wal_reserve(wal, total, true) == RR_OK;
    for (uint32_t g = 0; g < wal->local_groups; g++) {
        struct wal_group_state *gs = &wal->groups[g];
        raft_group group = g * wal->cfg.worker_count + wal->cfg.worker_id;
        bool hs = gs->hs_lsn < seg->lsn_end;
        bool snap = gs->snap_lsn < seg->lsn_end;
        if (!hs && !snap) {
            continue;
        }
        if (!whole && wal_reserve(wal, per_group, false) != RR_OK) {
            return; /* try again after the next flush */
        }
        if (hs) {
            struct wal_hard_state h = gs->hs;
            wal_put_hard_state(wal, group, &h);
        }
        if (snap) {
            wal_put_marker(wal, group, WAL_REC_COMPACT, gs->snap_index, gs->snap_term);
        }
    }
}

/* Marks the oldest segments that no group needs: free once everything queued now is
 * durable. Carries idle groups' markers forward out of the first segment still needed. */
static void mark_free_segments(struct wal *wal)
{
    for (uint32_t i = 0; i + 1 < wal->seg_count && wal->error == 0; i++) {
        struct wal_segment *seg = &wal->segs[i];
        if (seg->retire_lsn != WAL_NO_LSN) {
            continue;
        }
        if (!seg->sealed) {
            break;
        }
        bool entries_pin = false;
        uint64_t low = wal_index_lowest_pin(wal, seg->lsn_end, &entries_pin);
        if (low >= seg->lsn_end) {
            seg->retire_lsn = wal->head;
            wal->collect_wanted = true;
            continue;
        }
        if (!entries_pin) {
            carry_forward(wal, seg);
            wal->collect_wanted = true;
        }
        break;
    }
}

/* Retires segments no group needs. The in-memory index already reflects queued records (a
 * queued hard state, truncation or compaction moves a group's pins before it is durable), so
 * a segment found free here still holds the only durable copy of what supersedes nothing
 * yet: it is marked with retire_lsn = head and leaves only once everything queued now is
 * durable. Pins only move forward, so a segment once free stays free. */
void wal_collect(struct wal *wal)
{
    wal->collect_wanted = false;
    mark_free_segments(wal);
    while (wal->error == 0 && wal->seg_count > 1 && wal->segs[0].retire_lsn != WAL_NO_LSN) {
        const struct wal_segment *seg = &wal->segs[0];
        if (wal->durable < seg->retire_lsn || seg->reads > 0) {
            wal->collect_wanted = true; /* again after the next flush or read */
            break;
        }
        wal_segment_retire_oldest(wal);
    }
}

uint32_t wal_segment_count(const struct wal *wal)
{
    bool spare = wal->prep.state == WAL_PREP_READY || wal->prep.state == WAL_PREP_RUNNING;
    bool deleting = wal->meta.job == WAL_JOB_DELETE;
    return wal->seg_count + wal->retired_count + (spare ? 1u : 0u) + (deleting ? 1u : 0u);
}

uint64_t wal_disk_bytes(const struct wal *wal)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < wal->seg_count; i++) {
        total += wal->segs[i].bytes;
    }
    for (uint32_t i = 0; i < wal->retired_count; i++) {
        total += wal->retired[(wal->retired_head + i) % WAL_SEGMENTS_MAX].bytes;
    }
    if (wal->prep.state == WAL_PREP_READY || wal->prep.state == WAL_PREP_RUNNING) {
        total += wal->cfg.segment_bytes;
    }
    if (wal->meta.job == WAL_JOB_DELETE) {
        total += wal->meta.bytes;
    }
    return total;
}
