/* node_floor: the floor under one replicated write's latency on this machine, for
 * bench/node-targets.py (make bench-node). Two figures, each a p50 over many samples:
 *
 *   rtt    one TCP round trip over loopback: a 64-byte ping answered by a 64-byte pong,
 *          TCP_NODELAY on both ends, the echoing side a thread of this process;
 *   fsync  one 4 KiB pwrite followed by fdatasync at the next offset of a file prepared
 *          beforehand in DIR (written in full with zeros and synced, so a sync flushes
 *          data only: no block allocation, no unwritten-extent conversion, the same
 *          conditions as the WAL's zero-filled segments).
 *
 * A write acknowledged by a Raft leader needs at least one network round trip (to a
 * follower) and one durable write (the leader's and the follower's run in parallel), so
 * rtt + fsync is what a 1-client, 1-in-flight SET could take at best.
 *
 * A third figure is that floor for three replicas sharing one disk, as a local cluster's
 * nodes do:
 *
 *   shared three threads, each with its own prepared file in DIR, do the same 4 KiB
 *          write+fdatasync at once, two of them (the followers) starting one rtt p50 after
 *          the first (the leader's append reaching them); a sample is the time until the
 *          second of the three is durable (a majority of three). A device serialises its
 *          cache flushes, so a flush that arrives while another runs waits for it: this is
 *          near two fsyncs, not one.
 *
 * and the same for writes back to back, as a client with one request in flight sends them:
 *
 *   sustained  as shared, but each write starts one rtt p50 after the previous one reached
 *          its majority (the reply's way back and the next request's way in), while the
 *          third replica may still be flushing the previous one; each replica writes one
 *          after the other, as each node's WAL does. Every write costs the disk three
 *          flushes, so back to back a sample may wait for the previous write's last one
 *          (here it adds about 5%: that flush mostly runs during the round trip).
 *
 * usage: node_floor DIR [SAMPLES]      (default 1000; the files are DIR/node-floor*.tmp and
 *                                       are removed at the end)
 * prints one line: rtt_p50_us=.. rtt_p99_us=.. fsync_p50_us=.. fsync_p99_us=..
 *                  shared_p50_us=.. shared_p99_us=.. sustained_p50_us=.. sustained_p99_us=..
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PING_BYTES    64
#define WRITE_BYTES   4096
#define SAMPLES_MAX   100000
#define WARMUP_ROUNDS 200

static void die(const char *what)
{
    fprintf(stderr, "node_floor: %s: %s\n", what, strerror(errno));
    exit(1);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) {
        die("clock_gettime");
    }
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0..1) of n sorted samples, in microseconds. */
static double quantile_us(uint64_t *ns, size_t n, double q)
{
    size_t i = (size_t)(q * (double)(n - 1));
    return (double)ns[i] / 1000.0;
}

/* Reads or writes exactly len bytes; dies on error or end of stream. */
static void full_io(int fd, char *buf, size_t len, int is_write)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = is_write ? send(fd, buf + done, len - done, MSG_NOSIGNAL)
                             : recv(fd, buf + done, len - done, 0);
        if (r <= 0) {
            if (r < 0 && errno == EINTR) {
                continue;
            }
            die(is_write ? "send" : "recv (peer closed?)");
        }
        done += (size_t)r;
    }
}

static void set_nodelay(int fd)
{
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        die("setsockopt TCP_NODELAY");
    }
}

struct echo_arg {
    int listen_fd;
    size_t rounds; /* pings to answer before returning */
};

static void *echo_main(void *p)
{
    const struct echo_arg *a = p;
    int fd = accept(a->listen_fd, NULL, NULL);
    if (fd < 0) {
        die("accept");
    }
    set_nodelay(fd);
    char buf[PING_BYTES];
    for (size_t i = 0; i < a->rounds; i++) {
        full_io(fd, buf, sizeof(buf), 0);
        full_io(fd, buf, sizeof(buf), 1);
    }
    close(fd);
    return NULL;
}

static void measure_rtt(uint64_t *ns, size_t n)
{
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    if (lfd < 0) {
        die("socket");
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t alen = sizeof(addr);
    if (bind(lfd, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(lfd, 1) != 0 ||
        getsockname(lfd, (struct sockaddr *)&addr, &alen) != 0) {
        die("bind/listen 127.0.0.1:0");
    }
    struct echo_arg arg = {.listen_fd = lfd, .rounds = n + WARMUP_ROUNDS};
    pthread_t th;
    if (pthread_create(&th, NULL, echo_main, &arg) != 0) {
        die("pthread_create");
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr)) != 0) {
        die("connect");
    }
    set_nodelay(fd);
    char buf[PING_BYTES];
    memset(buf, 'p', sizeof(buf));
    for (size_t i = 0; i < n + WARMUP_ROUNDS; i++) {
        uint64_t t0 = now_ns();
        full_io(fd, buf, sizeof(buf), 1);
        full_io(fd, buf, sizeof(buf), 0);
        if (i >= WARMUP_ROUNDS) {
            ns[i - WARMUP_ROUNDS] = now_ns() - t0;
        }
    }
    pthread_join(th, NULL);
    close(fd);
    close(lfd);
}

