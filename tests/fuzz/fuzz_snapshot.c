/* libFuzzer target: snapshot files, format 3 (storage/snapshot.c: the streaming reader,
 * snapshot_whole_records, snapshot_load, snapshot_prune).
 *
 * The input becomes a directory of snapshot files (on /dev/shm when there is one), then the
 * newest valid snapshot of one group is loaded. Input:
 *   byte 0  the group loaded: byte 0 % 4
 *   then up to 8 files, each: u8 flags, u8 index, u16 length (little-endian), the bytes.
 *     flags bits 0..1: the name: 0 snap-<group>-<index> (lowercase hex, as written), 1 the
 *           same with ".tmp", 2 the next group's, 3 uppercase hex (a name the loader parses
 *           but never writes);
 *     bit 3: a plausible head: the magic "RRSNAP03", and at offset 8 a head record (its
 *           length kept if it is a head's, else 40 + (bits 5..7) / 7 of the room as the
 *           configuration) naming version 3 and the name's group and index;
 *     bit 4: fix the end record: the first end record (32-byte payload) gets the totals of
 *           the data records before it (image bytes, records, hash, its own offset);
 *     bit 2: fix the checksums: every record laid out from offset 8 gets the checksum of its
 *           bytes under the seed the format gives it (the fuzzer cannot forge xxh3);
 *   A later file with the same name replaces an earlier one.
 *
 * Properties checked:
 *   - every file, read by an independent reading of the format (docs/disk-format.md, not the
 *     reader's code), gets the same verdict from the streaming reader, whether fed whole or
 *     in pieces split anywhere, and the image the reader hands out is the data records'
 *     payloads in order;
 *   - for a valid file, snapshot_whole_records at any cut, from the start or from any record
 *     boundary, returns the last record boundary before the cut (what a sender may send);
 *   - snapshot_load picks what the format says it must: going down from the highest index
 *     named for the group, the first file that verifies (and holds the group and index its
 *     name says) is loaded, with exactly its term, configuration and image; a file of
 *     another format version stops the search with RR_EBADVERSION; no valid file is
 *     RR_ENOTFOUND;
 *   - snapshot_prune at the loaded index keeps that snapshot loadable, byte for byte;
 *   - what was loaded goes on to its readers: the configuration to codec_config_decode,
 *     the image to sm_load;
 *   - no crash, leak, or leaked file descriptor. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "core/base/errors.h"
#include "core/codec.h"
#include "io/service/sm.h"
#include "storage/snapshot.h"
#include "tests/fuzz/fuzz.h"

#define FILES_MAX   8u
#define MAGIC_BYTES 8u
#define REC_HEADER  16u
#define REC_MAGIC   0x5253u
#define PAYLOAD_MAX (64u << 10)
#define HEAD_BYTES  40u
#define END_BYTES   32u
#define CONFIG_MAX  (16u << 10)
#define HEAD_SEED   0x3330504153525252ull
#define NAME_CANON  0u
#define NAME_TMP    1u
#define NAME_OTHER  2u
#define NAME_UPPER  3u

static const char magic3[8] = {'R', 'R', 'S', 'N', 'A', 'P', '0', '3'};
static const char magic2[8] = {'R', 'R', 'S', 'N', 'A', 'P', '0', '2'};
static const char magic1[8] = {'R', 'R', 'R', 'S', 'A', 'P', '0', '1'};

static char dir[128];

/* The files as the target wrote them (the last write of a name wins). */
struct file {
    char name[64];
    unsigned kind;
    raft_group group;
    uint8_t index;
    uint8_t *bytes;
    size_t len;
};

static struct file files[FILES_MAX];
static uint32_t file_count;

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

static uint64_t get64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint32_t get32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static uint16_t get16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, sizeof(v));
    return v;
}

static void put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, sizeof(v));
}

static void put64(uint8_t *p, uint64_t v)
{
    memcpy(p, &v, sizeof(v));
}

/* The seed of data and end records: XXH3 of (u32 group, u64 index, u64 term) under the
 * head's seed. */
static uint64_t image_seed(const uint8_t *head_payload)
{
    uint8_t b[20];
    memcpy(b, head_payload + 12, 4);
    memcpy(b + 4, head_payload + 16, 8);
    memcpy(b + 12, head_payload + 24, 8);
    return XXH3_64bits_withSeed(b, sizeof(b), HEAD_SEED);
}

static uint64_t record_sum(const uint8_t *rec, uint32_t payload_len, uint64_t seed)
{
    return XXH3_64bits_withSeed(rec + 8, 8 + (size_t)payload_len, seed);
}

