/* Snapshot files, format 3.
 *
 * Name: snap-<group, 8 hex>-<index, 16 hex>. A file is written under a temporary name
 * (<name>.tmp, or <name>.<n>.tmp by the node), fsynced, renamed, and the directory fsynced,
 * so a crash leaves either the old set of files or the new file complete.
 *
 * Layout (all integers little-endian):
 *   0   8  magic: the ASCII bytes "RRSNAP03"
 *   8      records, back to back, no padding:
 *          0   8  checksum: XXH3_64bits_withSeed(bytes 8 .. end of payload, seed)
 *          8   4  payload length (<= 64 KiB)
 *          12  2  record magic 0x5253 (the bytes "SR")
 *          14  1  type: 1 head, 2 data, 3 end
 *          15  1  zero
 *          16  n  payload
 * The first record is the head, seed SNAP_HEAD_SEED; its payload: u64 the file magic again,
 * u32 version 3, u32 group, u64 index, u64 term, u32 configuration bytes (<= 64 KiB), u32
 * zero, then the configuration (opaque to storage). Data records follow (seed
 * snapshot_seed(group, index, term)); their payloads, concatenated, are the state machine's
 * image. The last record is the end (same seed): u64 image bytes, u64 data records, u64
 * XXH3_64bits_withSeed(image, seed), u64 the file offset of the end record itself. Nothing
 * follows it.
 *
 * Validity: a file is valid only if every record verifies, the records come in that order,
 * and the end record's totals match what precedes it; a file cut short has no end record
 * and is invalid. Seeding data records with (group, index, term) keeps a record of another
 * snapshot from verifying here; the end record's hash catches records of another image of
 * the same snapshot (two nodes' images of one state need not be the same bytes).
 *
 * Versions 1 and 2 (magic "RRRSAP01" and "RRSNAP02", one checksummed header over the whole
 * image) are refused with RR_EBADVERSION, never loaded or passed over for an older file. */
#include "storage/snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "storage/wal_testing.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the format is little-endian and encoded with memcpy on a little-endian host");

#define SNAP_MAGIC      "RRSNAP03"
#define SNAP_MAGIC_V2   "RRSNAP02"
#define SNAP_MAGIC_V1   "RRRSAP01"
#define SNAP_VERSION    3u
#define SNAP_REC_MAGIC  0x5253u
#define SNAP_HEAD_SEED  0x3330504153525252ull
#define SNAP_READ_BYTES (1u << 20)

enum reader_state { R_MAGIC = 0, R_HEAD, R_DATA, R_DONE };

static void put_u32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, 8);
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

uint64_t snapshot_seed(raft_group group, raft_index index, raft_term term)
{
    uint8_t b[20];
    put_u32(b, group);
    put_u64(b + 4, index);
    put_u64(b + 12, term);
    return XXH3_64bits_withSeed(b, sizeof(b), SNAP_HEAD_SEED);
}

void snapshot_name(char *buf, size_t len, raft_group group, raft_index index)
{
    snprintf(buf, len, "snap-%08x-%016llx", group, (unsigned long long)index);
}

/* Fills a record's header in place (payload already at rec + 16). */
static void seal_record(uint8_t *rec, uint8_t type, uint32_t len, uint64_t seed)
{
    put_u32(rec + 8, len);
    uint16_t magic = SNAP_REC_MAGIC;
    memcpy(rec + 12, &magic, 2);
    rec[14] = type;
    rec[15] = 0;
    put_u64(rec, XXH3_64bits_withSeed(rec + 8, 8 + (size_t)len, seed));
}

/* ---- writer ------------------------------------------------------------------------- */

