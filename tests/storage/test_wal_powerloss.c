/* Crash test, power loss. SIGKILL keeps the page cache, so it cannot show that
 * acknowledgements wait for the data sync. Here the test build's I/O layer records, per
 * segment file, the last offset covered by a completed data sync (WAL_SYNCED). The test
 * runs a workload handing the WAL one CQE at a time, "loses power" at a random CQE, and
 * before recovery rewrites every file as a power loss may leave it (SQLite's crash VFS
 * does the same): bytes past the synced offset revert to the file's durable image (what
 * recovery left at the start of the life; zeros for a file prepared since) or are torn
 * sector by sector (kept, reverted, or the changed bytes garbled: the powersafe-overwrite
 * assumption, docs/storage.md); a file whose preparation was never synced
 * disappears. Every acknowledged entry and hard state must
 * survive recovery. tests/storage/mutants/ack-before-sync.patch acknowledges on the write's
 * completion instead: `make mutant-ack-before-sync` checks that this test then fails. */
/* clang-format off */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <dirent.h>

#include "storage/wal_internal.h"
#include "tests/storage/wal_helpers.h"

#define GROUPS 6
#define SECTOR 512

static raft_index acked_last[GROUPS];
static raft_index acked_commit[GROUPS];

static void on_ack(struct th_work *w, const struct th_unit *u)
{
    (void)w;
    if (u->last > acked_last[u->group]) {
        acked_last[u->group] = u->last;
    }
    if (u->commit > acked_commit[u->group]) {
        acked_commit[u->group] = u->commit;
    }
}

/* The durable image of each segment file when the life began (what recovery left). */
#define IMAGES_MAX 64

struct image {
    uint64_t seq;
    uint8_t *data;
    size_t len;
};

static struct image images[IMAGES_MAX];
static int image_count;

static void images_clear(void)
{
    for (int i = 0; i < image_count; i++) {
        free(images[i].data);
    }
    image_count = 0;
}

static const struct image *image_of(uint64_t seq)
{
    for (int i = 0; i < image_count; i++) {
        if (images[i].seq == seq) {
            return &images[i];
        }
    }
    return NULL;
}

static int segment_names(const char *dir, char names[][32], int max)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        if (strncmp(e->d_name, "wal-", 4) == 0 && strlen(e->d_name) < 32) {
            memcpy(names[n++], e->d_name, strlen(e->d_name) + 1);
        }
    }
    closedir(d);
    return n;
}

/* After recovery every byte on disk is durable: remember it, forget earlier syncs. */
static void images_take(const char *dir)
{
    images_clear();
    wal_test_synced_clear();
    char names[IMAGES_MAX][32];
    int n = segment_names(dir, names, IMAGES_MAX);
    for (int i = 0; i < n; i++) {
        char path[8448];
        snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
        unsigned long long seq;
        assert_int_equal(sscanf(names[i], "wal-%16llx", &seq), 1);
        int fd = open(path, O_RDONLY);
        assert_true(fd >= 0);
        struct stat st;
        assert_int_equal(fstat(fd, &st), 0);
        struct image *im = &images[image_count++];
        im->seq = seq;
        im->len = (size_t)st.st_size;
        im->data = malloc(im->len + 1);
        assert_int_equal(pread(fd, im->data, im->len, 0), (ssize_t)im->len);
        close(fd);
    }
}

/* Rewrites one segment file as the power loss leaves it: bytes past the last synced offset
 * revert to the durable image (zeros for a file prepared during this life), or, when
 * tearing, each sector independently keeps the new bytes, reverts, or turns to garbage. */
static void lose_power_on(const char *dir, const char *name, struct rr_prng *prng, int tear)
{
    unsigned long long seq;
    if (sscanf(name, "wal-%16llx", &seq) != 1) {
        return;
    }
    char path[8448];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int known = 0;
    uint64_t synced = wal_test_synced_upto(seq, &known);
    const struct image *im = image_of(seq);
    if (im == NULL && !known) {
        unlink(path); /* its preparation (and directory entry) was never synced */
        return;
    }
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    struct stat st;
    assert_int_equal(fstat(fd, &st), 0);
    static uint8_t sector[SECTOR];
    for (uint64_t off = synced; off < (uint64_t)st.st_size; off += SECTOR) {
        uint64_t start = off;
        uint64_t end = (off / SECTOR + 1) * SECTOR;
        if (end > (uint64_t)st.st_size) {
            end = (uint64_t)st.st_size;
        }
        off = end - SECTOR;
        assert_int_equal(pread(fd, sector, end - start, (off_t)start), (ssize_t)(end - start));
        bool written = false; /* only bytes written since the last durable state can tear */
        for (uint64_t k = 0; k < end - start; k++) {
            uint64_t at = start + k;
            written |= sector[k] != (im != NULL && at < im->len ? im->data[at] : 0);
        }
        uint32_t choice = tear ? (uint32_t)rr_prng_range(prng, 0, 3) : 0;
        if (!written || choice == 2) {
            continue; /* unchanged, or this sector reached the disk */
        }
        for (uint64_t k = 0; k < end - start; k++) {
            /* Powersafe overwrite (as SQLite's PSOW): a torn sector garbles the bytes being
             * changed, never the unchanged ones around them. */
            uint64_t at = start + k;
            uint8_t old = im != NULL && at < im->len ? im->data[at] : 0;
            bool changed = sector[k] != old;
            sector[k] = choice == 1 && changed ? (uint8_t)rr_prng_next(prng) : old;
        }
        assert_int_equal(pwrite(fd, sector, end - start, (off_t)start), (ssize_t)(end - start));
    }
    close(fd);
}