static void make_name(char *out, size_t n, unsigned kind, raft_group g, uint8_t index)
{
    switch (kind) {
    case NAME_TMP:
        snprintf(out, n, "snap-%08x-%016llx.tmp", g, (unsigned long long)index);
        break;
    case NAME_OTHER:
        snprintf(out, n, "snap-%08x-%016llx", g + 1, (unsigned long long)index);
        break;
    case NAME_UPPER:
        snprintf(out, n, "snap-%08X-%016llX", g, (unsigned long long)index);
        break;
    default:
        snprintf(out, n, "snap-%08x-%016llx", g, (unsigned long long)index);
        break;
    }
}

/* ---- making inputs plausible ------------------------------------------------------------- */

static void make_head(uint8_t *b, size_t len, uint8_t flags, raft_group named, uint8_t index)
{
    if (len < MAGIC_BYTES + REC_HEADER + HEAD_BYTES) {
        return;
    }
    memcpy(b, magic3, 8);
    uint8_t *rec = b + MAGIC_BYTES;
    size_t room = len - MAGIC_BYTES - REC_HEADER;
    uint32_t plen = get32(rec + 8);
    if (plen < HEAD_BYTES || plen > HEAD_BYTES + CONFIG_MAX || plen > room) {
        size_t config = (room - HEAD_BYTES) * (flags >> 5) / 7u;
        plen = HEAD_BYTES + (uint32_t)(config < CONFIG_MAX ? config : CONFIG_MAX);
    }
    put32(rec + 8, plen);
    uint16_t m = REC_MAGIC;
    memcpy(rec + 12, &m, 2);
    rec[14] = SNAPSHOT_REC_HEAD;
    rec[15] = 0;
    uint8_t *p = rec + REC_HEADER;
    memcpy(p, magic3, 8);
    put32(p + 8, 3);
    put32(p + 12, named);
    put64(p + 16, index);
    put32(p + 32, plen - HEAD_BYTES);
    put32(p + 36, 0);
}

/* Walks the records as laid out from offset 8 (stopping at the first header that does not
 * fit or claims too much) and fixes end totals and checksums as asked. */
static void fix_records(uint8_t *b, size_t len, bool fix_end, bool fix_sums)
{
    size_t pos = MAGIC_BYTES;
    uint64_t seed = 0;
    bool have_head = false;
    bool end_fixed = false;
    uint64_t data_bytes = 0;
    uint64_t data_records = 0;
    XXH3_state_t h;
    XXH3_INITSTATE(&h);
    while (len >= pos + REC_HEADER) {
        uint8_t *rec = b + pos;
        uint32_t plen = get32(rec + 8);
        if (plen > PAYLOAD_MAX || len - pos - REC_HEADER < plen) {
            break;
        }
        uint8_t type = rec[14];
        uint8_t *p = rec + REC_HEADER;
        if (type == SNAPSHOT_REC_HEAD && !have_head && plen >= 32) {
            have_head = true;
            seed = image_seed(p);
            (void)XXH3_64bits_reset_withSeed(&h, seed);
        } else if (type == SNAPSHOT_REC_DATA) {
            (void)XXH3_64bits_update(&h, p, plen);
            data_bytes += plen;
            data_records++;
        } else if (type == SNAPSHOT_REC_END && fix_end && !end_fixed && plen == END_BYTES) {
            end_fixed = true;
            put64(p, data_bytes);
            put64(p + 8, data_records);
            put64(p + 16, XXH3_64bits_digest(&h));
            put64(p + 24, pos);
        }
        if (fix_sums) {
            put64(rec, record_sum(rec, plen, type == SNAPSHOT_REC_HEAD ? HEAD_SEED : seed));
        }
        pos += REC_HEADER + plen;
    }
}

static void add_file(struct fuzz_in *in, raft_group group)
{
    uint8_t flags = fuzz_u8(in);
    uint8_t index = fuzz_u8(in);
    size_t len = 0;
    const uint8_t *p = fuzz_bytes(in, fuzz_u16(in), &len);
    struct file f = {.kind = flags & 3u, .group = group, .index = index, .len = len};
    make_name(f.name, sizeof(f.name), f.kind, group, index);
    f.bytes = fuzz_dup(p, len);
    if (flags & 8u) {
        make_head(f.bytes, len, flags, f.kind == NAME_OTHER ? group + 1 : group, index);
    }
    if (flags & (16u | 4u)) {
        fix_records(f.bytes, len, flags & 16u, flags & 4u);
    }
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, f.name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    FUZZ_CHECK(fd >= 0, "cannot create %s: %s", path, strerror(errno));
    FUZZ_CHECK(len == 0 || write(fd, f.bytes, len) == (ssize_t)len, "cannot write %s", path);
    close(fd);
    for (uint32_t i = 0; i < file_count; i++) {
        if (strcmp(files[i].name, f.name) == 0) {
            free(files[i].bytes);
            files[i] = f;
            return;
        }
    }
    files[file_count++] = f;
}

