/* Crash test, power loss. SIGKILL keeps the page cache, so it cannot show that
 * acknowledgements wait for the data sync; this test simulates losing the page cache.
 *
 * THE MODEL is built from the I/O the WAL really issues, never from the WAL's own account of
 * it (SQLite's crash VFS does the same one layer up). The test build calls an observer for
 * every SQE just before it is submitted (storage/wal_testing.h); the harness reaps every CQE
 * itself and shows it to the model before handing it to the WAL. From these the model keeps:
 *   - per file (identified by inode, named through readlink of /proc/self/fd), every data
 *     operation (write, writev, fallocate, open with O_TRUNC) with a copy of the bytes, in
 *     completion order;
 *   - per directory, every name operation (openat with O_CREAT, renameat, unlinkat, and
 *     creations and removals done outside the ring, which the model finds by listing the
 *     directory at each directory fsync, at each first sight of a new file and at the crash).
 * A write becomes durable when an IORING_OP_FSYNC (data sync or not) of its file completes
 * successfully and the write had completed successfully before that sync was submitted (its
 * CQE was seen before the sync SQE was observed), or precedes the sync in its link chain; a
 * writev with RWF_DSYNC (or to an O_DSYNC file) is durable on its own completion; a short
 * write only wrote what it reports. A name operation becomes durable when an fsync of its
 * directory, submitted after the operation completed (or linked after it), completes
 * successfully. A sync that completes after the power loss counts for nothing.
 *
 * THE CRASH: the harness runs a workload handing the WAL one CQE at a time and loses power
 * at a random CQE: the WAL is shown nothing more, the kernel finishes what was submitted (its
 * completions still recorded), SQEs prepared but not submitted never run. The directory is
 * then rewritten as a power loss may leave it: names are those durable at the start of the
 * life, then each later name operation in order, a durable one always applied and any other
 * either applied or not (a creation may vanish, an unlink may be undone with the file's
 * content, a rename may go back); each file's content is its content at the start of the
 * life, then its data operations in completion order, a durable one applied whole and any
 * other sector by sector (512 B) kept, reverted, or with its changed bytes garbled
 * (powersafe overwrite, docs/storage.md). A life reverts everything not durable, keeps
 * everything, or chooses at random. Before rewriting, the model checks that replaying every
 * recorded operation gives exactly the files on disk: an I/O it did not observe fails the
 * test rather than going unmodelled.
 *
 * THE CHECK: every unit (append with or without hard state, overwrite of a suffix,
 * truncation, compaction) is recorded per group as the records the WAL writes for it. After
 * recovery each group must be in the state reached by some prefix of its records that
 * includes every acknowledged unit: hard state, snapshot index and term, first and last
 * index, and every entry's term, type and bytes (payloads carry a generation, so an
 * overwritten entry is told from the version it replaced). Anything else is reported as
 * acknowledged data lost, saying whether the state is one from before the last acknowledged
 * record or none the records allow. When recovery refuses the crashed state, the crash is
 * done again with only what was durable and recovered again: a WAL that acknowledged what
 * was not durable is then reported as having lost acknowledged data, a recovery that
 * refuses a state a power loss may leave as a recovery failure. Nothing the WAL says about
 * its own syncs plays a part.
 *
 * KNOWN LIMITS: whatever recovery (wal_open) leaves is taken as durable at the start of a
 * life, including the synchronous writes, fsyncs and file creations recovery itself makes
 * (outside the ring and unobserved); a file or directory first met in the middle of a life
 * in a directory not yet tracked is taken as durable as it was then; a name operation done
 * outside the ring is dated when the model finds it, not when it happened (later, so never
 * more durable than it was); overlapping writes in flight together are ordered by their
 * CQEs; fixed files, and opcodes the model does not know, fail the test.
 *
 * The patches in tests/storage/mutants/ break the WAL on purpose (acknowledging before the
 * sync, a sync that is a no-op, a sync of the wrong file); `make test-storage-mutant`
 * checks that this test kills each of them. RR_POWERLOSS_LIVES sets the number of lives
 * (RR_POWERLOSS_SECONDS instead runs lives for that long), RR_SEED the seed,
 * RR_POWERLOSS_VERBOSE=1 prints what each crash did, and
 * RR_POWERLOSS_SAVE=DIR keeps a copy of the last crashed directory before its recovery. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>
#include <limits.h>
#include <linux/falloc.h>
#include <sys/uio.h>
#include <time.h>

#include "storage/wal_testing.h"
#include "tests/storage/wal_helpers.h"

#define SECTOR 512
#define MPATH  320

/* ---- growable arrays and byte images ---------------------------------------------------- */

static void grow(void **p, uint32_t *cap, uint32_t need, size_t elem)
{
    if (need <= *cap) {
        return;
    }
    uint32_t ncap = *cap == 0 ? 16u : *cap;
    while (ncap < need) {
        ncap *= 2u;
    }
    void *q = realloc(*p, (size_t)ncap * elem);
    if (q == NULL) {
        abort();
    }
    *p = q;
    *cap = ncap;
}

#define PUSH(arr, n, cap) (grow((void **)&(arr), &(cap), (n) + 1u, sizeof(*(arr))), &(arr)[(n)++])

struct bytes {
    uint8_t *p;
    size_t len;
    size_t cap;
};

/* Sets the length; bytes a growth uncovers are zero (a hole reads as zeros). */
static void bytes_size(struct bytes *b, size_t len)
{
    if (len > b->cap) {
        size_t ncap = b->cap < 4096 ? 4096 : b->cap;
        while (ncap < len) {
            ncap *= 2;
        }
        uint8_t *q = realloc(b->p, ncap);
        if (q == NULL) {
            abort();
        }
        b->p = q;
        b->cap = ncap;
    }
    if (len > b->len) {
        memset(b->p + b->len, 0, len - b->len);
    }
    b->len = len;
}

static void bytes_put(struct bytes *b, uint64_t off, const uint8_t *d, size_t n)
{
    if (off + n > b->len) {
        bytes_size(b, (size_t)(off + n));
    }
    memcpy(b->p + off, d, n);
}

static uint8_t bytes_at(const struct bytes *b, uint64_t off)
{
    return off < b->len ? b->p[off] : 0;
}

static void bytes_copy(struct bytes *dst, const struct bytes *src)
{
    dst->len = 0;
    bytes_size(dst, src->len);
    if (src->len > 0) {
        memcpy(dst->p, src->p, src->len);
    }
}

static void bytes_free(struct bytes *b)
{
    free(b->p);
    memset(b, 0, sizeof(*b));
}

/* Reads a whole file; false if it cannot be opened. */
static bool read_whole(const char *path, struct bytes *out)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return false;
    }
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    out->len = 0;
    bytes_size(out, (size_t)st.st_size);
    size_t done = 0;
    while (done < out->len) {
        ssize_t n = pread(fd, out->p + done, out->len - done, (off_t)done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    close(fd);
    return true;
}

static void write_whole(const char *path, const struct bytes *b)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    size_t done = 0;
    while (done < b->len) {
        ssize_t n = pwrite(fd, b->p + done, b->len - done, (off_t)done);
        assert_true(n > 0);
        done += (size_t)n;
    }
    close(fd);
}

static void split_path(const char *path, char *dir, const char **base)
{
    const char *slash = strrchr(path, '/');
    assert_non_null(slash);
    size_t n = (size_t)(slash - path);
    assert_true(n < MPATH);
    memcpy(dir, path, n);
    dir[n] = '\0';
    *base = slash + 1;
}

static void join_path(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, MPATH, "%s/%s", dir, name);
    assert_true(n > 0 && n < MPATH);
}

/* What the run exercised, printed at its end. */
static struct {
    uint64_t units, acked, entries, overwrites, hard_states, truncations, compactions;
    uint64_t beyond_ack; /* groups that recovered records of units never acknowledged */
    uint64_t names_undone, names_kept, torn_writes;
    uint32_t lives;
} cover;

/* ---- the model -------------------------------------------------------------------------- */

enum mop_kind {
    MOP_IGNORED,   /* changes nothing on disk: reads, timeouts, nop, close */
    MOP_WRITE,     /* write, writev */
    MOP_FALLOC,    /* fallocate */
    MOP_SYNC_FILE, /* fsync or fdatasync of a regular file */
    MOP_SYNC_DIR,  /* fsync of a directory */
    MOP_OPEN,      /* openat: a creation, or (O_TRUNC on an existing file) a data op */
    MOP_UNLINK,    /* unlinkat */
    MOP_RENAME,    /* renameat */
};

/* One observed SQE and what became of it. */
struct mop {
    uint64_t user_data;
    uint8_t opcode;
    uint8_t sqe_flags;
    enum mop_kind kind;
    int file;          /* data ops, file syncs, O_TRUNC opens: the model's file; -1 */
    int dir;           /* directory syncs: the tracked directory; -1 */
    uint64_t off, len; /* write: offset, bytes; fallocate: offset, length; ranged sync */
    uint32_t mode;     /* fallocate mode, open flags */
    uint8_t *data;     /* a copy of a write's bytes, taken at observation */
    bool dsync;        /* a write durable on its own completion (RWF_DSYNC, O_DSYNC) */
    bool existed;      /* openat: the path named a file when observed */
    bool trunc;        /* openat of an existing file with O_TRUNC: a data op */
    char path[MPATH];  /* openat, unlinkat, renameat (old) */
    char path2[MPATH]; /* renameat (new) */
    int prev;          /* the SQE before it in its link chain, or -1 */
    uint64_t obs_seq;  /* model clock at observation (= submission) */
    uint64_t done_seq; /* model clock at its CQE */
    bool done;
    bool after_crash; /* completed after the power loss */
    bool skip_cqe;    /* IOSQE_CQE_SKIP_SUCCESS: a CQE only on failure */
    int32_t res;
    bool durable;       /* data ops: survives the power loss */
    bool durable_if_ok; /* precedes a successful sync in its chain: durable once it succeeds */
    int dirsync;        /* name ops preceding a successful directory sync in their chain */
    int dop;            /* the name operation it logged, or -1 */
};

enum dop_kind { DOP_CREATE, DOP_UNLINK, DOP_RENAME };

/* One name operation, in the order they took effect. */
struct dop {
    enum dop_kind kind;
    char path[MPATH];
    char path2[MPATH]; /* rename: the new name */
    int file;
    int dir, dir2;    /* tracked directories of path and path2 (dir2 -1 unless rename) */
    uint64_t seq;     /* model clock when it took effect (or was found) */
    bool observed;    /* issued through the ring (else found by listing the directory) */
    bool after_crash; /* completed after the power loss */
    bool synced;      /* its directory was synced since */
    bool synced2;     /* rename: the new name's directory was synced since */
};

struct mfile {
    dev_t dev;
    ino_t ino;
    struct bytes base; /* content at the start of the life (empty for files created since) */
    char name[MPATH];  /* the name it was first known by (messages) */
};

struct mdir {
    char path[MPATH];
};

struct nsent {
    char path[MPATH];
    int file;
    int dir;
};

struct ns {
    struct nsent *e;
    uint32_t n, cap;
};