int snapshot_writer_init(struct snapshot_writer *w,
                         const struct snapshot_head *h,
                         void (*emit)(void *ctx, const uint8_t *bytes, size_t len),
                         void *ctx)
{
    memset(w, 0, sizeof(*w));
    if (h->config_len > SNAPSHOT_CONFIG_MAX || (h->config == NULL && h->config_len > 0)) {
        return RR_ETOOBIG;
    }
    w->rec = malloc(SNAPSHOT_RECORD_MAX);
    w->hash = XXH3_createState();
    if (w->rec == NULL || w->hash == NULL) {
        snapshot_writer_free(w);
        return RR_ENOMEM;
    }
    w->emit = emit;
    w->ctx = ctx;
    w->seed = snapshot_seed(h->group, h->index, h->term);
    XXH3_64bits_reset_withSeed(w->hash, w->seed);
    emit(ctx, (const uint8_t *)SNAP_MAGIC, SNAPSHOT_MAGIC_BYTES);
    uint8_t *p = w->rec + SNAPSHOT_RECORD_HEADER;
    memcpy(p, SNAP_MAGIC, 8);
    put_u32(p + 8, SNAP_VERSION);
    put_u32(p + 12, h->group);
    put_u64(p + 16, h->index);
    put_u64(p + 24, h->term);
    put_u32(p + 32, h->config_len);
    put_u32(p + 36, 0);
    if (h->config_len > 0) {
        memcpy(p + SNAPSHOT_HEAD_BYTES, h->config, h->config_len);
    }
    uint32_t len = SNAPSHOT_HEAD_BYTES + h->config_len;
    seal_record(w->rec, SNAPSHOT_REC_HEAD, len, SNAP_HEAD_SEED);
    emit(ctx, w->rec, SNAPSHOT_RECORD_HEADER + (size_t)len);
    w->offset = SNAPSHOT_MAGIC_BYTES + SNAPSHOT_RECORD_HEADER + (uint64_t)len;
    return RR_OK;
}

static void writer_flush(struct snapshot_writer *w)
{
    if (w->rec_len == 0) {
        return;
    }
    seal_record(w->rec, SNAPSHOT_REC_DATA, w->rec_len, w->seed);
    w->emit(w->ctx, w->rec, SNAPSHOT_RECORD_HEADER + (size_t)w->rec_len);
    w->offset += SNAPSHOT_RECORD_HEADER + (uint64_t)w->rec_len;
    w->data_records++;
    w->rec_len = 0;
}

void snapshot_writer_put(struct snapshot_writer *w, const void *p, size_t n)
{
    const uint8_t *b = p;
    XXH3_64bits_update(w->hash, b, n);
    w->data_bytes += n;
    while (n > 0) {
        size_t room = SNAPSHOT_RECORD_PAYLOAD_MAX - w->rec_len;
        size_t take = n < room ? n : room;
        memcpy(w->rec + SNAPSHOT_RECORD_HEADER + w->rec_len, b, take);
        w->rec_len += (uint32_t)take;
        b += take;
        n -= take;
        if (w->rec_len == SNAPSHOT_RECORD_PAYLOAD_MAX) {
            writer_flush(w);
        }
    }
}

void snapshot_writer_finish(struct snapshot_writer *w)
{
    writer_flush(w);
    uint8_t *p = w->rec + SNAPSHOT_RECORD_HEADER;
    put_u64(p, w->data_bytes);
    put_u64(p + 8, w->data_records);
    put_u64(p + 16, XXH3_64bits_digest(w->hash));
    put_u64(p + 24, w->offset);
    seal_record(w->rec, SNAPSHOT_REC_END, SNAPSHOT_END_BYTES, w->seed);
    w->emit(w->ctx, w->rec, SNAPSHOT_RECORD_HEADER + SNAPSHOT_END_BYTES);
    w->offset += SNAPSHOT_RECORD_HEADER + SNAPSHOT_END_BYTES;
}

void snapshot_writer_free(struct snapshot_writer *w)
{
    free(w->rec);
    if (w->hash != NULL) {
        XXH3_freeState(w->hash);
    }
    w->rec = NULL;
    w->hash = NULL;
}

/* ---- reader ------------------------------------------------------------------------- */

int snapshot_reader_init(struct snapshot_reader *r,
                         int (*on_head)(void *ctx, const struct snapshot_head *h),
                         int (*on_data)(void *ctx, const uint8_t *p, size_t n),
                         void *ctx)
{
    memset(r, 0, sizeof(*r));
    r->rec = malloc(SNAPSHOT_RECORD_MAX);
    r->hash = XXH3_createState();
    if (r->rec == NULL || r->hash == NULL) {
        snapshot_reader_free(r);
        return RR_ENOMEM;
    }
    r->on_head = on_head;
    r->on_data = on_data;
    r->ctx = ctx;
    r->state = R_MAGIC;
    return RR_OK;
}

