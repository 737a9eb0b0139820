/* ringraft-wal: inspect a WAL directory or segment files without opening the WAL (no lock,
 * no recovery, nothing written). Commands: dump [--json], verify, summary.
 * In a directory, segments are the files named exactly "wal-" + 16 lowercase hex digits
 * (wal_segment_name_parse); other "wal-*" files are reported as ignored strays. A file named
 * on the command line is read as a segment whatever its name. The per-group table is sized
 * from the segment headers' group count; a record of a group outside its header's range (at
 * or above G, or owned by another worker) is reported as corruption. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/errors.h"
#include "core/base/version.h"
#include "core/limits.h"
#include "release.h" /* generated: RINGRAFT_GIT_COMMIT, RINGRAFT_BUILD (tools/dist/install.mk) */
#include "storage/wal_format.h"

struct group_summary {
    raft_index first; /* first entry index seen (0: none) */
    raft_index last;  /* last entry index after truncations */
    raft_index snap;  /* latest compaction point */
    raft_term hs_term;
    uint32_t hs_vote;
    raft_index hs_commit;
    uint64_t bytes; /* record bytes of its entries */
    uint64_t records;
};

struct tool {
    int json;
    int mode; /* 0 dump, 1 verify, 2 summary */
    int bad;  /* a bad record was found outside a torn tail */
    struct group_summary *groups;
    uint32_t groups_len; /* entries of groups: the largest header group count seen */
};

/* Diagnostics: on stdout with the rest of the report, on stderr when stdout is JSON. */
static void note(const struct tool *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const struct tool *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfprintf(t->json ? stderr : stdout, fmt, ap);
    va_end(ap);
}

/* Grows the per-group table to count entries (new ones zero). */
static int groups_reserve(struct tool *t, uint32_t count)
{
    if (count <= t->groups_len) {
        return RR_OK;
    }
    struct group_summary *g = realloc(t->groups, (size_t)count * sizeof(*g));
    if (g == NULL) {
        fprintf(stderr, "out of memory for a table of %u groups\n", count);
        return RR_ENOMEM;
    }
    memset(g + t->groups_len, 0, (size_t)(count - t->groups_len) * sizeof(*g));
    t->groups = g;
    t->groups_len = count;
    return RR_OK;
}

/* The header describes a WAL the library can open: W > 0, worker < W, 0 < G and at most
 * RAFT_GROUPS_MAX groups per worker. */
static int header_in_range(const struct wal_segment_header *h)
{
    return h->worker_count > 0 && h->worker_id < h->worker_count && h->group_count > 0 &&
           h->group_count <= (uint64_t)RAFT_GROUPS_MAX * h->worker_count;
}

/* Group g belongs to the WAL of this header (as wal.c's wal_group decides). */
static int group_in_range(const struct wal_segment_header *h, uint32_t g)
{
    return g < h->group_count && g % h->worker_count == h->worker_id;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static uint8_t *load(const char *path, uint64_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        fprintf(stderr, "%s: cannot open\n", path);
        if (fd >= 0) {
            close(fd);
        }
        return NULL;
    }
    uint8_t *buf = malloc((size_t)st.st_size + 1);
    uint64_t done = 0;
    while (buf != NULL && done < (uint64_t)st.st_size) {
        ssize_t n = pread(fd, buf + done, (size_t)st.st_size - done, (off_t)done);
        if (n <= 0) {
            free(buf);
            buf = NULL;
            break;
        }
        done += (uint64_t)n;
    }
    close(fd);
    *len = (uint64_t)st.st_size;
    return buf;
}

static void print_record(
    const struct tool *t, const char *path, uint64_t off, const struct wal_record *r, int64_t size)
{
    if (t->mode != 0) {
        return;
    }
    if (t->json) {
        printf("{\"file\":\"%s\",\"offset\":%" PRIu64 ",\"size\":%" PRId64
               ",\"type\":\"%s\",\"group\":%u,\"term\":%" PRIu64 ",\"index\":%" PRIu64
               ",\"entry_type\":%u,\"payload_len\":%u}\n",
               path, off, size, wal_record_type_name(r->type), r->group, r->term, r->index,
               r->entry_type, r->payload_len);
        return;
    }
    printf("%s @%-10" PRIu64 " %-10s group %-6u term %-6" PRIu64 " index %-8" PRIu64
           " type %-3u payload %u\n",
           path, off, wal_record_type_name(r->type), r->group, r->term, r->index, r->entry_type,
           r->payload_len);
}

