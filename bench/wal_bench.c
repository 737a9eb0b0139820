/* wal-bench: closed-loop appenders (one unit outstanding each) against the WAL, every
 * strategy x appenders x record size, each beside the device's raw limit measured in the
 * same run: plain sequential writes replaying the batch sizes the strategy produced, each
 * followed by the same sync, on a file prepared the same way, without the WAL. Every row
 * is the median of BENCH_REPS runs. The last line summarises adaptive, 64 x 256 B. */
#include <fcntl.h>
#include <ftw.h>
#include <liburing.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "core/base/errors.h"
#include "core/base/histogram.h"
#include "storage/wal.h"
#include "storage/wal_format.h"

#define TAG           0x77
#define APPENDERS_MAX 64
#define REPS_MAX      9

struct result {
    double appends_s, mb_s, p50_us, p99_us, p999_us, fsyncs_s;
    double batch_p50, batch_p99, batch_max;
    double raw_mb_s, raw_p50_us, ratio, rss_mb;
};

struct appender {
    raft_index next;
    uint64_t sent_ns;
    int ready;
};

struct run {
    struct appender a[APPENDERS_MAX];
    struct histogram lat;
    uint64_t acks;
};

static struct run *cur;

/* Steady state (the second table): small segments, every appender compacting behind
 * itself as a node snapshotting its groups would, and the WAL warmed up until retired
 * segments are being recycled, so segment preparation costs what it costs in a long run. */
static int steady;
/* Segments sized so that rotations come about as often as with the 64 MiB default under a
 * large-record load, and warm-up stays short for small records. */
static uint64_t steady_segment_bytes(uint32_t size)
{
    return size >= 4096 ? 64ull << 20 : (size >= 256 ? 4ull << 20 : 1ull << 20);
}
#define STEADY_KEEP 64u /* entries each appender keeps behind its compaction */

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void on_ack(void *arg, int status)
{
    if (status != 0) {
        fprintf(stderr, "wal-bench: unit failed: %s\n", rr_strerror(status));
        exit(1);
    }
    struct appender *ap = arg;
    histogram_record(&cur->lat, now_ns() - ap->sent_ns);
    ap->ready = 1;
    cur->acks++;
}

static int rm_cb(const char *p, const struct stat *s, int f, struct FTW *w)
{
    (void)s;
    (void)f;
    (void)w;
    return remove(p);
}

static void drain(struct io_uring *ring, struct wal *wal)
{
    struct io_uring_cqe *cqe;
    while (io_uring_peek_cqe(ring, &cqe) == 0) {
        struct io_uring_cqe c = *cqe;
        io_uring_cqe_seen(ring, cqe);
        if (wal_handle_cqe(wal, &c) != 0) {
            fprintf(stderr, "wal-bench: %s\n", wal_error_message(wal));
            exit(1);
        }
    }
}

/* Raw limit: the same sync method on a file prepared the same way, replaying sizes. */
static struct io_uring_sqe *get_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    if (sqe == NULL) {
        fprintf(stderr, "wal-bench: submission queue full\n");
        exit(1);
    }
    return sqe;
}

static uint32_t inflight = 1; /* flushes in flight, WAL and raw alike (BENCH_FLUSHES) */

