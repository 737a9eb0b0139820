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
 * usage: node_floor DIR [SAMPLES]      (default 1000; the file is DIR/node-floor.tmp and is
 *                                       removed at the end)
 * prints one line: rtt_p50_us=.. rtt_p99_us=.. fsync_p50_us=.. fsync_p99_us=..
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
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

static void measure_fsync(const char *dir, uint64_t *ns, size_t n)
{
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/node-floor.tmp", dir) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        die("path");
    }
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        die(path);
    }
    static char block[WRITE_BYTES];
    /* Prepare: every block written once and synced, so the timed writes overwrite
     * allocated, initialised blocks. */
    memset(block, 0, sizeof(block));
    for (size_t i = 0; i < n; i++) {
        if (pwrite(fd, block, sizeof(block), (off_t)(i * WRITE_BYTES)) != WRITE_BYTES) {
            die("pwrite (prepare)");
        }
    }
    if (fsync(fd) != 0) {
        die("fsync (prepare)");
    }
    memset(block, 'w', sizeof(block));
    for (size_t i = 0; i < n; i++) {
        uint64_t t0 = now_ns();
        if (pwrite(fd, block, sizeof(block), (off_t)(i * WRITE_BYTES)) != WRITE_BYTES) {
            die("pwrite");
        }
        if (fdatasync(fd) != 0) {
            die("fdatasync");
        }
        ns[i] = now_ns() - t0;
    }
    close(fd);
    if (unlink(path) != 0) {
        die("unlink");
    }
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
    if (rtt == NULL || sync == NULL) {
        die("calloc");
    }
    measure_rtt(rtt, n);
    measure_fsync(argv[1], sync, n);
    qsort(rtt, n, sizeof(*rtt), cmp_u64);
    qsort(sync, n, sizeof(*sync), cmp_u64);
    printf("rtt_p50_us=%.1f rtt_p99_us=%.1f fsync_p50_us=%.1f fsync_p99_us=%.1f\n",
           quantile_us(rtt, n, 0.5), quantile_us(rtt, n, 0.99), quantile_us(sync, n, 0.5),
           quantile_us(sync, n, 0.99));
    free(rtt);
    free(sync);
    return 0;
}