void snapshot_reader_free(struct snapshot_reader *r)
{
    free(r->rec);
    free(r->config);
    if (r->hash != NULL) {
        XXH3_freeState(r->hash);
    }
    r->rec = NULL;
    r->config = NULL;
    r->hash = NULL;
}

bool snapshot_reader_done(const struct snapshot_reader *r)
{
    return r->error == 0 && r->state == R_DONE;
}

static int reader_fail(struct snapshot_reader *r, int rc, const char *what)
{
    if (r->error == 0) {
        snprintf(r->why, sizeof(r->why), "%s at offset %llu", what, (unsigned long long)r->offset);
        r->error = rc;
    }
    return r->error;
}

/* The version a magic names: 3 for this format, 1 or 2 for the older ones, 0 if none. */
static uint32_t magic_version(const uint8_t *m)
{
    if (memcmp(m, SNAP_MAGIC, 8) == 0) {
        return SNAP_VERSION;
    }
    if (memcmp(m, SNAP_MAGIC_V2, 8) == 0) {
        return 2;
    }
    if (memcmp(m, SNAP_MAGIC_V1, 8) == 0) {
        return 1;
    }
    return 0;
}

/* Checks a record header: its payload length, or -1 if the header is not a record's. */
static int64_t record_len(const uint8_t *h)
{
    uint16_t magic;
    memcpy(&magic, h + 12, 2);
    uint32_t len = get_u32(h + 8);
    if (magic != SNAP_REC_MAGIC || h[14] < SNAPSHOT_REC_HEAD || h[14] > SNAPSHOT_REC_END ||
        h[15] != 0 || len > SNAPSHOT_RECORD_PAYLOAD_MAX) {
        return -1;
    }
    return len;
}

static bool record_verifies(const uint8_t *rec, uint32_t len, uint64_t seed)
{
    return get_u64(rec) == XXH3_64bits_withSeed(rec + 8, 8 + (size_t)len, seed);
}

static int read_head(struct snapshot_reader *r, const uint8_t *p, uint32_t len)
{
    if (len < SNAPSHOT_HEAD_BYTES || memcmp(p, SNAP_MAGIC, 8) != 0) {
        return reader_fail(r, RR_ECORRUPT, "bad head record");
    }
    if (get_u32(p + 8) != SNAP_VERSION) {
        return reader_fail(r, RR_EBADVERSION, "head names another format version");
    }
    uint32_t config_len = get_u32(p + 32);
    if (config_len > SNAPSHOT_CONFIG_MAX || len != SNAPSHOT_HEAD_BYTES + config_len ||
        get_u32(p + 36) != 0) {
        return reader_fail(r, RR_ECORRUPT, "bad head record");
    }
    r->config = malloc(config_len + 1u);
    if (r->config == NULL) {
        return reader_fail(r, RR_ENOMEM, "out of memory");
    }
    memcpy(r->config, p + SNAPSHOT_HEAD_BYTES, config_len);
    r->head = (struct snapshot_head){.group = get_u32(p + 12),
                                     .index = get_u64(p + 16),
                                     .term = get_u64(p + 24),
                                     .config = r->config,
                                     .config_len = config_len};
    r->seed = snapshot_seed(r->head.group, r->head.index, r->head.term);
    XXH3_64bits_reset_withSeed(r->hash, r->seed);
    r->state = R_DATA;
    int rc = r->on_head != NULL ? r->on_head(r->ctx, &r->head) : 0;
    return rc != 0 ? reader_fail(r, rc, "head refused") : 0;
}

static int read_end(struct snapshot_reader *r, const uint8_t *p, uint32_t len, uint64_t at)
{
    if (len != SNAPSHOT_END_BYTES || get_u64(p) != r->data_bytes ||
        get_u64(p + 8) != r->data_records || get_u64(p + 16) != XXH3_64bits_digest(r->hash) ||
        get_u64(p + 24) != at) {
        return reader_fail(r, RR_ECORRUPT, "end record does not match the image");
    }
    r->state = R_DONE;
    return 0;
}

