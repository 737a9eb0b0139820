/* Snapshot files. Name: snap-<group, 8 hex>-<index, 16 hex>; written as <name>.tmp, fsynced,
 * renamed, then the directory fsynced, so a crash leaves either the old set or the new file
 * complete. Layout (little-endian): 0 u64 magic, the ASCII bytes "RRSNAP02"
 * (0x323050414e535252 read as a u64), 8 u32 version 2, 12 u32 group, 16 u64 index, 24 u64 term,
 * 32 u32 config_len, 36 u32 zero, 40 u64 data_len, 48 u64 xxh3-64 of bytes 0..47 + config +
 * data, 56 u64 zero; then config, then data.
 * Version 1 had the same layout with magic 0x3130504153525252 (the bytes "RRRSAP01"); such a
 * file, or one with this magic and another version, is refused (RR_EBADVERSION), never
 * loaded or passed over for an older snapshot. */
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

#include "core/base/errors.h"
#include "storage/wal_testing.h"

_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
               "the format is little-endian and encoded with memcpy on a little-endian host");

#define SNAP_MAGIC    0x323050414e535252ull /* "RRSNAP02" read as little-endian */
#define SNAP_VERSION  2u
#define SNAP_MAGIC_V1 0x3130504153525252ull /* version 1's magic: the bytes "RRRSAP01" */
#define SNAP_HEADER   64u

static int write_all(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = WAL_FAULT(WAL_FP_SNAP_IO, write(fd, p, len));
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return RR_OK;
}

static uint64_t checksum(const uint8_t *hdr, const struct snapshot *s)
{
    XXH3_state_t *st = XXH3_createState();
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, hdr, 48);
    XXH3_64bits_update(st, s->config, s->config_len);
    XXH3_64bits_update(st, s->data, (size_t)s->data_len);
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

static void encode_header(const struct snapshot *s, uint8_t *h)
{
    uint64_t magic = SNAP_MAGIC;
    uint32_t version = SNAP_VERSION;
    uint32_t zero = 0;
    memset(h, 0, SNAP_HEADER);
    memcpy(h, &magic, 8);
    memcpy(h + 8, &version, 4);
    memcpy(h + 12, &s->group, 4);
    memcpy(h + 16, &s->index, 8);
    memcpy(h + 24, &s->term, 8);
    memcpy(h + 32, &s->config_len, 4);
    memcpy(h + 36, &zero, 4);
    memcpy(h + 40, &s->data_len, 8);
    uint64_t sum = checksum(h, s);
    memcpy(h + 48, &sum, 8);
}

