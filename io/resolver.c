/* The node's resolver thread: host names of peers looked up off the loops (io/resolver.h
 * says what and why; docs/node.md "The kernel seam"). One mutex guards the request queue
 * and the answers; a worker takes it when it posts (a peer to dial whose host is a name)
 * and, on its tick, only when an atomic count says an answer for it is waiting. */
#include "io/resolver.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/base/assert.h"
#include "io/kernel.h"
#include "io/log.h"
#include "io/node.h"

_Static_assert(RESOLVE_HOST_MAX == NODE_HOST_MAX, "a request holds a node set's host");

struct resolve_request {
    uint32_t worker;             /* who asked: its answers go to it */
    uint32_t peer;               /* the peer id, returned with the answer */
    uint64_t gen;                /* the peer's generation, returned with the answer */
    uint16_t port;               /* the peer port of that worker */
    char host[RESOLVE_HOST_MAX]; /* the name to look up */
};

struct resolver {
    pthread_t thread;
    pthread_mutex_t mu; /* guards everything below but `ready` */
    pthread_cond_t cv;  /* a request came, or stop (CLOCK_MONOTONIC for the test delay) */
    bool stop;          /* resolver_stop: the thread ends */
    uint32_t workers;
    uint32_t delay_ms; /* test-resolve-delay-ms; 0: none */
    /* Requests not started yet: a ring, q_head the oldest. */
    struct resolve_request q[RESOLVE_QUEUE_MAX];
    uint32_t q_head, q_len;
    /* Answers not collected yet, oldest first, each with its worker (done_worker). */
    struct resolve_result done[RESOLVE_QUEUE_MAX];
    uint32_t done_worker[RESOLVE_QUEUE_MAX];
    uint32_t done_len;
    /* Posted and not collected: queued + the one being looked up + answers waiting. Never
     * over RESOLVE_QUEUE_MAX, so neither array can overflow. */
    uint32_t outstanding;
    _Atomic uint32_t ready[NODE_WORKERS_MAX]; /* answers waiting per worker */
};

/* The test delay: waits delay_ms or until stop, with mu held (the wait releases it). */
static void test_delay(struct resolver *r)
{
    int64_t until_ns = node_clock_ns() + (int64_t)r->delay_ms * 1000000;
    struct timespec ts = {.tv_sec = until_ns / 1000000000, .tv_nsec = until_ns % 1000000000};
    while (!r->stop && node_clock_ns() < until_ns) {
        pthread_cond_timedwait(&r->cv, &r->mu, &ts);
    }
}

static void *resolver_main(void *arg)
{
    struct resolver *r = arg;
    log_set_worker(-1);
    pthread_mutex_lock(&r->mu);
    /* The thread's loop: bounded by the requests posted, it ends on stop. */
    while (!r->stop) {
        if (r->q_len == 0) {
            pthread_cond_wait(&r->cv, &r->mu);
            continue;
        }
        struct resolve_request req = r->q[r->q_head];
        r->q_head = (r->q_head + 1) % RESOLVE_QUEUE_MAX;
        r->q_len--;
        if (r->delay_ms > 0) {
            test_delay(r);
            if (r->stop) {
                break;
            }
        }
        pthread_mutex_unlock(&r->mu);
        struct resolve_result res = {.peer = req.peer, .gen = req.gen};
        res.ok =
            kernel_resolve_name(req.host, req.port, &res.addr, res.error, sizeof(res.error)) == 0;
        pthread_mutex_lock(&r->mu);
        RR_ASSERT(r->done_len < RESOLVE_QUEUE_MAX);
        r->done[r->done_len] = res;
        r->done_worker[r->done_len] = req.worker;
        r->done_len++;
        atomic_fetch_add_explicit(&r->ready[req.worker], 1, memory_order_release);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

struct resolver *resolver_start(uint32_t workers, uint32_t delay_ms)
{
    RR_ASSERT(workers >= 1 && workers <= NODE_WORKERS_MAX);
    struct resolver *r = calloc(1, sizeof(*r));
    RR_ASSERT(r != NULL);
    r->workers = workers;
    r->delay_ms = delay_ms;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cv, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&r->mu, NULL);
    int rc = pthread_create(&r->thread, NULL, resolver_main, r);
    if (rc != 0) {
        LOG_E("cannot start the resolver thread: %s", strerror(rc));
        pthread_cond_destroy(&r->cv);
        pthread_mutex_destroy(&r->mu);
        free(r);
        return NULL;
    }
    return r;
}

void resolver_stop(struct resolver *r)
{
    if (r == NULL) {
        return;
    }
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_cond_destroy(&r->cv);
    pthread_mutex_destroy(&r->mu);
    free(r);
}

int resolver_post(struct resolver *r,
                  uint32_t worker,
                  uint32_t peer,
                  uint64_t gen,
                  const char *host,
                  uint16_t port)
{
    RR_ASSERT(worker < r->workers);
    RR_ASSERT(strlen(host) < RESOLVE_HOST_MAX);
    pthread_mutex_lock(&r->mu);
    if (r->outstanding == RESOLVE_QUEUE_MAX) {
        pthread_mutex_unlock(&r->mu);
        return -1;
    }
    RR_ASSERT(r->q_len < RESOLVE_QUEUE_MAX);
    struct resolve_request *q = &r->q[(r->q_head + r->q_len) % RESOLVE_QUEUE_MAX];
    q->worker = worker;
    q->peer = peer;
    q->gen = gen;
    q->port = port;
    snprintf(q->host, sizeof(q->host), "%s", host);
    r->q_len++;
    r->outstanding++;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    return 0;
}

uint32_t
resolver_collect(struct resolver *r, uint32_t worker, struct resolve_result *out, uint32_t cap)
{
    RR_ASSERT(worker < r->workers);
    if (cap == 0 || atomic_load_explicit(&r->ready[worker], memory_order_acquire) == 0) {
        return 0;
    }
    pthread_mutex_lock(&r->mu);
    uint32_t got = 0, kept = 0;
    for (uint32_t i = 0; i < r->done_len; i++) {
        if (r->done_worker[i] == worker && got < cap) {
            out[got++] = r->done[i];
            continue;
        }
        r->done[kept] = r->done[i];
        r->done_worker[kept] = r->done_worker[i];
        kept++;
    }
    r->done_len = kept;
    RR_ASSERT(r->outstanding >= got);
    r->outstanding -= got;
    atomic_fetch_sub_explicit(&r->ready[worker], got, memory_order_relaxed);
    pthread_mutex_unlock(&r->mu);
    return got;
}

bool resolve_answer_current(const struct resolve_result *res, bool waiting, uint64_t gen)
{
    return waiting && res->gen == gen;
}
