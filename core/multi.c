/* The group table: one array of struct raft, indexed by slot = g / worker_count, and a dirty
 * list so that a drain visits only the groups that may have a ready batch.
 *
 * Why a dirty list and not a scan: a worker owns thousands of groups and most are idle
 * between ticks; a message, a proposal or a persist acknowledgement touches one group, and
 * the drain that follows should cost O(touched), not O(groups). A tick touches every group,
 * so multi_tick checks raft_has_ready() as it goes (the group is hot in cache then) and
 * lists only the groups that produced output (leaders' heartbeats, elections). */
#include "core/multi.h"

#include <stdlib.h>
#include <string.h>

#include "core/base/assert.h"
#include "core/base/errors.h"
#include "core/multi_internal.h"

/* Groups of this worker: g = slot * W + worker for every g < G. */
static uint32_t multi_count_of(const struct multi_options *o)
{
    if (o->worker >= o->group_count) {
        return 0;
    }
    return (o->group_count - 1 - o->worker) / o->worker_count + 1;
}

/* Each group's PRNG seed mixes the table seed, the group id and the node id: groups of one
 * node must not share election timeouts (their elections would collide in lockstep), and
 * neither must the same group on nodes given the same seed (split votes forever). */
static uint64_t multi_group_seed(const struct multi_options *o, raft_group g)
{
    uint64_t s = o->seed ^ ((uint64_t)g << 32) ^ (uint64_t)o->id;
    (void)rr_splitmix64(&s);
    return rr_splitmix64(&s);
}

static int multi_validate(const struct multi_options *o)
{
    if (o->worker_count == 0 || o->worker >= o->worker_count) {
        return RR_EINVAL;
    }
    if (o->id == RAFT_NODE_NONE || o->id > RAFT_NODE_ID_MAX) {
        return RR_EINVAL;
    }
    uint32_t count = multi_count_of(o);
    if (count == 0 || count > RAFT_GROUPS_MAX) {
        return RR_EINVAL;
    }
    return 0;
}

static int multi_alloc(struct multi *m)
{
    size_t align = _Alignof(max_align_t);
    m->stride = (raft_sizeof() + align - 1) / align * align;
    RR_ASSERT(m->stride >= raft_sizeof());
    m->groups = calloc(m->count, m->stride);
    m->dirty_bit = calloc(m->count, sizeof(*m->dirty_bit));
    m->dirty_list = calloc(m->count, sizeof(*m->dirty_list));
    m->drain_list = calloc(m->count, sizeof(*m->drain_list));
    m->awake_list = calloc(m->count, sizeof(*m->awake_list));
    m->awake_pos = calloc(m->count, sizeof(*m->awake_pos));
    m->scratch = malloc(sizeof(*m->scratch));
    if (m->groups == NULL || m->dirty_bit == NULL || m->dirty_list == NULL ||
        m->drain_list == NULL || m->awake_list == NULL || m->awake_pos == NULL ||
        m->scratch == NULL) {
        return RR_ENOMEM;
    }
    return 0;
}

static void multi_free_arrays(struct multi *m)
{
    free(m->groups);
    free(m->dirty_bit);
    free(m->dirty_list);
    free(m->drain_list);
    free(m->awake_list);
    free(m->awake_pos);
    free(m->scratch);
    free(m->local);
}

static void multi_fini_groups(struct multi *m, uint32_t initialised)
{
    for (uint32_t s = 0; s < initialised; s++) {
        raft_fini(multi_at(m, s));
    }
}

int multi_create(struct multi **out,
                 const struct multi_options *o,
                 const struct raft_config *config,
                 const struct raft_restore *(*restore)(void *ctx, raft_group g),
                 void *ctx)
{
    int rc = multi_validate(o);
    if (rc != 0) {
        return rc;
    }
    struct multi *m = calloc(1, sizeof(*m));
    if (m == NULL) {
        return RR_ENOMEM;
    }
    m->o = *o;
    m->count = multi_count_of(o);
    drain_outbox_init(&m->out, o->id);
    rc = multi_alloc(m);
    if (rc != 0) {
        goto out_free;
    }
    uint32_t s = 0;
    for (; s < m->count; s++) {
        raft_group g = multi_group_id(m, s);
        struct raft_options go = o->group;
        go.id = o->id;
        go.group = g;
        go.seed = multi_group_seed(o, g);
        go.uncommitted_total = &m->uncommitted_total;
        const struct raft_restore *rs = restore != NULL ? restore(ctx, g) : NULL;
        rc = raft_init(multi_at(m, s), &go, config, rs);
        if (rc != 0) {
            goto out_fini;
        }
        /* A restored group may have committed entries to apply: let the first drain see it. */
        multi_mark_slot(m, s);
        multi_awake_sync(m, s); /* every group starts awake */
    }
    *out = m;
    return 0;

out_fini:
    multi_fini_groups(m, s);
out_free:
    drain_outbox_fini(&m->out);
    multi_free_arrays(m);
    free(m);
    return rc;
}