static char crash_log[8192];

static void lose_power(const char *dir, struct rr_prng *prng, int tear)
{
    char names[256][32];
    int n = segment_names(dir, names, 256);
    size_t len = (size_t)snprintf(crash_log, sizeof(crash_log), "tear %d:", tear);
    for (int i = 0; i < n && len < sizeof(crash_log) - 100; i++) {
        unsigned long long seq;
        sscanf(names[i], "wal-%16llx", &seq);
        int known;
        uint64_t o = wal_test_synced_upto(seq, &known);
        len += (size_t)snprintf(crash_log + len, sizeof(crash_log) - len, " %llx:%s%llu%s", seq,
                                known ? "" : "?", (unsigned long long)o, image_of(seq) ? "i" : "");
    }

    for (int i = 0; i < n; i++) {
        lose_power_on(dir, names[i], prng, tear);
    }
}

/* One life: recover, run the workload until CQE number crash_at, lose power. */
static void one_life(const char *dir, uint64_t seed, uint32_t crash_at, const char *strategy)
{
    struct io_uring ring;
    assert_int_equal(io_uring_queue_init(128, &ring, 0), 0);
    struct wal_config cfg = th_config(dir, GROUPS);
    cfg.segment_bytes = 128u << 10;
    assert_int_equal(wal_strategy_parse(strategy, &cfg.strategy), 0);
    struct wal *wal = NULL;
    char err[512];
    int rc = wal_open(&cfg, &ring, &wal, err, sizeof(err));
    if (rc != 0) {
        fail_msg("seed %llu: recovery failed: %s", (unsigned long long)seed, err);
    }
    char msg[256];
    const char *bad = th_verify(wal, GROUPS, acked_last, acked_commit, msg, sizeof(msg));
    if (bad != NULL) {
        fprintf(stderr, "%s\n", crash_log);
        fail_msg("seed %llu: acknowledged data lost after power loss: %s", (unsigned long long)seed,
                 bad);
    }
    images_take(dir);
    /* The mutant run turns this off so that the recovery check itself must catch it. */
    wal_test_acked_check(getenv("RR_NO_ACK_CHECK") == NULL);
    static struct th_work w;
    th_work_init(&w, wal, GROUPS, seed);
    w.on_ack = on_ack;
    for (uint32_t cqes = 0; cqes < crash_at;) {
        for (int k = 0; k < 8 && th_work_unit(&w) == 0; k++) {
        }
        wal_submit(wal);
        assert_true(io_uring_submit_and_wait(&ring, 1) >= 0);
        struct io_uring_cqe *cqe;
        if (io_uring_peek_cqe(&ring, &cqe) == 0) {
            struct io_uring_cqe copy = *cqe;
            io_uring_cqe_seen(&ring, cqe);
            assert_int_equal(wal_handle_cqe(wal, &copy), 0);
            cqes++;
        }
        assert_int_equal(w.failed, 0);
    }
    wal_test_acked_check(0);
    /* Power fails here. Let the kernel finish what it was doing, but tell the WAL nothing:
     * the acknowledgements given so far are all there is. */
    io_uring_submit(&ring);
    while (wal->inflight > 0) {
        struct io_uring_cqe *cqe;
        assert_int_equal(io_uring_wait_cqe(&ring, &cqe), 0);
        io_uring_cqe_seen(&ring, cqe);
        wal->inflight--;
    }
    wal_close(wal);
    io_uring_queue_exit(&ring);
}

static void run(uint32_t lives, uint64_t seed0)
{
    char dir[64];
    th_mkdtemp(dir);
    memset(acked_last, 0, sizeof(acked_last));
    memset(acked_commit, 0, sizeof(acked_commit));
    wal_test_synced_clear();
    struct rr_prng prng;
    rr_prng_seed(&prng, seed0);
    const char *strategies[] = {"adaptive", "none", "fixed:4", "linger:100"};
    for (uint32_t life = 0; life < lives; life++) {
        uint64_t seed = seed0 * 1000003u + life;
        uint32_t crash_at = (uint32_t)rr_prng_range(&prng, 1, 400);
        one_life(dir, seed, crash_at, strategies[life % 4]);
        lose_power(dir, &prng, (int)(life % 2));
    }
    /* A last recovery checks the final crash. */
    struct io_uring ring;
    assert_int_equal(io_uring_queue_init(8, &ring, 0), 0);
    struct wal_config cfg = th_config(dir, GROUPS);
    cfg.segment_bytes = 128u << 10;
    struct wal *wal = NULL;
    char err[512];
    if (wal_open(&cfg, &ring, &wal, err, sizeof(err)) != 0) {
        fail_msg("final recovery failed: %s", err);
    }
    char msg[256];
    const char *bad = th_verify(wal, GROUPS, acked_last, acked_commit, msg, sizeof(msg));
    if (bad != NULL) {
        fail_msg("acknowledged data lost after the last power loss: %s", bad);
    }
    th_quiesce(&ring, wal);
    wal_close(wal);
    io_uring_queue_exit(&ring);
    images_clear();
    th_rmrf(dir);
}

static void test_power_loss(void **state)
{
    (void)state;
    const char *env = getenv("RR_POWERLOSS_LIVES");
    uint32_t lives = env != NULL ? (uint32_t)strtoul(env, NULL, 10) : 120;
    const char *s = getenv("RR_SEED");
    uint64_t seed = s != NULL ? strtoull(s, NULL, 10) : 42;
    fprintf(stderr, "power loss: %u lives, seed %llu\n", lives, (unsigned long long)seed);
    run(lives, seed);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_power_loss),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
