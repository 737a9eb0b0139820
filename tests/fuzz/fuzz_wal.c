/* libFuzzer target: WAL recovery (storage/wal_recover.c and everything wal_open runs).
 *
 * The input becomes a WAL directory: one or more segment files written into a fresh
 * directory (on /dev/shm when there is one, for speed), then the WAL is opened, which
 * recovers it. Input:
 *   byte 0  bits 4..7: group count G - 1 (1..16); bit 0: two workers, this WAL worker 1
 *           (else one worker); bit 1: also create a stray name "wal-00000000000000001.tmp"
 *   then up to 8 segments, each: u8 flags, u16 body length (little-endian), the body.
 *     flags bits 0..1: the header: 0 a valid header for the file's sequence number, 1 a
 *           valid header naming the next sequence number, 2 none (the body starts at
 *           offset 0), 3 a valid header of another node;
 *     bit 2: skip a sequence number before this file (a gap);
 *     bit 3: a short file (header + body only; else the file is the segment size, 64 KiB);
 *     bit 4: fix record checksums: walk the records from offset 4096 (record magic, a
 *           plausible length that fits) and give each the checksum its bytes need under the
 *           salt the file name implies, keeping its flush base (the fuzzer cannot forge
 *           xxh3, so without this recovery would replay nothing the seeds did not have);
 *     bit 5: the generated header says format version 1.
 *   Sequence numbers start at 1; the body goes at offset 4096 (offset 0 without a header).
 *
 * Properties checked:
 *   - wal_open returns 0 or an error code with a message, never crashes, leaks memory or
 *     file descriptors (the count of open descriptors is checked after every input), or
 *     hangs;
 *   - what it recovered passes its own checks: every group's log starts right after its
 *     snapshot, and every retained entry reads back (wal_read_blocking verifies each
 *     record's checksum, group and index);
 *   - recovery is stable and appending resumes safely where it ended (after a torn tail
 *     too): an entry is appended to the first group and made durable, and opening the WAL
 *     again succeeds and yields exactly the recovered state plus that entry (group info,
 *     every entry's index, term, type and payload). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "core/base/errors.h"
#include "storage/wal.h"
#include "storage/wal_format.h"
#include "tests/fuzz/fuzz.h"

#define SEGMENT_BYTES  (64u << 10)
#define SEGMENTS_MAX   8u
#define GROUPS_MAX     16u
#define TAG            0x5au
#define CLUSTER        0xc1u
#define NODE           1u
#define STEPS_MAX      10000u
#define READ_BUF_BYTES (2u * WAL_RECORD_MAX)

static struct io_uring ring;
static bool have_ring;
static char dir[128];
static uint8_t file_buf[SEGMENT_BYTES];
static uint8_t *read_buf;
static bool verbose; /* FUZZ_VERBOSE=1: say what each open found (to look at a seed) */

/* ---- the directory ------------------------------------------------------------------------ */

static void clean_dir(void)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
            unlinkat(dirfd(d), e->d_name, 0);
        }
    }
    closedir(d);
}

/* At exit: the directory goes too (a crash leaves it, with the input that made it). */
static void remove_dir(void)
{
    clean_dir();
    rmdir(dir);
}

static void write_file(const char *name, const uint8_t *p, size_t len, size_t file_bytes)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FUZZ_CHECK(fd >= 0, "cannot create %s: %s", path, strerror(errno));
    FUZZ_CHECK(write(fd, p, len) == (ssize_t)len, "cannot write %s", path);
    FUZZ_CHECK(ftruncate(fd, (off_t)file_bytes) == 0, "cannot size %s", path);
    close(fd);
}

static struct wal_config config(uint8_t flags)
{
    struct wal_config c;
    memset(&c, 0, sizeof(c));
    c.dir = dir;
    c.cluster_id = CLUSTER;
    c.node_id = NODE;
    c.worker_count = (flags & 1u) ? 2u : 1u;
    c.worker_id = c.worker_count - 1u;
    c.group_count = 1u + (flags >> 4);
    c.segment_bytes = SEGMENT_BYTES;
    c.cache_bytes = 2u * WAL_FLUSH_BYTES_MAX;
    c.user_data_tag = TAG;
    c.strategy.kind = WAL_STRATEGY_ADAPTIVE;
    return c;
}

static struct wal_segment_header header_for(const struct wal_config *c, uint64_t seq)
{
    struct wal_segment_header h = {.version = WAL_FORMAT_VERSION,
                                   .cluster_id = c->cluster_id,
                                   .node_id = c->node_id,
                                   .worker_id = c->worker_id,
                                   .group_count = c->group_count,
                                   .worker_count = c->worker_count,
                                   .seq = seq,
                                   .segment_bytes = SEGMENT_BYTES};
    h.salt = wal_segment_salt(&h);
    return h;
}