/* One whole record at rec (header + len payload bytes) starting at file offset r->offset. */
static int read_record(struct snapshot_reader *r, const uint8_t *rec, uint32_t len)
{
    uint8_t type = rec[14];
    uint64_t seed = type == SNAPSHOT_REC_HEAD ? SNAP_HEAD_SEED : r->seed;
    if (!record_verifies(rec, len, seed)) {
        return reader_fail(r, RR_ECORRUPT, "record checksum mismatch");
    }
    if ((r->state == R_HEAD) != (type == SNAPSHOT_REC_HEAD)) {
        return reader_fail(r, RR_ECORRUPT, "record out of order");
    }
    const uint8_t *p = rec + SNAPSHOT_RECORD_HEADER;
    uint64_t at = r->offset;
    int rc = 0;
    if (type == SNAPSHOT_REC_HEAD) {
        rc = read_head(r, p, len);
    } else if (type == SNAPSHOT_REC_END) {
        rc = read_end(r, p, len, at);
    } else {
        XXH3_64bits_update(r->hash, p, len);
        r->data_bytes += len;
        r->data_records++;
        rc = r->on_data != NULL ? r->on_data(r->ctx, p, len) : 0;
        if (rc != 0) {
            return reader_fail(r, rc, "image refused");
        }
    }
    if (rc == 0) {
        r->offset += SNAPSHOT_RECORD_HEADER + (uint64_t)len;
    }
    return rc;
}

/* Takes up to n bytes into the partial record; returns how many were taken, or -1. */
static int64_t reader_assemble(struct snapshot_reader *r, const uint8_t *p, size_t n)
{
    size_t need = SNAPSHOT_RECORD_HEADER;
    if (r->rec_have >= SNAPSHOT_RECORD_HEADER) {
        int64_t len = record_len(r->rec);
        need += (size_t)len;
    }
    size_t take = need - r->rec_have < n ? need - r->rec_have : n;
    memcpy(r->rec + r->rec_have, p, take);
    r->rec_have += (uint32_t)take;
    if (r->rec_have == SNAPSHOT_RECORD_HEADER && record_len(r->rec) < 0) {
        reader_fail(r, RR_ECORRUPT, "bad record header");
        return -1;
    }
    return (int64_t)take;
}

static int reader_magic(struct snapshot_reader *r, const uint8_t *p, size_t n, size_t *used)
{
    size_t take = SNAPSHOT_MAGIC_BYTES - r->rec_have < n ? SNAPSHOT_MAGIC_BYTES - r->rec_have : n;
    memcpy(r->rec + r->rec_have, p, take);
    r->rec_have += (uint32_t)take;
    *used = take;
    if (r->rec_have < SNAPSHOT_MAGIC_BYTES) {
        return 0;
    }
    uint32_t v = magic_version(r->rec);
    if (v == 0) {
        return reader_fail(r, RR_ECORRUPT, "not a snapshot file (bad magic)");
    }
    if (v != SNAP_VERSION) {
        snprintf(r->why, sizeof(r->why), "format version %u", v);
        r->error = RR_EBADVERSION;
        return r->error;
    }
    r->rec_have = 0;
    r->offset = SNAPSHOT_MAGIC_BYTES;
    r->state = R_HEAD;
    return 0;
}

int snapshot_reader_feed(struct snapshot_reader *r, const uint8_t *p, size_t n)
{
    while (n > 0 && r->error == 0) {
        if (r->state == R_DONE) {
            return reader_fail(r, RR_ECORRUPT, "bytes after the end record");
        }
        if (r->state == R_MAGIC) {
            size_t used;
            if (reader_magic(r, p, n, &used) != 0) {
                break;
            }
            p += used;
            n -= used;
            continue;
        }
        if (r->rec_have == 0 && n >= SNAPSHOT_RECORD_HEADER) {
            /* A whole record in the input is checked where it lies. */
            int64_t len = record_len(p);
            if (len < 0) {
                return reader_fail(r, RR_ECORRUPT, "bad record header");
            }
            if (n >= SNAPSHOT_RECORD_HEADER + (size_t)len) {
                if (read_record(r, p, (uint32_t)len) != 0) {
                    break;
                }
                p += SNAPSHOT_RECORD_HEADER + (size_t)len;
                n -= SNAPSHOT_RECORD_HEADER + (size_t)len;
                continue;
            }
        }
        int64_t took = reader_assemble(r, p, n);
        if (took < 0) {
            break;
        }
        p += took;
        n -= (size_t)took;
        if (r->rec_have >= SNAPSHOT_RECORD_HEADER) {
            uint32_t len = (uint32_t)record_len(r->rec);
            if (r->rec_have == SNAPSHOT_RECORD_HEADER + len) {
                r->rec_have = 0;
                if (read_record(r, r->rec, len) != 0) {
                    break;
                }
            }
        }
    }
    return r->error;
}