/* A file of n blocks in dir, every block written once and synced, so that timed writes
 * overwrite allocated, initialised blocks. Returns its descriptor; its name goes to path. */
static int prepared_file(const char *dir, const char *name, size_t n, char *path, size_t len)
{
    if (snprintf(path, len, "%s/%s", dir, name) >= (int)len) {
        errno = ENAMETOOLONG;
        die("path");
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        die(path);
    }
    static const char zeros[WRITE_BYTES];
    for (size_t i = 0; i < n; i++) {
        if (pwrite(fd, zeros, sizeof(zeros), (off_t)(i * WRITE_BYTES)) != WRITE_BYTES) {
            die("pwrite (prepare)");
        }
    }
    if (fsync(fd) != 0) {
        die("fsync (prepare)");
    }
    return fd;
}

static void durable_write(int fd, size_t block_index)
{
    static const char block[WRITE_BYTES] = {'w'};
    if (pwrite(fd, block, sizeof(block), (off_t)(block_index * WRITE_BYTES)) != WRITE_BYTES) {
        die("pwrite");
    }
    if (fdatasync(fd) != 0) {
        die("fdatasync");
    }
}

static void remove_file(int fd, const char *path)
{
    close(fd);
    if (unlink(path) != 0) {
        die("unlink");
    }
}

static void measure_fsync(const char *dir, uint64_t *ns, size_t n)
{
    char path[4096];
    int fd = prepared_file(dir, "node-floor.tmp", n, path, sizeof(path));
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        durable_write(fd, i);
        ns[i] = now_ns() - t0;
    }
    remove_file(fd, path);
}

/* ---- three replicas on one disk ---- */

#define REPLICAS 3

struct replica {
    pthread_t thread;
    int fd;
    char path[4096];
    size_t id;       /* 0: the leader */
    size_t n;        /* samples */
    uint64_t lag_ns; /* a follower's start after the leader's */
    uint64_t *done;  /* per sample: ns from the sample's start until durable */
    uint64_t *start; /* per sample: the leader's start (shared) */
    pthread_barrier_t *barrier;
};

static void *replica_main(void *p)
{
    struct replica *r = p;
    for (size_t i = 0; i < r->n; i++) {
        pthread_barrier_wait(r->barrier);
        if (r->id == 0) {
            r->start[i] = now_ns();
        }
        pthread_barrier_wait(r->barrier);
        while (r->id != 0 && now_ns() - r->start[i] < r->lag_ns) {
            /* spin: a sleep would add the scheduler's wake-up, which the lag already has */
        }
        durable_write(r->fd, i);
        r->done[i] = now_ns() - r->start[i];
    }
    return NULL;
}

static void measure_shared(const char *dir, uint64_t lag_ns, uint64_t *ns, size_t n)
{
    struct replica rs[REPLICAS];
    uint64_t *start = calloc(n, sizeof(*start));
    pthread_barrier_t barrier;
    if (start == NULL || pthread_barrier_init(&barrier, NULL, REPLICAS) != 0) {
        die("calloc/pthread_barrier_init");
    }
    for (size_t k = 0; k < REPLICAS; k++) {
        char name[64];
        snprintf(name, sizeof(name), "node-floor-%zu.tmp", k);
        rs[k] = (struct replica){
            .id = k, .n = n, .lag_ns = lag_ns, .start = start, .barrier = &barrier};
        rs[k].fd = prepared_file(dir, name, n, rs[k].path, sizeof(rs[k].path));
        rs[k].done = calloc(n, sizeof(uint64_t));
        if (rs[k].done == NULL) {
            die("calloc");
        }
    }
    for (size_t k = 0; k < REPLICAS; k++) {
        if (pthread_create(&rs[k].thread, NULL, replica_main, &rs[k]) != 0) {
            die("pthread_create");
        }
    }
    for (size_t k = 0; k < REPLICAS; k++) {
        pthread_join(rs[k].thread, NULL);
    }
    for (size_t i = 0; i < n; i++) {
        uint64_t t[REPLICAS];
        for (size_t k = 0; k < REPLICAS; k++) {
            t[k] = rs[k].done[i];
        }
        qsort(t, REPLICAS, sizeof(t[0]), cmp_u64);
        ns[i] = t[REPLICAS / 2]; /* the majority's last */
    }
    for (size_t k = 0; k < REPLICAS; k++) {
        remove_file(rs[k].fd, rs[k].path);
        free(rs[k].done);
    }
    pthread_barrier_destroy(&barrier);
    free(start);
}

/* ---- three replicas on one disk, writes back to back ---- */

struct chain {
    size_t n;
    uint64_t lag_ns;            /* a follower's start after the leader's; also the gap */
    _Atomic uint64_t *start;    /* per sample: the leader's start; 0 until it starts */
    _Atomic uint64_t *majority; /* per sample: when the second replica was durable; 0 until */
    _Atomic uint32_t *durable;  /* per sample: replicas durable so far */
};