struct model {
    struct mop *ops;
    uint32_t nops, capops;
    uint32_t first_open; /* ops before it all have their CQE */
    struct dop *dops;
    uint32_t ndops, capdops;
    struct mfile *files;
    uint32_t nfiles, capfiles;
    struct mdir *dirs;
    uint32_t ndirs, capdirs;
    struct ns start; /* names durable at the start of the life */
    struct ns cur;   /* names as they are now */
    uint64_t clock;
    int chain_last;   /* last SQE of this submission if it links to the next, else -1 */
    uint32_t pending; /* observed SQEs whose CQE is still due */
    char log[4096];   /* what the last crash did, for a failure message */
    size_t log_len;
    bool live; /* between model_begin and model_end */
};

static struct model M;

static void model_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void model_fail(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    fail_msg("power-loss model: %s", buf);
}

static void mlog(struct model *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void mlog(struct model *m, const char *fmt, ...)
{
    if (m->log_len >= sizeof(m->log) - 1) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(m->log + m->log_len, sizeof(m->log) - m->log_len, fmt, ap);
    va_end(ap);
    if (n > 0) {
        m->log_len += (size_t)n;
        if (m->log_len >= sizeof(m->log)) {
            m->log_len = sizeof(m->log) - 1;
        }
    }
}

static int ns_find(const struct ns *s, const char *path)
{
    for (uint32_t i = 0; i < s->n; i++) {
        if (strcmp(s->e[i].path, path) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static void ns_set(struct ns *s, const char *path, int file, int dir)
{
    int i = ns_find(s, path);
    struct nsent *e = i >= 0 ? &s->e[i] : PUSH(s->e, s->n, s->cap);
    snprintf(e->path, sizeof(e->path), "%s", path);
    e->file = file;
    e->dir = dir;
}

static void ns_del(struct ns *s, const char *path)
{
    int i = ns_find(s, path);
    if (i >= 0) {
        s->e[i] = s->e[--s->n];
    }
}

static void ns_copy(struct ns *dst, const struct ns *src)
{
    dst->n = 0;
    for (uint32_t i = 0; i < src->n; i++) {
        *PUSH(dst->e, dst->n, dst->cap) = src->e[i];
    }
}

static bool file_named(const struct model *m, int f)
{
    for (uint32_t i = 0; i < m->cur.n; i++) {
        if (m->cur.e[i].file == f) {
            return true;
        }
    }
    return false;
}

static int add_file(struct model *m, const struct stat *st, const char *name)
{
    struct mfile *f = PUSH(m->files, m->nfiles, m->capfiles);
    memset(f, 0, sizeof(*f));
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    snprintf(f->name, sizeof(f->name), "%s", name);
    return (int)m->nfiles - 1;
}

static int log_dop(struct model *m,
                   enum dop_kind kind,
                   const char *path,
                   const char *path2,
                   int file,
                   int dir,
                   int dir2,
                   bool observed,
                   bool after_crash)
{
    struct dop *d = PUSH(m->dops, m->ndops, m->capdops);
    memset(d, 0, sizeof(*d));
    d->kind = kind;
    snprintf(d->path, sizeof(d->path), "%s", path);
    snprintf(d->path2, sizeof(d->path2), "%s", path2 != NULL ? path2 : "");
    d->file = file;
    d->dir = dir;
    d->dir2 = dir2;
    d->seq = ++m->clock;
    d->observed = observed;
    d->after_crash = after_crash;
    return (int)m->ndops - 1;
}

/* A name that an observed, not yet completed, name operation is about to change. */
static bool path_busy(const struct model *m, const char *path)
{
    for (uint32_t i = m->first_open; i < m->nops; i++) {
        const struct mop *op = &m->ops[i];
        if (op->done ||
            (op->kind != MOP_OPEN && op->kind != MOP_UNLINK && op->kind != MOP_RENAME)) {
            continue;
        }
        if (strcmp(op->path, path) == 0 || strcmp(op->path2, path) == 0) {
            return true;
        }
    }
    return false;
}

struct listing {
    char name[256];
    struct stat st;
};

/* Regular files of a directory; *n of them in a malloc'ed array. */
static struct listing *list_dir(const char *dir, uint32_t *n)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        model_fail("cannot list %s: %s", dir, strerror(errno));
    }
    struct listing *out = NULL;
    uint32_t cap = 0;
    *n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode)) {
            continue;
        }
        struct listing *l = PUSH(out, *n, cap);
        snprintf(l->name, sizeof(l->name), "%s", e->d_name);
        l->st = st;
    }
    closedir(d);
    return out;
}

/* Brings the model's names in directory d in line with the directory: a name that went
 * away without an observed operation was unlinked outside the ring, one that appeared was
 * created outside it (dated now: it happened before, so it is never taken as more durable
 * than it is). Names an in-flight ring operation is changing are left to that operation. */
static void reconcile(struct model *m, int d)
{
    uint32_t n = 0;
    struct listing *l = list_dir(m->dirs[d].path, &n);
    for (uint32_t i = 0; i < m->cur.n;) {
        struct nsent *e = &m->cur.e[i];
        if (e->dir != d || path_busy(m, e->path)) {
            i++;
            continue;
        }
        const char *base = strrchr(e->path, '/') + 1;
        const struct mfile *f = &m->files[e->file];
        bool same = false;
        for (uint32_t k = 0; k < n; k++) {
            if (strcmp(l[k].name, base) == 0) {
                same = l[k].st.st_dev == f->dev && l[k].st.st_ino == f->ino;
            }
        }
        if (same) {
            i++;
            continue;
        }
        char path[MPATH];
        snprintf(path, sizeof(path), "%s", e->path);
        log_dop(m, DOP_UNLINK, path, NULL, e->file, d, -1, false, false);
        ns_del(&m->cur, path);
    }
    for (uint32_t k = 0; k < n; k++) {
        char path[MPATH];
        join_path(path, m->dirs[d].path, l[k].name);
        if (ns_find(&m->cur, path) >= 0 || path_busy(m, path)) {
            continue;
        }
        int f = add_file(m, &l[k].st, path);
        log_dop(m, DOP_CREATE, path, NULL, f, d, -1, false, false);
        ns_set(&m->cur, path, f, d);
    }
    free(l);
}

/* The tracked directory at path; a directory met for the first time has its files taken
 * as durable as they are (a known limit; the WAL's own directory is tracked from the start
 * of the life). */
static int dir_track(struct model *m, const char *path)
{
    for (uint32_t i = 0; i < m->ndirs; i++) {
        if (strcmp(m->dirs[i].path, path) == 0) {
            return (int)i;
        }
    }
    struct mdir *dd = PUSH(m->dirs, m->ndirs, m->capdirs);
    snprintf(dd->path, sizeof(dd->path), "%s", path);
    int d = (int)m->ndirs - 1;
    uint32_t n = 0;
    struct listing *l = list_dir(path, &n);
    for (uint32_t k = 0; k < n; k++) {
        char fp[MPATH];
        join_path(fp, path, l[k].name);
        int f = add_file(m, &l[k].st, fp);
        if (!read_whole(fp, &m->files[f].base)) {
            model_fail("cannot read %s", fp);
        }
        ns_set(&m->start, fp, f, d);
        ns_set(&m->cur, fp, f, d);
    }
    free(l);
    return d;
}

/* The path an fd refers to now; true if its file was unlinked. */
static bool fd_path(int fd, char *out)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, MPATH - 1);
    if (n < 0) {
        model_fail("readlink %s: %s", link, strerror(errno));
    }
    out[n] = '\0';
    const char *del = " (deleted)";
    size_t dl = strlen(del);
    if ((size_t)n > dl && strcmp(out + n - (ssize_t)dl, del) == 0) {
        out[(size_t)n - dl] = '\0';
        return true;
    }
    return false;
}

/* The model's file behind an fd, as the ring will see it. */
static int file_of_fd(struct model *m, int fd)
{
    char path[MPATH];
    bool deleted = fd_path(fd, path);
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        model_fail("fd %d (%s) is not a regular file", fd, path);
    }
    if (deleted) {
        for (uint32_t f = m->nfiles; f-- > 0;) {
            if (m->files[f].dev == st.st_dev && m->files[f].ino == st.st_ino &&
                !file_named(m, (int)f)) {
                return (int)f;
            }
        }
        model_fail("fd %d refers to an unlinked file the model never knew (%s)", fd, path);
    }
    char dir[MPATH];
    const char *base;
    split_path(path, dir, &base);
    int d = dir_track(m, dir);
    for (int round = 0; round < 2; round++) {
        int i = ns_find(&m->cur, path);
        if (i >= 0 && m->files[m->cur.e[i].file].dev == st.st_dev &&
            m->files[m->cur.e[i].file].ino == st.st_ino) {
            return m->cur.e[i].file;
        }
        reconcile(m, d);
    }
    model_fail("cannot place fd %d (%s) among the files of %s", fd, path, dir);
    return -1;
}

static void at_path(int dirfd, const char *name, char *out)
{
    if (name[0] == '/') {
        snprintf(out, MPATH, "%s", name);
        return;
    }
    char base[MPATH];
    if (dirfd == AT_FDCWD) {
        assert_non_null(getcwd(base, sizeof(base)));
    } else if (fd_path(dirfd, base)) {
        model_fail("a path relative to a removed directory");
    }
    join_path(out, base, name);
}

/* The model's file named path now (after reconciling its directory), or -1. */
static int file_at(struct model *m, const char *path, int *dir_out)
{
    char dir[MPATH];
    const char *base;
    split_path(path, dir, &base);
    int d = dir_track(m, dir);
    *dir_out = d;
    struct stat st;
    if (stat(path, &st) != 0) {
        return -1;
    }
    int i = ns_find(&m->cur, path);
    if (i < 0 || m->files[m->cur.e[i].file].ino != st.st_ino) {
        reconcile(m, d);
        i = ns_find(&m->cur, path);
    }
    return i >= 0 ? m->cur.e[i].file : -1;
}

static void copy_write(struct mop *op, const struct iovec *iov, uint32_t nr)
{
    uint64_t total = 0;
    for (uint32_t i = 0; i < nr; i++) {
        total += iov[i].iov_len;
    }
    op->len = total;
    op->data = malloc(total > 0 ? (size_t)total : 1);
    assert_non_null(op->data);
    uint64_t at = 0;
    for (uint32_t i = 0; i < nr; i++) {
        memcpy(op->data + at, iov[i].iov_base, iov[i].iov_len);
        at += iov[i].iov_len;
    }
}

static bool fd_dsync(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl >= 0 && (fl & O_DSYNC) != 0;
}

/* The observer (wal_test_observe): one SQE about to be submitted, or NULL after the last
 * SQE of a submission. */
