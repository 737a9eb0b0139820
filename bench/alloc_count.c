/* LD_PRELOAD counter of heap allocations (malloc, calloc, realloc; aligned_alloc is used
 * only at start-up and is not counted), for measuring allocations per committed entry
 * (bench/node-allocs.sh). SIGUSR2 writes "allocs N\n" to the file named by $ALLOC_COUNT_FILE
 * (appending), so a run can be bracketed by two readings; with ALLOC_COUNT_SITES=1 it also writes
 * one line per call site, "site OBJECT OFFSET N" (the caller's return address as an offset in its
 * object, for addr2line), so the script can say where the allocations come from. Counting only:
 * every call goes to libc's allocator. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static _Atomic unsigned long long count;

/* Call sites: open addressing on the return address, never resized; a full table stops
 * recording new sites (the total count stays exact). */
#define SITES 8192u
static _Atomic uintptr_t site_addr[SITES];
static _Atomic unsigned long long site_count[SITES];
static int sites_on = -1;

static void count_site(void *ra)
{
    if (sites_on < 0) {
        const char *e = getenv("ALLOC_COUNT_SITES");
        sites_on = e != NULL && e[0] == '1';
    }
    if (!sites_on) {
        return;
    }
    uintptr_t a = (uintptr_t)ra;
    uint32_t h = (uint32_t)((a * 0x9E3779B97F4A7C15ull) >> 51);
    for (uint32_t i = 0; i < 64; i++) {
        uint32_t k = (h + i) & (SITES - 1);
        uintptr_t cur = atomic_load_explicit(&site_addr[k], memory_order_relaxed);
        if (cur == 0) {
            uintptr_t zero = 0;
            if (!atomic_compare_exchange_strong(&site_addr[k], &zero, a) && zero != a) {
                continue;
            }
            cur = a;
        }
        if (cur == a) {
            atomic_fetch_add_explicit(&site_count[k], 1, memory_order_relaxed);
            return;
        }
    }
}

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
    count_site(__builtin_return_address(0));
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
    count_site(__builtin_return_address(0));
    return real_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
    resolve();
    atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
    count_site(__builtin_return_address(0));
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
        for (uint32_t k = 0; sites_on > 0 && k < SITES; k++) {
            uintptr_t a = atomic_load(&site_addr[k]);
            Dl_info info;
            if (a == 0 || dladdr((void *)a, &info) == 0 || info.dli_fname == NULL) {
                continue;
            }
            char buf[512];
            int m = snprintf(buf, sizeof(buf), "site %s 0x%lx %llu\n", info.dli_fname,
                             (unsigned long)(a - 1 - (uintptr_t)info.dli_fbase),
                             atomic_load(&site_count[k]));
            if (m > 0 && (size_t)m < sizeof(buf)) {
                w = write(fd, buf, (size_t)m);
            }
        }
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
