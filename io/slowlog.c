/* The slow request log (slowlog.h). */
#include "io/slowlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "io/kernel.h"

int slowlog_init(struct slowlog *s, uint32_t cap)
{
    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    s->cap = cap;
    if (cap > 0) {
        s->ring = calloc(cap, sizeof(*s->ring));
        if (s->ring == NULL) {
            return RR_ENOMEM;
        }
    }
    return 0;
}

void slowlog_free(struct slowlog *s)
{
    for (uint32_t i = 0; i < s->cap; i++) {
        free(s->ring[i].args);
    }
    free(s->ring);
    pthread_mutex_destroy(&s->mu);
    memset(s, 0, sizeof(*s));
}

/* The longest an entry's arguments get: each cut to SLOWLOG_ARG_BYTES plus its note. */
#define ARG_NOTE_BYTES 40
#define ENTRY_ARGS_MAX (SLOWLOG_ARGS_MAX * (SLOWLOG_ARG_BYTES + ARG_NOTE_BYTES))

/* Packs the arguments as Redis keeps them: at most SLOWLOG_ARGS_MAX, the last one replaced
 * by "... (N more arguments)" when there were more; arguments longer than SLOWLOG_ARG_BYTES
 * cut with "... (N more bytes)". Returns the bytes written to out (ENTRY_ARGS_MAX). */
static size_t pack_args(uint32_t argc,
                        const uint8_t *const argv[],
                        const uint32_t argl[],
                        char *out,
                        uint32_t out_argl[SLOWLOG_ARGS_MAX],
                        uint32_t *out_argc)
{
    uint32_t kept = argc > SLOWLOG_ARGS_MAX ? SLOWLOG_ARGS_MAX : argc;
    size_t used = 0;
    for (uint32_t i = 0; i < kept; i++) {
        char *at = out + used;
        size_t n;
        if (kept < argc && i == kept - 1) {
            n = (size_t)snprintf(at, ARG_NOTE_BYTES, "... (%u more arguments)", argc - kept + 1);
        } else if (argl[i] > SLOWLOG_ARG_BYTES) {
            memcpy(at, argv[i], SLOWLOG_ARG_BYTES);
            n = SLOWLOG_ARG_BYTES + (size_t)snprintf(at + SLOWLOG_ARG_BYTES, ARG_NOTE_BYTES,
                                                     "... (%u more bytes)",
                                                     argl[i] - SLOWLOG_ARG_BYTES);
        } else {
            memcpy(at, argv[i], argl[i]);
            n = argl[i];
        }
        RR_ASSERT(n <= SLOWLOG_ARG_BYTES + ARG_NOTE_BYTES);
        out_argl[i] = (uint32_t)n;
        used += n;
    }
    *out_argc = kept;
    return used;
}

void slowlog_add(struct slowlog *s,
                 uint64_t id,
                 uint64_t duration_us,
                 uint32_t argc,
                 const uint8_t *const argv[],
                 const uint32_t argl[],
                 const char *addr,
                 const char *name)
{
    if (s->cap == 0) {
        return;
    }
    char args[ENTRY_ARGS_MAX];
    uint32_t packed_argl[SLOWLOG_ARGS_MAX];
    uint32_t packed_argc;
    size_t bytes = pack_args(argc, argv, argl, args, packed_argl, &packed_argc);
    int64_t now_s = node_wall_ms() / 1000;
    pthread_mutex_lock(&s->mu);
    if (s->count == s->cap) {
        s->head = (s->head + 1) % s->cap;
        s->count--;
    }
    struct slowlog_entry *e = &s->ring[(s->head + s->count) % s->cap];
    if (e->args_cap < bytes) {
        char *grown = realloc(e->args, bytes);
        if (grown == NULL) {
            pthread_mutex_unlock(&s->mu);
            return; /* no memory: not recorded (the slot stays free) */
        }
        e->args = grown;
        e->args_cap = (uint32_t)bytes;
    }
    if (bytes > 0) {
        memcpy(e->args, args, bytes);
    }
    e->id = id;
    e->time_s = now_s;
    e->duration_us = duration_us;
    e->argc = packed_argc;
    memcpy(e->argl, packed_argl, packed_argc * sizeof(e->argl[0]));
    snprintf(e->addr, sizeof(e->addr), "%s", addr);
    snprintf(e->name, sizeof(e->name), "%s", name);
    s->count++;
    pthread_mutex_unlock(&s->mu);
}

static void lock_all(struct slowlog *const logs[], uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        pthread_mutex_lock(&logs[i]->mu);
    }
}

static void unlock_all(struct slowlog *const logs[], uint32_t n)
{
    for (uint32_t i = n; i > 0; i--) {
        pthread_mutex_unlock(&logs[i - 1]->mu);
    }
}

static void reply_entry(const struct slowlog_entry *e, struct reply *r)
{
    reply_array(r, 6);
    reply_int(r, (int64_t)e->id);
    reply_int(r, e->time_s);
    reply_int(r, (int64_t)e->duration_us);
    reply_array(r, e->argc);
    size_t at = 0;
    for (uint32_t i = 0; i < e->argc; i++) {
        reply_bulk(r, e->args + at, e->argl[i]);
        at += e->argl[i];
    }
    reply_bulk_cstr(r, e->addr);
    reply_bulk_cstr(r, e->name);
}

void slowlog_reply_get(struct slowlog *const logs[], uint32_t n, int64_t count, struct reply *r)
{
    lock_all(logs, n);
    uint64_t total = 0;
    for (uint32_t i = 0; i < n; i++) {
        total += logs[i]->count;
    }
    uint64_t want = count < 0 || (uint64_t)count > total ? total : (uint64_t)count;
    reply_array(r, (int64_t)want);
    /* Newest first: each ring is in id order, so repeatedly take the largest newest-unsent
     * entry among the rings (n is the worker count: small). */
    uint32_t taken[64] = {0};
    for (uint64_t k = 0; k < want; k++) {
        const struct slowlog_entry *best = NULL;
        uint32_t best_i = 0;
        for (uint32_t i = 0; i < n && i < 64; i++) {
            const struct slowlog *s = logs[i];
            if (taken[i] == s->count) {
                continue;
            }
            const struct slowlog_entry *e = &s->ring[(s->head + s->count - 1 - taken[i]) % s->cap];
            if (best == NULL || e->id > best->id) {
                best = e;
                best_i = i;
            }
        }
        if (best == NULL) {
            break; /* cannot happen: want <= the entries there are */
        }
        taken[best_i]++;
        reply_entry(best, r);
    }
    unlock_all(logs, n);
}

uint64_t slowlog_len(struct slowlog *const logs[], uint32_t n)
{
    uint64_t total = 0;
    lock_all(logs, n);
    for (uint32_t i = 0; i < n; i++) {
        total += logs[i]->count;
    }
    unlock_all(logs, n);
    return total;
}

void slowlog_reset(struct slowlog *const logs[], uint32_t n)
{
    lock_all(logs, n);
    for (uint32_t i = 0; i < n; i++) {
        struct slowlog *s = logs[i];
        s->head = 0; /* the slots keep their argument buffers */
        s->count = 0;
    }
    unlock_all(logs, n);
}