static void account(struct tool *t, const struct wal_record *r, int64_t size)
{
    if (r->group >= t->groups_len || r->type == WAL_REC_SEAL) {
        return;
    }
    struct group_summary *g = &t->groups[r->group];
    g->records++;
    switch ((enum wal_record_type)r->type) {
    case WAL_REC_ENTRY:
        if (g->first == 0 || r->index < g->first) {
            g->first = r->index;
        }
        g->last = r->index;
        g->bytes += (uint64_t)size;
        break;
    case WAL_REC_HARD_STATE:
        g->hs_term = r->term;
        g->hs_commit = r->index;
        memcpy(&g->hs_vote, r->payload, sizeof(g->hs_vote));
        break;
    case WAL_REC_TRUNCATE:
        if (r->index <= g->last) {
            g->last = r->index - 1;
        }
        break;
    case WAL_REC_COMPACT:
        g->snap = r->index;
        if (g->first <= r->index) {
            g->first = r->index + 1;
        }
        break;
    case WAL_REC_SEAL:
        break;
    }
}

/* Walks one segment; returns SEG_UNSEALED and/or SEG_RECORDS. */
#define SEG_UNSEALED 1
#define SEG_RECORDS  2

static int segment(struct tool *t, const char *path, int is_last)
{
    uint64_t len = 0;
    uint8_t *buf = load(path, &len);
    if (buf == NULL) {
        t->bad = 1;
        return 0;
    }
    struct wal_segment_header h;
    if (len < WAL_SEGMENT_HEADER_BYTES || wal_segment_header_decode(buf, &h) != RR_OK) {
        printf("%s: bad segment header at offset 0%s\n", path,
               is_last ? " (an unfinished preparation if this is the newest file)" : "");
        t->bad |= !is_last;
        free(buf);
        return 0;
    }
    if (t->mode == 0 && !t->json) {
        printf("%s: segment %" PRIu64 " cluster %" PRIx64
               " node %u worker %u G=%u W=%u bytes %" PRIu64 "\n",
               path, h.seq, h.cluster_id, h.node_id, h.worker_id, h.group_count, h.worker_count,
               h.segment_bytes);
    }
    if (!header_in_range(&h)) {
        note(t,
             "%s: segment header out of range: G=%u W=%u worker %u (at most %u groups per "
             "worker): corruption\n",
             path, h.group_count, h.worker_count, h.worker_id, (unsigned)RAFT_GROUPS_MAX);
        t->bad = 1;
        free(buf);
        return 0;
    }
    if (groups_reserve(t, h.group_count) != RR_OK) {
        t->bad = 1;
        free(buf);
        return 0;
    }
    uint64_t off = WAL_SEGMENT_HEADER_BYTES;
    int sealed = 0;
    while (off < len) {
        struct wal_record r;
        int64_t n = wal_record_decode(buf + off, len - off, h.salt, &r);
        if (n < 0) {
            break;
        }
        print_record(t, path, off, &r, n);
        if (r.type != WAL_REC_SEAL && !group_in_range(&h, r.group)) {
            note(t,
                 "%s: record at offset %" PRIu64
                 ": group %u out of range for the segment header (G=%u W=%u worker %u): "
                 "corruption\n",
                 path, off, r.group, h.group_count, h.worker_count, h.worker_id);
            t->bad = 1;
        } else {
            account(t, &r, n);
        }
        off += (uint64_t)n;
        if (r.type == WAL_REC_SEAL) {
            sealed = 1;
            break;
        }
    }
    if (!sealed) {
        int zeros = 1;
        for (uint64_t k = off; k < len && k < off + WAL_RECORD_HEADER_BYTES; k++) {
            zeros &= buf[k] == 0;
        }
        if (!zeros) {
            printf("%s: first bad record at offset %" PRIu64
                   " (a torn tail if no later segment holds records, else corruption)\n",
                   path, off);
        }
        /* As recovery does: a valid record further on whose flush began once this offset was
         * durable proves the bad record had been synced (docs/disk-format.md). */
        struct wal_record r;
        for (uint64_t p =
                 zeros ? 0 : wal_record_find_valid(buf, off + WAL_RECORD_ALIGN, len, h.salt, &r);
             p != 0;
             p = wal_record_find_valid(buf, p + wal_record_size(r.payload_len), len, h.salt, &r)) {
            if (r.flush_base > off) {
                note(t,
                     "%s: record at offset %" PRIu64 " is bad, but the record at offset %" PRIu64
                     " was written by a later flush that started once offset %u was durable: "
                     "corruption\n",
                     path, off, p, r.flush_base);
                t->bad = 1;
                break;
            }
        }
    }
    int has = off > WAL_SEGMENT_HEADER_BYTES;
    free(buf);
    return (sealed ? 0 : SEG_UNSEALED) | (has ? SEG_RECORDS : 0);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: ringraft-wal dump [--json] | verify | summary  DIR-or-SEGMENT...\n"
               "       ringraft-wal --help | --version\n"
               "Reads WAL segments without opening the WAL (no lock, no recovery, nothing "
               "written).\n"
               "  dump      every record of every segment, in order (--json: one object a line)\n"
               "  verify    check every record; exit status 1 if anything is damaged outside a "
               "torn tail\n"
               "  summary   per group: first and last index, snapshot, hard state, bytes\n"
               "ringraft-wal(1) describes the output.\n");
}

