/* The virtual disk, modelled on SQLite's crash VFS: writes collect in a persist unit, units
 * become durable one at a time in submission order, and a crash loses every unit not yet
 * durable, possibly tearing the first one (a prefix of its records survives).
 *
 * The durable log of a group is a snapshot followed by contiguous entries. An entry written
 * at index i replaces the durable suffix from i (a follower truncating a conflict); entries
 * at or below the snapshot index are already covered and ignored. */
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "tests/sim/sim.h"

raft_index sim_dlog_last(const struct sim_dlog *d)
{
    return d->snap.index + d->count;
}

raft_term sim_dlog_term(const struct sim_dlog *d, raft_index i)
{
    if (i == d->snap.index) {
        return d->snap.term;
    }
    if (i < d->snap.index || i > sim_dlog_last(d)) {
        return 0;
    }
    return d->e[i - d->snap.index - 1].term;
}

static void sim_dlog_truncate(struct sim_dlog *d, uint32_t keep)
{
    for (uint32_t k = keep; k < d->count; k++) {
        free(d->e[k].data);
    }
    if (keep < d->count) {
        d->count = keep;
    }
}

void sim_dlog_free(struct sim_dlog *d)
{
    sim_dlog_truncate(d, 0);
    free(d->e);
    free(d->snap_data);
    memset(d, 0, sizeof(*d));
}

static uint8_t *sim_dup(const uint8_t *p, uint64_t len)
{
    uint8_t *q = malloc(len == 0 ? 1 : (size_t)len);
    RR_ASSERT(q != NULL);
    if (len > 0) {
        memcpy(q, p, (size_t)len);
    }
    return q;
}

/* Writes one entry; returns false if it would leave a gap (the core wrote out of order). */
static bool sim_dlog_put_entry(struct sim_dlog *d, const struct sim_rec *r)
{
    if (r->index <= d->snap.index) {
        return true;
    }
    if (r->index > sim_dlog_last(d) + 1) {
        return false;
    }
    sim_dlog_truncate(d, (uint32_t)(r->index - d->snap.index - 1));
    if (d->count == d->cap) {
        d->cap = d->cap == 0 ? 64 : d->cap * 2;
        d->e = realloc(d->e, d->cap * sizeof(*d->e));
        RR_ASSERT(d->e != NULL);
    }
    struct sim_dentry *e = &d->e[d->count++];
    e->term = r->term;
    e->type = r->type;
    e->len = (uint32_t)r->len;
    e->data = sim_dup(r->data, r->len);
    return true;
}

void sim_dlog_install_snapshot(struct sim_dlog *d,
                               const struct raft_snapshot_meta *meta,
                               const uint8_t *data,
                               uint64_t bytes)
{
    if (meta->index <= d->snap.index) {
        return; /* an older snapshot than the one already durable adds nothing */
    }
    /* Keep the entries after the snapshot only if the log agrees with it at its index
     * (paper §7: otherwise the whole log is discarded). */
    uint32_t drop = 0;
    if (sim_dlog_term(d, meta->index) == meta->term) {
        drop = (uint32_t)(meta->index - d->snap.index);
    } else {
        drop = d->count;
    }
    for (uint32_t k = 0; k < drop; k++) {
        free(d->e[k].data);
    }
    if (d->count > drop) {
        memmove(d->e, d->e + drop, (d->count - drop) * sizeof(*d->e));
    }
    d->count -= drop;
    free(d->snap_data);
    d->snap = *meta;
    d->snap_data = sim_dup(data, bytes);
    d->snap_bytes = bytes;
}

struct sim_rec *sim_unit_add(struct sim_unit *u)
{
    if (u->count == u->cap) {
        u->cap = u->cap == 0 ? 16 : u->cap * 2;
        u->recs = realloc(u->recs, u->cap * sizeof(*u->recs));
        RR_ASSERT(u->recs != NULL);
    }
    struct sim_rec *r = &u->recs[u->count++];
    memset(r, 0, sizeof(*r));
    return r;
}

void sim_rec_set_data(struct sim_rec *r, const uint8_t *data, uint64_t len)
{
    r->data = sim_dup(data, len);
    r->len = len;
}

void sim_unit_free(struct sim_unit *u)
{
    if (u == NULL) {
        return;
    }
    for (uint32_t i = 0; i < u->count; i++) {
        free(u->recs[i].data);
    }
    free(u->recs);
    free(u);
}

/* Makes the first `count` records of u durable on node. */
void sim_unit_apply(struct sim *s, uint32_t node, const struct sim_unit *u, uint32_t count)
{
    RR_ASSERT(count <= u->count);
    for (uint32_t i = 0; i < count; i++) {
        const struct sim_rec *r = &u->recs[i];
        struct sim_dlog *d = &s->node[node].dlog[r->g];
        switch ((enum sim_rec_kind)r->kind) {
        case SIM_REC_HARD_STATE:
            check_durable_hard_state(s, node, r->g, &d->hs, &r->hs);
            d->hs = r->hs;
            break;
        case SIM_REC_SNAPSHOT:
            sim_dlog_install_snapshot(d, &r->meta, r->data, r->len);
            break;
        case SIM_REC_ENTRY:
            if (!sim_dlog_put_entry(d, r)) {
                sim_fail(s,
                         "node %u group %u: entry %llu written after durable last %llu "
                         "(a gap in the log)",
                         node + 1, r->g, (unsigned long long)r->index,
                         (unsigned long long)sim_dlog_last(d));
            }
            break;
        }
    }
}