int64_t snapshot_whole_records(const uint8_t *buf, size_t len, uint64_t offset, uint64_t seed)
{
    size_t pos = 0;
    if (offset == 0) {
        if (len < SNAPSHOT_MAGIC_BYTES) {
            return 0;
        }
        if (magic_version(buf) != SNAP_VERSION) {
            return RR_ECORRUPT;
        }
        pos = SNAPSHOT_MAGIC_BYTES;
    }
    while (len - pos >= SNAPSHOT_RECORD_HEADER) {
        int64_t rl = record_len(buf + pos);
        if (rl < 0) {
            return RR_ECORRUPT;
        }
        if (len - pos < SNAPSHOT_RECORD_HEADER + (size_t)rl) {
            break;
        }
        uint64_t s = buf[pos + 14] == SNAPSHOT_REC_HEAD ? SNAP_HEAD_SEED : seed;
        if (!record_verifies(buf + pos, (uint32_t)rl, s)) {
            return RR_ECORRUPT;
        }
        pos += SNAPSHOT_RECORD_HEADER + (size_t)rl;
    }
    return (int64_t)pos;
}

/* ---- blocking helpers ------------------------------------------------------------------- */

struct save_ctx {
    int fd;
    int rc;
};

static void save_emit(void *arg, const uint8_t *p, size_t n)
{
    struct save_ctx *c = arg;
    while (n > 0 && c->rc == RR_OK) {
        ssize_t k = WAL_FAULT(WAL_FP_SNAP_IO, write(c->fd, p, n));
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            c->rc = -errno;
            return;
        }
        p += k;
        n -= (size_t)k;
    }
}

static int save_file(const char *tpath, const struct snapshot *s)
{
    int fd = WAL_FAULT(WAL_FP_SNAP_IO, open(tpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd < 0) {
        return -errno;
    }
    struct save_ctx c = {.fd = fd, .rc = RR_OK};
    struct snapshot_head h = {.group = s->group,
                              .index = s->index,
                              .term = s->term,
                              .config = s->config,
                              .config_len = s->config_len};
    struct snapshot_writer w;
    int rc = snapshot_writer_init(&w, &h, save_emit, &c);
    if (rc == RR_OK) {
        snapshot_writer_put(&w, s->data, (size_t)s->data_len);
        snapshot_writer_finish(&w);
        snapshot_writer_free(&w);
        rc = c.rc;
    }
    if (rc == RR_OK && WAL_FAULT(WAL_FP_SNAP_IO, fsync(fd)) != 0) {
        rc = -errno;
    }
    close(fd);
    return rc;
}

int snapshot_save(const char *dir, const struct snapshot *s, char *err, size_t err_len)
{
    if (s->config_len > SNAPSHOT_CONFIG_MAX || s->data_len > SNAPSHOT_BYTES_MAX) {
        snprintf(err, err_len, "snapshot: group %u: too large", s->group);
        return RR_ETOOBIG;
    }
    char name[64], path[4200], tpath[4200];
    snapshot_name(name, sizeof(name), s->group, s->index);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tpath, sizeof(tpath), "%s/%s.tmp", dir, name);
    int rc = save_file(tpath, s);
    int dfd = rc == RR_OK ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (rc == RR_OK &&
        (dfd < 0 || WAL_FAULT(WAL_FP_SNAP_IO, rename(tpath, path)) != 0 || fsync(dfd) != 0)) {
        rc = -errno;
    }
    if (dfd >= 0) {
        close(dfd);
    }
    if (rc != RR_OK) {
        unlink(tpath);
        snprintf(err, err_len, "snapshot: writing %s failed: %s", path,
                 rc == -ENOSPC ? "no space left on device" : strerror(-rc));
        return rc == -ENOSPC ? RR_ENOSPACE : RR_EIO;
    }
    return RR_OK;
}