void multi_destroy(struct multi *m)
{
    if (m == NULL) {
        return;
    }
    multi_fini_groups(m, m->count);
    while (m->held_pool != NULL) {
        struct drain_held *h = m->held_pool;
        m->held_pool = h->next;
        h->next = NULL;
        drain_held_free(h);
    }
    drain_outbox_fini(&m->out);
    multi_free_arrays(m);
    free(m);
}

uint32_t multi_group_count(const struct multi *m)
{
    return m->count;
}

raft_group multi_group_id(const struct multi *m, uint32_t slot)
{
    RR_ASSERT(slot < m->count);
    return slot * m->o.worker_count + m->o.worker;
}

int64_t multi_slot_of(const struct multi *m, raft_group g)
{
    if (g >= m->o.group_count || g % m->o.worker_count != m->o.worker) {
        return -1;
    }
    uint32_t slot = g / m->o.worker_count;
    RR_ASSERT(slot < m->count);
    return slot;
}

struct raft *multi_group(struct multi *m, raft_group g)
{
    int64_t slot = multi_slot_of(m, g);
    if (slot < 0) {
        return NULL;
    }
    /* The caller may mutate the group (campaign, snapshot_taken, ...): conservatively let the
     * next drain look at it. A spurious mark costs one raft_has_ready() call. */
    multi_mark_slot(m, (uint32_t)slot);
    return multi_at(m, (uint32_t)slot);
}

const struct raft *multi_group_peek(const struct multi *m, raft_group g)
{
    int64_t slot = multi_slot_of(m, g);
    if (slot < 0) {
        return NULL;
    }
    return (const struct raft *)(const void *)(m->groups + (size_t)slot * m->stride);
}

void multi_mark_slot(struct multi *m, uint32_t slot)
{
    RR_ASSERT(slot < m->count);
    if (m->dirty_bit[slot] != 0) {
        return;
    }
    RR_ASSERT(m->dirty_count < m->count);
    m->dirty_bit[slot] = 1;
    m->dirty_list[m->dirty_count++] = slot;
}

void multi_mark_dirty(struct multi *m, raft_group g)
{
    int64_t slot = multi_slot_of(m, g);
    RR_ASSERT(slot >= 0);
    multi_mark_slot(m, (uint32_t)slot);
}

bool multi_has_dirty(const struct multi *m)
{
    return m->dirty_count > 0;
}

void multi_awake_sync(struct multi *m, uint32_t slot)
{
    RR_ASSERT(slot < m->count);
    bool awake = !raft_quiesced(multi_at(m, slot));
    uint32_t pos = m->awake_pos[slot];
    if (awake && pos == 0) {
        RR_ASSERT(m->awake_count < m->count);
        m->awake_list[m->awake_count++] = slot;
        m->awake_pos[slot] = m->awake_count;
    } else if (!awake && pos != 0) {
        /* Swap the last awake slot into this one's place. */
        uint32_t last = m->awake_list[--m->awake_count];
        m->awake_list[pos - 1] = last;
        m->awake_pos[last] = pos;
        m->awake_pos[slot] = 0;
    }
}

uint32_t multi_awake_count(const struct multi *m)
{
    return m->awake_count;
}

/* Ticks only awake groups: a quiesced group's tick does nothing, and with thousands of idle
 * groups even visiting each one costs a cache miss per group per tick. Walked from the end
 * so that a group quiescing now (swapped with the last) leaves no unvisited slot behind. */
void multi_tick(struct multi *m)
{
    for (uint32_t k = m->awake_count; k-- > 0;) {
        uint32_t s = m->awake_list[k];
        struct raft *r = multi_at(m, s);
        raft_tick(r);
        if (raft_has_ready(r)) {
            multi_mark_slot(m, s);
        }
        if (raft_quiesced(r)) {
            multi_awake_sync(m, s);
        }
    }
}

void multi_peer_down(struct multi *m, raft_node node)
{
    for (uint32_t s = 0; s < m->count; s++) {
        struct raft *r = multi_at(m, s);
        struct raft_status st;
        raft_status(r, &st);
        bool follows = st.role != RAFT_LEADER && st.leader == node;
        bool leads = false;
        if (st.role == RAFT_LEADER) {
            struct raft_config c;
            raft_config(r, &c);
            leads = raft_config_is_member(&c, node);
        }
        if (follows || leads) {
            raft_peer_down(r, node);
            multi_mark_slot(m, s);
            multi_awake_sync(m, s);
        }
    }
}

/* Checks what the codec cannot know: the batch is for this node, from a peer, and for a
 * group this table owns. Local-only messages never come from the wire. */