/* ---- the oracle: the format as docs/disk-format.md describes it ------------------------- */

enum verdict { V_DAMAGED, V_BADVERSION, V_VALID };

/* What the oracle read from a valid file. */
struct parsed {
    raft_group group;
    raft_index index;
    raft_term term;
    const uint8_t *config;
    uint32_t config_len;
    uint8_t *image; /* the data payloads, concatenated (malloc'ed) */
    size_t image_len;
    size_t bounds[4200]; /* record boundaries, the magic's end first */
    uint32_t bound_count;
};

/* The file's own verdict (its name aside). */
static enum verdict judge(const uint8_t *b, size_t len, struct parsed *out)
{
    memset(out, 0, sizeof(*out));
    if (len < MAGIC_BYTES) {
        return V_DAMAGED;
    }
    if (memcmp(b, magic1, 8) == 0 || memcmp(b, magic2, 8) == 0) {
        return V_BADVERSION;
    }
    if (memcmp(b, magic3, 8) != 0) {
        return V_DAMAGED;
    }
    out->image = malloc(len + 1);
    FUZZ_CHECK(out->image != NULL, "out of memory");
    out->bounds[out->bound_count++] = MAGIC_BYTES;
    size_t pos = MAGIC_BYTES;
    bool have_head = false;
    uint64_t seed = 0;
    uint64_t records = 0;
    XXH3_state_t h;
    XXH3_INITSTATE(&h);
    for (;;) {
        if (len - pos < REC_HEADER) {
            return V_DAMAGED; /* no end record, or a cut header */
        }
        const uint8_t *rec = b + pos;
        uint32_t plen = get32(rec + 8);
        uint8_t type = rec[14];
        if (get16(rec + 12) != REC_MAGIC || type < SNAPSHOT_REC_HEAD || type > SNAPSHOT_REC_END ||
            rec[15] != 0 || plen > PAYLOAD_MAX || len - pos - REC_HEADER < plen) {
            return V_DAMAGED;
        }
        /* Before the head, data and end records are checked under seed 0: out of order
         * either way. */
        if (get64(rec) != record_sum(rec, plen, type == SNAPSHOT_REC_HEAD ? HEAD_SEED : seed)) {
            return V_DAMAGED;
        }
        if (have_head == (type == SNAPSHOT_REC_HEAD)) {
            return V_DAMAGED; /* a head not first, or something before the head */
        }
        const uint8_t *p = rec + REC_HEADER;
        if (type == SNAPSHOT_REC_HEAD) {
            if (plen < HEAD_BYTES || memcmp(p, magic3, 8) != 0) {
                return V_DAMAGED;
            }
            if (get32(p + 8) != 3) {
                return V_BADVERSION;
            }
            uint32_t config_len = get32(p + 32);
            if (config_len > CONFIG_MAX || plen != HEAD_BYTES + config_len || get32(p + 36) != 0) {
                return V_DAMAGED;
            }
            have_head = true;
            out->group = get32(p + 12);
            out->index = get64(p + 16);
            out->term = get64(p + 24);
            out->config = p + HEAD_BYTES;
            out->config_len = config_len;
            seed = image_seed(p);
            (void)XXH3_64bits_reset_withSeed(&h, seed);
        } else if (type == SNAPSHOT_REC_DATA) {
            memcpy(out->image + out->image_len, p, plen);
            out->image_len += plen;
            records++;
            (void)XXH3_64bits_update(&h, p, plen);
        } else {
            if (plen != END_BYTES || get64(p) != out->image_len || get64(p + 8) != records ||
                get64(p + 16) != XXH3_64bits_digest(&h) || get64(p + 24) != pos) {
                return V_DAMAGED;
            }
            pos += REC_HEADER + plen;
            out->bounds[out->bound_count++] = pos;
            return pos == len ? V_VALID : V_DAMAGED; /* nothing may follow the end */
        }
        pos += REC_HEADER + plen;
        FUZZ_CHECK(out->bound_count < sizeof(out->bounds) / sizeof(out->bounds[0]),
                   "too many records");
        out->bounds[out->bound_count++] = pos;
    }
}