static void model_observe(void *arg, const struct io_uring_sqe *sqe)
{
    struct model *m = arg;
    if (sqe == NULL) {
        m->chain_last = -1; /* a link chain ends with its submission */
        return;
    }
    struct mop op;
    memset(&op, 0, sizeof(op));
    op.user_data = sqe->user_data;
    op.opcode = sqe->opcode;
    op.sqe_flags = sqe->flags;
    op.file = -1;
    op.dir = -1;
    op.dop = -1;
    op.dirsync = -1;
    op.prev = m->chain_last;
    op.skip_cqe = (sqe->flags & IOSQE_CQE_SKIP_SUCCESS) != 0;
    if ((sqe->flags & IOSQE_FIXED_FILE) != 0) {
        model_fail("fixed files are not modelled (opcode %u)", sqe->opcode);
    }
    bool is_write = sqe->opcode == IORING_OP_WRITE || sqe->opcode == IORING_OP_WRITE_FIXED ||
                    sqe->opcode == IORING_OP_WRITEV;
    if (is_write && sqe->off == UINT64_MAX) {
        model_fail("a write at the file position (offset -1) is not modelled");
    }
    int dir_unused;
    switch (sqe->opcode) {
    case IORING_OP_WRITE: {
        struct iovec iov = {.iov_base = (void *)(uintptr_t)sqe->addr, .iov_len = sqe->len};
        op.kind = MOP_WRITE;
        op.file = file_of_fd(m, sqe->fd);
        op.off = sqe->off;
        copy_write(&op, &iov, 1);
        op.dsync = (sqe->rw_flags & (RWF_DSYNC | RWF_SYNC)) != 0 || fd_dsync(sqe->fd);
        break;
    }
    case IORING_OP_WRITEV:
        op.kind = MOP_WRITE;
        op.file = file_of_fd(m, sqe->fd);
        op.off = sqe->off;
        copy_write(&op, (const struct iovec *)(uintptr_t)sqe->addr, sqe->len);
        op.dsync = (sqe->rw_flags & (RWF_DSYNC | RWF_SYNC)) != 0 || fd_dsync(sqe->fd);
        break;
    case IORING_OP_FSYNC: {
        struct stat st;
        if (fstat(sqe->fd, &st) != 0) {
            model_fail("fsync of a closed fd %d", sqe->fd);
        }
        if (S_ISDIR(st.st_mode)) {
            char path[MPATH];
            if (fd_path(sqe->fd, path)) {
                model_fail("fsync of a removed directory");
            }
            op.kind = MOP_SYNC_DIR;
            op.dir = dir_track(m, path);
            reconcile(m, op.dir); /* date what was done outside the ring before this sync */
        } else {
            op.kind = MOP_SYNC_FILE;
            op.file = file_of_fd(m, sqe->fd);
            op.off = sqe->off;
            op.len = sqe->len; /* 0: the whole file */
        }
        break;
    }
    case IORING_OP_FALLOCATE:
        op.kind = MOP_FALLOC;
        op.file = file_of_fd(m, sqe->fd);
        op.off = sqe->off;
        op.len = sqe->addr;
        op.mode = sqe->len;
        break;
    case IORING_OP_OPENAT:
        if (sqe->file_index != 0) {
            model_fail("openat into a fixed file slot is not modelled");
        }
        op.kind = MOP_OPEN;
        op.mode = sqe->open_flags;
        at_path(sqe->fd, (const char *)(uintptr_t)sqe->addr, op.path);
        op.file = file_at(m, op.path, &dir_unused);
        op.existed = access(op.path, F_OK) == 0;
        break;
    case IORING_OP_UNLINKAT:
        at_path(sqe->fd, (const char *)(uintptr_t)sqe->addr, op.path);
        if ((sqe->unlink_flags & AT_REMOVEDIR) != 0) {
            op.kind = MOP_IGNORED; /* removing a directory: directories are not modelled */
            break;
        }
        op.kind = MOP_UNLINK;
        op.file = file_at(m, op.path, &dir_unused);
        break;
    case IORING_OP_RENAMEAT:
        if ((sqe->rename_flags & RENAME_EXCHANGE) != 0) {
            model_fail("renameat with RENAME_EXCHANGE is not modelled");
        }
        op.kind = MOP_RENAME;
        at_path(sqe->fd, (const char *)(uintptr_t)sqe->addr, op.path);
        at_path((int)sqe->len, (const char *)(uintptr_t)sqe->addr2, op.path2);
        file_at(m, op.path2, &dir_unused);
        op.file = file_at(m, op.path, &dir_unused);
        break;
    case IORING_OP_NOP:
    case IORING_OP_READ:
    case IORING_OP_READV:
    case IORING_OP_READ_FIXED:
    case IORING_OP_TIMEOUT:
    case IORING_OP_TIMEOUT_REMOVE:
    case IORING_OP_LINK_TIMEOUT:
    case IORING_OP_ASYNC_CANCEL:
    case IORING_OP_POLL_ADD:
    case IORING_OP_POLL_REMOVE:
    case IORING_OP_STATX:
    case IORING_OP_CLOSE:
    case IORING_OP_SYNC_FILE_RANGE: /* starts write-back, makes nothing durable */
        op.kind = MOP_IGNORED;
        break;
    default:
        model_fail("opcode %u is not modelled", sqe->opcode);
    }
    op.obs_seq = ++m->clock;
    struct mop *slot = PUSH(m->ops, m->nops, m->capops);
    *slot = op;
    if (!op.skip_cqe) {
        m->pending++;
    }
    m->chain_last = (sqe->flags & (IOSQE_IO_LINK | IOSQE_IO_HARDLINK)) != 0 ? (int)m->nops - 1 : -1;
}

static bool is_data_op(const struct mop *op)
{
    return op->kind == MOP_WRITE || op->kind == MOP_FALLOC || (op->kind == MOP_OPEN && op->trunc);
}

/* Whether a data op lies in the range a sync covers. */
static bool sync_covers(const struct mop *sync, const struct mop *op)
{
    if (sync->len == 0) {
        return true;
    }
    return op->kind == MOP_WRITE && op->off >= sync->off &&
           op->off + op->len <= sync->off + sync->len;
}

static void sync_file_done(struct model *m, uint32_t s)
{
    const struct mop *sync = &m->ops[s];
    for (uint32_t i = 0; i < s; i++) {
        struct mop *op = &m->ops[i];
        if (is_data_op(op) && op->file == sync->file && op->done && !op->after_crash &&
            op->res >= 0 && op->done_seq < sync->obs_seq && sync_covers(sync, op)) {
            op->durable = true;
        }
    }
    /* Linked before the sync: it ran, and completed, before the sync started. */
    bool soft = true;
    for (int p = sync->prev; p >= 0; p = m->ops[p].prev) {
        struct mop *op = &m->ops[p];
        soft = soft && (op->sqe_flags & IOSQE_IO_HARDLINK) == 0;
        if (!is_data_op(op) || op->file != sync->file || !sync_covers(sync, op)) {
            continue;
        }
        if (op->done) {
            op->durable = op->durable || op->res >= 0;
        } else if (op->skip_cqe && soft) {
            /* A soft link only goes on after success, which skip-success never reports. */
            op->done = true;
            op->res = (int32_t)op->len;
            op->done_seq = ++m->clock;
            op->durable = true;
        } else {
            op->durable_if_ok = true;
        }
    }
}

static void mark_dir_synced(struct model *m, int k, int d)
{
    struct dop *dp = &m->dops[k];
    if (dp->dir == d) {
        dp->synced = true;
    }
    if (dp->dir2 == d) {
        dp->synced2 = true;
    }
}

static void sync_dir_done(struct model *m, uint32_t s)
{
    const struct mop *sync = &m->ops[s];
    for (uint32_t k = 0; k < m->ndops; k++) {
        if (!m->dops[k].after_crash && m->dops[k].seq < sync->obs_seq) {
            mark_dir_synced(m, (int)k, sync->dir);
        }
    }
    for (int p = sync->prev; p >= 0; p = m->ops[p].prev) {
        struct mop *op = &m->ops[p];
        if (op->dop >= 0) {
            mark_dir_synced(m, op->dop, sync->dir);
        } else if (!op->done) {
            op->dirsync = sync->dir;
        }
    }
}

static void name_op_logged(struct model *m, struct mop *op)
{
    if (op->dop >= 0 && op->dirsync >= 0) {
        mark_dir_synced(m, op->dop, op->dirsync);
    }
}

static void open_done(struct model *m, struct mop *op, int fd, bool after_crash)
{
    struct stat st;
    if (fstat(fd, &st) != 0) {
        model_fail("fstat of a new fd %d: %s", fd, strerror(errno));
    }
    char dir[MPATH];
    const char *base;
    split_path(op->path, dir, &base);
    int d = dir_track(m, dir);
    int i = ns_find(&m->cur, op->path);
    if (!op->existed && (op->mode & O_CREAT) != 0 && i < 0) {
        int f = add_file(m, &st, op->path);
        ns_set(&m->cur, op->path, f, d);
        op->dop = log_dop(m, DOP_CREATE, op->path, NULL, f, d, -1, true, after_crash);
        name_op_logged(m, op);
        return;
    }
    int f = i >= 0 && m->files[m->cur.e[i].file].ino == st.st_ino ? m->cur.e[i].file
                                                                  : file_of_fd(m, fd);
    if ((op->mode & O_TRUNC) != 0 && op->existed) {
        op->trunc = true;
        op->file = f;
    }
}

/* A CQE, before the WAL sees it (or instead, after the power loss). */
static void model_cqe(struct model *m, uint64_t user_data, int32_t res, bool after_crash)
{
    uint32_t i = m->first_open;
    while (i < m->nops && (m->ops[i].done || m->ops[i].user_data != user_data)) {
        i++;
    }
    if (i == m->nops) {
        model_fail("a CQE (user_data %#llx, res %d) of no observed SQE: a submission without "
                   "wal_test_before_submit?",
                   (unsigned long long)user_data, res);
    }
    struct mop *op = &m->ops[i];
    op->done = true;
    op->res = res;
    op->done_seq = ++m->clock;
    op->after_crash = after_crash;
    if (!op->skip_cqe) {
        m->pending--;
    }
    while (m->first_open < m->nops && m->ops[m->first_open].done) {
        m->first_open++;
    }
    switch (op->kind) {
    case MOP_WRITE:
    case MOP_FALLOC:
        if (res >= 0 && (op->durable_if_ok || (op->dsync && !after_crash))) {
            op->durable = true;
        }
        break;
    case MOP_OPEN:
        if (res >= 0) {
            open_done(m, op, res, after_crash);
            if (op->trunc && op->durable_if_ok) {
                op->durable = true;
            }
            if (after_crash) {
                close(res); /* the WAL never learns of this fd */
            }
        }
        break;
    case MOP_UNLINK:
        if (res == 0) {
            char dir[MPATH];
            const char *base;
            split_path(op->path, dir, &base);
            int d = dir_track(m, dir);
            int k = ns_find(&m->cur, op->path);
            int f = k >= 0 ? m->cur.e[k].file : op->file;
            if (f < 0) {
                model_fail("unlink of %s, a file the model never knew", op->path);
            }
            ns_del(&m->cur, op->path);
            op->dop = log_dop(m, DOP_UNLINK, op->path, NULL, f, d, -1, true, after_crash);
            name_op_logged(m, op);
        }
        break;
    case MOP_RENAME:
        if (res == 0) {
            char dir[MPATH], dir2[MPATH];
            const char *base;
            split_path(op->path, dir, &base);
            split_path(op->path2, dir2, &base);
            int d = dir_track(m, dir);
            int d2 = dir_track(m, dir2);
            int k = ns_find(&m->cur, op->path);
            int f = k >= 0 ? m->cur.e[k].file : op->file;
            if (f < 0) {
                model_fail("rename of %s, a file the model never knew", op->path);
            }
            ns_del(&m->cur, op->path);
            ns_set(&m->cur, op->path2, f, d2);
            op->dop = log_dop(m, DOP_RENAME, op->path, op->path2, f, d, d2, true, after_crash);
            name_op_logged(m, op);
        }
        break;
    case MOP_SYNC_FILE:
        if (res >= 0 && !after_crash) {
            sync_file_done(m, i);
        }
        break;
    case MOP_SYNC_DIR:
        if (res >= 0 && !after_crash) {
            sync_dir_done(m, i);
        }
        break;
    case MOP_IGNORED:
        break;
    }
}

