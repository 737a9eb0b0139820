/* SLOWLOG: the slowest client requests, as Redis keeps them (SLOWLOG GET / LEN / RESET),
 * measured from the moment a request is parsed to the moment its reply is ready: for a
 * replicated write that includes replication and the fsyncs, which is what a client waits
 * for. Each worker keeps its own bounded ring; SLOWLOG merges them by entry id. The ring
 * has a mutex because SLOWLOG on one worker reads the others' rings; a request takes it
 * only when it is slow enough to be recorded. */
#ifndef RR_IO_SLOWLOG_H
#define RR_IO_SLOWLOG_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "io/service/reply.h"

#define SLOWLOG_ARGS_MAX    32  /* arguments kept per entry (Redis's SLOWLOG_ENTRY_MAX_ARGC) */
#define SLOWLOG_ARG_BYTES   128 /* bytes kept per argument (SLOWLOG_ENTRY_MAX_STRING) */
#define SLOWLOG_LEN_CEILING 100000
#define SLOWLOG_ADDR_BYTES  64
#define SLOWLOG_NAME_BYTES  64

struct slowlog_entry {
    uint64_t id;
    int64_t time_s;       /* wall clock, seconds */
    uint64_t duration_us; /* parse to reply */
    uint32_t argc;        /* arguments kept (the last one may say how many more there were) */
    uint32_t argl[SLOWLOG_ARGS_MAX];
    char *args;        /* the arguments back to back; malloc'd, kept when the slot is reused */
    uint32_t args_cap; /* bytes at args */
    char addr[SLOWLOG_ADDR_BYTES];
    char name[SLOWLOG_NAME_BYTES];
};

/* A slot's argument buffer stays with the slot when its entry is replaced, so that a busy
 * node recording many slow requests reuses memory instead of allocating per request. */
struct slowlog {
    pthread_mutex_t mu;
    struct slowlog_entry *ring; /* cap slots; the newest at (head + count - 1) % cap */
    uint32_t cap;
    uint32_t head;
    uint32_t count;
};

/* cap: slowlog-max-len (0 keeps nothing). Returns 0 or RR_ENOMEM. */
int slowlog_init(struct slowlog *s, uint32_t cap);
void slowlog_free(struct slowlog *s);

/* Records one request (the oldest entry goes when the ring is full). id comes from a
 * node-wide counter so that entries of all workers order. */
void slowlog_add(struct slowlog *s,
                 uint64_t id,
                 uint64_t duration_us,
                 uint32_t argc,
                 const uint8_t *const argv[],
                 const uint32_t argl[],
                 const char *addr,
                 const char *name);

/* SLOWLOG GET count (count < 0: all) over several workers' logs, newest first. */
void slowlog_reply_get(struct slowlog *const logs[], uint32_t n, int64_t count, struct reply *r);
uint64_t slowlog_len(struct slowlog *const logs[], uint32_t n);
void slowlog_reset(struct slowlog *const logs[], uint32_t n);

#endif