static bool parse_name(const char *name, raft_group *g, raft_index *idx)
{
    unsigned gg;
    unsigned long long ii;
    char tail;
    if (strlen(name) != 30 || sscanf(name, "snap-%8x-%16llx%c", &gg, &ii, &tail) != 2) {
        return false;
    }
    *g = gg;
    *idx = ii;
    return true;
}

int snapshot_list(const char *dir, raft_group group, raft_index *indexes, uint32_t cap)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return RR_EIO;
    }
    uint32_t n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        raft_group g;
        raft_index idx;
        if (!parse_name(e->d_name, &g, &idx) || g != group) {
            continue;
        }
        /* Insertion into a descending array of at most cap (the newest cap are kept). */
        uint32_t at = n;
        while (at > 0 && indexes[at - 1] < idx) {
            at--;
        }
        if (at >= cap) {
            continue;
        }
        uint32_t last = n < cap ? n : cap - 1;
        memmove(indexes + at + 1, indexes + at, (size_t)(last - at) * sizeof(*indexes));
        indexes[at] = idx;
        n = n < cap ? n + 1 : cap;
    }
    closedir(d);
    return (int)n;
}

int snapshot_read_file(const char *dir,
                       raft_group group,
                       raft_index index,
                       struct snapshot_reader *r,
                       uint64_t *file_bytes,
                       char *err,
                       size_t err_len)
{
    char name[64], path[4200];
    snapshot_name(name, sizeof(name), group, index);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        snprintf(err, err_len, "snapshot: cannot open %s: %s", path, strerror(e));
        return e == ENOENT ? RR_ENOTFOUND : RR_EIO;
    }
    *file_bytes = (uint64_t)st.st_size;
    /* A small file gets a buffer its size (plus one byte, to see that it ended). */
    size_t buf_len =
        (uint64_t)st.st_size < SNAP_READ_BYTES ? (size_t)st.st_size + 1 : SNAP_READ_BYTES;
    uint8_t *buf = malloc(buf_len);
    int rc = buf == NULL ? RR_ENOMEM : RR_OK;
    while (rc == RR_OK) {
        ssize_t k = WAL_FAULT(WAL_FP_SNAP_IO, read(fd, buf, buf_len));
        if (k < 0 && errno == EINTR) {
            continue;
        }
        if (k < 0) {
            snprintf(err, err_len, "snapshot: reading %s: %s", path, strerror(errno));
            rc = RR_EIO;
            break;
        }
        if (k == 0) {
            break;
        }
        rc = snapshot_reader_feed(r, buf, (size_t)k);
    }
    free(buf);
    close(fd);
    if (rc == RR_OK && !snapshot_reader_done(r)) {
        r->error = RR_ECORRUPT;
        snprintf(r->why, sizeof(r->why), "file ends before its end record (at offset %llu)",
                 (unsigned long long)r->offset);
        rc = RR_ECORRUPT;
    }
    if (rc != RR_OK && r->error != 0) {
        snprintf(err, err_len, "snapshot: %s: %s", path, r->why);
    }
    if (rc == RR_OK && (r->head.group != group || r->head.index != index)) {
        snprintf(err, err_len, "snapshot: %s holds group %u index %llu, not what its name says",
                 path, r->head.group, (unsigned long long)r->head.index);
        rc = RR_ECORRUPT;
    }
    return rc;
}

/* Whole-file load: the image gathered in memory (bounded by SNAPSHOT_BYTES_MAX). */
struct load_ctx {
    struct snapshot *out;
    uint64_t cap;
};

static int load_head(void *arg, const struct snapshot_head *h)
{
    (void)arg, (void)h;
    return 0;
}