static void model_begin(struct model *m, const char *dir)
{
    memset(m, 0, sizeof(*m));
    m->chain_last = -1;
    m->live = true;
    dir_track(m, dir);
}

static void model_end(struct model *m)
{
    for (uint32_t i = 0; i < m->nops; i++) {
        free(m->ops[i].data);
    }
    for (uint32_t f = 0; f < m->nfiles; f++) {
        bytes_free(&m->files[f].base);
    }
    free(m->ops);
    free(m->dops);
    free(m->files);
    free(m->dirs);
    free(m->start.e);
    free(m->cur.e);
    memset(m, 0, sizeof(*m));
}

/* ---- the crash -------------------------------------------------------------------------- */

enum crash_style {
    CRASH_REVERT, /* nothing that was not durable reached the disk */
    CRASH_KEEP,   /* everything did */
    CRASH_RANDOM, /* each sector and each name operation decides for itself */
};

static const char *const style_names[] = {"revert", "keep", "random"};

/* 0 keep, 1 revert, 2 garble (only when ways == 3). */
static uint32_t pick(enum crash_style style, struct rr_prng *prng, uint32_t ways)
{
    switch (style) {
    case CRASH_KEEP:
        return 0;
    case CRASH_REVERT:
        return 1;
    case CRASH_RANDOM:
        return (uint32_t)rr_prng_range(prng, 0, ways);
    }
    return 1;
}

/* Bytes an op changed: a write only what its CQE reports (all of it if no CQE came). */
static uint64_t op_bytes(const struct mop *op)
{
    if (!op->done) {
        return op->len;
    }
    return (uint64_t)op->res < op->len ? (uint64_t)op->res : op->len;
}

static void apply_falloc(struct bytes *b, const struct mop *op)
{
    uint64_t end = op->off + op->len;
    uint32_t mode = op->mode;
    bool keep_size = (mode & FALLOC_FL_KEEP_SIZE) != 0;
    if ((mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE)) != 0) {
        uint64_t stop = end < b->len ? end : b->len;
        for (uint64_t k = op->off; k < stop; k++) {
            b->p[k] = 0;
        }
    } else if ((mode & ~(uint32_t)FALLOC_FL_KEEP_SIZE) != 0) {
        model_fail("fallocate mode %#x is not modelled", mode);
    }
    if (!keep_size && end > b->len) {
        bytes_size(b, (size_t)end);
    }
}

static void apply_whole(struct bytes *b, const struct mop *op)
{
    switch (op->kind) {
    case MOP_WRITE:
        bytes_put(b, op->off, op->data, (size_t)op_bytes(op));
        break;
    case MOP_FALLOC:
        apply_falloc(b, op);
        break;
    case MOP_OPEN:
        bytes_size(b, 0);
        break;
    case MOP_IGNORED:
    case MOP_SYNC_FILE:
    case MOP_SYNC_DIR:
    case MOP_UNLINK:
    case MOP_RENAME:
        break;
    }
}

struct tear_stats {
    uint32_t durable, torn, kept, reverted, garbled;
};

/* A data op that was not durable: a write sector by sector, anything else all or nothing. */
static void apply_torn(struct bytes *b,
                       const struct mop *op,
                       enum crash_style style,
                       struct rr_prng *prng,
                       struct tear_stats *ts)
{
    ts->torn++;
    if (op->kind != MOP_WRITE) {
        if (pick(style, prng, 2) == 0) {
            apply_whole(b, op);
        }
        return;
    }
    uint64_t n = op_bytes(op);
    static uint8_t tmp[SECTOR];
    for (uint64_t s = 0; s < n;) {
        uint64_t at = op->off + s;
        uint64_t piece = (at / SECTOR + 1) * SECTOR - at;
        piece = piece < n - s ? piece : n - s;
        uint32_t c = pick(style, prng, 3);
        if (c == 0) {
            bytes_put(b, at, op->data + s, (size_t)piece);
            ts->kept++;
        } else if (c == 2) {
            /* Powersafe overwrite: only the bytes being changed can be garbled. */
            for (uint64_t k = 0; k < piece; k++) {
                uint8_t old = bytes_at(b, at + k);
                tmp[k] = op->data[s + k] != old ? (uint8_t)rr_prng_next(prng) : old;
            }
            bytes_put(b, at, tmp, (size_t)piece);
            ts->garbled++;
        } else {
            ts->reverted++;
        }
        s += piece;
    }
}

static int cmp_op_order(const void *a, const void *b)
{
    const struct mop *x = &M.ops[*(const uint32_t *)a];
    const struct mop *y = &M.ops[*(const uint32_t *)b];
    uint64_t kx = x->done ? x->done_seq : UINT64_MAX;
    uint64_t ky = y->done ? y->done_seq : UINT64_MAX;
    if (kx != ky) {
        return kx < ky ? -1 : 1;
    }
    return x->obs_seq < y->obs_seq ? -1 : x->obs_seq > y->obs_seq;
}

/* Data ops that changed (or may have changed) a file, in completion order. */
static uint32_t *data_order(struct model *m, uint32_t *n)
{
    uint32_t *idx = malloc(((size_t)m->nops + 1) * sizeof(*idx));
    assert_non_null(idx);
    *n = 0;
    for (uint32_t i = 0; i < m->nops; i++) {
        const struct mop *op = &m->ops[i];
        if (is_data_op(op) && op->file >= 0 && (!op->done || op->res >= 0)) {
            idx[(*n)++] = i;
        }
    }
    qsort(idx, *n, sizeof(*idx), cmp_op_order);
    return idx;
}

static bool dop_durable(const struct dop *d)
{
    return d->synced && (d->kind != DOP_RENAME || d->synced2);
}

static const char *short_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s != NULL ? s + 1 : path;
}

/* Rewrites the tracked directories as the power loss leaves them. The ring must be drained
 * (nothing submitted still running) and every fd of the files closed. */
static void model_crash(struct model *m, enum crash_style style, struct rr_prng *prng, bool check)
{
    if (m->pending != 0) {
        model_fail("crash with %u SQEs still running", m->pending);
    }
    m->log_len = 0;
    mlog(m, "crash (%s):", style_names[style]);
    for (uint32_t d = 0; check && d < m->ndirs; d++) {
        reconcile(m, (int)d);
    }
    uint32_t nord = 0;
    uint32_t *ord = data_order(m, &nord);
    struct bytes want = {0}, real = {0};

    /* Replaying every operation must give the files as they are: else an I/O went past the
     * model (a write outside the ring, a submission nobody showed it). */
    for (uint32_t i = 0; check && i < m->cur.n; i++) {
        int f = m->cur.e[i].file;
        bytes_copy(&want, &m->files[f].base);
        for (uint32_t k = 0; k < nord; k++) {
            if (m->ops[ord[k]].file == f) {
                apply_whole(&want, &m->ops[ord[k]]);
            }
        }
        if (!read_whole(m->cur.e[i].path, &real)) {
            model_fail("%s vanished", m->cur.e[i].path);
        }
        size_t at = 0;
        while (at < want.len && at < real.len && want.p[at] == real.p[at]) {
            at++;
        }
        if (at < want.len || at < real.len) {
            model_fail("the model is out of step with %s at offset %zu (model %zu bytes, file "
                       "%zu): an I/O it did not observe?",
                       m->cur.e[i].path, at, want.len, real.len);
        }
    }

    /* Names: durable at the start, then each later operation durable or by chance. */
    struct ns crash = {0};
    ns_copy(&crash, &m->start);
    for (uint32_t k = 0; k < m->ndops; k++) {
        const struct dop *d = &m->dops[k];
        bool durable = dop_durable(d);
        bool apply = durable || pick(style, prng, 2) == 0;
        static const char *const kinds[] = {"create", "unlink", "rename"};
        if (!durable) {
            mlog(m, " %s%s %s%s%s %s;", d->observed ? "" : "unobserved ", kinds[d->kind],
                 short_name(d->path), d->kind == DOP_RENAME ? "->" : "",
                 d->kind == DOP_RENAME ? short_name(d->path2) : "", apply ? "kept" : "undone");
        }
        if (!durable) {
            cover.names_undone += !apply;
            cover.names_kept += apply;
        }
        if (!apply) {
            continue;
        }
        int i = ns_find(&crash, d->path);
        switch (d->kind) {
        case DOP_CREATE:
            ns_set(&crash, d->path, d->file, d->dir);
            break;
        case DOP_UNLINK:
            if (i >= 0 && crash.e[i].file == d->file) {
                ns_del(&crash, d->path);
            }
            break;
        case DOP_RENAME:
            if (i >= 0 && crash.e[i].file == d->file) {
                ns_del(&crash, d->path);
                ns_set(&crash, d->path2, d->file, d->dir2);
            }
            break;
        }
    }

    /* Contents of every file that keeps a name. */
    struct bytes *content = calloc(m->nfiles + 1u, sizeof(*content));
    bool *done = calloc(m->nfiles + 1u, sizeof(*done));
    assert_non_null(content);
    assert_non_null(done);
    for (uint32_t i = 0; i < crash.n; i++) {
        int f = crash.e[i].file;
        if (done[f]) {
            continue;
        }
        done[f] = true;
        bytes_copy(&content[f], &m->files[f].base);
        struct tear_stats ts = {0};
        for (uint32_t k = 0; k < nord; k++) {
            const struct mop *op = &m->ops[ord[k]];
            if (op->file != f) {
                continue;
            }
            if (op->durable) {
                apply_whole(&content[f], op);
                ts.durable++;
            } else {
                apply_torn(&content[f], op, style, prng, &ts);
            }
        }
        cover.torn_writes += ts.torn;
        if (ts.torn > 0) {
            mlog(m, " %s: %u durable, %u not (sectors kept %u, reverted %u, garbled %u);",
                 short_name(m->files[f].name), ts.durable, ts.torn, ts.kept, ts.reverted,
                 ts.garbled);
        }
    }

    /* The directories as the power loss leaves them. */
    for (uint32_t d = 0; d < m->ndirs; d++) {
        uint32_t n = 0;
        struct listing *l = list_dir(m->dirs[d].path, &n);
        for (uint32_t k = 0; k < n; k++) {
            char path[MPATH];
            join_path(path, m->dirs[d].path, l[k].name);
            if (ns_find(&crash, path) < 0) {
                assert_int_equal(unlink(path), 0);
            }
        }
        free(l);
    }
    for (uint32_t i = 0; i < crash.n; i++) {
        const struct bytes *c = &content[crash.e[i].file];
        bool same = read_whole(crash.e[i].path, &real) && real.len == c->len &&
                    (c->len == 0 || memcmp(real.p, c->p, c->len) == 0);
        if (!same) {
            write_whole(crash.e[i].path, c);
        }
    }
    for (uint32_t f = 0; f < m->nfiles; f++) {
        bytes_free(&content[f]);
    }
    free(content);
    free(done);
    free(crash.e);
    free(ord);
    bytes_free(&want);
    bytes_free(&real);
}

/* ---- the model on a hand-built ring ---------------------------------------------------- */