/* Gives every plausible record from offset `from` the checksum its bytes need under salt,
 * keeping its flush base; stops at the first that is not plausible. */
static void fix_records(uint8_t *buf, size_t len, size_t from, uint64_t salt)
{
    size_t off = from;
    while (len - off >= WAL_RECORD_HEADER_BYTES && wal_record_peek_magic(buf + off)) {
        uint32_t payload_len;
        memcpy(&payload_len, buf + off + WAL_REC_OFF_LEN, sizeof(payload_len));
        if (payload_len > WAL_PAYLOAD_MAX || wal_record_size(payload_len) > len - off) {
            return;
        }
        uint32_t size = wal_record_size(payload_len);
        uint32_t flush_base;
        memcpy(&flush_base, buf + off + WAL_REC_OFF_FLUSH_BASE, sizeof(flush_base));
        uint64_t sum =
            XXH3_64bits_withSeed(buf + off + WAL_REC_HASHED_FROM, size - WAL_REC_HASHED_FROM, salt);
        memcpy(buf + off, &sum, sizeof(sum));
        memset(buf + off + WAL_REC_OFF_FLUSH_BASE, 0, sizeof(flush_base));
        wal_record_set_flush_base(buf + off, flush_base, salt);
        off += size;
    }
}

/* Writes the segment files the input describes. */
static void build_dir(struct fuzz_in *in, const struct wal_config *c, uint8_t flags)
{
    if (flags & 2u) {
        write_file("wal-00000000000000001.tmp", NULL, 0, 0);
    }
    uint64_t seq = 1;
    for (uint32_t i = 0; i < SEGMENTS_MAX && in->left > 0; i++, seq++) {
        uint8_t sflags = fuzz_u8(in);
        size_t body_len = 0;
        const uint8_t *body = fuzz_bytes(in, fuzz_u16(in), &body_len);
        seq += (sflags >> 2) & 1u;
        unsigned mode = sflags & 3u;
        size_t at = mode == 2 ? 0 : WAL_SEGMENT_HEADER_BYTES;
        body_len = body_len < SEGMENT_BYTES - at ? body_len : SEGMENT_BYTES - at;
        memset(file_buf, 0, sizeof(file_buf));
        struct wal_segment_header h = header_for(c, seq);
        if (mode != 2) {
            struct wal_segment_header g = header_for(c, mode == 1 ? seq + 1 : seq);
            if (mode == 3) {
                g.node_id = NODE + 1;
                g.salt = wal_segment_salt(&g);
            }
            if (sflags & 32u) {
                g.version = 1;
            }
            wal_segment_header_encode(&g, file_buf);
        }
        memcpy(file_buf + at, body, body_len);
        size_t used = at + body_len;
        if (sflags & 16u) {
            fix_records(file_buf, (sflags & 8u) ? used : SEGMENT_BYTES, WAL_SEGMENT_HEADER_BYTES,
                        h.salt);
        }
        char name[32];
        snprintf(name, sizeof(name), "wal-%016llx", (unsigned long long)seq);
        size_t file_bytes = (sflags & 8u) ? used : SEGMENT_BYTES;
        write_file(name, file_buf, file_bytes, file_bytes);
    }
}

/* ---- driving the ring --------------------------------------------------------------------- */

/* Handles whatever completed; waits for one completion first if wait is set. */
static void reap(struct wal *wal, bool wait)
{
    int rc = wait ? io_uring_submit_and_wait(&ring, 1) : io_uring_submit(&ring);
    FUZZ_CHECK(rc >= 0 || rc == -EINTR, "io_uring_submit: %s", strerror(-rc));
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(&ring, &cqe) == 0) {
        struct io_uring_cqe copy = *cqe;
        io_uring_cqe_seen(&ring, cqe);
        FUZZ_CHECK(copy.user_data >> WAL_USER_DATA_TAG_SHIFT == TAG, "a completion not the WAL's");
        (void)wal_handle_cqe(wal, &copy);
    }
}

/* Reaps until nothing of the WAL is in flight, so it may be closed. */
static void quiesce(struct wal *wal)
{
    wal_submit(wal);
    for (uint32_t i = 0; wal_busy(wal); i++) {
        FUZZ_CHECK(i < STEPS_MAX, "the WAL never went idle");
        reap(wal, true);
    }
}

static void close_wal(struct wal *wal)
{
    quiesce(wal);
    wal_close(wal);
}