static int load_data(void *arg, const uint8_t *p, size_t n)
{
    struct load_ctx *c = arg;
    struct snapshot *s = c->out;
    if (n == 0) {
        return 0; /* an empty data record: nothing to copy (s->data may still be NULL) */
    }
    if (s->data_len + n > SNAPSHOT_BYTES_MAX) {
        return RR_ETOOBIG;
    }
    if (s->data_len + n > c->cap) {
        uint64_t cap = c->cap > 0 ? c->cap * 2 : (1u << 16);
        while (cap < s->data_len + n) {
            cap *= 2;
        }
        uint8_t *d = realloc(s->data, (size_t)cap);
        if (d == NULL) {
            return RR_ENOMEM;
        }
        s->data = d;
        c->cap = cap;
    }
    memcpy(s->data + s->data_len, p, n);
    s->data_len += n;
    return 0;
}

static int load_one(const char *dir,
                    raft_group group,
                    raft_index index,
                    struct snapshot *out,
                    char *err,
                    size_t err_len)
{
    memset(out, 0, sizeof(*out));
    struct load_ctx c = {.out = out};
    struct snapshot_reader r;
    int rc = snapshot_reader_init(&r, load_head, load_data, &c);
    if (rc != RR_OK) {
        return rc;
    }
    uint64_t bytes;
    rc = snapshot_read_file(dir, group, index, &r, &bytes, err, err_len);
    if (rc == RR_OK) {
        out->group = r.head.group;
        out->index = r.head.index;
        out->term = r.head.term;
        out->config = r.config;
        out->config_len = r.head.config_len;
        r.config = NULL;
        if (out->data == NULL) {
            out->data = malloc(1);
            rc = out->data == NULL ? RR_ENOMEM : RR_OK;
        }
    }
    snapshot_reader_free(&r);
    if (rc != RR_OK) {
        snapshot_free(out);
    }
    return rc;
}

int snapshot_load(
    const char *dir, raft_group group, struct snapshot *out, char *err, size_t err_len)
{
    raft_index idx[64];
    int n = snapshot_list(dir, group, idx, 64);
    err[0] = '\0';
    if (n < 0) {
        snprintf(err, err_len, "snapshot: cannot open %s", dir);
        return RR_EIO;
    }
    char skipped[512] = "";
    for (int i = 0; i < n; i++) {
        char why[512];
        int rc = load_one(dir, group, idx[i], out, why, sizeof(why));
        if (rc == RR_OK) {
            snprintf(err, err_len, "%s", skipped);
            return RR_OK;
        }
        if (rc == RR_EBADVERSION) {
            /* Refused, not skipped: an older snapshot may predate compacted log entries. */
            snprintf(err, err_len, "%.480s%s%.480s; this build reads version %u only: refused",
                     skipped, skipped[0] != '\0' ? "; " : "", why, SNAP_VERSION);
            return RR_EBADVERSION;
        }
        if (rc == RR_ENOMEM) {
            snprintf(err, err_len, "snapshot: out of memory loading group %u", group);
            return rc;
        }
        char name[64];
        snapshot_name(name, sizeof(name), group, idx[i]);
        snprintf(skipped, sizeof(skipped), "snapshot: %.200s/%.40s is damaged; skipped (%.200s)",
                 dir, name, why);
    }
    snprintf(err, err_len, "%s", skipped);
    return RR_ENOTFOUND;
}

void snapshot_free(struct snapshot *s)
{
    free(s->config);
    free(s->data);
    s->config = NULL;
    s->data = NULL;
}

int snapshot_prune(const char *dir, raft_group group, raft_index index)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return RR_EIO;
    }
    struct dirent *e;
    int rc = RR_OK;
    while ((e = readdir(d)) != NULL) {
        unsigned g;
        unsigned long long idx;
        if (sscanf(e->d_name, "snap-%8x-%16llx", &g, &idx) != 2 || g != group) {
            continue;
        }
        bool tmp = strstr(e->d_name, ".tmp") != NULL;
        if (idx < index || tmp) {
            char path[4200];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (WAL_FAULT(WAL_FP_SNAP_IO, unlink(path)) != 0) {
                rc = RR_EIO;
            }
        }
    }
    closedir(d);
    return rc;
}
