/* Per-follower replication progress, the in-flight window, and quorum arithmetic. */
#include "core/progress.h"

#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"

void progress_init(struct raft_progress *p,
                   raft_node id,
                   raft_index next,
                   uint8_t inflight_count_max,
                   uint32_t inflight_bytes_max)
{
    RR_ASSERT(next >= 1);
    RR_ASSERT(inflight_count_max >= 1 && inflight_count_max <= RAFT_INFLIGHT_COUNT_MAX);
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->state = RAFT_PROGRESS_PROBE;
    p->next = next;
    p->inflights.count_max = inflight_count_max;
    p->inflights.bytes_max = inflight_bytes_max;
}

void progress_free(struct raft_progress *p)
{
    free(p->inflights.ring);
    p->inflights.ring = NULL;
    p->inflights.cap = 0;
}

static void progress_reset_state(struct raft_progress *p, uint8_t state)
{
    p->state = state;
    p->probe_sent = false;
    p->pending_snapshot = 0;
    p->snap_offset = 0;
    p->snap_chunk_inflight = false;
    p->snap_wait_ticks = 0;
    p->stall_ticks = 0;
    inflights_reset(&p->inflights);
}

void progress_become_probe(struct raft_progress *p)
{
    /* After a snapshot the follower holds at least the snapshot: probe just past it. */
    raft_index next = p->match + 1;
    if (p->state == RAFT_PROGRESS_SNAPSHOT && p->pending_snapshot + 1 > next) {
        next = p->pending_snapshot + 1;
    }
    progress_reset_state(p, RAFT_PROGRESS_PROBE);
    p->next = next;
}

void progress_become_replicate(struct raft_progress *p)
{
    progress_reset_state(p, RAFT_PROGRESS_REPLICATE);
    p->next = p->match + 1;
}

void progress_become_snapshot(struct raft_progress *p, raft_index snapshot_index)
{
    progress_reset_state(p, RAFT_PROGRESS_SNAPSHOT);
    p->pending_snapshot = snapshot_index;
}

bool progress_is_paused(const struct raft_progress *p)
{
    switch ((enum raft_progress_state)p->state) {
    case RAFT_PROGRESS_PROBE:
        return p->probe_sent;
    case RAFT_PROGRESS_REPLICATE:
        return inflights_full(&p->inflights);
    case RAFT_PROGRESS_SNAPSHOT:
        return true;
    }
    RR_ASSERT(false);
    return true;
}

bool progress_maybe_update(struct raft_progress *p, raft_index index)
{
    bool updated = false;
    if (p->match < index) {
        p->match = index;
        p->probe_sent = false;
        p->stall_ticks = 0;
        updated = true;
    }
    if (p->next < index + 1) {
        p->next = index + 1;
    }
    return updated;
}

bool progress_maybe_decr_to(struct raft_progress *p, raft_index rejected, raft_index match_hint)
{
    if (p->state == RAFT_PROGRESS_REPLICATE) {
        if (rejected <= p->match) {
            return false; /* stale: that index is already known to match */
        }
        p->next = p->match + 1;
        return true;
    }
    if (p->next - 1 != rejected) {
        return false; /* not the probe we are waiting for */
    }
    raft_index next = rejected < match_hint + 1 ? rejected : match_hint + 1;
    p->next = next > p->match + 1 ? next : p->match + 1;
    p->probe_sent = false;
    return true;
}

void progress_sent_entries(struct raft_progress *p, raft_index last, uint32_t bytes)
{
    switch ((enum raft_progress_state)p->state) {
    case RAFT_PROGRESS_REPLICATE:
        if (last >= p->next) {
            p->next = last + 1;
            if (!inflights_add(&p->inflights, last, bytes)) {
                /* Could not record it: fall back to probing, which needs no window. */
                progress_become_probe(p);
                p->probe_sent = true;
            }
        }
        break;
    case RAFT_PROGRESS_PROBE:
        p->probe_sent = true;
        break;
    case RAFT_PROGRESS_SNAPSHOT:
        RR_ASSERT(false);
        break;
    }
}

bool inflights_full(const struct raft_inflights *in)
{
    return in->count >= in->count_max || in->bytes >= in->bytes_max;
}