static int open_wal(const struct wal_config *c, struct wal **wal)
{
    char err[512];
    memset(err, 0, sizeof(err));
    int rc = wal_open(c, &ring, wal, err, sizeof(err));
    if (verbose) {
        fprintf(stderr, "fuzz_wal: wal_open: %s%s%s\n", rr_strerror(rc), rc != 0 ? ": " : "",
                rc != 0 ? err : "");
    }
    FUZZ_CHECK(rc <= 0, "wal_open returned %d", rc);
    if (rc != 0) {
        FUZZ_CHECK(*wal == NULL, "a failed open returned a WAL");
        FUZZ_CHECK(err[0] != '\0' && memchr(err, '\0', sizeof(err)) != NULL,
                   "wal_open failed (%s) without a message", rr_strerror(rc));
        FUZZ_CHECK(io_uring_sq_ready(&ring) == 0, "a failed open left SQEs behind");
    }
    return rc;
}

/* ---- what recovery found ------------------------------------------------------------------ */

struct group_state {
    struct wal_group_info info;
    uint64_t entries;
    uint64_t digest; /* of every entry's index, term, type and payload, in order */
    raft_term last_term;
};

struct state {
    uint32_t groups;
    struct group_state g[GROUPS_MAX];
};

static uint64_t fold_entry(uint64_t digest, const struct wal_entry *e)
{
    uint64_t head[4] = {e->index, e->term, e->type, e->len};
    digest = XXH3_64bits_withSeed(head, sizeof(head), digest);
    return XXH3_64bits_withSeed(e->data, e->len, digest);
}

/* Reads every retained entry of every group of this worker: each must read back. */
static void collect(struct wal *wal, const struct wal_config *c, struct state *s)
{
    memset(s, 0, sizeof(*s));
    for (raft_group g = c->worker_id; g < c->group_count; g += c->worker_count) {
        struct group_state *gs = &s->g[s->groups++];
        FUZZ_CHECK(wal_group_info(wal, g, &gs->info) == 0, "group %u unknown", g);
        const struct wal_group_info *in = &gs->info;
        uint64_t count = in->last_index - in->first_index + 1;
        FUZZ_CHECK(count == 0 || in->first_index == in->snap_index + 1,
                   "group %u: log starts at %llu, snapshot at %llu", g,
                   (unsigned long long)in->first_index, (unsigned long long)in->snap_index);
        FUZZ_CHECK(count <= SEGMENTS_MAX * SEGMENT_BYTES / WAL_RECORD_HEADER_BYTES,
                   "group %u: %llu entries from at most %u segments", g, (unsigned long long)count,
                   SEGMENTS_MAX);
        raft_index lo = in->first_index;
        while (gs->entries < count) { /* bounded: every read delivers at least one entry */
            struct wal_read *rd = calloc(1, sizeof(*rd));
            FUZZ_CHECK(rd != NULL, "out of memory");
            rd->group = g;
            rd->lo = lo;
            rd->hi = in->last_index;
            rd->buf = read_buf;
            rd->buf_len = READ_BUF_BYTES;
            int rc = wal_read_blocking(wal, rd);
            FUZZ_CHECK(rc == 0 && rd->status == 0 && rd->count >= 1,
                       "group %u: entry %llu of a recovered log does not read back: %s", g,
                       (unsigned long long)lo, rr_strerror(rc != 0 ? rc : rd->status));
            for (uint32_t k = 0; k < rd->count; k++) {
                const struct wal_entry *e = &rd->entries[k];
                FUZZ_CHECK(e->index == lo + k && e->len <= WAL_PAYLOAD_MAX,
                           "group %u: read entry %llu for %llu", g, (unsigned long long)e->index,
                           (unsigned long long)(lo + k));
                gs->digest = fold_entry(gs->digest, e);
                gs->last_term = e->term;
            }
            gs->entries += rd->count;
            lo += rd->count;
            free(rd);
        }
    }
}

static void check_same(const struct state *a, const struct state *b, const char *when)
{
    FUZZ_CHECK(a->groups == b->groups, "%s: group count", when);
    for (uint32_t i = 0; i < a->groups; i++) {
        const struct group_state *x = &a->g[i];
        const struct group_state *y = &b->g[i];
        FUZZ_CHECK(x->info.first_index == y->info.first_index &&
                       x->info.last_index == y->info.last_index &&
                       x->info.snap_index == y->info.snap_index &&
                       x->info.snap_term == y->info.snap_term &&
                       x->info.hs.term == y->info.hs.term && x->info.hs.vote == y->info.hs.vote &&
                       x->info.hs.commit == y->info.hs.commit && x->info.bytes == y->info.bytes,
                   "%s: group slot %u: first %llu/%llu last %llu/%llu snap %llu/%llu", when, i,
                   (unsigned long long)x->info.first_index, (unsigned long long)y->info.first_index,
                   (unsigned long long)x->info.last_index, (unsigned long long)y->info.last_index,
                   (unsigned long long)x->info.snap_index, (unsigned long long)y->info.snap_index);
        FUZZ_CHECK(x->entries == y->entries && x->digest == y->digest,
                   "%s: group slot %u: entries differ", when, i);
    }
}

