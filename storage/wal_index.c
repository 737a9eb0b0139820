/* The in-memory index: where each retained entry of a group lives (a deque of locations),
 * kept by replaying every record through the replay rule, and the pins it places on
 * segments. */
#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "storage/wal_internal.h"

size_t wal_index_bytes_per_entry(void)
{
    return sizeof(struct wal_loc);
}

/* Drops entries at index and above. A log left empty then ends at index - 1 (never below
 * its snapshot): replay may have begun with superseded entries above index (the segment
 * holding the log's start retired once a truncation below them was durable), and keeping
 * their first index would report a last index the log does not have. */
static void gs_truncate(struct wal_group_state *gs, raft_index index)
{
    while (gs->count > 0 && gs_last(gs) >= index) {
        gs->bytes -= gs_loc(gs, gs_last(gs))->size;
        gs->count--;
    }
    if (gs->count == 0 && index < gs->first_index) {
        gs->first_index = index > gs->snap_index ? index : gs->snap_index + 1;
    }
}

/* Drops entries at index and below; the log then starts at index + 1. */
static void gs_compact(struct wal_group_state *gs, raft_index index, raft_term term)
{
    while (gs->count > 0 && gs->first_index <= index) {
        gs->bytes -= gs->locs[gs->head].size;
        gs->head = (gs->head + 1u) & (gs->cap - 1u);
        gs->count--;
        gs->first_index++;
    }
    if (gs->count == 0) {
        gs->first_index = index + 1;
    }
    gs->snap_index = index;
    gs->snap_term = term;
}

/* Moves the deque into a new array of ncap locations (>= count), oldest first; or, when it
 * grows, reallocates it in place. Growing is what a busy group does until its log is
 * compacted, and realloc moves a large array by remapping its pages instead of copying them
 * into freshly faulted ones (a first touch of a page is the costliest thing a write does on
 * a virtual machine; docs/benchmarks.md "CPU per write"). A wrapped deque then moves its
 * wrapped part [0, end - cap) to [cap, end), where slot (head + i) & (ncap - 1) is. */
static int gs_resize(struct wal_group_state *gs, uint32_t ncap)
{
    RR_ASSERT(ncap >= gs->count);
    uint32_t end = gs->head + gs->count;
    if (gs->locs != NULL && ncap > gs->cap && end <= ncap) {
        struct wal_loc *n = realloc(gs->locs, (size_t)ncap * sizeof(*n));
        if (n == NULL) {
            return RR_ENOMEM;
        }
        if (end > gs->cap) {
            memcpy(n + gs->cap, n, (size_t)(end - gs->cap) * sizeof(*n));
        }
        gs->locs = n;
        gs->cap = ncap;
        return RR_OK;
    }
    struct wal_loc *n = malloc((size_t)ncap * sizeof(*n));
    if (n == NULL) {
        return RR_ENOMEM;
    }
    for (uint32_t i = 0; i < gs->count; i++) {
        n[i] = gs->locs[(gs->head + i) & (gs->cap - 1u)];
    }
    free(gs->locs);
    gs->locs = n;
    gs->head = 0;
    gs->cap = ncap;
    return RR_OK;
}

int wal_index_init(struct wal_group_state *gs)
{
    RR_ASSERT(gs->cap == 0 && gs->count == 0);
    return gs_resize(gs, WAL_INDEX_SLOTS_MIN);
}

/* Gives memory back once compaction left the deque at a quarter of its capacity or less
 * (keeping the larger deque when that allocation fails is always correct). */
void wal_index_shrink(struct wal_group_state *gs)
{
    uint32_t ncap = gs->cap;
    while (ncap > WAL_INDEX_SLOTS_MIN && gs->count <= ncap / 4u) {
        ncap /= 2u;
    }
    if (ncap != gs->cap) {
        (void)gs_resize(gs, ncap);
    }
}

static int gs_push(struct wal_group_state *gs, const struct wal_loc *loc)
{
    if (gs->count == gs->cap) {
        /* Grows by doubling: amortised, and bounded by the retained entries of the group. */
        uint32_t ncap = gs->cap == 0 ? WAL_INDEX_SLOTS_MIN : gs->cap * 2u;
        if (ncap == 0 || WAL_FAULT(WAL_FP_ALLOC, 0) != 0 || gs_resize(gs, ncap) != RR_OK) {
            return RR_ENOMEM;
        }
    }
    gs->locs[(gs->head + gs->count) & (gs->cap - 1u)] = *loc;
    gs->count++;
    gs->bytes += loc->size;
    return RR_OK;
}