static void parsed_free(struct parsed *p)
{
    free(p->image);
    p->image = NULL;
}

static const struct file *find(const char *name)
{
    for (uint32_t i = 0; i < file_count; i++) {
        if (strcmp(files[i].name, name) == 0) {
            return &files[i];
        }
    }
    return NULL;
}

/* The expected outcome: the highest index named for group whose file verifies. */
static int expect(raft_group group, const struct file **chosen)
{
    *chosen = NULL;
    for (int idx = 255; idx >= 0; idx--) {
        bool named = false;
        for (uint32_t i = 0; i < file_count; i++) {
            named |= (files[i].kind == NAME_CANON || files[i].kind == NAME_UPPER) &&
                     files[i].index == idx;
        }
        if (!named) {
            continue;
        }
        /* The loader opens the name it would have written, whichever name it found. */
        char name[64];
        make_name(name, sizeof(name), NAME_CANON, group, (uint8_t)idx);
        const struct file *f = find(name);
        if (f == NULL) {
            continue;
        }
        struct parsed p;
        enum verdict v = judge(f->bytes, f->len, &p);
        bool named_right = p.group == group && p.index == (raft_index)idx;
        parsed_free(&p);
        if (v == V_BADVERSION) {
            return RR_EBADVERSION;
        }
        if (v == V_VALID && named_right) {
            *chosen = f;
            return RR_OK;
        }
    }
    return RR_ENOTFOUND;
}

/* ---- the streaming reader against the oracle ---------------------------------------------- */

struct gather {
    uint8_t *image;
    size_t len, cap;
};

static int gather_data(void *ctx, const uint8_t *p, size_t n)
{
    struct gather *g = ctx;
    FUZZ_CHECK(g->len + n <= g->cap, "the reader handed out more than the file holds");
    memcpy(g->image + g->len, p, n);
    g->len += n;
    return 0;
}

/* Feeds the file to a reader in pieces of 1..piece_max bytes (piece_max 0: whole). */
static int read_in_pieces(const struct file *f, size_t piece_max, uint32_t seed, struct gather *g)
{
    struct snapshot_reader r;
    FUZZ_CHECK(snapshot_reader_init(&r, NULL, gather_data, g) == 0, "out of memory");
    int rc = 0;
    size_t off = 0;
    uint32_t state = seed | 1u;
    while (off < f->len && rc == 0) {
        size_t n = piece_max == 0 ? f->len : 1 + fuzz_rand(&state) % piece_max;
        n = n < f->len - off ? n : f->len - off;
        rc = snapshot_reader_feed(&r, f->bytes + off, n);
        off += n;
    }
    FUZZ_CHECK(rc == 0 || rc == RR_ECORRUPT || rc == RR_EBADVERSION, "reader: %d", rc);
    FUZZ_CHECK(rc != 0 || !snapshot_reader_done(&r) || off == f->len, "done before the end");
    if (rc == 0 && !snapshot_reader_done(&r)) {
        rc = RR_ECORRUPT; /* the file ended first */
    }
    FUZZ_CHECK(memchr(r.why, '\0', sizeof(r.why)) != NULL, "message not NUL-terminated");
    snapshot_reader_free(&r);
    return rc;
}

static void check_reader(const struct file *f, uint32_t seed)
{
    struct parsed p;
    enum verdict v = judge(f->bytes, f->len, &p);
    int want = v == V_VALID ? RR_OK : v == V_BADVERSION ? RR_EBADVERSION : RR_ECORRUPT;
    static const size_t pieces[] = {0, 17, 4096}; /* 0: whole */
    for (uint32_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
        struct gather g = {.image = malloc(f->len + 1), .cap = f->len};
        FUZZ_CHECK(g.image != NULL, "out of memory");
        int rc = read_in_pieces(f, pieces[i], seed + i, &g);
        FUZZ_CHECK(rc == want, "%s, pieces of up to %zu: reader %s, the format says %s", f->name,
                   pieces[i], rr_strerror(rc), rr_strerror(want));
        if (rc == RR_OK) {
            FUZZ_CHECK(g.len == p.image_len && (g.len == 0 || memcmp(g.image, p.image, g.len) == 0),
                       "%s: the reader's image is not the data records' payloads", f->name);
        }
        free(g.image);
    }
    if (v == V_VALID) {
        /* What a sender may send: whole records up to any cut, from any boundary. */
        uint64_t iseed = snapshot_seed(p.group, p.index, p.term);
        uint32_t state = seed | 1u;
        for (uint32_t k = 0; k < 8; k++) {
            size_t cut = fuzz_rand(&state) % (f->len + 1);
            size_t from = fuzz_rand(&state) % (p.bound_count + 1);
            size_t start = from == p.bound_count ? 0 : p.bounds[from];
            if (start > cut) {
                start = 0;
            }
            size_t want_end = start == 0 ? 0 : start;
            for (uint32_t b = 0; b < p.bound_count; b++) {
                if (p.bounds[b] <= cut && p.bounds[b] >= want_end) {
                    want_end = p.bounds[b];
                }
            }
            int64_t got = snapshot_whole_records(f->bytes + start, cut - start, start, iseed);
            FUZZ_CHECK(got >= 0 && (size_t)got == want_end - start,
                       "%s: whole records from %zu to %zu: %lld, expected %zu", f->name, start, cut,
                       (long long)got, want_end - start);
        }
    }
    parsed_free(&p);
}

