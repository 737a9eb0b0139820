/* The kernel seam on the real kernel: liburing on the worker's ring, the system clocks and
 * the few system calls the loops make outside the ring. io/kernel.h says why and what. */
#include "io/kernel.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/base/assert.h"
#include "io/config.h"
#include "io/log.h"

/* ---- the ring ---- */

struct io_uring_sqe *kernel_get_sqe(struct io_uring *ring)
{
    return io_uring_get_sqe(ring);
}

unsigned kernel_sq_space_left(struct io_uring *ring)
{
    return io_uring_sq_space_left(ring);
}

int kernel_submit(struct io_uring *ring)
{
    return io_uring_submit(ring);
}

int kernel_submit_and_wait(struct io_uring *ring, int64_t wait_ms)
{
    if (wait_ms > 0) {
        struct __kernel_timespec ts = {.tv_sec = wait_ms / 1000,
                                       .tv_nsec = (wait_ms % 1000) * 1000000};
        struct io_uring_cqe *cqe = NULL;
        return io_uring_submit_and_wait_timeout(ring, &cqe, 1, &ts, NULL);
    }
    /* No wait, but the kernel must still run completions: with DEFER_TASKRUN they are
     * posted only when we enter with GETEVENTS, which a zero-wait submit does not do.
     * Without it, a loop kept busy (a long drain, a snapshot being serialized) would see no
     * recv or WAL completion until it next slept. */
    return io_uring_submit_and_get_events(ring);
}

void kernel_wait(struct io_uring *ring, int64_t wait_ms)
{
    struct io_uring_cqe *cqe = NULL;
    struct __kernel_timespec ts = {.tv_sec = wait_ms / 1000, .tv_nsec = (wait_ms % 1000) * 1000000};
    io_uring_wait_cqe_timeout(ring, &cqe, &ts);
}

unsigned
kernel_reap(struct io_uring *ring, void (*fn)(void *arg, const struct io_uring_cqe *cqe), void *arg)
{
    unsigned head, seen = 0;
    struct io_uring_cqe *cqe;
    io_uring_for_each_cqe(ring, head, cqe)
    {
        fn(arg, cqe);
        seen++;
    }
    io_uring_cq_advance(ring, seen);
    return seen;
}

/* ---- probes ---- */

/* Long enough for a loaded machine: a local connect or a one-byte write completes at once. */
#define PROBE_WAIT_MS 5000

/* The user data of a probe's request and of the cancel that ends it (the caller's: the loop
 * ignores them should one complete after the probe gave up). */
struct probe {
    struct io_uring *ring;
    uint64_t request;
    uint64_t cancel;
};

/* An SQE for a probe: the ring has nothing else queued, so one is always free. */
static struct io_uring_sqe *probe_sqe(const struct probe *p)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(p->ring);
    RR_ASSERT(sqe != NULL);
    return sqe;
}

static void probe_cancel(const struct probe *p)
{
    struct io_uring_sqe *sqe = probe_sqe(p);
    io_uring_prep_cancel64(sqe, p->request, 0);
    io_uring_sqe_set_data64(sqe, p->cancel);
}

/* The next completion on the probed ring; false after PROBE_WAIT_MS without one. */
static bool probe_next(const struct probe *p, struct io_uring_cqe *out)
{
    int64_t deadline = node_clock_ms() + PROBE_WAIT_MS;
    for (;;) {
        struct io_uring_cqe *cqe = NULL;
        if (io_uring_peek_cqe(p->ring, &cqe) == 0 && cqe != NULL) {
            *out = *cqe;
            io_uring_cqe_seen(p->ring, cqe);
            return true;
        }
        int64_t left = deadline - node_clock_ms();
        if (left <= 0) {
            return false;
        }
        kernel_submit_and_wait(p->ring, left);
    }
}

/* Runs the probed request (submitted already, and made to complete by the caller) to its
 * end: its first completion goes to *first; a multishot request still running is cancelled
 * (cancelled: the caller has queued the cancel already), and the cancel's completion is
 * waited for too. Buffers it filled go to give_back (may be NULL). False when a completion
 * did not come in time: those still due arrive later with the caller's user data. */
