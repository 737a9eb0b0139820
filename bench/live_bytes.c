/* LD_PRELOAD accounting of live heap bytes per allocation site, for finding where an idle
 * node's memory goes (bench/node-memory.sh). Every malloc, calloc, realloc, aligned_alloc,
 * posix_memalign and memalign is recorded with its caller's return address, its requested
 * size and malloc_usable_size; free forgets it. SIGUSR2 appends to $LIVE_BYTES_FILE one line
 * per site ("site ADDR OBJECT+OFFSET count N requested B usable U"), the process's
 * mallinfo2 and VmRSS, then "end". Every call still goes to libc's allocator, so the heap
 * is laid out as without the counter (its own tables live in shared anonymous mappings,
 * which /proc/PID/smaps names "/dev/zero (deleted)" and never merges with the heap's).
 *
 * One lock serialises the bookkeeping: fine for an idle node, slow under load. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Open addressing; a node at G=4096 has well under 1M live blocks. Odd sizes (not powers of
 * two) make the tables' mappings easy to tell apart in /proc/PID/smaps: 64 MiB + 64 KiB and
 * 512 KiB + 4 KiB. */
#define PTR_SLOTS  ((1u << 22) + 4096)
#define SITE_SLOTS ((1u << 14) + 128)

struct ptr_slot {
    uintptr_t p; /* 0: empty; 1: deleted */
    uint32_t site;
    uint32_t size;
};

struct site {
    uintptr_t addr;
    uint64_t count, requested, usable;
    uint64_t peak;   /* highest `usable` seen: a burst's footprint */
    uint64_t allocs; /* allocations made so far (realloc counts) */
};

static struct ptr_slot *ptrs;
static struct site *sites;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static __thread int inside; /* our own calls into libc are not recorded */