/* As ringraftd --version: "ringraft-wal 0.1.0 (git 39e5427abcde, release build)". */
static void version(FILE *f)
{
    const char *commit = RINGRAFT_GIT_COMMIT;
    if (commit[0] != '\0') {
        fprintf(f, "ringraft-wal %s (git %s, %s build)\n", RINGRAFT_VERSION, commit,
                RINGRAFT_BUILD);
    } else {
        fprintf(f, "ringraft-wal %s (%s build)\n", RINGRAFT_VERSION, RINGRAFT_BUILD);
    }
}

static void push(char ***names, int *n, char *name)
{
    *names = realloc(*names, (size_t)(*n + 1) * sizeof(char *));
    if (*names == NULL || name == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    (*names)[(*n)++] = name;
}

/* Adds arg (a segment) or the segments of directory arg to names, and the "wal-*" files of
 * the directory that are not segment names to strays. */
static int collect(const char *arg, char ***names, int *n, char ***strays, int *n_strays)
{
    struct stat st;
    if (stat(arg, &st) != 0) {
        fprintf(stderr, "%s: not found\n", arg);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        push(names, n, strdup(arg));
        return 0;
    }
    DIR *d = opendir(arg);
    if (d == NULL) {
        fprintf(stderr, "%s: cannot open\n", arg);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "wal-", 4) != 0) {
            continue;
        }
        size_t len = strlen(arg) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        if (p != NULL) {
            snprintf(p, len, "%s/%s", arg, e->d_name);
        }
        uint64_t seq;
        if (wal_segment_name_parse(e->d_name, &seq)) {
            push(names, n, p);
        } else {
            push(strays, n_strays, p);
        }
    }
    closedir(d);
    return 0;
}

static void summary(const struct tool *t)
{
    for (uint32_t g = 0; g < t->groups_len; g++) {
        const struct group_summary *s = &t->groups[g];
        if (s->records == 0) {
            continue;
        }
        if (t->json) {
            printf("{\"group\":%u,\"first\":%" PRIu64 ",\"last\":%" PRIu64 ",\"snap\":%" PRIu64
                   ",\"term\":%" PRIu64 ",\"vote\":%u,\"commit\":%" PRIu64 ",\"bytes\":%" PRIu64
                   "}\n",
                   g, s->first, s->last, s->snap, s->hs_term, s->hs_vote, s->hs_commit, s->bytes);
        } else {
            printf("group %-6u first %-8" PRIu64 " last %-8" PRIu64 " snap %-8" PRIu64
                   " term %-6" PRIu64 " vote %-4u commit %-8" PRIu64 " bytes %" PRIu64 "\n",
                   g, s->first, s->last, s->snap, s->hs_term, s->hs_vote, s->hs_commit, s->bytes);
        }
    }
}

int main(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "--version") == 0) {
        version(stdout);
        return 0;
    }
    if (argc < 3) {
        usage(stderr);
        return 2;
    }
    struct tool t = {0};
    int a = 1;
    if (strcmp(argv[a], "dump") == 0) {
        t.mode = 0;
    } else if (strcmp(argv[a], "verify") == 0) {
        t.mode = 1;
    } else if (strcmp(argv[a], "summary") == 0) {
        t.mode = 2;
    } else {
        usage(stderr);
        return 2;
    }
    a++;
    if (a < argc && strcmp(argv[a], "--json") == 0) {
        t.json = 1;
        a++;
    }
    char **names = NULL, **strays = NULL;
    int n = 0, n_strays = 0;
    for (; a < argc; a++) {
        if (collect(argv[a], &names, &n, &strays, &n_strays) != 0) {
            return 1;
        }
    }
    if (n > 0) {
        qsort(names, (size_t)n, sizeof(char *), cmp_names);
    }
    if (n_strays > 0) {
        qsort(strays, (size_t)n_strays, sizeof(char *), cmp_names);
    }
    for (int i = 0; i < n_strays; i++) {
        note(&t,
             "%s: not a segment name (segments are \"wal-\" and 16 lowercase hex digits): "
             "ignored\n",
             strays[i]);
        free(strays[i]);
    }
    free(strays);
    char *open_seg = NULL; /* an unsealed segment: only unused spares may follow */
    for (int i = 0; i < n; i++) {
        int r = segment(&t, names[i], i == n - 1);
        if (open_seg != NULL && (r & SEG_RECORDS)) {
            printf("%s: ends without a seal but %s holds records: corruption (recovery "
                   "refuses to start)\n",
                   open_seg, names[i]);
            t.bad = 1;
        }
        if ((r & SEG_UNSEALED) && open_seg == NULL) {
            open_seg = names[i];
        } else {
            free(names[i]);
        }
    }
    free(open_seg);
    free(names);
    if (t.mode == 2) {
        summary(&t);
    }
    if (t.mode == 1) {
        printf("%s\n", t.bad ? "verify: FAILED" : "verify: ok");
    }
    free(t.groups);
    return t.bad ? 1 : 0;
}