bool inflights_add(struct raft_inflights *in, raft_index index, uint32_t bytes)
{
    RR_ASSERT(in->count < in->count_max);
    if (in->count == in->cap) {
        uint32_t cap = in->cap == 0 ? 4u : in->cap * 2u;
        if (cap > in->count_max) {
            cap = in->count_max;
        }
        struct raft_inflight *ring = malloc(cap * sizeof(*ring));
        if (ring == NULL) {
            return false;
        }
        for (uint32_t i = 0; i < in->count; i++) {
            ring[i] = in->ring[(in->start + i) % in->cap];
        }
        free(in->ring);
        in->ring = ring;
        in->cap = (uint8_t)cap;
        in->start = 0;
    }
    RR_ASSERT(in->count == 0 || in->ring[(in->start + in->count - 1) % in->cap].index < index);
    in->ring[(in->start + in->count) % in->cap] = (struct raft_inflight){index, bytes};
    in->count++;
    RR_ASSERT(bytes <= RAFT_APPEND_BYTES_MAX && in->bytes < in->bytes_max); /* the width */
    in->bytes += bytes;
    return true;
}

void inflights_free_le(struct raft_inflights *in, raft_index index)
{
    while (in->count > 0 && in->ring[in->start].index <= index) {
        in->bytes -= in->ring[in->start].bytes;
        in->start = (uint8_t)((in->start + 1u) % in->cap);
        in->count--;
    }
    if (in->count == 0) {
        in->start = 0;
    }
}

void inflights_reset(struct raft_inflights *in)
{
    in->start = 0;
    in->count = 0;
    in->bytes = 0;
}

/* The value a majority of the voters in members[0..n) reach; UINT64_MAX with no voters. */
static uint64_t quorum_half(const uint16_t *members,
                            uint32_t n,
                            uint64_t (*value)(void *ctx, raft_node id),
                            void *ctx)
{
    uint64_t v[RAFT_MEMBERS_MAX];
    uint32_t k = 0;
    for (uint32_t i = 0; i < n && i < RAFT_MEMBERS_MAX; i++) {
        if (config_member_role(members[i]) != RAFT_VOTER) {
            continue;
        }
        /* Insertion sort, descending: at most RAFT_MEMBERS_MAX values. */
        uint64_t x = value(ctx, config_member_id(members[i]));
        uint32_t j = k++;
        while (j > 0 && v[j - 1] < x) {
            v[j] = v[j - 1];
            j--;
        }
        v[j] = x;
    }
    return k == 0 ? UINT64_MAX : v[k / 2];
}

uint64_t quorum_value(const struct raft_config_packed *c,
                      uint64_t (*value)(void *ctx, raft_node id),
                      void *ctx)
{
    uint64_t a = quorum_half(c->members, c->member_count, value, ctx);
    uint64_t b = quorum_half(c->members + c->member_count, c->old_member_count, value, ctx);
    return a < b ? a : b;
}

static enum quorum_result quorum_vote_half(const uint16_t *members,
                                           uint32_t n,
                                           int (*vote)(void *ctx, raft_node id),
                                           void *ctx)
{
    uint32_t voters = 0, granted = 0, rejected = 0;
    for (uint32_t i = 0; i < n && i < RAFT_MEMBERS_MAX; i++) {
        if (config_member_role(members[i]) != RAFT_VOTER) {
            continue;
        }
        voters++;
        int v = vote(ctx, config_member_id(members[i]));
        granted += v == 1;
        rejected += v == 0;
    }
    if (voters == 0) {
        return QUORUM_WON; /* an empty half (the old half when not joint) never objects */
    }
    uint32_t majority = voters / 2 + 1;
    if (granted >= majority) {
        return QUORUM_WON;
    }
    if (rejected > voters - majority) {
        return QUORUM_LOST;
    }
    return QUORUM_PENDING;
}

enum quorum_result quorum_vote_result(const struct raft_config_packed *c,
                                      int (*vote)(void *ctx, raft_node id),
                                      void *ctx)
{
    enum quorum_result a = quorum_vote_half(c->members, c->member_count, vote, ctx);
    enum quorum_result b =
        quorum_vote_half(c->members + c->member_count, c->old_member_count, vote, ctx);
    if (a == QUORUM_LOST || b == QUORUM_LOST) {
        return QUORUM_LOST;
    }
    if (a == QUORUM_WON && b == QUORUM_WON) {
        return QUORUM_WON;
    }
    return QUORUM_PENDING;
}