int snapshot_save(const char *dir, const struct snapshot *s, char *err, size_t err_len)
{
    if (s->config_len > SNAPSHOT_CONFIG_MAX || s->data_len > SNAPSHOT_BYTES_MAX) {
        snprintf(err, err_len, "snapshot: group %u: too large", s->group);
        return RR_ETOOBIG;
    }
    char name[64], tmp[80], path[4200], tpath[4200];
    snprintf(name, sizeof(name), "snap-%08x-%016llx", s->group, (unsigned long long)s->index);
    snprintf(tmp, sizeof(tmp), "%s.tmp", name);
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tpath, sizeof(tpath), "%s/%s", dir, tmp);
    uint8_t h[SNAP_HEADER];
    encode_header(s, h);
    int fd = WAL_FAULT(WAL_FP_SNAP_IO, open(tpath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (fd < 0) {
        snprintf(err, err_len, "snapshot: cannot create %s: %s", tpath, strerror(errno));
        return RR_EIO;
    }
    int rc = write_all(fd, h, sizeof(h));
    if (rc == RR_OK) {
        rc = write_all(fd, s->config, s->config_len);
    }
    if (rc == RR_OK) {
        rc = write_all(fd, s->data, (size_t)s->data_len);
    }
    if (rc == RR_OK && WAL_FAULT(WAL_FP_SNAP_IO, fsync(fd)) != 0) {
        rc = -errno;
    }
    close(fd);
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

/* Reads and verifies one file; RR_ECORRUPT if damaged, RR_EBADVERSION (and the version in
 * *version) if it is a snapshot of another format version. */
static int load_file(const char *path, struct snapshot *out, uint32_t *version)
{
    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        if (fd >= 0) {
            close(fd);
        }
        return RR_EIO;
    }
    uint8_t h[SNAP_HEADER];
    uint64_t magic = 0;
    int rc = read(fd, h, sizeof(h)) == (ssize_t)sizeof(h) ? RR_OK : RR_ECORRUPT;
    if (rc == RR_OK) {
        memcpy(&magic, h, 8);
        memcpy(version, h + 8, 4);
        if ((magic == SNAP_MAGIC && *version != SNAP_VERSION) ||
            (magic == SNAP_MAGIC_V1 && *version == 1)) {
            rc = RR_EBADVERSION; /* decided before anything else: the layout may differ */
        }
    }
    if (rc == RR_OK) {
        memcpy(&out->group, h + 12, 4);
        memcpy(&out->index, h + 16, 8);
        memcpy(&out->term, h + 24, 8);
        memcpy(&out->config_len, h + 32, 4);
        memcpy(&out->data_len, h + 40, 8);
        if (magic != SNAP_MAGIC || out->config_len > SNAPSHOT_CONFIG_MAX ||
            out->data_len > SNAPSHOT_BYTES_MAX ||
            (uint64_t)st.st_size != SNAP_HEADER + out->config_len + out->data_len) {
            rc = RR_ECORRUPT;
        }
    }
    if (rc == RR_OK) {
        out->config = malloc(out->config_len + 1u);
        out->data = malloc((size_t)out->data_len + 1u);
        if (out->config == NULL || out->data == NULL ||
            WAL_FAULT(WAL_FP_SNAP_IO, read(fd, out->config, out->config_len)) !=
                (ssize_t)out->config_len ||
            read(fd, out->data, (size_t)out->data_len) != (ssize_t)out->data_len) {
            rc = RR_ECORRUPT;
        }
    }
    uint64_t sum = 0;
    memcpy(&sum, h + 48, 8);
    if (rc == RR_OK && sum != checksum(h, out)) {
        rc = RR_ECORRUPT;
    }
    close(fd);
    if (rc != RR_OK) {
        snapshot_free(out);
    }
    return rc;
}

int snapshot_load(
    const char *dir, raft_group group, struct snapshot *out, char *err, size_t err_len)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        snprintf(err, err_len, "snapshot: cannot open %s", dir);
        return RR_EIO;
    }
    struct dirent *e;
    unsigned long long best = 0;
    int found = 0;
    err[0] = '\0';
    /* Newest first: try candidates in decreasing index until one verifies. */
    for (;;) {
        unsigned long long next = 0;
        int any = 0;
        rewinddir(d);
        while ((e = readdir(d)) != NULL) {
            unsigned g;
            unsigned long long idx;
            char tail;
            if (strlen(e->d_name) == 30 &&
                sscanf(e->d_name, "snap-%8x-%16llx%c", &g, &idx, &tail) == 2 && g == group &&
                (!found || idx < best) && (!any || idx > next)) {
                next = idx;
                any = 1;
            }
        }
        if (!any) {
            break;
        }
        char path[4200];
        snprintf(path, sizeof(path), "%s/snap-%08x-%016llx", dir, group, next);
        best = next;
        found = 1;
        uint32_t version = 0;
        int rc = load_file(path, out, &version);
        if (rc == RR_OK && out->group == group && out->index == next) {
            closedir(d);
            return RR_OK;
        }
        snapshot_free(out);
        if (rc == RR_EBADVERSION) {
            /* Refused, not skipped: an older snapshot may predate compacted log entries. */
            char note[512];
            snprintf(note, sizeof(note), "%s", err);
            snprintf(err, err_len,
                     "%s%ssnapshot: %s has format version %u; this build reads version %u "
                     "only: refused",
                     note, note[0] != '\0' ? "; " : "", path, version, SNAP_VERSION);
            closedir(d);
            return RR_EBADVERSION;
        }
        snprintf(err, err_len, "snapshot: %s is damaged; skipped", path);
    }
    closedir(d);
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
        int tmp = strstr(e->d_name, ".tmp") != NULL;
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