/* Applies one record to the index: the replay rule (storage/wal_format.h). */
int wal_apply_record(struct wal *wal, const struct wal_record *r, uint64_t lsn, uint32_t size)
{
    if (r->type == WAL_REC_SEAL) {
        return RR_OK;
    }
    struct wal_group_state *gs = wal_group(wal, r->group);
    if (gs == NULL) {
        return RR_ECORRUPT;
    }
    switch ((enum wal_record_type)r->type) {
    case WAL_REC_ENTRY: {
        if (r->index <= gs->snap_index) {
            return RR_ECORRUPT;
        }
        if ((gs->count > 0 && r->index > gs_last(gs) + 1) ||
            (gs->count == 0 && gs->snap_index > 0 && r->index != gs->snap_index + 1)) {
            return RR_EUNAVAILABLE; /* a gap: recovery decides (wal_apply_gap) */
        }
        /* Truncate first: replay may begin with superseded entries (the segment holding
         * the log's start was retired), and a rewrite from below them restarts the log. */
        gs_truncate(gs, r->index);
        if (gs->count == 0) {
            gs->first_index = r->index;
        }
        struct wal_loc loc = {.term = r->term, .lsn = lsn, .size = size, .type = r->entry_type};
        return gs_push(gs, &loc);
    }
    case WAL_REC_HARD_STATE: {
        uint32_t vote = 0;
        if (r->payload_len != sizeof(vote)) {
            return RR_ECORRUPT;
        }
        memcpy(&vote, r->payload, sizeof(vote));
        gs->hs.term = r->term;
        gs->hs.commit = r->index;
        gs->hs.vote = vote;
        gs->hs_lsn = lsn;
        return RR_OK;
    }
    case WAL_REC_TRUNCATE:
        gs_truncate(gs, r->index);
        return RR_OK;
    case WAL_REC_COMPACT:
        gs_compact(gs, r->index, r->term);
        gs->snap_lsn = lsn;
        return RR_OK;
    case WAL_REC_SEAL:
        break;
    }
    return RR_ECORRUPT;
}

int wal_apply_gap(struct wal *wal, const struct wal_record *r, uint64_t lsn, uint32_t size)
{
    struct wal_group_state *gs = wal_group(wal, r->group);
    RR_ASSERT(gs != NULL);
    RR_ASSERT(r->type == WAL_REC_ENTRY);
    gs_truncate(gs, gs->first_index);
    gs->first_index = r->index;
    struct wal_loc loc = {.term = r->term, .lsn = lsn, .size = size, .type = r->entry_type};
    return gs_push(gs, &loc);
}

int wal_group_info(const struct wal *wal, raft_group group, struct wal_group_info *out)
{
    const struct wal_group_state *gs = wal_group(wal, group);
    if (gs == NULL) {
        return RR_EINVAL;
    }
    out->first_index = gs->first_index;
    out->last_index = gs_last(gs);
    out->snap_index = gs->snap_index;
    out->snap_term = gs->snap_term;
    out->hs = gs->hs;
    out->bytes = gs->bytes;
    return RR_OK;
}

/* Lowest lsn any group still needs; *entries_pin tells whether an entry (rather than only
 * hard-state or compact records, which can be rewritten forward) pins below limit. */
uint64_t wal_index_lowest_pin(const struct wal *wal, uint64_t limit, bool *entries_pin)
{
    uint64_t low = WAL_NO_LSN;
    *entries_pin = false;
    for (uint32_t g = 0; g < wal->local_groups; g++) {
        const struct wal_group_state *gs = &wal->groups[g];
        if (gs->count > 0 && gs->locs[gs->head].lsn < limit) {
            *entries_pin = true;
        }
        uint64_t pins[3] = {gs->count > 0 ? gs->locs[gs->head].lsn : WAL_NO_LSN, gs->hs_lsn,
                            gs->snap_lsn};
        for (int i = 0; i < 3; i++) {
            low = pins[i] < low ? pins[i] : low;
        }
    }
    return low;
}

uint32_t
wal_oldest_pins(const struct wal *wal, raft_group *groups, raft_index *indexes, uint32_t cap)
{
    uint32_t first = 0;
    while (first < wal->seg_count && wal->segs[first].retire_lsn != WAL_NO_LSN) {
        first++;
    }
    if (first + 1 >= wal->seg_count) {
        return 0;
    }
    const struct wal_segment *seg = &wal->segs[first];
    uint32_t n = 0;
    for (uint32_t g = 0; g < wal->local_groups && n < cap; g++) {
        const struct wal_group_state *gs = &wal->groups[g];
        if (gs->count > 0 && gs->locs[gs->head].lsn < seg->lsn_end) {
            groups[n] = g * wal->cfg.worker_count + wal->cfg.worker_id;
            indexes[n] = gs->first_index;
            n++;
        }
    }
    return n;
}

int wal_oldest_pin(const struct wal *wal, raft_group *group, raft_index *index)
{
    uint32_t first = 0;
    while (first < wal->seg_count && wal->segs[first].retire_lsn != WAL_NO_LSN) {
        first++;
    }
    if (first + 1 >= wal->seg_count) {
        return RR_ENOTFOUND;
    }
    const struct wal_segment *seg = &wal->segs[first];
    uint64_t best = WAL_NO_LSN;
    for (uint32_t g = 0; g < wal->local_groups; g++) {
        const struct wal_group_state *gs = &wal->groups[g];
        if (gs->count > 0 && gs->locs[gs->head].lsn < seg->lsn_end &&
            gs->locs[gs->head].lsn < best) {
            best = gs->locs[gs->head].lsn;
            *group = g * wal->cfg.worker_count + wal->cfg.worker_id;
            *index = gs->first_index;
        }
    }
    return best == WAL_NO_LSN ? RR_ENOTFOUND : RR_OK;
}
