/* libFuzzer target: snapshot files (storage/snapshot.c: snapshot_load, snapshot_prune).
 *
 * The input becomes a directory of snapshot files (on /dev/shm when there is one), then the
 * newest valid snapshot of one group is loaded. Input:
 *   byte 0  the group loaded: byte 0 % 4
 *   then up to 8 files, each: u8 flags, u8 index, u16 length (little-endian), the bytes.
 *     flags bits 0..1: the name: 0 snap-<group>-<index> (lowercase hex, as written), 1 the
 *           same with ".tmp", 2 the next group's, 3 uppercase hex (a name the loader parses
 *           but never writes);
 *     bit 3: a plausible header: magic "RRSNAP02", version 2, the name's group and index,
 *           and configuration and data lengths that add up to the file (the configuration
 *           takes (flags >> 4) / 15 of the bytes after the header);
 *     bit 2: fix the checksum: bytes 48..55 become the xxh3 of bytes 0..47 and 64..end
 *           (the fuzzer cannot forge xxh3);
 *   A later file with the same name replaces an earlier one.
 *
 * Properties checked:
 *   - snapshot_load picks what the format says it must: going down from the highest index
 *     named for the group, the first file that verifies (magic, version 2, lengths adding
 *     up to the file, lengths within their limits, checksum, group and index as named) is
 *     loaded, with exactly its configuration and data bytes; a file of another format
 *     version stops the search with RR_EBADVERSION; no valid file is RR_ENOTFOUND. This is
 *     an independent reading of the format (docs/disk-format.md), not the loader's code;
 *   - snapshot_prune at the loaded index keeps that snapshot loadable, byte for byte;
 *   - what was loaded goes on to its readers: the configuration to codec_config_decode,
 *     the data to sm_load;
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

#define FILES_MAX  8u
#define HEADER     64u
#define MAGIC      0x323050414e535252ull /* "RRSNAP02" */
#define MAGIC_V1   0x3130504153525252ull
#define NAME_CANON 0u
#define NAME_TMP   1u
#define NAME_OTHER 2u
#define NAME_UPPER 3u

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

static uint64_t file_checksum(const uint8_t *p, size_t len)
{
    XXH3_state_t st;
    XXH3_INITSTATE(&st);
    (void)XXH3_64bits_reset(&st);
    (void)XXH3_64bits_update(&st, p, 48);
    (void)XXH3_64bits_update(&st, p + HEADER, len - HEADER);
    return XXH3_64bits_digest(&st);
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

static void add_file(struct fuzz_in *in, raft_group group)
{
    uint8_t flags = fuzz_u8(in);
    uint8_t index = fuzz_u8(in);
    size_t len = 0;
    const uint8_t *p = fuzz_bytes(in, fuzz_u16(in), &len);
    struct file f = {.kind = flags & 3u, .group = group, .index = index, .len = len};
    make_name(f.name, sizeof(f.name), f.kind, group, index);
    f.bytes = fuzz_dup(p, len);
    if ((flags & 8u) && len >= HEADER) {
        uint64_t magic = MAGIC;
        uint32_t version = 2;
        raft_group named = f.kind == NAME_OTHER ? group + 1 : group;
        uint64_t idx = index;
        uint32_t config_len = (uint32_t)((len - HEADER) * (flags >> 4) / 15u);
        uint64_t data_len = len - HEADER - config_len;
        memcpy(f.bytes, &magic, 8);
        memcpy(f.bytes + 8, &version, 4);
        memcpy(f.bytes + 12, &named, 4);
        memcpy(f.bytes + 16, &idx, 8);
        memcpy(f.bytes + 32, &config_len, 4);
        memcpy(f.bytes + 40, &data_len, 8);
    }
    if ((flags & 4u) && len >= HEADER) {
        uint64_t sum = file_checksum(f.bytes, len);
        memcpy(f.bytes + 48, &sum, 8);
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

enum verdict { V_MISSING, V_DAMAGED, V_BADVERSION, V_VALID };

static const struct file *find(const char *name)
{
    for (uint32_t i = 0; i < file_count; i++) {
        if (strcmp(files[i].name, name) == 0) {
            return &files[i];
        }
    }
    return NULL;
}

static enum verdict judge(const struct file *f, raft_group group, uint8_t index)
{
    if (f == NULL) {
        return V_MISSING;
    }
    if (f->len < HEADER) {
        return V_DAMAGED;
    }
    uint64_t magic = get64(f->bytes);
    uint32_t version = get32(f->bytes + 8);
    if ((magic == MAGIC && version != 2) || (magic == MAGIC_V1 && version == 1)) {
        return V_BADVERSION;
    }
    uint32_t config_len = get32(f->bytes + 32);
    uint64_t data_len = get64(f->bytes + 40);
    if (magic != MAGIC || config_len > SNAPSHOT_CONFIG_MAX || data_len > SNAPSHOT_BYTES_MAX ||
        f->len != HEADER + config_len + data_len ||
        get64(f->bytes + 48) != file_checksum(f->bytes, f->len) || get32(f->bytes + 12) != group ||
        get64(f->bytes + 16) != index) {
        return V_DAMAGED;
    }
    return V_VALID;
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
        enum verdict v = judge(f, group, (uint8_t)idx);
        if (v == V_BADVERSION) {
            return RR_EBADVERSION;
        }
        if (v == V_VALID) {
            *chosen = f;
            return RR_OK;
        }
    }
    return RR_ENOTFOUND;
}

static void check_loaded(const struct snapshot *s, const struct file *f, raft_group group)
{
    FUZZ_CHECK(s->group == group && s->index == f->index, "loaded group %u index %llu, not %u/%u",
               s->group, (unsigned long long)s->index, group, f->index);
    FUZZ_CHECK(HEADER + (uint64_t)s->config_len + s->data_len == f->len,
               "loaded %u + %llu bytes of a %zu-byte file", s->config_len,
               (unsigned long long)s->data_len, f->len);
    FUZZ_CHECK(s->config_len == 0 || memcmp(s->config, f->bytes + HEADER, s->config_len) == 0,
               "configuration bytes differ");
    FUZZ_CHECK(s->data_len == 0 ||
                   memcmp(s->data, f->bytes + HEADER + s->config_len, s->data_len) == 0,
               "data bytes differ");
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