static void raw_replay(const char *base,
                       const struct histogram *sizes,
                       uint64_t flushes,
                       double seconds,
                       enum wal_sync_method sync,
                       enum wal_prep_method prep,
                       struct result *r)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/raw", base);
    const uint64_t file_bytes = 64ull << 20;
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);
    static uint8_t buf[WAL_FLUSH_BYTES_MAX];
    memset(buf, 0x5a, sizeof(buf));
    if (prep == WAL_PREP_FALLOCATE) {
        if (fallocate(fd, 0, 0, (off_t)file_bytes) != 0) {
            perror("fallocate");
        }
    } else {
        static uint8_t zeros[1u << 20];
        for (uint64_t off = 0; off < file_bytes; off += sizeof(zeros)) {
            if (pwrite(fd, zeros, sizeof(zeros), (off_t)off) != (ssize_t)sizeof(zeros)) {
                perror("pwrite");
            }
        }
    }
    fsync(fd);
    struct io_uring ring;
    io_uring_queue_init(8, &ring, 0);
    /* Expand the histogram of flush sizes into a replay list (values within 1%). */
    uint64_t *list = malloc(sizeof(uint64_t) * (flushes + 1));
    uint64_t n = 0;
    for (uint32_t b = 0; b < HIST_BUCKET_COUNT && n < flushes; b++) {
        for (uint64_t k = 0; k < sizes->buckets[b] && n < flushes; k++) {
            uint64_t v = histogram_bucket_low(b);
            list[n++] = v > sizeof(buf) ? sizeof(buf) : (v == 0 ? 1 : v);
        }
    }
    for (uint64_t i = n; i > 1; i--) { /* deterministic shuffle */
        uint64_t j = (i * 2654435761u) % i;
        uint64_t t = list[i - 1];
        list[i - 1] = list[j];
        list[j] = t;
    }
    struct histogram lat;
    histogram_init(&lat);
    /* Up to `inflight` write + sync pairs outstanding, as the WAL may have (BENCH_FLUSHES);
     * each pair's latency runs from its submission to its sync's completion. */
    uint64_t off = WAL_SEGMENT_HEADER_BYTES, bytes = 0, done = 0;
    uint64_t started[WAL_FLUSHES_MAX];
    uint32_t outstanding = 0;
    uint64_t i = 0;
    uint64_t t0 = now_ns();
    while ((i < n && (double)(now_ns() - t0) < seconds * 1e9) || outstanding > 0) {
        while (outstanding < inflight && i < n && (double)(now_ns() - t0) < seconds * 1e9) {
            if (off + list[i] > file_bytes) {
                off = WAL_SEGMENT_HEADER_BYTES;
            }
            uint64_t slot = i % WAL_FLUSHES_MAX;
            started[slot] = now_ns();
            struct io_uring_sqe *w = get_sqe(&ring);
            if (sync == WAL_SYNC_RWF_DSYNC) {
                static struct iovec iov[WAL_FLUSHES_MAX];
                iov[slot] = (struct iovec){.iov_base = buf, .iov_len = list[i]};
                io_uring_prep_writev2(w, fd, &iov[slot], 1, off, RWF_DSYNC);
                io_uring_sqe_set_data64(w, slot | 0x100u);
            } else {
                io_uring_prep_write(w, fd, buf, (unsigned)list[i], off);
                w->flags |= IOSQE_IO_LINK;
                io_uring_sqe_set_data64(w, slot);
                struct io_uring_sqe *f = get_sqe(&ring);
                io_uring_prep_fsync(f, fd, IORING_FSYNC_DATASYNC);
                io_uring_sqe_set_data64(f, slot | 0x100u);
            }
            off += list[i];
            bytes += list[i];
            outstanding++;
            i++;
        }
        io_uring_submit_and_wait(&ring, 1);
        struct io_uring_cqe *cqe;
        while (io_uring_peek_cqe(&ring, &cqe) == 0) {
            if (cqe->res < 0) {
                fprintf(stderr, "raw: %s\n", strerror(-cqe->res));
                exit(1);
            }
            uint64_t ud = io_uring_cqe_get_data64(cqe);
            if (ud & 0x100u) { /* the pair is durable */
                histogram_record(&lat, now_ns() - started[ud & 0xffu]);
                outstanding--;
                done++;
            }
            io_uring_cqe_seen(&ring, cqe);
        }
    }
    double el = (double)(now_ns() - t0) / 1e9;
    r->raw_mb_s = (double)bytes / el / 1e6;
    r->raw_p50_us = (double)histogram_quantile(&lat, 0.5) / 1e3;
    io_uring_queue_exit(&ring);
    close(fd);
    unlink(path);
    free(list);
}

/* One loop iteration: every ready appender appends (and in steady state compacts behind
 * itself), then submit, wait, handle completions. */
static void pump(struct io_uring *ring, struct wal *wal, uint32_t appenders, uint32_t size)
{
    static uint8_t payload[4096];
    for (uint32_t i = 0; i < appenders; i++) {
        struct appender *ap = &cur->a[i];
        if (!ap->ready) {
            continue;
        }
        struct wal_entry e = {.term = 1, .index = ap->next, .len = size, .data = payload};
        ap->sent_ns = now_ns();
        int rc = wal_append(wal, i, NULL, &e, 1, on_ack, ap);
        if (rc == RR_EBUSY) {
            break;
        }
        if (rc != 0) {
            fprintf(stderr, "wal-bench: append: %s\n", rr_strerror(rc));
            exit(1);
        }
        ap->ready = 0;
        ap->next++;
        if (steady && ap->next % STEADY_KEEP == 0 && ap->next > STEADY_KEEP) {
            rc = wal_compact(wal, i, ap->next - STEADY_KEEP, 1, NULL, NULL);
            if (rc != 0 && rc != RR_EBUSY) {
                fprintf(stderr, "wal-bench: compact: %s\n", rr_strerror(rc));
                exit(1);
            }
        }
    }
    wal_submit(wal);
    io_uring_submit_and_wait(ring, 1);
    drain(ring, wal);
}

