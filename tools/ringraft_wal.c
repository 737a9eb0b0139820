/* ringraft-wal: inspect a WAL directory or segment files without opening the WAL (no lock,
 * no recovery, nothing written). Commands: dump [--json], verify, summary. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/base/errors.h"
#include "storage/wal_format.h"

#define TOOL_GROUPS_MAX 65536u

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
};

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
    if (r->group >= TOOL_GROUPS_MAX || r->type == WAL_REC_SEAL) {
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
    uint64_t off = WAL_SEGMENT_HEADER_BYTES;
    int sealed = 0;
    while (off < len) {
        struct wal_record r;
        int64_t n = wal_record_decode(buf + off, len - off, h.salt, &r);
        if (n < 0) {
            break;
        }
        print_record(t, path, off, &r, n);
        account(t, &r, n);
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
    }
    int has = off > WAL_SEGMENT_HEADER_BYTES;
    free(buf);
    return (sealed ? 0 : SEG_UNSEALED) | (has ? SEG_RECORDS : 0);
}

static int usage(void)
{
    fprintf(stderr, "usage: ringraft-wal dump [--json] | verify | summary  DIR-or-SEGMENT...\n");
    return 2;
}

static int collect(const char *arg, char ***names, int *n)
{
    struct stat st;
    if (stat(arg, &st) != 0) {
        fprintf(stderr, "%s: not found\n", arg);
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        *names = realloc(*names, (size_t)(*n + 1) * sizeof(char *));
        (*names)[(*n)++] = strdup(arg);
        return 0;
    }
    DIR *d = opendir(arg);
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "wal-", 4) != 0) {
            continue;
        }
        size_t len = strlen(arg) + strlen(e->d_name) + 2;
        char *p = malloc(len);
        snprintf(p, len, "%s/%s", arg, e->d_name);
        *names = realloc(*names, (size_t)(*n + 1) * sizeof(char *));
        (*names)[(*n)++] = p;
    }
    if (d != NULL) {
        closedir(d);
    }
    return 0;
}

static void summary(const struct tool *t)
{
    for (uint32_t g = 0; g < TOOL_GROUPS_MAX; g++) {
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
    if (argc < 3) {
        return usage();
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
        return usage();
    }
    a++;
    if (a < argc && strcmp(argv[a], "--json") == 0) {
        t.json = 1;
        a++;
    }
    char **names = NULL;
    int n = 0;
    for (; a < argc; a++) {
        if (collect(argv[a], &names, &n) != 0) {
            return 1;
        }
    }
    qsort(names, (size_t)n, sizeof(char *), cmp_names);
    t.groups = calloc(TOOL_GROUPS_MAX, sizeof(*t.groups));
    char *open_seg = NULL; /* an unsealed segment: only unused spares may follow */
    for (int i = 0; i < n && t.groups != NULL; i++) {
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