static struct io_uring mt_ring;
static bool mt_ring_up;
static char mt_dir[64];

static void mt_fill_file(const char *name, uint8_t byte, size_t len)
{
    char path[MPATH];
    join_path(path, mt_dir, name);
    struct bytes b = {0};
    bytes_size(&b, len);
    memset(b.p, byte, len);
    write_whole(path, &b);
    bytes_free(&b);
}

static void mt_begin(void)
{
    assert_int_equal(io_uring_queue_init(16, &mt_ring, 0), 0);
    mt_ring_up = true;
    model_begin(&M, mt_dir);
    wal_test_observe(model_observe, &M);
}

static void mt_end(enum crash_style style, uint64_t seed)
{
    wal_test_observe(NULL, NULL);
    io_uring_queue_exit(&mt_ring);
    mt_ring_up = false;
    struct rr_prng prng;
    rr_prng_seed(&prng, seed);
    model_crash(&M, style, &prng, true);
    model_end(&M);
}

static struct io_uring_sqe *mt_sqe(uint64_t user_data)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&mt_ring);
    if (sqe == NULL) {
        fail_msg("the test ring is full");
        abort();
    }
    io_uring_sqe_set_data64(sqe, user_data);
    return sqe;
}

static void mt_submit(void)
{
    wal_test_before_submit(&mt_ring);
    assert_true(io_uring_submit(&mt_ring) >= 0);
}

static int32_t mt_res[64];

/* Reaps n CQEs through the model (as completed after the power loss if after_crash). */
static void mt_reap(unsigned n, bool after_crash)
{
    for (unsigned i = 0; i < n; i++) {
        struct io_uring_cqe *cqe;
        assert_int_equal(io_uring_wait_cqe(&mt_ring, &cqe), 0);
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        int32_t res = cqe->res;
        io_uring_cqe_seen(&mt_ring, cqe);
        model_cqe(&M, ud, res, after_crash);
        mt_res[ud % 64] = res;
    }
}

/* An SQE the model observes but the kernel never gets: the test does its effect by hand
 * and makes up the CQE (a short write, a cancelled sync). */
static void mt_fake(struct io_uring_sqe *sqe, uint64_t user_data, uint8_t flags)
{
    sqe->user_data = user_data;
    sqe->flags = flags;
    model_observe(&M, sqe);
}

struct span {
    size_t off, len;
    uint8_t byte;
};

static void mt_expect(const char *name, size_t size, const struct span *sp, uint32_t n)
{
    char path[MPATH];
    join_path(path, mt_dir, name);
    struct bytes b = {0};
    if (!read_whole(path, &b)) {
        fail_msg("%s is missing", name);
    }
    if (b.len != size) {
        fail_msg("%s holds %zu bytes, expected %zu", name, b.len, size);
    }
    for (uint32_t i = 0; i < n; i++) {
        for (size_t k = sp[i].off; k < sp[i].off + sp[i].len; k++) {
            if (b.p[k] != sp[i].byte) {
                fail_msg("%s offset %zu: %#x, expected %#x", name, k, b.p[k], sp[i].byte);
            }
        }
    }
    bytes_free(&b);
}

static void mt_expect_missing(const char *name)
{
    char path[MPATH];
    join_path(path, mt_dir, name);
    if (access(path, F_OK) == 0) {
        fail_msg("%s exists, expected gone", name);
    }
}

static uint8_t mt_buf[10][1024];

/* Data durability: what a sync covers, a dsync write, a short write, a cancelled link, a
 * fallocate, a sync completing after the power loss. */
static void data_scenario(enum crash_style style)
{
    th_mkdtemp(mt_dir);
    mt_fill_file("f", 'A', 8192);
    for (int i = 0; i < 10; i++) {
        memset(mt_buf[i], 'B' + i, sizeof(mt_buf[i]));
    }
    mt_begin();
    char path[MPATH];
    join_path(path, mt_dir, "f");
    int fd = open(path, O_RDWR | O_CLOEXEC);
    assert_true(fd >= 0);
    /* B: a write linked to a data sync. */
    struct io_uring_sqe *sqe = mt_sqe(1);
    io_uring_prep_write(sqe, fd, mt_buf[0], 1024, 0);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_prep_fsync(mt_sqe(2), fd, IORING_FSYNC_DATASYNC);
    mt_submit();
    mt_reap(2, false);
    /* D: a write seen complete, then a sync. */
    io_uring_prep_write(mt_sqe(4), fd, mt_buf[2], 1024, 2048);
    mt_submit();
    mt_reap(1, false);
    io_uring_prep_fsync(mt_sqe(5), fd, 0);
    mt_submit();
    mt_reap(1, false);
    /* F: a writev with RWF_DSYNC. */
    struct iovec iov = {.iov_base = mt_buf[4], .iov_len = 1024};
    io_uring_prep_writev2(mt_sqe(8), fd, &iov, 1, 4096, RWF_DSYNC);
    mt_submit();
    mt_reap(1, false);
    /* G: a short write (100 of 1024 bytes), then a sync: 100 bytes durable. */
    struct io_uring_sqe fake;
    memset(&fake, 0, sizeof(fake));
    io_uring_prep_write(&fake, fd, mt_buf[5], 1024, 5120);
    mt_fake(&fake, 9, 0);
    model_observe(&M, NULL);
    assert_int_equal(pwrite(fd, mt_buf[5], 100, 5120), 100);
    model_cqe(&M, 9, 100, false);
    io_uring_prep_fsync(mt_sqe(10), fd, IORING_FSYNC_DATASYNC);
    mt_submit();
    mt_reap(1, false);
    /* fallocate to 16 KiB, synced. */
    io_uring_prep_fallocate(mt_sqe(13), fd, 0, 0, 16384);
    mt_submit();
    mt_reap(1, false);
    io_uring_prep_fsync(mt_sqe(14), fd, 0);
    mt_submit();
    mt_reap(1, false);
    /* Nothing from here on is durable (no later sync succeeds before the power loss). E: a
     * write and a sync in one submission, not linked: the sync may run first. */
    io_uring_prep_write(mt_sqe(6), fd, mt_buf[3], 1024, 3072);
    io_uring_prep_fsync(mt_sqe(7), fd, IORING_FSYNC_DATASYNC);
    mt_submit();
    mt_reap(2, false);
    /* H: a short write (10 bytes) linked to a sync, which the short write cancels. */
    memset(&fake, 0, sizeof(fake));
    io_uring_prep_write(&fake, fd, mt_buf[6], 1024, 6144);
    mt_fake(&fake, 11, IOSQE_IO_LINK);
    memset(&fake, 0, sizeof(fake));
    io_uring_prep_fsync(&fake, fd, IORING_FSYNC_DATASYNC);
    mt_fake(&fake, 12, 0);
    model_observe(&M, NULL);
    assert_int_equal(pwrite(fd, mt_buf[6], 10, 6144), 10);
    model_cqe(&M, 11, 10, false);
    model_cqe(&M, 12, -ECANCELED, false);
    /* fallocate to 32 KiB; C: a write; neither synced. */
    io_uring_prep_fallocate(mt_sqe(15), fd, 0, 0, 32768);
    mt_submit();
    mt_reap(1, false);
    io_uring_prep_write(mt_sqe(3), fd, mt_buf[1], 1024, 1024);
    mt_submit();
    mt_reap(1, false);
    /* I: a write whose sync completes after the power loss. */
    io_uring_prep_write(mt_sqe(16), fd, mt_buf[7], 1024, 7168);
    mt_submit();
    mt_reap(1, false);
    io_uring_prep_fsync(mt_sqe(17), fd, 0);
    mt_submit();
    mt_reap(1, true);
    close(fd);
    mt_end(style, 1);
}

static void test_model_data_revert(void **state)
{
    (void)state;
    data_scenario(CRASH_REVERT);
    const struct span want[] = {
        {0, 1024, 'B'},    {1024, 1024, 'A'}, {2048, 1024, 'D'}, {3072, 1024, 'A'},
        {4096, 1024, 'F'}, {5120, 100, 'G'},  {5220, 2972, 'A'}, {8192, 8192, 0},
    };
    mt_expect("f", 16384, want, sizeof(want) / sizeof(want[0]));
}

static void test_model_data_keep(void **state)
{
    (void)state;
    data_scenario(CRASH_KEEP);
    const struct span want[] = {
        {0, 1024, 'B'},    {1024, 1024, 'C'}, {2048, 1024, 'D'}, {3072, 1024, 'E'},
        {4096, 1024, 'F'}, {5120, 100, 'G'},  {5220, 924, 'A'},  {6144, 10, 'H'},
        {6154, 1014, 'A'}, {7168, 1024, 'I'}, {8192, 24576, 0},
    };
    mt_expect("f", 32768, want, sizeof(want) / sizeof(want[0]));
}

