/* The slow request log (slowlog.h). */
#include "io/slowlog.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static void entry_clear(struct slowlog_entry *e)
{
    for (uint32_t i = 0; i < e->argc; i++) {
        free(e->argv[i]);
    }
    free(e->argv);
    free(e->argl);
    memset(e, 0, sizeof(*e));
}

void slowlog_free(struct slowlog *s)
{
    for (uint32_t i = 0; i < s->count; i++) {
        entry_clear(&s->ring[(s->head + i) % s->cap]);
    }
    free(s->ring);
    pthread_mutex_destroy(&s->mu);
    memset(s, 0, sizeof(*s));
}

static char *copy_string(const void *p, size_t n)
{
    char *c = malloc(n + 1);
    if (c != NULL) {
        memcpy(c, p, n);
        c[n] = '\0';
    }
    return c;
}

/* Fills e as Redis does: at most SLOWLOG_ARGS_MAX arguments, the last one replaced by
 * "... (N more arguments)" when there were more; arguments longer than SLOWLOG_ARG_BYTES
 * cut with "... (N more bytes)". False if memory ran out (e is left empty). */
static bool entry_fill(struct slowlog_entry *e,
                       uint32_t argc,
                       const uint8_t *const argv[],
                       const uint32_t argl[])
{
    uint32_t kept = argc > SLOWLOG_ARGS_MAX ? SLOWLOG_ARGS_MAX : argc;
    e->argv = calloc(kept, sizeof(*e->argv));
    e->argl = calloc(kept, sizeof(*e->argl));
    if (e->argv == NULL || e->argl == NULL) {
        free(e->argv);
        free(e->argl);
        e->argv = NULL;
        e->argl = NULL;
        return false;
    }
    for (uint32_t i = 0; i < kept; i++) {
        char buf[SLOWLOG_ARG_BYTES + 64];
        size_t n;
        if (kept < argc && i == kept - 1) {
            n = (size_t)snprintf(buf, sizeof(buf), "... (%u more arguments)", argc - kept + 1);
        } else if (argl[i] > SLOWLOG_ARG_BYTES) {
            memcpy(buf, argv[i], SLOWLOG_ARG_BYTES);
            n = SLOWLOG_ARG_BYTES +
                (size_t)snprintf(buf + SLOWLOG_ARG_BYTES, sizeof(buf) - SLOWLOG_ARG_BYTES,
                                 "... (%u more bytes)", argl[i] - SLOWLOG_ARG_BYTES);
        } else {
            memcpy(buf, argv[i], argl[i]);
            n = argl[i];
        }
        e->argv[i] = copy_string(buf, n);
        if (e->argv[i] == NULL) {
            e->argc = i;
            entry_clear(e);
            return false;
        }
        e->argl[i] = (uint32_t)n;
        e->argc = i + 1;
    }
    return true;
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
    struct slowlog_entry e = {
        .id = id, .time_s = node_wall_ms() / 1000, .duration_us = duration_us};
    snprintf(e.addr, sizeof(e.addr), "%s", addr);
    snprintf(e.name, sizeof(e.name), "%s", name);
    if (!entry_fill(&e, argc, argv, argl)) {
        return; /* no memory: not recorded */
    }
    pthread_mutex_lock(&s->mu);
    if (s->count == s->cap) {
        entry_clear(&s->ring[s->head]);
        s->head = (s->head + 1) % s->cap;
        s->count--;
    }
    s->ring[(s->head + s->count) % s->cap] = e;
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
    for (uint32_t i = 0; i < e->argc; i++) {
        reply_bulk(r, e->argv[i], e->argl[i]);
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
        for (uint32_t k = 0; k < s->count; k++) {
            entry_clear(&s->ring[(s->head + k) % s->cap]);
        }
        s->head = 0;
        s->count = 0;
    }
    unlock_all(logs, n);
}
