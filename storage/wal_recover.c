/* Recovery at open: find the segments, verify every header and record, rebuild the index,
 * settle the torn tail of the newest segment, refuse anything else that is damaged. The
 * rules are in storage/wal_format.h's top comment. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "storage/wal_internal.h"

/* What the scan learnt about one segment file. */
struct scan {
    uint64_t seq;
    int fd;
    bool header_ok;
    uint64_t bytes;
    uint64_t salt;
    bool sealed;
    uint64_t data_end;  /* file offset where valid records end */
    uint64_t torn_end;  /* end of valid records of the torn flush past data_end, or 0 */
    uint32_t bad_group; /* group field of the invalid record at data_end (unverified) */
};

static int cmp_seq(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sequence numbers of the wal-* files, sorted; *n of them in a malloc'ed array. */
static int list_segments(struct wal *wal, uint64_t **out, uint32_t *n)
{
    int fd = dup(wal->dir_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (d == NULL) {
        if (fd >= 0) {
            close(fd);
        }
        return RR_EIO;
    }
    uint32_t cap = 16;
    uint64_t *seqs = malloc(cap * sizeof(*seqs));
    *n = 0;
    struct dirent *e;
    while (seqs != NULL && (e = readdir(d)) != NULL) {
        uint64_t seq;
        if (!wal_segment_name_parse(e->d_name, &seq)) {
            if (strncmp(e->d_name, "wal-", 4) == 0) {
                /* Looks like ours but is not a segment name: never read, never deleted. */
                struct wal_recovery *rep = &wal->recovery;
                if (rep->stray_files++ == 0) {
                    size_t len = strnlen(e->d_name, sizeof(rep->first_stray) - 1);
                    memcpy(rep->first_stray, e->d_name, len);
                    rep->first_stray[len] = '\0';
                }
            }
            continue;
        }
        if (*n == cap) {
            cap *= 2;
            uint64_t *m = realloc(seqs, cap * sizeof(*seqs));
            if (m == NULL) {
                free(seqs);
                seqs = NULL;
                break;
            }
            seqs = m;
        }
        seqs[(*n)++] = seq;
    }
    closedir(d);
    if (seqs == NULL) {
        return RR_ENOMEM;
    }
    qsort(seqs, *n, sizeof(*seqs), cmp_seq);
    *out = seqs;
    return RR_OK;
}

static int read_file(int fd, uint8_t *buf, uint64_t len)
{
    return wal_pread_full(fd, buf, (size_t)len, 0);
}

static int check_identity(const struct wal *wal,
                          const struct wal_segment_header *h,
                          const char *name,
                          char *err,
                          size_t err_len)
{
    const struct wal_config *c = &wal->cfg;
    if (h->cluster_id == c->cluster_id && h->node_id == c->node_id &&
        h->worker_id == c->worker_id && h->group_count == c->group_count &&
        h->worker_count == c->worker_count) {
        return RR_OK;
    }
    snprintf(err, err_len,
             "%s/%s: segment belongs to cluster %llx node %u worker %u (G=%u W=%u), but this is "
             "cluster %llx node %u worker %u (G=%u W=%u): refusing to open",
             wal->dir, name, (unsigned long long)h->cluster_id, h->node_id, h->worker_id,
             h->group_count, h->worker_count, (unsigned long long)c->cluster_id, c->node_id,
             c->worker_id, c->group_count, c->worker_count);
    return RR_EMISMATCH;
}

/* Opens one segment and checks its header; s->header_ok false means "not a usable
 * segment" (the caller decides whether that is an unfinished preparation or corruption). */
static int open_one(struct wal *wal, struct scan *s, uint8_t *hdr, char *err, size_t err_len)
{
    char name[32];
    wal_segment_name(name, sizeof(name), s->seq);
    s->fd = WAL_FAULT(WAL_FP_SEG_OPEN, openat(wal->dir_fd, name, O_RDWR | O_CLOEXEC));
    if (s->fd < 0) {
        snprintf(err, err_len, "%s/%s: cannot open: %s", wal->dir, name, strerror(errno));
        return RR_EIO;
    }
    struct stat st;
    struct wal_segment_header h;
    if (fstat(s->fd, &st) != 0) {
        snprintf(err, err_len, "%s/%s: cannot stat: %s", wal->dir, name, strerror(errno));
        return RR_EIO;
    }
    int rc = (uint64_t)st.st_size < WAL_SEGMENT_HEADER_BYTES
                 ? RR_ETRUNCATED
                 : read_file(s->fd, hdr, WAL_SEGMENT_HEADER_BYTES);
    if (rc == RR_EIO) {
        /* An I/O error is not an unfinished preparation: never delete on it. */
        snprintf(err, err_len, "%s/%s: header read failed", wal->dir, name);
        return RR_EIO;
    }
    s->bytes = (uint64_t)st.st_size;
    int dec = rc == RR_OK ? wal_segment_header_decode(hdr, &h) : rc;
    if (dec == RR_EBADVERSION) {
        snprintf(err, err_len,
                 "%s/%s: segment format version %u, this build reads version %u only: refusing "
                 "to open (the data directory was written by another ringraft version)",
                 wal->dir, name, h.version, WAL_FORMAT_VERSION);
        return RR_EBADVERSION;
    }
    if (dec != RR_OK || h.seq != s->seq || h.segment_bytes != (uint64_t)st.st_size ||
        h.segment_bytes < WAL_SEGMENT_BYTES_MIN) {
        /* A preparation or recycling the crash interrupted, or damage: the caller tells
         * them apart by looking for records under the salt this name implies. */
        s->header_ok = false;
        return RR_OK;
    }
    s->header_ok = true;
    s->bytes = h.segment_bytes;
    s->salt = h.salt;
    return check_identity(wal, &h, name, err, err_len);
}

static int corrupt_group(const struct wal *wal,
                         uint64_t seq,
                         uint64_t off,
                         uint32_t group,
                         const char *why,
                         char *err,
                         size_t err_len)
{
    char name[32];
    wal_segment_name(name, sizeof(name), seq);
    snprintf(err, err_len,
             "%s/%s: record at offset %llu (group %u, as its header claims): %s; refusing to "
             "start (run ringraft-wal verify)",
             wal->dir, name, (unsigned long long)off, group, why);
    return RR_ECORRUPT;
}

static int corrupt(const struct wal *wal,
                   uint64_t seq,
                   uint64_t off,
                   const uint8_t *rec,
                   uint64_t avail,
                   const char *why,
                   char *err,
                   size_t err_len)
{
    uint32_t group = avail >= WAL_RECORD_HEADER_BYTES ? wal_record_peek_group(rec) : 0;
    return corrupt_group(wal, seq, off, group, why, err, err_len);
}

/* Looks for valid records past the first invalid one at s->data_end. Only the flushes in
 * flight can be torn: each flush's first record carries the segment offset that was durable when
 * the flush was submitted (its flush base), so a valid record whose flush base lies past
 * data_end proves the bytes at data_end had been synced: they are corrupt, not torn. Valid
 * records that prove nothing belong to the torn flush; torn_end is where they end. */
static int
scan_beyond(const struct wal *wal, struct scan *s, const uint8_t *buf, char *err, size_t err_len)
{
    s->torn_end = 0;
    struct wal_record r;
    for (uint64_t p =
             wal_record_find_valid(buf, s->data_end + WAL_RECORD_ALIGN, s->bytes, s->salt, &r);
         p != 0; p = wal_record_find_valid(buf, s->torn_end, s->bytes, s->salt, &r)) {
        if (r.flush_base > s->data_end) {
            char why[160];
            snprintf(why, sizeof(why),
                     "invalid record, but the record at offset %llu was written by a later flush "
                     "that started once offset %u was durable",
                     (unsigned long long)p, r.flush_base);
            return corrupt(wal, s->seq, s->data_end, buf + s->data_end, s->bytes - s->data_end, why,
                           err, err_len);
        }
        s->torn_end = p + wal_record_size(r.payload_len);
    }
    return RR_OK;
}

/* Verifies and replays the records of one segment that starts at lsn_start. */
static int scan_records(
    struct wal *wal, struct scan *s, uint64_t lsn_start, uint8_t *buf, char *err, size_t err_len)
{
    int rc;
    uint64_t off = WAL_SEGMENT_HEADER_BYTES;
    s->sealed = false;
    while (off < s->bytes) {
        struct wal_record r;
        int64_t n = wal_record_decode(buf + off, s->bytes - off, s->salt, &r);
        if (n < 0) {
            break;
        }
        if (r.flush_base > off) {
            return corrupt(wal, s->seq, off, buf + off, s->bytes - off,
                           "flush base past the record itself", err, err_len);
        }
        if (r.type == WAL_REC_SEAL) {
            s->sealed = true;
            off += (uint64_t)n;
            break;
        }
        uint64_t lsn = lsn_start + off - WAL_SEGMENT_HEADER_BYTES;
        rc = wal_apply_record(wal, &r, lsn, (uint32_t)n);
        if (rc == RR_EUNAVAILABLE) {
            /* An entry after a gap: the log restarts there. Legal only if, at the end, a
             * compaction covers what is missing (check_log_starts). */
            rc = wal_apply_gap(wal, &r, lsn, (uint32_t)n);
        }
        if (rc != RR_OK) {
            return corrupt(wal, s->seq, off, buf + off, s->bytes - off,
                           rc == RR_ENOMEM ? "out of memory" : "breaks the log's order", err,
                           err_len);
        }
        off += (uint64_t)n;
    }
    s->data_end = off;
    if (s->bytes - off >= WAL_RECORD_HEADER_BYTES) {
        s->bad_group = wal_record_peek_group(buf + off);
    }
    return s->sealed ? RR_OK : scan_beyond(wal, s, buf, err, err_len);
}

static bool has_records(const struct scan *s)
{
    return s->data_end > WAL_SEGMENT_HEADER_BYTES || s->sealed;
}

static void adopt(struct wal *wal, const struct scan *s, uint64_t lsn_start)
{
    struct wal_segment *seg = &wal->segs[wal->seg_count++];
    memset(seg, 0, sizeof(*seg));
    seg->seq = s->seq;
    seg->fd = s->fd;
    seg->dfd = -1;
    seg->salt = s->salt;
    seg->bytes = s->bytes;
    seg->lsn_start = lsn_start;
    seg->lsn_limit = lsn_start + s->bytes - WAL_SEGMENT_HEADER_BYTES;
    seg->sealed = s->sealed;
    seg->lsn_end = lsn_start + s->data_end - WAL_SEGMENT_HEADER_BYTES;
    seg->retire_lsn = WAL_NO_LSN;
}

static void drop_file(struct wal *wal, struct scan *s)
{
    char name[32];
    wal_segment_name(name, sizeof(name), s->seq);
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    unlinkat(wal->dir_fd, name, 0);
}

/* The newest segment holding records ended in a torn flush: zero its valid records past
 * the tear, so appends resuming at data_end can never run into them. */
static int zero_torn(struct wal *wal, const struct scan *s)
{
    for (uint64_t off = s->data_end; off < s->torn_end; off += WAL_PREP_CHUNK) {
        uint64_t n = s->torn_end - off < WAL_PREP_CHUNK ? s->torn_end - off : WAL_PREP_CHUNK;
        if (pwrite(s->fd, wal->zeros, (size_t)n, (off_t)off) != (ssize_t)n) {
            return RR_EIO;
        }
    }
    return WAL_FAULT(WAL_FP_SEG_PREP, fdatasync(s->fd)) == 0 ? RR_OK : RR_EIO;
}

/* Scans segments [0, n) in order; segments past the last used one are spares. */
static int scan_all(struct wal *wal, struct scan *sc, uint32_t n, char *err, size_t err_len)
{
    uint8_t *buf = NULL;
    uint64_t buf_len = 0;
    uint64_t lsn = 0;
    int rc = RR_OK;
    int open_end = -1; /* a segment that ended without a seal: only unused ones may follow */
    for (uint32_t i = 0; i < n && rc == RR_OK; i++) {
        struct scan *s = &sc[i];
        if (!s->header_ok) {
            continue; /* checked by the caller: only the newest may be unusable */
        }
        if (s->bytes > buf_len) {
            free(buf);
            buf_len = s->bytes;
            buf = WAL_FAULT(WAL_FP_ALLOC, 0) == 0 ? malloc(buf_len) : NULL;
            if (buf == NULL) {
                snprintf(err, err_len, "wal: out of memory reading segments");
                return RR_ENOMEM;
            }
        }
        rc = read_file(s->fd, buf, s->bytes);
        if (rc != RR_OK) {
            char name[32];
            wal_segment_name(name, sizeof(name), s->seq);
            snprintf(err, err_len, "%s/%s: read failed: %s", wal->dir, name, rr_strerror(rc));
            break;
        }
        struct wal_record first;
        if (open_end >= 0 &&
            wal_record_decode(buf + WAL_SEGMENT_HEADER_BYTES, s->bytes - WAL_SEGMENT_HEADER_BYTES,
                              s->salt, &first) > 0) {
            rc = corrupt_group(wal, sc[open_end].seq, sc[open_end].data_end, sc[open_end].bad_group,
                               "invalid record, and the segment ends without a seal while a "
                               "later segment holds records",
                               err, err_len);
            break;
        }
        rc = scan_records(wal, s, lsn, buf, err, err_len);
        if (rc != RR_OK) {
            break;
        }
        if (!s->sealed && open_end < 0) {
            open_end = (int)i;
        }
        lsn += s->data_end - WAL_SEGMENT_HEADER_BYTES;
    }
    free(buf);
    return rc;
}

/* Installs the scanned segments: used ones in order, the active one, and one spare. */
static int install(struct wal *wal, struct scan *sc, uint32_t n, char *err, size_t err_len)
{
    uint64_t lsn = 0;
    uint32_t i = 0;
    for (; i < n && sc[i].header_ok && sc[i].sealed; i++) {
        adopt(wal, &sc[i], lsn);
        lsn = wal->segs[wal->seg_count - 1].lsn_end;
        sc[i].fd = -1;
    }
    if (i < n && sc[i].header_ok) {
        /* The first unsealed segment is the active one (used or a spare never used). */
        if (sc[i].torn_end > 0) {
            wal->recovery.torn_seq = sc[i].seq;
            wal->recovery.torn_offset = sc[i].data_end;
            wal->recovery.torn_bytes = sc[i].torn_end - sc[i].data_end;
        }
        if (sc[i].torn_end > 0 && zero_torn(wal, &sc[i]) != RR_OK) {
            snprintf(err, err_len, "wal: cannot zero the torn tail of segment %llu",
                     (unsigned long long)sc[i].seq);
            return RR_EIO;
        }
        if (!has_records(&sc[i]) && WAL_FAULT(WAL_FP_SEG_PREP, fsync(sc[i].fd)) != 0) {
            snprintf(err, err_len, "wal: cannot sync spare segment: %s", strerror(errno));
            return RR_EIO;
        }
        adopt(wal, &sc[i], lsn);
        sc[i].fd = -1;
        i++;
    }
    if (wal->seg_count > 0) {
        wal->next_seq = wal->segs[wal->seg_count - 1].seq + 1;
    }
    if (i < n && sc[i].header_ok && !has_records(&sc[i]) && wal->seg_count > 0 &&
        !wal->segs[wal->seg_count - 1].sealed) {
        /* A spare prepared before the crash stays the spare; its sequence number follows
         * the active one's, so the files remain a contiguous run. Valid records left in it
         * by a torn flush are zeroed first: appends will start at its beginning and must
         * never run into them. */
        if ((sc[i].torn_end > 0 && zero_torn(wal, &sc[i]) != RR_OK) ||
            WAL_FAULT(WAL_FP_SEG_PREP, fsync(sc[i].fd)) != 0) {
            snprintf(err, err_len, "wal: cannot sync spare segment: %s", strerror(errno));
            return RR_EIO;
        }
        wal->prep.state = WAL_PREP_READY;
        wal->prep.fd = sc[i].fd;
        wal->prep.seq = sc[i].seq;
        wal->prep.bytes = sc[i].bytes;
        wal->next_seq = sc[i].seq + 1;
        sc[i].fd = -1;
        i++;
    }
    for (; i < n; i++) {
        drop_file(wal, &sc[i]); /* extra spares: nothing was ever written to them */
    }
    if (wal->seg_count == 0 || wal->segs[wal->seg_count - 1].sealed) {
        struct wal_segment seg;
        int rc = wal_segment_create_sync(wal, wal->next_seq, &seg);
        if (rc != RR_OK) {
            snprintf(err, err_len, "wal: cannot prepare segment %llu in %s: %s",
                     (unsigned long long)wal->next_seq, wal->dir,
                     rc == -ENOSPC ? "no space left on device" : rr_strerror(rc));
            return rc == -ENOSPC ? RR_ENOSPACE : rc;
        }
        seg.lsn_start = lsn;
        seg.lsn_end = lsn;
        seg.lsn_limit = lsn + seg.bytes - WAL_SEGMENT_HEADER_BYTES;
        seg.retire_lsn = WAL_NO_LSN;
        wal->segs[wal->seg_count++] = seg;
        wal->next_seq++;
    }
    struct wal_segment *active = &wal->segs[wal->seg_count - 1];
    wal->head = active->lsn_end;
    wal->durable = wal->head;
    wal->ring_lo = wal->head;
    return RR_OK;
}

/* Segment names change on disk only in issue order (wal_segment.c: each create, rename or
 * unlink is made durable before the next), so the files always form one contiguous run. A
 * gap means a file was lost or removed by hand: refuse rather than guess which records
 * went with it. */
static int
check_contiguous(const struct wal *wal, const uint64_t *seqs, uint32_t n, char *err, size_t err_len)
{
    for (uint32_t i = 1; i < n; i++) {
        if (seqs[i] != seqs[i - 1] + 1) {
            char have[32];
            char missing[32];
            wal_segment_name(have, sizeof(have), seqs[i]);
            wal_segment_name(missing, sizeof(missing), seqs[i - 1] + 1);
            snprintf(err, err_len,
                     "%s: segment %s is missing (the files before %s must form a contiguous "
                     "run); refusing to start (run ringraft-wal verify)",
                     wal->dir, missing, have);
            return RR_ECORRUPT;
        }
    }
    return RR_OK;
}

/* The newest file has no usable header. If any record is valid under the salt its name
 * implies, it is a segment that held records and lost its header: refuse. Otherwise it is a
 * preparation or recycling the crash interrupted (its old records, if any, carry another
 * segment's salt), and it is removed. */
static int settle_unusable_newest(struct wal *wal, struct scan *s, char *err, size_t err_len)
{
    char name[32];
    wal_segment_name(name, sizeof(name), s->seq);
    struct wal_segment_header h;
    wal_segment_fill_header(wal, s->seq, &h);
    bool has_body = s->bytes > WAL_SEGMENT_HEADER_BYTES; /* else it cannot hold a record */
    uint8_t *buf = has_body ? malloc(s->bytes) : NULL;
    int rc = !has_body ? RR_OK : buf == NULL ? RR_ENOMEM : read_file(s->fd, buf, s->bytes);
    struct wal_record r;
    uint64_t found = has_body && rc == RR_OK ? wal_record_find_valid(buf, WAL_SEGMENT_HEADER_BYTES,
                                                                     s->bytes, h.salt, &r)
                                             : 0;
    free(buf);
    close(s->fd);
    s->fd = -1;
    if (rc != RR_OK) {
        snprintf(err, err_len, "%s/%s: cannot read a file with a bad header: %s", wal->dir, name,
                 rr_strerror(rc));
        return rc;
    }
    if (found != 0) {
        return corrupt_group(wal, s->seq, 0, r.group,
                             "bad segment header (offset 0) on a segment holding records", err,
                             err_len);
    }
    if (unlinkat(wal->dir_fd, name, 0) != 0) {
        snprintf(err, err_len, "%s/%s: cannot remove an unfinished segment: %s", wal->dir, name,
                 strerror(errno));
        return RR_EIO;
    }
    wal->recovery.unfinished_spare = 1;
    return RR_OK;
}

/* Every group's retained log must start right after its snapshot: entries before them were
 * dropped only by a durable compaction (a segment goes only when nothing in it is needed).
 * An empty log too: it ends at first_index - 1, and the entries up to there are neither
 * retained nor covered by the snapshot. */
static int check_log_starts(struct wal *wal, char *err, size_t err_len)
{
    for (uint32_t g = 0; g < wal->local_groups; g++) {
        const struct wal_group_state *gs = &wal->groups[g];
        raft_group group = g * wal->cfg.worker_count + wal->cfg.worker_id;
        if (gs->count == 0 && gs->first_index != gs->snap_index + 1) {
            snprintf(err, err_len,
                     "%s: group %u: the log is empty and ends at index %llu but its snapshot "
                     "ends at %llu: entries are missing; refusing to start (run ringraft-wal "
                     "verify)",
                     wal->dir, group, (unsigned long long)(gs->first_index - 1),
                     (unsigned long long)gs->snap_index);
            return RR_ECORRUPT;
        }
        if (gs->count > 0 && gs->first_index != gs->snap_index + 1) {
            int s = wal_segment_find(wal, gs->locs[gs->head].lsn);
            uint64_t seq = s >= 0 ? wal->segs[s].seq : 0;
            uint64_t off =
                s >= 0 ? WAL_SEGMENT_HEADER_BYTES + gs->locs[gs->head].lsn - wal->segs[s].lsn_start
                       : 0;
            char why[160];
            snprintf(why, sizeof(why),
                     "the group's log starts at index %llu but its snapshot ends at %llu: "
                     "entries are missing",
                     (unsigned long long)gs->first_index, (unsigned long long)gs->snap_index);
            return corrupt_group(wal, seq, off, group, why, err, err_len);
        }
    }
    return RR_OK;
}

int wal_recover(struct wal *wal, char *err, size_t err_len)
{
    uint64_t *seqs = NULL;
    uint32_t n = 0;
    int rc = list_segments(wal, &seqs, &n);
    if (rc != RR_OK) {
        snprintf(err, err_len, "wal: cannot list %s", wal->dir);
        return rc;
    }
    rc = check_contiguous(wal, seqs, n, err, err_len);
    if (rc != RR_OK) {
        free(seqs);
        return rc;
    }
    uint32_t count = n;
    if (count > WAL_SEGMENTS_MAX - 1u) {
        free(seqs);
        snprintf(err, err_len, "wal: %u segments exceed the limit %u", count, WAL_SEGMENTS_MAX);
        return RR_ETOOBIG;
    }
    struct scan *sc = calloc(count + 1u, sizeof(*sc));
    uint8_t *hdr = malloc(WAL_SEGMENT_HEADER_BYTES);
    rc = sc == NULL || hdr == NULL ? RR_ENOMEM : RR_OK;
    if (rc != RR_OK) {
        snprintf(err, err_len, "wal: out of memory");
    }
    for (uint32_t i = 0; i < count; i++) {
        sc[i].seq = seqs[i];
        sc[i].fd = -1;
    }
    wal->next_seq = n == 0 ? 1 : seqs[n - 1] + 1;
    for (uint32_t i = 0; i < count && rc == RR_OK; i++) {
        rc = open_one(wal, &sc[i], hdr, err, err_len);
        if (rc == RR_OK && !sc[i].header_ok && i + 1 < count) {
            char name[32];
            wal_segment_name(name, sizeof(name), sc[i].seq);
            snprintf(err, err_len,
                     "%s/%s: bad segment header or size (offset 0); refusing to start", wal->dir,
                     name);
            rc = RR_ECORRUPT;
        }
    }
    if (rc == RR_OK && count > 0 && !sc[count - 1].header_ok) {
        rc = settle_unusable_newest(wal, &sc[count - 1], err, err_len);
        count--;
    }
    if (rc == RR_OK) {
        rc = scan_all(wal, sc, count, err, err_len);
    }
    if (rc == RR_OK) {
        rc = install(wal, sc, count, err, err_len);
    }
    if (rc == RR_OK) {
        rc = check_log_starts(wal, err, err_len);
    }
    if (rc == RR_OK && WAL_FAULT(WAL_FP_DIR_SYNC, fsync(wal->dir_fd)) != 0) {
        /* Removed files, an adopted spare and a created segment: their names are durable
         * before anything is written on the strength of them. */
        snprintf(err, err_len, "wal: cannot fsync %s: %s", wal->dir, strerror(errno));
        rc = RR_EIO;
    }
    wal->recovery.segments = count;
    for (uint32_t i = 0; sc != NULL && i < count; i++) {
        if (sc[i].fd >= 0) {
            close(sc[i].fd);
        }
    }
    free(sc);
    free(hdr);
    free(seqs);
    if (rc == RR_OK) {
        wal->collect_wanted = true;
        wal_collect(wal);
    }
    return rc;
}