static int mt_open_dir(void)
{
    int dfd = open(mt_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    assert_true(dfd >= 0);
    return dfd;
}

/* Name operations through the ring: creations, an unlink, renames (one over an existing
 * file), with and without a directory sync after them. */
static void names_scenario(enum crash_style style)
{
    th_mkdtemp(mt_dir);
    mt_fill_file("old", 'O', 4096);
    mt_fill_file("keep", 'K', 4096);
    mt_fill_file("src", 'S', 4096);
    mt_fill_file("target", 'T', 4096);
    memset(mt_buf[0], 'M', sizeof(mt_buf[0]));
    memset(mt_buf[1], 'N', sizeof(mt_buf[1]));
    mt_begin();
    int dfd = mt_open_dir();
    /* c2: created, written and synced, then the directory synced: all durable. */
    io_uring_prep_openat(mt_sqe(1), dfd, "c2", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    mt_submit();
    mt_reap(1, false);
    int fd2 = mt_res[1];
    assert_true(fd2 >= 0);
    struct io_uring_sqe *sqe = mt_sqe(2);
    io_uring_prep_write(sqe, fd2, mt_buf[0], 1024, 0);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_prep_fsync(mt_sqe(3), fd2, 0);
    mt_submit();
    mt_reap(2, false);
    io_uring_prep_fsync(mt_sqe(4), dfd, 0);
    mt_submit();
    mt_reap(1, false);
    /* c1: created, data synced, its name never. */
    io_uring_prep_openat(mt_sqe(5), dfd, "c1", O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    mt_submit();
    mt_reap(1, false);
    int fd1 = mt_res[5];
    assert_true(fd1 >= 0);
    sqe = mt_sqe(6);
    io_uring_prep_write(sqe, fd1, mt_buf[1], 1024, 0);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_prep_fsync(mt_sqe(7), fd1, IORING_FSYNC_DATASYNC);
    mt_submit();
    mt_reap(2, false);
    /* An unlink, a rename, a rename over an existing file: no directory sync follows. */
    io_uring_prep_unlinkat(mt_sqe(8), dfd, "old", 0);
    mt_submit();
    mt_reap(1, false);
    io_uring_prep_renameat(mt_sqe(9), dfd, "keep", dfd, "moved", 0);
    mt_submit();
    mt_reap(1, false);
    io_uring_prep_renameat(mt_sqe(10), dfd, "src", dfd, "target", 0);
    mt_submit();
    mt_reap(1, false);
    io_uring_prep_close(mt_sqe(11), fd1);
    io_uring_prep_close(mt_sqe(12), fd2);
    mt_submit();
    mt_reap(2, false);
    close(dfd);
    mt_end(style, 2);
}

static void test_model_names_revert(void **state)
{
    (void)state;
    names_scenario(CRASH_REVERT);
    const struct span m[] = {{0, 1024, 'M'}};
    mt_expect("c2", 1024, m, 1);
    mt_expect_missing("c1");
    const struct span o[] = {{0, 4096, 'O'}}, k[] = {{0, 4096, 'K'}}, sp[] = {{0, 4096, 'S'}},
                      t[] = {{0, 4096, 'T'}};
    mt_expect("old", 4096, o, 1);
    mt_expect("keep", 4096, k, 1);
    mt_expect_missing("moved");
    mt_expect("src", 4096, sp, 1);
    mt_expect("target", 4096, t, 1);
}

static void test_model_names_keep(void **state)
{
    (void)state;
    names_scenario(CRASH_KEEP);
    const struct span m[] = {{0, 1024, 'M'}}, n[] = {{0, 1024, 'N'}};
    mt_expect("c2", 1024, m, 1);
    mt_expect("c1", 1024, n, 1);
    const struct span k[] = {{0, 4096, 'K'}}, sp[] = {{0, 4096, 'S'}};
    mt_expect_missing("old");
    mt_expect_missing("keep");
    mt_expect("moved", 4096, k, 1);
    mt_expect_missing("src");
    mt_expect("target", 4096, sp, 1);
}

/* Which directory sync covers which name operation, and name operations done outside the
 * ring (found by listing the directory). */
static void dirsync_scenario(enum crash_style style)
{
    th_mkdtemp(mt_dir);
    mt_fill_file("u1", '1', 512);
    mt_fill_file("u2", '2', 512);
    mt_fill_file("r1", 'R', 512);
    memset(mt_buf[0], 'X', sizeof(mt_buf[0]));
    mt_begin();
    int dfd = mt_open_dir();
    /* u1 unlinked outside the ring, then a directory sync: durable. */
    assert_int_equal(unlinkat(dfd, "u1", 0), 0);
    io_uring_prep_fsync(mt_sqe(1), dfd, 0);
    mt_submit();
    mt_reap(1, false);
    /* c4: an openat linked to a directory sync: durable. */
    struct io_uring_sqe *sqe = mt_sqe(2);
    io_uring_prep_openat(sqe, dfd, "c4", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_prep_fsync(mt_sqe(3), dfd, 0);
    mt_submit();
    mt_reap(2, false);
    close(mt_res[2]);
    /* c3: an openat and a directory sync in one submission, not linked: not covered. */
    io_uring_prep_openat(mt_sqe(4), dfd, "c3", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    io_uring_prep_fsync(mt_sqe(5), dfd, 0);
    mt_submit();
    mt_reap(2, false);
    close(mt_res[4]);
    /* x1: created outside the ring, first seen by a ring write, its data synced, its name
     * never. */
    int fx = openat(dfd, "x1", O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    assert_true(fx >= 0);
    sqe = mt_sqe(6);
    io_uring_prep_write(sqe, fx, mt_buf[0], 1024, 0);
    sqe->flags |= IOSQE_IO_LINK;
    io_uring_prep_fsync(mt_sqe(7), fx, 0);
    mt_submit();
    mt_reap(2, false);
    close(fx);
    /* u2 unlinked outside the ring after the last directory sync. */
    assert_int_equal(unlinkat(dfd, "u2", 0), 0);
    /* r1 -> r2 through the ring; the directory sync completes after the power loss. */
    io_uring_prep_renameat(mt_sqe(8), dfd, "r1", dfd, "r2", 0);
    mt_submit();
    mt_reap(1, false);
    io_uring_prep_fsync(mt_sqe(9), dfd, 0);
    mt_submit();
    mt_reap(1, true);
    close(dfd);
    mt_end(style, 3);
}

static void test_model_dirsync_revert(void **state)
{
    (void)state;
    dirsync_scenario(CRASH_REVERT);
    mt_expect_missing("u1");
    mt_expect("c4", 0, NULL, 0);
    mt_expect_missing("c3");
    mt_expect_missing("x1");
    const struct span u2[] = {{0, 512, '2'}}, r[] = {{0, 512, 'R'}};
    mt_expect("u2", 512, u2, 1);
    mt_expect("r1", 512, r, 1);
    mt_expect_missing("r2");
}

static void test_model_dirsync_keep(void **state)
{
    (void)state;
    dirsync_scenario(CRASH_KEEP);
    mt_expect_missing("u1");
    mt_expect("c4", 0, NULL, 0);
    mt_expect("c3", 0, NULL, 0);
    const struct span x[] = {{0, 1024, 'X'}}, r[] = {{0, 512, 'R'}};
    mt_expect("x1", 1024, x, 1);
    mt_expect_missing("u2");
    mt_expect_missing("r1");
    mt_expect("r2", 512, r, 1);
}

/* Random tearing: each sector of a write that was not durable is the old bytes, the new
 * bytes, or the old bytes with only the changed ones garbled (powersafe overwrite); nothing
 * outside the write changes. */
static void test_model_torn_sectors(void **state)
{
    (void)state;
    uint32_t seen[3] = {0, 0, 0};
    for (uint64_t seed = 1; seed <= 20; seed++) {
        th_mkdtemp(mt_dir);
        mt_fill_file("f", 'A', 4096);
        static uint8_t data[2000];
        for (size_t k = 0; k < sizeof(data); k++) {
            data[k] = k % 2 == 0 ? 'A' : 'B';
        }
        mt_begin();
        char path[MPATH];
        join_path(path, mt_dir, "f");
        int fd = open(path, O_RDWR | O_CLOEXEC);
        assert_true(fd >= 0);
        io_uring_prep_write(mt_sqe(1), fd, data, sizeof(data), 100);
        mt_submit();
        mt_reap(1, false);
        close(fd);
        mt_end(CRASH_RANDOM, seed);
        struct bytes b = {0};
        assert_true(read_whole(path, &b));
        assert_int_equal(b.len, 4096);
        for (size_t k = 0; k < 4096; k++) {
            if (k < 100 || k >= 2100 || data[k - 100] == 'A') {
                assert_int_equal(b.p[k], 'A');
            }
        }
        for (size_t s = 0; s < 4096; s += SECTOR) {
            size_t lo = s < 100 ? 100 : s, hi = s + SECTOR > 2100 ? 2100 : s + SECTOR;
            if (lo >= hi) {
                continue;
            }
            bool kept = true, reverted = true;
            for (size_t k = lo; k < hi; k++) {
                kept = kept && b.p[k] == data[k - 100];
                reverted = reverted && b.p[k] == 'A';
            }
            seen[kept ? 0 : reverted ? 1 : 2]++;
        }
        bytes_free(&b);
        th_rmrf(mt_dir);
        mt_dir[0] = '\0';
    }
    assert_true(seen[0] > 0 && seen[1] > 0 && seen[2] > 0);
}

/* ---- what each group must hold ---------------------------------------------------------- */

#define GROUPS        12
#define SEGMENT_BYTES (128u << 10)
#define INFLIGHT_MAX  512

struct mentry {
    raft_term term;
    uint32_t gen;
    uint8_t type;
};

/* A group's log as the replay rule builds it (wal.c's format comment). */
struct gstate {
    raft_index first; /* first retained index; snap + 1 when empty */
    raft_index snap;
    raft_term snap_term;
    struct wal_hard_state hs;
    struct mentry *e; /* entries first .. first + n - 1 */
    uint32_t n, cap;
};

enum rec_kind { REC_ENTRY, REC_HS, REC_TRUNC, REC_COMPACT };

/* One record the WAL writes for a unit. */
struct rec {
    uint8_t kind;
    uint8_t type;
    raft_index index; /* entry, truncation point, compaction point */
    raft_term term;   /* entry term, hard-state term, snapshot term */
    raft_node vote;
    raft_index commit;
    uint32_t gen;
};

struct glog {
    struct gstate base;   /* what recovery left at the start of the life */
    struct gstate queued; /* base with every record of the life applied */
    struct rec *r;        /* records of the life, in log order */
    uint32_t n, cap;
    uint32_t acked; /* records covered by acknowledged units */
};

struct unit {
    raft_group g;
    uint32_t rec_end; /* the group's record count once this unit is applied */
};

static struct glog glogs[GROUPS];
static struct unit *units;
static uint32_t units_cap;
static uint32_t n_units, n_acked;
static int unit_failed;
static uint32_t gen_next = 1;

static raft_index gs_last(const struct gstate *s)
{
    return s->first + s->n - 1;
}

static void gs_init(struct gstate *s)
{
    free(s->e);
    memset(s, 0, sizeof(*s));
    s->first = 1;
}

static void gs_copy(struct gstate *dst, const struct gstate *src)
{
    struct mentry *e = dst->e;
    uint32_t cap = dst->cap;
    *dst = *src;
    dst->e = e;
    dst->cap = cap;
    grow((void **)&dst->e, &dst->cap, src->n + 1u, sizeof(*dst->e));
    if (src->n > 0) {
        memcpy(dst->e, src->e, (size_t)src->n * sizeof(*src->e));
    }
}

static void gs_apply(struct gstate *s, const struct rec *r)
{
    switch ((enum rec_kind)r->kind) {
    case REC_HS:
        s->hs = (struct wal_hard_state){.term = r->term, .vote = r->vote, .commit = r->commit};
        break;
    case REC_ENTRY:
        if (s->n == 0) {
            s->first = r->index;
        } else if (r->index <= gs_last(s)) {
            s->n = r->index > s->first ? (uint32_t)(r->index - s->first) : 0;
        }
        *PUSH(s->e, s->n, s->cap) =
            (struct mentry){.term = r->term, .gen = r->gen, .type = r->type};
        break;
    case REC_TRUNC:
        if (s->n > 0 && r->index <= gs_last(s)) {
            s->n = r->index > s->first ? (uint32_t)(r->index - s->first) : 0;
        }
        break;
    case REC_COMPACT: {
        uint32_t drop = 0;
        while (drop < s->n && s->first <= r->index) {
            drop++;
            s->first++;
        }
        memmove(s->e, s->e + drop, (size_t)(s->n - drop) * sizeof(*s->e));
        s->n -= drop;
        if (s->n == 0) {
            s->first = r->index + 1;
        }
        s->snap = r->index;
        s->snap_term = r->term;
        break;
    }
    }
}

static void on_persist(void *arg, int status)
{
    uint32_t u = (uint32_t)(uintptr_t)arg;
    if (status != 0 || u != n_acked) {
        unit_failed = status != 0 ? status : -1; /* units complete in submission order */
        return;
    }
    glogs[units[u].g].acked = units[u].rec_end;
    n_acked++;
}

static void add_rec(raft_group g, const struct rec *r)
{
    struct glog *l = &glogs[g];
    *PUSH(l->r, l->n, l->cap) = *r;
    gs_apply(&l->queued, r);
}

static uint8_t payload_buf[4][TH_PAYLOAD_MAX];

/* Queues one unit for a random group: an append (at the end, or over a suffix not yet
 * committed, sometimes with a hard state), a hard state alone (new term and vote, or a
 * commit), a truncation, or a compaction. Returns the WAL's answer. */
static int work_unit(struct wal *wal, struct rr_prng *prng)
{
    if (n_units - n_acked >= INFLIGHT_MAX) {
        return RR_EBUSY;
    }
    raft_group g = (raft_group)rr_prng_range(prng, 0, GROUPS);
    struct glog *l = &glogs[g];
    const struct gstate *q = &l->queued;
    raft_index last = gs_last(q);
    raft_index commit = q->hs.commit;
    raft_index floor = commit > q->snap ? commit : q->snap; /* entries above may change */
    /* Compaction stays at or below both the commit and the last entry (a crash may keep a
     * unit's hard state and lose its entries, leaving commit past the last index). */
    raft_index top = commit < last ? commit : last;
    void *arg = (void *)(uintptr_t)n_units;
    struct rec recs[6];
    uint32_t nr = 0;
    int rc;
    uint32_t roll = (uint32_t)rr_prng_range(prng, 0, 100);
    if (q->n > 48 && top > q->snap && roll < 30) {
        roll = 12; /* a long log: compact */
    }
    if (roll < 5) {
        struct wal_hard_state hs = q->hs;
        uint32_t what = (uint32_t)rr_prng_range(prng, 0, 3);
        if (what == 0 || (what == 2 && last <= commit)) {
            hs.term++;
            hs.vote = (raft_node)rr_prng_range(prng, 0, 4);
        } else if (what == 1) {
            hs.vote = (raft_node)rr_prng_range(prng, 1, 4);
        } else {
            hs.commit = rr_prng_range(prng, commit + 1, last + 1);
        }
        recs[nr++] =
            (struct rec){.kind = REC_HS, .term = hs.term, .vote = hs.vote, .commit = hs.commit};
        rc = wal_append(wal, g, &hs, NULL, 0, on_persist, arg);
    } else if (roll < 9 && last > floor) {
        raft_index t = rr_prng_range(prng, floor + 1, last + 2);
        recs[nr++] = (struct rec){.kind = REC_TRUNC, .index = t};
        rc = wal_truncate(wal, g, t, on_persist, arg);
    } else if (roll >= 10 && roll < 14 && top > q->snap) {
        raft_index lo = top > q->snap + 10 ? top - 10 : q->snap + 1;
        raft_index c = rr_prng_range(prng, lo, top + 1);
        raft_term t = q->e[c - q->first].term;
        recs[nr++] = (struct rec){.kind = REC_COMPACT, .index = c, .term = t};
        rc = wal_compact(wal, g, c, t, on_persist, arg);
    } else if (roll == 14 && q->snap > 0) {
        /* Already compacted that far: no record, the unit still completes in order. */
        rc = wal_compact(wal, g, rr_prng_range(prng, 1, q->snap + 1), 1, on_persist, arg);
    } else {
        raft_index start = last + 1;
        if (last > floor && rr_prng_chance(prng, 200000)) {
            start = rr_prng_range(prng, floor + 1, last + 1); /* overwrite a suffix */
        }
        uint32_t n = (uint32_t)rr_prng_range(prng, 1, 5);
        struct wal_hard_state hs = q->hs;
        bool with_hs = rr_prng_chance(prng, 400000);
        if (with_hs) {
            if (rr_prng_chance(prng, 100000)) {
                hs.term++;
                hs.vote = 1;
            }
            raft_index new_last = start + n - 1;
            raft_index c = new_last > 2 ? new_last - rr_prng_range(prng, 0, 3) : new_last;
            hs.commit = c > commit ? c : commit;
            recs[nr++] =
                (struct rec){.kind = REC_HS, .term = hs.term, .vote = hs.vote, .commit = hs.commit};
        }
        raft_term term = hs.term > 0 ? hs.term : 1;
        uint32_t gen = gen_next++;
        struct wal_entry e[4];
        for (uint32_t k = 0; k < n; k++) {
            raft_index i = start + k;
            uint8_t type = (uint8_t)(gen % 7u);
            e[k] = (struct wal_entry){.term = term, .index = i, .type = type};
            e[k].len = th_payload(g, i, gen, payload_buf[k], TH_PAYLOAD_MAX);
            e[k].data = payload_buf[k];
            recs[nr++] =
                (struct rec){.kind = REC_ENTRY, .index = i, .term = term, .gen = gen, .type = type};
        }
        rc = wal_append(wal, g, with_hs ? &hs : NULL, e, n, on_persist, arg);
    }
    if (rc == 0) {
        for (uint32_t k = 0; k < nr; k++) {
            add_rec(g, &recs[k]);
            cover.entries += recs[k].kind == REC_ENTRY;
            cover.overwrites += recs[k].kind == REC_ENTRY && recs[k].index <= last;
            cover.hard_states += recs[k].kind == REC_HS;
            cover.truncations += recs[k].kind == REC_TRUNC;
            cover.compactions += recs[k].kind == REC_COMPACT;
        }
        cover.units++;
        *PUSH(units, n_units, units_cap) = (struct unit){.g = g, .rec_end = l->n};
    }
    return rc;
}

/* ---- the check after recovery ----------------------------------------------------------- */

struct rentry {
    raft_term term;
    uint8_t type;
    uint32_t len;
    uint8_t data[TH_PAYLOAD_MAX];
};

static struct rentry *rents;
static uint32_t rents_cap;

/* Reads every retained entry of group g; NULL, or a message on a read error. */
static const char *read_group(struct wal *wal, raft_group g, const struct wal_group_info *gi)
{
    static uint8_t rbuf[1u << 20];
    static char msg[256];
    uint32_t count = (uint32_t)(gi->last_index + 1 - gi->first_index);
    grow((void **)&rents, &rents_cap, count + 1u, sizeof(*rents));
    raft_index i = gi->first_index;
    while (i <= gi->last_index) {
        struct wal_read rd = {
            .group = g, .lo = i, .hi = gi->last_index, .buf = rbuf, .buf_len = sizeof(rbuf)};
        int rc = wal_read_blocking(wal, &rd);
        if (rc != 0) {
            snprintf(msg, sizeof(msg), "reading index %llu failed (%d)", (unsigned long long)i, rc);
            return msg;
        }
        for (uint32_t k = 0; k < rd.count; k++, i++) {
            struct rentry *r = &rents[i - gi->first_index];
            if (rd.entries[k].len > TH_PAYLOAD_MAX) {
                snprintf(msg, sizeof(msg), "index %llu holds %u bytes", (unsigned long long)i,
                         rd.entries[k].len);
                return msg;
            }
            r->term = rd.entries[k].term;
            r->type = rd.entries[k].type;
            r->len = rd.entries[k].len;
            memcpy(r->data, rd.entries[k].data, r->len);
        }
    }
    return NULL;
}

static bool hs_equal(const struct wal_hard_state *a, const struct wal_hard_state *b)
{
    return a->term == b->term && a->vote == b->vote && a->commit == b->commit;
}

/* Where the recovered group differs from state s: NULL if nowhere. */
static const char *state_diff(
    raft_group g, const struct gstate *s, const struct wal_group_info *gi, char *msg, size_t len)
{
    if (gi->first_index != s->first || gi->last_index != gs_last(s) || gi->snap_index != s->snap ||
        gi->snap_term != s->snap_term || !hs_equal(&gi->hs, &s->hs)) {
        snprintf(msg, len,
                 "recovered first %llu last %llu snapshot %llu/%llu hard state %llu/%u/%llu, "
                 "expected first %llu last %llu snapshot %llu/%llu hard state %llu/%u/%llu "
                 "(term/vote/commit)",
                 (unsigned long long)gi->first_index, (unsigned long long)gi->last_index,
                 (unsigned long long)gi->snap_index, (unsigned long long)gi->snap_term,
                 (unsigned long long)gi->hs.term, gi->hs.vote, (unsigned long long)gi->hs.commit,
                 (unsigned long long)s->first, (unsigned long long)gs_last(s),
                 (unsigned long long)s->snap, (unsigned long long)s->snap_term,
                 (unsigned long long)s->hs.term, s->hs.vote, (unsigned long long)s->hs.commit);
        return msg;
    }
    static uint8_t want[TH_PAYLOAD_MAX];
    for (uint32_t k = 0; k < s->n; k++) {
        const struct mentry *e = &s->e[k];
        const struct rentry *r = &rents[k];
        uint32_t n = th_payload(g, s->first + k, e->gen, want, TH_PAYLOAD_MAX);
        if (r->term != e->term || r->type != e->type || r->len != n ||
            memcmp(r->data, want, n) != 0) {
            snprintf(msg, len,
                     "index %llu: recovered term %llu type %u, %u bytes; expected term %llu type "
                     "%u, %u bytes of generation %u%s",
                     (unsigned long long)(s->first + k), (unsigned long long)r->term, r->type,
                     r->len, (unsigned long long)e->term, e->type, n, e->gen,
                     r->len == n ? " (bytes differ)" : "");
            return msg;
        }
    }
    (void)g;
    return NULL;
}

static char crash_log[8192];

/* Each group's recovered state must be the state after some prefix of the life's records
 * that includes every acknowledged one; that state is the next life's base. */
static void verify_groups(struct wal *wal, uint64_t seed, uint32_t life, const char *context)
{
    static struct gstate s;
    static char msg[768];
    for (raft_group g = 0; g < GROUPS; g++) {
        struct glog *l = &glogs[g];
        struct wal_group_info gi;
        assert_int_equal(wal_group_info(wal, g, &gi), 0);
        const char *bad = read_group(wal, g, &gi);
        if (bad != NULL) {
            fprintf(stderr, "%s\n", crash_log);
            fail_msg("seed %llu life %u: group %u after power loss: %s%s", (unsigned long long)seed,
                     life, g, bad, context);
        }
        gs_copy(&s, &l->base);
        int64_t match = -1;
        int64_t lost = -1;
        for (uint32_t k = 0; k <= l->n; k++) {
            if (state_diff(g, &s, &gi, msg, sizeof(msg)) == NULL) {
                if (k >= l->acked) {
                    match = k;
                    break;
                }
                lost = lost < 0 ? k : lost;
            }
            if (k < l->n) {
                gs_apply(&s, &l->r[k]);
            }
        }
        if (match < 0) {
            gs_copy(&s, &l->base);
            for (uint32_t k = 0; k < l->acked; k++) {
                gs_apply(&s, &l->r[k]);
            }
            state_diff(g, &s, &gi, msg, sizeof(msg));
            fprintf(stderr, "%s\n", crash_log);
            if (lost >= 0) {
                fail_msg("seed %llu life %u: acknowledged data lost after power loss: group %u is "
                         "as after %lld of the life's %u records, %u were acknowledged: %s%s",
                         (unsigned long long)seed, life, g, (long long)lost, l->n, l->acked, msg,
                         context);
            }
            fail_msg("seed %llu life %u: acknowledged data lost after power loss: group %u is in "
                     "a state no prefix of its %u records holding the %u acknowledged ones "
                     "gives: %s%s",
                     (unsigned long long)seed, life, g, l->n, l->acked, msg, context);
        }
        cover.beyond_ack += match > l->acked;
        gs_copy(&l->base, &s);
        gs_copy(&l->queued, &s);
        l->n = 0;
        l->acked = 0;
    }
    cover.acked += n_acked;
    n_units = 0;
    n_acked = 0;
}

/* ---- the harness ------------------------------------------------------------------------ */

static struct wal_config life_config(const char *dir, uint32_t life, struct rr_prng *prng)
{
    struct wal_config cfg = th_config(dir, GROUPS);
    cfg.segment_bytes = SEGMENT_BYTES;
    const char *strategies[] = {"adaptive", "none", "fixed:4", "linger:100"};
    assert_int_equal(wal_strategy_parse(strategies[life % 4], &cfg.strategy), 0);
    cfg.sync_method =
        rr_prng_range(prng, 0, 4) == 0 ? WAL_SYNC_RWF_DSYNC : WAL_SYNC_LINKED_FDATASYNC;
    cfg.prep_method = rr_prng_range(prng, 0, 4) == 0 ? WAL_PREP_FALLOCATE : WAL_PREP_ZERO;
    cfg.direct_io = cfg.direct_io || rr_prng_range(prng, 0, 2) == 0;
    return cfg;
}

/* RR_POWERLOSS_SAVE=DIR: before each recovery, the data directory's files are copied to DIR
 * (its files replaced), so that the state a failing recovery started from can be inspected
 * (ringraft-wal dump DIR). */
static void save_dir(const char *dir)
{
    const char *to = getenv("RR_POWERLOSS_SAVE");
    if (to == NULL) {
        return;
    }
    if (mkdir(to, 0755) != 0 && errno != EEXIST) {
        fail_msg("RR_POWERLOSS_SAVE: cannot create %s: %s", to, strerror(errno));
    }
    uint32_t n = 0;
    struct listing *l = list_dir(to, &n);
    for (uint32_t k = 0; k < n; k++) {
        char path[MPATH];
        join_path(path, to, l[k].name);
        unlink(path);
    }
    free(l);
    l = list_dir(dir, &n);
    struct bytes b = {0};
    for (uint32_t k = 0; k < n; k++) {
        char from[MPATH], path[MPATH];
        join_path(from, dir, l[k].name);
        join_path(path, to, l[k].name);
        if (read_whole(from, &b)) {
            write_whole(path, &b);
        }
    }
    bytes_free(&b);
    free(l);
}

/* Recovers and checks the last crash. When recovery refuses the crash's state, the crash is
 * done again keeping only what was durable, and recovered again, to tell a WAL that
 * acknowledged what was not durable (data lost) from a recovery that refuses a state a
 * power loss may leave (recovery failed). */
static void open_and_verify(const struct wal_config *cfg,
                            struct io_uring *ring,
                            struct wal **wal,
                            uint64_t seed,
                            uint32_t life,
                            struct rr_prng *prng)
{
    char err[512];
    save_dir(cfg->dir);
    if (wal_open(cfg, ring, wal, err, sizeof(err)) == 0) {
        verify_groups(*wal, seed, life, "");
        return;
    }
    fprintf(stderr, "%s\n", crash_log);
    if (!M.live) {
        fail_msg("seed %llu life %u: recovery failed: %s", (unsigned long long)seed, life, err);
    }
    model_crash(&M, CRASH_REVERT, prng, false);
    char err2[512];
    if (wal_open(cfg, ring, wal, err2, sizeof(err2)) != 0) {
        fail_msg("seed %llu life %u: recovery failed after power loss: %s; and with only what "
                 "was durable: %s",
                 (unsigned long long)seed, life, err, err2);
    }
    static char context[700];
    snprintf(context, sizeof(context),
             " (recovery refused the torn state: %s; this is the state with only what was "
             "durable)",
             err);
    verify_groups(*wal, seed, life, context);
    fail_msg("seed %llu life %u: recovery failed after power loss: %s (with only what was "
             "durable, every acknowledged unit recovers: recovery refused a state a power loss "
             "may leave)",
             (unsigned long long)seed, life, err);
}

/* One life: recover and check, run the workload until CQE number crash_at, lose power. */
static void one_life(const char *dir, uint64_t seed, uint32_t life, struct rr_prng *prng)
{
    struct io_uring ring;
    assert_int_equal(io_uring_queue_init(128, &ring, 0), 0);
    struct wal_config cfg = life_config(dir, life, prng);
    struct wal *wal = NULL;
    open_and_verify(&cfg, &ring, &wal, seed, life, prng);
    model_end(&M); /* the last crash is checked */

    model_begin(&M, dir);
    wal_test_observe(model_observe, &M);
    uint32_t crash_at = (uint32_t)rr_prng_range(prng, 1, 400);
    for (uint32_t cqes = 0; cqes < crash_at;) {
        for (int k = 0; k < 8; k++) {
            int rc = work_unit(wal, prng);
            if (rc == RR_EBUSY) {
                break;
            }
            if (rc != 0) {
                fail_msg("seed %llu life %u: a unit was refused: %d", (unsigned long long)seed,
                         life, rc);
            }
        }
        wal_submit(wal);
        wal_test_before_submit(&ring);
        int rc = io_uring_submit_and_wait(&ring, 1);
        assert_true(rc >= 0 || rc == -EINTR);
        struct io_uring_cqe *cqe;
        if (io_uring_peek_cqe(&ring, &cqe) == 0) {
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            int32_t res = cqe->res;
            struct io_uring_cqe copy = *cqe;
            io_uring_cqe_seen(&ring, cqe);
            model_cqe(&M, ud, res, false);
            if (wal_handle_cqe(wal, &copy) != 0) {
                fail_msg("seed %llu life %u: the WAL stopped: %s", (unsigned long long)seed, life,
                         wal_error_message(wal));
            }
            cqes++;
        }
        if (unit_failed != 0) {
            fail_msg("seed %llu life %u: a unit failed or completed out of order (%d)",
                     (unsigned long long)seed, life, unit_failed);
        }
    }
    /* Power fails here. The WAL learns nothing more: the acknowledgements given so far are
     * all there is. The kernel finishes what was submitted (the model records it); what was
     * prepared and not submitted never runs. */
    while (M.pending > 0) {
        struct io_uring_cqe *cqe;
        assert_int_equal(io_uring_wait_cqe(&ring, &cqe), 0);
        uint64_t ud = io_uring_cqe_get_data64(cqe);
        int32_t res = cqe->res;
        io_uring_cqe_seen(&ring, cqe);
        model_cqe(&M, ud, res, true);
    }
    wal_test_observe(NULL, NULL);
    wal_close(wal);
    io_uring_queue_exit(&ring);

    uint32_t r = (uint32_t)rr_prng_range(prng, 0, 10);
    enum crash_style style = r < 3 ? CRASH_REVERT : r < 4 ? CRASH_KEEP : CRASH_RANDOM;
    model_crash(&M, style, prng, true);
    snprintf(crash_log, sizeof(crash_log), "life %u: %u CQEs, %u of %u units acknowledged, %s",
             life, crash_at, n_acked, n_units, M.log);
    if (getenv("RR_POWERLOSS_VERBOSE") != NULL) {
        fprintf(stderr, "%s\n", crash_log);
    }
}

static char run_dir[64];

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs lives (or, with seconds > 0, lives until that much time has passed). */
static void run(uint32_t lives, double seconds, uint64_t seed)
{
    char *dir = run_dir;
    th_mkdtemp(dir);
    for (raft_group g = 0; g < GROUPS; g++) {
        gs_init(&glogs[g].base);
        gs_init(&glogs[g].queued);
        glogs[g].n = 0;
        glogs[g].acked = 0;
    }
    n_units = n_acked = 0;
    unit_failed = 0;
    crash_log[0] = '\0';
    struct rr_prng prng;
    rr_prng_seed(&prng, seed);
    double deadline = now_seconds() + seconds;
    uint32_t life = 0;
    for (; seconds > 0 ? now_seconds() < deadline : life < lives; life++) {
        one_life(dir, seed, life, &prng);
    }
    lives = life;
    cover.lives = lives;
    /* A last recovery checks the last crash. */
    struct io_uring ring;
    assert_int_equal(io_uring_queue_init(8, &ring, 0), 0);
    struct wal_config cfg = life_config(dir, lives, &prng);
    struct wal *wal = NULL;
    open_and_verify(&cfg, &ring, &wal, seed, lives, &prng);
    model_end(&M);
    th_quiesce(&ring, wal);
    wal_close(wal);
    io_uring_queue_exit(&ring);
    for (raft_group g = 0; g < GROUPS; g++) {
        free(glogs[g].base.e);
        free(glogs[g].queued.e);
        free(glogs[g].r);
        memset(&glogs[g], 0, sizeof(glogs[g]));
    }
    free(units);
    units = NULL;
    units_cap = 0;
    free(rents);
    rents = NULL;
    rents_cap = 0;
}

static void test_power_loss(void **state)
{
    (void)state;
    const char *env = getenv("RR_POWERLOSS_LIVES");
    uint32_t lives = env != NULL ? (uint32_t)strtoul(env, NULL, 10) : 200;
    const char *s = getenv("RR_SEED");
    uint64_t seed = s != NULL ? strtoull(s, NULL, 10) : 42;
    const char *secs = getenv("RR_POWERLOSS_SECONDS");
    double seconds = secs != NULL ? strtod(secs, NULL) : 0;
    if (seconds > 0) {
        fprintf(stderr, "power loss: lives for %.0f s, seed %llu (RR_POWERLOSS_SECONDS, RR_SEED)\n",
                seconds, (unsigned long long)seed);
    } else {
        fprintf(stderr, "power loss: %u lives, seed %llu (RR_POWERLOSS_LIVES, RR_SEED)\n", lives,
                (unsigned long long)seed);
    }
    memset(&cover, 0, sizeof(cover));
    run(lives, seconds, seed);
    fprintf(stderr,
            "power loss: %u lives, %llu units (%llu acknowledged): %llu entries (%llu "
            "overwriting), %llu hard "
            "states, %llu truncations, %llu compactions; %llu group recoveries kept unacknowledged "
            "records; not durable at the crash: %llu writes, %llu name operations kept, %llu "
            "undone\n",
            cover.lives, (unsigned long long)cover.units, (unsigned long long)cover.acked,
            (unsigned long long)cover.entries, (unsigned long long)cover.overwrites,
            (unsigned long long)cover.hard_states, (unsigned long long)cover.truncations,
            (unsigned long long)cover.compactions, (unsigned long long)cover.beyond_ack,
            (unsigned long long)cover.torn_writes, (unsigned long long)cover.names_kept,
            (unsigned long long)cover.names_undone);
}

/* Also after a failure: the ring, the model and the directories of the test go. */
static int teardown(void **state)
{
    (void)state;
    wal_test_observe(NULL, NULL);
    model_end(&M);
    if (mt_ring_up) {
        io_uring_queue_exit(&mt_ring);
        mt_ring_up = false;
    }
    if (mt_dir[0] != '\0') {
        th_rmrf(mt_dir);
        mt_dir[0] = '\0';
    }
    if (run_dir[0] != '\0') {
        th_rmrf(run_dir);
        run_dir[0] = '\0';
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_model_data_revert, teardown),
        cmocka_unit_test_teardown(test_model_data_keep, teardown),
        cmocka_unit_test_teardown(test_model_names_revert, teardown),
        cmocka_unit_test_teardown(test_model_names_keep, teardown),
        cmocka_unit_test_teardown(test_model_dirsync_revert, teardown),
        cmocka_unit_test_teardown(test_model_dirsync_keep, teardown),
        cmocka_unit_test_teardown(test_model_torn_sectors, teardown),
        cmocka_unit_test_teardown(test_power_loss, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