struct chain_replica {
    pthread_t thread;
    int fd;
    char path[4096];
    size_t id; /* 0: the leader */
    struct chain *c;
};

/* Waits (yielding: three threads share two cores here) until *v is non-zero. */
static uint64_t await_nonzero(_Atomic uint64_t *v)
{
    uint64_t x;
    while ((x = atomic_load_explicit(v, memory_order_acquire)) == 0) {
        sched_yield();
    }
    return x;
}

static void await_time(uint64_t t_ns)
{
    while (now_ns() < t_ns) {
        sched_yield();
    }
}

static void *chain_main(void *p)
{
    struct chain_replica *r = p;
    struct chain *c = r->c;
    for (size_t i = 0; i < c->n; i++) {
        uint64_t start;
        if (r->id == 0) {
            if (i > 0) {
                await_time(await_nonzero(&c->majority[i - 1]) + c->lag_ns);
            }
            start = now_ns();
            atomic_store_explicit(&c->start[i], start, memory_order_release);
        } else {
            start = await_nonzero(&c->start[i]);
            await_time(start + c->lag_ns);
        }
        durable_write(r->fd, i);
        uint64_t t = now_ns();
        if (atomic_fetch_add_explicit(&c->durable[i], 1, memory_order_acq_rel) + 1 ==
            REPLICAS / 2 + 1) {
            atomic_store_explicit(&c->majority[i], t, memory_order_release);
        }
    }
    return NULL;
}

static void measure_sustained(const char *dir, uint64_t lag_ns, uint64_t *ns, size_t n)
{
    struct chain c = {.n = n,
                      .lag_ns = lag_ns,
                      .start = calloc(n, sizeof(*c.start)),
                      .majority = calloc(n, sizeof(*c.majority)),
                      .durable = calloc(n, sizeof(*c.durable))};
    if (c.start == NULL || c.majority == NULL || c.durable == NULL) {
        die("calloc");
    }
    struct chain_replica rs[REPLICAS];
    for (size_t k = 0; k < REPLICAS; k++) {
        char name[64];
        snprintf(name, sizeof(name), "node-floor-chain-%zu.tmp", k);
        rs[k] = (struct chain_replica){.id = k, .c = &c};
        rs[k].fd = prepared_file(dir, name, n, rs[k].path, sizeof(rs[k].path));
    }
    for (size_t k = 0; k < REPLICAS; k++) {
        if (pthread_create(&rs[k].thread, NULL, chain_main, &rs[k]) != 0) {
            die("pthread_create");
        }
    }
    for (size_t k = 0; k < REPLICAS; k++) {
        pthread_join(rs[k].thread, NULL);
        remove_file(rs[k].fd, rs[k].path);
    }
    for (size_t i = 0; i < n; i++) {
        ns[i] = atomic_load(&c.majority[i]) - atomic_load(&c.start[i]);
    }
    free(c.start);
    free(c.majority);
    free(c.durable);
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: node_floor DIR [SAMPLES]\n");
        return 2;
    }
    long samples = argc == 3 ? strtol(argv[2], NULL, 10) : 1000;
    if (samples < 10 || samples > SAMPLES_MAX) {
        fprintf(stderr, "node_floor: SAMPLES must be 10..%d\n", SAMPLES_MAX);
        return 2;
    }
    size_t n = (size_t)samples;
    uint64_t *rtt = calloc(n, sizeof(*rtt));
    uint64_t *sync = calloc(n, sizeof(*sync));
    uint64_t *shared = calloc(n, sizeof(*shared));
    uint64_t *sustained = calloc(n, sizeof(*sustained));
    if (rtt == NULL || sync == NULL || shared == NULL || sustained == NULL) {
        die("calloc");
    }
    measure_rtt(rtt, n);
    measure_fsync(argv[1], sync, n);
    qsort(rtt, n, sizeof(*rtt), cmp_u64);
    qsort(sync, n, sizeof(*sync), cmp_u64);
    measure_shared(argv[1], rtt[n / 2], shared, n);
    qsort(shared, n, sizeof(*shared), cmp_u64);
    measure_sustained(argv[1], rtt[n / 2], sustained, n);
    qsort(sustained, n, sizeof(*sustained), cmp_u64);
    printf("rtt_p50_us=%.1f rtt_p99_us=%.1f fsync_p50_us=%.1f fsync_p99_us=%.1f "
           "shared_p50_us=%.1f shared_p99_us=%.1f sustained_p50_us=%.1f sustained_p99_us=%.1f\n",
           quantile_us(rtt, n, 0.5), quantile_us(rtt, n, 0.99), quantile_us(sync, n, 0.5),
           quantile_us(sync, n, 0.99), quantile_us(shared, n, 0.5), quantile_us(shared, n, 0.99),
           quantile_us(sustained, n, 0.5), quantile_us(sustained, n, 0.99));
    free(rtt);
    free(sync);
    free(shared);
    free(sustained);
    return 0;
}