static void one(const char *base,
                const char *strategy,
                uint32_t appenders,
                uint32_t size,
                double seconds,
                enum wal_sync_method sync,
                enum wal_prep_method prep,
                struct result *r)
{
    char dir[512];
    snprintf(dir, sizeof(dir), "%s/wal", base);
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    struct io_uring ring;
    io_uring_queue_init(256, &ring, 0);
    struct wal_config cfg = {.dir = dir,
                             .cluster_id = 1,
                             .node_id = 1,
                             .worker_id = 0,
                             .group_count = APPENDERS_MAX,
                             .worker_count = 1,
                             .user_data_tag = TAG,
                             .iowq_max_workers = 2,
                             .sync_method = sync,
                             .prep_method = prep,
                             .segment_bytes = steady ? steady_segment_bytes(size) : 0,
                             .flushes_in_flight = (uint8_t)inflight};
    wal_strategy_parse(strategy, &cfg.strategy);
    struct wal *wal;
    char err[256];
    if (wal_open(&cfg, &ring, &wal, err, sizeof(err)) != 0) {
        fprintf(stderr, "wal-bench: %s\n", err);
        exit(1);
    }
    /* Let the spare's preparation finish outside the measurement. */
    while (wal_busy(wal)) {
        io_uring_submit_and_wait(&ring, 1);
        drain(&ring, wal);
    }
    static struct run run;
    memset(&run, 0, sizeof(run));
    histogram_init(&run.lat);
    cur = &run;
    for (uint32_t i = 0; i < appenders; i++) {
        run.a[i].next = 1;
        run.a[i].ready = 1;
    }
    if (steady) {
        /* Warm up: until segments are recycled (bounded), outside the measurement. */
        uint64_t w0 = now_ns();
        while (wal_stats(wal)->segments_recycled < 1 && now_ns() - w0 < 10000000000ull) {
            pump(&ring, wal, appenders, size);
        }
        histogram_init(&run.lat);
        run.acks = 0;
    }
    wal_stats_reset(wal);
    struct rusage ru0;
    getrusage(RUSAGE_THREAD, &ru0);
    uint64_t t0 = now_ns();
    while ((double)(now_ns() - t0) < seconds * 1e9) {
        pump(&ring, wal, appenders, size);
    }
    double el = (double)(now_ns() - t0) / 1e9;
    const struct wal_stats *st = wal_stats(wal);
    r->appends_s = (double)run.acks / el;
    r->mb_s = (double)run.acks * size / el / 1e6;
    r->p50_us = (double)histogram_quantile(&run.lat, 0.5) / 1e3;
    r->p99_us = (double)histogram_quantile(&run.lat, 0.99) / 1e3;
    r->p999_us = (double)histogram_quantile(&run.lat, 0.999) / 1e3;
    r->fsyncs_s = (double)st->flushes / el;
    r->batch_p50 = (double)histogram_quantile(&st->batch_records, 0.5);
    r->batch_p99 = (double)histogram_quantile(&st->batch_records, 0.99);
    r->batch_max = (double)st->batch_records.max;
    double wal_mb_s = (double)st->bytes / el / 1e6;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r->rss_mb = (double)ru.ru_maxrss / 1024.0;
    if (getenv("BENCH_DEBUG")) { /* where the time between syncs goes (docs/storage.md) */
        struct rusage ru1;
        getrusage(RUSAGE_THREAD, &ru1);
        double us = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 +
                    (double)(ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec);
        double sy = (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e6 +
                    (double)(ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
        fprintf(stderr,
                "debug: main thread user %.1f us sys %.1f us per flush; context switches "
                "per 100 flushes: %ld voluntary, %ld involuntary\n",
                us / (double)st->flushes, sy / (double)st->flushes,
                (ru1.ru_nvcsw - ru0.ru_nvcsw) * 100 / (long)st->flushes,
                (ru1.ru_nivcsw - ru0.ru_nivcsw) * 100 / (long)st->flushes);
        fprintf(stderr, "debug: flush p50 %.1f us, queue p50 %.1f us, elapsed/flush %.1f us\n",
                (double)histogram_quantile(&st->flush_ns, 0.5) / 1e3,
                (double)histogram_quantile(&st->queue_ns, 0.5) / 1e3,
                el * 1e6 / (double)st->flushes);
    }
    struct histogram sizes = st->batch_bytes;
    uint64_t flushes = st->flushes;
    while (wal_busy(wal)) {
        io_uring_submit_and_wait(&ring, 1);
        drain(&ring, wal);
    }
    wal_close(wal);
    io_uring_queue_exit(&ring);
    nftw(dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    raw_replay(base, &sizes, flushes, seconds, sync, prep, r);
    r->ratio = r->raw_mb_s > 0 ? wal_mb_s / r->raw_mb_s : 0;
}

/* Whether key ("adaptive/64/256") is one of filter's comma-separated items. */
static int row_selected(const char *filter, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = filter; *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t l = e != NULL ? (size_t)(e - p) : strlen(p);
        if (l == kl && strncmp(p, key, l) == 0) {
            return 1;
        }
        p += l + (e != NULL ? 1 : 0);
    }
    return 0;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Field-wise median of reps results. */
static void median(struct result *rs, int reps, struct result *out)
{
    size_t fields = sizeof(struct result) / sizeof(double);
    for (size_t f = 0; f < fields; f++) {
        double v[REPS_MAX];
        for (int i = 0; i < reps; i++) {
            v[i] = ((double *)&rs[i])[f];
        }
        qsort(v, (size_t)reps, sizeof(double), cmp_d);
        ((double *)out)[f] = v[reps / 2];
    }
}

static void row(const char *label, uint32_t apps, uint32_t size, const struct result *m)
{
    printf("| %-10s | %3u | %4u | %9.0f | %7.2f | %7.0f | %7.0f | %7.0f | %4.0f/%4.0f/%4.0f | "
           "%7.0f | %7.2f | %7.0f | %5.2f | %5.0f |\n",
           label, apps, size, m->appends_s, m->mb_s, m->p50_us, m->p99_us, m->p999_us, m->batch_p50,
           m->batch_p99, m->batch_max, m->fsyncs_s, m->raw_mb_s, m->raw_p50_us, m->ratio,
           m->rss_mb);
    fflush(stdout);
}

static void measure(const char *base,
                    const char *strategy,
                    uint32_t apps,
                    uint32_t size,
                    double secs,
                    int reps,
                    enum wal_sync_method sync,
                    enum wal_prep_method prep,
                    struct result *m)
{
    struct result rs[REPS_MAX];
    for (int i = 0; i < reps; i++) {
        one(base, strategy, apps, size, secs, sync, prep, &rs[i]);
    }
    median(rs, reps, m);
}

int main(int argc, char **argv)
{
    const char *base = argc > 1 ? argv[1] : "/tmp/wal-bench";
    double secs = getenv("BENCH_SECONDS") ? strtod(getenv("BENCH_SECONDS"), NULL) : 0.4;
    int reps = getenv("BENCH_REPS") ? atoi(getenv("BENCH_REPS")) : 3;
    reps = reps < 1 ? 1 : (reps > REPS_MAX ? REPS_MAX : reps);
    mkdir(base, 0755);
    inflight = getenv("BENCH_FLUSHES") ? (uint32_t)atoi(getenv("BENCH_FLUSHES")) : 1;
    inflight = inflight < 1 ? 1 : (inflight > WAL_FLUSHES_MAX ? WAL_FLUSHES_MAX : inflight);
    printf("wal-bench: %.2fs per run, median of %d runs; raw = same sync + preparation, "
           "replaying the strategy's batch sizes; %u flush(es) in flight, WAL and raw\n",
           secs, reps, inflight);
    printf("| strategy   | app | size | appends/s |   MB/s  | p50 us  | p99 us  | p999 us | "
           "batch p50/p99/max | fsync/s | raw MB/s | raw p50 | ratio | RSS MB |\n");
    printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    /* BENCH_FILTER=adaptive/64/256,none/64/256 runs only the listed rows (strategy/apps/size)
     * and skips the sync-method section. */
    const char *filter = getenv("BENCH_FILTER");
    const int steady_only =
        getenv("BENCH_STEADY") != NULL && strcmp(getenv("BENCH_STEADY"), "only") == 0;
    const char *strategies[] = {"none", "fixed:16", "linger:200", "adaptive"};
    const uint32_t apps[] = {1, 8, 64};
    const uint32_t sizes[] = {16, 256, 4096};
    struct result adaptive64 = {0}, none64 = {0};
    for (int s = 0; s < 4; s++) {
        for (int a = 0; a < 3; a++) {
            for (int z = 0; z < 3; z++) {
                char key[64];
                snprintf(key, sizeof(key), "%s/%u/%u", strategies[s], apps[a], sizes[z]);
                if ((filter != NULL && !row_selected(filter, key)) || steady_only) {
                    continue;
                }
                struct result m;
                measure(base, strategies[s], apps[a], sizes[z], secs, reps,
                        WAL_SYNC_LINKED_FDATASYNC, WAL_PREP_ZERO, &m);
                row(strategies[s], apps[a], sizes[z], &m);
                if (apps[a] == 64 && sizes[z] == 256 && s == 3) {
                    adaptive64 = m;
                }
                if (apps[a] == 64 && sizes[z] == 256 && s == 0) {
                    none64 = m;
                }
            }
        }
    }
    if (filter == NULL && !steady_only) {
        printf("\nsync method x segment preparation (adaptive and none, 1 appender, 256 B):\n");
    }
    const char *sync_names[] = {"write+linked fdatasync", "RWF_DSYNC"};
    const char *prep_names[] = {"zero-filled", "fallocate"};
    for (int sy = 0; sy < 2 && filter == NULL && !steady_only; sy++) {
        for (int pr = 0; pr < 2; pr++) {
            struct result ma, mn;
            measure(base, "adaptive", 1, 256, secs, reps, (enum wal_sync_method)sy,
                    (enum wal_prep_method)pr, &ma);
            measure(base, "none", 8, 256, secs, reps, (enum wal_sync_method)sy,
                    (enum wal_prep_method)pr, &mn);
            printf("  %-22s %-11s: adaptive x1 %7.0f appends/s p50 %5.0f us (raw p50 %5.0f us); "
                   "none x8 %7.0f appends/s\n",
                   sync_names[sy], prep_names[pr], ma.appends_s, ma.p50_us, ma.raw_p50_us,
                   mn.appends_s);
        }
    }
    /* BENCH_STEADY=0 skips the steady-state table; BENCH_STEADY=only runs it alone. */
    const char *steady_env = getenv("BENCH_STEADY");
    if (steady_env == NULL || strcmp(steady_env, "0") != 0) {
        steady = 1;
        printf("\nsteady state: segments of 1 MiB (16 B), 4 MiB (256 B) or 64 MiB (4 KiB records), "
               "each appender compacting all but its last %u "
               "entries, warmed up until retired segments are recycled:\n",
               STEADY_KEEP);
        printf("| strategy   | app | size | appends/s |   MB/s  | p50 us  | p99 us  | p999 us | "
               "batch p50/p99/max | fsync/s | raw MB/s | raw p50 | ratio | RSS MB |\n");
        printf("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
        for (int a = 1; a < 3; a++) { /* 8 and 64 appenders: one appender rarely rotates */
            for (int z = 0; z < 3; z++) {
                char key[64];
                snprintf(key, sizeof(key), "adaptive/%u/%u", apps[a], sizes[z]);
                if (filter != NULL && !row_selected(filter, key)) {
                    continue;
                }
                struct result m;
                measure(base, "adaptive", apps[a], sizes[z], secs, reps, WAL_SYNC_LINKED_FDATASYNC,
                        WAL_PREP_ZERO, &m);
                row("adaptive", apps[a], sizes[z], &m);
            }
        }
        steady = 0;
    }
    if (adaptive64.appends_s <= 0) {
        printf("\nSUMMARY adaptive 64x256B: not run (BENCH_FILTER)\n");
    } else if (none64.appends_s <= 0) {
        printf("\nSUMMARY adaptive 64x256B: %.2f x raw limit bytes/s; none 64x256B not run "
               "(BENCH_FILTER)\n",
               adaptive64.ratio);
    } else {
        printf("\nSUMMARY adaptive 64x256B: %.2f x raw limit bytes/s, %.1f x none appends/s "
               "(%.0f vs %.0f appends/s)\n",
               adaptive64.ratio, adaptive64.appends_s / none64.appends_s, adaptive64.appends_s,
               none64.appends_s);
    }
    return 0;
}