/* ---- snapshot_load against the oracle ----------------------------------------------------- */

static void check_loaded(const struct snapshot *s, const struct file *f, raft_group group)
{
    struct parsed p;
    FUZZ_CHECK(judge(f->bytes, f->len, &p) == V_VALID, "loaded a file the format refuses");
    FUZZ_CHECK(s->group == group && s->index == f->index && p.group == group && p.index == f->index,
               "loaded group %u index %llu, not %u/%u", s->group, (unsigned long long)s->index,
               group, f->index);
    FUZZ_CHECK(s->term == p.term, "term %llu, the file says %llu", (unsigned long long)s->term,
               (unsigned long long)p.term);
    FUZZ_CHECK(s->config_len == p.config_len &&
                   (s->config_len == 0 || memcmp(s->config, p.config, s->config_len) == 0),
               "configuration bytes differ");
    FUZZ_CHECK(s->data_len == p.image_len &&
                   (s->data_len == 0 || memcmp(s->data, p.image, s->data_len) == 0),
               "image bytes differ");
    parsed_free(&p);
}

/* Hands the loaded bytes to their readers, as a node restoring a group would. */
static void use_loaded(const struct snapshot *s)
{
    struct raft_config c;
    (void)codec_config_decode(s->config_len > 0 ? s->config : NULL, s->config_len, &c);
    struct sm *sm;
    FUZZ_CHECK(sm_create(&sm, NULL, NULL) == 0, "out of memory");
    int rc = sm_load(sm, s->data_len > 0 ? s->data : NULL, (size_t)s->data_len);
    FUZZ_CHECK(rc == 0 || rc == RR_ECORRUPT || rc == RR_EBADVERSION, "sm_load: %d", rc);
    sm_destroy(sm);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_setup();
    struct stat st;
    const char *base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
    snprintf(dir, sizeof(dir), "%s/ringraft-fuzz-snapshot-%d", base, (int)getpid());
    FUZZ_CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "cannot create %s", dir);
    atexit(remove_dir);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    raft_group group = fuzz_u8(&in) % 4u;
    clean_dir();
    file_count = 0;
    while (in.left > 0 && file_count < FILES_MAX) {
        add_file(&in, group);
    }
    uint32_t seed = (uint32_t)XXH3_64bits(data, size);
    for (uint32_t i = 0; i < file_count; i++) {
        check_reader(&files[i], seed + i);
    }
    const struct file *want = NULL;
    int expected = expect(group, &want);

    struct snapshot s;
    char err[1024];
    memset(&s, 0, sizeof(s));
    int rc = snapshot_load(dir, group, &s, err, sizeof(err));
    FUZZ_CHECK(rc == expected, "snapshot_load: %s, expected %s (%s)", rr_strerror(rc),
               rr_strerror(expected), err);
    FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL, "message not NUL-terminated");
    if (rc == RR_OK) {
        check_loaded(&s, want, group);
        use_loaded(&s);
        FUZZ_CHECK(snapshot_prune(dir, group, s.index) == RR_OK, "snapshot_prune failed");
        struct snapshot again;
        memset(&again, 0, sizeof(again));
        rc = snapshot_load(dir, group, &again, err, sizeof(err));
        FUZZ_CHECK(rc == RR_OK, "after pruning at %llu: %s (%s)", (unsigned long long)s.index,
                   rr_strerror(rc), err);
        check_loaded(&again, want, group);
        snapshot_free(&again);
    }
    snapshot_free(&s);
    for (uint32_t i = 0; i < file_count; i++) {
        free(files[i].bytes);
    }
    FUZZ_CHECK(fds_in_dir(false) == 0, "%u file descriptors leaked", fds_in_dir(true));
    return 0;
}
