/* Hooks of the fault-test build (RR_FAULT_TESTING; tests/faults, docs/faults.md): the power
 * loss a test triggers with SIGUSR1 when test-power-loss is set. The unsafe test modes are
 * one-line checks where they act (FAULTS_UNSAFE in route.c and worker.c); the lookup delay
 * (test-resolve-delay-ms) is the resolver thread's (node.c passes it to resolver_start). Any other
 * build compiles this file to a function that returns false. */
#include "io/node.h"

#ifdef RR_FAULT_TESTING

#include <string.h>

#include "core/base/errors.h"
#include "io/log.h"
#include "storage/wal_testing.h"

#ifndef RR_STORAGE_TESTING
#error "the fault-test build links the storage test library (-DRR_STORAGE_TESTING)"
#endif

#define POWER_LOSS_DRAIN_MS 5000

static void forget_cqe_cb(void *arg, const struct io_uring_cqe *cqe)
{
    struct worker *w = arg;
    if (UD_TAG(io_uring_cqe_get_data64(cqe)) == UD_WAL) {
        wal_test_forget_cqe(w->wal, cqe);
    }
}

bool faults_power_loss(struct worker *w)
{
    if (!atomic_load(&w->node->power_loss)) {
        return false;
    }
    /* From here the WAL sees no completion: what it had acknowledged as synced is all that
     * survives. Reap until every WAL SQE the kernel was given has completed (SQEs prepared
     * but not submitted never are: nothing here submits). */
    int64_t deadline = node_clock_ms() + POWER_LOSS_DRAIN_MS;
    while (wal_busy(w->wal) && node_clock_ms() < deadline) {
        kernel_wait(&w->ring, 20);
        kernel_reap(&w->ring, forget_cqe_cb, w);
    }
    if (wal_busy(w->wal)) {
        LOG_E("power loss: WAL I/O still in flight after %d ms; not reverting",
              POWER_LOSS_DRAIN_MS);
        return true;
    }
    uint64_t reverted = 0;
    int rc = wal_test_power_cut(w->wal, &reverted);
    if (rc != 0) {
        LOG_E("power loss: reverting the unsynced WAL bytes failed: %s", strerror(-rc));
    } else {
        LOG_N("power loss: reverted %llu WAL bytes that were not synced",
              (unsigned long long)reverted);
    }
    return true;
}

#else

bool faults_power_loss(struct worker *w)
{
    (void)w;
    return false;
}

#endif
