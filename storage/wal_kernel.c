/* The WAL's kernel seam on a ring its owner drives directly (tests, tools, benchmarks):
 * liburing, CLOCK_MONOTONIC and close(2). The node passes its own (io/kernel.c), so that
 * everything it does with the kernel goes through one module. */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "storage/wal.h"

static struct io_uring_sqe *ring_get_sqe(void *ctx)
{
    return io_uring_get_sqe(ctx);
}

static unsigned ring_sq_space_left(void *ctx)
{
    return io_uring_sq_space_left(ctx);
}

static int ring_submit(void *ctx)
{
    return io_uring_submit(ctx);
}

static uint64_t ring_now_ns(void *ctx)
{
    (void)ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int ring_close(void *ctx, int fd)
{
    (void)ctx;
    return close(fd) == 0 ? 0 : -errno;
}

struct wal_kernel wal_kernel_ring(struct io_uring *ring)
{
    return (struct wal_kernel){.ctx = ring,
                               .get_sqe = ring_get_sqe,
                               .sq_space_left = ring_sq_space_left,
                               .submit = ring_submit,
                               .now_ns = ring_now_ns,
                               .close = ring_close};
}