static bool probe_run(const struct probe *p,
                      bool cancelled,
                      struct io_uring_cqe *first,
                      void (*give_back)(void *arg, unsigned short bid),
                      void *arg)
{
    bool got_first = false, running = true, cancel_pending = cancelled;
    while (running || cancel_pending) {
        struct io_uring_cqe cqe;
        if (!probe_next(p, &cqe)) {
            LOG_W("io_uring probe: no completion in %d ms", PROBE_WAIT_MS);
            return false;
        }
        if (cqe.user_data == p->cancel) {
            cancel_pending = false;
            continue;
        }
        RR_ASSERT(cqe.user_data == p->request);
        if (give_back != NULL && (cqe.flags & IORING_CQE_F_BUFFER) != 0) {
            give_back(arg, (unsigned short)(cqe.flags >> IORING_CQE_BUFFER_SHIFT));
        }
        if (!got_first) {
            *first = cqe;
            got_first = true;
        }
        running = (cqe.flags & IORING_CQE_F_MORE) != 0;
        if (running && !cancelled) {
            probe_cancel(p);
            cancelled = cancel_pending = true;
        }
    }
    return true;
}

/* 1 if the first completion says the multishot request ran (the result the probe expects,
 * `expected`, and more to come), 0 if the kernel refused the flag, else the probe's own
 * failure. */
static int probe_verdict(const struct io_uring_cqe *first, bool ok, bool expected)
{
    if (ok && first->res == -EINVAL) {
        return 0;
    }
    if (ok && expected && (first->flags & IORING_CQE_F_MORE) != 0) {
        return 1;
    }
    return ok && first->res < 0 ? first->res : -EIO;
}

int kernel_probe_multishot_accept(struct io_uring *ring, uint64_t request, uint64_t cancel)
{
    const struct probe p = {ring, request, cancel};
    int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0) {
        return -errno;
    }
    /* Binding only the family autobinds a unique abstract name: no file, no port. */
    struct sockaddr_un a = {.sun_family = AF_UNIX};
    socklen_t alen = sizeof(a);
    if (bind(lfd, (struct sockaddr *)&a, sizeof(sa_family_t)) != 0 || listen(lfd, 4) != 0 ||
        getsockname(lfd, (struct sockaddr *)&a, &alen) != 0) {
        int rc = -errno;
        close(lfd);
        return rc;
    }
    struct io_uring_sqe *sqe = probe_sqe(&p);
    io_uring_prep_multishot_accept(sqe, lfd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, request);
    io_uring_submit(ring);
    /* A Unix stream connect completes at once into the listen backlog. */
    int cfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int failed = cfd < 0 || connect(cfd, (struct sockaddr *)&a, alen) != 0 ? -errno : 0;
    if (failed != 0) {
        probe_cancel(&p); /* nothing to accept: end the request */
    }
    struct io_uring_cqe first = {.res = -ETIME};
    bool ok = probe_run(&p, failed != 0, &first, NULL, NULL);
    if (ok && first.res >= 0) {
        close(first.res);
    }
    if (cfd >= 0) {
        close(cfd);
    }
    close(lfd);
    return failed != 0 ? failed : probe_verdict(&first, ok, first.res >= 0);
}

int kernel_probe_multishot_recv(struct io_uring *ring,
                                uint64_t request,
                                uint64_t cancel,
                                uint16_t buf_group,
                                void (*give_back)(void *arg, unsigned short bid),
                                void *arg)
{
    const struct probe p = {ring, request, cancel};
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
        return -errno;
    }
    struct io_uring_sqe *sqe = probe_sqe(&p);
    io_uring_prep_recv_multishot(sqe, sv[0], NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = buf_group;
    io_uring_sqe_set_data64(sqe, request);
    io_uring_submit(ring);
    int failed = write(sv[1], "p", 1) != 1 ? -errno : 0;
    if (failed != 0) {
        probe_cancel(&p);
    }
    struct io_uring_cqe first = {.res = -ETIME};
    bool ok = probe_run(&p, failed != 0, &first, give_back, arg);
    close(sv[0]);
    close(sv[1]);
    return failed != 0 ? failed : probe_verdict(&first, ok, first.res == 1);
}

bool kernel_cq_pending(struct io_uring *ring)
{
    return io_uring_cq_ready(ring) != 0 || io_uring_cq_has_overflow(ring);
}

static struct io_uring_sqe *wal_get_sqe(void *ctx)
{
    return kernel_get_sqe(ctx);
}

static unsigned wal_sq_space_left(void *ctx)
{
    return kernel_sq_space_left(ctx);
}

static int wal_submit_ring(void *ctx)
{
    return kernel_submit(ctx);
}

static uint64_t wal_clock_ns(void *ctx)
{
    (void)ctx;
    return (uint64_t)node_clock_ns();
}

static int wal_close_fd(void *ctx, int fd)
{
    (void)ctx;
    return kernel_close(fd);
}