static char boot_buf[4096];
static size_t boot_used;
static int resolving;
static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static void *(*real_aligned_alloc)(size_t, size_t);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_memalign)(size_t, size_t);

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
    real_aligned_alloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
    real_posix_memalign = (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
    real_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
    ptrs = mmap(NULL, sizeof(*ptrs) * PTR_SLOTS, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    sites = mmap(NULL, sizeof(*sites) * SITE_SLOTS, PROT_READ | PROT_WRITE,
                 MAP_SHARED | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    resolving = 0;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

static uint32_t site_of(uintptr_t addr)
{
    uint32_t i = (uint32_t)mix(addr) % SITE_SLOTS;
    while (sites[i].addr != 0 && sites[i].addr != addr) {
        i = (i + 1) % SITE_SLOTS;
    }
    sites[i].addr = addr;
    return i;
}

static void record(void *p, size_t size, uintptr_t caller)
{
    if (p == NULL || ptrs == MAP_FAILED || ptrs == NULL || inside) {
        return;
    }
    inside = 1;
    size_t usable = malloc_usable_size(p);
    pthread_mutex_lock(&lock);
    uint32_t s = site_of(caller);
    sites[s].count++;
    sites[s].requested += size;
    sites[s].usable += usable;
    sites[s].allocs++;
    if (sites[s].usable > sites[s].peak) {
        sites[s].peak = sites[s].usable;
    }
    uint32_t i = (uint32_t)mix((uintptr_t)p) % PTR_SLOTS;
    while (ptrs[i].p > 1) {
        i = (i + 1) % PTR_SLOTS;
    }
    ptrs[i] = (struct ptr_slot){(uintptr_t)p, s, (uint32_t)size};
    pthread_mutex_unlock(&lock);
    inside = 0;
}

static void forget(void *p)
{
    if (p == NULL || ptrs == MAP_FAILED || ptrs == NULL || inside) {
        return;
    }
    inside = 1;
    size_t usable = malloc_usable_size(p);
    pthread_mutex_lock(&lock);
    uint32_t i = (uint32_t)mix((uintptr_t)p) % PTR_SLOTS;
    while (ptrs[i].p != 0 && ptrs[i].p != (uintptr_t)p) {
        i = (i + 1) % PTR_SLOTS;
    }
    if (ptrs[i].p == (uintptr_t)p) {
        struct site *st = &sites[ptrs[i].site];
        st->count--;
        st->requested -= ptrs[i].size;
        st->usable -= usable;
        ptrs[i].p = 1;
    }
    pthread_mutex_unlock(&lock);
    inside = 0;
}

#define CALLER ((uintptr_t)__builtin_return_address(0))

void *malloc(size_t n)
{
    resolve();
    void *p = real_malloc(n);
    record(p, n, CALLER);
    return p;
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
    void *p = real_calloc(a, b);
    record(p, a * b, CALLER);
    return p;
}

void *realloc(void *old, size_t n)
{
    resolve();
    forget(old);
    void *p = real_realloc(old, n);
    if (p == NULL && n != 0) {
        record(old, 0, CALLER); /* still live; size unknown now */
        return NULL;
    }
    record(p, n, CALLER);
    return p;
}

void free(void *p)
{
    if ((char *)p >= boot_buf && (char *)p < boot_buf + sizeof(boot_buf)) {
        return;
    }
    resolve();
    forget(p);
    real_free(p);
}

void *aligned_alloc(size_t a, size_t n)
{
    resolve();
    void *p = real_aligned_alloc(a, n);
    record(p, n, CALLER);
    return p;
}

int posix_memalign(void **out, size_t a, size_t n)
{
    resolve();
    int rc = real_posix_memalign(out, a, n);
    if (rc == 0) {
        record(*out, n, CALLER);
    }
    return rc;
}

void *memalign(size_t a, size_t n)
{
    resolve();
    void *p = real_memalign(a, n);
    record(p, n, CALLER);
    return p;
}

static long vm_rss_kb(void)
{
    char buf[4096];
    int fd = open("/proc/self/status", O_RDONLY);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return -1;
    }
    buf[n] = '\0';
    char *s = strstr(buf, "VmRSS:");
    return s != NULL ? strtol(s + 6, NULL, 10) : -1;
}

/* Runs on its own thread (dumper), woken by the signal handler: a handler that took the lock
 * could deadlock with the interrupted thread holding it. */
static void dump(void)
{
    const char *path = getenv("LIVE_BYTES_FILE");
    if (path == NULL || sites == NULL) {
        return;
    }
    inside = 1;
    FILE *f = fopen(path, "a");
    if (f == NULL) {
        inside = 0;
        return;
    }
    pthread_mutex_lock(&lock);
    for (uint32_t i = 0; i < SITE_SLOTS; i++) {
        struct site *s = &sites[i];
        if (s->addr == 0 || s->allocs == 0) {
            continue;
        }
        Dl_info di;
        const char *obj = "?";
        uintptr_t off = s->addr;
        if (dladdr((void *)s->addr, &di) != 0 && di.dli_fname != NULL) {
            obj = di.dli_fname;
            off = s->addr - (uintptr_t)di.dli_fbase;
        }
        fprintf(f,
                "site %#lx %s+%#lx count %llu requested %llu usable %llu peak %llu allocs %llu\n",
                (unsigned long)s->addr, obj, (unsigned long)off, (unsigned long long)s->count,
                (unsigned long long)s->requested, (unsigned long long)s->usable,
                (unsigned long long)s->peak, (unsigned long long)s->allocs);
    }
    /* Blocks of 64 KiB and more one by one, with how much of them is resident (mincore):
     * big buffers are where a burst's high-water mark can stay. */
    long page = sysconf(_SC_PAGESIZE);
    static unsigned char vec[1 << 16];
    for (uint32_t i = 0; i < PTR_SLOTS; i++) {
        if (ptrs[i].p <= 1 || ptrs[i].size < (64u << 10)) {
            continue;
        }
        uintptr_t lo = ptrs[i].p & ~(uintptr_t)(page - 1);
        uintptr_t hi = (ptrs[i].p + ptrs[i].size + (uintptr_t)page - 1) & ~(uintptr_t)(page - 1);
        size_t pages = (hi - lo) / (size_t)page, resident = 0;
        for (size_t off = 0; off < pages; off += sizeof(vec)) {
            size_t n = pages - off < sizeof(vec) ? pages - off : sizeof(vec);
            if (mincore((void *)(lo + off * (size_t)page), n * (size_t)page, vec) == 0) {
                for (size_t k = 0; k < n; k++) {
                    resident += vec[k] & 1;
                }
            }
        }
        Dl_info di;
        const char *obj = "?";
        uintptr_t off = sites[ptrs[i].site].addr;
        if (dladdr((void *)off, &di) != 0 && di.dli_fname != NULL) {
            obj = di.dli_fname;
            off -= (uintptr_t)di.dli_fbase;
        }
        fprintf(f, "big %#lx %s+%#lx size %u resident %zu\n", (unsigned long)ptrs[i].p, obj,
                (unsigned long)off, ptrs[i].size, resident * (size_t)page);
    }
    /* With LIVE_BYTES_BLOCKS set, every smaller block too (address, size, site), for
     * finding out which blocks keep which heap pages resident. */
    if (getenv("LIVE_BYTES_BLOCKS") != NULL) {
        for (uint32_t i = 0; i < PTR_SLOTS; i++) {
            if (ptrs[i].p > 1 && ptrs[i].size < (64u << 10)) {
                fprintf(f, "blk %#lx %u %#lx\n", (unsigned long)ptrs[i].p, ptrs[i].size,
                        (unsigned long)sites[ptrs[i].site].addr);
            }
        }
    }
    pthread_mutex_unlock(&lock);
    fprintf(f, "tables %#lx %zu %#lx %zu\n", (unsigned long)ptrs, sizeof(*ptrs) * PTR_SLOTS,
            (unsigned long)sites, sizeof(*sites) * SITE_SLOTS);
    struct mallinfo2 mi = mallinfo2();
    fprintf(f, "mallinfo arena %zu hblkhd %zu uordblks %zu fordblks %zu keepcost %zu\n", mi.arena,
            mi.hblkhd, mi.uordblks, mi.fordblks, mi.keepcost);
    fprintf(f, "vmrss_kb %ld\nend\n", vm_rss_kb());
    fclose(f);
    inside = 0;
}

static sem_t dump_sem;

static void *dumper(void *arg)
{
    (void)arg;
    for (;;) {
        if (sem_wait(&dump_sem) == 0) {
            dump();
        }
    }
    return NULL;
}

static void on_signal(int sig)
{
    (void)sig;
    sem_post(&dump_sem);
}

__attribute__((constructor)) static void setup(void)
{
    sem_init(&dump_sem, 0, 0);
    pthread_t t;
    inside = 1;
    pthread_create(&t, NULL, dumper, NULL);
    inside = 0;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR2, &sa, NULL);
}