static int multi_check_incoming(const struct multi *m, const struct raft_msg *msg, int64_t *slot)
{
    if (msg->to != m->o.id || msg->from == m->o.id || msg->from == RAFT_NODE_NONE) {
        return RR_EMISMATCH;
    }
    if (msg->type == RAFT_MSG_PERSISTED) {
        return RR_EBADTYPE;
    }
    *slot = multi_slot_of(m, msg->group);
    if (*slot < 0) {
        return RR_ENOTFOUND;
    }
    return 0;
}

int multi_receive(struct multi *m, const uint8_t *batch, size_t len)
{
    struct codec_batch_reader rd;
    int rc = codec_batch_open(&rd, batch, len);
    if (rc != 0) {
        return rc;
    }
    if (rd.to != m->o.id || rd.from == m->o.id) {
        return RR_EMISMATCH;
    }
    /* Bounded: every record consumes input bytes, and a heartbeat set holds a decoded count. */
    for (;;) {
        struct raft_msg msg;
        rc = codec_batch_next(&rd, &msg, m->scratch);
        if (rc <= 0) {
            return rc;
        }
        int64_t slot = -1;
        rc = multi_check_incoming(m, &msg, &slot);
        if (rc != 0) {
            return rc;
        }
        RR_ASSERT(msg.type <= RAFT_MSG_TYPE_MAX); /* the codec takes wire types only */
        m->received.by_type[msg.type]++;
        if (msg.type == RAFT_MSG_APPEND && msg.append.entry_count == 0) {
            m->received.append_empty++;
        }
        multi_mark_slot(m, (uint32_t)slot);
        rc = raft_step(multi_at(m, (uint32_t)slot), &msg);
        if (rc != 0) {
            return rc;
        }
    }
}

const struct multi_msg_counts *multi_received(const struct multi *m)
{
    return &m->received;
}

uint64_t multi_uncommitted_bytes(const struct multi *m)
{
    return m->uncommitted_total;
}

int multi_propose(
    struct multi *m, raft_group g, const uint8_t *data, uint32_t len, raft_index *index)
{
    int64_t slot = multi_slot_of(m, g);
    if (slot < 0) {
        return RR_ENOTFOUND;
    }
    if (m->o.uncommitted_bytes_max != 0 && m->uncommitted_total > 0 &&
        m->uncommitted_total + len > m->o.uncommitted_bytes_max) {
        return RR_EBUSY;
    }
    int rc = raft_propose(multi_at(m, (uint32_t)slot), data, len, index);
    if (rc == 0) {
        multi_mark_slot(m, (uint32_t)slot);
    }
    return rc;
}

int multi_read_index(struct multi *m, raft_group g, uint64_t ctx)
{
    int64_t slot = multi_slot_of(m, g);
    if (slot < 0) {
        return RR_ENOTFOUND;
    }
    int rc = raft_read_index(multi_at(m, (uint32_t)slot), ctx);
    if (rc == 0) {
        multi_mark_slot(m, (uint32_t)slot);
    }
    return rc;
}

/* ---- membership ---------------------------------------------------------------------- */

int multi_change_config(struct multi *m,
                        const struct raft_config *target,
                        struct multi_config_result *out,
                        uint32_t cap)
{
    if (target == NULL || out == NULL || cap < m->count) {
        return RR_EINVAL;
    }
    int started = 0;
    for (uint32_t s = 0; s < m->count; s++) {
        out[s] = (struct multi_config_result){.group = multi_group_id(m, s)};
        out[s].result = raft_change_config(multi_at(m, s), target, &out[s].index);
        if (out[s].result == 0) {
            multi_mark_slot(m, s);
            started++;
        }
    }
    return started;
}

static enum multi_config_phase config_phase(const struct raft *r, const struct raft_config *target)
{
    struct raft_config c;
    raft_config(r, &c);
    if (raft_config_is_joint(&c)) {
        c.old_member_count = 0;
        return raft_config_equal(&c, target) ? MULTI_CONFIG_JOINT : MULTI_CONFIG_OTHER;
    }
    if (!raft_config_equal(&c, target)) {
        return MULTI_CONFIG_OTHER;
    }
    return raft_config_pending(r) ? MULTI_CONFIG_PENDING : MULTI_CONFIG_DONE;
}

void multi_config_progress(struct multi *m,
                           const struct raft_config *target,
                           struct multi_config_progress *p,
                           uint8_t *phases,
                           uint32_t cap)
{
    memset(p, 0, sizeof(*p));
    p->groups = m->count;
    for (uint32_t s = 0; s < m->count; s++) {
        enum multi_config_phase ph = config_phase(multi_at(m, s), target);
        p->done += ph == MULTI_CONFIG_DONE;
        p->pending += ph == MULTI_CONFIG_PENDING;
        p->joint += ph == MULTI_CONFIG_JOINT;
        p->other += ph == MULTI_CONFIG_OTHER;
        if (phases != NULL && s < cap) {
            phases[s] = (uint8_t)ph;
        }
    }
}