struct wal_kernel kernel_wal(struct io_uring *ring)
{
    return (struct wal_kernel){.ctx = ring,
                               .get_sqe = wal_get_sqe,
                               .sq_space_left = wal_sq_space_left,
                               .submit = wal_submit_ring,
                               .now_ns = wal_clock_ns,
                               .close = wal_close_fd};
}

/* ---- the clocks ---- */

int64_t node_clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t node_clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t node_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- sockets ---- */

int kernel_dial_socket(void)
{
    /* SOCKET_URING_OP_SETSOCKOPT (Linux 6.7) is not in the liburing this builds with, so the
     * option would be a system call anyway; IORING_OP_SOCKET would only add a loop
     * iteration before the connect. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        return -errno;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return fd;
}

static int resolve(
    const char *host, uint16_t port, int flags, struct sockaddr_in *out, char *err, size_t errcap)
{
    struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM, .ai_flags = flags};
    struct addrinfo *res = NULL;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0 || res == NULL) {
        snprintf(err, errcap, "%s", rc != 0 ? gai_strerror(rc) : "no address");
        return -1;
    }
    memcpy(out, res->ai_addr, sizeof(*out));
    freeaddrinfo(res);
    return 0;
}

int kernel_resolve(const char *host, uint16_t port, struct sockaddr_in *out)
{
    char err[96];
    if (resolve(host, port, 0, out, err, sizeof(err)) != 0) {
        LOG_E("cannot resolve %s: %s", host, err);
        return -1;
    }
    return 0;
}

int kernel_resolve_numeric(const char *host, uint16_t port, struct sockaddr_in *out)
{
    char err[96];
    return resolve(host, port, AI_NUMERICHOST, out, err, sizeof(err));
}

int kernel_resolve_name(
    const char *host, uint16_t port, struct sockaddr_in *out, char *err, size_t errcap)
{
    return resolve(host, port, 0, out, err, errcap);
}

/* The client's address as "ip:port" into addr, and whether it is a loopback one
 * (127.0.0.0/8, ::1, or IPv4-mapped loopback): protected mode accepts only these. */
bool kernel_peer_address(int fd, char *addr, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    snprintf(addr, cap, "?:0");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) != 0) {
        return false;
    }
    char ip[INET6_ADDRSTRLEN] = "?";
    if (ss.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        snprintf(addr, cap, "%s:%u", ip, ntohs(a->sin_port));
        return (ntohl(a->sin_addr.s_addr) >> 24) == 127;
    }
    if (ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *a6 = (const struct sockaddr_in6 *)&ss;
        const struct in6_addr *a = &a6->sin6_addr;
        inet_ntop(AF_INET6, a, ip, sizeof(ip));
        snprintf(addr, cap, "%s:%u", ip, ntohs(a6->sin6_port));
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return ss.ss_family == AF_UNIX;
}

/* ---- files ---- */

int kernel_close(int fd)
{
    return close(fd) == 0 ? 0 : -errno;
}

int kernel_replace_file(const char *dir, const char *name, const char *text, size_t len)
{
    char path[NODE_PATH_MAX + 32], tmp[NODE_PATH_MAX + 40];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len || fsync(fd) != 0) {
        LOG_E("cannot write %s: %s", tmp, strerror(errno));
        if (fd >= 0) {
            close(fd);
        }
        return -1;
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        LOG_E("cannot create %s: %s", path, strerror(errno));
        return -1;
    }
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0) {
        LOG_E("cannot sync directory %s: %s", dir, strerror(errno));
        if (dfd >= 0) {
            close(dfd);
        }
        return -1;
    }
    close(dfd);
    return 0;
}

uint64_t kernel_resident_bytes(int statm_fd)
{
    /* A blocking pread, not IORING_OP_READ: procfs files cannot be read without blocking, so
     * the ring would hand the read to an io-wq thread (measured: one iou-wrk thread per
     * read), where it would queue behind the WAL's fsyncs (wal_config.iowq_max_workers). */
    char buf[128];
    ssize_t n = statm_fd >= 0 ? pread(statm_fd, buf, sizeof(buf) - 1, 0) : -1;
    if (n <= 0) {
        return 0;
    }
    buf[n] = '\0';
    unsigned long long size = 0, resident = 0;
    if (sscanf(buf, "%llu %llu", &size, &resident) != 2) {
        return 0;
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

void kernel_log_write(int fd, const char *line, size_t len)
{
    ssize_t w = write(fd, line, len);
    (void)w;
}

/* ---- the process ---- */

uint32_t kernel_pid(void)
{
    return (uint32_t)getpid();
}

void kernel_stop_process(void)
{
    kill(getpid(), SIGTERM);
}