/* ---- appending after recovery ------------------------------------------------------------- */

static void count_cb(void *arg, int status)
{
    int *done = arg;
    *done = status == 0 ? 1 : -1;
}

/* Appends one entry to the first group and waits until it is durable. Returns false if the
 * WAL refused it (a full segment without a spare, an index at the end of the range). */
static bool append_one(struct wal *wal, const struct wal_config *c, struct state *s)
{
    struct group_state *gs = &s->g[0];
    static const char payload[] = "appended after recovery";
    struct wal_entry e = {.term = gs->last_term > gs->info.snap_term ? gs->last_term
                                                                     : gs->info.snap_term,
                          .index = gs->info.last_index + 1,
                          .type = 1,
                          .len = sizeof(payload) - 1,
                          .data = payload};
    quiesce(wal); /* the spare is ready: an append that needs it is not refused as busy */
    int done = 0;
    if (wal_append(wal, c->worker_id, NULL, &e, 1, count_cb, &done) != 0) {
        return false;
    }
    uint32_t steps = 0;
    while (done == 0) { /* the callback sets done */
        FUZZ_CHECK(++steps < STEPS_MAX, "an append never completed");
        wal_submit(wal);
        reap(wal, true);
    }
    FUZZ_CHECK(done == 1, "an append after recovery failed: %s", wal_error_message(wal));
    if (gs->entries == 0) {
        gs->info.first_index = e.index;
    }
    gs->info.last_index = e.index;
    gs->info.bytes += wal_record_size(e.len);
    gs->entries++;
    gs->digest = fold_entry(gs->digest, &e);
    return true;
}

/* ---- the target --------------------------------------------------------------------------- */

/* Descriptors still open on a file in the target's directory: after every input there
 * must be none. (Counting the process's descriptors would be fooled by libFuzzer's own
 * threads.) With report set, names them. */
static uint32_t fds_in_dir(bool report)
{
    uint32_t n = 0;
    size_t dir_len = strlen(dir);
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        char path[64];
        char target[256];
        snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
        ssize_t len = readlink(path, target, sizeof(target) - 1);
        if (len > 0 && (size_t)len >= dir_len && memcmp(target, dir, dir_len) == 0) {
            target[len] = '\0';
            n++;
            if (report) {
                fprintf(stderr, "open fd %s: %s\n", e->d_name, target);
            }
        }
    }
    if (d != NULL) {
        closedir(d);
    }
    return n;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/ringraft-fuzz-wal-%d", base, (int)getpid());
    FUZZ_CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "cannot create %s", dir);
    atexit(remove_dir);
    read_buf = malloc(READ_BUF_BYTES);
    FUZZ_CHECK(read_buf != NULL, "out of memory");
    int rc = io_uring_queue_init(64, &ring, 0);
    have_ring = rc == 0;
    if (!have_ring) {
        fprintf(stderr, "fuzz_wal: no io_uring (%s): every input is skipped\n", strerror(-rc));
    }
    verbose = getenv("FUZZ_VERBOSE") != NULL;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!have_ring) {
        return 0;
    }
    struct fuzz_in in = {data, size};
    uint8_t flags = fuzz_u8(&in);
    struct wal_config c = config(flags);
    clean_dir();
    build_dir(&in, &c, flags);

    struct wal *wal = NULL;
    if (open_wal(&c, &wal) == 0) {
        /* Two opens per input: each costs large allocations (the WAL's state, its record
         * ring), which dominate this target's time under AddressSanitizer. */
        static struct state want;
        static struct state got;
        collect(wal, &c, &want);
        (void)append_one(wal, &c, &want);
        close_wal(wal);
        FUZZ_CHECK(open_wal(&c, &wal) == 0, "a recovered WAL does not open again");
        collect(wal, &c, &got);
        check_same(&want, &got, "second recovery");
        close_wal(wal);
    }
    FUZZ_CHECK(fds_in_dir(false) == 0, "%u file descriptors leaked", fds_in_dir(true));
    return 0;
}
