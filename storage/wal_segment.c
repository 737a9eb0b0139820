/* Segment files: naming, the directory lock, preparation (synchronous at start-up, through
 * the ring afterwards), activation and deletion. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
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
    if (mkdir(wal->dir, 0755) != 0 && errno != EEXIST) {
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

static void fill_header(const struct wal *wal, uint64_t seq, struct wal_segment_header *h)
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
    fill_header(wal, seq, &h);
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
    fill_header(wal, seq, &h);
    memset(out, 0, sizeof(*out));
    out->seq = seq;
    out->fd = fd;
    out->salt = h.salt;
    out->bytes = h.segment_bytes;
    wal->stats.segments_created++;
    WAL_SYNCED(seq, WAL_SEGMENT_HEADER_BYTES);
    return RR_OK;
}

/* ---- asynchronous preparation of the spare --------------------------------------------- */

static void prep_submit(struct wal *wal)
{
    struct wal_prep *p = &wal->prep;
    struct io_uring_sqe *sqe = wal_sqe(wal, WAL_OP_PREP, p->step);
    switch (p->step) {
    case 0:
        if (wal->cfg.prep_method == WAL_PREP_FALLOCATE) {
            io_uring_prep_fallocate(sqe, p->fd, 0, 0, (off_t)p->bytes);
        } else {
            uint64_t n = p->bytes - p->done < WAL_PREP_CHUNK ? p->bytes - p->done : WAL_PREP_CHUNK;
            io_uring_prep_write(sqe, p->fd, wal->zeros, (unsigned)n, p->done);
        }
        break;
    case 1:
        io_uring_prep_write(sqe, p->fd, p->header, WAL_SEGMENT_HEADER_BYTES, 0);
        break;
    case 2:
        io_uring_prep_fsync(sqe, p->fd, 0); /* a full fsync: size and extents are metadata */
        break;
    default:
        io_uring_prep_fsync(sqe, wal->dir_fd, 0); /* the new name must survive a crash */
        break;
    }
    p->state = WAL_PREP_RUNNING;
}

void wal_prep_start(struct wal *wal)
{
    struct wal_prep *p = &wal->prep;
    if (p->state == WAL_PREP_RUNNING || p->state == WAL_PREP_READY || wal->error != 0) {
        return;
    }
    p->seq = wal->next_seq;
    p->bytes = wal->cfg.segment_bytes;
    p->done = 0;
    p->step = 0;
    p->error = 0;
    p->fd = open_segment_file(wal, p->seq);
    if (p->fd < 0) {
        p->error = errno != 0 ? -errno : RR_EIO;
        p->state = WAL_PREP_FAILED;
        return;
    }
    struct wal_segment_header h;
    fill_header(wal, p->seq, &h);
    wal_segment_header_encode(&h, p->header);
    prep_submit(wal);
}

static void prep_failed(struct wal *wal, int res)
{
    struct wal_prep *p = &wal->prep;
    char name[32];
    wal_segment_name(name, sizeof(name), p->seq);
    close(p->fd);
    p->fd = -1;
    unlinkat(wal->dir_fd, name, 0); /* give back whatever space it took */
    p->state = WAL_PREP_FAILED;
    p->error = res;
}

void wal_prep_handle(struct wal *wal, int res)
{
    struct wal_prep *p = &wal->prep;
    RR_ASSERT(p->state == WAL_PREP_RUNNING);
    res = WAL_FAULT(WAL_FP_PREP_CQE, res);
    if (res < 0) {
        prep_failed(wal, res);
        return;
    }
    if (p->step == 0 && wal->cfg.prep_method == WAL_PREP_ZERO) {
        if (res == 0) {
            prep_failed(wal, RR_EIO);
            return;
        }
        p->done += (uint64_t)res; /* a short write simply continues from where it ended */
        if (p->done < p->bytes) {
            prep_submit(wal);
            return;
        }
    }
    if (p->step < 3) {
        p->step++;
        prep_submit(wal);
        return;
    }
    p->state = WAL_PREP_READY;
    wal->stats.segments_created++;
    WAL_SYNCED(p->seq, WAL_SEGMENT_HEADER_BYTES);
}

void wal_segment_activate(struct wal *wal, uint64_t lsn)
{
    struct wal_prep *p = &wal->prep;
    RR_ASSERT(p->state == WAL_PREP_READY);
    RR_ASSERT(wal->seg_count < WAL_SEGMENTS_MAX);
    struct wal_segment_header h;
    fill_header(wal, p->seq, &h);
    struct wal_segment *s = &wal->segs[wal->seg_count++];
    memset(s, 0, sizeof(*s));
    s->seq = p->seq;
    s->fd = p->fd;
    s->salt = h.salt;
    s->bytes = p->bytes;
    s->lsn_start = lsn;
    s->lsn_end = lsn;
    s->lsn_limit = lsn + p->bytes - WAL_SEGMENT_HEADER_BYTES;
    p->fd = -1;
    p->state = WAL_PREP_IDLE;
    wal->next_seq = p->seq + 1;
    wal_prep_start(wal);
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

void wal_segment_delete_oldest(struct wal *wal)
{
    RR_ASSERT(wal->seg_count > 1);
    struct wal_segment *seg = &wal->segs[0];
    RR_ASSERT(seg->reads == 0);
    char name[32];
    wal_segment_name(name, sizeof(name), seg->seq);
    close(seg->fd);
    /* A failed unlink leaks the file but loses nothing: recovery replays it (its records
     * are all superseded) or, past a sequence gap, deletes it. */
    if (WAL_FAULT(WAL_FP_UNLINK, unlinkat(wal->dir_fd, name, 0)) != 0) {
        wal->stats.unlink_failures++;
    }
    memmove(&wal->segs[0], &wal->segs[1], (wal->seg_count - 1u) * sizeof(wal->segs[0]));
    wal->seg_count--;
    wal->stats.segments_deleted++;
    if (wal->prep.state == WAL_PREP_FAILED) {
        wal->prep.state = WAL_PREP_IDLE; /* space was freed: try preparing again */
        wal_prep_start(wal);
    }
}
