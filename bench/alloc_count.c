/* LD_PRELOAD counter of heap allocations (malloc, calloc, realloc; aligned_alloc is used
 * only at start-up and is not counted), for measuring allocations per committed entry
 * (bench/node-allocs.sh). SIGUSR2 writes "allocs N\n" to the file named by
 * $ALLOC_COUNT_FILE (appending), so a run can be bracketed by two readings. Counting only:
 * every call goes to libc's allocator. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic unsigned long long count;

/* calloc is called by dlsym itself: serve that one from a small static buffer. */
static char boot_buf[4096];
static size_t boot_used;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int resolving;

static void resolve(void)
{
    if (real_malloc != NULL || resolving) {
        return;
    }
    resolving = 1;
    real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
    real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
    real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
    real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
    resolving = 0;
}

void *malloc(size_t n)
{
    resolve();
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_malloc(n);
}

void *calloc(size_t a, size_t b)
{
    if (real_calloc == NULL) {
        if (resolving) {
            size_t n = (a * b + 15) & ~(size_t)15;
            if (boot_used + n > sizeof(boot_buf)) {
                return NULL;
            }
            void *p = boot_buf + boot_used;
            boot_used += n;
            return p;
        }
        resolve();
    }
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    resolve();
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    return real_realloc(p, n);
}

void free(void *p)
{
    if ((char *)p >= boot_buf && (char *)p < boot_buf + sizeof(boot_buf)) {
        return;
    }
    resolve();
    real_free(p);
}

static void dump(int sig)
{
    (void)sig;
    const char *path = getenv("ALLOC_COUNT_FILE");
    if (path == NULL) {
        return;
    }
    char line[64] = "allocs ";
    char digits[24];
    unsigned long long v = atomic_load(&count);
    int k = 0;
    do {
        digits[k++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    size_t n = 7;
    while (k > 0) {
        line[n++] = digits[--k];
    }
    line[n++] = '\n';
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd >= 0) {
        ssize_t w = write(fd, line, n);
        (void)w;
        close(fd);
    }
}

__attribute__((constructor)) static void setup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = dump;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}
